"""`python -m recsys.serving BUNDLE`: the same as `recsys serve BUNDLE`."""

import sys

from recsys.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
