"""Prometheus scrapes itself and every rendered service with a metrics_path; retention from params."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import stacks
from kr_cfn import config
from tests.conftest import ENVS, built, load_env, write_params
from tests.test_security_groups import _reachable

EXTERNAL_QDRANT = """\
services:
  qdrant: null
  backend:
    environment:
      QDRANT_HOST: kr-cluster.eu-central.aws.cloud.qdrant.io
      QDRANT_PORT: "6333"
      QDRANT_URL: https://kr-cluster.eu-central.aws.cloud.qdrant.io:6333
"""


def _container(templates: dict[str, Any]) -> dict[str, Any]:
    containers = templates["ecs"]["Resources"]["PrometheusTaskDefinition"]["Properties"]["ContainerDefinitions"]
    (c,) = [c for c in containers if c["Name"] == "prometheus"]
    return c


def _jobs(templates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    env = {e["Name"]: e["Value"] for e in _container(templates)["Environment"]}
    (name,) = [k for k in env if k.startswith("KR_FILE_")]
    assert f'"${name}" > /etc/prometheus/prometheus.yml' in _container(templates)["EntryPoint"][2]
    return {j["job_name"]: j for j in yaml.safe_load(env[name])["scrape_configs"]}


def _sidecar_targets(templates: dict[str, Any]) -> list[str]:
    containers = templates["ecs"]["Resources"]["PrometheusTaskDefinition"]["Properties"]["ContainerDefinitions"]
    (c,) = [c for c in containers if c["Name"] == "discovery"]
    return {e["Name"]: e["Value"] for e in c["Environment"]}["KR_SD_TARGETS"].split()


def _build(tmp_path: Path, text: str) -> dict[str, dict[str, Any]]:
    return {n: t.to_dict() for n, t in stacks.build_all(config.load(write_params(tmp_path, "dev", text))).items()}


@pytest.mark.parametrize("env", ENVS)
def test_prometheus_scrapes_itself_the_backend_and_qdrant(env: str) -> None:
    jobs = _jobs(built(env))
    assert list(jobs) == ["prometheus", "backend", "qdrant"]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]
    namespace = config.namespace(load_env(env))  # dev, staging: '<prefix>.local'; prod: 'knowledge.local'
    for job, port in (("backend", 8000), ("qdrant", 6333)):
        assert jobs[job]["metrics_path"] == "/metrics"
        # Every task, from the discovery sidecar's file (tests/test_prometheus_discovery.py runs it).
        assert jobs[job]["file_sd_configs"] == [{"files": [f"/etc/prometheus/sd/{job}.json"], "refresh_interval": "1m"}]
        assert f"{job}={job}.{namespace}:{port}" in _sidecar_targets(built(env))
    assert ("prometheus", "qdrant", 6333) in _reachable(built(env))


@pytest.mark.parametrize("env", ENVS)
def test_retention_comes_from_params_and_storage_is_the_task_s_own(env: str) -> None:
    command = _container(built(env))["Command"]
    assert [a for a in command if a.startswith("--storage.tsdb.retention.time=")] == [
        "--storage.tsdb.retention.time=15d"
    ]
    assert "--storage.tsdb.path=/prometheus" in command
    # no EFS (Prometheus does not support NFS): only the discovery sidecar's targets are mounted
    assert [m["SourceVolume"] for m in _container(built(env))["MountPoints"]] == ["file-sd"]


def test_qdrant_outside_the_cluster_is_not_scraped(tmp_path: Path) -> None:
    templates = _build(tmp_path, EXTERNAL_QDRANT)
    assert list(_jobs(templates)) == ["prometheus", "backend"]
    assert not {f for f in _reachable(templates) if "qdrant" in f[:2]}


def test_a_new_service_with_a_metrics_path_is_scraped(tmp_path: Path) -> None:
    text = "services:\n  redis:\n    metrics_path: /metrics\n"
    templates = _build(tmp_path, text)
    assert _jobs(templates)["redis"]["file_sd_configs"][0]["files"] == ["/etc/prometheus/sd/redis.json"]
    assert "redis=redis.knowledgerouter-dev.local:6379" in _sidecar_targets(templates)
    assert ("prometheus", "redis", 6379) in _reachable(templates)


def test_retention_from_params(tmp_path: Path) -> None:
    command = _container(_build(tmp_path, "monitoring:\n  prometheus_retention: 30d\n"))["Command"]
    assert command[-1] == "--storage.tsdb.retention.time=30d"
    assert sum(a.startswith("--storage.tsdb.retention.time=") for a in command) == 1


def test_bad_retention_is_named(tmp_path: Path) -> None:
    path = write_params(tmp_path, "dev", "monitoring:\n  prometheus_retention: 15 days\n")
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    assert str(exc.value) == (
        f"{path}: monitoring.prometheus_retention: string should match pattern '^[1-9][0-9]*(h|d|w|y)$', got '15 days'"
    )


def test_metrics_path_needs_a_discovery_name(tmp_path: Path) -> None:
    path = write_params(tmp_path, "dev", "services:\n  frontend:\n    metrics_path: /metrics\n")
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    assert str(exc.value) == (
        f"{path}: services.frontend.metrics_path: needs discovery_name (Prometheus finds the tasks in Cloud Map)"
    )
