"""Prometheus sees every backend task: the discovery sidecar against Cloud Map on the local endpoint.

The sidecar's entry point, script and targets are taken from the built ecs template and run
with the AWS CLI (``$KR_CFN_AWSCLI``, ``.venv-awscli`` or ``PATH``, as tests/test_qdrant_snapshots.py)
against moto's Cloud Map, where ten backend tasks are registered: more than the eight a
MULTIVALUE DNS answer holds. botocore prefixes DiscoverInstances' host with ``data-``
(its endpoint, data-servicediscovery.<region>.amazonaws.com); a local endpoint has no such name,
so the test turns the prefix off (``AWS_DISABLE_HOST_PREFIX_INJECTION``, botocore's config).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from kr_cfn import discovery
from kr_cfn.config.grafana import SD_DIR
from tests import aws_endpoint
from tests.conftest import built
from tests.policy_eval import Request, evaluate
from tests.test_qdrant_snapshots import _aws_cli

REGION = "eu-central-1"
moto_url = aws_endpoint.moto_url_fixture(REGION)


def _task(env: str) -> dict[str, Any]:
    return built(env)["ecs"]["Resources"]["PrometheusTaskDefinition"]["Properties"]


def _sidecar(env: str) -> dict[str, Any]:
    (c,) = [c for c in _task(env)["ContainerDefinitions"] if c["Name"] == discovery.CONTAINER]
    return c


def _targets(env: str) -> dict[str, tuple[str, str, int]]:
    """job -> (Cloud Map service, namespace, port) as the sidecar is told."""
    env_vars = {e["Name"]: e["Value"] for e in _sidecar(env)["Environment"]}
    out = {}
    for spec in env_vars["KR_SD_TARGETS"].split():
        job, address = spec.split("=")
        host, port = address.rsplit(":", 1)
        service, namespace = host.split(".", 1)
        out[job] = (service, namespace, int(port))
    return out


def _run(aws_cli: Path, url: str, env: str, sd_dir: Path) -> subprocess.CompletedProcess[str]:
    """The sidecar's entry point as in the task definition, one round (argument ``once``)."""
    c = _sidecar(env)
    variables = {e["Name"]: e["Value"] for e in c["Environment"]}
    variables["KR_SD_DIR"] = str(sd_dir)
    environ = {
        **variables,
        "PATH": f"{aws_cli.parent}:{os.environ['PATH']}",
        "HOME": str(sd_dir.parent),
        "AWS_ENDPOINT_URL": url,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    return subprocess.run(
        [*c["EntryPoint"], "once"], env=environ, capture_output=True, text=True, check=False, timeout=120
    )


def _register(namespace: str, service: str, count: int) -> list[str]:
    sd = boto3.client("servicediscovery", region_name=REGION)
    namespaces = {n["Name"]: n["Id"] for n in sd.list_namespaces()["Namespaces"]}
    if namespace not in namespaces:
        sd.create_private_dns_namespace(Name=namespace, Vpc="vpc-0a1b2c3d")
        namespaces = {n["Name"]: n["Id"] for n in sd.list_namespaces()["Namespaces"]}
    service_id = sd.create_service(
        Name=service,
        NamespaceId=namespaces[namespace],
        DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}], "RoutingPolicy": "MULTIVALUE"},
    )["Service"]["Id"]
    ips = [f"10.0.11.{10 + i}" for i in range(count)]
    for i, ip in enumerate(ips):
        attributes = {"AWS_INSTANCE_IPV4": ip}
        sd.register_instance(ServiceId=service_id, InstanceId=f"task-{service}-{i}", Attributes=attributes)
    return ips


