"""Monitoring stack: alerts topic, every alarm, the dashboard, the saved query, and its params."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kr_cfn import config
from kr_cfn.config.monitoring import MonitoringConfig, MonitoringSlice, check_monitoring
from kr_cfn.naming import Naming, pascal
from stacks import monitoring
from tests.conftest import ENVS, built, load_env, resources_of_type, write_params

NAMES = Naming("knowledgerouter", "dev", "knowledgerouter-dev")
SERVICES = ("backend", "frontend", "qdrant", "redis", "prometheus", "grafana")
LOAD_BALANCED = ("backend", "frontend")
PSEUDO = {"AWS::Region": "eu-central-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}


def _slice(
    services: tuple[str, ...] = SERVICES,
    load_balanced: tuple[str, ...] = LOAD_BALANCED,
    container_insights: bool = True,
    **monitoring_params: Any,
) -> MonitoringSlice:
    return MonitoringSlice(
        NAMES, MonitoringConfig.model_validate(monitoring_params), services, load_balanced, container_insights
    )


def _template(sl: MonitoringSlice | None = None) -> dict[str, Any]:
    return monitoring.build(sl or _slice()).to_dict()


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _dims(**dims: Any) -> list[dict[str, Any]]:
    return [{"Name": k, "Value": v} for k, v in dims.items()]


TOPIC = _ref("AlertsTopic")
BACKEND = {"ClusterName": _ref("ClusterName"), "ServiceName": _ref("BackendServiceName")}
LB = _ref("LoadBalancerFullName")

# logical id -> (name, namespace, metric, statistic, dimensions, comparison, threshold, period, periods, missing)
SINGLE_METRIC_ALARMS = {
    "BackendHighCpuAlarm": (
        "BackendHighCPU", "AWS/ECS", "CPUUtilization", ("Statistic", "Average"), _dims(**BACKEND),
        "GreaterThanThreshold", 80, 300, 2, "notBreaching",
    ),
    "BackendHighMemoryAlarm": (
        "BackendHighMemory", "AWS/ECS", "MemoryUtilization", ("Statistic", "Average"), _dims(**BACKEND),
        "GreaterThanThreshold", 85, 300, 2, "notBreaching",
    ),
    "BackendHighLatencyAlarm": (
        "BackendHighLatency", "AWS/ApplicationELB", "TargetResponseTime", ("ExtendedStatistic", "p95"),
        _dims(LoadBalancer=LB, TargetGroup=_ref("BackendTargetGroupFullName")),
        "GreaterThanThreshold", 2, 300, 2, "notBreaching",
    ),
    "BackendUnhealthyTargetsAlarm": (
        "ALBUnhealthyTargets-backend", "AWS/ApplicationELB", "UnHealthyHostCount", ("Statistic", "Maximum"),
        _dims(LoadBalancer=LB, TargetGroup=_ref("BackendTargetGroupFullName")),
        "GreaterThanOrEqualToThreshold", 1, 60, 2, "notBreaching",
    ),
    "FrontendUnhealthyTargetsAlarm": (
        "ALBUnhealthyTargets-frontend", "AWS/ApplicationELB", "UnHealthyHostCount", ("Statistic", "Maximum"),
        _dims(LoadBalancer=LB, TargetGroup=_ref("FrontendTargetGroupFullName")),
        "GreaterThanOrEqualToThreshold", 1, 60, 2, "notBreaching",
    ),
    "DbHighConnectionsAlarm": (
        "RDSHighConnections", "AWS/RDS", "DatabaseConnections", ("Statistic", "Average"),
        _dims(DBInstanceIdentifier=_ref("DbInstanceId")), "GreaterThanThreshold", 80, 300, 2, "notBreaching",
    ),
    "DbLowFreeStorageAlarm": (
        "RDSLowFreeStorage", "AWS/RDS", "FreeStorageSpace", ("Statistic", "Minimum"),
        _dims(DBInstanceIdentifier=_ref("DbInstanceId")), "LessThanThreshold", 2 * 1024**3, 300, 1, "ignore",
    ),
}  # fmt: skip

METRIC_MATH_ALARMS = {"BackendTasksBelowDesiredAlarm", "AlbHigh5xxRateAlarm"}


def _alarms(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources_of_type(t, "AWS::CloudWatch::Alarm").items()}


# --------------------------------------------------------------------------- topic


def test_alerts_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    t = _template()
    topic = t["Resources"]["AlertsTopic"]["Properties"]
    assert topic["TopicName"] == "knowledgerouter-dev-devops-alerts"
    assert topic["KmsMasterKeyId"] == _ref("AlertsKey")
    key = t["Resources"]["AlertsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": _ref("AWS::AccountId")}
    arn = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert arn.endswith(":alarm:knowledgerouter-dev-*")
    assert all(a["AlarmName"].startswith("knowledgerouter-dev-") for a in _alarms(t).values())
    assert t["Outputs"]["AlertsTopicArn"]["Value"] == TOPIC


def test_email_subscriptions_from_params() -> None:
    t = _template(_slice(alert_emails=["ops@example.com", "oncall@example.com"]))
    subs = resources_of_type(t, "AWS::SNS::Subscription")
    assert sorted(s["Properties"]["Endpoint"] for s in subs.values()) == ["oncall@example.com", "ops@example.com"]
    assert all(s["Properties"]["Protocol"] == "email" and s["Properties"]["TopicArn"] == TOPIC for s in subs.values())
    # Removing one address keeps the other's logical id (no re-subscription, no new confirmation).
    only = resources_of_type(_template(_slice(alert_emails=["oncall@example.com"])), "AWS::SNS::Subscription")
    assert set(only) < set(subs)


def test_no_emails_no_subscriptions() -> None:
    assert resources_of_type(_template(), "AWS::SNS::Subscription") == {}


# --------------------------------------------------------------------------- alarms


def test_every_alarm_is_known_and_notifies_on_alarm_and_ok() -> None:
    alarms = _alarms(_template())
    assert set(alarms) == set(SINGLE_METRIC_ALARMS) | METRIC_MATH_ALARMS
    for logical_id, alarm in alarms.items():
        assert alarm["AlarmActions"] == [TOPIC], logical_id
        assert alarm["OKActions"] == [TOPIC], logical_id


@pytest.mark.parametrize("logical_id", sorted(SINGLE_METRIC_ALARMS))
def test_single_metric_alarm(logical_id: str) -> None:
    name, namespace, metric, (stat_key, stat), dims, comparison, threshold, period, periods, missing = (
        SINGLE_METRIC_ALARMS[logical_id]
    )
    alarm = _alarms(_template())[logical_id]
    assert alarm["AlarmName"] == f"knowledgerouter-dev-{name}"
    assert (alarm["Namespace"], alarm["MetricName"], alarm[stat_key]) == (namespace, metric, stat)
    assert alarm["Dimensions"] == dims
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == (comparison, threshold)
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (period, periods)
    assert alarm["TreatMissingData"] == missing
    assert "DatapointsToAlarm" not in alarm


def _queries(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["Id"]: q for q in alarm["Metrics"]}


def test_backend_tasks_below_desired() -> None:
    alarm = _alarms(_template())["BackendTasksBelowDesiredAlarm"]
    q = _queries(alarm)
    for id_, metric in (("desired", "DesiredTaskCount"), ("running", "RunningTaskCount")):
        stat = q[id_]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "ECS/ContainerInsights",
            "MetricName": metric,
            "Dimensions": _dims(**BACKEND),
        }
        assert (stat["Period"], stat["Stat"], q[id_]["ReturnData"]) == (60, "Average", False)
    assert q["shortfall"]["Expression"] == "desired - FILL(running, 0)" and q["shortfall"]["ReturnData"] is True
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["EvaluationPeriods"] == 5
    assert alarm["TreatMissingData"] == "breaching"


def test_http_5xx_rate() -> None:
    alarm = _alarms(_template())["AlbHigh5xxRateAlarm"]
    q = _queries(alarm)
    for id_, metric in (("requests", "RequestCount"), ("elb5xx", "HTTPCode_ELB_5XX_Count")):
        stat = q[id_]["MetricStat"]
        assert stat["Metric"] == {
            "Namespace": "AWS/ApplicationELB",
            "MetricName": metric,
            "Dimensions": _dims(LoadBalancer=LB),
        }
        assert (stat["Period"], stat["Stat"]) == (300, "Sum")
    assert q["target5xx"]["MetricStat"]["Metric"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert q["rate"]["Expression"] == "IF(requests >= 20, 100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / requests, 0)"
    assert [id_ for id_, v in q.items() if v["ReturnData"]] == ["rate"]
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["EvaluationPeriods"]) == (
        "GreaterThanThreshold",
        5,
        1,
    )
    assert alarm["TreatMissingData"] == "notBreaching"


def test_params_override_one_field_of_an_alarm() -> None:
    sl = _slice(
        alarms={"backend_cpu": {"threshold": 90}, "db_free_storage": {"threshold": 5, "datapoints_to_alarm": 1}}
    )
    alarms = _alarms(_template(sl))
    cpu = alarms["BackendHighCpuAlarm"]
    assert (cpu["Threshold"], cpu["Period"], cpu["EvaluationPeriods"]) == (90, 300, 2)
    assert alarms["DbLowFreeStorageAlarm"]["Threshold"] == 5 * 1024**3
    assert alarms["DbLowFreeStorageAlarm"]["DatapointsToAlarm"] == 1


def test_metric_math_period_from_params() -> None:
    sl = _slice(alarms={"http_5xx": {"period": 60, "evaluation_periods": 5}}, http_5xx_min_requests=50)
    alarm = _alarms(_template(sl))["AlbHigh5xxRateAlarm"]
    assert {q["MetricStat"]["Period"] for q in alarm["Metrics"] if "MetricStat" in q} == {60}
    assert alarm["EvaluationPeriods"] == 5 and "Period" not in alarm
    assert _queries(alarm)["rate"]["Expression"].startswith("IF(requests >= 50, ")


def test_null_drops_an_alarm() -> None:
    alarms = _alarms(_template(_slice(alarms={"backend_tasks": None, "unhealthy_targets": None})))
    assert set(alarms) == (set(SINGLE_METRIC_ALARMS) | METRIC_MATH_ALARMS) - {
        "BackendTasksBelowDesiredAlarm",
        "BackendUnhealthyTargetsAlarm",
        "FrontendUnhealthyTargetsAlarm",
    }


def test_without_load_balanced_services_no_alb_alarms_or_parameters() -> None:
    t = _template(_slice(load_balanced=()))
    assert not [a for a in _alarms(t).values() if a.get("Namespace") == "AWS/ApplicationELB"]
    assert "AlbHigh5xxRateAlarm" not in _alarms(t)
    assert not [p for p in t["Parameters"] if "TargetGroup" in p or p == "LoadBalancerFullName"]


# --------------------------------------------------------------------------- parameters


def test_parameters_follow_the_rendered_services() -> None:
    t = _template(_slice(services=("backend", "frontend", "worker")))
    assert sorted(t["Parameters"]) == sorted(
        [
            "ClusterName",
            "BackendServiceName",
            "FrontendServiceName",
            "WorkerServiceName",
            "BackendLogGroupName",
            "LoadBalancerFullName",
            "BackendTargetGroupFullName",
            "FrontendTargetGroupFullName",
            "DbInstanceId",
        ]
    )


def test_every_parameter_is_used() -> None:
    t = _template()
    text = json.dumps(t["Resources"])
    for name in t["Parameters"]:
        assert json.dumps(_ref(name)) in text or f"${{{name}}}" in text, name


# --------------------------------------------------------------------------- dashboard

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def _dashboard(t: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The dashboard body's Sub string and the body parsed after substituting every placeholder."""
    (dashboard,) = resources_of_type(t, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)  # no variable map: every placeholder is a parameter, pseudo or attribute

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PSEUDO:
            return PSEUDO[name]
        if name.endswith(".Arn"):
            assert name[: -len(".Arn")] in t["Resources"], name
            return f"arn:aws:cloudwatch:eu-central-1:123456789012:alarm:{name}"
        assert name in t["Parameters"], f"dashboard names {name}, which is not a parameter of the stack"
        return f"<{name}>"

    return body, json.loads(_PLACEHOLDER.sub(value, body))


