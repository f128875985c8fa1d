"""`python -m recsys`: the `recsys` command line, without the console
script (`recsys.cli.run`)."""

from recsys.cli import run

if __name__ == "__main__":
    run()
