"""Every AWS API call a ``kr-cfn`` command makes, as the IAM request the pipeline role must be allowed.

The end-to-end test runs the commands against the local endpoint; a hook on every session kr-cfn
makes (``kr_cfn.aws.SESSION_HOOKS``) sees each call through botocore's events
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html):
``before-parameter-build`` (the operation and its parameters as the caller gave them) and
``after-call`` (the answer, to learn which stack a change set ARN belongs to). Each call becomes the
IAM requests AWS authorizes for it: the action (the operation's name under the service's IAM prefix,
except the few in :data:`ACTIONS`), the resource ARN it names and the condition keys the request
carries, plus the requests it implies (passing a role: :data:`IMPLIED`). Each request is then
evaluated (tests/policy_eval.py) against the built policies of the role the workflows run the
command under (:func:`roles_of`), so a new call without its permission fails the suite, and the
normalized records are compared with tests/fixtures/pipeline-calls.json, which
``kr-cfn docs`` renders into docs/permissions.md.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kr_cfn.changes.package import load_template
from tests.policy_eval import Policy, Request, evaluate

RECORD = Path(__file__).resolve().parent / "fixtures" / "pipeline-calls.json"

# ------------------------------------------------------------------------------------------ commands -> roles

JOB_ROLES = {"PLAN_ROLE_ARN": "plan", "RELEASE_PLAN_ROLE_ARN": "release-plan", "DEPLOY_ROLE_ARN": "deploy"}
"""The role a workflow job assumes, by the variable naming its ARN (.github/workflows/*.yml)."""

LOGICAL_IDS = {"plan": "GitHubPlanRole", "release-plan": "GitHubReleasePlanRole", "deploy": "GitHubDeployRole"}
"""The role's logical id in the bootstrap template (stacks/bootstrap.py)."""

WORKFLOW_COMMANDS = {
    "plan": {"outputs --bootstrap", "package --pull-request", "plan"},
    "release-plan": {"outputs --bootstrap", "package", "plan"},
    "deploy": {"migrate", "apply", "outputs", "smoke"},
}
"""What each role runs in the workflows (tests/test_pipeline_permissions.py reads them from the YAML).

``kr-cfn build`` runs under every role too; it makes no AWS call. ``status`` is run by hand with the
deploy role (issue 20); it is recorded and proven with the deploy role as well.
"""

BY_HAND = {"status": ("deploy",)}


def command_label(args: argparse.Namespace) -> str:
    """``plan``, ``package --pull-request``, ``outputs --bootstrap``: the command as the workflows name it."""
    flags = [
        flag
        for flag, dest in (("--bootstrap", "bootstrap"), ("--pull-request", "pull_request"))
        if getattr(args, dest, False)
    ]
    return " ".join([args.command, *flags])


def roles_of(args: argparse.Namespace) -> tuple[str, ...]:
    """The roles the workflows run this invocation under; () for the operator's commands (bootstrap, ...).

    ``plan`` plans a pull request (plan role) when the package it reads was made with
    ``--pull-request`` (kr_cfn.deploy.commands reads ``pull_request`` from package.json).
    """
    label = command_label(args)
    if args.command == "plan":
        package = Path(args.out) / args.env / "package.json"
        pr = package.is_file() and bool(json.loads(package.read_text()).get("pull_request"))
        return ("plan",) if pr else ("release-plan",)
    found = tuple(role for role, labels in WORKFLOW_COMMANDS.items() if label in labels)
    return found or BY_HAND.get(label, ())


# ------------------------------------------------------------------------------------------ calls -> requests

ACTIONS = {
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html ("s3:ListBucket")
    ("s3", "HeadBucket"): "s3:ListBucket",
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html ("s3:GetObject")
    ("s3", "HeadObject"): "s3:GetObject",
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html ("s3:ListBucket")
    ("s3", "ListObjectsV2"): "s3:ListBucket",
}
"""IAM actions whose name is not the operation's (the rest: ``<IAM prefix>:<operation>``)."""

IAM_PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}
"""IAM service prefixes that differ from the signing name (the rest: the signing name)."""

NO_PERMISSION = {"sts:GetCallerIdentity"}
"""Actions no policy can deny: https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html."""


@dataclass
class Where:
    """What a request is about: the partition-free parts of its ARNs, and the change sets seen so far."""

    region: str
    account: str
    change_sets: dict[str, str] = field(default_factory=dict)  # change set ARN -> stack ARN

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"

    def stack(self, name: str) -> str:
        return name if name.startswith("arn:") else self.arn("cloudformation", f"stack/{name}/{_STACK_ID}")

    def change_set_stack(self, params: Mapping[str, Any]) -> str:
        name = str(params["ChangeSetName"])
        if "StackName" in params:
            return self.stack(str(params["StackName"]))
        return self.change_sets[name]


_STACK_ID = "00000000-0000-0000-0000-000000000000"
_HTTPS = {"aws:SecureTransport": "true"}


def _change_set_name(value: str) -> str:
    """``cloudformation:ChangeSetName`` holds the name, also when the call names the change set by ARN."""
    match = re.match(r"arn:[^:]+:cloudformation:[^:]*:[^:]*:changeSet/([^/]+)/", value)
    return match.group(1) if match else value


def _cluster(w: Where, name: str) -> str:
    return name if name.startswith("arn:") else w.arn("ecs", f"cluster/{name}")


def _cfn_stack(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(w.stack(p["StackName"]) if "StackName" in p else "*", {})]


def _cfn_change_set(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(w.change_set_stack(p), {"cloudformation:ChangeSetName": _change_set_name(str(p["ChangeSetName"]))})]


def _cfn_create_change_set(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    # Condition keys of CreateChangeSet: the Service Authorization Reference,
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html
    context: dict[str, Any] = {"cloudformation:ChangeSetName": p["ChangeSetName"]}
    for key, param in (
        ("cloudformation:RoleArn", "RoleARN"),
        ("cloudformation:TemplateUrl", "TemplateURL"),
        ("cloudformation:StackPolicyUrl", "StackPolicyURL"),
        ("cloudformation:ResourceTypes", "ResourceTypes"),
    ):
        if param in p:
            context[key] = p[param]
    if p.get("ChangeSetType") == "IMPORT":
        context["cloudformation:ImportResourceTypes"] = sorted({r["ResourceType"] for r in p["ResourcesToImport"]})
    if p.get("Tags"):
        context["aws:TagKeys"] = [t["Key"] for t in p["Tags"]]
    return [(w.stack(p["StackName"]), context)]


def _s3_bucket(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    context = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
    return [(f"arn:aws:s3:::{p['Bucket']}", context)]


def _s3_object(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"arn:aws:s3:::{p['Bucket']}/{p['Key']}", {})]


def _ecs_list_services(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("*", {"ecs:cluster": _cluster(w, p["cluster"])})]


def _ecs_services(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cluster = _cluster(w, p["cluster"])
    name = cluster.rsplit("/", 1)[-1]
    return [
        (s if s.startswith("arn:") else w.arn("ecs", f"service/{name}/{s}"), {"ecs:cluster": cluster})
        for s in p["services"]
    ]


def _ecs_tasks(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cluster = _cluster(w, p["cluster"])
    return [(t, {"ecs:cluster": cluster}) for t in p["tasks"]]


def _task_definition(w: Where, value: str) -> str:
    return value if value.startswith("arn:") else w.arn("ecs", f"task-definition/{value}")


def _ecs_run_task(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(_task_definition(w, p["taskDefinition"]), {"ecs:cluster": _cluster(w, p["cluster"])})]


def _ecs_register(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(w.arn("ecs", f"task-definition/{p['family']}:*"), {})]


def _no_resource(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("*", {})]


def _log_stream(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(w.arn("logs", f"log-group:{p['logGroupName']}:log-stream:{p['logStreamName']}"), {})]


Resolver = Callable[[Where, Mapping[str, Any]], list[tuple[str, dict[str, Any]]]]


def _database_secret(w: Where, p: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The RDS-managed master-password secret, as AWS authorizes a call on it: its ARN and its RDS tag.

    RDS names it 'rds!db-<uuid>' and tags it aws:rds:primaryDBInstanceArn = the instance's ARN
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html). The local
    endpoint answers MasterUserSecret.SecretArn with '<DB instance id>.MasterUserSecret.SecretArn'
    (tests/aws_endpoint.py, shim 5), which names the instance; any other id is not mapped.
    """
    secret_id = str(p["SecretId"])
    instance, found, _ = secret_id.partition(".MasterUserSecret.SecretArn")
    if not found:
        raise KeyError(secret_id)
    secret = w.arn("secretsmanager", f"secret:rds!db-{_STACK_ID}-AbCdEf")
    return [(secret, {"secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": w.arn("rds", f"db:{instance}")})]


RESOURCES: dict[tuple[str, str], Resolver] = {
    ("cloudformation", "DescribeStacks"): _cfn_stack,
    ("cloudformation", "DescribeStackEvents"): _cfn_stack,
    ("cloudformation", "DescribeStackResource"): _cfn_stack,
    ("secretsmanager", "DescribeSecret"): _database_secret,
    ("cloudformation", "ListStackResources"): _cfn_stack,
    ("cloudformation", "GetTemplate"): _cfn_stack,
    ("cloudformation", "ListChangeSets"): _cfn_stack,
    ("cloudformation", "SetStackPolicy"): _cfn_stack,
    ("cloudformation", "UpdateTerminationProtection"): _cfn_stack,
    ("cloudformation", "CreateChangeSet"): _cfn_create_change_set,
    ("cloudformation", "DescribeChangeSet"): _cfn_change_set,
    ("cloudformation", "ExecuteChangeSet"): _cfn_change_set,
    ("cloudformation", "DeleteChangeSet"): _cfn_change_set,
    ("s3", "HeadBucket"): _s3_bucket,
    ("s3", "ListObjectsV2"): _s3_bucket,
    ("s3", "GetBucketLocation"): _s3_bucket,
    ("s3", "HeadObject"): _s3_object,
    ("s3", "GetObject"): _s3_object,
    ("s3", "PutObject"): _s3_object,
    ("ecs", "ListServices"): _ecs_list_services,
    ("ecs", "DescribeServices"): _ecs_services,
    ("ecs", "DescribeTasks"): _ecs_tasks,
    ("ecs", "RunTask"): _ecs_run_task,
    ("ecs", "RegisterTaskDefinition"): _ecs_register,
    # no resource-level permissions (Service Authorization Reference, list_amazonelasticcontainerservice.html)
    ("ecs", "DescribeTaskDefinition"): _no_resource,
    ("ecs", "DeregisterTaskDefinition"): _no_resource,
    ("logs", "GetLogEvents"): _log_stream,
    ("sts", "GetCallerIdentity"): _no_resource,
}
"""The resource (and condition keys) of each operation kr-cfn calls; a call missing here fails the test."""


def _pass_role(role: str | None, service: str) -> list[Request]:
    return [Request("iam:PassRole", role, {"iam:PassedToService": service})] if role else []


IMPLIED: dict[tuple[str, str], Callable[[Mapping[str, Any]], list[Request]]] = {
    # A change set with RoleARN passes the service role to CloudFormation:
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
    ("cloudformation", "CreateChangeSet"): lambda p: _pass_role(p.get("RoleARN"), "cloudformation.amazonaws.com"),
    # A task definition names the task and execution roles, passed to ECS tasks:
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html#specify-task-iam-roles
    ("ecs", "RegisterTaskDefinition"): lambda p: [
        *_pass_role(p.get("taskRoleArn"), "ecs-tasks.amazonaws.com"),
        *_pass_role(p.get("executionRoleArn"), "ecs-tasks.amazonaws.com"),
    ],
}
"""Requests AWS authorizes besides the call's own action (the passed roles)."""


def requests_of(service: str, operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    """The IAM requests of one API call (``KeyError``: the operation is not in :data:`RESOURCES`)."""
    action = ACTIONS.get((service, operation), f"{IAM_PREFIXES.get(service, service)}:{operation}")
    found = [Request(action, r, c) for r, c in RESOURCES[(service, operation)](where, params)]
    return found + IMPLIED.get((service, operation), lambda p: [])(params)


# ------------------------------------------------------------------------------------------ the recorder


@dataclass(frozen=True)
class Call:
    """One IAM request of one command under one role."""

    role: str
    command: str
    operation: str  # the API call, e.g. "cloudformation CreateChangeSet"
    request: Request
    policies: str  # the built bootstrap template the role's policies come from


@dataclass
class Recorder:
    """Collects the calls of every command run while it is registered (``SESSION_HOOKS``)."""

    account: str
    region: str
    calls: list[Call] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    change_sets: dict[str, str] = field(default_factory=dict)

    def hook(self, session: Any, args: argparse.Namespace | None) -> None:
        """Register on one session of the command ``args``."""
        roles = roles_of(args) if args is not None else ()
        if not roles:
            session.events.register("after-call.cloudformation.CreateChangeSet", self._change_set_made)
            return
        template = str(Path(args.out) / args.env / "bootstrap.yaml")
        label = command_label(args)

        def before(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
            service, operation = model.service_model.signing_name, model.name
            where = Where(context.get("client_region") or self.region, self.account, self.change_sets)
            try:
                requests = requests_of(service, operation, params, where)
            except KeyError:
                self.unmapped.append(f"{label}: {service} {operation} {sorted(params)}")
                return
            for role in roles:
                self.calls += [Call(role, label, f"{service} {operation}", r, template) for r in requests]

        session.events.register("before-parameter-build", before)
        session.events.register("after-call.cloudformation.CreateChangeSet", self._change_set_made)

    def _change_set_made(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Id" in parsed and "StackId" in parsed:
            self.change_sets[parsed["Id"]] = parsed["StackId"]

    def denials(self) -> list[str]:
        """Every recorded request its role's built policies do not allow, one line each."""
        policies: dict[tuple[str, str], dict[str, Policy]] = {}
        lines = []
        for call in self.calls:
            if call.request.action in NO_PERMISSION:
                continue
            key = (call.policies, call.role)
            if key not in policies:
                template = load_template(Path(call.policies))
                policies[key] = role_policies(template, call.role, self.account, self.region)
            # kr-cfn reaches AWS over HTTPS (botocore's endpoints; only the tests set AWS_ENDPOINT_URL):
            # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-securetransport
            request = Request(call.request.action, call.request.resource, {**call.request.context, **_HTTPS})
            decision = evaluate(request, policies[key])
            if not decision.allowed:
                lines.append(
                    f"{call.role} role, kr-cfn {call.command}: {call.request.action} on {call.request.resource} "
                    f"{dict(call.request.context)}: {decision.reason}"
                )
        return sorted(set(lines))

    def records(self) -> list[dict[str, Any]]:
        """The calls as docs/permissions.md shows them: ids, account and timestamps generalized, deduplicated."""
        seen = {
            json.dumps(
                {
                    "role": c.role,
                    "command": c.command,
                    "call": c.operation,
                    "action": c.request.action,
                    "resource": generalize(c.request.resource, self.account, self.region),
                    "context": {
                        k: _generalize_context(k, v, self.account, self.region)
                        for k, v in sorted(c.request.context.items())
                    },
                },
                sort_keys=True,
            )
            for c in self.calls
        }
        return sorted(
            (json.loads(s) for s in seen), key=lambda r: (r["role"], r["command"], r["action"], r["resource"])
        )


_GENERAL = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "*"),  # stack, task ids
    (re.compile(r"stack/([^/]+?)-[A-Z][A-Za-z]*Stack-[A-Za-z0-9]+/"), r"stack/\1-*Stack-*/"),  # nested stacks
    (re.compile(r"kr-cfn-(pr-)?[0-9A-Za-z-]*\d[0-9A-Za-z-]*"), r"kr-cfn-\1*"),  # change set names
    (re.compile(r"/[0-9a-f]{16,}(\.\w+)*\.json$"), r"/*.json"),  # content-hash keys of the templates
    (re.compile(r"(task-definition/[^:]+):\d+$"), r"\1:*"),  # revisions
    (re.compile(r"(:service/[^/]+)/[^/]+$"), r"\1/*"),  # the env's services
]


