"""Services section (``services:``): every ECS service as data, plus the ``ecs:`` cluster settings.

Each entry of ``services`` is rendered by one builder into a task definition, a service,
a log group, a Cloud Map record, its security-group rules and (optionally) autoscaling.
The defaults are the architecture's six services; a params file states only what differs
(its entries are merged key by key onto these defaults, ``name: null`` drops a service),
and a new entry (e.g. a worker) is a new service without code.

String values in ``environment`` and ``files`` may contain placeholders, resolved at build
time: ``{{host:qdrant}}`` (the service's Cloud Map name, ``qdrant.<prefix>.local``),
``{{port:qdrant}}`` (its container port) and ``{{output:DbEndpointAddress}}`` (a data-stack
output, passed to the ecs stack as a Parameter of the same name).

The same references say who talks to whom: each service gets its own security group that
reaches exactly what its placeholders, secrets, volumes and ``connects_to`` name
(kr_cfn.config.flows).
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from kr_cfn import dashboards
from kr_cfn.config.base import Model, Problem
from kr_cfn.config.qdrant import (
    AWS_CLI_IMAGE,
    HOST_MOUNT,
    QDRANT,
    QDRANT_SECRET_KEYS,
    SNAPSHOT_JOB,
    SNAPSHOT_PREFIX,
    STORAGE_OWNER,
    EbsStorage,
    QdrantPlan,
    Snapshots,
    Storage,
)
from kr_cfn.config.service_defaults import DEFAULT_SERVICES
from kr_cfn.naming import Naming

# Fargate task sizes: cpu units -> allowed memory (MiB).
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922)
LOG_RETENTION_DAYS += (3288, 3653)

# Data-stack outputs a service may name. Secrets with the JSON keys ECS may select.
SECRET_OUTPUTS: dict[str, tuple[str, ...]] = {
    "DbSecretArn": ("username", "password"),
    "OpenAiSecretArn": (),
    "ConfluenceSecretArn": ("base_url", "email", "api_token"),
    "JiraSecretArn": ("base_url", "email", "api_token"),
    "GrafanaAdminSecretArn": ("username", "password"),
    "QdrantSecretArn": QDRANT_SECRET_KEYS,
}
QDRANT_SECRET = "QdrantSecretArn"  # noqa: S105 - an output name
"""Only produced with ``services.qdrant.storage: external``."""
VALUE_OUTPUTS = ("DbEndpointAddress", "DbEndpointPort", "DbName", "DataBucketName", "BackupsBucketName")
REDIS_OUTPUTS = ("RedisEndpointAddress", "RedisEndpointPort")
"""Only produced when ``data.redis`` is ``elasticache``."""
BUCKET_OUTPUTS = ("DataBucketArn", "BackupsBucketArn")
BACKUPS_BUCKET = "BackupsBucketArn"


def backups_prefix(service: str) -> str:
    """Where a service's task role may reach in the backups bucket: ``<service>/`` (qdrant/ holds the snapshots)."""
    return f"{service}/"


ACCESS_POINTS = ("Qdrant",)
"""EFS access points of the data stack: ``Qdrant`` -> QdrantAccessPointId/Arn on FileSystemId."""

PLACEHOLDER = re.compile(r"\{\{(host|port|tls|output):([A-Za-z0-9_-]+)\}\}")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_ECR_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An exact release: major.minor.patch, optionally v-prefixed and with a variant suffix
# (v1.7.0, 7.2.4-alpine, 10.2.2-ubuntu). Anything else (latest, 7, 7-alpine, 2.48) floats:
# the registry moves it to new releases, so two deploys of one template can run different code.
_EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+._][A-Za-z0-9]+)*$")
_DIGEST = r"^sha256:[0-9a-f]{64}$"
# "A path pattern is case-sensitive, can be up to 128 characters in length, and can contain any of the
# following characters: A-Z, a-z, 0-9, _ - . $ / ~ " ' @ : + & * ?"
# https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_RuleCondition.html
_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_\-.$/~\"'@:+&*?]{1,128}$")
# Linux capabilities ECS accepts in linuxParameters.capabilities.drop
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_KernelCapabilities.html).
CAPABILITIES = (
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
)


