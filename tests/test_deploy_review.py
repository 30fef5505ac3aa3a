"""Review and guard on recorded DescribeChangeSet responses (nested change sets, Replacement, Details).

moto's change sets have neither nested change sets nor Replacement/Details, so this is where
the walk, the review and the guard meet the API's full shape (tests/fixtures/).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kr_cfn.changes import apply, changeset, guard
from kr_cfn.changes.review import Review, render_markdown, render_text
from kr_cfn.errors import DeployError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "change-set-db-replacement"


def _responses() -> dict[str, dict[str, Any]]:
    return {r["ChangeSetId"]: r for r in (json.loads(p.read_text()) for p in FIXTURES.glob("*.json"))}


def _review(allowed: list[str]) -> Review:
    responses = _responses()
    root = json.loads((FIXTURES / "root.json").read_text())
    stacks = changeset.walk(responses.__getitem__, root)
    return changeset.build_review(root, stacks, "eu-central-1", allowed, "UPDATE")


def test_walk_follows_the_nested_change_sets() -> None:
    review = _review([])
    assert [s.path for s in review.stacks] == ["root", "root/DataStack", "root/EcsStack"]
    assert [c.logical_id for c in review.stacks[1].changes] == ["DbInstance", "DataBucket", "DbAlarmTopicSubscription"]
    db = review.stacks[1].changes[0]
    assert (db.action, db.type, db.replacement) == ("Modify", "AWS::RDS::DBInstance", "True")
    assert [(p.name, p.requires_recreation) for p in db.properties] == [
        ("StorageEncrypted", "Always"),
        ("DBInstanceClass", "Never"),
    ]


def test_guard_blocks_replacing_the_database() -> None:
    review = _review([])
    assert [(f.path, f.logical_id, f.replacement, f.allowed) for f in review.findings] == [
        ("root/DataStack", "DbInstance", "True", False)
    ]
    assert review.blocked == review.findings


def test_guard_allows_it_when_named() -> None:
    review = _review(["DbInstance"])
    assert [f.logical_id for f in review.findings] == ["DbInstance"]
    assert review.blocked == []


def test_guard_ignores_replacements_of_stateless_resources() -> None:
    review = _review([])
    replaced = {c.logical_id for s in review.stacks for c in s.changes if c.replacement in ("True", "Conditional")}
    assert replaced == {"DbInstance", "BackendTaskDefinition", "FrontendTaskDefinition", "BackendScalableTarget"}
    assert {f.logical_id for f in review.findings} == {"DbInstance"}


@pytest.mark.parametrize(
    ("type_", "action", "replacement", "found"),
    [
        ("AWS::EFS::FileSystem", "Remove", None, True),
        ("AWS::S3::Bucket", "Modify", "Conditional", True),
        ("AWS::SecretsManager::Secret", "Modify", "False", False),
        ("AWS::Logs::LogGroup", "Remove", None, True),
        ("AWS::KMS::Key", "Modify", "True", True),
        ("AWS::ElastiCache::ReplicationGroup", "Modify", "True", True),
        ("AWS::ECR::Repository", "Add", None, False),
        ("AWS::ECS::Service", "Remove", None, False),
    ],
)
def test_guard_rule(type_: str, action: str, replacement: str | None, found: bool) -> None:
    from kr_cfn.changes.review import ResourceChange, StackChanges

    stack = StackChanges("root", "s", "cs", [ResourceChange(action, "X", type_, replacement)])
    assert bool(guard.findings([stack], [])) is found


def test_markdown_review_golden(request: pytest.FixtureRequest) -> None:
    text = render_markdown(_review([]))
    path = FIXTURES.parent / "change-set-db-replacement.md"
    if request.config.getoption("--update-golden"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_text_and_json_review() -> None:
    review = _review(["DbInstance"])
    text = render_text(review)
    assert "root/DataStack (knowledgerouter-staging-DataStack-QX1Z2Y3W4V5U): 3 change(s)" in text
    assert (
        "guard: root/DataStack/DbInstance (AWS::RDS::DBInstance): replacement (True) of a stateful resource: "
        "allowed by --allow-replace" in text
    )
    data = json.loads(review.to_json())
    assert data["has_changes"] is True and data["blocked"] == []
    assert data["console_url"].startswith("https://eu-central-1.console.aws.amazon.com/cloudformation/home")
    assert (
        "stackId=arn%3Aaws%3Acloudformation%3Aeu-central-1%3A123456789012%3Astack%2Fknowledgerouter-staging%2F"
        in (data["console_url"])
    )


def test_change_set_name_is_stable_and_follows_the_content() -> None:
    t = changeset.Target("s", template_url="https://s3.eu-central-1.amazonaws.com/b/k", parameters=(("A", "1"),))
    assert changeset.change_set_name(t, "UPDATE", []) == changeset.change_set_name(t, "UPDATE", [])
    other = changeset.Target("s", template_url="https://s3.eu-central-1.amazonaws.com/b/k", parameters=(("A", "2"),))
    assert changeset.change_set_name(t, "UPDATE", []) != changeset.change_set_name(other, "UPDATE", [])
    assert changeset.change_set_name(t, "UPDATE", []) != changeset.change_set_name(t, "UPDATE", ["DbInstance"])
    assert changeset.change_set_name(t, "UPDATE", []).startswith("kr-cfn-")


def test_stack_policy_denies_replacing_and_deleting_stateful_resources() -> None:
    policy = json.loads(guard.stack_policy())
    allow, deny = policy["Statement"]
    assert allow == {
        "Sid": "UpdateEverythingElse",
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["Update:*"],
        "Resource": ["*"],
    }
    assert deny["Effect"] == "Deny" and deny["Action"] == ["Update:Replace", "Update:Delete"]
    assert deny["Resource"] == ["*"]
    assert "AWS::RDS::DBInstance" in deny["Condition"]["StringEquals"]["ResourceType"]
    lifted = json.loads(guard.stack_policy(except_ids=["DbInstance"]))["Statement"][1]
    assert lifted["NotResource"] == ["LogicalResourceId/DbInstance"] and "Resource" not in lifted


def _event(stack: str, logical_id: str, status: str, second: int, reason: str = "") -> dict[str, Any]:
    return {
        "EventId": f"{stack}-{logical_id}-{status}",
        "StackName": stack,
        "LogicalResourceId": logical_id,
        "ResourceType": "AWS::CloudFormation::Stack" if logical_id.endswith("Stack") else "AWS::RDS::DBInstance",
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
        "Timestamp": datetime(2026, 11, 28, 12, 0, second, tzinfo=UTC),
    }


def test_root_cause_is_the_first_failure_in_the_deepest_stack() -> None:
    events = [
        (0, _event("root", "DataStack", "UPDATE_IN_PROGRESS", 1)),
        (1, _event("root-DataStack-X", "DbInstance", "UPDATE_FAILED", 5, "DB instance class not available in AZ")),
        (1, _event("root-DataStack-X", "DataBucket", "UPDATE_FAILED", 6, "Resource update cancelled")),
        (0, _event("root", "DataStack", "UPDATE_FAILED", 7, "Embedded stack was not successfully updated")),
    ]
    cause = apply.root_cause(events)
    assert cause is not None and cause["LogicalResourceId"] == "DbInstance"
    assert apply.root_cause(events[:1]) is None


def test_root_cause_passes_over_resources_cancelled_in_a_deeper_stack() -> None:
    # A root-level failure cancels the nested stack's creation: its resources fail one level
    # deeper, but only as "Resource creation cancelled".
    events = [
        (0, _event("root", "Certificate", "CREATE_FAILED", 3, "Certificate limit exceeded")),
        (1, _event("root-DataStack-X", "DbInstance", "CREATE_FAILED", 4, "Resource creation cancelled")),
        (0, _event("root", "DataStack", "CREATE_FAILED", 5, "Resource creation cancelled")),
    ]
    cause = apply.root_cause(events)
    assert cause is not None and cause["LogicalResourceId"] == "Certificate"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            "ROLLBACK_COMPLETE",
            "stack kr is ROLLBACK_COMPLETE (its first deploy failed and was rolled back): "
            "delete it (aws cloudformation delete-stack --stack-name kr) and plan again",
        ),
        (
            "UPDATE_IN_PROGRESS",
            "stack kr is UPDATE_IN_PROGRESS: another deploy is running; wait until it ends "
            "(kr-cfn status --env dev) and plan again",
        ),
    ],
)
def test_stacks_that_cannot_take_a_change_set(status: str, message: str) -> None:
    with pytest.raises(DeployError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$") as exc:
        changeset.check_deployable({"StackName": "kr", "StackStatus": status}, "dev")
    assert exc.value.code == 2


def test_stack_that_cannot_be_updated() -> None:
    with pytest.raises(DeployError, match=r"^stack kr is DELETE_FAILED and cannot be updated: see kr-cfn status"):
        changeset.check_deployable({"StackName": "kr", "StackStatus": "DELETE_FAILED"}, "dev")


def test_change_set_type() -> None:
    assert changeset.check_deployable(None, "dev") == "CREATE"
    assert changeset.check_deployable({"StackName": "kr", "StackStatus": "REVIEW_IN_PROGRESS"}, "dev") == "CREATE"
    assert changeset.check_deployable({"StackName": "kr", "StackStatus": "UPDATE_ROLLBACK_COMPLETE"}, "dev") == "UPDATE"


def test_plan_refuses_a_package_older_than_the_build(tmp_path: Path) -> None:
    from kr_cfn.changes import package

    (tmp_path / "root.yaml").write_text("Resources: {}\n")
    (tmp_path / "package.json").write_text(
        json.dumps({"root_template_url": "u", "sources": {"root.yaml": "0" * 64}}), encoding="utf-8"
    )
    with pytest.raises(DeployError, match=r"root.yaml: changed since kr-cfn package; run kr-cfn package"):
        package.read_package(tmp_path)


def test_image_tags_not_named_keep_the_deployed_values() -> None:
    # Left out of an update, a parameter would take the template's Default ("latest").
    from argparse import Namespace

    from kr_cfn.deploy.commands import _parameters

    root = {"Parameters": {"BackendImageTag": {"Type": "String", "Default": "latest"}, "Other": {"Default": "x"}}}
    deployed = {"StackStatus": "UPDATE_COMPLETE", "Parameters": [{"ParameterKey": "BackendImageTag"}]}
    assert _parameters(Namespace(image_tag=None), root, deployed) == [("BackendImageTag", None)]
    assert _parameters(Namespace(image_tag=["backend=v3"]), root, deployed) == [("BackendImageTag", "v3")]
    assert _parameters(Namespace(image_tag=None), root, None) == []


def test_events_are_read_from_every_page_up_to_the_last_seen() -> None:
    # moto returns every event on one page; AWS pages them (newest first), so a fake stands in here.
    pages = [
        {"StackEvents": [{**_event("s", f"R{i}", "CREATE_COMPLETE", 59 - i), "EventId": f"e{i}"} for i in range(3)]},
        {"StackEvents": [{**_event("s", f"R{i}", "CREATE_COMPLETE", 59 - i), "EventId": f"e{i}"} for i in (3, 4)]},
    ]

    class _Cfn:
        def get_paginator(self, name: str) -> Any:
            assert name == "describe_stack_events"
            return type("P", (), {"paginate": lambda self, **kw: iter(pages)})()

    since = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert [e["EventId"] for e in apply._events_since(_Cfn(), "s", since, set())] == ["e0", "e1", "e2", "e3", "e4"]
    assert [e["EventId"] for e in apply._events_since(_Cfn(), "s", since, {"e2"})] == ["e0", "e1"]
    later = datetime(2026, 11, 28, 12, 0, 57, tzinfo=UTC)
    assert [e["EventId"] for e in apply._events_since(_Cfn(), "s", later, set())] == ["e0", "e1", "e2"]
