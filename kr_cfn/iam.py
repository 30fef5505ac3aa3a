"""IAM building blocks (awacs): ARNs from pseudo-parameters, trust policies, bucket guards."""

from __future__ import annotations

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


def handler_permissions(resource_types: Iterable[str], region: str) -> dict[str, tuple[str, ...]]:
    """IAM actions CloudFormation needs per resource type, from cfn-lint's bundled schemas.

    The create/read/update/delete handlers' ``permissions`` of the resource provider schemas,
    keeping only names cfn-lint's IAM action list knows: some schemas list legacy or API names
    that are no IAM action (``s3:DeleteBucketEncryption``, whose permission is
    ``s3:PutEncryptionConfiguration``, which the schema lists too).

    https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html#schema-properties-handlers
    """
    from kr_cfn.schemas import iam_actions, resource_schema

    known = iam_actions()

    def is_action(name: str) -> bool:
        service, _, action = name.partition(":")
        return action.lower() in known.get(service.lower(), frozenset())

    out: dict[str, tuple[str, ...]] = {}
    for rtype in sorted(set(resource_types)):
        handlers = (resource_schema(region, rtype) or {}).get("handlers", {})
        if not handlers:
            raise ValueError(f"{rtype}: the resource provider schema lists no handler permissions")
        permissions = {p for h in _HANDLERS for p in handlers.get(h, {}).get("permissions", [])}
        out[rtype] = tuple(sorted(p for p in permissions if is_action(p)))
    return out


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
