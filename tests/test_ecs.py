"""Property tests of the ecs stack, checked against the params they come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import stacks
from kr_cfn import config
from kr_cfn.naming import pascal
from tests.conftest import ENVS, ROOT, built, load_env, resources_of_type, write_params

SEVENTH = ROOT / "tests" / "fixtures" / "seventh-service" / "dev.yaml"


def _ecs(env: str) -> dict[str, Any]:
    return built(env)["ecs"]


def _rendered(env: str) -> dict[str, config.ServiceSpec]:
    return config.ecs_slice(load_env(env)).services


def _container(t: dict[str, Any], svc: str) -> dict[str, Any]:
    containers = t["Resources"][f"{pascal(svc)}TaskDefinition"]["Properties"]["ContainerDefinitions"]
    (c,) = [c for c in containers if c["Name"] == svc]  # prometheus also runs its discovery sidecar
    return c


def _env(t: dict[str, Any], svc: str) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in _container(t, svc).get("Environment", [])}


def _on_host(env: str, name: str) -> bool:
    plan = config.qdrant_plan(load_env(env))
    return name == "qdrant" and plan is not None and plan.storage == "ebs"


def _policy_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("env", ENVS)
def test_each_service_matches_its_params(env: str) -> None:
    t = _ecs(env)
    for name, spec in _rendered(env).items():
        props = t["Resources"][f"{pascal(name)}TaskDefinition"]["Properties"]
        assert (props["Cpu"], props["Memory"]) == (str(spec.cpu), str(spec.memory)), name
        launch = "EC2" if _on_host(env, name) else "FARGATE"
        assert props["RequiresCompatibilities"] == [launch] and props["NetworkMode"] == "awsvpc"
        c = _container(t, name)
        assert c["PortMappings"] == [{"ContainerPort": spec.port, "Protocol": "tcp", "Name": name}]
        if spec.ecr_repository:
            assert c["Image"] == {
                "Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/"
                f"{spec.ecr_repository}:${{{pascal(name)}ImageTag}}"
            }
            assert f"{pascal(name)}ImageTag" in t["Parameters"]
        else:
            assert c["Image"] == spec.image
        service = t["Resources"][f"{pascal(name)}Service"]["Properties"]
        # Autoscaled services leave the count to Application Auto Scaling (see test_production.py).
        assert service.get("DesiredCount") == (None if spec.autoscaling else spec.desired_count)
        assert service["ServiceName"] == name


@pytest.mark.parametrize("env", ENVS)
def test_circuit_breaker_with_rollback_on_every_service(env: str) -> None:
    services = resources_of_type(_ecs(env), "AWS::ECS::Service")
    assert len(services) == len(_rendered(env))
    for s in services.values():
        deploy = s["Properties"]["DeploymentConfiguration"]
        assert deploy["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert s["Properties"]["EnableECSManagedTags"] is True
        assert s["Properties"]["PropagateTags"] == "SERVICE"
        assert s["DependsOn"] == ["ClusterCapacityProviders"]


@pytest.mark.parametrize("env", ENVS)
def test_tasks_use_the_network_stacks_subnets_and_public_ip_choice(env: str) -> None:
    for s in resources_of_type(_ecs(env), "AWS::ECS::Service").values():
        name = s["Properties"]["ServiceName"]
        # On EC2 (qdrant with storage ebs) awsvpc tasks get no public IP: ECS allows it on Fargate only.
        on_host = _on_host(env, name)
        assert s["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"] == {
            "AssignPublicIp": "DISABLED" if on_host else {"Ref": "TaskAssignPublicIp"},
            "Subnets": {"Ref": "AppSubnetIds"},
            "SecurityGroups": [{"Ref": f"{pascal(name)}ServiceSecurityGroupId"}],
        }


def test_stateful_services_replace_their_single_task() -> None:
    t = _ecs("dev")
    for name in ("qdrant", "redis"):
        deploy = t["Resources"][f"{pascal(name)}Service"]["Properties"]["DeploymentConfiguration"]
        assert (deploy["MinimumHealthyPercent"], deploy["MaximumPercent"]) == (0, 100)
    backend = t["Resources"]["BackendService"]["Properties"]
    assert backend["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    assert backend["HealthCheckGracePeriodSeconds"] == 90


@pytest.mark.parametrize("env", ENVS)
def test_capacity_strategies(env: str) -> None:
    t = _ecs(env)
    strategy = t["Resources"]["BackendService"]["Properties"]["CapacityProviderStrategy"]
    assert strategy == [
        {"CapacityProvider": "FARGATE", "Base": 2, "Weight": 30},
        {"CapacityProvider": "FARGATE_SPOT", "Base": 0, "Weight": 70},
    ]
    for name in ("qdrant", "redis"):
        if name in _rendered(env):
            on_fargate = [{"CapacityProvider": "FARGATE", "Base": 0, "Weight": 1}]
            on_host = [{"CapacityProvider": {"Ref": "QdrantCapacityProvider"}, "Weight": 1}]
            assert t["Resources"][f"{pascal(name)}Service"]["Properties"]["CapacityProviderStrategy"] == (
                on_host if _on_host(env, name) else on_fargate
            )
    for name in ("prometheus", "grafana"):
        assert t["Resources"][f"{pascal(name)}Service"]["Properties"]["CapacityProviderStrategy"] == [
            {"CapacityProvider": "FARGATE_SPOT", "Base": 0, "Weight": 1}
        ]
    assoc = t["Resources"]["ClusterCapacityProviders"]["Properties"]
    host = [{"Ref": "QdrantCapacityProvider"}] if _on_host(env, "qdrant") else []
    assert assoc["CapacityProviders"] == ["FARGATE", "FARGATE_SPOT", *host]


@pytest.mark.parametrize("env", ENVS)
def test_cluster(env: str) -> None:
    props = _ecs(env)["Resources"]["Cluster"]["Properties"]
    assert props["ClusterName"] == load_env(env).names("cluster")
    assert props["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enabled"}]


def test_prod_cluster_keeps_the_plans_name() -> None:
    assert _ecs("prod")["Resources"]["Cluster"]["Properties"]["ClusterName"] == "knowledgerouter-cluster"


@pytest.mark.parametrize("env", ENVS)
def test_backend_scaling_policies(env: str) -> None:
    t = _ecs(env)
    target = t["Resources"]["BackendScalableTarget"]["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 10)
    assert target["ResourceId"] == {
        "Fn::Join": ["/", ["service", {"Ref": "Cluster"}, {"Fn::GetAtt": ["BackendService", "Name"]}]]
    }
    policies = {
        k: v["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for k, v in resources_of_type(t, "AWS::ApplicationAutoScaling::ScalingPolicy").items()
    }
    assert set(policies) == {"BackendCpuScaling", "BackendMemoryScaling", "BackendRequestsScaling"}
    metrics = {
        k: (p["PredefinedMetricSpecification"]["PredefinedMetricType"], p["TargetValue"]) for k, p in policies.items()
    }
    assert metrics == {
        "BackendCpuScaling": ("ECSServiceAverageCPUUtilization", 70),
        "BackendMemoryScaling": ("ECSServiceAverageMemoryUtilization", 80),
        "BackendRequestsScaling": ("ALBRequestCountPerTarget", 1000),
    }
    assert all((p["ScaleInCooldown"], p["ScaleOutCooldown"]) == (300, 60) for p in policies.values())
    assert policies["BackendRequestsScaling"]["PredefinedMetricSpecification"]["ResourceLabel"] == {
        "Fn::Join": ["/", [{"Ref": "LoadBalancerFullName"}, {"Ref": "BackendTargetGroupFullName"}]]
    }


@pytest.mark.parametrize("env", ENVS)
def test_schedules_come_from_params(env: str) -> None:
    actions = _ecs(env)["Resources"]["BackendScalableTarget"]["Properties"]["ScheduledActions"]
    spec = load_env(env).services["backend"].autoscaling
    assert spec is not None
    assert actions == [
        {
            "ScheduledActionName": f"backend-{s.name}",
            "Schedule": f"cron({s.cron})",
            "Timezone": "UTC",
            "ScalableTargetAction": {"MinCapacity": s.min_count, "MaxCapacity": s.max_count},
        }
        for s in spec.schedules
    ]


def test_default_and_prod_schedules() -> None:
    def crons(env: str) -> list[tuple[str, int, int]]:
        actions = _ecs(env)["Resources"]["BackendScalableTarget"]["Properties"]["ScheduledActions"]
        a = [(x["Schedule"], x["ScalableTargetAction"]) for x in actions]
        return [(c, t["MinCapacity"], t["MaxCapacity"]) for c, t in a]

    assert crons("dev") == [("cron(0 1 * * ? *)", 1, 3), ("cron(0 7 * * ? *)", 2, 10)]
    assert ("cron(0 1 ? * SAT *)", 1, 3) in crons("prod")


@pytest.mark.parametrize("env", ENVS)
def test_execution_role_reads_exactly_the_referenced_secrets(env: str) -> None:
    t = _ecs(env)
    referenced = {s.secret for spec in _rendered(env).values() for s in spec.secrets.values()}
    in_tasks = set()
    for task in resources_of_type(t, "AWS::ECS::TaskDefinition").values():
        for c in task["Properties"]["ContainerDefinitions"]:
            for s in c.get("Secrets", []):
                ref = s["ValueFrom"] if "Ref" in s["ValueFrom"] else s["ValueFrom"]["Fn::Join"][1][0]
                in_tasks.add(ref["Ref"])
    statements = _policy_statements(t["Resources"]["ExecutionRole"])
    (secrets,) = [s for s in statements if s["Action"] == ["secretsmanager:GetSecretValue"]]
    assert {r["Ref"] for r in secrets["Resource"]} == referenced == in_tasks


@pytest.mark.parametrize("env", ENVS)
def test_execution_role_pulls_only_our_repositories_and_writes_only_our_logs(env: str) -> None:
    t = _ecs(env)
    statements = {tuple(s["Action"]): s["Resource"] for s in _policy_statements(t["Resources"]["ExecutionRole"])}
    assert statements[("ecr:GetAuthorizationToken",)] == ["*"]
    pull = ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage")
    assert statements[pull] == [
        {"Fn::Sub": f"arn:${{AWS::Partition}}:ecr:${{AWS::Region}}:${{AWS::AccountId}}:repository/{repo}"}
        for repo in ("knowledgerouter-backend", "knowledgerouter-frontend")
    ]
    logs = statements[("logs:CreateLogStream", "logs:PutLogEvents")]
    groups = [f"{pascal(n)}LogGroup" for n in _rendered(env)] + ["QdrantSnapshotLogGroup"]
    assert logs == [{"Fn::GetAtt": [g, "Arn"]} for g in groups]
    assert set(statements) == {
        ("ecr:GetAuthorizationToken",),
        pull,
        ("logs:CreateLogStream", "logs:PutLogEvents"),
        ("secretsmanager:GetSecretValue",),
    }


def test_secrets_select_json_keys() -> None:
    secrets = {s["Name"]: s["ValueFrom"] for s in _container(_ecs("dev"), "backend")["Secrets"]}
    assert secrets["CONFLUENCE_BASE_URL"] == {"Fn::Join": [":", [{"Ref": "ConfluenceSecretArn"}, "base_url", "", ""]]}
    assert secrets["POSTGRES_PASSWORD"] == {"Fn::Join": [":", [{"Ref": "DbSecretArn"}, "password", "", ""]]}
    assert secrets["OPENAI_API_KEY"] == {"Ref": "OpenAiSecretArn"}
    assert not set(secrets) & set(_env(_ecs("dev"), "backend")), "a secret must never also be plain environment"


def test_backend_environment() -> None:
    env = _env(_ecs("dev"), "backend")
    assert env["DJANGO_SETTINGS_MODULE"] == "core.settings"
    assert env["QDRANT_HOST"] == "qdrant.knowledgerouter-dev.local"
    assert env["REDIS_HOST"] == "redis.knowledgerouter-dev.local"
    assert env["REDIS_SSL"] == "false", "the in-cluster redis speaks plain TCP"
    assert env["POSTGRES_HOST"] == {"Ref": "DbEndpointAddress"}


def test_elasticache_replaces_the_redis_service() -> None:
    assert load_env("prod").data.redis == "elasticache"
    t = _ecs("prod")
    assert "RedisService" not in t["Resources"] and "RedisLogGroup" not in t["Resources"]
    env = _env(t, "backend")
    assert env["REDIS_HOST"] == {"Ref": "RedisEndpointAddress"}
    assert env["REDIS_PORT"] == {"Ref": "RedisEndpointPort"}
    assert env["REDIS_SSL"] == "true", "ElastiCache has transit encryption on: plain-TCP clients are refused"
    assert "TaskIngressFromTasks6379" not in t["Resources"]


def test_backend_health_check() -> None:
    assert _container(_ecs("dev"), "backend")["HealthCheck"] == {
        "Command": ["CMD-SHELL", "curl -f http://localhost:8000/api/healthz || exit 1"],
        "Interval": 30,
        "Timeout": 5,
        "Retries": 3,
        "StartPeriod": 60,
    }


@pytest.mark.parametrize("env", ENVS)
def test_log_groups_and_awslogs(env: str) -> None:
    t = _ecs(env)
    names = load_env(env).names
    for name, spec in _rendered(env).items():
        group = t["Resources"][f"{pascal(name)}LogGroup"]["Properties"]
        assert group == {"LogGroupName": names.path("ecs", name), "RetentionInDays": spec.log_retention_days}
        assert _container(t, name)["LogConfiguration"] == {
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": {"Ref": f"{pascal(name)}LogGroup"},
                "awslogs-region": {"Ref": "AWS::Region"},
                "awslogs-stream-prefix": "ecs",
            },
        }
    if env == "prod":
        assert t["Resources"]["BackendLogGroup"]["Properties"]["LogGroupName"] == "/ecs/knowledgerouter/backend"


def test_read_only_root_where_the_image_allows() -> None:
    t = _ecs("dev")
    ro = {n: _container(t, n)["ReadonlyRootFilesystem"] for n in _rendered("dev")}
    assert ro == {
        "backend": True,
        "frontend": True,
        "qdrant": False,
        "redis": True,
        "prometheus": False,
        "grafana": False,
    }


def test_qdrant_mounts_its_access_point_with_tls_and_iam() -> None:
    t = _ecs("dev")
    props = t["Resources"]["QdrantTaskDefinition"]["Properties"]
    assert props["Volumes"] == [
        {
            "Name": "efs-qdrant",
            "EFSVolumeConfiguration": {
                "FilesystemId": {"Ref": "FileSystemId"},
                "TransitEncryption": "ENABLED",
                "AuthorizationConfig": {"AccessPointId": {"Ref": "QdrantAccessPointId"}, "IAM": "ENABLED"},
            },
        }
    ]
    assert _container(t, "qdrant")["MountPoints"] == [
        {"SourceVolume": "efs-qdrant", "ContainerPath": "/qdrant/storage", "ReadOnly": False}
    ]
    (statement,) = _policy_statements(t["Resources"]["QdrantTaskRole"])
    assert statement["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert statement["Resource"] == [{"Ref": "FileSystemArn"}]
    assert statement["Condition"] == {
        "StringEquals": {"elasticfilesystem:AccessPointArn": {"Ref": "QdrantAccessPointArn"}}
    }


def test_redis_runs_append_only() -> None:
    c = _container(_ecs("dev"), "redis")
    assert c["Command"] == ["redis-server", "--appendonly", "yes", "--dir", "/data"]
    assert c["MountPoints"] == [{"SourceVolume": "scratch-data", "ContainerPath": "/data", "ReadOnly": False}]


def test_task_roles_have_only_what_each_service_needs() -> None:
    t = _ecs("dev")
    statements = _policy_statements(t["Resources"]["BackendTaskRole"])
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (["s3:PutObject", "s3:AbortMultipartUpload"], [{"Fn::Sub": "${BackupsBucketArn}/backend/*"}]),
        (["s3:ListBucket"], [{"Ref": "BackupsBucketArn"}]),
        (
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            [{"Fn::Sub": "${DataBucketArn}/*"}],
        ),
        (["s3:ListBucket"], [{"Ref": "DataBucketArn"}]),
    ]
    for name in ("frontend", "redis"):
        assert "Policies" not in t["Resources"][f"{pascal(name)}TaskRole"]["Properties"], name
    # Prometheus' discovery sidecar lists Cloud Map instances of its own namespace, nothing else.
    (sd,) = _policy_statements(t["Resources"]["PrometheusTaskRole"])
    assert (sd["Action"], sd["Resource"]) == (["servicediscovery:DiscoverInstances"], ["*"])
    assert sd["Condition"] == {"StringEquals": {"servicediscovery:NamespaceName": "knowledgerouter-dev.local"}}
    # Grafana reads CloudWatch metrics (its CloudWatch data source) and nothing else.
    grafana = _policy_statements(t["Resources"]["GrafanaTaskRole"])
    assert [(s["Action"], s["Resource"]) for s in grafana] == [
        (["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"], ["*"])
    ]
    roles = {
        p["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
        for p in resources_of_type(t, "AWS::ECS::TaskDefinition").values()
    }
    # One role per service, plus the Qdrant snapshot job's.
    assert len(roles) == len(_rendered("dev")) + 1 and "ExecutionRole" not in roles


def test_roles_trust_only_ecs_tasks_of_this_account() -> None:
    services = {
        "QdrantSnapshotSchedulerRole": "scheduler.amazonaws.com",
        "DbSecretRedeployRole": "states.amazonaws.com",
        "DbSecretRotatedEventsRole": "events.amazonaws.com",
    }
    for logical_id, role in resources_of_type(_ecs("dev"), "AWS::IAM::Role").items():
        (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": services.get(logical_id, "ecs-tasks.amazonaws.com")}
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_cloud_map_namespace_and_records() -> None:
    t = _ecs("dev")
    ns = t["Resources"]["Namespace"]
    assert ns["Type"] == "AWS::ServiceDiscovery::PrivateDnsNamespace"
    assert ns["Properties"]["Name"] == "knowledgerouter-dev.local"
    assert ns["Properties"]["Vpc"] == {"Ref": "VpcId"}
    records = resources_of_type(t, "AWS::ServiceDiscovery::Service")
    assert {r["Properties"]["Name"] for r in records.values()} == {
        "backend",
        "qdrant",
        "redis",
        "prometheus",
        "grafana",
    }
    for r in records.values():
        assert r["Properties"]["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10}]


def test_prometheus_scrapes_the_backend_through_cloud_map() -> None:
    t = _ecs("dev")
    backend = _rendered("dev")["backend"]
    env = _env(t, "prometheus")
    prometheus_yml = yaml.safe_load(env["KR_FILE_1"])
    jobs = {j["job_name"]: j for j in prometheus_yml["scrape_configs"]}
    # Every task from Cloud Map's API (the discovery sidecar, tests/test_prometheus_discovery.py).
    assert jobs["backend"]["file_sd_configs"][0]["files"] == ["/etc/prometheus/sd/backend.json"]
    (sidecar,) = [
        c
        for c in t["Resources"]["PrometheusTaskDefinition"]["Properties"]["ContainerDefinitions"]
        if c["Name"] == "discovery"
    ]
    targets = {e["Name"]: e["Value"] for e in sidecar["Environment"]}["KR_SD_TARGETS"].split()
    assert f"backend={backend.discovery_name}.knowledgerouter-dev.local:{backend.port}" in targets
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]
    c = _container(t, "prometheus")
    assert c["EntryPoint"][:2] == ["/bin/sh", "-c"]
    assert "> /etc/prometheus/prometheus.yml" in c["EntryPoint"][2]
    assert c["EntryPoint"][2].endswith('exec "$@"')
    assert c["Command"][:2] == ["/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml"]


def test_grafana_gets_its_data_source_and_admin_password() -> None:
    t = _ecs("dev")
    c = _container(t, "grafana")
    assert '"$KR_FILE_2" > /etc/grafana/provisioning/datasources/datasources.yaml' in c["EntryPoint"][2]
    datasources = yaml.safe_load(_env(t, "grafana")["KR_FILE_2"])
    prometheus, cloudwatch = datasources["datasources"]
    assert (prometheus["type"], prometheus["url"]) == ("prometheus", "http://prometheus.knowledgerouter-dev.local:9090")
    assert (cloudwatch["type"], cloudwatch["jsonData"]) == (
        "cloudwatch",
        {"authType": "default", "defaultRegion": "$AWS_REGION"},
    )
    assert c["Command"] == ["/run.sh"]
    secrets = {s["Name"]: s["ValueFrom"] for s in c["Secrets"]}
    assert secrets["GF_SECURITY_ADMIN_PASSWORD"] == {
        "Fn::Join": [":", [{"Ref": "GrafanaAdminSecretArn"}, "password", "", ""]]
    }


def test_no_security_group_rules_in_the_ecs_stack() -> None:
    """Every rule lives in the network stack (tests/test_security_groups.py); the services only join their group."""
    for env in ENVS:
        t = _ecs(env)
        assert not resources_of_type(t, "AWS::EC2::SecurityGroupIngress")
        assert not resources_of_type(t, "AWS::EC2::SecurityGroupEgress")


@pytest.mark.parametrize("env", ENVS)
def test_outputs_for_monitoring(env: str) -> None:
    names = {"ClusterName"}
    for n in _rendered(env):
        names |= {f"{pascal(n)}ServiceName", f"{pascal(n)}LogGroupName"}
    # for kr-cfn qdrant restore
    names |= {f"QdrantSnapshot{n}" for n in ("TaskDefinitionArn", "LogGroupName", "Subnets", "SecurityGroups")}
    names.add("QdrantSnapshotAssignPublicIp")
    assert set(_ecs(env)["Outputs"]) == names


def test_a_seventh_service_needs_only_a_params_entry() -> None:
    cfg = config.load(SEVENTH)
    t = stacks.build_all(cfg)["ecs"].to_dict()
    spec = cfg.services["worker"]
    props = t["Resources"]["WorkerTaskDefinition"]["Properties"]
    assert (props["Cpu"], props["Memory"]) == ("1024", "2048")
    c = _container(t, "worker")
    assert c["Command"] == list(spec.command or ())
    assert c["PortMappings"][0]["ContainerPort"] == 8080
    assert _env(t, "worker") == {
        "REDIS_HOST": "redis.knowledgerouter-dev.local",
        "POSTGRES_HOST": {"Ref": "DbEndpointAddress"},
    }
    assert "WorkerImageTag" in t["Parameters"]
    service = t["Resources"]["WorkerService"]["Properties"]
    assert service["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Base": 0, "Weight": 1}]
    assert "LoadBalancers" not in service and "ServiceRegistries" not in service
    assert t["Resources"]["WorkerLogGroup"]["Properties"]["LogGroupName"] == "/ecs/knowledgerouter-dev/worker"
    assert {"WorkerServiceName", "WorkerLogGroupName"} <= set(t["Outputs"])
    assert [k for k in t["Resources"] if k.startswith("Worker") and k.endswith("Scaling")] == ["WorkerCpuScaling"]
    statements = _policy_statements(t["Resources"]["ExecutionRole"])
    assert {"Fn::GetAtt": ["WorkerLogGroup", "Arn"]} in statements[1]["Resource"]
    (worker_role,) = [
        s for s in _policy_statements(t["Resources"]["WorkerTaskRole"]) if s["Action"] == ["s3:GetObject"]
    ]
    assert worker_role["Resource"] == [{"Fn::Sub": "${DataBucketArn}/*"}]


def test_seventh_service_builds_lint_clean(tmp_path: Path) -> None:
    from kr_cfn.cli import main

    params = tmp_path / "params"
    params.mkdir()
    (params / "dev.yaml").write_text(SEVENTH.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["build", "--params", str(params), "--out", str(tmp_path / "out")]) == 0


def test_dropping_a_service_removes_its_resources(tmp_path: Path) -> None:
    cfg = config.load(write_params(tmp_path, "dev", "services:\n  grafana: null\n"))
    t = stacks.build_all(cfg)["ecs"].to_dict()
    assert not [k for k in t["Resources"] if k.startswith("Grafana")]
    assert "GrafanaAdminSecretArn" not in t["Parameters"]
    assert "TaskIngressFromTasks3000" not in t["Resources"]
