"""The data-loss guard on whole stacks and uncertain actions.

Change sets: AWS-shaped DescribeChangeSet responses in ``tests/fixtures/guard/<case>/`` (pages with
NextToken, nested change sets two levels deep, Details, PolicyAction, Scope), read page by page
through the real pagination and walk (moto's change sets have no nested change sets, Replacement,
Details or PolicyAction). What a removed nested stack holds is read as in production: GetTemplate
and DescribeStackResource against stacks deployed on the local endpoint (moto) from the templates
in ``tests/fixtures/guard/deployed/``, and the previous build from its S3 bucket. The fixtures'
stack ids are bound to the ids moto gave those stacks. The last tests plan a real change set on
the local endpoint that removes the nested stack (moto does produce that one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from kr_cfn.aws import Aws
from kr_cfn.changes import apply, changeset, deployed, guard
from kr_cfn.changes.review import GuardFinding, ResourceChange, Review, StackChanges, render_markdown, render_text
from kr_cfn.errors import EXIT_GUARD, DeployError
from tests.test_deploy_e2e import REGION, endpoint  # noqa: F401 - the local endpoint fixture

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "guard"
BUCKET = "kr-guard-artifacts"
ROOT = "knowledgerouter-staging"


def _cfn() -> Any:
    return boto3.client("cloudformation", region_name=REGION)


def _ids(stack: str, path: str, out: dict[str, tuple[str, str]]) -> None:
    summary = _cfn().describe_stacks(StackName=stack)["Stacks"][0]
    out[path] = (summary["StackName"], summary["StackId"])
    for r in _cfn().list_stack_resources(StackName=stack)["StackResourceSummaries"]:
        if r["ResourceType"] == guard.NESTED_STACK:
            _ids(r["PhysicalResourceId"], f"{path}/{r['LogicalResourceId']}", out)


@pytest.fixture(scope="module")
def stacks(endpoint: str) -> Iterator[dict[str, tuple[str, str]]]:  # noqa: F811
    """The deployed stacks (templates in tests/fixtures/guard/deployed), path -> (name, id)."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for path in (FIXTURES / "deployed").glob("*.json"):
        s3.put_object(Bucket=BUCKET, Key=f"{ROOT}/{path.name}", Body=path.read_bytes())
    _cfn().create_stack(StackName=ROOT, TemplateBody=(FIXTURES / "deployed" / "root.json").read_text())
    assert _cfn().describe_stacks(StackName=ROOT)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    out: dict[str, tuple[str, str]] = {}
    _ids(ROOT, "root", out)
    assert set(out) >= {"root/DataStack", "root/AppStack/StorageStack", "root/AppStack/StorageStack/ArchiveStack"}
    yield out
    # moto's backend outlives this module's server: leave nothing for other modules to see
    for summary in _cfn().list_change_sets(StackName=ROOT).get("Summaries", []):
        if summary.get("StackName") == ROOT:
            _cfn().delete_change_set(ChangeSetName=summary["ChangeSetId"])
    _cfn().delete_stack(StackName=ROOT)
    for path in (FIXTURES / "deployed").glob("*.json"):
        s3.delete_object(Bucket=BUCKET, Key=f"{ROOT}/{path.name}")
    s3.delete_bucket(Bucket=BUCKET)


class Recorded:
    """DescribeChangeSet answered from a case's recorded pages (by ChangeSetId/Name and NextToken)."""

    def __init__(self, case: str, bind: dict[str, str]) -> None:
        self.pages: dict[tuple[str, str | None], dict[str, Any]] = {}
        self.calls: list[tuple[str, str | None]] = []
        files = sorted(p for p in (FIXTURES / case).glob("*.json") if p.name != "stacks.json")
        token: dict[str, str | None] = {}
        for path in files:
            page = _bound(json.loads(path.read_text()), bind)
            key = page["ChangeSetId"]
            request_token = token.get(key)
            for name in (key, page["ChangeSetName"]):
                self.pages[(name, request_token)] = page
            token[key] = page.get("NextToken")

    def describe_change_set(self, ChangeSetName: str, NextToken: str | None = None, **_: Any) -> dict[str, Any]:  # noqa: N803
        self.calls.append((ChangeSetName, NextToken))
        return self.pages[(ChangeSetName, NextToken)]


