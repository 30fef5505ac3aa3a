"""Shared fixtures: params, built templates as parsed data, the golden-file switch."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from kr_cfn import config

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params"
GOLDEN = Path(__file__).resolve().parent / "golden"
ENVS = config.available_envs(PARAMS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/ from the current build instead of comparing"
    )
    parser.addoption(
        "--update-permissions",
        action="store_true",
        help="rewrite tests/fixtures/pipeline-calls.json from the recorded API calls (then run kr-cfn docs)",
    )


@pytest.fixture(scope="session", autouse=True)
def _lint_cache_outside_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tests' cfn-lint verdicts go to a temporary cache, never the user's (kr_cfn/lint_cache.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KR_CFN_CACHE_DIR", str(tmp_path_factory.mktemp("kr-cfn-cache")))
        yield


@functools.cache
def load_env(env: str) -> config.EnvConfig:
    """The validated config of one shipped environment."""
    return config.load(PARAMS / f"{env}.yaml")


@functools.cache
def _built(env: str) -> dict[str, dict[str, Any]]:
    import stacks

    return {name: t.to_dict() for name, t in stacks.build_all(load_env(env)).items()}


def built(env: str) -> dict[str, dict[str, Any]]:
    """Every template of ``env`` as parsed data: ``{"root": {...}, "network": {...}}``."""
    return _built(env)


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    """The resources of one CloudFormation type, by logical id."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def write_params(tmp_path: Path, env: str, text: str) -> Path:
    """Write a params file ``<tmp>/params/<env>.yaml`` and return its path."""
    params = tmp_path / "params"
    params.mkdir(exist_ok=True)
    path = params / f"{env}.yaml"
    path.write_text(text, encoding="utf-8")
    return path
