"""The guard's and the forecast's rules one by one (issue 21, item 5).

Each test here was written against a mutant that survived the rest of the suite: a rule that could
be changed (a type dropped from a list, ``continue`` turned into ``break``) with every test green.
The lists below are written out, not read from the code, so that dropping an entry fails a test.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kr_cfn import trees
from kr_cfn.changes import guard
from kr_cfn.changes.forecast import forecast
from kr_cfn.changes.review import GuardFinding, ResourceChange, StackChanges, Weakening

REGION = "eu-central-1"
STATEFUL = [
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::RDS::GlobalCluster",
    "AWS::DocDB::DBCluster",
    "AWS::DocDBElastic::Cluster",
    "AWS::Neptune::DBCluster",
    "AWS::Redshift::Cluster",
    "AWS::RedshiftServerless::Namespace",
    "AWS::DynamoDB::Table",
    "AWS::DynamoDB::GlobalTable",
    "AWS::Cassandra::Table",
    "AWS::Timestream::Table",
    "AWS::ElastiCache::CacheCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::ServerlessCache",
    "AWS::MemoryDB::Cluster",
    "AWS::OpenSearchService::Domain",
    "AWS::Elasticsearch::Domain",
    "AWS::OpenSearchServerless::Collection",
    "AWS::S3::Bucket",
    "AWS::S3Express::DirectoryBucket",
    "AWS::EFS::FileSystem",
    "AWS::FSx::FileSystem",
    "AWS::FSx::Volume",
    "AWS::EC2::Volume",
    "AWS::Backup::BackupVault",
    "AWS::ECR::Repository",
    "AWS::CodeCommit::Repository",
    "AWS::Logs::LogGroup",
    "AWS::SQS::Queue",
    "AWS::Kinesis::Stream",
    "AWS::MSK::Cluster",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::IdentityPool",
    "AWS::KMS::Key",
    "AWS::KMS::ReplicaKey",
    "AWS::SecretsManager::Secret",
    "AWS::Route53::HostedZone",
]
STATELESS = ["AWS::SNS::Topic", "AWS::Lambda::Function", "AWS::IAM::Role", "AWS::ECS::Service"]
# PolicyAction (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChange.html):
# does a Modify with this action (Replacement False) lose the resource, and does it take a snapshot?
POLICY_ACTIONS = {
    "Delete": (False, False),
    "Retain": (False, False),
    "Snapshot": (False, True),
    "ReplaceAndDelete": (True, False),
    "ReplaceAndRetain": (True, False),
    "ReplaceAndSnapshot": (True, True),
}


def _one(change: ResourceChange, allowed: tuple[str, ...] = ()) -> list[GuardFinding]:
    return guard.findings([StackChanges("root", "s", "cs", [change])], allowed)


def test_the_stateful_list_is_the_one_reviewed() -> None:
    assert sorted(guard.STATEFUL_TYPES) == sorted(STATEFUL)


@pytest.mark.parametrize("type_", STATEFUL)
def test_every_stateful_type_blocks_when_removed_or_replaced(type_: str) -> None:
    assert guard.stateful(type_)
    for action, replacement, shown in (
        ("Remove", None, None),
        ("Modify", "True", "True"),
        ("Modify", "Conditional", "Conditional"),
        ("Dynamic", None, "Conditional"),
    ):
        (finding,) = _one(ResourceChange(action, "X", type_, replacement))
        assert (finding.logical_id, finding.type, finding.allowed, finding.replacement) == ("X", type_, False, shown)
    assert _one(ResourceChange("Modify", "X", type_, "False")) == []
    assert _one(ResourceChange("Add", "X", type_, None)) == []
    assert _one(ResourceChange("Remove", "X", type_, None), ("X",))[0].allowed
    held = guard.held_in({"Resources": {"X": {"Type": type_}}}, "root/Data", lambda *_: {"Resources": {}})
    assert held == [guard.Held("root/Data", "X", type_)]


@pytest.mark.parametrize("type_", STATELESS)
def test_a_stateless_type_passes(type_: str) -> None:
    assert not guard.stateful(type_)
    assert _one(ResourceChange("Remove", "X", type_, None)) == []
    assert guard.held_in({"Resources": {"X": {"Type": type_}}}, "root/Data", lambda *_: {}) == []


@pytest.mark.parametrize(("policy", "expected"), POLICY_ACTIONS.items())
def test_every_policy_action(policy: str, expected: tuple[bool, bool]) -> None:
    replaces, snapshot = expected
    change = ResourceChange("Modify", "X", "AWS::DynamoDB::Table", "False", policy_action=policy)
    assert guard.at_risk(change) is replaces
    assert bool(_one(change)) is replaces
    # only stores of data take snapshots: a snapshot makes any type stateful
    assert guard.stateful("AWS::Example::Store", policy) is snapshot
    assert bool(_one(ResourceChange("Remove", "X", "AWS::Example::Store", None, policy_action=policy))) is snapshot
    (finding,) = _one(ResourceChange("Remove", "X", "AWS::S3::Bucket", None, policy_action=policy))
    assert finding.policy_action == policy


def test_snapshot_policy_of_a_type_outside_the_list_in_a_removed_nested_stack() -> None:
    """held_in: a Snapshot DeletionPolicy or UpdateReplacePolicy makes any type a store of data."""
    template = {
        "Resources": {
            "Store": {"Type": "AWS::Example::Store", "DeletionPolicy": "Snapshot"},
            "Other": {"Type": "AWS::Example::Store", "UpdateReplacePolicy": "Snapshot"},
            "Kept": {"Type": "AWS::Example::Store", "DeletionPolicy": "Retain"},
            "Plain": {"Type": "AWS::Example::Store"},
        }
    }
    old = trees.Tree("root", {"Resources": {"Data": {"Type": guard.NESTED_STACK, "Properties": {}}}})
    old.children["Data"] = trees.Tree("data", template)
    new = trees.Tree("root", {"Resources": {}})
    stacks = forecast(old, new, REGION)
    found = guard.findings(stacks, [], guard.template_contents(lambda path: template if path == "root/Data" else None))
    assert [(f.logical_id, f.policy_action, f.nested_stack) for f in found] == [
        ("Store", "Snapshot", "Data"),
        ("Other", None, "Data"),
    ]


def test_an_allowed_unreadable_nested_stack_does_not_hide_a_later_removal() -> None:
    changes = [
        ResourceChange("Remove", "Logs", guard.NESTED_STACK, None),
        ResourceChange("Remove", "Database", "AWS::RDS::DBInstance", None),
    ]
    found = guard.findings([StackChanges("root", "s", "cs", changes)], ["Logs"], lambda s, c: "unreadable")
    assert [(f.logical_id, f.allowed, f.reason) for f in found] == [
        ("Logs", True, "unreadable"),
        ("Database", False, None),
    ]
    second = StackChanges("root/Data", "d", "cs2", [ResourceChange("Remove", "Table", "AWS::DynamoDB::Table", None)])
    found = guard.findings([StackChanges("root", "s", "cs", changes[:1]), second], ["Logs"], lambda s, c: "x")
    assert [f.logical_id for f in found] == ["Logs", "Table"]


def test_a_nested_stack_without_a_template_is_blocked_whole() -> None:
    contents = guard.template_contents({}.get)
    change = ResourceChange("Remove", "Gone", guard.NESTED_STACK, None)
    (finding,) = guard.findings([StackChanges("root", "s", "cs", [change])], [], contents)
    assert (finding.logical_id, finding.reason, finding.allowed) == ("Gone", "root/Gone: no template", False)
    inner = {"Resources": {"Deeper": {"Type": guard.NESTED_STACK}}}
    contents = guard.template_contents({"root/Gone": inner}.get)
    (finding,) = guard.findings([StackChanges("root", "s", "cs", [change])], ["Gone"], contents)
    assert (finding.reason, finding.allowed) == ("root/Gone/Deeper: root/Gone/Deeper: no template", True)


def test_lifted_ids_leave_protections_out() -> None:
    weak = (Weakening("DeletionProtection", "true", "false", "turned off"),)
    changes = [
        ResourceChange("Modify", "Db", "AWS::RDS::DBInstance", "False", weakened=weak),
        ResourceChange("Modify", "Role", "AWS::IAM::Role", "True", weakened=weak),
        ResourceChange("Remove", "Bucket", "AWS::S3::Bucket", None),
    ]
    stack = StackChanges("root", "s", "cs", changes)
    found = guard.findings([stack], ["Db", "Role", "Bucket"])
    assert [(f.logical_id, f.type, f.weakened == weak) for f in found] == [
        ("Db", "AWS::RDS::DBInstance", True),
        ("Role", "AWS::IAM::Role", True),
        ("Bucket", "AWS::S3::Bucket", False),
    ]
    assert found[0].what == "protection taken away in place: DeletionProtection true -> false (turned off)"
    assert found[1].what == "replaced (True); DeletionProtection true -> false (turned off)"
    from kr_cfn.changes.review import Review

    review = Review("s", "cs", "id", "UPDATE", REGION, stacks=[stack], findings=found)
    assert guard.lifted_ids(review) == ["Bucket", "Role"]
    # a nested stack at risk that holds nothing stateful is lifted; another resource at risk is not
    quiet = [
        ResourceChange("Remove", "Quiet", guard.NESTED_STACK, None),
        ResourceChange("Remove", "T", "AWS::SNS::Topic", None),
    ]
    assert guard.lifted_ids(
        Review("s", "cs", "id", "UPDATE", REGION, stacks=[StackChanges("root", "s", "c", quiet)])
    ) == ["Quiet"]


# --- the forecast ------------------------------------------------------------------------------------


def _tree(resources: dict[str, Any], parameters: dict[str, Any] | None = None) -> trees.Tree:
    template: dict[str, Any] = {"Resources": resources}
    if parameters is not None:
        template["Parameters"] = parameters
    return trees.Tree("t", template)


def _db(**props: Any) -> dict[str, Any]:
    return {"Type": "AWS::RDS::DBInstance", "Properties": {"Engine": "postgres", **props}}


def _replacements(old: trees.Tree, new: trees.Tree) -> dict[str, str | None]:
    return {c.logical_id: c.replacement for s in forecast(old, new, REGION) for c in s.changes if c.action == "Modify"}


def test_an_added_resource_does_not_end_the_diff() -> None:
    """_diff goes on after an added resource: a database checked after it is still seen."""
    old = _tree({"Database": _db(DBName="kr")})
    new = _tree(
        {
            "AaaAdded": {"Type": "AWS::SNS::Topic"},
            "Database": _db(DBName="kr2"),
            "ZzzAdded": {"Type": "AWS::SNS::Topic"},
        }
    )
    stacks = forecast(old, new, REGION)
    assert sorted((c.action, c.logical_id, c.replacement) for c in stacks[0].changes) == [
        ("Add", "AaaAdded", None),
        ("Add", "ZzzAdded", None),
        ("Modify", "Database", "True"),
    ]
    assert [f.logical_id for f in guard.findings(stacks, [])] == ["Database"]


def test_a_changed_default_of_a_nested_parameter_feeds_a_create_only_property() -> None:
    """_child_params: a parameter the parent does not pass takes its literal default."""

    def build(default: str) -> trees.Tree:
        root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "data.json"}}})
        root.children["Data"] = _tree(
            {"Database": _db(DBName={"Ref": "DbName"})}, {"DbName": {"Type": "String", "Default": default}}
        )
        return root

    assert _replacements(build("kr"), build("kr")) == {}
    assert _replacements(build("kr"), build("knowledge"))["Database"] == "True"


def test_a_nested_parameter_without_a_literal_value_is_not_known() -> None:
    def build(default: Any, passed: Any = None) -> trees.Tree:
        props: dict[str, Any] = {"TemplateURL": "data.json"}
        if passed is not None:
            props["Parameters"] = {"DbName": passed}
        root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": props}})
        root.children["Data"] = _tree(
            {"Database": _db(DBName={"Ref": "DbName"}, Port={"Ref": "Port"})},
            {"DbName": {"Type": "String", "Default": default}, "Port": {"Type": "Number"}},
        )
        return root

    # passed by the parent wins over the default; an intrinsic default is not a value
    assert _replacements(build("a", "kr"), build("b", "kr")) == {}
    assert _replacements(build("a", "kr"), build("a", "kr2"))["Database"] == "True"
    assert _replacements(build({"Ref": "AWS::StackName"}), build({"Ref": "AWS::Region"})) == {}


def test_sub_references_order_the_diff() -> None:
    """A create-only property naming a replaced resource inside Fn::Sub may be replaced too."""
    vpc = {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}

    def build(cidr: str) -> trees.Tree:
        group = {
            "Type": "AWS::RDS::DBSubnetGroup",
            "Properties": {"DBSubnetGroupDescription": "d", "SubnetIds": [{"Fn::Sub": "${ZzzVpc}-a"}]},
        }
        db = _db(DBSubnetGroupName={"Fn::Sub": "${AaaGroup}"}, DBName={"Fn::Sub": "${ZzzVpc.CidrBlock}"})
        return _tree({"AaaGroup": group, "AaaDatabase": db, "ZzzVpc": {**vpc, "Properties": {"CidrBlock": cidr}}})

    got = _replacements(build("10.0.0.0/16"), build("10.1.0.0/16"))
    assert got == {"ZzzVpc": "True", "AaaGroup": "Conditional", "AaaDatabase": "Conditional"}


@pytest.mark.parametrize(
    ("group_type", "placed"),
    [
        ("AWS::RDS::DBSubnetGroup", ("AWS::RDS::DBInstance", "DBSubnetGroupName")),
        ("AWS::ElastiCache::SubnetGroup", ("AWS::ElastiCache::ReplicationGroup", "CacheSubnetGroupName")),
        ("AWS::DocDB::DBSubnetGroup", ("AWS::DocDB::DBCluster", "DBSubnetGroupName")),
    ],
)
def test_subnet_groups_follow_a_replaced_network(group_type: str, placed: tuple[str, str]) -> None:
    """_VPC_BOUND: a subnet group on a replaced network may be made anew, and what is placed in it replaced."""

    def build(cidr: str) -> trees.Tree:
        return _tree(
            {
                "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": cidr}},
                "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": cidr}},
                "Group": {"Type": group_type, "Properties": {"Description": "d", "SubnetIds": [{"Ref": "Subnet"}]}},
                "Store": {"Type": placed[0], "Properties": {placed[1]: {"Ref": "Group"}}},
            }
        )

    got = _replacements(build("10.0.0.0/16"), build("10.1.0.0/16"))
    assert got["Group"] == "Conditional" and got["Store"] == "Conditional"


def test_a_nested_stack_whose_child_template_is_gone() -> None:
    """_diff_nested: without the child's template only the stack's own properties are compared."""

    def build(tags: list[Any], child: bool) -> trees.Tree:
        root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x", "Tags": tags}}})
        if child:
            root.children["Data"] = _tree({"Database": _db()})
        return root

    tag = [{"Key": "a", "Value": "b"}]
    assert forecast(build([], True), build([], False), REGION)[0].changes == []
    (change,) = forecast(build([], True), build(tag, False), REGION)[0].changes
    assert (change.action, change.replacement, change.nested_change_set_id) == ("Modify", "False", None)
    assert [p.name for p in change.properties] == ["Tags"]


def test_prod_redis_forecast_when_the_network_is_replaced(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.test_forecast import _prod, props, vpc_cidr_changed

    prod = _prod(tmp_path_factory.mktemp("prod"), None)
    new = copy.deepcopy(prod)
    vpc_cidr_changed(new)
    assert props(new, "NetworkStack", "Vpc")["CidrBlock"] == "10.1.0.0/16"
    stacks = forecast(prod, new, REGION)
    data = {c.logical_id: c.replacement for s in stacks if s.path == "root/DataStack" for c in s.changes}
    assert data["RedisReplicationGroup"] == "Conditional" and data["Database"] == "Conditional"
    blocked = {f.logical_id for f in guard.findings(stacks, [])}
    assert {"RedisReplicationGroup", "Database"} <= blocked


def test_unreadable_nested_stack_finding_keeps_the_change() -> None:
    change = ResourceChange("Modify", "Data", guard.NESTED_STACK, "Conditional", policy_action="ReplaceAndDelete")
    (finding,) = guard.findings([StackChanges("root/App", "s", "cs", [change])], [], lambda s, c: "gone")
    assert finding == GuardFinding(
        "root/App", "Data", guard.NESTED_STACK, "Modify", "Conditional", False, "ReplaceAndDelete", reason="gone"
    )


def test_stack_policy_document() -> None:
    deny = {
        "Action": ["Update:Replace", "Update:Delete"],
        "Condition": {"StringEquals": {"ResourceType": ["AWS::CloudFormation::Stack", "AWS::S3::Bucket"]}},
        "Effect": "Deny",
        "Principal": "*",
        "Sid": "KeepStatefulResources",
    }
    allow = {
        "Action": ["Update:*"],
        "Effect": "Allow",
        "Principal": "*",
        "Resource": ["*"],
        "Sid": "UpdateEverythingElse",
    }
    types = ["AWS::S3::Bucket", "AWS::CloudFormation::Stack"]
    assert json.loads(guard.stack_policy(types)) == {"Statement": [allow, {**deny, "Resource": ["*"]}]}
    lifted = json.loads(guard.stack_policy(types, ["Db", "A"]))
    assert lifted == {"Statement": [allow, {**deny, "NotResource": ["LogicalResourceId/A", "LogicalResourceId/Db"]}]}
    default = json.loads(guard.stack_policy())["Statement"][1]["Condition"]["StringEquals"]["ResourceType"]
    assert default == sorted([*STATEFUL, guard.NESTED_STACK])


# --- the protections rule, kind by kind ----------------------------------------------------------------


def _w(type_: str, before: dict[str, Any], after: dict[str, Any], account: str | None = None) -> list[str]:
    return [w.text for w in guard.weakened(type_, before, after, account)]


def _p(**props: Any) -> dict[str, Any]:
    return {"Properties": props}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (_p(DeletionProtection=True), _p(), ["DeletionProtection true -> false (turned off)"]),
        (
            _p(DeletionProtection="true"),
            _p(DeletionProtection="false"),
            ["DeletionProtection true -> false (turned off)"],
        ),
        (_p(), _p(DeletionProtection=True), []),
        (_p(DeletionProtection={"Ref": "P"}), _p(DeletionProtection=False), []),  # not known: the change set tells
        (_p(DeletionProtection=True), _p(DeletionProtection={"Fn::If": ["C", True, False]}), []),
        (_p(DeletionProtection=True), _p(DeletionProtection={"Ref": "P"}), []),
        (_p(DeletionProtection=True), _p(DeletionProtection="(Truncated-Signature):ab12"), []),
        (_p(DeletionProtection=True), _p(DeletionProtection="{{changeSet:KNOWN_AFTER_APPLY}}"), []),
        ({}, {"DeletionPolicy": "Delete"}, ["DeletionPolicy Snapshot -> Delete (weaker policy)"]),
        (_p(DeletionProtection=True), _p(DeletionProtection={"KrCfn::Input": "P"}), []),
        (
            _p(DeletionProtection=True),
            _p(DeletionProtection={"Ref": "P", "Extra": 1}),
            ["DeletionProtection true -> false (turned off)"],
        ),
        (_p(BackupRetentionPeriod=7), _p(), ["BackupRetentionPeriod 7 -> 1 (lower retention)"]),
        (_p(BackupRetentionPeriod=1), _p(), []),
        (_p(BackupRetentionPeriod="7"), _p(BackupRetentionPeriod="7.5"), []),
        (_p(BackupRetentionPeriod=True), _p(BackupRetentionPeriod=0), []),
        (_p(BackupRetentionPeriod="{{changeSet:KNOWN_AFTER_APPLY}}"), _p(BackupRetentionPeriod=0), []),
        (_p(PubliclyAccessible=False), _p(PubliclyAccessible=True), ["PubliclyAccessible false -> true (turned on)"]),
        (_p(), _p(PubliclyAccessible=True), ["PubliclyAccessible false -> true (turned on)"]),
        (_p(PubliclyAccessible=True), _p(), []),
        (_p(DeleteAutomatedBackups=False), _p(), ["DeleteAutomatedBackups false -> true (turned on)"]),
        ({"DeletionPolicy": "Retain"}, {}, ["DeletionPolicy Retain -> Snapshot (weaker policy)"]),
        ({"DeletionPolicy": "Snapshot"}, {}, []),
        ({"DeletionPolicy": "RetainExceptOnCreate"}, {"DeletionPolicy": "Retain"}, []),
        ({"UpdateReplacePolicy": "Snapshot"}, {}, ["UpdateReplacePolicy Snapshot -> Delete (weaker policy)"]),
        ({"DeletionPolicy": "Retain"}, {"DeletionPolicy": "Sometimes"}, []),
    ],
)
def test_database_protections(before: dict[str, Any], after: dict[str, Any], expected: list[str]) -> None:
    assert _w("AWS::RDS::DBInstance", before, after) == expected


def test_policy_defaults() -> None:
    in_cluster = {"Properties": {"DBClusterIdentifier": "c"}}
    assert _w("AWS::RDS::DBInstance", {**in_cluster, "DeletionPolicy": "Snapshot"}, in_cluster) == [
        "DeletionPolicy Snapshot -> Delete (weaker policy)"
    ]
    assert _w("AWS::RDS::DBCluster", {"DeletionPolicy": "Retain"}, {}) == [
        "DeletionPolicy Retain -> Snapshot (weaker policy)"
    ]
    assert _w("AWS::S3::Bucket", {"DeletionPolicy": "Snapshot"}, {}) == [
        "DeletionPolicy Snapshot -> Delete (weaker policy)"
    ]
    assert _w("AWS::SNS::Topic", {"DeletionPolicy": "Retain"}, {}) == []  # not a store of data


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return _p(LifecycleConfiguration={"Rules": list(rules)})


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (_rules(), _rules({"Status": "Enabled", "ExpirationInDays": 30}), "never -> 30 days"),
        (_p(), _rules({"Status": "Enabled", "ExpirationInDays": 1}), "never -> 1 day"),
        (
            _rules({"ExpirationInDays": 7}),
            _rules({"ExpirationInDays": 7}, {"ExpirationDate": "2027-01-01"}),
            "7 days -> 0 days",
        ),
        (
            _rules({"Status": "Disabled", "ExpirationInDays": 1}),
            _rules({"Status": "Enabled", "ExpirationInDays": 1}),
            "never -> 1 day",
        ),
        (_rules(), _rules({"Status": "Disabled", "ExpirationInDays": 1}, {"ExpirationInDays": 2}), "never -> 2 days"),
        (_rules({"ExpirationInDays": 7}), _rules({"ExpirationInDays": 8}), None),
        (_rules({"ExpirationInDays": 7}), _rules({"ExpirationInDays": 7, "Status": "Disabled"}), None),
        (_rules({"ExpirationInDays": 7}), _rules({"ExpirationInDays": {"Ref": "Days"}}), None),
        (_rules({"NoncurrentVersionExpiration": {"NoncurrentDays": 1}}), _rules({"Status": "Enabled"}), None),
        (
            _p(LifecycleConfiguration={"Rules": {"0": {"ExpirationInDays": "7"}}}),
            _rules({"ExpirationInDays": "2"}),
            "7 days -> 2 days",
        ),
        (_rules("not a rule"), _rules(), None),
    ],
)
def test_bucket_expiry(before: dict[str, Any], after: dict[str, Any], expected: str | None) -> None:
    got = _w("AWS::S3::Bucket", before, after)
    assert got == ([f"LifecycleConfiguration.Rules {expected} (current objects expire sooner)"] if expected else [])


def test_bucket_versioning_and_public_access() -> None:
    on = _p(VersioningConfiguration={"Status": "Enabled"})
    assert _w("AWS::S3::Bucket", on, _p(VersioningConfiguration={"Status": "Suspended"})) == [
        "VersioningConfiguration.Status Enabled -> Suspended (turned off)"
    ]
    assert _w("AWS::S3::Bucket", _p(), on) == []
    flags = {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    for flag in flags:
        after = _p(PublicAccessBlockConfiguration={**flags, flag: False})
        assert _w("AWS::S3::Bucket", _p(PublicAccessBlockConfiguration=flags), after) == [
            f"PublicAccessBlockConfiguration.{flag} true -> false (turned off)"
        ]
    lock = {"Rule": {"DefaultRetention": {"Days": 30}}}
    assert _w("AWS::S3::Bucket", _p(ObjectLockConfiguration=lock), _p()) == [
        "ObjectLockConfiguration.Rule.DefaultRetention.Days 30 -> 0 (lower retention)"
    ]


@pytest.mark.parametrize(
    ("type_", "before", "after", "expected"),
    [
        (
            "AWS::DLM::LifecyclePolicy",
            _p(State="ENABLED"),
            _p(State="disabled"),
            "State ENABLED -> DISABLED (turned off)",
        ),
        ("AWS::DLM::LifecyclePolicy", _p(State="ENABLED"), _p(), "State ENABLED -> DISABLED (turned off)"),
        (
            "AWS::DLM::LifecyclePolicy",
            _p(PolicyDetails={"Schedules": [{"RetainRule": {"Count": 7}}, {"RetainRule": {"Count": 3}}]}),
            _p(PolicyDetails={"Schedules": [{"RetainRule": {"Count": 7}}, {"RetainRule": {"Count": 2}}]}),
            "PolicyDetails.Schedules.RetainRule.Count 3 -> 2 (lower retention)",
        ),
        (
            "AWS::ElastiCache::CacheCluster",
            _p(SnapshotRetentionLimit=5),
            _p(),
            "SnapshotRetentionLimit 5 -> 0 (lower retention)",
        ),
        (
            "AWS::EFS::FileSystem",
            _p(BackupPolicy={"Status": "ENABLED"}),
            _p(),
            "BackupPolicy.Status ENABLED -> DISABLED (turned off)",
        ),
        (
            "AWS::Backup::BackupPlan",
            _p(BackupPlan={"BackupPlanRule": [{"Lifecycle": {"DeleteAfterDays": 35}}]}),
            _p(BackupPlan={"BackupPlanRule": [{"Lifecycle": {"DeleteAfterDays": 7}}]}),
            "BackupPlan.BackupPlanRule.Lifecycle.DeleteAfterDays 35 -> 7 (lower retention)",
        ),
        (
            "AWS::DynamoDB::Table",
            _p(DeletionProtectionEnabled=True),
            _p(),
            "DeletionProtectionEnabled true -> false (turned off)",
        ),
        (
            "AWS::DynamoDB::Table",
            _p(PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}),
            _p(),
            "PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled true -> false (turned off)",
        ),
        ("AWS::Logs::LogGroup", _p(), _p(RetentionInDays=365), "RetentionInDays unlimited -> 365 (lower retention)"),
        ("AWS::KMS::Key", _p(), _p(PendingWindowInDays=7), "PendingWindowInDays 30 -> 7 (lower retention)"),
        ("AWS::ECR::Repository", _p(), _p(EmptyOnDelete=True), "EmptyOnDelete false -> true (turned on)"),
        (
            "AWS::ECR::Repository",
            _p(ImageTagMutability="IMMUTABLE_WITH_EXCLUSION"),
            _p(ImageTagMutability="MUTABLE"),
            "ImageTagMutability IMMUTABLE -> MUTABLE (turned off)",
        ),
        ("AWS::Logs::LogGroup", _p(RetentionInDays=7), _p(), None),
        ("AWS::DLM::LifecyclePolicy", _p(State="DISABLED"), _p(State="ENABLED"), None),
        ("AWS::Lambda::Function", _p(State="ENABLED"), _p(State="DISABLED"), None),
    ],
)
def test_backup_and_retention_protections(
    type_: str, before: dict[str, Any], after: dict[str, Any], expected: str | None
) -> None:
    assert _w(type_, before, after) == ([expected] if expected else [])


def _trust(*principals: Any, effect: str = "Allow", key: str = "Principal") -> dict[str, Any]:
    return _p(AssumeRolePolicyDocument={"Statement": [{"Effect": effect, key: p} for p in principals]})


SERVICE = {"Service": "ecs-tasks.amazonaws.com"}
ACCOUNT = "123456789012"


@pytest.mark.parametrize(
    ("added", "account", "outside"),
    [
        ({"AWS": "arn:aws:iam::999988887777:root"}, ACCOUNT, "AWS:arn:aws:iam::999988887777:root"),
        ({"AWS": "999988887777"}, ACCOUNT, "AWS:999988887777"),
        ({"AWS": ["arn:aws:iam::999988887777:role/x"]}, None, "AWS:arn:aws:iam::999988887777:role/x"),
        ("*", ACCOUNT, "AWS:*"),
        ({"AWS": "*"}, ACCOUNT, "AWS:*"),
        ({"Federated": "cognito-identity.amazonaws.com"}, ACCOUNT, "Federated:cognito-identity.amazonaws.com"),
        ({"CanonicalUser": "abc"}, ACCOUNT, "CanonicalUser:abc"),
        ({"AWS": {"Ref": "TrustedAccount"}}, None, 'AWS:{"Ref": "TrustedAccount"}'),
        ({"AWS": {"Fn::Sub": "arn:aws:iam::999988887777:root${AWS::AccountId}:"}}, None, None),
        ({"AWS": {"Fn::Join": ["", ["arn:aws:iam::", {"Ref": "AWS::AccountId"}, ":root"]]}}, None, None),
        # the stack's own account, or what the stack made in it, is not outside
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, ACCOUNT, ""),
        ({"AWS": f"arn:aws-cn:iam::{ACCOUNT}:role/x"}, ACCOUNT, ""),
        ({"AWS": ACCOUNT}, ACCOUNT, ""),
        ({"AWS": {"Ref": "AWS::AccountId"}}, None, ""),
        ({"AWS": {"Fn::Sub": "${AWS::AccountId}"}}, None, ""),
        ({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/deploy"}}, None, ""),
        ({"AWS": {"Fn::GetAtt": ["Deployer", "Arn"]}}, None, ""),
        ({"Service": ["events.amazonaws.com", "ec2.amazonaws.com"]}, None, ""),
    ],
)
def test_trust_policy_principals(added: Any, account: str | None, outside: str | None) -> None:
    got = _w("AWS::IAM::Role", _trust(SERVICE), _trust(SERVICE, added), account)
    if outside is None:  # an intrinsic not known to be the account: outside, shown as written
        assert len(got) == 1 and got[0].startswith("AssumeRolePolicyDocument none -> AWS:{")
    else:
        suffix = "(wider principal: outside the account and AWS services)"
        assert got == ([f"AssumeRolePolicyDocument none -> {outside} {suffix}"] if outside else [])


def test_trust_policy_statements() -> None:
    outside = {"AWS": "arn:aws:iam::999988887777:root"}
    assert _w("AWS::IAM::Role", _trust(outside), _trust(outside, SERVICE)) == []  # was already there
    assert _w("AWS::IAM::Role", _trust(SERVICE), _trust(SERVICE, outside, effect="Deny")) == []
    assert _w("AWS::IAM::Role", _trust(SERVICE), _trust(SERVICE, key="NotPrincipal")) == [
        "AssumeRolePolicyDocument none -> NotPrincipal: everyone else "
        "(wider principal: outside the account and AWS services)"
    ]
    single = _p(AssumeRolePolicyDocument={"Statement": {"0": {"Principal": outside}}})
    assert len(_w("AWS::IAM::Role", _p(), single)) == 1
    assert _w("AWS::IAM::Role", _p(AssumeRolePolicyDocument="(Truncated-Signature):ab"), _p()) == []
    assert _w("AWS::IAM::Role", _trust(SERVICE), _p(AssumeRolePolicyDocument={"Statement": ["x"]})) == []


# --- forecast helpers ----------------------------------------------------------------------------------


def test_held_in_reads_nested_stacks_at_any_depth() -> None:
    templates = {
        "a.json": {"Resources": {"Inner": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "b.json"}}}},
        "b.json": {"Resources": {"Table": {"Type": "AWS::DynamoDB::Table"}, "Topic": {"Type": "AWS::SNS::Topic"}}},
    }
    outer = {"Resources": {"Mid": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "a.json"}}}}

    def child(path: str, logical_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        return templates[resource["Properties"]["TemplateURL"]]

    assert guard.held_in(outer, "root/X", child) == [guard.Held("root/X/Mid/Inner", "Table", "AWS::DynamoDB::Table")]
    assert guard.held_in({}, "root/X", child) == "no Resources in the template"
    kept = {"Resources": {"Q": {"Type": "AWS::SNS::Topic", "UpdateReplacePolicy": "Retain"}}}
    assert guard.held_in(kept, "root/X", child) == []


def _nested_tree(inner_resources: dict[str, Any]) -> trees.Tree:
    root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "data.json"}}})
    data = _tree(
        {
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Inner": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "i"}},
        }
    )
    data.name = "data.json"
    data.children["Inner"] = trees.Tree("inner.json", {"Resources": inner_resources})
    root.children["Data"] = data
    return root


@pytest.mark.parametrize("action", ["Add", "Remove"])
def test_a_nested_stack_added_or_removed_whole_lists_everything_in_it(action: str) -> None:
    """_expand: every resource of the stack and of the stacks nested in it, with its type and stack."""
    full = _nested_tree({"Table": {"Type": "AWS::DynamoDB::Table"}, "Queue": {"Type": "AWS::SQS::Queue"}})
    empty = _tree({})
    old, new = (empty, full) if action == "Add" else (full, empty)
    stacks = forecast(old, new, REGION)
    got = [
        (s.path, s.stack_name, s.change_set_id, [(c.action, c.logical_id, c.type) for c in s.changes]) for s in stacks
    ]
    assert got == [
        ("root", "t", "", [(action, "Data", guard.NESTED_STACK)]),
        ("root/Data", "data.json", "", [(action, "Bucket", "AWS::S3::Bucket"), (action, "Inner", guard.NESTED_STACK)]),
        (
            "root/Data/Inner",
            "inner.json",
            "",
            [(action, "Queue", "AWS::SQS::Queue"), (action, "Table", "AWS::DynamoDB::Table")],
        ),
    ]


def test_a_renamed_nested_stack_with_other_content_is_no_rename() -> None:
    """_fingerprint: a nested stack's rename needs the same child resources too."""

    def build(name: str, inner: dict[str, Any]) -> trees.Tree:
        root = _tree({name: {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x"}}})
        root.children[name] = _tree(inner)
        return root

    same = forecast(
        build("Data", {"T": {"Type": "AWS::SNS::Topic"}}), build("Storage", {"T": {"Type": "AWS::SNS::Topic"}}), REGION
    )
    assert [p.name for c in same[0].changes for p in c.properties] == ["renamed to Storage", "renamed from Data"]
    other = forecast(
        build("Data", {"T": {"Type": "AWS::SNS::Topic"}}), build("Storage", {"U": {"Type": "AWS::SNS::Topic"}}), REGION
    )
    assert [c.properties for c in other[0].changes] == [(), ()]


@pytest.mark.parametrize(
    ("old", "new", "replacement"),
    [
        ("{{resolve:ssm:/db/name}}", "{{resolve:ssm:/db/name2}}", "Conditional"),  # a dynamic reference
        ("kr", {"Fn::If": ["Prod", "kr", "kr-dev"]}, "Conditional"),
        ("kr", {"Fn::ImportValue": "DbName"}, "Conditional"),
        ("kr", "{{RESOLVE:not-a-reference}}", "True"),
        ("kr", "kr2", "True"),
        ({"Fn::ImportValue": "DbName"}, "kr", "Conditional"),  # the old value was not known either
    ],
)
def test_values_not_known_before_the_deploy(old: Any, new: Any, replacement: str) -> None:
    assert _replacements(_tree({"Database": _db(DBName=old)}), _tree({"Database": _db(DBName=new)})) == {
        "Database": replacement
    }


def test_paths_name_list_items_by_name_or_key() -> None:
    from kr_cfn.changes import forecast as fc

    out: list[str] = []
    old = {"Tags": [{"Key": "Team", "Value": "a"}], "Env": [{"Name": "A", "Value": "1"}], "L": [{"X": 1}]}
    new = {"Tags": [{"Key": "Team", "Value": "b"}], "Env": [{"Name": "A", "Value": "2"}], "L": [{"X": 2}]}
    fc._paths(old, new, "", out)
    assert out == ["Env[A].Value", "L[0].X", "Tags[Team].Value"]
    assert fc._item_label({"Name": "a"}, "x", 3) == "3"
    assert fc._item_label({"Name": "a b"}, {"Name": "a b"}, 4) == "4"


def test_schema_pointers() -> None:
    from kr_cfn.changes import forecast as fc

    assert fc._at({"A": {"B": 1}}, ("A", "B")) == [1]
    assert fc._at({"A": [{"B": 1}, {"B": 2}]}, ("A", "*", "B")) == [1, 2]
    assert fc._at({"A": 1}, ("A", "*")) == [None]
    assert fc._segments("Rules[0].Id") == ("Rules", "*", "Id")
    assert fc._overlaps(("Rules", "*", "Id"), ("Rules", "*", "Id"))
    assert fc._overlaps(("Rules", "0"), ("Rules", "*", "Id"))
    assert not fc._overlaps(("Rules", "1", "Id"), ("Rules", "0", "Id"))
    assert fc._intrinsic({"Ref": "X"}) and fc._intrinsic({"Fn::Sub": "x"}) and fc._intrinsic({"KrCfn::Input": "x"})
    assert not fc._intrinsic(["Ref"]) and not fc._intrinsic({"Ref": "X", "Other": 1}) and not fc._intrinsic(5)


def test_sub_resolution() -> None:
    from kr_cfn.changes import forecast as fc

    side = fc._Side({"P": "v", "N": 3})
    assert fc._resolve({"Fn::Sub": "${P}-${N}-${AWS::Region}"}, side) == {"Fn::Sub": "v-3-${AWS::Region}"}
    assert fc._resolve({"Fn::Sub": ["${P}-${Q}", {"Q": {"Ref": "P"}}]}, side) == {"Fn::Sub": ["v-${Q}", {"Q": "v"}]}
    assert fc._resolve({"Fn::Sub": [{"Ref": "P"}, {}]}, side) == {"Fn::Sub": ["v", {}]}
    assert fc._resolve({"Fn::Sub": ["${P}", "not a map"]}, side) == {"Fn::Sub": ["${P}", "not a map"]}
    assert fc._resolve({"Fn::Sub": ["${P}", {}, "extra"]}, side) == {"Fn::Sub": ["${P}", {}, "extra"]}
    assert fc._resolve({"Fn::Sub": ["${P}", {"P": "mine"}]}, side) == {"Fn::Sub": ["${P}", {"P": "mine"}]}
    side.changed.add("Vpc")
    assert fc._resolve({"Fn::Sub": "${Vpc}/${Other}/${Other.Arn}"}, side) == {
        "Fn::Sub": ["${Vpc}/${Other}/${Other.Arn}", {"Vpc": {fc.MAY_CHANGE: {"Ref": "Vpc"}}}]
    }
    assert fc._resolve({"Fn::Sub": "${Vpc.CidrBlock}"}, side) == {
        "Fn::Sub": ["${Vpc.CidrBlock}", {"Vpc.CidrBlock": {fc.MAY_CHANGE: {"Fn::GetAtt": ["Vpc", "CidrBlock"]}}}]
    }


def test_two_outside_principals_are_both_named() -> None:
    added = {"AWS": ["arn:aws:iam::999988887777:root", "arn:aws:iam::111122223333:root"]}
    assert _w("AWS::IAM::Role", _trust(SERVICE), _trust(SERVICE, added)) == [
        "AssumeRolePolicyDocument none -> AWS:arn:aws:iam::111122223333:root, AWS:arn:aws:iam::999988887777:root "
        "(wider principal: outside the account and AWS services)"
    ]


def test_a_nested_stack_finding_names_the_type_held() -> None:
    def contents(stack: StackChanges, change: ResourceChange) -> list[guard.Held]:
        return [guard.Held("root/Data", "Table", "AWS::DynamoDB::Table", "Retain")]

    change = ResourceChange("Modify", "Data", guard.NESTED_STACK, "True")
    (f,) = guard.findings([StackChanges("root", "s", "cs", [change])], ["Table"], contents)
    assert (f.path, f.logical_id, f.type, f.action, f.replacement, f.allowed, f.policy_action, f.nested_stack) == (
        "root/Data",
        "Table",
        "AWS::DynamoDB::Table",
        "Modify",
        "True",
        True,
        "Retain",
        "Data",
    )


def test_a_nested_stack_without_resources_expands_to_nothing() -> None:
    root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x"}}})
    root.children["Data"] = trees.Tree("data.json", {})
    stacks = forecast(root, _tree({}), REGION)
    assert [(s.path, s.changes) for s in stacks[1:]] == []
    assert [c.logical_id for c in stacks[0].changes] == ["Data"]


def test_a_parameter_without_a_value_is_not_known() -> None:
    """_child_params: neither passed nor defaulted: given at deploy time, so a change to it may replace."""

    def build(name: Any) -> trees.Tree:
        root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "data.json"}}})
        root.children["Data"] = _tree({"Database": _db(DBName=name)}, {"DbName": {"Type": "String"}})
        return root

    assert _replacements(build("kr"), build({"Ref": "DbName"}))["Database"] == "Conditional"