def _metric_lines(body: dict[str, Any]) -> list[list[Any]]:
    return [line for w in body["widgets"] if w["type"] == "metric" for line in w["properties"]["metrics"]]


def test_dashboard_parses_once_resolved() -> None:
    t = _template()
    _, body = _dashboard(t)
    assert t["Resources"]["Dashboard"]["Properties"]["DashboardName"] == "knowledgerouter-dev-overview"
    for w in body["widgets"]:
        assert w["x"] + w["width"] <= 24
        if w["type"] in ("metric", "log"):
            assert w["properties"]["region"] == "eu-central-1"


def test_dashboard_shows_cpu_and_memory_of_every_rendered_service() -> None:
    _, body = _dashboard(_template(_slice(services=("backend", "frontend", "qdrant"))))
    for metric in ("CPUUtilization", "MemoryUtilization"):
        lines = [line for line in _metric_lines(body) if line[:2] == ["AWS/ECS", metric]]
        assert [line[5] for line in lines] == ["<BackendServiceName>", "<FrontendServiceName>", "<QdrantServiceName>"]
        assert all(line[2:4] == ["ClusterName", "<ClusterName>"] for line in lines)


def test_dashboard_metrics_name_only_stack_resources() -> None:
    t = _template()
    _, body = _dashboard(t)
    known = {f"<{p}>" for p in t["Parameters"]}
    seen = set()
    for line in _metric_lines(body):
        fields = line[:-1] if isinstance(line[-1], dict) else line
        namespace, _metric, *dims = fields
        pairs = dict(zip(dims[::2], dims[1::2], strict=True))
        assert set(pairs.values()) <= known, line
        seen.add(namespace)
        if namespace == "AWS/ApplicationELB":
            assert pairs["LoadBalancer"] == "<LoadBalancerFullName>"
            assert set(pairs) <= {"LoadBalancer", "TargetGroup"}
        if namespace == "AWS/RDS":
            assert pairs == {"DBInstanceIdentifier": "<DbInstanceId>"}
    assert seen == {"AWS/ECS", "ECS/ContainerInsights", "AWS/ApplicationELB", "AWS/RDS"}
    metrics = {(line[0], line[1]) for line in _metric_lines(body)}
    for needed in [
        ("AWS/ApplicationELB", "RequestCount"),
        ("AWS/ApplicationELB", "TargetResponseTime"),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/RDS", "DatabaseConnections"),
        ("AWS/RDS", "CPUUtilization"),
        ("AWS/RDS", "FreeStorageSpace"),
    ]:
        assert needed in metrics


