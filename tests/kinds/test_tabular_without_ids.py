"""A tabular run on a table of rows that are not (user, item) pairs: no id
or time column, a text binary label, numeric transforms chosen from the
training rows."""

import numpy as np
import pandas as pd
import pytest

from recsys import train
from recsys.bundles import load_bundle
from recsys.config import ConfigError
from recsys.config import load_config
from recsys.data.split import split_rule
from recsys.kinds.tabular import TabularKind
from recsys.kinds.tabular import _warn_label_outlier
from recsys.kinds.tabular import _warn_label_shift
from recsys.kinds.tabular import prepare_tabular
from recsys.kinds.tabular import row_labels
from recsys.two_stage import check_ranker

CONFIG = """
[data]
source = "loans.csv"
user = ""
item = ""
time = ""
split = "random"
label = "status"

[features.job]
kind = "categorical"

[features.income]
kind = "numeric"

[features.age]
kind = "numeric"

[features.debt]
kind = "numeric"
transform = "standardize"

[model]
kind = "tabular"
task = "binary"

[train]
epochs = 2
patience = 1
refit = false

[evaluate]
baselines = ["logistic_regression"]
"""


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    """600 loans; the label depends on the job and the income."""
    rng = np.random.default_rng(0)
    rows = 600
    job = rng.choice(["fixed", "freelance", "partime"], rows)
    income = rng.lognormal(4.5, 1.0, rows)  # a long right tail
    score = (job == "fixed") + (income > 90) + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame(
        {
            "job": job,
            "income": income,
            "age": rng.integers(18, 70, rows),
            "debt": rng.lognormal(3, 1.5, rows),
            "status": np.where(score > 1, "good", "bad"),
        }
    )
    folder = tmp_path_factory.mktemp("loans")
    frame.to_csv(folder / "loans.csv", index=False)
    (folder / "loans.toml").write_text(CONFIG)
    return folder


@pytest.fixture(scope="module")
def loans_run(loans):
    config = load_config(str(loans / "loans.toml"))
    return train(config, str(loans / "bundle"), progress=False)


def test_a_table_without_ids_trains_and_reports_its_baseline(loans_run):
    bundle, metrics = loans_run
    assert metrics["split"]["method"] == "random"
    assert metrics["split"]["held_out_rows"] == 120
    assert 0.5 < metrics["test"]["auc"] <= 1.0
    assert set(metrics["baseline_logistic_regression"]) == set(metrics["test"])
    # The text label's later value is the positive class.
    assert bundle.classes == ["bad", "good"]


def test_the_bundle_scores_rows_but_refuses_pairs(loans, loans_run):
    bundle, metrics = loans_run
    again = load_bundle(bundle.path)
    rows = pd.read_csv(loans / "loans.csv").iloc[:20]
    scores = again.predict(rows)
    assert scores.shape == (20,) and ((scores > 0) & (scores < 1)).all()
    with pytest.raises(ValueError, match="without user and item ids"):
        again.score_pairs([1], [2])
    with pytest.raises(ValueError, match="has no user and item ids"):
        check_ranker(again)  # `recsys serve --ranker`, `recommend --rerank`
    # `recsys evaluate` splits the table again and scores the same rows.
    rescored = TabularKind().rescore(again)
    assert rescored["auc"] == pytest.approx(metrics["test"]["auc"], abs=1e-6)


def test_a_cell_to_score_that_is_no_number_names_its_file_and_row(
    loans, loans_run, tmp_path
):
    # The fix said was training's ("declare it as a categorical feature"),
    # with no file nor row: the bundle's kinds are set, the cell is to mend.
    from recsys.scoring import score_file

    rows = pd.read_csv(loans / "loans.csv").iloc[:500].astype({"income": str})
    rows.loc[450, "income"] = "3%"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    match = (
        r"rows\.csv: Column 'income' holds 1 value that is no number, e\.g\. "
        r"'3%' \(row 450\) \(rows from 0\).*Fix: write those cells as numbers"
    )
    with pytest.raises(ValueError, match=match):
        score_file(
            loans_run.bundle,
            str(tmp_path / "rows.csv"),
            str(tmp_path / "scores.csv"),
            batch_size=256,
            progress=False,
        )
    assert not (tmp_path / "scores.csv").exists()


