"""checkov on every emitted template of every environment: zero failed checks.

checkov lives in its own virtualenv (it pins an old boto3): ``$KR_CFN_CHECKOV`` or
``.venv-checkov/bin/checkov``. Without either the test is skipped, except under CI
(``$CI`` set), where a missing checkov is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kr_cfn.cli import main
from tests.conftest import ENVS, PARAMS, ROOT


def _checkov() -> Path | None:
    candidate = os.environ.get("KR_CFN_CHECKOV")
    path = Path(candidate) if candidate else ROOT / ".venv-checkov" / "bin" / "checkov"
    return path if path.is_file() and os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def checkov() -> Path:
    path = _checkov()
    if path is None:
        message = "checkov not found: set KR_CFN_CHECKOV or create .venv-checkov (see README)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checkov-out")
    assert main(["build", "--params", str(PARAMS), "--out", str(out), "--no-lint"]) == 0
    return out


def _failures(env: str, report: Any) -> list[str]:
    reports = report if isinstance(report, list) else [report]
    return [
        f"{env}{c['file_path']}:{c['file_line_range'][0]}: {c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]


@pytest.mark.parametrize("env", ENVS)
def test_checkov_reports_no_failed_checks(env: str, checkov: Path, out: Path) -> None:
    proc = subprocess.run(
        [str(checkov), "-d", str(out / env), "--framework", "cloudformation", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    failures = _failures(env, report)
    assert not failures, "checkov failed checks:\n" + "\n".join(failures)
    summary = (report if isinstance(report, list) else [report])[0]["summary"]
    assert summary["parsing_errors"] == 0, proc.stdout
    assert summary["passed"] > 0 and summary["failed"] == 0


def test_ci_runs_the_readme_test_command_with_checkov() -> None:
    """The README's test command (.ci/test, which .ci/run runs) installs checkov and points the tests at it."""
    assert "```sh\nbash .ci/test\n```" in (ROOT / "README.md").read_text()
    lines = (ROOT / ".ci" / "test").read_text().splitlines()
    install, export = (
        lines.index(".venv-checkov/bin/pip install -q checkov==3.3.30"),
        lines.index('export KR_CFN_CHECKOV="$PWD/.venv-checkov/bin/checkov"'),
    )
    assert install < export < next(i for i, line in enumerate(lines) if "pytest" in line)
