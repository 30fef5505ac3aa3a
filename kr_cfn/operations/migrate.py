"""``kr-cfn migrate``: ``python manage.py migrate`` as a one-off Fargate task of the backend.

Everything comes from what is deployed: the cluster from the root's ``ClusterName`` output,
the service from the ``BackendServiceName`` output (root or nested stack), and from the service
its task definition (image, secrets, roles, log configuration) and network configuration
(subnets, security group, public IP). With ``--image-tag`` the migration must run the *new*
image before the change set that brings it is executed: a copy of the deployed task definition
with only the image tag changed is registered in its own family ``<family>-migrate`` (never a
revision of the service's family, which CloudFormation owns), run, and deregistered afterwards.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, TextIO

from botocore.exceptions import ClientError

from kr_cfn.aws import AWS_FAILURES, Aws, error_code
from kr_cfn.changes import apply as applying
from kr_cfn.changes import changeset
from kr_cfn.errors import EXIT_AWS, EXIT_FAILED, EXIT_USAGE, DeployError

COMMAND = ("python", "manage.py", "migrate", "--noinput")
SERVICE = "backend"
IMAGE_TAG_PARAMETER = "BackendImageTag"
"""The root parameter that carries the backend's image tag."""
STARTED_BY = "kr-cfn-migrate"
TAIL_LINES = 20
_sleep = time.sleep  # tests replace it

# What RegisterTaskDefinition takes back from DescribeTaskDefinition (the rest is read-only).
_REGISTER_KEYS = (
    "containerDefinitions",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "runtimePlatform",
    "ephemeralStorage",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
)


@dataclass(frozen=True)
class Backend:
    """Where and how the backend runs, read from the deployed stacks and ECS."""

    cluster: str
    service: str
    task_definition: dict[str, Any]
    container: str
    network: dict[str, Any]
    capacity: list[dict[str, Any]]
    platform_version: str | None


def _outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def find_backend(aws: Aws, root_stack: str, env: str) -> Backend:
    """The backend's cluster, service, task definition and network, from the deployed stacks."""
    root = changeset.stack_status(aws, root_stack)
    if root is None or root["StackStatus"] == "REVIEW_IN_PROGRESS":
        raise DeployError(
            f"stack {root_stack} is not deployed: there is no backend to run the migration with yet "
            f"(a new environment migrates after its first apply: kr-cfn migrate --env {env})"
        )
    outs = _outputs(root)
    cfn = aws.client("cloudformation")
    key = f"{SERVICE.capitalize()}ServiceName"
    if key not in outs:
        for sid, _ in applying.nested_stacks(aws, root["StackId"]):
            nested = _outputs(cfn.describe_stacks(StackName=sid)["Stacks"][0])
            if key in nested:
                outs = {**nested, **outs}
                break
    if "ClusterName" not in outs or key not in outs:
        raise DeployError(f"stack {root_stack} has no ClusterName and {key} outputs: is the backend deployed?")
    ecs = aws.client("ecs")
    services = ecs.describe_services(cluster=outs["ClusterName"], services=[outs[key]])["services"]
    if not services or services[0].get("status") != "ACTIVE":
        raise DeployError(f"ECS service {outs[key]} not found (or not active) in cluster {outs['ClusterName']}")
    svc = services[0]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    containers = td["containerDefinitions"]
    container = next((c for c in containers if c["name"] == SERVICE), containers[0])
    return Backend(
        cluster=outs["ClusterName"],
        service=outs[key],
        task_definition=td,
        container=container["name"],
        network=svc.get("networkConfiguration") or {},
        capacity=svc.get("capacityProviderStrategy") or [],
        platform_version=svc.get("platformVersion"),
    )


def with_image_tag(td: dict[str, Any], container: str, tag: str) -> dict[str, Any]:
    """RegisterTaskDefinition arguments: ``td`` copied, family ``<family>-migrate``, the container's tag set."""
    args = {k: td[k] for k in _REGISTER_KEYS if td.get(k) not in (None, [], {})}
    args["family"] = f"{td['family']}-migrate"
    defs = []
    for c in td["containerDefinitions"]:
        c = dict(c)
        if c["name"] == container:
            image = c["image"]
            repository, sep, _ = image.rpartition(":")
            if "@" in image or not sep or "/" in image[len(repository) :]:
                raise DeployError(f"--image-tag {tag}: the backend image {image} has no tag to replace", EXIT_USAGE)
            c["image"] = f"{repository}:{tag}"
        defs.append(c)
    args["containerDefinitions"] = defs
    return args