def test_prometheus_scrapes_all_ten_backend_tasks(moto_url: str, tmp_path: Path) -> None:
    aws_cli = _aws_cli()
    if aws_cli is None:
        pytest.skip("no AWS CLI (bash .ci/tools installs .venv-awscli)")
    aws_endpoint.reset(moto_url)
    targets = _targets("prod")
    assert set(targets) == {"backend", "qdrant"}
    service, namespace, port = targets["backend"]
    backend_ips = _register(namespace, service, 10)
    qdrant_ips = _register(namespace, targets["qdrant"][0], 1)
    sd_dir = tmp_path / "sd"
    sd_dir.mkdir()
    proc = _run(aws_cli, moto_url, "prod", sd_dir)
    assert proc.returncode == 0, proc.stderr
    (group,) = json.loads((sd_dir / "backend.json").read_text())
    assert sorted(group["targets"]) == sorted(f"{ip}:{port}" for ip in backend_ips)
    assert len(group["targets"]) == 10
    (group,) = json.loads((sd_dir / "qdrant.json").read_text())
    assert group["targets"] == [f"{qdrant_ips[0]}:6333"]
    assert sorted(p.name for p in sd_dir.iterdir()) == ["backend.json", "qdrant.json"]  # no temp file left
    # The files are the ones Prometheus' scrape jobs read, in the volume both containers mount.
    jobs = _scrape_jobs("prod")
    for job in ("backend", "qdrant"):
        assert jobs[job]["file_sd_configs"] == [{"files": [f"{SD_DIR}/{job}.json"], "refresh_interval": "1m"}]
        assert "dns_sd_configs" not in jobs[job]
    mounts = {c["Name"]: c["MountPoints"] for c in _task("prod")["ContainerDefinitions"]}
    assert mounts["prometheus"][-1] == {"SourceVolume": discovery.VOLUME, "ContainerPath": SD_DIR, "ReadOnly": True}
    writable = {"SourceVolume": discovery.VOLUME, "ContainerPath": SD_DIR, "ReadOnly": False}
    assert mounts[discovery.CONTAINER] == [writable]


def test_a_failed_lookup_keeps_the_last_targets(moto_url: str, tmp_path: Path) -> None:
    aws_cli = _aws_cli()
    if aws_cli is None:
        pytest.skip("no AWS CLI (bash .ci/tools installs .venv-awscli)")
    aws_endpoint.reset(moto_url)  # no namespace at all: every lookup fails
    sd_dir = tmp_path / "sd"
    sd_dir.mkdir()
    last = '[{"targets": ["10.0.11.10:8000"], "labels": {}}]'
    (sd_dir / "backend.json").write_text(last)
    proc = _run(aws_cli, moto_url, "dev", sd_dir)
    assert proc.returncode == 1
    assert "discovery of backend" in proc.stderr and "keeps the last targets" in proc.stderr
    assert (sd_dir / "backend.json").read_text() == last
    assert sorted(p.name for p in sd_dir.iterdir()) == ["backend.json"]


def _scrape_jobs(env: str) -> dict[str, dict[str, Any]]:
    (c,) = [c for c in _task(env)["ContainerDefinitions"] if c["Name"] == "prometheus"]
    variables = {e["Name"]: e["Value"] for e in c["Environment"]}
    (name,) = [k for k in variables if k.startswith("KR_FILE_")]
    return {j["job_name"]: j for j in yaml.safe_load(variables[name])["scrape_configs"]}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_sidecar_may_list_only_its_own_namespace(env: str) -> None:
    templates = built(env)
    role = templates["ecs"]["Resources"]["PrometheusTaskRole"]["Properties"]
    policies = {p["PolicyName"]: p["PolicyDocument"] for p in role["Policies"]}
    boundary = templates["bootstrap"]["Resources"]["ApplicationPermissionsBoundary"]["Properties"]["PolicyDocument"]
    (_, namespace, _) = _targets(env)["backend"]
    request = Request("servicediscovery:DiscoverInstances", "*", {"servicediscovery:NamespaceName": namespace})
    assert evaluate(request, policies, _plain(boundary)).allowed
    other = Request("servicediscovery:DiscoverInstances", "*", {"servicediscovery:NamespaceName": "other.local"})
    assert not evaluate(other, policies, _plain(boundary)).allowed
    assert not evaluate(Request("servicediscovery:RegisterInstance", "*"), policies, _plain(boundary)).allowed


def _plain(policy: Any) -> Any:
    """The boundary with its Fn::Sub ARNs as plain strings (only the DiscoverInstances statement matters here)."""
    if isinstance(policy, list):
        return [_plain(p) for p in policy]
    if isinstance(policy, dict):
        if set(policy) == {"Fn::Sub"}:
            return policy["Fn::Sub"]
        return {k: _plain(v) for k, v in policy.items()}
    return policy
