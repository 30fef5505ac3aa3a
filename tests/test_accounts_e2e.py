"""Two environments in one account, on the local endpoint (moto's server, see aws_endpoint.py).

The shipped params put dev and staging in one account: dev's bootstrap owns the account's
GitHub OIDC provider and the ECR repositories, staging's uses them. Bootstrapping dev then
staging must succeed; a params file that would create an account-wide resource again is
refused before anything is created, naming the key to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests import aws_endpoint
from tests.test_deploy_e2e import REGION, Project, _stack, endpoint  # noqa: F401 - the module's endpoint fixture


@pytest.fixture(autouse=True)
def empty_account(endpoint: str) -> Iterator[None]:  # noqa: F811
    """Each test starts from an empty account (moto keeps its state per process, across test modules)."""
    aws_endpoint.reset(endpoint)
    yield


def test_dev_then_staging_bootstrap_into_one_account(
    endpoint: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = Project(tmp_path, capsys)
    for env in ("dev", "staging"):
        project.build(env)
        project.ok("bootstrap", "--env", env)
        # CREATE_COMPLETE inline; UPDATE_COMPLETE when the body went by TemplateURL after the bucket (bootbody.py)
        assert _stack(f"knowledgerouter-{env}-bootstrap")["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    ecr = boto3.client("ecr", region_name=REGION)
    names = sorted(r["repositoryName"] for r in ecr.describe_repositories()["repositories"])
    assert names == ["knowledgerouter-backend", "knowledgerouter-frontend"]
    # Each environment has its own roles and boundary; staging's trust names the provider dev made.
    iam = boto3.client("iam", region_name=REGION)
    for env in ("dev", "staging"):
        assert iam.get_role(RoleName=f"knowledgerouter-{env}-cloudformation")
        assert iam.get_policy(PolicyArn=f"arn:aws:iam::123456789012:policy/knowledgerouter-{env}-app-boundary")
    trust = iam.get_role(RoleName="knowledgerouter-staging-github-deploy")["Role"]["AssumeRolePolicyDocument"]
    principal = trust["Statement"][0]["Principal"]["Federated"]
    assert principal == "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"


def test_second_owner_of_the_account_resources_is_refused(
    endpoint: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = Project(tmp_path, capsys)
    # dev owns the account's repositories; the account has its GitHub OIDC provider (moto's
    # CloudFormation does not create AWS::IAM::OIDCProvider, so it is made here as dev's would be).
    project.build("dev")
    project.ok("bootstrap", "--env", "dev")
    boto3.client("iam", region_name=REGION).create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40]
    )

    project.set("staging", "bootstrap.create_oidc_provider", True)
    project.build("staging")
    code, _, err = project.run("bootstrap", "--env", "staging")
    assert code == 2
    assert err.strip() == (
        f"{project.params / 'staging.yaml'}: bootstrap.create_oidc_provider: the account already has the OIDC "
        "provider arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com (not made by "
        "knowledgerouter-staging-bootstrap); set it to false: one environment per account owns it"
    )

    project.set("staging", "bootstrap.create_oidc_provider", False)
    project.set("staging", "bootstrap.repositories", ["backend", "frontend"])
    project.build("staging")
    code, _, err = project.run("bootstrap", "--env", "staging")
    assert code == 2
    assert err.strip() == (
        f"{project.params / 'staging.yaml'}: bootstrap.repositories: ECR repositories knowledgerouter-backend, "
        f"knowledgerouter-frontend already exist in {REGION} (not made by knowledgerouter-staging-bootstrap); "
        "set repositories: [] where another environment owns them"
    )
