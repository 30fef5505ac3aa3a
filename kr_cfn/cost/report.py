"""The estimate as a table, JSON or Markdown; the per-line delta against another estimate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from kr_cfn.cost.model import Line, total

FORMATS = ("table", "json", "markdown")


@dataclass
class Estimate:
    """One environment's monthly estimate."""

    env: str
    region: str
    lines: list[Line]
    savings: dict[str, float] = field(default_factory=dict)
    price_files: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Sum of the priced lines."""
        return total(self.lines)

    @property
    def unpriced(self) -> list[Line]:
        """Billable lines without a price."""
        return [ln for ln in self.lines if ln.usd is None]

    @property
    def stand_ins(self) -> list[Line]:
        """Lines priced (partly) with another region's figure."""
        return [ln for ln in self.lines if ln.stand_in]


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


def _diff(a: Line | None, b: Line | None) -> float:
    return ((b.usd or 0.0) if b else 0.0) - ((a.usd or 0.0) if a else 0.0)


def _cell(line: Line | None) -> str:
    return "-" if line is None else _usd(line.usd)


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"{value:,.2f}"


def _rows(est: Estimate) -> list[tuple[str, str, str, str]]:
    return [(ln.stack, ln.item, ln.config, _usd(ln.usd) + (" *" if ln.stand_in else "")) for ln in est.lines]


def _notes(est: Estimate) -> list[str]:
    out = []
    if est.stand_ins:
        out.append(
            f"* {len(est.stand_ins)} line(s) priced with another region's figure: the price data for "
            f"{est.region} has no sourced figure for them (see the price file); treat them as lower bounds"
        )
    for ln in est.unpriced:
        out.append(f"unpriced: {ln.stack}/{ln.logical_id} ({ln.type}) {ln.item}: {ln.note}")
    return out


def render_table(est: Estimate, compare: Estimate | None = None) -> str:
    """Aligned text: stack, line item, configuration, USD/month; total; savings; notes."""
    head = ("stack", "item", "configuration", "USD/month")
    rows = [head, *_rows(est)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    fmt = lambda r: "  ".join(  # noqa: E731
        c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
    )
    lines = [f"{est.env} ({est.region}): monthly estimate, USD", fmt(head), *[fmt(r) for r in rows[1:]]]
    lines.append(f"{'total':<{sum(widths[:3]) + 4}}  {est.total:>{widths[3]},.2f}")
    if est.savings:
        lines += ["", "what each optimisation saves (re-priced with it turned off):"]
        lines += [f"  {name:<14} {usd:>9,.2f}" for name, usd in est.savings.items()]
    if compare is not None:
        lines += [
            "",
            f"compared with {compare.env}: {compare.total:,.2f} -> {est.total:,.2f} "
            f"({est.total - compare.total:+,.2f})",
        ]
        for key, a, b in delta(compare.lines, est.lines):
            lines.append(f"  {key:<60} {_cell(a):>10} -> {_cell(b):>10}  {_diff(a, b):+,.2f}")
    notes = _notes(est)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def render_markdown(est: Estimate, compare: Estimate | None = None) -> str:
    """The plan's table: line item, configuration, USD/month, and the total."""
    out = [
        f"### Monthly cost: `{est.env}` ({est.region})",
        "",
        "| stack | item | configuration | USD/month |",
        "|---|---|---|---:|",
    ]
    out += [f"| {s} | {i} | {c.replace('|', '/')} | {u} |" for s, i, c, u in _rows(est)]
    out += [f"| | **total** | | **{est.total:,.2f}** |", ""]
    if est.savings:
        out += ["| optimisation | saves USD/month |", "|---|---:|"]
        out += [f"| {name} | {usd:,.2f} |" for name, usd in est.savings.items()]
        out.append("")
    if compare is not None:
        out += [
            f"Compared with `{compare.env}`: {compare.total:,.2f} → {est.total:,.2f} "
            f"(**{est.total - compare.total:+,.2f}**)",
            "",
            "| line | before | after | delta |",
            "|---|---:|---:|---:|",
        ]
        out += [
            f"| `{k}` | {_usd(a)} | {_usd(b)} | {(b or 0) - (a or 0):+,.2f} |"
            for k, _, a, b in delta(compare.lines, est.lines)
        ]
        out.append("")
    out += [f"- {n}" for n in _notes(est)]
    return "\n".join(out).rstrip() + "\n"


def to_data(est: Estimate, compare: Estimate | None = None) -> dict[str, Any]:
    """The estimate as plain data (for JSON)."""
    data: dict[str, Any] = {
        "env": est.env,
        "region": est.region,
        "currency": "USD",
        "total": round(est.total, 2),
        "lines": [{**asdict(ln), "usd": None if ln.usd is None else round(ln.usd, 4)} for ln in est.lines],
        "savings": {k: round(v, 2) for k, v in est.savings.items()},
        "unpriced": [ln.key for ln in est.unpriced],
        "stand_in_lines": [ln.key for ln in est.stand_ins],
        "price_files": est.price_files,
    }
    if compare is not None:
        data["compare_to"] = {
            "env": compare.env,
            "total": round(compare.total, 2),
            "delta": round(est.total - compare.total, 2),
            "lines": [
                {
                    "key": k,
                    "before": a.usd if a else None,
                    "after": b.usd if b else None,
                    "delta": round(_diff(a, b), 4),
                }
                for k, a, b in delta(compare.lines, est.lines)
            ],
        }
    return data


def render(est: Estimate, fmt: str, compare: Estimate | None = None) -> str:
    """The estimate in ``fmt`` (table, json or markdown)."""
    if fmt == "json":
        return json.dumps(to_data(est, compare), indent=2, sort_keys=True) + "\n"
    if fmt == "markdown":
        return render_markdown(est, compare)
    return render_table(est, compare)
