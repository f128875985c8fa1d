"""Service settings, read from `RECSYS_*` environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings
from pydantic_settings import SettingsConfigDict


class Settings(BaseSettings):
    """Limits and security of the retrieval service.

    Every field can be set from the environment with the `RECSYS_` prefix,
    e.g. `RECSYS_MAX_K=500`.

    Attributes:
        max_k: int. Largest `k` a request may ask for. Defaults to `1000`.
        max_batch: int. Most queries in one batch request. Defaults to `256`.
        max_exclude: int. Most ids in one request's `exclude`. Defaults to
            `10000`.
        max_body_bytes: int. Largest request body. Defaults to 1 MiB.
        api_token: str or None. When set, `/admin/*` (and with `auth_all`,
            every endpoint) requires `Authorization: Bearer <token>`.
        auth_all: bool. Require the token everywhere. Defaults to `False`.
        watch_interval: float. Seconds between checks of a watched bundle.
        exact: bool. Answer with exact (brute-force) search instead of the
            bundle's index. Defaults to `False`.
        precompute_depth: int. Top items searched at load for each known
            user (`serving.top_items.TopItemsTable`); `0` turns the table
            off. Defaults to `100`.
        precompute_max_users: int. Users in that table, most active first.
            Defaults to `200_000` (160 MB at depth 100).
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_")

    max_k: int = 1000
    max_batch: int = 256
    max_exclude: int = 10_000
    max_body_bytes: int = 1 << 20
    api_token: str | None = None
    auth_all: bool = False
    watch_interval: float = 2.0
    exact: bool = False
    precompute_depth: int = Field(100, ge=0)
    precompute_max_users: int = Field(200_000, ge=0)

    def service_options(self):
        """The `RetrievalService` keyword arguments these settings give."""
        return {
            "exact": self.exact,
            "precompute_depth": self.precompute_depth,
            "precompute_max_users": self.precompute_max_users,
        }
