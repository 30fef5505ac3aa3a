"""The review of a change set: one table per stack, as text, JSON and Markdown."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

FORECAST = "FORECAST"
"""``change_set_type`` of an offline forecast (``kr-cfn diff``): there is no change set to link to."""


@dataclass(frozen=True)
class PropertyChange:
    """A changed property (``Details[].Target`` of DescribeChangeSet)."""

    name: str
    requires_recreation: str
    change_source: str | None = None
    causing_entity: str | None = None


@dataclass(frozen=True)
class Weakening:
    """A protection taken away in place (a row of ``guard.PROTECTIONS``): what, before -> after."""

    name: str
    """The property or resource attribute, e.g. ``DeletionProtection`` or ``DeletionPolicy``."""
    before: str
    after: str
    kind: str
    """What makes it weaker: ``turned off``, ``lower retention``, ``wider principal``, ..."""

    @property
    def text(self) -> str:
        """``DeletionProtection true -> false (turned off)``."""
        return f"{self.name} {self.before} -> {self.after} ({self.kind})"


@dataclass(frozen=True)
class ResourceChange:
    """One row of the review."""

    action: str
    logical_id: str
    type: str
    replacement: str | None
    physical_id: str | None = None
    properties: tuple[PropertyChange, ...] = ()
    nested_change_set_id: str | None = None
    policy_action: str | None = None
    """What CloudFormation does with the old physical resource (``PolicyAction``: Delete, Retain, ...)."""
    weakened: tuple[Weakening, ...] = ()
    """Protections the change takes away in place (``guard.weakened``)."""


@dataclass
class StackChanges:
    """The changes of one stack (the root or a nested stack) in the change set."""

    path: str
    """``root`` or ``root/NetworkStack`` (logical ids from the root down)."""
    stack_name: str
    change_set_id: str
    changes: list[ResourceChange] = field(default_factory=list)


@dataclass(frozen=True)
class GuardFinding:
    """A Remove or a (possible) replacement of a stateful resource."""

    path: str
    logical_id: str
    type: str
    action: str
    replacement: str | None
    allowed: bool
    policy_action: str | None = None
    """``PolicyAction`` of the change, or the ``DeletionPolicy`` of a resource in a removed nested stack."""
    nested_stack: str | None = None
    """The removed or replaced nested stack (logical id) this resource goes with."""
    reason: str | None = None
    """Why a nested stack is blocked without a list of its resources (its template could not be read)."""
    weakened: tuple[Weakening, ...] = ()
    """Protections taken away in place; alone (no removal, no replacement) they are the finding."""

    @property
    def allow_id(self) -> str:
        """The logical id that ``--allow-replace`` takes to accept this finding."""
        return self.nested_stack or self.logical_id

    @property
    def in_place(self) -> bool:
        """Whether the resource stays (a Modify without replacement): only its protections change."""
        return self.action == "Modify" and self.replacement in (None, "False")

    @property
    def what(self) -> str:
        """What happens to the resource, in words."""
        if self.reason and self.action == "Modify" and self.replacement in (None, "False"):
            return f"updated, what it does inside unknown: {self.reason}"  # changeset.unseen_nested_stacks
        if self.reason:
            return f"{_verb(self)}; its deployed template could not be read ({self.reason})"
        if self.weakened:
            taken = "; ".join(w.text for w in self.weakened)
            return f"protection taken away in place: {taken}" if self.in_place else f"{_verb(self)}; {taken}"
        short = {"Remove": "removed", "Dynamic": "Dynamic"}.get(self.action, "replaced")
        verb = f"goes with nested stack {self.nested_stack} ({short})" if self.nested_stack else _verb(self)
        if not self.policy_action:
            return verb
        fate = _POLICY.get(self.policy_action, "")
        return f"{verb}; policy {self.policy_action}" + (f": {fate}" if fate else "")


# What CloudFormation does with the old physical resource (PolicyAction, or a DeletionPolicy).
_POLICY = {
    "Delete": "deleted",
    "Retain": "kept, outside the stack",
    "RetainExceptOnCreate": "kept, outside the stack",
    "Snapshot": "deleted after a snapshot",
    "ReplaceAndDelete": "old one deleted",
    "ReplaceAndRetain": "old one kept, outside the stack",
    "ReplaceAndSnapshot": "old one deleted after a snapshot",
}


def _verb(f: GuardFinding) -> str:
    if f.action == "Remove":
        return "removed"
    if f.action == "Dynamic":
        return "Dynamic action (CloudFormation cannot tell yet: may be replaced or deleted)"
    return f"replaced ({f.replacement})"


CHANGED = ("changed", "added", "removed")
"""Statuses of a :class:`ParameterChange` that change the stack."""


@dataclass(frozen=True)
class ParameterChange:
    """A root-stack parameter: the deployed value and the one the change set sets."""

    key: str
    deployed: str | None
    """None: the stack has no such parameter yet (a new stack or a new parameter)."""
    planned: str | None
    """None: the parameter is removed from the template."""
    status: str
    """``changed``, ``added``, ``removed``, ``kept`` (UsePreviousValue) or ``unchanged``."""


def parameter_changes(
    change_set: list[dict[str, object]] | None,
    deployed: list[dict[str, object]] | None,
    kept: frozenset[str] = frozenset(),
) -> list[ParameterChange]:
    """The change set's Parameters against the stack's (DescribeChangeSet / DescribeStacks shapes).

    ``kept``: keys planned with UsePreviousValue (DescribeChangeSet may report them resolved).
    """
    before = {str(p["ParameterKey"]): p.get("ParameterValue") for p in deployed or []}
    out: list[ParameterChange] = []
    seen = set()
    for p in change_set or []:
        key = str(p["ParameterKey"])
        seen.add(key)
        old = before.get(key)
        old_s = None if old is None else str(old)
        if p.get("UsePreviousValue") or key in kept:
            new = p.get("ParameterValue", old)
            out.append(ParameterChange(key, old_s, None if new is None else str(new), "kept"))
            continue
        new_s = None if p.get("ParameterValue") is None else str(p.get("ParameterValue"))
        status = "added" if key not in before else ("unchanged" if new_s == old_s else "changed")
        out.append(ParameterChange(key, old_s, new_s, status))
    gone = [k for k in before if k not in seen]
    out += [ParameterChange(k, None if before[k] is None else str(before[k]), None, "removed") for k in gone]
    return sorted(out, key=lambda c: c.key)


def _parameter_note(c: ParameterChange) -> str:
    """``old -> new``, ``value (kept)`` ... for one parameter."""
    return {
        "changed": f"{c.deployed} -> {c.planned}",
        "added": f"(new) -> {c.planned}",
        "removed": f"{c.deployed} -> (removed)",
        "kept": f"{c.deployed if c.deployed is not None else c.planned} (kept: UsePreviousValue)",
    }.get(c.status, f"{c.planned} (unchanged)")


@dataclass
class Review:
    """Everything ``plan`` found, as written to ``review.json``."""

    stack_name: str
    change_set_name: str
    change_set_id: str
    change_set_type: str
    region: str
    stack_id: str = ""
    cost: dict[str, Any] | None = None
    """Monthly cost before and after (kr_cfn.cost.deployed.plan_delta), or ``{"error": ...}``."""
    stacks: list[StackChanges] = field(default_factory=list)
    findings: list[GuardFinding] = field(default_factory=list)
    parameters: list[ParameterChange] = field(default_factory=list)
    """The root stack's parameters, deployed value -> planned value (empty when not known)."""
    notes: list[str] = field(default_factory=list)
    """What the deploy will do besides the table (from the built templates, kr_cfn.changes.notes)."""
    warnings: list[str] = field(default_factory=list)
    """What an operator must know before applying (alarms reaching no one, counts reset, examples)."""

    @property
    def has_changes(self) -> bool:
        """Whether any stack has a change, or a root parameter gets another value."""
        return any(s.changes for s in self.stacks) or any(p.status in CHANGED for p in self.parameters)

    @property
    def blocked(self) -> list[GuardFinding]:
        """Guard findings not allowed with ``--allow-replace``."""
        return [f for f in self.findings if not f.allowed]

    @property
    def console_url(self) -> str:
        """The change set in the CloudFormation console (empty for a forecast)."""
        if self.change_set_type == FORECAST:
            return ""
        root = self.stack_id or self.stack_name
        return (
            f"https://{self.region}.console.aws.amazon.com/cloudformation/home?region={self.region}"
            f"#/stacks/changesets/changes?stackId={quote(root, safe='')}"
            f"&changeSetId={quote(self.change_set_id, safe='')}"
        )

    def to_json(self) -> str:
        """The review as JSON (stable key order)."""
        data = asdict(self)
        data["console_url"] = self.console_url
        data["has_changes"] = self.has_changes
        data["blocked"] = [asdict(f) for f in self.blocked]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _props(change: ResourceChange) -> str:
    parts = []
    for p in change.properties:
        notes = [{"Always": "recreate", "Conditionally": "may recreate"}.get(p.requires_recreation, "")]
        if p.causing_entity:
            notes.append(f"from {p.causing_entity}")
        note = "; ".join(n for n in notes if n)
        parts.append(f"{p.name} ({note})" if note else p.name)
    return ", ".join(parts)


