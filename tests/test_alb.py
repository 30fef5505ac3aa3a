"""Property tests of the alb stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kr_cfn import config
from stacks import alb
from tests.conftest import ENVS, built, load_env, resources_of_type, write_params

CERT = "arn:aws:acm:eu-central-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-111122223333"


def _alb(env: str) -> dict[str, Any]:
    return built(env)["alb"]


def _with(tmp_path: Path, text: str) -> dict[str, Any]:
    cfg = config.load(write_params(tmp_path, "dev", text))
    return alb.build(config.alb_slice(cfg)).to_dict()


def _attributes(t: dict[str, Any]) -> dict[str, str]:
    lb = t["Resources"]["LoadBalancer"]["Properties"]
    return {a["Key"]: a["Value"] for a in lb["LoadBalancerAttributes"]}


@pytest.mark.parametrize("env", ENVS)
def test_internet_facing_in_the_public_subnets(env: str) -> None:
    lb = _alb(env)["Resources"]["LoadBalancer"]["Properties"]
    assert (lb["Scheme"], lb["Type"]) == ("internet-facing", "application")
    assert lb["Subnets"] == {"Ref": "PublicSubnetIds"}
    assert lb["SecurityGroups"] == [{"Ref": "AlbSecurityGroupId"}]
    assert _attributes(_alb(env))["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_deletion_protection_only_in_prod() -> None:
    assert {env: _attributes(_alb(env))["deletion_protection.enabled"] for env in ENVS} == {
        "dev": "false",
        "prod": "true",
        "staging": "false",
    }
    assert load_env("prod").alb.deletion_protection


@pytest.mark.parametrize("env", ENVS)
def test_ip_target_groups_for_backend_and_frontend_only(env: str) -> None:
    groups = resources_of_type(_alb(env), "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert set(groups) == {"BackendTargetGroup", "FrontendTargetGroup"}  # grafana is not public
    shape = {
        k: (g["Properties"]["TargetType"], g["Properties"]["Port"], g["Properties"]["HealthCheckPath"])
        for k, g in groups.items()
    }
    assert shape == {"BackendTargetGroup": ("ip", 8000, "/api/healthz"), "FrontendTargetGroup": ("ip", 80, "/")}


def test_http_listener_routes_api_to_backend_and_the_rest_to_frontend() -> None:
    t = _alb("dev")
    listeners = resources_of_type(t, "AWS::ElasticLoadBalancingV2::Listener")
    assert list(listeners) == ["HttpListener"]
    http = listeners["HttpListener"]["Properties"]
    assert (http["Port"], http["Protocol"]) == (80, "HTTP")
    assert http["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "FrontendTargetGroup"}}]
    (rule,) = resources_of_type(t, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    assert rule["Properties"]["ListenerArn"] == {"Ref": "HttpListener"}
    assert rule["Properties"]["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}]
    assert rule["Properties"]["Actions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": "BackendTargetGroup"}}]
    assert t["Outputs"]["AppUrl"]["Value"] == {"Fn::Sub": "http://${LoadBalancer.DNSName}"}


def test_certificate_adds_https_and_redirects_http(tmp_path: Path) -> None:
    t = _with(tmp_path, f"alb:\n  certificate_arn: {CERT}\n  domain_name: kr.example.com\n")
    listeners = resources_of_type(t, "AWS::ElasticLoadBalancingV2::Listener")
    https = listeners["HttpsListener"]["Properties"]
    assert (https["Port"], https["Protocol"]) == (443, "HTTPS")
    assert https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["Certificates"] == [{"CertificateArn": CERT}]
    assert listeners["HttpListener"]["Properties"]["DefaultActions"] == [
        {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}
    ]
    (rule,) = resources_of_type(t, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    assert rule["Properties"]["ListenerArn"] == {"Ref": "HttpsListener"}
    assert t["Outputs"]["AppUrl"]["Value"] == "https://kr.example.com"
    assert "Metadata" not in listeners["HttpListener"]  # no checkov skips needed with TLS


@pytest.mark.parametrize("env", ENVS)
def test_access_logs_on_by_default_into_the_data_stacks_bucket(env: str) -> None:
    t = _alb(env)
    attrs = _attributes(t)
    assert (attrs["access_logs.s3.enabled"], attrs["access_logs.s3.prefix"]) == ("true", "alb")
    assert attrs["access_logs.s3.bucket"] == {"Ref": "AccessLogsBucketName"}
    assert "Metadata" not in t["Resources"]["LoadBalancer"]  # no CKV_AWS_91 skip
    root = built(env)["root"]["Resources"]["AlbStack"]["Properties"]["Parameters"]
    assert root["AccessLogsBucketName"] == {"Fn::GetAtt": ["DataStack", "Outputs.AccessLogsBucketName"]}


def test_access_logs_off_by_param(tmp_path: Path) -> None:
    t = _with(tmp_path, "alb:\n  access_logs: false\n")
    attrs = _attributes(t)
    assert attrs["access_logs.s3.enabled"] == "false" and "access_logs.s3.bucket" not in attrs
    assert "AccessLogsBucketName" not in t.get("Parameters", {})
    skips = t["Resources"]["LoadBalancer"]["Metadata"]["checkov"]["skip"]
    assert [s["id"] for s in skips] == ["CKV_AWS_91"]


def test_domain_and_zone_create_the_certificate_and_alias_record(tmp_path: Path) -> None:
    t = _with(tmp_path, "alb:\n  domain_name: kr.example.com\n  hosted_zone_id: Z1D633PJN98FT9\n")
    cert = t["Resources"]["Certificate"]
    assert cert["Type"] == "AWS::CertificateManager::Certificate"
    assert cert["Properties"]["DomainName"] == "kr.example.com"
    assert cert["Properties"]["ValidationMethod"] == "DNS"
    assert cert["Properties"]["DomainValidationOptions"] == [
        {"DomainName": "kr.example.com", "HostedZoneId": "Z1D633PJN98FT9"}
    ]
    https = t["Resources"]["HttpsListener"]["Properties"]
    assert https["Certificates"] == [{"CertificateArn": {"Ref": "Certificate"}}]
    (record,) = resources_of_type(t, "AWS::Route53::RecordSet").values()
    assert record["Properties"] == {
        "HostedZoneId": "Z1D633PJN98FT9",
        "Name": "kr.example.com",
        "Type": "A",
        "AliasTarget": {
            "HostedZoneId": {"Fn::GetAtt": ["LoadBalancer", "CanonicalHostedZoneID"]},
            "DNSName": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]},
            "EvaluateTargetHealth": False,
        },
    }
    assert t["Outputs"]["AppUrl"]["Value"] == "https://kr.example.com"


def test_existing_certificate_with_a_zone_gets_only_the_record(tmp_path: Path) -> None:
    text = f"alb:\n  certificate_arn: {CERT}\n  domain_name: kr.example.com\n  hosted_zone_id: Z1D633PJN98FT9\n"
    t = _with(tmp_path, text)
    assert not resources_of_type(t, "AWS::CertificateManager::Certificate")
    assert len(resources_of_type(t, "AWS::Route53::RecordSet")) == 1
    assert t["Resources"]["HttpsListener"]["Properties"]["Certificates"] == [{"CertificateArn": CERT}]


def test_prod_serves_https_on_its_domain() -> None:
    t = _alb("prod")
    assert set(resources_of_type(t, "AWS::ElasticLoadBalancingV2::Listener")) == {"HttpListener", "HttpsListener"}
    assert "Certificate" in t["Resources"] and "AliasRecord" in t["Resources"]
    assert t["Outputs"]["AppUrl"]["Value"] == f"https://{load_env('prod').alb.domain_name}"
    for resource in t["Resources"].values():  # no checkov skip at all
        assert "checkov" not in resource.get("Metadata", {})


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_plain_http_skips_only_because_params_say_so(env: str) -> None:
    cfg = load_env(env)
    assert cfg.alb.allow_plain_http and cfg.alb.plain_http_reason
    skips = _alb(env)["Resources"]["HttpListener"]["Metadata"]["checkov"]["skip"]
    assert [s["id"] for s in skips] == ["CKV_AWS_2", "CKV_AWS_103"]
    assert all(cfg.alb.plain_http_reason in s["comment"] for s in skips)


def test_no_skip_without_the_params_asking(tmp_path: Path) -> None:
    t = _with(tmp_path, "alb: {}\n")  # HTTP only, not protected, allow_plain_http not set
    assert "Metadata" not in t["Resources"]["HttpListener"]


def test_idle_timeout_and_deregistration_delay(tmp_path: Path) -> None:
    t = _with(tmp_path, "alb:\n  idle_timeout: 120\n  deregistration_delay: 10\n")
    assert _attributes(t)["idle_timeout.timeout_seconds"] == "120"
    group = t["Resources"]["BackendTargetGroup"]["Properties"]
    assert group["TargetGroupAttributes"] == [{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]


@pytest.mark.parametrize("env", ENVS)
def test_outputs_and_root_outputs(env: str) -> None:
    assert set(_alb(env)["Outputs"]) == {
        "AlbDnsName",
        "AppUrl",
        "LoadBalancerFullName",
        "BackendTargetGroupArn",
        "BackendTargetGroupFullName",
        "FrontendTargetGroupArn",
        "FrontendTargetGroupFullName",
    }
    root = built(env)["root"]
    assert root["Outputs"]["AppUrl"]["Value"] == {"Fn::GetAtt": ["AlbStack", "Outputs.AppUrl"]}
    assert root["Outputs"]["AlbDnsName"]["Value"] == {"Fn::GetAtt": ["AlbStack", "Outputs.AlbDnsName"]}
    ecs = root["Resources"]["EcsStack"]["Properties"]["Parameters"]
    assert ecs["BackendTargetGroupArn"] == {"Fn::GetAtt": ["AlbStack", "Outputs.BackendTargetGroupArn"]}
    assert ecs["DbSecretArn"] == {"Fn::GetAtt": ["DataStack", "Outputs.DbSecretArn"]}
