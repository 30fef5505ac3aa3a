"""Property tests of the data stack."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.cli import main
from stacks import data
from tests.conftest import ENVS, PARAMS, built, load_env, resources_of_type, write_params

STATEFUL = {
    "AWS::RDS::DBInstance": "Snapshot",
    "AWS::ElastiCache::ReplicationGroup": "Snapshot",
    "AWS::EFS::FileSystem": "Retain",
    "AWS::S3::Bucket": "Retain",
    "AWS::SecretsManager::Secret": "Retain",
    "AWS::Logs::LogGroup": "Retain",
}


def _data(env: str) -> dict[str, Any]:
    return built(env)["data"]


def _db(env: str) -> dict[str, Any]:
    return _data(env)["Resources"][data.DATABASE]["Properties"]


def test_multi_az_per_env() -> None:
    assert _db("prod")["MultiAZ"] is True
    assert _db("dev")["MultiAZ"] is False
    assert _db("staging")["MultiAZ"] is False
    assert _db("prod")["DeletionProtection"] is True
    assert _db("dev")["DeletionProtection"] is False


@pytest.mark.parametrize("env", ENVS)
def test_database_settings(env: str) -> None:
    db = _db(env)
    assert (db["Engine"], db["DBInstanceClass"], db["AllocatedStorage"], db["StorageType"]) == (
        "postgres",
        "db.t3.micro",
        "20",
        "gp3",
    )
    # The major version only, with automatic minor upgrades: RDS creates its default minor
    # (kr_cfn.config.data.DB_MAJOR_VERSION), so no deprecated minor can block a new environment.
    assert db["EngineVersion"] == "15"
    assert db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False
    assert db["BackupRetentionPeriod"] == 7 and db["AutoMinorVersionUpgrade"] is True
    assert db["EnableCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    groups = resources_of_type(_data(env), "AWS::Logs::LogGroup")
    assert sorted(g["Properties"]["LogGroupName"] for g in groups.values()) == [
        f"/aws/rds/instance/{load_env(env).names('postgres')}/{kind}" for kind in ("postgresql", "upgrade")
    ]
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {30}
    assert _data(env)["Resources"][data.DATABASE]["DependsOn"] == sorted(groups)
    assert db["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in db
    params = _data(env)["Resources"][data.DB_PARAMETER_GROUP]["Properties"]
    assert params["Parameters"] == {"rds.force_ssl": "1"} and params["Family"] == "postgres15"
    subnets = _data(env)["Resources"][data.DB_SUBNET_GROUP]["Properties"]["SubnetIds"]
    assert subnets == {"Ref": "AppSubnetIds"}


@pytest.mark.parametrize("env", ENVS)
def test_master_secret_is_rds_managed_without_a_rotation_schedule(env: str) -> None:
    # RDS rotates its own secret; CloudFormation has no documented interval for it (README).
    assert not resources_of_type(_data(env), "AWS::SecretsManager::RotationSchedule")
    assert _data(env)["Outputs"]["DbSecretArn"]["Value"] == {
        "Fn::GetAtt": [data.DATABASE, "MasterUserSecret.SecretArn"]
    }


@pytest.mark.parametrize("env", ENVS)
def test_only_the_network_groups_guard_the_data(env: str) -> None:
    """DB, file system and cache sit behind the network's groups that admit only the services using them."""
    t = _data(env)
    assert not resources_of_type(t, "AWS::EC2::SecurityGroup")
    assert not resources_of_type(t, "AWS::EC2::SecurityGroupIngress")
    assert _db(env)["VPCSecurityGroups"] == [{"Ref": "DatabaseSecurityGroupId"}]
    targets = resources_of_type(t, "AWS::EFS::MountTarget")
    assert len(targets) == (load_env(env).network.az_count if _on_efs(env) else 0)
    for i, target in enumerate(targets.values()):
        assert target["Properties"]["SecurityGroups"] == [{"Ref": "FileSystemSecurityGroupId"}]
        assert target["Properties"]["SubnetId"] == {"Fn::Select": [i, {"Ref": "AppSubnetIds"}]}
    for cache in resources_of_type(t, "AWS::ElastiCache::ReplicationGroup").values():
        assert cache["Properties"]["SecurityGroupIds"] == [{"Ref": "CacheSecurityGroupId"}]
    # ... and those groups admit only the groups of the services that use them, on their port.
    net = built(env)["network"]
    elasticache = load_env(env).data.redis == "elasticache"
    for group, port, clients in (
        ("DatabaseSecurityGroup", 5432, ["Backend"]),
        ("FileSystemSecurityGroup", 2049, ["Qdrant"] if _on_efs(env) else []),
        ("CacheSecurityGroup", 6379, ["Backend"] if elasticache else []),
    ):
        assert "SecurityGroupIngress" not in net["Resources"][group]["Properties"]
        ingress = [
            r["Properties"]
            for r in resources_of_type(net, "AWS::EC2::SecurityGroupIngress").values()
            if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == group
        ]
        assert [(i["SourceSecurityGroupId"], i["FromPort"], i["ToPort"]) for i in ingress] == [
            ({"Fn::GetAtt": [f"{c}ServiceSecurityGroup", "GroupId"]}, port, port) for c in clients
        ]


