"""Rendering templates and writing one environment's output folder atomically."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from troposphere import Template

FORMATS = ("yaml", "json")


class _CfnDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags (``!Ref``, ``!GetAtt a.b``, ``!Sub``...)."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    if len(data) == 1:
        ((key, value),) = data.items()
        if key == "Ref":
            return dumper.represent_scalar("!Ref", value)
        if key == "Fn::GetAtt" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return dumper.represent_scalar("!GetAtt", ".".join(value))
        if key.startswith("Fn::"):
            tag = "!" + key.removeprefix("Fn::")
            if isinstance(value, list):
                return dumper.represent_sequence(tag, value)
            if isinstance(value, dict):
                return dumper.represent_mapping(tag, value)
            return dumper.represent_scalar(tag, str(value))
    return dumper.represent_dict(data)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # Multi-line values (embedded config files, dashboards) stay readable as block scalars.
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_CfnDumper.add_representer(dict, _represent_dict)
_CfnDumper.add_representer(str, _represent_str)


def render(template: Template, fmt: str) -> str:
    """The template as deterministic text (sorted keys, trailing newline)."""
    data = template.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    # libyaml's emitter: several times faster than troposphere's to_yaml (cfn-flip).
    return yaml.dump(data, Dumper=_CfnDumper, sort_keys=True, default_flow_style=False, width=120, allow_unicode=True)


def render_parameters(values: list[dict[str, Any]]) -> str:
    """``parameters.json`` in the AWS CLI's ParameterKey/ParameterValue format."""
    return json.dumps(values, indent=2) + "\n"


def stage(out_dir: Path, env: str, files: dict[str, str]) -> Path:
    """Write ``files`` into a fresh hidden folder beside ``out_dir/env`` and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{env}.", dir=out_dir))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        tmp.chmod(0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def install(staged: Path, target: Path) -> None:
    """Put a staged folder in place of ``target`` by renames; the old one is removed after."""
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        target.rename(old / target.name)
        staged.rename(target)
        shutil.rmtree(old)
    else:
        staged.rename(target)


def discard(staged: Path) -> None:
    """Remove a staged folder that will not be installed."""
    shutil.rmtree(staged, ignore_errors=True)
