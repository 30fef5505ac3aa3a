"""The monthly estimate of built templates (or deployed stacks): prices, usage and the model together."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from kr_cfn import config
from kr_cfn.cost import model, prices, usage
from kr_cfn.cost.report import Estimate, stale
from kr_cfn.cost.templates import Stack, load_built


class CostError(Exception):
    """Bad input to ``kr-cfn cost``: one line, exit 2."""


def estimate(
    cfg: config.EnvConfig,
    env_dir: Path,
    price_file: Path | None = None,
    with_savings: bool = True,
    usage_file: Path | None = None,
    today: date | None = None,
    stacks: list[Stack] | None = None,
) -> Estimate:
    """Price the built templates in ``env_dir`` (or ``stacks``) with ``cfg``'s region, usage and the usage file."""
    if stacks is None and not (env_dir / "root.yaml").exists() and not (env_dir / "root.json").exists():
        raise CostError(f"{env_dir}: no built templates (root.yaml); run kr-cfn build --env {cfg.env} first")
    try:
        book = prices.load(cfg.region, price_file)
        overrides = usage.load(usage_file) if usage_file else {}
    except (prices.PriceError, usage.UsageError) as exc:
        raise CostError(str(exc)) from None
    stacks = load_built(env_dir) if stacks is None else stacks
    used: list[tuple[str, str, str, float]] = []
    lines = model.price(stacks, book, cfg.cost, overrides=overrides, used=used)
    if usage_file:
        try:
            usage.check(usage_file, overrides, used)
        except usage.UsageError as exc:
            raise CostError(str(exc)) from None
    saved = model.savings(stacks, book, cfg.cost, overrides) if with_savings else {}
    est = Estimate(cfg.env, cfg.region, lines, saved, book.files, cfg.cost.hours_per_month)
    est.warnings = stale(lines, today or date.today())
    if with_savings:
        est.savings_plan = model.savings_plan(lines, book)
    est.used = used
    return est
