"""Every dashboard query, checked: CloudWatch metrics and dimensions that exist, Prometheus metrics that
someone exports, Grafana's dashboard JSON model, and the provisioning that writes them in the container."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kr_cfn import config, dashboards
from kr_cfn.config.grafana import GRAFANA
from tests.conftest import ENVS, ROOT, built, load_env, write_params

# --------------------------------------------------------------------------- what exists in AWS

# Metrics and the dimension sets CloudWatch publishes them with, per namespace (only those the
# dashboards may use; extend from the same pages). A query's dimensions must be one of these sets
# exactly (the dashboards query with matchExact).
CLOUDWATCH: dict[str, dict[str, set[frozenset[str]]]] = {
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html
    # ("Amazon ECS metrics": CPUUtilization, MemoryUtilization; dimensions ClusterName, ServiceName)
    "AWS/ECS": {
        m: {frozenset({"ClusterName"}), frozenset({"ClusterName", "ServiceName"})}
        for m in ("CPUUtilization", "MemoryUtilization", "CPUReservation", "MemoryReservation")
    },
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
    # ("Application Load Balancer metrics", "Target group metrics", "Metric dimensions")
    "AWS/ApplicationELB": {
        **{
            m: {
                frozenset({"LoadBalancer"}),
                frozenset({"LoadBalancer", "AvailabilityZone"}),
                frozenset({"LoadBalancer", "TargetGroup"}),
                frozenset({"LoadBalancer", "TargetGroup", "AvailabilityZone"}),
            }
            for m in ("RequestCount", "TargetResponseTime", "HTTPCode_Target_5XX_Count", "HTTPCode_Target_4XX_Count")
        },
        **{
            m: {frozenset({"LoadBalancer"}), frozenset({"LoadBalancer", "AvailabilityZone"})}
            for m in ("HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_4XX_Count", "ActiveConnectionCount")
        },
        **{
            m: {
                frozenset({"LoadBalancer", "TargetGroup"}),
                frozenset({"LoadBalancer", "TargetGroup", "AvailabilityZone"}),
            }
            for m in ("HealthyHostCount", "UnHealthyHostCount")
        },
    },
    # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html ("Instance-level metrics")
    # https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/dimensions.html (DBInstanceIdentifier)
    "AWS/RDS": {
        m: {frozenset({"DBInstanceIdentifier"})}
        for m in ("DatabaseConnections", "ReadLatency", "WriteLatency", "CPUUtilization", "FreeStorageSpace")
    },
}
STATISTICS = re.compile(r"^(Average|Sum|Minimum|Maximum|SampleCount|p\d{1,2}(\.\d+)?)$")
# Which environment value each dimension must name (kr_cfn.dashboards.VALUES), through a dashboard variable.
DIMENSION_VALUES = {
    "ClusterName": "cluster",
    "ServiceName": "services",
    "LoadBalancer": "load_balancer",
    "TargetGroup": "target_groups",
    "DBInstanceIdentifier": "db_instance",
}

# --------------------------------------------------------------------------- what Prometheus scrapes

# Qdrant v1.7 (the image the qdrant service runs): https://qdrant.tech/documentation/guides/monitoring/
# ("Exposed metrics"; the rest_responses_duration_seconds histogram only exists from v1.8).
QDRANT_METRICS = {
    "app_info",
    "app_status_recovery_mode",
    "collections_total",
    "collections_vector_total",
    "collections_full_total",
    "collections_aggregated_total",
    "rest_responses_total",
    "rest_responses_fail_total",
    "rest_responses_avg_duration_seconds",
    "rest_responses_min_duration_seconds",
    "rest_responses_max_duration_seconds",
    "grpc_responses_total",
    "grpc_responses_fail_total",
    "grpc_responses_avg_duration_seconds",
    "grpc_responses_min_duration_seconds",
    "grpc_responses_max_duration_seconds",
}
# Series Prometheus itself makes for every target: https://prometheus.io/docs/concepts/jobs_instances/
PROMETHEUS_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
CONTRACT = {m.name: m for m in dashboards.BACKEND_METRICS}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "sum",
    "avg",
    "max",
    "min",
    "count",
    "by",
    "without",
    "rate",
    "increase",
    "irate",
    "histogram_quantile",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "offset",
    "bool",
}

# Grafana's dashboard JSON model: https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/
PANEL_TYPES = {"timeseries", "stat", "piechart", "gauge", "table", "bargauge"}
UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # Grafana's uid: at most 40 characters


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name in dashboards.names() for p in dashboards.load(name)["panels"]]


def _targets(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, p["title"], t) for name, p in _panels() for t in p["targets"] if t["datasource"]["type"] == kind]


def _provisioned_datasources() -> dict[str, str]:
    """uid -> type of the data sources the grafana service provisions (from the shipped params)."""
    spec = config.ecs_slice(load_env("dev")).services[GRAFANA]
    (text,) = [c for p, c in spec.files.items() if p.startswith("/etc/grafana/provisioning/datasources/")]
    return {d["uid"]: d["type"] for d in yaml.safe_load(text)["datasources"]}


def _variables(name: str) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboards.load(name)["templating"]["list"]}


# --------------------------------------------------------------------------- CloudWatch panels


def test_there_are_cloudwatch_queries() -> None:
    assert len(_targets("cloudwatch")) >= 8


@pytest.mark.parametrize(
    ("dashboard", "panel", "target"), _targets("cloudwatch"), ids=lambda x: x if isinstance(x, str) else ""
)
def test_cloudwatch_queries_name_metrics_and_dimensions_that_exist(
    dashboard: str, panel: str, target: dict[str, Any]
) -> None:
    namespace, metric, dims = target["namespace"], target["metricName"], target["dimensions"]
    assert metric in CLOUDWATCH[namespace], f"{panel}: {namespace} {metric}"
    assert frozenset(dims) in CLOUDWATCH[namespace][metric], f"{panel}: {metric} is not published by {sorted(dims)}"
    assert STATISTICS.match(target["statistic"]), target["statistic"]
    assert (target["queryMode"], target["matchExact"], target["expression"]) == ("Metrics", True, "")
    variables = _variables(dashboard)
    for dim, value in dims.items():
        var = value.removeprefix("$")
        assert var in variables, f"{panel}: {dim} uses ${var}, which the dashboard does not define"
        assert variables[var]["query"] == f"{{{{dash:{DIMENSION_VALUES[dim]}}}}}", (
            f"{panel}: {dim} names the wrong value"
        )


def test_the_infrastructure_dashboard_has_the_plan_s_panels() -> None:
    queries = {(t["namespace"], t["metricName"]) for name, _, t in _targets("cloudwatch") if name == "infrastructure"}
    assert {
        ("AWS/ECS", "CPUUtilization"),
        ("AWS/ECS", "MemoryUtilization"),
        ("AWS/ApplicationELB", "RequestCount"),
        ("AWS/ApplicationELB", "TargetResponseTime"),
        ("AWS/RDS", "DatabaseConnections"),
        ("AWS/RDS", "ReadLatency"),
    } <= queries


# --------------------------------------------------------------------------- Prometheus panels


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, ranges, strings, grouping."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = m.group(0)
        if word in PROMQL_WORDS or text[m.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def _base(metric: str) -> str:
    for suffix in HISTOGRAM_SERIES:
        base = metric.removesuffix(suffix)
        if base != metric and base in CONTRACT and CONTRACT[base].type == "histogram":
            return base
    return metric


def _labels(expr: str) -> set[str]:
    """Label names an expression selects or groups by."""
    labels = {m for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for m in re.findall(r"\w+", group)}
    for matcher in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matcher))
    return labels


def test_the_metric_name_parser_is_not_blind() -> None:
    expr = 'histogram_quantile(0.95, sum by (node, le) (rate(kr_x_bucket{job="a"}[5m]))) / up'
    assert _metric_names(expr) == {"kr_x_bucket", "up"}
    assert _labels(expr) == {"node", "le", "job"}


@pytest.mark.parametrize(
    ("dashboard", "panel", "target"), _targets("prometheus"), ids=lambda x: x if isinstance(x, str) else ""
)
def test_prometheus_queries_name_only_exported_metrics(dashboard: str, panel: str, target: dict[str, Any]) -> None:
    expr = target["expr"]
    names = {_base(n) for n in _metric_names(expr)}
    assert names, f"{panel}: no metric in {expr!r}"
    unknown = names - set(CONTRACT) - QDRANT_METRICS - PROMETHEUS_METRICS
    assert not unknown, f"{dashboard}/{panel}: {sorted(unknown)} are neither in the contract nor exported"
    allowed = {"le", "job", "instance"} | {label for n in names if n in CONTRACT for label in CONTRACT[n].labels}
    if names & QDRANT_METRICS:
        allowed |= {"method", "endpoint", "status"}
    assert _labels(expr) <= allowed, f"{panel}: labels {sorted(_labels(expr) - allowed)} are not in the contract"
    jobs = set(re.findall(r'job=~?"([^"]+)"', expr))
    assert {j for js in jobs for j in js.split("|")} <= {"backend", "qdrant", "prometheus"}


def test_every_contract_metric_is_shown() -> None:
    used = {_base(n) for _, _, t in _targets("prometheus") for n in _metric_names(t["expr"])}
    assert set(CONTRACT) <= used


# --------------------------------------------------------------------------- Grafana's JSON model


@pytest.mark.parametrize("name", dashboards.names())
def test_dashboard_json_loads_in_grafana_s_model(name: str) -> None:
    d = dashboards.load(name)
    assert UID.match(d["uid"]) and d["title"] and isinstance(d["version"], int) and isinstance(d["schemaVersion"], int)
    assert d["editable"] is False
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    sources = _provisioned_datasources()
    for p in d["panels"]:
        assert p["type"] in PANEL_TYPES and p["title"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "hwxy") and g["x"] + g["w"] <= 24
        assert sources.get(p["datasource"]["uid"]) == p["datasource"]["type"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
    for v in d["templating"]["list"]:
        assert v["type"] in {"constant", "custom"} and dashboards.PLACEHOLDER.fullmatch(v["query"])
    assert set(dashboards.placeholders(name)) <= set(dashboards.VALUES)


def test_dashboard_uids_are_unique() -> None:
    uids = [dashboards.load(n)["uid"] for n in dashboards.names()]
    assert len(uids) == len(set(uids))


def test_the_provisioned_data_sources() -> None:
    assert _provisioned_datasources() == {"prometheus": "prometheus", "cloudwatch": "cloudwatch"}


# --------------------------------------------------------------------------- provisioning in the container


def _grafana(env: str) -> dict[str, Any]:
    (c,) = built(env)["ecs"]["Resources"]["GrafanaTaskDefinition"]["Properties"]["ContainerDefinitions"]
    return c


SAMPLE = {
    "Cluster": "knowledgerouter-dev-cluster",
    "LoadBalancerFullName": "app/knowledgerouter-dev-alb/50dc6c495c0c9188",
    "BackendTargetGroupFullName": "targetgroup/kr-dev-backend/73e2d6bc24d8a067",
    "FrontendTargetGroupFullName": "targetgroup/kr-dev-frontend/943f017f100becff",
    "DbInstanceId": "kr-dev-db",
}


def _value(value: Any) -> str:
    """A deploy-time value as CloudFormation would resolve it (Refs to the sample names)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return SAMPLE[value["Ref"]]
    sep, parts = value["Fn::Join"]
    return sep.join(_value(p) for p in parts)


