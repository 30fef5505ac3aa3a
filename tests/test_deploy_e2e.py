"""The deploy commands end to end against a local AWS endpoint (moto's server, see aws_endpoint.py).

bootstrap -> package -> plan (create) -> apply -> change params -> plan (update) -> apply ->
plan (no changes), on templates built by the project's own build from a copy of params/,
so the test deploys whatever stacks exist.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import yaml

from kr_cfn import config
from kr_cfn.changes import guard
from kr_cfn.changes.package import load_template
from kr_cfn.cli import main
from kr_cfn.operations import migrate, smoke
from tests import aws_endpoint, pipeline_calls
from tests.conftest import PARAMS

REGION = "eu-central-1"
MOTO_ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's server on a free port; boto3 reaches it through AWS_ENDPOINT_URL with dummy credentials."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with aws_endpoint.local_endpoint() as url, pytest.MonkeyPatch.context() as mp:
        # moto's backends live in the process, not the server: start from an empty account
        # (other modules deploy the same environment names before this one).
        aws_endpoint.reset(url)
        aws_endpoint.point_boto3_at(mp, url, REGION)
        yield url


class Project:
    """A copy of params/ and a build folder; runs the CLI and collects its output."""

    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.params, self.out, self.capsys = tmp / "params", tmp / "out", capsys
        shutil.copytree(PARAMS, self.params)
        for env in config.available_envs(self.params):  # the local endpoint's account (STS)
            self.set(env, "account_id", MOTO_ACCOUNT)

    def set(self, env: str, path: str, value: Any) -> None:
        """Change one key in ``params/<env>.yaml``."""
        file = self.params / f"{env}.yaml"
        data = yaml.safe_load(file.read_text()) or {}
        *parents, key = path.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = value
        file.write_text(yaml.safe_dump(data))

    def build(self, env: str) -> None:
        assert main(["build", "--params", str(self.params), "--out", str(self.out), "--env", env, "--no-lint"]) == 0

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--params", str(self.params), "--out", str(self.out)])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert code == 0, f"kr-cfn {' '.join(args)} -> {code}\n{out}\n{err}"
        return out

    def template(self, env: str, name: str) -> dict[str, Any]:
        return load_template(self.out / env / f"{name}.yaml")

    def review(self, env: str) -> dict[str, Any]:
        return json.loads((self.out / f"{env}.plan" / "review.json").read_text())


def _cfn() -> Any:
    return boto3.client("cloudformation", region_name=REGION)


def _stack(name: str) -> dict[str, Any]:
    return _cfn().describe_stacks(StackName=name)["Stacks"][0]


def _nested(root: str) -> dict[str, str]:
    """Logical id -> physical stack of the root's nested stacks."""
    resources = _cfn().list_stack_resources(StackName=root)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r["ResourceType"].endswith("::Stack")}


def _assert_every_resource_exists(stack: str, template: dict[str, Any]) -> None:
    resources = _cfn().list_stack_resources(StackName=stack)["StackResourceSummaries"]
    assert {r["LogicalResourceId"] for r in resources} == set(template["Resources"]), stack


def _image_tags(project: Project, env: str, tag: str) -> list[str]:
    root = project.template(env, "root")
    return [f"--image-tag={name}={tag}" for name in sorted(root.get("Parameters", {})) if name.endswith("ImageTag")]


@pytest.fixture
def pipeline() -> Iterator[pipeline_calls.Recorder]:
    """Every AWS call of every kr-cfn command the test runs, as the IAM requests of its pipeline role."""
    yield from pipeline_calls.recording(MOTO_ACCOUNT, REGION)


def test_client_endpoint_is_the_local_server(endpoint: str) -> None:
    from kr_cfn.aws import Aws

    aws = Aws("eu-west-1")
    assert aws.region == REGION  # the standard AWS way wins over the params' default
    for service in ("cloudformation", "s3"):
        assert aws.client(service).meta.endpoint_url == endpoint


