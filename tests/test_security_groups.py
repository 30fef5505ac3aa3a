"""Security groups, the EFS policy and container hardening, checked on every env's built templates.

Reachability is computed from the templates alone: a service reaches ``(group, port)`` only
when its own group has an egress rule to that group on that port *and* that group has an
ingress rule from the service's group on that port (both halves must allow a connection).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.config.flows import DATA_ENDPOINTS, service_flows
from tests.conftest import ENVS, ROOT, built, load_env, resources_of_type, write_params

SEVENTH = ROOT / "tests" / "fixtures" / "seventh-service" / "dev.yaml"
DATA_PORTS = {"db": 5432, "redis": 6379, "qdrant": 6333, "efs": 2049}
# The architecture's who-talks-to-whom (issue 9, finding 6), for the default services.
EXPECTED = {
    ("alb", "backend", 8000),
    ("alb", "frontend", 80),
    ("backend", "db", 5432),
    ("backend", "redis", 6379),
    ("backend", "qdrant", 6333),
    ("qdrant", "efs", 2049),
    ("prometheus", "backend", 8000),
    ("prometheus", "qdrant", 6333),
    ("grafana", "prometheus", 9090),
    # The daily Qdrant snapshot job (no ECS service, its own group) calls Qdrant's API.
    ("qdrant-snapshots", "qdrant", 6333),
}
QDRANT_ON_EFS = ("qdrant", "efs", 2049)
"""Only with services.qdrant.storage: efs (prod runs qdrant on an EBS volume of its host)."""


def _expected(env: str) -> set[tuple[str, str, int]]:
    plan = config.qdrant_plan(load_env(env))
    return EXPECTED - ({QDRANT_ON_EFS} if plan is not None and plan.storage != "efs" else set())


def _group(value: Any) -> str:
    return value["Fn::GetAtt"][0]


def _groups(templates: dict[str, Any]) -> dict[str, str]:
    """Network logical id of every group -> the node it stands for (service, alb, data endpoint)."""
    net = templates["network"]
    names = {"AlbSecurityGroup": "alb", **{e.group: n for n, e in DATA_ENDPOINTS.items()}}
    names["QdrantSnapshotsServiceSecurityGroup"] = "qdrant-snapshots"  # the snapshot job's group
    services = {_service_group(templates, s): s for s in _services(templates)}
    return {g: services.get(g) or names[g] for g in resources_of_type(net, "AWS::EC2::SecurityGroup")}


def _services(templates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ECS service name -> its service resource's properties."""
    return {
        r["Properties"]["ServiceName"]: r["Properties"]
        for r in resources_of_type(templates["ecs"], "AWS::ECS::Service").values()
    }


def _service_group(templates: dict[str, Any], service: str) -> str:
    """The network group a service runs in, followed through the root's wiring."""
    (ref,) = _services(templates)[service]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    wiring = templates["root"]["Resources"]["EcsStack"]["Properties"]["Parameters"][ref["Ref"]]
    producer, output = wiring["Fn::GetAtt"]
    assert producer == "NetworkStack"
    return _group(templates["network"]["Outputs"][output.removeprefix("Outputs.")]["Value"])


def _reachable(templates: dict[str, Any]) -> set[tuple[str, str, int]]:
    """(source, destination, port) that both halves of the network template's rules allow."""
    net, names = templates["network"], _groups(templates)
    ingress, egress = set(), set()
    for r in resources_of_type(net, "AWS::EC2::SecurityGroupIngress").values():
        p = r["Properties"]
        assert p["IpProtocol"] == "tcp" and p["FromPort"] == p["ToPort"]
        ingress.add((_group(p["SourceSecurityGroupId"]), _group(p["GroupId"]), p["FromPort"]))
    for r in resources_of_type(net, "AWS::EC2::SecurityGroupEgress").values():
        p = r["Properties"]
        assert p["IpProtocol"] == "tcp" and p["FromPort"] == p["ToPort"]
        egress.add((_group(p["GroupId"]), _group(p["DestinationSecurityGroupId"]), p["FromPort"]))
    for group in resources_of_type(net, "AWS::EC2::SecurityGroup").values():
        # Between groups, only separate rule resources; inline rules are CIDR rules.
        for rule in [*group["Properties"].get("SecurityGroupIngress", []), *group["Properties"]["SecurityGroupEgress"]]:
            assert "SourceSecurityGroupId" not in rule and "DestinationSecurityGroupId" not in rule
    assert ingress == egress, "every rule between groups has both halves"
    return {(names[s], names[d], port) for s, d, port in ingress & egress}