def test_dashboard_alarm_widget_lists_every_alarm() -> None:
    t = _template()
    body, parsed = _dashboard(t)
    (widget,) = [w for w in parsed["widgets"] if w["type"] == "alarm"]
    assert len(widget["properties"]["alarms"]) == len(_alarms(t))
    assert {f"{a}.Arn" for a in _alarms(t)} <= set(_PLACEHOLDER.findall(body))


def test_dashboard_without_container_insights_has_no_task_counts() -> None:
    _, body = _dashboard(_template(_slice(container_insights=False, alarms={"backend_tasks": None})))
    assert "ECS/ContainerInsights" not in {line[0] for line in _metric_lines(body)}


# --------------------------------------------------------------------------- saved query


def test_query_definition_targets_the_backend_log_group() -> None:
    t = _template()
    (query,) = resources_of_type(t, "AWS::Logs::QueryDefinition").values()
    assert query["Properties"]["LogGroupNames"] == [_ref("BackendLogGroupName")]
    assert query["Properties"]["Name"] == "knowledgerouter-dev/top-10-slowest-api-endpoints"
    assert query["Properties"]["QueryString"].endswith("| sort p95_s desc\n| limit 10")
    (log_widget,) = [w for w in _dashboard(t)[1]["widgets"] if w["type"] == "log"]
    assert log_widget["properties"]["query"].startswith("SOURCE '<BackendLogGroupName>' | fields @timestamp")


