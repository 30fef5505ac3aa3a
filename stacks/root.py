"""Root stack: one ``AWS::CloudFormation::Stack`` per child, wired Outputs -> Parameters.

Wiring is by name: a child's Parameter ``X`` receives ``GetAtt(<Producer>, "Outputs.X")``
from the one sibling that has an Output ``X``. Parameters nobody produces and whose name
ends in ``ImageTag`` become root Parameters (what changes on every deploy); any other
unproduced Parameter is a wiring error caught at build time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from troposphere import GetAtt, Parameter, Ref, Tags, Template, cloudformation

from kr_cfn.blocks import add_output, new_template
from kr_cfn.config import RootSlice

DEPLOY_PARAMETER_SUFFIX = "ImageTag"


class WiringError(Exception):
    """The child templates do not fit together (a bug in a stack module, not in params)."""


@dataclass(frozen=True)
class ChildTemplate:
    """A built child template and how the root includes it."""

    name: str
    """File stem (``network`` -> ``./network.yaml``)."""
    logical_id: str
    """Logical ID of the nested stack resource in the root; never change it."""
    template: Template
    root_outputs: tuple[str, ...] = ()
    """Child outputs the root re-exposes under the same name."""


def build(cfg: RootSlice, children: Sequence[ChildTemplate], ext: str = "yaml") -> Template:
    """Build the root template that nests ``children`` by relative TemplateURL."""
    t = new_template(f"{cfg.names.prefix}: root stack of the KnowledgeRouter deployment")
    t.set_metadata(
        {
            "cfn-lint": {"config": {"ignore_checks": ["W3002"]}},
            "kr_cfn": {
                "W3002": "TemplateURL is a relative path on purpose: `kr-cfn package` or "
                "`aws cloudformation package` uploads the children and rewrites it, and "
                "cfn-lint follows the path to check the parameter wiring (E3043)."
            },
        }
    )
    producers = _producers(children)
    root_params: dict[str, Parameter] = {}
    for child in children:
        wiring: dict[str, object] = {}
        for name, param in sorted(child.template.parameters.items()):
            if name in producers:
                if producers[name] == child.logical_id:
                    raise WiringError(f"{child.name}: parameter {name} is also its own output")
                wiring[name] = GetAtt(producers[name], f"Outputs.{name}")
            elif name.endswith(DEPLOY_PARAMETER_SUFFIX):
                root_params.setdefault(name, _root_parameter(param, cfg.image_tag_default))
                wiring[name] = Ref(name)
            else:
                raise WiringError(f"{child.name}: parameter {name} has no producing stack output")
        t.add_resource(
            cloudformation.Stack(
                child.logical_id,
                TemplateURL=f"./{child.name}.{ext}",
                # Explicit Delete: the stateful resources inside each child carry their own
                # Retain/Snapshot policies, which CloudFormation honours when a child goes.
                DeletionPolicy="Delete",
                UpdateReplacePolicy="Delete",
                Parameters=wiring,
                Tags=Tags(**cfg.tags),
            )
        )
    for name in sorted(root_params):
        t.add_parameter(root_params[name])
    for child in children:
        for name in child.root_outputs:
            if name not in child.template.outputs:
                raise WiringError(f"{child.name}: root output {name} is not an output of the stack")
            add_output(t, name, GetAtt(child.logical_id, f"Outputs.{name}"), child.template.outputs[name].Description)
    return t


def _producers(children: Sequence[ChildTemplate]) -> dict[str, str]:
    producers: dict[str, str] = {}
    for child in children:
        for name in child.template.outputs:
            if name in producers:
                raise WiringError(f"output {name} is produced by both {producers[name]} and {child.logical_id}")
            producers[name] = child.logical_id
    return producers


def _root_parameter(child_param: Parameter, default: str | None) -> Parameter:
    props = {k: v for k, v in child_param.properties.items() if k != "Default"}
    if default is not None:
        props["Default"] = default
    return Parameter(child_param.title, **props)


def parameter_values(root: Template) -> list[dict[str, str]]:
    """The root's parameters with a default, in the AWS CLI's ``parameters.json`` format."""
    return [
        {"ParameterKey": name, "ParameterValue": p.properties["Default"]}
        for name, p in sorted(root.parameters.items())
        if "Default" in p.properties
    ]