def _all_templates() -> list[tuple[str, dict[str, Any]]]:
    seventh = {n: t.to_dict() for n, t in stacks.build_all(config.load(SEVENTH)).items()}
    return [*((env, built(env)) for env in ENVS), ("seventh-service", seventh)]


CASES = _all_templates()
IDS = [name for name, _ in CASES]


@pytest.mark.parametrize(("name", "templates"), CASES, ids=IDS)
def test_every_service_has_its_own_group(name: str, templates: dict[str, Any]) -> None:
    groups = {s: _service_group(templates, s) for s in _services(templates)}
    assert len(set(groups.values())) == len(groups), groups
    net_groups = resources_of_type(templates["network"], "AWS::EC2::SecurityGroup")
    for service, group in groups.items():
        assert group in net_groups
        assert net_groups[group]["Properties"]["Tags"][0]["Value"].endswith(f"-{service}")
    assert not resources_of_type(templates["ecs"], "AWS::EC2::SecurityGroupIngress")
    assert not resources_of_type(templates["ecs"], "AWS::EC2::SecurityGroupEgress")
    assert "TaskSecurityGroup" not in net_groups


@pytest.mark.parametrize("env", ENVS)
def test_default_services_talk_exactly_as_the_architecture_says(env: str) -> None:
    assert _reachable(built(env)) == _expected(env)


@pytest.mark.parametrize(("name", "templates"), CASES, ids=IDS)
def test_every_rule_is_a_flow_of_the_params(name: str, templates: dict[str, Any]) -> None:
    """For every rule between groups, the destination port is one the source uses (params' who-talks-to-whom)."""
    cfg = config.load(SEVENTH) if name == "seventh-service" else load_env(name)
    flows = config.network_slice(cfg).flows  # the services' flows and the Qdrant snapshot job's
    assert set(service_flows(config.ecs_slice(cfg).services, config.data_choices(cfg))) <= set(flows)
    assert _reachable(templates) == {(f.source, f.destination, f.port) for f in flows}


@pytest.mark.parametrize(("name", "templates"), CASES, ids=IDS)
def test_no_service_reaches_a_port_it_does_not_use(name: str, templates: dict[str, Any]) -> None:
    reachable = _reachable(templates)
    cfg = config.load(SEVENTH) if name == "seventh-service" else load_env(name)
    ports = {n: s.port for n, s in config.ecs_slice(cfg).services.items()} | {
        n: e.port for n, e in DATA_ENDPOINTS.items()
    }
    for source, destination, port in reachable:
        assert port == ports[destination], (source, destination, port)
    for outsider in ("grafana", "frontend"):
        assert not {p for s, _, p in reachable if s == outsider} & set(DATA_PORTS.values()), outsider
    # Only qdrant mounts the file system (on efs); only the backend (and the seventh service) reach db and redis.
    plan = config.qdrant_plan(cfg)
    assert {s for s, d, _ in reachable if d == "efs"} == ({"qdrant"} if plan and plan.storage == "efs" else set())
    data_clients = {s for s, d, _ in reachable if d in ("db", "redis")}
    assert data_clients == ({"backend", "worker"} if name == "seventh-service" else {"backend"})


@pytest.mark.parametrize(("name", "templates"), CASES, ids=IDS)
def test_egress_to_the_internet_is_https_only(name: str, templates: dict[str, Any]) -> None:
    groups = resources_of_type(templates["network"], "AWS::EC2::SecurityGroup")
    for service in _services(templates):
        (rule,) = groups[_service_group(templates, service)]["Properties"]["SecurityGroupEgress"]
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIp"]) == ("tcp", 443, 443, "0.0.0.0/0")
        assert "SecurityGroupIngress" not in groups[_service_group(templates, service)]["Properties"]
    for endpoint in (*DATA_ENDPOINTS.values(), None):
        group = groups[endpoint.group if endpoint else "AlbSecurityGroup"]["Properties"]
        assert [r["CidrIp"] for r in group["SecurityGroupEgress"]] == ["255.255.255.255/32"]  # nothing


