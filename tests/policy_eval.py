"""A small offline evaluator of IAM identity policies, permissions boundaries and explicit denies.

moto's server does not enforce IAM by default, and its opt-in access control does not evaluate
``Condition`` blocks or permissions boundaries (moto/iam/access_control.py: "TODO add support
for the Resource and Condition parts of IAM policies"), so the attacker tests evaluate the
deployed policies here. It follows AWS's documented evaluation logic for one account, without
SCPs, resource-based or session policies:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html

1. An explicit ``Deny`` in any identity policy or the boundary denies.
2. With a permissions boundary, the boundary must allow the request.
3. An identity policy must allow it; otherwise it is implicitly denied.

Statements: ``Action``/``NotAction`` (case-insensitive, ``*`` and ``?`` wildcards),
``Resource``/``NotResource`` (case-sensitive wildcards), ``Condition`` with the operators
below, all operators and keys ANDed, the values of one key ORed. A key missing from the request
makes a positive operator false and a negated one (``...Not...``) true; ``...IfExists`` makes a
missing key true; ``ForAnyValue:``/``ForAllValues:`` compare multi-valued keys (a missing key:
false/true); ``Null`` tests whether the key is there. Unknown operators raise, so a policy using
one is never silently misjudged.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Policy = Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    """One API call: the action, the resource ARN and the request context keys."""

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The outcome and the reason, e.g. ``explicitly denied by DenyBootstrapStack (stacks)``."""

    allowed: bool
    reason: str


@functools.cache
def _compiled(pattern: str, case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, 0 if case else re.IGNORECASE)


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    return _compiled(pattern, case).fullmatch(value) is not None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _arn_like(pattern: str, value: str) -> bool:
    """ARN matching segment by segment (six parts split on the first five colons)."""
    p, v = pattern.split(":", 5), value.split(":", 5)
    return len(p) == len(v) == 6 and all(_glob(a, b, case=True) for a, b in zip(p, v, strict=True))


_OPERATORS = {
    "StringEquals": lambda p, v: p == v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: _glob(p, v, case=True),
    "ArnEquals": _arn_like,  # ArnEquals and ArnLike behave alike (both take wildcards)
    "ArnLike": _arn_like,
    "Bool": lambda p, v: str(p).lower() == str(v).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Any]) -> bool:
    qualifier, _, rest = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise ValueError(f"condition operator {operator!r} is not supported")
    if operator == "Null":  # "true": the key is absent; "false": it is present
        absent = key.lower() not in {k.lower() for k in context}
        return any(absent == (str(w).lower() == "true") for w in _list(wanted))
    if_exists = rest.endswith("IfExists")
    base = rest.removesuffix("IfExists")
    negated = base in _NEGATED
    match = _OPERATORS.get(_NEGATED.get(base, base))
    if match is None:
        raise ValueError(f"condition operator {operator!r} is not supported")
    present = {k.lower(): v for k, v in context.items()}
    if key.lower() not in present:
        # ForAllValues holds for an empty set, ForAnyValue does not.
        return qualifier == "ForAllValues" or (qualifier == "" and (if_exists or negated))
    values = [str(v) for v in _list(present[key.lower()])]

    def one(value: str) -> bool:
        hit = any(match(str(w), value) for w in _list(wanted))
        return not hit if negated else hit

    return all(one(v) for v in values) if qualifier == "ForAllValues" else any(one(v) for v in values)


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_glob(a, request.action, case=False) for a in _list(statement["Action"])):
            return False
    elif any(_glob(a, request.action, case=False) for a in _list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_glob(r, request.resource, case=True) for r in _list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(
        _glob(r, request.resource, case=True) for r in _list(statement["NotResource"])
    ):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, request.context):
                return False
    return True


def _matching(policy: Policy, request: Request, effect: str) -> list[str]:
    return [
        str(s.get("Sid", f"statement {i}"))
        for i, s in enumerate(_list(policy.get("Statement", [])))
        if s["Effect"] == effect and _applies(s, request)
    ]


def evaluate(request: Request, identity: Mapping[str, Policy], boundary: Policy | None = None) -> Decision:
    """Decide ``request`` for a principal with the ``identity`` policies (by name) and a boundary."""
    named = dict(identity)
    if boundary is not None:
        named["permissions boundary"] = boundary
    for name, policy in named.items():
        denied = _matching(policy, request, "Deny")
        if denied:
            return Decision(False, f"explicitly denied by {denied[0]} ({name})")
    if boundary is not None and not _matching(boundary, request, "Allow"):
        return Decision(False, f"implicitly denied: the permissions boundary does not allow {request.action}")
    for name, policy in identity.items():
        allowed = _matching(policy, request, "Allow")
        if allowed:
            return Decision(True, f"allowed by {allowed[0]} ({name})")
    return Decision(False, f"implicitly denied: no identity policy allows {request.action} on {request.resource}")


def action_allowed_somewhere(action: str, policy: Policy) -> bool:
    """Whether an Allow statement of ``policy`` names ``action`` (resources and conditions aside)."""
    return any(
        s["Effect"] == "Allow"
        and (
            any(_glob(a, action, case=False) for a in _list(s["Action"]))
            if "Action" in s
            else not any(_glob(a, action, case=False) for a in _list(s["NotAction"]))
        )
        for s in _list(policy.get("Statement", []))
    )
