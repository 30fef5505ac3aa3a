"""The cost model's parts: line items, the options and the context a rule prices one resource in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kr_cfn.config.cost import CostConfig
from kr_cfn.cost.prices import PriceBook
from kr_cfn.cost.templates import Stack


@dataclass(frozen=True)
class Options:
    """Optimisations turned off, to measure what each one saves."""

    no_spot: bool = False
    no_schedules: bool = False
    x86_only: bool = False
    log_retention_days: int | None = None
    nat_per_az: bool = False


UNITS: list[tuple[str, str]] = [
    ("vcpu_hour", "vCPU-h"),
    ("lcu_hour", "LCU-h"),
    ("gb_hour", "GB-h"),
    ("gb_month", "GB-month"),
    ("metric_month", "metric-month"),
    ("alarm_month", "alarm-month"),
    ("dashboard_month", "dashboard-month"),
    ("key_month", "key-month"),
    ("secret_month", "secret-month"),
    ("zone_month", "zone-month"),
    ("api_10k", "10k-calls"),
    ("queries_million", "M queries"),
    ("million_invocations", "M invocations"),
    ("hour", "h"),
    ("gb", "GB"),
]
"""Unit of a price-file key, by the end of its last part (first match wins)."""


def unit(key: str) -> str:
    """The unit a price-file key is priced in (``nat.hour`` -> ``h``, ``s3.standard.gb_month`` -> ``GB-month``)."""
    last = key.rsplit(".", 1)[-1]
    return next((u for end, u in UNITS if last.endswith(end)), last)


@dataclass(frozen=True)
class Part:
    """One component of a line: ``count x quantity/count unit x unit price`` from one price-file key."""

    key: str
    quantity: float
    unit: str
    unit_usd: float | None
    count: float = 1.0
    stand_in: bool = False
    read: str | None = None
    free: bool = False
    """An account-wide free allowance taken off the line (a negative quantity; ``cost.free_tier``)."""

    @property
    def usd(self) -> float | None:
        """USD a month of this component; None when the price data has no figure."""
        return None if self.unit_usd is None else self.quantity * self.unit_usd

    def text(self) -> str:
        """``2 x 730 h x $0.052/h [nat.hour]``: quantity, unit, unit price, price-file key (count only when not 1)."""
        per = self.quantity / self.count if self.count else 0.0
        qty = f"{self.count:g} x {per:,.6g} {self.unit}" if self.count != 1 else f"{self.quantity:,.6g} {self.unit}"
        rate = "no price" if self.unit_usd is None else f"${self.unit_usd:g}/{self.unit}"
        return f"{'free ' if self.free else ''}{qty} x {rate} [{self.key}]"


@dataclass
class Line:
    """One line of the estimate."""

    stack: str
    logical_id: str
    type: str
    item: str
    config: str
    usd: float | None
    note: str = ""
    stand_in: bool = False
    name: str = ""
    """What the line prices: the resource's physical name when the template gives it, else its logical id."""
    parts: list[Part] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)
    """Usage figures (``cost:`` settings or usage-file keys) the line depends on; empty: the template alone."""

    @property
    def key(self) -> str:
        """Stable identity of the line across two estimates."""
        return f"{self.stack}/{self.logical_id}/{self.item}"

    def components(self) -> str:
        """The line's components as text: ``2 x 730 h x $0.021/h [rds.postgres.db.t3.micro.hour] + ...``."""
        return " + ".join(p.text() for p in self.parts)


Overrides = dict[tuple[str, str], dict[str, float]]
"""Usage figures per resource, keyed by (stack, logical id): the usage file (``--usage FILE``)."""


@dataclass
class Context:
    """What a rule may read: the stack, all stacks of the env, prices, usage, options."""

    stack: Stack
    stacks: list[Stack]
    prices: PriceBook
    usage: CostConfig
    options: Options
    log_groups: int = 1
    lines: list[Line] = field(default_factory=list)
    overrides: Overrides = field(default_factory=dict)
    used: list[tuple[str, str, str, float]] = field(default_factory=list)
    """Every usage figure read, as (stack, logical id, name, value): the skeleton ``--sync-usage`` writes."""
    _pending: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float:
        """Hours in the month (``cost.hours_per_month``, the one setting every hourly figure uses)."""
        return self.usage.hours_per_month

    def use(self, sid: str, name: str, default: float) -> float:
        """The usage figure ``name`` of resource ``sid``: the usage file's, else the ``cost:`` default."""
        value = self.overrides.get((self.stack.name, sid), {}).get(name, default)
        self.used.append((self.stack.name, sid, name, default))
        self._pending.append(f"{self.stack.name}.{sid}.{name}")
        return value

    def add(
        self,
        logical_id: str,
        type_: str,
        item: str,
        config: str,
        parts: list[tuple[str, float] | tuple[str, float, float]],
        note: str = "",
    ) -> None:
        """Add a line priced as the sum of ``quantity x price[key]``; unpriced if any key has no figure.

        A part is ``(key, quantity)`` or ``(key, quantity, count)``: ``count`` only shapes how the
        quantity is shown (``2 x 730 h``).
        """
        out: list[Part] = []
        for key, qty, *count in parts:
            if qty == 0:
                continue
            price = self.prices.get(key)
            out.append(
                Part(
                    key,
                    qty,
                    unit(key),
                    None if price is None else price.usd,
                    count[0] if count else 1.0,
                    price is not None and price.stand_in is not None,
                    None if price is None else price.read,
                )
            )
        missing = [p.key for p in out if p.unit_usd is None]
        if missing:
            note = "; ".join(filter(None, [note, f"no price for {', '.join(missing)} in the price data"]))
        usd = None if missing else sum(p.usd or 0.0 for p in out)
        res = self.stack.resources.get(logical_id) or {}
        self.lines.append(
            Line(
                self.stack.name,
                logical_id,
                type_,
                item,
                config,
                usd,
                note,
                any(p.stand_in for p in out),
                _label(self.stack, logical_id, res),
                out,
                list(dict.fromkeys(self._pending)),
            )
        )
        self._pending.clear()

    def unpriced(self, logical_id: str, type_: str, item: str, config: str, note: str) -> None:
        """Add a billable line the model cannot price, with the reason."""
        res = self.stack.resources.get(logical_id) or {}
        self.lines.append(
            Line(self.stack.name, logical_id, type_, item, config, None, note, name=_label(self.stack, logical_id, res))
        )
        self._pending.clear()


NAME_PROPS: dict[str, str] = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ECS::Service": "ServiceName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::RDS::DBInstance": "DBInstanceIdentifier",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "Name",
    "AWS::ElastiCache::ReplicationGroup": "ReplicationGroupId",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::Route53::HostedZone": "Name",
}
"""The property that names a resource of each type (its physical name)."""


def _label(stack: Stack, sid: str, res: dict[str, Any]) -> str:
    """The resource's name from the template (a literal, a known parameter or an ``Fn::Sub`` text), else ``sid``."""
    node = _props(res).get(NAME_PROPS.get(str(res.get("Type")), ""))
    value = stack.value(node)
    if isinstance(value, str) and value:
        return value
    sub = node.get("Fn::Sub") if isinstance(node, dict) else None
    return sub if isinstance(sub, str) else sid


Rule = Callable[[Context, str, dict[str, Any]], None]


def _props(res: dict[str, Any]) -> dict[str, Any]:
    props = res.get("Properties")
    return props if isinstance(props, dict) else {}


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _ref(node: Any) -> str | None:
    if isinstance(node, dict) and isinstance(node.get("Ref"), str):
        return node["Ref"]
    return None
