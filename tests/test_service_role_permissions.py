"""The CloudFormation service role may do everything the stacks need: the other half of the attack tests.

For every environment in params/ and every resource of every built application template (root
and children), every permission the create, read, update and delete handlers of its resource
provider schema list is evaluated with tests/policy_eval.py against the service role's real
policies (its inline policy, its managed policies and its boundary if it has one, as the built
bootstrap template renders them, with Fn::Sub/Ref/GetAtt resolved for a made-up account), on the
ARN the templates give the resource where it can be known, and must be allowed. A wildcard entry
(``ec2:Describe*``) stands for every action of cfn-lint's IAM action list it matches. Skipped:
only the entries of kr_cfn.iam.NOT_GRANTED, read from there (for an API name, the IAM action it
stands for is proven instead). Besides the handlers: what the dynamic references read, and the
child templates the nested stacks load from the artifacts bucket.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html#schema-properties-handlers
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import stacks
from kr_cfn.iam import NOT_GRANTED, normalized_record_name, not_granted
from kr_cfn.schemas import iam_actions, resource_schema
from stacks import bootstrap
from stacks._bootstrap.service_role import _SERVICE_LINKED as SERVICE_LINKED
from tests.conftest import ENVS, built, load_env
from tests.policy_eval import Policy, Request, evaluate
from tests.test_attacks import IAM_REGION, _resolve, _service_role_of

ACCOUNT = "333333333333"
TAG = "aws:ResourceTag/aws:cloudformation:stack-name"
SUFFIX = "1A2B3C4D5E6F"  # the random part CloudFormation appends to generated names
HANDLERS = ("create", "read", "update", "delete")


@functools.cache
def _policies(env: str) -> tuple[dict[str, Policy], Policy | None]:
    """The service role's identity policies (inline + managed) and its permissions boundary, resolved."""
    policies = _service_role_of(env, ACCOUNT)
    role = built(env)["bootstrap"]["Resources"][bootstrap.SERVICE_ROLE]["Properties"]
    boundary = role.get("PermissionsBoundary")
    if boundary is None:
        return policies, None
    ref = boundary.get("Ref")
    document = built(env)["bootstrap"]["Resources"][ref]["Properties"]["PolicyDocument"] if ref else None
    assert document is not None, f"{env}: the service role's boundary must be a policy of the bootstrap stack"
    resolved: Policy = _resolve(document, ACCOUNT, {})
    return policies, resolved


def _allowed(env: str, request: Request) -> str | None:
    """None when allowed, else the reason."""
    identity, boundary = _policies(env)
    decision = evaluate(request, identity, boundary)
    return None if decision.allowed else decision.reason


def _sub(text: str) -> str:
    for key, value in {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": IAM_REGION}.items():
        text = text.replace("${" + key + "}", value)
    return text


def _value(node: Any) -> str:
    """A template value as the string it becomes (Fn::Sub of pseudo-parameters; literal strings)."""
    if isinstance(node, str):
        return _sub(node)
    if isinstance(node, dict) and isinstance(node.get("Fn::Sub"), str):
        return _sub(node["Fn::Sub"])
    raise AssertionError(f"not a literal or Fn::Sub: {node!r}")


# --------------------------------------------------------------------------- where a request lands


def _stack_name(env: str, template: str) -> str:
    """The stack a template's resources belong to: the root, or '<root>-<LogicalId>-<suffix>'."""
    root = load_env(env).deploy.stack(load_env(env).names)
    if template == "root":
        return root
    (child,) = (c.logical_id for c in stacks.CHILDREN if c.name == template)
    return f"{root}-{child}-{SUFFIX}"


def _referenced(props: Any) -> set[str]:
    """Logical ids a property tree names (Ref, Fn::GetAtt, ``${Id}``/``${Id.Attr}`` in Fn::Sub)."""
    if isinstance(props, list):
        return {i for p in props for i in _referenced(p)}
    if not isinstance(props, dict):
        return set()
    out: set[str] = set()
    for key, value in props.items():
        if key == "Ref" and isinstance(value, str):
            out.add(value)
        elif key == "Fn::GetAtt":
            out.add(value[0])
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            out |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text) if "::" not in m}
            out |= _referenced(value)
        else:
            out |= _referenced(value)
    return out


