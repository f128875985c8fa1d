"""`-q` goes wherever `-v` goes, and the help says what `evaluate` prints."""

import pytest

from recsys.cli import build_parser
from recsys.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "train"],
        ["train", "-q"],
        ["-q", "evaluate", "b"],
        ["evaluate", "b", "-q"],
        ["index", "b", "--items", "f.csv", "-q"],
        ["init", "tabular", "--data", "t.csv", "-q"],
        ["serve", "b", "-q"],
        ["config-schema", "-q"],
        ["-q", "score", "b", "in.csv", "out.csv"],
    ],
)
def test_quiet_is_accepted_wherever_verbose_is(argv):
    # Before: "unrecognized arguments: -q" for `-q train`, evaluate, index.
    assert build_parser().parse_args(argv).quiet is True
    verbose = [a if a != "-q" else "-v" for a in argv]
    assert build_parser().parse_args(verbose).verbose == 1


def test_quiet_before_the_command_is_not_undone_by_it():
    args = build_parser().parse_args(["-q", "recommend", "b", "--user", "1"])
    assert args.quiet is True


def test_a_command_without_quiet_is_not_quiet(capsys):
    assert main(["config-schema", "tabular"]) == 0
    assert '"$schema"' in capsys.readouterr().out


def test_the_help_says_evaluate_prints_a_table(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    evaluate = help_text.split("evaluate ")[2].split(" recommend ")[0]
    assert "as a table (--json: one JSON document)" in evaluate
    assert "(JSON)" not in evaluate
