"""``kr-cfn diff`` end to end: two real builds, an edited build, bad input, and a deployed stack (local endpoint)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from kr_cfn import trees
from kr_cfn.cli import main
from tests import aws_endpoint
from tests.conftest import PARAMS

REGION = "eu-central-1"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _params(tmp: Path, name: str) -> Path:
    folder = tmp / name
    shutil.copytree(PARAMS, folder)
    return folder


def _set(params: Path, env: str, path: str, value: Any) -> None:
    file = params / f"{env}.yaml"
    data = yaml.safe_load(file.read_text()) or {}
    *parents, key = path.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[key] = value
    file.write_text(yaml.safe_dump(data))


def test_builds_differing_only_in_an_image_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _params(tmp_path, "base")
    _set(base, "dev", "deploy.image_tag_default", "1111111")
    assert main(["build", "--env", "dev", "--params", str(base), "--out", str(tmp_path / "out"), "--no-lint"]) == 0
    head = _params(tmp_path, "head")
    _set(head, "dev", "deploy.image_tag_default", "2222222")
    code, out, err = run(
        capsys, "diff", "--env", "dev", "--params", str(head), "--compare-to", str(tmp_path / "out" / "dev"),
        "--review-dir", str(tmp_path / "forecast"),
    )  # fmt: skip
    assert code == 0, out + err
    assert "no changes" in out and "True" not in out and "Conditional" not in out
    data = json.loads((tmp_path / "forecast" / "forecast.json").read_text())
    assert data["findings"] == [] and data["change_set_type"] == "FORECAST"
    assert data["cost"]["delta"] == 0 and data["cost"]["before"] > 0  # the cost delta of plan, offline
    assert (tmp_path / "forecast" / "forecast.md").read_text().startswith("### CloudFormation plan")


def _rename_database(folder: Path) -> None:
    path = folder / "data.yaml"
    template = trees.parse(path.read_text(), str(path))
    text = json.dumps(template).replace('"Database"', '"MainDatabase"')  # the resource and its Ref/GetAtt
    path.write_text(text)


def test_renaming_the_database_exits_3_and_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["build", "--env", "prod", "--params", str(PARAMS), "--out", str(out), "--no-lint"]) == 0
    edited = tmp_path / "edited"
    shutil.copytree(out / "prod", edited)
    _rename_database(edited)
    args = ["diff", "--env", "prod", "--params", str(PARAMS), "--compare-to", str(out / "prod"), "--out", str(edited)]
    code, stdout, err = run(capsys, *args)
    assert code == 3, stdout + err
    assert "root/DataStack/Database (AWS::RDS::DBInstance) would be deleted" in err
    assert "renamed to MainDatabase" in stdout
    code, stdout, err = run(capsys, *args, "--allow-replace", "Database", "--format", "json")
    assert code == 0, err
    assert json.loads(stdout)["findings"][0]["allowed"] is True
    # a fresh build against the edited folder: the same rename the other way round
    code, _, err = run(capsys, "diff", "--env", "prod", "--params", str(PARAMS), "--compare-to", str(edited))
    assert code == 3 and "MainDatabase" in err


@pytest.mark.parametrize(
    ("against", "message"),
    [
        ("missing", "missing: not a build folder (out/ or out/<env>), an environment in {params}, or stack:NAME"),
        ("empty", "empty/dev; run kr-cfn build --env dev --out {tmp}/empty"),
        ("broken", "broken/root.yaml: not a CloudFormation template (expected a mapping with Resources)"),
        ("nochild", "nochild/network.yaml: not found"),
        ("stack:", "--compare-to stack:: expected stack:NAME, the deployed root stack's name"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], against: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "root.yaml").write_text("just: text\n")
    (tmp_path / "nochild").mkdir()
    (tmp_path / "nochild" / "root.yaml").write_text(
        "Resources:\n  NetworkStack:\n    Type: AWS::CloudFormation::Stack\n"
        "    Properties:\n      TemplateURL: ./network.yaml\n"
    )
    target = against if against.startswith("stack:") else str(tmp_path / against)
    code, _, err = run(capsys, "diff", "--env", "dev", "--params", str(PARAMS), "--compare-to", target)
    assert code == 2
    assert err.strip().endswith(message.format(tmp=tmp_path, params=PARAMS)) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's server; boto3 reaches it through AWS_ENDPOINT_URL with dummy credentials."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with aws_endpoint.local_endpoint() as url, pytest.MonkeyPatch.context() as mp:
        aws_endpoint.point_boto3_at(mp, url, REGION)
        yield url


def _child(bucket_name: str) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "DataBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket_name}},
            "AppLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}},
        },
        "Outputs": {"DataBucketName": {"Value": {"Ref": "DataBucket"}}},
    }


def _root(url: str) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"DataStack": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": url}}},
    }


@pytest.fixture(scope="module")
def deployed(endpoint: str) -> str:
    """Root stack kr-diff with one nested stack (bucket kr-diff-data, a log group) on the local endpoint."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="kr-diff-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="kr-diff-artifacts", Key="data.json", Body=json.dumps(_child("kr-diff-data")).encode())
    cfn = boto3.client("cloudformation", region_name=REGION)
    url = f"https://s3.{REGION}.amazonaws.com/kr-diff-artifacts/data.json"
    cfn.create_stack(StackName="kr-diff", TemplateBody=json.dumps(_root(url)))
    cfn.get_waiter("stack_create_complete").wait(StackName="kr-diff", WaiterConfig={"Delay": 1})
    return "kr-diff"


