"""`TabularBundle.predict` warns of values the model never learned."""

import numpy as np

from recsys.scoring import score_file

UNKNOWN = [10**9, 10**9 + 1]  # movie ids no training row has


def _known_rows(bundle, frame, n):
    """`n` rows of `frame` whose every category value the bundle learned."""
    learned = bundle.preprocessor.vocabularies_
    known = np.ones(len(frame), bool)
    for name in ("userId", "movieId"):
        known &= frame[name].astype(str).isin(learned[name]).to_numpy()
    return frame[known].head(n).reset_index(drop=True)


def _said(caplog):
    return [
        record.getMessage()
        for record in caplog.records
        if "never learned" in record.getMessage()
    ]


def test_predict_warns_once_of_values_the_model_never_learned(
    rating_run, small_frame, caplog
):
    # Only `recsys score` counted them: `predict` scored `RENT` (training
    # had `rent`) as the unknown value without a word.
    bundle, _ = rating_run
    rows = _known_rows(bundle, small_frame, 6)
    with caplog.at_level("WARNING"):
        bundle.predict(rows)
    assert _said(caplog) == []
    rows.loc[[1, 4], "movieId"] = UNKNOWN
    rows.index = rows.index + 100  # an example found by position
    with caplog.at_level("WARNING"):
        bundle.predict(rows, batch_size=2)
    [message] = _said(caplog)
    assert "'movieId' in 2 of 6 rows, e.g. 1000000000" in message
    # Pairs are the bundle's own tables' values: scored without a word.
    caplog.clear()
    with caplog.at_level("WARNING"):
        bundle.score_pairs([1, 1], UNKNOWN)
    assert _said(caplog) == []


def test_a_file_of_several_chunks_is_warned_of_once(
    rating_run, small_frame, tmp_path, caplog
):
    bundle, _ = rating_run
    rows = _known_rows(bundle, small_frame, 10)
    rows.loc[[1, 8], "movieId"] = UNKNOWN
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    with caplog.at_level("WARNING"):
        score_file(
            bundle,
            str(tmp_path / "in.parquet"),
            str(tmp_path / "out.parquet"),
            batch_size=4,
            progress=False,
        )
    [message] = _said(caplog)
    assert "'movieId' in 2 of 10 rows, e.g. 1000000000" in message


def test_numbers_far_outside_the_training_rows_are_said(caplog):
    # A date typed into a day-of-month column was read as Unix seconds and
    # scored as an ozone of 1.26e9, without a word.
    import pandas as pd

    from recsys.features import NumericFeature
    from recsys.features import Preprocessor
    from recsys.scoring import UnseenValues

    days = pd.DataFrame({"day": np.arange(1, 32, dtype=float)})
    pre = Preprocessor(features=[NumericFeature("day")]).fit(days)
    rows = pd.DataFrame({"day": [3.0, np.nan, 40.0]})
    with caplog.at_level("WARNING"):
        counter = UnseenValues(pre)
        counter.add(rows)
        counter.warn(len(rows))
    assert caplog.text == ""  # 40 is near enough; a missing day is no number
    # A column empty on every row was scored as its missing value silently
    # (said of 20 rows or more: not of a call's row or two).
    for size, said in ((19, False), (20, True)):
        with caplog.at_level("WARNING"):
            counter = UnseenValues(pre)
            empty = pd.DataFrame({"day": np.full(size, np.nan)})
            counter.add(empty.iloc[:5])
            counter.add(empty.iloc[5:])
            counter.warn(size)
        message = f"'day' is empty on every one of the {size} rows scored"
        assert (message in caplog.text) == said, caplog.text
        caplog.clear()
    typed = pd.DataFrame({"day": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with caplog.at_level("WARNING"):
        counter = UnseenValues(pre)
        counter.add(typed)
        counter.warn(len(typed))
    assert "'day' in 2 of 2 rows, e.g. Timestamp('2024-01-01" in caplog.text
    assert "more than 1000 standard deviations" in caplog.text
    # A column of rare 1s among 0s: its own 1s lie 26 deviations out, and
    # no training value lies past sqrt(rows - 1), so none is said.
    flags = pd.DataFrame({"day": np.repeat([0.0, 1.0], [3994, 6])})
    pre = Preprocessor(features=[NumericFeature("day")]).fit(flags)
    caplog.clear()
    with caplog.at_level("WARNING"):
        counter = UnseenValues(pre)
        counter.add(flags)
        counter.warn(len(flags))
    assert caplog.text == ""


def test_predicted_classes_keep_the_labels_type():
    import types

    from recsys.scoring import score_columns

    bundle = types.SimpleNamespace(classes=[5, 6, 7])
    probabilities = np.array([[0.1, 0.7, 0.2], [np.nan] * 3])
    predicted = score_columns(bundle, probabilities)["predicted"]
    assert predicted.tolist() == [6, None]
    assert isinstance(predicted[0], int | np.integer)


def test_a_file_of_numbers_only_is_said_empty_once_and_only_when_empty(
    tmp_path, caplog
):
    # Without a categorical column each chunk was warned of alone: a file
    # whose first chunk lacked a column was said empty on every row.
    import pandas as pd

    from recsys import train
    from recsys.config import load_config
    from recsys.init_config import init_config

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"x1": rng.normal(size=300), "x2": rng.normal(size=300)}
    ).assign(y=lambda t: (t.x1 + rng.normal(size=300) > 0).astype(int))
    path = tmp_path / "rows.csv"
    table.to_csv(path, index=False)
    config = tmp_path / "rows.toml"
    config.write_text(
        init_config(
            "tabular", str(path), source=str(path), columns={"label": "y"}
        )
    )
    result = train(
        load_config(str(config), ["train.epochs=1"]),
        str(tmp_path / "bundle"),
        progress=False,
    )

    def said(rows):
        rows.to_parquet(tmp_path / "in.parquet", index=False)
        caplog.clear()
        with caplog.at_level("WARNING"):
            score_file(
                result.bundle,
                str(tmp_path / "in.parquet"),
                str(tmp_path / "out.parquet"),
                batch_size=60,
                progress=False,
            )
        return [
            r.getMessage() for r in caplog.records if "empty" in r.getMessage()
        ]

    first_chunk_empty = table.copy()
    first_chunk_empty.loc[:59, "x2"] = np.nan
    assert said(first_chunk_empty) == []
    [message] = said(table.assign(x2=np.nan))
    assert "'x2' is empty on every one of the 300 rows scored" in message


def test_unknown_values_of_a_list_column_are_said(caplog):
    # A list column scored from a CSV that `to_csv` wrote (`['d' 'b']`,
    # one token the model never learned) scored every row differently from
    # its Parquet, without a word; a single-valued column's were said.
    import pandas as pd

    from recsys.features import MultiCategoricalFeature
    from recsys.features import Preprocessor
    from recsys.scoring import UnseenValues

    tags = pd.DataFrame({"tags": ["a|b", "b", "c|a", "b|c"] * 5})
    pre = Preprocessor(
        features=[MultiCategoricalFeature("tags", separator="|")]
    ).fit(tags)
    rows = pd.DataFrame({"tags": ["a|c", "['d' 'b']", "b|zzz", None]})
    with caplog.at_level("WARNING"):
        counter = UnseenValues(pre)
        counter.add(rows.iloc[:1])
        counter.warn(1)
        assert caplog.text == ""  # every value known
        counter.add(rows.iloc[1:])
        counter.warn(len(rows))
    assert "'tags' in 2 of 4 rows, e.g. \"['d' 'b']\"" in caplog.text
