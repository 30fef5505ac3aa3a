"""The ``kr-cfn`` command line (``python build.py`` is ``kr-cfn build``)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kr_cfn import cliargs, config, output
from kr_cfn.config.base import one_line
from kr_cfn.errors import EXIT_INTERRUPTED, DeployError
from kr_cfn.lint import Finding, lint_dirs

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 70


class UsageError(Exception):
    """Bad input: printed as one line each, exit 2."""


@dataclass
class EnvResult:
    """One environment's build, for the summary table."""

    env: str
    target: Path
    files: dict[str, str]
    resources: dict[str, int]
    findings: list[Finding]


def _load_envs(params_dir: Path, envs: Sequence[str]) -> list[config.EnvConfig]:
    if not params_dir.is_dir():
        raise UsageError(f"--params {params_dir}: {'not a folder' if params_dir.exists() else 'no such folder'}")
    known = config.available_envs(params_dir)
    if not known:
        raise UsageError(f"{params_dir}: no params files (*.yaml) found")
    wanted = list(dict.fromkeys(envs)) or known
    unknown = [e for e in wanted if e not in known]
    if unknown:
        raise UsageError(
            "\n".join(f"--env {e}: no params file {params_dir / e}.yaml (have: {', '.join(known)})" for e in unknown)
        )
    errors: list[str] = []
    cfgs = []
    for env in wanted:
        try:
            cfgs.append(config.load(params_dir / f"{env}.yaml"))
        except config.ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise UsageError("\n".join(errors))
    return cfgs


def build_env_files(cfg: config.EnvConfig, fmt: str) -> tuple[dict[str, str], dict[str, int]]:
    """Render every template of one environment plus ``parameters.json``."""
    import stacks  # stacks import kr_cfn, never the reverse: loaded on use
    from stacks.root import parameter_values

    templates = stacks.build_all(cfg, fmt)
    files = {f"{name}.{fmt}": output.render(t, fmt) for name, t in templates.items()}
    files["parameters.json"] = output.render_parameters(parameter_values(templates["root"]))
    return files, {name: len(t.resources) for name, t in templates.items()}


def check_out_dir(out_dir: Path) -> None:
    """``--out`` must be a folder or a path a folder can be made at: else a :class:`UsageError`."""
    for path in (out_dir, *out_dir.parents):
        if path.exists():
            if not path.is_dir():
                what = "is a file" if path == out_dir else f"is inside {path}, which is a file"
                raise UsageError(f"--out {out_dir}: {what}, not a folder")
            return


