"""GitHub OIDC subjects as GitHub sends them today: by name or immutable, and the workflow pinned.

Since 2026-07-15 a repository created, renamed or transferred on github.com (or opted in) gets subjects
``repo:<owner>@<owner id>/<name>@<repository id>:...``, in the default and in a customised subject
template alike (https://docs.github.com/en/actions/reference/security/oidc#immutable-subject-claims).
Each token below is built the way GitHub builds it for the job that assumes the role (deploy.yml's
pull-request ``plan`` job; release.yml's ``release-plan`` and ``deploy`` jobs, called from deploy.yml on
main) and evaluated offline (tests/policy_eval.py) against the trust policies as built.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.cli import main
from stacks import bootstrap
from tests.conftest import PARAMS, load_env, write_params
from tests.policy_eval import Decision, Request, evaluate

HOST = "token.actions.githubusercontent.com"
OWN = "knowledgerouter/kr_cfn"
OWNER_ID, REPO_ID = "1234567", "2345678901"  # a repository id above 2**31, as new ones will be
APP, APP_OWNER_ID, APP_ID = "acme/knowledgerouter-app", "7654321", "3456789012"
DENIED = Decision(False, "implicitly denied: no identity policy allows sts:AssumeRoleWithWebIdentity on *")
ROLES = (bootstrap.PLAN_ROLE, bootstrap.RELEASE_PLAN_ROLE, bootstrap.DEPLOY_ROLE)
# The job that assumes each role: its workflow file and ref (.github/workflows/deploy.yml, release.yml).
JOBS = {
    bootstrap.PLAN_ROLE: ("deploy.yml", "refs/pull/7/merge"),
    bootstrap.RELEASE_PLAN_ROLE: ("release.yml", "refs/heads/main"),
    bootstrap.DEPLOY_ROLE: ("release.yml", "refs/heads/main"),
}


@dataclass(frozen=True)
class Token:
    """A job's OIDC token as GitHub issues it (the OIDC reference's claims); None: the real job's value."""

    immutable: bool = False
    owner_id: str = OWNER_ID
    repository_id: str = REPO_ID
    workflow: str | None = None
    ref: str | None = None
    custom_template: bool = True  # include_claim_keys [repo, context, ref] (oidc_subject environment_and_ref)
    repository: str = OWN

    def claims(self, role: str, env: str) -> dict[str, str]:
        """The claims of the job that assumes ``role`` in ``env``."""
        workflow, ref = JOBS[role]
        workflow, ref = self.workflow or workflow, self.ref or ref
        owner, name = self.repository.split("/")
        repo = f"repo:{owner}@{self.owner_id}/{name}@{self.repository_id}" if self.immutable else f"repo:{owner}/{name}"
        if role == bootstrap.PLAN_ROLE:
            context = "pull_request"
        else:
            context = f"environment:{env}" if role == bootstrap.DEPLOY_ROLE else f"ref:{ref}"
        claims = {
            f"{HOST}:aud": "sts.amazonaws.com",
            f"{HOST}:sub": f"{repo}:{context}:ref:{ref}" if self.custom_template else f"{repo}:{context}",
            f"{HOST}:repository": self.repository,
            f"{HOST}:repository_id": self.repository_id,
            f"{HOST}:repository_owner_id": self.owner_id,
            f"{HOST}:ref": ref,
            f"{HOST}:job_workflow_ref": f"{OWN}/.github/workflows/{workflow}@{ref}",
        }
        if role == bootstrap.DEPLOY_ROLE:
            claims[f"{HOST}:environment"] = env
        return claims


# Params formats (bootstrap keys over the shipped params) and how each token fares against them.
NAME: dict[str, Any] = {}
NAME_IDS = {"github_owner_id": OWNER_ID, "github_repository_id": REPO_ID}
IMMUTABLE = {"oidc_subject_repo": "immutable", **NAME_IDS}
RECYCLED = {"owner_id": "999", "repository_id": "888"}  # the name, deleted and taken by another account
TOKENS = {
    "name-based": Token(),
    "immutable": Token(immutable=True),
    "recycled name, name-based": Token(**RECYCLED),
    "recycled name, immutable": Token(immutable=True, **RECYCLED),
    "a new workflow file on the job's ref": Token(workflow="new.yml"),
    "a new workflow file, immutable": Token(immutable=True, workflow="new.yml"),
}
MATRIX = {  # token -> allowed under (name, name with ids, immutable)
    "name-based": (True, True, False),
    "immutable": (False, False, True),
    "recycled name, name-based": (True, False, False),  # by name alone it cannot be told apart: give the ids
    "recycled name, immutable": (False, False, False),
    "a new workflow file on the job's ref": (False, False, False),
    "a new workflow file, immutable": (False, False, False),
}


