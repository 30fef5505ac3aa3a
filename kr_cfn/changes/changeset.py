"""Change sets: create (CREATE or UPDATE) with nested stacks, wait, walk, review, delete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from kr_cfn.aws import Aws, error_code, error_message
from kr_cfn.changes import deployed, guard
from kr_cfn.changes.review import (
    CHANGED,
    GuardFinding,
    ParameterChange,
    PropertyChange,
    ResourceChange,
    Review,
    StackChanges,
    parameter_changes,
)
from kr_cfn.errors import DeployError

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
CHANGE_SET_PREFIX = "kr-cfn-"
PR_CHANGE_SET_PREFIX = "kr-cfn-pr-"
"""Change sets of pull-request plans: the plan role may create and delete only these, the deploy role
never executes one (condition cloudformation:ChangeSetName, stacks/bootstrap.py)."""
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_ALLOW_PREFIX = "kr-cfn allow-replace:"
"""The change set's Description repeats the plan's --allow-replace list for people; apply never reads it
(whoever may create a change set writes it): the plan record holds the list."""
_UPDATABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "UPDATE_FAILED",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)


@dataclass(frozen=True)
class Target:
    """What to plan: a stack, its template (URL or body), parameters, how it runs."""

    stack_name: str
    template_url: str | None = None
    template_body: str | None = None
    parameters: tuple[tuple[str, str | None], ...] = ()
    """(key, value); value None = keep the deployed value (UsePreviousValue)."""
    role_arn: str | None = None
    nested: bool = True
    tags: tuple[tuple[str, str], ...] = ()
    pull_request: bool = False
    """A pull-request plan (artifacts under pr/): its change set is named ``kr-cfn-pr-...``."""


def stack_status(aws: Aws, stack_name: str) -> dict[str, Any] | None:
    """The stack's description, or None when it does not exist."""
    try:
        return aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in error_message(exc):
            return None
        raise


def check_deployable(stack: dict[str, Any] | None, env: str) -> str:
    """CREATE or UPDATE; exit 2 for stacks that cannot take a change set now."""
    if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        return "CREATE"
    name, status = stack["StackName"], stack["StackStatus"]
    if status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {name} is ROLLBACK_COMPLETE (its first deploy failed and was rolled back): "
            f"delete it (aws cloudformation delete-stack --stack-name {name}) and plan again"
        )
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(
            f"stack {name} is {status}: another deploy is running; wait until it ends "
            f"(kr-cfn status --env {env}) and plan again"
        )
    if status == "UPDATE_ROLLBACK_FAILED":
        raise DeployError(
            f"stack {name} is UPDATE_ROLLBACK_FAILED: fix the cause shown by kr-cfn status --env {env}, "
            f"then aws cloudformation continue-update-rollback --stack-name {name}"
        )
    if status in _UPDATABLE:
        return "UPDATE"
    raise DeployError(f"stack {name} is {status} and cannot be updated: see kr-cfn status --env {env} and the console")


