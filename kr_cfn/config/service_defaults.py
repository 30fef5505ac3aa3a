"""The architecture's six services as data (DEFAULT_SERVICES): what a params file's services: entries merge onto."""

from __future__ import annotations

from typing import Any

from kr_cfn.config.images import image
from kr_cfn.config.qdrant import STORAGE_OWNER

_PROMETHEUS_YML = """\
global:
  scrape_interval: 30s
  evaluation_interval: 30s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:{{port:prometheus}}"]
"""
"""Prometheus scrapes itself; a job per service with a ``metrics_path`` is appended (kr_cfn.config.grafana)."""

_GRAFANA_DATASOURCES = """\
apiVersion: 1
datasources:
  - name: Prometheus
    uid: prometheus
    type: prometheus
    access: proxy
    url: http://{{host:prometheus}}:{{port:prometheus}}
    isDefault: true
    editable: false
  - name: CloudWatch
    uid: cloudwatch
    type: cloudwatch
    editable: false
    jsonData:
      authType: default
      defaultRegion: $AWS_REGION
"""
"""The dashboards name these uids. CloudWatch signs in with the task role (the SDK's default chain);
its region is the task's: ECS sets AWS_REGION in every task
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-environment-variables.html) and
Grafana expands $VAR in provisioning files
(https://grafana.com/docs/grafana/latest/administration/provisioning/#using-environment-variables)."""

_STATEFUL = {"min_healthy_percent": 0, "max_percent": 100}
"""One task that owns its storage: stop the old task before starting the new one."""

