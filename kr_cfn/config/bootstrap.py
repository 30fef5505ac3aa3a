"""Bootstrap section (``bootstrap:``): what is deployed once per account and region.

The bootstrap stack holds what the application stacks need before they can be deployed:
the bucket for packaged templates, the ECR repositories, the GitHub OIDC trust and the roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from kr_cfn.config.base import Model, Problem
from kr_cfn.naming import Naming

# GitHub: owner 1-39 letters, digits, dashes; repository letters, digits, '.', '_', '-'.
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_BRANCH = r"^[A-Za-z0-9._/-]{1,100}$"
# GitHub's numeric account and repository ids, as text: they pass 2**31 (the configs' number limit).
_GITHUB_ID = r"^[1-9][0-9]{0,19}$"

SubjectRepo = Literal["name", "immutable"]
"""How a repository's OIDC ``sub`` names it: ``repo:owner/name`` or, with immutable subject claims (every
repository created, renamed or transferred on github.com since 2026-07-15, and those that opt in),
``repo:owner@<owner id>/name@<repository id>``, in GitHub's default and in a customised subject template
alike (GitHub OIDC reference, "Immutable subject claims" and "Customizing the subject claims":
https://docs.github.com/en/actions/reference/security/oidc#immutable-subject-claims)."""

_SUBJECT_REPO = (
    "How the repository's OIDC subject names it: 'name' (repo:owner/name: repositories created before "
    "2026-07-15 that did not opt in) or 'immutable' (repo:owner@<owner id>/name@<repository id>: every "
    "repository created, renamed or transferred since, and those that opted in; needs both ids). "
    "`gh api repos/OWNER/REPO/actions/oidc/customization/sub` tells which (docs/runbook.md)."
)


def _id_text(value: Any) -> Any:
    """A YAML number for an id is taken as its digits (ids are compared as text in the trust)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _missing_ids(format_key: str, ids: dict[str, tuple[str | None, str]]) -> list[Problem]:
    """With the immutable format every id the subject names must be given: refuse a trust no token matches.

    ``ids``: key -> (value, the ``gh api repos/OWNER/REPO --jq`` filter that prints it).
    """
    return [
        (key, f"is required when {format_key} is 'immutable' (gh api repos/OWNER/REPO --jq '{jq}' prints it)")
        for key, (value, jq) in ids.items()
        if value is None
    ]


class Caller(Model):
    """A repository whose workflows may run this repository's release workflow (``workflow_call``)."""

    repository: str = Field(
        description="GitHub 'owner/name' of the calling (application) repository, spelled exactly as GitHub does "
        "(the trust compares it case-sensitively)."
    )
    branch: str = Field(
        "main",
        pattern=_BRANCH,
        description="The caller's branch a release may be started from (its OIDC 'ref' claim refs/heads/<branch>).",
    )
    subject_repo: SubjectRepo = Field("name", description=_SUBJECT_REPO)
    owner_id: str | None = Field(
        None, pattern=_GITHUB_ID, description="The caller's owner's numeric id; required with subject_repo 'immutable'."
    )
    repository_id: str | None = Field(
        None,
        pattern=_GITHUB_ID,
        description="The caller's numeric repository id: pinned in the trust (claim repository_id) when given, so "
        "a repository that later takes the name is refused; required with subject_repo 'immutable'.",
    )

    @field_validator("owner_id", "repository_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return _id_text(value)


class BootstrapConfig(Model):
    """Settings of the bootstrap stack (artifacts bucket, ECR, GitHub OIDC and roles)."""

    github_repository: str | None = Field(
        None,
        description="GitHub repository 'owner/name' whose workflows may plan and deploy; null: no GitHub roles.",
    )
    deploy_branch: str | None = Field(
        "main",
        pattern=r"^[A-Za-z0-9._/-]{1,100}$",
        description="Branch a deploy must run from (with oidc_subject 'environment_and_ref', named in the deploy "
        "role's trust); null only with oidc_subject 'environment'.",
    )
    oidc_subject: Literal["environment_and_ref", "environment"] = Field(
        "environment_and_ref",
        description="GitHub OIDC subject the roles trust: 'environment_and_ref' needs the repository's subject "
        "customisation (include_claim_keys repo, context, ref; docs/runbook.md 'GitHub OIDC subjects') and names "
        "environment and branch; "
        "'environment': GitHub's default subject, the environment's deployment-branch rule must restrict branches.",
    )
    oidc_subject_repo: SubjectRepo = Field(
        "name",
        description=_SUBJECT_REPO + " Default 'name': what repositories that predate immutable subjects send, so "
        "their deployed trust stays as it is; a new repository sets 'immutable' and its ids.",
    )
    github_owner_id: str | None = Field(
        None,
        pattern=_GITHUB_ID,
        description="Numeric id of github_repository's owner (gh api repos/OWNER/REPO --jq .owner.id); required "
        "with oidc_subject_repo 'immutable'.",
    )
    github_repository_id: str | None = Field(
        None,
        pattern=_GITHUB_ID,
        description="Numeric id of github_repository (gh api repos/OWNER/REPO --jq .id): pinned in the roles' "
        "trust (claim repository_id) when given, so a repository that later takes the name is refused; required "
        "with oidc_subject_repo 'immutable'.",
    )
    create_oidc_provider: bool = Field(
        True,
        description="Create the account's GitHub OIDC provider; false when another env in the account owns it.",
    )
    images_to_keep: int = Field(30, ge=1, le=1000, description="ECR lifecycle: keep the newest N images per repo.")
    noncurrent_version_days: int = Field(
        90, ge=1, le=3650, description="Days the artifacts bucket keeps replaced template versions."
    )
    repositories: tuple[str, ...] = Field(
        ("backend", "frontend"),
        description="ECR repositories '<project>-<entry>', one set per account: [] where another env makes them.",
    )
    callers: tuple[Caller, ...] = Field(
        (),
        description="Repositories (with their branch) whose workflows may call .github/workflows/release.yml of "
        "github_repository on deploy_branch to plan and deploy this env "
        '(docs/workflows.md "Deploying from the application repository"); '
        "each adds one trust statement to the release-plan and the deploy role. []: none.",
    )

    @field_validator("github_owner_id", "github_repository_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        return _id_text(value)

    def check(self) -> list[Problem]:
        """The repository must be 'owner/name' (with its ids when immutable); ECR names valid and distinct."""
        problems: list[Problem] = []
        repo = self.github_repository
        if repo is not None and self.oidc_subject_repo == "immutable":
            problems += _missing_ids(
                "oidc_subject_repo",
                {
                    "github_owner_id": (self.github_owner_id, ".owner.id"),
                    "github_repository_id": (self.github_repository_id, ".id"),
                },
            )
        if repo is not None and self.oidc_subject == "environment_and_ref" and self.deploy_branch is None:
            problems.append(
                ("deploy_branch", "must name the branch deploys run from when oidc_subject is 'environment_and_ref'")
            )
        if repo is not None and not _REPOSITORY.match(repo):
            problems.append(("github_repository", f"{repo!r} must be 'owner/name' (the GitHub owner and repository)"))
        for i, name in enumerate(self.repositories):
            if not re.match(r"^[a-z0-9][a-z0-9-]{0,40}$", name):
                problems.append((f"repositories[{i}]", f"{name!r} must be lowercase letters, digits and dashes"))
            elif name in self.repositories[:i]:
                problems.append((f"repositories[{i}]", f"{name!r} is listed twice"))
        return problems + self._check_callers()

    def _check_callers(self) -> list[Problem]:
        """Callers: 'owner/name', each once, not this repository, and only with github_repository."""
        problems: list[Problem] = []
        seen: list[str] = []
        for i, caller in enumerate(self.callers):
            key, repo = f"callers[{i}].repository", caller.repository
            if not _REPOSITORY.match(repo):
                problems.append((key, f"{repo!r} must be 'owner/name' (the GitHub owner and repository)"))
            elif self.github_repository is None:
                problems.append((key, f"{repo!r} needs github_repository: callers run that repository's workflow"))
            elif repo.lower() == self.github_repository.lower():
                problems.append(
                    (key, f"{repo!r} is github_repository itself, whose own roles' trust already covers it")
                )
            elif repo.lower() in seen:
                problems.append((key, f"{repo!r} is listed twice"))
            seen.append(repo.lower())
            if caller.subject_repo == "immutable":
                problems += _missing_ids(
                    f"callers[{i}].subject_repo",
                    {
                        f"callers[{i}].owner_id": (caller.owner_id, ".owner.id"),
                        f"callers[{i}].repository_id": (caller.repository_id, ".id"),
                    },
                )
        return problems


@dataclass(frozen=True)
class Application:
    """What the bootstrap stack's roles are scoped to, read from the built application templates."""

    children: tuple[str, ...]
    """Logical ids of the root's nested stacks (stack names '<root>-<LogicalId>-<suffix>')."""
    resource_types: tuple[str, ...]
    """Every resource type of the root and nested templates (the service role's actions)."""
    bucket_names: tuple[str, ...]
    """``Fn::Sub`` strings of the application buckets' names."""
    role_services: tuple[str, ...]
    """Service principals the application roles trust (what the roles may be passed to)."""
    managed_policies: tuple[str, ...]
    """``Fn::Sub`` strings of the managed policies the application roles attach."""
    record_names: tuple[str, ...] = ()
    """DNS record names the stacks write (``route53:ChangeResourceRecordSetsNormalizedRecordNames``
    patterns): alias records and certificate validation records."""
    hosted_zones: tuple[str, ...] = ()
    """Ids of the hosted zones those records are written into."""
    secret_names: tuple[str, ...] = ()
    """Names of the Secrets Manager secrets the stacks make (``/<prefix>/...``)."""
    db_instances: tuple[str, ...] = ()
    """Identifiers of the DB instances whose master password RDS keeps in a secret it makes (``rds!db-...``)."""
    dynamic_references: tuple[str, ...] = ()
    """What the templates' dynamic references read: ``ssm:<parameter>``, ``secretsmanager:<secret>``
    (kr_cfn.iam.dynamic_references)."""


def bootstrap_stack_name(names: Naming) -> str:
    """The bootstrap stack of an environment: ``<prefix>-bootstrap``."""
    return names("bootstrap")


@dataclass(frozen=True)
class BootstrapSlice:
    """What the bootstrap stack may see."""

    names: Naming
    env: str
    stack_name: str
    """The application's root stack (what the roles may change)."""
    tags: dict[str, str]
    bootstrap: BootstrapConfig
    region: str
    app: Application
