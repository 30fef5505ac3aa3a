"""Golden templates per environment and stack, compared as parsed data.

Regenerate after an intended change with ``pytest --update-golden`` and review the diff:
a changed logical id in a golden file means a replaced resource in production.
"""

from __future__ import annotations

import json

import pytest

import stacks
from tests.conftest import ENVS, GOLDEN, built

STACK_NAMES = ["root", *(c.name for c in stacks.CHILDREN), "bootstrap"]


@pytest.mark.parametrize("stack", STACK_NAMES)
@pytest.mark.parametrize("env", ENVS)
def test_golden(env: str, stack: str, request: pytest.FixtureRequest) -> None:
    actual = built(env)[stack]
    path = GOLDEN / env / f"{stack}.json"
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; run pytest --update-golden and review it"
    assert actual == json.loads(path.read_text(encoding="utf-8")), f"{env}/{stack} differs from {path}"


def test_no_stale_golden_files() -> None:
    expected = {f"{env}/{stack}.json" for env in ENVS for stack in STACK_NAMES}
    present = {str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*.json")}
    assert present <= expected, f"golden files for no stack or env: {sorted(present - expected)}"
