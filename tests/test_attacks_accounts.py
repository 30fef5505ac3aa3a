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
from kr_cfn import config, qdrant
from kr_cfn.changes import changeset
from kr_cfn.changes.review import render_markdown
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
    ("secretsmanager:GetSecretValue", "secretsmanager", "secret:/knowledgerouter-dev/openai-api-key-AbCdEf"),
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
    # secrets are also scoped by name: the env's own '/<prefix>/<name>'
    resource = resource.replace("/knowledgerouter-dev/", f"/{load_env(env).names.prefix}/")
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
    for action, resource, own in (
        (
            "secretsmanager:GetSecretValue",
            _arn("secretsmanager", "secret:/knowledgerouter-dev/openai-api-key-AbCdEf"),
            _arn("secretsmanager", "secret:/knowledgerouter-staging/openai-api-key-AbCdEf"),
        ),
        (
            "elasticfilesystem:ClientMount",
            _arn("elasticfilesystem", "file-system/fs-0dev"),
            _arn("elasticfilesystem", "file-system/fs-0dev"),
        ),
    ):
        assert evaluate(Request(action, resource, {TAG: _stack("dev")}), {"inline": wide}, boundary) == denied
        assert evaluate(Request(action, own, {TAG: _stack("staging")}), {"inline": wide}, boundary).allowed


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
ZONE = f"arn:aws:route53:::hostedzone/{load_env('prod').alb.hosted_zone_id}"  # the company's zone prod names


def _records(env: str, *names: str, zone: str = ZONE) -> Decision:
    request = Request("route53:ChangeResourceRecordSets", zone, {NAMES: list(names)} if names else {})
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
    # prod: the alias record and the certificate's validation record
    for names in (
        ("knowledgerouter.example.com",),
        ("_3639ac514e785e898d2646601fa951d5.knowledgerouter.example.com",),
    ):
        assert _records("prod", *names) == Decision(True, "allowed by DnsRecordsOfTheStacks (stacks)"), names
    # dev has no domain: no record at all
    assert not _records("dev", "knowledgerouter.example.com").allowed


def test_service_role_writes_only_in_the_zones_its_stacks_name() -> None:
    """Failed before: the statement was on every hosted zone (for Cloud Map's private zone, whose id is made at
    create time), so prod's own names could be written into any zone of the account, a private one included."""
    for zone in ("Z0PRIVATESPLITHORIZON", "Z0OTHERCOMPANYZONE"):
        decision = _records("prod", "knowledgerouter.example.com", zone=f"arn:aws:route53:::hostedzone/{zone}")
        assert not decision.allowed, zone


def test_service_role_writes_no_cloud_map_record() -> None:
    """Failed before: every env's role could write 'knowledge.local' and '*.knowledge.local', the namespace dev
    and staging shared in one account. Cloud Map writes its zone's records itself."""
    for env, names in (
        ("prod", ("knowledge.local", "backend.knowledge.local")),  # its own namespace
        ("dev", ("qdrant.knowledge.local",)),
        ("staging", ("backend.knowledge.local",)),
        ("dev", ("backend.knowledgerouter-staging.local",)),  # the other env of the shared account
        ("staging", ("backend.knowledgerouter-dev.local", "knowledgerouter-dev.local")),
        ("dev", ("qdrant.knowledgerouter-dev.local",)),  # its own: Cloud Map's
    ):
        assert not _records(env, *names).allowed, (env, names)


def test_each_environment_has_its_own_cloud_map_namespace() -> None:
    """Failed before: dev and staging (one account) both registered their services under knowledge.local."""
    names = {env: built(env)["ecs"]["Resources"]["Namespace"]["Properties"]["Name"] for env in ("dev", "staging")}
    assert names == {"dev": "knowledgerouter-dev.local", "staging": "knowledgerouter-staging.local"}
    assert not names["dev"].endswith("." + names["staging"]) and not names["staging"].endswith("." + names["dev"])
    # prod keeps the plan's name (its own account): no replacement of its namespace
    assert built("prod")["ecs"]["Resources"]["Namespace"]["Properties"]["Name"] == "knowledge.local"


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