def _bound(data: Any, bind: dict[str, str]) -> Any:
    if isinstance(data, dict):
        return {k: _bound(v, bind) for k, v in data.items()}
    if isinstance(data, list):
        return [_bound(v, bind) for v in data]
    return bind.get(data, data) if isinstance(data, str) else data


def _binding(case: str, live: dict[str, tuple[str, str]], **override: str) -> dict[str, str]:
    """Fixture stack ids and names -> the ones on the local endpoint (``override``: path -> id)."""
    bind: dict[str, str] = {}
    for path, arn in json.loads((FIXTURES / case / "stacks.json").read_text()).items():
        name, stack_id = live[path]
        bind[arn] = override.get(path, stack_id)
        bind[arn.split("/")[1]] = name
    return bind


def _review(case: str, bind: dict[str, str], allowed: list[str] = (), contents: Any = "aws") -> tuple[Review, Recorded]:  # type: ignore[assignment]
    cfn = Recorded(case, bind)
    root_id = next(p["ChangeSetId"] for p in cfn.pages.values() if "ParentChangeSetId" not in p)
    root = changeset._describe_all(cfn, root_id)
    stacks = changeset.walk(lambda arn: changeset._describe_all(cfn, arn), root)
    reader = deployed.Reader(Aws(REGION)) if contents == "aws" else contents
    return changeset.build_review(root, stacks, REGION, list(allowed), "UPDATE", contents=reader), cfn


def _rows(review: Review) -> list[tuple[str, str, str, str, bool, str | None]]:
    return [(f.path, f.logical_id, f.type, f.action, f.allowed, f.nested_stack) for f in review.findings]


DATA_STACK = [
    ("root/DataStack", "DbInstance", "AWS::RDS::DBInstance", "Remove", False, "DataStack"),
    ("root/DataStack", "DataBucket", "AWS::S3::Bucket", "Remove", False, "DataStack"),
    ("root/DataStack", "DbSecret", "AWS::SecretsManager::Secret", "Remove", False, "DataStack"),
    ("root/DataStack", "AppLogGroup", "AWS::Logs::LogGroup", "Remove", False, "DataStack"),
]


def test_removed_data_stack_is_blocked_and_its_resources_named(stacks: dict[str, tuple[str, str]]) -> None:
    review, cfn = _review("data-stack-removed", _binding("data-stack-removed", stacks))
    # every page of the root and of the nested change set was read
    assert [t for _, t in cfn.calls] == [
        None,
        "AAEAAS9mZ2VUb2tlbi1yb290LXBhZ2UtMS1vZi0y",
        None,
        "AAEAAZ2Vjcy1wYWdlLTEtb2YtMi1uZXh0LXRva2Vu",
    ]
    assert [c.logical_id for c in review.stacks[0].changes] == ["EcsStack", "DataStack"]
    assert [c.logical_id for c in review.stacks[1].changes] == ["BackendTaskDefinition", "BackendService"]
    assert _rows(review) == DATA_STACK
    assert review.blocked == review.findings
    policies = {f.logical_id: f.policy_action for f in review.findings}
    assert policies == {"DbInstance": "Snapshot", "DataBucket": "Retain", "DbSecret": None, "AppLogGroup": "Retain"}
    text = render_text(review)
    assert (
        "guard: root/DataStack/DbInstance (AWS::RDS::DBInstance): goes with nested stack DataStack (removed); "
        "policy Snapshot: deleted after a snapshot: BLOCKED" in text
    )


