"""``kr-cfn package``: upload nested templates under content-hash keys, write the packaged root.

Same result as ``aws cloudformation package``: every relative ``TemplateURL`` of an
``AWS::CloudFormation::Stack`` becomes an S3 URL. Keys are the SHA-256 of the content, so an
unchanged template is never uploaded twice and a changed one never overwrites a deployed one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from kr_cfn.aws import Aws, error_code
from kr_cfn.built import load_template, parse_template  # noqa: F401 - this module's readers, re-exported
from kr_cfn.errors import DeployError

PACKAGE_FILE = "package.json"
PACKAGED_ROOT = "root.packaged.json"
PR_PREFIX = "pr"
"""Pull-request plans upload under ``pr/``: the plan role may write only there, deploys never read it."""


def artifact_prefix(prefix: str, pull_request: bool) -> str:
    """The key prefix to upload under: ``pr/<prefix>`` for a pull request; a deploy never uses ``pr/``."""
    prefix = prefix.strip("/")
    in_pr = prefix == PR_PREFIX or prefix.startswith(f"{PR_PREFIX}/")
    if pull_request:
        return prefix if in_pr else f"{PR_PREFIX}/{prefix}"
    if in_pr or not prefix:
        raise DeployError(
            f"--prefix {prefix or '/'}: {PR_PREFIX}/ holds pull-request artifacts, which a deploy never uses; "
            "name another prefix, or pass --pull-request for a pull-request plan"
        )
    return prefix


@dataclass
class Packaged:
    """What ``package`` did: the root's URL and, per template, its URL and whether it was uploaded."""

    bucket: str
    root_url: str
    uploads: dict[str, tuple[str, bool]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    """Built template file name -> SHA-256, to notice a build newer than the package."""
    replaced: list[str] = field(default_factory=list)
    """Keys that held other bytes than their name says and were overwritten."""


def template_url(aws: Aws, bucket: str, key: str) -> str:
    """The S3 URL CloudFormation reads a template from."""
    suffix = "amazonaws.com.cn" if aws.region.startswith("cn-") else "amazonaws.com"
    return f"https://s3.{aws.region}.{suffix}/{bucket}/{key}"


def check_bucket(aws: Aws, bucket: str) -> None:
    """Exit 2 with a clear message when the bucket does not exist, is not ours or is in another region."""
    try:
        head = aws.client("s3").head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(
                f"--bucket {bucket}: no such bucket; deploy the bootstrap stack first "
                "(kr-cfn bootstrap --env ENV) and use its ArtifactsBucketName output"
            ) from None
        if error_code(exc) in ("403", "AccessDenied"):
            raise DeployError(f"--bucket {bucket}: access denied (the bucket belongs to another account?)") from None
        raise
    # The template URLs name the deploy region's S3 endpoint, where CloudFormation reads them.
    region = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    if region and region != aws.region:
        raise DeployError(
            f"--bucket {bucket}: the bucket is in {region}, the stacks deploy to {aws.region}; "
            f"use the ArtifactsBucketName output of the bootstrap stack in {aws.region}"
        )


def _checksum(body: bytes) -> str:
    """S3's ``ChecksumSHA256``: the base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _stored_matches(s3: Any, bucket: str, key: str, body: bytes) -> bool | None:
    """Whether the object at ``key`` holds exactly ``body``; None when there is no object.

    A key is a name anyone with PutObject on it can choose, so its content is checked, never
    assumed: S3 keeps the SHA-256 it verified on upload and returns it with ChecksumMode
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html);
    an object stored without one (older uploads) is read back and compared byte for byte.
    """
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        return None
    if head.get("ChecksumSHA256"):
        return bool(head["ChecksumSHA256"] == _checksum(body))
    if head.get("ContentLength") != len(body):
        return False
    return bool(s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body)


def _upload(aws: Aws, bucket: str, prefix: str, name: str, body: bytes, packaged: Packaged) -> str:
    digest = hashlib.sha256(body).hexdigest()
    key = f"{prefix}/{digest}.{name}"
    s3 = aws.client("s3")
    present = _stored_matches(s3, bucket, key, body)
    if present is False:
        print(
            f"warning: s3://{bucket}/{key} holds other bytes than the template its key names "
            "(planted or corrupted): replacing it; the bucket's versioning keeps the other version for inspection",
            file=sys.stderr,
        )
        packaged.replaced.append(key)
    if not present:
        put = s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/json", ChecksumAlgorithm="SHA256"
        )
        # S3 refuses a body that does not match the checksum sent (BadDigest); check the echo too.
        if put.get("ChecksumSHA256") not in (None, _checksum(body)):
            raise DeployError(f"s3://{bucket}/{key}: S3 stored another checksum than sent; package again", code=1)
    url = template_url(aws, bucket, key)
    packaged.uploads[name] = (url, not present)
    return url


def upload_template(aws: Aws, bucket: str, prefix: str, name: str, body: bytes) -> tuple[str, bool]:
    """Upload one template under ``<prefix>/<sha256>.<name>`` (checked, never assumed); its URL and whether uploaded."""
    packaged = Packaged(bucket, "")
    url = _upload(aws, bucket, prefix, name, body, packaged)
    return url, packaged.uploads[name][1]


def _package_template(aws: Aws, path: Path, bucket: str, prefix: str, packaged: Packaged) -> bytes:
    """The template at ``path`` with its nested stacks uploaded (depth first), as JSON bytes."""
    template = load_template(path)
    packaged.sources[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    for _, resource in sorted(template.get("Resources", {}).items()):
        if resource.get("Type") != "AWS::CloudFormation::Stack":
            continue
        url = resource.get("Properties", {}).get("TemplateURL")
        if not isinstance(url, str) or "://" in url:
            continue
        child = (path.parent / url).resolve()
        body = _package_template(aws, child, bucket, prefix, packaged)
        resource["Properties"]["TemplateURL"] = _upload(aws, bucket, prefix, f"{child.stem}.json", body, packaged)
    return (json.dumps(template, indent=1, sort_keys=True) + "\n").encode()


def package(aws: Aws, env_dir: Path, bucket: str, prefix: str, pull_request: bool = False) -> Packaged:
    """Upload ``env_dir``'s nested templates and the packaged root; write ``package.json``."""
    prefix = artifact_prefix(prefix, pull_request)
    check_bucket(aws, bucket)
    root = env_dir / "root.yaml"
    if not root.exists():
        root = env_dir / "root.json"
    packaged = Packaged(bucket, "")
    body = _package_template(aws, root, bucket, prefix, packaged)
    (env_dir / PACKAGED_ROOT).write_bytes(body)
    packaged.root_url = _upload(aws, bucket, prefix, "root.json", body, packaged)
    (env_dir / PACKAGE_FILE).write_text(
        json.dumps(
            {
                "bucket": bucket,
                "pull_request": pull_request,
                "root_template_url": packaged.root_url,
                "sources": packaged.sources,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )
    return packaged


def read_package(env_dir: Path) -> dict[str, Any]:
    """What the last ``package`` wrote for this environment; exit 2 when the build is newer."""
    path = env_dir / PACKAGE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise DeployError(f"{path}: not found; run kr-cfn package --env ENV --bucket BUCKET first") from None
    for name, digest in sorted(data.get("sources", {}).items()):
        current = env_dir / name
        if not current.exists() or hashlib.sha256(current.read_bytes()).hexdigest() != digest:
            raise DeployError(
                f"{current}: changed since kr-cfn package; run kr-cfn package --env ENV --bucket BUCKET again"
            )
    return data
