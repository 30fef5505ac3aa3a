"""The GitHub roles' trust: OIDC subjects, claims and the workflows each role is for."""

from __future__ import annotations

from awacs import aws, sts
from troposphere import Tags, Template, iam

from kr_cfn.config import BootstrapSlice
from stacks._bootstrap.names import GITHUB_OIDC_HOST, STS_AUDIENCE


def subject_repo(repository: str, subject_repo: str, owner_id: str | None, repository_id: str | None) -> str:
    """The ``repo:`` segment a repository's OIDC ``sub`` starts with, by name or immutable.

    With immutable subject claims GitHub appends the owner's and the repository's ids with ``@``
    (``repo:octo-org@123456/octo-repo@456789``), in its default subject and in a customised one alike
    (``owner_id`` and ``repo_id`` are always included in the ``repo`` segment):
    https://docs.github.com/en/actions/reference/security/oidc#immutable-subject-claims
    (github/docs content/actions/reference/security/oidc.md, "Immutable subject claims" and
    "Customizing the subject claims for an organization or repository").
    """
    if subject_repo != "immutable":
        return f"repo:{repository}"
    if owner_id is None or repository_id is None:  # config.BootstrapConfig.check refuses this first
        raise ValueError(f"{repository}: the immutable subject needs the owner and repository ids")
    owner, name = repository.split("/", 1)
    return f"repo:{owner}@{owner_id}/{name}@{repository_id}"


def _own_repo(cfg: BootstrapSlice) -> str:
    boot = cfg.bootstrap
    assert boot.github_repository is not None
    return subject_repo(boot.github_repository, boot.oidc_subject_repo, boot.github_owner_id, boot.github_repository_id)


def github_subjects(cfg: BootstrapSlice) -> tuple[str, str]:
    """The OIDC ``sub`` the plan role and the deploy role trust.

    With ``oidc_subject: environment_and_ref`` the repository's subject template is
    ``include_claim_keys: [repo, context, ref]``, so a job names both its environment and its
    branch (``repo:o/r:environment:prod:ref:refs/heads/main``) and a workflow_dispatch from an
    unreviewed branch gets a subject the deploy role does not trust. GitHub's default subject
    names the environment only (``repo:o/r:environment:prod``).
    https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#customizing-the-token-claims
    """
    repo = _own_repo(cfg)
    if cfg.bootstrap.oidc_subject == "environment":
        return f"{repo}:pull_request", f"{repo}:environment:{cfg.env}"
    # Pull-request workflows run on the merge ref refs/pull/<number>/merge.
    return (
        f"{repo}:pull_request:ref:refs/pull/*/merge",
        f"{repo}:environment:{cfg.env}:ref:refs/heads/{cfg.bootstrap.deploy_branch}",
    )


def release_plan_subject(cfg: BootstrapSlice) -> str:
    """The OIDC ``sub`` the release-plan role trusts: a job on the deploy branch without an environment.

    The context of such a job is its ref (``ref:refs/heads/main``); with the subject template
    [repo, context, ref] (see :func:`github_subjects`) the ref follows once more.
    """
    ref = f"ref:refs/heads/{cfg.bootstrap.deploy_branch or 'main'}"
    repo = _own_repo(cfg)
    return f"{repo}:{ref}" if cfg.bootstrap.oidc_subject == "environment" else f"{repo}:{ref}:{ref}"


RELEASE_WORKFLOW = ".github/workflows/release.yml"
"""The reusable workflow (``on: workflow_call``) that plans and deploys one environment."""
DEPLOY_WORKFLOW = ".github/workflows/deploy.yml"
"""The workflow whose pull-request job (``plan``) assumes the plan role."""

# GitHub-specific claims AWS STS validates as condition keys of a role trust policy (since January 2026):
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif
# https://aws.amazon.com/about-aws/whats-new/2026/01/aws-sts-supports-validation-identity-provider-claims/
# What each claim holds in a called workflow (repository, ref and environment are the caller's;
# job_workflow_ref names the called workflow): https://docs.github.com/en/actions/reference/security/oidc
CLAIM_REPOSITORY = f"{GITHUB_OIDC_HOST}:repository"
CLAIM_REF = f"{GITHUB_OIDC_HOST}:ref"
CLAIM_JOB_WORKFLOW_REF = f"{GITHUB_OIDC_HOST}:job_workflow_ref"
CLAIM_ENVIRONMENT = f"{GITHUB_OIDC_HOST}:environment"
CLAIM_REPOSITORY_ID = f"{GITHUB_OIDC_HOST}:repository_id"
# GitHub keys listed for STS (IAM User Guide, condition-keys-wif; January 2026 announcement): actor,
# actor_id, job_workflow_ref, repository, repository_id, workflow, ref, environment, enterprise_id.
# Not repository_owner_id: a key STS does not fill is absent, and StringEquals on an absent key never
# matches (the role would lock everyone out); the owner's id is pinned through the immutable sub.


