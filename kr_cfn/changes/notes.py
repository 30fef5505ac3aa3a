"""What ``plan`` tells besides the change set, read from the built templates (never from stacks/).

- Capacity: an autoscaled ECS service whose template has no ``DesiredCount`` keeps its running
  count on a deploy (AWS::ECS::Service: "For existing services, if a desired count is not
  specified, it is omitted from the operation"); one that has a ``DesiredCount`` would be reset
  to it on every deploy, which is a warning.
- Alert routes: alarms whose topics have no subscription and no Chatbot channel reach no one.
- Example values from the shipped params (``example.com``) that must be replaced before a deploy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kr_cfn.aws import Aws
from kr_cfn.changes.package import load_template
from kr_cfn.changes.review import Review

SERVICE = "AWS::ECS::Service"
SCALABLE_TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"
ALARM = "AWS::CloudWatch::Alarm"
SUBSCRIPTION = "AWS::SNS::Subscription"
TOPIC = "AWS::SNS::Topic"
CHATBOT_SLACK = "AWS::Chatbot::SlackChannelConfiguration"
CHATBOT_TEAMS = "AWS::Chatbot::MicrosoftTeamsChannelConfiguration"
_EXAMPLE = re.compile(r"(^|[.@])example\.(com|org|net)$|\.example$", re.I)


def _refs(value: Any) -> Iterator[str]:
    """Logical ids referenced by ``Ref`` or ``Fn::GetAtt`` anywhere inside ``value``."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                yield (inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def _of_type(template: Mapping[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: r.get("Properties") or {} for k, r in (template.get("Resources") or {}).items() if r["Type"] == type_}


def capacity(ecs: Mapping[str, Any], live: Mapping[str, int] | None = None) -> tuple[list[str], list[str]]:
    """(notes, warnings) about the task counts of the ecs template's autoscaled services.

    ``live`` maps an ECS service name to its desired count now, when the stack is deployed.
    """
    services = _of_type(ecs, SERVICE)
    ranges: dict[str, tuple[Any, Any]] = {}
    for props in _of_type(ecs, SCALABLE_TARGET).values():
        if props.get("ScalableDimension") != "ecs:service:DesiredCount":
            continue
        for ref in _refs(props.get("ResourceId")):
            if ref in services:
                ranges[ref] = (props.get("MinCapacity"), props.get("MaxCapacity"))
    notes: list[str] = []
    warnings: list[str] = []
    for logical_id, props in services.items():
        if logical_id not in ranges:
            continue
        low, high = ranges[logical_id]
        name = props.get("ServiceName", logical_id)
        if "DesiredCount" in props:
            warnings.append(
                f"{logical_id} ({name}): DesiredCount {props['DesiredCount']} with autoscaling {low}-{high}: "
                "every deploy resets the running task count to it"
            )
            continue
        kept = f"its {live[name]} desired task(s)" if live and name in live else "its running task count"
        notes.append(
            f"{logical_id} ({name}): autoscaled {low}-{high}; this deploy keeps {kept} "
            "(no DesiredCount in the template, Application Auto Scaling owns it)"
        )
    return notes, warnings


def alert_routes(monitoring: Mapping[str, Any], env: str) -> tuple[list[str], list[str]]:
    """(notes, warnings): whether the monitoring template's alarms reach anyone, and what needs a confirmation."""
    alarm_topics: set[str] = set()
    for props in _of_type(monitoring, ALARM).values():
        alarm_topics |= set(_refs([props.get("AlarmActions"), props.get("OKActions")]))
    if not alarm_topics:
        return [], []
    subscriptions = _of_type(monitoring, SUBSCRIPTION)
    routed: set[str] = set()
    for props in subscriptions.values():
        routed |= set(_refs(props.get("TopicArn")))
    channels = {**_of_type(monitoring, CHATBOT_SLACK), **_of_type(monitoring, CHATBOT_TEAMS)}
    for props in channels.values():
        routed |= set(_refs(props.get("SnsTopicArns")))
    for logical_id, props in _of_type(monitoring, TOPIC).items():
        if props.get("Subscription"):
            routed.add(logical_id)
    if not alarm_topics & routed:
        return [], [
            f"the alarms of {env} reach no one: the monitoring template has no subscription or Chatbot channel "
            "on their topic (set monitoring.alert_emails, monitoring.alert_https_endpoints or monitoring.slack)"
        ]
    notes = []
    pending = sorted(p.get("Protocol", "?") for p in subscriptions.values() if p.get("Protocol") in ("email", "https"))
    if pending:
        counts = ", ".join(f"{pending.count(p)} {p}" for p in sorted(set(pending)))
        notes.append(
            f"alert subscriptions ({counts}) receive nothing until each is confirmed once "
            "(docs/runbook.md, Alert routes)"
        )
    if channels:
        notes.append(
            "Slack alerts need the workspace authorised once in the AWS Chatbot console (docs/runbook.md, Alert routes)"
        )
    return notes, []


def example_values(templates: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Warnings for documentation example values (example.com) still in the built templates."""
    found: set[str] = set()
    checks = (
        ("alb", "AWS::CertificateManager::Certificate", "DomainName"),
        ("alb", "AWS::Route53::RecordSet", "Name"),
        ("monitoring", SUBSCRIPTION, "Endpoint"),
    )
    for stack, type_, key in checks:
        for props in _of_type(templates.get(stack) or {}, type_).values():
            value = props.get(key)
            host = re.sub(r"^https://([^/:]+).*$", r"\1", value) if isinstance(value, str) else ""
            if host and _EXAMPLE.search(host.rstrip(".")):
                found.add(value)
    if not found:
        return []
    return [
        f"example values from the shipped params are still set ({', '.join(sorted(found))}): "
        "replace them (docs/runbook.md, HTTPS)"
    ]


def _built(env_dir: Path, name: str) -> dict[str, Any]:
    for ext in ("yaml", "json"):
        path = env_dir / f"{name}.{ext}"
        if path.exists():
            return load_template(path)
    return {}


def add_template_notes(review: Review, env_dir: Path, env: str, live: Mapping[str, int] | None = None) -> None:
    """Add the capacity, alert-route and example-value notes and warnings of ``env``'s built templates."""
    templates = {name: _built(env_dir, name) for name in ("ecs", "monitoring", "alb")}
    for notes, warnings in (capacity(templates["ecs"], live), alert_routes(templates["monitoring"], env)):
        review.notes += notes
        review.warnings += warnings
    review.warnings += example_values(templates)


def live_desired_counts(aws: Aws, stack: Mapping[str, Any] | None) -> dict[str, int]:
    """ECS service name -> desired count now, from the deployed root's ClusterName output; {} if unknown."""
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}
    cluster = outputs.get("ClusterName")
    if not cluster:
        return {}
    ecs = aws.client("ecs")
    counts: dict[str, int] = {}
    try:
        arns = [a for page in ecs.get_paginator("list_services").paginate(cluster=cluster) for a in page["serviceArns"]]
        for i in range(0, len(arns), 10):  # DescribeServices takes at most 10 services
            for service in ecs.describe_services(cluster=cluster, services=arns[i : i + 10])["services"]:
                counts[service["serviceName"]] = service["desiredCount"]
    except (BotoCoreError, ClientError):
        return {}  # the counts only decorate the review; the plan does not depend on them
    return counts
