"""The stacks of one environment: the registry of nested stacks and ``build_all``.

Adding a stack = one module with ``build(slice) -> Template`` and one entry in ``CHILDREN``.
The order is the order of the root's resources; CloudFormation derives the deploy order
from the Outputs -> Parameters wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from troposphere import Template

from kr_cfn import config
from kr_cfn.iam import dns_hosted_zones, dns_record_patterns, dynamic_references
from kr_cfn.output import template_dict
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
    app = application(list(templates.values()))
    templates["bootstrap"] = bootstrap.build(config.bootstrap_slice(cfg, app))
    return templates


def application(templates: list[Template]) -> config.Application:
    """What the bootstrap's roles are scoped to: nested stacks, resource types, buckets, role services, DNS names."""
    # Complete templates: their dicts are made once and reused when they are written (kr_cfn.output).
    dicts = [template_dict(t) for t in templates]
    named = [(lid, r) for t in dicts for lid, r in t.get("Resources", {}).items()]
    resources = [r for _, r in named]
    buckets: list[str] = []
    services: list[str] = []
    managed: list[str] = []
    secrets: list[str] = []
    databases: list[str] = []
    for r in resources:
        props: dict[str, Any] = r.get("Properties", {})
        if r["Type"] == "AWS::SecretsManager::Secret":
            secrets.append(_literal(props.get("Name"), "every application secret needs a Name"))
        if r["Type"] == "AWS::RDS::DBInstance" and props.get("ManageMasterUserPassword"):
            what = "a DB instance with an RDS-managed secret needs a DBInstanceIdentifier"
            databases.append(_literal(props.get("DBInstanceIdentifier"), what))
        if r["Type"] == "AWS::S3::Bucket":
            name = props.get("BucketName")
            if not (isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str)) and not isinstance(name, str):
                raise ValueError(f"every application bucket needs a BucketName (string or Fn::Sub), got {name!r}")
            buckets.append(name if isinstance(name, str) else name["Fn::Sub"])
        if r["Type"] == "AWS::IAM::Role":
            for statement in props["AssumeRolePolicyDocument"]["Statement"]:
                service = statement.get("Principal", {}).get("Service", [])
                services += [service] if isinstance(service, str) else service
            for policy in props.get("ManagedPolicyArns", []):
                # A Ref/GetAtt names a policy a stack makes: under the env's path (kr_cfn.iam.application_policy_arns).
                if isinstance(policy, str) or "Fn::Sub" in policy:
                    managed.append(policy if isinstance(policy, str) else policy["Fn::Sub"])
    return config.Application(
        children=tuple(c.logical_id for c in CHILDREN),
        resource_types=tuple(sorted({r["Type"] for r in resources})),
        bucket_names=tuple(sorted(set(buckets))),
        role_services=tuple(sorted(set(services))),
        managed_policies=tuple(sorted(set(managed))),
        record_names=dns_record_patterns(named),
        hosted_zones=dns_hosted_zones(named),
        secret_names=tuple(sorted(set(secrets))),
        db_instances=tuple(sorted(set(databases))),
        dynamic_references=dynamic_references(dicts),
    )


def _literal(value: Any, what: str) -> str:
    """A name the bootstrap's policies can name at build time (not a Ref or a Sub)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} (a literal string the bootstrap's policies can name), got {value!r}")
    return value