def release_workflow_ref(cfg: BootstrapSlice) -> str:
    """The ``job_workflow_ref`` of a job of the release workflow on the deploy branch of this repository.

    deploy.yml calls it as ``./.github/workflows/release.yml``, so its jobs (release-plan, deploy) carry
    the called file at the caller's ref: ``owner/repo/.github/workflows/release.yml@refs/heads/main``
    (https://docs.github.com/en/actions/reference/security/oidc, claim job_workflow_ref).
    """
    return f"{cfg.bootstrap.github_repository}/{RELEASE_WORKFLOW}@refs/heads/{cfg.bootstrap.deploy_branch or 'main'}"


def deploy_workflow_ref(cfg: BootstrapSlice) -> str:
    """The deploy role's ``job_workflow_ref``: release.yml on the deploy branch.

    With ``deploy_branch: null`` (only with the default subject) the GitHub environment's deployment-branch
    rule chooses the branches, so the role takes release.yml from any branch (never a pull-request or tag ref).
    """
    if cfg.bootstrap.deploy_branch is None:
        return f"{cfg.bootstrap.github_repository}/{RELEASE_WORKFLOW}@refs/heads/*"
    return release_workflow_ref(cfg)


def plan_workflow_ref(cfg: BootstrapSlice) -> str:
    """The ``job_workflow_ref`` of deploy.yml's ``plan`` job: a pull request runs on refs/pull/<number>/merge."""
    return f"{cfg.bootstrap.github_repository}/{DEPLOY_WORKFLOW}@refs/pull/*/merge"


def _claims_condition(claims: dict[str, str]) -> aws.Condition:
    """One StringEquals with every exact claim, one StringLike with those holding a wildcard.

    Two StringEquals elements in one condition would collide (one JSON key), so each operator comes once.
    """
    equals = {k: v for k, v in claims.items() if "*" not in v}
    like = {k: v for k, v in claims.items() if "*" in v}
    return aws.Condition([aws.StringEquals(equals), *([aws.StringLike(like)] if like else [])])


def caller_trust(cfg: BootstrapSlice, provider: object, environment: str | None = None) -> list[aws.Statement]:
    """One trust statement per ``bootstrap.callers`` entry: its branch running our release workflow.

    A job of a called workflow gets an OIDC token whose ``sub``, ``repository``, ``ref`` and
    ``environment`` are the caller's and whose ``job_workflow_ref`` names the called workflow
    file at the ref it was called at. So the statement admits exactly: the caller repository, on
    its configured branch (not a pull request, not another branch), running this repository's
    release.yml from the deploy branch (not another workflow, not another ref of this repository),
    and for the deploy role in the GitHub environment ``environment`` (the caller's, with its
    protection rules). The ``sub`` condition repeats the repository (``repo:<caller>:*``, whatever
    the caller's subject template; ``repo:<owner>@<id>/<name>@<id>:*`` when the caller sends immutable
    subjects) so the trust names it where reviewers and checkov look; a configured ``repository_id``
    is pinned too, so a repository that takes the caller's name later is refused.
    """
    statements = []
    for i, caller in enumerate(cfg.bootstrap.callers, start=1):
        claims = {
            f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
            CLAIM_REPOSITORY: caller.repository,
            CLAIM_REF: f"refs/heads/{caller.branch}",
            CLAIM_JOB_WORKFLOW_REF: release_workflow_ref(cfg),
        }
        if environment is not None:
            claims[CLAIM_ENVIRONMENT] = environment
        if caller.repository_id is not None:
            claims[CLAIM_REPOSITORY_ID] = caller.repository_id
        # "*": the rest of the subject follows the caller's own subject template; the claims above pin
        # its branch, this workflow and the environment exactly. The repo segment is the caller's format.
        repo = subject_repo(caller.repository, caller.subject_repo, caller.owner_id, caller.repository_id)
        claims[f"{GITHUB_OIDC_HOST}:sub"] = f"{repo}:*"
        statements.append(
            aws.Statement(
                Sid=f"Caller{i}ReleaseWorkflow",
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=_claims_condition(claims),
            )
        )
    return statements


def github_role(
    t: Template, cfg: BootstrapSlice, logical_id: str, name: str, subject: str, workflow_ref: str, provider: object
) -> iam.Role:
    """A role this repository's jobs assume: its subject, the one workflow file and ref that runs the job.

    ``job_workflow_ref`` pins the workflow file and its ref (a new workflow on the deploy branch with
    ``id-token: write`` gets no role), ``repository_id`` the repository when its id is configured (a
    repository that takes the name later has another id). Both are GitHub claims STS validates:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif
    """
    claims = {
        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
        f"{GITHUB_OIDC_HOST}:sub": subject,
        CLAIM_JOB_WORKFLOW_REF: workflow_ref,
    }
    if cfg.bootstrap.github_repository_id is not None:
        claims[CLAIM_REPOSITORY_ID] = cfg.bootstrap.github_repository_id
    trust = aws.PolicyDocument(
        Version="2012-10-17",
        Statement=[
            aws.Statement(
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=_claims_condition(claims),
            )
        ],
    )
    return t.add_resource(
        iam.Role(
            logical_id,
            RoleName=cfg.names(name),
            AssumeRolePolicyDocument=trust,
            MaxSessionDuration=3600,
            Tags=Tags(**cfg.tags),
        )
    )
