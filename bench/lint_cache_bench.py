"""Benchmark of the lint cache (kr_cfn/lint_cache.py): ``build.py`` cold, warm and without lint.

Every environment, each run a fresh process (imports included), after one uncounted
warm-up run per case, with Python's bytecode cache on (as bench/build_bench.py):

- ``build --no-lint``: no cfn-lint at all, the floor;
- ``build, cold cache``: an empty cache folder every run (every template linted, then stored);
- ``build, warm cache``: the cache filled by an earlier build of the same templates.

Target: a warm build within 4x the ``--no-lint`` build (medians). The cache lives in a
temporary folder (``KR_CFN_CACHE_DIR``), never the user's.
Usage: ``python bench/lint_cache_bench.py [--runs 5] [--cold-runs 3]``; exit 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_WARM_RATIO = 4.0


def _run(args: list[str], cache: Path) -> float:
    """Wall seconds of one ``build.py`` process with its lint cache in ``cache``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "KR_CFN_LINT_CACHE")}
    env["KR_CFN_CACHE_DIR"] = str(cache)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        code = subprocess.call(
            [sys.executable, str(ROOT / "build.py"), "--out", out, *args], cwd=ROOT, stdout=subprocess.DEVNULL, env=env
        )
        wall = time.perf_counter() - start
    if code != 0:
        sys.exit(f"build.py {' '.join(args)} failed (exit {code})")
    return wall


def _cold(_: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        return _run([], Path(cache))


def main() -> int:
    """Run the benchmark and print a table; non-zero exit when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs of the --no-lint and warm cases (default 5)")
    parser.add_argument("--cold-runs", type=int, default=3, help="runs of the cold case (default 3)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as warm_cache:
        cases = {
            "build --no-lint": lambda _: _run(["--no-lint"], Path(warm_cache)),
            "build, cold cache": _cold,
            "build, warm cache": lambda _: _run([], Path(warm_cache)),
        }
        medians: dict[str, float] = {}
        print(f"{'case':<18} {'median s':>9} {'min s':>7} {'runs':>5}")
        for case, run in cases.items():
            run(0)  # warm-up: fills the bytecode cache (and, for "warm", the lint cache)
            samples = [run(i) for i in range(opts.cold_runs if "cold" in case else opts.runs)]
            medians[case] = statistics.median(samples)
            print(f"{case:<18} {medians[case]:>9.3f} {min(samples):>7.3f} {len(samples):>5}")
    ratio = medians["build, warm cache"] / medians["build --no-lint"]
    ok = ratio <= MAX_WARM_RATIO
    print(
        f"warm / --no-lint = {ratio:.2f} (target <= {MAX_WARM_RATIO:.0f}) {'ok' if ok else 'MISSED'}; "
        f"cold / warm = {medians['build, cold cache'] / medians['build, warm cache']:.1f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
