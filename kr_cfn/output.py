"""Rendering templates and writing one environment's output folder atomically."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from troposphere import Template

FORMATS = ("yaml", "json")


# YAML is written by a small emitter of our own: templates hold only mappings, lists,
# strings, numbers, booleans and null, and PyYAML's Python representer was most of the
# build's time. Strings that YAML 1.1 could read as anything else are written as JSON
# strings (valid YAML double-quoted scalars); tests parse every template back.
_PLAIN = re.compile(r"[A-Za-z/_][A-Za-z0-9 ._/:@*=+,()-]*")
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_LITERAL_SAFE = re.compile(r"[^\t\r\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\u2028\u2029]*")


def _scalar(value: Any, indent: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if "\n" in text and _LITERAL_SAFE.fullmatch(text) and not text.startswith((" ", "\n")):
        # Embedded files (Prometheus, Grafana, dashboards) stay readable as literal blocks.
        chomp = "" if text.endswith("\n") and not text.endswith("\n\n") else "-" if not text.endswith("\n") else None
        if chomp is not None:
            pad = " " * (indent + 2)
            body = text[:-1] if text.endswith("\n") else text
            return f"|{chomp}\n" + "\n".join(pad + line if line else "" for line in body.split("\n"))
    if (
        _PLAIN.fullmatch(text)
        and text.lower() not in _YAML11_WORDS
        and not text.endswith((" ", ":"))
        and ": " not in text
    ):
        return text
    return json.dumps(text)


def _tagged(value: Any) -> tuple[str | None, Any]:
    """CloudFormation's short form: ``{"Ref": x}`` -> ``!Ref x``, ``{"Fn::Join": [..]}`` -> ``!Join [..]``."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Ref":
            return "!Ref", inner
        if key == "Fn::GetAtt" and isinstance(inner, list) and all(isinstance(v, str) for v in inner):
            return "!GetAtt", ".".join(inner)
        if key.startswith("Fn::"):
            return "!" + key.removeprefix("Fn::"), inner
    return None, value


def _emit(out: list[str], head: str, value: Any, indent: int) -> None:
    """Append ``value`` under ``head`` (``"Key:"`` or ``"-"``) written at column ``indent``."""
    tag, value = _tagged(value)
    if tag:
        head = f"{head} {tag}"
    if isinstance(value, dict | list) and value:
        out.append(" " * indent + head)
        start = len(out)
        if isinstance(value, dict):
            for key in sorted(value):
                _emit(out, f"{_scalar(key, 0)}:", value[key], indent + 2)
        else:
            for item in value:
                _emit(out, "-", item, indent + 2)
        if head == "-":  # compact form: "- Key: v" / "- - item" on the entry's own line
            out[start] = " " * indent + "- " + out[start].lstrip(" ")
            del out[start - 1]
    else:
        text = "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else _scalar(value, indent)
        out.append(f"{' ' * indent}{head} {text}")


def to_yaml(data: dict[str, Any]) -> str:
    """A template's data as YAML with short-form intrinsic functions, keys sorted."""
    out: list[str] = []
    for key in sorted(data):
        _emit(out, f"{_scalar(key, 0)}:", data[key], 0)
    return "\n".join(out) + "\n"


_DICT_ATTRIBUTE = "_kr_cfn_dict"


def template_dict(template: Template) -> dict[str, Any]:
    """``template.to_dict()``, made once per template (it validates every property: the build's main cost).

    For complete templates only: a template changed after its first call keeps the first result.
    """
    # Kept on the template itself (a Template hashes by its whole JSON: no dict key).
    data: dict[str, Any] | None = getattr(template, _DICT_ATTRIBUTE, None)
    if data is None:
        data = template.to_dict()
        setattr(template, _DICT_ATTRIBUTE, data)
    return data


def render(template: Template, fmt: str) -> str:
    """The template as deterministic text (sorted keys, trailing newline)."""
    data = template_dict(template)
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    return to_yaml(data)


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
