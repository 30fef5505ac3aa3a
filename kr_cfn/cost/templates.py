"""The stacks of an environment as plain data: built (``out/<env>``) or deployed (GetTemplate).

Child-stack parameters are resolved to literals where the root wires them from a literal,
a root parameter's default or another child's literal output; anything else stays unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

STACK_TYPE = "AWS::CloudFormation::Stack"


@dataclass
class Stack:
    """One template to price, with its known parameter values."""

    name: str
    """``root``, ``bootstrap`` or the nested stack's logical id (``NetworkStack``)."""
    template: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        """The template's resources (empty when it has none)."""
        res = self.template.get("Resources")
        return res if isinstance(res, dict) else {}

    def value(self, node: Any) -> Any:
        """``node`` as a literal: itself, a known parameter's value, or None."""
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in self.params:
                return self.params[node["Ref"]]
            return None
        return node


def _defaults(template: dict[str, Any]) -> dict[str, Any]:
    params = template.get("Parameters") or {}
    return {k: v["Default"] for k, v in params.items() if isinstance(v, dict) and "Default" in v}


def _output(child: Stack | None, name: str) -> Any:
    if child is None:
        return None
    out = (child.template.get("Outputs") or {}).get(name)
    return child.value(out.get("Value")) if isinstance(out, dict) else None


def _getatt(node: Any) -> tuple[str, str] | None:
    ref = node.get("Fn::GetAtt") if isinstance(node, dict) else None
    if isinstance(ref, list) and len(ref) == 2 and all(isinstance(x, str) for x in ref):
        return ref[0], ref[1]
    if isinstance(ref, str) and "." in ref:
        target, _, attr = ref.partition(".")
        return target, attr
    return None


def wire(root: Stack, children: dict[str, dict[str, Any]]) -> list[Stack]:
    """The root and its children, each child's parameters resolved from the root's wiring."""
    stacks = {name: Stack(name, tpl, _defaults(tpl)) for name, tpl in children.items()}
    # Outputs may depend on other children's parameters: two passes settle one level of chaining.
    for _ in range(2):
        for name, res in root.resources.items():
            if res.get("Type") != STACK_TYPE or name not in stacks:
                continue
            for key, node in ((res.get("Properties") or {}).get("Parameters") or {}).items():
                value = root.value(node)
                ref = _getatt(node)
                if ref and ref[1].startswith("Outputs."):
                    value = _output(stacks.get(ref[0]), ref[1].removeprefix("Outputs."))
                if value is not None:
                    stacks[name].params[key] = value
    return [root, *stacks.values()]


def load_built(env_dir: Path) -> list[Stack]:
    """The built templates of one environment: root, its nested stacks, and bootstrap if built."""
    from kr_cfn.built import load_template  # the deploy code's loader (short-form YAML tags)

    root_path = env_dir / "root.yaml"
    if not root_path.exists():
        root_path = env_dir / "root.json"
    root_tpl = load_template(root_path)
    root = Stack("root", root_tpl, _defaults(root_tpl))
    children: dict[str, dict[str, Any]] = {}
    for name, res in root.resources.items():
        url = (res.get("Properties") or {}).get("TemplateURL") if res.get("Type") == STACK_TYPE else None
        if isinstance(url, str) and "://" not in url:
            children[name] = load_template(env_dir / PurePosixPath(url).name)
    stacks = wire(root, children)
    for boot in (env_dir / "bootstrap.yaml", env_dir / "bootstrap.json"):
        if boot.exists():
            tpl = load_template(boot)
            stacks.append(Stack("bootstrap", tpl, _defaults(tpl)))
            break
    return stacks
