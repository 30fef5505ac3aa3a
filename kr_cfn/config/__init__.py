"""Typed, validated environment configuration loaded from ``params/<env>.yaml``.

Every field has a default; a params file only states what differs. Loading collects
every problem (unknown keys with a "did you mean" hint, wrong types, cross-field
checks) and raises one :class:`ConfigError` that lists them all, one line each::

    params/prod.yaml: network.public_subnet_cidrs[1]: 10.1.2.0/24 is outside vpc_cidr 10.0.0.0/16

Each stack receives only its own slice (see :func:`network_slice`), never the whole file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, field_validator

from kr_cfn.config.alb import AlbConfig, AlbSlice
from kr_cfn.config.base import ConfigError, Model, Problem
from kr_cfn.config.bootstrap import Application, BootstrapConfig, BootstrapSlice
from kr_cfn.config.cost import CostConfig, check_priced
from kr_cfn.config.data import DataConfig, DataSlice
from kr_cfn.config.deploy import DeployConfig, RootSlice
from kr_cfn.config.flows import Flow, check_connects_to, service_flows
from kr_cfn.config.grafana import check_grafana, check_route_hosts, wire
from kr_cfn.config.monitoring import MonitoringConfig, MonitoringSlice, check_monitoring
from kr_cfn.config.names import check_names
from kr_cfn.config.network import NetworkConfig, NetworkSlice
from kr_cfn.config.production import check_production
from kr_cfn.config.qdrant import QDRANT, SNAPSHOT_JOB, STORAGE_OWNER, EbsStorage, QdrantPlan, Snapshots
from kr_cfn.config.reading import ReadError, read_yaml, translate
from kr_cfn.config.services import (
    QDRANT_SECRET,
    REDIS_OUTPUTS,
    EcsConfig,
    EcsSlice,
    SecretRef,
    ServiceSpec,
    check_services,
    check_storage_users,
    merge_services,
)
from kr_cfn.naming import Naming

__all__ = [
    "AlbConfig",
    "AlbSlice",
    "Application",
    "BootstrapConfig",
    "BootstrapSlice",
    "ConfigError",
    "CostConfig",
    "DataConfig",
    "DataSlice",
    "EcsConfig",
    "EcsSlice",
    "EnvConfig",
    "Model",
    "MonitoringConfig",
    "MonitoringSlice",
    "NetworkConfig",
    "NetworkSlice",
    "Problem",
    "RootSlice",
    "ServiceSpec",
    "alb_slice",
    "available_envs",
    "bootstrap_slice",
    "data_choices",
    "data_slice",
    "ecs_slice",
    "load",
    "monitoring_slice",
    "network_slice",
    "qdrant_plan",
    "root_slice",
]

_NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
_BUCKET_NAME_MAX = 63


class EnvConfig(Model):
    """One environment, as loaded from ``params/<env>.yaml``."""

    env: str = Field(description="Environment name; must equal the params file's name.")
    project: str = Field("knowledgerouter", pattern=_NAME, description="Project name, first part of every name.")
    name_prefix: str | None = Field(
        None,
        pattern=_NAME,
        description="Prefix of physical names; default '<project>-<env>' so environments can share an account.",
    )
    region: str = Field(
        "eu-central-1",
        pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
        description="Region the templates are linted for and deployed to by default.",
    )
    account_id: str | None = Field(
        None,
        pattern=r"^\d{12}$",
        description="AWS account the deploy commands must run in (STS check); required with termination protection.",
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags for every stack's resources.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="Network stack settings.")
    data: DataConfig = Field(default_factory=DataConfig, description="Data stack settings.")
    alb: AlbConfig = Field(default_factory=AlbConfig, description="Load balancer settings.")
    ecs: EcsConfig = Field(default_factory=EcsConfig, description="ECS cluster settings.")
    services: dict[str, ServiceSpec] = Field(
        default_factory=dict,
        validate_default=True,
        description="ECS services by name; params entries merge onto the six defaults, null drops one.",
    )
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Monitoring stack settings: alert e-mails, alarms."
    )
    deploy: DeployConfig = Field(default_factory=DeployConfig, description="Root stack and deployment settings.")
    bootstrap: BootstrapConfig = Field(
        default_factory=BootstrapConfig, description="Bootstrap stack settings (artifacts bucket, ECR, GitHub roles)."
    )
    cost: CostConfig = Field(
        default_factory=CostConfig, description="Usage assumptions of kr-cfn cost (read by no stack)."
    )

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_id_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads 012345678901 as a number (and drops leading zeros): ask for the string.
            raise ValueError(f"write the 12-digit account id in quotes, e.g. account_id: '{value:012d}'")
        return value

    @field_validator("services", mode="before")
    @classmethod
    def _merge_services(cls, value: Any) -> Any:
        return merge_services(value)

    @property
    def names(self) -> Naming:
        """The physical-name factory for this environment."""
        return Naming(self.project, self.env, self.name_prefix or f"{self.project}-{self.env}")

    def check(self) -> list[Problem]:
        """Environment-level checks, then every section's own."""
        problems: list[Problem] = []
        if not re.match(_NAME, self.env):
            problems.append(("env", f"{self.env!r} must be lowercase letters, digits and dashes"))
        # "backups" and "s3-logs" make the longest bucket names: <prefix>-backups-<account>-<region>.
        bucket = f"{self.names('backups')}-123456789012-{self.region}"
        if len(bucket) > _BUCKET_NAME_MAX:
            problems.append(
                (
                    "name_prefix" if self.name_prefix else "env",
                    f"too long for the S3 bucket names ({bucket!r} has {len(bucket)} characters, "
                    f"the limit is {_BUCKET_NAME_MAX})",
                )
            )
        if self.deploy.termination_protection and self.account_id is None:
            problems.append(
                (
                    "account_id",
                    "required when deploy.termination_protection is true: the 12-digit AWS account "
                    "this environment deploys to (the deploy commands refuse any other)",
                )
            )
        for key in self.tags:
            if key.lower().startswith("aws:"):
                problems.append((f"tags.{key}", "tag keys starting with 'aws:' are reserved by AWS"))
        for name, value in self:
            if isinstance(value, Model):
                problems += [(f"{name}.{path}", msg) for path, msg in value.check()]
        for svc, spec in self.services.items():
            problems += [(f"services.{svc}.{path}" if path else f"services.{svc}", msg) for path, msg in spec.check()]
        plan = qdrant_plan(self)
        problems += [
            (f"services.{path}" if path else "services", msg)
            for path, msg in check_services(self.services, self.data.redis, plan.storage if plan else None)
        ]
        problems += [
            (f"services.{path}", msg) for path, msg in check_connects_to(ecs_slice(self).services, data_choices(self))
        ]
        problems += [(f"services.{path}", msg) for path, msg in check_storage_users(ecs_slice(self).services, plan)]
        watched = monitoring_slice(self)
        problems += [
            (f"monitoring.{path}", msg)
            for path, msg in check_monitoring(
                self.monitoring, watched.services, watched.load_balanced, watched.container_insights
            )
        ]
        problems += check_production(self)
        problems += check_priced(
            self.region,
            self.data.db_instance_class,
            self.data.redis_node_type if self.data.redis == "elasticache" else None,
            plan.ebs.instance_type if plan and plan.storage == "ebs" else None,
        )
        problems += check_names(self)
        problems += check_grafana(self.services, ecs_slice(self).services, self.monitoring)
        problems += check_route_hosts(ecs_slice(self).services, self.alb)
        return problems


