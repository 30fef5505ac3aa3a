"""``kr-cfn cost``: arguments and command (no boto3, no stacks/ import)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kr_cfn import config
from kr_cfn.cost import model, prices
from kr_cfn.cost.report import FORMATS, Estimate, render
from kr_cfn.cost.templates import load_built


class CostError(Exception):
    """Bad input to ``kr-cfn cost``: one line, exit 2."""


def estimate(
    cfg: config.EnvConfig, env_dir: Path, price_file: Path | None = None, with_savings: bool = True
) -> Estimate:
    """Price the built templates in ``env_dir`` with ``cfg``'s region and usage assumptions."""
    if not (env_dir / "root.yaml").exists() and not (env_dir / "root.json").exists():
        raise CostError(f"{env_dir}: no built templates (root.yaml); run kr-cfn build --env {cfg.env} first")
    try:
        book = prices.load(cfg.region, price_file)
    except prices.PriceError as exc:
        raise CostError(str(exc)) from None
    stacks = load_built(env_dir)
    lines = model.price(stacks, book, cfg.cost)
    saved = model.savings(stacks, book, cfg.cost) if with_savings else {}
    return Estimate(cfg.env, cfg.region, lines, saved, book.files)


def _compare(args: argparse.Namespace, cfg: config.EnvConfig, load_env: Any) -> Estimate | None:
    target = args.compare_to
    if not target:
        return None
    path = Path(target)
    if path.is_dir():
        est = estimate(cfg, path, args.prices, with_savings=False)
        est.env = str(path)
        return est
    if (Path(args.params) / f"{target}.yaml").exists():
        other = load_env(Path(args.params), target)
        return estimate(other, Path(args.out) / other.env, args.prices if other.region == cfg.region else None, False)
    raise CostError(f"--compare-to {target}: neither a folder of built templates nor an environment in {args.params}")


def add_parser(sub: Any, load_env: Any) -> None:
    """Register ``cost``; ``load_env(params_dir, env)`` validates ``--env`` (raises the CLI's usage error)."""
    p = sub.add_parser("cost", help="monthly cost of the built templates, and what each optimisation saves")
    p.add_argument("--env", required=True, help="environment (a params/<env>.yaml); its cost: section holds the usage")
    p.add_argument("--params", default="params", help="folder of <env>.yaml files (default: params)")
    p.add_argument("--out", default="out", help="build output folder (default: out)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--prices", type=Path, help="price file overriding the region's figures (same JSON layout)")
    p.add_argument("--compare-to", metavar="PATH|ENV", help="built templates folder or environment to diff against")

    def run(args: argparse.Namespace) -> int:
        cfg = load_env(Path(args.params), args.env)
        try:
            est = estimate(cfg, Path(args.out) / cfg.env, args.prices)
            other = _compare(args, cfg, load_env)
        except CostError as exc:
            print(exc, file=sys.stderr)
            return 2
        sys.stdout.write(render(est, args.format, other))
        return 0

    p.set_defaults(func=run)
