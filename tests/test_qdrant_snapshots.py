"""The snapshot/restore job (``kr_cfn/scripts/qdrant_snapshots.sh``) against a local Qdrant and S3.

A small HTTP server on 127.0.0.1 speaks the Qdrant endpoints the script uses (list collections,
create / download / delete a collection snapshot, upload a snapshot to recover a collection,
https://qdrant.tech/documentation/concepts/snapshots/); S3 is moto's server, reached by the real
AWS CLI through ``AWS_ENDPOINT_URL``, as the job's image reaches S3 with its task role.

The AWS CLI comes from ``$KR_CFN_AWSCLI``, ``.venv-awscli/bin/aws`` or ``PATH`` (.ci/run installs
it); without it the tests are skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import boto3
import pytest

from kr_cfn import qdrant
from tests import aws_endpoint
from tests.conftest import ROOT

BUCKET = "kr-backups"
REGION = "eu-central-1"


def _aws_cli() -> Path | None:
    candidate = os.environ.get("KR_CFN_AWSCLI")
    for path in (Path(candidate) if candidate else None, ROOT / ".venv-awscli" / "bin" / "aws"):
        if path is not None and path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("aws")
    return Path(found) if found else None


@dataclass
class FakeQdrant:
    """The state behind the fake Qdrant: collections' bytes, snapshots on its disk, calls seen."""

    collections: dict[str, bytes]
    snapshots: dict[tuple[str, str], bytes] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    uploads: list[tuple[str, dict[str, list[str]], bytes]] = field(default_factory=list)
    fail_snapshot_of: str | None = None
    api_key: str | None = None
    unreadable: bool = False


def _handler(state: FakeQdrant) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            state.calls.append((method, self.path))
            if state.api_key is not None and self.headers.get("api-key") != state.api_key:
                return self._send(403, {"status": {"error": "Invalid api-key"}})
            if method == "GET" and path == "/collections":
                names = [{"name": n} for n in state.collections]
                if state.unreadable:  # e.g. a future Qdrant that renames the field
                    return self._send(200, {"result": {"items": [{"id": "docs"}]}, "status": "ok"})
                return self._send(200, {"result": {"collections": names}, "status": "ok", "time": 0.0})
            m = re.fullmatch(r"/collections/([^/]+)/snapshots(?:/(upload|[^/]+))?", path)
            if not m:
                return self._send(404, {"status": {"error": "not found"}})
            collection, rest = m.groups()
            if method == "POST" and rest is None:
                if collection == state.fail_snapshot_of:
                    return self._send(500, {"status": {"error": "disk full"}})
                name = f"{collection}-2026-01-31-03-00-00.snapshot"
                state.snapshots[(collection, name)] = state.collections[collection]
                result = {"name": name, "creation_time": "2026-01-31T03:00:00", "size": 1}
                return self._send(200, {"result": result, "status": "ok", "time": 0.1})
            if method == "GET" and (collection, rest) in state.snapshots:
                return self._send(200, state.snapshots[(collection, rest)])
            if method == "DELETE" and (collection, rest) in state.snapshots:
                del state.snapshots[(collection, rest)]
                return self._send(200, {"result": True, "status": "ok", "time": 0.0})
            if method == "POST" and rest == "upload":
                body = self.rfile.read(int(self.headers["Content-Length"]))
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
                (part,) = [
                    p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "snapshot"
                ]
                data = part.get_payload(decode=True)
                state.uploads.append((collection, query, data))
                state.collections[collection] = data
                return self._send(200, {"result": True, "status": "ok", "time": 0.2})
            return self._send(404, {"status": {"error": f"no {method} {path}"}})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


