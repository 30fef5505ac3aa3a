"""Day-two commands: smoke, migrate, drift, destroy, cancel, watch, --version, status --json.

Against the local AWS endpoint (moto's server) where it answers; moto 5.2.5 implements neither
drift detection (DetectStackDrift, DescribeStackDriftDetectionStatus, DescribeStackResourceDrifts)
nor CancelUpdateStack, so those calls alone are answered by the local failure server in front of
moto (tests/failure_server.py), in the CloudFormation query protocol, and everything else is
forwarded to moto. The smoke tests run against a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from kr_cfn.aws import Aws, stack_label
from kr_cfn.changes import apply as applying
from kr_cfn.changes import changeset, guard
from kr_cfn.cli import main
from kr_cfn.operations import drift, migrate, smoke
from tests import aws_endpoint
from tests.conftest import PARAMS
from tests.failure_server import FailureServer, failure_server, xml_result

REGION = "eu-central-1"
ACCOUNT = "123456789012"


def _aws_env(mp: pytest.MonkeyPatch, url: str) -> None:
    aws_endpoint.point_boto3_at(mp, url, REGION)


moto_url = aws_endpoint.moto_url_fixture(REGION)


_PARAMS: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of params/ whose pinned account ids are moto's (kr-cfn refuses another account)."""
    copy = tmp_path_factory.mktemp("day2") / "params"
    shutil.copytree(PARAMS, copy)
    for path in copy.glob("*.yaml"):
        data = yaml.safe_load(path.read_text()) or {}
        if "account_id" in data:
            data["account_id"] = ACCOUNT
            path.write_text(yaml.safe_dump(data))
    _PARAMS[:] = [copy]
    return copy


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--params", str(_PARAMS[0])])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cfn() -> Any:
    return boto3.client("cloudformation", region_name=REGION)


