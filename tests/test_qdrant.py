"""Qdrant's storage choices (efs | ebs | external) and its snapshot job, as templates.

What exists and what does not for each choice, the policies, the attachment, the alarm; every
choice for every environment built lint-clean and checkov-clean; the host's user data checked
with ``bash -n`` and shellcheck.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import stacks
from kr_cfn import config, qdrant
from kr_cfn.cli import main
from tests.conftest import ENVS, PARAMS, load_env, resources_of_type, write_params
from tests.test_checkov import _checkov, _failures

STORAGES = ("efs", "ebs", "external")


def _params(env: str, storage: str | None, **qdrant_keys: Any) -> dict[str, Any]:
    data = yaml.safe_load((PARAMS / f"{env}.yaml").read_text()) or {}
    spec = data.setdefault("services", {}).setdefault("qdrant", {}) or {}
    data["services"]["qdrant"] = spec
    if storage is not None:
        spec["storage"] = storage
    spec.update(qdrant_keys)
    return data


def _cfg(tmp_path: Path, env: str, storage: str | None, **qdrant_keys: Any) -> config.EnvConfig:
    return config.load(write_params(tmp_path, env, yaml.safe_dump(_params(env, storage, **qdrant_keys))))


def _built(tmp_path: Path, env: str, storage: str | None, **keys: Any) -> dict[str, dict[str, Any]]:
    return {n: t.to_dict() for n, t in stacks.build_all(_cfg(tmp_path, env, storage, **keys)).items()}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def _errors(tmp_path: Path, text: str, env: str = "dev") -> list[str]:
    path = write_params(tmp_path, env, text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return [line[len(f"{path}: ") :] for line in str(exc.value).splitlines()]


# --------------------------------------------------------------------------- the choice


def test_prod_defaults_to_ebs_and_the_others_to_efs() -> None:
    """Termination protection (prod) picks block storage; the rest keep the plan's EFS."""
    storages = {}
    for env in ENVS:
        plan = config.qdrant_plan(load_env(env))
        assert plan is not None
        storages[env] = plan.storage
        assert plan.storage == ("ebs" if load_env(env).deploy.termination_protection else "efs")
    assert storages["prod"] == "ebs"


def test_unknown_storage(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  qdrant:\n    storage: nfs\n") == [
        "services.qdrant.storage: input should be 'efs', 'ebs' or 'external', got 'nfs'"
    ]


def test_storage_only_on_qdrant(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  redis:\n    storage: ebs\n") == [
        "services.redis.storage: only the qdrant service has a storage choice"
    ]


def test_the_snapshot_jobs_name_is_reserved(tmp_path: Path) -> None:
    text = "services:\n  qdrant-snapshots:\n    image: busybox:1.36.1\n    port: 8080\n"
    assert (
        "services.qdrant-snapshots: 'qdrant-snapshots' is reserved for the Qdrant snapshot job (its security group)"
        in (_errors(tmp_path, text))
    )


def test_qdrant_secret_only_with_external(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    secrets:\n      QDRANT_API_KEY: {secret: QdrantSecretArn, key: api_key}\n"
    assert _errors(tmp_path, text) == [
        "services.backend.secrets.QDRANT_API_KEY.secret: QdrantSecretArn exists only with qdrant.storage: external"
    ]


def test_ebs_needs_one_data_volume(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  qdrant:\n    storage: ebs\n    volumes: []\n") == [
        "services.qdrant.volumes: storage ebs needs exactly one volume: the data path (e.g. /qdrant/storage)"
    ]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("snapshots: {time: '25:00'}", "services.qdrant.snapshots.time: string should match pattern"),
        ("ebs: {volume_gb: 0}", "services.qdrant.ebs.volume_gb: input should be greater than or equal to 1, got 0"),
        ("ebs: {instance_type: T3}", "services.qdrant.ebs.instance_type: string should match pattern"),
        (
            "ebs: {snapshot_retention_days: 1001}",
            "services.qdrant.ebs.snapshot_retention_days: input should be less than or equal to 1000, got 1001",
        ),
    ],
)
def test_bad_qdrant_settings(tmp_path: Path, keys: str, message: str) -> None:
    (error,) = _errors(tmp_path, f"services:\n  qdrant:\n    {keys}\n")
    assert error.startswith(message)


