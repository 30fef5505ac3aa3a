"""``kr-cfn completion``: shell completion scripts generated from the argument parser (shtab)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from kr_cfn.cli import _parser, main
from tests.conftest import ENVS, PARAMS


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = set(sub.choices)
    for p in sub.choices.values():
        if any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            names |= _subcommands(p)
    return names


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell, "--params", str(PARAMS)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_bash_script_names_every_subcommand_and_is_valid_bash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _script("bash", capsys)
    names = _subcommands(_parser())
    assert {"build", "plan", "apply", "sarif", "completion", "restore", "snapshots"} <= names
    for name in names:
        assert name in text, f"subcommand {name} missing from the bash completion"
    path = tmp_path / "kr-cfn.bash"
    path.write_text(text, encoding="utf-8")
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def _complete(script: Path, *words: str) -> list[str]:
    """What bash completes for ``words`` (the last one being typed), through the generated function."""
    quoted = " ".join(f'"{w}"' for w in words)
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
        'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()\n'
        '_shtab_kr_cfn; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    run = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return [line for line in run.stdout.splitlines() if line]


def test_bash_completes_subcommands_envs_and_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "kr-cfn.bash"
    script.write_text(_script("bash", capsys), encoding="utf-8")
    assert _complete(script, "kr-cfn", "sa") == ["sarif"]
    assert sorted(_complete(script, "kr-cfn", "plan", "--env", "")) == sorted(ENVS)
    assert _complete(script, "kr-cfn", "completion", "") == ["bash", "zsh", "tcsh"]
    assert _complete(script, "kr-cfn", "qdrant", "r") == ["restore"]
    assert _complete(script, "kr-cfn", "sarif", "--re") == ["--repo"]


def test_the_envs_come_from_the_params_folder_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "params"
    params.mkdir()
    shutil.copy(PARAMS / "dev.yaml", params / "qa.yaml")
    assert main(["completion", "bash", "--params", str(params)]) == 0
    text = capsys.readouterr().out
    assert "_env_choices=(qa)" in text and "staging" not in text


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_zsh_and_tcsh_scripts(shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _script(shell, capsys)
    assert "sarif" in text and "completion" in text and "staging" in text
    if shutil.which(shell):  # syntax check where the shell is installed
        path = tmp_path / f"kr-cfn.{shell}"
        path.write_text(text, encoding="utf-8")
        assert subprocess.run([shell, "-n", str(path)], check=False).returncode == 0


def test_an_unknown_shell_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["completion", "fish"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("kr-cfn completion: argument shell: invalid choice: 'fish' (choose from ")
    assert all(shell in err for shell in ("bash", "zsh", "tcsh")) and err.count("\n") == 1


def test_completion_does_not_change_the_real_parser(capsys: pytest.CaptureFixture[str]) -> None:
    """--env choices exist only in the script: the CLI still reports an unknown env through the params check."""
    _script("bash", capsys)
    parser = _parser()
    build = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["build"]
    assert next(a for a in build._actions if "--env" in a.option_strings).choices is None