class HealthCheck(Model):
    """Container health check (ECS ``healthCheck``)."""

    command: str = Field(min_length=1, description="Shell command run with CMD-SHELL; exit 0 means healthy.")
    interval: int = Field(30, ge=5, le=300, description="Seconds between checks.")
    timeout: int = Field(5, ge=2, le=60, description="Seconds before a check fails.")
    retries: int = Field(3, ge=1, le=10, description="Failures before the container is unhealthy.")
    start_period: int = Field(0, ge=0, le=300, description="Seconds of grace after start (cold start).")

    def check(self) -> list[Problem]:
        """A check must end before the next one starts."""
        if self.timeout >= self.interval:
            return [
                ("timeout", f"{self.timeout} must be below interval {self.interval} (a check ends before the next)")
            ]
        return []


class SecretRef(Model):
    """An ECS ``secrets`` entry: a Secrets Manager secret (data-stack output) and optional JSON key."""

    secret: str = Field(description="Data-stack output holding the secret ARN, e.g. ConfluenceSecretArn.")
    key: str | None = Field(None, description="JSON key inside the secret (e.g. base_url); none = whole value.")


class Volume(Model):
    """An EFS access point of the data stack mounted into the container."""

    access_point: str = Field(description="Access point name: Qdrant (outputs QdrantAccessPointId/Arn).")
    path: str = Field(pattern=_PATH.pattern, description="Mount path in the container.")


class Route(Model):
    """How the load balancer reaches a service."""

    paths: tuple[str, ...] = Field(
        (), description="Path patterns routed here; with no paths and no hosts, the listener's default."
    )
    hosts: tuple[str, ...] = Field((), description="Host names routed here (host-header condition).")
    source_cidrs: tuple[str, ...] = Field(
        (), description="Only requests from these IPv4 CIDRs (source-ip condition); empty = from anywhere."
    )
    priority: int = Field(10, ge=1, le=50000, description="Listener rule priority (path routes only).")
    health_check_path: str = Field(
        "/", pattern=r"^/[\x21-\x7e]{0,1023}$", description="Target group health check path (/..., printable ASCII)."
    )
    health_check_grace: int = Field(60, ge=0, le=2147483647, description="ECS ignores LB health for this long (s).")

    def check(self) -> list[Problem]:
        """Path patterns as ALB accepts them."""
        return [
            (f"paths[{i}]", f"{p!r} is not an ALB path pattern (1-128 of A-Z a-z 0-9 _-.$/~\"'@:+&*?)")
            for i, p in enumerate(self.paths)
            if not _PATH_PATTERN.match(p)
        ]


class CapacityItem(Model):
    """One entry of a capacity provider strategy."""

    provider: Literal["FARGATE", "FARGATE_SPOT"] = Field(description="Capacity provider.")
    base: int = Field(0, ge=0, le=100000, description="Tasks always placed on this provider first.")
    weight: int = Field(1, ge=0, le=1000, description="Relative share of the tasks beyond the base.")


class Schedule(Model):
    """A scheduled change of the autoscaling bounds."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=200, description="Action name (unique per service).")
    cron: str = Field(description="Six-field cron expression in UTC, e.g. '0 7 ? * MON-FRI *'.")
    min_count: int = Field(ge=0, description="New minimum task count.")
    max_count: int = Field(ge=1, description="New maximum task count.")


class Autoscaling(Model):
    """Target tracking (and scheduled) scaling between the service's min_count and max_count."""

    cpu_target: float | None = Field(70, gt=0, le=100, description="Average CPU % to track; null = off.")
    memory_target: float | None = Field(80, gt=0, le=100, description="Average memory % to track; null = off.")
    requests_per_target: int | None = Field(
        1000, ge=1, description="ALB requests per task to track; null = off (needs load_balancer)."
    )
    scale_in_cooldown: int = Field(300, ge=0, description="Seconds after a scale-in before the next.")
    scale_out_cooldown: int = Field(60, ge=0, description="Seconds after a scale-out before the next.")
    schedules: tuple[Schedule, ...] = Field((), description="Scheduled changes of min/max, UTC.")