def _moto_stack(stack_id: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[ACCOUNT][REGION].stacks[stack_id]


def _stack(name: str, resources: dict[str, Any], outputs: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"Resources": resources}
    if outputs:
        body["Outputs"] = {k: {"Value": v} for k, v in outputs.items()}
    return str(_cfn().create_stack(StackName=name, TemplateBody=json.dumps(body))["StackId"])


# --- --version, status --json ------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from kr_cfn import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"kr-cfn {__version__}\n"


def test_status_json(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _stack("kr-status-json", {"Topic": {"Type": "AWS::SNS::Topic"}})
    code, out, _ = _run(capsys, "status", "--env", "dev", "--stack-name", "kr-status-json", "--json")
    data = json.loads(out)
    assert code == 0 and data["env"] == "dev"
    boot, root = data["stacks"]
    # (other test modules may have deployed the bootstrap stack on the shared local endpoint)
    assert (boot["role"], boot["name"]) == ("bootstrap", "knowledgerouter-dev-bootstrap")
    assert root["name"] == "kr-status-json" and root["status"] == "CREATE_COMPLETE"
    assert root["nested"] == [] and root["termination_protection"] is False and "change_sets" in root


# --- smoke ---------------------------------------------------------------------------------------------------


class _App:
    """A local app: healthz fails ``unhealthy`` times first, can be slow; chat answers ``chat``."""

    def __init__(self) -> None:
        self.unhealthy = 0
        self.slow = 0.0
        self.chat: tuple[int, bytes] = (200, b'{"answer": "42", "sources": []}')
        self.requests: list[tuple[str, str, bytes]] = []


@pytest.fixture
def app() -> Iterator[tuple[_App, str]]:
    state = _App()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, b""))
            if self.path != "/api/healthz":
                return self._answer(404, b"{}")
            if state.unhealthy:
                state.unhealthy -= 1
                return self._answer(503, b'{"status": "starting"}')
            time.sleep(state.slow)
            return self._answer(200, b'{"status": "ok"}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(("POST", self.path, body))
            return self._answer(*state.chat) if self.path == "/api/chat/" else self._answer(404, b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """smoke's clock and sleep: sleeping advances the clock without waiting."""
    slept: list[float] = []
    offset = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        offset[0] += seconds

    monkeypatch.setattr(smoke, "_sleep", sleep)
    monkeypatch.setattr(smoke, "_clock", lambda: time.monotonic() + offset[0])
    return slept


def test_smoke_passes_after_the_service_settles(
    app: tuple[_App, str], fake_time: list[float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = app
    state.unhealthy = 3
    # --url: no AWS call at all (no credentials, and an endpoint nobody listens on)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{aws_endpoint.free_port()}")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    code, out, err = _run(capsys, "smoke", "--env", "dev", "--url", url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"smoke tests against {url} (budget 300 s)"
    assert lines[1].startswith("PASS GET /api/healthz: HTTP 200 in ") and "(4 attempts, " in lines[1]
    assert lines[2].startswith("PASS POST /api/chat/: HTTP 200 in ") and "(1 attempt, " in lines[2]
    assert fake_time == [2.0, 4.0, 8.0]  # backoff between the attempts
    assert json.loads(state.requests[-1][2]) == {"message": "Test query", "session_id": "test-session"}


def test_smoke_fails_on_a_slow_healthz_and_a_chat_without_answer(
    app: tuple[_App, str], fake_time: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = app
    state.slow = 2.05
    state.chat = (200, b'{"error": "no model"}')
    code, out, _ = _run(capsys, "smoke", "--env", "dev", "--url", url, "--timeout", "10")
    assert code == 1
    healthz, chat = out.splitlines()[1:]
    assert healthz.startswith("FAIL GET /api/healthz: 200 in 2.") and "(limit 2.0 s) (" in healthz
    assert "budget 10 s used up" in healthz
    assert chat.startswith("FAIL POST /api/chat/: JSON without 'answer' (got error) (")


def test_smoke_verdicts(app: tuple[_App, str], fake_time: list[float], capsys: pytest.CaptureFixture[str]) -> None:
    state, url = app
    state.chat = (502, b"<html>bad gateway</html>")
    assert not smoke.run(url, budget=5)
    assert "FAIL POST /api/chat/: HTTP 502 (" in capsys.readouterr().out
    state.chat = (200, b"not json")
    assert not smoke.run(url, budget=1)
    assert "FAIL POST /api/chat/: HTTP 200 but not JSON: b'not json' (1 attempt" in capsys.readouterr().out
    assert not smoke.run(f"http://127.0.0.1:{aws_endpoint.free_port()}", budget=1)
    assert "FAIL GET /api/healthz: no answer ([Errno 111] Connection refused)" in capsys.readouterr().out


def test_smoke_bad_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["smoke", "--env", "dev", "--url", "http://127.0.0.1:1", "--timeout", "0"])
    assert exc.value.code == 2
    assert "argument --timeout: expected a positive number of seconds, got 0" in capsys.readouterr().err


def test_smoke_reads_the_app_url_from_the_stack(
    moto_url: str, app: tuple[_App, str], fake_time: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = app
    _stack("kr-smoke-stack", {"Topic": {"Type": "AWS::SNS::Topic"}}, {"AppUrl": url.rstrip("/")})
    code, out, _ = _run(capsys, "smoke", "--env", "dev", "--stack-name", "kr-smoke-stack")
    assert code == 0 and out.startswith(f"smoke tests against {url.rstrip('/')} (budget 300 s)")


# --- watch and cancel ----------------------------------------------------------------------------------------


def test_watch_follows_a_running_update_and_restores_the_policy(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_id = _stack("kr-watch", {"Topic": {"Type": "AWS::SNS::Topic"}})
    _cfn().set_stack_policy(StackName=stack_id, StackPolicyBody=guard.stack_policy(except_ids=["Topic"]))
    _moto_stack(stack_id).status = "UPDATE_IN_PROGRESS"  # an update started elsewhere (moto ends them at once)

    def sleep(seconds: float) -> None:
        assert _cfn().get_stack_policy(StackName=stack_id)["StackPolicyBody"] != guard.stack_policy()
        _moto_stack(stack_id).status = "UPDATE_COMPLETE"

    monkeypatch.setattr(applying, "_sleep", sleep)
    code, out, err = _run(capsys, "watch", "--env", "dev", "--stack-name", "kr-watch", "--restore-policy")
    assert code == 0, err
    assert out.splitlines()[0] == "following kr-watch (UPDATE_IN_PROGRESS)"
    assert "kr-watch kr-watch AWS::CloudFormation::Stack CREATE_COMPLETE" in out  # apply's event lines
    assert out.splitlines()[-1] == "stack kr-watch: UPDATE_COMPLETE"
    assert _cfn().get_stack_policy(StackName=stack_id)["StackPolicyBody"] == guard.stack_policy()


def test_watch_with_nothing_running(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _stack("kr-watch-idle", {"Topic": {"Type": "AWS::SNS::Topic"}})
    code, out, _ = _run(capsys, "watch", "--env", "dev", "--stack-name", "kr-watch-idle")
    assert code == 0
    assert out == "kr-watch-idle: CREATE_COMPLETE (no operation running)\nstack kr-watch-idle: CREATE_COMPLETE\n"
    code, _, err = _run(capsys, "watch", "--env", "dev", "--stack-name", "kr-watch-none")
    assert code == 2 and err.startswith("stack kr-watch-none does not exist in eu-central-1")


@pytest.fixture
def proxy(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailureServer]:
    """The local server in front of moto; kr-cfn talks to it once a test calls ``_via``."""
    with failure_server(upstream=moto_url) as fs:
        yield fs


def _via(proxy: FailureServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, boto3 (kr-cfn's and the test's) goes through the local server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)


def test_cancel(proxy: FailureServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stack_id = _stack("kr-cancel", {"Topic": {"Type": "AWS::SNS::Topic"}})
    _via(proxy, monkeypatch)
    code, _, err = _run(capsys, "cancel", "--env", "dev", "--stack-name", "kr-cancel")
    assert code == 2 and err.strip() == (
        "stack kr-cancel is CREATE_COMPLETE: only an update in progress can be cancelled (nothing to cancel)"
    )
    cancelled: list[str] = []

    def cancel_update_stack(params: dict[str, str]) -> tuple[int, str]:
        cancelled.append(params["StackName"])
        _moto_stack(params["StackName"]).status = "UPDATE_ROLLBACK_IN_PROGRESS"  # what CloudFormation does
        return 200, xml_result("CancelUpdateStack", "")

    proxy.answers["CancelUpdateStack"] = cancel_update_stack
    _moto_stack(stack_id).status = "UPDATE_IN_PROGRESS"
    code, out, _ = _run(capsys, "cancel", "--env", "dev", "--stack-name", "kr-cancel")
    assert code == 0 and cancelled == [stack_id]
    assert out == (
        "cancel requested: CloudFormation rolls kr-cancel back to its last stable state\n"
        "follow it with: kr-cfn watch --env dev --stack-name kr-cancel\n"
    )
    # --wait follows the rollback to its end
    _moto_stack(stack_id).status = "UPDATE_IN_PROGRESS"
    monkeypatch.setattr(
        applying, "_sleep", lambda s: setattr(_moto_stack(stack_id), "status", "UPDATE_ROLLBACK_COMPLETE")
    )
    code, out, _ = _run(capsys, "cancel", "--env", "dev", "--stack-name", "kr-cancel", "--wait")
    assert code == 0 and out.splitlines()[-1] == "stack kr-cancel: UPDATE_ROLLBACK_COMPLETE"


# --- drift ---------------------------------------------------------------------------------------------------


def _nested_pair(name: str) -> tuple[str, str]:
    """A root stack with one nested stack (template in moto's S3); (root id, nested id)."""
    s3 = boto3.client("s3", region_name=REGION)
    bucket = f"{name}-templates"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    child = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}}}}
    s3.put_object(Bucket=bucket, Key="child.json", Body=json.dumps(child).encode())
    url = f"https://s3.{REGION}.amazonaws.com/{bucket}/child.json"
    root_id = _stack(
        name,
        {
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Child": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": url}},
        },
    )
    nested = [
        r
        for r in _cfn().list_stack_resources(StackName=root_id)["StackResourceSummaries"]
        if r["LogicalResourceId"] == "Child"
    ]
    return root_id, nested[0]["PhysicalResourceId"]


def _drift_answers(proxy: FailureServer, drifted: str) -> list[str]:
    """DetectStackDrift & co. as CloudFormation answers them; ``drifted``'s queue has a changed property."""
    detected: list[str] = []
    polls = itertools.count()

    def detect(params: dict[str, str]) -> tuple[int, str]:
        detected.append(params["StackName"])
        return 200, xml_result(
            "DetectStackDrift", f"<StackDriftDetectionId>det-{len(detected) - 1}</StackDriftDetectionId>"
        )

    def status(params: dict[str, str]) -> tuple[int, str]:
        stack = detected[int(params["StackDriftDetectionId"].split("-")[1])]
        if next(polls) < 2:
            state = "<DetectionStatus>DETECTION_IN_PROGRESS</DetectionStatus>"
        elif stack == drifted:
            state = (
                "<DetectionStatus>DETECTION_COMPLETE</DetectionStatus><StackDriftStatus>DRIFTED</StackDriftStatus>"
                "<DriftedStackResourceCount>1</DriftedStackResourceCount>"
            )
        else:
            state = (
                "<DetectionStatus>DETECTION_COMPLETE</DetectionStatus><StackDriftStatus>IN_SYNC</StackDriftStatus>"
                "<DriftedStackResourceCount>0</DriftedStackResourceCount>"
            )
        return 200, xml_result(
            "DescribeStackDriftDetectionStatus",
            f"<StackId>{stack}</StackId><StackDriftDetectionId>{params['StackDriftDetectionId']}"
            f"</StackDriftDetectionId>{state}<Timestamp>2026-11-28T21:00:00Z</Timestamp>",
        )

    def resource_drifts(params: dict[str, str]) -> tuple[int, str]:
        assert params["StackName"] == drifted
        assert params["StackResourceDriftStatusFilters.member.1"] == "MODIFIED"
        return 200, xml_result(
            "DescribeStackResourceDrifts",
            "<StackResourceDrifts><member>"
            f"<StackId>{drifted}</StackId><LogicalResourceId>Queue</LogicalResourceId>"
            "<PhysicalResourceId>https://sqs/queue</PhysicalResourceId><ResourceType>AWS::SQS::Queue</ResourceType>"
            "<ExpectedProperties>{}</ExpectedProperties><ActualProperties>{}</ActualProperties>"
            "<PropertyDifferences><member><PropertyPath>/VisibilityTimeout</PropertyPath>"
            "<ExpectedValue>30</ExpectedValue><ActualValue>300</ActualValue>"
            "<DifferenceType>NOT_EQUAL</DifferenceType></member></PropertyDifferences>"
            "<StackResourceDriftStatus>MODIFIED</StackResourceDriftStatus>"
            "<Timestamp>2026-11-28T21:00:00Z</Timestamp>"
            "</member></StackResourceDrifts>",
        )

    proxy.answers.update(
        DetectStackDrift=detect,
        DescribeStackDriftDetectionStatus=status,
        DescribeStackResourceDrifts=resource_drifts,
    )
    return detected


def test_drift_on_root_and_nested_stacks(
    proxy: FailureServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root_id, nested_id = _nested_pair("kr-drift")
    _via(proxy, monkeypatch)
    detected = _drift_answers(proxy, drifted=nested_id)
    monkeypatch.setattr(drift, "_sleep", lambda s: None)
    code, out, _ = _run(capsys, "drift", "--env", "dev", "--stack-name", "kr-drift")
    assert code == 1
    assert detected == [root_id, nested_id]  # every nested stack gets its own detection
    nested_name = stack_label(nested_id)
    lines = out.splitlines()
    assert lines[:3] == [
        "detecting drift on kr-drift and its nested stacks ...",
        "  kr-drift: IN_SYNC",
        f"  {nested_name}: DRIFTED (1 resource(s))",
    ]
    assert lines[3].split() == ["stack", "resource", "type", "drift", "property", "expected", "actual"]
    assert lines[4].split() == [
        nested_name,
        "Queue",
        "AWS::SQS::Queue",
        "MODIFIED",
        "(NOT_EQUAL)",
        "/VisibilityTimeout",
        "30",
        "300",
    ]
    assert lines[-1].startswith("drifted: the next plan compares templates only")


def test_drift_in_sync(
    proxy: FailureServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _stack("kr-drift-clean", {"Topic": {"Type": "AWS::SNS::Topic"}})
    _via(proxy, monkeypatch)
    _drift_answers(proxy, drifted="none")
    monkeypatch.setattr(drift, "_sleep", lambda s: None)
    code, out, _ = _run(capsys, "drift", "--env", "dev", "--stack-name", "kr-drift-clean")
    assert code == 0 and out.splitlines()[-1] == "kr-drift-clean: in sync with its templates"


def test_plan_warns_when_the_target_had_drifted(proxy: FailureServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from kr_cfn.aws import Aws

    root_id, nested_id = _nested_pair("kr-drift-plan")
    _via(proxy, monkeypatch)

    def with_drift(body: str) -> str:  # moto reports no DriftInformation
        if nested_id not in body:
            return body
        info = (
            "<DriftInformation><StackDriftStatus>DRIFTED</StackDriftStatus>"
            "<LastCheckTimestamp>2026-11-20T08:30:00Z</LastCheckTimestamp></DriftInformation>"
        )
        return body.replace("<StackStatus>", info + "<StackStatus>", 1)

    proxy.rewrite["DescribeStacks"] = with_drift
    aws = Aws(REGION)
    root = aws.client("cloudformation").describe_stacks(StackName=root_id)["Stacks"][0]
    nested_name = stack_label(nested_id)
    assert drift.warnings(aws, root, "dev") == [
        f"stack {nested_name} had drifted from its template (last checked 2026-11-20 08:30 UTC): a change set does "
        "not see drift, so this plan may not show what the deploy changes; see kr-cfn drift --env dev"
    ]
    assert drift.warnings(aws, None, "dev") == []


# --- destroy -------------------------------------------------------------------------------------------------


def _env_stack(name: str, protect: bool = False) -> str:
    resources = {
        "DataBucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "Properties": {"BucketName": f"{name}-data"},
        },
        "ScratchBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": f"{name}-scratch"}},
        "Logs": {
            "Type": "AWS::Logs::LogGroup",
            "DeletionPolicy": "Retain",
            "Properties": {"LogGroupName": f"/ecs/{name}"},
        },
        "Topic": {"Type": "AWS::SNS::Topic"},
    }
    stack_id = _stack(name, resources)
    if protect:
        _cfn().update_termination_protection(StackName=stack_id, EnableTerminationProtection=True)
    return stack_id


def test_destroy_keeps_retained_resources_and_says_how_to_recreate(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_id = _env_stack("kr-destroy")
    code, out, _ = _run(capsys, "destroy", "--env", "dev", "--stack-name", "kr-destroy", "--dry-run")
    assert code == 0
    assert "kept (DeletionPolicy Retain: stays, with its name and data): 2\n" in out
    assert "  kr-destroy/DataBucket  AWS::S3::Bucket  kr-destroy-data\n" in out
    assert "  kr-destroy/Logs  AWS::Logs::LogGroup  /ecs/kr-destroy\n" in out
    assert "deleted: 2\n" in out and "  kr-destroy/ScratchBucket  AWS::S3::Bucket  kr-destroy-scratch\n" in out
    assert "warning: kr-destroy/ScratchBucket (AWS::S3::Bucket kr-destroy-scratch) holds data and is DELETED" in out
    assert "destroy empties nothing" in out
    assert out.endswith("dry run: nothing deleted\n")
    assert _cfn().describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    monkeypatch.setattr(applying, "_sleep", lambda s: None)
    code, out, err = _run(capsys, "destroy", "--env", "dev", "--stack-name", "kr-destroy")
    assert code == 0, err
    assert _cfn().describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    assert "stack kr-destroy: deleted\n" in out
    assert "to re-create dev: the retained resources keep their names" in out
    assert "  AWS::S3::Bucket kr-destroy-data\n  AWS::Logs::LogGroup /ecs/kr-destroy\n" in out


def test_destroy_refuses_a_protected_env_unless_told_twice(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_id = _env_stack("kr-destroy-prod", protect=True)
    code, _, err = _run(capsys, "destroy", "--env", "prod", "--stack-name", "kr-destroy-prod")
    assert code == 2 and err.strip() == (
        "stack kr-destroy-prod (prod) has termination protection: destroying it takes --env prod --yes-really-prod"
    )
    # live termination protection counts too, for an env whose params do not ask for it
    code, _, err = _run(capsys, "destroy", "--env", "staging", "--stack-name", "kr-destroy-prod")
    assert code == 2 and err.strip().endswith("destroying it takes --env staging --yes-really staging")
    monkeypatch.setattr(applying, "_sleep", lambda s: None)
    code, out, err = _run(capsys, "destroy", "--env", "prod", "--stack-name", "kr-destroy-prod", "--yes-really-prod")
    assert code == 0, err
    assert "kr-destroy-prod: termination protection turned off\n" in out
    assert _cfn().describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


def test_destroy_stops_before_deleting_a_protected_database(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = {
        "Type": "AWS::RDS::DBInstance",
        "Properties": {
            "DBInstanceClass": "db.t3.micro",
            "Engine": "postgres",
            "AllocatedStorage": "20",
            "MasterUsername": "kr",
            "MasterUserPassword": "not-a-secret-123",
            "DeletionProtection": True,
        },
    }
    stack_id = _stack("kr-destroy-db", {"Database": db})
    code, out, err = _run(capsys, "destroy", "--env", "dev", "--stack-name", "kr-destroy-db")
    assert code == 2
    assert "snapshot (DeletionPolicy Snapshot: a final snapshot is taken, then it is deleted): 1" in out  # the default
    assert "has deletion protection (data.deletion_protection): turn it off first, aws rds modify-db-instance" in err
    assert err.strip().splitlines()[-1] == "destroy stopped before deleting anything: 1 resource(s) are protected"
    assert _cfn().describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


# --- migrate -------------------------------------------------------------------------------------------------


def _backend(name: str) -> tuple[str, str]:
    """A cluster, the backend's task definition and service (awsvpc, awslogs), and a root stack naming them."""
    ec2, ecs = boto3.client("ec2", region_name=REGION), boto3.client("ecs", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as the network stack has it
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{name}-backend", Description="backend", VpcId=vpc)["GroupId"]
    cluster = f"{name}-cluster"
    ecs.create_cluster(clusterName=cluster)
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName=f"/ecs/{name}/backend")
    td = ecs.register_task_definition(
        family=f"{name}-backend",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}-exec",
        taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}-task",
        containerDefinitions=[
            {
                "name": "backend",
                "memory": 1024,
                "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/knowledgerouter-backend:v1",
                "secrets": [
                    {"name": "POSTGRES_PASSWORD", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db"}
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": f"/ecs/{name}/backend",
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": "ecs",
                    },
                },
            }
        ],
    )["taskDefinition"]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "ENABLED"}}
    ecs.create_service(
        cluster=cluster,
        serviceName="backend",
        taskDefinition=td["taskDefinitionArn"],
        desiredCount=1,
        networkConfiguration=network,
        launchType="FARGATE",
    )
    body = {
        "Parameters": {"BackendImageTag": {"Type": "String", "Default": "v1"}},
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"ClusterName": {"Value": cluster}, "BackendServiceName": {"Value": "backend"}},
    }
    _cfn().create_stack(StackName=name, TemplateBody=json.dumps(body))
    return cluster, group


