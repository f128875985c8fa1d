"""`recsys` command line: train, tune, evaluate, recommend, score, predict,
serve, synth, init, index and config-schema.

Each command is a thin layer over the Python API. Errors in the input (a bad
config key, a missing column, a missing bundle) print one clear line and exit
with status 1.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys

# What `recsys train` trains when given no config: one of the example
# configs shipped inside the package (`recsys.configs`), so the command
# works from a wheel install, outside the repository.
DEFAULT_CONFIG = "movielens_two_tower.toml"


def _config_path(config: str | None = None) -> str:
    """The file `recsys train [CONFIG]` reads: `config_file`, and no config
    at all is `DEFAULT_CONFIG`."""
    from recsys.config.paths import config_file

    return config_file(DEFAULT_CONFIG if config is None else config)


def _sigterm_as_exit():
    """SIGTERM (a scheduler's stop) and SIGINT (Ctrl-C) raise `SystemExit`
    while the block runs, so its cleanup (temporary directories, the lock)
    runs too; during a Keras fit, at the next batch's end
    (`recsys.training.interrupt.deferred`): Ctrl-C's `KeyboardInterrupt`,
    raised inside JAX's dispatch, was swallowed there and the fit ran on."""
    from recsys.training import interrupt

    return interrupt.deferred((signal.SIGTERM, signal.SIGINT))


# Keras backends, each named as the module it needs.
_BACKENDS = ("jax", "tensorflow", "torch", "openvino", "numpy")


def _check_backend(command):
    """Refuses a `KERAS_BACKEND` this command cannot run on, in one line
    (Keras' import of a missing backend is a 40-line traceback; its numpy
    backend has no gradients, and failed only once the data was read)."""
    import importlib.util

    if command in ("init", "config-schema", "synth"):
        return  # no model: Keras is never imported
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if backend and backend not in _BACKENDS:
        # Keras' own line, "Unable to import backend : bogus", says neither.
        raise ValueError(
            f"KERAS_BACKEND={backend} is not a Keras backend (one of "
            f"{', '.join(_BACKENDS)}). Fix: unset KERAS_BACKEND (recsys runs "
            "on JAX)."
        )
    if backend in _BACKENDS and importlib.util.find_spec(backend) is None:
        raise ValueError(
            f"KERAS_BACKEND={backend} needs {backend}, which is not "
            "installed. Fix: unset KERAS_BACKEND (recsys runs on JAX), or "
            f"install {backend}."
        )
    if backend in ("numpy", "openvino") and command in ("train", "tune"):
        raise ValueError(
            f"KERAS_BACKEND={backend} cannot train (Keras' {backend} "
            "backend runs models, it does not fit them). Fix: unset "
            "KERAS_BACKEND (recsys trains on JAX) or set it to tensorflow."
        )


def cmd_train(args):
    from recsys.config import load_config
    from recsys.kinds import get_kind
    from recsys.training.checkpoint import training_job

    config_path = _config_path(args.config)
    config = load_config(config_path, args.set)
    stem = os.path.splitext(os.path.basename(config_path))[0]
    output = args.output or os.path.join("artifacts", stem)
    kind = get_kind(config["model"]["kind"])
    # Output, job directory and lock are settled before any data is read.
    # stdout holds the results alone (the table, or the --json document):
    # whatever training prints (Keras's epoch lines) goes to stderr.
    with (
        training_job(config, output, restart=args.restart),
        contextlib.redirect_stdout(sys.stderr),
    ):
        bundle, metrics = kind.train(config, output, progress=not args.quiet)
    if args.json:
        _print_json({"bundle": bundle.path, "metrics": metrics})
        return 0
    # The bundle's config: what training filled in (a task "auto").
    print("\n" + kind.summary(metrics, bundle.config))
    print(
        f"bundle: {bundle.path}\n"
        f"metrics: {os.path.join(bundle.path, 'metrics.json')}"
    )
    return 0


def cmd_tune(args):
    from recsys.config import load_config
    from recsys.tune import tune

    config_path = _config_path(args.config)
    config = load_config(config_path, args.set)
    stem = os.path.splitext(os.path.basename(config_path))[0]
    output = args.output or os.path.join("artifacts", f"{stem}_tune")
    if args.trials < 1:
        raise ValueError(
            f"--trials must be at least 1. Received: {args.trials}"
        )
    with contextlib.redirect_stdout(sys.stderr):
        result = tune(
            config,
            output,
            trials=args.trials,
            time_budget=args.time_budget,
            metric=args.metric,
            progress=not args.quiet,
        )
    document = {
        "metric": result.metric,
        "best_params": result.best_params,
        "validation": result.best_value,
        "kept_config": result.kept_config,
        # The test split's metrics (`.test.test` was metrics.json whole);
        # null where `data.split = "none"` leaves no test rows.
        "test": result.test_metrics.get("test"),
        "metrics": result.test_metrics,
        "best_config": os.path.join(output, "best.toml"),
        "bundle": result.bundle.path,
    }
    if args.json:
        _print_json(document)
        return 0
    from recsys.kinds import get_kind

    print(result.trials.to_string(index=False))
    print("\n" + tune_choice(result))
    print(
        "\n"
        + get_kind(config["model"]["kind"]).summary(
            result.test_metrics, result.config
        )
    )
    print(f"config: {document['best_config']}\nbundle: {result.bundle.path}")
    return 0


def tune_choice(result):
    """The line `recsys tune` prints under its trials: the chosen settings
    and their validation value; where the config's own were kept over a
    better trial, that trial's value too (`recsys.tune.TuneResult`)."""
    from recsys.evaluation.tasks import LOWER_IS_BETTER
    from recsys.tune import unread

    # As trials.csv blanks them: settings the others leave unread (an
    # MLP's cross layers) are not choices.
    blank = unread(result.best_params, result.config)
    settings = ", ".join(
        f"{k} = {v}" for k, v in result.best_params.items() if k not in blank
    )
    values = result.trials["value"].dropna()
    top = values.min() if result.metric in LOWER_IS_BETTER else values.max()
    if result.kept_config and top != result.best_value:
        # Another trial scored better, by less than chance would (`_margin`).
        return (
            f"kept the config's own settings (validation {result.metric} "
            f"{result.best_value:.4f}; the best trial's {top:.4f} is within "
            f"the margin a trial must win by): {settings}"
        )
    return (
        f"best validation {result.metric}: {result.best_value:.4f} with "
        f"{settings}"
    )


def _read_table(path, option):
    """The table a command's option names; a missing file said as such
    (not as `data.source`, whose message `load_interactions` gives)."""
    from recsys.data.sources import load_interactions

    _check_table_exists(path, option)
    return load_interactions(path)


def _check_table_exists(path, option, builtin=False):
    """Raises `FileNotFoundError` for a missing table, named by `option`;
    `builtin`: the built-in sources' names are tables too."""
    from recsys.data.sources import BUILTIN_SOURCES
    from recsys.data.sources import SUPPORTED_FORMS

    if os.path.exists(path) or (builtin and path in BUILTIN_SOURCES):
        return
    also = f", or one of {sorted(BUILTIN_SOURCES)}" if builtin else ""
    raise FileNotFoundError(
        f"{option} {path!r}: no such file or directory. Fix: the path of "
        f"a table ({SUPPORTED_FORMS}){also}."
    )


def cmd_evaluate(args):
    from recsys.bundles import load_bundle
    from recsys.kinds import get_kind

    bundle = load_bundle(args.bundle)
    kind = get_kind(bundle.manifest.get("kind", "two_tower"))
    frame = None if args.data is None else _read_table(args.data, "--data")
    try:
        if args.json:
            _print_json(
                kind.evaluate_document(
                    bundle, frame=frame, rescore=args.rescore
                )
            )
            return 0
        print(kind.evaluate_report(bundle, frame=frame, rescore=args.rescore))
    except FileNotFoundError as error:
        if frame is not None:
            raise
        # The table the bundle was trained on has moved since.
        raise FileNotFoundError(
            f"{error} Fix: pass the table with --data FILE."
        ) from None
    return 0


def cmd_recommend(args):
    from recsys.bundles.two_tower import Bundle

    batch = args.all or args.users is not None
    if batch and args.user is not None:
        raise ValueError(
            "--user asks for one user's items and --all / --users for a "
            "batch written to a file: give one of them."
        )
    if not batch and args.user is None:
        raise ValueError(
            "Give --user USER, or --all (every user; --users FILE for a "
            "list) with --output FILE.parquet."
        )
    _check_recommend_options(args, batch)
    if batch:
        return _recommend_batch(args)
    bundle = Bundle.load(args.bundle)
    user = args.user
    recommender = bundle
    if args.rerank:
        from recsys.bundles import load_bundle
        from recsys.two_stage import TwoStageRecommender

        recommender = TwoStageRecommender(
            bundle,
            load_bundle(args.rerank),
            num_candidates=args.candidates,
            blend=args.blend,
        )
    ids, scores = recommender.recommend(
        [user], k=args.k, exclude_seen=not args.include_seen, exact=args.exact
    )
    display = bundle.config["data"].get("display")
    item = bundle.config["data"]["item"]
    titles = {}
    if display and display in bundle.items:
        titles = dict(
            zip(
                bundle.items[item].tolist(),
                bundle.items[display].tolist(),
                strict=True,
            )
        )
    import numpy as np

    known = bool(bundle.user_rows([user])[0] >= 0)
    finite = np.isfinite(scores[0])  # -inf pads a short list
    ids, scores = ids[0][finite], scores[0][finite]
    if args.json:
        _print_json(
            {
                "user": user,
                "known": known,
                "items": ids.tolist(),
                "scores": scores.tolist(),
            }
        )
        return 0
    if not known:
        shown = (
            f"the {args.candidates} most popular items, reranked by "
            f"{args.rerank}"
            if args.rerank
            else "the most popular items (score = share of training "
            "interactions)"
        )
        # Notes on stderr: stdout holds the table alone, for a script.
        print(
            f"user {user!r} is not in this bundle: showing {shown}.",
            file=sys.stderr,
        )
        plain = str(user).lstrip("0")
        if (
            bundle.user_ids.dtype.kind in "iu"
            and plain != str(user)
            and plain
            and bundle.user_rows([plain])[0] >= 0
        ):
            # `02` for the id 2 of a bundle whose ids are numbers.
            print(
                f"(user {plain!r} is: the ids are numbers here.)",
                file=sys.stderr,
            )
        elif bundle.user_ids.dtype.kind in "iu" and not re.fullmatch(
            r"[+-]?\d+(\.0*)?", str(user).strip()
        ):
            # A --users file refuses such a line; one --user is answered
            # as the service answers it, and the reason said.
            print(
                f"(its user ids are integers ({bundle.user_ids.dtype}): "
                f"{user!r} can be none of them.)",
                file=sys.stderr,
            )
    if len(ids) < min(args.k, len(bundle.item_ids)):
        left = f"all but {len(ids):,} of" if len(ids) else "every one of"
        print(
            f"user {user!r} has seen {left} the {len(bundle.item_ids):,} "
            "items (--include-seen ranks them all).",
            file=sys.stderr,
        )
    # As wide as the longest id shown ("1. FC Kaiserslautern"), at least 10.
    width = max([10, len(str(item)), *(len(str(i)) for i in ids)])
    print(f"{'rank':>4}  {item:>{width}}  {'score':>8}  {display or ''}")
    for rank, (item_id, score) in enumerate(zip(ids, scores, strict=True), 1):
        title = titles.get(item_id, "")
        print(f"{rank:>4}  {item_id!s:>{width}}  {score:>8.4f}  {title}")
    return 0


def _check_recommend_options(args, batch):
    """Refuses `recsys recommend`'s options by their flags, before the
    bundle loads: the library's messages name its arguments (`k`,
    `num_candidates`), and an option that does nothing here (--blend
    without --rerank) was ignored without a word."""
    from recsys.two_stage import DEFAULT_BLEND
    from recsys.two_stage import DEFAULT_NUM_CANDIDATES

    if args.k < 1:
        raise ValueError(f"-k must be a positive integer. Received: {args.k}")
    given = [
        flag
        for flag, value in (
            ("--candidates", args.candidates),
            ("--blend", args.blend),
        )
        if value is not None
    ]
    if given and not args.rerank:
        raise ValueError(
            f"{' and '.join(given)} set how --rerank reranks; without "
            "--rerank RANKER_BUNDLE they do nothing. Fix: add --rerank, or "
            "leave them out."
        )
    if args.output is not None and not batch:
        raise ValueError(
            "--output is the file --all (or --users) writes; with --user the "
            "list is printed (--json for a script). Fix: leave --output out, "
            "or use --all --output FILE.parquet."
        )
    if args.candidates is None:
        args.candidates = DEFAULT_NUM_CANDIDATES
    if args.blend is None:
        args.blend = DEFAULT_BLEND
    if args.candidates < 1:
        raise ValueError(
            "--candidates must be a positive integer. Received: "
            f"{args.candidates}"
        )
    if not 0.0 <= args.blend <= 1.0:
        raise ValueError(
            f"--blend must be a number in [0, 1]. Received: {args.blend}"
        )


def _recommend_batch(args):
    """`recsys recommend --all`: every user's top k into a Parquet file."""
    from recsys.batch import read_users
    from recsys.batch import recommend_all
    from recsys.bundles.two_tower import Bundle

    if args.output is None:
        raise ValueError("--all needs --output FILE.parquet.")
    if args.rerank:
        raise ValueError(
            "--rerank works with --user only: --all writes retrieval's top k."
        )
    if args.users is not None:
        from recsys.data.sources import same_file

        if same_file(args.output, args.users):
            raise ValueError(
                f"--output {args.output} is the --users file: writing it "
                "would replace your list. Fix: write to another file, e.g. "
                "recommendations.parquet."
            )
    bundle = Bundle.load(args.bundle)
    users = None
    if args.users is not None:
        users = read_users(
            args.users, bundle.config["data"]["user"], like=bundle.user_ids
        )
    done = recommend_all(
        bundle,
        args.output,
        k=args.k,
        users=users,
        exact=args.exact,
        exclude_seen=not args.include_seen,
        progress=not args.quiet,
    )
    if args.json:
        _print_json(done)
        return 0
    unknown = done["users"] - done["known_users"]
    print(
        f"wrote {done['rows']:,} recommendations for {done['users']:,} users "
        f"to {args.output} ({done['users_per_second']:,.0f} users/s)"
        + (
            f"; {unknown:,} unknown user{'' if unknown == 1 else 's'} got "
            "the most popular items"
            if unknown
            else ""
        )
    )
    return 0


def _print_json(document) -> None:
    """Prints one JSON document on stdout: numpy values as Python's, and
    NaN or infinity as null (an AUC of a test split of one class was a
    bare `NaN`, which strict parsers refuse; the warning says why)."""

    def plain(value):
        if hasattr(value, "tolist"):  # numpy scalars and arrays
            value = value.tolist()
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    print(json.dumps(plain(document), indent=2, allow_nan=False))


def cmd_init(args):
    from recsys.data.sources import check_output_file
    from recsys.data.sources import make_output_folder
    from recsys.init_config import PLACEHOLDER
    from recsys.init_config import init_config
    from recsys.storage.atomic_write import write_text_atomically

    if args.force and not args.output:
        raise ValueError(
            "--force replaces the --output file; without --output the config "
            "is printed. Fix: add --output FILE, or leave --force out."
        )
    if args.output:
        # Before the table is read: --force replaces a config, never the
        # table itself, and a config the user has only with --force.
        name = os.path.basename(args.data).split(".")[0] or "config"
        check_output_file(args.output, args.data, f"{name}.toml")
        if os.path.lexists(args.output) and not args.force:
            raise ValueError(
                f"{args.output} exists, and recsys init does not replace a "
                "config. Fix: add --force to replace it, or write another "
                "file with --output."
            )
    _check_table_exists(args.data, "--data", builtin=True)
    source = args.data
    if args.output and not os.path.isabs(source):
        # A relative data.source is read from the config file's directory.
        where = os.path.dirname(os.path.abspath(args.output))
        source = os.path.relpath(os.path.abspath(source), where)
    roles = ("user", "item", "time", "label", "text")
    columns = {role: getattr(args, role) for role in roles}
    text = init_config(args.kind, args.data, source=source, columns=columns)
    if not args.output:
        sys.stdout.write(text)
        return 0
    # Made once the table is read (a missing table left empty folders);
    # whole or not at all: a kill mid-write leaves no half a config.
    make_output_folder(args.output)
    write_text_atomically(args.output, text)
    print(
        f"wrote {args.output}: check its guessed lines, then "
        f"`recsys train {args.output}`"
    )
    # What is left to do goes to stderr, beside warnings: a script keeps
    # stdout's one line.
    placeholders = re.findall(
        rf'^(\w+) = "{PLACEHOLDER}"', text, flags=re.MULTILINE
    )
    if "time_format" in placeholders:
        print(
            "could not read the dates of the time column: set time_format "
            "in the file (its comment quotes a value)",
            file=sys.stderr,
        )
    unguessed = [key for key in placeholders if key in roles]
    if unguessed:
        options = " ".join(f"--{role} COLUMN" for role in unguessed)
        print(
            f"could not guess {', '.join(unguessed)}: set "
            f"{'it' if len(unguessed) == 1 else 'them'} in the file, or rerun "
            f"with {options}",
            file=sys.stderr,
        )
    return 0


def cmd_config_schema(args):
    from recsys.config import schema_text

    sys.stdout.write(schema_text(args.kind))
    return 0


def cmd_synth(args):
    from recsys.data.synthetic import SyntheticInteractions

    data = SyntheticInteractions(
        num_users=args.users,
        num_items=args.items,
        num_interactions=args.interactions,
        num_clusters=args.clusters,
        seed=args.seed,
    )
    try:
        files = data.write(args.output_dir, progress=not args.quiet)
    except FileExistsError as error:
        raise ValueError(str(error)) from None
    print(
        f"wrote {args.interactions:,} interactions in {len(files)} Parquet "
        f"file{'s' * (len(files) != 1)} to {args.output_dir}"
    )
    return 0


def cmd_score(args):
    from recsys.bundles import load_bundle
    from recsys.bundles.two_tower import Bundle
    from recsys.scoring import score_file

    paths = {}
    for name in ("input", "output"):
        given = {getattr(args, name), getattr(args, f"{name}_option")} - {None}
        if len(given) != 1:
            raise ValueError(
                f"Give the {name} file once: recsys score BUNDLE INPUT OUTPUT "
                f"(or --input INPUT --output OUTPUT). Received: "
                f"{sorted(given) or 'none'}."
            )
        paths[name] = given.pop()
    bundle = load_bundle(args.bundle)
    if isinstance(bundle, Bundle):
        # Not the library's "A Bundle cannot score rows": the class name.
        raise ValueError(
            f"{args.bundle} is a 'two_tower' bundle; recsys score reads "
            "tabular and text bundles (a row's score). Fix: recsys recommend "
            f"{args.bundle} --user USER, or --all --output FILE.parquet for "
            "every user."
        )
    rows = score_file(
        bundle,
        paths["input"],
        paths["output"],
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    # A binary task of a text label writes one `score`: whose probability.
    classes = list(getattr(bundle, "classes", None) or [])
    which = f" (score = p({classes[1]!r}))" if len(classes) == 2 else ""
    print(f"scored {rows:,} rows into {paths['output']}{which}")
    return 0


def _check_text_bundle(path):
    """Raises `ValueError` naming the command that reads a bundle of
    another kind than text (`recsys predict` reads texts)."""
    from recsys.bundles.two_tower import read_manifest

    kind = read_manifest(path).get("kind", "two_tower")
    command = {
        "tabular": f"recsys score {path} IN OUT (a table's rows)",
        "two_tower": f"recsys recommend {path} --user USER",
    }
    if kind in command:
        raise ValueError(
            f"{path} is a {kind!r} bundle; recsys predict reads text "
            f"bundles. Fix: {command[kind]}."
        )


def cmd_predict(args):
    from recsys.bundles.text import TextBundle

    if (args.text is None) == (args.input is None):
        raise ValueError(
            "Give --text TEXT (repeatable) or --input FILE"
            + (", not both." if args.text is not None else ".")
        )
    blank = [n for n, text in enumerate(args.text or [], 1) if not text.strip()]
    if blank:
        # Not the bundle's "text column ... rows [0]": the user typed no
        # column and no row.
        alone = len(args.text) == 1
        raise ValueError(
            ("--text" if alone else f"--text number {blank[0]}")
            + f" is empty ({args.text[blank[0] - 1]!r}): there is no text to "
            "classify. Fix: "
            + (
                "pass the text, quoted (--text 'great fries')."
                if alone
                else "give that --text its text, or leave it out."
            )
        )
    if args.text is not None and args.output is not None:
        raise ValueError(
            "--output is the file --input's rows are classified into; "
            "--text's classes are printed. Fix: leave --output out, or put "
            "the texts in a file for --input."
        )
    _check_text_bundle(args.bundle)
    bundle = TextBundle.load(args.bundle)
    if args.input is not None:
        from recsys.scoring import score_file

        if args.output is None:
            raise ValueError("--input needs --output (a .parquet or .csv).")
        rows = score_file(
            bundle,
            args.input,
            args.output,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
        # Rows, not texts: a row without a text is written unscored.
        classes = list(bundle.classes)
        # Two classes write one `score` column: say whose probability it is.
        which = f" (score = p({classes[1]!r}))" if len(classes) == 2 else ""
        print(f"classified {rows:,} rows into {args.output}{which}")
        return 0
    probabilities = bundle.predict_proba(args.text)
    labels = bundle.predict_labels(args.text)
    names = [f"p({c})" for c in bundle.classes]
    # Columns as wide as their longest name: "p(2003-2004)" is 12 wide.
    widths = [max(10, len(n)) + 2 for n in names]
    first = max(12, *(len(str(c)) + 2 for c in bundle.classes))
    header = "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))
    print(f"{'label':<{first}}{header}  text")
    for text, label, row in zip(args.text, labels, probabilities, strict=True):
        shown = text if len(text) <= 60 else text[:57] + "..."
        cells = "".join(
            f"{p:>{w}.4f}" for p, w in zip(row, widths, strict=True)
        )
        print(f"{label!s:<{first}}{cells}  {shown}")
    return 0


def cmd_index(args):
    """`recsys index`: new items embedded into a bundle, no retraining."""
    from recsys.bundles.two_tower import Bundle
    from recsys.storage.atomic_write import check_output

    bundle = Bundle.load(args.bundle)
    if args.output:
        # Before the embedding and the index's tuning, not after them.
        check_output(args.output, "two_tower")
    updated = bundle.add_items(_read_table(args.items, "--items"))
    path = updated.save(args.output or args.bundle)
    note = updated.manifest["item_updates"][-1]
    done = {
        "bundle": path,
        "version": updated.version,
        "new": note["new"],
        "updated": note["updated"],
        "num_items": note["num_items"],
    }
    if args.json:
        _print_json(done)
        return 0
    items = "item" if done["new"] == 1 else "items"
    print(
        f"added {done['new']:,} new {items} and updated {done['updated']:,}; "
        f"catalog now {done['num_items']:,} items. Wrote {path} "
        f"(version {done['version']})"
    )
    return 0


def cmd_serve(args):
    from recsys.bundles.two_tower import BundleError
    from recsys.serving.server import serve

    try:
        return serve(
            args.bundle,
            host=args.host,
            port=args.port,
            ranker=args.ranker,
            watch=args.watch,
            log_level=args.log_level,
            workers=args.workers,
        )
    except BundleError as error:
        # The error alone says what the bundle is not, not how to use it.
        kind = _bundle_kind(args.bundle)
        if kind == "tabular":
            raise BundleError(
                f"{error} Fix: a tabular bundle is served as the ranker of a "
                "two-tower bundle's candidates: recsys serve TWO_TOWER_BUNDLE "
                f"--ranker {args.bundle} (or scored in batch: recsys score "
                f"{args.bundle} IN OUT)"
            ) from None
        if kind == "text":
            raise BundleError(
                f"{error} Fix: a text bundle classifies texts with recsys "
                f"predict {args.bundle} --text TEXT (or --input FILE), or in "
                "Python with recsys.load_bundle(PATH).predict_proba(texts)."
            ) from None
        raise


def _bundle_kind(path):
    """The `kind` in the manifest of the bundle at `path` (a directory or
    a pointer file), or None where none can be read."""
    from recsys.bundles.two_tower import BundleError
    from recsys.bundles.two_tower import read_manifest
    from recsys.serving.bundle_paths import resolve_bundle_path

    try:
        return read_manifest(resolve_bundle_path(path)).get("kind")
    except (BundleError, OSError, ValueError):
        return None


def build_parser():
    from recsys import __version__
    from recsys.two_stage import DEFAULT_BLEND
    from recsys.two_stage import DEFAULT_NUM_CANDIDATES

    # `-v` before or after the command: `recsys -v train ...` or
    # `recsys train ... -vv`.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="More messages: -v adds debug output (ScaNN's and TensorFlow's "
        "native logs among them).",
    )
    # `-q` wherever `-v` goes: `recsys -q train ...` or `recsys index ...
    # -q`. Absent unless given, as `-v` is: a command's default would undo
    # the `-q` given before it (`main` reads it as False).
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Only warnings and errors: no progress bars, no INFO messages.",
    )
    # A config and its overrides: what `train` and `tune` read.
    configured = argparse.ArgumentParser(add_help=False)
    configured.add_argument(
        "config", nargs="?", help=f"TOML config (default: {DEFAULT_CONFIG})."
    )
    configured.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set train.epochs=3 (repeatable).",
    )
    parser = argparse.ArgumentParser(
        prog="recsys",
        description="Train, evaluate and query embedding retrieval models.",
        parents=[verbose, quiet],
    )
    parser.add_argument(
        "--version", action="version", version=f"recsys {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        parents=[verbose, quiet, configured],
        help="Train a model from a TOML config and write its bundle.",
    )
    train.add_argument(
        "--output",
        "-o",
        help="Bundle directory (default: artifacts/<config name>).",
    )
    train.add_argument(
        "--restart",
        action="store_true",
        help="Discard the job's checkpoints (<output>.job or train.job_dir, "
        "if recsys created it) and train from the start instead of "
        "resuming.",
    )
    train.add_argument(
        "--json",
        action="store_true",
        help='Print {"bundle": PATH, "metrics": {...}} as JSON on stdout '
        "instead of the table (training's own output goes to stderr).",
    )
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        parents=[verbose, quiet],
        help="Print a bundle's test metrics as a table (--json: one JSON "
        "document). Two-tower bundles: HR@k recomputed on the config's data "
        "split. Tabular and text bundles: the metrics stored at training "
        "beside the baselines (--rescore to recompute them).",
    )
    evaluate.add_argument("bundle", help="Bundle directory.")
    evaluate.add_argument(
        "--rescore",
        action="store_true",
        help="Run the split through the loaded bundle again (two-tower "
        "bundles always are) and exit 1 unless it reproduces metrics.json.",
    )
    evaluate.add_argument(
        "--data",
        metavar="SOURCE",
        help="The table to evaluate on instead of the config's data.source "
        "(a .csv, .parquet or built-in name): the one the bundle was "
        "trained on.",
    )
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="Print one JSON document: two-tower bundles' recomputed "
        'metrics; other kinds\' {"bundle", "metrics"} (stored), plus '
        '"rescored" with --rescore.',
    )
    evaluate.set_defaults(run=cmd_evaluate)

    recommend = commands.add_parser(
        "recommend",
        parents=[verbose, quiet],
        help="Print the top-k items for a user, or write every user's "
        "(--all) to a Parquet file.",
        description="Top-k items of a two-tower bundle. --user prints one "
        "user's; --all writes every user's (or --users FILE's) as rows "
        "(<data.user>, rank, <data.item>, score) to --output, in chunks "
        "through the index, atomically. Users the bundle has never seen "
        "get the most popular items (score = share of training "
        "interactions).",
    )
    recommend.add_argument("bundle", help="Bundle directory.")
    recommend.add_argument("--user", help="User id.")
    recommend.add_argument(
        "--all",
        action="store_true",
        help="Every user the bundle was trained on, into --output.",
    )
    recommend.add_argument(
        "--users",
        metavar="FILE",
        help="With --all: only these users. A text or CSV file with one id "
        "per line (a header line is skipped), or a CSV/Parquet table with a "
        "column named as the bundle's data.user. Unknown users get the most "
        "popular items; a line that cannot be an id of the bundle is refused "
        "with its line number; a repeated id is recommended once.",
    )
    recommend.add_argument(
        "--output",
        "-o",
        metavar="FILE.parquet",
        help="With --all: the Parquet file to write (replaced atomically).",
    )
    recommend.add_argument(
        "-k", type=int, default=10, help="Number of items (default 10)."
    )
    recommend.add_argument(
        "--include-seen",
        action="store_true",
        help="Keep the user's training items.",
    )
    recommend.add_argument(
        "--exact",
        action="store_true",
        help="Exact search instead of the index.",
    )
    recommend.add_argument(
        "--rerank",
        "--ranker",  # `recsys serve`'s name for the same bundle
        metavar="RANKER_BUNDLE",
        help="Rerank the retrieved candidates with this tabular bundle.",
    )
    recommend.add_argument(
        "--candidates",
        type=int,
        help="Candidates retrieved for --rerank "
        f"(default {DEFAULT_NUM_CANDIDATES}).",
    )
    recommend.add_argument(
        "--blend",
        type=float,
        help="Weight of the ranker's score against retrieval's, in [0, 1] "
        f"(default {DEFAULT_BLEND:g}: the ranker's order).",
    )
    recommend.add_argument(
        "--json",
        action="store_true",
        help='Print JSON: {"user", "known", "items", "scores"} for --user; '
        "the counts and timing for --all.",
    )
    recommend.set_defaults(run=cmd_recommend)

    score = commands.add_parser(
        "score",
        parents=[verbose, quiet],
        help="Score every row of a table (CSV, TSV, JSON, JSONL, Parquet) "
        "with a tabular bundle.",
    )
    score.add_argument("bundle", help="Tabular bundle directory.")
    score.add_argument(
        "input",
        nargs="?",
        help="Input table (CSV, TSV, JSON, JSONL, Parquet), read as training "
        "reads its data.",
    )
    score.add_argument(
        "output",
        nargs="?",
        help="Output .parquet or .csv: the input plus scores (missing "
        "folders are made).",
    )
    # The options `recsys predict` takes, for the same files.
    score.add_argument(
        "--input",
        dest="input_option",
        metavar="INPUT",
        help="The input, as an option (instead of the argument).",
    )
    score.add_argument(
        "--output",
        "-o",
        dest="output_option",
        metavar="OUTPUT",
        help="The output, as an option (instead of the argument).",
    )
    score.add_argument(
        "--batch-size",
        type=int,
        default=65536,
        help="Rows per chunk (bounds memory; default 65536).",
    )
    score.set_defaults(run=cmd_score)

    predict = commands.add_parser(
        "predict",
        parents=[verbose, quiet],
        help="Classify texts with a text bundle (--text or --input).",
    )
    predict.add_argument("bundle", help="Text bundle directory.")
    predict.add_argument(
        "--text",
        action="append",
        help="A text to classify (repeatable); prints label and probabilities.",
    )
    predict.add_argument(
        "--input",
        help="A table (CSV, TSV, JSON, JSONL, Parquet) with the bundle's text "
        "column, read as training reads its data. Rows without a text are "
        "kept, their scores left empty (a warning counts them).",
    )
    predict.add_argument(
        "--output",
        "-o",
        help="With --input: .parquet or .csv to write, the input plus "
        "`score` (positive-class probability) or one prob_<class> column "
        "per class and `predicted`, the most probable class.",
    )
    predict.add_argument(
        "--batch-size",
        type=int,
        default=65536,
        help="Rows per chunk of --input (default 65536).",
    )
    predict.set_defaults(run=cmd_predict)

    serve = commands.add_parser(
        "serve",
        parents=[verbose, quiet],
        help="Serve a bundle over HTTP (FastAPI + uvicorn).",
        description="Serve a two-tower bundle over HTTP (FastAPI + uvicorn). "
        'With --ranker, requests with "rerank": true retrieve `candidates` '
        "items (default max(100, k)) and return the ranker's top k.",
    )
    serve.add_argument("bundle", help="Bundle directory or pointer file.")
    serve.add_argument(
        "--ranker",
        metavar="RANKER_BUNDLE",
        help='Tabular bundle (binary or regression) that reorders "rerank": '
        "true requests' candidates. Loaded once: --watch and /admin/reload "
        "swap the retrieval bundle and keep this ranker.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="Address (default loopback)."
    )
    serve.add_argument(
        "--port",
        type=int,
        default=8000,
        help="Port (default 8000; 0: a free one, named in the banner).",
    )
    serve.add_argument(
        "--watch",
        action="store_true",
        help="Reload when the bundle directory or pointer file changes.",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="Worker processes answering on the port (default 1). The "
        "bundle is loaded once and shared by the workers (forked after the "
        "load, copy-on-write), as is the numpy query tower (converted once, "
        "in shared memory); each worker builds its own top-items table in "
        "the background. A worker that dies is restarted. /admin/reload "
        "without a path, SIGHUP to the server or, with --watch, a new "
        "bundle loads it again (with N > 1, replacing every worker).",
    )
    # Checked by `serve` against uvicorn's own list, before the load.
    serve.add_argument(
        "--log-level", default="info", help="uvicorn log level (default info)."
    )
    serve.set_defaults(run=cmd_serve)

    synth = commands.add_parser(
        "synth",
        parents=[verbose, quiet],
        help="Write synthetic Zipf interactions with latent clusters as "
        "Parquet shards (streamed by configs/synthetic_two_tower.toml).",
    )
    synth.add_argument("output_dir", help="New directory for the shards.")
    for flag, default, text in (
        ("--users", 500_000, "Distinct users"),
        ("--items", 200_000, "Distinct items"),
        ("--interactions", 10_000_000, "Rows"),
        ("--clusters", 50, "Latent user/item clusters"),
        ("--seed", 0, "Random seed; the same arguments write the same files"),
    ):
        synth.add_argument(
            flag, type=int, default=default, help=f"{text} (default {default})."
        )
    synth.set_defaults(run=cmd_synth)

    schema = commands.add_parser(
        "config-schema",
        parents=[verbose, quiet],
        help="Print the JSON Schema of a model kind's config: every key, "
        "its type, default and meaning.",
    )
    schema.add_argument(
        "kind",
        nargs="?",
        default="two_tower",
        help="The model.kind (default two_tower).",
    )
    schema.set_defaults(run=cmd_config_schema)

    init = commands.add_parser(
        "init",
        parents=[verbose, quiet],
        help="Write a starting config for a model kind from a table's "
        "columns (ids, time, label or text guessed, each guess commented).",
    )
    init.add_argument(
        "kind", choices=("two_tower", "tabular", "text"), help="The model.kind."
    )
    init.add_argument(
        "--data",
        required=True,
        help="The table (CSV, TSV, JSON, JSONL, Parquet).",
    )
    init.add_argument(
        "--output",
        "-o",
        help="The config file to write (default: print it). An existing "
        "file is not replaced without --force.",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="Replace the --output file if it exists.",
    )
    for role, what in (
        ("user", "the user id"),
        ("item", "the item id"),
        ("time", "the time"),
        ("label", "the label"),
        ("text", "the text"),
    ):
        init.add_argument(
            f"--{role}",
            metavar="COLUMN",
            help=f"The column of {what}, where the guess is wrong or missing.",
        )
    init.set_defaults(run=cmd_init)

    index = commands.add_parser(
        "index",
        parents=[verbose, quiet],
        help="Add or update items in a two-tower bundle from their "
        "features, without retraining.",
        description="Embed the items of FILE (one row per item: the item "
        "id and the bundle's candidate features, e.g. movieId, genres, "
        "year) with the bundle's candidate tower, add new ids to the "
        "catalog (popularity 0), re-embed ids already in it, rebuild the "
        "index and write the bundle atomically: in place (a `recsys serve "
        "--watch` of it reloads) or to --output.",
    )
    index.add_argument("bundle", help="Two-tower bundle directory.")
    index.add_argument(
        "--items",
        required=True,
        metavar="FILE",
        help=(
            "The items (CSV, TSV, JSON, JSONL, Parquet), read like training "
            "data."
        ),
    )
    index.add_argument(
        "--output",
        "-o",
        help="Write the new bundle here (default: replace BUNDLE).",
    )
    index.add_argument(
        "--json",
        action="store_true",
        help="Print what was done as one JSON document.",
    )
    index.set_defaults(run=cmd_index)

    tune = commands.add_parser(
        "tune",
        parents=[verbose, quiet, configured],
        help="Search a config's settings on the validation carve, then "
        "train the best on the training split and score the test split.",
        description="Each trial trains the config with evaluate.split = "
        '"validation" (never a test row); the best settings are written to '
        "OUTPUT/best.toml, every trial to OUTPUT/trials.csv, and the best "
        "config is trained into OUTPUT/bundle. A killed run resumes from "
        "OUTPUT/study.db; one of another config, metric or table is "
        "refused. Two-tower trials are scored after each epoch and "
        "stopped early when clearly below earlier trials there (the lower "
        "quartile in a trial's first half of epochs, the median after).",
    )
    tune.add_argument(
        "--output",
        "-o",
        help="Study directory (default: artifacts/<config name>_tune).",
    )
    tune.add_argument(
        "--trials",
        type=int,
        default=20,
        help="Trials in all, counting finished ones (default: 20).",
    )
    tune.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="Start no trial after this many seconds, and stop a running "
        "trial at its next epoch once another has finished (it runs again "
        "on the next run where it was your config's or a probe; default: "
        "no limit).",
    )
    tune.add_argument(
        "--metric",
        help="Validation metric to optimize, e.g. hr@10_filtered (default: "
        "filtered HR at the largest of evaluate.ks up to a tenth of the "
        "catalog, unfiltered where a fifth of the rows repeat a (user, item) "
        "pair; AUC, RMSE or log loss by kind and task).",
    )
    tune.add_argument(
        "--json",
        action="store_true",
        help="Print the best settings, validation value and test metrics as "
        "JSON.",
    )
    tune.set_defaults(run=cmd_tune)
    return parser


