"""Monitoring section (``monitoring:``): alert recipients and alarm thresholds, and the stack's slice.

An alarm given in params is merged onto its default, so ``backend_cpu: {threshold: 90}`` keeps
the default period and evaluation periods; ``backend_cpu: null`` drops the alarm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from kr_cfn.config.base import Model, Problem
from kr_cfn.config.services import cidr_problems
from kr_cfn.naming import Naming

BACKEND = "backend"
"""The service whose CPU, memory, task count and latency are alarmed (BackendHighCPU, ...)."""

MAX_ALARM_WINDOW = 86400
"""CloudWatch evaluates at most one day of datapoints (period x evaluation_periods) for these alarms."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_HTTPS = re.compile(r"^https://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$")


class AlarmSpec(Model):
    """One CloudWatch alarm: when it fires. Unit of ``threshold`` depends on the alarm."""

    threshold: float = Field(
        gt=0, description="Value compared with the metric (unit per alarm, see docs/configuration.md 'Params')."
    )
    period: int = Field(300, ge=60, description="Seconds per datapoint; a multiple of 60.")
    evaluation_periods: int = Field(1, ge=1, description="How many recent datapoints the alarm looks at.")
    datapoints_to_alarm: int | None = Field(
        None, ge=1, description="How many of those must breach (M of N); null = all of them."
    )

    def check(self) -> list[Problem]:
        """Period resolution, the one-day window, M of N."""
        problems: list[Problem] = []
        if self.period % 60:
            problems.append(("period", f"{self.period} must be a multiple of 60 (1-minute metrics)"))
        elif self.period * self.evaluation_periods > MAX_ALARM_WINDOW:
            problems.append(
                (
                    "evaluation_periods",
                    f"{self.evaluation_periods} periods of {self.period} s exceed CloudWatch's one-day window",
                )
            )
        if self.datapoints_to_alarm is not None and self.datapoints_to_alarm > self.evaluation_periods:
            problems.append(
                (
                    "datapoints_to_alarm",
                    f"{self.datapoints_to_alarm} is above evaluation_periods {self.evaluation_periods}",
                )
            )
        return problems