def _reachable(resources: dict[str, Any], logical_id: str) -> set[str]:
    """The resources one resource names, and those they name, within its template."""
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        for ref in _referenced(resources[todo.pop()].get("Properties", {})):
            if ref in resources and ref not in seen:
                seen.add(ref)
                todo.append(ref)
    return seen


def _iam_arn(env: str, template: str, logical_id: str, resource: dict[str, Any]) -> str:
    """A role, instance profile or managed policy as IAM names it: path and name (or the generated name)."""
    props = resource.get("Properties", {})
    kind, key = {
        "AWS::IAM::Role": ("role", "RoleName"),
        "AWS::IAM::InstanceProfile": ("instance-profile", "InstanceProfileName"),
        "AWS::IAM::ManagedPolicy": ("policy", "ManagedPolicyName"),
    }[resource["Type"]]
    name = _value(props[key]) if key in props else f"{_stack_name(env, template)}-{logical_id}-{SUFFIX}"[:64]
    return f"arn:aws:iam::{ACCOUNT}:{kind}{props.get('Path', '/')}{name}"


def _trusted(role: dict[str, Any]) -> list[str]:
    services: list[str] = []
    for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
        service = statement.get("Principal", {}).get("Service", [])
        services += [service] if isinstance(service, str) else service
    return services


@functools.cache
def _policies_json() -> dict[str, dict[str, Any]]:
    """cfn-lint's IAM action list with each action's resource types, by lower-case service and action."""
    from kr_cfn.schemas import data_dir

    spec = json.loads((data_dir() / "AdditionalSpecs" / "Policies.json").read_text(encoding="utf-8"))
    return {s.lower(): {k.lower(): v for k, v in d["Actions"].items()} for s, d in spec.items()}


def _action_resources(service: str, action: str) -> tuple[str, ...]:
    """The resource types an IAM action acts on (cfn-lint's Policies.json)."""
    return tuple(_policies_json()[service.lower()].get(action.lower(), {}).get("Resources", []))


def _iam_requests(env: str, template: str, logical_id: str, action: str) -> Iterator[Request]:
    """The IAM calls a handler makes: on the roles, instance profiles and policies the resource is or names."""
    resources = built(env)[template]["Resources"]
    own = {logical_id, *_reachable(resources, logical_id)}
    roles = {i: resources[i] for i in own if resources[i]["Type"] == "AWS::IAM::Role"}
    name = action.split(":", 1)[1]
    if name.lower() == "passrole" and resources[logical_id]["Type"] == "AWS::CloudFormation::Stack":
        # A nested stack runs under its parent's role: CloudFormation passes the service role itself
        # (the schema lists iam:PassRole; the error when it may not: "AWSCloudFormation is not authorized
        # to perform: iam:PassRole on resource: <its own role>",
        # https://github.com/aws-solutions-library-samples/data-lakes-on-aws/issues/275).
        prefix = load_env(env).names.prefix
        itself = f"arn:aws:iam::{ACCOUNT}:role/{prefix}-cloudformation"
        yield Request(action, itself, {"iam:PassedToService": "cloudformation.amazonaws.com"})
        return
    if name.lower() == "createservicelinkedrole":
        rtype = resources[logical_id]["Type"]
        (linked,) = [s for p, s in SERVICE_LINKED.items() if rtype.startswith(p)] or [None]
        assert linked is not None, f"{rtype} lists iam:CreateServiceLinkedRole: name its service in _SERVICE_LINKED"
        role = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/{linked}/AWSServiceRoleFor{SUFFIX}"
        yield Request(action, role, {"iam:AWSServiceName": linked})
        return
    kinds = _action_resources("iam", name)
    if "role" in kinds:
        for rid, role in roles.items():
            arn = _iam_arn(env, template, rid, role)
            boundary = {"iam:PermissionsBoundary": _value(role["Properties"]["PermissionsBoundary"])}
            if name.lower() == "passrole":
                yield from (Request(action, arn, {"iam:PassedToService": s}) for s in _trusted(role))
            elif name.lower() in ("attachrolepolicy", "detachrolepolicy"):
                # The role's ManagedPolicyArns, or the managed policy (AWS::IAM::ManagedPolicy Roles) itself.
                resource = resources[logical_id]
                policies = (
                    [_iam_arn(env, template, logical_id, resource)]
                    if resource["Type"] == "AWS::IAM::ManagedPolicy"
                    else [_value(p) for p in role["Properties"].get("ManagedPolicyArns", [])]
                )
                yield from (Request(action, arn, {**boundary, "iam:PolicyARN": p}) for p in policies)
            else:
                yield Request(action, arn, boundary)
    for kind, rtype in (("instance-profile", "AWS::IAM::InstanceProfile"), ("policy", "AWS::IAM::ManagedPolicy")):
        if kind in kinds:
            for rid in (i for i in own if resources[i]["Type"] == rtype):
                yield Request(action, _iam_arn(env, template, rid, resources[rid]))


