"""Attacks on the deploy pipeline's trust boundaries; each must fail with the expected message.

IAM attacks (this section): what a template run by the CloudFormation service role, or a
workflow holding the deploy role, could do to take over the account. The bootstrap stack of
dev is deployed to the local endpoint (moto's server, tests/aws_endpoint.py) with the project's
own CLI, its policies are read back through the IAM API, and every attack request is decided
offline by tests/policy_eval.py (identity policies + permissions boundary + explicit deny, with
the condition operators the policies use), because moto's server does not enforce IAM and its
opt-in access control ignores conditions and boundaries. The cross-environment and property
tests evaluate the built templates of every environment the same way.
"""

from __future__ import annotations

import ast
import json
import logging
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

import stacks
from kr_cfn.cli import main
from kr_cfn.config.monitoring import SlackRoute
from kr_cfn.iam import boundary_name, role_path
from stacks import bootstrap
from tests import aws_endpoint
from tests.conftest import ENVS, PARAMS, built, load_env
from tests.policy_eval import Decision, Policy, Request, action_allowed_somewhere, evaluate

IAM_REGION = "eu-central-1"
IAM_PREFIX = "knowledgerouter-dev"


@dataclass(frozen=True)
class IamAccount:
    """The deployed policies of one environment's bootstrap roles, as IAM returns them."""

    account: str
    service_role: dict[str, Policy]
    deploy_role: dict[str, Policy]
    plan_role: dict[str, Policy]
    boundary: Policy

    def arn(self, resource: str, service: str = "iam", region: str = "") -> str:
        return f"arn:aws:{service}:{region}:{self.account}:{resource}"


def _iam_document(document: Any) -> Policy:
    """A policy document as IAM returns it: JSON, URL-encoded JSON, or already parsed.

    (moto 5.2.5 returns the inline policies of a role made by CloudFormation as a Python repr.)
    """
    if isinstance(document, str):
        text = urllib.parse.unquote(document)
        parsed: Policy = json.loads(text) if text.lstrip().startswith('{"') else ast.literal_eval(text)
        return parsed
    return dict(document)


def _iam_role_policies(iam: Any, stack: str, logical_id: str, role: str) -> dict[str, Policy]:
    """The role's inline policies and its managed policies (by the deployed template's ManagedPolicyArns:
    moto 5.2.5 creates a CloudFormation role's managed policies but does not attach them)."""
    policies = {
        name: _iam_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    }
    cfn = boto3.client("cloudformation", region_name=IAM_REGION)
    template = load_template_body(cfn.get_template(StackName=stack)["TemplateBody"])
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    }
    for ref in template["Resources"][logical_id]["Properties"].get("ManagedPolicyArns", []):
        policies[ref["Ref"]] = _iam_managed_policy(iam, physical[ref["Ref"]])
    return policies


def load_template_body(body: Any) -> dict[str, Any]:
    """A template body as GetTemplate returns it (parsed already, or YAML/JSON text)."""
    if isinstance(body, dict):
        return body
    from cfnlint.decode import decode_str

    template, _ = decode_str(body)
    return dict(template)


def _iam_managed_policy(iam: Any, policy_arn: str) -> Policy:
    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    return _iam_document(iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]["Document"])


def _iam_reset(url: str) -> None:
    """An empty account: moto keeps its state per process, across servers and test modules."""
    aws_endpoint.reset(url)


