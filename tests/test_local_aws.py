"""``kr-cfn local-aws``: the local endpoint for a person (kr_cfn/local_aws.py, shims in kr_cfn/moto_shims.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

import boto3
import pytest

from kr_cfn.cli import main
from tests.conftest import ROOT

ACCOUNT = "210987654321"


def _export_lines(proc: subprocess.Popen[str], timeout: float = 30) -> list[str]:
    """The lines ``kr-cfn local-aws`` prints on stdout, up to its last (``unset ...``)."""
    assert proc.stdout is not None
    lines: list[str] = []

    def read() -> None:
        while not (lines and lines[-1].startswith("unset ")):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                return
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not (lines and lines[-1].startswith("unset ")):
        proc.kill()
        pytest.fail(f"no export lines within {timeout} s: {lines}; stderr: {proc.communicate()[1]}")
    return lines


def test_local_aws_prints_its_exports_answers_boto3_and_stops_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kr_cfn.cli", "local-aws", "--port", "0", "--account-id", ACCOUNT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _export_lines(proc)
        exports = dict(re.fullmatch(r"export (AWS_\w+)=(\S+)", line).groups() for line in lines[:-1])  # type: ignore[union-attr]
        assert lines[-1] == "unset AWS_PROFILE AWS_SESSION_TOKEN"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", exports["AWS_ENDPOINT_URL"])
        assert exports["AWS_REGION"] == exports["AWS_DEFAULT_REGION"] == "eu-central-1"
        sts = boto3.client(
            "sts",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            region_name=exports["AWS_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        )
        assert sts.get_caller_identity()["Account"] == ACCOUNT
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert err.splitlines()[0].startswith(f"local AWS (moto 5.2.5, account {ACCOUNT}) at {exports['AWS_ENDPOINT_URL']}")
    assert err.splitlines()[-1] == "local AWS stopped"


def test_without_moto_one_line_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # `import moto` raises ModuleNotFoundError
    assert main(["local-aws", "--port", "0"]) == 2
    assert capsys.readouterr().err == "kr-cfn local-aws: moto is not installed; pip install -e '.[local]'\n"


def test_a_port_in_use_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["local-aws", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (
        f"kr-cfn local-aws: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "pick another --port (0: any free one)\n"
    )
    assert "MOTO_ACCOUNT_ID" not in os.environ