def test_none_scores_as_the_category_it_trained_as(loans, tmp_path):
    # A file of "None" alone in a categorical column was read as missing
    # by `recsys score` (pyarrow inferred a column of nulls), not as the
    # category training learnt: the same row scored two ways.
    from recsys.scoring import score_file

    frame = pd.read_csv(loans / "loans.csv")
    frame["job"] = frame["job"].replace("partime", "None")
    frame.to_csv(tmp_path / "loans.csv", index=False)
    (tmp_path / "loans.toml").write_text(CONFIG)
    config = load_config(str(tmp_path / "loans.toml"))
    bundle, _ = train(config, str(tmp_path / "bundle"), progress=False)
    assert "None" in bundle.preprocessor.vocabularies_["job"]
    rows = frame[frame["job"] == "None"].head(3)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    score_file(
        bundle,
        str(tmp_path / "rows.csv"),
        str(tmp_path / "out.csv"),
        progress=False,
    )
    scored = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert scored["job"].tolist() == ["None"] * 3  # written back as read
    np.testing.assert_allclose(scored["score"], bundle.predict(rows), rtol=1e-5)
    assert not np.allclose(
        bundle.predict(rows), bundle.predict(rows.assign(job=None))
    )
    # A Parquet file's text is what it holds: "NA" an (unknown) value
    # there, as training from Parquet reads it, not a missing cell.
    marked = rows.assign(job="NA")
    marked.to_parquet(tmp_path / "rows.parquet")
    score_file(
        bundle,
        str(tmp_path / "rows.parquet"),
        str(tmp_path / "out.parquet"),
        progress=False,
    )
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert scored["job"].tolist() == ["NA"] * 3
    np.testing.assert_allclose(
        scored["score"], bundle.predict(marked), rtol=1e-5
    )


def test_numeric_transforms_not_written_are_chosen_from_the_data(loans):
    prepared = prepare_tabular(
        load_config(str(loans / "loans.toml")), progress=False
    )
    transforms = {
        f.name: f.transform
        for f in prepared.preprocessor.features
        if f.kind == "numeric"
    }
    # income: long-tailed, logged; age: not; debt: as written.
    assert transforms == {
        "income": "log",
        "age": "standardize",
        "debt": "standardize",
    }


@pytest.mark.parametrize(
    "overrides, match",
    [
        (['data.item="job"'], "both set or both empty"),
        (['data.split="time"'], "needs a time column"),
        (['data.split="user_time"'], "holds out each user's latest rows"),
        (["evaluate.baselines=['bias']"], "bias"),
        (["model.history_length=5"], "history_length"),
    ],
)
def test_a_table_without_ids_refuses_what_needs_them(loans, overrides, match):
    with pytest.raises((ConfigError, ValueError), match=match):
        load_config(str(loans / "loans.toml"), overrides)


def test_the_auto_split_of_a_table_without_ids_is_by_time_if_it_has_one(
    loans,
):
    config = load_config(str(loans / "loans.toml"), ['data.split="auto"'])
    assert split_rule(config["data"]).method == "random"
    timed = load_config(
        str(loans / "loans.toml"), ['data.split="auto"', 'data.time="age"']
    )
    assert split_rule(timed["data"]).method == "time"
    # The shortest config: no ids, no times (the defaults).
    short = load_config(
        {
            "data": {"source": "loans.csv", "label": "status"},
            "model": {"kind": "tabular", "task": "binary"},
        }
    )
    assert (short["data"]["user"], short["data"]["time"]) == ("", "")
    assert split_rule(short["data"]).method == "random"