@pytest.fixture(scope="module")
def iam_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamAccount]:
    """dev's bootstrap stack deployed to the local endpoint; its roles' policies read back."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    tmp = tmp_path_factory.mktemp("iam-attacks")
    params, out = tmp / "params", tmp / "out"
    shutil.copytree(PARAMS, params)
    with aws_endpoint.local_endpoint() as url, pytest.MonkeyPatch.context() as mp:
        _iam_reset(url)
        aws_endpoint.point_boto3_at(mp, url, IAM_REGION)
        where = ["--params", str(params), "--out", str(out)]
        assert main(["build", "--env", "dev", "--no-lint", *where]) == 0
        assert main(["bootstrap", "--env", "dev", *where]) == 0
        iam = boto3.client("iam", region_name=IAM_REGION)
        stack = f"{IAM_PREFIX}-bootstrap"
        account = boto3.client("sts", region_name=IAM_REGION).get_caller_identity()["Account"]
        yield IamAccount(
            account=account,
            service_role=_iam_role_policies(iam, stack, bootstrap.SERVICE_ROLE, f"{IAM_PREFIX}-cloudformation"),
            deploy_role=_iam_role_policies(iam, stack, bootstrap.DEPLOY_ROLE, f"{IAM_PREFIX}-github-deploy"),
            plan_role=_iam_role_policies(iam, stack, bootstrap.PLAN_ROLE, f"{IAM_PREFIX}-github-plan"),
            boundary=_iam_managed_policy(iam, f"arn:aws:iam::{account}:policy/{boundary_name(IAM_PREFIX)}"),
        )


def _as_service_role(acct: IamAccount, action: str, resource: str, **context: str) -> Decision:
    return evaluate(Request(action, resource, context), acct.service_role)


def _app_role(acct: IamAccount, name: str = "EcsStack-BackendTaskRole-1A2B") -> str:
    return acct.arn(f"role{role_path(IAM_PREFIX)}{name}")


def _boundary_arn(acct: IamAccount) -> str:
    return acct.arn(f"policy/{boundary_name(IAM_PREFIX)}")


# --------------------------------------------------------------------------- the service role


def test_iam_service_role_cannot_create_a_role_without_the_boundary(iam_account: IamAccount) -> None:
    acct = iam_account
    no_boundary = _as_service_role(acct, "iam:CreateRole", _app_role(acct))
    assert no_boundary == Decision(
        False, f"implicitly denied: no identity policy allows iam:CreateRole on {_app_role(acct)}"
    )
    # AdministratorAccess as the "boundary" is no boundary at all.
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    assert not _as_service_role(acct, "iam:CreateRole", _app_role(acct), **{"iam:PermissionsBoundary": admin}).allowed
    # Today's attack: a role named '<prefix>-anything' outside the environment's path.
    outside = acct.arn(f"role/{IAM_PREFIX}-anything")
    with_boundary = {"iam:PermissionsBoundary": _boundary_arn(acct)}
    assert _as_service_role(acct, "iam:CreateRole", outside, **with_boundary).reason == (
        f"implicitly denied: no identity policy allows iam:CreateRole on {outside}"
    )
    # The one way that works: under the path, with the boundary.
    ok = _as_service_role(acct, "iam:CreateRole", _app_role(acct), **with_boundary)
    assert ok == Decision(True, "allowed by CreateRolesOnlyWithTheBoundary (stacks)")


def test_iam_service_role_cannot_attach_administrator_access(iam_account: IamAccount) -> None:
    acct = iam_account
    context = {"iam:PermissionsBoundary": _boundary_arn(acct)}
    admin = _as_service_role(
        acct,
        "iam:AttachRolePolicy",
        _app_role(acct),
        **context,
        **{"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"},
    )
    assert admin == Decision(
        False, f"implicitly denied: no identity policy allows iam:AttachRolePolicy on {_app_role(acct)}"
    )
    # The managed policy the stacks attach (RDS Enhanced Monitoring) still goes through.
    rds = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    assert _as_service_role(acct, "iam:AttachRolePolicy", _app_role(acct), **context, **{"iam:PolicyARN": rds}).allowed


def test_iam_service_role_cannot_remove_a_boundary(iam_account: IamAccount) -> None:
    decision = _as_service_role(iam_account, "iam:DeleteRolePermissionsBoundary", _app_role(iam_account))
    assert decision == Decision(False, "explicitly denied by DenyRemovingBoundaries (stacks)")


@pytest.mark.parametrize(
    "action", ["iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole"]
)
@pytest.mark.parametrize("role", ["cloudformation", "github-deploy", "github-plan"])
def test_iam_service_role_cannot_edit_itself_or_the_github_roles(
    iam_account: IamAccount, action: str, role: str
) -> None:
    acct = iam_account
    # Even when the request claims the boundary, the explicit deny wins.
    decision = _as_service_role(
        acct, action, acct.arn(f"role/{IAM_PREFIX}-{role}"), **{"iam:PermissionsBoundary": _boundary_arn(acct)}
    )
    assert decision == Decision(False, "explicitly denied by DenyBootstrapRolesAndBoundary (stacks)")


@pytest.mark.parametrize("action", ["iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"])
def test_iam_service_role_cannot_change_the_boundary(iam_account: IamAccount, action: str) -> None:
    decision = _as_service_role(iam_account, action, _boundary_arn(iam_account))
    assert decision == Decision(False, "explicitly denied by DenyBootstrapRolesAndBoundary (stacks)")


@pytest.mark.parametrize("action", ["cloudformation:UpdateStack", "cloudformation:DeleteStack"])
def test_iam_service_role_cannot_change_the_bootstrap_stack(iam_account: IamAccount, action: str) -> None:
    stack = iam_account.arn(f"stack/{IAM_PREFIX}-bootstrap/0a1b2c", "cloudformation", IAM_REGION)
    assert _as_service_role(iam_account, action, stack) == Decision(
        False, "explicitly denied by DenyBootstrapStack (stacks)"
    )


def test_iam_service_role_cannot_rewrite_the_artifacts_bucket(iam_account: IamAccount) -> None:
    bucket = f"arn:aws:s3:::{IAM_PREFIX}-artifacts-{iam_account.account}-{IAM_REGION}"
    for action, resource in (("s3:PutBucketPolicy", bucket), ("s3:PutObject", f"{bucket}/dev/root.json")):
        decision = _as_service_role(iam_account, action, resource)
        assert decision == Decision(False, "explicitly denied by DenyArtifactsBucketChanges (stacks)")
    assert _as_service_role(iam_account, "s3:GetObject", f"{bucket}/dev/root.json").allowed


def test_iam_service_role_passes_application_roles_only_to_their_services(iam_account: IamAccount) -> None:
    acct = iam_account
    to = "iam:PassedToService"
    assert _as_service_role(acct, "iam:PassRole", _app_role(acct), **{to: "ecs-tasks.amazonaws.com"}).allowed
    assert not _as_service_role(acct, "iam:PassRole", _app_role(acct), **{to: "ec2.amazonaws.com"}).allowed
    deploy_role = acct.arn(f"role/{IAM_PREFIX}-github-deploy")
    assert _as_service_role(acct, "iam:PassRole", deploy_role, **{to: "ecs-tasks.amazonaws.com"}) == Decision(
        False, "explicitly denied by DenyBootstrapRolesAndBoundary (stacks)"
    )


def test_iam_service_role_has_no_whole_service_on_every_resource(iam_account: IamAccount) -> None:
    everywhere = [
        (name, s)
        for name, policy in iam_account.service_role.items()
        for s in policy["Statement"]
        if s["Effect"] == "Allow" and s.get("Resource") in ("*", ["*"])
    ]
    assert everywhere  # the handler permissions
    for name, s in everywhere:
        assert not [a for a in s["Action"] if a == "*" or a.endswith(":*")], (name, s.get("Sid"))


def test_iam_bounded_application_role_stays_bounded(iam_account: IamAccount) -> None:
    # A template gives a (bounded) role an inline "everything" policy: the boundary still caps it.
    admin = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    for action, resource in (
        ("iam:CreateUser", iam_account.arn("user/evil")),
        ("iam:PutRolePolicy", iam_account.arn(f"role/{IAM_PREFIX}-cloudformation")),
        ("sts:AssumeRole", iam_account.arn("role/OrganizationAccountAccessRole")),
    ):
        decision = evaluate(Request(action, resource), {"inline": admin}, iam_account.boundary)
        assert decision == Decision(False, f"implicitly denied: the permissions boundary does not allow {action}")


# --------------------------------------------------------------------------- the GitHub roles


@pytest.mark.parametrize("action", ["cloudformation:ExecuteChangeSet", "cloudformation:CreateChangeSet"])
def test_iam_deploy_role_cannot_touch_the_bootstrap_stack(iam_account: IamAccount, action: str) -> None:
    acct = iam_account
    stack = acct.arn(f"stack/{IAM_PREFIX}-bootstrap/0a1b2c", "cloudformation", IAM_REGION)
    assert evaluate(Request(action, stack), acct.deploy_role) == Decision(
        False, "explicitly denied by DenyBootstrapStack (plan)"
    )
    assert not evaluate(Request(action, stack), acct.plan_role).allowed
    # The root and its nested stacks, and nothing else named like them.
    for name, allowed in (
        (IAM_PREFIX, True),
        (f"{IAM_PREFIX}-NetworkStack-1X2Y3Z", True),
        (f"{IAM_PREFIX}-EcsStack-1X2Y3Z", True),
        (f"{IAM_PREFIX}-anything", False),
        (f"{IAM_PREFIX}-other-NetworkStack-1X2Y3Z", False),
    ):
        arn = acct.arn(f"stack/{name}/0a1b2c", "cloudformation", IAM_REGION)
        assert evaluate(Request(action, arn), acct.deploy_role).allowed is allowed, name


@pytest.mark.parametrize("role", ["deploy", "plan", "service"])
def test_iam_no_role_can_import_another_stacks_resources(iam_account: IamAccount, role: str) -> None:
    acct = iam_account
    policies = {"deploy": acct.deploy_role, "plan": acct.plan_role, "service": acct.service_role}[role]
    nested = acct.arn(f"stack/{IAM_PREFIX}-DataStack-1X2Y3Z/0a1b2c", "cloudformation", IAM_REGION)
    importing = {"cloudformation:ImportResourceTypes": ["AWS::RDS::DBInstance"]}
    decision = evaluate(Request("cloudformation:CreateChangeSet", nested, importing), policies)
    assert decision.allowed is False and decision.reason.startswith("explicitly denied by DenyImport")


RELEASE_AT_MAIN = "knowledgerouter/kr_cfn/.github/workflows/release.yml@refs/heads/main"


def _trust_decision(trust: Policy, subject: str, workflow_ref: str = RELEASE_AT_MAIN) -> Decision:
    """The job's subject and workflow (job_workflow_ref: the roles pin the workflow file and its ref)."""
    context = {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": subject,
        "token.actions.githubusercontent.com:job_workflow_ref": workflow_ref,
    }
    return evaluate(Request("sts:AssumeRoleWithWebIdentity", "*", context), {"trust": trust})


