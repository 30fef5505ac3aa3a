"""Protections taken away in place (issue 21, item 1): the corpus in tests/fixtures/protections/.

Each case is one edit of prod's built templates and the DescribeChangeSet response (IncludePropertyValues:
``Details[].Target`` with ``Path``, ``BeforeValue``/``AfterValue`` as AWS returns them, and sometimes the
change's ``BeforeContext``/``AfterContext``) the same edit gives. A weakening blocks both ``kr-cfn diff``
(the template forecast) and ``plan``/``apply`` (the change set) with the same review text, and
``--allow-replace`` accepts it; a strengthening or neutral edit passes both.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kr_cfn import trees
from kr_cfn.changes import changeset, diffcmd, guard
from kr_cfn.changes.review import render_markdown, render_text
from tests.test_forecast import _prod

REGION = "eu-central-1"
CORPUS = Path(__file__).parent / "fixtures" / "protections"
CASES = {p.stem: json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))}
WEAKER = [name for name, case in CASES.items() if case["weaker"]]
NEUTRAL = [name for name, case in CASES.items() if not case["weaker"]]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, trees.Tree]:
    """prod as shipped (Qdrant on its EBS volume), and prod with Qdrant on EFS."""
    return {
        "prod": _prod(tmp_path_factory.mktemp("prod"), None),
        "prod-efs": _prod(tmp_path_factory.mktemp("prod-efs"), "efs"),
    }


def _edited(tree: trees.Tree, case: dict[str, Any]) -> trees.Tree:
    new = copy.deepcopy(tree)
    node: Any = new.children[case["stack"]].template["Resources"][case["logical_id"]]
    for op, path, *value in case["edit"]:
        for key in path[:-1]:
            node = node[key]
        if op == "set":
            node[path[-1]] = value[0]
        elif op == "append":
            node[path[-1]].append(value[0])
        else:
            del node[path[-1]]
        node = new.children[case["stack"]].template["Resources"][case["logical_id"]]
    return new


def _forecast(builds: dict[str, trees.Tree], case: dict[str, Any], allowed: tuple[str, ...] = ()) -> Any:
    old = builds[case["build"]]
    return diffcmd.make_review(old, _edited(old, case), REGION, "knowledgerouter", "test", allowed)


ARN = "arn:aws:cloudformation:eu-central-1:123456789012"
ROOT_ID = f"{ARN}:changeSet/kr-cfn-3f9c2a7d1e0b4c5a-1a2b3c4d/11111111-2222-3333-4444-555555555555"


def _change_set(case: dict[str, Any], allowed: tuple[str, ...] = ()) -> Any:
    """The review ``plan`` and ``apply`` make of the case's change set: the root's, then the nested one."""
    nested = case["describe_change_set"]
    root = {
        "ChangeSetName": "kr-cfn-3f9c2a7d1e0b4c5a-1a2b3c4d",
        "ChangeSetId": ROOT_ID,
        "StackId": f"{ARN}:stack/knowledgerouter/0a1b2c3d-0000-1111-2222-333344445555",
        "StackName": "knowledgerouter",
        "IncludeNestedStacks": True,
        "Status": "CREATE_COMPLETE",
        "ExecutionStatus": "AVAILABLE",
        "Changes": [
            {
                "Type": "Resource",
                "ResourceChange": {
                    "Action": "Modify",
                    "LogicalResourceId": case["stack"],
                    "PhysicalResourceId": nested["StackId"],
                    "ResourceType": "AWS::CloudFormation::Stack",
                    "Replacement": "False",
                    "Scope": ["Properties"],
                    "ChangeSetId": nested["ChangeSetId"],
                    "Details": [
                        {
                            "Target": {"Attribute": "Properties", "Name": "TemplateURL", "RequiresRecreation": "Never"},
                            "Evaluation": "Static",
                            "ChangeSource": "DirectModification",
                        }
                    ],
                },
            }
        ],
    }
    pages = {nested["ChangeSetId"]: nested}
    stacks = changeset.walk(lambda arn: copy.deepcopy(pages[arn]), root)
    return changeset.build_review(root, stacks, REGION, list(allowed), "UPDATE")


def test_corpus_size() -> None:
    assert len(WEAKER) >= 12 and len(NEUTRAL) >= 8


@pytest.mark.parametrize("name", WEAKER)
def test_weakening_blocks_the_forecast_and_the_change_set(builds: dict[str, trees.Tree], name: str) -> None:
    case = CASES[name]
    for review in (_forecast(builds, case), _change_set(case)):
        assert [(f.path, f.logical_id) for f in review.blocked] == [(f"root/{case['stack']}", case["logical_id"])]
        finding = review.blocked[0]
        assert finding.what == f"protection taken away in place: {case['review']}"
        assert f"guard: root/{case['stack']}/{case['logical_id']} " in render_text(review)
        assert case["review"] in render_markdown(review)
        assert guard.lifted_ids(review) == []  # an update: the stack policy need not be lifted
    for review in (_forecast(builds, case, (case["logical_id"],)), _change_set(case, (case["logical_id"],))):
        assert not review.blocked and review.findings[0].allowed


@pytest.mark.parametrize("name", NEUTRAL)
def test_strengthening_or_neutral_edit_passes(builds: dict[str, trees.Tree], name: str) -> None:
    case = CASES[name]
    forecast = _forecast(builds, case)
    assert forecast.findings == [] and forecast.has_changes
    review = _change_set(case)
    assert review.findings == [] and review.stacks[1].changes[0].logical_id == case["logical_id"]
