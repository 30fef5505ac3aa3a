"""A built environment (``out/<env>/``) as data, and what its references point at.

Reads the templates ``kr-cfn build`` wrote, with the loader the deploy code uses
(:func:`kr_cfn.built.load_template`); never imports ``stacks/``. A reference in a
nested stack to one of its Parameters is followed through the root's wiring (the root passes
``!GetAtt OtherStack.Outputs.Name``) to the resource that other stack outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kr_cfn.built import load_template
from kr_cfn.errors import DeployError

ROOT = "root"
STACK_TYPE = "AWS::CloudFormation::Stack"
_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9_:]+)(?:\.([A-Za-z0-9_.]+))?\}")

Target = tuple[str, str]
"""(stack, logical id) of a resource; ``("root", name)`` for a root Parameter."""


@dataclass
class Build:
    """The root template and its nested templates, by stack name (the file's stem)."""

    folder: Path
    root: dict[str, Any]
    stacks: dict[str, dict[str, Any]]
    """Nested stack name -> template, in the order the root wires them (producers first)."""
    stack_of: dict[str, str]
    """Root logical id of an ``AWS::CloudFormation::Stack`` -> nested stack name."""
    _cache: dict[tuple[str, str], frozenset[Target]] = field(default_factory=dict, repr=False)

    def template(self, stack: str) -> dict[str, Any]:
        """The template of ``stack`` (``root`` or a nested stack's name)."""
        return self.root if stack == ROOT else self.stacks[stack]

    def resources(self, stack: str) -> dict[str, Any]:
        """The Resources of ``stack``."""
        return self.template(stack).get("Resources") or {}

    def wiring(self, stack: str) -> dict[str, Any]:
        """The Parameters the root passes to the nested ``stack``."""
        logical = next(k for k, v in self.stack_of.items() if v == stack)
        return (self.root["Resources"][logical].get("Properties") or {}).get("Parameters") or {}

    def refs(self, stack: str, value: Any) -> set[Target]:
        """The resources (or root Parameters) ``value`` refers to, followed through the root's wiring."""
        found: set[Target] = set()
        _walk(self, stack, value, found)
        return found

    def name_target(self, stack: str, name: str) -> frozenset[Target]:
        """What a ``Ref``/``Sub`` name in ``stack`` points at (a parameter is followed to its producer)."""
        key = (stack, name)
        if key in self._cache:
            return self._cache[key]
        self._cache[key] = frozenset()  # a wiring loop resolves to nothing rather than recursing forever
        result: set[Target] = set()
        template = self.template(stack)
        if name in (template.get("Resources") or {}):
            result.add((stack, name))
        elif name in (template.get("Parameters") or {}):
            if stack == ROOT:
                result.add((ROOT, name))
            elif name in self.wiring(stack):
                result |= self.refs(ROOT, self.wiring(stack)[name])
        self._cache[key] = frozenset(result)
        return self._cache[key]

    def attr_target(self, stack: str, logical: str, attr: str) -> set[Target]:
        """What ``!GetAtt logical.attr`` points at: a nested stack's output is followed into that stack."""
        if stack == ROOT and logical in self.stack_of and attr.startswith("Outputs."):
            child = self.stack_of[logical]
            output = (self.stacks[child].get("Outputs") or {}).get(attr.removeprefix("Outputs."))
            return self.refs(child, output["Value"]) if output else set()
        return {(stack, logical)} if logical in self.resources(stack) else set()


def _walk(build: Build, stack: str, value: Any, found: set[Target]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(build, stack, item, found)
        return
    if not isinstance(value, dict):
        return
    if len(value) == 1 and "Ref" in value and isinstance(value["Ref"], str):
        found |= build.name_target(stack, value["Ref"])
        return
    if len(value) == 1 and "Fn::GetAtt" in value:
        att = value["Fn::GetAtt"]
        if isinstance(att, str):
            logical, _, attr = att.partition(".")
        elif isinstance(att, list) and len(att) == 2 and isinstance(att[0], str):
            logical, attr = att[0], str(att[1])
        else:
            return  # not a GetAtt CloudFormation would accept; cfn-lint reports it at build time
        found |= build.attr_target(stack, logical, attr)
        return
    if len(value) == 1 and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        text, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1] if len(sub) > 1 else {})
        if not isinstance(text, str) or not isinstance(local, dict):
            return
        for name, attr in _SUB_VAR.findall(text):
            if name in local:
                continue
            found |= build.attr_target(stack, name, attr) if attr else build.name_target(stack, name)
        _walk(build, stack, local, found)
        return
    for item in value.values():
        _walk(build, stack, item, found)


