"""Benchmark of ``build.py``: wall time and peak memory, median of several runs.

Targets on the project's 2-core machine: every env without lint <= 1.0 s and <= 150 MB;
with lint <= 15 s. Each run is a fresh process (imports included), as a user sees it:
after one uncounted warm-up run, with Python's bytecode cache on even where the
environment sets PYTHONDONTWRITEBYTECODE (without the cache, every run recompiles
every imported module, which no installed tool does).
Usage: ``python bench/build_bench.py [--runs 5]``; exit 1 when a target is missed.
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
TARGETS = {"build --no-lint": (1.0, 150.0), "build (with lint)": (15.0, None)}


def _run(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``build.py`` process."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "build.py"), "--out", out, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"build.py {' '.join(args)} failed")
    # ru_maxrss (KiB on Linux): the largest resident set of the process and of the lint
    # worker processes it waited for.
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    """Run the benchmark and print a table; non-zero exit when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    missed = False
    print(f"{'case':<20} {'median s':>9} {'min s':>7} {'peak MB':>8}  target")
    for case, args in (("build --no-lint", ["--no-lint"]), ("build (with lint)", [])):
        _run(args)  # warm-up: fills the bytecode cache
        samples = [_run(args) for _ in range(runs)]
        wall = statistics.median(s[0] for s in samples)
        peak = max(s[1] for s in samples)
        max_s, max_mb = TARGETS[case]
        ok = wall <= max_s and (max_mb is None or peak <= max_mb)
        missed |= not ok
        target = f"<= {max_s} s" + (f", <= {max_mb:.0f} MB" if max_mb else "")
        fastest = min(s[0] for s in samples)
        verdict = "ok" if ok else "MISSED"
        print(f"{case:<20} {wall:>9.3f} {fastest:>7.3f} {peak:>8.1f}  {target} {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
