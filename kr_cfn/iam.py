"""IAM building blocks (awacs): ARNs from pseudo-parameters, trust policies, bucket guards."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from awacs import s3
from awacs.aws import Allow, Bool, Condition, ConditionElement, Deny, PolicyDocument, Principal, Statement
from awacs.sts import AssumeRole
from troposphere import GetAtt, Sub

POLICY_VERSION = "2012-10-17"


def arn(service: str, resource: str, *, region: bool = True, account: str | None = None) -> Sub:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` from the pseudo-parameters.

    ``region=False`` for global services (IAM); ``account="aws"`` for AWS managed policies.
    ``resource`` may itself use ``${...}`` substitutions.
    """
    where = "${AWS::Region}" if region else ""
    who = account if account is not None else "${AWS::AccountId}"
    return Sub(f"arn:${{AWS::Partition}}:{service}:{where}:{who}:{resource}")


def managed_policy(name: str) -> Sub:
    """The ARN of an AWS managed policy, e.g. ``service-role/AmazonRDSEnhancedMonitoringRole``."""
    return arn("iam", f"policy/{name}", region=False, account="aws")


def service_trust(service: str, *conditions: ConditionElement) -> PolicyDocument:
    """Trust policy letting one AWS service principal assume the role, under ``conditions``."""
    statement = Statement(Effect=Allow, Principal=Principal("Service", service), Action=[AssumeRole])
    if conditions:
        statement.Condition = Condition(list(conditions))
    return PolicyDocument(Version=POLICY_VERSION, Statement=[statement])


def deny_insecure_transport(bucket_logical_id: str) -> Statement:
    """Bucket-policy statement refusing every request that does not use TLS."""
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[s3.Action("*")],
        Resource=[GetAtt(bucket_logical_id, "Arn"), Sub(f"${{{bucket_logical_id}.Arn}}/*")],
        Condition=Condition(Bool("aws:SecureTransport", False)),
    )


# --------------------------------------------------------------------------- application roles
# Every role the application stacks create lives under one IAM path per environment and carries
# the environment's permissions boundary (a managed policy of the bootstrap stack). The
# CloudFormation service role may create and change roles only under that path and only with
# that boundary, so a template cannot make a role stronger than the boundary, and one
# environment's service role cannot reach another environment's roles even in one account:
# path '/knowledgerouter/' never matches '/knowledgerouter-dev/' (name prefixes would).
# https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-friendly-names


def role_path(prefix: str) -> str:
    """The IAM path of an environment's application roles: ``/<prefix>/``."""
    return f"/{prefix}/"


def boundary_name(prefix: str) -> str:
    """The name of an environment's permissions-boundary policy (made by the bootstrap stack)."""
    return f"{prefix}-app-boundary"


def permissions_boundary(prefix: str) -> Sub:
    """The ARN of the environment's permissions boundary, known at build time from its name."""
    return arn("iam", f"policy/{boundary_name(prefix)}", region=False)


def application_role_arns(prefix: str) -> Sub:
    """Every application role of one environment (the roles under its path)."""
    return arn("iam", f"role{role_path(prefix)}*", region=False)


def application_instance_profile_arns(prefix: str) -> Sub:
    """Every instance profile of one environment: made with ``Path=role_path(prefix)``, like its roles."""
    return arn("iam", f"instance-profile{role_path(prefix)}*", region=False)


def application_policy_arns(prefix: str) -> Sub:
    """Every customer managed policy the application stacks make: ``Path=role_path(prefix)``."""
    return arn("iam", f"policy{role_path(prefix)}*", region=False)


def bounded(prefix: str) -> dict[str, Any]:
    """``Path`` and ``PermissionsBoundary`` for every ``iam.Role`` an application stack creates."""
    return {"Path": role_path(prefix), "PermissionsBoundary": permissions_boundary(prefix)}


# --------------------------------------------------------------------------- handler permissions

_HANDLERS = ("create", "read", "update", "delete")

