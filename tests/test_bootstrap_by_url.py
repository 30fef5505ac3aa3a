"""``kr-cfn bootstrap`` with a template too large to send inline: the bucket first, then the body by URL.

On the local endpoint (moto's server, see aws_endpoint.py): prod's body is over the inline share of
CloudFormation's 51,200-byte TemplateBody limit, so a fresh account gets a first change set with only
the artifacts bucket, then the full template by TemplateURL from that bucket; a second run changes
nothing; dev's small body still goes inline. Offline: the phase-one template is a strict subset of
the full one, and no GitHub role may write the key the operator's template is read from.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from kr_cfn.changes import bootbody
from kr_cfn.errors import DeployError
from tests import aws_endpoint, pipeline_calls
from tests.conftest import ENVS, built, load_env
from tests.policy_eval import Request, evaluate
from tests.test_deploy_e2e import REGION, Project, _assert_every_resource_exists, _stack, endpoint  # noqa: F401


@pytest.fixture(autouse=True)
def empty_account(request: pytest.FixtureRequest) -> Iterator[None]:
    """The end-to-end tests start from an empty account (moto keeps its state per process)."""
    if "endpoint" in request.fixturenames:
        aws_endpoint.reset(request.getfixturevalue("endpoint"))
    yield


def _objects(bucket: str) -> list[str]:
    return [o["Key"] for o in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_a_body_over_the_inline_share_bootstraps_in_two_phases_then_changes_nothing(
    endpoint: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = Project(tmp_path, capsys)
    project.build("prod")
    full = project.template("prod", "bootstrap")
    body = bootbody.compact(full)
    assert not bootbody.fits_inline(body), "prod's body fits inline: this test no longer covers the URL path"
    stack = f"{load_env('prod').names.prefix}-bootstrap"

    planned = project.ok("bootstrap", "--env", "prod", "--plan-only")
    assert "plan only: phase two (the full template by TemplateURL) is planned once phase one is applied" in planned
    assert _stack(stack)["StackStatus"] == "REVIEW_IN_PROGRESS"  # nothing created, nothing uploaded
    # CloudFormation takes the next CREATE change set on this stack; moto would make a second stack
    # of that name (moto/cloudformation/models.py create_change_set), so the test starts again from none.
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName=stack)

    out = project.ok("bootstrap", "--env", "prod")
    first = json.loads((project.out / "prod.plan" / "bootstrap-phase-one-review.json").read_text())
    assert first["change_set_type"] == "CREATE"
    assert first["notes"][-1].startswith("phase one of two: the template (")
    assert {c["logical_id"] for s in first["stacks"] for c in s["changes"]} == {
        "ArtifactsBucket",
        "ArtifactsBucketPolicy",
    }
    second = json.loads((project.out / "prod.plan" / "bootstrap-review.json").read_text())
    assert second["change_set_type"] == "UPDATE"
    assert {c["action"] for s in second["stacks"] for c in s["changes"]} == {"Add"}  # nothing replaced
    bucket = project.ok("outputs", "--env", "prod", "--bootstrap", "--key", "ArtifactsBucketName").strip()
    key = f"{bootbody.KEY_PREFIX}/{hashlib.sha256(body.encode()).hexdigest()}.bootstrap.json"
    assert f"template sent by TemplateURL https://s3.{REGION}.amazonaws.com/{bucket}/{key} (" in out
    assert _objects(bucket) == [key]
    _assert_every_resource_exists(stack, full)
    assert _stack(stack)["StackStatus"] == "UPDATE_COMPLETE"

    again = project.ok("bootstrap", "--env", "prod")
    assert f"no changes: stack {stack} is up to date" in again
    assert "already uploaded)" in again and "phase one" not in again
    assert _objects(bucket) == [key]


def test_a_small_body_still_goes_inline(
    endpoint: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = Project(tmp_path, capsys)
    # No GitHub repository: no OIDC provider nor GitHub roles, a body well within the inline share.
    project.set("dev", "bootstrap.github_repository", None)
    project.build("dev")
    out = project.ok("bootstrap", "--env", "dev")
    assert "note: template sent inline (" in out and "TemplateURL" not in out
    assert not (project.out / "dev.plan" / "bootstrap-phase-one-review.json").exists()
    bucket = project.ok("outputs", "--env", "dev", "--bootstrap", "--key", "ArtifactsBucketName").strip()
    assert _objects(bucket) == []
    _assert_every_resource_exists(
        _stack("knowledgerouter-dev-bootstrap")["StackName"], project.template("dev", "bootstrap")
    )


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    outputs = {"ArtifactsBucketName": {"Value": {"Ref": "Bucket"}}, "RoleArn": {"Value": {"Fn::GetAtt": "Role.Arn"}}}
    return {
        "Description": "d",
        "Resources": resources,
        "Outputs": outputs,
        "Conditions": {"Prod": {"Fn::Equals": [1, 1]}},
    }


def test_phase_one_takes_what_the_bucket_points_at_and_nothing_else() -> None:
    key = {"Type": "AWS::KMS::Key", "Condition": "Prod", "Properties": {}}
    bucket = {"Type": "AWS::S3::Bucket", "Properties": {"KeyArn": {"Fn::Sub": "${Key.Arn}"}}}
    policy = {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}}}
    role = {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"Fn::Sub": "${Bucket.Arn}"}]}}
    full = _template(Key=key, Bucket=bucket, Policy=policy, Role=role)
    first = bootbody.phase_one(full)
    assert set(first["Resources"]) == {"Key", "Bucket", "Policy"}
    assert set(first["Outputs"]) == {"ArtifactsBucketName"}  # RoleArn names a resource left for phase two
    assert first["Conditions"] == full["Conditions"] and first["Description"] == "d"
    assert bootbody.is_part_of(first, full)
    assert not bootbody.is_part_of({**first, "Resources": {"Bucket": {**bucket, "Properties": {}}}}, full)


def test_a_template_without_the_bucket_output_is_refused_in_one_line() -> None:
    full = _template(Bucket={"Type": "AWS::S3::Bucket"})
    del full["Outputs"]["ArtifactsBucketName"]
    with pytest.raises(
        DeployError, match=r"^the bootstrap template has no output ArtifactsBucketName naming its bucket"
    ):
        bootbody.phase_one(full)


@pytest.mark.parametrize("env", ENVS)
def test_no_github_role_may_write_the_key_the_bootstrap_is_read_from(env: str) -> None:
    """Bootstrap runs with the operator's credentials: a role that could swap its template would act as them."""
    account = "111122223333"
    bucket = f"arn:aws:s3:::{load_env(env).names('artifacts')}-{account}-{REGION}"
    prefix = load_env(env).names.prefix
    secure = {"aws:SecureTransport": "true"}
    for role in ("plan", "release-plan", "deploy"):
        policies = pipeline_calls.role_policies(built(env)["bootstrap"], role, account, REGION)
        key = f"{bucket}/{bootbody.KEY_PREFIX}/{'0' * 64}.bootstrap.json"
        assert not evaluate(Request("s3:PutObject", key, secure), policies).allowed, (env, role)
        upload = f"{bucket}/{'pr/' if role != 'release-plan' else ''}{prefix}/x.json"  # what each role does write
        assert evaluate(Request("s3:PutObject", upload, secure), policies).allowed, (env, role)