def _template(env: str, **keys: Any) -> dict[str, Any]:
    """The bootstrap template of ``env`` with these bootstrap keys over the shipped params (validated)."""
    cfg = load_env(env)
    boot = config.BootstrapConfig.model_validate({**cfg.bootstrap.model_dump(), **keys})
    assert boot.check() == []
    return stacks.build_all(cfg.model_copy(update={"bootstrap": boot}))["bootstrap"].to_dict()


def _trust(template: dict[str, Any], role: str) -> dict[str, Any]:
    return template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]


def _decide(template: dict[str, Any], role: str, claims: dict[str, str]) -> Decision:
    return evaluate(Request("sts:AssumeRoleWithWebIdentity", "*", claims), {"trust": _trust(template, role)})


@pytest.fixture(scope="module", params=[("prod", "environment_and_ref"), ("dev", "environment")])
def formats(request: pytest.FixtureRequest) -> tuple[str, bool, list[dict[str, Any]]]:
    """prod with the customised subject (as shipped), dev with GitHub's default one; each in three formats."""
    env, subject = request.param
    extra = {"oidc_subject": subject}
    return env, subject == "environment_and_ref", [_template(env, **extra, **f) for f in (NAME, NAME_IDS, IMMUTABLE)]


@pytest.mark.parametrize("token", list(TOKENS))
@pytest.mark.parametrize("role", ROLES)
def test_each_format_takes_exactly_its_own_tokens(
    formats: tuple[str, bool, list[dict[str, Any]]], role: str, token: str
) -> None:
    """Failed before: no immutable format (no token of a new repository matched), no repository id
    (a recycled name matched) and no workflow pin (a new workflow file on main or in a pull request matched)."""
    env, custom, templates = formats
    claims = replace(TOKENS[token], custom_template=custom).claims(role, env)
    got = tuple(_decide(t, role, claims).allowed for t in templates)
    assert got == MATRIX[token], f"{token} for {role} in {env}: (name, name+ids, immutable) = {got}"


@pytest.mark.parametrize("role", ROLES)
def test_the_roles_trust_only_their_workflow_and_its_ref(role: str) -> None:
    """The jobs' real tokens pass; release.yml from a branch, deploy.yml on main, another file do not."""
    t = _template("prod", **IMMUTABLE)
    assert _decide(t, role, Token(immutable=True).claims(role, "prod")).allowed
    others = {
        bootstrap.PLAN_ROLE: [Token(immutable=True, workflow="release.yml"), Token(immutable=True, workflow="ci.yml")],
        bootstrap.RELEASE_PLAN_ROLE: [Token(immutable=True, workflow="deploy.yml")],
        bootstrap.DEPLOY_ROLE: [Token(immutable=True, workflow="deploy.yml")],
    }[role]
    for token in others:
        assert _decide(t, role, token.claims(role, "prod")) == DENIED, token


def test_the_release_workflow_from_another_branch_gets_no_role() -> None:
    """The sub names the branch, and so does job_workflow_ref: release.yml at a feature branch's ref."""
    t = _template("prod", **IMMUTABLE)
    feature = Token(immutable=True, ref="refs/heads/feature")
    for role in (bootstrap.RELEASE_PLAN_ROLE, bootstrap.DEPLOY_ROLE):
        assert _decide(t, role, feature.claims(role, "prod")) == DENIED
        # main's subject with the feature branch's workflow ref (only job_workflow_ref differs)
        claims = {**Token(immutable=True).claims(role, "prod")}
        claims[f"{HOST}:job_workflow_ref"] = f"{OWN}/.github/workflows/release.yml@refs/heads/feature"
        assert _decide(t, role, claims) == DENIED


