"""cfn-lint through its Python API, spread over one process per core, with a cache of verdicts.

Unchanged templates are not linted again: :mod:`kr_cfn.lint_cache` keeps each template's
findings, keyed by everything that can change them.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kr_cfn import lint_cache

SETTINGS: dict[str, Any] = {"include_checks": ["I"]}
"""cfn-lint's settings besides templates and regions (part of every cache key)."""


@dataclass(frozen=True, order=True)
class Finding:
    """One cfn-lint match."""

    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} {self.message}"


def lint_templates(paths: list[Path], region: str) -> list[Finding]:
    """Lint templates together (nested-stack rules follow relative TemplateURLs).

    Informational rules are included: an ``I`` finding fails the build like any other.
    """
    from cfnlint.api import lint_by_config  # heavy import: only when linting

    matches = lint_by_config({"templates": [str(p) for p in paths], **_settings(region)})
    return sorted(Finding(str(m.filename), m.linenumber, m.rule.id, m.message.replace("\n", " ")) for m in matches)


def _settings(region: str) -> dict[str, Any]:
    return {**SETTINGS, "regions": [region]}


def _templates(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".json") and p.name != "parameters.json")


def _lint_chunk(chunk: list[tuple[Path, str]]) -> list[Finding]:
    by_region: dict[str, list[Path]] = {}
    for path, region in chunk:
        by_region.setdefault(region, []).append(path)
    return [f for region, paths in sorted(by_region.items()) for f in lint_templates(paths, region)]


def _balance(items: list[tuple[Path, str]], workers: int) -> list[list[tuple[Path, str]]]:
    """Split templates into ``workers`` chunks of about equal size (largest first, greedy)."""
    chunks: list[list[tuple[Path, str]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for item in sorted(items, key=lambda it: (-it[0].stat().st_size, str(it[0]))):
        emptiest = loads.index(min(loads))
        chunks[emptiest].append(item)
        loads[emptiest] += item[0].stat().st_size
    return [c for c in chunks if c]


def _lint_items(items: list[tuple[Path, str]]) -> list[Finding]:
    """Lint ``items`` (template, region) in one process per core."""
    if not items:
        return []
    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1:
        return _lint_chunk(items)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [f for chunk in pool.map(_lint_chunk, _balance(items, workers)) for f in chunk]


def _lint_with_cache(items: list[tuple[Path, str]]) -> list[Finding]:
    """Findings of ``items``: the cache's where it has them, cfn-lint's (then stored) for the rest."""
    root = lint_cache.cache_dir()
    if root is None:
        return _lint_items(items)
    keys = {path: lint_cache.entry_key(path, _settings(region)) for path, region in items}
    found: list[Finding] = []
    misses = []
    for path, region in items:
        hit = lint_cache.load(root, keys[path], path)
        if hit is None:
            misses.append((path, region))
        else:
            found += [Finding(*row) for row in hit]
    linted = _lint_items(misses)
    by_file: dict[str, list[Finding]] = {str(path): [] for path, _ in misses}
    for f in linted:
        by_file.setdefault(f.path, []).append(f)
    if len(by_file) == len(misses):  # else a finding on no template (a config error): nothing stored
        for path, _ in misses:
            lint_cache.store(root, keys[path], path, [(f.path, f.line, f.rule, f.message) for f in by_file[str(path)]])
    return found + linted


def lint_dirs(jobs: list[tuple[Path, str]]) -> list[list[Finding]]:
    """Lint every template of each (directory, region) job; findings per job, in job order.

    The templates of all jobs are spread over one process per core by size, which keeps
    both cores busy (a process per environment left one core idle at the end). Splitting
    is safe: the root's nested-stack checks read the children from disk.
    """
    items = [(path, region) for directory, region in jobs for path in _templates(directory)]
    findings = _lint_with_cache(items)
    dirs = [directory.resolve() for directory, _ in jobs]
    per_job: list[list[Finding]] = [[] for _ in jobs]
    for f in findings:
        parent = Path(f.path).resolve().parent
        per_job[dirs.index(parent) if parent in dirs else 0].append(f)
    return [sorted(fs) for fs in per_job]
