"""The offline replacement forecast (``kr-cfn diff``): a corpus of dangerous and safe edits to a prod build.

Each edit is applied to a copy of the templates the project's own build renders for prod; the
forecast of build -> edited copy must block every dangerous edit (naming the resource at risk)
and flag none of the safe ones.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kr_cfn import config, trees
from kr_cfn.changes import diffcmd
from kr_cfn.changes.forecast import forecast
from kr_cfn.changes.review import Review
from kr_cfn.cli import build_env_files
from tests.conftest import PARAMS

REGION = "eu-central-1"
Edit = Callable[[trees.Tree], None]
DANGEROUS: list[tuple[str, Edit, str]] = []
SAFE: list[tuple[str, Edit]] = []


_BUILDS: dict[str | None, trees.Tree] = {}


def _prod(tmp: Path, storage: str | None) -> trees.Tree:
    """prod's templates, built once per test process (callers deep-copy before editing)."""
    if storage not in _BUILDS:
        data = yaml.safe_load((PARAMS / "prod.yaml").read_text())
        if storage is not None:
            data.setdefault("services", {}).setdefault("qdrant", {})["storage"] = storage
        (tmp / "prod.yaml").write_text(yaml.safe_dump(data))
        _BUILDS[storage] = trees.from_build(build_env_files(config.load(tmp / "prod.yaml"), "json")[0], "prod")
    return _BUILDS[storage]


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> trees.Tree:
    """prod's templates as ``kr-cfn build`` renders them, parsed, with Qdrant on EFS.

    prod keeps Qdrant on an EBS volume (services.qdrant.storage defaults to ebs there); the corpus
    puts it on EFS so the file-system edits have a file system to change. The volume has its own
    cases below (prod_ebs).
    """
    return _prod(tmp_path_factory.mktemp("prod-efs"), "efs")


@pytest.fixture(scope="module")
def prod_ebs(tmp_path_factory: pytest.TempPathFactory) -> trees.Tree:
    """prod's templates as shipped (Qdrant on its EBS volume)."""
    return _prod(tmp_path_factory.mktemp("prod-ebs"), None)


def test_restoring_the_qdrant_volume_from_a_snapshot_is_blocked_until_allowed(
    prod_ebs: trees.Tree, tmp_path: Path
) -> None:
    """services.qdrant.ebs.snapshot_id makes a new volume resource; the old volume goes (runbook, a)."""
    data = yaml.safe_load((PARAMS / "prod.yaml").read_text())
    data.setdefault("services", {}).setdefault("qdrant", {})["ebs"] = {"snapshot_id": "snap-0123456789abcdef0"}
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    new = trees.from_build(build_env_files(config.load(tmp_path / "prod.yaml"), "json")[0], "prod")
    r = review(prod_ebs, new)
    assert "QdrantVolume" in {f.logical_id for f in r.blocked}
    assert not review(prod_ebs, new, ("QdrantVolume",)).blocked


def test_resizing_the_qdrant_volume_is_safe(prod_ebs: trees.Tree) -> None:
    new = copy.deepcopy(prod_ebs)
    props(new, "DataStack", "QdrantVolume")["Size"] = 100
    assert not review(prod_ebs, new).blocked


def _stack(tree: trees.Tree, stack: str) -> trees.Tree:
    return tree if stack == "root" else tree.children[stack]


def props(tree: trees.Tree, stack: str, rid: str) -> dict[str, Any]:
    """The Properties of one resource of the root or of a nested stack."""
    return _stack(tree, stack).template["Resources"][rid].setdefault("Properties", {})


def rename(tree: trees.Tree, stack: str, old: str, new: str) -> None:
    """Rename a logical id and every reference to it in that template (as a code change would)."""
    t = _stack(tree, stack)
    text = json.dumps(t.template)
    text = re.sub(rf'"Ref": "{old}"', f'"Ref": "{new}"', text)
    text = re.sub(rf'"Fn::GetAtt": \["{old}"', f'"Fn::GetAtt": ["{new}"', text)
    text = text.replace("${" + old + "}", "${" + new + "}").replace("${" + old + ".", "${" + new + ".")
    t.template = json.loads(text)
    t.template["Resources"][new] = t.template["Resources"].pop(old)
    if old in t.children:
        t.children[new] = t.children.pop(old)


