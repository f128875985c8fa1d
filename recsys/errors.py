"""`ConfigError`: the error of a malformed config, shared by every kind's
config module (so that `recsys.config` and the kinds' checks need not
import each other)."""


class ConfigError(ValueError):
    """A config file or override is malformed."""
