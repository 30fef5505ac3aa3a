"""The data-loss guard: removals and replacements of stateful resources need ``--allow-replace``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from kr_cfn.changes.review import GuardFinding, ResourceChange, Review, StackChanges

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
        type_, policy = str(resource.get("Type", "")), resource.get("DeletionPolicy")
        policy = policy if isinstance(policy, str) else None
        if type_ == NESTED_STACK:
            nested = child(path, logical_id, resource)
            inner = nested if isinstance(nested, str) else held_in(nested, f"{path}/{logical_id}", child)
            if isinstance(inner, str):
                return f"{path}/{logical_id}: {inner}"
            found += inner
        elif stateful(type_, policy) or stateful(type_, resource.get("UpdateReplacePolicy")):
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
    """Every change that can delete or replace data; ``allowed`` by logical id.

    A stateful resource is at risk when it is removed, replaced (``True``/``Conditional``), or its
    action is ``Dynamic``. A nested stack at risk takes every resource in it along: ``contents``
    reads them (from the deployed stack, or from templates); each stateful one is a finding, allowed
    by its own logical id or by the nested stack's. When ``contents`` is missing or cannot tell, the
    nested stack itself is a finding (blocked unless allowed): unknown is not empty.
    """
    allow = set(allowed)
    found: list[GuardFinding] = []
    for stack in stacks:
        for c in stack.changes:
            if not at_risk(c):
                continue
            if c.type == NESTED_STACK:
                held = contents(stack, c) if contents else "no reader for deployed nested stacks"
                if isinstance(held, str):
                    finding = _unreadable(stack, c, c.logical_id in allow)
                    found.append(replace(finding, reason=held))
                    continue
                # A nested stack that is itself retained keeps everything in it (outside the stack).
                kept = c.policy_action if c.policy_action in _RETAINED else None
                for h in held:
                    ok = c.logical_id in allow or h.logical_id in allow
                    policy = kept or h.deletion_policy
                    found.append(
                        GuardFinding(h.path, h.logical_id, h.type, c.action, c.replacement, ok, policy, c.logical_id)
                    )
            elif stateful(c.type, c.policy_action):
                replacement = "Conditional" if c.action == "Dynamic" else c.replacement
                found.append(
                    GuardFinding(
                        stack.path, c.logical_id, c.type, c.action, replacement, c.logical_id in allow, c.policy_action
                    )
                )
    return found


def lifted_ids(review: Review) -> list[str]:
    """Logical ids the stack policy lets go for one execution of a reviewed change set.

    The resources allowed with ``--allow-replace``, the nested stacks they go with, and every
    nested stack at risk the guard found nothing stateful in (the re-check passed).
    """
    ids = {f.logical_id for f in review.findings if f.allowed}
    ids |= {f.nested_stack for f in review.findings if f.allowed and f.nested_stack}
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