# --------------------------------------------------------------------------- secrets, stacks and backups per env


class _Names(dict[str, str]):
    """Parameter and attribute values for _resolve; what a test does not need resolves to a placeholder."""

    def __missing__(self, key: str) -> str:
        return f"unresolved:{key}"


def _db_secret(env: str) -> tuple[str, dict[str, str]]:
    """The RDS-managed master secret of ``env``: its ARN (a random name) and the tag RDS puts on it."""
    db = _arn("rds", f"db:{load_env(env).names('postgres')}")
    tag = "aws:rds:primaryDBInstanceArn"  # the tag RDS puts on the secret it manages
    arn = _arn("secretsmanager", f"secret:rds!db-{env}-1234-5678-AbCdEf")
    return arn, {f"secretsmanager:ResourceTag/{tag}": db, f"aws:ResourceTag/{tag}": db}


def _named_secret(env: str, name: str = "openai-api-key") -> str:
    return _arn("secretsmanager", f"secret:/{load_env(env).names.prefix}/{name}-AbCdEf")


WIDE_SECRETS: Policy = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
}


def test_application_roles_read_only_their_own_environments_secrets() -> None:
    """Failed before: the boundary allowed secret:*, and the RDS-managed secret carries no stack tag, so a
    staging task role given secret:* read dev's database password."""
    boundary = _boundary_of("staging")
    for secret, tags, allowed in (
        (*_db_secret("staging"), True),  # its own database's secret (tagged by RDS with its instance)
        (_named_secret("staging"), {}, True),
        (_named_secret("staging", "grafana-admin"), {}, True),
        (*_db_secret("dev"), False),  # the other env's database, same account
        (_named_secret("dev"), {}, False),
        (_arn("secretsmanager", "secret:rds!db-untagged-AbCdEf"), {}, False),
        (_arn("secretsmanager", "secret:company/admin-AbCdEf"), {}, False),
    ):
        decision = evaluate(Request("secretsmanager:GetSecretValue", secret, tags), {"wide": WIDE_SECRETS}, boundary)
        assert decision.allowed == allowed, (secret, decision)
    # The execution role names each secret by ARN (the database's from MasterUserSecret.SecretArn): it still
    # reads its own env's, under the narrower boundary, and no other env's.
    for env, other in (("dev", "staging"), ("staging", "dev")):
        role, own_boundary = _ecs_role(env, "ExecutionRole"), _boundary_of(env)
        for secret, tags in (_db_secret(env), (_named_secret(env), {}), (_named_secret(env, "jira-credentials"), {})):
            assert evaluate(Request("secretsmanager:GetSecretValue", secret, tags), role, own_boundary).allowed
        for secret, tags in (_db_secret(other), (_named_secret(other), {})):
            assert not evaluate(Request("secretsmanager:GetSecretValue", secret, tags), role, own_boundary).allowed


def _ecs_role(env: str, logical_id: str) -> dict[str, Policy]:
    """An ECS-stack role's inline policies, its Parameters resolved as the root passes them."""
    prefix = load_env(env).names.prefix
    secrets = {"OpenAi": "openai-api-key", "GrafanaAdmin": "grafana-admin", "Confluence": "confluence-credentials"}
    names = _Names(
        DbSecretArn=_db_secret(env)[0],
        JiraSecretArn=_named_secret(env, "jira-credentials"),
        BackupsBucketArn=f"arn:aws:s3:::{prefix}-backups-{ACCOUNT}-{IAM_REGION}",
        DataBucketArn=f"arn:aws:s3:::{prefix}-data-{ACCOUNT}-{IAM_REGION}",
        **{f"{k}SecretArn": _named_secret(env, v) for k, v in secrets.items()},
    )
    props = built(env)["ecs"]["Resources"][logical_id]["Properties"]
    return {p["PolicyName"]: _resolve(p["PolicyDocument"], ACCOUNT, names) for p in props["Policies"]}


