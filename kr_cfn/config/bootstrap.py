"""Bootstrap section (``bootstrap:``): what is deployed once per account and region.

The bootstrap stack holds what the application stacks need before they can be deployed:
the bucket for packaged templates, the ECR repositories, the GitHub OIDC trust and the roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from kr_cfn.config.base import Model, Problem
from kr_cfn.naming import Naming

# GitHub: owner 1-39 letters, digits, dashes; repository letters, digits, '.', '_', '-'.
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_BRANCH = r"^[A-Za-z0-9._/-]{1,100}$"


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
        "customisation (include_claim_keys repo, context, ref; see README) and names environment and branch; "
        "'environment': GitHub's default subject, the environment's deployment-branch rule must restrict branches.",
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
        "github_repository on deploy_branch to plan and deploy this env (README 'Deploying from the application "
        "repository'); each adds one trust statement to the release-plan and the deploy role. []: none.",
    )

    def check(self) -> list[Problem]:
        """The repository must be 'owner/name'; ECR repository names must be valid and distinct."""
        problems: list[Problem] = []
        repo = self.github_repository
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
    patterns): alias records, certificate validation records, the service-discovery namespace."""
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