class ServiceSpec(Model):
    """One ECS service: container, sizing, networking, scaling."""

    image: str = Field(
        description="Public image with a tag (qdrant/qdrant:v1.7.0), or an ECR repository name in this "
        "account (knowledgerouter-backend) whose tag is the root parameter <Pascal>ImageTag."
    )
    cpu: int = Field(256, description="Fargate CPU units.")
    memory: int = Field(512, description="Fargate memory (MiB); must fit the cpu.")
    port: int = Field(ge=1, le=65535, description="Container port.")
    desired_count: int = Field(
        1,
        ge=0,
        description="Tasks of a service without autoscaling. With autoscaling the template leaves the count "
        "to Application Auto Scaling: a new service starts at min_count, a deploy keeps the running count.",
    )
    min_count: int = Field(1, ge=0, description="Lower bound (autoscaling and schedules).")
    max_count: int = Field(1, ge=0, description="Upper bound (autoscaling).")
    min_healthy_percent: int = Field(100, ge=0, le=100, description="Deployment: tasks kept running.")
    max_percent: int = Field(200, ge=100, le=400, description="Deployment: tasks allowed during a rollout.")
    health_check: HealthCheck | None = Field(None, description="Container health check; null = none.")
    environment: dict[str, str] = Field(default_factory=dict, description="Plain environment (placeholders allowed).")
    secrets: dict[str, SecretRef] = Field(default_factory=dict, description="Environment from Secrets Manager.")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Config files written at start (path -> content, placeholders allowed); needs command.",
    )
    dashboards: tuple[str, ...] = Field(
        (),
        description="Grafana only: dashboards of kr_cfn/dashboards (file stems) written at start for Grafana's "
        "file provider; needs command.",
    )
    reads_cloudwatch_metrics: bool = Field(
        False, description="The task role may read CloudWatch metrics (Grafana's CloudWatch data source)."
    )
    volumes: tuple[Volume, ...] = Field((), description="EFS access points mounted into the container.")
    scratch_paths: tuple[str, ...] = Field(
        (), description="Writable task-local paths (needed with a read-only root file system)."
    )
    discovery_name: str | None = Field(
        None, description="Cloud Map name (<name>.<namespace>) other services reach it by; opens nothing by itself."
    )
    load_balancer: Route | None = Field(None, description="ALB route; null = not behind the load balancer.")
    metrics_path: str | None = Field(
        None,
        pattern=_PATH.pattern,
        description="Path on the container port that Prometheus scrapes (needs discovery_name); null = not scraped.",
    )
    capacity: tuple[CapacityItem, ...] = Field(
        (CapacityItem(provider="FARGATE"),), description="Capacity provider strategy."
    )
    log_retention_days: int = Field(7, description="CloudWatch Logs retention of /ecs/<prefix>/<service>.")
    entry_point: tuple[str, ...] | None = Field(None, description="Override of the image's entry point.")
    command: tuple[str, ...] | None = Field(None, description="Override of the image's command.")
    read_only_root: bool = Field(True, description="Read-only root file system.")
    user: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$",
        description="User to run as (uid:gid, or a name the image knows); null = the image's. The defaults "
        "state each image's documented user (docs/configuration.md, Container hardening). A service "
        "mounting Qdrant's storage runs as services.qdrant.storage_owner.",
    )
    image_digest: str | None = Field(
        None,
        pattern=_DIGEST,
        description="Public images only: pin the exact image bytes (sha256:...); the tag stays as documentation.",
    )
    drop_capabilities: tuple[str, ...] = Field(
        ("ALL",), description="Linux capabilities removed from Docker's default set (ALL unless the image needs some)."
    )
    connects_to: tuple[str, ...] = Field(
        (),
        description="Services (with a discovery_name) and data endpoints (db, efs, redis) this service opens "
        "connections to, beyond those its placeholders, secrets and volumes already show.",
    )
    buckets: dict[str, Literal["read", "write", "read_write"]] = Field(
        default_factory=dict,
        description="S3 access of the task role: bucket ARN output -> read/write/read_write; in the backups "
        "bucket only under '<service>/'.",
    )
    autoscaling: Autoscaling | None = Field(None, description="Autoscaling; null = fixed desired_count.")
    storage: Storage | None = Field(
        None,
        description="qdrant only: efs, ebs (EC2 host + EBS volume) or external (URL from a secret); "
        "null = ebs with deploy.termination_protection, else efs.",
    )
    ebs: EbsStorage | None = Field(None, description="qdrant only: host and volume of storage ebs.")
    snapshots: Snapshots | None = Field(None, description="qdrant only: daily snapshots to the backups bucket.")
    storage_owner: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]{0,9}:[0-9]{1,10}$",
        description=f"qdrant only: numeric uid:gid (not root) that owns Qdrant's data: the ebs host's user data "
        f"chowns the mounted volume to it and the EFS access point's POSIX user is it; every container "
        f"mounting the storage must run as it (user). null = {STORAGE_OWNER}, the uid of Qdrant's "
        "-unprivileged images. Changing it replaces the EFS access point; files keep their old owner.",
    )

    def _dashboard_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        known = dashboards.names()
        for i, name in enumerate(self.dashboards):
            if name not in known:
                problems.append(
                    (f"dashboards[{i}]", f"{name!r} is not a dashboard of kr_cfn (one of: {', '.join(known)})")
                )
        if self.dashboards and (self.command is None or self.entry_point is not None):
            problems.append(
                ("dashboards", "needs command (the full command to run after writing them) and no entry_point")
            )
        return problems + _payload_problems(self)

    @property
    def ecr_repository(self) -> str | None:
        """The ECR repository name when ``image`` has no tag or registry, else None."""
        return None if re.search(r"[:@]", self.image) else self.image

    def check(self) -> list[Problem]:
        """Sizes, counts and the shape of every reference (names are checked by :func:`check_services`)."""
        problems: list[Problem] = []
        if self.cpu not in FARGATE_SIZES:
            allowed = ", ".join(map(str, FARGATE_SIZES))
            problems.append(("cpu", f"{self.cpu} is not a Fargate CPU size (allowed: {allowed})"))
        elif self.memory not in FARGATE_SIZES[self.cpu]:
            sizes = FARGATE_SIZES[self.cpu]
            allowed = ", ".join(map(str, sizes)) if len(sizes) <= 4 else f"{sizes[0]} to {sizes[-1]} by 1024"
            if self.cpu >= 8192:
                allowed = f"{sizes[0]} to {sizes[-1]} by {sizes[1] - sizes[0]}"
            problems.append(("memory", f"{self.memory} does not fit cpu {self.cpu} on Fargate (allowed: {allowed})"))
        problems += _count_problems(self.min_count, self.desired_count, self.max_count)
        if self.ecr_repository is not None and not _ECR_NAME.match(self.image):
            problems.append(("image", f"{self.image!r} is neither an image with a tag nor an ECR repository name"))
        problems += self._pin_problems()
        for i, cap in enumerate(self.drop_capabilities):
            if cap not in CAPABILITIES:
                problems.append(
                    (f"drop_capabilities[{i}]", f"{cap!r} is not a Linux capability ECS knows (e.g. ALL, NET_RAW)")
                )
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS[:12]))
            problems.append(
                ("log_retention_days", f"{self.log_retention_days} is not a CloudWatch retention ({allowed}, ...)")
            )
        for section, names in (("environment", self.environment), ("secrets", self.secrets)):
            problems += [
                (f"{section}.{n}", "is not a valid environment variable name") for n in names if not _ENV_NAME.match(n)
            ]
        for name in set(self.environment) & set(self.secrets):
            problems.append((f"secrets.{name}", "is also in environment; a variable comes from one place"))
        for i, path in enumerate(self.scratch_paths):
            if not _PATH.match(path):
                problems.append(
                    (f"scratch_paths[{i}]", f"{path!r} must be an absolute path of letters, digits and ._-/")
                )
        for path in self.files:
            if not _PATH.match(path):
                problems.append((f"files.{path}", "must be an absolute path of letters, digits and ._-/"))
        if self.files and (self.command is None or self.entry_point is not None):
            problems.append(("files", "needs command (the full command to run after writing them) and no entry_point"))
        problems += self._dashboard_problems()
        if self.metrics_path is not None and self.discovery_name is None:
            problems.append(("metrics_path", "needs discovery_name (Prometheus finds the tasks in Cloud Map)"))
        if self.discovery_name is not None and not _SERVICE_NAME.match(self.discovery_name):
            problems.append(("discovery_name", f"{self.discovery_name!r} must be a lowercase DNS label"))
        providers = [c.provider for c in self.capacity]
        if not self.capacity:
            problems.append(("capacity", "needs at least one capacity provider"))
        elif len(set(providers)) != len(providers):
            problems.append(("capacity", "names a capacity provider twice"))
        elif sum(1 for c in self.capacity if c.base) > 1:
            problems.append(("capacity", "only one capacity provider may have a base"))
        elif not any(c.weight for c in self.capacity):
            problems.append(("capacity", "needs a capacity provider with a weight above 0"))
        if self.autoscaling is not None:
            problems += [
                (f"autoscaling.{p}" if p else "autoscaling", m) for p, m in self._autoscaling_problems(self.autoscaling)
            ]
        for section, part in (("health_check", self.health_check), ("load_balancer", self.load_balancer)):
            problems += [(f"{section}.{p}", m) for p, m in part.check()] if part is not None else []
        if self.ecr_repository is not None and len(self.image) > 256:
            problems.append(("image", f"ECR repository names have at most 256 characters, got {len(self.image)}"))
        return problems

    def _pin_problems(self) -> list[Problem]:
        """Public images name an exact release; a digest only pins public images."""
        if self.ecr_repository is not None:
            if self.image_digest is not None:
                return [("image_digest", "only for public images; an ECR image is pinned by its deploy's image tag")]
            return []
        if "@" in self.image:
            return [("image", f"{self.image!r}: give the digest in image_digest and an exact version tag here")]
        tag = self.image.rpartition(":")[2]
        if "/" in tag:
            return [("image", f"{self.image!r} has no tag; pin an exact version such as 1.2.3 or v1.2.3-alpine")]
        if not _EXACT_TAG.match(tag):
            return [
                (
                    "image",
                    f"{self.image!r} has the floating tag {tag!r} (the registry moves it to new releases); "
                    "pin an exact version such as 1.2.3 or v1.2.3-alpine",
                )
            ]
        return []

    def _autoscaling_problems(self, a: Autoscaling) -> list[Problem]:
        problems: list[Problem] = []
        if a.requests_per_target is not None and self.load_balancer is None:
            problems.append(("requests_per_target", "needs the service behind the load balancer (load_balancer)"))
        if a.cpu_target is None and a.memory_target is None and a.requests_per_target is None and not a.schedules:
            problems.append(("", "tracks nothing and has no schedules; use null to turn autoscaling off"))
        names = [s.name for s in a.schedules]
        for i, s in enumerate(a.schedules):
            if names.index(s.name) != i:
                problems.append((f"schedules[{i}].name", f"{s.name!r} is used twice"))
            fields = s.cron.split()
            if len(fields) != 6:
                problems.append(
                    (f"schedules[{i}].cron", f"{s.cron!r} needs 6 fields (min hour day month weekday year)")
                )
            elif (fields[2] == "?") == (fields[4] == "?"):
                # "You can't specify the Day-of-month and Day-of-week fields in the same cron expression. If you
                # specify a value (or a *) in one of the fields, you must use a ? in the other."
                # https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html
                problems.append(
                    (f"schedules[{i}].cron", f"{s.cron!r}: exactly one of day-of-month and day-of-week must be '?'")
                )
            if s.max_count < s.min_count:
                problems.append((f"schedules[{i}].max_count", f"{s.max_count} is below min_count {s.min_count}"))
            elif s.max_count > self.max_count:
                problems.append(
                    (
                        f"schedules[{i}].max_count",
                        f"{s.max_count} is above the service's max_count {self.max_count} (bounds every schedule)",
                    )
                )
        return problems


