"""`python -m recsys`: the `recsys` command line, without the console
script (`recsys.cli.main`)."""

import sys

from recsys.cli import main

if __name__ == "__main__":
    sys.exit(main())