def test_markdown_review_of_a_blocked_nested_stack_removal(
    stacks: dict[str, tuple[str, str]], request: pytest.FixtureRequest
) -> None:
    review, _ = _review("data-stack-removed", _binding("data-stack-removed", stacks))
    # The ids moto gave the stacks are not stable: the golden file shows the recorded ones.
    fixture_ids = {v: k for k, v in _binding("data-stack-removed", stacks).items()}
    text = render_markdown(review)
    for live, recorded in fixture_ids.items():
        text = text.replace(live, recorded).replace(quote(live, safe=""), quote(recorded, safe=""))
    path = FIXTURES / "data-stack-removed.md"
    if request.config.getoption("--update-golden"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_renamed_data_stack_is_blocked(stacks: dict[str, tuple[str, str]]) -> None:
    review, _ = _review("data-stack-renamed", _binding("data-stack-renamed", stacks))
    assert [(c.action, c.logical_id) for c in review.stacks[0].changes] == [
        ("Add", "DatabaseStack"),
        ("Remove", "DataStack"),
    ]
    assert _rows(review) == DATA_STACK


def test_nested_stack_two_levels_deep_removed(stacks: dict[str, tuple[str, str]]) -> None:
    review, _ = _review("nested-two-levels", _binding("nested-two-levels", stacks))
    assert [s.path for s in review.stacks] == ["root", "root/AppStack"]
    assert _rows(review) == [
        ("root/AppStack/StorageStack", "ArchiveTable", "AWS::DynamoDB::Table", "Remove", False, "StorageStack"),
        (
            "root/AppStack/StorageStack/ArchiveStack",
            "ArchiveVault",
            "AWS::Backup::BackupVault",
            "Remove",
            False,
            "StorageStack",
        ),
        (
            "root/AppStack/StorageStack/ArchiveStack",
            "UploadsVolume",
            "AWS::EC2::Volume",
            "Remove",
            False,
            "StorageStack",
        ),
    ]


def test_nested_stack_allowed_by_its_logical_id(stacks: dict[str, tuple[str, str]]) -> None:
    review, _ = _review("data-stack-removed", _binding("data-stack-removed", stacks), ["DataStack"])
    assert [r[:4] for r in _rows(review)] == [r[:4] for r in DATA_STACK]
    assert review.findings and review.blocked == []
    assert guard.lifted_ids(review) == ["AppLogGroup", "DataBucket", "DataStack", "DbInstance", "DbSecret"]
    partly, _ = _review("data-stack-removed", _binding("data-stack-removed", stacks), ["DbInstance"])
    assert [f.logical_id for f in partly.blocked] == ["DataBucket", "DbSecret", "AppLogGroup"]


def test_stack_without_stateful_resources_removed_passes(stacks: dict[str, tuple[str, str]]) -> None:
    review, _ = _review("stateless-stack-removed", _binding("stateless-stack-removed", stacks))
    assert [(c.action, c.logical_id) for c in review.stacks[0].changes] == [("Remove", "MonitoringStack")]
    assert review.findings == []
    # the stack policy lets the checked nested stack go for this execution
    assert guard.lifted_ids(review) == ["MonitoringStack"]


def test_previous_build_read_when_the_nested_stack_cannot_be(stacks: dict[str, tuple[str, str]]) -> None:
    gone = (
        f"arn:aws:cloudformation:{REGION}:123456789012:stack/{ROOT}-DataStack-GONE/00000000-0000-0000-0000-000000000000"
    )
    bind = _binding("data-stack-removed", stacks, **{"root/DataStack": gone})
    review, _ = _review("data-stack-removed", bind)
    # The build does not say which Conditions held: its conditional bucket counts too.
    assert _rows(review) == [
        *DATA_STACK,
        ("root/DataStack", "ReplicaBucket", "AWS::S3::Bucket", "Remove", False, "DataStack"),
    ]


def test_blocked_when_neither_the_stack_nor_the_previous_build_can_be_read(stacks: dict[str, tuple[str, str]]) -> None:
    gone = (
        f"arn:aws:cloudformation:{REGION}:123456789012:stack/{ROOT}-DataStack-GONE/00000000-0000-0000-0000-000000000000"
    )
    bind = _binding("data-stack-removed", stacks, **{"root/DataStack": gone})
    bind[ROOT] = "knowledgerouter-gone"  # the parent's deployed template (with the TemplateURL) is unreadable too
    review, _ = _review("data-stack-removed", bind)
    assert [(f.path, f.logical_id, f.type, f.allowed) for f in review.findings] == [
        ("root", "DataStack", "AWS::CloudFormation::Stack", False)
    ]
    reason = review.findings[0].reason or ""
    assert "GetTemplate" in reason and "no TemplateURL of the previous build" in reason
    allowed, _ = _review("data-stack-removed", bind, ["DataStack"])
    assert allowed.blocked == []


def test_no_reader_blocks_a_removed_nested_stack() -> None:
    # e.g. a caller with templates only: unknown contents are not empty contents
    stack = StackChanges("root", "s", "cs", [ResourceChange("Remove", "DataStack", guard.NESTED_STACK, None)])
    (finding,) = guard.findings([stack], [])
    assert (finding.logical_id, finding.allowed, finding.reason) == (
        "DataStack",
        False,
        "no reader for deployed nested stacks",
    )


def test_dynamic_action_on_a_db_instance_is_blocked(stacks: dict[str, tuple[str, str]]) -> None:
    review, _ = _review("dynamic-db-instance", _binding("dynamic-db-instance", stacks))
    assert [(c.action, c.logical_id) for c in review.stacks[1].changes] == [
        ("Dynamic", "DbInstance"),
        ("Dynamic", "DbAlarm"),
    ]
    assert [(f.logical_id, f.action, f.replacement, f.allowed) for f in review.findings] == [
        ("DbInstance", "Dynamic", "Conditional", False)
    ]
    assert "Dynamic action (CloudFormation cannot tell yet: may be replaced or deleted)" in render_text(review)


def test_retain_and_snapshot_policies_still_block(stacks: dict[str, tuple[str, str]]) -> None:
    review, _ = _review("removal-with-policy", _binding("removal-with-policy", stacks))
    assert [(f.logical_id, f.action, f.replacement, f.policy_action, f.allowed) for f in review.findings] == [
        ("DataBucket", "Remove", None, "Retain", False),
        ("CacheReplicationGroup", "Remove", None, "Snapshot", False),
        ("DbInstance", "Modify", "Conditional", "ReplaceAndSnapshot", False),
    ]
    assert "DataBucket (AWS::S3::Bucket): removed; policy Retain: kept, outside the stack: BLOCKED" in render_text(
        review
    )


@pytest.mark.parametrize(
    ("action", "type_", "replacement", "policy", "found"),
    [
        ("Dynamic", "AWS::DynamoDB::Table", None, None, True),
        ("SyncWithActual", "AWS::RDS::DBInstance", None, None, False),
        ("Import", "AWS::S3::Bucket", None, None, False),
        ("Add", "AWS::EC2::Volume", None, None, False),
        ("Modify", "AWS::Cognito::UserPool", "False", None, False),
        ("Modify", "AWS::Cognito::UserPool", "False", "ReplaceAndRetain", True),
        ("Remove", "AWS::Backup::BackupVault", None, "Delete", True),
        ("Remove", "AWS::Example::Store", None, "Snapshot", True),  # only stores of data take snapshots
        ("Remove", "AWS::SNS::Topic", None, "Delete", False),
        ("SomethingNew", "AWS::RDS::DBCluster", None, None, True),  # an action AWS adds later: not known safe
    ],
)
def test_guard_rule(action: str, type_: str, replacement: str | None, policy: str | None, found: bool) -> None:
    stack = StackChanges("root", "s", "cs", [ResourceChange(action, "X", type_, replacement, policy_action=policy)])
    assert bool(guard.findings([stack], [])) is found


@pytest.mark.parametrize(
    ("action", "replacement", "asked"),
    [
        ("Remove", None, True),
        ("Modify", "True", True),
        ("Modify", "Conditional", True),
        ("Dynamic", None, True),
        ("Modify", "False", False),
        ("Add", None, False),
    ],
)
def test_nested_stack_contents_asked_when_the_stack_can_go(action: str, replacement: str | None, asked: bool) -> None:
    seen: list[str] = []

    def contents(stack: StackChanges, change: ResourceChange) -> list[guard.Held]:
        seen.append(change.logical_id)
        return [guard.Held(f"{stack.path}/{change.logical_id}", "Table", "AWS::DynamoDB::Table")]

    stack = StackChanges("root", "s", "cs", [ResourceChange(action, "DataStack", guard.NESTED_STACK, replacement)])
    found = guard.findings([stack], [], contents)
    assert (seen == ["DataStack"]) is asked
    assert [(f.path, f.logical_id, f.nested_stack, f.replacement) for f in found] == (
        [("root/DataStack", "Table", "DataStack", replacement)] if asked else []
    )


def test_a_retained_nested_stack_still_blocks_and_says_so() -> None:
    def contents(stack: StackChanges, change: ResourceChange) -> list[guard.Held]:
        return [guard.Held("root/DataStack", "Db", "AWS::RDS::DBInstance", "Snapshot")]

    change = ResourceChange("Remove", "DataStack", guard.NESTED_STACK, None, policy_action="Retain")
    (finding,) = guard.findings([StackChanges("root", "s", "cs", [change])], [], contents)
    assert (finding.logical_id, finding.policy_action, finding.allowed) == ("Db", "Retain", False)
    assert finding.what == "goes with nested stack DataStack (removed); policy Retain: kept, outside the stack"


def test_held_in_template_for_callers_with_templates_only() -> None:
    outer = {"Resources": {"Db": {"Type": "AWS::RDS::DBCluster"}, "Inner": {"Type": guard.NESTED_STACK}}}
    inner = {"Resources": {"Table": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain"}}}
    held = guard.held_in(outer, "root/Data", lambda path, lid, res: inner)
    assert held == [
        guard.Held("root/Data", "Db", "AWS::RDS::DBCluster"),
        guard.Held("root/Data/Inner", "Table", "AWS::DynamoDB::Table", "Retain"),
    ]
    assert guard.held_in(outer, "root/Data", lambda path, lid, res: "unreadable") == "root/Data/Inner: unreadable"
    for_each = {"Resources": {"Fn::ForEach::Tables": ["Name", ["A"], {"${Name}": {"Type": "AWS::DynamoDB::Table"}}]}}
    assert guard.held_in(for_each, "root/Data", lambda path, lid, res: inner) == (
        "root/Data/Fn::ForEach::Tables: not a resource (a transform not processed)"
    )


def test_template_contents_for_callers_with_a_previous_build() -> None:
    templates = {
        "root/DataStack": {
            "Resources": {"Db": {"Type": "AWS::RDS::DBInstance"}, "Inner": {"Type": guard.NESTED_STACK}}
        },
        "root/DataStack/Inner": {"Resources": {"Vault": {"Type": "AWS::Backup::BackupVault"}}},
        "root/Quiet": {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}},
    }
    contents = guard.template_contents(templates.get)
    changes = [ResourceChange("Remove", n, guard.NESTED_STACK, None) for n in ("DataStack", "Quiet", "Unknown")]
    found = guard.findings([StackChanges("root", "s", "cs", changes)], ["Unknown"], contents)
    assert [(f.path, f.logical_id, f.allowed, f.reason) for f in found] == [
        ("root/DataStack", "Db", False, None),
        ("root/DataStack/Inner", "Vault", False, None),
        ("root", "Unknown", True, "root/Unknown: no template"),
    ]


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("https://s3.eu-central-1.amazonaws.com/b/k/x.json", ("b", "k/x.json")),
        ("https://b.s3.eu-central-1.amazonaws.com/k/x.json", ("b", "k/x.json")),
        ("https://s3.amazonaws.com/b/x.json", ("b", "x.json")),
        ("https://example.com/b/x.json", None),
        ("http://s3.amazonaws.com/b/x.json", None),
    ],
)
def test_s3_location(url: str, location: tuple[str, str] | None) -> None:
    assert deployed.s3_location(url) == location


