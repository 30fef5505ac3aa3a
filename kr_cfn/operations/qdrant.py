"""``kr-cfn qdrant``: list the Qdrant snapshots in S3 and restore one into the running Qdrant.

Qdrant is reachable only inside the VPC, so the restore runs there: the ecs stack's snapshot
task definition (the one the daily schedule runs) with the command ``restore KEY COLLECTION``,
in the same subnets and security groups. The task copies the object from the backups bucket
and uploads it to Qdrant's ``POST /collections/{name}/snapshots/upload?priority=snapshot``
(https://qdrant.tech/documentation/concepts/snapshots/#upload-snapshot-file), which replaces
the collection's data with the snapshot's.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from kr_cfn.aws import Aws, error_code
from kr_cfn.changes import apply as applying
from kr_cfn.errors import EXIT_FAILED, DeployError

ECS_STACK = "EcsStack"
DATA_STACK = "DataStack"
CONTAINER = "snapshots"
PREFIX = "qdrant/"
_KEY = re.compile(r"^qdrant/[^/]+/(?P<collection>[^/]+)\.snapshot$")
_COLLECTION = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


@dataclass(frozen=True)
class Job:
    """Where and how the snapshot task runs (the ecs stack's outputs)."""

    cluster: str
    task_definition: str
    log_group: str
    subnets: list[str]
    security_groups: list[str]
    assign_public_ip: str
    bucket: str


def collection_of(key: str, collection: str | None) -> str:
    """The collection a snapshot key restores into: ``--collection`` or the key's file name."""
    match = _KEY.match(key)
    if not match:
        raise DeployError(
            f"--snapshot {key}: expected a key qdrant/<time>/<collection>.snapshot "
            "(list them with kr-cfn qdrant snapshots)"
        )
    name = collection or match["collection"]
    if not _COLLECTION.match(name):
        raise DeployError(f"--collection {name}: a collection name is letters, digits and ._- (max 255)")
    return name


def _nested_outputs(aws: Aws, root: str, logical_id: str) -> dict[str, str]:
    cfn = aws.client("cloudformation")
    try:
        physical = cfn.describe_stack_resource(StackName=root, LogicalResourceId=logical_id)
    except ClientError as exc:
        if error_code(exc) == "ValidationError":
            raise DeployError(f"stack {root} does not exist or has no {logical_id}; deploy it first") from None
        raise
    return applying.outputs(aws, physical["StackResourceDetail"]["PhysicalResourceId"])


def find_job(aws: Aws, root: str) -> Job:
    """The snapshot task of the deployed environment, from its nested stacks' outputs."""
    ecs = _nested_outputs(aws, root, ECS_STACK)
    if "QdrantSnapshotTaskDefinitionArn" not in ecs:
        raise DeployError(
            f"stack {root} has no Qdrant snapshot task (services.qdrant.storage is external or qdrant is not "
            "deployed): restore an external Qdrant with its own tools"
        )
    data = _nested_outputs(aws, root, DATA_STACK)
    return Job(
        cluster=ecs["ClusterName"],
        task_definition=ecs["QdrantSnapshotTaskDefinitionArn"],
        log_group=ecs["QdrantSnapshotLogGroupName"],
        subnets=ecs["QdrantSnapshotSubnets"].split(","),
        security_groups=ecs["QdrantSnapshotSecurityGroups"].split(","),
        assign_public_ip=ecs["QdrantSnapshotAssignPublicIp"],
        bucket=data["BackupsBucketName"],
    )


def list_snapshots(aws: Aws, job: Job) -> list[tuple[str, int, str]]:
    """Every snapshot object under qdrant/: (key, size, last modified), oldest first."""
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=job.bucket, Prefix=PREFIX)
    found = [
        (o["Key"], int(o["Size"]), o["LastModified"].isoformat())
        for page in pages
        for o in page.get("Contents", [])
        if _KEY.match(o["Key"])
    ]
    return sorted(found, key=lambda item: (item[2], item[0]))


def start_restore(aws: Aws, job: Job, key: str, collection: str) -> str:
    """Check the object exists, run the restore task; returns the task ARN."""
    try:
        aws.client("s3").head_object(Bucket=job.bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise DeployError(f"--snapshot {key}: no such object in s3://{job.bucket}/") from None
        raise
    response = aws.client("ecs").run_task(
        cluster=job.cluster,
        taskDefinition=job.task_definition,
        launchType="FARGATE",
        platformVersion="LATEST",
        count=1,
        startedBy="kr-cfn-qdrant-restore",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": job.subnets,
                "securityGroups": job.security_groups,
                "assignPublicIp": job.assign_public_ip,
            }
        },
        overrides={"containerOverrides": [{"name": CONTAINER, "command": ["restore", key, collection]}]},
    )
    if response.get("failures") or not response.get("tasks"):
        reasons = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in response.get("failures", []))
        raise DeployError(f"ECS did not start the restore task: {reasons or 'no task'}", code=EXIT_FAILED)
    return str(response["tasks"][0]["taskArn"])


def outcome(task: dict[str, Any]) -> tuple[bool, str]:
    """Whether a stopped restore task succeeded, and why not (exit code or stop reason)."""
    containers = [c for c in task.get("containers", []) if c.get("name") == CONTAINER]
    code = containers[0].get("exitCode") if containers else None
    if code == 0:
        return True, "exit 0"
    reason = (containers[0].get("reason") if containers else None) or task.get("stoppedReason") or "unknown"
    return False, f"exit {code}: {reason}" if code is not None else f"no exit code: {reason}"


def wait(aws: Aws, job: Job, task_arn: str, timeout: int, poll: float = 10.0) -> dict[str, Any]:
    """Poll the task until it stops (the restore of a large collection can take long)."""
    deadline = time.monotonic() + timeout
    ecs = aws.client("ecs")
    while True:
        (task,) = ecs.describe_tasks(cluster=job.cluster, tasks=[task_arn])["tasks"]
        if task.get("lastStatus") == "STOPPED":
            return dict(task)
        if time.monotonic() > deadline:
            raise DeployError(
                f"restore task {task_arn} still {task.get('lastStatus')} after {timeout} s; "
                f"follow it in log group {job.log_group}",
                code=EXIT_FAILED,
            )
        time.sleep(poll)


def log_lines(aws: Aws, job: Job, task_arn: str) -> list[str]:
    """The task's log lines (stream ecs/<container>/<task id>), empty when there are none yet."""
    stream = f"ecs/{CONTAINER}/{task_arn.rsplit('/', 1)[-1]}"
    try:
        events = aws.client("logs").get_log_events(logGroupName=job.log_group, logStreamName=stream, startFromHead=True)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise
    return [e["message"] for e in events.get("events", [])]
