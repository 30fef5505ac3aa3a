"""The command line as a Unix tool: one meaning per flag, one line per problem, quiet pipes, Ctrl-C, help."""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kr_cfn import cli, cliargs
from kr_cfn.cli import main
from kr_cfn.errors import DeployError
from tests.conftest import PARAMS, load_env

KR_CFN = [sys.executable, "-m", "kr_cfn.cli"]
REPORTS = {"status", "outputs", "cost", "diff"}  # --format of a report: text/json[/markdown]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``main(args)`` with its exit code (argparse's SystemExit included), stdout and stderr."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder (params/ copied) with dev and prod built into out/."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(PARAMS, root / "params")
    args = ["build", "--params", str(root / "params"), "--out", str(root / "out"), "--no-lint"]
    assert main([*args, "--env", "dev", "--env", "prod"]) == 0
    return root


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


# --------------------------------------------------------------------------- one meaning per flag


def test_every_subcommand_spells_each_option_one_way() -> None:
    """Walk every subcommand's parser: the build folder, the format, compare-with and files have one name each."""
    parser = cli._parser()
    subs = cliargs.subparsers(parser)
    assert len(subs) >= 20
    for name, sub in subs:
        opts = _options(sub)
        shown = {o: a for o, a in opts.items() if a.help != argparse.SUPPRESS}
        hidden = {o: a for o, a in opts.items() if a.help == argparse.SUPPRESS}
        where = f"kr-cfn {name}"
        assert not {"--build", "--build-dir", "--against"} & set(shown), where
        assert all(isinstance(a, cliargs.Deprecated) for a in hidden.values()), where  # hidden = old spelling only
        if "--out" in shown:
            out = shown["--out"]
            assert out.metavar == "DIR" and "folder" in (out.help or "") and out.default in ("out", None), where
        for option in ("-o", "--output"):
            if option in shown:
                assert shown[option].metavar == "FILE" and set(shown[option].option_strings) == {"-o", "--output"}
        if "--format" in shown:
            fmt = shown["--format"]
            if name.split()[0] in REPORTS:
                assert set(fmt.choices or ()) <= set(cliargs.REPORT_FORMATS) and fmt.default == "text", where
                assert "json" in (fmt.choices or ()), where
        if "--json" in shown:
            alias = shown["--json"]
            assert (alias.dest, alias.const) == ("format", "json") and "json" in (shown["--format"].choices or ())
        if "--compare-to" in shown:
            assert shown["--compare-to"].metavar == cliargs.COMPARE_METAVAR, where
        if "--env" in shown:
            assert shown["--params"].default == "params", where
        files = [o for o, a in shown.items() if a.metavar == "FILE"]
        assert "--out" not in files, where


def test_compare_to_reads_out_out_env_an_env_or_a_stack_the_same_way(built: Path) -> None:
    params, out = built / "params", built / "out"
    resolve = cliargs.resolve_compare
    assert resolve(str(out), "dev", params, Path("elsewhere")).folder == out / "dev"
    assert resolve(str(out / "dev"), "dev", params, Path("elsewhere")).folder == out / "dev"
    assert resolve("prod", "dev", params, out) == cliargs.Comparison(str(out / "prod"), out / "prod", env="prod")
    assert resolve("stack:kr-x", "dev", params, out).stack == "kr-x"
    with pytest.raises(DeployError, match=r"^--compare-to nope: not a build folder \(out/ or out/<env>\), an env"):
        resolve("nope", "dev", params, out)
    with pytest.raises(DeployError, match=r"^--compare-to stack:: expected stack:NAME"):
        resolve("stack:", "dev", params, out)


@pytest.mark.parametrize("command", ["cost", "diff", "diagram"])
@pytest.mark.parametrize("form", ["out", "out/env", "env"])
def test_every_comparing_command_takes_each_form(
    built: Path, capsys: pytest.CaptureFixture[str], command: str, form: str
) -> None:
    """``cost --compare-to out.prev`` said "no built templates" before; now out/, out/<env> and an env all work."""
    target = {"out": str(built / "out"), "out/env": str(built / "out" / "dev"), "env": "dev"}[form]
    common = ["--env", "dev", "--params", str(built / "params"), "--compare-to", target]
    extra = {"diff": ["--out", str(built / "out")], "cost": ["--out", str(built / "out")]}
    code, _, err = run(capsys, command, *common, *extra.get(command, ["--out", str(built / "out")]))
    assert code == 0, err
    assert "deprecated" not in err and "warning" not in err


