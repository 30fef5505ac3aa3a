"""Attacks across trust boundaries, decided offline: one environment's templates on another's
resources in a shared account (dev + staging), the IAM resources of stacks to come, and a pull
request's change sets.

Offline: the built bootstrap templates' policies (service role, permissions boundary) are resolved
for one account and every request is decided by tests/policy_eval.py, because moto's server does
not enforce IAM (see tests/test_attacks.py). The requests carry the tag CloudFormation puts on what
it creates (``aws:cloudformation:stack-name``), as IAM's request context would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.deploy import changeset
from kr_cfn.deploy.review import render_markdown
from kr_cfn.iam import boundary_name, role_path
from stacks import bootstrap
from tests.conftest import built, load_env, resources_of_type
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
    ("elasticloadbalancing:CreateRule", "elasticloadbalancing", "listener/app/dev/50dc6c49/f2f7dc8e"),
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
    if service == "elasticfilesystem" and not resources_of_type(built(env)["data"], "AWS::EFS::FileSystem"):
        # prod keeps Qdrant on EBS (services.qdrant.storage: ebs): no file system, no EFS action at all.
        assert not evaluate(Request(action, _arn(service, resource), {TAG: _stack(env)}), role).allowed
        return
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
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "elasticfilesystem:Client*"],
                "Resource": ["*"],
            }
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


# --------------------------------------------------------------------------- resource types to come


def _with_ec2_qdrant(env: str) -> dict[str, Any]:
    """``env``'s bootstrap template for an application that also runs Qdrant on EC2 (instance profile,
    launch template, Auto Scaling group, EventBridge Scheduler, AWS Backup, a managed policy of its own)."""
    cfg = load_env(env)
    app = stacks.application([t for name, t in stacks.build_all(cfg).items() if name != "bootstrap"])
    app = dataclasses.replace(
        app,
        resource_types=tuple(
            sorted(
                {
                    *app.resource_types,
                    "AWS::IAM::InstanceProfile",
                    "AWS::IAM::ManagedPolicy",
                    "AWS::EC2::LaunchTemplate",
                    "AWS::AutoScaling::AutoScalingGroup",
                    "AWS::Scheduler::Schedule",
                    "AWS::Backup::BackupPlan",
                    "AWS::Backup::BackupSelection",
                    "AWS::Backup::BackupVault",
                }
            )
        ),
        role_services=tuple(
            sorted({*app.role_services, "ec2.amazonaws.com", "scheduler.amazonaws.com", "backup.amazonaws.com"})
        ),
    )
    return bootstrap.build(config.bootstrap_slice(cfg, app)).to_dict()


def _policies_of(t: dict[str, Any], env: str) -> dict[str, Policy]:
    prefix = load_env(env).names.prefix
    names = {
        "ArtifactsBucket.Arn": f"arn:aws:s3:::{prefix}-artifacts-{ACCOUNT}-{IAM_REGION}",
        **{k: _arn("iam", f"policy/{k}") for k, r in t["Resources"].items() if r["Type"] == "AWS::IAM::ManagedPolicy"},
    }
    role = t["Resources"][bootstrap.SERVICE_ROLE]["Properties"]
    policies = {p["PolicyName"]: _resolve(p["PolicyDocument"], ACCOUNT, names) for p in role["Policies"]}
    for ref in role.get("ManagedPolicyArns", []):
        policies[ref["Ref"]] = _resolve(t["Resources"][ref["Ref"]]["Properties"]["PolicyDocument"], ACCOUNT, names)
    return policies


NAMES = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
ZONE = "arn:aws:route53:::hostedzone/Z0COMPANYZONE"


def _records(env: str, *names: str) -> Decision:
    request = Request("route53:ChangeResourceRecordSets", ZONE, {NAMES: list(names)} if names else {})
    return evaluate(request, _service_role_of(env, ACCOUNT))


@pytest.mark.parametrize(
    "names",
    [
        ("example.com",),  # the company's apex in the same zone
        ("www.knowledgerouter.example.com.evil.org",),
        ("mail.example.com", "knowledgerouter.example.com"),  # one own name does not carry a foreign one
        ("_acme.example.com",),
        (),  # a request without the names key
    ],
)
def test_service_role_cannot_change_dns_records_outside_the_stacks_names(names: tuple[str, ...]) -> None:
    """Failed before DnsRecordsOfTheStacks: route53:ChangeResourceRecordSets was on every zone and name."""
    decision = _records("prod", *names)
    assert not decision.allowed and decision.reason.startswith("implicitly denied"), decision


def test_service_role_changes_the_records_its_stacks_write() -> None:
    # prod: the alias record, the certificate's validation record, Cloud Map's namespace records
    for names in (
        ("knowledgerouter.example.com",),
        ("_3639ac514e785e898d2646601fa951d5.knowledgerouter.example.com",),
        ("knowledge.local", "backend.knowledge.local"),
    ):
        assert _records("prod", *names) == Decision(True, "allowed by DnsRecordsOfTheStacks (stacks)"), names
    # dev has no domain: only its service-discovery namespace
    assert not _records("dev", "knowledgerouter.example.com").allowed
    assert _records("dev", "qdrant.knowledge.local").allowed


def test_service_role_manages_instance_profiles_and_policies_under_the_path_only() -> None:
    """Failed before: every IAM handler permission was scoped to role ARNs, so an instance profile or a
    managed policy of a stack could not be made, and iam:AttachUserPolicy rode along."""
    policies = _policies_of(_with_ec2_qdrant("staging"), "staging")
    path = role_path(load_env("staging").names.prefix)
    boundary = {"iam:PermissionsBoundary": _arn("iam", f"policy/{boundary_name(load_env('staging').names.prefix)}")}
    for action, resource, context, allowed in (
        ("iam:CreateInstanceProfile", f"instance-profile{path}QdrantProfile-1A2B", {}, True),
        ("iam:AddRoleToInstanceProfile", f"instance-profile{path}QdrantProfile-1A2B", {}, True),
        ("iam:CreateInstanceProfile", "instance-profile/knowledgerouter-dev/QdrantProfile-1A2B", {}, False),
        ("iam:CreateInstanceProfile", "instance-profile/AdminProfile", {}, False),
        ("iam:CreatePolicy", f"policy{path}QdrantPolicy-1A2B", {}, True),
        ("iam:CreatePolicyVersion", f"policy{path}QdrantPolicy-1A2B", {}, True),
        ("iam:CreatePolicyVersion", "policy/knowledgerouter-staging-app-boundary", {}, False),
        ("iam:CreatePolicy", "policy/Admin", {}, False),
        ("iam:AttachUserPolicy", "user/evil", {}, False),
        ("iam:CreateUser", "user/evil", {}, False),
        ("iam:CreateAccessKey", "user/evil", {}, False),
        ("iam:AddUserToGroup", "group/admins", {}, False),
        # the stack's own policy on a bounded role under the path; never AdministratorAccess
        (
            "iam:AttachRolePolicy",
            f"role{path}QdrantRole-1A2B",
            {**boundary, "iam:PolicyARN": _arn("iam", f"policy{path}QdrantPolicy-1A2B")},
            True,
        ),
        (
            "iam:AttachRolePolicy",
            f"role{path}QdrantRole-1A2B",
            {**boundary, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"},
            False,
        ),
        ("iam:PassRole", f"role{path}QdrantRole-1A2B", {"iam:PassedToService": "ec2.amazonaws.com"}, True),
        ("iam:PassRole", f"role{path}SchedulerRole-1A2B", {"iam:PassedToService": "scheduler.amazonaws.com"}, True),
        ("iam:PassRole", f"role{path}BackupRole-1A2B", {"iam:PassedToService": "backup.amazonaws.com"}, True),
        ("iam:PassRole", f"role{path}QdrantRole-1A2B", {"iam:PassedToService": "lambda.amazonaws.com"}, False),
        (
            "iam:CreateServiceLinkedRole",
            "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
            {"iam:AWSServiceName": "autoscaling.amazonaws.com"},
            True,
        ),
        (
            "iam:CreateServiceLinkedRole",
            "role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup",
            {"iam:AWSServiceName": "backup.amazonaws.com"},
            True,
        ),
    ):
        decision = evaluate(Request(action, _arn("iam", resource), context), policies)
        assert decision.allowed is allowed, (action, resource, decision.reason)


def test_application_without_new_types_gets_no_instance_profile_or_policy_statements() -> None:
    # staging: no instance profile (prod's Qdrant host has one, services.qdrant.storage: ebs)
    sids = {s["Sid"] for p in _service_role_of("staging", ACCOUNT).values() for s in p["Statement"] if "Sid" in s}
    assert "ManageApplicationRoles" in sids
    assert not sids & {"ManageInstanceProfiles", "ManagePolicies"}


# --------------------------------------------------------------------------- pull-request change sets


def _github_role_policies(env: str, logical_id: str) -> dict[str, Policy]:
    t = built(env)["bootstrap"]
    prefix = load_env(env).names.prefix
    names = {
        "ArtifactsBucket.Arn": f"arn:aws:s3:::{prefix}-artifacts-{ACCOUNT}-{IAM_REGION}",
        f"{bootstrap.SERVICE_ROLE}.Arn": _arn("iam", f"role/{prefix}-cloudformation"),
    }
    role = t["Resources"][logical_id]["Properties"]
    return {p["PolicyName"]: _resolve(p["PolicyDocument"], ACCOUNT, names) for p in role["Policies"]}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_pull_request_cannot_delete_the_change_set_under_review(env: str) -> None:
    """Failed before: the plan role (any pull request) could DeleteChangeSet any change set on the
    application stacks, e.g. the release plan's between its review and the approval (the deploy
    job then finds nothing to execute), and create change sets under any name."""
    plan = _github_role_policies(env, bootstrap.PLAN_ROLE)
    root = load_env(env).deploy.stack(load_env(env).names)
    stack = _arn("cloudformation", f"stack/{root}/0a1b2c3d")
    released = {"cloudformation:ChangeSetName": "kr-cfn-0123456789abcdef-1a2b3c4d"}
    own = {"cloudformation:ChangeSetName": f"{changeset.PR_CHANGE_SET_PREFIX}0123456789abcdef-1a2b3c4d"}
    for action in ("cloudformation:DeleteChangeSet", "cloudformation:CreateChangeSet"):
        assert not evaluate(Request(action, stack, released), plan).allowed, action
        assert evaluate(Request(action, stack, own), plan).allowed, action
    assert evaluate(Request("cloudformation:DescribeChangeSet", stack, released), plan).allowed
    # The release plan makes and cleans up its own change sets under any name.
    release = _github_role_policies(env, bootstrap.RELEASE_PLAN_ROLE)
    assert evaluate(Request("cloudformation:DeleteChangeSet", stack, released), release).allowed


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_deploy_role_never_executes_a_pull_request_change_set(env: str) -> None:
    deploy = _github_role_policies(env, bootstrap.DEPLOY_ROLE)
    root = load_env(env).deploy.stack(load_env(env).names)
    stack = _arn("cloudformation", f"stack/{root}/0a1b2c3d")
    pr = {"cloudformation:ChangeSetName": f"{changeset.PR_CHANGE_SET_PREFIX}0123456789abcdef-1a2b3c4d"}
    assert evaluate(Request("cloudformation:ExecuteChangeSet", stack, pr), deploy) == Decision(
        False, "explicitly denied by NeverExecutePullRequestChangeSets (deploy)"
    )
    released = {"cloudformation:ChangeSetName": "kr-cfn-0123456789abcdef-1a2b3c4d"}
    assert evaluate(Request("cloudformation:ExecuteChangeSet", stack, released), deploy).allowed


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_deploy_role_never_executes_a_pull_request_change_set_named_by_arn(env: str) -> None:
    """Failed before: the Deny matched the name only; how AWS fills cloudformation:ChangeSetName when
    ExecuteChangeSet names the change set by ARN is not documented, so the ARN form is denied too.
    The deploy role still executes the release's change sets either way (kr-cfn apply: by name)."""
    deploy = _github_role_policies(env, bootstrap.DEPLOY_ROLE)
    root = load_env(env).deploy.stack(load_env(env).names)
    stack = _arn("cloudformation", f"stack/{root}/0a1b2c3d")
    for name, denied in (
        (f"{changeset.PR_CHANGE_SET_PREFIX}0123456789abcdef-1a2b3c4d", True),
        ("kr-cfn-0123456789abcdef-1a2b3c4d", False),
    ):
        by_arn = {"cloudformation:ChangeSetName": _arn("cloudformation", f"changeSet/{name}/5e6f7a8b")}
        for context in ({"cloudformation:ChangeSetName": name}, by_arn):
            decision = evaluate(Request("cloudformation:ExecuteChangeSet", stack, context), deploy)
            if denied:
                assert decision == Decision(False, "explicitly denied by NeverExecutePullRequestChangeSets (deploy)")
            else:
                assert decision.allowed, (context, decision)
    # any partition: the China and GovCloud ARNs are denied too
    cn = {"cloudformation:ChangeSetName": f"arn:aws-cn:cloudformation:cn-north-1:{ACCOUNT}:changeSet/kr-cfn-pr-1/x"}
    assert not evaluate(Request("cloudformation:ExecuteChangeSet", stack, cn), deploy).allowed


