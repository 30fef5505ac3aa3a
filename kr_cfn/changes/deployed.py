"""What a deployed nested stack holds: its template by GetTemplate, or the packaged build it came from.

The guard asks this for every nested stack a change set removes or replaces (deleting a nested
stack deletes every resource in it). First choice is the stack itself (GetTemplate of its physical
id, the template as deployed); when that cannot be read (the stack is gone, access denied), the
previous build: the ``TemplateURL`` the parent's deployed template points to, i.e. the packaged
template in the artifacts bucket that the stack was deployed from. When neither can be read, the
answer is the reason, and the guard blocks the nested stack as a whole.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlparse

from botocore.exceptions import BotoCoreError, ClientError

from kr_cfn.aws import Aws, error_message
from kr_cfn.changes import guard
from kr_cfn.changes.review import ResourceChange, StackChanges


def _parse(body: Any) -> dict[str, Any] | str:
    """A TemplateBody (boto3 gives JSON templates as a dict, YAML ones as text) as data."""
    if isinstance(body, dict):
        return body
    from cfnlint.decode import decode_str  # YAML with short-form tags, or JSON

    try:
        template, matches = decode_str(str(body))
    except Exception as exc:  # any parse failure means "unreadable", reported with its reason
        return f"template does not parse: {exc}"
    if matches or not isinstance(template, dict):
        return "template does not parse"
    return json.loads(json.dumps(template))


def _deployed_only(template: dict[str, Any] | str, existing: set[str] | None) -> dict[str, Any] | str:
    """The template without resources the stack does not have (a false Condition); all when unknown."""
    if isinstance(template, str) or existing is None or not isinstance(template.get("Resources"), dict):
        return template
    return {**template, "Resources": {k: v for k, v in template["Resources"].items() if k in existing}}


def s3_location(url: str) -> tuple[str, str] | None:
    """(bucket, key) of an S3 template URL, path style or virtual-hosted style; None for anything else."""
    parsed = urlparse(url)
    host, path = parsed.hostname or "", unquote(parsed.path.lstrip("/"))
    if parsed.scheme == "s3":
        return (host, path) if host and path else None
    if parsed.scheme != "https" or not (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")):
        return None
    if host.startswith("s3.") or host.startswith("s3-"):  # https://s3.<region>.amazonaws.com/<bucket>/<key>
        bucket, _, key = path.partition("/")
        return (bucket, key) if bucket and key else None
    if ".s3." in host or ".s3-" in host:  # https://<bucket>.s3.<region>.amazonaws.com/<key>
        return (host.split(".s3", 1)[0], path) if path else None
    return None


class Reader:
    """Reads deployed nested stacks for the guard (``guard.Contents``), each template once."""

    def __init__(self, aws: Aws) -> None:
        self.cfn = aws.client("cloudformation")
        self.aws = aws
        self._templates: dict[str, dict[str, Any] | str] = {}

    def __call__(self, stack: StackChanges, change: ResourceChange) -> list[guard.Held] | str:
        """The stateful resources of the nested stack ``change`` (a resource of ``stack``), at any depth."""
        parent = self.stack_template(stack.stack_name)
        resource = parent.get("Resources", {}).get(change.logical_id, {}) if isinstance(parent, dict) else {}
        top = f"{stack.path}/{change.logical_id}"
        # The physical id of every stack on the way down, so deeper stacks are read by GetTemplate too.
        physical = {top: change.physical_id or self._physical_id(stack.stack_name, change.logical_id)}
        template = self.nested_template(physical[top], change.logical_id, resource)
        if isinstance(template, str):
            return template

        def child(path: str, logical_id: str, resource: dict[str, Any]) -> dict[str, Any] | str:
            parent_id = physical.get(path)
            own = self._physical_id(parent_id, logical_id) if parent_id else None
            physical[f"{path}/{logical_id}"] = own
            return self.nested_template(own, logical_id, resource)

        return guard.held_in(template, top, child)

    def stack_template(self, stack: str | None) -> dict[str, Any] | str:
        """The deployed template of a stack (GetTemplate, stage Original), or why it cannot be read."""
        if not stack:
            return "no physical id"
        if stack not in self._templates:
            try:
                # Processed: after transforms (Fn::ForEach, SAM); the same as Original without them
                # (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplate.html).
                body = self.cfn.get_template(StackName=stack, TemplateStage="Processed")["TemplateBody"]
                self._templates[stack] = _deployed_only(_parse(body), self._resources(stack))
            except ClientError as exc:
                self._templates[stack] = f"GetTemplate {stack}: {error_message(exc)}"
        return self._templates[stack]

    def _resources(self, stack: str) -> set[str] | None:
        """The logical ids the stack has (ListStackResources); None when they cannot be listed."""
        try:
            pages = self.cfn.get_paginator("list_stack_resources").paginate(StackName=stack)
            return {r["LogicalResourceId"] for page in pages for r in page["StackResourceSummaries"]}
        except ClientError:
            return None

    def _physical_id(self, parent: str, logical_id: str) -> str | None:
        if not parent:
            return None
        try:
            detail = self.cfn.describe_stack_resource(StackName=parent, LogicalResourceId=logical_id)
        except ClientError:
            return None
        return detail["StackResourceDetail"].get("PhysicalResourceId") or None

    def nested_template(
        self, physical_id: str | None, logical_id: str, resource: dict[str, Any]
    ) -> dict[str, Any] | str:
        """A nested stack's deployed template, else the packaged template its parent points to, else why not.

        ``resource`` is the nested stack's resource in the parent's deployed template.
        """
        deployed = self.stack_template(physical_id) if physical_id else f"{logical_id}: no physical id"
        if isinstance(deployed, dict):
            return deployed
        url = (resource.get("Properties") or {}).get("TemplateURL")
        if not isinstance(url, str):
            return f"{deployed}; no TemplateURL of the previous build in the parent's deployed template"
        built = self._s3_template(url)
        return built if isinstance(built, dict) else f"{deployed}; previous build {url}: {built}"

    def _s3_template(self, url: str) -> dict[str, Any] | str:
        location = s3_location(url)
        if location is None:
            return "not an S3 URL"
        bucket, key = location
        try:
            body = self.aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except (ClientError, BotoCoreError, UnicodeDecodeError) as exc:
            return error_message(exc) if isinstance(exc, ClientError) else str(exc)
        return _parse(body)