def _parse_pattern() -> re.Pattern[str]:
    """The query's parse regex in Python syntax."""
    (pattern,) = re.findall(r"\| parse @message /(.*)/\n", monitoring.SLOWEST_ENDPOINTS)
    return re.compile(pattern.replace("(?<", "(?P<").replace(r"\/", "/"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('10.0.1.23 "POST /api/chat/ HTTP/1.1" 200 1532 0.842113', ("POST", "/api/chat/", "200", "0.842113")),
        ('10.0.1.23:5123 - "GET /api/docs/?q=vpn HTTP/1.1" 404 0.012', ("GET", "/api/docs/", "404", "0.012")),
        ('[2026-01-01 10:00:00] "GET /api/healthz HTTP/1.1" 200 - 1.500', ("GET", "/api/healthz", "200", "1.500")),
    ],
)
def test_parse_expression_extracts_path_and_duration(line: str, expected: tuple[str, ...]) -> None:
    m = _parse_pattern().search(line)
    assert m is not None
    assert (m["method"], m["path"], m["status"], m["duration"]) == expected


@pytest.mark.parametrize(
    "line",
    [
        'INFO:     10.0.1.23:5123 - "GET /api/healthz HTTP/1.1" 200 OK',  # uvicorn: no duration
        '10.0.1.23 "GET /api/chat/ HTTP/1.1" 200 1532',  # a byte count is not a duration
        '10.0.1.23 "GET /static/app.js HTTP/1.1" 200 1532 0.002',  # not an API endpoint
    ],
)
def test_parse_expression_skips_other_lines(line: str) -> None:
    assert _parse_pattern().search(line) is None


