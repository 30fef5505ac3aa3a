"""Account-wide resources a bootstrap stack would create: refuse what another stack already owns.

One AWS account has one GitHub OIDC provider per URL, and ECR repository names are unique per
account and region. When several environments share an account, exactly one bootstrap stack
owns them (docs/runbook.md "Accounts"); creating them again fails half-way
through the bootstrap. This check names the params key to change before anything is created.
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html
https://docs.aws.amazon.com/AmazonECR/latest/userguide/Repositories.html
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from kr_cfn.aws import Aws, error_code
from kr_cfn.errors import DeployError

OIDC_PROVIDER_TYPE = "AWS::IAM::OIDCProvider"
REPOSITORY_TYPE = "AWS::ECR::Repository"


def _owned(aws: Aws, stack_name: str) -> set[str]:
    """Physical ids of the resources the stack already has (none for a new stack)."""
    try:
        pages = aws.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
        return {r.get("PhysicalResourceId", "") for page in pages for r in page["StackResourceSummaries"]}
    except ClientError as exc:
        if error_code(exc) == "ValidationError":  # the stack does not exist yet
            return set()
        raise


def _existing_repositories(aws: Aws, names: list[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        try:
            aws.client("ecr").describe_repositories(repositoryNames=[name])
            found.add(name)
        except ClientError as exc:
            if error_code(exc) != "RepositoryNotFoundException":
                raise
    return found


def check_account_resources(aws: Aws, template: dict[str, Any], stack_name: str, params_file: str) -> None:
    """Raise when the template creates an OIDC provider or ECR repository another stack owns."""
    resources = template.get("Resources", {}).values()
    owned = _owned(aws, stack_name)
    for r in resources:
        if r.get("Type") != OIDC_PROVIDER_TYPE:
            continue
        host = str(r["Properties"]["Url"]).removeprefix("https://")
        providers = aws.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]
        taken = [p["Arn"] for p in providers if p["Arn"].endswith(f":oidc-provider/{host}") and p["Arn"] not in owned]
        if taken:
            raise DeployError(
                f"{params_file}: bootstrap.create_oidc_provider: the account already has the OIDC provider "
                f"{taken[0]} (not made by {stack_name}); set it to false: one environment per account owns it"
            )
    names = [str(r["Properties"]["RepositoryName"]) for r in resources if r.get("Type") == REPOSITORY_TYPE]
    taken_repos = sorted(_existing_repositories(aws, names) - owned)
    if taken_repos:
        raise DeployError(
            f"{params_file}: bootstrap.repositories: ECR repositories {', '.join(taken_repos)} already exist in "
            f"{aws.region} (not made by {stack_name}); set repositories: [] where another environment owns them"
        )