@pytest.mark.parametrize("env", ENVS)
def test_parameters_are_wired_from_the_network(env: str) -> None:
    params = built(env)["root"]["Resources"]["DataStack"]["Properties"]["Parameters"]
    assert params == {name: {"Fn::GetAtt": ["NetworkStack", f"Outputs.{name}"]} for name in _data(env)["Parameters"]}


@pytest.mark.parametrize("env", ENVS)
def test_file_system_for_qdrant(env: str) -> None:
    t = _data(env)["Resources"]
    if not _on_efs(env):
        assert not resources_of_type(_data(env), "AWS::EFS::FileSystem")
        return
    fs = t[data.FILE_SYSTEM]["Properties"]
    assert fs["Encrypted"] is True and fs["BackupPolicy"] == {"Status": "ENABLED"}
    assert (fs["PerformanceMode"], fs["ThroughputMode"]) == ("generalPurpose", "bursting")
    ap = t[data.ACCESS_POINT]["Properties"]
    assert ap["RootDirectory"]["Path"] == "/qdrant/storage"
    assert ap["PosixUser"] == {"Uid": "1000", "Gid": "1000"}


@pytest.mark.parametrize("env", ENVS)
def test_bucket_lifecycle_rules(env: str) -> None:
    t = _data(env)["Resources"]
    (tiering,) = t[data.DATA_BUCKET]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert tiering["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
        {"StorageClass": "GLACIER_IR", "TransitionInDays": 90},
    ]
    assert tiering["ExpirationInDays"] == 365 and tiering["Status"] == "Enabled"
    (retention,) = t[data.BACKUPS_BUCKET]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert retention["ExpirationInDays"] == 7 and retention["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}


@pytest.mark.parametrize("env", ENVS)
def test_buckets_are_private_versioned_encrypted_and_tls_only(env: str) -> None:
    t = _data(env)
    buckets = resources_of_type(t, "AWS::S3::Bucket")
    assert sorted(buckets) == sorted([data.DATA_BUCKET, data.BACKUPS_BUCKET, data.ACCESS_LOGS_BUCKET])
    policies = {p["Properties"]["Bucket"]["Ref"]: p for p in resources_of_type(t, "AWS::S3::BucketPolicy").values()}
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["BucketName"]["Fn::Sub"].endswith("-${AWS::AccountId}-${AWS::Region}")
        assert props["BucketName"]["Fn::Sub"].startswith(load_env(env).names.prefix + "-")
        if logical_id != data.ACCESS_LOGS_BUCKET:
            assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": data.ACCESS_LOGS_BUCKET}
            assert bucket["DependsOn"] == [f"{data.ACCESS_LOGS_BUCKET}Policy"]
        deny = policies[logical_id]["Properties"]["PolicyDocument"]["Statement"][0]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}


@pytest.mark.parametrize("env", ENVS)
def test_deletion_policies_on_every_stateful_resource(env: str) -> None:
    resources = _data(env)["Resources"]
    stateful = {k: v for k, v in resources.items() if v["Type"] in STATEFUL}
    assert len(stateful) >= 9
    for logical_id, r in stateful.items():
        expected = STATEFUL[r["Type"]]
        assert (r.get("DeletionPolicy"), r.get("UpdateReplacePolicy")) == (expected, expected), logical_id


def test_delete_with_stack_relaxes_every_policy(tmp_path: Path) -> None:
    text = "data:\n  delete_with_stack: true\n  deletion_protection: false\n  redis: elasticache\n"
    cfg = config.load(write_params(tmp_path, "dev", text))
    resources = data.build(config.data_slice(cfg)).to_dict()["Resources"]
    stateful = [r for r in resources.values() if r["Type"] in STATEFUL]
    assert len(stateful) == 12
    assert {(r["DeletionPolicy"], r["UpdateReplacePolicy"]) for r in stateful} == {("Delete", "Delete")}


