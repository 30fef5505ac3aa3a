"""The data-loss guard: removals and replacements of stateful resources need ``--allow-replace``.

So do in-place changes that take a protection away (:data:`PROTECTIONS`: deletion protection off,
shorter retention, a wider trust policy, a weaker DeletionPolicy, ...), judged by :func:`weakened`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from kr_cfn.changes.review import GuardFinding, ResourceChange, Review, StackChanges, Weakening

STATEFUL_TYPES = frozenset(
    {
        # databases and caches
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBCluster",
        "AWS::RDS::GlobalCluster",
        "AWS::DocDB::DBCluster",
        "AWS::DocDBElastic::Cluster",
        "AWS::Neptune::DBCluster",
        "AWS::Redshift::Cluster",
        "AWS::RedshiftServerless::Namespace",
        "AWS::DynamoDB::Table",
        "AWS::DynamoDB::GlobalTable",
        "AWS::Cassandra::Table",
        "AWS::Timestream::Table",
        "AWS::ElastiCache::CacheCluster",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::ElastiCache::ServerlessCache",
        "AWS::MemoryDB::Cluster",
        "AWS::OpenSearchService::Domain",
        "AWS::Elasticsearch::Domain",
        "AWS::OpenSearchServerless::Collection",
        # storage
        "AWS::S3::Bucket",
        "AWS::S3Express::DirectoryBucket",
        "AWS::EFS::FileSystem",
        "AWS::FSx::FileSystem",
        "AWS::FSx::Volume",
        "AWS::EC2::Volume",
        "AWS::Backup::BackupVault",
        "AWS::ECR::Repository",
        "AWS::CodeCommit::Repository",
        "AWS::Logs::LogGroup",
        # messages in flight
        "AWS::SQS::Queue",
        "AWS::Kinesis::Stream",
        "AWS::MSK::Cluster",
        # identities, keys and secrets: replacing them loses users, or makes encrypted data unreadable
        "AWS::Cognito::UserPool",
        "AWS::Cognito::IdentityPool",
        "AWS::KMS::Key",
        "AWS::KMS::ReplicaKey",
        "AWS::SecretsManager::Secret",
        # a new zone gets new name servers; records made outside the stack are lost
        "AWS::Route53::HostedZone",
    }
)
"""Resource types whose replacement or deletion loses data.

Any other type counts as stateful too when CloudFormation reports a snapshot for it (``PolicyAction``
``Snapshot``/``ReplaceAndSnapshot``, or a ``Snapshot`` deletion policy): only types that hold data
support snapshots (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html).
"""

NESTED_STACK = "AWS::CloudFormation::Stack"
# Removing a nested stack in an update of its parent deletes it and every resource in it (except those
# with a Retain DeletionPolicy), termination protection or not
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html).
# "An update never causes a nested stack to be replaced" (TemplateURL, Parameters: update requires no
# interruption, https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudformation-stack.html);
# should a change set still say Replacement True/Conditional (or Dynamic) for one, replacing creates the new
# resource and then deletes the old one
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-update-behaviors.html),
# i.e. the old stack with everything in it: the guard treats it like a removal.

# ResourceChange.Action: Add | Modify | Remove | Import | Dynamic | SyncWithActual; "Dynamic": the exact
# action can't be determined yet, "SyncWithActual": only CloudFormation's metadata changes
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChange.html).
# Add, Import and SyncWithActual leave existing data alone; Modify is at risk when it replaces; every
# other action (Remove, Dynamic, and any value AWS adds later) is at risk.
_KEEPS_DATA = frozenset({"Add", "Import", "SyncWithActual"})
# PolicyAction: Delete | Retain | Snapshot | ReplaceAndDelete | ReplaceAndRetain | ReplaceAndSnapshot (same page).
_REPLACING = frozenset({"ReplaceAndDelete", "ReplaceAndRetain", "ReplaceAndSnapshot"})
_SNAPSHOT = frozenset({"Snapshot", "ReplaceAndSnapshot"})
_RETAINED = frozenset({"Retain", "ReplaceAndRetain"})
# A Retain or Snapshot policy does not lift the block. Retain keeps the old resource, but outside the stack:
# the stack (and the app) go on with a new, empty one when the logical id was renamed or the resource
# replaced. Snapshot deletes the live resource: getting the data back is a restore into a new resource,
# with an outage. An operator must say yes to either with --allow-replace; the review shows the policy.


@dataclass(frozen=True)
class Held:
    """A stateful resource in a nested stack's deployed template."""

    path: str
    """The stack that holds it, e.g. ``root/DataStack``."""
    logical_id: str
    type: str
    deletion_policy: str | None = None


