"""Grafana's way in: a listener rule limited to monitoring.grafana_allowed_cidrs, or no route at all."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.cli import main
from tests.conftest import ENVS, ROOT, built, resources_of_type, write_params
from tests.test_security_groups import _reachable

ROUTED = ROOT / "tests" / "fixtures" / "grafana-routed"
DEV = """\
alb:
  allow_plain_http: true
  plain_http_reason: "development environment without a domain; no user data over the internet"
"""
PROD_LIKE = """\
account_id: "123456789012"
deploy:
  termination_protection: true
alb:
  domain_name: kr.example.com
  hosted_zone_id: Z1D633PJN98FT9
monitoring:
  alert_emails: [ops@example.com]
"""


def _build(tmp_path: Path, text: str) -> dict[str, dict[str, Any]]:
    return {n: t.to_dict() for n, t in stacks.build_all(config.load(write_params(tmp_path, "dev", text))).items()}


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = write_params(tmp_path, "dev", text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return [line.removeprefix(f"{path}: ") for line in str(exc.value).splitlines()]


def _grafana_env(templates: dict[str, Any]) -> dict[str, Any]:
    (container,) = templates["ecs"]["Resources"]["GrafanaTaskDefinition"]["Properties"]["ContainerDefinitions"]
    return {e["Name"]: e["Value"] for e in container["Environment"]}


def _rules(templates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rules = resources_of_type(templates["alb"], "AWS::ElasticLoadBalancingV2::ListenerRule")
    return {k: r["Properties"] for k, r in rules.items() if k.startswith("Grafana")}


def _conditions(rule: dict[str, Any]) -> dict[str, list[str]]:
    keys = {"path-pattern": "PathPatternConfig", "host-header": "HostHeaderConfig", "source-ip": "SourceIpConfig"}
    return {c["Field"]: c[keys[c["Field"]]]["Values"] for c in rule["Conditions"]}


@pytest.mark.parametrize("env", ENVS)
def test_no_allowed_networks_no_route_no_target_group_no_flow(env: str) -> None:
    templates = built(env)
    assert not config.load(f"params/{env}.yaml").monitoring.grafana_allowed_cidrs
    assert not [k for k in templates["alb"]["Resources"] if k.startswith("Grafana")]
    assert "GrafanaTargetGroupArn" not in templates["ecs"]["Parameters"]
    assert ("alb", "grafana", 3000) not in _reachable(templates)
    assert "GF_SERVER_ROOT_URL" not in _grafana_env(templates)


@pytest.mark.parametrize("env", ENVS)
def test_login_on_anonymous_off(env: str) -> None:
    env_vars = _grafana_env(built(env))
    assert env_vars["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env_vars["GF_AUTH_DISABLE_LOGIN_FORM"] == "false"
    assert env_vars["GF_USERS_ALLOW_SIGN_UP"] == "false"
    (container,) = built(env)["ecs"]["Resources"]["GrafanaTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert {s["Name"] for s in container["Secrets"]} == {"GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"}


def test_without_a_domain_grafana_is_on_a_sub_path_from_the_allowed_networks(tmp_path: Path) -> None:
    templates = _build(tmp_path, DEV + "monitoring:\n  grafana_allowed_cidrs: [203.0.113.0/24]\n")
    (rule,) = _rules(templates).values()
    assert _conditions(rule) == {"path-pattern": ["/grafana/*"], "source-ip": ["203.0.113.0/24"]}
    assert rule["Actions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "GrafanaTargetGroup"}}]
    group = templates["alb"]["Resources"]["GrafanaTargetGroup"]["Properties"]
    assert (group["Port"], group["HealthCheckPath"]) == (3000, "/grafana/api/health")
    env_vars = _grafana_env(templates)
    assert env_vars["GF_SERVER_ROOT_URL"] == {"Fn::Sub": "http://${AlbDnsName}/grafana/"}
    assert env_vars["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert "GF_SECURITY_COOKIE_SECURE" not in env_vars
    # The root wires AlbDnsName from the alb stack (Outputs -> Parameters), not a string.
    wiring = templates["root"]["Resources"]["EcsStack"]["Properties"]["Parameters"]
    assert wiring["AlbDnsName"] == {"Fn::GetAtt": ["AlbStack", "Outputs.AlbDnsName"]}
    assert ("alb", "grafana", 3000) in _reachable(templates)


def test_with_a_domain_grafana_has_its_own_https_host_name(tmp_path: Path) -> None:
    templates = _build(tmp_path, PROD_LIKE + "  grafana_allowed_cidrs: [198.51.100.0/24]\n")
    (rule,) = _rules(templates).values()
    assert rule["ListenerArn"] == {"Ref": "HttpsListener"}
    assert _conditions(rule) == {"host-header": ["grafana.kr.example.com"], "source-ip": ["198.51.100.0/24"]}
    resources = templates["alb"]["Resources"]
    cert = resources["Certificate"]["Properties"]
    assert cert["SubjectAlternativeNames"] == ["grafana.kr.example.com"]
    assert [o["DomainName"] for o in cert["DomainValidationOptions"]] == ["kr.example.com", "grafana.kr.example.com"]
    record = resources["GrafanaAliasRecord"]["Properties"]
    assert (record["Name"], record["Type"], record["HostedZoneId"]) == ("grafana.kr.example.com", "A", "Z1D633PJN98FT9")
    env_vars = _grafana_env(templates)
    assert env_vars["GF_SERVER_ROOT_URL"] == "https://grafana.kr.example.com/"
    assert env_vars["GF_SECURITY_COOKIE_SECURE"] == "true"
    assert "GF_SERVER_SERVE_FROM_SUB_PATH" not in env_vars


def test_without_grafana_route_the_certificate_is_unchanged(tmp_path: Path) -> None:
    cert = _build(tmp_path, PROD_LIKE)["alb"]["Resources"]["Certificate"]["Properties"]
    assert "SubjectAlternativeNames" not in cert


def test_many_networks_are_split_over_rules_within_the_condition_quota(tmp_path: Path) -> None:
    cidrs = [f"203.0.113.{i * 16}/28" for i in range(9)]
    templates = _build(tmp_path, DEV + f"monitoring:\n  grafana_allowed_cidrs: [{', '.join(cidrs)}]\n")
    rules = _rules(templates)
    assert sorted(rules) == ["GrafanaListenerRule", "GrafanaListenerRule2", "GrafanaListenerRule3"]
    assert [r["Priority"] for r in rules.values()] == [1, 2, 3]
    seen = []
    for rule in rules.values():
        values = _conditions(rule)
        assert sum(len(v) for v in values.values()) <= 5  # ALB quota: condition values per rule
        seen += values["source-ip"]
    assert seen == cidrs


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [
        ("[203.0.113.1/24]", "'203.0.113.1/24' is not an IPv4 network in CIDR notation (e.g. 203.0.113.0/24)"),
        ("[0.0.0.0/0]", "'0.0.0.0/0' is wider than /8 (no one's office); list the networks that may connect"),
        ("[0.0.0.0/1]", "'0.0.0.0/1' is wider than /8 (no one's office); list the networks that may connect"),
        ("['2001:db8::/32']", "'2001:db8::/32' is not an IPv4 network in CIDR notation (e.g. 203.0.113.0/24)"),
    ],
)
def test_bad_networks_are_named(tmp_path: Path, cidrs: str, message: str) -> None:
    errors = _errors(tmp_path, DEV + f"monitoring:\n  grafana_allowed_cidrs: {cidrs}\n")
    assert errors == [f"monitoring.grafana_allowed_cidrs[0]: {message}"]


def test_a_network_listed_twice(tmp_path: Path) -> None:
    errors = _errors(tmp_path, DEV + "monitoring:\n  grafana_allowed_cidrs: [10.0.0.0/8, 10.0.0.0/8]\n")
    assert errors == ["monitoring.grafana_allowed_cidrs[1]: '10.0.0.0/8' is listed twice"]


def test_grafana_cannot_be_routed_around_the_allowed_networks(tmp_path: Path) -> None:
    errors = _errors(tmp_path, DEV + "services:\n  grafana:\n    load_balancer: {paths: [/grafana/*], priority: 3}\n")
    assert errors == [
        "services.grafana.load_balancer: Grafana's route comes from monitoring.grafana_allowed_cidrs "
        "(limited to those networks); remove it"
    ]


def test_allowed_networks_need_the_grafana_service(tmp_path: Path) -> None:
    errors = _errors(tmp_path, DEV + "services:\n  grafana: null\nmonitoring:\n  grafana_allowed_cidrs: [10.0.0.0/8]\n")
    assert errors == ["monitoring.grafana_allowed_cidrs: set, but no grafana service is rendered"]


def test_grafana_rules_keep_their_priorities(tmp_path: Path) -> None:
    text = DEV + "services:\n  backend:\n    load_balancer: {priority: 1}\n"
    text += "monitoring:\n  grafana_allowed_cidrs: [10.0.0.0/8]\n"
    assert _errors(tmp_path, text) == [
        "services.backend.load_balancer.priority: 1 is taken by Grafana's listener rules (priorities 1-1)"
    ]


def test_a_default_route_cannot_be_limited_to_networks(tmp_path: Path) -> None:
    text = DEV + "services:\n  frontend:\n    load_balancer: {source_cidrs: [10.0.0.0/8]}\n"
    assert _errors(tmp_path, text) == [
        "services.frontend.load_balancer.source_cidrs: the default route cannot be limited; give paths or hosts"
    ]


def test_routed_environments_build_with_zero_cfn_lint_findings(tmp_path: Path) -> None:
    """The fixture params (path and host routes, two rules) through the CLI with cfn-lint on."""
    assert main(["build", "--params", str(ROUTED), "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("var", ["GF_AUTH_ANONYMOUS_ENABLED", "GF_AUTH_DISABLE_LOGIN_FORM", "GF_AUTH_PROXY_ENABLED"])
def test_params_cannot_open_grafana_past_its_login(tmp_path: Path, var: str) -> None:
    errors = _errors(tmp_path, DEV + f"services:\n  grafana:\n    environment:\n      {var}: 'true'\n")
    assert errors == [f"services.grafana.environment.{var}: must stay false (Grafana's own login, no anonymous access)"]


def test_routed_environments_pass_checkov(tmp_path: Path) -> None:
    """checkov on the routed builds (listener rules, the Grafana target group, alias record, certificate)."""
    from tests.test_checkov import _checkov, _failures

    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov not found: set KR_CFN_CHECKOV")
    assert main(["build", "--params", str(ROUTED), "--out", str(tmp_path), "--no-lint"]) == 0
    for env in ("dev", "prod"):
        proc = subprocess.run(
            [str(checkov), "-d", str(tmp_path / env), "--framework", "cloudformation", "-o", "json", "--skip-download"],
            capture_output=True,
            text=True,
            check=False,
        )
        report = json.loads(proc.stdout)
        assert not _failures(env, report)
        assert (report if isinstance(report, list) else [report])[0]["summary"]["parsing_errors"] == 0
