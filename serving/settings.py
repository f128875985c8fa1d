"""Service settings, read from `RECSYS_*` environment variables."""

import pydantic
from pydantic import Field
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import SettingsConfigDict

from recsys.index.base import SEARCH_DEPTH

ENV_PREFIX = "RECSYS_"

# Below this a watched bundle is polled so often that the polling itself
# takes a core (`RECSYS_WATCH_INTERVAL=0` spun one at 100%).
MIN_WATCH_INTERVAL = 0.1


class Settings(BaseSettings):
    """Limits and security of the retrieval service.

    Every field can be set from the environment with the `RECSYS_` prefix,
    e.g. `RECSYS_MAX_K=500`. Limits must be positive; a bad value fails at
    startup (`recsys serve` exits 1 naming the variable).

    Attributes:
        max_k: int. Largest `k` a request may ask for. Defaults to `1000`.
        max_batch: int. Most queries in one batch request. Defaults to `256`.
        max_exclude: int. Most ids in one request's `exclude`. Defaults to
            `10000`.
        max_body_bytes: int. Largest request body. Defaults to 1 MiB.
        max_header_bytes: int. Largest request line plus headers; a longer
            head gets 431 and the connection is closed. Defaults to 16 KiB.
        header_timeout: float. Seconds a client has to send a request's
            line and headers once the connection opens (or the request
            starts); then 408 and close. Defaults to `10`.
        body_timeout: float. Seconds a client has to send a request's body
            once its headers are in; then 408 and close. Defaults to `10`.
        api_token: str or None. `/admin/*` answers only with
            `Authorization: Bearer <token>`; without a token it answers 403
            to everyone (closed by default). With `auth_all`, every
            endpoint requires the token.
        auth_all: bool. Require the token everywhere. Defaults to `False`.
        bundle_root: str or None. `/admin/reload` loads only bundles under
            this directory (after resolving symlinks and `..`). Defaults to
            the directory holding the bundle or pointer file given at start.
        watch_interval: float. Seconds between checks of a watched bundle;
            at least 0.1. Defaults to `2.0`.
        exact: bool. Answer with exact (brute-force) search instead of the
            bundle's index. Defaults to `False`.
        precompute_depth: int. Top items searched at load for each known
            user (`recsys.serving.top_items.TopItemsTable`), at most 100
            (deeper rows could differ from what the index answers); `0`
            turns the table off. Defaults to `100`.
        precompute_max_users: int. Users in that table, most active first.
            Defaults to `200_000` (160 MB at depth 100).
        batch_window_ms: float. Most milliseconds a request that needs the
            query tower or an index search waits for concurrent ones, to
            share one tower call and one index search with them
            (`recsys.serving.batching.MicroBatcher`; a batch closes sooner
            when a turn of the event loop brings no one); `0` answers each
            alone. Defaults to `1.0`.
        batch_max_size: int. Requests that close such a batch before its
            window ends. Defaults to `64`.
        fast_tower: bool. Evaluate the query tower with numpy
            (`recsys.serving.fast_tower.NumpyTower`) where it implements
            every layer; `0` always calls the Keras tower. Defaults to
            `True`.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    max_k: int = Field(1000, ge=1)
    max_batch: int = Field(256, ge=1)
    max_exclude: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(1 << 20, ge=1)
    max_header_bytes: int = Field(16 << 10, ge=1024)
    header_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    body_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    api_token: str | None = None
    auth_all: bool = False
    bundle_root: str | None = None
    watch_interval: float = Field(
        2.0, ge=MIN_WATCH_INTERVAL, allow_inf_nan=False
    )
    exact: bool = False
    precompute_depth: int = Field(100, ge=0, le=SEARCH_DEPTH)
    precompute_max_users: int = Field(200_000, ge=0)
    batch_window_ms: float = Field(1.0, ge=0, le=1000, allow_inf_nan=False)
    batch_max_size: int = Field(64, ge=1)
    fast_tower: bool = True

    @model_validator(mode="after")
    def _auth_all_needs_a_token(self):
        if self.auth_all and not self.api_token:
            raise ValueError(
                "RECSYS_AUTH_ALL needs a token to check. Fix: set "
                "RECSYS_API_TOKEN too, or unset RECSYS_AUTH_ALL"
            )
        return self

    def service_options(self):
        """The `RetrievalService` keyword arguments these settings give."""
        return {
            "exact": self.exact,
            "precompute_depth": self.precompute_depth,
            "precompute_max_users": self.precompute_max_users,
            "batch_window": self.batch_window_ms / 1000,
            "batch_max_size": self.batch_max_size,
            "fast_tower": self.fast_tower,
        }


def load_settings(**overrides):
    """`Settings` from the environment, or one readable `ValueError`.

    Args:
        **overrides: field values that win over the environment.

    Returns:
        A validated `Settings`.

    Raises:
        ValueError: a setting is out of range or malformed. The message
            names each variable, what it must be and what it held, e.g.
            "RECSYS_MAX_BODY_BYTES: Input should be greater than or equal
            to 1. Received: RECSYS_MAX_BODY_BYTES=-1".
    """
    try:
        return Settings(**overrides)
    except pydantic.ValidationError as error:
        raise ValueError(settings_error_message(error)) from None


def settings_error_message(error):
    """One line naming every bad setting of a `Settings` ValidationError."""
    problems = []
    for item in error.errors(include_url=False):
        if not item["loc"]:  # a rule across fields says it all
            problems.append(item["msg"].removeprefix("Value error, "))
            continue
        field = str(item["loc"][0]) if item["loc"] else "?"
        name = ENV_PREFIX + field.upper()
        problems.append(
            f"{name}: {item['msg']}. Received: {name}={item.get('input')}"
        )
    return "; ".join(problems)
