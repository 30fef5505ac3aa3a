"""``python build.py`` / ``kr-cfn build``: output, lint, determinism, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kr_cfn.cli import main
from tests.conftest import ENVS, PARAMS, ROOT, write_params


@pytest.fixture(scope="module")
def linted_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One full build with cfn-lint of every shipped environment."""
    out = tmp_path_factory.mktemp("out")
    return main(["build", "--params", str(PARAMS), "--out", str(out)]), out


def test_every_env_builds_with_zero_cfn_lint_findings(
    linted_out: tuple[int, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = linted_out
    assert code == 0
    for env in ENVS:
        names = sorted(p.name for p in (out / env).iterdir())
        assert "root.yaml" in names and "network.yaml" in names and "parameters.json" in names
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_lint_findings_fail_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from troposphere import Template, logs

    import stacks

    bad = Template()
    bad.add_resource(logs.LogGroup("Logs"))  # no DeletionPolicy: cfn-lint's I3011 must fail the build
    monkeypatch.setattr(stacks, "CHILDREN", (*stacks.CHILDREN, stacks.Child("extra", "ExtraStack", lambda cfg: bad)))
    code = main(["build", "--params", str(PARAMS), "--out", str(tmp_path), "--env", "dev"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'dev' / 'extra.yaml'}:2: I3011 'DeletionPolicy' is a required property" in err
    assert "cfn-lint: 2 finding(s)" in err


def test_build_is_deterministic(tmp_path: Path) -> None:
    for run in ("a", "b"):
        assert main(["build", "--params", str(PARAMS), "--out", str(tmp_path / run), "--no-lint"]) == 0
    for env in ENVS:
        for f in (tmp_path / "a" / env).iterdir():
            assert f.read_bytes() == (tmp_path / "b" / env / f.name).read_bytes(), f


def test_json_format(tmp_path: Path) -> None:
    assert (
        main(
            ["build", "--params", str(PARAMS), "--out", str(tmp_path), "--env", "prod", "--format", "json", "--no-lint"]
        )
        == 0
    )
    root = json.loads((tmp_path / "prod" / "root.json").read_text())
    assert root["Resources"]["NetworkStack"]["Properties"]["TemplateURL"] == "./network.json"
    assert json.loads((tmp_path / "prod" / "parameters.json").read_text()) == []


def test_rebuild_replaces_the_env_folder(tmp_path: Path) -> None:
    args = ["build", "--params", str(PARAMS), "--out", str(tmp_path), "--env", "dev", "--no-lint"]
    assert main(args) == 0
    (tmp_path / "dev" / "stale.yaml").write_text("x")
    assert main(args) == 0
    assert not (tmp_path / "dev" / "stale.yaml").exists()


def test_bad_params_exit_2_and_touch_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "params"
    shutil.copytree(PARAMS, params)
    out = tmp_path / "out"
    assert main(["build", "--params", str(params), "--out", str(out), "--no-lint"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_params(tmp_path, "prod", "network:\n  public_subnet_cidrs: [10.0.1.0/24, 10.1.2.0/24]\n  nat: one\n")
    capsys.readouterr()
    assert main(["build", "--params", str(params), "--out", str(out), "--no-lint"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{params / 'prod.yaml'}: network.nat: unknown key (did you mean 'nat_gateways'?)"]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_unknown_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--params", str(PARAMS), "--out", str(tmp_path), "--env", "qa"]) == 2
    assert capsys.readouterr().err.strip() == f"--env qa: no params file {PARAMS / 'qa'}.yaml (have: {', '.join(ENVS)})"
    assert not any(tmp_path.iterdir())


def test_build_py_is_the_cli_without_a_traceback(tmp_path: Path) -> None:
    write_params(tmp_path, "dev", "network: [")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build.py"), "--params", str(tmp_path / "params"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"{tmp_path / 'params' / 'dev.yaml'}: line 1: invalid YAML")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("env", ENVS)
def test_yaml_output_parses_back_to_the_template(env: str) -> None:
    """The short-form YAML writer loses nothing: CloudFormation's YAML reading gives the same data."""
    import cfn_flip

    import stacks
    from kr_cfn.output import render
    from tests.conftest import load_env

    for name, template in stacks.build_all(load_env(env)).items():
        parsed = json.loads(json.dumps(cfn_flip.load_yaml(render(template, "yaml"))))
        assert parsed == json.loads(render(template, "json")), name


@pytest.mark.parametrize(
    "value",
    [
        "yes",
        "No",
        "on",
        "OFF",
        "true",
        "null",
        "~",
        "",
        "-c",
        "0.0.0.0/0",
        "2010-09-09",
        "1:20",
        "0x1F",
        ".inf",
        "a: b",
        "a #b",
        "trailing ",
        "ends:",
        "*",
        "&anchor",
        "!tag",
        "%x",
        "@x",
        "`x`",
        "'q'",
        '"q"',
        "[x]",
        "{x}",
        "arn:${AWS::Partition}:s3:::b/*",
        "line1\nline2",
        "line1\nline2\n",
        "two\n\n",
        "\nlead",
        " lead\nx",
        "tab\tx\ny",
        "unicode \u2028 sep",
        "é",
        7,
        1.5,
        True,
        False,
        None,
    ],
)
def test_yaml_scalars_read_back_unchanged(value: object) -> None:
    import cfn_flip

    from kr_cfn.output import to_yaml

    data: dict[str, object] = {"Key": value, "List": [value, {"Nested": value}]}
    if isinstance(value, str):  # a tag's scalar is always read as a string
        data["Tagged"] = {"Fn::Sub": value}
    assert json.loads(json.dumps(cfn_flip.load_yaml(to_yaml(data)))) == data


def test_params_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "params"
    params.mkdir()
    (params / "dev.yaml").write_bytes(b"\xff\xfeenv: dev\n")
    assert main(["build", "--params", str(params), "--out", str(tmp_path / "out"), "--env", "dev"]) == 2
    err = capsys.readouterr().err
    assert err == f"{params / 'dev.yaml'}: line 1: not UTF-8 text (byte 0xff); save the file as UTF-8\n"
    assert not (tmp_path / "out").exists()