def test_a_gone_child_template_keeps_the_stack_row() -> None:
    old = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x"}}})
    old.children["Data"] = _tree({"Database": _db()})
    new = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x", "Tags": []}}})
    (change,) = forecast(old, new, REGION)[0].changes
    assert (change.logical_id, change.type) == ("Data", guard.NESTED_STACK)


def test_trust_policy_statements_after_a_deny_and_intrinsics_in_any_key_order() -> None:
    outside = {"AWS": "arn:aws:iam::999988887777:root"}
    deny_first = _p(
        AssumeRolePolicyDocument={"Statement": [{"Effect": "Deny", "Principal": "*"}, {"Principal": outside}]}
    )
    assert len(_w("AWS::IAM::Role", _trust(SERVICE), deny_first)) == 1
    sub = {"AWS": {"Fn::Sub": ["arn:aws:iam::${A}:${B}", {"B": "root", "A": {"Ref": "Trusted"}}]}}
    reordered = {"AWS": {"Fn::Sub": ["arn:aws:iam::${A}:${B}", {"A": {"Ref": "Trusted"}, "B": "root"}]}}
    assert _w("AWS::IAM::Role", _trust(sub), _trust(reordered)) == []
    assert _w("AWS::IAM::Role", _p(AssumeRolePolicyDocument={}), _p(AssumeRolePolicyDocument={"Version": "x"})) == []