def _log_stream(td: dict[str, Any], container: str, task_arn: str) -> tuple[str, str] | None:
    """(group, stream) of the awslogs driver: ``<prefix>/<container>/<task id>``."""
    spec = next(c for c in td["containerDefinitions"] if c["name"] == container)
    log = spec.get("logConfiguration") or {}
    options = log.get("options") or {}
    if log.get("logDriver") != "awslogs" or "awslogs-group" not in options:
        return None
    prefix = options.get("awslogs-stream-prefix")
    task_id = task_arn.rsplit("/", 1)[-1]
    return options["awslogs-group"], f"{prefix}/{container}/{task_id}" if prefix else task_id


class _Logs:
    """Reads a log stream forward from where it stopped, keeping the last lines for the verdict."""

    def __init__(self, aws: Aws, where: tuple[str, str] | None, out: TextIO) -> None:
        self.logs, self.where, self.out = aws.client("logs"), where, out
        self.token: str | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def pump(self) -> None:
        if self.where is None:
            return
        group, stream = self.where
        while True:
            kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
            if self.token:
                kwargs["nextToken"] = self.token
            try:
                page = self.logs.get_log_events(**kwargs)
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":  # no line written yet
                    return
                raise
            for e in page.get("events", []):
                line = e["message"].rstrip("\n")
                self.tail.append(line)
                print(f"  | {line}", file=self.out)
            same = page.get("nextForwardToken") == self.token
            self.token = page.get("nextForwardToken")
            if same or not page.get("events"):
                return


def run(aws: Aws, backend: Backend, image_tag: str | None, timeout: float, out: TextIO | None = None) -> int:
    """Run the migration task, stream its log, return its exit code (raise with the verdict on failure)."""
    out = out or sys.stdout
    ecs = aws.client("ecs")
    td = backend.task_definition
    registered = None
    if image_tag:
        registered = ecs.register_task_definition(**with_image_tag(td, backend.container, image_tag))["taskDefinition"]
        td = registered
        print(f"registered {td['taskDefinitionArn']} (image {_image(td, backend.container)})", file=out)
    try:
        return _run_task(aws, backend, td, timeout, out)
    finally:
        if registered:
            try:
                ecs.deregister_task_definition(taskDefinition=registered["taskDefinitionArn"])
            except AWS_FAILURES:
                print(f"could not deregister {registered['taskDefinitionArn']}: deregister it by hand", file=out)


def _image(td: dict[str, Any], container: str) -> str:
    return str(next(c["image"] for c in td["containerDefinitions"] if c["name"] == container))


def _run_task(aws: Aws, backend: Backend, td: dict[str, Any], timeout: float, out: TextIO) -> int:
    ecs = aws.client("ecs")
    kwargs: dict[str, Any] = {
        "cluster": backend.cluster,
        "taskDefinition": td["taskDefinitionArn"],
        "count": 1,
        "startedBy": STARTED_BY,
        "overrides": {"containerOverrides": [{"name": backend.container, "command": list(COMMAND)}]},
    }
    if backend.network:
        kwargs["networkConfiguration"] = backend.network
    if backend.capacity:
        kwargs["capacityProviderStrategy"] = backend.capacity
    else:
        kwargs["launchType"] = "FARGATE"
    if backend.platform_version:
        kwargs["platformVersion"] = backend.platform_version
    started = ecs.run_task(**kwargs)
    if started.get("failures") or not started.get("tasks"):
        why = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in started.get("failures", []))
        raise DeployError(f"RunTask in cluster {backend.cluster} started no task: {why or 'no reason given'}", EXIT_AWS)
    task_arn = started["tasks"][0]["taskArn"]
    print(f"migration task {task_arn} ({_image(td, backend.container)}): {' '.join(COMMAND)}", file=out)
    logs = _Logs(aws, _log_stream(td, backend.container, task_arn), out)
    deadline = time.monotonic() + timeout
    while True:
        task = ecs.describe_tasks(cluster=backend.cluster, tasks=[task_arn])["tasks"][0]
        logs.pump()
        if task.get("lastStatus") == "STOPPED":
            break
        if time.monotonic() > deadline:
            raise DeployError(
                f"migration task {task_arn} still {task.get('lastStatus')} after {timeout:.0f} s; it keeps running: "
                f"aws ecs stop-task --cluster {backend.cluster} --task {task_arn}",
                EXIT_FAILED,
            )
        _sleep(5)
    logs.pump()
    container = next((c for c in task.get("containers", []) if c.get("name") == backend.container), {})
    code = container.get("exitCode")
    if code == 0:
        print(f"migration done: task {task_arn.rsplit('/', 1)[-1]} exited 0", file=out)
        return 0
    reason = task.get("stoppedReason") or container.get("reason") or "no reason given"
    tail = " | ".join(list(logs.tail)[-5:]) or "no log lines"
    raise DeployError(
        f"migration failed: task {task_arn.rsplit('/', 1)[-1]} stopped ({reason}), exit code "
        f"{code if code is not None else 'none (the container did not run)'}; log tail: {tail}",
        code if isinstance(code, int) and 0 < code < 126 else EXIT_FAILED,
    )
