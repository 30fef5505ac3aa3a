"""``kr-cfn destroy``: delete an environment's application stacks without losing data.

What is kept is read from the *deployed* templates (GetTemplate of the root and every nested
stack): a resource whose ``DeletionPolicy`` is ``Retain``/``RetainExceptOnCreate`` stays, one
with ``Snapshot`` leaves a final snapshot; everything else is deleted. ``AWS::RDS::DBInstance``
and ``AWS::RDS::DBCluster`` default to ``Snapshot`` when no policy is given
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-attribute-deletionpolicy.html).
Nothing is emptied: CloudFormation cannot delete a bucket that still holds objects, and a bucket
with a Delete policy is named so the operator decides. The bootstrap stack (images, roles,
packaged templates) is not touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kr_cfn.aws import Aws, stack_label
from kr_cfn.changes import apply as applying

KEEP = ("Retain", "RetainExceptOnCreate")
_SNAPSHOT_BY_DEFAULT = ("AWS::RDS::DBInstance", "AWS::RDS::DBCluster")
# What holds data, for the "deleted" list's warnings (the guard's list, plus volumes).
_HOLDS_DATA = (
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::EFS::FileSystem",
    "AWS::S3::Bucket",
    "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::SecretsManager::Secret",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::EC2::Volume",
)


@dataclass(frozen=True)
class Item:
    """One resource of the environment and what deleting the stacks does to it."""

    stack: str
    logical_id: str
    type: str
    physical_id: str
    policy: str
    """Retain, Snapshot or Delete (the effective DeletionPolicy)."""


@dataclass
class Inventory:
    """What ``destroy`` keeps, snapshots and deletes, and what would make the deletion fail."""

    kept: list[Item] = field(default_factory=list)
    snapshot: list[Item] = field(default_factory=list)
    deleted: list[Item] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _template(cfn: Any, stack_id: str) -> dict[str, Any]:
    from cfnlint.decode import decode_str  # YAML short forms (!Ref) as well as JSON

    body = cfn.get_template(StackName=stack_id, TemplateStage="Original")["TemplateBody"]
    if isinstance(body, dict):
        return body
    template, _ = decode_str(body)
    return json.loads(json.dumps(template or {}))


def _policy(resource: dict[str, Any], type_: str) -> str:
    policy = resource.get("DeletionPolicy")
    if not isinstance(policy, str):
        return "Snapshot" if type_ in _SNAPSHOT_BY_DEFAULT else "Delete"
    return "Retain" if policy in KEEP else policy


def _deletion_protection(item: Item, props: dict[str, Any]) -> str | None:
    if item.type.startswith("AWS::RDS::") and props.get("DeletionProtection") in (True, "true"):
        return (
            f"{item.stack}/{item.logical_id} ({item.type} {item.physical_id}) has deletion protection "
            f"(data.deletion_protection): turn it off first, aws rds modify-db-instance "
            f"--db-instance-identifier {item.physical_id} --no-deletion-protection --apply-immediately"
        )
    if item.type == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        for attr in props.get("LoadBalancerAttributes") or []:
            if attr.get("Key") == "deletion_protection.enabled" and str(attr.get("Value")).lower() == "true":
                return (
                    f"{item.stack}/{item.logical_id} (load balancer) has deletion protection "
                    "(alb.deletion_protection): "
                    f"turn it off first, aws elbv2 modify-load-balancer-attributes --load-balancer-arn "
                    f"{item.physical_id} --attributes Key=deletion_protection.enabled,Value=false"
                )
    return None


def inventory(aws: Aws, root_stack_id: str) -> Inventory:
    """Every resource of the root and nested stacks, sorted into kept, snapshot and deleted."""
    cfn = aws.client("cloudformation")
    inv = Inventory()
    for sid in [root_stack_id, *(s for s, _ in applying.nested_stacks(aws, root_stack_id))]:
        template = _template(cfn, sid).get("Resources", {})
        pages = cfn.get_paginator("list_stack_resources").paginate(StackName=sid)
        for r in (r for page in pages for r in page["StackResourceSummaries"]):
            if r["ResourceType"] == "AWS::CloudFormation::Stack" or r["ResourceStatus"] == "DELETE_COMPLETE":
                continue
            declared = template.get(r["LogicalResourceId"], {})
            item = Item(
                stack_label(sid),
                r["LogicalResourceId"],
                r["ResourceType"],
                r.get("PhysicalResourceId") or "-",
                _policy(declared, r["ResourceType"]),
            )
            {"Retain": inv.kept, "Snapshot": inv.snapshot}.get(item.policy, inv.deleted).append(item)
            blocker = _deletion_protection(item, declared.get("Properties") or {})
            if blocker:
                inv.blockers.append(blocker)
            if item.policy == "Delete" and item.type in _HOLDS_DATA:
                inv.warnings.append(
                    f"{item.stack}/{item.logical_id} ({item.type} {item.physical_id}) holds data and is DELETED "
                    "with the stack (data.delete_with_stack or no policy)"
                    + (
                        "; CloudFormation cannot delete a bucket that is not empty and destroy empties nothing: "
                        "copy what you need, empty it yourself, or the deletion stops there"
                        if item.type == "AWS::S3::Bucket"
                        else ""
                    )
                )
    return inv


def render(inv: Inventory) -> str:
    """The lists, one resource a line."""
    lines = []
    for title, items in (
        ("kept (DeletionPolicy Retain: stays, with its name and data)", inv.kept),
        ("snapshot (DeletionPolicy Snapshot: a final snapshot is taken, then it is deleted)", inv.snapshot),
        ("deleted", inv.deleted),
    ):
        lines.append(f"{title}: {len(items)}")
        lines += [f"  {i.stack}/{i.logical_id}  {i.type}  {i.physical_id}" for i in items]
    lines += [f"warning: {w}" for w in inv.warnings]
    return "\n".join(lines) + "\n"


def final_snapshots(aws: Aws, inv: Inventory) -> list[str]:
    """The final snapshot of each database/cache in the snapshot list (after the deletion)."""
    found = []
    for item in inv.snapshot:
        if item.type == "AWS::RDS::DBInstance":
            snaps = aws.client("rds").describe_db_snapshots(
                DBInstanceIdentifier=item.physical_id, SnapshotType="manual"
            )["DBSnapshots"]
            newest = max(snaps, key=lambda s: str(s.get("SnapshotCreateTime", "")), default=None)
            name = newest["DBSnapshotIdentifier"] if newest else "not found (look for it in the RDS console)"
            found.append(f"{item.logical_id} ({item.physical_id}): final snapshot {name}")
        else:
            found.append(f"{item.logical_id} ({item.type} {item.physical_id}): final snapshot named by CloudFormation")
    return found


def recreate_steps(env: str, inv: Inventory) -> str:
    """How to build the environment again on top of what was kept (docs/runbook.md "Secrets": retained resources)."""
    named = [i for i in inv.kept if i.type != "AWS::EFS::FileSystem"]
    lines = [
        f"to re-create {env}: the retained resources keep their names, and CloudFormation refuses to create a "
        "resource whose name exists, so first, for each of these, keep its data elsewhere and delete it "
        "(or import it into the new stack: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resource-import.html):",
    ]
    lines += [f"  {i.type} {i.physical_id}" for i in named]
    lines += [
        "then: kr-cfn build, package, plan, apply as for a new environment (see Deploying); after that,",
        "  the database: restore its final snapshot (aws rds restore-db-instance-from-db-snapshot) to a "
        "temporary instance and copy the data into the new one (pg_dump | pg_restore),",
        "  the Qdrant file system (kept, unnamed): copy its /qdrant/storage into the new one (e.g. AWS DataSync),",
        "  the secrets: set the real values again (see Secrets) unless you imported the kept ones.",
    ]
    return "\n".join(lines) + "\n"