def _s3_resource(env: str, template: str, logical_id: str) -> str:
    """The bucket an S3 handler acts on: the bucket itself, or the one it names."""
    resources = built(env)[template]["Resources"]
    buckets = [i for i in (logical_id, *_reachable(resources, logical_id)) if resources[i]["Type"] == "AWS::S3::Bucket"]
    if not buckets:
        return "*"
    return f"arn:aws:s3:::{_value(resources[buckets[0]]['Properties']['BucketName'])}"


def _record_names(resource: dict[str, Any]) -> list[str]:
    """The record names a DNS-writing handler puts into ChangeResourceRecordSets (as AWS writes them)."""
    props = resource.get("Properties", {})
    rtype = resource["Type"]
    if rtype == "AWS::Route53::RecordSet":
        return [props["Name"]]
    if rtype == "AWS::CertificateManager::Certificate":
        # DNS validation: '_<token>.<domain>' (https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html)
        return [f"_x1a2b3c4d.{o['DomainName'].removeprefix('*.')}" for o in props.get("DomainValidationOptions", [])]
    return []


def _hosted_zone(resource: dict[str, Any]) -> str:
    """The hosted zone a DNS-writing handler changes: the literal zone id the resource names."""
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::CertificateManager::Certificate":
        zones = {o.get("HostedZoneId") for o in props.get("DomainValidationOptions", [])}
        zone = zones.pop() if len(zones) == 1 else None
    else:
        zone = props.get("HostedZoneId")
    assert isinstance(zone, str), f"{resource['Type']}: no literal hosted zone id ({zone!r})"
    return f"arn:aws:route53:::hostedzone/{zone}"


def _secret_arn(resource: dict[str, Any]) -> str:
    """A secret's ARN from its Name, with the random suffix Secrets Manager appends."""
    name = _value(resource["Properties"]["Name"])
    return f"arn:aws:secretsmanager:{IAM_REGION}:{ACCOUNT}:secret:{name}-AbCdEf"


def _requests(env: str, template: str, logical_id: str, action: str) -> Iterator[Request]:
    """The requests one handler permission stands for, on what the templates make."""
    resource = built(env)[template]["Resources"][logical_id]
    service = action.split(":", 1)[0].lower()
    own_tag = {TAG: _stack_name(env, template)}
    if service == "iam":
        yield from _iam_requests(env, template, logical_id, action)
    elif service == "s3":
        bucket = _s3_resource(env, template, logical_id)
        kinds = _action_resources("s3", action.split(":", 1)[1])
        yield Request(action, f"{bucket}/key" if kinds == ("object",) and bucket != "*" else bucket)
    elif service == "cloudformation" and resource["Type"] == "AWS::CloudFormation::Stack":
        stack = f"{_stack_name(env, 'root')}-{logical_id}-{SUFFIX}"
        yield Request(action, f"arn:aws:cloudformation:{IAM_REGION}:{ACCOUNT}:stack/{stack}/0a1b2c3d")
    elif action.lower() == "route53:changeresourcerecordsets":
        names = [normalized_record_name(n) for n in _record_names(resource)]
        assert names, f"{logical_id} ({resource['Type']}) writes DNS records: say which in _record_names"
        key = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
        yield Request(action, _hosted_zone(resource), {key: names})
    elif service == "secretsmanager" and resource["Type"] == "AWS::SecretsManager::Secret":
        yield Request(action, _secret_arn(resource))
        yield Request(action, _secret_arn(resource), own_tag)
    else:
        # Ids made at create time: '*' while it is created, then tagged with its own stack's name.
        yield Request(action, "*")
        yield Request(action, "*", own_tag)