ChildTemplate = Callable[[str, str, dict[str, Any]], "dict[str, Any] | str"]
"""``(stack path, logical id, resource)`` of a nested stack -> its template, or why it cannot be read."""

Contents = Callable[[StackChanges, ResourceChange], "list[Held] | str"]
"""A nested stack at risk -> the stateful resources in it (at any depth), or why they cannot be known."""


@dataclass(frozen=True)
class Protection:
    """One row of :data:`PROTECTIONS`: where a resource keeps a protection, and what counts as weaker."""

    types: frozenset[str]
    path: tuple[str, ...]
    """In the resource: ``("Properties", "DeletionProtection")`` or ``("DeletionPolicy",)``; ``*``: every item."""
    kind: str
    """``off`` (was on, now off), ``public`` (was off, now on), ``retention`` (lower), ``expiry`` (current
    objects expire sooner), ``principal`` (trusts a principal outside the account), ``policy`` (Retain or
    Snapshot -> Delete)."""
    default: Any = None
    """The value when the template leaves it out (what AWS then does)."""
    on: tuple[str, ...] = ("true",)
    """Values that mean on, for ``off`` and ``public`` (compared without case)."""


_RDS = frozenset({"AWS::RDS::DBInstance", "AWS::RDS::DBCluster"})
_BUCKET = frozenset({"AWS::S3::Bucket"})
_NEVER = math.inf
PROTECTIONS: tuple[Protection, ...] = (
    # RDS: DeletionProtection defaults to false, BackupRetentionPeriod to 1 day (0 turns backups off),
    # DeleteAutomatedBackups to true (automated backups go with the instance)
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-rds-dbinstance.html).
    Protection(_RDS, ("Properties", "DeletionProtection"), "off", False),
    Protection(_RDS, ("Properties", "BackupRetentionPeriod"), "retention", 1),
    Protection(frozenset({"AWS::RDS::DBInstance"}), ("Properties", "PubliclyAccessible"), "public", False),
    Protection(frozenset({"AWS::RDS::DBInstance"}), ("Properties", "DeleteAutomatedBackups"), "public", True),
    # What CloudFormation does with a stateful resource when it leaves the stack (default Delete; Snapshot for
    # RDS clusters and instances, https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html)
    # or is replaced (default Delete, .../aws-attribute-updatereplacepolicy.html).
    Protection(STATEFUL_TYPES, ("DeletionPolicy",), "policy", "Delete"),
    Protection(STATEFUL_TYPES, ("UpdateReplacePolicy",), "policy", "Delete"),
    # S3: versioning keeps overwritten and deleted objects; a lifecycle expiration deletes current objects
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configuration-examples.html).
    Protection(_BUCKET, ("Properties", "VersioningConfiguration", "Status"), "off", "Suspended", ("Enabled",)),
    Protection(_BUCKET, ("Properties", "LifecycleConfiguration", "Rules"), "expiry", _NEVER),
    *(
        Protection(_BUCKET, ("Properties", "PublicAccessBlockConfiguration", flag), "off", False)
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    ),
    Protection(_BUCKET, ("Properties", "ObjectLockConfiguration", "Rule", "DefaultRetention", "Days"), "retention", 0),
    # Snapshots and backups
    Protection(frozenset({"AWS::DLM::LifecyclePolicy"}), ("Properties", "State"), "off", "DISABLED", ("ENABLED",)),
    Protection(
        frozenset({"AWS::DLM::LifecyclePolicy"}),
        ("Properties", "PolicyDetails", "Schedules", "*", "RetainRule", "Count"),
        "retention",
        _NEVER,
    ),
    Protection(
        frozenset({"AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::CacheCluster"}),
        ("Properties", "SnapshotRetentionLimit"),
        "retention",
        0,
    ),
    Protection(
        frozenset({"AWS::EFS::FileSystem"}), ("Properties", "BackupPolicy", "Status"), "off", "DISABLED", ("ENABLED",)
    ),
    Protection(
        frozenset({"AWS::Backup::BackupPlan"}),
        ("Properties", "BackupPlan", "BackupPlanRule", "*", "Lifecycle", "DeleteAfterDays"),
        "retention",
        _NEVER,
    ),
    Protection(frozenset({"AWS::DynamoDB::Table"}), ("Properties", "DeletionProtectionEnabled"), "off", False),
    Protection(
        frozenset({"AWS::DynamoDB::Table"}),
        ("Properties", "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled"),
        "off",
        False,
    ),
    # Logs kept forever without RetentionInDays; a KMS key scheduled for deletion waits 30 days by default.
    Protection(frozenset({"AWS::Logs::LogGroup"}), ("Properties", "RetentionInDays"), "retention", _NEVER),
    Protection(frozenset({"AWS::KMS::Key"}), ("Properties", "PendingWindowInDays"), "retention", 30),
    # ECR: deleting a repository with images fails unless EmptyOnDelete; immutable tags keep a reviewed image.
    Protection(frozenset({"AWS::ECR::Repository"}), ("Properties", "EmptyOnDelete"), "public", False),
    Protection(
        frozenset({"AWS::ECR::Repository"}),
        ("Properties", "ImageTagMutability"),
        "off",
        "MUTABLE",
        ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION"),
    ),
    # Who may assume a role: a principal outside the account and AWS services is a way in.
    Protection(frozenset({"AWS::IAM::Role"}), ("Properties", "AssumeRolePolicyDocument"), "principal", None),
)
"""Protections that an in-place change must not take away without ``--allow-replace``."""