# Every handler permission of the stacks' resource types the CloudFormation service role is NOT
# given, with the reason. An entry is a case-insensitive IAM-style pattern, for every resource
# type or, written '<type> <pattern>', for one; ``instead`` names the IAM action that a listed
# API name stands for, which is granted. Everything else the create,
# read, update and delete handlers list is granted (tests/test_service_role_permissions.py
# proves it, and reads this table for what it skips).
# https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html#schema-properties-handlers
NOT_GRANTED: dict[str, tuple[str, str]] = {
    # API or log-operation names that are no IAM action; S3 authorizes them with another action.
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html
    "s3:DeleteBucketAnalyticsConfiguration": ("an API name, no IAM action", "s3:PutAnalyticsConfiguration"),
    "s3:DeleteBucketCors": ("an API name, no IAM action", "s3:PutBucketCORS"),
    "s3:DeleteBucketEncryption": ("an API name, no IAM action", "s3:PutEncryptionConfiguration"),
    "s3:DeleteBucketLifecycle": ("an API name, no IAM action", "s3:PutLifecycleConfiguration"),
    "s3:DeleteBucketMetricsConfiguration": ("an API name, no IAM action", "s3:PutMetricsConfiguration"),
    "s3:DeleteBucketReplication": ("an API name, no IAM action", "s3:PutReplicationConfiguration"),
    "s3:PutBucketReplication": ("an API name, no IAM action", "s3:PutReplicationConfiguration"),
    "s3:PutObjectLockConfiguration": ("an API name, no IAM action", "s3:PutBucketObjectLockConfiguration"),
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsbackupstorage.html
    "backup-storage:Mount": ("a legacy name, no IAM action (AWS::Backup::BackupVault)", "backup-storage:MountCapsule"),
    "s3:REST.PUT.OBJECT": ("an S3 access-log operation name (AWS::Logs::LogGroup), no IAM action", ""),
    "managed-fleets:*": (
        "no service prefix of cfn-lint's IAM action list (from the Service Authorization Reference), so no "
        "policy statement can be checked against it (AWS::AutoScaling::AutoScalingGroup); grant it once "
        "cfn-lint knows it",
        "",
    ),
    # Features the application templates do not use.
    "AWS::ServiceDiscovery::PrivateDnsNamespace route53:ChangeResourceRecordSets": (
        "the namespace's update handler rewrites the SOA record when DnsProperties.SOA changes: the stacks set no "
        "SOA; Cloud Map makes the zone and ECS registers the tasks through its service-linked role",
        "",
    ),
    "AWS::ElastiCache::ReplicationGroup s3:GetObject": (
        "seeding a replication group from an RDB file in S3 (SnapshotArns): the stacks seed none",
        "",
    ),
    "AWS::StepFunctions::StateMachine s3:GetObject*": (
        "a state machine definition read from S3 (DefinitionS3Location): the stacks write definitions inline",
        "",
    ),
    "lambda:*": ("provisioned concurrency and rotation Lambdas: the stacks have no Lambda functions", ""),
    "firehose:*": ("log delivery to Kinesis Data Firehose: the stacks deliver logs to CloudWatch Logs only", ""),
    "cognito-idp:*": ("ALB Cognito authentication: the listeners do not authenticate", ""),
    "s3tables:*": ("S3 metadata table configurations: the buckets have none", ""),
    "iam:AttachGroupPolicy": ("users and groups: the stacks make none (AWS::IAM::ManagedPolicy lists it)", ""),
    "iam:AttachUserPolicy": ("users and groups: the stacks make none (AWS::IAM::ManagedPolicy lists it)", ""),
    "iam:DetachGroupPolicy": ("users and groups: the stacks make none (AWS::IAM::ManagedPolicy lists it)", ""),
    "iam:DetachUserPolicy": ("users and groups: the stacks make none (AWS::IAM::ManagedPolicy lists it)", ""),
    # Denied on purpose (DenyRemovingBoundaries): no application role may lose its boundary.
    "iam:DeleteRolePermissionsBoundary": ("denied: every application role keeps the permissions boundary", ""),
}