# --------------------------------------------------------------------------- stack slices


def network_slice(cfg: EnvConfig) -> NetworkSlice:
    """The network stack's slice: its settings, the services (one group each) and who talks to whom."""
    services = ecs_slice(cfg).services
    flows = service_flows(services, data_choices(cfg))
    plan = qdrant_plan(cfg)
    if plan and plan.storage != "external":
        # The snapshot job is no service, but a node with its own group: it talks to qdrant.
        flows = (*flows, Flow(SNAPSHOT_JOB, QDRANT, plan.port))
        return NetworkSlice(cfg.names, cfg.network, (*services, SNAPSHOT_JOB), flows)
    return NetworkSlice(cfg.names, cfg.network, tuple(services), flows)


def data_choices(cfg: EnvConfig) -> dict[str, str]:
    """The ``data.*`` choices that decide which data endpoints exist (kr_cfn.config.flows.Endpoint.requires)."""
    return {"redis": cfg.data.redis}


def data_slice(cfg: EnvConfig) -> DataSlice:
    """The data stack's slice of the config."""
    plan = qdrant_plan(cfg)
    # The EFS file system exists while a service mounts it (qdrant on efs, or any other service with volumes).
    on_efs = any(s.volumes for n, s in cfg.services.items() if n != QDRANT) or bool(plan and plan.storage == "efs")
    return DataSlice(
        cfg.names,
        cfg.data,
        cfg.network.az_count,
        alb_log_prefix=cfg.alb.access_logs_prefix if cfg.alb.access_logs else None,
        region=cfg.region,
        qdrant=plan,
        file_system=on_efs,
    )


def qdrant_plan(cfg: EnvConfig) -> QdrantPlan | None:
    """Qdrant's storage choice (default: ebs with termination protection, else efs); None without qdrant."""
    spec = cfg.services.get(QDRANT)
    if spec is None:
        return None
    storage = spec.storage or ("ebs" if cfg.deploy.termination_protection else "efs")
    owner = spec.storage_owner or STORAGE_OWNER
    return QdrantPlan(storage, spec.ebs or EbsStorage(), spec.snapshots or Snapshots(), spec.port, owner)


