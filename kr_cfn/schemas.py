"""CloudFormation resource provider schemas and IAM action names, as cfn-lint ships them (no network).

Read straight from cfn-lint's data folder without importing cfn-lint: its import alone takes
longer than a whole ``build --no-lint``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any


@functools.cache
def data_dir() -> Path:
    """cfn-lint's ``data`` folder."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or spec.origin is None:
        raise RuntimeError("cfn-lint is not installed: its provider schemas are needed")
    return Path(spec.origin).parent / "data"


@functools.cache
def _provider(region: str) -> dict[str, str]:
    providers = data_dir() / "schemas" / "providers"
    path = providers / f"{region}.json"
    if not path.exists():
        path = providers / "us-east-1.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


@functools.cache
def resource_schema(region: str, resource_type: str) -> dict[str, Any] | None:
    """The provider schema of a type in a region; None when cfn-lint does not know the type."""
    digest = _provider(region).get(resource_type)
    if digest is None:
        return None
    try:
        return dict(json.loads((data_dir() / "schemas" / "resources" / f"{digest}.json").read_text(encoding="utf-8")))
    except OSError:
        return None


@functools.cache
def iam_actions() -> dict[str, frozenset[str]]:
    """Lower-case IAM action names per lower-case service prefix (cfn-lint's ``Policies.json``)."""
    policies = json.loads((data_dir() / "AdditionalSpecs" / "Policies.json").read_text(encoding="utf-8"))
    return {
        service.lower(): frozenset(a.lower() for a in spec.get("Actions", {})) for service, spec in policies.items()
    }
