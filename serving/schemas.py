"""Request and response bodies of the retrieval API."""

import math
from typing import Annotated
from typing import Any

from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictBool
from pydantic import StrictInt
from pydantic import StrictStr
from pydantic import field_validator

from recsys.serving.errors import ValueAt


def _integral(value):
    # JSON Schema counts 10.0 as an integer, and so does this API: an id
    # or a count may come as a float without a fraction (never as a
    # string or a bool).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[StrictInt, BeforeValidator(_integral)]
# The bound goes inside the validator, so that the schema says `minimum`.
Count = Annotated[StrictInt, Field(ge=1), BeforeValidator(_integral)]
Id = StrictStr | Integer
# NaN compares false with either bound: without `allow_inf_nan` it was
# told it is above 1.
Fraction = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)
]


def _check_unicode(value, field, *keys):
    """Refuses a string holding a lone UTF-16 surrogate.

    JSON can spell one (`"\\ud800"`), but it is no character: UTF-8 (the
    vocabulary, hashing, the ranker's ids) cannot encode it, and no id of
    the training data holds one.

    Args:
        value: the value received (only a `str` is checked).
        field: str. The request field holding it.
        *keys: where in that field (feature names, list positions; None
            is skipped).
    """
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            where = field + "".join(f"[{k!r}]" for k in keys if k is not None)
            raise ValueAt(
                f"`{where}` must be valid Unicode: ids and feature values "
                "cannot hold a lone UTF-16 surrogate (\\ud800-\\udfff). "
                f"Received: {value!r:.100}. Fix: send the value as the "
                "training data spells it (in JSON escapes, a character past "
                "U+FFFF is a pair of surrogates, never one alone).",
                value,
                *keys,
            ) from None


def _non_null(name):
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


class RetrieveRequest(BaseModel):
    """One retrieval query: a user id, features, or both."""

    model_config = ConfigDict(
        extra="forbid",
        # Documents the check `RetrievalService.retrieve` makes.
        json_schema_extra={
            "anyOf": [_non_null("user_id"), _non_null("features")]
        },
    )

    user_id: Id | None = Field(
        None, description='User id as in the training data ("42" or 42).'
    )
    features: dict[str, Any] | None = Field(
        None,
        description=(
            "Query features by name (the bundle's query features, and "
            '"history": a list of item ids, most recent first, or in any '
            'order for a bundle trained with model.history = "profile"). '
            "Used instead of the stored user vector when given."
        ),
    )
    k: Count = Field(10, description="Number of items.")
    exclude: list[Id] = Field(
        default_factory=list, description="Item ids never to return."
    )
    exclude_seen: StrictBool = Field(
        True, description="Drop the items the user interacted with in training."
    )
    rerank: StrictBool = Field(
        False,
        description=(
            "Reorder `candidates` retrieved items with the server's ranker "
            "(`recsys serve --ranker`) and return its top `k`; needs "
            "`user_id`."
        ),
    )
    candidates: Count | None = Field(
        None,
        description=(
            "With `rerank`: items retrieved for the ranker, at most "
            "RECSYS_MAX_K; raised to `k` when smaller. Defaults to "
            "`max(100, k)`."
        ),
    )
    blend: Fraction | None = Field(
        None,
        description=(
            "With `rerank`: weight of the ranker's standardized score "
            "against retrieval's, in [0, 1]. Defaults to `1.0` (the "
            "ranker's order and scores), as `recsys recommend --blend` does."
        ),
    )

    @field_validator("user_id", "exclude")
    @classmethod
    def _unicode_ids(cls, value, info):
        if isinstance(value, list):
            for i, v in enumerate(value):
                _check_unicode(v, info.field_name, i)
        else:
            _check_unicode(value, info.field_name)
        return value

    @field_validator("features")
    @classmethod
    def _check_features(cls, features):
        # JSON parsing lets NaN, Infinity and 1e309 (inf) through; no
        # feature has a use for them, and hashing cannot spell them.
        for name, value in (features or {}).items():
            _check_unicode(name, "features")  # a feature name
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueAt(
                        f"`features[{name!r}]` must be a finite number or a "
                        "string: JSON's NaN, Infinity and numbers past "
                        f"1.8e308 are neither. Received: {v}",
                        v,
                        name,
                        i if values is value else None,
                    )
                _check_unicode(
                    v, "features", name, i if values is value else None
                )
        return features


class BatchRequest(BaseModel):
    """Several retrieval queries answered in one call."""

    model_config = ConfigDict(extra="forbid")

    queries: list[RetrieveRequest] = Field(min_length=1)


class ErrorDetail(BaseModel):
    """One problem of a refused request."""

    loc: list[str | int] = Field(
        description='Where: e.g. `["body", "k"]`; empty for the whole request.'
    )
    msg: str = Field(description="What is wrong, and the fix.")
    type: str = Field(description="Kind of error, e.g. `value_error`.")
    input: Any = Field(None, description="The value refused, if any.")
    ctx: dict[str, Any] | None = Field(
        None, description="The rule's parameters, if any."
    )


class Error(BaseModel):
    """Every error answer (4xx and 5xx) has this body."""

    detail: list[ErrorDetail]


class Item(BaseModel):
    id: str
    score: float


class RetrieveResponse(BaseModel):
    items: list[Item]
    bundle: str = Field(description="Version of the bundle that answered.")
    fallback: str | None = Field(
        None,
        description=(
            '"popular" when the user is unknown and no features were given, '
            "or none the query tower learnt from (a history of unknown items "
            "only, category values outside the vocabulary, empty values): "
            "the most popular items, scored by their share of training "
            "interactions."
        ),
    )
    reranked: bool = Field(
        False,
        description=(
            "True when the server's ranker ordered the items (`rerank`); "
            "`score` is then the ranker's score, or the blend."
        ),
    )


class BatchResponse(BaseModel):
    results: list[RetrieveResponse]
    bundle: str


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None,
        description=(
            "Bundle directory or pointer file under the server's bundle "
            "root (RECSYS_BUNDLE_ROOT). Defaults to the path the server "
            "was started with, read again."
        ),
    )


class ReloadResponse(BaseModel):
    bundle: str
    previous: str
    path: str


class ReloadStarted(BaseModel):
    """A reload of every worker, started (`recsys serve --workers N`)."""

    status: str = Field(description='"reloading".')
    bundle: str = Field(description="The bundle served until it is done.")
    path: str = Field(description="The bundle or pointer file read again.")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    bundle: str = Field(description="Version of the bundle being served.")
    ranker: str | None = Field(
        description="Version of the ranker (`--ranker`), or null."
    )
    ranker_kind: str | None = Field(
        default=None,
        description='What scores reranked candidates: "numpy" or "keras" '
        "(a model the numpy ranker does not implement); null without a "
        "ranker.",
    )
    query_tower: str = Field(
        description='What evaluates the query tower: "numpy" or "keras"; '
        '"loading" until it is loaded (queries with `features` wait for '
        'it), "failed" if it could not be (queries with `features` then '
        "get 503)."
    )
    top_items: str = Field(
        description='Known users\' precomputed top items: "ready", '
        '"building" (their queries search the index meanwhile) or "off".'
    )
