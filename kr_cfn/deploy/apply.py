"""``kr-cfn apply``: re-check, execute, follow the events, report the root cause or the outputs."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from botocore.exceptions import ClientError

from kr_cfn.deploy import changeset, deployed, guard
from kr_cfn.deploy.aws import Aws, error_message
from kr_cfn.deploy.errors import EXIT_FAILED, EXIT_GUARD, DeployError
from kr_cfn.deploy.review import Review, parameter_changes

_DONE = ("_COMPLETE", "_FAILED", "_SKIPPED")
_SUCCESS = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")


def check(
    aws: Aws, stack_name: str, change_set: str, record: dict[str, Any] | None = None
) -> tuple[Review, dict[str, Any]]:
    """The change set's review; exit 2 unless AVAILABLE and the stack unchanged since, 3 on guard findings.

    Guard findings count unless allowed at plan time. ``record``: the plan's record (:func:`plan_record`).
    """
    cs = changeset.describe(aws, change_set, stack_name)
    if cs.get("ExecutionStatus") != "AVAILABLE" or cs.get("Status") != "CREATE_COMPLETE":
        reason = f": {cs['StatusReason']}" if cs.get("StatusReason") else ""
        raise DeployError(
            f"change set {change_set} is {cs.get('Status')}/{cs.get('ExecutionStatus')}{reason}; "
            "only an AVAILABLE change set can be applied: run kr-cfn plan again"
        )
    stack = changeset.stack_status(aws, stack_name)
    if record is not None:
        check_record(record, cs, stack)
    check_not_stale(cs, stack)
    allowed = changeset.allowed_of(cs.get("Description"))
    cfn = aws.client("cloudformation")
    stacks = changeset.walk(lambda arn: changeset._describe_all(cfn, arn), cs)
    change_set_type = "CREATE" if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS" else "UPDATE"
    kept = frozenset((record or {}).get("kept", []))
    params = parameter_changes(
        cs.get("Parameters"), (stack or {}).get("Parameters") if change_set_type == "UPDATE" else None, kept
    )
    review = changeset.build_review(
        cs, stacks, aws.region, allowed, change_set_type, contents=deployed.Reader(aws), parameters=params
    )
    if review.blocked:
        listing = ", ".join(
            f"{f.path}/{f.logical_id} ({f.type})" + (f" with nested stack {f.nested_stack}" if f.nested_stack else "")
            for f in review.blocked
        )
        raise DeployError(
            f"change set {change_set} replaces or deletes stateful resources not allowed at plan time: {listing}",
            code=EXIT_GUARD,
        )
    return review, cs


def last_changed(stack: dict[str, Any] | None) -> datetime | None:
    """When the stack last changed (LastUpdatedTime, else CreationTime); None without a stack.

    DescribeStacks returns LastUpdatedTime once the stack has been updated
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Stack.html).
    """
    if stack is None:
        return None
    value = stack.get("LastUpdatedTime") or stack.get("CreationTime")
    return value if isinstance(value, datetime) else None


def check_not_stale(cs: dict[str, Any], stack: dict[str, Any] | None) -> None:
    """Exit 2 when the stack is busy, or was updated after the change set was made.

    CloudFormation computes a change set against the stack as it was at creation; an update
    since (another change set, a rollback) makes it describe changes that are no longer the
    ones it would make (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-changesets.html).
    """
    if stack is None:
        return
    name, status = stack["StackName"], stack["StackStatus"]
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {name} is {status}: another operation is running; plan again when it ends")
    changed, made = last_changed(stack), cs.get("CreationTime")
    if stack.get("LastUpdatedTime") and isinstance(made, datetime) and changed is not None and changed > made:
        raise DeployError(
            f"change set {cs.get('ChangeSetName')} is stale: made {made:%Y-%m-%d %H:%M:%S} UTC, but stack {name} "
            f"changed since ({status} at {changed:%Y-%m-%d %H:%M:%S} UTC); run kr-cfn plan again and review it"
        )


def plan_record(
    review: Review,
    cs: dict[str, Any],
    stack: dict[str, Any] | None,
    env: str,
    account: str | None,
    pr: bool,
    kept: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """What ``apply --plan`` needs to execute exactly this change set, and only on the stack as planned."""
    changed = last_changed(stack)
    return {
        "account_id": account,
        "change_set_id": review.change_set_id,
        "change_set_name": review.change_set_name,
        "change_set_type": review.change_set_type,
        "env": env,
        "has_changes": review.has_changes,
        "kept": sorted(kept),
        "parameters": sorted(cs.get("Parameters") or [], key=lambda p: str(p["ParameterKey"])),
        "pull_request": pr,
        "region": review.region,
        "stack_id": cs.get("StackId") or review.stack_id,
        "stack_name": review.stack_name,
        "stack_status": None if stack is None else stack["StackStatus"],
        "stack_changed": None if changed is None else changed.isoformat(),
    }


def check_record(record: dict[str, Any], cs: dict[str, Any], stack: dict[str, Any] | None) -> None:
    """Exit 2 unless the change set and the stack are still what the plan recorded."""
    where = record.get("_file", "the plan record")
    if record.get("pull_request"):
        raise DeployError(f"{where}: planned from pull-request artifacts (pr/), which are never deployed")
    if cs.get("ChangeSetId") != record.get("change_set_id") or cs.get("StackId") != record.get("stack_id"):
        raise DeployError(
            f"{where}: change set {cs.get('ChangeSetId')} on {cs.get('StackId')} is not the planned "
            f"{record.get('change_set_id')} on {record.get('stack_id')}"
        )
    params = sorted(cs.get("Parameters") or [], key=lambda p: str(p["ParameterKey"]))
    if params != record.get("parameters"):
        raise DeployError(f"{where}: the change set's parameters differ from the reviewed plan's; plan again")
    status = None if stack is None else stack["StackStatus"]
    changed = last_changed(stack)
    now = (status, None if changed is None else changed.isoformat())
    then = (record.get("stack_status"), record.get("stack_changed"))
    if now != then:
        raise DeployError(
            f"{where}: stack {record.get('stack_name')} changed since the plan "
            f"(then {then[0]} at {then[1]}, now {now[0]} at {now[1]}); run kr-cfn plan again and review it"
        )


@dataclass
class _Progress:
    seen: set[str] = field(default_factory=set)
    status: dict[tuple[str, str], str] = field(default_factory=dict)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def nested_stacks(aws: Aws, stack: str, depth: int = 1) -> list[tuple[str, int]]:
    """(stack id, depth) of every nested stack below ``stack``."""
    cfn = aws.client("cloudformation")
    out: list[tuple[str, int]] = []
    try:
        pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack)
        resources = [r for page in pages for r in page["StackResourceSummaries"]]
    except ClientError:
        return out
    for r in resources:
        if r["ResourceType"] == "AWS::CloudFormation::Stack" and r.get("PhysicalResourceId"):
            out.append((r["PhysicalResourceId"], depth))
            out += nested_stacks(aws, r["PhysicalResourceId"], depth + 1)
    return out


def _events_since(cfn: Any, stack: str, since: Any, seen: set[str]) -> list[dict[str, Any]]:
    """The stack's events not seen yet and not older than ``since``, from every page.

    Pages are newest first; reading stops at the first seen or older event (a rollback can log
    more than one page of events between two polls).
    """
    out: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack):
        for e in page["StackEvents"]:
            if e["EventId"] in seen or e["Timestamp"] < since:
                return out
            out.append(e)
    return out


def _poll(aws: Aws, stack_id: str, since: Any, progress: _Progress, total: int, out: TextIO) -> None:
    cfn = aws.client("cloudformation")
    new: list[tuple[int, str, dict[str, Any]]] = []
    for sid, depth in [(stack_id, 0), *nested_stacks(aws, stack_id)]:
        try:
            new += [(depth, sid, e) for e in _events_since(cfn, sid, since, progress.seen)]
        except ClientError:
            continue
    for depth, sid, e in sorted(new, key=lambda item: item[2]["Timestamp"]):  # oldest first, all stacks
        progress.seen.add(e["EventId"])
        progress.events.append((depth, e))
        if e["LogicalResourceId"] != e.get("StackName"):
            progress.status[(sid, e["LogicalResourceId"])] = e["ResourceStatus"]
        done = sum(1 for s in progress.status.values() if s.endswith(_DONE))
        reason = f" ({e['ResourceStatusReason']})" if e.get("ResourceStatusReason") else ""
        print(
            f"[{done}/{total}] {e['Timestamp']:%H:%M:%S} {'  ' * depth}{e['StackName']} "
            f"{e['LogicalResourceId']} {e['ResourceType']} {e['ResourceStatus']}{reason}",
            file=out,
        )


def root_cause(events: list[tuple[int, dict[str, Any]]]) -> dict[str, Any] | None:
    """The first failed event in the deepest stack that has one.

    Resources CloudFormation cancelled because something else failed (in a sibling or parent
    stack) are effects, not the cause, and are passed over.
    """
    failed = [
        (depth, i, e)
        for i, (depth, e) in enumerate(events)
        if e["ResourceStatus"].endswith("_FAILED") and not _cancelled(e.get("ResourceStatusReason"))
    ]
    if not failed:
        return None
    deepest = max(d for d, _, _ in failed)
    return next(e for d, _, e in failed if d == deepest)


def _cancelled(reason: str | None) -> bool:
    # "Resource creation cancelled", "Resource update cancelled"
    return (reason or "").startswith("Resource ") and (reason or "").endswith(" cancelled")


def execute(
    aws: Aws,
    review: Review,
    cs: dict[str, Any],
    termination_protection: bool,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Execute the change set and follow it; return the stack outputs or raise (exit 1)."""
    out = out or sys.stdout
    cfn = aws.client("cloudformation")
    stack_id = cs["StackId"]
    allowed_ids = guard.lifted_ids(review)
    existing = [stack_id, *(s for s, _ in nested_stacks(aws, stack_id))] if review.change_set_type == "UPDATE" else []
    # Events before the change set was made belong to earlier operations (server clock).
    since = cs["CreationTime"]
    total = sum(len(s.changes) for s in review.stacks)
    progress = _Progress()
    try:
        if allowed_ids:
            # The stack policy denies replacing stateful resources; lift it for the allowed ones only,
            # for this execution (restored below whatever happens, also when lifting fails halfway).
            for sid in existing:
                _set_policy(cfn, sid, guard.stack_policy(except_ids=allowed_ids))
        try:
            cfn.execute_change_set(ChangeSetName=cs["ChangeSetId"])
        except ClientError as exc:
            raise DeployError(f"ExecuteChangeSet failed: {error_message(exc)}", code=EXIT_FAILED) from None
        try:
            while True:
                _poll(aws, stack_id, since, progress, total, out)
                status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
                if not status.endswith("_IN_PROGRESS"):
                    break
                sleep(5)
            _poll(aws, stack_id, since, progress, total, out)
        except KeyboardInterrupt:
            raise DeployError(_interrupted(review.stack_name or stack_id), code=EXIT_INTERRUPTED) from None
        if status not in _SUCCESS:
            cause = root_cause(progress.events)
            if cause:
                raise DeployError(
                    f"deploy failed ({status}); root cause: {cause['StackName']} {cause['LogicalResourceId']} "
                    f"({cause['ResourceType']}) {cause['ResourceStatus']}: {cause.get('ResourceStatusReason', '')}",
                    code=EXIT_FAILED,
                )
            raise DeployError(f"deploy failed: stack is {status}", code=EXIT_FAILED)
    finally:
        # The full policy on every stack there is now (new nested stacks too).
        live = [stack_id, *(s for s, _ in nested_stacks(aws, stack_id))]
        for sid in dict.fromkeys([*existing, *live]):
            with contextlib.suppress(ClientError):  # a stack gone in a rollback
                _set_policy(cfn, sid, guard.stack_policy())
    if termination_protection:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        if not stack.get("EnableTerminationProtection"):
            cfn.update_termination_protection(EnableTerminationProtection=True, StackName=stack_id)
    return outputs(aws, stack_id)


EXIT_INTERRUPTED = 130
"""Exit code of an apply stopped by Ctrl-C (128 + SIGINT), as before, now with a message."""


def _interrupted(stack: str) -> str:
    """What an operator who pressed Ctrl-C during apply must know: the update goes on.

    Executing a change set starts a stack operation in CloudFormation; the client only watches
    it (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html).
    CancelUpdateStack rolls an update back to the last known stable state
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html).
    """
    return (
        f"interrupted: only kr-cfn stopped; CloudFormation goes on updating stack {stack} "
        f"(follow it: aws cloudformation describe-stack-events --stack-name {stack}; "
        f"roll it back: aws cloudformation cancel-update-stack --stack-name {stack}); "
        "the stack policies were restored"
    )


def _set_policy(cfn: Any, stack: str, policy: str) -> None:
    cfn.set_stack_policy(StackName=stack, StackPolicyBody=policy)


def outputs(aws: Aws, stack_name: str) -> dict[str, str]:
    """The stack's outputs; exit 2 when the stack does not exist."""
    stack = changeset.stack_status(aws, stack_name)
    if stack is None:
        raise DeployError(f"stack {stack_name} does not exist; deploy it first (kr-cfn plan, then kr-cfn apply)")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
