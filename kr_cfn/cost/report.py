"""The estimate as a table, JSON or Markdown; the per-line delta against another estimate.

A total that leaves unpriced lines out is shown as a bound ("at least ..., unknown: N unpriced"),
and a delta with an unpriced line on either side is unknown: a missing price never counts as $0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kr_cfn.config.cost import CostConfig
from kr_cfn.cost.items import Line, Part
from kr_cfn.cost.model import SAVINGS, total, unpriced

FORMATS = ("table", "json", "markdown")
SCHEMA_VERSION = 1
"""Version of the JSON layout (docs/cost.md, "JSON"); raised when a key changes meaning or goes away."""
STALE_DAYS = 365
"""A figure read longer ago than this is reported as old."""


@dataclass
class Estimate:
    """One environment's monthly estimate."""

    env: str
    region: str
    lines: list[Line]
    savings: dict[str, float | None] = field(default_factory=dict)
    price_files: list[str] = field(default_factory=list)
    hours_per_month: float = CostConfig().hours_per_month
    warnings: list[str] = field(default_factory=list)
    savings_plan: dict[str, Any] | None = None
    used: list[tuple[str, str, str, float]] = field(default_factory=list)
    """Every usage figure the estimate read: (stack, logical id, name, default)."""

    @property
    def total(self) -> float:
        """Sum of the priced lines (a lower bound when any line is unpriced)."""
        return total(self.lines)

    @property
    def unpriced(self) -> list[Line]:
        """Billable lines without a price."""
        return unpriced(self.lines)

    @property
    def stand_ins(self) -> list[Line]:
        """Lines priced (partly) with another region's figure."""
        return [ln for ln in self.lines if ln.stand_in]


