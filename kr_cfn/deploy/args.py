"""Checks of the deploy commands' arguments that need no AWS: a bad argument fails before any call.

Each problem is one line naming the option, the value and what was expected (exit 2).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from kr_cfn.errors import DeployError
from kr_cfn.naming import pascal

IMAGE_TAG_SUFFIX = "ImageTag"

# CloudFormation: "The logical ID must be alphanumeric (A-Za-z0-9) and unique within the template."
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resources-section-structure.html
LOGICAL_ID = re.compile(r"^[A-Za-z0-9]{1,255}$")
# Stack and change set names: "must start with an alphabetical character and can't be longer than 128
# characters"; letters, digits and hyphens only.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
CHANGE_SET = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9-]{0,127}|arn:aws[a-z-]*:cloudformation:[a-z0-9-]+:\d{12}:changeSet/\S+)$"
)
# Docker image tags: "valid ASCII and may contain lowercase and uppercase letters, digits, underscores,
# periods, and hyphens. A tag name may not start with a period or a hyphen and may contain a maximum of
# 128 characters." https://docs.docker.com/reference/cli/docker/image/tag/
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# S3: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _match(option: str, value: str | None, pattern: re.Pattern[str], expected: str) -> None:
    if value is not None and not pattern.match(value):
        raise DeployError(f"{option} {value!r}: expected {expected}")


def image_tags(items: list[str] | None) -> dict[str, str]:
    """``--image-tag NAME=TAG`` options as ``{"BackendImageTag": TAG}``; a bad one is a :class:`DeployError`."""
    given: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DeployError(f"--image-tag {item!r}: expected NAME=TAG, e.g. backend=3f2c1ab")
        if not IMAGE_TAG.match(value):
            raise DeployError(
                f"--image-tag {item!r}: {value!r} is not a Docker tag "
                "(letters, digits, _ . -, not starting with . or -, at most 128 characters)"
            )
        if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", key):
            raise DeployError(f"--image-tag {item!r}: {key!r} is not a service name (e.g. backend)")
        name = key if key.endswith(IMAGE_TAG_SUFFIX) else f"{pascal(key)}{IMAGE_TAG_SUFFIX}"
        if name in given:
            raise DeployError(f"--image-tag {item!r}: {key} is named twice")
        given[name] = value
    return given


def check(args: argparse.Namespace, env: str) -> None:
    """Refuse malformed options before anything reads AWS (or the build, where the option needs none)."""
    for item in getattr(args, "allow_replace", None) or []:
        _match("--allow-replace", item, LOGICAL_ID, "a logical id (letters and digits, e.g. DatabaseInstance)")
    _match(
        "--stack-name",
        getattr(args, "stack_name", None),
        STACK_NAME,
        "a stack name (a letter, then letters, digits and hyphens, at most 128 characters)",
    )
    _match("--change-set", getattr(args, "change_set", None), CHANGE_SET, "the change set name or ARN plan printed")
    _match("--bucket", getattr(args, "bucket", None), BUCKET, "an S3 bucket name (the bootstrap's ArtifactsBucketName)")
    _match("--plan-digest", getattr(args, "plan_digest", None), SHA256, "the 64 hex digits of a sha256")
    if getattr(args, "plan_digest", None) and not getattr(args, "plan", None):
        raise DeployError("--plan-digest: only with --plan (the record it is the digest of)")
    given = image_tags(getattr(args, "image_tag", None))
    for option in ("review_dir", "plan"):
        value = getattr(args, option, None)
        flag = f"--{option.replace('_', '-')}"
        if value is not None and option == "review_dir" and Path(value).exists() and not Path(value).is_dir():
            raise DeployError(f"{flag} {value}: is a file, not a folder")
        if value is not None and option == "plan" and not Path(value).is_file():
            raise DeployError(f"{flag} {value}: no such file (the plan.json written by kr-cfn plan)")
    if given:
        _check_declared(given, Path(args.out) / env, env)


def _check_declared(given: dict[str, str], env_dir: Path, env: str) -> None:
    """Every ``--image-tag`` names a parameter of the built root template."""
    from kr_cfn.changes.package import load_template

    root = next((env_dir / f for f in ("root.yaml", "root.json") if (env_dir / f).exists()), None)
    if root is None:
        raise DeployError(f"{env_dir}: no built templates; run kr-cfn build --env {env} first")
    declared = load_template(root).get("Parameters") or {}
    for name in given:
        if name not in declared:
            have = ", ".join(sorted(p for p in declared if p.endswith(IMAGE_TAG_SUFFIX))) or "none"
            raise DeployError(f"--image-tag: the root template has no parameter {name} (have: {have})")