def _payload_problems(spec: ServiceSpec) -> list[Problem]:
    """Files and dashboards must leave room in the task definition (ECS limits its size)."""
    size = sum(len(c.encode()) for c in spec.files.values())
    size += sum(len(dashboards.encoded(d)) for d in spec.dashboards if d in dashboards.names())
    if size > dashboards.PAYLOAD_BUDGET:
        return [
            (
                "dashboards" if spec.dashboards else "files",
                f"files and dashboards take {size} bytes of the task definition, more than "
                f"{dashboards.PAYLOAD_BUDGET} (ECS allows {dashboards.TASK_DEFINITION_LIMIT // 1024} KiB per task "
                "definition); ship fewer or smaller dashboards",
            )
        ]
    return []


def _count_problems(min_count: int, desired: int, max_count: int) -> list[Problem]:
    problems: list[Problem] = []
    if max_count < min_count:
        problems.append(("max_count", f"{max_count} is below min_count {min_count}"))
    if desired < min_count:
        problems.append(("desired_count", f"{desired} is below min_count {min_count}"))
    elif desired > max_count:
        problems.append(("desired_count", f"{desired} is above max_count {max_count}"))
    return problems


class EcsConfig(Model):
    """Cluster-wide settings of the ecs stack."""

    namespace: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$",
        description="Cloud Map private DNS namespace of the services; null: '<name_prefix>.local', one per "
        "environment (prod pins the plan's 'knowledge.local'). Changing it replaces the namespace and the "
        "services' Cloud Map entries.",
    )
    container_insights: Literal["enabled", "enhanced", "disabled"] = Field(
        "enabled", description="CloudWatch Container Insights on the cluster."
    )
    retain_logs: bool | None = Field(
        None,
        description="Keep the services' log groups when one is replaced or the stack deleted (Retain); "
        "null = on when deploy.termination_protection is.",
    )
    discovery_image: str = Field(
        AWS_CLI_IMAGE,
        pattern=r"^[a-z0-9./_-]+:[A-Za-z0-9_.-]+(@sha256:[a-f0-9]{64})?$",
        description="Image of Prometheus' discovery sidecar (bash and the AWS CLI): it lists every Cloud Map "
        "instance of the scraped services (DNS answers at most eight).",
    )


