"""``kr-cfn diff``: the offline replacement forecast of a build against a previous build or a deployed stack.

Works without AWS credentials against a folder (so pull requests from forks get it too); the
change set of ``plan``, where one exists, stays the authority (``kr-cfn diff --review`` says where
the two disagree).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kr_cfn import cliargs
from kr_cfn import trees as trees_mod
from kr_cfn.changes import guard
from kr_cfn.changes.forecast import forecast
from kr_cfn.changes.review import FORECAST, GuardFinding, Review, StackChanges, render_markdown, render_text
from kr_cfn.errors import EXIT_GUARD, DeployError


def make_review(
    old: trees_mod.Tree, new: trees_mod.Tree, region: str, stack_name: str, label: str, allowed: Sequence[str]
) -> Review:
    """The forecast from ``old`` to ``new`` as a review, with the guard's findings."""
    stacks = forecast(old, new, region)
    return Review(
        stack_name=stack_name,
        change_set_name=label,
        change_set_id="",
        change_set_type=FORECAST,
        region=region,
        stacks=stacks,
        findings=_whole_stack_allowances(
            stacks, guard.findings(stacks, list(allowed), guard.template_contents(_template_at(old))), allowed
        ),
    )


def _template_at(old: trees_mod.Tree) -> Callable[[str], dict[str, Any] | None]:
    """``root/DataStack`` -> that nested stack's template in the previous build (what a removal deletes)."""

    def template_at(path: str) -> dict[str, Any] | None:
        tree: trees_mod.Tree | None = old
        for logical_id in path.split("/")[1:]:
            tree = tree.children.get(logical_id) if tree else None
        return tree.template if tree else None

    return template_at


def _whole_stack_allowances(
    stacks: Sequence[StackChanges], findings: list[GuardFinding], allowed: Sequence[str]
) -> list[GuardFinding]:
    """A resource of a nested stack removed whole is also allowed by the stack's logical id; one finding each."""
    whole = {
        f"{s.path}/{c.logical_id}"
        for s in stacks
        for c in s.changes
        if c.type == trees_mod.STACK_TYPE and c.action == "Remove" and c.logical_id in allowed
    }
    out: list[GuardFinding] = []
    seen: set[tuple[str, str]] = set()
    for f in findings:
        if (f.path, f.logical_id) in seen:
            continue
        seen.add((f.path, f.logical_id))
        if not f.allowed and any(f.path == w or f.path.startswith(f"{w}/") for w in whole):
            f = dataclasses.replace(f, allowed=True)
        out.append(f)
    return out


def _rows(data: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(stack path, logical id) -> (action, replacement) of a review.json, as comparable rows.

    Left out: a nested stack's own Modify row (the change set's says TemplateURL for any change
    of the child, whose rows are compared instead) and the rows inside a nested stack that is
    added or removed whole (the change set shows only the stack; the forecast lists its content).
    """
    whole = {
        f"{stack.get('path')}/{c.get('logical_id')}"
        for stack in data.get("stacks") or []
        for c in stack.get("changes") or []
        if c.get("type") == trees_mod.STACK_TYPE and c.get("action") in ("Add", "Remove")
    }
    rows = {}
    for stack in data.get("stacks") or []:
        path = str(stack.get("path"))
        if any(path == w or path.startswith(f"{w}/") for w in whole):
            continue
        for c in stack.get("changes") or []:
            if c.get("type") == trees_mod.STACK_TYPE and c.get("action") == "Modify":
                continue
            replacement = (c.get("replacement") or "-") if c.get("action") == "Modify" else "-"
            rows[(path, str(c.get("logical_id")))] = (str(c.get("action")), str(replacement))
    return rows


def disagreements(forecast_json: dict[str, Any], review_json: dict[str, Any]) -> list[str]:
    """Where the forecast and the change set's review differ, one line each (the change set is right)."""
    fc, cs = _rows(forecast_json), _rows(review_json)
    out = []
    for key in sorted(set(fc) | set(cs)):
        where = f"{key[0]}/{key[1]}"
        if key not in cs:
            out.append(f"`{where}`: forecast {fc[key][0]} ({fc[key][1]}), not in the change set")
        elif key not in fc:
            out.append(f"`{where}`: change set {cs[key][0]} ({cs[key][1]}), not forecast")
        elif fc[key] != cs[key]:
            out.append(f"`{where}`: forecast {fc[key][0]} ({fc[key][1]}), change set {cs[key][0]} ({cs[key][1]})")
    return out