@pytest.mark.parametrize("env", ENVS)
def test_iam_deploy_role_trusts_only_the_environment_on_the_deploy_branch(env: str) -> None:
    trust = built(env)["bootstrap"]["Resources"][bootstrap.DEPLOY_ROLE]["Properties"]["AssumeRolePolicyDocument"]
    repo = "repo:knowledgerouter/kr_cfn"
    assert _trust_decision(trust, f"{repo}:environment:{env}:ref:refs/heads/main").allowed
    # workflow_dispatch of an unreviewed branch in the environment, another env, a job without environment.
    for subject in (
        f"{repo}:environment:{env}:ref:refs/heads/feature",
        f"{repo}:environment:other:ref:refs/heads/main",
        f"{repo}:ref:refs/heads/main",
        f"{repo}:environment:{env}",
        f"{repo}:pull_request:ref:refs/pull/7/merge",
    ):
        assert _trust_decision(trust, subject) == Decision(
            False, "implicitly denied: no identity policy allows sts:AssumeRoleWithWebIdentity on *"
        ), subject


@pytest.mark.parametrize("env", ENVS)
def test_iam_plan_role_trusts_only_pull_requests(env: str) -> None:
    trust = built(env)["bootstrap"]["Resources"][bootstrap.PLAN_ROLE]["Properties"]["AssumeRolePolicyDocument"]
    repo = "repo:knowledgerouter/kr_cfn"
    plan_job = "knowledgerouter/kr_cfn/.github/workflows/deploy.yml@refs/pull/12/merge"
    assert _trust_decision(trust, f"{repo}:pull_request:ref:refs/pull/12/merge", plan_job).allowed
    assert not _trust_decision(trust, f"{repo}:environment:{env}:ref:refs/heads/main", plan_job).allowed
    assert not _trust_decision(trust, "repo:someone/fork:pull_request:ref:refs/pull/12/merge", plan_job).allowed