def check_services(services: dict[str, ServiceSpec], redis: str, qdrant_storage: str | None = None) -> list[Problem]:
    """Cross-service checks: names, references to outputs and other services, routes."""
    problems: list[Problem] = []
    if SNAPSHOT_JOB in services and QDRANT in services:
        problems.append(
            (SNAPSHOT_JOB, f"{SNAPSHOT_JOB!r} is reserved for the Qdrant snapshot job (its security group)")
        )
    for name, spec in services.items():
        for key in ("storage", "ebs", "snapshots", "storage_owner"):
            if name != QDRANT and getattr(spec, key) is not None:
                problems.append((f"{name}.{key}", f"only the {QDRANT} service has a storage choice"))
    if qdrant_storage == "ebs" and len(services[QDRANT].volumes) != 1:
        problems.append(
            (f"{QDRANT}.volumes", "storage ebs needs exactly one volume: the data path (e.g. /qdrant/storage)")
        )
    discoverable = {n for n, s in services.items() if s.discovery_name}
    if redis == "elasticache":
        discoverable.add("redis")  # {{host:redis}} resolves to the ElastiCache endpoint
    values = (*VALUE_OUTPUTS, *(REDIS_OUTPUTS if redis == "elasticache" else ()))
    for name, spec in services.items():
        if not _SERVICE_NAME.match(name):
            problems.append((name, "service names are lowercase letters, digits and dashes (max 31)"))
        texts = [(f"environment.{k}", v) for k, v in spec.environment.items()]
        texts += [(f"files.{k}", v) for k, v in spec.files.items()]
        for path, text in texts:
            for kind, ref in PLACEHOLDER.findall(text):
                if kind == "output" and ref not in values:
                    why = " (only with data.redis: elasticache)" if ref in REDIS_OUTPUTS else ""
                    problems.append(
                        (
                            f"{name}.{path}",
                            f"{{{{output:{ref}}}}} is not a data output{why} (one of: {', '.join(values)})",
                        )
                    )
                elif kind in ("host", "port", "tls") and ref not in discoverable:
                    problems.append((f"{name}.{path}", f"{{{{{kind}:{ref}}}}} names no service with a discovery_name"))
        for var, s in spec.secrets.items():
            if s.secret == QDRANT_SECRET and qdrant_storage != "external":
                problems.append(
                    (f"{name}.secrets.{var}.secret", f"{s.secret} exists only with {QDRANT}.storage: external")
                )
            elif s.secret not in SECRET_OUTPUTS:
                known = ", ".join(SECRET_OUTPUTS)
                problems.append(
                    (f"{name}.secrets.{var}.secret", f"{s.secret!r} is not a secret output (one of: {known})")
                )
            elif s.key is not None and s.key not in SECRET_OUTPUTS[s.secret]:
                keys = ", ".join(SECRET_OUTPUTS[s.secret]) or "none, it is a plain string"
                problems.append((f"{name}.secrets.{var}.key", f"{s.key!r} is not a key of {s.secret} (keys: {keys})"))
        for i, v in enumerate(spec.volumes):
            if v.access_point not in ACCESS_POINTS:
                problems.append(
                    (
                        f"{name}.volumes[{i}].access_point",
                        f"{v.access_point!r} is not one of: {', '.join(ACCESS_POINTS)}",
                    )
                )
        for bucket in spec.buckets:
            if bucket not in BUCKET_OUTPUTS:
                problems.append(
                    (f"{name}.buckets.{bucket}", f"is not a bucket output (one of: {', '.join(BUCKET_OUTPUTS)})")
                )
            elif bucket == BACKUPS_BUCKET and backups_prefix(name) == f"{SNAPSHOT_PREFIX}/":
                problems.append(
                    (
                        f"{name}.buckets.{bucket}",
                        f"{SNAPSHOT_PREFIX}/ of the backups bucket holds the Qdrant snapshots, written only by "
                        "the snapshot job",
                    )
                )
    routed = {n: s.load_balancer for n, s in services.items() if s.load_balancer is not None}
    problems += check_routes(routed)
    defaults = [n for n, r in routed.items() if not r.paths and not r.hosts]
    if routed and len(defaults) != 1:
        problems.append(
            (
                "",
                f"exactly one load-balanced service needs the default route (no paths), got {len(defaults)}: "
                f"{', '.join(defaults) or 'none'}",
            )
        )
    seen: dict[int, str] = {}
    for n, r in routed.items():
        taken = [p for p in rule_priorities(r) if p in seen]
        if taken:
            problems.append((f"{n}.load_balancer.priority", f"{taken[0]} is also {seen[taken[0]]}'s priority"))
        else:
            seen.update(dict.fromkeys(rule_priorities(r), n))
    return problems