def test_old_spellings_work_with_one_deprecation_line(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params, out = ["--params", str(built / "params")], built / "out"
    code, stdout, err = run(
        capsys, "diff", "--env", "dev", *params, "--against", str(out / "dev"), "--build", str(out), "--output", "json"
    )
    assert code == 0 and stdout.startswith("{")
    assert err.splitlines() == [
        f"kr-cfn diff: {old} is deprecated and will be removed in the next release; use {new}"
        for old, new in (("--against", "--compare-to"), ("--build", "--out"), ("--output", "--format"))
    ]
    target = built / "old.mmd"
    code, stdout, err = run(capsys, "diagram", "--env", "dev", "--build-dir", str(out), "--out", str(target))
    assert code == 0 and target.read_text().startswith("flowchart")
    assert err.splitlines() == [
        "kr-cfn diagram: --build-dir is deprecated and will be removed in the next release; use --out",
        f"kr-cfn diagram: --out {target} (a file) is deprecated and will be removed in the next release; "
        f"use -o/--output {target}",
    ]
    code, stdout, err = run(capsys, "cost", "--env", "dev", *params, "--out", str(out), "--format", "table")
    assert code == 0 and "total" in stdout
    assert err.splitlines() == [
        "kr-cfn cost: --format: table is deprecated and will be removed in the next release; use text"
    ]


def test_diff_without_compare_to_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "diff", "--env", "dev", "--params", str(PARAMS))
    assert (code, err) == (2, "kr-cfn diff: --compare-to is required (a previous build folder, an env or stack:NAME)\n")


# --------------------------------------------------------------------------- files, folders, pipes