def dangerous(expected: str) -> Callable[[Edit], Edit]:
    def register(edit: Edit) -> Edit:
        DANGEROUS.append((edit.__name__, edit, expected))
        return edit

    return register


def safe(edit: Edit) -> Edit:
    SAFE.append((edit.__name__, edit))
    return edit


# --- dangerous edits: each must be blocked, naming the resource ---------------------------------


@dangerous("Database")
def db_identifier_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["DBInstanceIdentifier"] = "knowledgerouter-postgres-2"


@dangerous("Database")
def db_kms_key_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["KmsKeyId"] = "alias/knowledgerouter-data"


@dangerous("Database")
def db_storage_encryption_toggled(t: trees.Tree) -> None:
    p = props(t, "DataStack", "Database")
    p["StorageEncrypted"] = not p.get("StorageEncrypted", False)


@dangerous("Database")
def db_name_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["DBName"] = "kr"


@dangerous("Database")
def db_master_username_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["MasterUsername"] = "admin2"


@dangerous("Database")
def db_subnet_group_name_literal(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["DBSubnetGroupName"] = "some-other-group"


@dangerous("QdrantFileSystem")
def efs_performance_mode_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "QdrantFileSystem")["PerformanceMode"] = "maxIO"


@dangerous("QdrantFileSystem")
def efs_encryption_toggled(t: trees.Tree) -> None:
    props(t, "DataStack", "QdrantFileSystem")["Encrypted"] = False


@dangerous("QdrantFileSystem")
def efs_kms_key_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "QdrantFileSystem")["KmsKeyId"] = {"Fn::Sub": "arn:${AWS::Partition}:kms:::key/new"}


@dangerous("DataBucket")
def bucket_renamed(t: trees.Tree) -> None:
    props(t, "DataStack", "DataBucket")["BucketName"] = "knowledgerouter-data-v2"


@dangerous("RedisReplicationGroup")
def redis_at_rest_encryption_toggled(t: trees.Tree) -> None:
    p = props(t, "DataStack", "RedisReplicationGroup")
    p["AtRestEncryptionEnabled"] = not p.get("AtRestEncryptionEnabled", False)


@dangerous("RedisReplicationGroup")
def redis_group_id_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "RedisReplicationGroup")["ReplicationGroupId"] = "knowledgerouter-cache"


@dangerous("BackendLogGroup")
def log_group_renamed(t: trees.Tree) -> None:
    props(t, "EcsStack", "BackendLogGroup")["LogGroupName"] = "/ecs/knowledgerouter/api"


@dangerous("OpenAiSecret")
def secret_renamed(t: trees.Tree) -> None:
    p = props(t, "DataStack", "OpenAiSecret")
    p["Name"] = {"Fn::Sub": "${AWS::StackName}/openai"} if not isinstance(p.get("Name"), dict) else "openai"


@dangerous("Database")
def vpc_cidr_changed(t: trees.Tree) -> None:
    props(t, "NetworkStack", "Vpc")["CidrBlock"] = "10.1.0.0/16"


@dangerous("Database")
def db_logical_id_renamed(t: trees.Tree) -> None:
    rename(t, "DataStack", "Database", "MainDatabase")


@dangerous("DataBucket")
def bucket_logical_id_renamed(t: trees.Tree) -> None:
    rename(t, "DataStack", "DataBucket", "DocumentsBucket")


@dangerous("BackupsBucket")
def stateful_resource_removed(t: trees.Tree) -> None:
    del _stack(t, "DataStack").template["Resources"]["BackupsBucket"]


