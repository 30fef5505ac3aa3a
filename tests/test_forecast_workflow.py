"""The forecast workflows keep their trust boundary (forks: no credentials; no PR code with a write token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOWS = Path(__file__).parent.parent / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


def test_forecast_runs_without_credentials() -> None:
    data = _load("forecast.yml")
    assert set(data["on"]) == {"pull_request"}
    assert data["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in data["jobs"].values())
    text = (WORKFLOWS / "forecast.yml").read_text()
    assert "secrets." not in text and "aws-actions/" not in text and "id-token" not in text
    checkouts = [s for s in _steps(data) if str(s.get("uses", "")).startswith("actions/checkout")]
    assert len(checkouts) == 2 and all(s["with"]["persist-credentials"] is False for s in checkouts)
    runs = " ".join(str(s.get("run", "")) for s in _steps(data))
    assert "kr-cfn diff --env ${{ matrix.env }} --compare-to out-base/${{ matrix.env }}" in runs
    assert "${{ github.event.pull_request" not in runs  # PR fields reach the shell only through env


def test_comment_workflow_runs_only_trusted_code() -> None:
    data = _load("forecast-comment.yml")
    assert set(data["on"]) == {"workflow_run"}
    assert data["on"]["workflow_run"]["workflows"] == ["forecast", "deploy"]
    assert data["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "write"}
    checkouts = [s for s in _steps(data) if str(s.get("uses", "")).startswith("actions/checkout")]
    assert checkouts and all("ref" not in s.get("with", {}) for s in checkouts)  # the default branch
    runs = " ".join(str(s.get("run", "")) for s in _steps(data))
    assert "${{ github.event.workflow_run" not in runs  # run fields reach the shell only through env
    assert "pulls/$pr" in runs and '[ "$pr_head" = "$HEAD_SHA" ]' in runs  # the artifact's PR is checked


def test_plan_job_keeps_the_review_the_comment_compares_with() -> None:
    data = _load("deploy.yml")
    uploads = [s for s in data["jobs"]["plan"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert any(
        s["with"]["name"] == "review-${{ matrix.env }}"
        and "out/${{ matrix.env }}.plan/review.json" in s["with"]["path"]
        for s in uploads
    )
    runs = " ".join(str(s.get("run", "")) for s in _steps(_load("forecast-comment.yml")))
    assert "pattern='review-*'" in runs and 'dest="$art/review"' in runs
    # the plan's review.md and review.json, read by trusted code (kr_cfn.changes.prcomment)
    assert 'kr_cfn.changes.prcomment "$env" "$dir" "$art/review/review-$env"' in runs
