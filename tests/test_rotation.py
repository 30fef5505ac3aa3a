"""A rotated database password reaches the running backend (kr_cfn.rotation, kr_cfn.operations.rotation).

- The rule's pattern, evaluated by moto's EventBridge pattern matcher (the one its server uses
  for PutEvents; its TestEventPattern API is not implemented), matches the documented
  ``RotationSucceeded`` event of this env's secret and nothing else.
- The state machine's definition is checked as states language (StartAt, a Next/End chain,
  Task states on the ECS UpdateService SDK integration) and names exactly the services whose
  params inject the secret.
- The roles do their job under the environment's boundary (tests/policy_eval.py) and no more;
  the CloudFormation service role may create the new resource types and pass their roles.
- ``kr-cfn rotation`` sets the interval through Secrets Manager on the local endpoint, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.events.models import EventPattern

import stacks
from kr_cfn import config, rotation
from kr_cfn.aws import Aws
from kr_cfn.cli import main
from kr_cfn.operations import rotation as live
from stacks import bootstrap
from tests import aws_endpoint
from tests.conftest import ENVS, built, load_env, write_params
from tests.policy_eval import Policy, Request, evaluate

FIXTURE = Path(__file__).parent / "fixtures" / "rotation" / "rotation-succeeded.json"
ACCOUNT = "111111111111"
REGION = "eu-central-1"
PROD_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0a1b2c3d-4e5f-6789-abcd-ef0123456789-AbCdEf"
DEV_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-99999999-4e5f-6789-abcd-ef0123456789-XyZxYz"


def _event(secret: str, **detail: Any) -> dict[str, Any]:
    event = json.loads(FIXTURE.read_text().replace("SECRET_ARN", secret))
    event["detail"].update(detail)
    return event


def _pattern(templates: dict[str, Any], secret: str) -> EventPattern:
    pattern = templates["ecs"]["Resources"][rotation.RULE]["Properties"]["EventPattern"]
    assert pattern["detail"]["additionalEventData"]["SecretId"] == [{"Ref": rotation.DB_SECRET_OUTPUT}]
    pattern["detail"]["additionalEventData"]["SecretId"] = [secret]
    return EventPattern.load(json.dumps(pattern))


def test_the_rule_matches_this_env_s_rotation_only() -> None:
    pattern = _pattern(json.loads(json.dumps(built("prod"))), PROD_SECRET)
    assert pattern.matches_event(_event(PROD_SECRET))
    assert not pattern.matches_event(_event(DEV_SECRET))  # another env's secret in the same account
    assert not pattern.matches_event(_event(PROD_SECRET, eventName="RotationFailed"))
    assert not pattern.matches_event(_event(PROD_SECRET, eventName="RotationStarted"))
    api_call = {**_event(PROD_SECRET, eventName="RotateSecret"), "detail-type": "AWS API Call via CloudTrail"}
    assert not pattern.matches_event(api_call)  # someone asking for a rotation is not a finished one
    dev = built("dev")["ecs"]["Resources"][rotation.RULE]["Properties"]
    assert dev["Targets"][0]["Arn"] == {"Ref": rotation.STATE_MACHINE}


def _consumers(cfg: config.EnvConfig) -> list[str]:
    """The params' services that inject the database secret (what the state machine must redeploy)."""
    services = config.ecs_slice(cfg).services
    return [n for n, s in services.items() if any(r.secret == rotation.DB_SECRET_OUTPUT for r in s.secrets.values())]


def _chain(definition: dict[str, Any]) -> list[str]:
    """The states from StartAt along Next to the End state; each exactly once."""
    names, state = [], definition["StartAt"]
    while True:
        assert state in definition["States"] and state not in names, state
        names.append(state)
        body = definition["States"][state]
        if body.get("End"):
            assert "Next" not in body
            break
        state = body["Next"]
    assert sorted(names) == sorted(definition["States"])  # no unreachable state
    return names


def _redeployed(ecs: dict[str, Any]) -> list[str]:
    props = ecs["Resources"][rotation.STATE_MACHINE]["Properties"]
    subs = props["DefinitionSubstitutions"]
    assert subs["UpdateService"] == {"Fn::Sub": "arn:${AWS::Partition}:states:::aws-sdk:ecs:updateService"}
    assert subs["Cluster"] == {"Ref": "Cluster"}
    out = []
    for name in _chain(props["Definition"]):
        state = props["Definition"]["States"][name]
        assert state["Type"] == "Task" and state["Resource"] == "${UpdateService}"
        params = state["Parameters"]
        assert set(params) == {"Cluster", "Service", "ForceNewDeployment"}
        assert params["Cluster"] == "${Cluster}" and params["ForceNewDeployment"] is True
        (logical,) = subs[params["Service"][2:-1]]["Fn::GetAtt"][:1]
        out.append(ecs["Resources"][logical]["Properties"]["ServiceName"])
    return out