@dangerous("QdrantFileSystem")
def file_system_removed(t: trees.Tree) -> None:
    res = _stack(t, "DataStack").template["Resources"]
    for rid in ("QdrantFileSystem", "QdrantMountTarget1", "QdrantMountTarget2", "QdrantAccessPoint"):
        res.pop(rid, None)


@dangerous("Database")
def nested_data_stack_removed(t: trees.Tree) -> None:
    del t.template["Resources"]["DataStack"]
    del t.children["DataStack"]


@dangerous("Database")
def nested_data_stack_renamed(t: trees.Tree) -> None:
    rename(t, "root", "DataStack", "StorageStack")


@dangerous("RedisReplicationGroup")
def stateful_type_changed(t: trees.Tree) -> None:
    _stack(t, "DataStack").template["Resources"]["RedisReplicationGroup"]["Type"] = "AWS::ElastiCache::ServerlessCache"


@dangerous("Database")
def literal_parameter_from_root_changed(t: trees.Tree) -> None:
    # The root passes a literal; the child uses it in a create-only property (see _with_literal_param).
    t.template["Resources"]["DataStack"]["Properties"]["Parameters"]["DbIdentifier"] = "knowledgerouter-db-2"


# --- safe edits: none may be flagged ---------------------------------------------------------------


@safe
def image_tag_default_changed(t: trees.Tree) -> None:
    t.template["Parameters"]["BackendImageTag"]["Default"] = "3f2c1ab"


@safe
def public_image_tag_changed(t: trees.Tree) -> None:
    container = props(t, "EcsStack", "QdrantTaskDefinition")["ContainerDefinitions"][0]
    container["Image"] = "qdrant/qdrant:v1.99.0"


@safe
def desired_count_changed(t: trees.Tree) -> None:
    props(t, "EcsStack", "FrontendService")["DesiredCount"] = 5


@safe
def alarm_threshold_changed(t: trees.Tree) -> None:
    props(t, "MonitoringStack", "BackendHighCpuAlarm")["Threshold"] = 90.0


@safe
def log_retention_changed(t: trees.Tree) -> None:
    props(t, "EcsStack", "BackendLogGroup")["RetentionInDays"] = 30


@safe
def tags_changed(t: trees.Tree) -> None:
    for stack, rid in (("DataStack", "Database"), ("DataStack", "DataBucket"), ("DataStack", "QdrantFileSystem")):
        p = props(t, stack, rid)
        key = "FileSystemTags" if rid == "QdrantFileSystem" else "Tags"
        p[key] = [*p.get(key, []), {"Key": "CostCenter", "Value": "42"}]
    t.template["Resources"]["DataStack"]["Properties"]["Tags"].append({"Key": "Team", "Value": "rag"})


@safe
def scaling_schedule_changed(t: trees.Tree) -> None:
    actions = props(t, "EcsStack", "BackendScalableTarget")["ScheduledActions"]
    actions[0]["Schedule"] = "cron(0 6 ? * MON-FRI *)"
    actions[0]["ScalableTargetAction"]["MinCapacity"] = 6


@safe
def new_service_added(t: trees.Tree) -> None:
    res = _stack(t, "EcsStack").template["Resources"]
    res["WorkerLogGroup"] = copy.deepcopy(res["QdrantLogGroup"])
    res["WorkerLogGroup"]["Properties"]["LogGroupName"] = "/ecs/knowledgerouter/worker"
    res["WorkerTaskDefinition"] = copy.deepcopy(res["QdrantTaskDefinition"])
    res["WorkerTaskDefinition"]["Properties"]["Family"] = "knowledgerouter-worker"
    res["WorkerService"] = copy.deepcopy(res["QdrantService"])
    res["WorkerService"]["Properties"]["ServiceName"] = "worker"
    res["WorkerService"]["Properties"]["TaskDefinition"] = {"Ref": "WorkerTaskDefinition"}


@safe
def db_instance_class_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["DBInstanceClass"] = "db.t3.large"


@safe
def db_backup_retention_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["BackupRetentionPeriod"] = 14