@pytest.mark.parametrize("task", ["auto", "multiclass"])
def test_a_label_of_one_value_says_so(loans, task):
    frame = pd.read_csv(loans / "loans.csv").assign(status="good")
    config = load_config(str(loans / "loans.toml"), [f'model.task="{task}"'])
    with pytest.raises(ValueError, match=r"one value on every row \('good'"):
        train(config, write=False, frame=frame, progress=False)


def test_a_class_held_out_by_time_alone_names_the_split(loans):
    # The label marks the latest period (a year's dummy): split by time,
    # every training row is negative; the fix is the split, not the label.
    frame = pd.read_csv(loans / "loans.csv")
    frame = frame.assign(late=(frame["age"] >= 65).astype(int))
    config = load_config(
        str(loans / "loans.toml"),
        ['data.label="late"', 'data.split="time"', 'data.time="age"'],
    )
    with pytest.raises(
        ValueError, match=r"test split only.*data.split = \"random\""
    ):
        prepare_tabular(config, frame, progress=False)


def test_label_values_without_a_class_are_counted_and_shortened(loans):
    config = load_config(str(loans / "loans.toml"), ['model.task="multiclass"'])
    frame = pd.DataFrame({"status": ["good", "x" * 200, "new"]})
    with pytest.raises(
        ValueError, match=r"^2 label values, e\.g\. \['new', 'x{57}\.\.\.'\]"
    ):
        row_labels(frame, config, ["bad", "good"])
    with pytest.raises(
        ValueError, match=r"^1 label value, e\.g\. \['new'\], does"
    ):
        row_labels(frame.iloc[[0, 2]], config, ["bad", "good"])


def test_a_class_whose_rows_were_all_held_out_is_warned_and_trains(
    loans, tmp_path, caplog
):
    # dragracer's rpdr: 8 of 26 outcomes on one row each; a class whose row
    # was held out stopped training ("do not occur in the training split").
    from recsys.kinds.tabular import split_rows

    frame = pd.read_csv(loans / "loans.csv")
    config = load_config(str(loans / "loans.toml"), ['model.task="multiclass"'])
    _, test = split_rows(frame, config)
    frame.loc[test.index[0], "status"] = "rare"
    with caplog.at_level("WARNING", logger="recsys"):
        bundle, metrics = train(
            config, str(tmp_path / "bundle"), frame=frame, progress=False
        )
    assert bundle.classes == ["bad", "good", "rare"]
    assert bundle.predict(frame.iloc[:3]).shape == (3, 3)
    assert metrics["test"]["num_examples"] == 120
    assert (
        "Classes of the label 'status' in no training row: 1, e.g. ['rare'] "
        "(1 held-out rows)"
    ) in caplog.text


def test_a_text_label_of_a_binary_task_needs_two_values(loans, tmp_path):
    frame = pd.read_csv(loans / "loans.csv")
    frame.loc[:5, "status"] = "unknown"
    config = load_config(str(loans / "loans.toml"))
    with pytest.raises(ValueError, match="exactly two"):
        prepare_tabular(config, frame, progress=False)


def test_a_regression_without_ids_reports_a_ridge_baseline(loans, tmp_path):
    frame = pd.read_csv(loans / "loans.csv")
    noise = np.random.default_rng(1).normal(0, 0.3, len(frame))
    frame["limit"] = 2.0 * (frame["job"] == "fixed") + frame["age"] / 20 + noise
    frame.to_csv(tmp_path / "loans.csv", index=False)
    text = (
        CONFIG.replace('label = "status"', 'label = "limit"')
        .replace('task = "binary"', 'task = "regression"')
        .replace('"logistic_regression"', '"linear_regression"')
    )
    (tmp_path / "limits.toml").write_text(text)
    config = load_config(str(tmp_path / "limits.toml"))
    _, metrics = train(config, str(tmp_path / "bundle"), progress=False)
    ridge = metrics["baseline_linear_regression"]
    assert set(ridge) == set(metrics["test"])
    # The planted linear signal: well below the label's spread (~1.3).
    assert ridge["rmse"] < 0.6 * frame["limit"].std()
    # Beside them, always predicting the training rows' mean.
    mean = metrics["training_mean"]
    assert set(mean) == set(metrics["test"])
    assert mean["rmse"] == pytest.approx(frame["limit"].std(), rel=0.15)
    assert ridge["rmse"] < 0.6 * mean["rmse"]
    with pytest.raises(ConfigError, match='use "linear_regression"'):
        load_config(
            str(tmp_path / "limits.toml"), ["evaluate.baselines=['bias']"]
        )