def comparison_markdown(forecast_json: dict[str, Any], review_path: Path) -> str:
    """The forecast-vs-change-set section of the pull-request comment."""
    if not review_path.is_file():
        return "No change-set review to compare with (no AWS access for this run): the forecast is all there is.\n"
    try:
        review_json = json.loads(review_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"{review_path}: not a review.json ({exc})") from None
    if not isinstance(review_json, dict):
        raise DeployError(f"{review_path}: not a review.json (expected an object)")
    lines = disagreements(forecast_json, review_json)
    if not lines:
        return "The forecast agrees with the change set.\n"
    return (
        "> [!IMPORTANT]\n> The forecast and the change set disagree; **the change set is the authority**:\n"
        + "".join(f"> - {line}\n" for line in lines)
    )


def _old_tree(args: argparse.Namespace, cfg: Any) -> tuple[trees_mod.Tree, str]:
    if getattr(args, "compare_to", None) is None:
        raise DeployError("kr-cfn diff: --compare-to is required (a previous build folder, an env or stack:NAME)")
    out_dir = Path(args.out or "out")
    found = cliargs.resolve_compare(args.compare_to, cfg.env, Path(args.params), out_dir)
    if found.stack:
        return trees_mod.from_stack_name(found.stack, cfg.region), found.label
    assert found.folder is not None
    return trees_mod.from_folder(found.folder), found.label


def run(args: argparse.Namespace, cfg: Any, build_files: Callable[[Any], dict[str, str]]) -> int:
    """``kr-cfn diff``: print the forecast, write forecast.json/.md, exit 3 when the guard blocks."""
    old, old_label = _old_tree(args, cfg)
    if args.out:
        folder = cliargs.env_folder(args.out, cfg.env)
        new, new_label = trees_mod.from_folder(folder), str(folder)
    else:
        new, new_label = trees_mod.from_build(build_files(cfg), cfg.env), f"build of {cfg.env}"
    review = make_review(
        old,
        new,
        cfg.region,
        args.stack_name or cfg.deploy.stack(cfg.names),
        f"{old_label} -> {new_label}",
        args.allow_replace or [],
    )
    review.cost = _cost_delta(old, new, cfg)
    markdown = render_markdown(review)
    if args.review:
        markdown += "\n#### Forecast vs change set\n\n" + comparison_markdown(
            json.loads(review.to_json()), Path(args.review)
        )
    if args.review_dir:
        directory = cliargs.make_dir(Path(args.review_dir), "--review-dir")
        cliargs.write_file(directory / "forecast.json", review.to_json(), "--review-dir")
        cliargs.write_file(directory / "forecast.md", markdown, "--review-dir")
    print({"json": review.to_json(), "markdown": markdown}.get(args.format) or render_text(review), end="")
    if args.review_dir:
        print(f"forecast: {Path(args.review_dir) / 'forecast.json'} {Path(args.review_dir) / 'forecast.md'}")
    for f in review.blocked:
        fate = "deleted" if f.action == "Remove" else "replaced"
        if f.nested_stack:
            fate = f"removed with nested stack {f.nested_stack}"
        if f.weakened:
            fate = f"{'updated' if f.in_place else fate}, losing a protection: " + "; ".join(w.text for w in f.weakened)
        print(
            f"guard: {f.path}/{f.logical_id} ({f.type}) would be {fate}; pass --allow-replace {f.allow_id} "
            "if that data may be lost",
            file=sys.stderr,
        )
    return EXIT_GUARD if review.blocked else 0