# --------------------------------------------------------------------------- what must be allowed


def _expanded(permission: str) -> list[str]:
    """A handler permission as IAM actions: a wildcard entry stands for every action it matches."""
    service, _, action = permission.partition(":")
    if "*" not in action and "?" not in action:
        return [permission]
    regex = re.compile(action.replace("*", ".*").replace("?", "."), re.IGNORECASE)
    return [f"{service}:{a}" for a in sorted(iam_actions().get(service.lower(), ())) if regex.fullmatch(a)]


def _application(env: str) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in built(env).items() if name != "bootstrap"}


Key = tuple[str, str, tuple[tuple[str, Any], ...]]


def _key(request: Request) -> Key:
    """A request as a hashable key (one request needed by many resources is evaluated once)."""
    context = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in request.context.items()))
    return request.action, request.resource, context


def _request(key: Key) -> Request:
    return Request(key[0], key[1], {k: list(v) if isinstance(v, tuple) else v for k, v in key[2]})


@functools.cache
def _required(env: str) -> tuple[dict[Key, str], dict[str, str]]:
    """Every request the stacks need (-> where it comes from), and the NOT_GRANTED entries that skipped some."""
    required: dict[Key, str] = {}
    skipped: dict[str, str] = {}
    region = load_env(env).region
    for template, body in _application(env).items():
        for logical_id, resource in body.get("Resources", {}).items():
            handlers = (resource_schema(region, resource["Type"]) or {}).get("handlers", {})
            assert handlers, f"{resource['Type']}: no provider schema"
            permissions = sorted({p for h in HANDLERS for p in handlers.get(h, {}).get("permissions", [])})
            for permission in permissions:
                where = f"{template}/{logical_id} ({resource['Type']}) {permission}"
                entry = not_granted(permission, resource["Type"])
                if entry is not None:
                    skipped[permission] = entry
                    instead = NOT_GRANTED[entry][1]
                    if not instead:
                        continue
                    permission = instead  # the IAM action the listed name stands for
                actions = _expanded(permission)
                assert actions, f"{where}: matches no IAM action"
                for action in actions:
                    for request in _requests(env, template, logical_id, action):
                        required.setdefault(_key(request), where)
    for request, where in _beyond_handlers(env):
        required.setdefault(_key(request), where)
    return required, skipped


_REFERENCE = re.compile(r"\{\{resolve:(ssm|ssm-secure|secretsmanager):((?:\$\{[^}]*\}|[^}])+)\}\}")


def _beyond_handlers(env: str) -> Iterator[tuple[Request, str]]:
    """Dynamic references, and the child templates the nested stacks load.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references.html
    https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-public-parameters.html
    """
    for template, body in _application(env).items():
        for kind, rest in _REFERENCE.findall(json.dumps(body)):
            name = _sub(rest)
            where = f"{template}: {{{{resolve:{kind}:{rest}}}}}"
            if kind == "secretsmanager":
                secret = name if name.startswith("arn:") else f"secret:{name.split(':')[0]}-AbCdEf"
                arn = secret if name.startswith("arn:") else f"arn:aws:secretsmanager:{IAM_REGION}:{ACCOUNT}:{secret}"
                yield Request("secretsmanager:GetSecretValue", arn), where
                continue
            path = name.split(":")[0].removeprefix("/")
            owner = "" if path.startswith("aws/service/") else ACCOUNT  # AWS's public parameters: no account
            yield Request("ssm:GetParameters", f"arn:aws:ssm:{IAM_REGION}:{owner}:parameter/{path}"), where
    # Fn::GetAZs: "you need permissions to the Amazon EC2 DescribeAvailabilityZones and
    # DescribeAccountAttributes actions. For EC2-VPC, you also need ... DescribeSubnets"
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference-getavailabilityzones.html
    for template, body in _application(env).items():
        if '"Fn::GetAZs"' in json.dumps(body):
            for action in ("DescribeAvailabilityZones", "DescribeAccountAttributes", "DescribeSubnets"):
                yield Request(f"ec2:{action}", "*"), f"{template}: Fn::GetAZs"
    prefix = load_env(env).names.prefix
    bucket = f"arn:aws:s3:::{prefix}-artifacts-{ACCOUNT}-{IAM_REGION}"
    for child in (c for c, r in built(env)["root"]["Resources"].items() if r["Type"] == "AWS::CloudFormation::Stack"):
        # kr-cfn package: '<prefix>/<sha256>.<name>.json' for deploys, 'pr/...' for pull-request plans.
        for upload in (prefix, bootstrap.PR_ARTIFACTS_PREFIX):
            yield Request("s3:GetObject", f"{bucket}/{upload}/{'0' * 64}.{child}.json"), f"root/{child} TemplateURL"


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("env", ENVS)
def test_service_role_is_allowed_every_handler_permission_of_the_stacks(env: str) -> None:
    required, _ = _required(env)
    denied = sorted(
        f"{where}: {k[0]} on {k[1]} {dict(k[2])}: {reason}"
        for k, where in required.items()
        if (reason := _allowed(env, _request(k))) is not None
    )
    assert not denied, f"{len(denied)} of {len(required)} needed permissions denied:\n" + "\n".join(denied)


