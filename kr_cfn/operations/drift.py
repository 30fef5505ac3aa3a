"""``kr-cfn drift``: drift detection on the root and every nested stack, and ``plan``'s drift warning.

"When detecting drift on a stack, CloudFormation doesn't detect drift on any nested stacks
belonging to that stack. Perform DetectStackDrift directly on the nested stack itself."
(https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DetectStackDrift.html)
boto3 has no waiter for drift detection: DescribeStackDriftDetectionStatus is polled.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from kr_cfn.aws import Aws, stack_label
from kr_cfn.changes import apply as applying
from kr_cfn.errors import EXIT_AWS, DeployError

_sleep = time.sleep  # tests replace it
MAX_WAIT = 900.0
"""Seconds to wait for the detections (CloudFormation: "can take up to several minutes")."""


@dataclass(frozen=True)
class Drift:
    """One drifted property (or a deleted resource: property ``-``)."""

    stack: str
    logical_id: str
    type: str
    status: str
    """MODIFIED or DELETED."""
    property: str = "-"
    expected: str = "-"
    actual: str = "-"


@dataclass
class StackDrift:
    """The outcome of one stack's detection."""

    stack: str
    status: str
    """IN_SYNC, DRIFTED or UNKNOWN (detection failed)."""
    reason: str = ""
    drifted_resources: int = 0


def _value(raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _resource_drifts(cfn: Any, stack_id: str) -> list[Drift]:
    rows: list[Drift] = []
    kwargs: dict[str, Any] = {"StackName": stack_id, "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"]}
    while True:
        page = cfn.describe_stack_resource_drifts(**kwargs)
        for d in page.get("StackResourceDrifts", []):
            base = (stack_label(d.get("StackId", stack_id)), d["LogicalResourceId"], d["ResourceType"])
            diffs = d.get("PropertyDifferences") or []
            if d["StackResourceDriftStatus"] == "DELETED" or not diffs:
                rows.append(Drift(*base, d["StackResourceDriftStatus"]))
            for p in diffs:
                rows.append(
                    Drift(
                        *base,
                        f"{d['StackResourceDriftStatus']} ({p.get('DifferenceType', '?')})",
                        p["PropertyPath"],
                        _value(p.get("ExpectedValue", "")),
                        _value(p.get("ActualValue", "")),
                    )
                )
        if not page.get("NextToken"):
            return rows
        kwargs["NextToken"] = page["NextToken"]


def detect(aws: Aws, root_stack_id: str) -> tuple[list[StackDrift], list[Drift]]:
    """Start a detection on every stack, wait for all, and read the drifted resources."""
    cfn = aws.client("cloudformation")
    stacks = [root_stack_id, *(s for s, _ in applying.nested_stacks(aws, root_stack_id))]
    pending = {sid: cfn.detect_stack_drift(StackName=sid)["StackDriftDetectionId"] for sid in stacks}
    results: dict[str, StackDrift] = {}
    waited, delay = 0.0, 2.0
    while pending:
        for sid, detection in list(pending.items()):
            status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
            if status["DetectionStatus"] == "DETECTION_IN_PROGRESS":
                continue
            del pending[sid]
            failed = status["DetectionStatus"] == "DETECTION_FAILED"
            results[sid] = StackDrift(
                stack_label(sid),
                status.get("StackDriftStatus", "UNKNOWN"),
                status.get("DetectionStatusReason", "") if failed else "",
                status.get("DriftedStackResourceCount", 0),
            )
        if pending:
            if waited >= MAX_WAIT:
                names = ", ".join(stack_label(s) for s in pending)
                raise DeployError(f"drift detection still running after {MAX_WAIT:.0f} s on: {names}", EXIT_AWS)
            _sleep(delay)
            waited += delay
            delay = min(delay * 2, 15.0)
    drifts = [d for sid in stacks if results[sid].status == "DRIFTED" for d in _resource_drifts(cfn, sid)]
    return [results[sid] for sid in stacks], drifts


def table(drifts: list[Drift]) -> str:
    """The drifted properties as an aligned text table."""
    rows = [("stack", "resource", "type", "drift", "property", "expected", "actual")]
    rows += [(d.stack, d.logical_id, d.type, d.status, d.property, d.expected, d.actual) for d in drifts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)


def warnings(aws: Aws, stack: dict[str, Any] | None, env: str) -> list[str]:
    """``plan``'s warning: the target (or a nested stack) had drifted when drift was last checked.

    A change set compares templates, not live resources, so it does not show drift.
    """
    if not stack or stack.get("StackStatus") == "REVIEW_IN_PROGRESS":
        return []
    cfn = aws.client("cloudformation")
    described = [stack]
    for sid, _ in applying.nested_stacks(aws, stack["StackId"]):
        described += cfn.describe_stacks(StackName=sid)["Stacks"]
    out = []
    for s in described:
        info = s.get("DriftInformation") or {}
        if info.get("StackDriftStatus") == "DRIFTED":
            when = info.get("LastCheckTimestamp")
            at = f" (last checked {when:%Y-%m-%d %H:%M} UTC)" if hasattr(when, "strftime") else ""
            out.append(
                f"stack {s['StackName']} had drifted from its template{at}: a change set does not see drift, "
                f"so this plan may not show what the deploy changes; see kr-cfn drift --env {env}"
            )
    return out
