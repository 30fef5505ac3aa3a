"""A local AWS endpoint for the deploy tests: moto's server in this process, plus its shims.

The deploy code talks to it exactly as to AWS: boto3 with ``AWS_ENDPOINT_URL`` and dummy
credentials. moto 5.2.5's CloudFormation has gaps that the templates hit; the shims below
fill each with what CloudFormation does, in the harness only (never in ``kr_cfn``):

1. ``Fn::GetAtt <NestedStack>.Outputs.X``: moto's ``Stack`` model answers no attributes,
   so root -> child wiring would resolve to nothing. Shim: read the nested stack's outputs.
2. Resource types without a moto model (e.g. ``AWS::S3::BucketPolicy``,
   ``AWS::IAM::OIDCProvider``, ``AWS::EC2::SecurityGroupEgress``, Secrets Manager,
   ElastiCache, alarms, autoscaling): ``parsing.resource_class_from_type`` logs "No Moto
   CloudFormation support" and returns None; the resource is then skipped silently, a
   ``Ref`` to it drops the property that uses it, a ``Fn::GetAtt`` on it fails the stack
   ("references undefined resource") and an Output on it crashes. Shim: a placeholder model
   that records the resource (type, logical id, resolved properties), has a physical id and
   answers every attribute with ``<physical id>.<attribute>``. ``PLACEHOLDERS`` lists what
   was stood in, so tests can assert which resources moto really created and which not.
3. A stack created by a CREATE change set keeps the outputs of the empty template it was
   made with. Shim: after ExecuteChangeSet, rebuild the outputs from the executed template.
4. ``UpdateTerminationProtection`` is not implemented (HTTP 500). Shim: set the flag that
   ``DescribeStacks`` reports as ``EnableTerminationProtection``.

Not shimmed (the tests cover them with recorded API responses in ``tests/fixtures``
instead): change sets carry no Replacement/Details and no nested change sets, and stack
policies are stored but not enforced.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.server import ThreadedMotoServer


@dataclass
class Placeholder:
    """A resource moto cannot create, as the placeholder model recorded it."""

    type: str
    logical_id: str
    physical_id: str
    properties: dict[str, Any]


PLACEHOLDERS: list[Placeholder] = []


class _PlaceholderModel(CloudFormationModel):
    def __init__(self, physical_id: str, type_: str, logical_id: str, properties: dict[str, Any]) -> None:
        self.physical_resource_id = physical_id
        self.record = Placeholder(type_, logical_id, physical_id, properties)
        PLACEHOLDERS.append(self.record)

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SERVICE::RESOURCE"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return f"{self.physical_resource_id}.{attribute_name}"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> _PlaceholderModel:
        return cls(
            resource_name, kwargs["ResourceType"], kwargs["LogicalId"], cloudformation_json.get("Properties", {})
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[override]
        cls,
        original_resource: _PlaceholderModel,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> _PlaceholderModel:
        record = original_resource.record
        return cls(record.physical_id, record.type, record.logical_id, cloudformation_json.get("Properties", {}))

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        return None


def _nested_stack_attribute(self: cfn_models.Stack, attribute_name: str) -> Any:
    if attribute_name.startswith("Outputs."):
        key = attribute_name.split(".", 1)[1]
        for output in self.outputs or []:
            if output["OutputKey"] == key:
                return output["OutputValue"]
    raise parsing.UnformattedGetAttTemplateException()


def _update_termination_protection(self: CloudFormationResponse) -> ActionResult:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = self._get_bool_param("EnableTerminationProtection", False)
    return ActionResult({"StackId": stack.stack_id})


@contextlib.contextmanager
def shims() -> Iterator[None]:
    """Apply the four shims for the duration of the block."""
    original_class_from_type = parsing.resource_class_from_type
    original_execute = cfn_models.CloudFormationBackend.execute_change_set

    def class_from_type(resource_type: str) -> Any:
        found = original_class_from_type(resource_type)
        if found is None and resource_type not in parsing.NULL_MODELS:
            return _PlaceholderModel
        return found

    def execute_change_set(
        self: cfn_models.CloudFormationBackend, change_set_name: str, stack_name: Any = None
    ) -> None:
        original_execute(self, change_set_name, stack_name)
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.output_map = stack._create_output_map()

    parsing.resource_class_from_type = class_from_type
    cfn_models.Stack.get_cfn_attribute = _nested_stack_attribute  # type: ignore[method-assign]
    cfn_models.CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationResponse.update_termination_protection = _update_termination_protection  # type: ignore[attr-defined]
    try:
        yield
    finally:
        parsing.resource_class_from_type = original_class_from_type
        del cfn_models.Stack.get_cfn_attribute
        cfn_models.CloudFormationBackend.execute_change_set = original_execute  # type: ignore[method-assign]
        del CloudFormationResponse.update_termination_protection  # type: ignore[attr-defined]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_endpoint() -> Iterator[str]:
    """moto's server on 127.0.0.1 (free port) with the shims; yields its URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with shims():
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()