def _cost_stacks(tree: trees_mod.Tree) -> list[Any]:
    """The root and its nested stacks as the cost model takes them (parameters wired from the root)."""
    from kr_cfn.cost.templates import Stack, wire

    params = tree.template.get("Parameters") or {}
    defaults = {k: v["Default"] for k, v in params.items() if isinstance(v, dict) and "Default" in v}
    return wire(Stack("root", tree.template, defaults), {k: c.template for k, c in tree.children.items()})


def _cost_delta(old: trees_mod.Tree, new: trees_mod.Tree, cfg: Any) -> dict[str, Any]:
    """Monthly cost of the old and the new templates, as ``plan`` reports it; the reason when it cannot."""
    from kr_cfn.cost import model, prices
    from kr_cfn.cost.report import compare

    try:
        book = prices.load(cfg.region)
    except prices.PriceError as exc:  # the estimate is information: the forecast goes on
        return {"error": str(exc)}
    before = model.price(_cost_stacks(old), book, cfg.cost)
    after = model.price(_cost_stacks(new), book, cfg.cost)
    return compare(before, after, cfg.cost.fail_above_usd)


def add_parser(sub: Any, load_env: Callable[[Path, str], Any], build_files: Callable[[Any], dict[str, str]]) -> None:
    """Register ``kr-cfn diff``; ``build_files(cfg)`` renders an env's templates as ``kr-cfn build`` does."""
    p = sub.add_parser(
        "diff",
        help="offline forecast of what a deploy would add, change, replace or delete (exit 3: stateful at risk)",
    )
    cliargs.add_env(p)
    cliargs.add_compare_to(p, help=cliargs.COMPARE_HELP + " (required)")
    cliargs.deprecated(p, "--against", "compare_to", "--compare-to")
    cliargs.add_build_dir(
        p, default=None, help="build output folder to forecast: <out>/<env> (or DIR itself) instead of a fresh build"
    )
    cliargs.deprecated(p, "--build", "out", "--out")
    p.add_argument("--stack-name", help="root stack name shown in the review (default: deploy.stack_name)")
    p.add_argument("--allow-replace", action="append", metavar="LOGICAL_ID", help="accept losing this resource")
    p.add_argument("--review-dir", help="write forecast.json and forecast.md here")
    p.add_argument("--review", metavar="REVIEW_JSON", help="plan's review.json: say where the change set disagrees")
    cliargs.add_format(p)
    cliargs.deprecated(p, "--output", "format", "--format", choices=cliargs.REPORT_FORMATS)

    def call(args: argparse.Namespace) -> int:
        cfg = load_env(Path(args.params), args.env)
        from kr_cfn.deploy.args import check

        check(args, cfg.env)  # malformed options (--allow-replace, --stack-name) fail first
        try:
            return run(args, cfg, build_files)
        except Exception as exc:  # AWS errors of --compare-to stack:NAME: one line, no traceback
            if type(exc).__module__.startswith("botocore"):
                code = 1 if type(exc).__name__ == "ClientError" else 2  # a failed call / no endpoint or region
                raise DeployError(f"AWS error: {exc}", code=code) from None
            raise

    p.set_defaults(func=call)


def _compare_main(argv: Sequence[str]) -> int:
    """``python -m kr_cfn.changes.diffcmd compare FORECAST_JSON REVIEW_JSON``: the comparison as Markdown."""
    parser = argparse.ArgumentParser(prog="python -m kr_cfn.changes.diffcmd compare")
    parser.add_argument("forecast", type=Path, help="forecast.json of kr-cfn diff")
    parser.add_argument("review", type=Path, help="review.json of kr-cfn plan (may be missing)")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.forecast.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("expected an object")
        print(comparison_markdown(data, args.review), end="")
    except (OSError, ValueError) as exc:
        print(f"{args.forecast}: not a forecast.json ({exc})", file=sys.stderr)
        return 2
    except DeployError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["compare"]:
        sys.exit("usage: python -m kr_cfn.changes.diffcmd compare FORECAST_JSON REVIEW_JSON")
    sys.exit(_compare_main(sys.argv[2:]))
