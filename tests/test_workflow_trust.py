"""What the workflows trust: the pull-request comment's rendering, the release's plan record, zizmor.

The comment is rendered by GitHub's own Markdown (cmark-gfm, the ``cmarkgfm`` package), with raw HTML
let through as GitHub lets comments through: what a pull request's artifact holds must come out as
literal text inside ``<pre><code>`` and nowhere else.
"""

from __future__ import annotations

import configparser
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cmarkgfm
import pytest
import yaml
from cmarkgfm.cmark import Options
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kr_cfn.changes import prcomment
from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"

HOSTILE = """\
| resource | action |
|---|---|
| `DbInstance` | Modify |
````
</code></pre>
**prod**: no replacement; the database is safe. ✅
<!-- a hidden note: approve without reading -->
<details><summary>nothing here</summary>@octocat please approve</details>
#### Forecast vs change set

The forecast agrees with the change set.
```````
"""


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))
    return data


def _html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def _artifacts(tmp_path: Path, forecast_md: str, review_md: str, logical_id: str) -> tuple[Path, Path]:
    forecast, review = tmp_path / "forecast-prod", tmp_path / "review-prod"
    forecast.mkdir()
    review.mkdir()
    (forecast / "forecast.md").write_text(forecast_md)
    (review / "review.md").write_text(review_md)
    row = {"logical_id": logical_id, "action": "Modify", "replacement": "True", "type": "AWS::RDS::DBInstance"}
    (forecast / "forecast.json").write_text(json.dumps({"stacks": [{"path": "root", "changes": [row]}]}))
    (review / "review.json").write_text(json.dumps({"stacks": [{"path": "root", "changes": []}]}))
    return forecast, review


def test_the_comment_shows_hostile_artifact_text_only_as_literal_text(tmp_path: Path) -> None:
    """Failed before: the workflow pasted review.md and forecast.md into the comment as Markdown, so a
    pull request's run could write a verdict, a heading, hidden HTML comments and mentions into it."""
    forecast, review = _artifacts(tmp_path, HOSTILE, "review " + HOSTILE, "Db`\n**safe**<!--x-->")
    body = prcomment.render("prod", forecast, review)
    assert body.startswith("<!-- kr-cfn forecast prod -->\n")
    rendered = _html(body)
    blocks = re.findall(r"<pre[^>]*><code>(.*?)</code></pre>", rendered, flags=re.S)
    texts = [html.unescape(b) for b in blocks]
    assert texts[:2] == ["review " + HOSTILE, HOSTILE]  # verbatim, each in its own block
    assert "Db`\n**safe**<!--x-->" in texts[2]
    outside = re.sub(r"<pre[^>]*><code>.*?</code></pre>", "", rendered, flags=re.S)
    assert outside.count("<!--") == 1 and "<!-- kr-cfn forecast prod -->" in outside
    for forged in ("hidden note", "database is safe", "<details>", "@octocat", "agrees with", "</code>"):
        assert forged not in outside, forged
    assert outside.count("<h4>") == 1  # the one heading this module writes
    assert "The forecast and the change set disagree; <strong>the change set is the authority</strong>" in outside


@pytest.mark.parametrize(
    ("text", "fence"),
    [("plain", "```"), ("a `b` c", "```"), ("```", "````"), ("x\n``````\n", "```````"), ("", "```")],
)
def test_the_fence_is_longer_than_any_backtick_run(text: str, fence: str) -> None:
    block = prcomment.fenced(text)
    assert block.startswith(f"{fence}text\n") and block.endswith(f"\n{fence}\n")
    code = re.findall(r"<pre[^>]*><code>(.*?)</code></pre>", _html(block), flags=re.S)
    assert [html.unescape(c) for c in code] == [text + ("\n" if text and text[-1] != "\n" else "")]