def check_storage_users(services: dict[str, ServiceSpec], plan: QdrantPlan | None) -> list[Problem]:
    """Every container that mounts Qdrant's storage can write it: it runs as the uid the templates hand it to.

    The templates give the storage to ``plan.owner`` (the ebs host's user data chowns the mounted
    volume, mode 0755; the EFS access point creates its directory for that POSIX user, mode 0750).
    Root writes into another uid's 0755/0750 directory only with ``CAP_DAC_OVERRIDE``
    (https://man7.org/linux/man-pages/man7/capabilities.7.html), which ``drop_capabilities: [ALL]``
    removes; any other uid cannot write there at all. ``services`` are those the ecs stack renders.
    """
    owner = plan.owner if plan else STORAGE_OWNER
    owner_uid = owner.split(":")[0]
    problems: list[Problem] = []
    for name, spec in services.items():
        for v in spec.volumes:
            if name == QDRANT and plan is not None and plan.storage == "ebs":
                where = f"{v.path} (the host path {HOST_MOUNT}, which the qdrant host's user data chowns to {owner})"
            else:
                where = f"{v.path} (EFS access point {v.access_point}, created for POSIX user {owner})"
            uid = spec.user.split(":")[0] if spec.user else None
            dropped = next((c for c in ("ALL", "DAC_OVERRIDE") if c in spec.drop_capabilities), None)
            if uid in (None, "0", "root") and dropped:
                who = (
                    "runs as root" if uid else "runs as its image's user, root unless the image sets one (user unset),"
                )
                gone = "ALL capabilities" if dropped == "ALL" else "DAC_OVERRIDE"
                problems.append(
                    (f"{name}.user", f"{who} with {gone} dropped and cannot write {where}; set user: '{owner}'")
                )
            elif uid is not None and not uid.isdigit() and uid != "root":
                problems.append(
                    (f"{name}.user", f"{spec.user!r} is a name, not the uid that owns {where}; set user: '{owner}'")
                )
            elif uid not in (None, "0", "root", owner_uid):
                problems.append((f"{name}.user", f"{spec.user!r} cannot write {where}; set user: '{owner}'"))
    return problems


