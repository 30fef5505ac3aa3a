"""Behaviour under failure: one line and exit 4 for every AWS/network error, apply rides out
throttling, 500s, garbage and dropped connections while it follows a stack, Ctrl-C in apply.

The faults come from a local HTTP server on 127.0.0.1 (tests/failure_server.py), alone or as a
proxy in front of moto's server (the local AWS endpoint).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from kr_cfn.changes import apply as applying
from kr_cfn.changes import guard
from kr_cfn.changes.review import GuardFinding
from kr_cfn.cli import main
from kr_cfn.errors import DeployError
from tests import aws_endpoint
from tests.conftest import PARAMS, ROOT
from tests.failure_server import FailureServer, failure_server

REGION = "eu-central-1"


def _aws_env(mp: pytest.MonkeyPatch, url: str) -> None:
    aws_endpoint.point_boto3_at(mp, url, REGION)


moto_url = aws_endpoint.moto_url_fixture(REGION)


@pytest.fixture
def proxy(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailureServer]:
    """The failure server in front of moto; kr-cfn talks to it, the test's boto3 to moto directly."""
    with failure_server(upstream=moto_url) as fs:
        yield fs


@pytest.fixture
def alone(monkeypatch: pytest.MonkeyPatch) -> Iterator[FailureServer]:
    """The failure server with nothing behind it."""
    with failure_server() as fs:
        _aws_env(monkeypatch, fs.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
        yield fs


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--params", str(PARAMS)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("throttle", "Throttling: Rate exceeded (after 3 attempts)"),
        ("500", "InternalFailure: We encountered an internal error (after 3 attempts)"),
        ("garbage", "unreadable answer (not the AWS protocol; a proxy or an outage?): Unable to parse response"),
        ("drop", "ConnectionClosedError: Connection was closed before we received a valid response"),
    ],
)
def test_every_aws_failure_is_one_line_with_exit_4(
    alone: FailureServer, capsys: pytest.CaptureFixture[str], fault: str, says: str
) -> None:
    alone.inject("*", f"forever:{fault}")
    code, _, err = _run(capsys, "status", "--env", "dev")
    assert code == 4
    assert err.count("\n") == 1, err
    assert err.startswith(
        "AWS error: cloudformation DescribeStacks on stack knowledgerouter-dev-bootstrap failed: " + says
    )


def test_retries_ride_out_a_few_faults_per_call(alone: FailureServer, capsys: pytest.CaptureFixture[str]) -> None:
    # Two faults, then an answer: the third attempt (adaptive retry mode) gets it.
    alone.answers["DescribeStacks"] = lambda p: (400, _not_found(p["StackName"]))
    alone.inject("DescribeStacks", "throttle", "drop")
    code, out, err = _run(capsys, "status", "--env", "dev")
    assert (code, err) == (0, "")
    assert out == "knowledgerouter-dev-bootstrap: not deployed\nknowledgerouter-dev: not deployed\n"
    assert alone.count("DescribeStacks", "answer") == 2 and alone.count("DescribeStacks", "throttle") == 1


def _not_found(stack: str) -> str:
    from tests.failure_server import xml_error

    return xml_error("ValidationError", f"Stack with id {stack} does not exist")