def stale(lines: list[Line], today: date) -> list[str]:
    """A warning when price figures used date from more than a year before ``today``, naming the oldest.

    A figure's date is its page's date, else the file's read date (``Part.read``).
    """
    old: dict[str, str] = {}
    for ln in lines:
        for part in ln.parts:
            if part.read and (today - date.fromisoformat(part.read)).days > STALE_DAYS:
                old[part.key] = min(old.get(part.key, part.read), part.read)
    if not old:
        return []
    keys = sorted(old, key=lambda k: (old[k], k))
    shown = ", ".join(f"{k} ({old[k]})" for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
    return [
        f"{len(keys)} price figure(s) used are more than a year old on {today}: {shown}; "
        "check them against the AWS pages (JSON: lines[].components[].price_date)"
    ]


def delta(old: list[Line], new: list[Line]) -> list[tuple[str, Line | None, Line | None]]:
    """(key, old line, new line) for every line added, removed, repriced or reconfigured."""
    before = {ln.key: ln for ln in old}
    after = {ln.key: ln for ln in new}
    out = []
    for key in dict.fromkeys([*before, *after]):
        a, b = before.get(key), after.get(key)
        if a is None or b is None or _cents(a.usd) != _cents(b.usd) or a.config != b.config:
            out.append((key, a, b))
    return out


def _cents(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _unknown(a: Line | None, b: Line | None) -> bool:
    return (a is not None and a.usd is None) or (b is not None and b.usd is None)


def _diff(a: Line | None, b: Line | None) -> float | None:
    if _unknown(a, b):
        return None
    return ((b.usd or 0.0) if b else 0.0) - ((a.usd or 0.0) if a else 0.0)


def bound(usd: float, missing: int) -> str:
    """``12.34``, or ``at least 12.34 (unknown: 2 unpriced)`` when lines are left out."""
    return f"{usd:,.2f}" if not missing else f"at least {usd:,.2f} (unknown: {missing} unpriced)"


def compare(old: list[Line], new: list[Line], fail_above: float | None = None) -> dict[str, Any]:
    """Before, after and the monthly delta as plain data (plan, diff, ``--compare-to``).

    The delta is None (unknown) when a changed line is unpriced on either side. ``exceeded``: the
    increase passes ``fail_above`` (True also when the delta is unknown: the limit cannot be shown to hold).
    """
    changed = delta(old, new)
    unknown = [k for k, a, b in changed if _unknown(a, b)]
    before, after = total(old), total(new)
    out: dict[str, Any] = {
        "before": round(before, 2),
        "after": round(after, 2),
        "before_unpriced": len(unpriced(old)),
        "after_unpriced": len(unpriced(new)),
        "delta": None if unknown else round(after - before, 2),
        "priced_delta": round(after - before, 2),
        "unknown_lines": unknown,
        "unpriced": [ln.key for ln in unpriced(new)],
        "lines": [
            {
                "key": k,
                "before": None if a is None else _round(a.usd),
                "after": None if b is None else _round(b.usd),
                "delta": _round(_diff(a, b)),
                "before_priced": a is None or a.usd is not None,
                "after_priced": b is None or b.usd is not None,
            }
            for k, a, b in changed
        ],
    }
    if fail_above is not None:
        out["fail_above"] = fail_above
        out["exceeded"] = bool(unknown) or after - before > fail_above
    return out


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def headline(cost: dict[str, Any], markdown: bool = False) -> str:
    """The one-line monthly cost of a compare() result, as the plan review and ``kr-cfn diff`` print it."""
    before = bound(cost["before"], cost.get("before_unpriced", 0))
    after = bound(cost["after"], cost.get("after_unpriced", 0))
    arrow = "→" if markdown else "->"
    if cost.get("delta") is None and "priced_delta" in cost:
        n = len(cost.get("unknown_lines", []))
        change = f"delta unknown: {n} changed line(s) unpriced; priced lines only {cost['priced_delta']:+,.2f}"
    else:
        change = f"**{cost['delta']:+,.2f}**" if markdown else f"{cost['delta']:+,.2f}"
    head = "Monthly cost (list prices, `kr-cfn cost`)" if markdown else "monthly cost (kr-cfn cost, list prices)"
    text = f"{head}: {before} {arrow} {after} USD ({change})"
    if cost.get("fail_above") is not None:
        verdict = "PASSED" if cost.get("exceeded") else "within"
        verdict = "cannot be checked, the delta is unknown" if cost.get("delta") is None else verdict
        text += f"; limit +{cost['fail_above']:,.2f} USD/month (cost.fail_above_usd): {verdict}"
    return text


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"{value:,.2f}"


def _basis(ln: Line) -> str:
    return "usage" if ln.usage else ""


def _rows(est: Estimate) -> list[tuple[str, ...]]:
    return [
        (
            ln.stack,
            ln.name,
            ln.item,
            ln.config,
            ln.components() or "-",
            _basis(ln),
            _usd(ln.usd) + (" *" if ln.stand_in else ""),
        )
        for ln in est.lines
    ]


def _savings_rows(est: Estimate) -> list[tuple[str, str]]:
    rows = [(SAVINGS[k][0], "unknown (unpriced lines)" if v is None else f"{v:,.2f}") for k, v in est.savings.items()]
    if est.savings_plan:
        sp = est.savings_plan
        rows.append((sp["label"], "unknown: no sourced rate" if sp["usd"] is None else f"{sp['usd']:,.2f}"))
    return rows


def _notes(est: Estimate) -> list[str]:
    out = []
    if est.unpriced:
        out.append(
            f"the total is a lower bound: {len(est.unpriced)} line(s) unpriced (priced lines only; "
            "a missing price is never counted as 0)"
        )
    if est.stand_ins:
        out.append(
            f"* {len(est.stand_ins)} line(s) priced with another region's figure: the price data for "
            f"{est.region} has no sourced figure for them (see the price file); treat them as lower bounds"
        )
    if any(ln.usage for ln in est.lines):
        out.append(
            "usage: the line depends on usage figures (cost: in params, or per resource with --usage FILE), "
            "not on the templates alone"
        )
    for ln in est.unpriced:
        out.append(f"unpriced: {ln.stack}/{ln.logical_id} ({ln.type}) {ln.item}: {ln.note}")
    out += [f"warning: {w}" for w in est.warnings]
    return out


def render_table(est: Estimate, compare_to: Estimate | None = None, fail_above: float | None = None) -> str:
    """Aligned text: stack, resource, item, configuration, components, basis, USD/month; total; savings; notes."""
    head = ("stack", "resource", "item", "configuration", "components", "basis", "USD/month")
    rows = [head, *_rows(est)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    last = len(head) - 1

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i == last else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    lines = [f"{est.env} ({est.region}): monthly estimate, USD", fmt(head), *[fmt(r) for r in rows[1:]]]
    lines.append(f"total: {bound(est.total, len(est.unpriced))}")
    if est.savings:
        lines += ["", "what each optimisation saves (re-priced with it turned off):"]
        lines += [f"  {name:<34} {usd:>9}" for name, usd in _savings_rows(est)]
    if compare_to is not None:
        cost = compare(compare_to.lines, est.lines, fail_above)
        lines += ["", f"compared with {compare_to.env}: " + headline(cost).split(": ", 1)[1]]
        for key, a, b in delta(compare_to.lines, est.lines):
            diff = _diff(a, b)
            change = "unknown" if diff is None else f"{diff:+,.2f}"
            lines.append(f"  {key:<60} {_cell(a):>10} -> {_cell(b):>10}  {change}")
    notes = _notes(est)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _cell(line: Line | None) -> str:
    return "-" if line is None else _usd(line.usd)


def render_markdown(est: Estimate, compare_to: Estimate | None = None, fail_above: float | None = None) -> str:
    """The plan's table: resource, item, configuration, components, USD/month, and the total."""
    out = [
        f"### Monthly cost: `{est.env}` ({est.region})",
        "",
        "| stack | resource | item | configuration | components | basis | USD/month |",
        "|---|---|---|---|---|---|---:|",
    ]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in _rows(est)]
    out += [f"| | | **total** | | | | **{bound(est.total, len(est.unpriced))}** |", ""]
    if est.savings:
        out += ["| optimisation | saves USD/month |", "|---|---:|"]
        out += [f"| {name} | {usd} |" for name, usd in _savings_rows(est)]
        out.append("")
    if compare_to is not None:
        cost = compare(compare_to.lines, est.lines, fail_above)
        out += [
            f"Compared with `{compare_to.env}`: " + headline(cost, markdown=True).split(": ", 1)[1],
            "",
            "| line | before | after | delta |",
            "|---|---:|---:|---:|",
        ]
        for k, a, b in delta(compare_to.lines, est.lines):
            diff = _diff(a, b)
            out.append(f"| `{k}` | {_cell(a)} | {_cell(b)} | {'unknown' if diff is None else f'{diff:+,.2f}'} |")
        out.append("")
    out += [f"- {n}" for n in _notes(est)]
    return "\n".join(out).rstrip() + "\n"


def _part(p: Part) -> dict[str, Any]:
    return {
        "price_key": p.key,
        "quantity": round(p.quantity, 6),
        "count": round(p.count, 6),
        "unit": p.unit,
        "unit_usd": p.unit_usd,
        "usd": _round(p.usd),
        "stand_in": p.stand_in,
        "price_date": p.read,
        "free_allowance": p.free,
        "text": p.text(),
    }


def _line(ln: Line) -> dict[str, Any]:
    return {
        "key": ln.key,
        "stack": ln.stack,
        "logical_id": ln.logical_id,
        "resource_type": ln.type,
        "name": ln.name,
        "item": ln.item,
        "configuration": ln.config,
        "usd": _round(ln.usd),
        "priced": ln.usd is not None,
        "stand_in": ln.stand_in,
        "usage_based": bool(ln.usage),
        "usage_keys": ln.usage,
        "note": ln.note,
        "components": [_part(p) for p in ln.parts],
    }


def to_data(est: Estimate, compare_to: Estimate | None = None, fail_above: float | None = None) -> dict[str, Any]:
    """The estimate as plain data (JSON ``schema_version`` 1, documented in docs/cost.md)."""
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "env": est.env,
        "region": est.region,
        "currency": "USD",
        "hours_per_month": est.hours_per_month,
        "total": {"usd": round(est.total, 2), "complete": not est.unpriced, "unpriced_lines": len(est.unpriced)},
        "lines": [_line(ln) for ln in est.lines],
        "savings": [
            {"id": k, "label": SAVINGS[k][0], "usd": None if v is None else round(v, 2)} for k, v in est.savings.items()
        ],
        "savings_plan": est.savings_plan,
        "unpriced": [ln.key for ln in est.unpriced],
        "stand_in_lines": [ln.key for ln in est.stand_ins],
        "price_files": est.price_files,
        "warnings": est.warnings,
    }
    if compare_to is not None:
        data["compare_to"] = {"env": compare_to.env, **compare(compare_to.lines, est.lines, fail_above)}
    return data


def render(est: Estimate, fmt: str, compare_to: Estimate | None = None, fail_above: float | None = None) -> str:
    """The estimate in ``fmt`` (table, json or markdown)."""
    if fmt == "json":
        # allow_nan=False: a NaN or Infinity would not be JSON; the price and usage checks keep them out
        return json.dumps(to_data(est, compare_to, fail_above), indent=2, sort_keys=True, allow_nan=False) + "\n"
    if fmt == "markdown":
        return render_markdown(est, compare_to, fail_above)
    return render_table(est, compare_to, fail_above)