def test_redis_on_elasticache_only_when_chosen() -> None:
    assert load_env("prod").data.redis == "elasticache"
    prod = _data("prod")
    (cache,) = resources_of_type(prod, "AWS::ElastiCache::ReplicationGroup").values()
    props = cache["Properties"]
    assert (props["Engine"], props["CacheNodeType"], props["NumCacheClusters"]) == ("redis", "cache.t3.micro", 1)
    assert props["EngineVersion"].startswith("7.")
    assert props["AtRestEncryptionEnabled"] is True and props["TransitEncryptionEnabled"] is True
    assert {"RedisEndpointAddress", "RedisEndpointPort", "CacheSecurityGroupId"} <= set(prod["Outputs"]) | set(
        prod["Parameters"]
    )
    for env in ("dev", "staging"):
        assert load_env(env).data.redis == "fargate"
        t = _data(env)
        assert not [r for r in t["Resources"].values() if r["Type"].startswith("AWS::ElastiCache::")]
        assert not {"RedisEndpointAddress", "RedisEndpointPort"} & set(t["Outputs"])
        assert "CacheSecurityGroupId" not in t["Parameters"]


def _storage(env: str) -> str:
    plan = config.qdrant_plan(load_env(env))
    assert plan is not None
    return plan.storage


def _on_efs(env: str) -> bool:
    return _storage(env) == "efs"


CONTRACT = {
    "DbEndpointAddress",
    "DbEndpointPort",
    "DbName",
    "DbSecretArn",
    "DbInstanceId",
    "DataBucketName",
    "DataBucketArn",
    "BackupsBucketName",
    "AccessLogsBucketName",
    "BackupsBucketArn",
    "OpenAiSecretArn",
    "ConfluenceSecretArn",
    "JiraSecretArn",
    "GrafanaAdminSecretArn",
}


@pytest.mark.parametrize("env", ENVS)
def test_outputs_follow_the_contract(env: str) -> None:
    redis = {"RedisEndpointAddress", "RedisEndpointPort"} if load_env(env).data.redis == "elasticache" else set()
    qdrant = {
        "efs": {"FileSystemId", "FileSystemArn", "QdrantAccessPointId", "QdrantAccessPointArn"},
        "ebs": {"QdrantVolumeId"},
        "external": {"QdrantSecretArn"},
    }[_storage(env)]
    assert set(_data(env)["Outputs"]) == CONTRACT | redis | qdrant


@pytest.mark.parametrize("env", ENVS)
def test_secrets_are_generated_never_given(env: str) -> None:
    secrets = resources_of_type(_data(env), "AWS::SecretsManager::Secret")
    prefix = load_env(env).names.prefix
    assert {s["Properties"]["Name"] for s in secrets.values()} == {
        f"/{prefix}/{n}" for n in ("openai-api-key", "confluence-credentials", "jira-credentials", "grafana-admin")
    }
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" in secret["Properties"]
    for name, keys in (("ConfluenceSecret", {"base_url", "email"}), ("JiraSecret", {"base_url", "email"})):
        generate = secrets[name]["Properties"]["GenerateSecretString"]
        assert (
            set(json.loads(generate["SecretStringTemplate"])) == keys and generate["GenerateStringKey"] == "api_token"
        )
    grafana = secrets["GrafanaAdminSecret"]["Properties"]["GenerateSecretString"]
    assert json.loads(grafana["SecretStringTemplate"]) == {"username": "admin"}
    assert grafana["GenerateStringKey"] == "password"


_SECRET_KEYS = re.compile(r"(?i)\"(MasterUserPassword|SecretString|AuthToken|Password|api_?token|api_?key)\"\s*:")
_SECRET_VALUES = re.compile(r"(?i)(sk-[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY)")


def test_no_secret_value_or_password_in_any_output_file(tmp_path: Path) -> None:
    for fmt in ("json", "yaml"):
        out = tmp_path / fmt
        assert main(["build", "--params", str(PARAMS), "--out", str(out), "--no-lint", "--format", fmt]) == 0
        files = sorted(p for p in out.rglob("*") if p.is_file())
        assert len(files) == len(ENVS) * (len(stacks.CHILDREN) + 3)  # + root, bootstrap, parameters.json
        for path in files:
            text = path.read_text(encoding="utf-8")
            if fmt == "yaml":
                text = re.sub(r"(?m)^(\s*)([A-Za-z_]+):", r'\1"\2":', text)
            assert not _SECRET_KEYS.findall(text), path
            assert not _SECRET_VALUES.findall(text), path
            assert "resolve:secretsmanager" not in text and "resolve:ssm-secure" not in text, path
