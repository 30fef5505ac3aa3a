"""Create-only properties of resource types, from the provider schemas cfn-lint ships (no network).

A property in a type's ``createOnlyProperties`` cannot be changed in place: CloudFormation
replaces the resource (https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html,
"createOnlyProperties"). ``conditionalCreateOnlyProperties`` are not used: the schemas list there
properties that replace only in rare cases (RDS: BackupRetentionPeriod, MultiAZ), which would
make every routine change look like a possible replacement.
"""

from __future__ import annotations

import functools

from kr_cfn.schemas import resource_schema

Pointer = tuple[str, ...]
"""A JSON pointer below ``/properties`` as segments; ``*`` stands for any list item."""


def _pointers(values: list[str] | None) -> tuple[Pointer, ...]:
    out = []
    for v in values or []:
        parts = v.split("/")
        if len(parts) > 2 and parts[1] == "properties":
            out.append(tuple(parts[2:]))
    return tuple(out)


@functools.cache
def create_only(region: str, resource_type: str) -> tuple[Pointer, ...]:
    """The ``createOnlyProperties`` of a type in a region; empty when the type is unknown (custom)."""
    schema = resource_schema(region, resource_type)
    if schema is None:
        return ()
    return _pointers(schema.get("createOnlyProperties"))
