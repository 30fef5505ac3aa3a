"""Prometheus' targets from Cloud Map's API: a discovery sidecar in the prometheus task.

Cloud Map's DNS answers a MULTIVALUE query with at most eight records
(https://docs.aws.amazon.com/cloud-map/latest/api/API_DnsConfig.html), and the backend scales
to ten. Prometheus has no Cloud Map or ECS service discovery (its ``*_sd_config`` list:
https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config), so a
sidecar (the AWS CLI image) runs ``kr_cfn/scripts/prometheus_discovery.sh``: every 30 s it asks
``DiscoverInstances`` for every scraped service and writes Prometheus ``file_sd`` JSON into a task
volume the prometheus container reads (kr_cfn.config.grafana.scrape_jobs names the files).

The sidecar is not essential: if it stops, Prometheus keeps scraping the last targets it wrote.
Its role may call only ``servicediscovery:DiscoverInstances`` in this environment's namespace
(the action has no resource type; ``servicediscovery:NamespaceName`` narrows it:
https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudmap.html).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from awacs import servicediscovery as sd_actions
from awacs.aws import Allow, Condition, PolicyDocument, Statement, StringEquals
from troposphere import AWS_REGION, Ref, Template, ecs, iam

from kr_cfn.config.grafana import PROMETHEUS, SD_DIR, scraped
from kr_cfn.config.services import EcsSlice
from kr_cfn.naming import pascal
from kr_cfn.services import Inputs, resolve

CONTAINER = "discovery"
VOLUME = "file-sd"
INTERVAL_SECONDS = 30


def script() -> str:
    """The sidecar's loop (kr_cfn/scripts/prometheus_discovery.sh)."""
    return resources.files("kr_cfn.scripts").joinpath("prometheus_discovery.sh").read_text(encoding="utf-8")


def targets(cfg: EcsSlice, inputs: Inputs) -> Any:
    """``JOB=SERVICE.NAMESPACE:PORT ...`` of every scraped service, from the same ``{{host:}}`` as DNS had."""
    text = " ".join(f"{name}={{{{host:{name}}}}}:{{{{port:{name}}}}}" for name in scraped(cfg.services))
    return resolve(text, cfg, inputs)


def add_sidecar(t: Template, cfg: EcsSlice, inputs: Inputs, log_group: Any) -> None:
    """Add the discovery container, the shared volume and the DiscoverInstances grant to prometheus' task."""
    if PROMETHEUS not in cfg.services or not scraped(cfg.services):
        return
    p = pascal(PROMETHEUS)
    task = t.resources[f"{p}TaskDefinition"]
    task.Volumes = [*task.properties.get("Volumes", []), ecs.Volume(Name=VOLUME)]
    (prometheus,) = task.ContainerDefinitions
    prometheus.MountPoints = [
        *prometheus.properties.get("MountPoints", []),
        ecs.MountPoint(SourceVolume=VOLUME, ContainerPath=SD_DIR, ReadOnly=True),
    ]
    task.ContainerDefinitions = [
        prometheus,
        ecs.ContainerDefinition(
            Name=CONTAINER,
            Image=cfg.ecs.discovery_image,
            Essential=False,
            EntryPoint=["/bin/bash", "-c", 'exec /bin/bash -c "$KR_SD_SCRIPT" kr-discovery "$@"', "kr-discovery"],
            Environment=[
                ecs.Environment(Name="KR_SD_SCRIPT", Value="#!/bin/bash\n" + script()),
                ecs.Environment(Name="KR_SD_TARGETS", Value=targets(cfg, inputs)),
                ecs.Environment(Name="KR_SD_DIR", Value=SD_DIR),
                ecs.Environment(Name="KR_SD_INTERVAL", Value=str(INTERVAL_SECONDS)),
            ],
            MountPoints=[ecs.MountPoint(SourceVolume=VOLUME, ContainerPath=SD_DIR, ReadOnly=False)],
            # root owns the task volume; no capability is needed to write it, none is kept.
            User="0",
            ReadonlyRootFilesystem=True,
            LinuxParameters=ecs.LinuxParameters(Capabilities=ecs.KernelCapabilities(Drop=["ALL"])),
            LogConfiguration=ecs.LogConfiguration(
                LogDriver="awslogs",
                Options={
                    "awslogs-group": Ref(log_group),
                    "awslogs-region": Ref(AWS_REGION),
                    "awslogs-stream-prefix": CONTAINER,
                },
            ),
        ),
    ]
    role = t.resources[f"{p}TaskRole"]
    policies = [*role.properties.get("Policies", [])]
    policies.append(
        iam.Policy(
            PolicyName="prometheus-discovery",
            PolicyDocument=PolicyDocument(
                Version="2012-10-17",
                Statement=[
                    Statement(
                        Effect=Allow,
                        Action=[sd_actions.DiscoverInstances],
                        # "*": DiscoverInstances has no resource type; the namespace condition key scopes it
                        # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudmap.html).
                        Resource=["*"],
                        Condition=Condition(StringEquals("servicediscovery:NamespaceName", cfg.ecs.namespace)),
                    )
                ],
            ),
        )
    )
    role.Policies = policies
