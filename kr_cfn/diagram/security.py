"""Who may talk to whom: the security groups' rules as flows between groups (or CIDR blocks).

Read from the templates, wherever the rules are: inline ``SecurityGroupIngress`` /
``SecurityGroupEgress`` of an ``AWS::EC2::SecurityGroup`` and the standalone
``AWS::EC2::SecurityGroupIngress`` / ``AWS::EC2::SecurityGroupEgress`` resources of any stack,
their groups followed through the root's wiring. A group's members are the resources that
name it (an ECS service's ``AwsvpcConfiguration``, a database's ``VPCSecurityGroups``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kr_cfn.diagram.templates import Build, Target, resource_refs

GROUP = "AWS::EC2::SecurityGroup"
INGRESS = "AWS::EC2::SecurityGroupIngress"
EGRESS = "AWS::EC2::SecurityGroupEgress"
RULE_TYPES = (GROUP, INGRESS, EGRESS)

SG_DOC = "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ec2-securitygroup.html"
"""AWS::EC2::SecurityGroup: "If you do not specify an egress rule, we add egress rules that allow
IPv4 and IPv6 traffic on all ports and protocols to any destination." A group with no inline
SecurityGroupEgress therefore may send anywhere, whatever standalone egress rules add."""

NO_EGRESS_CIDR = "255.255.255.255/32"
"""The rule a group gets to replace that default egress and allow nothing (the icmp "Disallow all
traffic" entry the stacks and AWS CDK write)."""

ANYWHERE = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Flow:
    """Traffic one rule set allows: ``src`` may open connections to ``dst`` on ``port``.

    ``src``/``dst`` are a group (stack, logical id) or ``("cidr", block)``. ``ingress`` and
    ``egress`` say which side's rules allow it (a group with open default egress counts as egress).
    """

    src: Target
    dst: Target
    port: str
    ingress: bool
    egress: bool


def port_text(rule: dict[str, Any]) -> str | None:
    """``5432``, ``1024-2048``, ``udp 53``, ``all``; None for the no-egress placeholder."""
    proto = str(rule.get("IpProtocol", "-1")).lower()
    if rule.get("CidrIp") == NO_EGRESS_CIDR:
        return None
    if proto in ("-1", "all"):
        return "all"
    low, high = rule.get("FromPort"), rule.get("ToPort")
    ports = f"{low}" if low == high else f"{low}-{high}"
    if proto in ("icmp", "1", "icmpv6", "58"):
        return "icmp"
    return ports if proto in ("tcp", "6") else f"{proto} {ports}"


def _peer(build: Build, stack: str, rule: dict[str, Any], group_key: str) -> list[Target]:
    groups = sorted(t for t in build.refs(stack, rule.get(group_key)) if _is_group(build, t))
    if groups:
        return groups
    cidrs = [rule[k] for k in ("CidrIp", "CidrIpv6") if isinstance(rule.get(k), str)]
    prefix = rule.get("SourcePrefixListId") or rule.get("DestinationPrefixListId")
    if prefix is not None:
        cidrs.append("prefix list")
    return [("cidr", c) for c in cidrs] or [("cidr", "unresolved")]


def _is_group(build: Build, target: Target) -> bool:
    stack, logical = target
    return stack in build.stacks and build.resources(stack).get(logical, {}).get("Type") == GROUP


def groups(build: Build) -> dict[Target, dict[str, Any]]:
    """Every security group of the nested stacks, by (stack, logical id)."""
    return {
        (stack, lid): res
        for stack in build.stacks
        for lid, res in build.resources(stack).items()
        if res.get("Type") == GROUP
    }


def _rules(build: Build) -> list[tuple[str, Target, Target, str]]:
    """(direction, group, peer, port) for every rule, inline or standalone."""
    out: list[tuple[str, Target, Target, str]] = []
    for (stack, lid), res in groups(build).items():
        props = res.get("Properties") or {}
        for direction, key, peer_key in (
            ("ingress", "SecurityGroupIngress", "SourceSecurityGroupId"),
            ("egress", "SecurityGroupEgress", "DestinationSecurityGroupId"),
        ):
            for rule in props.get(key) or []:
                port = port_text(rule)
                if port is not None:
                    out += [(direction, (stack, lid), peer, port) for peer in _peer(build, stack, rule, peer_key)]
    for stack in build.stacks:
        for res in build.resources(stack).values():
            kind = {INGRESS: "ingress", EGRESS: "egress"}.get(res.get("Type", ""))
            if kind is None:
                continue
            props = res.get("Properties") or {}
            port = port_text(props)
            peer_key = "SourceSecurityGroupId" if kind == "ingress" else "DestinationSecurityGroupId"
            for group in sorted(t for t in build.refs(stack, props.get("GroupId")) if _is_group(build, t)):
                if port is not None:
                    out += [(kind, group, peer, port) for peer in _peer(build, stack, props, peer_key)]
    return out


def _open_egress(res: dict[str, Any]) -> bool:
    return "SecurityGroupEgress" not in (res.get("Properties") or {})  # SG_DOC: the default allows all


def flows(build: Build) -> list[Flow]:
    """Every allowed (or half-allowed) flow, ingress and egress rules matched up, sorted."""
    found: dict[tuple[Target, Target, str], list[bool]] = {}
    all_groups = groups(build)
    for direction, group, peer, port in _rules(build):
        key = (peer, group, port) if direction == "ingress" else (group, peer, port)
        sides = found.setdefault(key, [False, False])
        sides[0 if direction == "ingress" else 1] = True
    result = []
    for (src, dst, port), (ingress, egress) in sorted(found.items()):
        if src in all_groups and not egress:
            egress = _open_egress(all_groups[src]) or _covered(found, src, port)
        if dst[0] == "cidr":
            ingress = True  # outside the VPC: nothing of ours filters what arrives there
        if src[0] == "cidr":
            egress = True
        result.append(Flow(src, dst, port, ingress, egress))
    for group, res in sorted(all_groups.items()):
        if _open_egress(res):
            result.append(Flow(group, ("cidr", "0.0.0.0/0"), "all", True, True))
    return result


def _covered(found: dict[tuple[Target, Target, str], list[bool]], src: Target, port: str) -> bool:
    """Whether ``src`` has an egress rule to anywhere that covers ``port``."""
    return any(
        s == src and d[0] == "cidr" and d[1] in ANYWHERE and p in (port, "all") and sides[1]
        for (s, d, p), sides in found.items()
    )


def members(build: Build) -> dict[Target, list[Target]]:
    """Group -> the resources (any stack) that are placed in it, rules excluded."""
    result: dict[Target, list[Target]] = {g: [] for g in groups(build)}
    for stack in build.stacks:
        for lid, res in build.resources(stack).items():
            if res.get("Type") in RULE_TYPES:
                continue
            for target in resource_refs(build, stack, res):
                if target in result:
                    result[target].append((stack, lid))
    return result