def test_unwritable_output_is_one_line_exit_2(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["--out", str(built / "out")]
    code, _, err = run(capsys, "diagram", "--env", "dev", *out, "-o", "/nonexistent/x.png", "--format", "dot")
    assert (code, err) == (2, "--output /nonexistent/x.png: cannot write (No such file or directory)\n")
    params = ["--params", str(built / "params")]
    code, _, err = run(
        capsys, "diff", "--env", "dev", *params, "--compare-to", "dev", *out, "--review-dir", "/proc/self"
    )
    assert code == 2 and err.startswith("--review-dir /proc/self") and len(err.splitlines()) == 1, err


def test_closed_pipe_exits_quietly(built: Path) -> None:
    """``kr-cfn cost --env dev | true``: the reader is gone before the first write; no traceback, no line."""
    argv = [*KR_CFN, "cost", "--env", "dev", "--params", str(built / "params"), "--out", str(built / "out")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=built)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader exits first
    err = proc.stderr.read().decode()
    assert (proc.wait(timeout=60), err) == (cliargs.EXIT_PIPE, "")


def test_plan_records_live_beside_the_build_so_build_keeps_them(built: Path) -> None:
    from kr_cfn.deploy.commands import plan_dir

    out = built / "out"
    records = plan_dir(argparse.Namespace(out=str(out), review_dir=None), load_env("dev"))
    assert records == out / "dev.plan" and out / "dev" not in records.parents
    records.mkdir(exist_ok=True)
    (records / "plan.json").write_text("{}")
    assert main(["build", "--env", "dev", "--params", str(built / "params"), "--out", str(out), "--no-lint"]) == 0
    assert (records / "plan.json").read_text() == "{}"


def test_a_build_older_than_its_params_is_warned_about(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params_file = built / "params" / "prod.yaml"
    later = (built / "out" / "prod" / "root.yaml").stat().st_mtime + 60
    os.utime(params_file, (later, later))
    line = f"warning: {built / 'out' / 'prod'} was built before {params_file} last changed; run kr-cfn build --env prod"
    common = ["--env", "prod", "--params", str(built / "params"), "--out", str(built / "out")]
    for command in ("cost", "diagram"):
        code, _, err = run(capsys, command, *common)
        assert code == 0 and err.splitlines() == [line], command


def test_docs_check_in_the_wrong_folder_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "docs", "--check", "--repo", str(tmp_path))
    assert code == 2 and err.startswith(f"--repo {tmp_path}: nothing to check") and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- Ctrl-C and a silent endpoint


def _required_args(sub: argparse.ArgumentParser) -> list[str]:
    """The smallest command line ``sub`` accepts: a value for each required option and positional."""
    args: list[str] = []
    for action in sub._actions:
        if action.required and action.option_strings:
            args += [action.option_strings[0], "x"]
        elif not action.option_strings and action.dest != "help" and action.nargs != argparse.PARSER:
            args.append(next(iter(action.choices or ["x"])))
    for group in sub._mutually_exclusive_groups:
        if group.required:
            args += [group._group_actions[0].option_strings[0], "x"]
    return args


def test_ctrl_c_is_one_line_and_130_in_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = cli._parser()

    def interrupted(_: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    subs = [(n, s) for n, s in cliargs.subparsers(parser) if s.get_default("func") is not None]
    for _, sub in subs:
        sub.set_defaults(func=interrupted)
    monkeypatch.setattr(cli, "_parser", lambda: parser)
    for name, sub in subs:
        code, out, err = run(capsys, *name.split(), *_required_args(sub))
        assert (code, out, err) == (130, "", "kr-cfn: interrupted\n"), name


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (a hung proxy, a black-holed route)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _silent_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a kr-cfn pointed at ``url`` with dummy credentials, in dev's region."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    aws = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return {**env, **aws, "AWS_DEFAULT_REGION": load_env("dev").region, **extra}


def test_a_silent_endpoint_says_waiting_then_fails_in_one_line(
    silent_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _silent_env(silent_endpoint, KR_CFN_AWS_READ_TIMEOUT="0.5", KR_CFN_AWS_NOTICE="0.2", AWS_MAX_ATTEMPTS="2")
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = run(capsys, "status", "--env", "dev", "--params", str(PARAMS))
    lines = err.splitlines()
    assert code == 4, err
    assert lines[0].startswith("waiting for AWS (attempt 1/2): cloudformation DescribeStacks has not answered for")
    assert any(line.startswith("waiting for AWS (attempt 2/2)") for line in lines), err
    assert lines[-1].startswith("AWS error: cloudformation DescribeStacks") and "timeout" in lines[-1].lower()


def test_ctrl_c_while_waiting_for_aws(silent_endpoint: str) -> None:
    """A real SIGINT to a real process stuck on a silent endpoint: one line, exit 130."""
    env = _silent_env(silent_endpoint, KR_CFN_AWS_NOTICE="0.2")
    proc = subprocess.Popen(
        [*KR_CFN, "status", "--env", "dev", "--params", str(PARAMS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    first = b""
    while time.monotonic() < deadline and not first:
        if select.select([proc.stderr], [], [], 1)[0]:
            first = proc.stderr.readline()
    assert first.startswith(b"waiting for AWS (attempt 1/"), first
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read().decode()
    assert (proc.wait(timeout=30), rest) == (130, "kr-cfn: interrupted\n")


# --------------------------------------------------------------------------- mistakes and help


def test_a_mistyped_option_names_the_subcommand_and_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "build", "--evn", "dev")[::2] == (
        2,
        "kr-cfn build: unknown option --evn; did you mean --env? (see kr-cfn build --help)\n",
    )
    code, _, err = run(capsys, "plan", "--evn", "dev")  # before argparse's "required: --env"
    assert (code, err) == (2, "kr-cfn plan: unknown option --evn; did you mean --env? (see kr-cfn plan --help)\n")
    code, _, err = run(capsys, "biuld")
    assert code == 2 and err.rstrip().endswith("; did you mean build? (see kr-cfn --help)")


def test_bare_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2 and out.startswith("usage: kr-cfn") and "build" in out and err == ""
    code, out, err = run(capsys, "qdrant")
    assert code == 2 and out.startswith("usage: kr-cfn qdrant") and "restore" in out


def test_every_subcommand_help_has_a_description_an_example_and_exit_codes() -> None:
    for name, sub in cliargs.subparsers(cli._parser()):
        text = sub.format_help()
        assert sub.description and "\n" not in sub.description, name
        assert f"example:\n  {cliargs.HELP[name][0]}" in text, name
        assert "exit codes:\n" in text and "130  interrupted" in text and "2  bad input" in text, name
