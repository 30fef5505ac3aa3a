"""The cache of cfn-lint verdicts (kr_cfn/lint_cache.py): hits, misses, concurrent writers, corrupt entries.

Every test points ``KR_CFN_CACHE_DIR`` at its own temporary folder (never the user's cache).
cfn-lint runs in this process (one "core"), so the tests can count what it was asked to lint.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kr_cfn import lint, lint_cache
from kr_cfn.lint import Finding, lint_dirs

REGION = "eu-west-1"
BAD = "Resources:\n  Logs:\n    Type: AWS::Logs::LogGroup\n"  # I3011 twice: no DeletionPolicy/UpdateReplacePolicy
GOOD = BAD + "    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n"


@pytest.fixture
def linted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates cfn-lint is asked to lint, in order (the cache in a temporary folder)."""
    monkeypatch.setenv("KR_CFN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KR_CFN_LINT_CACHE", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # lint in this process, where the calls are counted
    calls: list[str] = []
    real = lint.lint_templates

    def counting(paths: list[Path], region: str) -> list[Finding]:
        calls.extend(p.name for p in paths)
        return real(paths, region)

    monkeypatch.setattr(lint, "lint_templates", counting)
    return calls


@pytest.fixture
def fresh_identity() -> Iterator[None]:
    """Forget the memoised cfn-lint identity before and after (the test changes what it is made of)."""
    lint_cache._linter_identity.cache_clear()
    yield
    lint_cache._linter_identity.cache_clear()


def _folder(path: Path, **templates: str) -> Path:
    path.mkdir(parents=True)
    for name, text in templates.items():
        (path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return path


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "lint").glob("*.json"))


def test_a_hit_returns_the_findings_cfn_lint_reported(tmp_path: Path, linted: list[str]) -> None:
    folder = _folder(tmp_path / "a", bad=BAD, good=GOOD)
    cold = lint_dirs([(folder, REGION)])
    assert linted == ["bad.yaml", "good.yaml"]
    assert [(f.path, f.line, f.rule) for f in cold[0]] == [(str(folder / "bad.yaml"), 2, "I3011")] * 2
    assert len(_entries(tmp_path)) == 2
    linted.clear()
    # the same bytes in another folder (the next build's staging folder): cached, and named where they are now
    other = shutil.copytree(folder, tmp_path / "b")
    warm = lint_dirs([(other, REGION)])
    assert linted == []
    assert warm == [[dataclasses.replace(f, path=str(other / "bad.yaml")) for f in cold[0]]]


def test_a_changed_template_or_rule_setting_is_linted_again(
    tmp_path: Path, linted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _folder(tmp_path / "a", bad=GOOD, good=GOOD)
    assert lint_dirs([(folder, REGION)]) == [[]]
    linted.clear()
    (folder / "bad.yaml").write_text(BAD, encoding="utf-8")
    changed = lint_dirs([(folder, REGION)])
    assert linted == ["bad.yaml"]  # good.yaml is unchanged: still cached
    assert [f.rule for f in changed[0]] == ["I3011", "I3011"]
    linted.clear()
    monkeypatch.setattr(lint, "SETTINGS", {"include_checks": []})  # informational rules off
    assert lint_dirs([(folder, REGION)]) == [[]]
    assert linted == ["bad.yaml", "good.yaml"]


NESTING = (
    "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./child.yaml\n"
)


def test_the_key_covers_everything_that_can_change_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_identity: None
) -> None:
    folder = _folder(tmp_path / "a", root=NESTING, child=GOOD)
    root = folder / "root.yaml"
    settings = {"include_checks": ["I"], "regions": [REGION]}
    base = lint_cache.entry_key(root, settings)
    assert lint_cache.entry_key(root, dict(settings)) == base
    keys = {"base": base, "region": lint_cache.entry_key(root, {**settings, "regions": ["us-east-1"]})}
    keys["ignore"] = lint_cache.entry_key(root, {**settings, "ignore_checks": ["W3002"]})
    (folder / "child.yaml").write_text(BAD, encoding="utf-8")  # E3043 reads the nested template
    keys["child"] = lint_cache.entry_key(root, settings)
    monkeypatch.chdir(folder)
    (folder / ".cfnlintrc").write_text("ignore_checks: [I3011]\n", encoding="utf-8")  # cfn-lint reads it itself
    keys["cfnlintrc"] = lint_cache.entry_key(root, settings)
    schemas = tmp_path / "xdg" / "aws" / "cfn-lint" / "schemas"  # what `cfn-lint --update-specs` writes
    schemas.mkdir(parents=True)
    (schemas / "version.json").write_text('{"schema_date": "2099-01-01T00:00:00Z"}', encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    lint_cache._linter_identity.cache_clear()
    keys["schemas"] = lint_cache.entry_key(root, settings)
    real = importlib.metadata.distribution("cfn-lint")
    newer = type("Dist", (), {"version": "99.0.0", "requires": real.requires})()
    monkeypatch.setattr(lint_cache.importlib.metadata, "distribution", lambda name: newer)
    lint_cache._linter_identity.cache_clear()
    keys["version"] = lint_cache.entry_key(root, settings)
    assert len(set(keys.values())) == len(keys), keys


def _write_many(root: Path, key: str, path: Path, writer: int) -> None:
    rows = [(str(path), n, "W0001", f"writer {writer} " + "x" * 100) for n in range(600)]  # ~80 kB
    for _ in range(30):
        lint_cache.store(root, key, path, rows)


def test_concurrent_writers_never_show_a_reader_a_partial_entry(tmp_path: Path) -> None:
    root, key, path = tmp_path / "cache", "k" * 64, tmp_path / "t.yaml"
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_many, args=(root, key, path, w)) for w in (1, 2)]
    for p in writers:
        p.start()
    seen: set[str] = set()
    misses_after_a_hit = 0
    while any(p.is_alive() for p in writers):
        found = lint_cache.load(root, key, path)
        if found is None:
            misses_after_a_hit += bool(seen)
            continue
        assert len(found) == 600 and len({row[3] for row in found}) == 1  # one writer's entry, whole
        seen.add(found[0][3].split()[1])
    for p in writers:
        p.join()
        assert p.exitcode == 0
    assert misses_after_a_hit == 0  # once there, an entry is always whole (an in-place write fails this)
    assert seen and seen <= {"1", "2"}
    assert [p.name for p in root.iterdir()] == [f"{key}.json"]  # no temporary file left behind


