"""Reading templates: one parser (JSON, or YAML with short-form tags) and the shape every reader relies on.

No boto3 here: ``kr-cfn diff`` and ``kr-cfn cost`` read templates and must start fast.

A hand-edited template (a list where a mapping belongs, a resource without a type) is then one
line naming the file and the key, exit 2, instead of an error deep inside a reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import yaml

from kr_cfn.errors import DeployError

_SECTIONS = ("Parameters", "Mappings", "Conditions", "Outputs", "Metadata", "Rules")


def shape_problem(template: Any) -> str | None:
    """What is wrong with the top-level shape of ``template``, or None.

    The shape CloudFormation documents: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-anatomy.html
    """
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        return "not a CloudFormation template (expected a mapping with Resources)"
    for section in _SECTIONS:
        if section in template and not isinstance(template[section], dict):
            return f"{section}: expected a mapping, got {type(template[section]).__name__}"
    for section in ("Parameters", "Outputs"):
        for key, value in (template.get(section) or {}).items():
            if not isinstance(value, dict):
                return f"{section}.{key}: expected a mapping, got {type(value).__name__}"
    for key, resource in template["Resources"].items():
        if not isinstance(resource, dict):
            return f"Resources.{key}: expected a mapping with Type, got {type(resource).__name__}"
        if not isinstance(resource.get("Type"), str):
            return f"Resources.{key}.Type: expected a resource type such as AWS::S3::Bucket"
        if "Properties" in resource and not isinstance(resource["Properties"], dict):
            return f"Resources.{key}.Properties: expected a mapping, got {type(resource['Properties']).__name__}"
    return None


class _TemplateLoader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """libyaml's safe loader plus CloudFormation's short-form tags; dates stay strings."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    """``!Ref X`` -> ``{"Ref": X}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": [A, B]}``, ``!Sub`` -> ``{"Fn::Sub"}``..."""
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _short_form)


def parse_template(text: str, source: str) -> dict[str, Any]:
    """A template body (JSON, or YAML with short-form tags) as plain data; exit 2 naming ``source`` if not one."""
    try:
        template = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, Loader=_TemplateLoader)  # noqa: S506
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeployError(f"{source}: not a readable template ({first})") from None
    problem = shape_problem(template)
    if problem is not None:
        raise DeployError(f"{source}: {problem}")
    return template


def load_template(path: Path) -> dict[str, Any]:
    """A built template file as plain data (the same data as cfn-lint's decoder: a test compares them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeployError(f"{path}: cannot read ({exc.strerror}); run kr-cfn build first") from None
    except UnicodeDecodeError as exc:
        raise DeployError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from None
    return parse_template(text, str(path))


def template_node(text: str, source: str) -> yaml.MappingNode:
    """A template body's YAML node tree, with the line of every key (``kr-cfn sarif``); JSON parses as YAML too."""
    try:
        node = yaml.compose(text, Loader=_TemplateLoader)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeployError(f"{source}: not a readable template ({first})") from None
    if not isinstance(node, yaml.MappingNode):
        raise DeployError(f"{source}: not a CloudFormation template (expected a mapping with Resources)")
    return node