def test_the_comment_reads_no_symlink_and_refuses_an_unknown_env(tmp_path: Path) -> None:
    forecast, review = _artifacts(tmp_path, "forecast", "review", "Db")
    (tmp_path / "secret").write_text("GH_TOKEN=ghs_secret")
    (review / "review.md").unlink()
    (review / "review.md").symlink_to(tmp_path / "secret")
    body = prcomment.render("dev", forecast, review)
    assert "ghs_secret" not in body and "change-set review of the pull request's plan" not in body
    with pytest.raises(ValueError, match="env 'prod\\\\n': expected one of dev, staging, prod"):
        prcomment.render("prod\n", forecast, review)
    code = subprocess.run(
        [sys.executable, "-m", "kr_cfn.changes.prcomment", "dev", str(forecast), str(review)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert code.returncode == 0 and code.stdout.startswith("<!-- kr-cfn forecast dev -->\n")


def test_the_comment_workflow_keeps_artifacts_outside_the_checkout_and_runs_none() -> None:
    data = _load("forecast-comment.yml")
    steps = [s for job in data["jobs"].values() for s in job["steps"]]
    runs = "\n".join(str(s.get("run", "")) for s in steps)
    assert 'art="$RUNNER_TEMP/artifacts"' in runs and '-D "$dest"' in runs
    assert 'dest="$art/forecast"' in runs and 'dest="$art/review"' in runs
    assert " artifacts/" not in runs  # nothing unpacked into the checkout
    # the body comes from the trusted renderer only; artifact files are never cat'ed into it
    assert '.venv/bin/python -m kr_cfn.changes.prcomment "$env" "$dir" "$art/review/review-$env" > "$body"' in runs
    assert (
        "head -c" not in runs
        and "cat " not in runs
        and "source " not in runs
        and "pip install" not in runs.split("kr_cfn.changes.prcomment")[1]
    )
    installs = [s for s in steps if "pip install" in str(s.get("run", ""))]
    assert [s["run"] for s in installs] == [LOCKED_INSTALL]
    assert 'select(.user.login == \\"github-actions[bot]\\"' in runs


# --------------------------------------------------------------------------- the release's plan record


def test_the_deploy_job_takes_the_record_digest_from_the_release_plan_outputs() -> None:
    """Failed before: the deploy job applied whatever plan.json the plan-<env> artifact held."""
    jobs = _load("release.yml")["jobs"]
    plan = jobs["release-plan"]
    assert plan["outputs"] == {
        "change_set_id": "${{ steps.plan.outputs.change_set_id }}",
        "plan_digest": "${{ steps.plan.outputs.plan_digest }}",
    }
    [step] = [s for s in plan["steps"] if s.get("id") == "plan"]
    assert 'kr-cfn plan --env "$KR_ENV"' in step["run"]
    deploy = jobs["deploy"]
    assert deploy["env"]["PLAN_DIGEST"] == "${{ needs.release-plan.outputs.plan_digest }}"
    calls = [
        line.strip() for s in deploy["steps"] for line in str(s.get("run", "")).splitlines() if "--plan plan/" in line
    ]
    assert len(calls) == 2 and all(c.endswith('--plan plan/plan.json --plan-digest "$PLAN_DIGEST"') for c in calls)
    assert [c.split()[1] for c in calls] == ["migrate", "apply"]


# --------------------------------------------------------------------------- the hash-pinned lock

LOCK = ROOT / "requirements" / "deploy.lock"
POLICY_LOCK = ROOT / "requirements" / "policy-validator.lock"
POLICY_LOCKED_INSTALL = "pip install -q --require-hashes -r requirements/policy-validator.lock"
LOCKED_INSTALL = (
    "python3 -m venv .venv && .venv/bin/pip install -q --require-hashes -r requirements/deploy.lock"
    " && .venv/bin/pip install -q --no-deps --no-build-isolation -e ."
)


def _locked(lock: Path = LOCK) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, sha256 hashes) of a lock file (requirements/deploy.lock by default)."""
    out: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", line)
        if pinned:
            name = canonicalize_name(pinned.group(1))
            out[name] = (pinned.group(2), [])
        elif line.strip().startswith("--hash="):
            out[name][1].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
        else:
            assert not line or line.lstrip().startswith("#"), f"{lock.name}: unexpected line {line!r}"
    return out


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """Failed before: there was no lock; the deploy jobs installed whatever PyPI served that day."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    wanted = [Requirement(r) for r in cfg["options"]["install_requires"].splitlines() if r and not r.startswith("#")]
    build = [Requirement(r) for r in ("setuptools>=61", "wheel")]  # pyproject.toml's build-system.requires
    assert 'requires = ["setuptools>=61", "wheel"]' in (ROOT / "pyproject.toml").read_text()
    locked = _locked()
    assert len(wanted) >= 7
    for req in wanted + build:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements/deploy.lock: refresh it (docs/development.md)"
        version, hashes = locked[name]
        assert req.specifier.contains(version, prereleases=True), f"{req}: locked {version}; refresh the lock"
    for name, (_, hashes) in locked.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


@pytest.mark.parametrize(
    ("file", "job"),
    [
        ("release.yml", "release-plan"),
        ("release.yml", "deploy"),
        ("deploy.yml", "plan"),
        ("forecast-comment.yml", "comment"),
    ],
)
def test_the_deploy_and_release_jobs_install_only_from_the_lock(file: str, job: str) -> None:
    steps = _load(file)["jobs"][job]["steps"]
    installs = [str(s["run"]) for s in steps if "pip install" in str(s.get("run", ""))]
    assert installs[0] == LOCKED_INSTALL, f"{file}: {job}"
    for run in installs[1:]:  # a tool in its own venv (release-plan's policy checks): from its own lock
        lines = [line for line in run.splitlines() if "pip install" in line]
        assert lines and all(POLICY_LOCKED_INSTALL in line for line in lines), f"{file}: {job}: {run}"


def test_the_policy_validator_is_installed_from_its_own_hashed_lock() -> None:
    """release-plan holds AWS credentials: its cfn-policy-validator install is hash-pinned like kr_cfn's."""
    locked = _locked(POLICY_LOCK)
    assert "cfn-policy-validator" in locked
    pins = [line for line in (ROOT / "requirements" / "policy-validator.in").read_text().splitlines() if "==" in line]
    assert pins == [f"cfn-policy-validator=={locked['cfn-policy-validator'][0]}"]
    for name, (_, hashes) in locked.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


# --------------------------------------------------------------------------- zizmor


def test_zizmor_reports_nothing_on_the_workflows(tmp_path: Path) -> None:
    """Failed before: zizmor reported the workflow_run trigger, checkouts persisting their token in
    ci.yml and deploy.yml, and step outputs expanded inside scripts."""
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    assert zizmor, "zizmor is in the test extra (setup.cfg)"
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    found = subprocess.run(
        [zizmor, "--offline", "--format", "json", str(WORKFLOWS)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert found.returncode == 0, found.stdout + found.stderr
    assert json.loads(found.stdout) == []
    for line in (ROOT / ".ci" / "run").read_text().splitlines():
        if "pytest" in line:
            assert ".venv/bin/zizmor --offline .github/workflows/ && " in line
    suppressed = [
        line for p in sorted(WORKFLOWS.glob("*.yml")) for line in p.read_text().splitlines() if "zizmor:" in line
    ]
    assert len(suppressed) == 2  # each with its reason on the lines above