def _rows(stack: StackChanges) -> list[tuple[str, str, str, str, str]]:
    return [
        (c.action, c.logical_id, c.type, c.replacement or "-", _props(c) or "-")
        for c in stack.changes
        if not c.nested_change_set_id or c.action != "Modify" or c.properties
    ]


_HEAD = ("action", "logical id", "type", "replacement", "changed properties")


def render_text(review: Review) -> str:
    """The review for a terminal: one aligned table per stack."""
    lines = [f"change set {review.change_set_name} ({review.change_set_type}) on stack {review.stack_name}"]
    if review.change_set_type == FORECAST:
        lines = [f"forecast ({review.change_set_name}) for stack {review.stack_name}, offline from the templates"]
    lines += _cost_lines(review)
    if not review.has_changes:
        lines.append("no changes")
        return "\n".join([*lines, *_note_lines(review)]) + "\n"
    for stack in review.stacks:
        rows = _rows(stack)
        if not rows:
            continue
        lines += ["", f"{stack.path} ({stack.stack_name}): {len(rows)} change(s)"]
        widths = [max(len(r[i]) for r in [_HEAD, *rows]) for i in range(5)]
        for row in [_HEAD, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines += ["", *_parameter_lines(review), *_note_lines(review), *_guard_lines(review)]
    if review.console_url:
        lines.append(f"console: {review.console_url}")
    return "\n".join(lines) + "\n"


def _parameter_lines(review: Review) -> list[str]:
    if not review.parameters:
        return []
    width = max(len(c.key) for c in review.parameters)
    changed = sum(c.status in CHANGED for c in review.parameters)
    return [
        f"root stack parameters ({changed} changed):",
        *(f"  {c.key.ljust(width)}  {_parameter_note(c)}" for c in review.parameters),
        "",
    ]


def _note_lines(review: Review) -> list[str]:
    return [f"warning: {w}" for w in review.warnings] + [f"note: {n}" for n in review.notes]


def _md_notes(review: Review) -> list[str]:
    out: list[str] = []
    if review.warnings:
        out += ["> [!WARNING]", *(f"> - {_md_cell(w)}" for w in review.warnings), ""]
    if review.notes:
        out += ["> [!NOTE]", *(f"> - {_md_cell(n)}" for n in review.notes), ""]
    return out


def _guard_lines(review: Review) -> list[str]:
    lines = []
    for f in review.findings:
        verdict = "allowed by --allow-replace" if f.allowed else "BLOCKED"
        if f.nested_stack or f.reason or f.action not in ("Remove", "Modify") or f.policy_action or f.weakened:
            lines.append(f"guard: {f.path}/{f.logical_id} ({f.type}): {f.what}: {verdict}")
            continue
        what = "removal" if f.action == "Remove" else f"replacement ({f.replacement})"
        lines.append(f"guard: {f.path}/{f.logical_id} ({f.type}): {what} of a stateful resource: {verdict}")
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(review: Review) -> str:
    """The review for a pull-request comment or a job summary."""
    out = [f"### CloudFormation plan: `{review.stack_name}` ({review.change_set_type.lower()})", ""]
    if not review.has_changes:
        out += ["No changes.", "", *_md_notes(review)]
        return "\n".join(out)
    total = sum(len(_rows(s)) for s in review.stacks)
    if review.console_url:
        out.append(f"Change set [`{review.change_set_name}`]({review.console_url}): {total} change(s).")
    else:
        out.append(f"Forecast `{review.change_set_name}` (offline, from the templates): {total} change(s).")
    out.append("")
    out += _md_notes(review)
    if review.findings:
        blocked = review.blocked
        kind, fate = "stateful resource(s)", "replaced or deleted"
        if any(f.weakened for f in review.findings):
            kind, fate = "resource(s)", "replaced or deleted, or lose a protection"
        if blocked:
            out.append(
                f"> [!CAUTION]\n> {len(blocked)} {kind} would be {fate}; the plan "
                "is blocked unless each is named with `--allow-replace`:"
            )
        else:
            subject = kind.replace("(s)", "s").capitalize()
            out.append(f"> [!WARNING]\n> {subject} {fate}, allowed with `--allow-replace`:")
        for f in review.findings:
            what = "removed" if f.action == "Remove" else f"replaced ({f.replacement})"
            if f.nested_stack or f.reason or f.action not in ("Remove", "Modify") or f.policy_action or f.weakened:
                what = f.what.replace(f"nested stack {f.nested_stack}", f"nested stack `{f.nested_stack}`")
            flag = "allowed" if f.allowed else f"**blocked** (`--allow-replace {f.allow_id}`)"
            out.append(f"> - `{f.path}/{f.logical_id}` ({f.type}) {_md_cell(what)}: {flag}")
        out.append("")
    if review.parameters:
        out += ["#### Parameters", "", "| parameter | deployed | planned |", "|---|---|---|"]
        for c in review.parameters:
            planned = {
                "kept": "kept (UsePreviousValue)",
                "unchanged": "unchanged",
                "removed": "(removed)",
            }.get(c.status, f"**`{_md_cell(c.planned or '')}`**")
            deployed = f"`{_md_cell(c.deployed)}`" if c.deployed is not None else "(new)"
            out.append(f"| `{c.key}` | {deployed} | {planned} |")
        out.append("")
    out += _cost_markdown(review)
    for stack in review.stacks:
        rows = _rows(stack)
        if not rows:
            continue
        out += [f"#### {stack.path}", "", "| " + " | ".join(_HEAD) + " |", "|---|---|---|---|---|"]
        for action, logical_id, type_, replacement, props in rows:
            rep = f"**{replacement}**" if replacement in ("True", "Conditional") else replacement
            out.append(f"| {action} | `{logical_id}` | {type_} | {rep} | {_md_cell(props)} |")
        out.append("")
    return "\n".join(out)


def _cost_markdown(review: Review) -> list[str]:
    """The monthly delta, with the lines that change, for the pull-request comment."""
    cost = review.cost
    if not cost:
        return []
    if "error" in cost:
        return [f"Monthly cost: not estimated ({_md_cell(cost['error'])}).", ""]
    from kr_cfn.cost.report import headline

    out = [headline(cost, markdown=True), ""]
    changed = [ln for ln in cost.get("lines", []) if ln["after"] != ln["before"]]
    if changed:
        out += [
            "<details><summary>cost lines that change</summary>",
            "",
            "| line | before | after |",
            "|---|---:|---:|",
        ]
        for ln in changed:
            before = "-" if ln["before"] is None else f"{ln['before']:,.2f}"
            after = "-" if ln["after"] is None else f"{ln['after']:,.2f}"
            before = "unpriced" if ln.get("before_priced") is False else before
            after = "unpriced" if ln.get("after_priced") is False else after
            out.append(f"| `{ln['key']}` | {before} | {after} |")
        out += ["", "</details>", ""]
    return out


def _cost_lines(review: Review) -> list[str]:
    cost = review.cost
    if not cost:
        return []
    if "error" in cost:
        return [f"monthly cost: not estimated ({cost['error']})"]
    from kr_cfn.cost.report import headline

    return [headline(cost)]