def test_the_seventh_service_gets_its_flows_from_its_params() -> None:
    """worker uses {{host:redis}} and {{output:DbEndpointAddress}}: redis and db, nothing else."""
    reachable = _reachable(dict(CASES)["seventh-service"])
    assert {(d, p) for s, d, p in reachable if s == "worker"} == {("redis", 6379), ("db", 5432)}
    assert not {d for s, d, _ in reachable if s != "worker" and d == "worker"}


def test_connects_to_adds_a_flow(tmp_path: Path) -> None:
    path = write_params(tmp_path, "dev", "services:\n  grafana:\n    connects_to: [db, backend]\n")
    templates = {n: t.to_dict() for n, t in stacks.build_all(config.load(path)).items()}
    assert _reachable(templates) == EXPECTED | {("grafana", "db", 5432), ("grafana", "backend", 8000)}


def test_elasticache_is_reached_through_the_cache_group() -> None:
    """prod: the redis service is not rendered; the backend reaches the ElastiCache group instead."""
    net = built("prod")["network"]
    assert "RedisServiceSecurityGroup" not in net["Resources"]
    ingress = net["Resources"]["CacheSecurityGroupIngressFromBackend"]["Properties"]
    assert _group(ingress["SourceSecurityGroupId"]) == "BackendServiceSecurityGroup"
    assert "RedisServiceSecurityGroup" in built("dev")["network"]["Resources"]


# --------------------------------------------------------------------------- EFS policy


def _fs_policy(env: str) -> list[dict[str, Any]]:
    (fs,) = resources_of_type(built(env)["data"], "AWS::EFS::FileSystem").values()
    return fs["Properties"]["FileSystemPolicy"]["Statement"]


def _efs_envs() -> list[str]:
    """Envs with a file system: qdrant on efs (prod keeps qdrant on EBS)."""
    return [e for e in ENVS if (p := config.qdrant_plan(load_env(e))) is not None and p.storage == "efs"]