def test_a_label_in_large_units_trains_as_in_small_ones(loans, tmp_path):
    # House prices in dollars: the model learns in the label's standard
    # units (`output_scale`), so 100,000 times the label gives 100,000
    # times the error, not an output still crawling towards the prices.
    frame = pd.read_csv(loans / "loans.csv")
    noise = np.random.default_rng(1).normal(0, 0.3, len(frame))
    limit = 2.0 * (frame["job"] == "fixed") + frame["age"] / 20 + noise
    text = CONFIG.replace('label = "status"', 'label = "limit"').replace(
        'task = "binary"', 'task = "regression"'
    )
    (tmp_path / "limits.toml").write_text(text)
    config = load_config(
        str(tmp_path / "limits.toml"),
        # Epochs enough to converge (at 20 it was still improving, a
        # hair's breadth from the bound at seed 0 and above it at 1-3).
        ["train.epochs=80", "train.patience=3", "evaluate.baselines=[]"],
    )
    errors = []
    for unit in (1.0, 100_000.0):
        frame["limit"] = limit * unit
        result = train(config, frame=frame, progress=False, write=False)
        errors.append(result.metrics["test"]["rmse"] / unit)
    assert errors[0] < 0.4 * limit.std()  # it learnt the planted signal
    assert errors[1] == pytest.approx(errors[0], rel=0.05)


def test_rows_without_a_label_are_dropped_only_when_asked(loans):
    frame = pd.read_csv(loans / "loans.csv")
    frame.loc[:9, "status"] = np.nan
    config = load_config(str(loans / "loans.toml"))
    with pytest.raises(ValueError, match="or set data.drop_missing = true"):
        prepare_tabular(config, frame, progress=False)
    config = load_config(str(loans / "loans.toml"), ["data.drop_missing=true"])
    prepared = prepare_tabular(config, frame, progress=False)
    rows = sum(len(prepared.parts[part][0]) for part in ("train", "test"))
    assert rows == len(frame) - 10
    frame["status"] = np.nan
    with pytest.raises(ValueError, match="leaves none"):
        prepare_tabular(config, frame, progress=False)


def test_a_config_without_feature_tables_reads_inits_columns(loans):
    # The shortest config a user writes: the data, the label, the kind (a
    # table without ids and times by default, split at random; the task
    # the label's).
    tables = {
        "data": {"source": str(loans / "loans.csv"), "label": "status"},
        "model": {"kind": "tabular"},
        "train": {"epochs": 2, "patience": 1, "refit": False},
    }
    result = train(load_config(tables), str(loans / "short"), progress=False)
    config = result.bundle.config
    assert config["model"]["task"] == "binary"  # "good" / "bad"
    assert "auc" in result.metrics["baseline_logistic_regression"]
    assert config["model"]["features"] == ["job", "income", "age", "debt"]
    assert config["features"]["job"]["kind"] == "categorical"
    assert config["features"]["income"]["kind"] == "numeric"
    # The bundle reloads and scores with the tables it recorded.
    bundle = load_bundle(str(loans / "short"))
    frame = pd.read_csv(loans / "loans.csv")
    np.testing.assert_allclose(
        bundle.predict(frame.head(5)), result.bundle.predict(frame.head(5))
    )
    # Notebooks that prepare by hand get the same columns.
    prepared = prepare_tabular(load_config(tables))
    assert prepared.config["model"]["features"] == config["model"]["features"]