def _from_qdrant_secret(spec: ServiceSpec) -> ServiceSpec:
    """A service that talks to qdrant, with an external Qdrant: QDRANT_URL/QDRANT_API_KEY from its secret.

    Environment values that name ``{{host|port|tls:qdrant}}`` have no in-cluster service to point
    at any more and are dropped; the URL (scheme, host and port) and API key replace them.
    """
    marks = tuple(f"{{{{{kind}:{QDRANT}}}}}" for kind in ("host", "port", "tls"))
    environment = {k: v for k, v in spec.environment.items() if not any(m in v for m in marks)}
    if environment == spec.environment:
        return spec
    secrets = dict(spec.secrets)
    secrets["QDRANT_URL"] = SecretRef(secret=QDRANT_SECRET, key="url")
    secrets["QDRANT_API_KEY"] = SecretRef(secret=QDRANT_SECRET, key="api_key")
    return spec.model_copy(update={"environment": environment, "secrets": secrets})


def alb_slice(cfg: EnvConfig) -> AlbSlice:
    """The alb stack's slice: its settings and the services behind it."""
    routes = {n: (s.port, s.load_balancer) for n, s in ecs_slice(cfg).services.items() if s.load_balancer}
    return AlbSlice(cfg.names, cfg.alb, routes)


def ecs_slice(cfg: EnvConfig) -> EcsSlice:
    """The ecs stack's slice.

    With ``data.redis: elasticache`` the redis service is not rendered and
    ``{{host:redis}}``/``{{port:redis}}`` resolve to the ElastiCache endpoint outputs.
    """
    services = dict(cfg.services)
    external: dict[str, tuple[str, str]] = {}
    if cfg.data.redis == "elasticache":
        services.pop("redis", None)
        external["redis"] = REDIS_OUTPUTS
    plan = qdrant_plan(cfg)
    if plan and plan.storage == "external":
        services.pop(QDRANT)
        services = {n: _from_qdrant_secret(s) for n, s in services.items()}
    elif plan:
        # The resolved choice, so the flows know an ebs qdrant's volume is on its host, not on EFS.
        services[QDRANT] = services[QDRANT].model_copy(update={"storage": plan.storage})
    services = wire(services, cfg.monitoring, cfg.alb)
    retain_logs = cfg.ecs.retain_logs if cfg.ecs.retain_logs is not None else cfg.deploy.termination_protection
    ecs = cfg.ecs.model_copy(update={"namespace": namespace(cfg)})
    return EcsSlice(cfg.names, ecs, services, external, retain_logs=retain_logs, qdrant=plan)


def namespace(cfg: EnvConfig) -> str:
    """The environment's Cloud Map namespace: ``ecs.namespace``, by default ``<prefix>.local``.

    One per environment, so two environments in one account never share a name (dev's
    ``knowledgerouter-dev.local``, staging's ``knowledgerouter-staging.local``): neither one's
    service names are a suffix or a pattern of the other's.
    """
    return cfg.ecs.namespace or f"{cfg.names.prefix}.local"


def monitoring_slice(cfg: EnvConfig) -> MonitoringSlice:
    """The monitoring stack's slice: its settings and what the ecs and alb stacks render."""
    services = ecs_slice(cfg).services
    return MonitoringSlice(
        cfg.names,
        cfg.monitoring,
        tuple(services),
        tuple(alb_slice(cfg).routes),
        cfg.ecs.container_insights != "disabled",
        _snapshots(cfg),
    )


def _snapshots(cfg: EnvConfig) -> bool:
    plan = qdrant_plan(cfg)
    return plan is not None and plan.storage != "external"


def root_slice(cfg: EnvConfig) -> RootSlice:
    """The root stack's slice of the config."""
    return RootSlice(cfg.names, cfg.names.tags(cfg.tags), cfg.deploy.image_tag_default)


def bootstrap_slice(cfg: EnvConfig, app: Application) -> BootstrapSlice:
    """The bootstrap stack's slice: its settings and what the built application templates hold."""
    return BootstrapSlice(
        cfg.names, cfg.env, cfg.deploy.stack(cfg.names), cfg.names.tags(cfg.tags), cfg.bootstrap, cfg.region, app
    )


# --------------------------------------------------------------------------- loading


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class found by following ``loc`` from ``model`` (through lists and dicts)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (tuple, list, dict):
            current = get_args(current)[-1]
        else:
            return None
        while get_origin(current) is not None and get_origin(current) not in (tuple, list, dict):
            args = [a for a in get_args(current) if a is not type(None)]  # Optional[X] -> X
            current = args[0] if args else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def load(path: Path | str) -> EnvConfig:
    """Load and validate one params file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read file: {exc.strerror}")]) from None
    try:
        data = read_yaml(raw)
    except ReadError as exc:
        raise ConfigError(source, [exc.problem]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("", f"expected a mapping of settings at the top level, got {type(data).__name__}")])
    data.setdefault("env", path.stem)
    try:
        cfg = EnvConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, translate(exc.errors(), lambda loc: _model_at(EnvConfig, loc))) from None
    problems = cfg.check()
    if cfg.env != path.stem:
        problems.insert(0, ("env", f"{cfg.env!r} must equal the file name {path.stem!r}"))
    if problems:
        raise ConfigError(source, problems)
    return cfg


def available_envs(params_dir: Path) -> list[str]:
    """Environment names with a params file, sorted."""
    return sorted(p.stem for p in params_dir.glob("*.yaml"))
