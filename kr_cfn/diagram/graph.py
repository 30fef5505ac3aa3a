"""The diagram as nodes and edges.

Resources are folded into readable nodes; edges come from references, the root's wiring and
the security groups' flows; the request path is marked.

Folding: a satellite resource joins the node of the resource it belongs to -- either the one it
names (a bucket policy its bucket, a listener rule its listener, an alarm its topic) or the only
node that names it (a task definition, log group or role used by one service). Security groups
are not nodes: their rules become traffic edges between the nodes placed in them.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kr_cfn.diagram import labels, security
from kr_cfn.diagram.templates import ROOT, Build, Target, getatt_names, resource_refs

INTERNET = "internet"

# A satellite joins the resource it names; owners in order of preference.
_FOLD_INTO_NAMED: dict[str, tuple[str, ...]] = {
    "AWS::EC2::SubnetRouteTableAssociation": ("AWS::EC2::Subnet",),
    "AWS::EC2::Route": ("AWS::EC2::RouteTable",),
    "AWS::EC2::VPCGatewayAttachment": ("AWS::EC2::InternetGateway",),
    "AWS::S3::BucketPolicy": ("AWS::S3::Bucket",),
    "AWS::EFS::MountTarget": ("AWS::EFS::FileSystem",),
    "AWS::EFS::AccessPoint": ("AWS::EFS::FileSystem",),
    "AWS::ApplicationAutoScaling::ScalableTarget": ("AWS::ECS::Service",),
    "AWS::ApplicationAutoScaling::ScalingPolicy": ("AWS::ApplicationAutoScaling::ScalableTarget",),
    "AWS::KMS::Alias": ("AWS::KMS::Key",),
    "AWS::SNS::Subscription": ("AWS::SNS::Topic",),
    "AWS::SNS::TopicPolicy": ("AWS::SNS::Topic",),
    "AWS::CloudWatch::Alarm": ("AWS::SNS::Topic",),
    "AWS::Chatbot::SlackChannelConfiguration": ("AWS::SNS::Topic",),
    "AWS::ElasticLoadBalancingV2::ListenerRule": ("AWS::ElasticLoadBalancingV2::Listener",),
    "AWS::ElasticLoadBalancingV2::ListenerCertificate": ("AWS::ElasticLoadBalancingV2::Listener",),
    "AWS::ECS::ClusterCapacityProviderAssociations": ("AWS::ECS::Cluster",),
    "AWS::Lambda::Permission": ("AWS::Lambda::Function",),
    "AWS::EC2::VolumeAttachment": ("AWS::EC2::Volume",),
    "AWS::IAM::Policy": ("AWS::IAM::Role",),
    "AWS::Logs::MetricFilter": ("AWS::Logs::LogGroup",),
    "AWS::Logs::SubscriptionFilter": ("AWS::Logs::LogGroup",),
}
# A satellite joins the only node that names it (a shared one stays a node of its own).
_FOLD_INTO_USER = {
    "AWS::ECS::TaskDefinition",
    "AWS::Logs::LogGroup",
    "AWS::IAM::Role",
    "AWS::IAM::InstanceProfile",
    "AWS::ServiceDiscovery::Service",
    "AWS::RDS::DBSubnetGroup",
    "AWS::RDS::DBParameterGroup",
    "AWS::ElastiCache::SubnetGroup",
    "AWS::ElastiCache::ParameterGroup",
    "AWS::EC2::EIP",
    "AWS::CertificateManager::Certificate",
    "AWS::KMS::Key",
    "AWS::EC2::LaunchTemplate",
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::ECS::CapacityProvider",
}
# References drawn the way requests travel (the ALB forwards to its listener, a target group to the service).
_FLOW_DIRECTION = {
    ("AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::LoadBalancer"): "LoadBalancerArn",
    ("AWS::ECS::Service", "AWS::ElasticLoadBalancingV2::TargetGroup"): "LoadBalancers",
}
_TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"
_REQUEST_PATH = {
    ("AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ElasticLoadBalancingV2::Listener"),
    ("AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::TargetGroup"),
    ("AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::ECS::Service"),
    ("AWS::Route53::RecordSet", "AWS::ElasticLoadBalancingV2::LoadBalancer"),
}
_PERMISSION_TYPES = {"AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
"""A role names what it may use; that is no ownership and no dependency worth an edge."""
_REGISTRY_TYPES = {"AWS::ECS::ClusterCapacityProviderAssociations"}
"""These name a resource to register it somewhere; its owner is whoever else uses it."""
STORE_TYPES = {
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::EFS::FileSystem",
    "AWS::S3::Bucket",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::CacheCluster",
    "AWS::DynamoDB::Table",
    "AWS::EC2::Volume",
}
ARCHITECTURE_LEGEND = (
    "orange: request path (internet -> load balancer -> target group -> service -> data)\n"
    "blue: security-group flow with its port (dashed: one side's rule missing); grey: references\n"
    "dashed between stacks: outputs the root passes as parameters"
)
SECURITY_LEGEND = (
    "who may open connections to whom, on which port, from the security groups' rules\n"
    "dashed: only one side's rule (ingress or egress) allows it; internet (outbound): egress to anywhere"
)
HUB_REFERRERS = 4
"""A node named by this many nodes of its stack (VPC, cluster, shared role) gets "used by N", not N edges."""
COLLAPSE = 3
"""This many unconnected nodes of one type in a stack (secrets, dashboards) become one node."""


@dataclass
class Node:
    """One box: a resource with its folded satellites, a collapsed set, a group, or the internet."""

    key: str
    stack: str
    lines: list[str]
    type: str = ""
    az: int | None = None
    status: str = ""
    """``added``, ``removed``, ``changed`` (with --compare-to) or empty."""
    path: bool = False


@dataclass
class Edge:
    """``ref`` (Ref/GetAtt/DependsOn), ``traffic`` (a security-group flow, label = port), ``member``."""

    src: str
    dst: str
    kind: str
    label: str = ""
    path: bool = False
    status: str = ""
    dashed: bool = False

    @property
    def ident(self) -> tuple[str, str, str, str]:
        """What identifies the edge when two builds are compared."""
        return (self.src, self.dst, self.kind, self.label)


@dataclass
class Graph:
    """What a renderer draws."""

    title: str
    stacks: list[str]
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    legend: str = ""
    wiring: list[Edge] = field(default_factory=list)
    """Stack -> stack (or ``root`` parameters -> stack): the root passes outputs as parameters."""


def _key(target: Target) -> str:
    return f"{target[0]}/{target[1]}"


class _Folder:
    """Maps every resource to the node it is drawn in."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.refs: dict[Target, set[Target]] = {}
        self.users: dict[Target, set[Target]] = defaultdict(set)
        for stack in build.stacks:
            for lid, res in build.resources(stack).items():
                if res.get("Type") in security.RULE_TYPES:
                    continue
                mine = {t for t in resource_refs(build, stack, res) if t[0] == stack and t != (stack, lid)}
                self.refs[(stack, lid)] = mine
                for t in mine:
                    self.users[t].add((stack, lid))
        self._owner: dict[Target, Target] = {}
        self._busy: set[Target] = set()

    def type_of(self, target: Target) -> str:
        return self.build.resources(target[0]).get(target[1], {}).get("Type", "")

    def owner(self, target: Target) -> Target:
        """The resource whose node ``target`` is drawn in (itself when not folded)."""
        if target in self._owner:
            return self._owner[target]
        if target in self._busy:
            return target  # asked while deciding ``target`` itself: answered provisionally, not cached
        self._busy.add(target)
        into = self._fold_target(target)
        self._busy.discard(target)
        result = self.owner(into) if into and into != target else target
        if not self._busy:
            self._owner[target] = result
        return result

    def _fold_target(self, target: Target) -> Target | None:
        type_ = self.type_of(target)
        for owner_type in _FOLD_INTO_NAMED.get(type_, ()):
            named = sorted(t for t in self.refs.get(target, ()) if self.type_of(t) == owner_type)
            if named:
                return named[0]
        if type_ in _FOLD_INTO_USER:
            users = {
                self.owner(u)
                for u in self.users.get(target, ())
                if u not in self._busy and self.type_of(u) not in _PERMISSION_TYPES | _REGISTRY_TYPES
            }
            users.discard(target)
            if len(users) == 1:
                return users.pop()
        return None