@pytest.fixture
def fake_qdrant() -> Iterator[tuple[str, FakeQdrant]]:
    state = FakeQdrant(collections={"docs": b"docs-snapshot-bytes", "faq items": b"faq-bytes"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with aws_endpoint.local_endpoint() as url:
        yield url


@pytest.fixture
def aws_cli() -> Path:
    path = _aws_cli()
    if path is None:
        message = "AWS CLI not found: set KR_CFN_AWSCLI or create .venv-awscli (pip install awscli; see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=o["Key"])
    return client


def _run(
    aws_cli: Path, s3_endpoint: str, qdrant_url: str, *args: str, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The task's entry point, as in the task definition: bash -c "$KR_QDRANT_SCRIPT" kr-qdrant ARGS."""
    (container,) = _task_container()
    env = {
        "PATH": f"{aws_cli.parent}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "QDRANT_URL": qdrant_url,
        "BUCKET": BUCKET,
        "PREFIX": "qdrant",
        "KR_QDRANT_SCRIPT": container["env"]["KR_QDRANT_SCRIPT"],
    }
    if api_key:
        env["QDRANT_API_KEY"] = api_key
    return subprocess.run(
        [*container["entry_point"], *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )


def _task_container() -> list[dict[str, Any]]:
    """The snapshot container as the ecs template defines it (entry point and script)."""
    import stacks
    from tests.conftest import load_env

    t = stacks.build_all(load_env("dev"))["ecs"].to_dict()
    (c,) = t["Resources"][qdrant.SNAPSHOT_TASK]["Properties"]["ContainerDefinitions"]
    return [{"entry_point": c["EntryPoint"], "env": {e["Name"]: e["Value"] for e in c["Environment"]}}]


def test_snapshot_copies_every_collection_to_s3_and_frees_qdrants_disk(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    proc = _run(aws_cli, s3_endpoint, url, "snapshot")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="qdrant/")["Contents"])
    assert len(keys) == 2
    stamp = keys[0].split("/")[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z", stamp)
    assert keys == [f"qdrant/{stamp}/docs.snapshot", f"qdrant/{stamp}/faq items.snapshot"]
    assert s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read() == b"docs-snapshot-bytes"
    assert s3.get_object(Bucket=BUCKET, Key=keys[1])["Body"].read() == b"faq-bytes"
    assert state.snapshots == {}, "snapshots are deleted from Qdrant once in S3"
    assert ("POST", "/collections/faq%20items/snapshots?wait=true") in state.calls
    # The one line the metric filter counts, printed once, last.
    assert (
        proc.stdout.strip().splitlines()[-1]
        == f"kr-qdrant: snapshot ok: 2 collection(s) in s3://{BUCKET}/qdrant/{stamp}/"
    )
    assert proc.stdout.count("snapshot ok") == 1


def test_snapshot_with_no_collections_still_succeeds(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    state.collections.clear()
    proc = _run(aws_cli, s3_endpoint, url, "snapshot")
    assert proc.returncode == 0, proc.stderr
    assert "kr-qdrant: snapshot ok: 0 collection(s)" in proc.stdout


def test_a_failed_snapshot_fails_the_task_without_the_success_line(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    state.fail_snapshot_of = "faq items"
    proc = _run(aws_cli, s3_endpoint, url, "snapshot")
    assert proc.returncode != 0
    assert "kr-qdrant: ERROR: snapshot of faq items failed" in proc.stdout
    assert "snapshot ok" not in proc.stdout


def test_an_answer_it_cannot_read_is_no_success(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    state.collections = {}
    state.unreadable = True
    proc = _run(aws_cli, s3_endpoint, url, "snapshot")
    assert proc.returncode != 0
    assert "kr-qdrant: ERROR: cannot read the collections from Qdrant's answer" in proc.stdout
    assert "snapshot ok" not in proc.stdout


def test_unreachable_qdrant_fails(aws_cli: Path, s3_endpoint: str, s3: Any) -> None:
    proc = _run(aws_cli, s3_endpoint, "http://127.0.0.1:9", "snapshot")
    assert proc.returncode != 0
    assert "kr-qdrant: ERROR: cannot list the collections at http://127.0.0.1:9" in proc.stdout


def test_upload_failure_fails(aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]) -> None:
    url, _ = fake_qdrant
    s3.delete_bucket(Bucket=BUCKET)
    try:
        proc = _run(aws_cli, s3_endpoint, url, "snapshot")
    finally:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    assert proc.returncode != 0
    assert "kr-qdrant: ERROR: upload of docs failed" in proc.stdout
    assert "snapshot ok" not in proc.stdout


def test_api_key_is_sent_when_set(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    state.api_key = "k3y"
    assert _run(aws_cli, s3_endpoint, url, "snapshot").returncode != 0
    proc = _run(aws_cli, s3_endpoint, url, "snapshot", api_key="k3y")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_restore_uploads_the_snapshot_into_its_collection(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    key = "qdrant/2026-01-31T030000Z/docs.snapshot"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"yesterday's docs")
    proc = _run(aws_cli, s3_endpoint, url, "restore", key)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ((collection, query, data),) = state.uploads
    assert (collection, data) == ("docs", b"yesterday's docs")
    assert query == {"priority": ["snapshot"], "wait": ["true"]}
    assert f"kr-qdrant: restore ok: s3://{BUCKET}/{key} -> collection docs" in proc.stdout


def test_restore_into_another_collection(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant]
) -> None:
    url, state = fake_qdrant
    key = "qdrant/2026-01-31T030000Z/docs.snapshot"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"old docs")
    assert _run(aws_cli, s3_endpoint, url, "restore", key, "docs restored").returncode == 0
    assert state.collections["docs restored"] == b"old docs"
    assert state.calls[-1][1].startswith("/collections/docs%20restored/snapshots/upload?")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("backups/db.dump", "kr-qdrant: ERROR: backups/db.dump is not a snapshot key under qdrant/"),
        ("qdrant/2026-01-31T030000Z/missing.snapshot", "kr-qdrant: ERROR: cannot read s3://kr-backups/qdrant/"),
    ],
)
def test_restore_refuses_what_it_cannot_use(
    aws_cli: Path, s3_endpoint: str, s3: Any, fake_qdrant: tuple[str, FakeQdrant], key: str, message: str
) -> None:
    url, state = fake_qdrant
    proc = _run(aws_cli, s3_endpoint, url, "restore", key)
    assert proc.returncode != 0 and message in proc.stdout
    assert not state.uploads
