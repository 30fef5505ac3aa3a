"""A root template and its nested templates, read from a build folder, a fresh build or deployed stacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kr_cfn.built import parse_template
from kr_cfn.errors import DeployError

STACK_TYPE = "AWS::CloudFormation::Stack"


@dataclass
class Tree:
    """One template and, per nested stack logical id, the child's tree."""

    name: str
    """Where the template came from (file or stack name), for messages and the review."""
    template: dict[str, Any]
    children: dict[str, Tree] = field(default_factory=dict)


parse = parse_template
"""A template body as plain data (the one parser: :func:`kr_cfn.built.parse_template`)."""


def _nested(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: r
        for k, r in template["Resources"].items()
        if isinstance(r, dict) and r.get("Type") == STACK_TYPE and isinstance(r.get("Properties"), dict)
    }


def from_files(read: Callable[[str], str | None], root_names: tuple[str, ...], where: str) -> Tree:
    """A tree whose children are relative ``TemplateURL`` files; ``read(name)`` is None when missing."""

    def load(name: str, seen: tuple[str, ...]) -> Tree:
        text = read(name)
        if text is None:
            raise DeployError(f"{where}/{name}: not found")
        tree = Tree(name, parse(text, f"{where}/{name}"))
        for logical_id, res in _nested(tree.template).items():
            url = res["Properties"].get("TemplateURL")
            if not isinstance(url, str) or "://" in url:
                raise DeployError(
                    f"{where}/{name}: Resources.{logical_id}.Properties.TemplateURL: expected a relative path "
                    f"to a built template, got {url!r}"
                )
            child = url.removeprefix("./")
            if child in seen:
                raise DeployError(f"{where}/{name}: Resources.{logical_id} nests {child} in itself")
            tree.children[logical_id] = load(child, (*seen, child))
        return tree

    for root in root_names:
        if read(root) is not None:
            return load(root, (root,))
    raise DeployError(f"{where}: no built templates ({' or '.join(root_names)}); expected a kr-cfn build folder")


def from_folder(folder: Path) -> Tree:
    """The tree of a build output folder (``out/<env>``)."""
    if not folder.is_dir():
        raise DeployError(f"{folder}: not a folder; expected a build output folder such as out/<env>")

    def read(name: str) -> str | None:
        path = folder / name
        try:
            return path.read_text(encoding="utf-8") if path.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            raise DeployError(f"{path}: cannot read ({exc})") from None

    return from_files(read, ("root.yaml", "root.json"), str(folder))


def from_build(files: dict[str, str], env: str) -> Tree:
    """The tree of an in-memory build (file name -> text, as ``kr-cfn build`` renders it)."""
    return from_files(files.get, ("root.json", "root.yaml"), f"build of {env}")


def from_stack(cfn: Any, stack_name: str) -> Tree:
    """The deployed templates of a root stack and its nested stacks (GetTemplate, ListStackResources)."""

    def load(name: str) -> Tree:
        body = cfn.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
        # boto3 hands JSON bodies over already decoded.
        template = body if isinstance(body, dict) else parse(str(body), f"stack {name}")
        if not isinstance(template.get("Resources"), dict):
            raise DeployError(f"stack {name}: its template has no Resources")
        tree = Tree(name, json.loads(json.dumps(template)))
        nested = _nested(template)
        if nested:
            physical: dict[str, str] = {}
            for page in cfn.get_paginator("list_stack_resources").paginate(StackName=name):
                for r in page.get("StackResourceSummaries", []):
                    if r.get("ResourceType") == STACK_TYPE and r.get("PhysicalResourceId"):
                        physical[r["LogicalResourceId"]] = r["PhysicalResourceId"]
            for logical_id in nested:
                if logical_id in physical:  # not created (yet): nothing deployed to compare with
                    tree.children[logical_id] = load(physical[logical_id])
        return tree

    return load(stack_name)


def from_stack_name(name: str, region: str, option: str = "--compare-to") -> Tree:
    """The deployed templates of root stack ``name`` in ``region`` (``--compare-to stack:NAME``): an AWS read."""
    from botocore.exceptions import ClientError

    from kr_cfn.aws import Aws, error_message

    cfn = Aws(region).client("cloudformation")
    try:
        return from_stack(cfn, name)
    except ClientError as exc:
        if "does not exist" in error_message(exc):
            raise DeployError(f"{option} stack:{name}: stack {name} does not exist in {region}") from None
        raise