def test_connection_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _aws_env(monkeypatch, f"http://127.0.0.1:{aws_endpoint.free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    code, _, err = _run(capsys, "outputs", "--env", "dev")
    assert code == 4
    assert err.startswith("AWS error: cloudformation DescribeStacks on stack knowledgerouter-dev failed: ")
    # prod pins its account: the first call is STS's, named with the stack it was for
    code, _, err = _run(capsys, "outputs", "--env", "prod")
    assert code == 4
    assert err.startswith(
        "AWS error: sts GetCallerIdentity (for stack knowledgerouter) failed: EndpointConnectionError"
    )
    assert "EndpointConnectionError: Could not connect to the endpoint URL" in err and err.count("\n") == 1


def test_no_traceback_from_the_installed_command(tmp_path: Path) -> None:
    """The real entry point, in its own process, against garbage: one line, exit 4, no traceback."""
    script = (
        "import sys\n"
        "from tests.failure_server import failure_server\n"
        "from kr_cfn.cli import main\n"
        "import os\n"
        "with failure_server() as fs:\n"
        "    fs.inject('*', 'forever:garbage')\n"
        "    os.environ['AWS_ENDPOINT_URL'] = fs.url\n"
        "    sys.exit(main(['outputs', '--env', 'dev', '--params', sys.argv[1]]))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script, str(PARAMS)], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("AWS error: cloudformation DescribeStacks on stack knowledgerouter-dev failed")


# --- apply against moto through the failure server ---------------------------------------------------------


def _topic_stack(name: str, topics: int) -> dict[str, Any]:
    return {"Resources": {f"Topic{i}": {"Type": "AWS::SNS::Topic"} for i in range(topics)}}


def _stack_with_update(name: str) -> tuple[str, str]:
    """A deployed stack (one topic) and an UPDATE change set adding a second; (stack id, change set name)."""
    cfn = boto3.client("cloudformation", region_name=REGION)
    stack_id = cfn.create_stack(StackName=name, TemplateBody=json.dumps(_topic_stack(name, 1)))["StackId"]
    cfn.create_change_set(
        StackName=name,
        ChangeSetName="kr-cfn-test",
        ChangeSetType="UPDATE",
        TemplateBody=json.dumps(_topic_stack(name, 2)),
    )
    return stack_id, "kr-cfn-test"


def test_apply_rides_out_throttling_500s_garbage_and_drops(
    proxy: FailureServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_id, change_set = _stack_with_update("kr-fail-ride")
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # so some faults outlast botocore's retries
    waits: list[float] = []
    monkeypatch.setattr(applying, "_sleep", waits.append)
    # once the change set runs: every kind of fault while the stack is followed
    proxy.inject("DescribeStackEvents", "throttle", "throttle", "500", "drop", "garbage")
    proxy.inject("ListStackResources", "500", "500")
    proxy.inject("DescribeStacks", "drop", "throttle", "throttle")
    real = proxy.next_fault
    monkeypatch.setattr(proxy, "next_fault", lambda op: real(op) if proxy.count("ExecuteChangeSet") else None)
    code, out, err = _run(capsys, "apply", "--env", "dev", "--stack-name", "kr-fail-ride", "--change-set", change_set)
    assert code == 0, err
    assert "stack kr-fail-ride: deployed" in out
    assert "kr-fail-ride kr-fail-ride AWS::CloudFormation::Stack UPDATE_COMPLETE" in out
    assert "(AWS did not answer: " in out  # a poll outlasted the retries and waited
    assert all(w <= 60 for w in waits) and waits
    for op, fault in [
        ("DescribeStackEvents", "garbage"),
        ("DescribeStackEvents", "drop"),
        ("DescribeStacks", "throttle"),
    ]:
        assert proxy.count(op, fault) >= 1, (op, fault)
    # the stack policy is on once the stack is stable
    cfn = boto3.client("cloudformation", region_name=REGION, endpoint_url=proxy.upstream)
    assert cfn.get_stack_policy(StackName=stack_id)["StackPolicyBody"] == guard.stack_policy()


def test_apply_gives_up_following_after_bounded_waits(
    proxy: FailureServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, change_set = _stack_with_update("kr-fail-lost")
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    waits: list[float] = []
    monkeypatch.setattr(applying, "_sleep", waits.append)
    real = proxy.next_fault

    def after_execute(operation: str) -> str | None:  # AWS goes away once the change set runs
        if proxy.count("ExecuteChangeSet") and operation == "DescribeStacks":
            return "500"
        return real(operation)

    monkeypatch.setattr(proxy, "next_fault", after_execute)
    code, _, err = _run(capsys, "apply", "--env", "dev", "--stack-name", "kr-fail-lost", "--change-set", change_set)
    assert code == 4
    assert err.strip().splitlines()[-1] == (
        "AWS did not answer 8 times in a row while following stack kr-fail-lost: the update goes on in "
        "CloudFormation; follow it with: kr-cfn watch --env dev --stack-name kr-fail-lost"
    )
    assert waits == [5, 10, 20, 40, 60, 60, 60]


# --- Ctrl-C in apply: policies are restored only once the stack is stable -----------------------------------


def _relaxing_review(name: str) -> tuple[Any, dict[str, Any], Any]:
    from kr_cfn.aws import Aws

    aws = Aws(REGION)
    _stack_with_update(name)
    review, cs = applying.check(aws, name, "kr-cfn-test")
    # moto's change sets carry no Replacement: an allowed replacement as plan would have recorded it
    review.findings.append(GuardFinding("root", "Topic0", "AWS::SNS::Topic", "Modify", "True", True))
    return aws, cs, review


def _moto_stack(stack_id: str) -> Any:
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends["123456789012"][REGION].stacks[stack_id]


def _keep_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto finishes an update at once: leave the stack UPDATE_IN_PROGRESS, as CloudFormation would."""
    from moto.cloudformation import models

    original = models.CloudFormationBackend.execute_change_set

    def execute(self: Any, change_set_name: str, stack_name: Any = None) -> None:
        original(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            if stack.name.startswith("kr-ctrl-c"):
                stack.status = "UPDATE_IN_PROGRESS"

    monkeypatch.setattr(models.CloudFormationBackend, "execute_change_set", execute)


def _policy(stack_id: str) -> str:
    return boto3.client("cloudformation", region_name=REGION).get_stack_policy(StackName=stack_id)["StackPolicyBody"]


def test_ctrl_c_waits_for_a_stable_stack_before_restoring_the_policy(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    aws, cs, review = _relaxing_review("kr-ctrl-c-wait")
    stack_id = cs["StackId"]
    _keep_running(monkeypatch)
    relaxed = guard.stack_policy(except_ids=["Topic0"])
    seen: list[str] = []

    def sleep(seconds: float) -> None:
        seen.append(_policy(stack_id))  # never the full policy while the update runs
        if len(seen) == 1:
            raise KeyboardInterrupt  # the operator presses Ctrl-C while apply follows the stack
        if len(seen) == 3:
            _moto_stack(stack_id).status = "UPDATE_COMPLETE"  # CloudFormation ends the update

    monkeypatch.setattr(applying, "_sleep", sleep)
    with pytest.raises(DeployError) as caught:
        applying.execute(aws, review, cs, False, watch="kr-cfn watch --env dev --stack-name kr-ctrl-c-wait")
    err = capsys.readouterr().err
    assert seen == [relaxed, relaxed, relaxed]
    assert _policy(stack_id) == guard.stack_policy()
    assert err.strip().endswith("kr-ctrl-c-wait is UPDATE_COMPLETE: stack policies restored")
    assert caught.value.code == 130
    assert str(caught.value) == (
        "interrupted: only kr-cfn stopped; CloudFormation goes on updating stack kr-ctrl-c-wait "
        "(follow it: kr-cfn watch --env dev --stack-name kr-ctrl-c-wait; "
        "roll it back: aws cloudformation cancel-update-stack --stack-name kr-ctrl-c-wait); "
        "the stack policies were restored"
    )


def test_second_ctrl_c_names_the_relaxed_stacks_and_the_command(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    aws, cs, review = _relaxing_review("kr-ctrl-c-twice")
    stack_id = cs["StackId"]
    _keep_running(monkeypatch)

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(applying, "_sleep", sleep)
    with pytest.raises(DeployError) as caught:
        applying.execute(aws, review, cs, False, watch="kr-cfn watch --env dev --stack-name kr-ctrl-c-twice")
    assert str(caught.value).endswith(
        "the stack policies are not restored yet: once it ends, run "
        "kr-cfn watch --env dev --stack-name kr-ctrl-c-twice --restore-policy"
    )
    err = capsys.readouterr().err
    assert _policy(stack_id) == guard.stack_policy(except_ids=["Topic0"])  # untouched while it runs
    assert err.strip().splitlines()[-1] == (
        "the relaxed stack policy (replacing the --allow-replace resources is allowed) is still on: kr-ctrl-c-twice; "
        "restore it once the update has ended with: kr-cfn watch --env dev --stack-name kr-ctrl-c-twice "
        "--restore-policy"
    )


def test_ctrl_c_exit_code(moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _, change_set = _stack_with_update("kr-ctrl-c-cli")
    _keep_running(monkeypatch)

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(applying, "_sleep", sleep)
    code, _, err = _run(capsys, "apply", "--env", "dev", "--stack-name", "kr-ctrl-c-cli", "--change-set", change_set)
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        "interrupted: only kr-cfn stopped; CloudFormation goes on updating stack kr-ctrl-c-cli "
        "(follow it: kr-cfn watch --env dev --stack-name kr-ctrl-c-cli; "
        "roll it back: aws cloudformation cancel-update-stack --stack-name kr-ctrl-c-cli); "
        "the stack policies are not restored yet: once it ends, run "
        "kr-cfn watch --env dev --stack-name kr-ctrl-c-cli --restore-policy"
    )
    assert "Traceback" not in err
