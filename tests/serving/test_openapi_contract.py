"""The OpenAPI document is true: schemathesis finds no contract violation.

A real `recsys serve` on loopback, fuzzed by `st run` (schemathesis) with
all of its default checks: status codes and error bodies as documented,
schema-valid requests accepted, schema-invalid ones refused, no 5xx.
`/admin` is left out (it needs a token and changes the served bundle).
"""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serving.server import running_server

ST = Path(sys.executable).with_name("st")


# With a ranker the document has every rule of the other; without it (20 s
# more) runs with `pytest -m slow`.
@pytest.mark.parametrize(
    "with_ranker", [pytest.param(False, marks=pytest.mark.slow), True]
)
def test_schemathesis_finds_no_contract_violation(
    trained_bundle, tmp_path, request, with_ranker
):
    bundle, _ = trained_bundle
    args = [bundle.path]
    if with_ranker:  # the rerank fields' rules differ with a ranker
        args += ["--ranker", request.getfixturevalue("ranker_bundle").path]
    with running_server(*args, log_path=tmp_path / "server.log") as url:
        document = httpx.get(f"{url}/openapi.json").json()
        assert "HTTPValidationError" not in str(document)
        metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]
        assert list(metrics["content"]) == ["text/plain"]
        done = subprocess.run(
            [
                str(ST),
                "run",
                f"{url}/openapi.json",
                "--exclude-path-regex",
                "^/admin",
                "--max-examples",
                "20",
                "--seed",
                "12",
                "--generation-database",
                "none",
                "--workers",
                "2",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
