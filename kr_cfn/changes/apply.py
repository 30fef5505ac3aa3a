"""``kr-cfn apply``: re-check, execute, follow the events, report the root cause or the outputs."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
from botocore.parsers import ResponseParserError
from urllib3.exceptions import HTTPError as Urllib3Error

from kr_cfn.aws import AWS_FAILURES, Aws, error_code, error_message, one_line, stack_label
from kr_cfn.changes import changeset, deployed, guard
from kr_cfn.changes.review import Review, parameter_changes
from kr_cfn.errors import EXIT_AWS, EXIT_FAILED, EXIT_GUARD, EXIT_INTERRUPTED, EXIT_USAGE, DeployError

_DONE = ("_COMPLETE", "_FAILED", "_SKIPPED")
_SUCCESS = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")


_PR_RECORD = "planned from pull-request artifacts (pr/), which are never deployed"


def refuse_pull_request(change_set: str | None) -> None:
    """Exit 2 for a pull request's change set (``kr-cfn-pr-...``, by name or ARN): it is never executed.

    Anyone who can open a pull request makes these (the plan role); the deploy role's Deny on them
    (stacks/bootstrap.py) is the second line, this the first.
    """
    name = (change_set or "").split(":changeSet/", 1)[-1].split("/", 1)[0]
    if name.startswith(changeset.PR_CHANGE_SET_PREFIX):
        raise DeployError(
            f"change set {name} is a pull request's ({changeset.PR_CHANGE_SET_PREFIX}*): never executed; "
            "deploy from main (release.yml) or plan it yourself",
            code=EXIT_USAGE,
        )


def check(
    aws: Aws,
    stack_name: str,
    change_set: str,
    record: dict[str, Any] | None = None,
    allowed: Sequence[str] = (),
) -> tuple[Review, dict[str, Any]]:
    """The change set's review; exit 2 unless AVAILABLE and the stack unchanged since, 3 on guard findings.

    Guard findings count unless allowed by ``allowed`` (the apply command line) or the plan record's
    ``allow_replace`` (:func:`plan_record`), never by the change set's Description: whoever may
    create a change set on the stack writes that. A change set named by ARN must be on ``stack_name``.
    """
    if record is not None and record.get("pull_request"):
        raise DeployError(f"{record.get('_file', 'the plan record')}: {_PR_RECORD}")
    refuse_pull_request(change_set)
    cs = changeset.describe(aws, change_set, stack_name)
    refuse_pull_request(cs.get("ChangeSetName"))
    if cs.get("StackName") not in (None, stack_name) and cs.get("StackId") != stack_name:
        raise DeployError(f"change set {change_set} is on stack {cs.get('StackName')}, not on {stack_name}")
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
    allowed = sorted({*allowed, *(record or {}).get("allow_replace", [])})
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
            f"{f.path}/{f.logical_id} ({f.type})"
            + (f" with nested stack {f.nested_stack}" if f.nested_stack else "")
            + (f": {f.what}" if f.weakened else "")
            for f in review.blocked
        )
        raise DeployError(
            f"change set {change_set} replaces or deletes stateful resources (or takes protections away) "
            f"not allowed at plan time: {listing}",
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
    allowed: Sequence[str] = (),
) -> dict[str, Any]:
    """What ``apply --plan`` needs to execute exactly this change set, and only on the stack as planned.

    ``allow_replace``: the ``--allow-replace`` ids of the plan, the only ones apply lifts the stack
    policy for (the record is trusted through its digest, :func:`record_digest`).
    """
    changed = last_changed(stack)
    return {
        "account_id": account,
        "allow_replace": sorted(set(allowed)),
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


def record_digest(data: bytes) -> str:
    """The sha256 (hex) of a plan record's bytes, as ``plan`` publishes it and ``--plan-digest`` takes it."""
    return hashlib.sha256(data).hexdigest()


def check_record(record: dict[str, Any], cs: dict[str, Any], stack: dict[str, Any] | None) -> None:
    """Exit 2 unless the change set and the stack are still what the plan recorded."""
    where = record.get("_file", "the plan record")
    if record.get("pull_request"):
        raise DeployError(f"{where}: {_PR_RECORD}")
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
    except ClientError as exc:
        if _gone(exc):  # deleted in a rollback
            return out
        raise
    for r in resources:
        if r["ResourceType"] == "AWS::CloudFormation::Stack" and r.get("PhysicalResourceId"):
            out.append((r["PhysicalResourceId"], depth))
            out += nested_stacks(aws, r["PhysicalResourceId"], depth + 1)
    return out


def _gone(exc: ClientError) -> bool:
    return error_code(exc) == "ValidationError" and "does not exist" in error_message(exc)


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
        except ClientError as exc:
            if not _gone(exc):
                raise
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


_sleep = time.sleep  # tests replace it
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
    }
)
MAX_LOST_POLLS = 8
"""Consecutive failed polls (each after botocore's own retries) before ``apply`` stops following."""