@pytest.mark.parametrize("env", ENVS)
def test_the_entry_point_writes_the_dashboards_and_their_provider(env: str, tmp_path: Path) -> None:
    """Run the container's own shell script (paths moved under tmp) and load what it wrote."""
    c = _grafana(env)
    script = (
        c["EntryPoint"][2].replace("/etc/grafana", f"{tmp_path}/etc").replace("/var/lib/grafana", f"{tmp_path}/lib")
    )
    environment = {
        e["Name"]: _value(e["Value"]) for e in c["Environment"] if e["Name"].startswith(("KR_DASH", "KR_FILE_1"))
    }
    subprocess.run(["/bin/sh", "-c", script, "sh", "true"], env=environment, check=True, timeout=30)
    provider = yaml.safe_load((tmp_path / "etc/provisioning/dashboards/knowledgerouter.yaml").read_text())
    (p,) = provider["providers"]
    assert (p["type"], p["options"]["path"], p["allowUiUpdates"]) == ("file", dashboards.DASHBOARDS_PATH, False)
    written = {f.stem: json.loads(f.read_text()) for f in (tmp_path / "lib/dashboards").glob("*.json")}
    assert sorted(written) == dashboards.names()
    infra = written["infrastructure"]
    assert "{{dash:" not in json.dumps(infra)
    values = {v["name"]: v["query"] for v in infra["templating"]["list"]}
    assert values["load_balancer"] == SAMPLE["LoadBalancerFullName"]
    assert values["db_instance"] == SAMPLE["DbInstanceId"]
    assert values["service"] == ",".join(config.ecs_slice(load_env(env)).services)
    assert values["target_group"].split(",") == [SAMPLE[f"{n}TargetGroupFullName"] for n in ("Backend", "Frontend")]
    assert written["langgraph"] == dashboards.load("langgraph")


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_values_come_from_the_other_stacks(env: str) -> None:
    env_vars = {e["Name"]: e["Value"] for e in _grafana(env)["Environment"]}
    assert env_vars["KR_DASH_CLUSTER"] == {"Ref": "Cluster"}
    wiring = built(env)["root"]["Resources"]["EcsStack"]["Properties"]["Parameters"]
    assert wiring["LoadBalancerFullName"] == {"Fn::GetAtt": ["AlbStack", "Outputs.LoadBalancerFullName"]}
    assert wiring["DbInstanceId"] == {"Fn::GetAtt": ["DataStack", "Outputs.DbInstanceId"]}
    assert wiring["BackendTargetGroupFullName"] == {"Fn::GetAtt": ["AlbStack", "Outputs.BackendTargetGroupFullName"]}