def resource_refs(build: Build, stack: str, resource: dict[str, Any]) -> set[Target]:
    """Everything a resource refers to: its Properties (Ref, GetAtt, Sub) and its DependsOn."""
    found = build.refs(stack, resource.get("Properties") or {})
    depends = resource.get("DependsOn") or []
    for name in [depends] if isinstance(depends, str) else depends:
        found |= build.name_target(stack, name)
    return found


def load_build(folder: Path) -> Build:
    """Load ``folder/root.(yaml|json)`` and every nested template it names by relative ``TemplateURL``."""
    root_path = next((folder / f"root.{ext}" for ext in ("yaml", "json") if (folder / f"root.{ext}").is_file()), None)
    if root_path is None:
        raise DeployError(f"{folder}: no root.yaml or root.json; run kr-cfn build first")
    root = load_template(root_path)
    stack_of: dict[str, str] = {}
    stacks: dict[str, dict[str, Any]] = {}
    for logical, res in (root.get("Resources") or {}).items():
        if res.get("Type") != STACK_TYPE:
            continue
        url = (res.get("Properties") or {}).get("TemplateURL")
        if not isinstance(url, str) or url.startswith(("http://", "https://", "s3://")):
            raise DeployError(f"{root_path}: {logical}: TemplateURL {url!r} is not a relative path of a built folder")
        child = (folder / url).resolve()
        stack_of[logical] = child.stem
        stacks[child.stem] = load_template(child)
    build = Build(folder, root, {}, stack_of)
    build.stacks = {name: stacks[name] for name in _producers_first(root, stack_of)}
    return build


def build_of_templates(
    folder: Path, root: dict[str, Any], children: dict[str, dict[str, Any]], names: dict[str, str]
) -> Build:
    """A build from a root template and its nested templates by logical id (a deployed stack's, say).

    Each nested stack is named as in ``names`` (logical id -> stack name of the build it is compared
    with), else by its logical id, so the same stack of two builds has one name.
    """
    stack_of = {logical: names.get(logical, logical) for logical in children}
    build = Build(folder, root, {}, stack_of)
    build.stacks = {
        name: children[logical]
        for name in _producers_first(root, stack_of)
        for logical, named in stack_of.items()
        if named == name
    }
    return build


def getatt_names(value: Any) -> set[str]:
    """Logical ids named by the ``Fn::GetAtt`` calls inside ``value``."""
    if isinstance(value, list):
        return set().union(*map(getatt_names, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    att = value.get("Fn::GetAtt")
    if att is not None:
        return {att.partition(".")[0] if isinstance(att, str) else att[0]}
    return set().union(*map(getatt_names, value.values())) if value else set()


def _producers_first(root: dict[str, Any], stack_of: dict[str, str]) -> list[str]:
    """Nested stacks ordered so that a stack comes after those whose outputs it receives."""
    needs: dict[str, set[str]] = {}
    for logical, name in stack_of.items():
        params = (root["Resources"][logical].get("Properties") or {}).get("Parameters") or {}
        needs[name] = {stack_of[lid] for lid in getatt_names(params) if lid in stack_of and lid != logical}
    order: list[str] = []
    while len(order) < len(needs):
        ready = sorted(n for n, deps in needs.items() if n not in order and deps <= set(order))
        order.append(ready[0] if ready else sorted(n for n in needs if n not in order)[0])
    return order
