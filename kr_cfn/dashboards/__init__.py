"""Grafana dashboards as code: the JSON files next to this module and the backend's metric contract.

A service that lists ``dashboards`` (Grafana) gets each file written at start into
:data:`DASHBOARDS_PATH`, where Grafana's file provider (:func:`provider_yaml`) loads it. The
files travel gzip-compressed and base64-encoded in the task definition (one environment
variable each), because a task definition is limited in size (:data:`TASK_DEFINITION_LIMIT`).

A dashboard names the environment's resources with ``{{dash:<value>}}`` placeholders
(:data:`VALUES`); the container's entry point replaces them with values that CloudFormation
resolves at deploy time (the cluster, the other stacks' load balancer, target groups and
database instance, wired as Parameters), so one JSON file serves every environment.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS_PATH = "/var/lib/grafana/dashboards"
"""Where the container writes the dashboards (owned by the image's grafana user)."""
PROVIDER_PATH = "/etc/grafana/provisioning/dashboards/knowledgerouter.yaml"
PLACEHOLDER = re.compile(r"\{\{dash:([a-z_]+)\}\}")
VALUES = ("cluster", "services", "load_balancer", "target_groups", "db_instance")
"""What a dashboard may name: ECS cluster, service names (comma-separated), ALB full name, target group
full names (comma-separated), RDS instance identifier."""

TASK_DEFINITION_LIMIT = 64 * 1024
"""Amazon ECS service quotas, "Task definition size": 64 KiB, not adjustable
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html)."""
PAYLOAD_BUDGET = 48 * 1024
"""Bytes of written files and dashboards a task definition may carry: the rest of the 64 KiB is
left for the container definition itself (image, environment, secrets, health check, ...)."""


@dataclass(frozen=True)
class Metric:
    """One metric of the backend's contract (docs/runbook.md "Backend metric contract")."""

    name: str
    type: str
    labels: tuple[str, ...]
    meaning: str


BACKEND_METRICS: tuple[Metric, ...] = (
    Metric(
        "kr_langgraph_node_duration_seconds",
        "histogram",
        ("node",),
        "Seconds one LangGraph node took to run (one observation per node execution).",
    ),
    Metric(
        "kr_langgraph_runs_total",
        "counter",
        ("status",),
        "Completed graph runs; status is ok or error.",
    ),
    Metric(
        "kr_guardrail_checks_total",
        "counter",
        ("guardrail", "outcome"),
        "Guardrail evaluations; outcome is pass, retry (answer sent back for another attempt) or block.",
    ),
    Metric(
        "kr_tool_selections_total",
        "counter",
        ("tool",),
        "Tools the agent chose (one increment per selection), e.g. confluence_search, jira_search.",
    ),
    Metric(
        "kr_qdrant_query_duration_seconds",
        "histogram",
        ("collection",),
        "Seconds of one Qdrant search as the backend sees it (client side, network included).",
    ),
    Metric(
        "kr_embedding_duration_seconds",
        "histogram",
        ("model",),
        "Seconds to embed one query or batch of document chunks, per embedding model.",
    ),
    Metric(
        "kr_citation_relevance_score",
        "histogram",
        ("domain",),
        "Relevance score (0-1, buckets 0.1 apart) of each chunk cited in an answer; domain is it or hr.",
    ),
)
"""The metrics the backend must export on ``/metrics`` (its ``metrics_path``) for the dashboards."""


def names() -> list[str]:
    """The dashboards shipped with kr_cfn (file stems), sorted."""
    return sorted(p.stem for p in HERE.glob("*.json"))


@cache
def text(name: str) -> str:
    """The dashboard's JSON text, with its ``{{dash:...}}`` placeholders."""
    return (HERE / f"{name}.json").read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The dashboard as data."""
    data: dict[str, Any] = json.loads(text(name))
    return data


def placeholders(name: str) -> list[str]:
    """The ``{{dash:...}}`` values the dashboard uses, in order of first use."""
    found = PLACEHOLDER.findall(text(name))
    return [v for i, v in enumerate(found) if v not in found[:i]]


@cache
def encoded(name: str) -> str:
    """Gzip (no timestamp, so builds are reproducible) then base64: what the task definition carries."""
    raw = json.dumps(load(name), separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode()


def provider_yaml() -> str:
    """Grafana's file provider for :data:`DASHBOARDS_PATH`: read-only dashboards in one folder.

    https://grafana.com/docs/grafana/latest/administration/provisioning/#dashboards
    """
    return (
        "apiVersion: 1\n"
        "providers:\n"
        "  - name: knowledgerouter\n"
        "    orgId: 1\n"
        "    folder: KnowledgeRouter\n"
        "    type: file\n"
        # Changed in the repository, not in the UI: a UI edit would be lost at the next start.
        "    disableDeletion: true\n"
        "    allowUiUpdates: false\n"
        "    options:\n"
        f"      path: {DASHBOARDS_PATH}\n"
    )