RULE_CONDITION_VALUES = 5
"""ALB quota "Condition values per rule": 5, not adjustable
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html)."""


def rule_cidr_chunks(route: Route) -> list[tuple[str, ...]]:
    """The route's source CIDRs split so each listener rule stays within :data:`RULE_CONDITION_VALUES`.

    Every rule repeats the route's path and host values, the CIDRs share what is left; one chunk
    (possibly empty) per listener rule. A route's rules take consecutive priorities.
    """
    room = RULE_CONDITION_VALUES - len(route.paths) - len(route.hosts)
    cidrs = route.source_cidrs
    return [cidrs[i : i + room] for i in range(0, len(cidrs), room)] if cidrs and room > 0 else [cidrs]


def rule_priorities(route: Route) -> list[int]:
    """Listener rule priorities of a path or host route (none for the default route)."""
    if not route.paths and not route.hosts:
        return []
    return [route.priority + i for i in range(len(rule_cidr_chunks(route)))]


def check_routes(routed: dict[str, Route]) -> list[Problem]:
    """Each route's conditions fit a listener rule; source CIDRs are IPv4 networks (the ALB is IPv4)."""
    problems: list[Problem] = []
    for n, r in routed.items():
        key = f"{n}.load_balancer"
        if len(r.paths) + len(r.hosts) >= RULE_CONDITION_VALUES and r.source_cidrs:
            problems.append(
                (key, f"paths and hosts leave no room for source_cidrs ({RULE_CONDITION_VALUES} values per rule)")
            )
        if r.source_cidrs and not r.paths and not r.hosts:
            problems.append((f"{key}.source_cidrs", "the default route cannot be limited; give paths or hosts"))
        problems += [(f"{key}.source_cidrs[{i}]", msg) for i, msg in cidr_problems(r.source_cidrs)]
    return problems