def _matches(pattern: str, name: str) -> bool:
    """IAM action matching: case-insensitive, ``*`` and ``?`` wildcards."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE) is not None


def not_granted(permission: str, resource_type: str) -> str | None:
    """The NOT_GRANTED entry covering a handler permission of a resource type, or None when it is granted."""
    for entry in NOT_GRANTED:
        rtype, _, pattern = entry.rpartition(" ")
        if rtype in ("", resource_type) and _matches(pattern, permission):
            return entry
    return None


def _checked(rtype: str, permission: str, known: dict[str, frozenset[str]]) -> bool:
    """Whether a handler permission is a valid IAM action or action pattern (``ec2:Describe*``).

    A pattern must name a known service prefix and match at least one of its actions, so a typo
    never reaches a policy as a pattern that grants nothing. Raises for a name that is no IAM
    action and not in NOT_GRANTED: it must be reviewed and listed there with its reason.
    """
    service, _, action = permission.partition(":")
    actions = known.get(service.lower(), frozenset())
    pattern = "*" in action or "?" in action
    if (any(_matches(action, a) for a in actions)) if pattern else action.lower() in actions:
        return True
    raise ValueError(
        f"{rtype}: the handler permission {permission!r} is no IAM action (cfn-lint's list) and not in "
        "kr_cfn.iam.NOT_GRANTED: review it and grant its IAM action, or list it there with the reason"
    )


def handler_permissions(resource_types: Iterable[str], region: str) -> dict[str, tuple[str, ...]]:
    """IAM actions CloudFormation needs per resource type, from cfn-lint's bundled schemas.

    The create/read/update/delete handlers' ``permissions`` of the resource provider schemas,
    wildcard entries (``ec2:Describe*``) kept as IAM action patterns, every entry of NOT_GRANTED
    left out. Any other name must be an IAM action cfn-lint's list knows (see :func:`_checked`).

    https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html#schema-properties-handlers
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
    """
    from kr_cfn.schemas import iam_actions, resource_schema

    known = iam_actions()
    out: dict[str, tuple[str, ...]] = {}
    for rtype in sorted(set(resource_types)):
        handlers = (resource_schema(region, rtype) or {}).get("handlers", {})
        if not handlers:
            raise ValueError(f"{rtype}: the resource provider schema lists no handler permissions")
        permissions = {p for h in _HANDLERS for p in handlers.get(h, {}).get("permissions", [])}
        out[rtype] = tuple(
            sorted(p for p in permissions if not_granted(p, rtype) is None and _checked(rtype, p, known))
        )
    return out


# --------------------------------------------------------------------------- dynamic references

# The reference's body may hold ${...} substitutions of an Fn::Sub, whose braces end nothing.
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:(ssm|ssm-secure|secretsmanager):((?:\$\{[^}]*\}|[^}])+)\}\}")


def dynamic_references(templates: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """The parameters and secrets the templates' dynamic references read: ``ssm:<name>``, ``secretsmanager:<id>``.

    CloudFormation resolves ``{{resolve:ssm:name[:version]}}``, ``{{resolve:ssm-secure:...}}``
    and ``{{resolve:secretsmanager:secret-id[:SecretString:key...]}}`` with the stack's role
    (the service role), so it must be allowed to read them. A ``${...}`` inside a name (an
    ``Fn::Sub``) stands for any text there (``*``).
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references.html
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
    """
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            for kind, rest in _DYNAMIC_REFERENCE.findall(node):
                found.add(_reference_target(kind, re.sub(r"\$\{[^}]*\}", "*", rest)))

    for template in templates:
        walk(template.get("Resources", {}))
        walk(template.get("Outputs", {}))
    return tuple(sorted(found))


def _reference_target(kind: str, rest: str) -> str:
    """``ssm:<parameter name>`` or ``secretsmanager:<secret name or ARN>`` of one reference's body."""
    if kind == "secretsmanager":
        # secret-id:SecretString:json-key:version-stage:version-id; the id may be an ARN (with colons).
        if rest.startswith("arn:"):
            return "secretsmanager:" + ":".join(rest.split(":")[:7])
        return "secretsmanager:" + rest.split(":")[0]
    # parameter-name[:version]; a name has no colon.
    return "ssm:" + rest.split(":")[0]


def dynamic_reference_arns(reference: str) -> Sub:
    """The ARN one ``dynamic_references`` entry reads.

    A parameter ``/a/b`` is ``parameter/a/b``; AWS's public parameters (``/aws/service/...``)
    belong to no account: ``arn:<partition>:ssm:<region>::parameter/aws/service/...``
    (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-public-parameters.html).
    A secret named ``n`` is ``secret:n-`` and six random characters
    (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html#iam-resources).
    """
    service, _, name = reference.partition(":")
    if service == "secretsmanager":
        if name.startswith("arn:"):
            return Sub(name.replace("arn:aws:", "arn:${AWS::Partition}:", 1))
        return arn("secretsmanager", f"secret:{name}-??????")
    path = name.removeprefix("/")
    return arn("ssm", f"parameter/{path}", account="" if path.startswith("aws/service/") else None)


