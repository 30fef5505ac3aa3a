"""cfn-lint through its Python API, spread over one process per core."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path


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

    matches = lint_by_config({"templates": [str(p) for p in paths], "regions": [region], "include_checks": ["I"]})
    return sorted(Finding(str(m.filename), m.linenumber, m.rule.id, m.message.replace("\n", " ")) for m in matches)


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


def lint_dirs(jobs: list[tuple[Path, str]]) -> list[list[Finding]]:
    """Lint every template of each (directory, region) job; findings per job, in job order.

    The templates of all jobs are spread over one process per core by size, which keeps
    both cores busy (a process per environment left one core idle at the end). Splitting
    is safe: the root's nested-stack checks read the children from disk.
    """
    items = [(path, region) for directory, region in jobs for path in _templates(directory)]
    workers = min(len(items), os.cpu_count() or 1)
    if workers <= 1:
        findings = _lint_chunk(items)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            findings = [f for chunk in pool.map(_lint_chunk, _balance(items, workers)) for f in chunk]
    dirs = [directory.resolve() for directory, _ in jobs]
    per_job: list[list[Finding]] = [[] for _ in jobs]
    for f in findings:
        parent = Path(f.path).resolve().parent
        per_job[dirs.index(parent) if parent in dirs else 0].append(f)
    return [sorted(fs) for fs in per_job]