DEFAULT_SERVICES: dict[str, dict[str, Any]] = {
    "backend": {
        "image": "knowledgerouter-backend",
        "cpu": 512,
        "memory": 1024,
        "port": 8000,
        "desired_count": 2,
        "min_count": 2,
        "max_count": 10,
        "health_check": {
            "command": "curl -f http://localhost:8000/api/healthz || exit 1",
            "start_period": 60,
        },
        "environment": {
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "QDRANT_HOST": "{{host:qdrant}}",
            "QDRANT_PORT": "{{port:qdrant}}",
            # The same in one value; with storage external it comes from the secret (with QDRANT_API_KEY).
            "QDRANT_URL": "http://{{host:qdrant}}:{{port:qdrant}}",
            "REDIS_HOST": "{{host:redis}}",
            "REDIS_PORT": "{{port:redis}}",
            # ElastiCache only accepts TLS (transit encryption); the in-cluster redis speaks plain TCP
            "REDIS_SSL": "{{tls:redis}}",
            "POSTGRES_HOST": "{{output:DbEndpointAddress}}",
            "POSTGRES_PORT": "{{output:DbEndpointPort}}",
            "POSTGRES_DB": "{{output:DbName}}",
            "DATA_BUCKET": "{{output:DataBucketName}}",
            "BACKUPS_BUCKET": "{{output:BackupsBucketName}}",
            # The task role writes the backups bucket only under this prefix (buckets below).
            "BACKUPS_PREFIX": "backend/",
        },
        "secrets": {
            "OPENAI_API_KEY": {"secret": "OpenAiSecretArn"},
            "POSTGRES_USER": {"secret": "DbSecretArn", "key": "username"},
            "POSTGRES_PASSWORD": {"secret": "DbSecretArn", "key": "password"},
            "CONFLUENCE_BASE_URL": {"secret": "ConfluenceSecretArn", "key": "base_url"},
            "CONFLUENCE_EMAIL": {"secret": "ConfluenceSecretArn", "key": "email"},
            "CONFLUENCE_API_TOKEN": {"secret": "ConfluenceSecretArn", "key": "api_token"},
            "JIRA_BASE_URL": {"secret": "JiraSecretArn", "key": "base_url"},
            "JIRA_EMAIL": {"secret": "JiraSecretArn", "key": "email"},
            "JIRA_API_TOKEN": {"secret": "JiraSecretArn", "key": "api_token"},
        },
        # The application's own image (built in the application repository, not here): its
        # Dockerfile's USER decides, so the user is left to the image.
        "user": None,
        # Read-only root: the image gets a writable /tmp (declare `VOLUME /tmp` owned by the
        # image's user if it does not run as root).
        "scratch_paths": ["/tmp"],  # noqa: S108 - a task-local volume, not a shared temp dir
        "discovery_name": "backend",
        "metrics_path": "/metrics",
        "load_balancer": {
            "paths": ["/api/*"],
            "priority": 10,
            "health_check_path": "/api/healthz",
            "health_check_grace": 90,
        },
        "capacity": [
            {"provider": "FARGATE", "base": 2, "weight": 30},
            {"provider": "FARGATE_SPOT", "weight": 70},
        ],
        "log_retention_days": 7,
        "buckets": {"DataBucketArn": "read_write", "BackupsBucketArn": "write"},
        "autoscaling": {
            "schedules": [
                {"name": "night", "cron": "0 1 * * ? *", "min_count": 1, "max_count": 3},
                {"name": "morning", "cron": "0 7 * * ? *", "min_count": 2, "max_count": 10},
            ]
        },
    },
    "frontend": {
        "image": "knowledgerouter-frontend",
        "cpu": 256,
        "memory": 512,
        "port": 80,
        "desired_count": 2,
        "min_count": 2,
        "max_count": 2,
        # nginx needs root to bind port 80 (its workers drop to the nginx user) and writable
        # cache/pid directories; the root file system stays read-only. The official nginx image
        # sets no USER (the master runs as root) and creates the workers' user nginx, uid/gid 101
        # (https://github.com/nginxinc/docker-nginx/blob/master/mainline/alpine/Dockerfile).
        "user": "0:0",
        "scratch_paths": ["/var/cache/nginx", "/var/run", "/tmp"],  # noqa: S108
        # The master runs as root: it binds port 80 (NET_BIND_SERVICE), creates and chowns its temp
        # directories (CHOWN, DAC_OVERRIDE, FOWNER), switches the workers to the nginx user (SETUID,
        # SETGID) and signals them (KILL). Everything else in Docker's default set goes.
        "drop_capabilities": ["AUDIT_WRITE", "FSETID", "MKNOD", "NET_RAW", "SETFCAP", "SETPCAP", "SYS_CHROOT"],
        "load_balancer": {"health_check_path": "/"},
        "log_retention_days": 3,
    },
    "qdrant": {
        # The -unprivileged build of the release: built with USER_ID=1000, it runs as 1000:1000 and
        # owns /qdrant (https://github.com/qdrant/qdrant/blob/master/Dockerfile, ARG USER_ID and USER;
        # .github/workflows/docker-image.yml, "Build unprivileged image"). The plain tag runs as root
        # (USER_ID=0), which with every capability dropped cannot write storage owned by 1000
        # (check_storage_users). Upgrade path from older storage: docs/runbook.md, "Images and upgrades".
        "image": image("qdrant"),
        "cpu": 512,
        "memory": 1024,
        "port": 6333,
        **_STATEFUL,
        # The uid that owns its storage (storage_owner): the ebs host's user data chowns the volume
        # to it and the EFS access point's POSIX user is it.
        "user": STORAGE_OWNER,
        "volumes": [{"access_point": "Qdrant", "path": "/qdrant/storage"}],
        # Qdrant writes /qdrant/snapshots (config/config.yaml snapshots_path) and the init marker
        # /qdrant/.qdrant-initialized (src/startup.rs) besides the storage: the image gives /qdrant
        # to 1000, a task volume would be root's, so the root file system stays writable.
        "read_only_root": False,
        "discovery_name": "qdrant",
        # Qdrant's Prometheus endpoint on its HTTP port: https://qdrant.tech/documentation/guides/monitoring/
        "metrics_path": "/metrics",
        "log_retention_days": 7,
    },
    "redis": {
        "image": image("redis"),
        "cpu": 256,
        "memory": 512,
        "port": 6379,
        **_STATEFUL,
        # The image's redis user (uid 999, group redis 1000 in the alpine variant: "addgroup -S -g 1000
        # redis; adduser -S -G redis -u 999 redis" in
        # https://github.com/docker-library/redis/blob/master/7.2/alpine/Dockerfile) owns /data, a
        # VOLUME in the image; started as that user the entry point skips its chown and su-exec,
        # so no capability is needed. The append-only file survives redis restarts within the
        # task only; data.redis: elasticache is the durable option.
        "user": "999:1000",
        "command": ["redis-server", "--appendonly", "yes", "--dir", "/data"],
        "health_check": {"command": "redis-cli ping | grep -q PONG"},
        "scratch_paths": ["/data"],
        "discovery_name": "redis",
        "log_retention_days": 7,
    },
    "prometheus": {
        # 3.13 is a long-term-support release (docs/runbook.md, "Images and upgrades").
        "image": image("prometheus"),
        "cpu": 512,
        "memory": 1024,
        "port": 9090,
        **_STATEFUL,
        "files": {"/etc/prometheus/prometheus.yml": _PROMETHEUS_YML},
        "command": [
            "/bin/prometheus",
            "--config.file=/etc/prometheus/prometheus.yml",
            # The task's ephemeral storage (docs/runbook.md "Grafana and dashboards"); the retention flag
            # comes from monitoring.prometheus_retention.
            "--storage.tsdb.path=/prometheus",
        ],
        "health_check": {"command": "wget -q -O /dev/null http://localhost:9090/-/healthy || exit 1"},
        # The image's own user (USER nobody, 65534 in its busybox base, owning /etc/prometheus and
        # /prometheus: https://github.com/prometheus/prometheus/blob/v2.48.0/Dockerfile), stated so
        # an image change cannot silently run it as root.
        "user": "65534:65534",
        # The image runs as nobody and owns /etc/prometheus; a task volume would be root-owned
        # (ECS only copies ownership for paths the image declares as VOLUME), so the config is
        # written into the container's own file system, which therefore stays writable.
        "read_only_root": False,
        "discovery_name": "prometheus",
        # The cost plan runs monitoring on Spot: an interruption only loses a few minutes of metrics.
        "capacity": [{"provider": "FARGATE_SPOT"}],
        "log_retention_days": 3,
    },
    "grafana": {
        "image": image("grafana"),
        "cpu": 256,
        "memory": 512,
        "port": 3000,
        **_STATEFUL,
        # Grafana's own login stays on; no anonymous access, no self sign-up.
        "environment": {
            "GF_LOG_MODE": "console",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_AUTH_DISABLE_LOGIN_FORM": "false",
        },
        "secrets": {
            "GF_SECURITY_ADMIN_USER": {"secret": "GrafanaAdminSecretArn", "key": "username"},
            "GF_SECURITY_ADMIN_PASSWORD": {"secret": "GrafanaAdminSecretArn", "key": "password"},
        },
        "files": {"/etc/grafana/provisioning/datasources/datasources.yaml": _GRAFANA_DATASOURCES},
        "dashboards": ["infrastructure", "langgraph", "rag"],
        "reads_cloudwatch_metrics": True,
        "command": ["/run.sh"],
        "health_check": {"command": "wget -q -O /dev/null http://localhost:3000/api/health || exit 1"},
        # The image's own user (grafana, uid 472, group root: ARG GF_UID="472", ARG GF_GID="0" in
        # https://github.com/grafana/grafana/blob/v10.2.2/Dockerfile), stated so an image change
        # cannot silently run it as root.
        "user": "472:0",
        # Runs as the grafana user, which owns /var/lib/grafana and /etc/grafana/provisioning in
        # the image; task volumes would be root-owned, so the root file system stays writable.
        "read_only_root": False,
        "discovery_name": "grafana",
        "capacity": [{"provider": "FARGATE_SPOT"}],
        "log_retention_days": 3,
    },
}
