"""Who talks to whom: the network flows between the load balancer, the services and the data endpoints.

A flow is ``(source, destination, port)``; the network stack opens exactly these, one
security group per service, and nothing else between groups. The flows are derived from
each service's params, so a new service needs no code:

- ``{{host:x}}``, ``{{port:x}}``, ``{{tls:x}}`` in ``environment`` or ``files``: the service talks to ``x``
  (another service, or with ``data.redis: elasticache`` the ElastiCache endpoint ``redis``);
- ``{{output:DbEndpointAddress}}``/``{{output:DbEndpointPort}}`` or a ``DbSecretArn`` secret: to ``db``;
  ``{{output:RedisEndpoint...}}``: to ``redis`` (ElastiCache);
- an EFS ``volumes`` entry: to ``efs``;
- ``load_balancer``: the load balancer (``alb``) talks to the service;
- ``connects_to``: anything the above cannot see (e.g. a client that reads its URL from a secret).

A reference to itself (``localhost:{{port:prometheus}}`` in Prometheus' own config) is no flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kr_cfn.config.base import Problem
from kr_cfn.config.services import PLACEHOLDER, REDIS_OUTPUTS, ServiceSpec

ALB = "alb"
"""The load balancer, as a flow source."""


@dataclass(frozen=True)
class Endpoint:
    """A data-stack endpoint behind its own security group in the network stack."""

    group: str
    """Logical id of its security group in the network stack (never change it)."""
    port: int
    description: str
    """GroupDescription (changing it replaces the group: keep it)."""
    tag: str
    """Name tag part of the group (``<prefix>-<tag>``)."""
    outputs: tuple[str, ...] = ()
    """Data outputs (``{{output:X}}`` or a secret) whose use means talking to this endpoint."""
    requires: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Params choices (``data.<key>``) under which the data stack provides it, e.g. ElastiCache only with
    ``{"redis": ("elasticache",)}``; empty = always."""


DATA_ENDPOINTS: dict[str, Endpoint] = {
    "db": Endpoint(
        "DatabaseSecurityGroup",
        5432,
        "PostgreSQL from the ECS tasks only",
        "db",
        ("DbEndpointAddress", "DbEndpointPort", "DbSecretArn"),
    ),
    "efs": Endpoint("FileSystemSecurityGroup", 2049, "NFS (EFS) from the ECS tasks only", "efs"),
    "redis": Endpoint(
        "CacheSecurityGroup",
        6379,
        "Redis (ElastiCache) from the ECS tasks only",
        "cache",
        REDIS_OUTPUTS,
        {"redis": ("elasticache",)},
    ),
}
"""Every data endpoint; a new one (another file system, a broker) is one entry here (with the ``data.*``
choice that provides it in ``requires``, passed in by :func:`kr_cfn.config.data_choices`) plus its
data-stack resource, which takes ``<group>Id`` as a Parameter."""

RESERVED_NAMES = (ALB, "db", "efs")
"""Names a service cannot take: they name the load balancer and the data endpoints in ``connects_to``."""


@dataclass(frozen=True)
class Flow:
    """``source`` may open TCP connections to ``destination`` on ``port``."""

    source: str
    destination: str
    port: int


def endpoints(choices: Mapping[str, str]) -> dict[str, Endpoint]:
    """The data endpoints the data stack provides with these ``data.*`` choices (``{"redis": "fargate"}``)."""
    return {
        n: e for n, e in DATA_ENDPOINTS.items() if all(choices.get(k) in allowed for k, allowed in e.requires.items())
    }


def _targets(name: str, spec: ServiceSpec, reachable: Mapping[str, Endpoint]) -> list[str]:
    """Everything ``name`` talks to, derived and declared, in order of first mention."""
    found: list[str] = []
    texts = [*spec.environment.values(), *spec.files.values()]
    for text in texts:
        for kind, ref in PLACEHOLDER.findall(text):
            if kind != "output":
                found.append(ref)
            found += [n for n, e in reachable.items() if ref in e.outputs]
    for s in spec.secrets.values():
        found += [n for n, e in reachable.items() if s.secret in e.outputs]
    if spec.volumes and spec.storage in (None, "efs"):  # qdrant's volume is on its host with storage ebs
        found.append("efs")
    found += spec.connects_to
    return [t for i, t in enumerate(found) if t != name and t not in found[:i]]


def service_flows(services: Mapping[str, ServiceSpec], choices: Mapping[str, str]) -> tuple[Flow, ...]:
    """Every flow of the rendered ``services`` with the ``data.*`` ``choices``, sorted.

    Call after :func:`check_connects_to` found no problem: unknown targets are skipped here.
    """
    reachable = endpoints(choices)
    flows = {Flow(ALB, n, s.port) for n, s in services.items() if s.load_balancer is not None}
    for name, spec in services.items():
        for target in _targets(name, spec, reachable):
            if target in services:
                flows.add(Flow(name, target, services[target].port))
            elif target in reachable:
                flows.add(Flow(name, target, reachable[target].port))
    return tuple(sorted(flows, key=lambda f: (f.source, f.destination)))


def check_connects_to(services: Mapping[str, ServiceSpec], choices: Mapping[str, str]) -> list[Problem]:
    """``connects_to`` names services with a discovery_name or data endpoints; no service takes a reserved name.

    ``services`` are the rendered ones (an endpoint such as ElastiCache replaces its service).
    """
    problems: list[Problem] = []
    reachable = endpoints(choices)
    rendered = set(services)
    discoverable = {n for n in rendered if services[n].discovery_name}
    known = sorted(discoverable | set(reachable))
    for name, spec in services.items():
        if name in RESERVED_NAMES:
            problems.append((name, f"{name!r} is reserved for the load balancer and data endpoints in connects_to"))
        for i, target in enumerate(spec.connects_to):
            key = f"{name}.connects_to[{i}]"
            if target == name:
                problems.append((key, "names the service itself"))
            elif target in rendered and target not in discoverable:
                problems.append((key, f"{target!r} has no discovery_name, so no other service can reach it"))
            elif target not in known:
                requires = DATA_ENDPOINTS[target].requires if target in DATA_ENDPOINTS else {}
                only = "; ".join(f"data.{k}: {' or '.join(v)}" for k, v in requires.items())
                why = f" (only with {only})" if only else ""
                problems.append(
                    (key, f"{target!r} is not a service or data endpoint{why} (one of: {', '.join(known)})")
                )
    return problems