def test_change_set_prefix_is_the_same_on_both_sides() -> None:
    """stacks/ never imports deployment code: the name prefix is written twice and must agree."""
    assert bootstrap.PR_CHANGE_SETS == changeset.PR_CHANGE_SET_PREFIX
    target = changeset.Target(stack_name="s", template_url="https://x", pull_request=True)
    assert changeset.unique_name(target, "UPDATE", []).startswith(changeset.PR_CHANGE_SET_PREFIX)
    release = changeset.unique_name(changeset.Target(stack_name="s", template_url="https://x"), "UPDATE", [])
    assert release.startswith(changeset.CHANGE_SET_PREFIX)
    assert not release.startswith(changeset.PR_CHANGE_SET_PREFIX)


# --------------------------------------------------------------------------- change sets made elsewhere

_ROOT_ID = "arn:aws:cloudformation:eu-central-1:123456789012:stack/knowledgerouter/5e6f7a8b-4b5a-11ef-9a8b-06c1d2e3f4a5"


def _hand_made(include_nested: bool, nested_id: str | None) -> dict[str, Any]:
    """DescribeChangeSet of the prod root (AWS's shape): DataStack updated, as `aws cloudformation
    create-change-set` makes it without --include-nested-stacks (no nested change set)."""
    change: dict[str, Any] = {
        "Action": "Modify",
        "LogicalResourceId": "DataStack",
        "PhysicalResourceId": _ROOT_ID.replace("knowledgerouter/", "knowledgerouter-DataStack-1QAZ2WSX3EDC/"),
        "ResourceType": "AWS::CloudFormation::Stack",
        "Replacement": "False",
        "Scope": ["Properties"],
        "Details": [
            {
                "Target": {"Attribute": "Properties", "Name": "TemplateURL", "RequiresRecreation": "Never"},
                "Evaluation": "Static",
                "ChangeSource": "DirectModification",
            }
        ],
    }
    if nested_id:
        change["ChangeSetId"] = nested_id
    return {
        "ChangeSetName": "by-hand",
        "ChangeSetId": "arn:aws:cloudformation:eu-central-1:123456789012:changeSet/by-hand/3e4f5a6b",
        "StackId": _ROOT_ID,
        "StackName": "knowledgerouter",
        "IncludeNestedStacks": include_nested,
        "ExecutionStatus": "AVAILABLE",
        "Status": "CREATE_COMPLETE",
        "Changes": [{"Type": "Resource", "HookInvocationCount": 0, "ResourceChange": change}],
    }