def test_the_trust_names_the_repository_id_only_where_configured() -> None:
    """repository_id is a GitHub claim STS validates (IAM condition-keys-wif); repository_owner_id is not
    listed there (an absent key never matches StringEquals), so the owner's id is pinned through the sub."""
    for keys, pinned in ((NAME, False), (NAME_IDS, True), (IMMUTABLE, True)):
        t = _template("prod", **keys)
        for role in ROLES:
            (statement,) = _trust(t, role)["Statement"]
            keys_used = {k for op in statement["Condition"].values() for k in op}
            assert (f"{HOST}:repository_id" in keys_used) == pinned
            assert f"{HOST}:repository_owner_id" not in keys_used
            assert f"{HOST}:job_workflow_ref" in keys_used


def test_prod_trust_as_built_immutable() -> None:
    t = _template("prod", **IMMUTABLE)
    repo = f"repo:knowledgerouter@{OWNER_ID}/kr_cfn@{REPO_ID}"
    assert _trust(t, bootstrap.DEPLOY_ROLE)["Statement"][0]["Condition"] == {
        "StringEquals": {
            f"{HOST}:aud": "sts.amazonaws.com",
            f"{HOST}:sub": f"{repo}:environment:prod:ref:refs/heads/main",
            f"{HOST}:job_workflow_ref": f"{OWN}/.github/workflows/release.yml@refs/heads/main",
            f"{HOST}:repository_id": REPO_ID,
        }
    }
    assert _trust(t, bootstrap.PLAN_ROLE)["Statement"][0]["Condition"] == {
        "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:repository_id": REPO_ID},
        "StringLike": {
            f"{HOST}:sub": f"{repo}:pull_request:ref:refs/pull/*/merge",
            f"{HOST}:job_workflow_ref": f"{OWN}/.github/workflows/deploy.yml@refs/pull/*/merge",
        },
    }


# Callers: their own format and ids.


def _caller_claims(caller_token: Token, environment: str | None = None) -> dict[str, str]:
    """A job of release.yml@main called from the application repository's main branch (default subject)."""
    owner, name = APP.split("/")
    repo = (
        f"repo:{owner}@{caller_token.owner_id}/{name}@{caller_token.repository_id}"
        if caller_token.immutable
        else f"repo:{APP}"
    )
    claims = {
        f"{HOST}:aud": "sts.amazonaws.com",
        f"{HOST}:sub": f"{repo}:" + (f"environment:{environment}" if environment else "ref:refs/heads/main"),
        f"{HOST}:repository": APP,
        f"{HOST}:repository_id": caller_token.repository_id,
        f"{HOST}:repository_owner_id": caller_token.owner_id,
        f"{HOST}:ref": "refs/heads/main",
        f"{HOST}:job_workflow_ref": f"{OWN}/.github/workflows/release.yml@refs/heads/main",
    }
    if environment is not None:
        claims[f"{HOST}:environment"] = environment
    return claims


CALLER_NAME = {"repository": APP, "branch": "main"}
CALLER_IMMUTABLE = {**CALLER_NAME, "subject_repo": "immutable", "owner_id": APP_OWNER_ID, "repository_id": APP_ID}
APP_TOKENS = {
    "name-based": Token(owner_id=APP_OWNER_ID, repository_id=APP_ID),
    "immutable": Token(immutable=True, owner_id=APP_OWNER_ID, repository_id=APP_ID),
    "recycled name, name-based": Token(**RECYCLED),
    "recycled name, immutable": Token(immutable=True, **RECYCLED),
}
CALLER_MATRIX = {  # token -> allowed under (caller by name, by name with its id, immutable)
    "name-based": (True, True, False),
    "immutable": (False, False, True),
    "recycled name, name-based": (True, False, False),
    "recycled name, immutable": (False, False, False),
}


@pytest.fixture(scope="module")
def caller_formats() -> list[dict[str, Any]]:
    """staging with one caller, by name, by name with its id, immutable."""
    callers = (CALLER_NAME, {**CALLER_NAME, "repository_id": APP_ID}, CALLER_IMMUTABLE)
    return [_template("staging", callers=[c]) for c in callers]


@pytest.mark.parametrize("token", list(APP_TOKENS))
def test_each_caller_format_takes_exactly_its_own_tokens(caller_formats: list[dict[str, Any]], token: str) -> None:
    """Failed before: a caller's immutable subject never matched ``repo:<caller>:*``."""
    templates = caller_formats
    for role, environment in ((bootstrap.RELEASE_PLAN_ROLE, None), (bootstrap.DEPLOY_ROLE, "staging")):
        claims = _caller_claims(APP_TOKENS[token], environment)
        got = tuple(_decide(t, role, claims).allowed for t in templates)
        assert got == CALLER_MATRIX[token], f"{token} for {role}: {got}"


