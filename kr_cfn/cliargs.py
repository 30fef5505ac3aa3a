"""Options every ``kr-cfn`` subcommand spells the same way, and the plumbing they share.

One meaning per flag: ``--out DIR`` is the build output folder (each env in ``<out>/<env>``),
``--format`` the output format (``--json`` an alias of ``--format json`` where it existed),
``--compare-to`` what a command compares with (:func:`resolve_compare`), ``-o/--output FILE``
a file written. Old spellings stay for one release as hidden :class:`Deprecated` options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kr_cfn.errors import EXIT_USAGE, DeployError

BUILD_DIR_HELP = "build output folder: each env's templates are in <out>/<env> (default: out)"
REPORT_FORMATS = ("text", "json", "markdown")
"""``--format`` of a report: ``text`` for people, ``json`` for programs, ``markdown`` for comments."""
COMPARE_METAVAR = "out/|out/ENV|ENV|stack:NAME"
COMPARE_HELP = (
    "compare with another build (its out/ or out/<env> folder), the build of another env in --out, "
    "or the deployed root stack (stack:NAME)"
)
STACK_PREFIX = "stack:"
ROOTS = ("root.yaml", "root.json")


class Deprecated(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and says so on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", **kwargs: Any) -> None:
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        """Warn, then store as the new option would."""
        warn_deprecated(parser.prog, str(option), self.new)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def warn_deprecated(prog: str, old: str, new: str) -> None:
    """The one line an old spelling prints (stderr)."""
    print(f"{prog}: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


def deprecated(p: argparse.ArgumentParser, old: str, dest: str, new: str, flag: bool = False, **kwargs: Any) -> None:
    """Keep ``old`` working as a hidden alias of ``new`` (stored in ``dest``) for one release."""
    if flag:
        kwargs.update(nargs=0, const=kwargs.get("const", True))
    p.add_argument(old, dest=dest, action=Deprecated, new=new, default=argparse.SUPPRESS, **kwargs)


def add_env(p: argparse.ArgumentParser, help: str = "environment (a params/<env>.yaml)") -> None:
    """``--env ENV`` (required) and ``--params DIR``."""
    p.add_argument("--env", required=True, help=help)
    p.add_argument("--params", default="params", help="folder of <env>.yaml files (default: params)")


def add_build_dir(p: argparse.ArgumentParser, default: str | None = "out", help: str = BUILD_DIR_HELP) -> None:
    """``--out DIR``: the build output folder, the same word in every subcommand."""
    p.add_argument("--out", default=default, metavar="DIR", help=help)


def add_format(
    p: argparse.ArgumentParser,
    choices: Sequence[str] = REPORT_FORMATS,
    default: str = "text",
    json_alias: bool = False,
    renamed: dict[str, str] | None = None,
) -> None:
    """``--format``; ``json_alias`` keeps ``--json``; ``renamed`` maps old choice names (with a deprecation line)."""
    old = dict(renamed or {})

    def value(text: str) -> str:
        if text in old:
            warn_deprecated(f"{p.prog}: --format", text, old[text])
            return old[text]
        return text

    p.add_argument(
        "--format", choices=tuple(choices), default=default, type=value, help=f"output format (default: {default})"
    )
    if json_alias:
        p.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")


def add_compare_to(p: argparse.ArgumentParser, help: str = COMPARE_HELP) -> None:
    """``--compare-to``: what to compare with, resolved by :func:`resolve_compare` in every command."""
    p.add_argument("--compare-to", metavar=COMPARE_METAVAR, help=help)


def add_output_file(p: argparse.ArgumentParser, help: str) -> None:
    """``-o/--output FILE``: a file the command writes (never a folder, never a format)."""
    p.add_argument("-o", "--output", metavar="FILE", help=help)


@dataclass(frozen=True)
class Comparison:
    """What ``--compare-to`` named: built templates in ``folder`` (of ``env`` when an env name) or a ``stack``."""

    label: str
    folder: Path | None = None
    env: str | None = None
    stack: str | None = None


def has_build(folder: Path) -> bool:
    """``folder`` holds built templates (a root.yaml or root.json)."""
    return any((folder / name).is_file() for name in ROOTS)


def env_folder(value: str, env: str, option: str = "--out") -> Path:
    """A build folder given as ``out/`` (the env's part is taken) or as ``out/<env>`` itself."""
    path = Path(value)
    if has_build(path):
        return path
    if has_build(path / env):
        return path / env
    if not path.is_dir():
        raise DeployError(f"{option} {value}: no such folder")
    raise DeployError(
        f"{option} {value}: no built templates in {path} or {path / env}; run kr-cfn build --env {env} --out {value}"
    )


def resolve_compare(value: str, env: str, params_dir: Path, out_dir: Path) -> Comparison:
    """``--compare-to VALUE`` of ``env``: ``stack:NAME``, a build folder (``out/`` or ``out/<env>``), or an env name.

    The same answer in every command that compares (diff, cost, diagram); a bad value is one line, exit 2.
    """
    option = "--compare-to"
    if value.startswith(STACK_PREFIX):
        name = value.removeprefix(STACK_PREFIX)
        if not name:
            raise DeployError(f"{option} {value}: expected stack:NAME, the deployed root stack's name")
        return Comparison(f"stack {name}", stack=name)
    if Path(value).is_dir():
        folder = env_folder(value, env, option)
        return Comparison(str(folder), folder=folder)
    if (params_dir / f"{value}.yaml").is_file():
        folder = out_dir / value
        if not has_build(folder):
            raise DeployError(f"{option} {value}: {folder} holds no built templates; run kr-cfn build --env {value}")
        return Comparison(str(folder), folder=folder, env=value)
    raise DeployError(
        f"{option} {value}: not a build folder (out/ or out/<env>), an environment in {params_dir}, or stack:NAME"
    )


def warn_if_stale(env_dir: Path, params_file: Path) -> None:
    """One stderr line when the build in ``env_dir`` is older than its params file (a rebuild is due)."""
    roots = [env_dir / name for name in ROOTS if (env_dir / name).is_file()]
    if roots and params_file.is_file() and params_file.stat().st_mtime > max(r.stat().st_mtime for r in roots):
        env = env_dir.name
        print(
            f"warning: {env_dir} was built before {params_file} last changed; run kr-cfn build --env {env}",
            file=sys.stderr,
        )


def write_file(path: Path, data: bytes | str, option: str) -> None:
    """Write ``data`` to ``path`` through a temporary file; a path that cannot be written is one line, exit 2."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(raw)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DeployError(f"{option} {path}: cannot write ({exc.strerror or exc})", EXIT_USAGE) from None


def make_dir(path: Path, option: str) -> Path:
    """Create the folder ``path`` (and its parents) for output; one line, exit 2, when it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeployError(f"{option} {path}: cannot create the folder ({exc.strerror or exc})", EXIT_USAGE) from None
    if not os.access(path, os.W_OK):
        raise DeployError(f"{option} {path}: cannot write there (no permission)", EXIT_USAGE)
    return path


# --------------------------------------------------------------------------- help: example and exit codes

EXIT_PIPE = 141
"""stdout closed early (``kr-cfn status --json | head``): quiet, as a tool killed by SIGPIPE (128 + 13)."""
_COMMON_CODES = (
    (2, "bad input (one line on stderr)"),
    (130, "interrupted (Ctrl-C)"),
    (EXIT_PIPE, "standard output closed early (| head): quiet"),
)
_AWS = (4, "an AWS call or the network failed")
HELP: dict[str, tuple[str, tuple[tuple[int, str], ...]]] = {
    "build": ("kr-cfn build --env dev", ((0, "built"), (1, "cfn-lint findings"))),
    "package": ("kr-cfn package --env dev --bucket BUCKET", ((0, "packaged"), _AWS)),
    "plan": ("kr-cfn plan --env dev --image-tag backend=3f2c1ab", ((0, "planned"), (3, "guard: data at risk"), _AWS)),
    "apply": ("kr-cfn apply --env dev --plan out/dev.plan/plan.json", ((0, "deployed"), (1, "failed"), _AWS)),
    "bootstrap": ("kr-cfn bootstrap --env dev --plan-only", ((0, "done"), (1, "failed"), (3, "guard"), _AWS)),
    "status": ("kr-cfn status --env dev --format json", ((0, "shown"), _AWS)),
    "outputs": ("kr-cfn outputs --env dev --key AppUrl", ((0, "shown"), _AWS)),
    "smoke": ("kr-cfn smoke --env dev", ((0, "passed"), (1, "a check failed"), _AWS)),
    "migrate": ("kr-cfn migrate --env dev --plan out/dev.plan/plan.json", ((0, "migrated"), (1, "failed"), _AWS)),
    "drift": ("kr-cfn drift --env dev", ((0, "in sync"), (1, "drifted"), _AWS)),
    "rotation": ("kr-cfn rotation --env prod", ((0, "set (or already as params say)"), _AWS)),
    "local-aws": (
        "kr-cfn local-aws --port 5050",
        ((0, "stopped by Ctrl-C or SIGTERM"), (2, "bad input: moto not installed, port in use")),
    ),
    "destroy": ("kr-cfn destroy --env dev --dry-run", ((0, "deleted (or listed)"), (1, "failed"), _AWS)),
    "cancel": ("kr-cfn cancel --env dev --wait", ((0, "cancelled"), (1, "failed"), _AWS)),
    "watch": ("kr-cfn watch --env dev", ((0, "stable"), (1, "the update failed"), _AWS)),
    "qdrant": ("kr-cfn qdrant snapshots --env prod", ((0, "done"), (1, "failed"), _AWS)),
    "qdrant snapshots": ("kr-cfn qdrant snapshots --env prod", ((0, "listed"), _AWS)),
    "qdrant restore": (
        "kr-cfn qdrant restore --env prod --snapshot qdrant/2026-01-31T030000Z/docs.snapshot",
        ((0, "restored"), (1, "the restore failed"), _AWS),
    ),
    "diff": (
        "kr-cfn diff --env prod --compare-to out.prev",
        ((0, "forecast shown"), (1, "an AWS call failed (stack:NAME)"), (3, "guard: data at risk")),
    ),
    "cost": ("kr-cfn cost --env prod --compare-to dev", ((0, "shown"), (3, "the increase passes --fail-above"))),
    "diagram": ("kr-cfn diagram --env prod --format png -o prod.png", ((0, "drawn"), (1, "Graphviz failed"))),
    "docs": ("kr-cfn docs --check", ((0, "up to date (or regenerated)"), (1, "stale (--check)"))),
    "sarif": ("kr-cfn sarif sarif/cfn-lint.sarif", ((0, "rewritten"),)),
    "completion": ('eval "$(kr-cfn completion bash)"', ((0, "printed"),)),
}


def epilog(name: str) -> str | None:
    """The example and exit codes shown under a subcommand's ``--help`` (None when the table has none)."""
    if name not in HELP:
        return None
    example, _ = HELP[name]
    lines = [f"example:\n  {example}", "", "exit codes:", *(f"  {code:>3}  {what}" for code, what in exit_codes(name))]
    return "\n".join(lines)


def exit_codes(name: str) -> list[tuple[int, str]]:
    """A subcommand's exit codes (its own and the common ones), in order: what its help and docs/cli.md show."""
    return sorted({**dict(_COMMON_CODES), **dict(HELP[name][1])}.items())


def subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand's parser, as ("qdrant restore", parser), depth first."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += subparsers(sub, f"{prefix}{name} ")
    return found


def finish(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every subcommand a one-line description (its help) and the example/exit-code epilog."""
    for name, sub in subparsers(parser):
        if sub.description is None:
            sub.description = help_of(parser, name)
        if sub.epilog is None:
            sub.epilog = epilog(name)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def help_of(parser: argparse.ArgumentParser, name: str) -> str | None:
    """The ``help=`` a subcommand was registered with (the line ``kr-cfn --help`` lists)."""
    owner = parser
    for word in name.split()[:-1]:
        owner = dict(subparsers(owner))[word]
    for action in owner._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name.split()[-1]:
                    return choice.help
    return None