def test_a_corrupt_entry_is_ignored_and_rewritten(tmp_path: Path, linted: list[str]) -> None:
    folder = _folder(tmp_path / "a", bad=BAD)
    cold = lint_dirs([(folder, REGION)])
    [entry] = _entries(tmp_path)
    key = entry.stem
    for garbage in (
        b"",
        entry.read_bytes()[:-5],  # a truncated write
        json.dumps({"key": "0" * 64, "findings": []}).encode(),  # another key's entry
        json.dumps({"key": key, "findings": [["bad.yaml", "two", "I3011", "m"]]}).encode(),
        json.dumps({"key": key, "findings": "none"}).encode(),
        b"\xff\xfe",
    ):
        entry.write_bytes(garbage)
        assert lint_cache.load(entry.parent, key, folder / "bad.yaml") is None, garbage
    linted.clear()
    assert lint_dirs([(folder, REGION)]) == cold
    assert linted == ["bad.yaml"]
    assert lint_cache.load(entry.parent, key, folder / "bad.yaml") is not None  # rewritten


def test_an_unwritable_cache_only_means_no_caching(
    tmp_path: Path, linted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("KR_CFN_CACHE_DIR", str(tmp_path / "file"))
    folder = _folder(tmp_path / "a", bad=BAD)
    assert [f.rule for f in lint_dirs([(folder, REGION)])[0]] == ["I3011", "I3011"]
    assert linted == ["bad.yaml"]
    assert not list(tmp_path.glob("**/*.tmp"))


def test_where_the_cache_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KR_CFN_CACHE_DIR", "XDG_CACHE_HOME", "KR_CFN_LINT_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert lint_cache.cache_dir() == tmp_path / "home" / ".cache" / "kr_cfn" / "lint"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # not absolute: ignored, as the XDG spec says
    assert lint_cache.cache_dir() == tmp_path / "home" / ".cache" / "kr_cfn" / "lint"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lint_cache.cache_dir() == tmp_path / "xdg" / "kr_cfn" / "lint"
    monkeypatch.setenv("KR_CFN_CACHE_DIR", str(tmp_path / "mine"))
    assert lint_cache.cache_dir() == tmp_path / "mine" / "lint"
    for off in ("off", "0", "false", "NO"):
        monkeypatch.setenv("KR_CFN_LINT_CACHE", off)
        assert lint_cache.cache_dir() is None
    monkeypatch.setenv("KR_CFN_LINT_CACHE", "on")
    assert lint_cache.cache_dir() == tmp_path / "mine" / "lint"


def test_with_the_cache_off_nothing_is_written(
    tmp_path: Path, linted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KR_CFN_LINT_CACHE", "off")
    folder = _folder(tmp_path / "a", good=GOOD)
    assert lint_dirs([(folder, REGION)]) == [[]]
    assert linted == ["good.yaml"]
    assert not (tmp_path / "cache").exists()