@pytest.mark.parametrize("env", _efs_envs())
def test_file_system_policy_tls_access_point_no_root_no_anonymous(env: str) -> None:
    statements = {s["Sid"]: s for s in _fs_policy(env)}
    client = {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"}
    # Only Deny: nothing here widens what identity policies allow, and anonymous clients get no Allow.
    assert {s["Effect"] for s in statements.values()} == {"Deny"}
    assert all(s["Principal"] == "*" for s in statements.values())
    for sid in ("DenyInsecureTransport", "DenyWithoutAccessPoint"):
        assert set(statements[sid]["Action"]) == client
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    assert statements["DenyWithoutAccessPoint"]["Condition"] == {"Null": {"elasticfilesystem:AccessPointArn": True}}
    assert statements["DenyRootAccess"]["Action"] == ["elasticfilesystem:ClientRootAccess"]
    assert "Condition" not in statements["DenyRootAccess"]


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role logical id, statement) of every inline role policy and managed policy of a template."""
    found = []
    for k, r in template["Resources"].items():
        if r["Type"] == "AWS::IAM::Role":
            for policy in r["Properties"].get("Policies", []):
                found += [(k, s) for s in policy["PolicyDocument"]["Statement"]]
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(k, s) for s in r["Properties"]["PolicyDocument"]["Statement"]]
    return found


@pytest.mark.parametrize(("name", "templates"), CASES, ids=IDS)
def test_only_the_qdrant_task_role_may_mount_and_only_through_its_access_point(
    name: str, templates: dict[str, Any]
) -> None:
    """EFS cannot name the caller in its file system policy, so the identity side decides: check it.

    Over the application stacks; the bootstrap's CloudFormation service role manages file systems
    for CloudFormation, which never is an NFS client (its scope is issue 9's finding 1).
    """
    grants = []
    for stack, template in templates.items():
        if stack == "bootstrap":
            continue
        for owner, s in _statements(template):
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            if s["Effect"] == "Allow" and any(
                a.lower().startswith(("elasticfilesystem:client", "elasticfilesystem:*")) or a == "*" for a in actions
            ):
                grants.append((owner, s))
    cfg = config.load(SEVENTH) if name == "seventh-service" else load_env(name)
    plan = config.qdrant_plan(cfg)
    if plan is not None and plan.storage != "efs":
        assert grants == [], "no file system, no grant"
        return
    assert [owner for owner, _ in grants] == ["QdrantTaskRole"]
    ((_, grant),) = grants
    assert sorted(grant["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert grant["Resource"] == [{"Ref": "FileSystemArn"}]
    assert grant["Condition"] == {"StringEquals": {"elasticfilesystem:AccessPointArn": {"Ref": "QdrantAccessPointArn"}}}
    mounts = [
        k
        for k, r in resources_of_type(templates["ecs"], "AWS::ECS::TaskDefinition").items()
        for v in r["Properties"].get("Volumes", [])
        if "EFSVolumeConfiguration" in v
    ]
    assert mounts == ["QdrantTaskDefinition"]
    (volume,) = [
        v
        for v in templates["ecs"]["Resources"]["QdrantTaskDefinition"]["Properties"]["Volumes"]
        if "EFSVolumeConfiguration" in v
    ]
    efs = volume["EFSVolumeConfiguration"]
    assert efs["TransitEncryption"] == "ENABLED"
    assert efs["AuthorizationConfig"] == {"AccessPointId": {"Ref": "QdrantAccessPointId"}, "IAM": "ENABLED"}


# --------------------------------------------------------------------------- containers

_EXACT = re.compile(r"^v?\d+\.\d+\.\d+([-+._][A-Za-z0-9]+)*$")


@pytest.mark.parametrize(("name", "templates"), CASES, ids=IDS)
def test_containers_are_pinned_and_hardened(name: str, templates: dict[str, Any]) -> None:
    tasks = resources_of_type(templates["ecs"], "AWS::ECS::TaskDefinition").items()
    for logical_id, c in ((lid, c) for lid, task in tasks for c in task["Properties"]["ContainerDefinitions"]):
        if isinstance(c["Image"], str):  # public image
            tag = c["Image"].split("@")[0].rpartition(":")[2]
            assert _EXACT.match(tag), (logical_id, c["Image"])
        caps = c["LinuxParameters"]["Capabilities"]
        assert "Add" not in caps, logical_id  # Fargate only allows SYS_PTRACE; nothing needs it
        if c["Name"] != "frontend":
            assert caps["Drop"] == ["ALL"], logical_id
        if c["Name"] in ("backend", "frontend", "redis", "worker", "discovery"):
            assert c["ReadonlyRootFilesystem"] is True, logical_id
    containers = {
        r["Properties"]["ContainerDefinitions"][0]["Name"]: r["Properties"]["ContainerDefinitions"][0]
        for r in resources_of_type(templates["ecs"], "AWS::ECS::TaskDefinition").values()
    }
    users = {
        "frontend": "0:0",
        "qdrant": "1000:1000",
        "redis": "999:1000",
        "prometheus": "65534:65534",
        "grafana": "472:0",
        "snapshots": "0:0",
    }
    for service, user in users.items():
        if service in containers:
            assert containers[service]["User"] == user
    # nginx's root master keeps only what it uses: bind :80, chown temp dirs, switch and signal workers.
    dropped = set(containers["frontend"]["LinuxParameters"]["Capabilities"]["Drop"])
    assert dropped >= {"NET_RAW", "MKNOD", "SYS_CHROOT", "SETFCAP", "SETPCAP", "AUDIT_WRITE", "FSETID"}
    assert not dropped & {"NET_BIND_SERVICE", "SETUID", "SETGID", "CHOWN", "KILL"}


def test_image_digest_pins_a_public_image(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    path = write_params(tmp_path, "dev", f"services:\n  qdrant:\n    image_digest: '{digest}'\n")
    ecs = stacks.build_all(config.load(path))["ecs"].to_dict()
    (c,) = ecs["Resources"]["QdrantTaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert c["Image"] == f"qdrant/qdrant:v1.19.1-unprivileged@{digest}"