_KINDS = {
    "off": "turned off",
    "public": "turned on",
    "retention": "lower retention",
    "expiry": "current objects expire sooner",
    "principal": "wider principal: outside the account and AWS services",
    "policy": "weaker policy",
}
_POLICY_RANK = {"Delete": 0, "Snapshot": 1, "Retain": 2, "RetainExceptOnCreate": 2}
_UNKNOWN = object()
_IAM_ACCOUNT = re.compile(r"arn:[\w-]+:iam::(\d{12}):")
_SUB_OWN = re.compile(r"arn:\$\{AWS::Partition\}:iam::\$\{AWS::AccountId\}:[\w+=,.@/-]+")


def _known(value: Any) -> bool:
    """Whether a value is known now: not an intrinsic function, not a truncated or after-apply value."""
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        if key == "Ref" or key.startswith(("Fn::", "KrCfn::")):
            return False
    return not (isinstance(value, str) and value.startswith(("{{", "(Truncated")))


def _items(value: Any) -> list[Any]:
    """A list, or a list given item by item (``{"0": ..., "1": ...}`` from change-set property paths)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(k.isdigit() for k in value):
        return list(value.values())  # (order does not matter: the rules take a minimum or a set)
    return [value]


def _values(resource: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at ``path`` (``*``: every list item); an empty list when the path is not there."""
    if not path:
        return [resource]
    head, rest = path[0], path[1:]
    if head == "*":
        return [v for item in _items(resource) for v in _values(item, rest)]
    if isinstance(resource, dict) and head in resource:
        return _values(resource[head], rest)
    return []


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return _UNKNOWN
    try:
        return float(value)
    except (TypeError, ValueError):
        return _UNKNOWN


def _expiry(rules: Any) -> Any:
    """Days until the soonest enabled rule deletes current objects (an ExpirationDate counts as 0)."""
    days = [_NEVER]
    for rule in _items(rules):
        if not isinstance(rule, dict) or rule.get("Status") == "Disabled":
            continue
        if "ExpirationDate" in rule:
            days.append(0.0)
        if "ExpirationInDays" in rule:
            days.append(_number(rule["ExpirationInDays"]))  # a reference or a dynamic value: _UNKNOWN
    return _UNKNOWN if _UNKNOWN in days else min(days)