@pytest.mark.parametrize("env", ENVS)
def test_service_role_reads_what_the_dynamic_references_and_nested_stacks_name(env: str) -> None:
    beyond = list(_beyond_handlers(env))
    if env == "prod":  # the Qdrant host's image id is AWS's public ECS-optimized AMI parameter
        assert any(r.action == "ssm:GetParameters" and "::parameter/aws/service/ecs/" in r.resource for r, _ in beyond)
    assert len([r for r, _ in beyond if r.action == "s3:GetObject"]) == 2 * 5
    assert any(where.endswith("Fn::GetAZs") for _, where in beyond)
    assert all(_allowed(env, r) is None for r, _ in beyond), [(w, _allowed(env, r)) for r, w in beyond]


def test_the_dynamic_reference_grant_is_exact() -> None:
    """Another parameter, a parameter of another account, another bucket's object: refused."""
    for request in (
        Request("ssm:GetParameters", f"arn:aws:ssm:{IAM_REGION}:{ACCOUNT}:parameter/knowledgerouter-dev/db-password"),
        Request("ssm:GetParameters", f"arn:aws:ssm:{IAM_REGION}:{ACCOUNT}:parameter/aws/service/ecs/x"),
        Request("s3:GetObject", f"arn:aws:s3:::someone-elses-bucket/knowledgerouter/{'0' * 64}.DataStack.json"),
    ):
        assert _allowed("dev", request) is not None, request


@pytest.mark.parametrize("env", ENVS)
def test_every_skipped_handler_permission_is_in_the_not_granted_table(env: str) -> None:
    """Only the table's entries are skipped, each with a reason; an API name's IAM action is a real one."""
    _, skipped = _required(env)
    for entry in set(skipped.values()):
        reason, instead = NOT_GRANTED[entry]
        assert reason, entry
        if instead:
            service, _, action = instead.partition(":")
            assert action.lower() in iam_actions()[service], f"{entry}: {instead} is no IAM action"
    # Never granted, even by a broader statement: the table is what the role lacks, not a comment.
    for entry in set(skipped.values()):
        pattern = entry.rpartition(" ")[2]
        if "*" not in pattern and not NOT_GRANTED[entry][1] and " " not in entry:
            assert _allowed(env, Request(pattern, "*")) is not None, entry


def test_the_role_really_lacks_the_autoscaling_wildcards_without_them() -> None:
    """The proof sees a missing wildcard: prod's Auto Scaling group needs ec2:Describe* (DescribeImages, ...)."""
    required, _ = _required("prod")
    wildcard = {k[0].lower() for k, w in required.items() if w.endswith("ec2:Describe*")}
    assert {"ec2:describeimages", "ec2:describelaunchtemplateversions"} <= wildcard


def test_the_service_role_passes_itself_only_to_cloudformation_and_never_the_github_roles() -> None:
    """Allowed since nested stacks need it; passing itself elsewhere or a GitHub role stays refused by the Denies."""
    role = f"arn:aws:iam::{ACCOUNT}:role/knowledgerouter-dev-"
    to = "iam:PassedToService"
    itself = Request("iam:PassRole", role + "cloudformation", {to: "cloudformation.amazonaws.com"})
    assert _allowed("dev", itself) is None
    for target, service, sid in (
        ("cloudformation", "ec2.amazonaws.com", "DenyBootstrapRolesAndBoundary"),
        ("github-deploy", "cloudformation.amazonaws.com", "DenyPassingTheGitHubRoles"),
        ("github-release-plan", "ecs-tasks.amazonaws.com", "DenyBootstrapRolesAndBoundary"),
    ):
        assert _allowed("dev", Request("iam:PassRole", role + target, {to: service})) == (
            f"explicitly denied by {sid} (stacks)"
        ), target
    # Still no edit of itself with the CloudFormation context claimed.
    context = {to: "cloudformation.amazonaws.com"}
    assert _allowed("dev", Request("iam:PutRolePolicy", role + "cloudformation", context)) is not None