MIN_PREFIX = 8
"""Widest network a source-ip limit may name: /8 (16.7 million addresses); wider ones (0.0.0.0/1 twice)
would open a limited route to most of the internet."""


def cidr_problems(cidrs: tuple[str, ...]) -> list[tuple[int, str]]:
    """(index, message) for each entry that is not a distinct, narrower-than-everything IPv4 network."""
    problems: list[tuple[int, str]] = []
    for i, text in enumerate(cidrs):
        try:
            net = ipaddress.IPv4Network(text, strict=True)
        except ValueError:
            problems.append((i, f"{text!r} is not an IPv4 network in CIDR notation (e.g. 203.0.113.0/24)"))
            continue
        if net.prefixlen < MIN_PREFIX:
            problems.append(
                (i, f"{text!r} is wider than /{MIN_PREFIX} (no one's office); list the networks that may connect")
            )
        elif cidrs.index(text) != i:
            problems.append((i, f"{text!r} is listed twice"))
    return problems


def merge_services(given: Any) -> Any:
    """Merge a params ``services:`` mapping onto :data:`DEFAULT_SERVICES` (dicts merge, lists replace)."""
    if not isinstance(given, dict):
        return given  # pydantic reports the type error
    merged = copy.deepcopy(DEFAULT_SERVICES)
    for name, spec in given.items():
        if spec is None and name not in merged:
            known = ", ".join(DEFAULT_SERVICES)
            raise ValueError(f"{name}: null, but {name!r} is not a default service (null drops one of: {known})")
        if spec is None:
            merged.pop(name, None)
        elif name in merged and isinstance(spec, dict):
            merged[name] = _deep_merge(merged[name], spec)
        else:
            merged[name] = spec
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class EcsSlice:
    """What the ecs stack may see: cluster settings and the services it renders."""

    names: Naming
    ecs: EcsConfig
    services: dict[str, ServiceSpec]
    """The services to render (without redis when ElastiCache replaces it)."""
    external: dict[str, tuple[str, str]]
    """Services provided by the data stack: name -> (address output, port output) for {{host:}}/{{port:}}."""
    retain_logs: bool = False
    """DeletionPolicy/UpdateReplacePolicy Retain on the services' log groups (ecs.retain_logs resolved)."""
    qdrant: QdrantPlan | None = None
    """Qdrant's storage and backups; None without a qdrant service."""