def transient(exc: BaseException) -> bool:
    """True for what passes by itself: throttling, 5xx, dropped connections, timeouts, garbage answers."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in _TRANSIENT_CODES or status >= 500
    return isinstance(exc, (ConnectionError, HTTPClientError, ResponseParserError, Urllib3Error))


class LostTrackError(Exception):
    """Following a stack failed MAX_LOST_POLLS times in a row."""


def follow(aws: Aws, stack_id: str, since: Any, progress: _Progress, total: int, out: TextIO) -> str:
    """Print the events of the stack and its nested stacks until it is no longer in progress.

    Transient failures (after botocore's adaptive retries) wait with a bounded backoff,
    5 s doubling up to 60 s; :data:`MAX_LOST_POLLS` in a row raise :class:`LostTrackError`.
    """
    cfn = aws.client("cloudformation")
    lost = 0
    status = ""
    while True:
        try:
            _poll(aws, stack_id, since, progress, total, out)
            if status and not status.endswith("_IN_PROGRESS"):
                return status  # the events up to the end are printed
            status = str(cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"])
        except AWS_FAILURES as exc:
            if not transient(exc):
                raise
            lost += 1
            if lost >= MAX_LOST_POLLS:
                raise LostTrackError(one_line(str(exc), 200)) from exc
            delay = min(60, 5 * 2 ** (lost - 1))
            print(f"(AWS did not answer: {one_line(str(exc), 120)}; trying again in {delay} s)", file=out)
            _sleep(delay)
            continue
        lost = 0
        if status.endswith("_IN_PROGRESS"):
            _sleep(5)


def fail_with_root_cause(status: str, progress: _Progress) -> None:
    """Raise (exit 1) with the root cause unless ``status`` is a success."""
    if status in _SUCCESS:
        return
    cause = root_cause(progress.events)
    if cause:
        raise DeployError(
            f"deploy failed ({status}); root cause: {cause['StackName']} {cause['LogicalResourceId']} "
            f"({cause['ResourceType']}) {cause['ResourceStatus']}: {cause.get('ResourceStatusReason', '')}",
            code=EXIT_FAILED,
        )
    raise DeployError(f"deploy failed: stack is {status}", code=EXIT_FAILED)


def restore_policies(aws: Aws, stack_id: str, also: Sequence[str] = ()) -> list[str]:
    """The full stack policy on the stack, every nested stack there is now, and ``also``.

    Call only when the stack is stable: a policy set during an update does not apply to it.
    Returns the stacks whose policy could not be set (gone in a rollback are not counted).
    """
    cfn = aws.client("cloudformation")
    live = [stack_id, *(s for s, _ in nested_stacks(aws, stack_id))]
    failed = []
    for sid in dict.fromkeys([*also, *live]):
        try:
            _set_policy(cfn, sid, guard.stack_policy())
        except ClientError as exc:
            if "does not exist" not in error_message(exc):
                failed.append(sid)
        except AWS_FAILURES:
            failed.append(sid)
    return failed


def stack_in_progress(aws: Aws, stack_id: str) -> str:
    """The stack's status (one DescribeStacks)."""
    return str(aws.client("cloudformation").describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"])


def _still_relaxed(relaxed: Sequence[str], watch: str) -> str:
    names = ", ".join(stack_label(s) for s in relaxed)
    return (
        f"the relaxed stack policy (replacing the --allow-replace resources is allowed) is still on: {names}; "
        f"restore it once the update has ended with: {watch} --restore-policy"
    )


def _restore_when_stable(aws: Aws, stack_id: str, relaxed: list[str], watch: str) -> bool:
    """Wait (quietly) until the stack is stable, then restore the policies (True); or say which are relaxed."""
    print(
        f"waiting for {stack_label(stack_id)} to end its update before restoring the stack policies "
        "(Ctrl-C again to stop waiting)",
        file=sys.stderr,
    )
    lost = 0
    try:
        while True:
            try:
                status = stack_in_progress(aws, stack_id)
                lost = 0
            except AWS_FAILURES as exc:
                lost += 1
                if not transient(exc) or lost >= MAX_LOST_POLLS:
                    raise
                _sleep(min(60, 5 * 2 ** (lost - 1)))
                continue
            if not status.endswith("_IN_PROGRESS"):
                break
            _sleep(10)
    except (KeyboardInterrupt, *AWS_FAILURES):
        if relaxed:
            print(_still_relaxed(relaxed, watch), file=sys.stderr)
        return False
    failed = restore_policies(aws, stack_id, relaxed)
    if failed:
        print(_still_relaxed(failed, watch), file=sys.stderr)
        return False
    print(f"{stack_label(stack_id)} is {status}: stack policies restored", file=sys.stderr)
    return True


def execute(
    aws: Aws,
    review: Review,
    cs: dict[str, Any],
    termination_protection: bool,
    out: TextIO | None = None,
    watch: str = "kr-cfn watch --env ENV",
) -> dict[str, str]:
    """Execute the change set and follow it; return the stack outputs or raise (exit 1).

    The stack policy is relaxed for the ids allowed at plan time, and restored only once the
    stack is stable again: after the update, after Ctrl-C (waiting for CloudFormation, which
    carries on), or never while it runs; when that cannot be waited for, the stacks still
    relaxed are named with the command that restores them.
    """
    out = out or sys.stdout
    cfn = aws.client("cloudformation")
    stack_id = cs["StackId"]
    allowed_ids = guard.lifted_ids(review)
    existing = [stack_id, *(s for s, _ in nested_stacks(aws, stack_id))] if review.change_set_type == "UPDATE" else []
    # Events before the change set was made belong to earlier operations (server clock).
    since = cs["CreationTime"]
    total = sum(len(s.changes) for s in review.stacks)
    progress = _Progress()
    relaxed: list[str] = []
    try:
        if allowed_ids:
            # The stack policy denies replacing stateful resources; lift it for the allowed ones only,
            # for this execution.
            for sid in existing:
                relaxed.append(sid)  # before the call: a half-applied set is restored too
                _set_policy(cfn, sid, guard.stack_policy(except_ids=allowed_ids))
        # By name and stack, never by ARN alone: IAM's cloudformation:ChangeSetName (the deploy role's
        # Deny on pull requests' change sets) then holds the name for sure; how AWS fills that key
        # from an ARN is not documented. StackName takes the stack's ARN, which pins the very stack
        # the review was made on
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html).
        refuse_pull_request(cs["ChangeSetName"])
        cfn.execute_change_set(ChangeSetName=cs["ChangeSetName"], StackName=stack_id)
    except ClientError as exc:  # refused: nothing runs, restore now
        restore_policies(aws, stack_id, relaxed)
        raise DeployError(
            f"stack {stack_label(stack_id)}: ExecuteChangeSet failed: {error_message(exc)}", code=EXIT_AWS
        ) from None
    except (KeyboardInterrupt, *AWS_FAILURES):  # unknown whether it runs: restore once stable
        if relaxed:
            _restore_when_stable(aws, stack_id, relaxed, watch)
        raise
    try:
        status = follow(aws, stack_id, since, progress, total, out)
    except KeyboardInterrupt:
        # Restored only once stable: relaxed ones, and the stacks this update creates.
        restored = _restore_when_stable(aws, stack_id, relaxed, watch)
        name = review.stack_name or stack_label(stack_id)
        raise DeployError(_interrupted(name, watch, restored), code=EXIT_INTERRUPTED) from None
    except LostTrackError as exc:
        print(f"lost track of {stack_label(stack_id)}: {exc}", file=sys.stderr)
        if relaxed:
            print(_still_relaxed(relaxed, watch), file=sys.stderr)
        raise DeployError(
            f"AWS did not answer {MAX_LOST_POLLS} times in a row while following stack {stack_label(stack_id)}: "
            f"the update goes on in CloudFormation; follow it with: {watch}",
            code=EXIT_AWS,
        ) from None
    # Stable now: the full policy on every stack there is now (new nested stacks too).
    failed = restore_policies(aws, stack_id, existing)
    if failed:
        print(_still_relaxed(failed, watch), file=sys.stderr)
    fail_with_root_cause(status, progress)
    if termination_protection:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        if not stack.get("EnableTerminationProtection"):
            cfn.update_termination_protection(EnableTerminationProtection=True, StackName=stack_id)
    return outputs(aws, stack_id)


def _interrupted(stack: str, watch: str, restored: bool) -> str:
    """What an operator who pressed Ctrl-C during apply must know: the update goes on.

    Executing a change set starts a stack operation in CloudFormation; the client only watches
    it (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html).
    CancelUpdateStack rolls an update back to the last known stable state
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html).
    """
    policies = (
        "the stack policies were restored"
        if restored
        else f"the stack policies are not restored yet: once it ends, run {watch} --restore-policy"
    )
    return (
        f"interrupted: only kr-cfn stopped; CloudFormation goes on updating stack {stack} "
        f"(follow it: {watch}; roll it back: aws cloudformation cancel-update-stack --stack-name {stack}); "
        f"{policies}"
    )


def _set_policy(cfn: Any, stack: str, policy: str) -> None:
    cfn.set_stack_policy(StackName=stack, StackPolicyBody=policy)


def outputs(aws: Aws, stack_name: str) -> dict[str, str]:
    """The stack's outputs; exit 2 when the stack does not exist."""
    stack = changeset.stack_status(aws, stack_name)
    if stack is None:
        raise DeployError(f"stack {stack_name} does not exist; deploy it first (kr-cfn plan, then kr-cfn apply)")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