def _own(principal: Any, account: str | None) -> bool:
    """Whether an ``AWS`` principal is the stack's own account (or a role or user the stack made in it)."""
    if isinstance(principal, dict):
        sub = principal.get("Fn::Sub")
        return (
            principal == {"Ref": "AWS::AccountId"}
            or list(principal) == ["Fn::GetAtt"]
            or (isinstance(sub, str) and (sub == "${AWS::AccountId}" or bool(_SUB_OWN.fullmatch(sub))))
        )
    text = str(principal)
    match = _IAM_ACCOUNT.match(text)
    return account is not None and (text == account or (match is not None and match.group(1) == account))


def _outside(document: Any, account: str | None) -> frozenset[str]:
    """The principals a trust policy allows outside the account and AWS services (``*``, accounts, federated)."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    out: set[str] = set()
    for st in _items(statements):
        if not isinstance(st, dict) or st.get("Effect", "Allow") != "Allow":
            continue
        if "NotPrincipal" in st:
            out.add("NotPrincipal: everyone else")
        principal = st.get("Principal")
        if principal is not None and not isinstance(principal, dict):
            out.add(f"AWS:{principal}")  # "*"
        for key, values in (principal or {}).items() if isinstance(principal, dict) else ():
            for v in _items(values):
                if key != "Service" and (key != "AWS" or not _own(v, account)):
                    out.add(f"{key}:{v if isinstance(v, str) else json.dumps(v, sort_keys=True)}")
    return frozenset(out)


def _default(p: Protection, type_: str, resource: dict[str, Any]) -> Any:
    props = resource.get("Properties")
    in_cluster = isinstance(props, dict) and "DBClusterIdentifier" in props
    if p.path == ("DeletionPolicy",) and type_ in _RDS and not in_cluster:
        return "Snapshot"
    return p.default


def _measure(p: Protection, type_: str, resource: dict[str, Any], account: str | None) -> Any:
    """The protection's value in one resource (a number, principals, on or off); ``_UNKNOWN`` when not known."""
    found = _values(resource, p.path)
    if p.kind == "principal":
        return _outside(found[0], account) if found else frozenset()
    if p.kind == "expiry":
        return _expiry(found[0]) if found else _NEVER
    found = found or [_default(p, type_, resource)]
    if not all(_known(v) for v in found):
        return _UNKNOWN
    if p.kind == "retention":
        numbers = [_number(v) for v in found]
        return _UNKNOWN if _UNKNOWN in numbers else min(numbers)
    if p.kind == "policy":
        return _POLICY_RANK.get(str(found[0]), _UNKNOWN)
    return any(str(v).lower() in {o.lower() for o in p.on} for v in found)


def _weaker(p: Protection, before: Any, after: Any) -> bool:
    if before is _UNKNOWN or after is _UNKNOWN:
        return False
    if p.kind == "principal":
        return bool(after - before)
    if p.kind == "public":  # on (True) is the weaker state
        return after > before
    return after < before  # a lower number, a weaker policy rank, or on -> off (True -> False)


def _shown(p: Protection, value: Any) -> str:
    if p.kind == "principal":
        return ", ".join(sorted(value)) or "none"  # e.g. AWS:arn:aws:iam::999988887777:root, Federated:...
    if p.kind == "policy":
        return {0: "Delete", 1: "Snapshot", 2: "Retain"}[value]
    if p.kind in ("off", "public"):
        return str(bool(value)).lower() if p.on == ("true",) else p.on[0] if value else str(p.default)
    if value == _NEVER:
        return "never" if p.kind == "expiry" else "unlimited"
    unit = (" day" if value == 1 else " days") if p.kind == "expiry" else ""
    return f"{value:g}{unit}"