def test_a_changed_nested_stack_row() -> None:
    """_diff_nested: the stack's own row carries its property changes and points at its child's changes."""

    def build(tags: list[Any], db_name: str) -> trees.Tree:
        root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x", "Tags": tags}}})
        root.children["Data"] = _tree({"Database": _db(DBName=db_name)})
        return root

    stacks = forecast(build([], "kr"), build([{"Key": "a", "Value": "b"}], "kr2"), REGION)
    (row,) = stacks[0].changes
    assert (row.action, row.replacement, [p.name for p in row.properties], row.nested_change_set_id) == (
        "Modify",
        "False",
        ["Tags"],
        "forecast:root/Data",
    )
    assert [(s.path, [c.logical_id for c in s.changes]) for s in stacks[1:]] == [("root/Data", ["Database"])]


def test_property_change_rows() -> None:
    from kr_cfn.changes.review import PropertyChange

    old = _tree({"Database": {**_db(DBName="kr"), "DeletionPolicy": "Snapshot"}})
    new = _tree({"Database": {**_db(DBName="kr2"), "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}})
    (change,) = forecast(old, new, REGION)[0].changes
    assert change.properties == (
        PropertyChange("DBName", "Always", "DirectModification"),
        PropertyChange("DeletionPolicy", "Never", "DirectModification"),
        PropertyChange("UpdateReplacePolicy", "Never", "DirectModification"),
    )
    assert change.weakened == ()


def test_changed_paths() -> None:
    from kr_cfn.changes import forecast as fc

    def paths(old: Any, new: Any, path: str = "") -> list[str]:
        out: list[str] = []
        fc._paths(old, new, path, out)
        return out

    assert paths({}, {"A": None}) == ["A"] and paths({"A": None}, {}) == ["A"]
    assert paths(1, 2) == ["Properties"]
    assert paths({"Ref": "A"}, {"Ref": "B"}, "X") == ["X"]  # an intrinsic is one value
    assert paths({"A": 1}, {"Ref": "B"}, "X") == ["X"] and paths({"Ref": "B"}, {"A": 1}, "X") == ["X"]
    assert paths([1, 2], [1, 3], "L") == ["L[1]"] and paths([1], [1, 2], "L") == ["L"]


def test_references() -> None:
    from kr_cfn.changes import forecast as fc

    out: set[str] = set()
    fc._references([{"Fn::GetAtt": "Vpc.Cidr.Block"}, {"Fn::GetAtt": ["Db", "Endpoint.Address"]}, {"Ref": "P"}], out)
    fc._references({"Fn::Sub": ["${Bucket.Arn}/${Key}/${Cache.Endpoint.Port}", {"Key": {"Ref": "K"}}]}, out)
    assert out == {"Vpc", "Db", "P", "Bucket", "Key", "K", "Cache"}
    odd: set[str] = set()
    fc._references([{"Fn::GetAtt": []}, {"Fn::GetAtt": [{"Ref": "X"}, "Arn"]}, {"Fn::Sub": []}], odd)
    assert odd == {"X"}
    assert fc._type({}) == "?" and fc._type(5) == "?" and fc._type({"Type": "AWS::SNS::Topic"}) == "AWS::SNS::Topic"


def test_reference_cycles_and_order() -> None:
    from kr_cfn.changes import forecast as fc

    resources = {
        "A": {"Type": "T", "Properties": {"X": {"Ref": "B"}}},
        "B": {"Type": "T", "Properties": {"X": {"Fn::GetAtt": ["A", "Arn"]}}},
        "C": {"Type": "T"},
        "D": "not a resource",
        "E": {"Type": "T", "Properties": {"X": {"Fn::Sub": "${F.Arn}"}}},
        "F": {"Type": "T"},
    }
    assert fc._order(resources) == ["B", "A", "C", "D", "F", "E"]


def test_a_nested_stack_url_alone_is_no_change() -> None:
    def build(url: str) -> trees.Tree:
        root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": url}}})
        root.children["Data"] = _tree({"Database": _db()})
        return root

    assert forecast(build("data.json"), build("https://s3.amazonaws.com/b/data.json"), REGION)[0].changes == []


def test_sub_variables_given_and_parameters_together() -> None:
    from kr_cfn.changes import forecast as fc

    side = fc._Side({"P": "v"})
    assert fc._resolve({"Fn::Sub": ["${A}-${P}", {"A": "x"}]}, side) == {"Fn::Sub": ["${A}-v", {"A": "x"}]}


def test_literal_subnets_of_a_group_change_in_place() -> None:
    """Only subnets from a replaced network make the group's replacement unknown, not other references."""

    def build(cidr: str, subnet: str) -> trees.Tree:
        return _tree(
            {
                "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": cidr}},
                "Group": {
                    "Type": "AWS::RDS::DBSubnetGroup",
                    "Properties": {"DBSubnetGroupDescription": {"Fn::Sub": "${Vpc}"}, "SubnetIds": [subnet]},
                },
            }
        )

    got = _replacements(build("10.0.0.0/16", "subnet-1"), build("10.1.0.0/16", "subnet-2"))
    assert got == {"Vpc": "True", "Group": "False"}


def test_renames_pair_one_removed_with_one_added_of_the_same_type() -> None:
    from kr_cfn.changes.review import PropertyChange

    topic = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"TopicName": "t"}}
    old = _tree({"Old1": topic, "Old2": topic, "Gone": {"Type": "AWS::SNS::Topic"}})
    new = _tree({"AaaQueue": queue, "New": topic, "Other": {"Type": "AWS::SQS::Queue"}})
    changes = {c.logical_id: c for c in forecast(old, new, REGION)[0].changes}
    assert changes["Old1"].properties == (PropertyChange("renamed to New", "Always", "Rename"),)
    assert changes["New"].properties == (PropertyChange("renamed from Old1", "Always", "Rename"),)
    assert changes["Old2"].properties == () and changes["AaaQueue"].properties == ()
    assert changes["Gone"].properties == () and changes["Other"].properties == ()


