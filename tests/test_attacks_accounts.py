"""Attacks of one environment's templates on another's resources in a shared account (dev + staging).

Offline: the built bootstrap templates' policies (service role, permissions boundary) are resolved
for one account and every request is decided by tests/policy_eval.py, because moto's server does
not enforce IAM (see tests/test_attacks.py). The requests carry the tag CloudFormation puts on what
it creates (``aws:cloudformation:stack-name``), as IAM's request context would.
"""

from __future__ import annotations

from typing import Any

import pytest

from stacks import bootstrap
from tests.conftest import built, load_env
from tests.policy_eval import Decision, Policy, Request, evaluate
from tests.test_attacks import IAM_REGION, _resolve, _service_role_of

ACCOUNT = "222222222222"
TAG = "aws:ResourceTag/aws:cloudformation:stack-name"
DENIED = Decision(False, "explicitly denied by DenyOtherStacksResources (stacks)")


def _arn(service: str, resource: str) -> str:
    region = "" if service in ("iam", "s3") else IAM_REGION
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def _boundary_of(env: str) -> Policy:
    t = built(env)["bootstrap"]
    document = t["Resources"][bootstrap.BOUNDARY_POLICY]["Properties"]["PolicyDocument"]
    resolved: Policy = _resolve(document, ACCOUNT, {})
    return resolved


def _stack(env: str, child: str = "DataStack") -> str:
    """A nested stack name of ``env`` as CloudFormation makes it: '<root>-<LogicalId>-<suffix>'."""
    return f"{load_env(env).deploy.stack(load_env(env).names)}-{child}-1A2B3C4D5E6F"


# What a staging template could point at in dev (both in the non-production account).
ATTACKS: list[tuple[str, str, str]] = [
    # an ingress rule on dev's database security group (AWS::EC2::SecurityGroupIngress GroupId)
    ("ec2:AuthorizeSecurityGroupIngress", "ec2", "security-group/sg-0dev"),
    # a route in dev's route table (AWS::EC2::Route RouteTableId)
    ("ec2:CreateRoute", "ec2", "route-table/rtb-0dev"),
    # a rule on dev's listener sending its traffic elsewhere (AWS::ElasticLoadBalancingV2::ListenerRule)
    ("elasticloadbalancing:CreateRule", "elasticloadbalancing", "listener/app/dev-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"),
    # an access point on dev's Qdrant file system, mounted by a staging task (AWS::EFS::AccessPoint)
    ("elasticfilesystem:CreateAccessPoint", "elasticfilesystem", "file-system/fs-0dev"),
    # a read replica of dev's database in a staging stack (AWS::RDS::DBInstance SourceDBInstanceIdentifier)
    ("rds:CreateDBInstanceReadReplica", "rds", "db:knowledgerouter-dev-db"),
    # dev's secret read through a dynamic reference ({{resolve:secretsmanager:...}})
    ("secretsmanager:GetSecretValue", "secretsmanager", "secret:knowledgerouter-dev/django-AbCdEf"),
    # a grant on dev's key (restoring a snapshot encrypted with it)
    ("kms:CreateGrant", "kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    # dev's alert topic opened to anyone (AWS::SNS::TopicPolicy)
    ("sns:SetTopicAttributes", "sns", "knowledgerouter-dev-alerts"),
]


@pytest.mark.parametrize(("action", "service", "resource"), ATTACKS)
def test_service_role_cannot_touch_another_environments_resources(action: str, service: str, resource: str) -> None:
    """Failed before the DenyOtherStacksResources statement: the handler permissions are on '*'."""
    staging = _service_role_of("staging", ACCOUNT)
    other = evaluate(Request(action, _arn(service, resource), {TAG: _stack("dev")}), staging)
    assert other == DENIED
    # The bootstrap stack's resources are another stack's too.
    bootstrap_tagged = {TAG: f"{load_env('staging').names.prefix}-bootstrap"}
    assert evaluate(Request(action, _arn(service, resource), bootstrap_tagged), staging) == DENIED


@pytest.mark.parametrize(("action", "service", "resource"), ATTACKS)
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_service_role_still_manages_its_own_resources(env: str, action: str, service: str, resource: str) -> None:
    role = _service_role_of(env, ACCOUNT)
    for tags in (
        {TAG: _stack(env)},  # a child stack's resource
        {TAG: f"{_stack(env, 'EcsStack')}-InnerStack-9Z8Y7X"},  # a stack nested in a child
        {TAG: load_env(env).deploy.stack(load_env(env).names)},  # the root's own
        {},  # not tagged yet (being created), or a type that does not carry the tag
    ):
        assert evaluate(Request(action, _arn(service, resource), tags), role).allowed, tags


def test_prod_names_do_not_cover_other_environments() -> None:
    """prod's prefix 'knowledgerouter' is a name prefix of every dev stack; its patterns are not."""
    prod = _service_role_of("prod", ACCOUNT)
    sg = _arn("ec2", "security-group/sg-0dev")
    decision = evaluate(Request("ec2:AuthorizeSecurityGroupIngress", sg, {TAG: _stack("dev")}), prod)
    assert decision == DENIED


def test_application_roles_cannot_read_another_environments_secrets_or_file_systems() -> None:
    """A staging template gives its (bounded) task role secret:* and file-system/*: the boundary refuses dev's."""
    boundary = _boundary_of("staging")
    wide = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "elasticfilesystem:Client*"], "Resource": "*"}
        ],
    }
    denied = Decision(False, "explicitly denied by DenyOtherStacksResources (permissions boundary)")
    for action, resource in (
        ("secretsmanager:GetSecretValue", _arn("secretsmanager", "secret:knowledgerouter-dev/django-AbCdEf")),
        ("elasticfilesystem:ClientMount", _arn("elasticfilesystem", "file-system/fs-0dev")),
    ):
        assert evaluate(Request(action, resource, {TAG: _stack("dev")}), {"inline": wide}, boundary) == denied
        assert evaluate(Request(action, resource, {TAG: _stack("staging")}), {"inline": wide}, boundary).allowed


def test_application_roles_still_pull_the_shared_images() -> None:
    """dev's bootstrap stack owns the account's ECR repositories; staging's execution role pulls from them."""
    boundary = _boundary_of("staging")
    pull: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}],
    }
    repo = _arn("ecr", "repository/knowledgerouter-backend")
    tags = {TAG: "knowledgerouter-dev-bootstrap"}
    assert evaluate(Request("ecr:BatchGetImage", repo, tags), {"inline": pull}, boundary).allowed