# --------------------------------------------------------------------------- efs


def test_efs_keeps_the_file_system_and_the_fargate_task(tmp_path: Path) -> None:
    t = _built(tmp_path, "prod", "efs")
    assert resources_of_type(t["data"], "AWS::EFS::FileSystem")
    assert not resources_of_type(t["data"], "AWS::EC2::Volume")
    assert not resources_of_type(t["ecs"], "AWS::AutoScaling::AutoScalingGroup")
    task = t["ecs"]["Resources"]["QdrantTaskDefinition"]["Properties"]
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    (volume,) = task["Volumes"]
    assert volume["EFSVolumeConfiguration"]["TransitEncryption"] == "ENABLED"


# --------------------------------------------------------------------------- ebs


def test_ebs_volume_lives_in_the_data_stack_and_survives_it(tmp_path: Path) -> None:
    t = _built(tmp_path, "staging", "ebs")
    assert not resources_of_type(t["data"], "AWS::EFS::FileSystem"), "no EFS left behind"
    assert "FileSystemSecurityGroupId" not in t["data"]["Parameters"]
    (volume,) = resources_of_type(t["data"], "AWS::EC2::Volume").values()
    props = volume["Properties"]
    assert (props["VolumeType"], props["Encrypted"], props["Size"]) == ("gp3", True, 20)
    assert (volume["DeletionPolicy"], volume["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
    # The volume sits in the AZ of the first app subnet, where the host's group launches.
    assert props["AvailabilityZone"] == {"Fn::Select": [0, {"Fn::GetAZs": {"Ref": "AWS::Region"}}]}
    group = t["ecs"]["Resources"][qdrant.HOST_GROUP]["Properties"]
    assert group["VPCZoneIdentifier"] == [{"Fn::Select": [0, {"Ref": "AppSubnetIds"}]}]
    assert t["data"]["Outputs"]["QdrantVolumeId"]["Value"] == {"Ref": "QdrantVolume"}
    assert t["root"]["Resources"]["EcsStack"]["Properties"]["Parameters"]["QdrantVolumeId"] == {
        "Fn::GetAtt": ["DataStack", "Outputs.QdrantVolumeId"]
    }


def test_ebs_volume_snapshots_daily_with_the_params_retention(tmp_path: Path) -> None:
    t = _built(tmp_path, "dev", "ebs", ebs={"snapshot_retention_days": 14}, snapshots={"time": "02:30"})
    (policy,) = resources_of_type(t["data"], "AWS::DLM::LifecyclePolicy").values()
    details = policy["Properties"]["PolicyDetails"]
    (schedule,) = details["Schedules"]
    assert schedule["CreateRule"] == {"Interval": 24, "IntervalUnit": "HOURS", "Times": ["02:30"]}
    assert schedule["RetainRule"] == {"Count": 14}
    tag = {"Key": "kr-cfn:qdrant-volume", "Value": "knowledgerouter-dev"}
    assert details["TargetTags"] == [tag]
    assert tag in t["data"]["Resources"]["QdrantVolume"]["Properties"]["Tags"]
    statements = _statements(t["data"]["Resources"]["QdrantVolumeSnapshotRole"])
    by_action = {tuple(s["Action"]): s for s in statements}
    assert by_action[("ec2:DeleteSnapshot",)]["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/kr-cfn:qdrant-volume": "knowledgerouter-dev"}
    }
    wildcards = [s["Action"] for s in statements if s["Resource"] == ["*"]]
    assert wildcards == [["ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeSnapshots"]]


def test_volume_from_an_ebs_snapshot(tmp_path: Path) -> None:
    """The runbook's way back from an EBS snapshot: a new volume made from it."""
    t = _built(tmp_path, "prod", "ebs", ebs={"snapshot_id": "snap-0123456789abcdef0"})
    # SnapshotId alone updates in place (no new volume): the restored volume is a new resource.
    restored = "QdrantVolumeSnap0123456789abcdef0"
    assert "QdrantVolume" not in t["data"]["Resources"]
    volume = t["data"]["Resources"][restored]
    assert volume["Properties"]["SnapshotId"] == "snap-0123456789abcdef0"
    assert (volume["DeletionPolicy"], volume["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
    assert t["data"]["Outputs"]["QdrantVolumeId"]["Value"] == {"Ref": restored}
    (create, *_) = _statements(t["data"]["Resources"]["QdrantVolumeSnapshotRole"])
    assert create["Resource"][0]["Fn::Sub"].endswith(f"volume/${{{restored}}}")
    assert "SnapshotId" not in _built(tmp_path, "prod", "ebs")["data"]["Resources"]["QdrantVolume"]["Properties"]
    assert _errors(tmp_path, "services:\n  qdrant:\n    ebs: {snapshot_id: vol-1}\n")[0].startswith(
        "services.qdrant.ebs.snapshot_id: string should match pattern"
    )


def test_delete_with_stack_lets_the_volume_go(tmp_path: Path) -> None:
    data = _params("dev", "ebs")
    data["data"]["delete_with_stack"] = True
    t = stacks.build_all(config.load(write_params(tmp_path, "dev", yaml.safe_dump(data))))["data"].to_dict()
    volume = t["Resources"]["QdrantVolume"]
    assert (volume["DeletionPolicy"], volume["UpdateReplacePolicy"]) == ("Delete", "Delete")


def test_ebs_host_is_one_ecs_optimised_instance_as_a_capacity_provider(tmp_path: Path) -> None:
    t = _built(tmp_path, "staging", "ebs", ebs={"instance_type": "m6i.large"})["ecs"]
    r = t["Resources"]
    group = r[qdrant.HOST_GROUP]["Properties"]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == ("1", "1", "1")
    data = r[qdrant.HOST_TEMPLATE]["Properties"]["LaunchTemplateData"]
    assert data["ImageId"] == ("{{resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id}}")
    assert data["InstanceType"] == "m6i.large"
    assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    provider = r[qdrant.CAPACITY_PROVIDER]["Properties"]["AutoScalingGroupProvider"]
    assert provider["AutoScalingGroupArn"] == {"Ref": qdrant.HOST_GROUP}
    assert {"Ref": qdrant.CAPACITY_PROVIDER} in r["ClusterCapacityProviders"]["Properties"]["CapacityProviders"]
    # Nothing may connect to the host itself; it only calls AWS APIs.
    sg = r[qdrant.HOST_SG]["Properties"]
    assert "SecurityGroupIngress" not in sg
    assert [(e["FromPort"], e["CidrIp"]) for e in sg["SecurityGroupEgress"]] == [(443, "0.0.0.0/0")]


def test_qdrant_on_ebs_runs_on_the_host_with_a_host_volume_and_the_same_name(tmp_path: Path) -> None:
    t = _built(tmp_path, "staging", "ebs")["ecs"]
    r = t["Resources"]
    task = r["QdrantTaskDefinition"]["Properties"]
    assert task["RequiresCompatibilities"] == ["EC2"] and task["NetworkMode"] == "awsvpc"
    assert task["Volumes"] == [{"Name": "host-qdrant", "Host": {"SourcePath": "/data/qdrant"}}]
    (container,) = task["ContainerDefinitions"]
    assert {"SourceVolume": "host-qdrant", "ContainerPath": "/qdrant/storage", "ReadOnly": False} in container[
        "MountPoints"
    ]
    service = r["QdrantService"]["Properties"]
    assert service["CapacityProviderStrategy"] == [{"CapacityProvider": {"Ref": "QdrantCapacityProvider"}, "Weight": 1}]
    assert "PlatformVersion" not in service
    # Placed only once the host has mounted the volume (the user data sets the attribute).
    assert service["PlacementConstraints"] == [
        {"Type": "memberOf", "Expression": "attribute:kr-cfn.qdrant-volume == mounted"}
    ]
    assert r["QdrantDiscovery"]["Properties"]["Name"] == "qdrant"
    backend = {
        e["Name"]: e["Value"]
        for e in r["BackendTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"]
    }
    assert backend["QDRANT_URL"] == "http://qdrant.knowledgerouter-staging.local:6333"
    # No EFS permission left on the task role.
    assert not any("elasticfilesystem" in str(s) for s in _statements(r["QdrantTaskRole"]))


def test_host_role_attaches_only_this_volume_to_tagged_instances(tmp_path: Path) -> None:
    t = _built(tmp_path, "staging", "ebs")["ecs"]
    statements = _statements(t["Resources"][qdrant.HOST_ROLE])
    attach = [s for s in statements if s["Action"] == ["ec2:AttachVolume"]]
    assert attach[0]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:volume/${QdrantVolumeId}"}
    ]
    assert attach[1]["Condition"] == {"StringEquals": {"aws:ResourceTag/kr-cfn:qdrant-host": "knowledgerouter-staging"}}
    tags = t["Resources"][qdrant.HOST_GROUP]["Properties"]["Tags"]
    assert {"Key": "kr-cfn:qdrant-host", "Value": "knowledgerouter-staging", "PropagateAtLaunch": True} in tags
    wildcards = [s["Action"] for s in statements if s["Resource"] == ["*"]]
    assert wildcards == [["ecs:DiscoverPollEndpoint", "ec2:DescribeVolumes"]]
    cluster_only = [s for s in statements if s["Resource"] == [{"Fn::GetAtt": ["Cluster", "Arn"]}]]
    assert "ecs:RegisterContainerInstance" in cluster_only[0]["Action"]
    assert "ecs:CreateCluster" not in str(statements)


def _user_data(t: dict[str, Any]) -> str:
    """The host's user data with the template's substitutions filled in."""
    joined = t["Resources"][qdrant.HOST_TEMPLATE]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    delimiter, (header, body) = joined["Fn::Join"]
    header = header["Fn::Sub"]
    for name, value in (("${QdrantVolumeId}", "vol-0123456789abcdef0"), ("${Cluster}", "c"), ("${AWS::Region}", "r")):
        header = header.replace(name, value)
    return header + delimiter + body


def test_user_data_attaches_formats_only_when_empty_and_then_joins(tmp_path: Path) -> None:
    script = _user_data(_built(tmp_path, "staging", "ebs")["ecs"])
    assert script.startswith("#!/bin/bash\nVOLUME_ID=vol-0123456789abcdef0\nCLUSTER=c\nREGION=r\nMOUNT=/data/qdrant\n")
    assert "set -euo pipefail" in script
    # mkfs only in the branch where blkid found nothing (exit 2)
    before = script.split("mkfs.xfs", 1)[0]
    assert before.rstrip().splitlines()[-2].strip() == "2)"
    # the cluster is joined only after the mount
    assert (
        script.index('mount "$MOUNT"') < script.index("ECS_CLUSTER=$CLUSTER") < script.index("ECS_INSTANCE_ATTRIBUTES")
    )
    assert len(base64.b64encode(script.encode())) < 16384, "EC2 user data is limited to 16 KB"


def test_user_data_passes_bash_n_and_shellcheck(tmp_path: Path) -> None:
    path = tmp_path / "user-data.sh"
    path.write_text(_user_data(_built(tmp_path, "staging", "ebs")["ecs"]))
    subprocess.run(["bash", "-n", str(path)], check=True)
    _shellcheck(path)


def test_snapshot_script_passes_bash_n_and_shellcheck(tmp_path: Path) -> None:
    path = tmp_path / "snapshots.sh"
    path.write_text("#!/bin/bash\n" + qdrant.script("qdrant_snapshots.sh"))
    subprocess.run(["bash", "-n", str(path)], check=True)
    _shellcheck(path)


def _shellcheck(path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        message = "shellcheck not installed (apt-get install shellcheck; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run([shellcheck, "--shell=bash", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


# --------------------------------------------------------------------------- external


def test_external_has_no_qdrant_service_and_reads_url_and_key_from_a_secret(tmp_path: Path) -> None:
    t = _built(tmp_path, "prod", "external")
    ecs = t["ecs"]["Resources"]
    assert not [k for k in ecs if k.startswith("Qdrant")], "no qdrant service, host or snapshot job"
    assert not resources_of_type(t["data"], "AWS::EFS::FileSystem")
    assert not resources_of_type(t["data"], "AWS::EC2::Volume")
    secret = t["data"]["Resources"]["QdrantSecret"]
    assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")
    generate = secret["Properties"]["GenerateSecretString"]
    assert set(json.loads(generate["SecretStringTemplate"])) == {"url"} and generate["GenerateStringKey"] == "api_key"
    (backend,) = ecs["BackendTaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {e["Name"] for e in backend["Environment"]}
    assert not environment & {"QDRANT_HOST", "QDRANT_PORT", "QDRANT_URL"}
    secrets = {s["Name"]: s["ValueFrom"] for s in backend["Secrets"]}
    assert secrets["QDRANT_URL"] == {"Fn::Join": [":", [{"Ref": "QdrantSecretArn"}, "url", "", ""]]}
    assert secrets["QDRANT_API_KEY"] == {"Fn::Join": [":", [{"Ref": "QdrantSecretArn"}, "api_key", "", ""]]}
    read = [s for s in _statements(ecs["ExecutionRole"]) if s["Action"] == ["secretsmanager:GetSecretValue"]]
    assert {"Ref": "QdrantSecretArn"} in read[0]["Resource"]
    alarms = resources_of_type(t["monitoring"], "AWS::CloudWatch::Alarm")
    assert "QdrantSnapshotMissingAlarm" not in alarms


# --------------------------------------------------------------------------- snapshot job


@pytest.mark.parametrize("storage", ["efs", "ebs"])
def test_snapshot_job_scheduled_daily_at_the_params_time(tmp_path: Path, storage: str) -> None:
    t = _built(tmp_path, "dev", storage, snapshots={"time": "04:15"})
    r = t["ecs"]["Resources"]
    schedule = r[qdrant.SNAPSHOT_SCHEDULE]["Properties"]
    assert schedule["ScheduleExpression"] == "cron(15 4 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["Cluster", "Arn"]}
    assert target["EcsParameters"]["TaskDefinitionArn"] == {"Ref": qdrant.SNAPSHOT_TASK}
    (container,) = r[qdrant.SNAPSHOT_TASK]["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["QDRANT_URL"] == "http://qdrant.knowledgerouter-dev.local:6333"
    assert env["BUCKET"] == {"Ref": "BackupsBucketName"} and env["PREFIX"] == "qdrant"
    assert env["KR_QDRANT_SCRIPT"].endswith(qdrant.script("qdrant_snapshots.sh"))
    assert container["Command"] == ["snapshot"] and container["ReadonlyRootFilesystem"] is True
    # The job may write and read snapshots under qdrant/ of the backups bucket, nothing else.
    (statement,) = _statements(r[qdrant.SNAPSHOT_TASK_ROLE])
    assert statement["Resource"] == [{"Fn::Sub": "${BackupsBucketArn}/qdrant/*"}]
    assert set(statement["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"}
    # The scheduler may run only this family, in this cluster, and pass only the job's roles to ECS.
    run, passrole = _statements(r[qdrant.SNAPSHOT_SCHEDULER_ROLE])
    assert run["Action"] == ["ecs:RunTask"]
    assert run["Resource"] == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:"
            "task-definition/knowledgerouter-dev-qdrant-snapshots:*"
        }
    ]
    assert run["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["Cluster", "Arn"]}}}
    assert passrole["Resource"] == [
        {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
        {"Fn::GetAtt": [qdrant.SNAPSHOT_TASK_ROLE, "Arn"]},
    ]
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


@pytest.mark.parametrize("env", ENVS)
def test_missing_snapshot_alarms_on_the_alerts_topic(env: str) -> None:
    import stacks as built_stacks

    t = {n: x.to_dict() for n, x in built_stacks.build_all(load_env(env)).items()}
    metric_filter = t["ecs"]["Resources"][qdrant.SNAPSHOT_METRIC_FILTER]["Properties"]
    assert metric_filter["FilterPattern"] == '"kr-qdrant: snapshot ok"'
    (transform,) = metric_filter["MetricTransformations"]
    alarm = t["monitoring"]["Resources"]["QdrantSnapshotMissingAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (transform["MetricNamespace"], transform["MetricName"])
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["Statistic"]) == ("LessThanThreshold", 1, "Sum")
    assert alarm["TreatMissingData"] == "breaching", "a job that never runs must alarm too"
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 25 * 3600
    # The line the alarm counts is the one the script prints on success.
    assert 'log "snapshot ok:' in qdrant.script("qdrant_snapshots.sh")


# --------------------------------------------------------------------------- every choice, every env


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every env with every other storage choice than its own, built by ``kr-cfn build`` (cfn-lint on).

    The shipped choices are built, linted and scanned by test_build_cli / test_checkov already.
    """
    root = tmp_path_factory.mktemp("qdrant-variants")
    outs = {}
    for storage in STORAGES:
        params = root / "params" / storage
        params.mkdir(parents=True)
        for env in ENVS:
            plan = config.qdrant_plan(load_env(env))
            if plan is not None and plan.storage != storage:
                (params / f"{env}.yaml").write_text(yaml.safe_dump(_params(env, storage)))
        outs[storage] = root / "out" / storage
        assert main(["build", "--params", str(params), "--out", str(outs[storage])]) == 0, storage
    return outs


def test_every_choice_builds_lint_clean_for_every_env(variants: dict[str, Path]) -> None:
    built = {(storage, env) for storage, out in variants.items() for env in ENVS if (out / env / "ecs.yaml").is_file()}
    shipped = {(p.storage, env) for env in ENVS if (p := config.qdrant_plan(load_env(env)))}
    assert built | shipped == {(s, e) for s in STORAGES for e in ENVS}


def test_every_choice_is_checkov_clean_for_every_env(variants: dict[str, Path]) -> None:
    checkov = _checkov()
    if checkov is None:
        message = "checkov not found: set KR_CFN_CHECKOV or create .venv-checkov (see README)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = next(iter(variants.values())).parent
    proc = subprocess.run(
        [str(checkov), "-d", str(root), "--framework", "cloudformation", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(proc.stdout)
    assert not _failures("variants", report), "\n".join(_failures("variants", report))
    summary = (report if isinstance(report, list) else [report])[0]["summary"]
    assert summary["parsing_errors"] == 0 and summary["failed"] == 0 and summary["passed"] > 0


def test_storage_owner_is_the_user_data_owner_the_access_point_user_and_the_containers(tmp_path: Path) -> None:
    """One params value: the host's chown, the access point's POSIX user, the task definition's User."""
    keys = {"storage_owner": "2000:3000", "user": "2000:3000"}
    (tmp_path / "ebs").mkdir()
    (tmp_path / "efs").mkdir()
    ebs = _built(tmp_path / "ebs", "staging", "ebs", **keys)
    assert "\nOWNER=2000:3000\n" in _user_data(ebs["ecs"])
    container = ebs["ecs"]["Resources"]["QdrantTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["User"] == "2000:3000"
    efs = _built(tmp_path / "efs", "staging", "efs", **keys)["data"]["Resources"]["QdrantAccessPoint"]["Properties"]
    assert efs["PosixUser"] == {"Uid": "2000", "Gid": "3000"}
    assert efs["RootDirectory"]["CreationInfo"] == {"OwnerUid": "2000", "OwnerGid": "3000", "Permissions": "0750"}
