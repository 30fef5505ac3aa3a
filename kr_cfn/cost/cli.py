"""``kr-cfn cost``: arguments and command (no boto3, no stacks/ import)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from kr_cfn import cliargs, config
from kr_cfn.cost import usage
from kr_cfn.cost.estimating import CostError, estimate
from kr_cfn.cost.report import Estimate, compare, render
from kr_cfn.cost.templates import Stack

EXIT_OVER_LIMIT = 3
"""``--fail-above``: the monthly increase passes the limit (or cannot be shown to stay under it)."""


def _compare(args: argparse.Namespace, cfg: config.EnvConfig, load_env: Any) -> Estimate | None:
    """The estimate ``--compare-to`` names (resolved as every command resolves it)."""
    if not args.compare_to:
        return None
    found = cliargs.resolve_compare(args.compare_to, cfg.env, Path(args.params), Path(args.out))
    if found.env:
        other = load_env(Path(args.params), found.env)
        assert found.folder is not None
        return estimate(other, found.folder, args.prices if other.region == cfg.region else None, False)
    if found.stack:
        est = estimate(cfg, Path(), args.prices, with_savings=False, stacks=_deployed(found.stack, cfg))
    else:
        assert found.folder is not None
        est = estimate(cfg, found.folder, args.prices, with_savings=False, usage_file=args.usage)
    est.env = found.label
    return est


def _deployed(name: str, cfg: config.EnvConfig) -> list[Stack]:
    """The deployed root stack ``name`` and its nested stacks, as the cost model takes them (AWS read)."""
    from kr_cfn.aws import AWS_FAILURES, Aws, failure
    from kr_cfn.cost.deployed import deployed_stacks

    try:
        cfn = Aws(cfg.region).client("cloudformation")
        stack_id = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackId"]
        return deployed_stacks(cfn, stack_id)
    except AWS_FAILURES as exc:
        raise failure(exc, name) from None


def _usd(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text}: expected a finite, non-negative USD amount")
    return value


def add_parser(sub: Any, load_env: Any) -> None:
    """Register ``cost``; ``load_env(params_dir, env)`` validates ``--env`` (raises the CLI's usage error)."""
    p = sub.add_parser("cost", help="monthly cost of the built templates, and what each optimisation saves")
    cliargs.add_env(p, help="environment (a params/<env>.yaml); its cost: section holds the usage")
    cliargs.add_build_dir(p)
    cliargs.add_format(p, renamed={"table": "text"})
    p.add_argument("--prices", type=Path, help="price file overriding the region's figures (same JSON layout)")
    cliargs.add_compare_to(p)
    p.add_argument("--usage", type=Path, metavar="FILE", help="usage figures per resource (stack -> logical id)")
    p.add_argument(
        "--sync-usage", type=Path, metavar="FILE", help="write the usage file skeleton (defaults filled in) and exit"
    )
    p.add_argument(
        "--fail-above",
        type=_usd,
        metavar="USD",
        help="with --compare-to: exit 3 when the monthly increase passes USD (default: cost.fail_above_usd)",
    )

    def run(args: argparse.Namespace) -> int:
        cfg = load_env(Path(args.params), args.env)
        try:
            if args.sync_usage:
                return _sync(cfg, args)
            est = estimate(cfg, Path(args.out) / cfg.env, args.prices, usage_file=args.usage)
            cliargs.warn_if_stale(Path(args.out) / cfg.env, Path(args.params) / f"{cfg.env}.yaml")
            other = _compare(args, cfg, load_env)
        except CostError as exc:
            print(exc, file=sys.stderr)
            return 2
        limit = args.fail_above if args.fail_above is not None else cfg.cost.fail_above_usd
        limit = limit if other is not None else None
        sys.stdout.write(render(est, "table" if args.format == "text" else args.format, other, limit))
        for warning in est.warnings if args.format == "json" else []:  # table and Markdown carry them as notes
            print(f"warning: {warning}", file=sys.stderr)
        if other is not None and limit is not None and compare(other.lines, est.lines, limit)["exceeded"]:
            print(f"monthly increase passes --fail-above {limit:,.2f} USD (or is unknown)", file=sys.stderr)
            return EXIT_OVER_LIMIT
        return 0

    p.set_defaults(func=run)


def _sync(cfg: config.EnvConfig, args: argparse.Namespace) -> int:
    """Write the usage skeleton of ``cfg``'s estimate to ``args.sync_usage``, keeping the figures it holds."""
    path: Path = args.sync_usage
    try:
        existing = usage.load(path) if path.exists() else {}
    except usage.UsageError as exc:
        raise CostError(str(exc)) from None
    est = estimate(cfg, Path(args.out) / cfg.env, args.prices, with_savings=False)
    cliargs.write_file(path, usage.skeleton(est.used, existing), "--sync-usage")
    print(f"{path}: {len({(s, r) for s, r, _, _ in est.used})} resources with usage figures")
    return 0
