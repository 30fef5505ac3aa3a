"""Callers: an application repository runs this repository's release workflow (``workflow_call``).

The trust statements ``bootstrap.callers`` adds to the release-plan and deploy roles are evaluated
offline (tests/policy_eval.py) against the OIDC claims a job would present: in a called workflow
``sub``, ``repository``, ``ref`` and ``environment`` are the caller's, ``job_workflow_ref`` names the
called workflow at the ref it was called at (https://docs.github.com/en/actions/reference/security/oidc).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from stacks import bootstrap
from tests.conftest import ENVS, built, load_env, write_params
from tests.policy_eval import Decision, Request, evaluate

HOST = "token.actions.githubusercontent.com"
OWN = "knowledgerouter/kr_cfn"
APP = "acme/knowledgerouter-app"
OWN_WF, APP_WF = f"{OWN}/.github/workflows", f"{APP}/.github/workflows"
RELEASE_AT_MAIN = f"{OWN_WF}/release.yml@refs/heads/main"
DENIED = Decision(False, "implicitly denied: no identity policy allows sts:AssumeRoleWithWebIdentity on *")


def _with_callers(env: str, *callers: dict[str, str]) -> dict[str, Any]:
    cfg = load_env(env)
    boot = config.BootstrapConfig.model_validate({**cfg.bootstrap.model_dump(), "callers": list(callers)})
    assert boot.check() == []
    return stacks.build_all(cfg.model_copy(update={"bootstrap": boot}))["bootstrap"].to_dict()


def _trust(template: dict[str, Any], role: str) -> dict[str, Any]:
    return template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]


def _claims(
    repository: str = APP,
    ref: str = "refs/heads/main",
    workflow_ref: str | None = RELEASE_AT_MAIN,
    environment: str | None = None,
) -> dict[str, str]:
    """The claims of a job's OIDC token (GitHub's default subject template: environment or ref)."""
    sub = f"repo:{repository}:" + (f"environment:{environment}" if environment else f"ref:{ref}")
    claims = {
        f"{HOST}:aud": "sts.amazonaws.com",
        f"{HOST}:sub": sub,
        f"{HOST}:repository": repository,
        f"{HOST}:ref": ref,
    }
    if workflow_ref is not None:  # GitHub always sends it; absent here to show it is required
        claims[f"{HOST}:job_workflow_ref"] = workflow_ref
    if environment is not None:
        claims[f"{HOST}:environment"] = environment
    return claims


def _decide(trust: dict[str, Any], claims: dict[str, str]) -> Decision:
    return evaluate(Request("sts:AssumeRoleWithWebIdentity", "*", claims), {"trust": trust})


@pytest.fixture(scope="module", params=ENVS)
def env_template(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, _with_callers(request.param, {"repository": APP, "branch": "main"})


def test_a_callers_release_jobs_may_plan_and_deploy(env_template: tuple[str, dict[str, Any]]) -> None:
    """Failed before: the roles trusted only this repository's subject, so a call from the
    application repository could not assume them."""
    env, t = env_template
    release, deploy = _trust(t, bootstrap.RELEASE_PLAN_ROLE), _trust(t, bootstrap.DEPLOY_ROLE)
    assert _decide(release, _claims()) == Decision(True, "allowed by Caller1ReleaseWorkflow (trust)")
    assert _decide(deploy, _claims(environment=env)) == Decision(True, "allowed by Caller1ReleaseWorkflow (trust)")


@pytest.mark.parametrize(
    ("attack", "claims"),
    [
        ("another repository", _claims(repository="acme/other-app")),
        ("a repository whose name extends the caller's", _claims(repository=f"{APP}-fork")),
        ("the caller's pull request", _claims(ref="refs/pull/1/merge")),
        ("the caller's feature branch", _claims(ref="refs/heads/feature")),
        ("a tag of the caller", _claims(ref="refs/tags/main")),
        ("another workflow of this repository", _claims(workflow_ref=f"{OWN_WF}/deploy.yml@refs/heads/main")),
        ("release.yml of another branch here", _claims(workflow_ref=f"{OWN_WF}/release.yml@refs/heads/attacker")),
        ("release.yml pinned to an unreviewed commit", _claims(workflow_ref=f"{OWN_WF}/release.yml@{'a' * 40}")),
        ("the caller's own workflow", _claims(workflow_ref=f"{APP_WF}/deploy.yml@refs/heads/main")),
        ("a copy of release.yml in another repository", _claims(workflow_ref=f"{APP_WF}/release.yml@refs/heads/main")),
        ("a token without job_workflow_ref", _claims(workflow_ref=None)),
    ],
)  # fmt: skip
def test_nothing_else_may_use_the_caller_trust(
    env_template: tuple[str, dict[str, Any]], attack: str, claims: dict[str, str]
) -> None:
    env, t = env_template
    assert _decide(_trust(t, bootstrap.RELEASE_PLAN_ROLE), claims) == DENIED, attack
    deploying = {**claims, f"{HOST}:environment": env, f"{HOST}:sub": claims[f"{HOST}:sub"]}
    assert _decide(_trust(t, bootstrap.DEPLOY_ROLE), deploying) == DENIED, attack


def test_the_deploy_role_needs_the_callers_environment_of_its_own_env(
    env_template: tuple[str, dict[str, Any]],
) -> None:
    env, t = env_template
    deploy = _trust(t, bootstrap.DEPLOY_ROLE)
    other = next(e for e in ("dev", "staging", "prod") if e != env)
    assert _decide(deploy, _claims(environment=other)) == DENIED
    assert _decide(deploy, _claims()) == DENIED  # the release-plan job: no environment, no reviewers


def test_the_plan_role_gets_no_caller_statement(env_template: tuple[str, dict[str, Any]]) -> None:
    env, t = env_template
    plan = _trust(t, bootstrap.PLAN_ROLE)
    assert plan == _trust(built(env)["bootstrap"], bootstrap.PLAN_ROLE)
    for claims in (_claims(), _claims(environment=env), _claims(ref="refs/pull/1/merge")):
        assert _decide(plan, claims) == DENIED


def test_the_own_statements_stay_as_they_are(env_template: tuple[str, dict[str, Any]]) -> None:
    env, t = env_template
    for role in (bootstrap.RELEASE_PLAN_ROLE, bootstrap.DEPLOY_ROLE):
        before = _trust(built(env)["bootstrap"], role)["Statement"]
        after = _trust(t, role)["Statement"]
        assert len(before) == 1 and after[:1] == before and len(after) == 2
        assert after[1]["Principal"] == before[0]["Principal"]


def test_the_statement_names_every_claim_it_relies_on(env_template: tuple[str, dict[str, Any]]) -> None:
    """Exactly the GitHub claims AWS STS validates (IAM User Guide, condition-keys-wif), and the sub."""
    env, t = env_template
    (statement,) = _trust(t, bootstrap.DEPLOY_ROLE)["Statement"][1:]
    assert statement["Action"] == ["sts:AssumeRoleWithWebIdentity"]
    assert statement["Condition"] == {
        "StringEquals": {
            f"{HOST}:aud": "sts.amazonaws.com",
            f"{HOST}:repository": APP,
            f"{HOST}:ref": "refs/heads/main",
            f"{HOST}:job_workflow_ref": RELEASE_AT_MAIN,
            f"{HOST}:environment": env,
        },
        "StringLike": {f"{HOST}:sub": f"repo:{APP}:*"},
    }
    (release,) = _trust(t, bootstrap.RELEASE_PLAN_ROLE)["Statement"][1:]
    assert f"{HOST}:environment" not in release["Condition"]["StringEquals"]


@pytest.mark.parametrize("env", ENVS)
def test_this_repositorys_own_runs_of_release_yml_keep_their_trust(env: str) -> None:
    """deploy.yml calls release.yml locally: the jobs' subject is still this repository's."""
    t = _with_callers(env, {"repository": APP, "branch": "main"})
    repo = f"repo:{OWN}"
    deploy = {
        f"{HOST}:aud": "sts.amazonaws.com",
        f"{HOST}:sub": f"{repo}:environment:{env}:ref:refs/heads/main",
        f"{HOST}:repository": OWN,
        f"{HOST}:ref": "refs/heads/main",
        f"{HOST}:job_workflow_ref": RELEASE_AT_MAIN,
        f"{HOST}:environment": env,
    }
    assert _decide(_trust(t, bootstrap.DEPLOY_ROLE), deploy).allowed
    release = {**deploy, f"{HOST}:sub": f"{repo}:ref:refs/heads/main:ref:refs/heads/main"}
    del release[f"{HOST}:environment"]
    assert _decide(_trust(t, bootstrap.RELEASE_PLAN_ROLE), release).allowed
    # this repository on a feature branch calling release.yml@main: not the deploy branch
    feature = {**deploy, f"{HOST}:sub": f"{repo}:environment:{env}:ref:refs/heads/feature"}
    assert _decide(_trust(t, bootstrap.DEPLOY_ROLE), {**feature, f"{HOST}:ref": "refs/heads/feature"}) == DENIED


def test_each_caller_only_on_its_own_branch() -> None:
    t = _with_callers("dev", {"repository": APP, "branch": "main"}, {"repository": "acme/docs", "branch": "release"})
    release = _trust(t, bootstrap.RELEASE_PLAN_ROLE)
    assert [s.get("Sid") for s in release["Statement"]] == [None, "Caller1ReleaseWorkflow", "Caller2ReleaseWorkflow"]
    assert _decide(release, _claims(repository="acme/docs", ref="refs/heads/release")).allowed
    assert _decide(release, _claims(repository="acme/docs", ref="refs/heads/main")) == DENIED
    assert _decide(release, _claims(repository=APP, ref="refs/heads/release")) == DENIED


def test_the_release_workflow_named_in_the_trust_exists() -> None:
    assert (Path(__file__).resolve().parent.parent / bootstrap.RELEASE_WORKFLOW).is_file()


def test_a_caller_passes_checkov(tmp_path: Path) -> None:
    """checkov's GitHub OIDC checks read the ``sub``: each caller statement names its repository."""
    from tests.test_checkov import _checkov, _failures

    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov not found: set KR_CFN_CHECKOV")
    import json

    import yaml

    out = tmp_path / "dev"
    out.mkdir()
    template = _with_callers("dev", {"repository": APP, "branch": "main"})
    (out / "bootstrap.yaml").write_text(yaml.safe_dump(template), encoding="utf-8")
    proc = subprocess.run(
        [str(checkov), "-d", str(out), "--framework", "cloudformation", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(proc.stdout)
    assert _failures("dev", report) == []
    assert report["summary"]["passed"] > 0, proc.stderr[-2000:]


# --------------------------------------------------------------------------- params validation


def _problems(tmp_path: Path, bootstrap_yaml: str) -> list[str]:
    path = write_params(tmp_path, "prod", f"bootstrap:\n{bootstrap_yaml}")
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    lines = str(exc.value).splitlines()
    assert all(line.startswith(str(path)) and str(path).endswith("params/prod.yaml") for line in lines)
    return [line[len(f"{path}: ") :] for line in lines]


def test_caller_repository_must_be_owner_and_name(tmp_path: Path) -> None:
    text = "  github_repository: knowledgerouter/kr_cfn\n  callers: [{repository: acme}]\n"
    assert _problems(tmp_path, text) == [
        "bootstrap.callers[0].repository: 'acme' must be 'owner/name' (the GitHub owner and repository)"
    ]


def test_caller_listed_twice(tmp_path: Path) -> None:
    text = (
        "  github_repository: knowledgerouter/kr_cfn\n"
        "  callers: [{repository: acme/app}, {repository: Acme/App, branch: release}]\n"
    )
    assert _problems(tmp_path, text) == ["bootstrap.callers[1].repository: 'Acme/App' is listed twice"]


def test_caller_cannot_be_this_repository(tmp_path: Path) -> None:
    text = "  github_repository: knowledgerouter/kr_cfn\n  callers: [{repository: knowledgerouter/kr_cfn}]\n"
    assert _problems(tmp_path, text) == [
        "bootstrap.callers[0].repository: 'knowledgerouter/kr_cfn' is github_repository itself, whose own roles' "
        "trust already covers it"
    ]


def test_callers_need_a_github_repository(tmp_path: Path) -> None:
    assert _problems(tmp_path, "  callers: [{repository: acme/app}]\n") == [
        "bootstrap.callers[0].repository: 'acme/app' needs github_repository: callers run that repository's workflow"
    ]


def test_caller_branch_and_keys(tmp_path: Path) -> None:
    text = "  github_repository: knowledgerouter/kr_cfn\n  callers: [{repository: acme/app, branch: 'a b', env: x}]\n"
    problems = _problems(tmp_path, text)
    assert [p.split(":")[0] for p in problems] == ["bootstrap.callers[0].branch", "bootstrap.callers[0].env"]


def test_the_readme_caller_example_calls_release_yml_as_it_expects(tmp_path: Path) -> None:
    """docs/workflows.md's application-repository workflow: the trusted ref, OIDC permission, declared inputs."""
    import re

    import yaml

    root = Path(__file__).resolve().parent.parent
    readme = (root / "docs" / "workflows.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploying from the application repository") :]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    [job] = [j for j in example["jobs"].values() if "uses" in j]
    boot = load_env("prod").bootstrap
    assert job["uses"] == f"{boot.github_repository}/{bootstrap.RELEASE_WORKFLOW}@{boot.deploy_branch}"
    # release.yml's image-findings job uploads the Trivy SARIF: a called workflow gets at most its caller's
    # permissions, so the caller grants actions: read and security-events: write too.
    assert job["permissions"] == {
        "id-token": "write",
        "contents": "read",
        "actions": "read",
        "security-events": "write",
    }
    called = yaml.safe_load((root / bootstrap.RELEASE_WORKFLOW).read_text(encoding="utf-8"))[True]["workflow_call"]
    assert set(job["with"]) == set(called["inputs"]) and set(job["secrets"]) == set(called["secrets"])
    assert job["strategy"]["max-parallel"] == 1 and job["strategy"]["matrix"]["env"] == ["dev", "staging", "prod"]
