"""Request and response bodies of the retrieval API."""

from typing import Annotated
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StrictBool
from pydantic import StrictInt
from pydantic import StrictStr

Id = StrictStr | StrictInt
Fraction = Annotated[float, Field(strict=True, ge=0.0, le=1.0)]


class RetrieveRequest(BaseModel):
    """One retrieval query: a user id, features, or both."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = Field(
        None, description='User id as in the training data ("42" or 42).'
    )
    features: dict[str, Any] | None = Field(
        None,
        description=(
            "Query features by name (the bundle's query features, and "
            '"history": a list of item ids, most recent first). Used '
            "instead of the stored user vector when given."
        ),
    )
    k: StrictInt = Field(10, ge=1, description="Number of items.")
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
    candidates: StrictInt | None = Field(
        None,
        ge=1,
        description=(
            "With `rerank`: items retrieved for the ranker, at least `k` "
            "and at most RECSYS_MAX_K. Defaults to `max(100, k)`."
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


class BatchRequest(BaseModel):
    """Several retrieval queries answered in one call."""

    model_config = ConfigDict(extra="forbid")

    queries: list[RetrieveRequest] = Field(min_length=1)


class Item(BaseModel):
    id: str
    score: float


class RetrieveResponse(BaseModel):
    items: list[Item]
    bundle: str = Field(description="Version of the bundle that answered.")
    fallback: str | None = Field(
        None,
        description=(
            '"popular" when the user is unknown and no features were given: '
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
        None, description="Bundle directory; defaults to the one being served."
    )


class ReloadResponse(BaseModel):
    bundle: str
    previous: str
    path: str