def _task_log(cluster: str, name: str, lines: list[str]) -> str:
    """Write ``lines`` to the running migration task's awslogs stream (what the container would print)."""
    ecs, logs = boto3.client("ecs", region_name=REGION), boto3.client("logs", region_name=REGION)
    task = ecs.list_tasks(cluster=cluster, startedBy=migrate.STARTED_BY)["taskArns"][-1]
    stream = f"ecs/backend/{task.rsplit('/', 1)[-1]}"
    logs.create_log_stream(logGroupName=f"/ecs/{name}/backend", logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=f"/ecs/{name}/backend",
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
    )
    return task


def test_migrate_runs_the_new_image_and_streams_its_log(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, _ = _backend("kr-migrate")
    calls: list[int] = []

    def sleep(seconds: float) -> None:
        if not calls:
            _task_log(cluster, "kr-migrate", ["Operations to perform:", "  Applying core.0002_index... OK"])
        calls.append(1)

    monkeypatch.setattr(migrate, "_sleep", sleep)
    code, out, err = _run(capsys, "migrate", "--env", "dev", "--stack-name", "kr-migrate", "--image-tag", "v2")
    assert code == 0, err
    assert "registered arn:aws:ecs:eu-central-1:123456789012:task-definition/kr-migrate-backend-migrate:1" in out
    assert "(image 123456789012.dkr.ecr.eu-central-1.amazonaws.com/knowledgerouter-backend:v2)" in out
    assert "  | Operations to perform:\n  |   Applying core.0002_index... OK\n" in out
    assert out.splitlines()[-1].startswith("migration done: task ") and out.endswith(" exited 0\n")
    ecs = boto3.client("ecs", region_name=REGION)
    task = ecs.describe_tasks(
        cluster=cluster, tasks=ecs.list_tasks(cluster=cluster, startedBy="kr-cfn-migrate")["taskArns"]
    )["tasks"][0]
    assert task["overrides"]["containerOverrides"] == [
        {"name": "backend", "command": ["python", "manage.py", "migrate", "--noinput"]}
    ]
    td = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert td["status"] == "INACTIVE"  # the one-off revision is deregistered afterwards
    assert td["taskRoleArn"].endswith("role/kr-migrate-task") and td["executionRoleArn"].endswith(
        "role/kr-migrate-exec"
    )
    assert td["containerDefinitions"][0]["secrets"][0]["name"] == "POSTGRES_PASSWORD"
    # the service's own task definition is untouched
    service = ecs.describe_services(cluster=cluster, services=["backend"])["services"][0]
    assert service["taskDefinition"].endswith("task-definition/kr-migrate-backend:1")


def test_migrate_failure_exits_with_the_task_exit_code(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto.ecs.models import ecs_backends

    cluster, _ = _backend("kr-migrate-fail")

    def sleep(seconds: float) -> None:
        task_arn = _task_log(cluster, "kr-migrate-fail", ["django.db.utils.OperationalError: connection refused"])
        task = ecs_backends[ACCOUNT][REGION].tasks[cluster][task_arn]
        task.containers[0].exitCode = 3
        task.stopped_reason = "Essential container in task exited"
        monkeypatch.setattr(migrate, "_sleep", lambda s: None)

    monkeypatch.setattr(migrate, "_sleep", sleep)
    code, out, err = _run(capsys, "migrate", "--env", "dev", "--stack-name", "kr-migrate-fail")
    assert code == 3
    assert "  | django.db.utils.OperationalError: connection refused\n" in out
    assert err.startswith("migration failed: task ")
    assert err.strip().endswith(
        "stopped (Essential container in task exited), exit code 3; "
        "log tail: django.db.utils.OperationalError: connection refused"
    )


def test_migrate_needs_a_deployed_backend(moto_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "migrate", "--env", "dev", "--stack-name", "kr-migrate-none")
    assert code == 2 and err.startswith("stack kr-migrate-none is not deployed: there is no backend")


def test_image_tag_replaces_only_the_tag() -> None:
    td = {
        "family": "f",
        "containerDefinitions": [
            {"name": "backend", "image": "1.dkr.ecr.r.amazonaws.com/repo:v1"},
            {"name": "x", "image": "nginx:1"},
        ],
        "cpu": "256",
        "volumes": [],
    }
    args = migrate.with_image_tag(td, "backend", "abc123")
    assert args["family"] == "f-migrate" and "volumes" not in args
    assert [c["image"] for c in args["containerDefinitions"]] == ["1.dkr.ecr.r.amazonaws.com/repo:abc123", "nginx:1"]
    for image in ("qdrant/qdrant@sha256:abc", "localhost:5000/repo"):
        with pytest.raises(Exception, match="has no tag to replace"):
            migrate.with_image_tag(
                {**td, "containerDefinitions": [{"name": "backend", "image": image}]}, "backend", "t"
            )


def _record(path: Path, stack: str, tag: str, change_set_type: str = "UPDATE") -> Path:
    """A plan record as kr-cfn plan writes it, of a real change set setting BackendImageTag to ``tag``."""
    aws = Aws(REGION)
    body = _cfn().get_template(StackName=stack)["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else dict(body)
    made = _cfn().create_change_set(
        StackName=stack,
        ChangeSetName=f"kr-cfn-migrate-{abs(hash((str(path), tag))) % 10**8}",
        TemplateBody=json.dumps({**body, "Resources": {**body["Resources"], "Queue": {"Type": "AWS::SQS::Queue"}}}),
        Parameters=[{"ParameterKey": "BackendImageTag", "ParameterValue": tag}],
        ChangeSetType="UPDATE",
    )
    review, cs = applying.check(aws, stack, made["Id"])
    record = applying.plan_record(review, cs, changeset.stack_status(aws, stack), "dev", None, False)
    record["change_set_type"] = change_set_type
    path.write_text(json.dumps(record))
    return path


def test_migrate_takes_the_new_image_from_the_plan_record(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _backend("kr-migrate-plan")
    monkeypatch.setattr(migrate, "_sleep", lambda s: None)
    same = _record(tmp_path / "same.json", "kr-migrate-plan", "v1")
    code, out, _ = _run(capsys, "migrate", "--env", "dev", "--plan", str(same))
    assert (code, out) == (0, "the plan brings no new backend image (BackendImageTag stays v1): nothing to migrate\n")
    new = _record(tmp_path / "new.json", "kr-migrate-plan", "4d5e6f7")
    digest = applying.record_digest(new.read_bytes())
    code, out, err = _run(capsys, "migrate", "--env", "dev", "--plan", str(new), "--plan-digest", digest)
    assert code == 0, err
    assert "(image 123456789012.dkr.ecr.eu-central-1.amazonaws.com/knowledgerouter-backend:4d5e6f7)" in out
    created = _record(tmp_path / "create.json", "kr-migrate-plan", "4d5e6f7", "CREATE")
    code, out, _ = _run(capsys, "migrate", "--env", "dev", "--plan", str(created))
    assert code == 0 and out.startswith("kr-migrate-plan is new: no backend runs yet; migrate after apply")


def _migrations(cluster: str) -> int:
    ecs = boto3.client("ecs", region_name=REGION)
    return len(
        ecs.list_tasks(cluster=cluster, startedBy=migrate.STARTED_BY, desiredStatus="STOPPED")["taskArns"]
    ) + len(ecs.list_tasks(cluster=cluster, startedBy=migrate.STARTED_BY)["taskArns"])


def test_migrate_runs_only_once_apply_checks_of_the_record_pass(
    moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failed before: migrate --plan ran whatever image tag the record named, before anything checked
    the record: a record swapped in the caller's run (another tag, or not a Docker tag at all) ran."""
    cluster, _ = _backend("kr-migrate-trust")
    monkeypatch.setattr(migrate, "_sleep", lambda s: None)
    path = _record(tmp_path / "plan.json", "kr-migrate-trust", "4d5e6f7")
    good = path.read_bytes()
    digest = applying.record_digest(good)
    # another tag than the change set's: apply's record check refuses it, nothing runs
    record = json.loads(good)
    record["parameters"] = [{**p, "ParameterValue": "evil"} for p in record["parameters"]]
    path.write_text(json.dumps(record))
    code, _, err = _run(capsys, "migrate", "--env", "dev", "--plan", str(path))
    assert (code, err.strip()) == (
        2,
        f"--plan {path}: the change set's parameters differ from the reviewed plan's; plan again",
    )
    code, _, err = _run(capsys, "migrate", "--env", "dev", "--plan", str(path), "--plan-digest", digest)
    assert code == 2 and err.strip().startswith(f"--plan {path}: its sha256 is ")
    assert err.strip().endswith(
        f"not the --plan-digest {digest} the plan published: not the reviewed record; plan again"
    )
    # a change set (and so a verified record) whose tag is no Docker tag: refused like --image-tag's
    bad = _record(tmp_path / "bad.json", "kr-migrate-trust", "v1;rm -rf /")
    code, _, err = _run(capsys, "migrate", "--env", "dev", "--plan", str(bad))
    assert (code, err.strip()) == (
        2,
        f"--plan {bad}: BackendImageTag 'v1;rm -rf /': not a Docker tag "
        "(letters, digits, _ . -, at most 128 characters)",
    )
    assert _migrations(cluster) == 0
    path.write_bytes(good)
    code, _, err = _run(capsys, "migrate", "--env", "dev", "--plan", str(path), "--plan-digest", digest)
    assert code == 0, err
    assert _migrations(cluster) == 1