# --------------------------------------------------------------------------- every environment, offline


def _resolve(node: Any, account: str, names: dict[str, str]) -> Any:
    """Fn::Sub / Ref / GetAtt of a bootstrap template as the ARNs they stand for."""
    if isinstance(node, list):
        return [_resolve(n, account, names) for n in node]
    if not isinstance(node, dict):
        return node
    if "Fn::Sub" in node:
        text = node["Fn::Sub"]
        for key, value in {
            "AWS::Partition": "aws",
            "AWS::AccountId": account,
            "AWS::Region": IAM_REGION,
            **names,
        }.items():
            text = text.replace("${" + key + "}", value)
        return text
    if "Ref" in node:
        return names[node["Ref"]]
    if "Fn::GetAtt" in node:
        return names[".".join(node["Fn::GetAtt"])]
    return {k: _resolve(v, account, names) for k, v in node.items()}


def _service_role_of(env: str, account: str) -> dict[str, Policy]:
    t = built(env)["bootstrap"]
    prefix = load_env(env).names.prefix
    names = {
        "ArtifactsBucket.Arn": f"arn:aws:s3:::{prefix}-artifacts-{account}-{IAM_REGION}",
        **{
            k: f"arn:aws:iam::{account}:policy/{k}"
            for k, r in t["Resources"].items()
            if r["Type"] == "AWS::IAM::ManagedPolicy"
        },
    }
    role = t["Resources"][bootstrap.SERVICE_ROLE]["Properties"]
    policies = {p["PolicyName"]: _resolve(p["PolicyDocument"], account, names) for p in role["Policies"]}
    for ref in role.get("ManagedPolicyArns", []):
        policies[ref["Ref"]] = _resolve(t["Resources"][ref["Ref"]]["Properties"]["PolicyDocument"], account, names)
    return policies