@pytest.mark.parametrize("env", ENVS)
def test_every_task_definition_fits_ecs_size_limit(env: str) -> None:
    for logical_id, r in built(env)["ecs"]["Resources"].items():
        if r["Type"] == "AWS::ECS::TaskDefinition":
            size = len(json.dumps(r["Properties"], separators=(",", ":")))
            assert size < dashboards.PAYLOAD_BUDGET, (logical_id, size)


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = write_params(tmp_path, "dev", text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return [line.removeprefix(f"{path}: ") for line in str(exc.value).splitlines()]


def test_an_unknown_dashboard_is_named(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  grafana:\n    dashboards: [infrastructure, kafka]\n") == [
        "services.grafana.dashboards[1]: 'kafka' is not a dashboard of kr_cfn (one of: infrastructure, langgraph, rag)"
    ]


def test_too_much_for_a_task_definition_is_refused(tmp_path: Path) -> None:
    big = "x" * (dashboards.PAYLOAD_BUDGET)
    errors = _errors(tmp_path, f"services:\n  grafana:\n    files:\n      /etc/grafana/big.txt: {big}\n")
    assert len(errors) == 1 and errors[0].startswith("services.grafana.dashboards: files and dashboards take ")
    assert errors[0].endswith("(ECS allows 64 KiB per task definition); ship fewer or smaller dashboards")


# --------------------------------------------------------------------------- the documented contract


def test_readme_documents_the_metric_contract() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    section = runbook.split("## Grafana and dashboards", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`kr_"):
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(CONTRACT)
    for name, m in CONTRACT.items():
        _, kind, labels, meaning = rows[name]
        assert kind == m.type and labels == ", ".join(f"`{label}`" for label in m.labels) and meaning == m.meaning
