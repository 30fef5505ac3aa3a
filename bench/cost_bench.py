"""Benchmark of ``kr-cfn cost``: pricing every environment from its built templates.

Target on the project's 2-core machine: all three envs (load the built templates with the
deploy code's loader, price every line, re-price for each optimisation's saving) in <= 0.5 s,
median of several runs in one process after imports. The whole ``kr-cfn cost`` process
(interpreter start and imports included) is printed for information.
Usage: ``python bench/cost_bench.py [--runs 5]``; exit 1 when the target is missed.
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
sys.path.insert(0, str(ROOT))
TARGET_S = 0.5


def main() -> int:
    """Build once, then time pricing all envs; non-zero exit when the target is missed."""
    from kr_cfn import config
    from kr_cfn.cost.estimating import estimate

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, str(ROOT / "build.py"), "--no-lint", "--out", out],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cfgs = [config.load(p) for p in sorted((ROOT / "params").glob("*.yaml"))]
        estimate(cfgs[0], Path(out) / cfgs[0].env)  # warm-up: loader imports, file cache
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            totals = [estimate(cfg, Path(out) / cfg.env).total for cfg in cfgs]
            samples.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "kr_cfn.cli", "cost", "--env", cfgs[0].env, "--out", out],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        process = time.perf_counter() - start
    wall = statistics.median(samples)
    ok = wall <= TARGET_S
    envs = ", ".join(f"{c.env} {t:,.2f}" for c, t in zip(cfgs, totals, strict=True))
    print(f"price {len(cfgs)} envs ({envs} USD/month)")
    print(
        f"  median {wall:.3f} s, min {min(samples):.3f} s over {runs} runs; "
        f"target <= {TARGET_S} s {'ok' if ok else 'MISSED'}"
    )
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"  load average {load} on {os.cpu_count()} cores (other work on the machine inflates the times)")
    print(f"  one 'kr-cfn cost' process (imports included, for information): {process:.3f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