def run():
    """The `recsys` console script: `main`, then an exit that skips the
    interpreter's teardown.

    Arrow's thread pool (Parquet reads) sometimes aborts a finished
    process in that teardown, "terminate called without an active
    exception" and status 134 after correct output (apache/arrow#34314):
    a batch job would take a good run for a crash. Nothing recsys leaves
    to the teardown needs it (no atexit handler; files are closed where
    written), so the output is flushed and the process ends with `main`'s
    status.
    """
    try:
        code = main()
    except SystemExit as stop:  # SIGTERM: the cleanup has run on the way
        code = stop.code if isinstance(stop.code, int) else int(bool(stop.code))
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`recsys ... | head`)
        code = code or 1
    logging.shutdown()
    os._exit(code or 0)


def main(argv=None):
    """Entry point of the `recsys` console script (`run` calls it; tests and
    notebooks call it directly)."""
    # Keras's backend defaults to JAX in `recsys/__init__.py`, for the CLI
    # and the Python API alike.
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("output", "output_option", "output_dir"):
        if getattr(args, name, None) == "":
            # An unset shell variable (`-o "$OUT"`): `recsys train` wrote
            # to artifacts/<config> instead, and said nothing.
            parser.error(
                f"the {name.replace('_option', '').replace('_', ' ')} path "
                "is empty (an unset shell variable?). Fix: name a path, or "
                "leave the option out for its default."
            )
    args.quiet = getattr(args, "quiet", False)  # absent unless given
    from recsys.logs import configure_logging

    # Before anything loads TensorFlow: this also sets its C++ log level.
    verbosity = getattr(args, "verbose", 0) - args.quiet
    configure_logging(verbosity)
    from recsys.bundles.two_tower import BundleError
    from recsys.config import ConfigError

    # Every command but serve (uvicorn and the supervisor handle their own
    # signals) stops on SIGTERM or Ctrl-C through its cleanup: temporary
    # files of `score`, `recommend --all` and `index` were left behind.
    stops = (
        contextlib.nullcontext()
        if args.command == "serve"
        else _sigterm_as_exit()
    )
    try:
        _check_backend(args.command)
        with stops:
            return args.run(args)
    except SystemExit as stop:
        # Said: a tabular training or `recommend --all` stopped by Ctrl-C
        # exited 130 without a word, as if it had finished.
        stops_said = {130: "Ctrl-C", 143: "SIGTERM"}
        why = stops_said.get(stop.code) if isinstance(stop.code, int) else None
        if why:
            print(f"recsys {args.command}: stopped ({why}).", file=sys.stderr)
        raise
    except BrokenPipeError:
        # The reader left (`recsys evaluate --json | head`): as a Unix
        # tool does, stop quietly; stdout now points at nothing, so that
        # Python's own flush at exit does not fail on it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports such a stop
    except (ConfigError, BundleError, OSError, KeyError, ValueError) as error:
        print(
            f"recsys {args.command}: error: {error_message(error)}",
            file=sys.stderr,
        )
        return 1
    except Exception as error:
        allocation = out_of_memory(error)
        if allocation is None:
            raise
        fix = (
            "lower --users, --items or --interactions"
            if args.command == "synth"
            else "lower the sizes the config sets (model.embedding_dim, "
            "hidden_units, num_cross_layers, history_length, a text "
            "feature's sequence_length) or train.batch_size"
        )
        print(
            f"recsys {args.command}: error: out of memory ({allocation}). "
            f"Fix: {fix}.",
            file=sys.stderr,
        )
        return 1