def test_service_role_reads_only_the_secrets_its_stacks_make() -> None:
    """Failed before: GetSecretValue was a handler permission on '*', refused only for resources tagged with
    another stack's name, so another env's RDS-managed secret (no stack tag) or an untagged one was readable."""
    staging = _service_role_of("staging", ACCOUNT)
    read = "secretsmanager:GetSecretValue"
    assert evaluate(Request(read, _named_secret("staging"), {TAG: _stack("staging")}), staging).allowed
    assert evaluate(Request(read, _named_secret("staging", "grafana-admin")), staging).allowed  # being created
    for secret, tags in (_db_secret("dev"), _db_secret("staging"), (_named_secret("dev"), {})):
        assert not evaluate(Request(read, secret, tags), staging).allowed, secret


def _github_role_of(env: str, logical_id: str) -> dict[str, Policy]:
    t = built(env)["bootstrap"]
    prefix = load_env(env).names.prefix
    names = _Names(
        {
            "ArtifactsBucket.Arn": f"arn:aws:s3:::{prefix}-artifacts-{ACCOUNT}-{IAM_REGION}",
            f"{bootstrap.SERVICE_ROLE}.Arn": _arn("iam", f"role/{prefix}-cloudformation"),
        }
    )
    props = t["Resources"][logical_id]["Properties"]
    return {p["PolicyName"]: _resolve(p["PolicyDocument"], ACCOUNT, names) for p in props["Policies"]}


def _root_stack(env: str) -> str:
    return _arn("cloudformation", f"stack/{load_env(env).deploy.stack(load_env(env).names)}/0a1b2c")


