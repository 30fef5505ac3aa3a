"""How ``kr-cfn bootstrap`` sends its template: inline, or by URL from the bucket it creates first.

CloudFormation takes at most 51,200 bytes in a request's ``TemplateBody`` and 1 MB from an S3
object named by ``TemplateURL`` ("Template body size in a request" and "... in an Amazon S3
object", https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html).
The bootstrap template holds the bucket a URL would name, so a body too large to send inline is
deployed in two phases: first a *phase-one* template with only the bucket, its policy and the
output naming it (a strict subset of the full template: same logical ids and properties), then the
full template from that bucket. The second change set only adds resources.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kr_cfn.errors import DeployError

TEMPLATE_BODY_LIMIT = 51_200
"""Bytes of a TemplateBody (cloudformation-limits.html, "Template body size in a request")."""
TEMPLATE_URL_LIMIT = 1_048_576
"""Bytes of a template read from S3 by TemplateURL (cloudformation-limits.html, "... in an Amazon S3 object")."""
INLINE_SHARE = 0.95
"""Share of the TemplateBody limit up to which the bootstrap is still sent inline."""
BUCKET_OUTPUT = "ArtifactsBucketName"
"""The output naming the artifacts bucket (``kr-cfn outputs --bootstrap --key ArtifactsBucketName``)."""
KEY_PREFIX = "bootstrap"
"""Key prefix of uploaded bootstrap templates: outside ``pr/`` and the env's prefix, the only keys the
GitHub roles may write (stacks/bootstrap.py ``UploadTemplates``), so none can swap the template the
operator's credentials deploy."""
PHASE_ONE_TYPES = ("AWS::S3::Bucket", "AWS::S3::BucketPolicy")
_SECTIONS = ("Parameters", "Mappings", "Conditions", "Resources")
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)[.}]")


def compact(template: dict[str, Any]) -> str:
    """The template as CloudFormation is sent it: compact JSON, keys sorted."""
    return json.dumps(template, separators=(",", ":"), sort_keys=True)


def size(body: str) -> int:
    """Bytes of a template body (the limits count bytes, not characters)."""
    return len(body.encode())


def fits_inline(body: str) -> bool:
    """Whether the body is sent as TemplateBody, with a margin under the limit."""
    return size(body) <= INLINE_SHARE * TEMPLATE_BODY_LIMIT


def check_url_size(body: str, where: str) -> None:
    """Exit 2 when the body is over what CloudFormation reads from S3."""
    if size(body) > TEMPLATE_URL_LIMIT:
        raise DeployError(
            f"{where}: {size(body)} bytes as compact JSON, over CloudFormation's limit of {TEMPLATE_URL_LIMIT} "
            "bytes for a template read by TemplateURL; the bootstrap must shrink (fewer resource types or statements)"
        )


def _names(node: Any) -> set[str]:
    """Every name a part of a template points at: Ref, GetAtt, Sub, FindInMap, conditions, DependsOn."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _names(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("Ref", "Condition", "Fn::Condition") and isinstance(value, str):
                found.add(value)
            elif key == "DependsOn":
                found |= {value} if isinstance(value, str) else set(value)
            elif key == "Fn::GetAtt":
                found.add(value.split(".")[0] if isinstance(value, str) else value[0])
            elif key in ("Fn::FindInMap", "Fn::If") and isinstance(value, list) and isinstance(value[0], str):
                found.add(value[0])
            elif key == "Fn::Sub":
                text, local = (value, {}) if isinstance(value, str) else (value[0], value[1])
                found |= set(_SUB_NAME.findall(text)) - set(local)
            found |= _names(value)
    return found


def phase_one(template: dict[str, Any]) -> dict[str, Any]:
    """The bucket and its policy, what they point at, and the outputs that name only those.

    Selected by resource type from the built template (deploy code never imports stacks/); every
    part is copied unchanged, so the full template is a superset. Exit 2 when the result has no
    ``ArtifactsBucketName`` output: the second phase could not find the bucket.
    """
    declared = {n for s in _SECTIONS for n in template.get(s, {})}
    keep = {n for n, r in template.get("Resources", {}).items() if r.get("Type") in PHASE_ONE_TYPES}
    todo = set(keep)
    while todo:
        name = todo.pop()
        for section in _SECTIONS:
            if name in template.get(section, {}):
                new = (_names(template[section][name]) & declared) - keep
                keep |= new
                todo |= new
    out = {k: v for k, v in template.items() if k not in (*_SECTIONS, "Outputs")}
    for section in _SECTIONS:
        chosen = {n: v for n, v in template.get(section, {}).items() if n in keep}
        if chosen:
            out[section] = chosen
    resources = set(template.get("Resources", {}))
    outputs = {
        n: o for n, o in template.get("Outputs", {}).items() if (_names(o) & resources) and _names(o) & declared <= keep
    }
    if BUCKET_OUTPUT not in outputs:
        raise DeployError(
            f"the bootstrap template has no output {BUCKET_OUTPUT} naming its bucket "
            f"({', '.join(PHASE_ONE_TYPES)}): it cannot be deployed in two phases"
        )
    out["Outputs"] = outputs
    return out


def is_part_of(part: dict[str, Any], full: dict[str, Any]) -> bool:
    """Whether every section entry of ``part`` is in ``full``, unchanged (and the rest of the template equal)."""
    for key, value in part.items():
        if key in (*_SECTIONS, "Outputs"):
            if any(full.get(key, {}).get(n) != v for n, v in value.items()):
                return False
        elif full.get(key) != value:
            return False
    return True