def test_stack_policy_protects_nested_stacks() -> None:
    deny = json.loads(guard.stack_policy())["Statement"][1]
    assert guard.NESTED_STACK in deny["Condition"]["StringEquals"]["ResourceType"]
    assert "AWS::DynamoDB::Table" in deny["Condition"]["StringEquals"]["ResourceType"]


def test_plan_exit_line_names_the_nested_stack_to_allow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kr_cfn.deploy.commands import _report

    finding = GuardFinding(
        "root/DataStack", "DbInstance", "AWS::RDS::DBInstance", "Remove", None, False, None, "DataStack"
    )
    review = Review("kr", "kr-cfn-1", "arn:cs", "UPDATE", REGION, stacks=[], findings=[finding])
    review.stacks = [
        StackChanges("root", "kr", "arn:cs", [ResourceChange("Remove", "DataStack", guard.NESTED_STACK, None)])
    ]
    assert _report(review, tmp_path, "review") == EXIT_GUARD
    assert capsys.readouterr().err.strip() == (
        "guard: root/DataStack/DbInstance (AWS::RDS::DBInstance) would be removed with nested stack DataStack; "
        "re-plan with --allow-replace DataStack if that data may be lost"
    )


def test_plan_and_apply_block_removing_a_nested_stack_on_the_endpoint(stacks: dict[str, tuple[str, str]]) -> None:
    """A real change set (moto's: no PhysicalResourceId, no nested change sets) that drops DataStack."""
    root = json.loads((FIXTURES / "deployed" / "root.json").read_text())
    del root["Resources"]["DataStack"]
    target = changeset.Target(stack_name=ROOT, template_body=json.dumps(root), nested=True)
    aws = Aws(REGION)
    review, _ = changeset.plan(aws, target, "staging", [])
    assert [(c.action, c.logical_id) for c in review.stacks[0].changes if c.action != "Modify"] == [
        ("Remove", "DataStack")
    ]
    assert [r[:4] for r in _rows(review)] == [r[:4] for r in DATA_STACK] and review.blocked == review.findings
    with pytest.raises(DeployError, match="not allowed at plan time: root/DataStack/DbInstance") as exc:
        apply.check(aws, ROOT, review.change_set_name)
    assert exc.value.code == EXIT_GUARD
    allowed, _ = changeset.plan(aws, target, "staging", ["DataStack"])
    assert allowed.findings and allowed.blocked == []
    rechecked, _ = apply.check(aws, ROOT, allowed.change_set_name, allowed=["DataStack"])
    assert rechecked.blocked == [] and "DataStack" in guard.lifted_ids(rechecked)


