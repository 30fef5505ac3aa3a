"""A local AWS endpoint: moto's server in this process, plus the shims kr-cfn's templates need.

``kr-cfn local-aws`` (kr_cfn/local_aws.py) and the deploy tests (tests/aws_endpoint.py) run it.
The deploy code talks to it exactly as to AWS: boto3 with ``AWS_ENDPOINT_URL`` and dummy
credentials. moto 5.2.5's CloudFormation has gaps that the templates hit; the shims below
fill each with what CloudFormation does, on the local endpoint only (the deploy code never
imports this module). Needs the ``local`` (or ``test``) extra: ``pip install -e '.[local]'``.

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
5. Models moto has answer only some attributes (e.g. ``AWS::RDS::DBInstance`` has no
   ``MasterUserSecret.SecretArn``, a target group none): ``Fn::GetAtt`` on the others fails
   the stack ("does not support attribute type"), crashes the server, or is left unresolved,
   in a property or in an Output. Shim: when the attribute exists
   in CloudFormation's resource schema (cfn-lint's copy), answer ``<physical id>.<attribute>``
   and record it in ``UNSUPPORTED_ATTRIBUTES``; an attribute the schema does not know still
   fails, as on AWS.
6. moto resolves a ``Ref`` to an ``AWS::RDS::DBParameterGroup`` to its Python object, but its
   DB instance model expects ``DBParameterGroupName`` as a string (the server crashes; the
   ``DBSubnetGroupName`` object it does expect). Shim: pass the parameter group's name, what
   CloudFormation's Ref returns.
7. moto updates a nested stack by deleting it and creating a new one, so resources with a
   Retain policy (log groups) collide with themselves ("already exists"). Shim: update the
   nested stack in place, as CloudFormation does.
8. moto never sets a stack's ``LastUpdatedTime``. Shim: executing an UPDATE change set sets it
   (DescribeStacks then returns it, as CloudFormation does once a stack has been updated).

Not shimmed (the tests cover them with recorded API responses in ``tests/fixtures``
instead): change sets carry no Replacement/Details and no nested change sets, and stack
policies are stored but not enforced.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudformation.utils import get_stack_from_s3_url
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.rds import models as rds_models
from moto.utilities.utils import get_partition
from werkzeug.serving import make_server


@dataclass
class Placeholder:
    """A resource moto cannot create, as the placeholder model recorded it."""

    type: str
    logical_id: str
    physical_id: str
    properties: dict[str, Any]


PLACEHOLDERS: list[Placeholder] = []
UNSUPPORTED_ATTRIBUTES: list[tuple[str, str, str]] = []
"""(type, logical id, attribute) answered by shim 5."""


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


def _update_nested_stack(
    cls: type,
    original_resource: cfn_models.Stack,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> cfn_models.Stack:
    properties = cloudformation_json["Properties"]
    template = get_stack_from_s3_url(
        properties["TemplateURL"], account_id=account_id, partition=get_partition(region_name)
    )
    original_resource.update(template, parameters=properties.get("Parameters", {}))
    return original_resource


def _schema_attributes(resource_type: str, region: str) -> set[str]:
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    return set(PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).get_atts)


def _update_termination_protection(self: CloudFormationResponse) -> ActionResult:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = self._get_bool_param("EnableTerminationProtection", False)
    return ActionResult({"StackId": stack.stack_id})


@contextlib.contextmanager
def shims() -> Iterator[None]:
    """Apply the shims for the duration of the block."""
    original_class_from_type = parsing.resource_class_from_type
    original_execute = cfn_models.CloudFormationBackend.execute_change_set
    original_clean_json = parsing.clean_json

    original_db_instance = rds_models.DBInstance.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def db_instance(cls: type, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any) -> Any:
        properties = cloudformation_json["Properties"]
        group = properties.get("DBParameterGroupName")
        if isinstance(group, CloudFormationModel):  # shim 6
            properties["DBParameterGroupName"] = group.name  # type: ignore[attr-defined]
        return original_db_instance(cls, resource_name, cloudformation_json, *args, **kwargs)

    def clean_json(resource_json: Any, resources_map: parsing.ResourceMap) -> Any:
        if not (isinstance(resource_json, dict) and "Fn::GetAtt" in resource_json):
            return original_clean_json(resource_json, resources_map)
        try:
            value = original_clean_json(resource_json, resources_map)
        except ValidationError as exc:
            if "does not support attribute type" not in str(exc):
                raise
        except AttributeError as exc:  # a model without get_cfn_attribute at all
            if exc.name != "get_cfn_attribute":
                raise
        else:
            if not (isinstance(value, dict) and "Fn::GetAtt" in value):  # moto logs and keeps it unresolved
                return value
        name, attribute = resource_json["Fn::GetAtt"]
        resource_type = resources_map._resource_json_map[name]["Type"]
        if attribute not in _schema_attributes(resource_type, resources_map["AWS::Region"]):
            raise ValidationError(message=f"Template error: {resource_type} has no attribute {attribute}")
        UNSUPPORTED_ATTRIBUTES.append((resource_type, name, attribute))
        physical = getattr(resources_map[name], "physical_resource_id", None) or name
        return f"{physical}.{attribute}"

    def class_from_type(resource_type: str) -> Any:
        found = original_class_from_type(resource_type)
        if found is None and resource_type not in parsing.NULL_MODELS:
            return _PlaceholderModel  # shim 2
        return found

    def execute_change_set(
        self: cfn_models.CloudFormationBackend, change_set_name: str, stack_name: Any = None
    ) -> None:
        original_execute(self, change_set_name, stack_name)
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.output_map = stack._create_output_map()  # shim 3
        if change_set.change_set_type == "UPDATE":
            stack.last_updated_time = utcnow()  # shim 8

    def validate_outputs(self: parsing.ResourceMap) -> None:
        """Moto's check of Output GetAtts, with the schema as the fallback (shim 5)."""
        for output in (self._template.get("Outputs") or {}).values():
            if "Condition" in output and not self.lazy_condition_map[output["Condition"]]:
                continue
            value = output.get("Value", {})
            if not (isinstance(value, dict) and "Fn::GetAtt" in value):
                continue
            name, attribute = value["Fn::GetAtt"]
            resource = self._resource_json_map.get(name) or {}
            if "Condition" in resource and not self.lazy_condition_map[resource["Condition"]]:
                raise ValidationError(message=f"Unresolved resource dependencies [{name}] in the Outputs block")
            resource_type = resource["Type"]
            if class_from_type(resource_type).has_cfn_attr(attribute):
                continue
            if attribute not in _schema_attributes(resource_type, self._region_name):
                raise parsing.UnsupportedAttribute(resource=resource_type.rsplit(":", 1)[-1], attr=attribute)

    parsing.resource_class_from_type = class_from_type
    parsing.clean_json = clean_json
    rds_models.DBInstance.create_from_cloudformation_json = classmethod(db_instance)  # type: ignore[method-assign,assignment]
    original_validate_outputs = parsing.ResourceMap.validate_outputs
    parsing.ResourceMap.validate_outputs = validate_outputs  # type: ignore[method-assign]
    cfn_models.Stack.get_cfn_attribute = _nested_stack_attribute  # type: ignore[method-assign]
    original_update_nested = cfn_models.Stack.__dict__["update_from_cloudformation_json"]
    cfn_models.Stack.update_from_cloudformation_json = classmethod(_update_nested_stack)  # type: ignore[method-assign,assignment]
    cfn_models.CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
    CloudFormationResponse.update_termination_protection = _update_termination_protection  # type: ignore[attr-defined]
    try:
        yield
    finally:
        parsing.resource_class_from_type = original_class_from_type
        parsing.clean_json = original_clean_json
        rds_models.DBInstance.create_from_cloudformation_json = classmethod(original_db_instance)  # type: ignore[method-assign,assignment]
        parsing.ResourceMap.validate_outputs = original_validate_outputs  # type: ignore[method-assign]
        del cfn_models.Stack.get_cfn_attribute
        cfn_models.Stack.update_from_cloudformation_json = original_update_nested  # type: ignore[method-assign]
        cfn_models.CloudFormationBackend.execute_change_set = original_execute  # type: ignore[method-assign]
        del CloudFormationResponse.update_termination_protection  # type: ignore[attr-defined]


@contextlib.contextmanager
def local_endpoint(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Moto's server on ``host:port`` (0: a free port) with the shims; yields its URL.

    As moto's ``ThreadedMotoServer``, but the socket is bound here first: a port in use raises
    :class:`OSError` (werkzeug's own bind prints and calls ``sys.exit(1)``; in moto's thread it
    hangs ``start()``). werkzeug then serves on a duplicate of it (``make_server(fd=...)``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family) as listener:
        server = make_server(
            host,
            listener.getsockname()[1],
            DomainDispatcherApplication(create_backend_app),
            threaded=True,
            request_handler=MotoRequestHandler,
            fd=listener.fileno(),
        )
    thread = threading.Thread(target=server.serve_forever, name="local-aws", daemon=True)
    with shims():
        thread.start()
        try:
            yield f"http://{f'[{host}]' if ':' in host else host}:{server.port}"
        finally:
            server.shutdown()
            thread.join()
            server.server_close()


def reset(url: str) -> None:
    """An empty account: moto keeps its backends per process, across servers and test modules."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()  # noqa: S310
