"""Create-only properties of resource types, from the provider schemas cfn-lint ships (no network).

A property in a type's ``createOnlyProperties`` cannot be changed in place: CloudFormation
replaces the resource (https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html,
"createOnlyProperties"). ``conditionalCreateOnlyProperties`` are not used: the schemas list there
properties that replace only in rare cases (RDS: BackupRetentionPeriod, MultiAZ), which would
make every routine change look like a possible replacement.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

Pointer = tuple[str, ...]
"""A JSON pointer below ``/properties`` as segments; ``*`` stands for any list item."""


@functools.cache
def _schema_dir() -> Path:
    # Found without importing cfnlint (its import alone takes longer than the whole forecast).
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or spec.origin is None:
        raise RuntimeError("cfn-lint is not installed: its provider schemas are needed")
    return Path(spec.origin).parent / "data" / "schemas"


@functools.cache
def _provider(region: str) -> dict[str, str]:
    providers = _schema_dir() / "providers"
    path = providers / f"{region}.json"
    if not path.exists():
        path = providers / "us-east-1.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _pointers(values: list[str] | None) -> tuple[Pointer, ...]:
    out = []
    for v in values or []:
        parts = v.split("/")
        if len(parts) > 2 and parts[1] == "properties":
            out.append(tuple(parts[2:]))
    return tuple(out)


@functools.cache
def create_only(region: str, resource_type: str) -> tuple[Pointer, ...]:
    """The ``createOnlyProperties`` of a type in a region; empty when the type is unknown (custom)."""
    digest = _provider(region).get(resource_type)
    if digest is None:
        return ()
    path = _schema_dir() / "resources" / f"{digest}.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        return ()
    return _pointers(schema.get("createOnlyProperties"))
