"""The stacks of one environment: the registry of nested stacks and ``build_all``.

Adding a stack = one module with ``build(slice) -> Template`` and one entry in ``CHILDREN``.
The order is the order of the root's resources; CloudFormation derives the deploy order
from the Outputs -> Parameters wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from troposphere import Template

from kr_cfn import config
from stacks import alb, bootstrap, data, ecs, monitoring, network, root


@dataclass(frozen=True)
class Child:
    """A nested stack of the root."""

    name: str
    logical_id: str
    build: Callable[[config.EnvConfig], Template]
    root_outputs: tuple[str, ...] = ()


CHILDREN: tuple[Child, ...] = (
    Child("network", "NetworkStack", lambda cfg: network.build(config.network_slice(cfg)), ("VpcId",)),
    Child("data", "DataStack", lambda cfg: data.build(config.data_slice(cfg))),
    Child("alb", "AlbStack", lambda cfg: alb.build(config.alb_slice(cfg)), ("AppUrl", "AlbDnsName")),
    Child("ecs", "EcsStack", lambda cfg: ecs.build(config.ecs_slice(cfg)), ("ClusterName",)),
    Child("monitoring", "MonitoringStack", lambda cfg: monitoring.build(config.monitoring_slice(cfg))),
)


def build_all(cfg: config.EnvConfig, ext: str = "yaml") -> dict[str, Template]:
    """Every template of one environment, root first: ``{"root": ..., "network": ..., "bootstrap": ...}``."""
    children = [root.ChildTemplate(c.name, c.logical_id, c.build(cfg), c.root_outputs) for c in CHILDREN]
    templates = {"root": root.build(config.root_slice(cfg), children, ext)}
    templates.update({c.name: c.template for c in children})
    # Not a child of the root: deployed once per account, region and environment before it.
    templates["bootstrap"] = bootstrap.build(config.bootstrap_slice(cfg))
    return templates