def test_full_deploy_sequence(
    endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    pipeline: pipeline_calls.Recorder,
    request: pytest.FixtureRequest,
) -> None:
    project = Project(tmp_path, capsys)
    project.set("dev", "deploy.termination_protection", True)
    # a protected env with no alert route builds only when its params say so; the review then warns
    project.set("dev", "monitoring.allow_no_alert_route", True)
    project.build("dev")
    cfg_prefix = "knowledgerouter-dev"

    # bootstrap: bucket, repositories and roles really exist
    project.ok("bootstrap", "--env", "dev")
    ecr = boto3.client("ecr", region_name=REGION)
    repos = {r["repositoryName"]: r for r in ecr.describe_repositories()["repositories"]}
    for name in ("backend", "frontend"):
        repo = repos[f"knowledgerouter-{name}"]
        # (moto keeps ScanOnPush in CloudFormation's casing, so the API omits it: see test_bootstrap.py)
        assert repo["imageTagMutability"] == "IMMUTABLE"
    bucket = project.ok("outputs", "--env", "dev", "--bootstrap", "--key", "ArtifactsBucketName").strip()
    s3 = boto3.client("s3", region_name=REGION)
    # moto's bucket model takes only BucketName, BucketEncryption and Tags from CloudFormation
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    trust = boto3.client("iam").get_role(RoleName=f"{cfg_prefix}-github-deploy")["Role"]["AssumeRolePolicyDocument"]
    subjects = trust["Statement"][0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert subjects == "repo:knowledgerouter/kr_cfn:environment:dev:ref:refs/heads/main"
    _assert_every_resource_exists(f"{cfg_prefix}-bootstrap", project.template("dev", "bootstrap"))

    # package: content-hash keys, a second run uploads nothing
    first = project.ok("package", "--env", "dev", "--bucket", bucket)
    assert "uploaded network.json" in first
    second = project.ok("package", "--env", "dev", "--bucket", bucket)
    assert "uploaded" not in second and "present  network.json" in second

    # plan (create): every nested stack is added
    out = project.ok("plan", "--env", "dev", *_image_tags(project, "dev", "v1"))
    review = project.review("dev")
    nested = {k for k, v in project.template("dev", "root")["Resources"].items() if v["Type"].endswith("::Stack")}
    assert review["change_set_type"] == "CREATE" and review["has_changes"]
    assert {(c["action"], c["logical_id"]) for c in review["stacks"][0]["changes"]} >= {("Add", n) for n in nested}
    assert f"or: kr-cfn apply --env dev --change-set {review['change_set_name']}" in out
    assert f"apply with: kr-cfn apply --env dev --plan {project.out / 'dev.plan' / 'plan.json'}" in out
    assert (
        (project.out / "dev.plan" / "review.md")
        .read_text()
        .startswith("### CloudFormation plan: `knowledgerouter-dev`")
    )
    # the monthly cost delta: nothing deployed yet, so all of the built estimate is new
    assert review["cost"]["before"] == 0 and review["cost"]["after"] > 100, review["cost"]
    assert "Monthly cost (list prices, `kr-cfn cost`): 0.00 →" in (project.out / "dev.plan" / "review.md").read_text()
    assert "monthly cost (kr-cfn cost, list prices): 0.00 ->" in out

    # apply: every resource of every stack exists, outputs, stack policy, termination protection
    out = project.ok("apply", "--env", "dev", "--change-set", review["change_set_name"])
    root = _stack(cfg_prefix)
    assert root["StackStatus"] == "CREATE_COMPLETE" and root["EnableTerminationProtection"] is True
    _assert_every_resource_exists(cfg_prefix, project.template("dev", "root"))
    children = _nested(cfg_prefix)
    assert set(children) == nested
    for logical_id, physical in children.items():
        child = project.template("dev", {v: k for k, v in _child_files(project).items()}[logical_id])
        _assert_every_resource_exists(physical, child)
        assert _cfn().get_stack_policy(StackName=physical)["StackPolicyBody"] == guard.stack_policy()
    assert _cfn().get_stack_policy(StackName=cfg_prefix)["StackPolicyBody"] == guard.stack_policy()
    outputs = {o["OutputKey"]: o["OutputValue"] for o in root["Outputs"]}
    assert set(outputs) == set(project.template("dev", "root").get("Outputs", {}))
    vpc = boto3.client("ec2", region_name=REGION).describe_vpcs(VpcIds=[outputs["VpcId"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert f"VpcId = {outputs['VpcId']}" in out
    if "AppUrl" in outputs:
        assert f"app: {outputs['AppUrl']}" in out
    for physical in children.values():  # live progress: the events of every nested stack
        assert re.search(rf"^\[\d+/\d+\] \S+ +{physical} .* CREATE_COMPLETE$", out, re.M), physical
    assert "CREATE_COMPLETE" in project.ok("status", "--env", "dev")

    # applying the same change set again is refused
    code, _, err = project.run("apply", "--env", "dev", "--change-set", review["change_set_name"])
    assert code == 2 and "only an AVAILABLE change set can be applied" in err

    # change params -> plan (update) -> apply
    project.set("dev", "tags", {"CostCenter": "rag"})
    project.build("dev")
    code, _, err = project.run("plan", "--env", "dev")  # a build replaces out/dev: package again
    assert code == 2 and err.endswith("package.json: not found; run kr-cfn package --env ENV --bucket BUCKET first\n")
    project.ok("package", "--env", "dev", "--bucket", bucket)
    project.ok("plan", "--env", "dev", *_image_tags(project, "dev", "v2"))
    review = project.review("dev")
    assert review["change_set_type"] == "UPDATE" and review["has_changes"] and not review["findings"]
    # deployed templates (GetTemplate of the root and each nested stack) priced like the built ones:
    # a tag change costs nothing
    assert review["cost"]["before"] == review["cost"]["after"] > 100 and review["cost"]["delta"] == 0, review["cost"]
    # the deployed backend's desired count (read live from ECS) is what the deploy keeps
    desired = boto3.client("ecs", region_name=REGION).describe_services(
        cluster=outputs["ClusterName"], services=["backend"]
    )["services"][0]["desiredCount"]
    assert f"BackendService (backend): autoscaled 2-10; this deploy keeps its {desired} desired task(s)" in " ".join(
        review["notes"]
    )
    assert any(w.startswith("the alarms of dev reach no one") for w in review["warnings"])
    assert {c["action"] for c in review["stacks"][0]["changes"]} == {"Modify"}
    # the deploy job: migrate with the planned image, apply the plan record
    from moto.ecs.models import EC2ContainerServiceBackend

    # moto 5.2.5 adds up container memory and crashes on containers that leave it to the task: place by nothing
    no_requirements = {"CPU": 0, "MEMORY": 0, "PORTS": [], "PORTS_UDP": []}
    monkeypatch.setattr(
        EC2ContainerServiceBackend, "_calculate_task_resource_requirements", staticmethod(lambda td: no_requirements)
    )
    monkeypatch.setattr(migrate, "_sleep", lambda seconds: None)
    assert "(image " in project.ok("migrate", "--env", "dev", "--plan", str(project.out / "dev.plan" / "plan.json"))
    project.ok("apply", "--env", "dev", "--plan", str(project.out / "dev.plan" / "plan.json"))
    assert _stack(cfg_prefix)["StackStatus"] == "UPDATE_COMPLETE"
    for physical in _nested(cfg_prefix).values():
        assert _stack(physical)["StackStatus"].endswith("_COMPLETE")
    deployed = _cfn().get_template(StackName=cfg_prefix)["TemplateBody"]
    packaged = json.loads((project.out / "dev" / "root.packaged.json").read_text())
    assert (json.loads(deployed) if isinstance(deployed, str) else deployed) == packaged
    assert {"Key": "CostCenter", "Value": "rag"} in packaged["Resources"]["NetworkStack"]["Properties"]["Tags"]

    # plan (no changes): says so, deletes the empty change set; image tags not named keep the
    # deployed ones (UsePreviousValue), not the template's Default
    out = project.ok("plan", "--env", "dev")
    assert f"no changes: stack {cfg_prefix} is up to date" in out
    # (moto lists the change sets of every stack: keep this stack's)
    summaries = [s for s in _cfn().list_change_sets(StackName=cfg_prefix)["Summaries"] if s["StackName"] == cfg_prefix]
    assert all(s["ExecutionStatus"] == "EXECUTE_COMPLETE" for s in summaries)
    assert not project.review("dev")["has_changes"]
    tags = {p["ParameterKey"]: p["ParameterValue"] for p in _stack(cfg_prefix)["Parameters"]}
    assert tags and set(tags.values()) == {"v2"}

    # the rest of the deploy job (smoke's HTTP requests stubbed: its AWS calls are what counts here)
    assert project.ok("outputs", "--env", "dev", "--key", "ClusterName").strip() == outputs["ClusterName"]
    monkeypatch.setattr(smoke, "run", lambda url, timeout: True)
    project.ok("smoke", "--env", "dev", "--timeout", "1")
    # a pull request's plan (plan role): package under pr/ (new template URLs: a change set)
    project.ok("package", "--env", "dev", "--bucket", bucket, "--pull-request")
    assert "change set kr-cfn-pr-" in project.ok("plan", "--env", "dev")

    # every call of every command, as the IAM requests of the role the workflows run it under
    assert not pipeline.unmapped, "calls without a resource in tests/pipeline_calls.py RESOURCES"
    denied = pipeline.denials()
    assert not denied, "\n".join(denied)
    pipeline_calls.compare_or_update(pipeline.records(), request.config.getoption("--update-permissions"))


def _child_files(project: Project) -> dict[str, str]:
    """File stem -> logical id, from the built root's relative TemplateURLs."""
    root = project.template("dev", "root")
    return {
        v["Properties"]["TemplateURL"][2:].rsplit(".", 1)[0]: k
        for k, v in root["Resources"].items()
        if v["Type"] == "AWS::CloudFormation::Stack"
    }


def test_guard_blocks_removing_a_repository(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project(tmp_path, capsys)
    # The project's repositories belong to the dev bootstrap in this (one) account: own ones here.
    project.set("staging", "bootstrap.repositories", ["staging-api", "staging-web"])
    project.build("staging")
    project.ok("bootstrap", "--env", "staging")
    project.set("staging", "bootstrap.repositories", ["staging-api"])
    project.build("staging")
    code, out, err = project.run("bootstrap", "--env", "staging")
    assert code == 3
    assert err.strip() == (
        "guard: root/StagingWebRepository (AWS::ECR::Repository) would be deleted; "
        "re-plan with --allow-replace StagingWebRepository if that data may be lost"
    )
    blocked = json.loads((project.out / "staging.plan" / "bootstrap-review.json").read_text())
    code, _, err = project.run(
        "apply",
        "--env",
        "staging",
        "--stack-name",
        "knowledgerouter-staging-bootstrap",
        "--change-set",
        blocked["change_set_name"],
    )
    assert code == 3 and "not allowed at plan time: root/StagingWebRepository (AWS::ECR::Repository)" in err
    out = project.ok("bootstrap", "--env", "staging", "--allow-replace", "StagingWebRepository", "--plan-only")
    assert "allowed by --allow-replace" in out


def test_unknown_env(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = Project(tmp_path, capsys).run("plan", "--env", "qa")
    assert code == 2 and err.startswith(f"--env qa: no params file {tmp_path / 'params' / 'qa'}.yaml (have: ")


def test_missing_bucket(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project(tmp_path, capsys)
    project.build("dev")
    code, _, err = project.run("package", "--env", "dev", "--bucket", "no-such-bucket-kr")
    assert code == 2
    assert err.strip() == (
        "--bucket no-such-bucket-kr: no such bucket; deploy the bootstrap stack first "
        "(kr-cfn bootstrap --env ENV) and use its ArtifactsBucketName output"
    )


def test_bucket_in_another_region(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project(tmp_path, capsys)
    project.build("dev")
    boto3.client("s3", region_name="us-west-2").create_bucket(
        Bucket="kr-elsewhere", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    code, _, err = project.run("package", "--env", "dev", "--bucket", "kr-elsewhere")
    assert code == 2
    assert err.strip() == (
        f"--bucket kr-elsewhere: the bucket is in us-west-2, the stacks deploy to {REGION}; "
        f"use the ArtifactsBucketName output of the bootstrap stack in {REGION}"
    )


def test_no_credentials(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, capsys)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _, err = project.run("status", "--env", "dev")
    assert code == 2 and err.startswith("no AWS credentials found: set AWS_PROFILE")


def test_change_set_not_found(endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = Project(tmp_path, capsys).run("apply", "--env", "prod", "--change-set", "kr-cfn-0000")
    assert (
        code == 2 and err.strip() == "change set kr-cfn-0000 not found on stack knowledgerouter; run kr-cfn plan again"
    )


@pytest.mark.parametrize(
    ("status", "hint"),
    [("ROLLBACK_COMPLETE", "delete it (aws cloudformation delete-stack"), ("UPDATE_IN_PROGRESS", "wait until it ends")],
)
def test_stack_in_a_state_that_cannot_be_planned(
    endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str, hint: str
) -> None:
    from moto.cloudformation.models import cloudformation_backends

    name = f"kr-stuck-{status.lower().replace('_', '-')}"
    body = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
    stack_id = _cfn().create_stack(StackName=name, TemplateBody=body)["StackId"]
    # moto cannot fail or stall a deploy: put the real stack in the state a failed/running deploy leaves.
    cloudformation_backends["123456789012"][REGION].stacks[stack_id].status = status
    project = Project(tmp_path, capsys)
    project.build("dev")
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=f"{name}-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    project.ok("package", "--env", "dev", "--bucket", f"{name}-artifacts")
    code, _, err = project.run("plan", "--env", "dev", "--stack-name", name)
    assert code == 2 and err.startswith(f"stack {name} is {status}") and hint in err


def test_placeholders_stand_in_only_for_types_moto_lacks(endpoint: str) -> None:
    from moto.cloudformation.parsing import get_model_map

    body = json.dumps(
        {
            "Resources": {
                "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}},
                "Egress": {
                    "Type": "AWS::EC2::SecurityGroupEgress",
                    "Properties": {"GroupId": "sg-1", "IpProtocol": "tcp", "FromPort": 1, "ToPort": 1},
                },
            },
            "Outputs": {"EgressId": {"Value": {"Fn::GetAtt": ["Egress", "Id"]}}},
        }
    )
    _cfn().create_stack(StackName="kr-harness-placeholder", TemplateBody=body)
    stack = _stack("kr-harness-placeholder")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"] for o in stack["Outputs"]} == {"EgressId"}
    stood_in = {p.type for p in aws_endpoint.PLACEHOLDERS}
    assert "AWS::EC2::SecurityGroupEgress" in stood_in
    assert not stood_in & set(get_model_map()), "a placeholder replaced a resource moto implements"


def test_unknown_attributes_still_fail(endpoint: str) -> None:
    bucket = {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "kr-harness-attributes"}}}
    in_output = {"Resources": bucket, "Outputs": {"Nope": {"Value": {"Fn::GetAtt": ["Bucket", "NoSuchAttribute"]}}}}
    with pytest.raises(botocore.exceptions.ClientError, match="does not support attribute type NoSuchAttribute"):
        _cfn().create_stack(StackName="kr-harness-bad-output", TemplateBody=json.dumps(in_output))
    parameter = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {"Type": "String", "Value": {"Fn::GetAtt": ["Bucket", "NoSuchAttribute"]}},
    }
    in_property = {"Resources": {**bucket, "Parameter": parameter}}
    with pytest.raises(botocore.exceptions.ClientError, match="AWS::S3::Bucket has no attribute NoSuchAttribute"):
        _cfn().create_stack(StackName="kr-harness-bad-property", TemplateBody=json.dumps(in_property))
