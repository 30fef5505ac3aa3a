"""Small building blocks shared by the stack modules."""

from __future__ import annotations

from typing import Any

from troposphere import Output, Parameter, Tags, Template, ec2

TEMPLATE_VERSION = "2010-09-09"


def new_template(description: str) -> Template:
    """An empty template with the format version and a description."""
    t = Template(Description=description)
    t.set_version(TEMPLATE_VERSION)
    return t


def add_output(t: Template, name: str, value: Any, description: str) -> Output:
    """Add an Output named exactly as the consuming stack's Parameter (PascalCase)."""
    return t.add_output(Output(name, Value=value, Description=description))


def add_parameter(t: Template, name: str, type_: str, description: str, **kwargs: Any) -> Parameter:
    """Add a Parameter that the root wires from a sibling's Output of the same name."""
    return t.add_parameter(Parameter(name, Type=type_, Description=description, **kwargs))


def name_tags(name: str, **extra: str) -> Tags:
    """A ``Name`` tag (what the console shows) plus any extra tags."""
    return Tags(Name=name, **extra)


def checkov_skip(*skips: tuple[str, str]) -> dict[str, Any]:
    """Resource Metadata that suppresses checkov checks, each with its reason."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in skips]}}


def allow_tcp(
    t: Template,
    ids: tuple[str, str],
    source: Any,
    target: Any,
    port: int,
    descriptions: tuple[str, str],
) -> None:
    """Allow TCP ``port`` from security group ``source`` to ``target``: both halves.

    ``ids`` are the logical ids of the ingress rule (on ``target``) and of the egress rule
    (on ``source``); ``descriptions`` likewise. Separate rule resources, not inline rules,
    so groups in another stack can be linked without replacing them.
    """
    ingress_id, egress_id = ids
    ingress_text, egress_text = descriptions
    t.add_resource(
        ec2.SecurityGroupIngress(
            ingress_id,
            GroupId=target,
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            SourceSecurityGroupId=source,
            Description=ingress_text,
        )
    )
    t.add_resource(
        ec2.SecurityGroupEgress(
            egress_id,
            GroupId=source,
            IpProtocol="tcp",
            FromPort=port,
            ToPort=port,
            DestinationSecurityGroupId=target,
            Description=egress_text,
        )
    )