def test_a_short_config_choosing_its_columns_reads_only_those(loans):
    tables = {
        "data": {"source": str(loans / "loans.csv"), "label": "status"},
        "model": {"kind": "tabular", "features": ["income", "job"]},
        "train": {"epochs": 2, "patience": 1, "refit": False},
    }
    prepared = prepare_tabular(load_config(tables))
    config = prepared.config
    assert config["model"]["features"] == ["income", "job"]
    assert set(config["features"]) == {"income", "job"}
    assert config["features"]["job"]["kind"] == "categorical"
    # A misspelt column names the closest one; the label is refused.
    tables["model"]["features"] = ["incme", "job"]
    with pytest.raises(ValueError, match="'incme': did you mean 'income'"):
        prepare_tabular(load_config(tables))
    tables["model"]["features"] = ["income", "status"]
    with pytest.raises(ConfigError, match="'status' is in model.features"):
        load_config(tables)


def test_a_short_config_naming_a_missing_column_says_which_key(loans):
    tables = {
        "data": {
            "source": str(loans / "loans.csv"),
            "label": "status",
            "user": "customer",
            "item": "product",
            "time": "age",
        },
        "model": {"kind": "tabular", "task": "binary"},
    }
    with pytest.raises(ValueError, match=r"data.user = 'customer' is not a"):
        train(load_config(tables), write=False, progress=False)


def test_ratings_without_times_split_at_random_beside_the_bias(tmp_path):
    # (student, lecturer, rating) rows without a time (lme4's InstEval).
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, 1500), rng.integers(0, 30, 1500)
    rating = (users % 3) + (items % 2) + rng.normal(0, 0.3, 1500)
    frame = pd.DataFrame({"s": users, "d": items, "y": rating})
    tables = {
        "data": {"source": "unused.csv", "user": "s", "item": "d"},
        "model": {"kind": "tabular"},
        "train": {"epochs": 20, "patience": 2},
    }
    tables["data"].update(time="", label="y")
    config = load_config(tables)
    assert config["data"]["split"] == "random"
    # The task (and so the baseline) is the label's, once the table is read.
    assert config["model"]["task"] == "auto"
    result = train(config, write=False, frame=frame, progress=False)
    resolved = result.prepared.config
    assert resolved["model"]["task"] == "regression"
    assert resolved["evaluate"]["baselines"] == ["bias"]
    metrics = result.metrics
    # The rating is a user's plus an item's part: both learn it.
    assert metrics["test"]["rmse"] < 0.5
    assert metrics["baseline_bias"]["rmse"] < 0.5
    with pytest.raises(ConfigError, match='data.time = "" has no order'):
        load_config(tables, ["model.history_length=5"])


# A regression on a `price` column of prices.csv.
PRICES_CONFIG = (
    CONFIG.replace('source = "loans.csv"', 'source = "prices.csv"')
    .replace('label = "status"', 'label = "price"')
    .replace('task = "binary"', 'task = "regression"')
    .replace('"logistic_regression"', '"linear_regression"')
)


