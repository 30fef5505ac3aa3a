"""Qdrant can write its storage: the real user data, then a write as the task definition's user.

For each storage choice the storage is prepared as the built templates prepare it, then a file is
written into it by a process with the qdrant container's uid/gid from the built task definition and
every Linux capability gone (``setpriv --bounding-set=-all``), as ECS runs it with ``Drop: [ALL]``:

- ``ebs``: the host's user data (``kr_cfn/scripts/qdrant_volume.sh`` with the template's header)
  runs under bash against a scratch root (``KR_ROOT``). ``aws``, the metadata ``curl``, ``blkid``,
  ``mkfs.xfs``, ``mount`` and ``systemctl`` are stand-ins on ``PATH``; ``mkdir`` and ``chown`` are
  the real ones, so the mount point ends up with the owner and mode the host gives it.
- ``efs``: the access point creates its root directory with the ``CreationInfo`` owner and
  permissions of the data template (https://docs.aws.amazon.com/efs/latest/ug/create-access-point.html);
  the test creates that directory the same way.

Root without ``CAP_DAC_OVERRIDE`` cannot write into a directory that another uid owns with mode
0755/0750 (capabilities(7)), which is what a qdrant running as root with ``Drop: [ALL]`` met.
``setpriv`` needs root to change uid; the test is skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_qdrant import _built, _user_data
from tests.test_qdrant_user_data import _run

pytestmark = pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0, reason="setpriv must change uid: needs root and util-linux"
)

IMAGE_USERS = {"qdrant/qdrant:v1.7.0": "0:0"}
"""A container without ``User`` runs as its image's user: qdrant's Dockerfile defaults to
``ARG USER_ID=0`` / ``USER "$USER_ID:$USER_ID"`` (https://github.com/qdrant/qdrant/blob/v1.7.0/Dockerfile)."""


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch root that any uid may traverse (pytest's own tmp dirs are 0700 root)."""
    with tempfile.TemporaryDirectory(prefix="kr-storage-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


def _qdrant(ecs: dict[str, Any]) -> dict[str, Any]:
    return ecs["Resources"]["QdrantTaskDefinition"]["Properties"]["ContainerDefinitions"][0]


def _ids(container: dict[str, Any]) -> tuple[int, int]:
    """The container's uid and gid: its ``User`` or, without one, its image's."""
    user = container.get("User") or IMAGE_USERS[container["Image"].split("@")[0]]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def _write_as(container: dict[str, Any], directory: Path) -> subprocess.CompletedProcess[str]:
    """Write a file into ``directory`` as the container would: its uid/gid, no groups, no capability."""
    assert container["LinuxParameters"]["Capabilities"]["Drop"] == ["ALL"]
    uid, gid = _ids(container)
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "sh",
            "-c",
            f"echo collection > {directory}/probe && cat {directory}/probe",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


OWNERS = [{}, {"storage_owner": "2000:3000", "user": "2000:3000"}]
"""The default owner, and another one set in params (user data, access point and task definition follow)."""


def _mount(tmp_path: Path, scratch: Path, ecs: dict[str, Any]) -> Path:
    """Run the host's user data against a stand-in disk; the mount point it prepares."""
    script = tmp_path / "user-data.sh"
    script.write_text(_user_data(ecs))
    # A new, empty volume; the real chown: the owner is what is under test.
    code, out, _, root = _run(
        tmp_path, script, ["available\tNone"], 2, root=scratch / "root", real=frozenset({"chown"})
    )
    assert code == 0, out
    return root / "data" / "qdrant"


@pytest.mark.parametrize("keys", OWNERS, ids=["default", "2000:3000"])
def test_qdrant_on_ebs_writes_the_volume_the_user_data_mounts(
    tmp_path: Path, scratch: Path, keys: dict[str, str]
) -> None:
    built = _built(tmp_path, "staging", "ebs", **keys)
    mount = _mount(tmp_path, scratch, built["ecs"])
    container = _qdrant(built["ecs"])
    write = _write_as(container, mount)
    stat = mount.stat()
    assert write.returncode == 0, (
        f"qdrant ({container.get('User') or 'the image user'}, no capabilities) cannot write {mount} "
        f"(owner {stat.st_uid}:{stat.st_gid}, mode {stat.st_mode & 0o7777:o}): {write.stderr.strip()}"
    )
    assert write.stdout == "collection\n"


def test_root_without_capabilities_cannot_write_the_mount(tmp_path: Path, scratch: Path) -> None:
    """The harness really drops capabilities: root with Drop ALL (qdrant before the fix) is refused."""
    built = _built(tmp_path, "staging", "ebs")
    mount = _mount(tmp_path, scratch, built["ecs"])
    root_qdrant = {**_qdrant(built["ecs"]), "User": "0:0"}
    write = _write_as(root_qdrant, mount)
    assert write.returncode != 0 and "Permission denied" in write.stderr
    assert not (mount / "probe").exists()


@pytest.mark.parametrize("keys", OWNERS, ids=["default", "2000:3000"])
def test_qdrant_on_efs_writes_the_directory_its_access_point_creates(
    tmp_path: Path, scratch: Path, keys: dict[str, str]
) -> None:
    built = _built(tmp_path, "staging", "efs", **keys)
    point = built["data"]["Resources"]["QdrantAccessPoint"]["Properties"]
    creation = point["RootDirectory"]["CreationInfo"]
    storage = scratch / point["RootDirectory"]["Path"].strip("/")
    storage.mkdir(parents=True)
    os.chown(storage, int(creation["OwnerUid"]), int(creation["OwnerGid"]))
    storage.chmod(int(creation["Permissions"], 8))
    container = _qdrant(built["ecs"])
    write = _write_as(container, storage)
    assert write.returncode == 0, (
        f"qdrant ({container.get('User') or 'the image user'}, no capabilities) cannot write the access point's "
        f"directory (owner {creation['OwnerUid']}:{creation['OwnerGid']}, mode {creation['Permissions']}): "
        f"{write.stderr.strip()}"
    )
    # The access point's POSIX user is the identity of every access: the same uid as the container.
    assert (int(point["PosixUser"]["Uid"]), int(point["PosixUser"]["Gid"])) == _ids(container)