@pytest.mark.parametrize("env", ENVS)
def test_the_release_plan_role_may_run_the_policy_checks(env: str) -> None:
    """The calls cfn-policy-validator validate makes (its README's required policy), on what they name."""
    t = built(env)["bootstrap"]
    role = t["Resources"][bootstrap.RELEASE_PLAN_ROLE]["Properties"]
    names = {
        "ArtifactsBucket.Arn": f"arn:aws:s3:::bucket-{ACCOUNT}",
        f"{bootstrap.SERVICE_ROLE}.Arn": f"arn:aws:iam::{ACCOUNT}:role/x",
    }
    policies = {p["PolicyName"]: _resolve(p["PolicyDocument"], ACCOUNT, names) for p in role["Policies"]}
    analyzer = f"arn:aws:access-analyzer:{IAM_REGION}:{ACCOUNT}:analyzer/cfn-policy-validator"
    linked = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/access-analyzer.amazonaws.com/AccessAnalyzerRole"
    for request in (
        Request("access-analyzer:ValidatePolicy", "*"),
        Request("access-analyzer:ListAnalyzers", "*"),
        Request("access-analyzer:CreateAnalyzer", analyzer),
        Request("access-analyzer:CreateAccessPreview", analyzer),
        Request("access-analyzer:GetAccessPreview", analyzer),
        Request("access-analyzer:ListAccessPreviewFindings", analyzer),
        Request("iam:GetPolicy", "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"),
        Request("iam:GetPolicyVersion", "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"),
        Request("iam:CreateServiceLinkedRole", linked, {"iam:AWSServiceName": "access-analyzer.amazonaws.com"}),
    ):
        assert evaluate(request, policies).allowed, request
    for request in (  # nothing else rides along
        Request("iam:CreateServiceLinkedRole", linked, {"iam:AWSServiceName": "ecs.amazonaws.com"}),
        Request("access-analyzer:DeleteAnalyzer", analyzer),
        Request("iam:GetPolicyVersion", f"arn:aws:iam::{ACCOUNT}:policy/knowledgerouter-app-boundary"),
    ):
        assert not evaluate(request, policies).allowed, request


PHASE_ONE_SHARE = 0.1
"""Share of CloudFormation's 51,200-byte TemplateBody the phase-one template (the bucket alone) may use."""
URL_SHARE = 0.1
"""Share of the 1 MB a TemplateURL may name that a full bootstrap body may use: room for many statements.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html"""


@pytest.mark.parametrize("env", ENVS)
def test_bootstrap_stays_deployable_as_its_statements_grow(env: str) -> None:
    """kr-cfn bootstrap sends a large body by URL from the bucket a first, small change set creates."""
    from kr_cfn.changes import bootbody

    template = built(env)["bootstrap"]
    first = bootbody.phase_one(template)
    size = bootbody.size(bootbody.compact(first))
    assert size <= PHASE_ONE_SHARE * bootbody.TEMPLATE_BODY_LIMIT, f"{env}: phase one is {size} bytes"
    assert bootbody.is_part_of(first, template) and set(first["Outputs"]) == {bootbody.BUCKET_OUTPUT}
    full = bootbody.size(bootbody.compact(template))
    assert full <= URL_SHARE * bootbody.TEMPLATE_URL_LIMIT, f"{env}: {full} bytes"


# --------------------------------------------------------------------------- the building blocks


def _schema(monkeypatch: pytest.MonkeyPatch, *permissions: str) -> None:
    fake = {"handlers": {"create": {"permissions": list(permissions)}}}
    monkeypatch.setattr("kr_cfn.schemas.resource_schema", lambda region, rtype: fake)