def test_iam_one_environment_cannot_reach_another_in_the_same_account() -> None:
    account = "111111111111"
    prod = _service_role_of("prod", account)
    prod_boundary = {"iam:PermissionsBoundary": f"arn:aws:iam::{account}:policy/{boundary_name('knowledgerouter')}"}
    # prod's prefix 'knowledgerouter' is a name prefix of every dev role; its path is not.
    for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRole", "iam:PassRole"):
        dev_role = f"arn:aws:iam::{account}:role{role_path(IAM_PREFIX)}EcsStack-BackendTaskRole-1A2B"
        assert not evaluate(Request(action, dev_role, prod_boundary), prod).allowed, action
        prod_role = f"arn:aws:iam::{account}:role{role_path('knowledgerouter')}EcsStack-BackendTaskRole-1A2B"
        context = {**prod_boundary, "iam:PassedToService": "ecs-tasks.amazonaws.com"}
        assert evaluate(Request(action, prod_role, context), prod).allowed, action
    dev_stack = f"arn:aws:cloudformation:{IAM_REGION}:{account}:stack/{IAM_PREFIX}-NetworkStack-1X2Y/0a1b"
    assert not evaluate(Request("cloudformation:UpdateStack", dev_stack), prod).allowed
    dev_bucket = f"arn:aws:s3:::{IAM_PREFIX}-data-{account}-{IAM_REGION}"
    assert not evaluate(Request("s3:PutBucketPolicy", dev_bucket), prod).allowed
    assert evaluate(
        Request("s3:PutBucketPolicy", f"arn:aws:s3:::knowledgerouter-data-{account}-{IAM_REGION}"), prod
    ).allowed


def _variants() -> dict[str, dict[str, dict[str, Any]]]:
    """Every shipped environment, and prod with every optional role-making feature (Slack through Chatbot)."""
    out = {env: built(env) for env in ENVS}
    cfg = load_env("prod")
    slack = SlackRoute(workspace_id="T07EA123LEP", channel_id="C07EZ1ABC23")
    cfg = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update={"slack": slack})})
    out["prod+slack"] = {name: t.to_dict() for name, t in stacks.build_all(cfg).items()}
    return out


VARIANTS = _variants()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_iam_every_application_role_carries_the_boundary(variant: str) -> None:
    templates = VARIANTS[variant]
    prefix = load_env(variant.split("+")[0]).names.prefix
    boundary = {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{boundary_name(prefix)}"}
    roles = [
        (stack, logical_id, r["Properties"])
        for stack, t in templates.items()
        if stack != "bootstrap"
        for logical_id, r in t["Resources"].items()
        if r["Type"] == "AWS::IAM::Role"
    ]
    assert roles
    for stack, logical_id, props in roles:
        assert props.get("PermissionsBoundary") == boundary, f"{variant}/{stack}: {logical_id} has no boundary"
        assert props.get("Path") == role_path(prefix), f"{variant}/{stack}: {logical_id} is outside {role_path(prefix)}"
    # The bootstrap's own roles are outside the path the service role may touch.
    own = [r["Properties"] for r in templates["bootstrap"]["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert own and all("Path" not in p for p in own)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_iam_boundary_allows_every_action_the_application_roles_use(variant: str) -> None:
    templates = VARIANTS[variant]
    boundary = templates["bootstrap"]["Resources"][bootstrap.BOUNDARY_POLICY]["Properties"]["PolicyDocument"]
    used = {
        action
        for stack, template in templates.items()
        if stack != "bootstrap"
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
        for p in r["Properties"].get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
        for action in s["Action"]
    }
    assert used
    assert not [a for a in sorted(used) if not action_allowed_somewhere(a, boundary)]


def test_iam_application_roles_may_be_passed_only_to_the_services_they_trust() -> None:
    statements = {
        s["Sid"]: s
        for p in VARIANTS["prod+slack"]["bootstrap"]["Resources"][bootstrap.SERVICE_ROLE]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    }
    assert statements["PassApplicationRoles"]["Condition"] == {
        "StringEquals": {
            "iam:PassedToService": [
                "chatbot.amazonaws.com",
                "dlm.amazonaws.com",  # the Qdrant volume's snapshot policy (storage ebs)
                "ec2.amazonaws.com",  # the qdrant host's instance profile (storage ebs)
                "ecs-tasks.amazonaws.com",
                "events.amazonaws.com",  # the database secret's rotation rule (kr_cfn.rotation)
                "monitoring.rds.amazonaws.com",
                "rds.amazonaws.com",
                "scheduler.amazonaws.com",  # the daily Qdrant snapshot schedule
                "states.amazonaws.com",  # the redeploy state machine (kr_cfn.rotation)
            ]
        }
    }