def weakened(
    type_: str, before: dict[str, Any], after: dict[str, Any], account: str | None = None
) -> tuple[Weakening, ...]:
    """The protections (:data:`PROTECTIONS`) a change of one resource takes away: the guard's one rule.

    ``before``/``after``: the resource as a template has it (``Properties``, ``DeletionPolicy``,
    ``UpdateReplacePolicy``), whole (``kr-cfn diff``) or only where a change set says it changes
    (DescribeChangeSet's ``BeforeValue``/``AfterValue`` placed at their ``Path``); a value not
    known before the deploy (a reference, a truncated value) is not judged. ``account``: the stack's
    account id, so a trust policy naming it is not "outside".
    """
    out = []
    for p in PROTECTIONS:
        if type_ not in p.types:
            continue
        old, new = _measure(p, type_, before, account), _measure(p, type_, after, account)
        if _weaker(p, old, new):
            name = ".".join(x for x in p.path if x not in ("Properties", "*"))
            out.append(Weakening(name, _shown(p, old), _shown(p, new), _KINDS[p.kind]))
    return tuple(out)


def at_risk(change: ResourceChange) -> bool:
    """Whether the change can delete or replace the existing resource."""
    if change.action in _KEEPS_DATA:
        return False
    if change.action == "Modify":
        return change.replacement in ("True", "Conditional") or change.policy_action in _REPLACING
    return True


def stateful(type_: str, policy: object = None) -> bool:
    """Whether a resource of this type (with this PolicyAction or DeletionPolicy) holds data."""
    return type_ in STATEFUL_TYPES or (isinstance(policy, str) and policy in _SNAPSHOT)


def held_in(template: dict[str, Any], path: str, child: ChildTemplate) -> list[Held] | str:
    """The stateful resources of a template and of the stacks nested in it (``child`` reads those)."""
    found: list[Held] = []
    resources = template.get("Resources")
    if not isinstance(resources, dict):
        return "no Resources in the template"
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):  # e.g. Fn::ForEach (a transform): cannot tell what it makes
            return f"{path}/{logical_id}: not a resource (a transform not processed)"
        type_, policy = str(resource.get("Type")), resource.get("DeletionPolicy")
        policy = policy if isinstance(policy, str) else None
        if type_ == NESTED_STACK:
            nested = child(path, logical_id, resource)
            inner = nested if isinstance(nested, str) else held_in(nested, f"{path}/{logical_id}", child)
            if isinstance(inner, str):
                return f"{path}/{logical_id}: {inner}"
            found += inner
        elif stateful(type_, policy) or resource.get("UpdateReplacePolicy") in _SNAPSHOT:
            found.append(Held(path, logical_id, type_, policy))
    return found


def template_contents(template_at: Callable[[str], dict[str, Any] | None]) -> Contents:
    """A ``Contents`` for callers with templates only (e.g. a previous build).

    ``template_at("root/DataStack")`` returns the template of the nested stack at that path, or
    None when there is none (then the stack is blocked as a whole).
    """

    def child(path: str, logical_id: str, resource: dict[str, Any]) -> dict[str, Any] | str:
        return template_at(f"{path}/{logical_id}") or f"{path}/{logical_id}: no template"

    def contents(stack: StackChanges, change: ResourceChange) -> list[Held] | str:
        top = f"{stack.path}/{change.logical_id}"
        template = template_at(top)
        return held_in(template, top, child) if template is not None else f"{top}: no template"

    return contents


def _unreadable(stack: StackChanges, change: ResourceChange, allowed: bool) -> GuardFinding:
    return GuardFinding(
        stack.path, change.logical_id, change.type, change.action, change.replacement, allowed, change.policy_action
    )