def test_root_parameters_are_given_at_deploy_time() -> None:
    """_top_params: a root parameter's value is not known offline (plan keeps the deployed one)."""
    old = _tree({"Database": _db(DBName="kr")}, {"DbName": {"Type": "String", "Default": "kr"}})
    new = _tree({"Database": _db(DBName={"Ref": "DbName"})}, {"DbName": {"Type": "String", "Default": "kr"}})
    assert _replacements(old, new) == {"Database": "Conditional"}


def test_resolve_references_on_one_side() -> None:
    from kr_cfn.changes import forecast as fc

    side = fc._Side({"P": "v"}, {"R"}, {"Data": {"Out"}})
    may = fc.MAY_CHANGE
    assert fc._resolve({"Ref": "P"}, side) == "v"
    assert fc._resolve({"Ref": "R"}, side) == {may: {"Ref": "R"}}
    assert fc._resolve({"Ref": "Q"}, side) == {"Ref": "Q"}
    assert fc._resolve({"Ref": 5}, side) == {"Ref": 5}
    assert fc._resolve({"Fn::GetAtt": "R.Arn"}, side) == {may: {"Fn::GetAtt": "R.Arn"}}
    assert fc._resolve({"Fn::GetAtt": ["R"]}, side) == {may: {"Fn::GetAtt": ["R"]}}
    assert fc._resolve({"Fn::GetAtt": ["Data", "Outputs.Out"]}, side) == {may: {"Fn::GetAtt": ["Data", "Outputs.Out"]}}
    assert fc._resolve({"Fn::GetAtt": "Data.Outputs.Out"}, side) == {may: {"Fn::GetAtt": "Data.Outputs.Out"}}
    assert fc._resolve({"Fn::GetAtt": ["Data", "Outputs.Other"]}, side) == {"Fn::GetAtt": ["Data", "Outputs.Other"]}
    assert fc._resolve({"Fn::GetAtt": ["Data", "Arn"]}, side) == {"Fn::GetAtt": ["Data", "Arn"]}
    assert fc._resolve({"Fn::GetAtt": ["Other", "Outputs.Out"]}, side) == {"Fn::GetAtt": ["Other", "Outputs.Out"]}
    assert fc._resolve({"Fn::GetAtt": 5}, side) == {"Fn::GetAtt": 5}
    assert fc._resolve({"Fn::GetAtt": [5, "Arn"]}, side) == {"Fn::GetAtt": [5, "Arn"]}
    assert fc._resolve([{"A": {"Ref": "P"}, "B": [{"Ref": "R"}]}], side) == [{"A": "v", "B": [{may: {"Ref": "R"}}]}]
    assert fc._resolve({"Ref": "P", "Other": 1}, side) == {"Ref": "P", "Other": 1}


