"""The shape every reader of a built template relies on, checked once where the template is parsed.

A hand-edited template (a list where a mapping belongs, a resource without a type) is then one
line naming the file and the key, exit 2, instead of an error deep inside a reader.
"""

from __future__ import annotations

from typing import Any

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