def test_against_a_deployed_stack(deployed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    build = tmp_path / "build"
    build.mkdir()
    (build / "root.json").write_text(json.dumps(_root("./data.json")))
    (build / "data.json").write_text(json.dumps(_child("kr-diff-data")))
    args = ["diff", "--env", "dev", "--params", str(PARAMS), "--compare-to", "stack:kr-diff", "--out", str(build)]
    code, out, err = run(capsys, *args)
    assert code == 0 and "no changes" in out, out + err  # S3 TemplateURL vs ./data.json: the content counts

    (build / "data.json").write_text(json.dumps(_child("kr-diff-data-renamed")))
    code, out, err = run(capsys, *args)
    assert code == 3, out + err
    assert "root/DataStack/DataBucket (AWS::S3::Bucket) would be replaced" in err
    assert "BucketName (recreate)" in out

    code, _, err = run(capsys, "diff", "--env", "dev", "--params", str(PARAMS), "--compare-to", "stack:kr-nope")
    assert code == 2 and "stack kr-nope does not exist" in err


def test_cost_and_diagram_compare_to_a_deployed_stack_too(
    deployed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--compare-to stack:NAME`` means the same in cost and diagram as in diff (the stack of the test above)."""
    build = tmp_path / "out" / "dev"
    build.mkdir(parents=True)
    (build / "root.json").write_text(json.dumps(_root("./data.json")))
    child = _child("kr-diff-data")
    del child["Resources"]["AppLogGroup"]  # the deploy would delete it: the diagram draws it removed
    (build / "data.json").write_text(json.dumps(child))
    common = ["--env", "dev", "--params", str(PARAMS), "--out", str(tmp_path / "out"), "--compare-to", "stack:kr-diff"]
    code, out, err = run(capsys, "cost", *common, "--format", "json")
    assert code == 0 and json.loads(out)["compare_to"]["env"] == "stack kr-diff", err
    code, out, err = run(capsys, "diagram", *common)
    assert code == 0, err
    marked = {line.split()[-1]: line.split()[1] for line in out.splitlines() if line.lstrip().startswith("class ")}
    assert marked == {"removed": "data_AppLogGroup"}, out  # the bucket matches: same stack name, deployed or built
    code, _, err = run(capsys, "diagram", *common[:-1], "stack:kr-nope")
    assert code == 2 and "stack kr-nope does not exist" in err


def test_forecast_code_never_imports_stacks() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import kr_cfn.changes.diffcmd, kr_cfn.changes.forecast, kr_cfn.trees, kr_cfn.changes.schemas\n"
        "bad = sorted(m for m in sys.modules if m == 'stacks' or m.startswith('stacks.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_turning_deletion_protection_off_exits_3_until_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An in-place change that takes a protection away blocks like a replacement (issue 21, item 1)."""
    out = tmp_path / "out"
    assert main(["build", "--env", "prod", "--params", str(PARAMS), "--out", str(out), "--no-lint"]) == 0
    edited = tmp_path / "edited"
    shutil.copytree(out / "prod", edited)
    path = edited / "data.yaml"
    template = trees.parse(path.read_text(), str(path))
    assert template["Resources"]["Database"]["Properties"]["DeletionProtection"] is True
    template["Resources"]["Database"]["Properties"]["DeletionProtection"] = False
    path.write_text(json.dumps(template))
    args = ["diff", "--env", "prod", "--params", str(PARAMS), "--against", str(out / "prod"), "--build", str(edited)]
    code, stdout, err = run(capsys, *args)
    assert code == 3, stdout + err
    line = (
        "guard: root/DataStack/Database (AWS::RDS::DBInstance): protection taken away in place: "
        "DeletionProtection true -> false (turned off): BLOCKED"
    )
    assert line in stdout
    fate = "would be updated, losing a protection: DeletionProtection true -> false (turned off)"
    assert f"{fate}; pass --allow-replace Database" in err
    code, stdout, err = run(capsys, *args, "--allow-replace", "Database")
    assert code == 0, err
    assert line.replace("BLOCKED", "allowed by --allow-replace") in stdout
