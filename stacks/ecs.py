"""ECS stack: Fargate cluster, Cloud Map namespace and the services.

One builder renders each params entry (see kr_cfn.services) with its IAM role; each
service runs in its own security group from the network stack.
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, Template, ecs, iam, servicediscovery

from kr_cfn import discovery, qdrant, rotation
from kr_cfn.blocks import add_output, new_template
from kr_cfn.config import EcsSlice
from kr_cfn.config.grafana import PROMETHEUS
from kr_cfn.config.qdrant import QDRANT
from kr_cfn.iam import bounded
from kr_cfn.naming import pascal
from kr_cfn.services import (
    HostPlacement,
    Inputs,
    ecs_tasks_trust,
    execution_role_policy,
    render_service,
)

CLUSTER = "Cluster"
CAPACITY_PROVIDERS = "ClusterCapacityProviders"
NAMESPACE = "Namespace"
EXECUTION_ROLE = "ExecutionRole"


def build(cfg: EcsSlice) -> Template:
    """Build the ecs template."""
    t = new_template(f"{cfg.names.prefix}: ECS Fargate cluster and services")
    inputs = Inputs(t)
    cluster = t.add_resource(
        ecs.Cluster(
            CLUSTER,
            ClusterName=cfg.names("cluster"),
            ClusterSettings=[ecs.ClusterSetting(Name="containerInsights", Value=cfg.ecs.container_insights)],
        )
    )
    host: HostPlacement | None = None
    if cfg.qdrant and cfg.qdrant.storage == "ebs":
        host = qdrant.host(t, cfg, inputs, cluster, f"{pascal(QDRANT)}LogGroup")
    t.add_resource(
        ecs.ClusterCapacityProviderAssociations(
            CAPACITY_PROVIDERS,
            Cluster=Ref(cluster),
            CapacityProviders=["FARGATE", "FARGATE_SPOT", *([Ref(host.capacity_provider)] if host else [])],
            DefaultCapacityProviderStrategy=[ecs.CapacityProviderStrategy(CapacityProvider="FARGATE", Weight=1)],
        )
    )
    namespace = t.add_resource(
        servicediscovery.PrivateDnsNamespace(
            NAMESPACE,
            Name=cfg.ecs.namespace,
            Vpc=inputs.ref("VpcId"),
            Description=f"{cfg.names.prefix}: service discovery",
        )
    )
    rendered = [
        render_service(
            t,
            cfg,
            inputs,
            name,
            cluster,
            namespace,
            EXECUTION_ROLE,
            [CAPACITY_PROVIDERS],
            host if name == QDRANT else None,
        )
        for name in cfg.services
    ]
    if PROMETHEUS in cfg.services:
        discovery.add_sidecar(t, cfg, inputs, rendered[list(cfg.services).index(PROMETHEUS)].log_group)
    consumers = [
        rotation.Consumer(name, r.service)
        for name, r in zip(cfg.services, rendered, strict=True)
        if rotation.DB_SECRET_OUTPUT in r.secret_parameters
    ]
    if consumers:
        secret = inputs.ref(rotation.DB_SECRET_OUTPUT)
        rotation.redeploy_on_rotation(t, cfg.names.prefix, secret, cluster, consumers)
    job = None
    if cfg.qdrant and cfg.qdrant.storage != "external":
        spec = cfg.services[QDRANT]
        url = f"http://{spec.discovery_name}.{cfg.ecs.namespace}:{spec.port}"
        job = qdrant.snapshot_job(t, cfg, inputs, cluster, EXECUTION_ROLE, url)
    t.add_resource(
        iam.Role(
            EXECUTION_ROLE,
            AssumeRolePolicyDocument=ecs_tasks_trust(),
            **bounded(cfg.names.prefix),
            Policies=[
                iam.Policy(
                    PolicyName="task-execution",
                    PolicyDocument=execution_role_policy(rendered, inputs, [job.log_group] if job else []),
                )
            ],
        )
    )

    add_output(t, "ClusterName", Ref(cluster), "ECS cluster name")
    for name, r in zip(cfg.services, rendered, strict=True):
        add_output(t, f"{pascal(name)}ServiceName", GetAtt(r.service, "Name"), f"ECS service name of {name}")
        add_output(t, f"{pascal(name)}LogGroupName", Ref(r.log_group), f"Log group of {name}")
    if job:
        qdrant.snapshot_outputs(t, job)
    return t
