"""The offline IAM evaluator (tests/policy_eval.py) on AWS's documented cases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.policy_eval import Request, action_allowed_somewhere, evaluate

ROLE = "arn:aws:iam::111111111111:role/app/task"
BOUNDARY = "arn:aws:iam::111111111111:policy/app-boundary"


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_wildcards_in_actions_ignore_case_and_resources_do_not() -> None:
    policy = _doc({"Sid": "A", "Effect": "Allow", "Action": "S3:Get*", "Resource": "arn:aws:s3:::b/*"})
    assert evaluate(Request("s3:GetObject", "arn:aws:s3:::b/k"), {"p": policy}).allowed
    assert not evaluate(Request("s3:PutObject", "arn:aws:s3:::b/k"), {"p": policy}).allowed
    assert not evaluate(Request("s3:GetObject", "arn:aws:s3:::B/k"), {"p": policy}).allowed
    one = _doc({"Effect": "Allow", "Action": "s3:GetObjec?", "Resource": "*"})
    assert evaluate(Request("s3:GetObject", "x"), {"p": one}).allowed


def test_implicit_deny_names_the_action_and_resource() -> None:
    decision = evaluate(Request("iam:CreateRole", ROLE), {"p": _doc()})
    assert decision.reason == f"implicitly denied: no identity policy allows iam:CreateRole on {ROLE}"


def test_explicit_deny_wins_over_allow_in_another_policy() -> None:
    allow = _doc({"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = _doc({"Sid": "NoIam", "Effect": "Deny", "Action": "iam:*", "Resource": ROLE})
    decision = evaluate(Request("iam:PutRolePolicy", ROLE), {"allow": allow, "deny": deny})
    assert decision.reason == "explicitly denied by NoIam (deny)"
    assert evaluate(Request("iam:PutRolePolicy", ROLE + "2"), {"allow": allow, "deny": deny}).allowed


def test_not_action_and_not_resource() -> None:
    policy = _doc(
        {"Sid": "D", "Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "arn:aws:s3:::art/*"},
        {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"},
    )
    assert evaluate(Request("s3:GetObject", "arn:aws:s3:::art/t"), {"p": policy}).allowed
    assert evaluate(Request("s3:PutObject", "arn:aws:s3:::art/t"), {"p": policy}).reason.startswith(
        "explicitly denied by D"
    )
    assert not evaluate(Request("s3:GetObject", "arn:aws:s3:::secret/t"), {"p": policy}).allowed


def test_boundary_limits_an_administrator_policy() -> None:
    admin = _doc({"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": "*"})
    boundary = _doc({"Sid": "Logs", "Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"})
    assert evaluate(Request("logs:PutLogEvents", "x"), {"admin": admin}, boundary).allowed
    decision = evaluate(Request("iam:CreateUser", "x"), {"admin": admin}, boundary)
    assert decision.reason == "implicitly denied: the permissions boundary does not allow iam:CreateUser"
    # The boundary grants nothing by itself.
    assert not evaluate(Request("logs:PutLogEvents", "x"), {}, boundary).allowed


@pytest.mark.parametrize(
    ("operator", "wanted", "context", "expected"),
    [
        ("StringEquals", BOUNDARY, {"iam:PermissionsBoundary": BOUNDARY}, True),
        ("StringEquals", BOUNDARY, {"iam:PermissionsBoundary": BOUNDARY + "x"}, False),
        ("StringEquals", BOUNDARY, {}, False),  # missing key: a positive operator is false
        ("StringEquals", [BOUNDARY, "other"], {"iam:permissionsboundary": "other"}, True),  # keys ignore case
        ("StringNotEquals", BOUNDARY, {}, True),  # missing key: a negated operator is true
        ("StringNotEquals", BOUNDARY, {"iam:PermissionsBoundary": BOUNDARY}, False),
        ("StringLike", "arn:aws:iam::*:policy/app-*", {"iam:PermissionsBoundary": BOUNDARY}, True),
        ("StringNotLike", "arn:aws:iam::*:policy/x*", {"iam:PermissionsBoundary": BOUNDARY}, True),
        ("ArnLike", "arn:aws:iam::*:policy/app-boundary", {"iam:PermissionsBoundary": BOUNDARY}, True),
        ("ArnEquals", "arn:aws:iam::111111111111:policy/app-*", {"iam:PermissionsBoundary": BOUNDARY}, True),
        ("ArnLike", "arn:aws:iam::*:policy/app-boundary", {"iam:PermissionsBoundary": "not-an-arn"}, False),
        ("ArnNotLike", "arn:aws:iam::*:policy/app-boundary", {"iam:PermissionsBoundary": BOUNDARY}, False),
        ("StringEqualsIfExists", BOUNDARY, {}, True),
        ("StringEqualsIgnoreCase", BOUNDARY.upper(), {"iam:PermissionsBoundary": BOUNDARY}, True),
        ("Bool", "false", {"iam:PermissionsBoundary": False}, True),
    ],
)
def test_condition_operators(operator: str, wanted: Any, context: dict[str, Any], expected: bool) -> None:
    policy = _doc(
        {
            "Effect": "Allow",
            "Action": "iam:CreateRole",
            "Resource": "*",
            "Condition": {operator: {"iam:PermissionsBoundary": wanted}},
        }
    )
    assert evaluate(Request("iam:CreateRole", ROLE, context), {"p": policy}).allowed is expected


def test_conditions_are_anded_across_operators_and_ored_across_values() -> None:
    policy = _doc(
        {
            "Effect": "Allow",
            "Action": "iam:AttachRolePolicy",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"iam:PermissionsBoundary": BOUNDARY},
                "ArnEquals": {"iam:PolicyARN": ["arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B"]},
            },
        }
    )
    both = {"iam:PermissionsBoundary": BOUNDARY, "iam:PolicyARN": "arn:aws:iam::aws:policy/B"}
    assert evaluate(Request("iam:AttachRolePolicy", ROLE, both), {"p": policy}).allowed
    assert not evaluate(
        Request("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": "arn:aws:iam::aws:policy/B"}), {"p": policy}
    ).allowed
    admin = {**both, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}
    assert not evaluate(Request("iam:AttachRolePolicy", ROLE, admin), {"p": policy}).allowed


def test_unknown_operators_raise() -> None:
    for operator in ("NumericLessThan", "NullIfExists", "ForSome:StringEquals"):
        policy = _doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {operator: {"k": "1"}}})
        with pytest.raises(ValueError, match="is not supported"):
            evaluate(Request("s3:GetObject", "x", {"k": "1"}), {"p": policy})


def test_null_tests_whether_the_key_is_there() -> None:
    key = "aws:ResourceTag/aws:cloudformation:stack-name"
    policy = _doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Null": {key: "false"}}})
    assert evaluate(Request("ec2:CreateRoute", "x", {key: "s"}), {"p": policy}).allowed
    assert not evaluate(Request("ec2:CreateRoute", "x", {}), {"p": policy}).allowed
    absent = _doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Null": {key: "true"}}})
    assert evaluate(Request("ec2:CreateRoute", "x", {}), {"p": absent}).allowed
    assert not evaluate(Request("ec2:CreateRoute", "x", {key: "s"}), {"p": absent}).allowed


def test_action_allowed_somewhere() -> None:
    policy = _doc({"Effect": "Allow", "Action": ["ecr:Batch*"], "Resource": "arn:aws:ecr:*:*:repository/x"})
    assert action_allowed_somewhere("ecr:BatchGetImage", policy)
    assert not action_allowed_somewhere("ecr:PutImage", policy)


def test_set_operators_on_multi_valued_keys() -> None:
    # AWS's "deny all CloudFormation import operations" example.
    deny = _doc(
        {"Sid": "All", "Effect": "Allow", "Action": "cloudformation:*", "Resource": "*"},
        {
            "Sid": "DenyImport",
            "Effect": "Deny",
            "Action": "cloudformation:*",
            "Resource": "*",
            "Condition": {"ForAnyValue:StringLike": {"cloudformation:ImportResourceTypes": ["*"]}},
        },
    )
    importing = {"cloudformation:ImportResourceTypes": ["AWS::S3::Bucket", "AWS::RDS::DBInstance"]}
    assert evaluate(Request("cloudformation:CreateChangeSet", "s", importing), {"p": deny}).reason == (
        "explicitly denied by DenyImport (p)"
    )
    assert evaluate(Request("cloudformation:CreateChangeSet", "s"), {"p": deny}).allowed
    only_buckets = _doc(
        {
            "Effect": "Allow",
            "Action": "cloudformation:*",
            "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"cloudformation:ImportResourceTypes": ["AWS::S3::Bucket"]}},
        }
    )
    assert not evaluate(Request("cloudformation:CreateChangeSet", "s", importing), {"p": only_buckets}).allowed
    buckets = {"cloudformation:ImportResourceTypes": ["AWS::S3::Bucket"]}
    assert evaluate(Request("cloudformation:CreateChangeSet", "s", buckets), {"p": only_buckets}).allowed
    assert evaluate(Request("cloudformation:CreateChangeSet", "s"), {"p": only_buckets}).allowed