@pytest.mark.parametrize("env", ENVS)
def test_the_state_machine_redeploys_exactly_the_services_injecting_the_secret(env: str) -> None:
    ecs = built(env)["ecs"]
    assert _redeployed(ecs) == _consumers(load_env(env)) == ["backend"]
    (statement,) = ecs["Resources"][rotation.STATE_MACHINE_ROLE]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Action"] == ["ecs:UpdateService"]
    assert statement["Resource"] == [{"Ref": "BackendService"}]


def test_a_second_service_injecting_the_secret_is_redeployed_too(tmp_path: Path) -> None:
    text = "services:\n  grafana:\n    secrets:\n      GF_DATABASE_PASSWORD: {secret: DbSecretArn, key: password}\n"
    cfg = config.load(write_params(tmp_path, "dev", text))
    ecs = stacks.build_all(cfg)["ecs"].to_dict()
    assert _redeployed(ecs) == _consumers(cfg) == ["backend", "grafana"]
    policy = ecs["Resources"][rotation.STATE_MACHINE_ROLE]["Properties"]["Policies"][0]["PolicyDocument"]
    assert policy["Statement"][0]["Resource"] == [{"Ref": "BackendService"}, {"Ref": "GrafanaService"}]


# --------------------------------------------------------------------------- permissions


def _resolve(node: Any, names: dict[str, str]) -> Any:
    """Fn::Sub / Ref / GetAtt as the ARNs they stand for in ACCOUNT and REGION."""
    if isinstance(node, list):
        return [_resolve(n, names) for n in node]
    if not isinstance(node, dict):
        return node
    if "Fn::Sub" in node:
        text = node["Fn::Sub"]
        for key, value in {"AWS::Partition": "aws", "AWS::AccountId": ACCOUNT, "AWS::Region": REGION}.items():
            text = text.replace("${" + key + "}", value)
        return text
    if "Ref" in node:
        return names[node["Ref"]]
    if "Fn::GetAtt" in node:
        return names[".".join(node["Fn::GetAtt"])]
    return {k: _resolve(v, names) for k, v in node.items()}


CLUSTER = built("prod")["ecs"]["Resources"]["Cluster"]["Properties"]["ClusterName"]
SERVICE = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/"  # the ARN format of ECS services
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{rotation.state_machine_name('knowledgerouter')}"
NAMES = {
    "BackendService": SERVICE + "backend",
    "FrontendService": SERVICE + "frontend",
    rotation.STATE_MACHINE: MACHINE,
}


def _role(templates: dict[str, Any], logical_id: str) -> dict[str, Policy]:
    props = templates["ecs"]["Resources"][logical_id]["Properties"]
    return {p["PolicyName"]: _resolve(p["PolicyDocument"], NAMES) for p in props["Policies"]}


def _boundary(templates: dict[str, Any]) -> Policy:
    doc = templates["bootstrap"]["Resources"][bootstrap.BOUNDARY_POLICY]["Properties"]["PolicyDocument"]
    return _resolve(doc, {})


def test_the_roles_may_redeploy_this_env_s_consumers_and_nothing_else() -> None:
    templates = built("prod")
    machine, events_role, boundary = (
        _role(templates, rotation.STATE_MACHINE_ROLE),
        _role(templates, rotation.EVENTS_ROLE),
        _boundary(templates),
    )
    assert evaluate(Request("ecs:UpdateService", SERVICE + "backend"), machine, boundary).allowed
    assert not evaluate(Request("ecs:UpdateService", SERVICE + "frontend"), machine, boundary).allowed
    other_env = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/knowledgerouter-dev-cluster/backend"
    assert not evaluate(Request("ecs:UpdateService", other_env), {"any": _allow_all()}, boundary).allowed
    assert not evaluate(Request("ecs:DeleteService", SERVICE + "backend"), machine, boundary).allowed
    assert evaluate(Request("states:StartExecution", MACHINE), events_role, boundary).allowed
    assert not evaluate(Request("states:StartExecution", MACHINE + "x"), events_role, boundary).allowed
    dev_machine = MACHINE.replace("knowledgerouter-", "knowledgerouter-dev-")
    assert not evaluate(Request("states:StartExecution", dev_machine), {"any": _allow_all()}, boundary).allowed


