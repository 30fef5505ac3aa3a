"""The qdrant host's user data, run: attach, format only when empty, mount, then join the cluster.

The script runs under bash against a scratch root (``KR_ROOT``) with stand-ins on ``PATH`` for the
host's commands (``aws``, ``curl`` for the instance metadata, ``blkid``, ``mkfs.xfs``, ``mount``,
``systemctl``): each records its call; ``aws ec2 describe-volumes`` answers from a scripted list of
volume states, ``attach-volume`` makes the device appear, ``blkid -p`` exits with the scripted code.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.test_qdrant import _built, _user_data

STUBS = {
    "aws": r"""
echo "aws $*" >> "$KR_ROOT/calls"
case "$*" in
  *describe-volumes*)
    if [ -e "$KR_ROOT/attached" ]; then printf 'in-use\ti-new\n'; exit 0; fi
    n=$(cat "$KR_ROOT/asked" 2>/dev/null || echo 0); echo $((n + 1)) > "$KR_ROOT/asked"
    line=$(sed -n "$((n + 1))p" "$KR_ROOT/states"); [ -n "$line" ] || line=$(tail -n 1 "$KR_ROOT/states")
    printf '%s\n' "$line" ;;
  *attach-volume*)
    touch "$KR_ROOT/attached"; mkdir -p "$KR_ROOT/dev/disk/by-id"
    touch "$KR_ROOT/dev/nvme1n1"
    ln -sf "$KR_ROOT/dev/nvme1n1" "$KR_ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0" ;;
esac
""",
    "curl": r"""
case "$*" in *api/token*) echo token ;; *instance-id*) echo i-new ;; esac
""",
    "blkid": r"""
echo "blkid $*" >> "$KR_ROOT/calls"
case "$*" in -p*) exit "$(cat "$KR_ROOT/blkid_rc")" ;; *UUID*) echo 0f00-uuid ;; esac
""",
    "mkfs.xfs": 'echo "mkfs.xfs $*" >> "$KR_ROOT/calls"',
    "mount": 'echo "mount $*" >> "$KR_ROOT/calls"',
    "mountpoint": "exit 1",
    "chown": 'echo "chown $*" >> "$KR_ROOT/calls"',
    "systemctl": 'echo "systemctl $*" >> "$KR_ROOT/calls"',
    "sleep": ":",
}


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("user-data")
    path = tmp / "user-data.sh"
    path.write_text(_user_data(_built(tmp, "staging", "ebs")["ecs"]))
    return path


def _run(
    tmp_path: Path,
    script: Path,
    states: list[str],
    blkid_rc: int,
    root: Path | None = None,
    real: frozenset[str] = frozenset(),
) -> tuple[int, str, list[str], Path]:
    """Run the user data with the stand-in commands (but those in ``real``) under ``root`` (KR_ROOT)."""
    root = root or tmp_path / "root"
    (root / "etc" / "ecs").mkdir(parents=True)
    (root / "var" / "log").mkdir(parents=True)
    (root / "states").write_text("".join(f"{s}\n" for s in states))
    (root / "blkid_rc").write_text(str(blkid_rc))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, body in STUBS.items():
        if name not in real:
            (stubs / name).write_text("#!/bin/bash\n" + body.strip() + "\n")
            (stubs / name).chmod(0o755)
    proc = subprocess.run(
        ["bash", str(script)],
        env={"PATH": f"{stubs}:/usr/bin:/bin", "KR_ROOT": str(root)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    calls = (root / "calls").read_text().splitlines() if (root / "calls").exists() else []
    return proc.returncode, proc.stdout + proc.stderr, calls, root


def _commands(calls: list[str]) -> list[str]:
    return [c.split()[0] if not c.startswith("aws") else " ".join(c.split()[:3]) for c in calls]


def test_a_new_volume_is_attached_formatted_mounted_then_the_host_joins(tmp_path: Path, script: Path) -> None:
    code, out, calls, root = _run(tmp_path, script, ["available\tNone"], blkid_rc=2)
    assert code == 0, out
    assert (
        "aws ec2 attach-volume --region r --volume-id vol-0123456789abcdef0 --instance-id i-new --device /dev/xvdf"
        in calls
    )
    assert f"mkfs.xfs -L qdrant-data {root}/dev/nvme1n1" in calls
    assert (root / "etc" / "fstab").read_text() == "UUID=0f00-uuid /data/qdrant xfs defaults,nofail 0 2\n"
    config = (root / "etc" / "ecs" / "ecs.config").read_text()
    assert "ECS_CLUSTER=c\n" in config and 'ECS_INSTANCE_ATTRIBUTES={"kr-cfn.qdrant-volume":"mounted"}' in config
    assert "ECS_AWSVPC_BLOCK_IMDS=true" in config
    order = _commands(calls)
    assert order.index("mkfs.xfs") < order.index("mount") < order.index("systemctl")
    assert f"chown 1000:1000 {root}/data/qdrant" in calls
    assert calls[-1] == "systemctl restart --no-block ecs.service"


def test_a_volume_with_a_file_system_is_never_formatted(tmp_path: Path, script: Path) -> None:
    code, out, calls, _ = _run(tmp_path, script, ["available\tNone"], blkid_rc=0)
    assert code == 0, out
    assert not [c for c in calls if c.startswith("mkfs")]
    assert "holds data; mounting it as it is" in out


def test_an_unreadable_volume_is_neither_formatted_nor_used(tmp_path: Path, script: Path) -> None:
    code, out, calls, root = _run(tmp_path, script, ["available\tNone"], blkid_rc=4)
    assert code != 0
    assert "blkid could not read" in out and "not formatting it" in out
    assert not [c for c in calls if c.startswith(("mkfs", "mount", "systemctl"))]
    assert not (root / "etc" / "ecs" / "ecs.config").exists(), "the host never joins the cluster"


def test_a_replacement_waits_for_the_old_instance_to_let_go(tmp_path: Path, script: Path) -> None:
    states = ["in-use\ti-old", "in-use\ti-old", "available\tNone"]
    code, out, calls, _ = _run(tmp_path, script, states, blkid_rc=0)
    assert code == 0, out
    order = _commands(calls)
    assert order[:4] == [
        "aws ec2 describe-volumes",
        "aws ec2 describe-volumes",
        "aws ec2 describe-volumes",
        "aws ec2 attach-volume",
    ]
    assert out.count("attached to i-old") == 2


def test_a_volume_that_never_comes_free_stops_the_host_joining(tmp_path: Path, script: Path) -> None:
    code, out, calls, root = _run(tmp_path, script, ["in-use\ti-old"], blkid_rc=0)
    assert code != 0 and "vol-0123456789abcdef0 did not attach to i-new" in out
    assert not [c for c in calls if "attach-volume" in c]
    assert not (root / "etc" / "ecs" / "ecs.config").exists()


def test_a_volume_already_attached_here_is_not_attached_again(tmp_path: Path, script: Path) -> None:
    code, out, calls, _ = _run(tmp_path, script, ["in-use\ti-new"], blkid_rc=0)
    # already attached: no attach call, but the device must exist; the stand-in only makes it on attach
    assert not [c for c in calls if "attach-volume" in c]
    assert code != 0 and "no block device for vol-0123456789abcdef0" in out
