"""Rendering templates and writing one environment's output folder atomically."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from troposphere import Template

FORMATS = ("yaml", "json")


def render(template: Template, fmt: str) -> str:
    """The template as deterministic text (sorted keys, trailing newline)."""
    if fmt == "json":
        return json.dumps(template.to_dict(), indent=2, sort_keys=True) + "\n"
    return template.to_yaml()


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