# Params: the immutable format without ids is refused, in one line each, before any trust is built.


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = write_params(tmp_path, "dev", text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return [line.removeprefix(f"{path}: ") for line in str(exc.value).splitlines()]


def test_an_immutable_repository_without_its_ids_is_refused(tmp_path: Path) -> None:
    text = "bootstrap:\n  github_repository: acme/infra\n  oidc_subject_repo: immutable\n  github_repository_id: 42\n"
    assert _errors(tmp_path, text) == [
        "bootstrap.github_owner_id: is required when oidc_subject_repo is 'immutable' "
        "(gh api repos/OWNER/REPO --jq '.owner.id' prints it)"
    ]


def test_an_immutable_caller_without_its_ids_is_refused(tmp_path: Path) -> None:
    text = (
        "bootstrap:\n  github_repository: acme/infra\n"
        "  callers:\n    - repository: acme/app\n      subject_repo: immutable\n"
    )
    assert _errors(tmp_path, text) == [
        "bootstrap.callers[0].owner_id: is required when callers[0].subject_repo is 'immutable' "
        "(gh api repos/OWNER/REPO --jq '.owner.id' prints it)",
        "bootstrap.callers[0].repository_id: is required when callers[0].subject_repo is 'immutable' "
        "(gh api repos/OWNER/REPO --jq '.id' prints it)",
    ]


def test_ids_are_digits(tmp_path: Path) -> None:
    (line,) = _errors(tmp_path, "bootstrap:\n  github_repository: acme/infra\n  github_repository_id: 12ab\n")
    assert line.startswith("bootstrap.github_repository_id: ")
    assert "[1-9][0-9]" in line


def test_ids_as_yaml_numbers_are_taken_as_text(tmp_path: Path) -> None:
    """YAML reads an unquoted id as a number; the trust compares the claim's text."""
    text = "bootstrap:\n  github_repository: acme/infra\n  github_repository_id: 3456789012\n"
    path = write_params(tmp_path, "dev", text)
    assert config.load(path).bootstrap.github_repository_id == "3456789012"


def test_kr_cfn_bootstrap_refuses_an_immutable_repository_without_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any AWS call: a config error naming file, key and what is expected; no traceback."""
    params = tmp_path / "params"
    shutil.copytree(PARAMS, params)
    dev = params / "dev.yaml"
    dev.write_text(dev.read_text().replace("oidc_subject_repo: name", "oidc_subject_repo: immutable"))
    assert main(["bootstrap", "--env", "dev", "--params", str(params), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert f"{dev}: bootstrap.github_owner_id: is required when oidc_subject_repo is 'immutable'" in err
    assert f"{dev}: bootstrap.github_repository_id: is required when oidc_subject_repo is 'immutable'" in err
    assert "Traceback" not in err


def test_the_pinned_workflows_are_the_jobs_that_assume_the_roles() -> None:
    """The trust pins deploy.yml (plan role) and release.yml (release-plan, deploy): exactly the jobs that
    log in to AWS. deploy.yml calls release.yml locally, so the called jobs carry release.yml at main's ref."""
    import yaml

    root = Path(__file__).resolve().parent.parent
    logins: dict[tuple[str, str], str] = {}
    for path in sorted((root / ".github" / "workflows").glob("*.yml")):
        for name, job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].items():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"):
                    logins[(f".github/workflows/{path.name}", name)] = step["with"]["role-to-assume"]
    assert set(logins) == {
        (bootstrap.DEPLOY_WORKFLOW, "plan"),
        (bootstrap.RELEASE_WORKFLOW, "release-plan"),
        (bootstrap.RELEASE_WORKFLOW, "deploy"),
    }
    assert "plan_role" in logins[(bootstrap.DEPLOY_WORKFLOW, "plan")]
    assert "RELEASE_PLAN_ROLE_ARN" in logins[(bootstrap.RELEASE_WORKFLOW, "release-plan")]
    assert "DEPLOY_ROLE_ARN" in logins[(bootstrap.RELEASE_WORKFLOW, "deploy")]
    deploy = yaml.safe_load((root / bootstrap.DEPLOY_WORKFLOW).read_text(encoding="utf-8"))["jobs"]
    assert deploy["plan"]["if"] == "github.event_name == 'pull_request'"
    assert deploy["release"]["uses"] == f"./{bootstrap.RELEASE_WORKFLOW}"