def test_wildcard_handler_permissions_are_kept_as_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    from kr_cfn.iam import handler_permissions

    _schema(monkeypatch, "ec2:Describe*", "ssm:Get*", "ec2:RunInstances", "lambda:Invoke*", "s3:DeleteBucketCors")
    assert handler_permissions(["AWS::X::Y"], "eu-central-1") == {
        "AWS::X::Y": ("ec2:Describe*", "ec2:RunInstances", "ssm:Get*")
    }


@pytest.mark.parametrize(
    "permission",
    [
        "ec2:Descrbe*",  # a typo: matches no action
        "ec3:Describe*",  # no such service
        "s3:DeleteBucketWebsiteThing",  # no IAM action, not in the table
    ],
)
def test_a_handler_permission_that_is_no_iam_action_fails_the_build(
    monkeypatch: pytest.MonkeyPatch, permission: str
) -> None:
    from kr_cfn.iam import handler_permissions

    _schema(monkeypatch, permission)
    with pytest.raises(ValueError, match=rf"^AWS::X::Y: the handler permission '{re.escape(permission)}' is no IAM"):
        handler_permissions(["AWS::X::Y"], "eu-central-1")


def test_dynamic_references_name_what_they_read() -> None:
    from kr_cfn.iam import dynamic_reference_arns, dynamic_references

    template = {
        "Resources": {
            "A": {"Properties": {"ImageId": "{{resolve:ssm:/aws/service/ecs/x/image_id}}"}},
            "B": {"Properties": {"V": {"Fn::Sub": "{{resolve:ssm:/${Env}/flag:3}}-{{resolve:ssm-secure:pw}}"}}},
            "C": {"Properties": {"P": "{{resolve:secretsmanager:app/db:SecretString:password}}"}},
            "D": {"Properties": {"P": "{{resolve:secretsmanager:arn:aws:secretsmanager:r:1:secret:x-AbCdEf:S}}"}},
        }
    }
    refs = dynamic_references([template])
    assert refs == (
        "secretsmanager:app/db",
        "secretsmanager:arn:aws:secretsmanager:r:1:secret:x-AbCdEf",
        "ssm:/*/flag",
        "ssm:/aws/service/ecs/x/image_id",
        "ssm:pw",
    )
    arns = [dynamic_reference_arns(r).to_dict()["Fn::Sub"] for r in refs]
    assert arns == [
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:app/db-??????",
        "arn:${AWS::Partition}:secretsmanager:r:1:secret:x-AbCdEf",
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*/flag",
        "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/ecs/x/image_id",  # public: no account
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/pw",
    ]


def test_a_secret_reference_is_granted_exactly_that_secret() -> None:
    import dataclasses

    from kr_cfn import config

    cfg = load_env("dev")
    app = stacks.application([t for name, t in stacks.build_all(cfg).items() if name != "bootstrap"])
    app = dataclasses.replace(app, dynamic_references=("secretsmanager:shared/api-key",))
    t = bootstrap.build(config.bootstrap_slice(cfg, app)).to_dict()
    statements = {
        s["Sid"]: s
        for p in t["Resources"][bootstrap.SERVICE_ROLE]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    }
    statement = _resolve(statements["ReadReferencedSecrets"], ACCOUNT, {})
    policy = {"Statement": [statement]}
    secret = f"arn:aws:secretsmanager:{IAM_REGION}:{ACCOUNT}:secret:shared/api-key"
    assert evaluate(Request("secretsmanager:GetSecretValue", f"{secret}-AbCdEf"), {"p": policy}).allowed
    assert not evaluate(Request("secretsmanager:GetSecretValue", f"{secret}-other-AbCdEf"), {"p": policy}).allowed


@pytest.mark.parametrize("env", ENVS)
def test_no_namespace_sets_the_soa_record_the_role_may_not_change(env: str) -> None:
    """NOT_GRANTED leaves out the namespace's route53:ChangeResourceRecordSets: only an SOA change needs it."""
    for template in built(env).values():
        for rid, resource in template.get("Resources", {}).items():
            if resource["Type"] == "AWS::ServiceDiscovery::PrivateDnsNamespace":
                dns = resource.get("Properties", {}).get("Properties", {}).get("DnsProperties", {})
                assert "SOA" not in dns, f"{rid} sets an SOA record: grant route53:ChangeResourceRecordSets"