def cmd_build(args: argparse.Namespace) -> int:
    """Build (and lint) the templates of the chosen environments."""
    params_dir, out_dir = Path(args.params), Path(args.out)
    cfgs = _load_envs(params_dir, args.env or [])
    check_out_dir(out_dir)
    results: list[EnvResult] = []
    staged: list[Path] = []
    try:
        for cfg in cfgs:
            files, resources = build_env_files(cfg, args.format)
            try:
                staged.append(output.stage(out_dir, cfg.env, files))
            except OSError as exc:
                raise UsageError(f"--out {out_dir}: cannot write ({exc.strerror})") from None
            results.append(EnvResult(cfg.env, out_dir / cfg.env, files, resources, []))
        if not args.no_lint:
            jobs = [(d, cfg.region) for d, cfg in zip(staged, cfgs, strict=True)]
            for result, tmp, findings in zip(results, staged, lint_dirs(jobs), strict=True):
                result.findings = [
                    Finding(
                        str(result.target / Path(f.path).name) if f.path.startswith(str(tmp)) else f.path,
                        f.line,
                        f.rule,
                        f.message,
                    )
                    for f in findings
                ]
        for result, tmp in zip(results, staged, strict=True):
            output.install(tmp, result.target)
    finally:
        for tmp in staged:
            if tmp.exists():
                output.discard(tmp)
    _print_table(results, linted=not args.no_lint)
    findings = [f for r in results for f in r.findings]
    for f in findings:
        print(f, file=sys.stderr)
    if findings:
        print(f"cfn-lint: {len(findings)} finding(s); the build fails on any error or warning", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK


def _print_table(results: list[EnvResult], linted: bool) -> None:
    rows = [("env", "stack", "resources", "bytes", "findings")]
    for r in results:
        for name, count in r.resources.items():
            file = next(f for f in r.files if f.rsplit(".", 1)[0] == name)
            n = sum(1 for f in r.findings if Path(f.path).name == file) if linted else "-"
            rows.append((r.env, name, str(count), str(len(r.files[file].encode())), str(n)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block): ``kr-cfn build: --format: invalid choice ...``.

    An unknown option names the subcommand and the option it resembles (``kr-cfn build: unknown option
    --evn; did you mean --env?``); a mistyped subcommand the one it resembles.
    """

    argv: Sequence[str] = ()
    root: argparse.ArgumentParser | None = None

    def error(self, message: str) -> typing.NoReturn:
        prog, message = _explain(self, message)
        self.exit(EXIT_USAGE, f"{prog}: {message} (see {prog} --help)\n")


def _explain(parser: argparse.ArgumentParser, message: str) -> tuple[str, str]:
    """The subcommand and a did-you-mean for an unknown option or a mistyped choice; else ``message`` as it is."""
    target, words = _Parser.root or parser, list(_Parser.argv)
    for word in words:  # the deepest subcommand named on the command line
        subs = {name: p for name, p in cliargs.subparsers(target) if " " not in name}
        target = subs.get(word, target)
    actions = target._option_string_actions
    known = [o for o in actions if o.startswith("--")]
    shown = [o for o in known if actions[o].help != argparse.SUPPRESS]
    for word in words:
        option = word.split("=", 1)[0]
        if option.startswith("--") and option not in known and not any(k.startswith(option) for k in known):
            close = difflib.get_close_matches(option, shown, n=1, cutoff=0.6)
            return target.prog, f"unknown option {option}" + (f"; did you mean {close[0]}?" if close else "")
    wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if wrong:
        close = difflib.get_close_matches(wrong[1], re.findall(r"'([^']*)'", wrong[2]), n=1, cutoff=0.6)
        message += f"; did you mean {close[0]}?" if close else ""
    return parser.prog, message


def _diff_build(cfg: config.EnvConfig) -> dict[str, str]:
    """An env's templates rendered in memory for ``kr-cfn diff`` (the same build as ``kr-cfn build``)."""
    return build_env_files(cfg, "json")[0]


def _parser() -> argparse.ArgumentParser:
    from kr_cfn import __version__

    parser = _Parser(prog="kr-cfn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kr-cfn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("build", help="build and lint the templates of every (or the chosen) environment")
    b.add_argument("--env", action="append", help="environment to build (repeatable; default: all in --params)")
    b.add_argument("--params", default="params", help="folder of <env>.yaml files (default: params)")
    cliargs.add_build_dir(b, help="build output folder: each env goes to <out>/<env> (default: out)")
    b.add_argument("--format", choices=output.FORMATS, default="yaml", help="template format (default: yaml)")
    b.add_argument("--no-lint", action="store_true", help="skip cfn-lint")
    b.set_defaults(func=cmd_build)
    from kr_cfn.deploy.parsers import add_parsers

    add_parsers(sub, lambda params_dir, env: _load_envs(params_dir, [env])[0])
    from kr_cfn.changes import diffcmd

    diffcmd.add_parser(sub, lambda params_dir, env: _load_envs(params_dir, [env])[0], _diff_build)
    from kr_cfn.cost.cli import add_parser as add_cost_parser

    add_cost_parser(sub, lambda params_dir, env: _load_envs(params_dir, [env])[0])
    from kr_cfn import diagram, docs

    diagram.add_parser(sub)
    docs.add_parser(sub, parser, lambda params_dir, env: build_env_files(_load_envs(params_dir, [env])[0], "yaml")[0])
    from kr_cfn import completion, sarif

    sarif.add_parser(sub)
    completion.add_parser(sub, _parser)
    from kr_cfn import local_aws

    local_aws.add_parser(sub)
    return cliargs.finish(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kr-cfn``; returns the exit code.

    Ctrl-C prints one line and exits 130 in every command; a closed stdout (``kr-cfn cost | head``)
    exits quietly with 141, as a tool killed by SIGPIPE: stdout goes to /dev/null so the final flush
    cannot fail again (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # stdout is no file (captured): nothing to redirect
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return cliargs.EXIT_PIPE
    except KeyboardInterrupt:
        print("kr-cfn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str]) -> int:
    parser = _parser()
    _Parser.root, _Parser.argv = parser, argv
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # bare `kr-cfn` (or `kr-cfn qdrant`): the help
        (dict(cliargs.subparsers(parser)).get(args.command or "") or parser).print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except DeployError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except OSError as exc:  # a file or folder that cannot be read or written: bad input, one line
        if exc.filename is None or os.environ.get("KR_CFN_DEBUG"):
            return _bug(exc)
        print(f"kr-cfn {args.command}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        return _bug(exc)


def _bug(exc: Exception) -> int:
    """A bug, not bad input: one line, not a traceback (KR_CFN_DEBUG=1 shows it)."""
    if os.environ.get("KR_CFN_DEBUG"):
        raise exc
    print(
        f"kr-cfn: internal error, please report it: {type(exc).__name__}: {one_line(str(exc))} "
        "(KR_CFN_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