def out_of_memory(error):
    """What failed to allocate, if `error` is an out-of-memory error.

    Python's `MemoryError` (numpy), and the backends' runtime errors
    (JAX's `Out of memory allocating N bytes`, TensorFlow's
    `RESOURCE_EXHAUSTED`), whose text repeats a dispatch line per frame.

    Returns:
        str or None. The allocation's description, or None for another
        error.
    """
    if isinstance(error, MemoryError):
        return str(error) or "MemoryError"
    found = re.search(
        r"(Out of memory[^.:\n]*|RESOURCE_EXHAUSTED:[^.\n]*)", str(error)
    )
    return found.group(1).strip() if found else None


def error_message(error):
    """The one line the CLI prints for an input error.

    `str()` of the built-in errors is not that line: an `OSError` made by
    the system reads `[Errno 2] ...` (and its first argument is the number),
    a `UnicodeDecodeError`'s (or `UnicodeEncodeError`'s) first argument is
    the codec's name, and a
    `KeyError` quotes its key.

    Args:
        error: the exception.

    Returns:
        str. One line.
    """
    if isinstance(error, UnicodeDecodeError):
        return (
            f"the input is not {error.encoding} text (byte {error.start}: "
            f"{error.reason}). Fix: save the file as UTF-8."
        )
    if isinstance(error, UnicodeEncodeError):
        # An argument holding bytes that are not UTF-8 (Python keeps them
        # as lone surrogates), met where the text is encoded.
        return (
            f"{error.object[error.start : error.end]!r} in "
            f"{error.object[:40]!r} is not valid text ({error.reason}). Fix: "
            "pass UTF-8 text."
        )
    if isinstance(error, OSError) and error.strerror:
        names = [n for n in (error.filename, error.filename2) if n]
        where = " -> ".join(str(n) for n in names)
        return f"{error.strerror}: {where}" if where else error.strerror
    if isinstance(error, KeyError) and len(error.args) == 1:
        key = error.args[0]
        if isinstance(key, str) and " " in key:
            return key  # already a sentence
        return f"missing key {key!r}"
    message = error.args[0] if error.args else ""
    return str(message) if message != "" else type(error).__name__


if __name__ == "__main__":
    run()