@safe
def db_storage_grown(t: trees.Tree) -> None:
    props(t, "DataStack", "Database")["AllocatedStorage"] = "100"


@safe
def bucket_lifecycle_changed(t: trees.Tree) -> None:
    p = props(t, "DataStack", "BackupsBucket")
    p["LifecycleConfiguration"] = {"Rules": [{"Id": "expire", "Status": "Enabled", "ExpirationInDays": 90}]}


@safe
def efs_throughput_mode_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "QdrantFileSystem")["ThroughputMode"] = "elastic"


@safe
def redis_node_type_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "RedisReplicationGroup")["CacheNodeType"] = "cache.t3.medium"


@safe
def task_size_changed(t: trees.Tree) -> None:
    p = props(t, "EcsStack", "BackendTaskDefinition")
    p["Cpu"], p["Memory"] = "2048", "4096"


@safe
def deployment_configuration_changed(t: trees.Tree) -> None:
    props(t, "EcsStack", "BackendService")["DeploymentConfiguration"]["MinimumHealthyPercent"] = 50


@safe
def dashboard_changed(t: trees.Tree) -> None:
    p = props(t, "MonitoringStack", "Dashboard")
    p["DashboardBody"] = json.dumps({"widgets": []}) if isinstance(p["DashboardBody"], str) else {"Fn::Sub": "{}"}


@safe
def new_alarm_added(t: trees.Tree) -> None:
    res = _stack(t, "MonitoringStack").template["Resources"]
    res["BackendVeryHighCpuAlarm"] = copy.deepcopy(res["BackendHighCpuAlarm"])
    res["BackendVeryHighCpuAlarm"]["Properties"]["Threshold"] = 95.0
    res["BackendVeryHighCpuAlarm"]["Properties"].pop("AlarmName", None)


@safe
def secret_description_changed(t: trees.Tree) -> None:
    props(t, "DataStack", "OpenAiSecret")["Description"] = "OpenAI API key of the backend"


@safe
def literal_parameter_from_root_unchanged(t: trees.Tree) -> None:
    t.template["Resources"]["DataStack"]["Properties"]["Tags"].append({"Key": "Reviewed", "Value": "yes"})


def _with_literal_param(tree: trees.Tree) -> trees.Tree:
    """prod with the database identifier passed from the root as a literal parameter."""
    t = copy.deepcopy(tree)
    data = t.children["DataStack"].template
    data.setdefault("Parameters", {})["DbIdentifier"] = {"Type": "String"}
    data["Resources"]["Database"]["Properties"]["DBInstanceIdentifier"] = {"Ref": "DbIdentifier"}
    t.template["Resources"]["DataStack"]["Properties"]["Parameters"]["DbIdentifier"] = "knowledgerouter-postgres"
    return t


def review(old: trees.Tree, new: trees.Tree, allowed: tuple[str, ...] = ()) -> Review:
    """The forecast as ``kr-cfn diff`` reviews it."""
    return diffcmd.make_review(old, new, REGION, "knowledgerouter", "test", allowed)


def _base(prod: trees.Tree, name: str) -> trees.Tree:
    return _with_literal_param(prod) if name.startswith("literal_parameter") else prod


def test_corpus_sizes() -> None:
    assert len(DANGEROUS) >= 15
    assert len(SAFE) >= 15


@pytest.mark.parametrize(("name", "edit", "expected"), DANGEROUS, ids=[d[0] for d in DANGEROUS])
def test_dangerous_edit_is_blocked(prod: trees.Tree, name: str, edit: Edit, expected: str) -> None:
    old = _base(prod, name)
    new = copy.deepcopy(old)
    edit(new)
    r = review(old, new)
    blocked = {f.logical_id for f in r.blocked}
    assert expected in blocked, f"{name}: blocked {sorted(blocked)}"
    allowed = review(old, new, tuple(blocked))
    assert not allowed.blocked and allowed.findings


