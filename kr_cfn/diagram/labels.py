"""Short, readable node labels: "backend service", "PostgreSQL 15 (db.t3.micro)", not logical ids."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Resource = dict[str, Any]
Members = list[tuple[str, Resource]]
"""The resources folded into a node (logical id, resource), the node's own first."""

_ENGINES = {
    "postgres": "PostgreSQL",
    "aurora-postgresql": "Aurora PostgreSQL",
    "mysql": "MySQL",
    "aurora-mysql": "Aurora MySQL",
    "mariadb": "MariaDB",
    "redis": "Redis",
    "valkey": "Valkey",
    "memcached": "Memcached",
}


def humanize(logical_id: str) -> str:
    """``QdrantFileSystem`` -> ``qdrant file system``; ``AlbHigh5xxRateAlarm`` -> ``alb high 5xx rate alarm``."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|\d+[a-z]*", logical_id)
    return " ".join(w.lower() for w in words) or logical_id


def short_type(type_: str) -> str:
    """``AWS::Logs::QueryDefinition`` -> ``QueryDefinition``."""
    return type_.rsplit("::", 1)[-1]


def _props(res: Resource) -> dict[str, Any]:
    return res.get("Properties") or {}


def _scalar(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def _of_type(members: Members, type_: str) -> list[Resource]:
    return [r for _, r in members if r.get("Type") == type_]


def _tag(res: Resource, key: str) -> str | None:
    for tag in _props(res).get("Tags") or []:
        if isinstance(tag, dict) and tag.get("Key") == key:
            return _scalar(tag.get("Value"))
    return None


def _named(lid: str, suffix: str) -> str:
    """``QdrantFileSystem``, ``FileSystem`` -> ``qdrant file system``; the suffix is added when missing."""
    text, word = humanize(lid), humanize(suffix)
    return text if word in text else f"{text} {word}"


def _ecs_service(lid: str, members: Members) -> list[str]:
    props = _props(members[0][1])
    name = _scalar(props.get("ServiceName")) or humanize(lid.removesuffix("Service"))
    lines = [f"{name} service"]
    details = []
    for task in _of_type(members, "AWS::ECS::TaskDefinition"):
        tp = _props(task)
        cpu, mem = _scalar(tp.get("Cpu")), _scalar(tp.get("Memory"))
        if cpu and mem and cpu.isdigit() and mem.isdigit():
            details.append(f"{int(cpu) / 1024:g} vCPU, {int(mem) / 1024:g} GB")
        image = next(iter(tp.get("ContainerDefinitions") or []), {}).get("Image")
        if isinstance(image, dict) and "Fn::Sub" in image:
            sub = image["Fn::Sub"]
            image = sub if isinstance(sub, str) else sub[0]
        if isinstance(image, str):
            lines.append(re.sub(r"\$\{[^}]+\}", "<tag>", image.rsplit("/", 1)[-1] if ".dkr." in image else image))
    scaling = _of_type(members, "AWS::ApplicationAutoScaling::ScalableTarget")
    if scaling:
        sp = _props(scaling[0])
        details.append(f"{sp.get('MinCapacity')}-{sp.get('MaxCapacity')} tasks, autoscaled")
    elif _scalar(props.get("DesiredCount")) is not None:
        count = props["DesiredCount"]
        details.append(f"{count} task{'s' if count != 1 else ''}")
    providers = [_scalar(c.get("CapacityProvider")) for c in props.get("CapacityProviderStrategy") or []]
    if providers:
        names = {"FARGATE": "Fargate", "FARGATE_SPOT": "Fargate Spot"}
        details.append(" + ".join(names.get(p, p) if p else "EC2 capacity provider" for p in providers))
    elif _scalar(props.get("LaunchType")):
        details.append(str(props["LaunchType"]).lower())
    return [*lines, ", ".join(details)] if details else lines


def _database(lid: str, members: Members) -> list[str]:
    p = _props(members[0][1])
    engine = _ENGINES.get(str(p.get("Engine")), str(p.get("Engine", "database")))
    version = _scalar(p.get("EngineVersion")) or ""
    lines = [f"{engine} {version} ({p.get('DBInstanceClass')})".replace("  ", " ")]
    details = [f"{p['AllocatedStorage']} GB {p.get('StorageType', '')}".strip()] if p.get("AllocatedStorage") else []
    if p.get("MultiAZ") is True:
        details.append("Multi-AZ")
    return [*lines, ", ".join(details)] if details else lines


def _cache(lid: str, members: Members) -> list[str]:
    p = _props(members[0][1])
    engine = _ENGINES.get(str(p.get("Engine")), "cache")
    version = _scalar(p.get("EngineVersion")) or ""
    node = p.get("CacheNodeType")
    details = ["TLS"] if p.get("TransitEncryptionEnabled") is True else []
    count = _scalar(p.get("NumCacheClusters") or p.get("NumNodeGroups"))
    if count:
        details.append(f"{count} node{'s' if count != '1' else ''}")
    return [f"{engine} {version} ({node})".replace("  ", " "), ", ".join(details)]


def _file_system(lid: str, members: Members) -> list[str]:
    targets = len(_of_type(members, "AWS::EFS::MountTarget"))
    points = [_props(a).get("RootDirectory", {}).get("Path") for a in _of_type(members, "AWS::EFS::AccessPoint")]
    details = [f"{targets} mount targets"] if targets else []
    details += [str(p) for p in points if isinstance(p, str)]
    return [f"{_named(lid, 'FileSystem')} (EFS)", ", ".join(details)] if details else [f"{_named(lid, 'FileSystem')}"]


def _listener(lid: str, members: Members) -> list[str]:
    p = _props(members[0][1])
    lines = [f"{p.get('Protocol', '')} listener :{p.get('Port', '')}".strip()]
    actions = p.get("DefaultActions") or []
    if any(a.get("Type") == "redirect" for a in actions):
        target = (next(a for a in actions if a.get("Type") == "redirect").get("RedirectConfig") or {}).get("Protocol")
        lines.append(f"redirect to {target or 'elsewhere'}")
    paths = [
        v
        for rule in _of_type(members, "AWS::ElasticLoadBalancingV2::ListenerRule")
        for c in _props(rule).get("Conditions") or []
        for v in (c.get("PathPatternConfig") or {}).get("Values") or c.get("Values") or []
    ]
    if paths:
        lines.append("rules: " + ", ".join(map(str, paths)))
    return lines


def _target_group(lid: str, members: Members) -> list[str]:
    p = _props(members[0][1])
    health = p.get("HealthCheckPath")
    return [f"{_named(lid, 'TargetGroup')}", f":{p.get('Port')}" + (f", health {health}" if health else "")]


def _load_balancer(lid: str, members: Members) -> list[str]:
    p = _props(members[0][1])
    kind = {"application": "ALB", "network": "NLB"}.get(str(p.get("Type", "application")), "load balancer")
    return [f"load balancer ({kind})", str(p.get("Scheme", ""))]


def _subnet(lid: str, members: Members) -> list[str]:
    res = members[0][1]
    tier = _tag(res, "Tier") or ("public" if _props(res).get("MapPublicIpOnLaunch") is True else humanize(lid))
    return [f"{tier} subnet" if tier in ("public", "private") else tier, str(_props(res).get("CidrBlock", ""))]


def _topic(lid: str, members: Members) -> list[str]:
    alarms = len(_of_type(members, "AWS::CloudWatch::Alarm"))
    subs = _of_type(members, "AWS::SNS::Subscription")
    chat = len(_of_type(members, "AWS::Chatbot::SlackChannelConfiguration"))
    details = [f"{alarms} alarms"] if alarms else []
    protocols = sorted({str(_props(s).get("Protocol")) for s in subs})
    details += [f"{len(subs)} {'/'.join(protocols)} subscription{'s' if len(subs) != 1 else ''}"] if subs else []
    details += ["Slack"] if chat else []
    return [f"{_named(lid, 'Topic')} (SNS)", ", ".join(details)] if details else [f"{_named(lid, 'Topic')} (SNS)"]


def _record(lid: str, members: Members) -> list[str]:
    p = _props(members[0][1])
    return [f"DNS {p.get('Name', humanize(lid))}", f"{p.get('Type', '')} record".strip()]


def _simple(text: str) -> Callable[[str, Members], list[str]]:
    return lambda lid, members: [text]


def _suffixed(suffix: str, kind: str) -> Callable[[str, Members], list[str]]:
    def make(lid: str, members: Members) -> list[str]:
        name = _named(lid, suffix)
        return [name if kind in name else f"{name} ({kind})"]

    return make


_LABELS: dict[str, Callable[[str, Members], list[str]]] = {
    "AWS::ECS::Service": _ecs_service,
    "AWS::RDS::DBInstance": _database,
    "AWS::ElastiCache::ReplicationGroup": _cache,
    "AWS::EFS::FileSystem": _file_system,
    "AWS::ElasticLoadBalancingV2::Listener": _listener,
    "AWS::ElasticLoadBalancingV2::TargetGroup": _target_group,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": _load_balancer,
    "AWS::EC2::Subnet": _subnet,
    "AWS::SNS::Topic": _topic,
    "AWS::Route53::RecordSet": _record,
    "AWS::EC2::VPC": lambda lid, m: ["VPC", str(_props(m[0][1]).get("CidrBlock", ""))],
    "AWS::EC2::InternetGateway": _simple("internet gateway"),
    "AWS::EC2::NatGateway": _simple("NAT gateway"),
    "AWS::ECS::Cluster": _simple("ECS cluster"),
    "AWS::S3::Bucket": _suffixed("Bucket", "S3"),
    "AWS::SecretsManager::Secret": _suffixed("Secret", "secret"),
    "AWS::CloudWatch::Dashboard": _simple("CloudWatch dashboard"),
    "AWS::ServiceDiscovery::PrivateDnsNamespace": _simple("Cloud Map namespace"),
    "AWS::IAM::Role": _suffixed("Role", "IAM role"),
    "AWS::EC2::RouteTable": _suffixed("RouteTable", "route table"),
    "AWS::Logs::LogGroup": _suffixed("LogGroup", "log group"),
    "AWS::KMS::Key": _suffixed("Key", "KMS key"),
}


def label(lid: str, members: Members) -> list[str]:
    """Label lines of a node whose own resource is ``members[0]`` (logical id ``lid``)."""
    type_ = members[0][1].get("Type", "")
    make = _LABELS.get(type_)
    lines = make(lid, members) if make else [f"{humanize(lid)} ({short_type(type_)})"]
    return [line for line in lines if line]
