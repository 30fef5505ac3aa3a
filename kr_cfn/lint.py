"""cfn-lint through its Python API, one process per environment."""

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


def _lint_dir(job: tuple[Path, str]) -> list[Finding]:
    directory, region = job
    return lint_templates(
        sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".json") and p.name != "parameters.json"), region
    )


def lint_dirs(jobs: list[tuple[Path, str]]) -> list[list[Finding]]:
    """Lint each (directory, region) job; several jobs run in parallel processes."""
    if len(jobs) <= 1:
        return [_lint_dir(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        return list(pool.map(_lint_dir, jobs))
