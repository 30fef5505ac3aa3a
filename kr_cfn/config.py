"""Typed, validated environment configuration loaded from ``params/<env>.yaml``.

Every field has a default; a params file only states what differs. Loading collects
every problem (unknown keys with a "did you mean" hint, wrong types, cross-field
checks) and raises one :class:`ConfigError` that lists them all, one line each::

    params/prod.yaml: network.public_subnet_cidrs[1]: 10.1.2.0/24 is outside vpc_cidr 10.0.0.0/16

Each stack receives only its own slice (see :func:`network_slice`), never the whole file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kr_cfn.naming import Naming

Problem = tuple[str, str]
"""A config problem: (dotted key path, message)."""


class ConfigError(Exception):
    """One or more problems in a params file; ``str()`` gives one line per problem."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(
            "\n".join(f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in self.problems)
        )


class Model(BaseModel):
    """Base for config sections: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self) -> list[Problem]:
        """Cross-field checks; paths are relative to this section."""
        return []


# --------------------------------------------------------------------------- network


class NetworkConfig(Model):
    """The VPC, its subnets and (optionally) private subnets behind NAT gateways."""

    vpc_cidr: IPv4Network = Field(IPv4Network("10.0.0.0/16"), description="VPC CIDR block.")
    public_subnet_cidrs: tuple[IPv4Network, ...] = Field(
        (IPv4Network("10.0.1.0/24"), IPv4Network("10.0.2.0/24")),
        description="One public subnet per AZ, in the region's first AZs (one per entry, >= 2).",
    )
    private_subnets: bool = Field(
        False,
        description="Run tasks and data in private subnets behind NAT (the plan's production advice).",
    )
    private_subnet_cidrs: tuple[IPv4Network, ...] = Field(
        (IPv4Network("10.0.11.0/24"), IPv4Network("10.0.12.0/24")),
        description="Private subnets, one per public subnet's AZ; used when private_subnets is true.",
    )
    nat_gateways: Literal["one", "per_az"] = Field(
        "one", description="With private_subnets: one shared NAT gateway, or one per AZ for AZ-independence."
    )

    @property
    def az_count(self) -> int:
        """How many AZs the network spans (one public subnet each)."""
        return len(self.public_subnet_cidrs)

    def check(self) -> list[Problem]:
        """Subnets: enough AZs, inside the VPC, no overlaps, sizes AWS accepts."""
        problems: list[Problem] = []
        if self.az_count < 2:
            problems.append(("public_subnet_cidrs", f"needs at least 2 subnets (one per AZ), got {self.az_count}"))
        subnets = [(f"public_subnet_cidrs[{i}]", c) for i, c in enumerate(self.public_subnet_cidrs)]
        if self.private_subnets:
            if len(self.private_subnet_cidrs) != self.az_count:
                problems.append(
                    (
                        "private_subnet_cidrs",
                        f"needs one subnet per public subnet ({self.az_count}), got {len(self.private_subnet_cidrs)}",
                    )
                )
            subnets += [(f"private_subnet_cidrs[{i}]", c) for i, c in enumerate(self.private_subnet_cidrs)]
        for i, (key, cidr) in enumerate(subnets):
            if not cidr.subnet_of(self.vpc_cidr):
                problems.append((key, f"{cidr} is outside vpc_cidr {self.vpc_cidr}"))
            elif cidr.prefixlen > 28:
                problems.append((key, f"{cidr} is smaller than /28, the smallest subnet AWS allows"))
            for other_key, other in subnets[:i]:
                if cidr.overlaps(other):
                    problems.append((key, f"{cidr} overlaps {other_key} {other}"))
        if not 16 <= self.vpc_cidr.prefixlen <= 28:
            problems.append(("vpc_cidr", f"{self.vpc_cidr} must have a prefix between /16 and /28"))
        return problems


# --------------------------------------------------------------------------- deploy


class DeployConfig(Model):
    """Root-stack and deployment settings."""

    stack_name: str | None = Field(
        None, pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$", description="Root stack name; default the name prefix."
    )
    image_tag_default: str | None = Field(
        "latest",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="Default of the root's *ImageTag parameters; null makes every deploy name its tags (prod).",
    )


# --------------------------------------------------------------------------- environment

_NAME = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"


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
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags for every stack's resources.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="Network stack settings.")
    deploy: DeployConfig = Field(default_factory=DeployConfig, description="Root stack and deployment settings.")

    @property
    def names(self) -> Naming:
        """The physical-name factory for this environment."""
        return Naming(self.project, self.env, self.name_prefix or f"{self.project}-{self.env}")

    def check(self) -> list[Problem]:
        """Environment-level checks, then every section's own."""
        problems: list[Problem] = []
        if not re.match(_NAME, self.env):
            problems.append(("env", f"{self.env!r} must be lowercase letters, digits and dashes"))
        for key in self.tags:
            if key.lower().startswith("aws:"):
                problems.append((f"tags.{key}", "tag keys starting with 'aws:' are reserved by AWS"))
        for name, value in self:
            if isinstance(value, Model):
                problems += [(f"{name}.{path}", msg) for path, msg in value.check()]
        return problems


# --------------------------------------------------------------------------- stack slices


@dataclass(frozen=True)
class NetworkSlice:
    """What the network stack may see."""

    names: Naming
    network: NetworkConfig


def network_slice(cfg: EnvConfig) -> NetworkSlice:
    """The network stack's slice of the config."""
    return NetworkSlice(cfg.names, cfg.network)


@dataclass(frozen=True)
class RootSlice:
    """What the root stack may see."""

    names: Naming
    tags: dict[str, str]
    image_tag_default: str | None


def root_slice(cfg: EnvConfig) -> RootSlice:
    """The root stack's slice of the config."""
    return RootSlice(cfg.names, cfg.names.tags(cfg.tags), cfg.deploy.image_tag_default)


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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


def _translate(errors: list[Any]) -> Iterator[Problem]:
    for err in errors:
        loc = tuple(err["loc"])
        path = _loc_path(loc)
        if err["type"] == "extra_forbidden":
            parent = _model_at(EnvConfig, loc[:-1])
            known = list(parent.model_fields) if parent else []
            key = str(loc[-1])
            hint = difflib.get_close_matches(key, known, n=1) or [k for k in known if k.startswith(key)][:1]
            expected = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(known)}"
            yield path, f"unknown key ({expected})"
        elif err["type"] == "missing":
            yield path, "required key is missing"
        else:
            got = err.get("input")
            yield path, f"{err['msg'][0].lower()}{err['msg'][1:]}, got {got!r}"


def load(path: Path | str) -> EnvConfig:
    """Load and validate one params file; raise :class:`ConfigError` listing every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read file: {exc.strerror}")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [(where, f"invalid YAML: {problem}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [("", f"expected a mapping of settings at the top level, got {type(data).__name__}")])
    data.setdefault("env", path.stem)
    try:
        cfg = EnvConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _translate(exc.errors())) from None
    problems = cfg.check()
    if cfg.env != path.stem:
        problems.insert(0, ("env", f"{cfg.env!r} must equal the file name {path.stem!r}"))
    if problems:
        raise ConfigError(source, problems)
    return cfg


def available_envs(params_dir: Path) -> list[str]:
    """Environment names with a params file, sorted."""
    return sorted(p.stem for p in params_dir.glob("*.yaml"))
