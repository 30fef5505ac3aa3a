"""Qdrant's storage choice and backups (``services.qdrant.storage``, ``.ebs``, ``.snapshots``).

- ``efs``: the plan's layout, an EFS access point mounted into a Fargate task. Qdrant's
  installation guide asks for block storage and says it "won't work with network file
  systems such as NFS" (https://qdrant.tech/documentation/guides/installation/, "Storage");
  EFS is NFS. Kept for dev and for whoever accepts that risk.
- ``ebs``: one EC2 instance (Auto Scaling group of one, ECS capacity provider) that attaches
  and mounts an encrypted gp3 volume of the data stack; qdrant runs there with a host volume.
- ``external``: Qdrant Cloud or any Qdrant URL; no qdrant service, URL and API key from a secret.

Default: ``ebs`` where the root stack has termination protection (prod), else ``efs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from kr_cfn.config.base import Model
from kr_cfn.config.images import image

QDRANT = "qdrant"
"""The service the storage choice applies to."""
Storage = Literal["efs", "ebs", "external"]

SNAPSHOT_OK = "kr-qdrant: snapshot ok"
"""Log line the snapshot job writes when every collection is in S3 (the metric filter counts it)."""
SNAPSHOT_METRIC = "QdrantSnapshotsSucceeded"
SNAPSHOT_JOB = "qdrant-snapshots"
"""The snapshot job as a flow node: its own security group, which may reach qdrant (and HTTPS for S3)."""
SNAPSHOT_PREFIX = "qdrant"
"""Key prefix of the snapshots in the backups bucket."""
HOST_MOUNT = "/data/qdrant"
"""Where the qdrant host mounts the EBS volume; the qdrant task mounts this host path."""
STORAGE_OWNER = "1000:1000"
"""Default ``uid:gid`` of Qdrant's data: the EFS access point's POSIX user and owner of its root
directory, and the owner the ebs host's user data gives the mounted volume. It is the uid of the
``qdrant/qdrant:<version>-unprivileged`` images, built with ``--build-arg USER_ID=1000``
(https://github.com/qdrant/qdrant/blob/v1.7.0/.github/workflows/docker-image.yml)."""
QDRANT_SECRET_KEYS = ("url", "api_key")
"""JSON keys of the external Qdrant's secret."""


def metric_namespace(prefix: str) -> str:
    """CloudWatch namespace of the environment's own metrics (log metric filters)."""
    return f"KnowledgeRouter/{prefix}"


class EbsStorage(Model):
    """The EC2 host and EBS volume of ``storage: ebs``."""

    instance_type: str = Field(
        "t3.small",
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="EC2 instance type of the qdrant host (x86_64; must hold the task's cpu and memory).",
    )
    volume_gb: int = Field(20, ge=1, le=16384, description="Size of the gp3 data volume (GiB).")
    snapshot_retention_days: int = Field(
        7, ge=1, le=1000, description="Daily EBS snapshots of the volume (Data Lifecycle Manager) kept."
    )
    snapshot_id: str | None = Field(
        None,
        pattern=r"^snap-[0-9a-f]{8,17}$",
        description="Restore: a new volume from this EBS snapshot replaces the current one "
        "(docs/runbook.md 'Qdrant storage, backups and the way back').",
    )


AWS_CLI_IMAGE = image("aws-cli")
"""The AWS CLI image of the jobs and sidecars (snapshots, discovery): docs/runbook.md "Images and upgrades"."""


class Snapshots(Model):
    """The daily snapshot of every collection to the backups bucket."""

    time: str = Field(
        "03:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="UTC time of day (HH:MM) of the collection snapshots (and of the EBS volume snapshot).",
    )
    image: str = Field(
        AWS_CLI_IMAGE,
        pattern=r"^[a-z0-9./_-]+(:[A-Za-z0-9_.-]+)?(@sha256:[a-f0-9]{64})?$",
        description="Image of the snapshot/restore job: needs bash, curl and the AWS CLI.",
    )
    user: str = Field(
        "0:0",
        pattern=r"^[0-9]{1,10}(:[0-9]{1,10})?$",
        description="uid:gid of the job's container: the AWS CLI image's own, root (its Dockerfile sets no USER). "
        "It drops every capability, its root file system is read-only and only its task-local /tmp is writable.",
    )


@dataclass(frozen=True)
class QdrantPlan:
    """What the stacks need to know about Qdrant in one environment."""

    storage: Storage
    ebs: EbsStorage
    snapshots: Snapshots
    port: int
    owner: str = STORAGE_OWNER
    """``uid:gid`` the templates hand Qdrant's storage to (user data chown, EFS access point)."""