def test_a_new_resource_referenced_by_a_create_only_property() -> None:
    """_diff: an added resource's id is not known before the deploy."""
    old = _tree({"Database": _db(DBName="kr")})
    new = _tree(
        {
            "Name": {"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "kr"}},
            "Database": _db(DBName={"Fn::GetAtt": ["Name", "Value"]}),
        }
    )
    assert _replacements(old, new) == {"Database": "Conditional"}


def test_a_changed_type_is_a_removal_and_an_addition() -> None:
    old = _tree({"Queue": {"Type": "AWS::SNS::Topic"}, "Db": _db(DBName="kr")})
    new = _tree({"Queue": {"Type": "AWS::SQS::Queue"}, "Db": _db(DBName={"Fn::GetAtt": ["Queue", "Arn"]})})
    stacks = forecast(old, new, REGION)
    assert [(c.action, c.logical_id, c.type, c.replacement) for c in stacks[0].changes] == [
        ("Modify", "Db", "AWS::RDS::DBInstance", "Conditional"),
        ("Add", "Queue", "AWS::SQS::Queue", None),
        ("Remove", "Queue", "AWS::SNS::Topic", None),
    ]


def _with_output(value: Any, db_name: Any = None) -> trees.Tree:
    props = {"DBName": db_name if db_name is not None else {"Fn::GetAtt": ["Data", "Outputs.Name"]}}
    root = _tree({"Data": {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x"}}, "Db": _db(**props)})
    child = _tree({"Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}})
    if value is not None:
        child.template["Outputs"] = {"Name": {"Value": value}, "Same": {"Value": "x"}}
    root.children["Data"] = child
    return root


@pytest.mark.parametrize(
    ("old", "new", "replacement"),
    [
        ("kr", "kr", None),
        ("kr", "kr2", "Conditional"),  # a changed output: the parent's reference may change
        (None, "kr", "Conditional"),  # a new output
        ({"Ref": "Vpc"}, {"Ref": "Vpc"}, None),
    ],
)
def test_nested_stack_outputs_feed_the_parent(old: Any, new: Any, replacement: str | None) -> None:
    """_changed_outputs: the parent's references to a child's changed outputs may change."""
    assert _replacements(_with_output(old), _with_output(new)).get("Db") == replacement


def test_an_output_of_a_replaced_resource_changes() -> None:
    old, new = _with_output({"Ref": "Vpc"}), _with_output({"Ref": "Vpc"})
    new.children["Data"].template["Resources"]["Vpc"]["Properties"]["CidrBlock"] = "10.1.0.0/16"
    assert _replacements(old, new)["Db"] == "Conditional"
    stacks = forecast(old, new, REGION)
    assert [s.path for s in stacks] == ["root", "root/Data"]


def test_only_changed_stacks_are_listed() -> None:
    old, new = _with_output("kr", "kr"), _with_output("kr", "kr2")
    assert [s.path for s in forecast(old, new, REGION)] == ["root"]
    assert [s.path for s in forecast(old, copy.deepcopy(old), REGION)] == ["root"]


def test_two_renames_and_a_renamed_nested_stack() -> None:
    topic = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}}
    stack = {"Type": guard.NESTED_STACK, "Properties": {"TemplateURL": "x"}}
    old = _tree({"OldTopic": topic, "OldQueue": queue, "OldStack": stack})
    new = _tree({"NewTopic": topic, "NewQueue": queue, "NewStack": stack})
    old.children["OldStack"] = _tree({"Db": _db(DBName="kr")})
    new.children["NewStack"] = _tree({"Db": _db(DBName="kr")})
    changes = {c.logical_id: c for c in forecast(old, new, REGION)[0].changes}
    assert {k: (c.action, c.type, [p.name for p in c.properties]) for k, c in changes.items()} == {
        "NewQueue": ("Add", "AWS::SQS::Queue", ["renamed from OldQueue"]),
        "NewStack": ("Add", guard.NESTED_STACK, ["renamed from OldStack"]),
        "NewTopic": ("Add", "AWS::SNS::Topic", ["renamed from OldTopic"]),
        "OldQueue": ("Remove", "AWS::SQS::Queue", ["renamed to NewQueue"]),
        "OldStack": ("Remove", guard.NESTED_STACK, ["renamed to NewStack"]),
        "OldTopic": ("Remove", "AWS::SNS::Topic", ["renamed to NewTopic"]),
    }
    assert changes["NewStack"].nested_change_set_id == changes["OldStack"].nested_change_set_id is None


def test_an_old_template_without_resources() -> None:
    old = trees.Tree("t", {})
    stacks = forecast(old, _tree({"Db": _db()}), REGION)
    assert [(c.action, c.logical_id) for c in stacks[0].changes] == [("Add", "Db")]


def test_subnets_moved_to_other_known_subnets_change_in_place() -> None:
    def build(subnet: str) -> trees.Tree:
        subnets = {
            n: {"Type": "AWS::EC2::Subnet", "Properties": {"CidrBlock": c}}
            for n, c in (("A", "10.0.1.0/24"), ("B", "10.0.2.0/24"))
        }
        group = {
            "Type": "AWS::RDS::DBSubnetGroup",
            "Properties": {"DBSubnetGroupDescription": "d", "SubnetIds": [{"Ref": subnet}]},
        }
        return _tree({**subnets, "Group": group})

    assert _replacements(build("A"), build("B")) == {"Group": "False"}