def change_set_name(target: Target, change_set_type: str, allowed: Sequence[str]) -> str:
    """The content part of a change set's name: equal plans share it (:func:`unique_name` adds the rest)."""
    content = {
        "url": target.template_url,
        "body": hashlib.sha256((target.template_body or "").encode()).hexdigest(),
        "parameters": sorted([k, v or ""] for k, v in target.parameters),
        "type": change_set_type,
        "allow": sorted(allowed),
        "role": target.role_arn,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return f"kr-cfn-{digest[:16]}"


def _describe_all(cfn: Any, change_set: str, stack_name: str | None = None) -> dict[str, Any]:
    # IncludePropertyValues: each change's Details carry BeforeValue/AfterValue at a property Path, and
    # the change its BeforeContext/AfterContext; the guard judges protections taken away with them
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeChangeSet.html,
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceTargetDefinition.html,
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChangeDetail.html,
    # example output: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-changesets-view.html).
    kwargs: dict[str, Any] = {"ChangeSetName": change_set, "IncludePropertyValues": True}
    if stack_name and not change_set.startswith("arn:"):
        kwargs["StackName"] = stack_name
    first: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = []
    while True:
        page = cfn.describe_change_set(**kwargs)
        first = first or page
        changes += page.get("Changes", [])
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    assert first is not None
    return {**first, "Changes": changes}


def describe(aws: Aws, change_set: str, stack_name: str | None = None) -> dict[str, Any]:
    """DescribeChangeSet (all pages); exit 2 when it does not exist."""
    try:
        return _describe_all(aws.client("cloudformation"), change_set, stack_name)
    except ClientError as exc:
        if error_code(exc) in ("ChangeSetNotFound", "ChangeSetNotFoundException", "ValidationError"):
            where = f" on stack {stack_name}" if stack_name else ""
            raise DeployError(f"change set {change_set} not found{where}; run kr-cfn plan again") from None
        raise


def _value(text: Any) -> Any:
    """A BeforeValue/AfterValue as template data: ``"7"`` -> 7, ``"true"`` -> True, JSON documents parsed."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _target_path(target: dict[str, Any]) -> tuple[str, ...] | None:
    """Where a detail's values go in the resource: its ``Path`` (a JSON pointer), else attribute and name."""
    path = target.get("Path")
    if isinstance(path, str) and path.startswith("/"):
        return tuple(p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/"))
    attribute = target.get("Attribute")
    if attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
        return (attribute,)
    return ("Properties", target["Name"]) if attribute == "Properties" and target.get("Name") else None


def _put(resource: dict[str, Any], path: tuple[str, ...], value: Any, present: bool) -> None:
    """Set (or, when not ``present``, clear) the value at ``path``; list items are addressed by index."""
    node: Any = resource
    for key in path[:-1]:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            return
    last = path[-1]
    if isinstance(node, list) and last.isdigit():
        index = int(last)
        if index < len(node):
            node[index] = value if present else None  # None keeps the later items' indices
        elif present:
            node.append(value)
    elif isinstance(node, dict):
        if present:
            node[last] = value
        else:
            node.pop(last, None)


def _context(text: Any) -> dict[str, Any]:
    data = _value(text)
    return data if isinstance(data, dict) else {}


def resource_views(rc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resource before and after a change, as far as DescribeChangeSet (IncludePropertyValues) tells.

    ``BeforeContext``/``AfterContext`` (the whole resource, when given), with each detail's
    ``BeforeValue``/``AfterValue`` placed at its ``Path`` (``/Properties/BackupRetentionPeriod``) or,
    for ``DeletionPolicy``/``UpdateReplacePolicy``, at the attribute. An ``Add`` has no before value,
    a ``Remove`` no after value (AttributeChangeType).
    """
    before, after = _context(rc.get("BeforeContext")), _context(rc.get("AfterContext"))
    for d in rc.get("Details", []):
        target = d.get("Target", {})
        path = _target_path(target)
        if path is None:
            continue
        for view, key in ((before, "BeforeValue"), (after, "AfterValue")):
            if key in target:
                _put(view, path, _value(target[key]), True)
            elif target.get("AttributeChangeType") == ("Add" if key == "BeforeValue" else "Remove"):
                _put(view, path, None, False)
    return before, after


def _account(stack_id: Any) -> str | None:
    """The account id in a stack ARN (``arn:aws:cloudformation:REGION:ACCOUNT:stack/...``)."""
    parts = str(stack_id or "").split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None


def _resource_change(change: dict[str, Any], account: str | None = None) -> ResourceChange:
    rc = change.get("ResourceChange", {})
    props: dict[str, PropertyChange] = {}
    order = {"Never": 0, "Conditionally": 1, "Always": 2}
    for d in rc.get("Details", []):
        t = d.get("Target", {})
        name = t.get("Name") or t.get("Attribute") or "?"
        recreate = t.get("RequiresRecreation", "Never")
        entity = d.get("CausingEntity")
        if name in props:
            before = props[name]
            if order.get(before.requires_recreation, 0) > order.get(recreate, 0):
                recreate = before.requires_recreation
            entities = [e for e in (before.causing_entity or "").split(", ") if e]
            if entity and entity not in entities:
                entities.append(entity)
            entity = ", ".join(entities) or None
        props[name] = PropertyChange(name, recreate, d.get("ChangeSource"), entity)
    return ResourceChange(
        action=rc.get("Action", "?"),
        logical_id=rc.get("LogicalResourceId", "?"),
        type=rc.get("ResourceType", "?"),
        replacement=rc.get("Replacement"),
        physical_id=rc.get("PhysicalResourceId"),
        properties=tuple(props.values()),
        nested_change_set_id=rc.get("ChangeSetId"),
        policy_action=rc.get("PolicyAction"),
        weakened=guard.weakened(rc.get("ResourceType", "?"), *resource_views(rc), account=account),
    )


def walk(describe_page: Any, root: dict[str, Any]) -> list[StackChanges]:
    """The root change set and every nested change set below it, depth first.

    ``describe_page(change_set_id)`` returns a nested change set (all pages), so the walk can
    run against the API or against recorded DescribeChangeSet responses.
    """
    out: list[StackChanges] = []

    def visit(cs: dict[str, Any], path: str) -> None:
        stack = StackChanges(path, cs.get("StackName", "?"), cs.get("ChangeSetId", "?"))
        account = _account(cs.get("StackId"))
        resources = [c for c in cs.get("Changes", []) if c.get("Type", "Resource") == "Resource"]
        stack.changes = [_resource_change(c, account) for c in resources]
        out.append(stack)
        for change in stack.changes:
            if change.nested_change_set_id:
                visit(describe_page(change.nested_change_set_id), f"{path}/{change.logical_id}")

    visit(root, "root")
    return out


def build_review(
    root: dict[str, Any],
    stacks: list[StackChanges],
    region: str,
    allowed: Sequence[str],
    change_set_type: str,
    *,
    contents: guard.Contents | None = None,
    parameters: list[ParameterChange] | None = None,
) -> Review:
    """The review of a walked change set with the guard's findings (DescribeChangeSet tells no type).

    ``contents`` reads what a removed or replaced nested stack holds (``deployed.Reader``).
    """
    findings = guard.findings(stacks, allowed, contents) + unseen_nested_stacks(root, stacks, allowed)
    return Review(
        parameters=parameters or [],
        stack_name=root.get("StackName", "?"),
        change_set_name=root.get("ChangeSetName", "?"),
        change_set_id=root.get("ChangeSetId", "?"),
        change_set_type=change_set_type,
        region=region,
        stack_id=root.get("StackId", ""),
        stacks=stacks,
        findings=findings,
    )


def unseen_nested_stacks(
    root: dict[str, Any], stacks: list[StackChanges], allowed: Sequence[str]
) -> list[GuardFinding]:
    """Nested stacks the change set updates without showing how: each one is blocked unless allowed.

    A change set made without IncludeNestedStacks (by hand, or by another tool) lists a nested
    stack only as ``Modify AWS::CloudFormation::Stack``: what the update does inside (replace the
    database) is decided at execution and never reviewed. With IncludeNestedStacks every nested
    stack's change carries its own change set (``ChangeSetId``)
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChange.html,
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/change-sets-for-nested-stacks.html).
    DescribeChangeSet always returns IncludeNestedStacks; without that field nothing is judged here.
    """
    if root.get("IncludeNestedStacks") is None:
        return []
    allow = set(allowed)
    return [
        GuardFinding(
            s.path,
            c.logical_id,
            c.type,
            c.action,
            c.replacement,
            c.logical_id in allow,
            c.policy_action,
            reason="its changes are not in this change set (made without IncludeNestedStacks): run kr-cfn plan",
        )
        for s in stacks
        for c in s.changes
        if c.type == guard.NESTED_STACK and c.action == "Modify" and not guard.at_risk(c) and not c.nested_change_set_id
    ]


def _no_changes(cs: dict[str, Any]) -> bool:
    return cs.get("Status") == "FAILED" and any(m in (cs.get("StatusReason") or "") for m in _NO_CHANGES)


def unique_name(target: Target, change_set_type: str, allowed: Sequence[str]) -> str:
    """The content name plus a random part: nobody can create the change set a plan will use."""
    name = change_set_name(target, change_set_type, allowed)
    if target.pull_request:
        name = PR_CHANGE_SET_PREFIX + name.removeprefix(CHANGE_SET_PREFIX)
    return f"{name}-{secrets.token_hex(4)}"


def plan(aws: Aws, target: Target, env: str, allowed: Sequence[str]) -> tuple[Review, dict[str, Any]]:
    """Create a new change set, wait, walk it; delete it when it has no changes.

    A change set is never reused, even one with the plan's own content name: whoever may call
    CreateChangeSet on the stack (the pull-request plan role) could have made it with other
    parameters, or while a nested template under its URL held other bytes, and comparing the
    root's template and parameters would not show a nested change set's template. The name has
    a random part, so no one can pre-create it, and apply executes it by that name on its stack
    (the plan record's ARN checked first). Unused change
    sets do not pile up: executing one deletes the stack's others
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html).
    """
    cfn = aws.client("cloudformation")
    stack = stack_status(aws, target.stack_name)
    change_set_type = check_deployable(stack, env)
    live_parameters = (stack or {}).get("Parameters") if change_set_type == "UPDATE" else None
    kept = frozenset(k for k, v in target.parameters if v is None)
    name = unique_name(target, change_set_type, allowed)
    kwargs: dict[str, Any] = {
        "StackName": target.stack_name,
        "ChangeSetName": name,
        "ChangeSetType": change_set_type,
        "Capabilities": CAPABILITIES,
        "Description": f"{_ALLOW_PREFIX} {', '.join(sorted(allowed))}".rstrip(),
        "Parameters": [
            {"ParameterKey": k, "UsePreviousValue": True} if v is None else {"ParameterKey": k, "ParameterValue": v}
            for k, v in target.parameters
        ],
    }
    if target.template_url:
        kwargs["TemplateURL"] = target.template_url
    else:
        kwargs["TemplateBody"] = target.template_body
    if target.nested:
        kwargs["IncludeNestedStacks"] = True
    if target.role_arn:
        kwargs["RoleARN"] = target.role_arn
    if target.tags:
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in target.tags]
    try:
        created = cfn.create_change_set(**kwargs)
    except ClientError as exc:
        if any(m in error_message(exc) for m in _NO_CHANGES):
            return build_review(
                {"StackName": target.stack_name, "ChangeSetName": name}, [], aws.region, allowed, change_set_type
            ), {}
        raise DeployError(f"stack {target.stack_name}: CreateChangeSet failed: {error_message(exc)}") from None
    arn = created["Id"]  # from here on by ARN: exactly the change set made here
    # A FAILED change set (no changes, or an error) is described below: the waiter's error says less.
    with contextlib.suppress(WaiterError):
        cfn.get_waiter("change_set_create_complete").wait(
            ChangeSetName=arn, WaiterConfig={"Delay": 2, "MaxAttempts": 300}
        )
    existing = _describe_all(cfn, arn)
    params = parameter_changes(existing.get("Parameters"), live_parameters, kept)
    # A new parameter value that no resource uses changes no resource, but executing stores it.
    new_values = any(p.status in CHANGED for p in params)
    if _no_changes(existing) or (
        existing.get("Status") == "CREATE_COMPLETE" and not existing.get("Changes") and not new_values
    ):
        # By name and stack (the name is unique): IAM's cloudformation:ChangeSetName condition, which
        # limits the pull-request plan role to its own change sets, then names it for sure.
        cfn.delete_change_set(ChangeSetName=name, StackName=target.stack_name)
        root = {**existing, "Changes": []}
        return build_review(root, [], aws.region, allowed, change_set_type), root
    if existing.get("Status") != "CREATE_COMPLETE":
        raise DeployError(
            f"change set {name} on stack {target.stack_name} is {existing.get('Status')}: "
            f"{existing.get('StatusReason') or 'no reason given'}",
            code=1,
        )
    stacks = walk(lambda arn: _describe_all(cfn, arn), existing)
    review = build_review(
        existing, stacks, aws.region, allowed, change_set_type, contents=deployed.Reader(aws), parameters=params
    )
    return review, existing