class Alarms(Model):
    """The alarms, each ``null`` to drop it. Thresholds are the plan's values."""

    backend_cpu: AlarmSpec | None = Field(
        AlarmSpec(threshold=80, period=300, evaluation_periods=2),
        description="BackendHighCPU: backend ECS CPUUtilization average above threshold %.",
    )
    backend_memory: AlarmSpec | None = Field(
        AlarmSpec(threshold=85, period=300, evaluation_periods=2),
        description="BackendHighMemory: backend ECS MemoryUtilization average above threshold %.",
    )
    backend_tasks: AlarmSpec | None = Field(
        AlarmSpec(threshold=1, period=60, evaluation_periods=5),
        description="Backend running tasks at least threshold below desired (Container Insights).",
    )
    backend_latency: AlarmSpec | None = Field(
        AlarmSpec(threshold=2.0, period=300, evaluation_periods=2),
        description="Backend target response time p95 above threshold seconds (the smoke test's limit).",
    )
    unhealthy_targets: AlarmSpec | None = Field(
        AlarmSpec(threshold=1, period=60, evaluation_periods=2),
        description="ALBUnhealthyTargets: UnHealthyHostCount at least threshold, one alarm per target group.",
    )
    http_5xx: AlarmSpec | None = Field(
        AlarmSpec(threshold=5, period=300, evaluation_periods=1),
        description="ALB and target 5xx responses above threshold % of requests.",
    )
    db_connections: AlarmSpec | None = Field(
        AlarmSpec(threshold=80, period=300, evaluation_periods=2),
        description="RDSHighConnections: DatabaseConnections average above threshold.",
    )
    db_free_storage: AlarmSpec | None = Field(
        AlarmSpec(threshold=2, period=300, evaluation_periods=1),
        description="RDS FreeStorageSpace minimum below threshold GiB.",
    )
    secret_reads: AlarmSpec | None = Field(
        AlarmSpec(threshold=1000, period=3600, evaluation_periods=1),
        description="GetSecretValue calls in the account above threshold per period (the plan budgets ~100k "
        "a month, ~140 an hour); only with monitoring.cloudtrail_log_group.",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """Params entries override single fields of an alarm's default, not the whole alarm."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for key, value in data.items():
            field = cls.model_fields.get(key)
            if field is not None and isinstance(field.default, AlarmSpec) and isinstance(value, dict):
                merged[key] = {**field.default.model_dump(), **value}
        return merged

    def check(self) -> list[Problem]:
        """Every alarm's own checks; percentages at most 100."""
        problems: list[Problem] = []
        for name, spec in self:
            if spec is None:
                continue
            problems += [(f"{name}.{path}", msg) for path, msg in spec.check()]
            if name in PERCENT_ALARMS and spec.threshold > 100:
                problems.append((f"{name}.threshold", f"{spec.threshold:g} is a percentage and must be at most 100"))
        return problems


PERCENT_ALARMS = ("backend_cpu", "backend_memory", "http_5xx")


class SlackRoute(Model):
    """A Slack channel that AWS Chatbot posts the alerts to (authorised once: docs/runbook.md "Alert routes")."""

    workspace_id: str = Field(pattern=r"^[A-Z0-9]{1,255}$", description="Slack workspace (team) id, e.g. T07EA123LEP.")
    channel_id: str = Field(pattern=r"^[A-Z0-9]{1,255}$", description="Slack channel id, e.g. C07EZ1ABC23.")


class MonitoringConfig(Model):
    """Settings of the monitoring stack."""

    alert_emails: tuple[str, ...] = Field(
        (), description="E-mail addresses subscribed to the alerts topic (each confirms once); empty = none."
    )
    alert_https_endpoints: tuple[str, ...] = Field(
        (), description="HTTPS endpoints subscribed to the alerts topic (each confirms once); empty = none."
    )
    slack: SlackRoute | None = Field(None, description="Slack channel for the alerts through AWS Chatbot; null = none.")
    allow_no_alert_route: bool = Field(
        False, description="Build an environment with termination protection whose alarms reach no one."
    )
    http_5xx_min_requests: int = Field(
        20, ge=1, description="Requests per period below which the 5xx-rate alarm stays OK (no noise at night)."
    )
    alarms: Alarms = Field(default_factory=Alarms, description="Alarm thresholds and periods.")
    grafana_allowed_cidrs: tuple[str, ...] = Field(
        (),
        description="IPv4 networks that may open Grafana through the load balancer (grafana.<domain> or "
        "/grafana); empty = no route to Grafana at all.",
    )
    cloudtrail_log_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_./#-]{1,512}$",
        description="CloudWatch Logs group a CloudTrail trail of this account delivers to: a metric filter "
        "counts GetSecretValue calls there (alarms.secret_reads); null = no trail, no count (runbook, Secrets).",
    )
    prometheus_retention: str = Field(
        "15d",
        pattern=r"^[1-9][0-9]*(h|d|w|y)$",
        description="How long Prometheus keeps samples (--storage.tsdb.retention.time), e.g. 15d; "
        "on the task's ephemeral storage, lost when the task is replaced.",
    )

    def check(self) -> list[Problem]:
        """E-mail addresses well-formed and unique; every alarm's checks."""
        problems: list[Problem] = []
        seen: set[str] = set()
        for i, email in enumerate(self.alert_emails):
            if not _EMAIL.match(email):
                problems.append((f"alert_emails[{i}]", f"{email!r} is not an e-mail address"))
            elif email.lower() in seen:
                problems.append((f"alert_emails[{i}]", f"{email!r} is listed twice"))
            seen.add(email.lower())
        for i, url in enumerate(self.alert_https_endpoints):
            if not _HTTPS.match(url):
                problems.append((f"alert_https_endpoints[{i}]", f"{url!r} is not an https:// URL"))
            elif self.alert_https_endpoints.index(url) != i:
                problems.append((f"alert_https_endpoints[{i}]", f"{url!r} is listed twice"))
        if self.allow_no_alert_route and self.has_route:
            problems.append(("allow_no_alert_route", "true, but alert routes are configured; remove it"))
        problems += [(f"alarms.{path}", msg) for path, msg in self.alarms.check()]
        problems += [(f"grafana_allowed_cidrs[{i}]", msg) for i, msg in cidr_problems(self.grafana_allowed_cidrs)]
        return problems

    @property
    def has_route(self) -> bool:
        """Whether anything (e-mail, HTTPS endpoint, Slack) receives the alerts."""
        return bool(self.alert_emails or self.alert_https_endpoints or self.slack)


def check_monitoring(
    monitoring: MonitoringConfig, services: tuple[str, ...], load_balanced: tuple[str, ...], container_insights: bool
) -> list[Problem]:
    """Cross-section checks: the alarmed backend is rendered (and load-balanced, with Container Insights)."""
    alarms = monitoring.alarms
    problems: list[Problem] = []
    backend_alarms = [n for n in ("backend_cpu", "backend_memory", "backend_tasks") if getattr(alarms, n) is not None]
    if BACKEND not in services and backend_alarms:
        problems.append(
            ("alarms", f"{', '.join(backend_alarms)} watch the {BACKEND} service, which is not rendered; set them null")
        )
    if alarms.backend_latency is not None and BACKEND not in load_balanced:
        problems.append(("alarms.backend_latency", f"needs the {BACKEND} service behind the load balancer"))
    if alarms.backend_tasks is not None and not container_insights:
        problems.append(("alarms.backend_tasks", "needs ecs.container_insights (task counts come from it)"))
    return problems


@dataclass(frozen=True)
class MonitoringSlice:
    """What the monitoring stack may see."""

    names: Naming
    monitoring: MonitoringConfig
    services: tuple[str, ...]
    """ECS services the ecs stack renders (each outputs <Pascal>ServiceName), in params order."""
    load_balanced: tuple[str, ...]
    """Services with an ALB target group (each outputs <Pascal>TargetGroupFullName)."""
    container_insights: bool
    """Whether the cluster publishes Container Insights metrics (ECS/ContainerInsights)."""
    qdrant_snapshots: bool = False
    """Whether the ecs stack runs the daily Qdrant snapshot job (alarmed when it has not succeeded)."""
