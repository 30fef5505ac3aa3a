"""The data-loss guard: removals and replacements of stateful resources need ``--allow-replace``."""

from __future__ import annotations

from collections.abc import Iterable

from kr_cfn.deploy.review import GuardFinding, StackChanges

STATEFUL_TYPES = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBCluster",
        "AWS::EFS::FileSystem",
        "AWS::S3::Bucket",
        "AWS::ElastiCache::CacheCluster",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::ElastiCache::ServerlessCache",
        "AWS::SecretsManager::Secret",
        "AWS::ECR::Repository",
        "AWS::Logs::LogGroup",
        "AWS::KMS::Key",
    }
)
"""Resource types whose replacement or deletion loses data."""


def findings(stacks: Iterable[StackChanges], allowed: Iterable[str]) -> list[GuardFinding]:
    """Every Remove, or Replacement True/Conditional, of a stateful resource; ``allowed`` by logical id."""
    allow = set(allowed)
    found = []
    for stack in stacks:
        for c in stack.changes:
            if c.type not in STATEFUL_TYPES:
                continue
            if c.action == "Remove" or (c.action == "Modify" and c.replacement in ("True", "Conditional")):
                found.append(
                    GuardFinding(stack.path, c.logical_id, c.type, c.action, c.replacement, c.logical_id in allow)
                )
    return found


def stack_policy(protected_types: Iterable[str] = STATEFUL_TYPES, except_ids: Iterable[str] = ()) -> str:
    """A stack policy: everything may be updated, but stateful resources never replaced or deleted.

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