@pytest.mark.parametrize(("name", "edit"), SAFE, ids=[s[0] for s in SAFE])
def test_safe_edit_is_not_flagged(prod: trees.Tree, name: str, edit: Edit) -> None:
    old = _base(prod, name)
    new = copy.deepcopy(old)
    edit(new)
    r = review(old, new)
    assert r.findings == [], f"{name}: {r.findings}"
    if name != "image_tag_default_changed":
        assert r.has_changes, f"{name}: the edit was not seen"


def test_no_change_is_empty(prod: trees.Tree) -> None:
    r = review(prod, copy.deepcopy(prod))
    assert not r.has_changes and [s.path for s in r.stacks] == ["root"]


def test_replacement_forecast_and_paths(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    db_kms_key_changed(new)
    props(new, "DataStack", "Database")["BackupRetentionPeriod"] = 3
    public_image_tag_changed(new)
    stacks = {s.path: s for s in forecast(prod, new, REGION)}
    db = next(c for c in stacks["root/DataStack"].changes if c.logical_id == "Database")
    assert db.replacement == "True"
    assert {p.name: p.requires_recreation for p in db.properties} == {
        "KmsKeyId": "Always",
        "BackupRetentionPeriod": "Never",
    }
    task = next(c for c in stacks["root/EcsStack"].changes if c.logical_id == "QdrantTaskDefinition")
    assert task.replacement == "True" and [p.name for p in task.properties] == ["ContainerDefinitions[qdrant].Image"]
    # the service follows its replaced task definition: a reference that may change, not a replacement
    service = next(c for c in stacks["root/EcsStack"].changes if c.logical_id == "QdrantService")
    assert service.replacement == "False" and [p.name for p in service.properties] == ["TaskDefinition"]
    root = next(c for c in stacks["root"].changes if c.logical_id == "DataStack")
    assert root.action == "Modify" and root.nested_change_set_id


def test_conditional_when_value_unknown(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    props(new, "DataStack", "Database")["DBInstanceIdentifier"] = {"Fn::ImportValue": "shared-db-name"}
    db = next(c for s in forecast(prod, new, REGION) for c in s.changes if c.logical_id == "Database")
    assert db.replacement == "Conditional"


def test_rename_is_reported_as_delete_and_create(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    db_logical_id_renamed(new)
    data = next(s for s in forecast(prod, new, REGION) if s.path == "root/DataStack")
    rows = {(c.action, c.logical_id): c for c in data.changes}
    assert rows[("Remove", "Database")].properties[0].name == "renamed to MainDatabase"
    assert rows[("Add", "MainDatabase")].properties[0].name == "renamed from Database"


def test_removed_nested_stack_lists_every_resource(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    nested_data_stack_removed(new)
    stacks = {s.path: s for s in forecast(prod, new, REGION)}
    removed = {c.logical_id for c in stacks["root/DataStack"].changes if c.action == "Remove"}
    assert removed == set(prod.children["DataStack"].template["Resources"])
    r = review(prod, new)
    assert {"Database", "DataBucket", "QdrantFileSystem", "RedisReplicationGroup"} <= {f.logical_id for f in r.blocked}
    # the guard reads the removed stack from the previous build: each finding names the stack that goes
    db = next(f for f in r.blocked if f.logical_id == "Database")
    assert db.nested_stack == "DataStack" and db.allow_id == "DataStack" and db.policy_action == "Snapshot"


def test_markdown_and_json_share_the_review_format(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    db_identifier_changed(new)
    r = review(prod, new)
    data = json.loads(r.to_json())
    assert data["change_set_type"] == "FORECAST" and data["console_url"] == ""
    assert data["blocked"][0]["logical_id"] == "Database"
    md = diffcmd.render_markdown(r)
    assert "`root/DataStack/Database` (AWS::RDS::DBInstance) replaced (True): **blocked**" in md
    assert "console" not in diffcmd.render_text(r)


def test_disagreements_with_the_change_set(prod: trees.Tree, tmp_path: Path) -> None:
    new = copy.deepcopy(prod)
    db_identifier_changed(new)
    fc = json.loads(review(prod, new).to_json())
    cs = copy.deepcopy(fc)
    assert diffcmd.disagreements(fc, cs) == []
    cs["stacks"][1]["changes"][0]["replacement"] = "Conditional"
    assert diffcmd.disagreements(fc, cs) == [
        "`root/DataStack/Database`: forecast Modify (True), change set Modify (Conditional)"
    ]
    path = tmp_path / "review.json"
    path.write_text(json.dumps(cs))
    assert "the change set is the authority" in diffcmd.comparison_markdown(fc, path)
    assert "no AWS access" in diffcmd.comparison_markdown(fc, tmp_path / "missing.json")


def test_compare_command(prod: trees.Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = copy.deepcopy(prod)
    bucket_renamed(new)
    fc = tmp_path / "forecast.json"
    fc.write_text(review(prod, new).to_json())
    cs = json.loads(fc.read_text())
    cs["stacks"][1]["changes"] = []
    (tmp_path / "review.json").write_text(json.dumps(cs))
    assert diffcmd._compare_main([str(fc), str(tmp_path / "review.json")]) == 0
    out = capsys.readouterr().out
    assert "`root/DataStack/DataBucket`: forecast Modify (True), not in the change set" in out
    (tmp_path / "bad.json").write_text("[]")
    assert diffcmd._compare_main([str(tmp_path / "bad.json"), str(tmp_path / "review.json")]) == 2


def test_comparison_ignores_what_a_change_set_shows_differently(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    nested_data_stack_removed(new)
    alarm_threshold_changed(new)
    fc = json.loads(review(prod, new).to_json())
    # The change set: the removed stack as one row, TemplateURL on the parent of a changed child.
    cs = {
        "stacks": [
            {
                "path": "root",
                "changes": [
                    {"action": "Remove", "logical_id": "DataStack", "type": "AWS::CloudFormation::Stack"},
                    {
                        "action": "Modify",
                        "logical_id": "MonitoringStack",
                        "type": "AWS::CloudFormation::Stack",
                        "replacement": "False",
                        "properties": [{"name": "TemplateURL", "requires_recreation": "Never"}],
                    },
                ],
            },
            {
                "path": "root/MonitoringStack",
                "changes": [
                    {
                        "action": "Modify",
                        "logical_id": "BackendHighCpuAlarm",
                        "type": "AWS::CloudWatch::Alarm",
                        "replacement": "False",
                    }
                ],
            },
        ]
    }
    lines = diffcmd.disagreements(fc, cs)
    assert all("root/DataStack/" not in line and "MonitoringStack`" not in line for line in lines), lines
    assert "`root/MonitoringStack/BackendHighCpuAlarm`" not in " ".join(lines)


def test_literal_parameter_inside_sub(prod: trees.Tree) -> None:
    def variant(value: str) -> trees.Tree:
        t = copy.deepcopy(prod)
        data = t.children["DataStack"].template
        data.setdefault("Parameters", {})["Suffix"] = {"Type": "String"}
        data["Resources"]["DataBucket"]["Properties"]["BucketName"] = {"Fn::Sub": "${AWS::StackName}-${Suffix}"}
        t.template["Resources"]["DataStack"]["Properties"]["Parameters"]["Suffix"] = value
        return t

    same = review(variant("docs"), variant("docs"))
    assert not same.has_changes
    changed = forecast(variant("docs"), variant("documents"), REGION)
    bucket = next(c for s in changed for c in s.changes if c.logical_id == "DataBucket")
    assert bucket.replacement == "True" and bucket.properties[0].name == "BucketName"


def test_removed_nested_stack_is_allowed_by_its_logical_id(prod: trees.Tree) -> None:
    new = copy.deepcopy(prod)
    nested_data_stack_removed(new)
    assert review(prod, new).blocked
    r = review(prod, new, ("DataStack",))
    assert r.findings and not r.blocked
    assert len({(f.path, f.logical_id) for f in r.findings}) == len(r.findings)