def test_held_out_labels_far_from_the_training_rows_are_warned(
    loans, tmp_path, caplog
):
    # Prices that rise over the rows' dates: a split by time holds out the
    # latest, dearest rows (modeldata's hotel_rates).
    frame = pd.read_csv(loans / "loans.csv")
    day = np.arange(len(frame))
    frame["date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(day, "D")
    frame["price"] = (
        50 + day / 4 + np.random.default_rng(2).normal(0, 5, len(frame))
    )
    frame.to_csv(tmp_path / "prices.csv", index=False)
    (tmp_path / "prices.toml").write_text(PRICES_CONFIG)
    caplog.set_level("WARNING", logger="recsys.kinds.tabular")
    for split, warned in (("random", False), ("time", True)):
        config = load_config(
            str(tmp_path / "prices.toml"),
            [f"data.split='{split}'", "data.time='date'"],
        )
        _warn_label_shift(prepare_tabular(config))
        assert ("training standard deviations above" in caplog.text) is warned
    assert "data.split = 'time' holds out rows unlike" in caplog.text


def test_one_wild_regression_label_is_warned(loans, tmp_path, caplog):
    # AER's CPS1985 with one wage of 10**6: RMSE 2,400 against 3.75, and
    # only a note that blamed the features.
    frame = pd.read_csv(loans / "loans.csv")
    frame["price"] = np.random.default_rng(3).normal(50, 5, len(frame))
    (tmp_path / "prices.toml").write_text(PRICES_CONFIG)
    caplog.set_level("WARNING", logger="recsys.kinds.tabular")
    for wild in (False, True):
        if wild:
            frame.loc[frame.index[5], "price"] = 1e6
        frame.to_csv(tmp_path / "prices.csv", index=False)
        # Every row trains: the wild one is sure to.
        config = load_config(
            str(tmp_path / "prices.toml"), ["data.split='none'"]
        )
        prepared = prepare_tabular(config)
        _warn_label_outlier(prepared)
        assert ("One training row's price, 1e+06" in caplog.text) is wild
    assert "data.drop_missing = true" in caplog.text


def test_a_table_of_many_categorical_columns_trains_from_init(tmp_path):
    # A survey of 120 answers and 40 yes/no columns: one stacked table per
    # vector width, not one table per column (compiled for minutes before).
    from recsys.init_config import init_config

    rng = np.random.default_rng(0)
    rows = 500
    answers = {f"q{i}": rng.choice(list("abcde"), rows) for i in range(120)}
    flags = {f"f{i}": rng.integers(0, 2, rows) for i in range(40)}
    frame = pd.DataFrame({**answers, **flags})
    score = (frame["q0"] == "a") + frame["f0"] + rng.normal(0, 0.3, rows)
    frame["churned"] = (score > 0.6).astype(int)
    frame.to_csv(tmp_path / "survey.csv", index=False)
    text = init_config("tabular", str(tmp_path / "survey.csv"))
    (tmp_path / "survey.toml").write_text(text)
    config = load_config(str(tmp_path / "survey.toml"))
    assert config["data"]["label"] == "churned"
    config["train"].update(epochs=20, patience=3)
    bundle, metrics = train(config, str(tmp_path / "bundle"), progress=False)
    model = load_bundle(str(tmp_path / "bundle")).model
    assert len(model.embedded_names) == 160
    widths = {spec["output_dim"] for spec in model.inputs_config}
    assert len(model.embeddings.tables) == len(widths)
    assert metrics["test"]["auc"] > 0.7


def test_a_numeric_column_empty_on_every_training_row_names_the_fix(
    loans, tmp_path
):
    frame = pd.read_csv(loans / "loans.csv")
    frame["debt"] = np.nan
    frame.to_csv(tmp_path / "loans.csv", index=False)
    (tmp_path / "loans.toml").write_text(CONFIG)
    config = load_config(str(tmp_path / "loans.toml"))
    with pytest.raises(
        ValueError, match=r"'debt' is empty.*remove \[features.debt\]"
    ):
        train(config, write=False, progress=False)


def test_held_out_rows_of_one_class_are_warned(loans, tmp_path, caplog):
    # modeldata's hotel_rates split by date: every held-out
    # `near_new_years` is 0, and the printed AUC was a bare nan.
    frame = pd.read_csv(loans / "loans.csv")
    frame["month"] = np.arange(len(frame))
    frame.loc[frame.index[-150:], "status"] = "bad"
    frame.to_csv(tmp_path / "loans.csv", index=False)
    text = CONFIG.replace('time = ""', 'time = "month"').replace(
        'split = "random"', 'split = "time"'
    )
    (tmp_path / "loans.toml").write_text(text)
    config = load_config(str(tmp_path / "loans.toml"))
    with caplog.at_level("WARNING"):
        result = train(config, write=False, progress=False)
    assert np.isnan(result.metrics["test"]["auc"])
    assert "All 120 held-out rows have the same 'status' (bad)" in caplog.text


def test_an_empty_numeric_cell_is_read_as_missing(loans, tmp_path):
    # Loans whose income was not given are mostly bad (10% label noise);
    # filled with the mean income, they look like other rows.
    rng = np.random.default_rng(1)
    frame = pd.read_csv(loans / "loans.csv")
    hidden = rng.random(len(frame)) < 0.3
    frame.loc[hidden, "income"] = np.nan
    frame["status"] = np.where(
        hidden ^ (rng.random(len(frame)) < 0.1), "bad", "good"
    )
    frame.to_csv(tmp_path / "loans.csv", index=False)
    text = CONFIG.replace(
        "epochs = 2\npatience = 1", "epochs = 30\npatience = 3"
    )
    aucs = {}
    for missing in ("indicator", "mean"):
        # Not written: chosen from the training rows' empty cells.
        line = 'missing = "mean"\n' if missing == "mean" else ""
        (tmp_path / "loans.toml").write_text(
            text.replace(
                '[features.income]\nkind = "numeric"\n',
                f'[features.income]\nkind = "numeric"\n{line}',
            )
        )
        config = load_config(str(tmp_path / "loans.toml"))
        result = train(config, str(tmp_path / missing), progress=False)
        aucs[missing] = result.metrics["test"]["auc"]
    assert aucs["indicator"] > max(0.85, aucs["mean"] + 0.05)
    bundle = load_bundle(str(tmp_path / "indicator"))
    assert bundle.preprocessor.feature("income").missing == "indicator"
    assert np.isfinite(bundle.predict(frame.iloc[:40])).all()
    rescored = TabularKind().rescore(bundle)
    assert rescored["auc"] == pytest.approx(aucs["indicator"], abs=1e-6)


def test_a_column_that_holds_the_label_is_said_at_a_perfect_score(
    loans, tmp_path
):
    # Goals beside a goal difference: AUC 1.0000, and nothing said.
    frame = pd.read_csv(loans / "loans.csv")
    frame["verdict"] = np.where(frame["status"] == "good", "approve", "deny")
    frame.to_csv(tmp_path / "loans.csv", index=False)
    text = CONFIG.replace(
        "[model]", '[features.verdict]\nkind = "categorical"\n\n[model]'
    ).replace("epochs = 2\npatience = 1", "epochs = 40\npatience = 5")
    (tmp_path / "leak.toml").write_text(text)
    config = load_config(str(tmp_path / "leak.toml"), ["train.batch_size=32"])
    _, metrics = train(config, str(tmp_path / "bundle"), progress=False)
    assert metrics["test"]["auc"] == 1.0
    report = " ".join(TabularKind().summary(metrics, config).split())
    assert "note: auc 1.0000 on the test split, a perfect score" in report


def test_a_feature_beyond_every_training_value_is_said(loans, caplog):
    # A time read as a number under a split by time: every held-out value
    # lies past the training range (weather's own time: RMSE 25.4 against
    # 2.1 without it), and nothing said why.
    frame = pd.read_csv(loans / "loans.csv")
    frame["opened"] = np.arange(len(frame))
    config = load_config(
        str(loans / "loans.toml"),
        ['data.time="opened"', 'data.split="time"', "train.epochs=1"],
    )
    config["features"]["opened"] = {"kind": "numeric"}
    caplog.set_level("WARNING", logger="recsys.kinds.tabular")
    train(config, write=False, frame=frame, progress=False)
    assert "Numeric feature 'opened': 100% of the held-out rows" in caplog.text
    assert "Numeric feature 'income'" not in caplog.text