def _allow_all() -> Policy:
    return {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _service_role(templates: dict[str, Any]) -> dict[str, Policy]:
    t = templates["bootstrap"]
    names = {
        "ArtifactsBucket.Arn": "arn:aws:s3:::artifacts",
        **{k: f"arn:aws:iam::{ACCOUNT}:policy/{k}" for k, r in t["Resources"].items() if "ManagedPolicy" in r["Type"]},
    }
    role = t["Resources"][bootstrap.SERVICE_ROLE]["Properties"]
    policies = {p["PolicyName"]: _resolve(p["PolicyDocument"], names) for p in role["Policies"]}
    for ref in role.get("ManagedPolicyArns", []):
        policies[ref["Ref"]] = _resolve(t["Resources"][ref["Ref"]]["Properties"]["PolicyDocument"], names)
    return policies


@pytest.mark.parametrize("env", ENVS)
def test_the_service_role_may_create_the_rule_and_the_state_machine(env: str) -> None:
    templates = built(env)
    role = _service_role(templates)
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/x"
    for action in ("events:PutRule", "events:PutTargets", "events:DescribeRule", "events:DeleteRule"):
        assert evaluate(Request(action, rule), role).allowed, action
    for action in ("states:CreateStateMachine", "states:UpdateStateMachine", "states:DeleteStateMachine"):
        assert evaluate(Request(action, MACHINE), role).allowed, action
    prefix = load_env(env).names.prefix
    app_role = f"arn:aws:iam::{ACCOUNT}:role/{prefix}/EcsStack-DbSecretRedeployRole-1A2B"
    for service in ("states.amazonaws.com", "events.amazonaws.com"):
        assert evaluate(Request("iam:PassRole", app_role, {"iam:PassedToService": service}), role).allowed, service
    to_lambda = {"iam:PassedToService": "lambda.amazonaws.com"}
    assert not evaluate(Request("iam:PassRole", app_role, to_lambda), role).allowed


# --------------------------------------------------------------------------- the interval, live

moto_url = aws_endpoint.moto_url_fixture(REGION)

_DATA = {
    "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
    "Parameters": {"Arn": {"Type": "String"}},
    "Outputs": {"DbSecretArn": {"Value": {"Ref": "Arn"}}},
}


def _deployed(secret_arn: str, name: str = "rotation-root") -> dict[str, Any]:
    """A root stack whose nested DataStack outputs DbSecretArn, as the real one does."""
    s3 = boto3.client("s3", region_name=REGION)
    if "rotation-templates" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="rotation-templates", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="rotation-templates", Key="data.json", Body=json.dumps(_DATA).encode())
    url = "https://rotation-templates.s3.amazonaws.com/data.json"  # moto serves it from its own S3
    root = {
        "Resources": {
            live.DATA_STACK: {
                "Type": "AWS::CloudFormation::Stack",
                "Properties": {"TemplateURL": url, "Parameters": {"Arn": secret_arn}},
            }
        }
    }
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(root))
    (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    return stack


def test_the_interval_is_set_once_and_plan_warns_while_it_differs(moto_url: str) -> None:
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="rds!db-rotation-test", SecretString='{"username":"u","password":"p"}')["ARN"]
    stack = _deployed(arn)
    aws = Aws(REGION)
    assert live.secret_arn(aws, stack) == arn
    assert live.live_days(aws, arn) is None
    (warning,) = live.warnings(aws, stack, 90, "prod")
    assert warning.startswith("the database password does not rotate on a fixed interval, params say every 90 days")
    assert live.ensure(aws, arn, 90) is True
    assert sm.describe_secret(SecretId=arn)["RotationRules"]["AutomaticallyAfterDays"] == 90
    assert live.live_days(aws, arn) == 90
    assert live.ensure(aws, arn, 90) is False  # idempotent: no second RotateSecret
    assert live.warnings(aws, stack, 90, "prod") == []
    assert live.warnings(aws, stack, 30, "prod") == [
        "the database password rotates every 90 days, params say every 30 days "
        "(data.db_password_rotation_days): run kr-cfn rotation --env prod"
    ]


def test_plan_goes_on_when_the_schedule_cannot_be_read(moto_url: str) -> None:
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:rds!db-gone-AbCdEf"
    stack = _deployed(missing, "rotation-gone")
    (warning,) = live.warnings(Aws(REGION), stack, 90, "prod")
    assert warning.startswith("could not read the database password's rotation schedule (")
    assert "ResourceNotFoundException" in warning and warning.endswith("see kr-cfn rotation --env prod")


def test_kr_cfn_rotation_sets_the_params_interval_once(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aws_endpoint.reset(moto_url)
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(Name="rds!db-cli-test", SecretString='{"username":"u","password":"p"}')["ARN"]
    _deployed(arn)
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    text = f"account_id: '{account}'\ndata:\n  db_password_rotation_days: 30\n"
    params = write_params(tmp_path, "dev", text).parent
    argv = ["rotation", "--env", "dev", "--params", str(params), "--stack-name", "rotation-root"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert said == f"{arn}: rotation every 30 days set (the next rotation follows the new schedule)\n"
    assert sm.describe_secret(SecretId=arn)["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert main(argv) == 0
    assert capsys.readouterr().out == f"{arn}: already rotates every 30 days\n"


def test_the_interval_must_be_one_secrets_manager_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_params(tmp_path, "dev", "data:\n  db_password_rotation_days: 1001\n")
    assert main(["build", "--params", str(path.parent), "--env", "dev", "--out", str(tmp_path / "o")]) != 0
    assert f"{path}: data.db_password_rotation_days: input should be less than or equal to 1000, got 1001" in (
        capsys.readouterr().err
    )
