"""Property tests of the network stack."""

from __future__ import annotations

from typing import Any

import pytest

from kr_cfn import config
from kr_cfn.naming import pascal
from tests.conftest import ENVS, built, load_env, resources_of_type


def _net(env: str) -> dict[str, Any]:
    return built(env)["network"]


@pytest.mark.parametrize("env", ENVS)
def test_vpc_has_dns(env: str) -> None:
    (vpc,) = resources_of_type(_net(env), "AWS::EC2::VPC").values()
    assert vpc["Properties"]["EnableDnsSupport"] and vpc["Properties"]["EnableDnsHostnames"]
    assert vpc["Properties"]["CidrBlock"] == str(load_env(env).network.vpc_cidr)


@pytest.mark.parametrize("env", ENVS)
def test_two_public_subnets_in_different_azs(env: str) -> None:
    subnets = {k: v for k, v in resources_of_type(_net(env), "AWS::EC2::Subnet").items() if k.startswith("Public")}
    assert len(subnets) == 2
    azs = [s["Properties"]["AvailabilityZone"] for s in subnets.values()]
    assert azs == [{"Fn::Select": [0, {"Fn::GetAZs": ""}]}, {"Fn::Select": [1, {"Fn::GetAZs": ""}]}]
    assert all(s["Properties"]["MapPublicIpOnLaunch"] for s in subnets.values())


@pytest.mark.parametrize("env", ENVS)
def test_public_route_goes_to_the_internet_gateway(env: str) -> None:
    routes = resources_of_type(_net(env), "AWS::EC2::Route")
    assert routes["PublicDefaultRoute"]["Properties"]["GatewayId"] == {"Ref": "InternetGateway"}
    assert routes["PublicDefaultRoute"]["DependsOn"] == "InternetGatewayAttachment"


def test_no_nat_in_dev() -> None:
    net = _net("dev")
    assert not resources_of_type(net, "AWS::EC2::NatGateway")
    assert not [k for k in net["Resources"] if k.startswith("Private")]
    assert net["Outputs"]["TaskAssignPublicIp"]["Value"] == "ENABLED"
    assert net["Outputs"]["AppSubnetIds"]["Value"] == net["Outputs"]["PublicSubnetIds"]["Value"]


def test_nat_per_az_in_prod() -> None:
    net = _net("prod")
    nats = resources_of_type(net, "AWS::EC2::NatGateway")
    assert sorted(nats) == ["NatGateway1", "NatGateway2"]
    routes = resources_of_type(net, "AWS::EC2::Route")
    assert routes["PrivateDefaultRoute1"]["Properties"]["NatGatewayId"] == {"Ref": "NatGateway1"}
    assert routes["PrivateDefaultRoute2"]["Properties"]["NatGatewayId"] == {"Ref": "NatGateway2"}
    assert net["Outputs"]["TaskAssignPublicIp"]["Value"] == "DISABLED"
    assert net["Outputs"]["AppSubnetIds"]["Value"] == {
        "Fn::Join": [",", [{"Ref": "PrivateSubnet1"}, {"Ref": "PrivateSubnet2"}]]
    }


def test_one_shared_nat_in_staging() -> None:
    net = _net("staging")
    assert list(resources_of_type(net, "AWS::EC2::NatGateway")) == ["NatGateway1"]
    routes = resources_of_type(net, "AWS::EC2::Route")
    assert {routes[f"PrivateDefaultRoute{i}"]["Properties"]["NatGatewayId"]["Ref"] for i in (1, 2)} == {"NatGateway1"}
    assert len(resources_of_type(net, "AWS::EC2::RouteTable")) == 3  # one public, one per private AZ


def _sg_id(value: Any) -> str:
    return value["Fn::GetAtt"][0]


