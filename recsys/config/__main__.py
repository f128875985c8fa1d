"""Writes every kind's config JSON Schema: `python -m recsys.config [DIR]`.

`DIR` defaults to `docs/config`; the files are `<kind>.schema.json`.
`tests/config/test_config.py` checks that the committed files are up to date.
"""

import argparse
import os
import sys

from recsys.config import CONFIG_MODELS
from recsys.config import schema_text


def main(argv: list[str] | None = None) -> int:
    """Writes `<kind>.schema.json` for every kind into a directory.

    Args:
        argv: list of str. At most one: the directory. Defaults to the
            command line.

    Returns:
        int. The exit status, 0.
    """
    parser = argparse.ArgumentParser(
        prog="python -m recsys.config",
        description="Writes every kind's config JSON Schema, "
        "<kind>.schema.json, into DIR.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=os.path.join("docs", "config"),
        metavar="DIR",
        help="Where to write them (default: docs/config).",
    )
    directory = parser.parse_args(argv).directory
    os.makedirs(directory, exist_ok=True)
    for kind in CONFIG_MODELS:
        path = os.path.join(directory, f"{kind}.schema.json")
        with open(path, "w") as f:
            f.write(schema_text(kind))
        sys.stdout.write(path + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