def test_without_backend_no_backend_alarms_or_query() -> None:
    sl = _slice(
        services=("frontend",),
        load_balanced=("frontend",),
        alarms={"backend_cpu": None, "backend_memory": None, "backend_tasks": None, "backend_latency": None},
    )
    t = _template(sl)
    assert set(_alarms(t)) == {
        "FrontendUnhealthyTargetsAlarm",
        "AlbHigh5xxRateAlarm",
        "DbHighConnectionsAlarm",
        "DbLowFreeStorageAlarm",
    }
    assert resources_of_type(t, "AWS::Logs::QueryDefinition") == {}
    assert "BackendLogGroupName" not in t["Parameters"]


# --------------------------------------------------------------------------- params validation


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = write_params(tmp_path, "dev", text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return [line.removeprefix(f"{path}: ") for line in str(exc.value).splitlines()]


def test_defaults_are_the_plans_values() -> None:
    a = config.EnvConfig(env="x").monitoring.alarms
    assert a.backend_cpu is not None and (a.backend_cpu.threshold, a.backend_cpu.evaluation_periods) == (80, 2)
    assert a.backend_memory is not None and a.backend_memory.threshold == 85
    assert a.unhealthy_targets is not None and a.unhealthy_targets.threshold == 1
    assert a.db_connections is not None and a.db_connections.threshold == 80
    assert a.backend_latency is not None and a.backend_latency.threshold == 2.0
    assert config.EnvConfig(env="x").monitoring.alert_emails == ()


def test_alert_emails_load(tmp_path: Path) -> None:
    cfg = config.load(write_params(tmp_path, "dev", "monitoring:\n  alert_emails: [ops@example.com]\n"))
    assert cfg.monitoring.alert_emails == ("ops@example.com",)


def test_bad_email(tmp_path: Path) -> None:
    assert _errors(tmp_path, "monitoring:\n  alert_emails: [ops]\n") == [
        "monitoring.alert_emails[0]: 'ops' is not an e-mail address"
    ]


def test_email_twice(tmp_path: Path) -> None:
    text = "monitoring:\n  alert_emails: [ops@example.com, OPS@example.com]\n"
    assert _errors(tmp_path, text) == ["monitoring.alert_emails[1]: 'OPS@example.com' is listed twice"]


def test_period_not_a_minute_multiple(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    backend_cpu:\n      period: 90\n"
    assert _errors(tmp_path, text) == [
        "monitoring.alarms.backend_cpu.period: 90 must be a multiple of 60 (1-minute metrics)"
    ]


def test_window_longer_than_a_day(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    db_connections:\n      period: 3600\n      evaluation_periods: 25\n"
    assert _errors(tmp_path, text) == [
        "monitoring.alarms.db_connections.evaluation_periods: 25 periods of 3600 s exceed CloudWatch's one-day window"
    ]


def test_datapoints_above_evaluation_periods(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    backend_memory:\n      datapoints_to_alarm: 3\n"
    assert _errors(tmp_path, text) == [
        "monitoring.alarms.backend_memory.datapoints_to_alarm: 3 is above evaluation_periods 2"
    ]


def test_percentage_above_100(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    http_5xx:\n      threshold: 150\n"
    assert _errors(tmp_path, text) == [
        "monitoring.alarms.http_5xx.threshold: 150 is a percentage and must be at most 100"
    ]


def test_threshold_must_be_positive(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    db_free_storage:\n      threshold: 0\n"
    assert _errors(tmp_path, text) == [
        "monitoring.alarms.db_free_storage.threshold: input should be greater than 0, got 0"
    ]


def test_unknown_alarm_key(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    backend_cpu:\n      treshold: 90\n"
    assert _errors(tmp_path, text) == [
        "monitoring.alarms.backend_cpu.treshold: unknown key (did you mean 'threshold'?)"
    ]


def test_unknown_alarm(tmp_path: Path) -> None:
    text = "monitoring:\n  alarms:\n    backend_disk: {threshold: 1}\n"
    assert _errors(tmp_path, text) == ["monitoring.alarms.backend_disk: unknown key (did you mean 'backend_tasks'?)"]


def test_backend_alarms_need_the_backend_service() -> None:
    assert check_monitoring(MonitoringConfig(), ("frontend",), ("frontend",), True) == [
        ("alarms", "backend_cpu, backend_memory, backend_tasks watch the backend service, which is not rendered; "
         "set them null"),
        ("alarms.backend_latency", "needs the backend service behind the load balancer"),
    ]  # fmt: skip


def test_latency_alarm_needs_the_backend_behind_the_load_balancer() -> None:
    assert check_monitoring(MonitoringConfig(), ("backend",), (), True) == [
        ("alarms.backend_latency", "needs the backend service behind the load balancer")
    ]


def test_task_alarm_needs_container_insights() -> None:
    assert check_monitoring(MonitoringConfig(), ("backend",), ("backend",), False) == [
        ("alarms.backend_tasks", "needs ecs.container_insights (task counts come from it)")
    ]


# --------------------------------------------------------------------------- shipped environments


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_covers_exactly_the_rendered_services(env: str) -> None:
    cfg = load_env(env)
    rendered = [n for n in cfg.services if not (n == "redis" and cfg.data.redis == "elasticache")]
    t = built(env)["monitoring"]
    _, body = _dashboard(t)
    lines = [line for line in _metric_lines(body) if line[:2] == ["AWS/ECS", "CPUUtilization"]]
    assert [line[-1]["label"] for line in lines] == rendered
    assert {f"{pascal(n)}ServiceName" for n in rendered} <= set(built(env)["ecs"]["Outputs"])


@pytest.mark.parametrize("env", ENVS)
def test_parameters_are_the_producers_outputs(env: str) -> None:
    templates = built(env)
    wiring = templates["root"]["Resources"]["MonitoringStack"]["Properties"]["Parameters"]
    assert set(wiring) == set(templates["monitoring"]["Parameters"])
    producer = {"EcsStack": "ecs", "AlbStack": "alb", "DataStack": "data"}
    for name, value in wiring.items():
        stack, output = value["Fn::GetAtt"]
        produced = templates[producer[stack]]["Outputs"][output.removeprefix("Outputs.")]["Value"]
        if name.endswith("ServiceName"):
            # The metrics' ServiceName dimension is the name; Ref of a service would be its ARN.
            assert produced["Fn::GetAtt"][1] == "Name", name
        if name.endswith("FullName"):
            assert produced["Fn::GetAtt"][1] in ("LoadBalancerFullName", "TargetGroupFullName"), name


@pytest.mark.parametrize("env", ENVS)
def test_shipped_envs_have_every_alarm(env: str) -> None:
    alarms = _alarms(built(env)["monitoring"])
    assert set(alarms) == set(SINGLE_METRIC_ALARMS) | METRIC_MATH_ALARMS | {"QdrantSnapshotMissingAlarm"}
    (query,) = resources_of_type(built(env)["monitoring"], "AWS::Logs::QueryDefinition").values()
    backend_log_group = built(env)["root"]["Resources"]["MonitoringStack"]["Properties"]["Parameters"][
        "BackendLogGroupName"
    ]
    assert backend_log_group == {"Fn::GetAtt": ["EcsStack", "Outputs.BackendLogGroupName"]}
    assert query["Properties"]["LogGroupNames"] == [_ref("BackendLogGroupName")]


def test_dropping_the_backend_needs_its_alarms_dropped(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "services:\n  backend: null\n")  # prometheus' scrape target complains too
    assert [e for e in errors if e.startswith("monitoring.")] == [
        "monitoring.alarms: backend_cpu, backend_memory, backend_tasks watch the backend service, which is not "
        "rendered; set them null",
        "monitoring.alarms.backend_latency: needs the backend service behind the load balancer",
    ]


def test_task_alarm_without_container_insights(tmp_path: Path) -> None:
    assert _errors(tmp_path, "ecs:\n  container_insights: disabled\n") == [
        "monitoring.alarms.backend_tasks: needs ecs.container_insights (task counts come from it)"
    ]