def test_nested_stack_update_without_its_change_set_is_blocked() -> None:
    """Failed before: `apply --change-set` of a change set made without IncludeNestedStacks passed the
    guard, though what DataStack's update does inside (replace the database) was never shown."""
    root = _hand_made(include_nested=False, nested_id=None)
    stacks_ = changeset.walk(lambda arn: {}, root)
    review = changeset.build_review(root, stacks_, "eu-central-1", [], "UPDATE")
    assert [(f.path, f.logical_id, f.allowed) for f in review.blocked] == [("root", "DataStack", False)]
    assert review.blocked[0].reason == (
        "its changes are not in this change set (made without IncludeNestedStacks): run kr-cfn plan"
    )
    assert review.blocked[0].what == (
        "updated, what it does inside unknown: "
        "its changes are not in this change set (made without IncludeNestedStacks): run kr-cfn plan"
    )
    assert "updated, what it does inside unknown" in render_markdown(review)
    allowed = changeset.build_review(root, stacks_, "eu-central-1", ["DataStack"], "UPDATE")
    assert not allowed.blocked


def test_nested_stack_update_with_its_change_set_is_walked_not_blocked() -> None:
    nested_id = "arn:aws:cloudformation:eu-central-1:123456789012:changeSet/by-hand-DataStack-1A2B/7c8d"
    root = _hand_made(include_nested=True, nested_id=nested_id)
    nested = {"ChangeSetId": nested_id, "StackName": "knowledgerouter-DataStack-1QAZ2WSX3EDC", "Changes": []}
    stacks_ = changeset.walk(lambda arn: nested if arn == nested_id else {}, root)
    review = changeset.build_review(root, stacks_, "eu-central-1", [], "UPDATE")
    assert [s.path for s in stacks_] == ["root", "root/DataStack"] and not review.findings