def _rules(net: dict[str, Any]) -> set[tuple[str, str, str, int]]:
    """Every (direction, group, peer, port) allowed, inline or separate."""
    rules = set()
    for sg_id, sg in resources_of_type(net, "AWS::EC2::SecurityGroup").items():
        for r in sg["Properties"].get("SecurityGroupIngress", []):
            rules.add(("in", sg_id, r.get("CidrIp") or _sg_id(r["SourceSecurityGroupId"]), r["FromPort"]))
        for r in sg["Properties"].get("SecurityGroupEgress", []):
            if r["CidrIp"] != "255.255.255.255/32":
                rules.add(("out", sg_id, r.get("CidrIp"), r["FromPort"]))
    for r in resources_of_type(net, "AWS::EC2::SecurityGroupIngress").values():
        p = r["Properties"]
        rules.add(("in", _sg_id(p["GroupId"]), _sg_id(p["SourceSecurityGroupId"]), p["FromPort"]))
    for r in resources_of_type(net, "AWS::EC2::SecurityGroupEgress").values():
        p = r["Properties"]
        rules.add(("out", _sg_id(p["GroupId"]), _sg_id(p["DestinationSecurityGroupId"]), p["FromPort"]))
    return rules


@pytest.mark.parametrize("env", ENVS)
def test_security_group_rules_only_between_intended_groups(env: str) -> None:
    """The whole rule set, spelled out (tests/test_security_groups.py checks it against the params)."""
    names = ("Backend", "Frontend", "Qdrant", "Redis", "Prometheus", "Grafana", "QdrantSnapshots")
    g = {n: f"{n}ServiceSecurityGroup" for n in names}
    # prod: ElastiCache replaces the redis service, behind the cache group.
    redis = "CacheSecurityGroup" if load_env(env).data.redis == "elasticache" else g["Redis"]
    flows = {
        ("AlbSecurityGroup", g["Backend"], 8000),
        ("AlbSecurityGroup", g["Frontend"], 80),
        (g["Backend"], "DatabaseSecurityGroup", 5432),
        (g["Backend"], redis, 6379),
        (g["Backend"], g["Qdrant"], 6333),
        (g["Prometheus"], g["Backend"], 8000),
        (g["Prometheus"], g["Qdrant"], 6333),
        (g["Grafana"], g["Prometheus"], 9090),
        (g["QdrantSnapshots"], g["Qdrant"], 6333),  # the daily snapshot job
    }
    plan = config.qdrant_plan(load_env(env))
    if plan is not None and plan.storage == "efs":  # prod: qdrant's data is on its host's EBS volume
        flows.add((g["Qdrant"], "FileSystemSecurityGroup", 2049))
    services = set(g.values()) - ({g["Redis"]} if redis != g["Redis"] else set())
    expected = {("in", "AlbSecurityGroup", "0.0.0.0/0", 80), ("in", "AlbSecurityGroup", "0.0.0.0/0", 443)}
    expected |= {("out", group, "0.0.0.0/0", 443) for group in services}
    expected |= {("in", dst, src, port) for src, dst, port in flows} | {
        ("out", src, dst, port) for src, dst, port in flows
    }
    assert _rules(_net(env)) == expected


@pytest.mark.parametrize("env", ENVS)
def test_data_groups_allow_no_egress(env: str) -> None:
    groups = resources_of_type(_net(env), "AWS::EC2::SecurityGroup")
    for name in ("DatabaseSecurityGroup", "FileSystemSecurityGroup", "CacheSecurityGroup", "AlbSecurityGroup"):
        assert [r["CidrIp"] for r in groups[name]["Properties"]["SecurityGroupEgress"]] == ["255.255.255.255/32"]


@pytest.mark.parametrize("env", ENVS)
def test_outputs_for_the_other_stacks(env: str) -> None:
    assert set(_net(env)["Outputs"]) == {
        "VpcId",
        "VpcCidr",
        "PublicSubnetIds",
        "AppSubnetIds",
        "TaskAssignPublicIp",
        "AlbSecurityGroupId",
        "DatabaseSecurityGroupId",
        "FileSystemSecurityGroupId",
        "CacheSecurityGroupId",
    } | {f"{pascal(n)}ServiceSecurityGroupId" for n in config.network_slice(load_env(env)).services}


@pytest.mark.parametrize("env", ENVS)
def test_physical_names_include_the_environment(env: str) -> None:
    (vpc,) = resources_of_type(_net(env), "AWS::EC2::VPC").values()
    assert {"Key": "Name", "Value": load_env(env).names("vpc")} in vpc["Properties"]["Tags"]