def generalize(value: str, account: str, region: str) -> str:
    """An ARN or name with account, region, ids, content hashes and change set timestamps as placeholders."""
    value = value.replace(account, "${AWS::AccountId}").replace(region, "${AWS::Region}")
    for pattern, repl in _GENERAL:
        value = pattern.sub(repl, value)
    return value


def _generalize_context(key: str, value: Any, account: str, region: str) -> Any:
    if key == "aws:TagKeys":  # the params' tags: not the pipeline's business
        return ["*"]
    if isinstance(value, list | tuple):
        return [generalize(str(v), account, region) for v in value]
    return generalize(str(value), account, region)


# ------------------------------------------------------------------------------------------ policies


def _resolve(node: Any, names: Mapping[str, str]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, names) for n in node]
    if not isinstance(node, dict):
        return node
    if "Fn::Sub" in node:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], node["Fn::Sub"])
    if "Ref" in node:
        return names[node["Ref"]]
    if "Fn::GetAtt" in node:
        return names[".".join(node["Fn::GetAtt"])]
    return {k: _resolve(v, names) for k, v in node.items()}


def role_policies(
    template: Mapping[str, Any], role: str, account: str, region: str = "eu-central-1"
) -> dict[str, Policy]:
    """A GitHub role's inline policies in a built bootstrap template, and the template's bucket policies."""
    names: dict[str, str] = {"AWS::Partition": "aws", "AWS::AccountId": account, "AWS::Region": region}
    resources = template["Resources"]
    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::S3::Bucket" and "BucketName" in props:
            names[f"{logical_id}.Arn"] = f"arn:aws:s3:::{_resolve(props['BucketName'], names)}"
        elif resource["Type"] == "AWS::IAM::Role" and "RoleName" in props:
            path = props.get("Path") or "/"
            names[f"{logical_id}.Arn"] = f"arn:aws:iam::{account}:role{path}{_resolve(props['RoleName'], names)}"
    props = resources[LOGICAL_IDS[role]]["Properties"]
    policies = {p["PolicyName"]: _resolve(p["PolicyDocument"], names) for p in props["Policies"]}
    # The bucket policies of the same account count too (their Denies: insecure transport).
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::S3::BucketPolicy":
            policies[logical_id] = _resolve(resource["Properties"]["PolicyDocument"], names)
    return policies


def recording(account: str, region: str) -> Iterator[Recorder]:
    """A recorder registered on every session kr-cfn makes until the generator is closed."""
    from kr_cfn import aws

    recorder = Recorder(account, region)
    aws.SESSION_HOOKS.append(recorder.hook)
    try:
        yield recorder
    finally:
        aws.SESSION_HOOKS.remove(recorder.hook)


def compare_or_update(records: list[dict[str, Any]], update: bool) -> None:
    """The recorded calls equal tests/fixtures/pipeline-calls.json (``update``: rewrite it)."""
    text = json.dumps(records, indent=1, sort_keys=True) + "\n"
    if update:
        RECORD.write_text(text, encoding="utf-8")
        return
    committed = json.loads(RECORD.read_text(encoding="utf-8")) if RECORD.is_file() else []
    new = [r for r in records if r not in committed]
    gone = [r for r in committed if r not in records]
    assert not new and not gone, (
        f"{RECORD.name} is stale (new: {new}, gone: {gone}); run: pytest tests/test_deploy_e2e.py "
        "-k full_deploy --update-permissions && kr-cfn docs"
    )
