"""The GitHub workflows' structure: OIDC per job, one deploy per environment, no stored AWS keys,
pinned actions, SARIF to code scanning, and every ``kr-cfn`` call a real subcommand and option.

actionlint (in .ci/run) checks the syntax and the expressions; these tests check the rules.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.iterdir())
CONFIGURE_AWS = "aws-actions/configure-aws-credentials"
# What writes to AWS: these run only in a GitHub environment (reviewers, the deploy role).
WRITING_COMMANDS = ("apply", "migrate", "destroy", "cancel", "bootstrap")
_PINNED = re.compile(r"^\s*(?:-\s*)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s*v\d+(\.\d+)*\b")


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as True
        data["on"] = data.pop(True)
    return data


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(p.name, name, job) for p in FILES for name, job in _load(p)["jobs"].items()]


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def _scripts(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in _steps(job))


def _kr_cfn_calls(script: str) -> list[list[str]]:
    """Every ``kr-cfn ...`` command of a shell script (also inside ``$(...)``), as shell words."""
    calls: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():  # a newline ends a command
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        calls += _calls_in(list(lexer))
    return calls


def _calls_in(tokens: list[str]) -> list[list[str]]:
    calls: list[list[str]] = []
    current: list[str] | None = None
    for token in tokens:
        if "$(" in token:  # a command substitution inside quotes: one word here
            calls += _kr_cfn_calls(token[token.index("$(") + 2 : token.rindex(")")])
        if token and set(token) <= set(";&|()"):
            current = None
        elif current is not None:
            current.append(token)
        elif token == "kr-cfn" or token.endswith("/kr-cfn"):
            current = []
            calls.append(current)
    return calls


def test_there_are_workflows_and_all_are_yml() -> None:
    """.ci/run lints '.github/workflows/*.yml'; a .yaml file would be skipped silently."""
    assert {p.name for p in FILES} >= {"ci.yml", "deploy.yml"}
    assert all(p.suffix == ".yml" for p in FILES), FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_stored_aws_keys(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "aws-access-key-id"):
        assert key not in text, f"{path.name}: {key} (OIDC only)"
    assert "aws-secret-access-key" not in text


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_oidc_is_granted_per_job_never_workflow_wide(path: Path) -> None:
    data = _load(path)
    assert "permissions" in data, f"{path.name}: no workflow-wide permissions (the default token can write)"
    assert "id-token" not in (data["permissions"] or {}), f"{path.name}: id-token belongs on the jobs that need it"
    if len(data["jobs"]) > 1:
        assert data["permissions"] in ({"contents": "read"}, {}), f"{path.name}: more to a job, not to all"


@pytest.mark.parametrize(("file", "name", "job"), _jobs(), ids=lambda x: x if isinstance(x, str) else "")
def test_oidc_token_exactly_where_aws_is_used(file: str, name: str, job: dict[str, Any]) -> None:
    perms = job.get("permissions") or {}
    configures = _uses(job, CONFIGURE_AWS)
    if job.get("uses"):  # a called workflow: its own jobs are checked in its file
        return
    assert (perms.get("id-token") == "write") == bool(configures), f"{file}:{name}: id-token write <=> OIDC login"
    for step in configures:
        assert "role-to-assume" in (step.get("with") or {}), f"{file}:{name}: OIDC role, no keys"


@pytest.mark.parametrize(("file", "name", "job"), _jobs(), ids=lambda x: x if isinstance(x, str) else "")
def test_writing_jobs_run_in_an_environment_one_at_a_time(file: str, name: str, job: dict[str, Any]) -> None:
    writes = any(c and c[0] in WRITING_COMMANDS for c in _kr_cfn_calls(_scripts(job)))
    if not writes:
        return
    env = job.get("environment")
    assert env, f"{file}:{name}: runs {WRITING_COMMANDS} without a GitHub environment"
    env_name = env["name"] if isinstance(env, dict) else env
    concurrency = job.get("concurrency") or {}
    assert concurrency.get("cancel-in-progress") is False, f"{file}:{name}: a running deploy is never cancelled"
    group = str(concurrency.get("group", ""))
    # one per environment: the group names the same environment expression
    expression = re.search(r"\$\{\{\s*([^}]+?)\s*\}\}", str(env_name))
    assert (expression and expression.group(1) in group) or str(env_name) in group, (file, name, group)


def _subcommands() -> dict[str, set[str]]:
    from kr_cfn.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for a in p._actions for o in a.option_strings} for name, p in sub.choices.items()}


def test_every_kr_cfn_call_names_a_real_subcommand_and_option() -> None:
    known = _subcommands()
    calls = [(f, n, c) for f, n, job in _jobs() for c in _kr_cfn_calls(_scripts(job))]
    assert len(calls) >= 5
    for file, name, call in calls:
        assert call and call[0] in known, f"{file}:{name}: kr-cfn {' '.join(call)}: no such subcommand"
        for word in call[1:]:
            if word.startswith("--"):
                option = word.split("=", 1)[0]
                assert option in known[call[0]], f"{file}:{name}: kr-cfn {call[0]} has no option {option}"


def test_the_call_parser_sees_through_shell() -> None:
    script = (
        'b=$(.venv/bin/kr-cfn outputs --env dev --key X)\n.venv/bin/kr-cfn plan --env "$E" \\\n  --allow-replace Db'
    )
    assert _kr_cfn_calls(script) == [
        ["outputs", "--env", "dev", "--key", "X"],
        ["plan", "--env", "$E", "--allow-replace", "Db"],
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_by_commit_sha(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not re.match(r"^\s*(-\s*)?uses:", line):
            continue
        target = line.split("uses:", 1)[1].strip()
        if target.startswith(("./", "docker://")):
            continue
        assert _PINNED.match(line), f"{path.name}:{number}: {target} is not pinned by a commit SHA with its tag"


def test_lint_findings_go_to_code_scanning_as_sarif() -> None:
    ci = _load(WORKFLOWS / "ci.yml")
    [job] = [j for j in ci["jobs"].values() if _uses(j, "github/codeql-action/upload-sarif")]
    assert (job.get("permissions") or {}).get("security-events") == "write"
    uploads = {s["with"]["category"]: s["with"]["sarif_file"] for s in _uses(job, "github/codeql-action/upload-sarif")}
    assert set(uploads) == {"cfn-lint", "checkov"}
    # the job with the write token runs no repository code: the SARIF comes from the test job
    assert not _scripts(job).strip() and not _uses(job, "actions/checkout")
    scripts = _scripts(ci["jobs"][job["needs"]])
    assert "cfn-lint --format sarif" in scripts and "-o sarif" in scripts


def test_sarif_findings_move_to_the_sources_before_the_upload() -> None:
    """out/ is not in the repository: `kr-cfn sarif` rewrites the locations between the linters and the artifact."""
    ci = _load(WORKFLOWS / "ci.yml")
    [job] = [j for j in ci["jobs"].values() if _uses(j, "github/codeql-action/upload-sarif")]
    steps = _steps(ci["jobs"][job["needs"]])
    lint = next(i for i, s in enumerate(steps) if "cfn-lint --format sarif" in str(s.get("run", "")))
    [move] = [i for i, s in enumerate(steps) if any(c[:1] == ["sarif"] for c in _kr_cfn_calls(str(s.get("run", ""))))]
    keep = next(i for i, s in enumerate(_steps(ci["jobs"][job["needs"]])) if s.get("with", {}).get("name") == "sarif")
    assert lint < move < keep
    assert str(steps[move].get("if", "")).startswith("always()")  # findings are what a failing build needs most
    assert not _scripts(job).strip()  # the uploading job still runs no repository code


def test_deploy_can_be_called_with_an_image_tag() -> None:
    """The application repository triggers a deploy with the image it just pushed."""
    on = _load(WORKFLOWS / "deploy.yml")["on"]
    call = on["workflow_call"]
    assert call["inputs"]["image_tag"]["type"] == "string"
    assert "secrets" not in call or not call["secrets"]  # OIDC: nothing to pass


def test_deploy_runs_smoke_tests_and_migrations_through_kr_cfn() -> None:
    deploy = _load(WORKFLOWS / "deploy.yml")
    scripts = "\n".join(_scripts(j) for j in deploy["jobs"].values())
    commands = [c[0] for c in _kr_cfn_calls(scripts) if c]
    assert "smoke" in commands and "migrate" in commands
    assert "/api/healthz" not in scripts and "/api/chat" not in scripts  # no inline curl: kr-cfn smoke
    for job in deploy["jobs"].values():
        order = [c[0] for c in _kr_cfn_calls(_scripts(job)) if c and c[0] in ("migrate", "apply")]
        if "apply" in order and "migrate" in order:
            assert order.index("migrate") < order.index("apply"), "migrations run before the change set executes"