def normalized_record_name(name: str) -> str:
    r"""A DNS name as Route 53 puts it in ``route53:ChangeResourceRecordSetsNormalizedRecordNames``.

    Lowercase, no trailing dot, every character other than a-z, 0-9, '-', '_' and '.' as a
    backslash and its three-digit octal code ('*' is ``\052``).
    https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/specifying-conditions-route53.html
    """
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.") else f"\\{ord(c):03o}" for c in name.lower().rstrip(".")
    )


def _record_names(rtype: str, props: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where a resource type's handlers write DNS records (route53:ChangeResourceRecordSets).

    (prefix, name) pairs: prefix '' for the name itself, '_*.' for validation names under it.
    """
    if rtype == "AWS::Route53::RecordSet":
        return [("", props.get("Name"))]
    if rtype == "AWS::Route53::RecordSetGroup":
        return [("", r.get("Name")) for r in props.get("RecordSets", [])]
    if rtype == "AWS::CertificateManager::Certificate":
        # DNS validation writes '_<token>.<domain>' into the zone of each option that names one
        # (a wildcard domain '*.d' is validated under 'd').
        # https://docs.aws.amazon.com/acm/latest/userguide/dns-validation.html
        return [("_*.", o.get("DomainName")) for o in props.get("DomainValidationOptions", []) if o.get("HostedZoneId")]
    # Not AWS::ServiceDiscovery::PrivateDnsNamespace: Cloud Map writes the records of its private
    # zone itself when ECS registers a task (RegisterInstance, called by ECS with its service-linked
    # role, not by CloudFormation), and CreatePrivateDnsNamespace needs route53:CreateHostedZone,
    # GetHostedZone and ListHostedZonesByName, no ChangeResourceRecordSets (Cloud Map API permissions
    # reference, https://docs.aws.amazon.com/cloud-map/latest/dg/cloud-map-api-permissions-ref.html). Its update
    # handler lists ChangeResourceRecordSets only to change the zone's SOA record
    # (DnsProperties.SOA), which the stacks never set. So no environment's service role may write
    # '*.<namespace>' records, in its own private zone or in another environment's.
    return []


def dns_record_patterns(resources: Iterable[tuple[str, dict[str, Any]]]) -> tuple[str, ...]:
    """The normalized record-name patterns the given (logical id, resource) pairs write.

    A name that is not a literal string (a Ref, a Sub) cannot be known when the bootstrap stack
    is built, so it is refused: the service role would otherwise need every name in every zone.
    """
    patterns: set[str] = set()
    for logical_id, resource in resources:
        for prefix, name in _record_names(resource["Type"], resource.get("Properties", {})):
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"{logical_id} ({resource['Type']}): the DNS name must be a literal string so the "
                    f"CloudFormation service role can be limited to it, got {name!r}"
                )
            if prefix == "_*.":
                name = name.removeprefix("*.")
            patterns.add(prefix + normalized_record_name(name))
    return tuple(sorted(patterns))


def dns_hosted_zones(resources: Iterable[tuple[str, dict[str, Any]]]) -> tuple[str, ...]:
    """The hosted zone ids the given (logical id, resource) pairs write records into.

    Record sets name their zone (HostedZoneId), certificates each validation option's zone. A
    zone named otherwise (HostedZoneName, a Ref) is refused like a name that is not a literal:
    the service role is limited to the zones known when the bootstrap stack is built.
    """
    zones: set[str] = set()
    for logical_id, resource in resources:
        rtype, props = resource["Type"], resource.get("Properties", {})
        if rtype in ("AWS::Route53::RecordSet", "AWS::Route53::RecordSetGroup"):
            found = [props.get("HostedZoneId")]
        elif rtype == "AWS::CertificateManager::Certificate":
            found = [o["HostedZoneId"] for o in props.get("DomainValidationOptions", []) if o.get("HostedZoneId")]
        else:
            continue
        for zone in found:
            if not isinstance(zone, str) or not zone:
                raise ValueError(
                    f"{logical_id} ({rtype}): the hosted zone must be a literal HostedZoneId so the "
                    f"CloudFormation service role can be limited to it, got {zone!r}"
                )
            zones.add(zone)
    return tuple(sorted(zones))