def test_a_change_set_description_allows_nothing(stacks: dict[str, tuple[str, str]]) -> None:
    """Failed before: apply took the --allow-replace list from the change set's Description, which
    whoever may create a change set on the stack writes (the pull-request plan role too). A change
    set claiming there that the database may go is blocked; the trusted lists still allow it: the
    apply command line, or the plan record (whose digest the release checks)."""
    root = json.loads((FIXTURES / "deployed" / "root.json").read_text())
    del root["Resources"]["DataStack"]
    aws = Aws(REGION)
    claim = "kr-cfn allow-replace: DataStack, DbInstance, DataBucket, DbSecret, AppLogGroup"
    made = _cfn().create_change_set(
        StackName=ROOT,
        ChangeSetName="kr-cfn-0123456789abcdef-planted1",
        TemplateBody=json.dumps(root),
        ChangeSetType="UPDATE",
        Description=claim,
        IncludeNestedStacks=True,
    )
    assert _cfn().describe_change_set(ChangeSetName=made["Id"])["Description"] == claim
    with pytest.raises(DeployError) as exc:  # named by ARN, it must still be on the stack apply was given
        apply.check(aws, "knowledgerouter-dev", made["Id"], allowed=["DataStack"])
    assert str(exc.value) == f"change set {made['Id']} is on stack {ROOT}, not on knowledgerouter-dev"
    with pytest.raises(DeployError, match="not allowed at plan time: root/DataStack/DbInstance") as exc:
        apply.check(aws, ROOT, "kr-cfn-0123456789abcdef-planted1")
    assert exc.value.code == EXIT_GUARD
    # the same change set, allowed where it is trusted
    review, cs = apply.check(aws, ROOT, "kr-cfn-0123456789abcdef-planted1", allowed=["DataStack"])
    assert review.blocked == [] and "DataStack" in guard.lifted_ids(review)
    stack = changeset.stack_status(aws, ROOT)
    record = apply.plan_record(review, cs, stack, "staging", None, False, allowed=["DataStack"])
    assert record["allow_replace"] == ["DataStack"]
    review, _ = apply.check(aws, ROOT, "kr-cfn-0123456789abcdef-planted1", record)
    assert review.blocked == [] and "DataStack" in guard.lifted_ids(review)
    with pytest.raises(DeployError) as exc:
        apply.check(aws, ROOT, "kr-cfn-0123456789abcdef-planted1", {**record, "allow_replace": []})
    assert exc.value.code == EXIT_GUARD
    _cfn().delete_change_set(ChangeSetName=made["Id"])


def test_change_sets_are_described_with_property_values(stacks: dict[str, tuple[str, str]]) -> None:
    """DescribeChangeSet asks for IncludePropertyValues (the before/after values the protections rule reads).

    moto answers the call but gives no property values; the rule on AWS-shaped responses is
    tests/test_protections.py.
    """
    cfn = _cfn()
    sent: list[dict[str, Any]] = []
    cfn.meta.events.register(
        "provide-client-params.cloudformation.DescribeChangeSet", lambda params, **_: sent.append(dict(params))
    )
    root = json.loads((FIXTURES / "deployed" / "root.json").read_text())
    root["Resources"]["DataStack"]["Properties"].setdefault("Tags", []).append({"Key": "k", "Value": "v"})
    arn = cfn.create_change_set(StackName=ROOT, ChangeSetName="kr-cfn-values", TemplateBody=json.dumps(root))["Id"]
    try:
        described = changeset._describe_all(cfn, arn)
        assert described["ChangeSetId"] == arn
        assert sent and all(p["IncludePropertyValues"] is True for p in sent)
    finally:
        cfn.delete_change_set(ChangeSetName=arn)