def build_graph(build: Build, env: str, view: str) -> Graph:
    """The graph of one build: ``view`` is ``architecture`` (everything) or ``security`` (flows only)."""
    folder = _Folder(build)
    graph = Graph(f"{env}: {'security groups, who may talk to whom' if view == 'security' else 'architecture'}", [])
    graph.stacks = list(build.stacks)
    members: dict[Target, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for target in folder.refs:
        members[folder.owner(target)].append((target[1], build.resources(target[0])[target[1]]))
    for owner, items in members.items():
        items.sort(key=lambda m: m[0] != owner[1])
        res_type = build.resources(owner[0])[owner[1]].get("Type", "")
        graph.nodes[_key(owner)] = Node(_key(owner), owner[0], labels.label(owner[1], items), res_type)
    _set_azs(build, folder, graph)
    group_node = _traffic(build, folder, graph)
    if view == "security":
        graph.legend = SECURITY_LEGEND
        _keep_security(graph, group_node)
    else:
        graph.legend = ARCHITECTURE_LEGEND
        _references(build, folder, graph)
        _mark_path(graph)
        _collapse(graph)
        graph.wiring = _wiring(build)
    return graph


def _set_azs(build: Build, folder: _Folder, graph: Graph) -> None:
    """Subnets by their ``Fn::Select`` index of ``Fn::GetAZs``; a node tied to subnets of one AZ joins it."""
    subnet_az: dict[Target, int] = {}
    for target in folder.refs:
        res = build.resources(target[0])[target[1]]
        az = (res.get("Properties") or {}).get("AvailabilityZone")
        select = az.get("Fn::Select") if isinstance(az, dict) else None
        if res.get("Type") == "AWS::EC2::Subnet" and isinstance(select, list) and str(select[0]).isdigit():
            subnet_az[target] = int(select[0])
            graph.nodes[_key(folder.owner(target))].az = subnet_az[target]
    for target in folder.refs:
        owner = folder.owner(target)
        node = graph.nodes[_key(owner)]
        if node.az is not None or owner in subnet_az:
            continue
        near = {subnet_az[t] for t in folder.refs[target] | folder.users.get(target, set()) if t in subnet_az}
        near |= {subnet_az[folder.owner(u)] for u in folder.users.get(target, set()) if folder.owner(u) in subnet_az}
        if len(near) == 1 and node.type in ("AWS::EC2::NatGateway", "AWS::EC2::RouteTable"):
            node.az = near.pop()


def _traffic(build: Build, folder: _Folder, graph: Graph) -> dict[Target, str]:
    """Traffic edges from the security groups' flows; returns group -> node key it is drawn as."""
    placed = security.members(build)
    group_node: dict[Target, str] = {}
    for group, res in security.groups(build).items():
        owners = sorted({_key(folder.owner(m)) for m in placed.get(group, [])})
        if len(owners) == 1:
            group_node[group] = owners[0]
            continue
        desc = str((res.get("Properties") or {}).get("GroupDescription", labels.humanize(group[1])))
        key = _key(group)
        lines = ["security group", *textwrap.wrap(desc.split(":")[0], 36)]
        if owners:
            lines.append("for " + ", ".join(graph.nodes[o].lines[0].removesuffix(" service") for o in owners))
        graph.nodes[key] = Node(key, group[0], lines, security.GROUP)
        group_node[group] = key
        graph.edges += [Edge(o, key, "member", "in", dashed=True) for o in owners]
    ports: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for flow in security.flows(build):
        src = _endpoint(graph, group_node, flow.src, outbound=False)
        dst = _endpoint(graph, group_node, flow.dst, outbound=True)
        half = "" if flow.ingress and flow.egress else (" (ingress only)" if flow.ingress else " (egress only)")
        ports[(src, dst, half)].append(flow.port)
    for (src, dst, half), found in ports.items():
        text = ", ".join(sorted(set(found), key=lambda p: (not p[:1].isdigit(), len(p), p)))
        graph.edges.append(Edge(src, dst, "traffic", text + half, dashed=bool(half)))
    return group_node


def _endpoint(graph: Graph, group_node: dict[Target, str], target: Target, outbound: bool) -> str:
    if target in group_node:
        return group_node[target]
    if target[1] in security.ANYWHERE:
        key, text = (f"{INTERNET}-out", "internet (outbound)") if outbound else (INTERNET, "internet")
    else:
        key, text = f"cidr/{target[1]}", target[1]
    if key not in graph.nodes:
        graph.nodes[key] = Node(key, "", [text], "external")
    return key


def _keep_security(graph: Graph, group_node: dict[Target, str]) -> None:
    keep = {e.src for e in graph.edges} | {e.dst for e in graph.edges} | set(group_node.values())
    graph.nodes = {k: n for k, n in graph.nodes.items() if k in keep}
    graph.edges = [e for e in graph.edges if e.kind in ("traffic", "member")]
    for node in graph.nodes.values():
        node.az = None


def _references(build: Build, folder: _Folder, graph: Graph) -> None:
    """In-stack reference edges between nodes, and the request path's across stacks; hubs get a count."""
    flows = _flow_pairs(build, folder)
    pairs: set[tuple[str, str]] = set()
    for target, refs in folder.refs.items():
        src = _key(folder.owner(target))
        for ref in refs:
            dst = _key(folder.owner(ref))
            if src != dst and dst in graph.nodes and (src, dst) not in flows:
                pairs.add((src, dst))
    pairs = {(s, d) for s, d in pairs if graph.nodes[s].type not in _PERMISSION_TYPES}
    users: dict[str, set[str]] = defaultdict(set)
    for src, dst in pairs:
        kinds = (graph.nodes[src].type, graph.nodes[dst].type)
        if graph.nodes[src].stack == graph.nodes[dst].stack and kinds not in _REQUEST_PATH:
            users[dst].add(src)
    for dst, srcs in users.items():
        if len(srcs) >= HUB_REFERRERS:
            graph.nodes[dst].lines.append(f"used by {len(srcs)}")
    for src, dst in sorted(pairs):
        if len(users.get(dst, ())) < HUB_REFERRERS:
            graph.edges.append(Edge(src, dst, "ref"))
    graph.edges += [Edge(dst, src, "ref") for src, dst in sorted(flows)]  # drawn the way requests go


def _flow_pairs(build: Build, folder: _Folder) -> set[tuple[str, str]]:
    """(node, node) pairs along which requests travel.

    Only a resource's own property counts: a listener's load balancer, a service's
    ``LoadBalancers`` target groups; not any mention (a dashboard's metric dimension, say).
    """
    found: set[tuple[str, str]] = set()
    for target in folder.refs:
        res = build.resources(target[0])[target[1]]
        for (src_type, dst_type), prop in _FLOW_DIRECTION.items():
            if res.get("Type") != src_type:
                continue
            for other in build.refs(target[0], (res.get("Properties") or {}).get(prop)):
                if other in folder.refs and folder.type_of(other) == dst_type:
                    found.add((_key(folder.owner(target)), _key(folder.owner(other))))
    return found


def _mark_path(graph: Graph) -> None:
    """The request path: internet -> load balancer -> listener -> target group -> service -> data."""
    out: dict[str, list[Edge]] = defaultdict(list)
    for edge in graph.edges:
        pair = (graph.nodes[edge.src].type, graph.nodes[edge.dst].type)
        if (
            (edge.kind == "traffic" and not edge.dashed)
            or (edge.kind == "ref" and pair in _REQUEST_PATH)
            or (edge.kind == "member" and graph.nodes[edge.dst].type == security.GROUP)
        ):
            out[edge.src].append(edge)
    for edge in graph.edges:  # a DNS name in front of the load balancer is an entry too
        if edge.kind == "ref" and graph.nodes[edge.src].type == "AWS::Route53::RecordSet":
            out[INTERNET].append(Edge(INTERNET, edge.src, "path"))
    seen, todo = {INTERNET}, [INTERNET]
    while todo:
        for edge in out.get(todo.pop(), []):
            if edge.kind == "traffic" and graph.nodes[edge.dst].type == "external":
                continue  # egress to the internet is not part of a request
            edge.path = True
            if edge.dst not in seen:
                seen.add(edge.dst)
                todo.append(edge.dst)
    for key in seen:
        if key in graph.nodes:
            graph.nodes[key].path = True
    graph.edges = [e for e in graph.edges if not _redundant(graph, e)]
    linked = {e.src for e in graph.edges} | {e.dst for e in graph.edges}
    graph.nodes = {k: n for k, n in graph.nodes.items() if n.type != "external" or k in linked}


def _redundant(graph: Graph, edge: Edge) -> bool:
    """Whether a flow is drawn elsewhere already.

    The load balancer's flow to a service it reaches through a target group, and egress to the
    internet (the security view shows it).
    """
    if edge.kind != "traffic":
        return False
    if graph.nodes[edge.dst].type == "external":
        return True
    if graph.nodes[edge.src].type != "AWS::ElasticLoadBalancingV2::LoadBalancer":
        return False
    return any(e.dst == edge.dst and e.path and graph.nodes[e.src].type == _TARGET_GROUP for e in graph.edges)


def _collapse(graph: Graph) -> None:
    linked = {e.src for e in graph.edges} | {e.dst for e in graph.edges}
    by_type: dict[tuple[str, str], list[Node]] = defaultdict(list)
    for node in graph.nodes.values():
        if node.key not in linked and node.stack and node.type:
            by_type[(node.stack, node.type)].append(node)
    for (stack, type_), nodes in by_type.items():
        if len(nodes) < COLLAPSE:
            continue
        names = sorted(n.lines[0].split(" (")[0] for n in nodes)
        noun = labels.short_type(type_)
        key = f"{stack}/{noun}*"
        for n in nodes:
            del graph.nodes[n.key]
        graph.nodes[key] = Node(key, stack, [f"{len(nodes)} {labels.humanize(noun)}s", ", ".join(names)], type_)


def _wiring(build: Build) -> list[Edge]:
    """Which stack's outputs the root passes to which stack (and the root's own parameters)."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for child in build.stacks:
        for name, value in build.wiring(child).items():
            sources = {build.stack_of[lid] for lid in getatt_names(value) if lid in build.stack_of}
            sources |= {ROOT for stack, _ in build.refs(ROOT, value) if stack == ROOT}
            for source in sources - {child}:
                found[(source, child)].add(name)
    edges = []
    for (src, dst), names in sorted(found.items()):
        shown = sorted(names)
        text = ", ".join(shown) if len(shown) <= 2 else f"{len(shown)} outputs"
        edges.append(Edge(f"stack/{src}", f"stack/{dst}", "wiring", text, dashed=True))
    return edges