def findings(
    stacks: Iterable[StackChanges], allowed: Iterable[str], contents: Contents | None = None
) -> list[GuardFinding]:
    """Every change that can delete or replace data, or takes a protection away; ``allowed`` by logical id.

    A stateful resource is at risk when it is removed, replaced (``True``/``Conditional``), or its
    action is ``Dynamic``. A nested stack at risk takes every resource in it along: ``contents``
    reads them (from the deployed stack, or from templates); each stateful one is a finding, allowed
    by its own logical id or by the nested stack's. When ``contents`` is missing or cannot tell, the
    nested stack itself is a finding (blocked unless allowed): unknown is not empty. A change that
    takes a protection away (``ResourceChange.weakened``, see :func:`weakened`) is a finding too.
    """
    allow = set(allowed)
    found: list[GuardFinding] = []
    for stack in stacks:
        for c in stack.changes:
            if at_risk(c) and c.type == NESTED_STACK:
                found += _nested_findings(stack, c, allow, contents)
            elif at_risk(c) and stateful(c.type, c.policy_action):
                replacement = "Conditional" if c.action == "Dynamic" else c.replacement
                found.append(
                    GuardFinding(
                        stack.path, c.logical_id, c.type, c.action, replacement, c.logical_id in allow, c.policy_action
                    )
                )
            elif c.weakened:
                found.append(
                    GuardFinding(
                        stack.path,
                        c.logical_id,
                        c.type,
                        c.action,
                        c.replacement,
                        c.logical_id in allow,
                        weakened=c.weakened,
                    )
                )
    return found


def _nested_findings(
    stack: StackChanges, c: ResourceChange, allow: set[str], contents: Contents | None
) -> list[GuardFinding]:
    """A nested stack at risk: each stateful resource in it, or the stack itself when they cannot be known."""
    held = contents(stack, c) if contents else "no reader for deployed nested stacks"
    if isinstance(held, str):
        return [replace(_unreadable(stack, c, c.logical_id in allow), reason=held)]
    # A nested stack that is itself retained keeps everything in it (outside the stack).
    kept = c.policy_action if c.policy_action in _RETAINED else None
    return [
        GuardFinding(
            h.path,
            h.logical_id,
            h.type,
            c.action,
            c.replacement,
            c.logical_id in allow or h.logical_id in allow,
            kept or h.deletion_policy,
            c.logical_id,
        )
        for h in held
    ]


def lifted_ids(review: Review) -> list[str]:
    """Logical ids the stack policy lets go for one execution of a reviewed change set.

    The resources allowed with ``--allow-replace``, the nested stacks they go with, and every
    nested stack at risk the guard found nothing stateful in (the re-check passed).
    """
    # A protection taken away in place is an update (Update:Modify), which the stack policy allows anyway.
    lifted = [f for f in review.findings if f.allowed and not (f.weakened and f.in_place)]
    ids = {f.logical_id for f in lifted}
    ids |= {f.nested_stack for f in lifted if f.nested_stack}
    ids |= {c.logical_id for s in review.stacks for c in s.changes if c.type == NESTED_STACK and at_risk(c)}
    return sorted(ids)


def stack_policy(
    protected_types: Iterable[str] = STATEFUL_TYPES | {NESTED_STACK}, except_ids: Iterable[str] = ()
) -> str:
    """A stack policy: everything may be updated, but stateful resources and nested stacks never replaced or deleted.

    A stack policy applies only during stack updates
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/protect-stack-resources.html), and an
    update of the parent that removes a nested stack deletes it, termination protection or not
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html): the
    nested stack's own policy is never asked, so the parent's policy protects the nested stack resource.

    ``except_ids`` exempts logical ids for one execution (an allowed ``--allow-replace``).
    """
    from awacs import aws

    update_replace = aws.Action("Update", "Replace")
    update_delete = aws.Action("Update", "Delete")
    deny = aws.Statement(
        Sid="KeepStatefulResources",
        Effect=aws.Deny,
        Principal=aws.Principal("*"),
        Action=[update_replace, update_delete],
        Condition=aws.Condition(aws.StringEquals("ResourceType", sorted(protected_types))),
    )
    exempt = sorted(except_ids)
    if exempt:
        deny.NotResource = [f"LogicalResourceId/{i}" for i in exempt]
    else:
        deny.Resource = ["*"]
    allow = aws.Statement(
        Sid="UpdateEverythingElse",
        Effect=aws.Allow,
        Principal=aws.Principal("*"),
        Action=[aws.Action("Update", "*")],
        Resource=["*"],
    )
    return aws.PolicyDocument(Statement=[allow, deny]).to_json(indent=None)