@pytest.mark.parametrize("role", [bootstrap.PLAN_ROLE, bootstrap.RELEASE_PLAN_ROLE, bootstrap.DEPLOY_ROLE])
def test_plan_roles_read_only_their_own_environments_stacks(role: str) -> None:
    """Failed before: ReadStacks was on '*', so dev's pull-request role read staging's templates and outputs."""
    dev = _github_role_of("dev", role)
    for action in ("cloudformation:DescribeStacks", "cloudformation:GetTemplate", "cloudformation:ListChangeSets"):
        for stack in (_root_stack("dev"), _arn("cloudformation", f"stack/{_stack('dev', 'EcsStack')}/0a1b")):
            assert evaluate(Request(action, stack), dev).allowed, (action, stack)
        for stack in (_root_stack("staging"), _arn("cloudformation", f"stack/{_stack('staging')}/0a1b")):
            assert not evaluate(Request(action, stack), dev).allowed, (action, stack)
    assert evaluate(Request("cloudformation:ValidateTemplate", "*"), dev).allowed
    if role == bootstrap.DEPLOY_ROLE:
        # kr-cfn migrate runs the backend's task definition: the deploy role passes only its env's roles to ECS,
        # whose secrets and boundary are its env's
        to_ecs = {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
        own = _arn("iam", f"role{role_path('knowledgerouter-dev')}EcsStack-ExecutionRole-1A2B")
        other = _arn("iam", f"role{role_path('knowledgerouter-staging')}EcsStack-ExecutionRole-1A2B")
        assert evaluate(Request("iam:PassRole", own, to_ecs), dev).allowed
        assert not evaluate(Request("iam:PassRole", other, to_ecs), dev).allowed


def _backups(env: str, key: str = "") -> str:
    return f"arn:aws:s3:::{load_env(env).names('backups')}-{ACCOUNT}-{IAM_REGION}{'/' + key if key else ''}"


def _as_app_role(env: str, logical_id: str, action: str, resource: str, identity: dict[str, Policy]) -> Decision:
    """``action`` by an ECS-stack role of ``env``: its policies, the boundary and the backups bucket's policy."""
    t = built(env)["data"]
    names = _Names({"BackupsBucket.Arn": _backups(env)})
    bucket = _resolve(t["Resources"]["BackupsBucketPolicy"]["Properties"]["PolicyDocument"], ACCOUNT, names)
    principal = {"aws:PrincipalArn": _arn("iam", f"role{role_path(load_env(env).names.prefix)}{logical_id}-1A2B")}
    return evaluate(Request(action, resource, principal), {**identity, "bucket policy": bucket}, _boundary_of(env))


WIDE_S3: Policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_each_writer_writes_only_its_own_prefix_of_the_backups_bucket(env: str) -> None:
    """Failed before: the backend's task role could put anything anywhere in the bucket, qdrant/ included."""
    backend = _ecs_role(env, "BackendTaskRole")
    assert _as_app_role(env, "BackendTaskRole", "s3:PutObject", _backups(env, "backend/dump.sql.gz"), backend).allowed
    for key in ("qdrant/20260101T030000Z/docs.snapshot", "dump.sql.gz", "frontend/x"):
        assert not _as_app_role(env, "BackendTaskRole", "s3:PutObject", _backups(env, key), backend).allowed, key
    snapshots = _ecs_role(env, qdrant.SNAPSHOT_TASK_ROLE)
    snapshot = _backups(env, "qdrant/20260101T030000Z/docs.snapshot")
    for action in ("s3:PutObject", "s3:GetObject"):
        assert _as_app_role(env, qdrant.SNAPSHOT_TASK_ROLE, action, snapshot, snapshots).allowed, action
    assert not _as_app_role(
        env, qdrant.SNAPSHOT_TASK_ROLE, "s3:PutObject", _backups(env, "backend/x"), snapshots
    ).allowed
    # the other env's bucket, even its own prefix there
    other = "staging" if env == "dev" else "dev"
    assert not _as_app_role(env, "BackendTaskRole", "s3:PutObject", _backups(other, "backend/x"), backend).allowed


@pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion"])
def test_no_application_role_removes_a_qdrant_snapshot(action: str) -> None:
    """Failed before: the boundary allows s3:DeleteObject on the env's buckets, so a role given s3:* (a reviewed
    template) deleted the snapshots; now the bucket policy refuses every role under the env's path."""
    snapshot = _backups("staging", "qdrant/20260101T030000Z/docs.snapshot")
    for role in ("BackendTaskRole", qdrant.SNAPSHOT_TASK_ROLE):
        decision = _as_app_role("staging", role, action, snapshot, {"wide": WIDE_S3})
        assert not decision.allowed and decision.reason.startswith("explicitly denied by DenyRemoving"), decision
    # an earlier version of the backend's own backups is no application role's to remove either
    old = _as_app_role(
        "staging", "BackendTaskRole", "s3:DeleteObjectVersion", _backups("staging", "backend/x"), {"wide": WIDE_S3}
    )
    assert old == Decision(False, "explicitly denied by DenyRemovingBackupVersions (bucket policy)")
    # the boundary still lets a role given read_write delete a current object of its own prefix
    assert _as_app_role(
        "staging", "BackendTaskRole", "s3:DeleteObject", _backups("staging", "backend/x"), {"wide": WIDE_S3}
    ).allowed


def test_service_role_changes_no_other_environments_database_secret() -> None:
    """Failed before: the service role's Secrets Manager handler permissions are on '*', and another env's
    RDS-managed secret carries no stack tag, so staging's role could update, delete or re-policy dev's."""
    staging = _service_role_of("staging", ACCOUNT)
    writes = ("UpdateSecret", "DeleteSecret", "PutResourcePolicy", "TagResource", "DescribeSecret")
    for action in (f"secretsmanager:{a}" for a in writes):
        secret, tags = _db_secret("dev")
        assert not evaluate(Request(action, secret, tags), staging).allowed, action
    # Its own database's secret and a secret being created (no tag yet) keep every handler permission.
    own, own_tags = _db_secret("staging")
    for action in ("secretsmanager:TagResource", "secretsmanager:DescribeSecret", "secretsmanager:CreateSecret"):
        assert evaluate(Request(action, own, own_tags), staging).allowed, action
        assert evaluate(Request(action, own), staging).allowed, action
