"""The ``services:``, ``ecs:`` and ``alb:`` params: defaults, merging, one test per validation error."""

from __future__ import annotations

from pathlib import Path

import pytest

from kr_cfn import config
from tests.conftest import load_env, write_params


def _errors(tmp_path: Path, text: str, env: str = "dev") -> list[str]:
    path = write_params(tmp_path, env, text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    prefix = f"{path}: "
    return [line[len(prefix) :] for line in str(exc.value).splitlines()]


# The architecture's table: cpu, memory, port, image, desired, min, max.
ARCHITECTURE = {
    "backend": (512, 1024, 8000, "knowledgerouter-backend", 2, 2, 10),
    "frontend": (256, 512, 80, "knowledgerouter-frontend", 2, 2, 2),
    "qdrant": (512, 1024, 6333, "qdrant/qdrant:v1.19.1-unprivileged", 1, 1, 1),
    "redis": (256, 512, 6379, "redis:7.2.4-alpine", 1, 1, 1),
    "prometheus": (512, 1024, 9090, "prom/prometheus:v3.13.3", 1, 1, 1),
    "grafana": (256, 512, 3000, "grafana/grafana:13.2.1", 1, 1, 1),
}


def test_defaults_are_the_architectures_six_services() -> None:
    services = config.EnvConfig(env="x").services
    assert list(services) == list(ARCHITECTURE)
    for name, (cpu, memory, port, image, desired, low, high) in ARCHITECTURE.items():
        s = services[name]
        assert (s.cpu, s.memory, s.port, s.image) == (cpu, memory, port, image), name
        assert (s.desired_count, s.min_count, s.max_count) == (desired, low, high), name
    assert services["backend"].ecr_repository == "knowledgerouter-backend"
    assert services["qdrant"].ecr_repository is None
    assert [(c.provider, c.base, c.weight) for c in services["backend"].capacity] == [
        ("FARGATE", 2, 30),
        ("FARGATE_SPOT", 0, 70),
    ]
    assert {s.capacity[0].provider for n, s in services.items() if n in ("qdrant", "redis")} == {"FARGATE"}
    assert all(len(services[n].capacity) == 1 for n in ("qdrant", "redis"))


def test_default_retention_follows_the_plan() -> None:
    services = config.EnvConfig(env="x").services
    assert {n: s.log_retention_days for n, s in services.items()} == {
        "backend": 7,
        "frontend": 3,
        "qdrant": 7,
        "redis": 7,
        "prometheus": 3,
        "grafana": 3,
    }
    dev = load_env("dev").services
    assert (dev["backend"].log_retention_days, dev["frontend"].log_retention_days) == (3, 1)


def test_params_merge_onto_the_defaults(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    cpu: 1024\n    memory: 2048\n    environment:\n      EXTRA: '1'\n"
    backend = config.load(write_params(tmp_path, "dev", text)).services["backend"]
    assert (backend.cpu, backend.memory, backend.port) == (1024, 2048, 8000)
    assert backend.environment["EXTRA"] == "1"
    assert backend.environment["DJANGO_SETTINGS_MODULE"] == "core.settings"
    assert backend.secrets["POSTGRES_PASSWORD"].key == "password"


def test_null_drops_a_service(tmp_path: Path) -> None:
    cfg = config.load(write_params(tmp_path, "dev", "services:\n  grafana: null\n"))
    assert "grafana" not in cfg.services


def test_default_schedules() -> None:
    a = config.EnvConfig(env="x").services["backend"].autoscaling
    assert a is not None
    assert (a.cpu_target, a.memory_target, a.requests_per_target) == (70, 80, 1000)
    assert (a.scale_in_cooldown, a.scale_out_cooldown) == (300, 60)
    assert [(s.cron, s.min_count, s.max_count) for s in a.schedules] == [
        ("0 1 * * ? *", 1, 3),
        ("0 7 * * ? *", 2, 10),
    ]


def test_invalid_fargate_cpu(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    cpu: 300\n") == [
        "services.backend.cpu: 300 is not a Fargate CPU size (allowed: 256, 512, 1024, 2048, 4096, 8192, 16384)"
    ]


def test_memory_does_not_fit_cpu(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  frontend:\n    memory: 4096\n") == [
        "services.frontend.memory: 4096 does not fit cpu 256 on Fargate (allowed: 512, 1024, 2048)"
    ]


def test_memory_range_message(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    cpu: 1024\n") == [
        "services.backend.memory: 1024 does not fit cpu 1024 on Fargate (allowed: 2048 to 8192 by 1024)"
    ]


def test_max_below_min(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  frontend:\n    max_count: 1\n") == [
        "services.frontend.max_count: 1 is below min_count 2",
        "services.frontend.desired_count: 2 is above max_count 1",
    ]


def test_desired_below_min(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    desired_count: 1\n") == [
        "services.backend.desired_count: 1 is below min_count 2"
    ]


def test_schedule_max_below_min(tmp_path: Path) -> None:
    text = (
        "services:\n  backend:\n    autoscaling:\n      schedules:\n"
        "        - {name: night, cron: '0 1 * * ? *', min_count: 3, max_count: 2}\n"
    )
    assert _errors(tmp_path, text) == ["services.backend.autoscaling.schedules[0].max_count: 2 is below min_count 3"]


def test_schedule_cron_needs_six_fields(tmp_path: Path) -> None:
    text = (
        "services:\n  backend:\n    autoscaling:\n      schedules:\n"
        "        - {name: night, cron: '0 1 * * *', min_count: 1, max_count: 2}\n"
    )
    assert _errors(tmp_path, text) == [
        "services.backend.autoscaling.schedules[0].cron: '0 1 * * *' needs 6 fields (min hour day month weekday year)"
    ]


def test_schedule_names_are_unique(tmp_path: Path) -> None:
    text = (
        "services:\n  backend:\n    autoscaling:\n      schedules:\n"
        "        - {name: a, cron: '0 1 * * ? *', min_count: 1, max_count: 2}\n"
        "        - {name: a, cron: '0 2 * * ? *', min_count: 1, max_count: 2}\n"
    )
    assert _errors(tmp_path, text) == ["services.backend.autoscaling.schedules[1].name: 'a' is used twice"]


def test_request_tracking_needs_the_load_balancer(tmp_path: Path) -> None:
    text = "services:\n  qdrant:\n    autoscaling: {}\n"
    assert _errors(tmp_path, text) == [
        "services.qdrant.autoscaling.requests_per_target: needs the service behind the load balancer (load_balancer)"
    ]


def test_autoscaling_that_does_nothing(tmp_path: Path) -> None:
    text = "services:\n  qdrant:\n    autoscaling: {cpu_target: null, memory_target: null, requests_per_target: null}\n"
    assert _errors(tmp_path, text) == [
        "services.qdrant.autoscaling: tracks nothing and has no schedules; use null to turn autoscaling off"
    ]


def test_unknown_secret_output(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    secrets:\n      SLACK_TOKEN: {secret: SlackSecretArn}\n"
    assert _errors(tmp_path, text) == [
        "services.backend.secrets.SLACK_TOKEN.secret: 'SlackSecretArn' is not a secret output (one of: DbSecretArn, "
        "OpenAiSecretArn, ConfluenceSecretArn, JiraSecretArn, GrafanaAdminSecretArn, QdrantSecretArn)"
    ]


def test_unknown_secret_key(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    secrets:\n      POSTGRES_PASSWORD: {secret: DbSecretArn, key: pass}\n"
    assert _errors(tmp_path, text) == [
        "services.backend.secrets.POSTGRES_PASSWORD.key: 'pass' is not a key of DbSecretArn (keys: username, password)"
    ]


def test_key_of_a_plain_secret(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    secrets:\n      OPENAI_API_KEY: {secret: OpenAiSecretArn, key: value}\n"
    assert _errors(tmp_path, text) == [
        "services.backend.secrets.OPENAI_API_KEY.key: 'value' is not a key of OpenAiSecretArn "
        "(keys: none, it is a plain string)"
    ]


def test_variable_in_environment_and_secrets(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    environment:\n      OPENAI_API_KEY: plain\n"
    assert _errors(tmp_path, text) == [
        "services.backend.secrets.OPENAI_API_KEY: is also in environment; a variable comes from one place"
    ]


def test_unknown_output_placeholder(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    environment:\n      X: '{{output:DbHost}}'\n"
    (error,) = _errors(tmp_path, text)
    assert error.startswith("services.backend.environment.X: {{output:DbHost}} is not a data output (one of: ")


def test_redis_outputs_only_with_elasticache(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    environment:\n      X: '{{output:RedisEndpointAddress}}'\n"
    (error,) = _errors(tmp_path, text)
    assert error.startswith(
        "services.backend.environment.X: {{output:RedisEndpointAddress}} is not a data output "
        "(only with data.redis: elasticache)"
    )
    ok = "data:\n  redis: elasticache\n" + text
    assert config.load(write_params(tmp_path, "dev", ok)).services["backend"].environment["X"]


def test_unknown_service_placeholder(tmp_path: Path) -> None:
    text = "services:\n  grafana:\n    files:\n      /etc/grafana/x.yaml: 'url: {{host:prometheus2}}'\n"
    assert _errors(tmp_path, text) == [
        "services.grafana.files./etc/grafana/x.yaml: {{host:prometheus2}} names no service with a discovery_name"
    ]


def test_placeholder_of_a_dropped_service(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  qdrant: null\n") == [
        "services.backend.environment.QDRANT_HOST: {{host:qdrant}} names no service with a discovery_name",
        "services.backend.environment.QDRANT_PORT: {{port:qdrant}} names no service with a discovery_name",
        "services.backend.environment.QDRANT_URL: {{host:qdrant}} names no service with a discovery_name",
        "services.backend.environment.QDRANT_URL: {{port:qdrant}} names no service with a discovery_name",
    ]


def test_files_need_a_command(tmp_path: Path) -> None:
    text = "services:\n  prometheus:\n    command: null\n"
    assert _errors(tmp_path, text) == [
        "services.prometheus.files: needs command (the full command to run after writing them) and no entry_point"
    ]


def test_invalid_log_retention(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    log_retention_days: 10\n") == [
        "services.backend.log_retention_days: 10 is not a CloudWatch retention "
        "(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)"
    ]


def test_invalid_image(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    image: Knowledge Router\n") == [
        "services.backend.image: 'Knowledge Router' is neither an image with a tag nor an ECR repository name"
    ]


def test_unknown_service_key_did_you_mean(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    cpus: 512\n") == [
        "services.backend.cpus: unknown key (did you mean 'cpu'?)"
    ]


def test_new_service_needs_image_and_port(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  worker:\n    cpu: 256\n") == [
        "services.worker.image: required key is missing",
        "services.worker.port: required key is missing",
    ]


def test_invalid_service_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  Worker_1:\n    image: busybox:1.36.1\n    port: 80\n") == [
        "services.Worker_1: service names are lowercase letters, digits and dashes (max 31)"
    ]


def test_one_capacity_provider_with_a_base(tmp_path: Path) -> None:
    text = (
        "services:\n  backend:\n    capacity:\n      - {provider: FARGATE, base: 1}\n"
        "      - {provider: FARGATE_SPOT, base: 1}\n"
    )
    assert _errors(tmp_path, text) == ["services.backend.capacity: only one capacity provider may have a base"]


def test_capacity_provider_twice(tmp_path: Path) -> None:
    text = "services:\n  qdrant:\n    capacity:\n      - {provider: FARGATE}\n      - {provider: FARGATE}\n"
    assert _errors(tmp_path, text) == ["services.qdrant.capacity: names a capacity provider twice"]


def test_unknown_access_point(tmp_path: Path) -> None:
    text = "services:\n  qdrant:\n    volumes:\n      - {access_point: Redis, path: /data}\n"
    assert _errors(tmp_path, text) == ["services.qdrant.volumes[0].access_point: 'Redis' is not one of: Qdrant"]


def test_unknown_bucket(tmp_path: Path) -> None:
    text = "services:\n  backend:\n    buckets:\n      LogsBucketArn: read\n"
    assert _errors(tmp_path, text) == [
        "services.backend.buckets.LogsBucketArn: is not a bucket output (one of: DataBucketArn, BackupsBucketArn)"
    ]


def test_exactly_one_default_route(tmp_path: Path) -> None:
    text = "services:\n  prometheus:\n    load_balancer: {}\n"
    assert _errors(tmp_path, text) == [
        "services: exactly one load-balanced service needs the default route (no paths), got 2: frontend, prometheus"
    ]


def test_route_priorities_are_unique(tmp_path: Path) -> None:
    text = "services:\n  prometheus:\n    load_balancer: {paths: [/prometheus/*], priority: 10}\n"
    assert _errors(tmp_path, text) == ["services.prometheus.load_balancer.priority: 10 is also backend's priority"]


def test_domain_name_needs_a_certificate(tmp_path: Path) -> None:
    assert _errors(tmp_path, "alb:\n  domain_name: kr.example.com\n") == [
        "alb.domain_name: needs hosted_zone_id (the stack creates the certificate) or certificate_arn"
    ]


def test_invalid_certificate_arn(tmp_path: Path) -> None:
    (error,) = _errors(tmp_path, "alb:\n  certificate_arn: my-cert\n")
    assert error.startswith("alb.certificate_arn: string should match pattern ")


def test_slices_without_redis_with_elasticache(tmp_path: Path) -> None:
    cfg = config.load(write_params(tmp_path, "dev", "data:\n  redis: elasticache\n"))
    ecs = config.ecs_slice(cfg)
    assert "redis" not in ecs.services
    assert ecs.external == {"redis": ("RedisEndpointAddress", "RedisEndpointPort")}
    assert list(config.alb_slice(cfg).routes) == ["backend", "frontend"]


def test_invalid_variable_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    environment:\n      MY-VAR: x\n") == [
        "services.backend.environment.MY-VAR: is not a valid environment variable name"
    ]


def test_file_path_must_be_absolute(tmp_path: Path) -> None:
    text = "services:\n  prometheus:\n    files:\n      prometheus.yml: x\n"
    assert _errors(tmp_path, text) == [
        "services.prometheus.files.prometheus.yml: must be an absolute path of letters, digits and ._-/"
    ]


def test_scratch_path_must_be_absolute(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    scratch_paths: [tmp]\n") == [
        "services.backend.scratch_paths[0]: 'tmp' must be an absolute path of letters, digits and ._-/"
    ]


# --------------------------------------------------------------------------- who talks to whom, image pins


def test_connects_to_unknown_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  grafana:\n    connects_to: [postgres]\n") == [
        "services.grafana.connects_to[0]: 'postgres' is not a service or data endpoint "
        "(one of: backend, db, efs, grafana, prometheus, qdrant, redis)"
    ]


def test_connects_to_elasticache_without_it(tmp_path: Path) -> None:
    text = "data:\n  redis: fargate\nservices:\n  redis: null\n  grafana:\n    connects_to: [redis]\n"
    assert _errors(tmp_path, text) == [
        "services.backend.environment.REDIS_HOST: {{host:redis}} names no service with a discovery_name",
        "services.backend.environment.REDIS_PORT: {{port:redis}} names no service with a discovery_name",
        "services.backend.environment.REDIS_SSL: {{tls:redis}} names no service with a discovery_name",
        "services.grafana.connects_to[0]: 'redis' is not a service or data endpoint (only with data.redis: "
        "elasticache) (one of: backend, db, efs, grafana, prometheus, qdrant)",
    ]


def test_connects_to_a_service_without_discovery_name(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  grafana:\n    connects_to: [frontend]\n") == [
        "services.grafana.connects_to[0]: 'frontend' has no discovery_name, so no other service can reach it"
    ]


def test_connects_to_itself(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  grafana:\n    connects_to: [grafana]\n") == [
        "services.grafana.connects_to[0]: names the service itself"
    ]


def test_service_named_like_a_data_endpoint(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  db:\n    image: postgres:15.13.0\n    port: 5432\n") == [
        "services.db: 'db' is reserved for the load balancer and data endpoints in connects_to"
    ]


@pytest.mark.parametrize(
    ("image", "tag"),
    [("redis:7-alpine", "7-alpine"), ("qdrant/qdrant:latest", "latest"), ("grafana/grafana:10.2", "10.2")],
)
def test_floating_image_tag(tmp_path: Path, image: str, tag: str) -> None:
    assert _errors(tmp_path, f"services:\n  redis:\n    image: {image}\n") == [
        f"services.redis.image: {image!r} has the floating tag {tag!r} (the registry moves it to new releases); "
        "pin an exact version such as 1.2.3 or v1.2.3-alpine"
    ]


def test_registry_image_without_tag(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  redis:\n    image: registry.example.com:5000/redis\n") == [
        "services.redis.image: 'registry.example.com:5000/redis' has no tag; "
        "pin an exact version such as 1.2.3 or v1.2.3-alpine"
    ]


def test_digest_belongs_in_image_digest(tmp_path: Path) -> None:
    image = "redis@sha256:" + "0" * 64
    assert _errors(tmp_path, f"services:\n  redis:\n    image: '{image}'\n") == [
        f"services.redis.image: {image!r}: give the digest in image_digest and an exact version tag here"
    ]


def test_image_digest_only_for_public_images(tmp_path: Path) -> None:
    digest = "sha256:" + "0" * 64
    assert _errors(tmp_path, f"services:\n  backend:\n    image_digest: '{digest}'\n") == [
        "services.backend.image_digest: only for public images; an ECR image is pinned by its deploy's image tag"
    ]


def test_image_digest_format(tmp_path: Path) -> None:
    (line,) = _errors(tmp_path, "services:\n  redis:\n    image_digest: sha256:abc\n")
    assert line.startswith("services.redis.image_digest: string should match pattern")


def test_unknown_capability(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  backend:\n    drop_capabilities: [ALL, NET_RAWW]\n") == [
        "services.backend.drop_capabilities[1]: 'NET_RAWW' is not a Linux capability ECS knows (e.g. ALL, NET_RAW)"
    ]


# --------------------------------------------------------------------------- who writes Qdrant's storage

# Each default service's user, as its image documents it (sources in DEFAULT_SERVICES' comments).
IMAGE_USERS = {
    "backend": None,  # the application's own image decides
    "frontend": "0:0",  # nginx master as root, workers as nginx (101)
    "qdrant": "1000:1000",  # the -unprivileged build, the owner of its storage
    "redis": "999:1000",
    "prometheus": "65534:65534",
    "grafana": "472:0",
}


def test_every_default_service_states_its_images_user_and_drops_capabilities() -> None:
    services = config.EnvConfig(env="x").services
    assert {n: s.user for n, s in services.items()} == IMAGE_USERS
    assert all(s.drop_capabilities for s in services.values())
    assert {n for n, s in services.items() if s.read_only_root} == {"backend", "frontend", "redis"}
    plan = config.qdrant_plan(config.EnvConfig(env="x"))
    assert plan is not None and plan.owner == services["qdrant"].user == "1000:1000"
    assert plan.snapshots.user == "0:0"


def test_qdrant_as_root_without_capabilities_cannot_have_storage_of_another_uid(tmp_path: Path) -> None:
    # Today's qdrant before the fix: the image's user (root), ALL dropped, storage handed to 1000.
    text = "services:\n  qdrant:\n    storage: ebs\n    image: qdrant/qdrant:v1.7.0\n    user: null\n"
    assert _errors(tmp_path, text) == [
        "services.qdrant.user: runs as its image's user, root unless the image sets one (user unset), with ALL "
        "capabilities dropped and cannot write /qdrant/storage (the host path /data/qdrant, which the qdrant "
        "host's user data chowns to 1000:1000); set user: '1000:1000'"
    ]


def test_a_root_service_mounting_the_access_point_without_capabilities(tmp_path: Path) -> None:
    text = (
        "services:\n  indexer:\n    image: knowledgerouter-indexer\n    port: 9000\n    user: '0:0'\n"
        "    volumes: [{access_point: Qdrant, path: /index}]\n"
    )
    assert _errors(tmp_path, text) == [
        "services.indexer.user: runs as root with ALL capabilities dropped and cannot write /index (EFS access "
        "point Qdrant, created for POSIX user 1000:1000); set user: '1000:1000'"
    ]


def test_a_service_of_another_uid_cannot_write_the_storage(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  qdrant:\n    user: '1001:1001'\n") == [
        "services.qdrant.user: '1001:1001' cannot write /qdrant/storage (EFS access point Qdrant, created for "
        "POSIX user 1000:1000); set user: '1000:1000'"
    ]


def test_a_user_name_is_not_checked_against_the_storage_owner(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  qdrant:\n    user: qdrant\n") == [
        "services.qdrant.user: 'qdrant' is a name, not the uid that owns /qdrant/storage (EFS access point Qdrant, "
        "created for POSIX user 1000:1000); set user: '1000:1000'"
    ]


def test_root_that_keeps_dac_override_may_mount_the_storage(tmp_path: Path) -> None:
    """Allowed: root with CAP_DAC_OVERRIDE writes any directory; and the owner's uid itself."""
    text = "services:\n  qdrant:\n    user: '0:0'\n    drop_capabilities: [NET_RAW, MKNOD]\n"
    assert config.load(write_params(tmp_path, "dev", text)).services["qdrant"].user == "0:0"
    assert config.load(write_params(tmp_path, "dev", "services:\n  qdrant:\n    user: '1000'\n"))


def test_storage_owner_moves_the_user_data_access_point_and_container_together(tmp_path: Path) -> None:
    text = "services:\n  qdrant:\n    storage_owner: '2000:3000'\n    user: '2000:3000'\n"
    cfg = config.load(write_params(tmp_path, "dev", text))
    plan = config.qdrant_plan(cfg)
    assert plan is not None and plan.owner == "2000:3000"
    assert _errors(tmp_path, "services:\n  qdrant:\n    storage_owner: '2000:3000'\n") == [
        "services.qdrant.user: '1000:1000' cannot write /qdrant/storage (EFS access point Qdrant, created for "
        "POSIX user 2000:3000); set user: '2000:3000'"
    ]


def test_storage_owner_is_numeric_and_not_root(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  qdrant:\n    storage_owner: '0:0'\n    user: '0:0'\n") == [
        "services.qdrant.storage_owner: string should match pattern '^[1-9][0-9]{0,9}:[0-9]{1,10}$', got '0:0'"
    ]


def test_storage_owner_only_for_qdrant(tmp_path: Path) -> None:
    assert _errors(tmp_path, "services:\n  redis:\n    storage_owner: '1000:1000'\n") == [
        "services.redis.storage_owner: only the qdrant service has a storage choice"
    ]


def test_no_service_writes_the_qdrant_snapshots_prefix(tmp_path: Path) -> None:
    """A service reaches only '<its name>/' of the backups bucket; 'qdrant/' is the snapshot job's."""
    assert _errors(tmp_path, "services:\n  qdrant:\n    buckets:\n      BackupsBucketArn: write\n") == [
        "services.qdrant.buckets.BackupsBucketArn: qdrant/ of the backups bucket holds the Qdrant snapshots, "
        "written only by the snapshot job"
    ]
    ok = "services:\n  backend:\n    buckets:\n      BackupsBucketArn: read_write\n"
    assert (
        config.load(write_params(tmp_path, "dev", ok)).services["backend"].buckets["BackupsBucketArn"] == "read_write"
    )
