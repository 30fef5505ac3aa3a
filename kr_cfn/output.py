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
_SECTIONS = ("AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Mappings", "Conditions")
_SECTIONS += ("Transform", "Resources", "Outputs")


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when available: cfn_flip's pure-Python one dominated build time."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line strings (scripts, config files) as literal blocks, readable in the template.
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def render(template: Template, fmt: str) -> str:
    """The template as deterministic text (sorted keys, trailing newline)."""
    if fmt == "json":
        return json.dumps(template.to_dict(), indent=2, sort_keys=True) + "\n"
    data = template.to_dict()
    data = {k: data[k] for k in sorted(data, key=lambda k: _SECTIONS.index(k) if k in _SECTIONS else len(_SECTIONS))}
    # Intrinsic functions stay in their long form (Fn::Sub:, Ref:), valid CloudFormation YAML.
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


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
