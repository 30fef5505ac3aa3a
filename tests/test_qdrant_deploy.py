"""Each Qdrant storage choice deployed on the local AWS endpoint, then ``kr-cfn qdrant`` against it.

As far as moto goes: the stacks deploy (resources moto has no model for are placeholders, see
aws_endpoint.py), ``kr-cfn qdrant snapshots`` lists the backups bucket and ``kr-cfn qdrant restore``
starts the snapshot task with the restore command in the job's subnets and security groups.
moto's ECS never runs a container, so the restore's outcome (the task's exit code) is checked
on describe_tasks answers in test_restore_outcome_reads_the_containers_exit_code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from kr_cfn.operations import qdrant as restoring
from tests import aws_endpoint
from tests.test_deploy_e2e import REGION, Project, _image_tags

PREFIX = "knowledgerouter-dev"


def _deploy(project: Project, storage: str) -> None:
    project.set("dev", "services", {"qdrant": {"storage": storage}})
    project.build("dev")
    project.ok("bootstrap", "--env", "dev")
    bucket = project.ok("outputs", "--env", "dev", "--bootstrap", "--key", "ArtifactsBucketName").strip()
    project.ok("package", "--env", "dev", "--bucket", bucket)
    project.ok("plan", "--env", "dev", *_image_tags(project, "dev", "v1"))
    project.ok("apply", "--env", "dev", "--change-set", project.review("dev")["change_set_name"])


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Project]:
    """A fresh local endpoint per test (each deploys the same dev environment)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with aws_endpoint.local_endpoint() as url, pytest.MonkeyPatch.context() as mp:
        # moto's backends live in the process, not the server: start from an empty account.
        aws_endpoint.reset(url)
        aws_endpoint.point_boto3_at(mp, url, REGION)
        yield Project(tmp_path, capsys)


def _outputs(logical_id: str) -> dict[str, str]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    physical = cfn.describe_stack_resource(StackName=PREFIX, LogicalResourceId=logical_id)
    stack = cfn.describe_stacks(StackName=physical["StackResourceDetail"]["PhysicalResourceId"])["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


@pytest.mark.parametrize("storage", ["efs", "ebs"])
def test_restore_runs_the_snapshot_task_with_the_restore_command(project: Project, storage: str) -> None:
    _deploy(project, storage)
    ecs_out, data_out = _outputs("EcsStack"), _outputs("DataStack")
    bucket = data_out["BackupsBucketName"]
    assert f"no snapshots under s3://{bucket}/qdrant/" in project.ok("qdrant", "snapshots", "--env", "dev")

    key = "qdrant/2026-01-31T030000Z/docs.snapshot"
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key=key, Body=b"snapshot")
    s3.put_object(Bucket=bucket, Key="postgres/2026-01-31.dump", Body=b"not ours")
    listed = project.ok("qdrant", "snapshots", "--env", "dev")
    assert key in listed and "postgres/" not in listed

    out = project.ok("qdrant", "restore", "--env", "dev", "--snapshot", key, "--collection", "docs-old", "--no-wait")
    assert f"s3://{bucket}/{key} -> collection docs-old" in out
    ecs = boto3.client("ecs", region_name=REGION)
    (arn,) = ecs.list_tasks(cluster=ecs_out["ClusterName"], startedBy="kr-cfn-qdrant-restore")["taskArns"]
    (task,) = ecs.describe_tasks(cluster=ecs_out["ClusterName"], tasks=[arn])["tasks"]
    assert task["taskDefinitionArn"] == ecs_out["QdrantSnapshotTaskDefinitionArn"]
    assert task["overrides"]["containerOverrides"] == [{"name": "snapshots", "command": ["restore", key, "docs-old"]}]
    # the daily job's own network: the same outputs feed the schedule (see test_qdrant.py)
    assert ecs_out["QdrantSnapshotSubnets"].split(",") and ecs_out["QdrantSnapshotSecurityGroups"].startswith("sg-")

    code, _, err = project.run("qdrant", "restore", "--env", "dev", "--snapshot", "qdrant/x/missing.snapshot")
    assert code == 2 and f"--snapshot qdrant/x/missing.snapshot: no such object in s3://{bucket}/" in err
    code, _, err = project.run("qdrant", "restore", "--env", "dev", "--snapshot", "postgres/2026-01-31.dump")
    assert code == 2 and "expected a key qdrant/<time>/<collection>.snapshot" in err

    if storage == "ebs":
        (volume,) = boto3.client("ec2", region_name=REGION).describe_volumes(VolumeIds=[data_out["QdrantVolumeId"]])[
            "Volumes"
        ]
        # moto's volume model takes only Size from CloudFormation (type, encryption and AZ are
        # checked on the template in test_qdrant.py)
        assert volume["Size"] == 20
        assert "AWS::DLM::LifecyclePolicy" in {p.type for p in aws_endpoint.PLACEHOLDERS}


def test_external_has_nothing_to_restore(project: Project) -> None:
    _deploy(project, "external")
    assert "QdrantSecretArn" in _outputs("DataStack")
    assert "QdrantSnapshotTaskDefinitionArn" not in _outputs("EcsStack")
    code, _, err = project.run(
        "qdrant", "restore", "--env", "dev", "--snapshot", "qdrant/2026-01-31T030000Z/docs.snapshot"
    )
    assert code == 2 and "has no Qdrant snapshot task (services.qdrant.storage is external" in err


def test_restore_before_any_deploy(project: Project) -> None:
    project.build("dev")
    code, _, err = project.run("qdrant", "snapshots", "--env", "dev")
    assert code == 2 and f"stack {PREFIX} does not exist or has no EcsStack; deploy it first" in err


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"containers": [{"name": "snapshots", "exitCode": 0}]}, (True, "exit 0")),
        (
            {"containers": [{"name": "snapshots", "exitCode": 1}], "stoppedReason": "Essential container exited"},
            (False, "exit 1: Essential container exited"),
        ),
        (
            {"containers": [{"name": "snapshots", "reason": "CannotPullContainerError"}]},
            (False, "no exit code: CannotPullContainerError"),
        ),
    ],
)
def test_restore_outcome_reads_the_containers_exit_code(task: dict[str, Any], expected: tuple[bool, str]) -> None:
    assert restoring.outcome(task) == expected


@pytest.mark.parametrize(
    ("key", "collection", "message"),
    [
        ("qdrant/t/docs.snapshot", "bad/name", "--collection bad/name: a collection name is letters"),
        ("qdrant/docs.snapshot", None, "--snapshot qdrant/docs.snapshot: expected a key"),
    ],
)
def test_restore_arguments(key: str, collection: str | None, message: str) -> None:
    from kr_cfn.errors import DeployError

    with pytest.raises(DeployError) as exc:
        restoring.collection_of(key, collection)
    assert str(exc.value).startswith(message) and exc.value.code == 2
