"""Offline replacement forecast: what a deploy of one build over another would add, change, replace, remove.

Reads built (or deployed) templates only, never ``stacks/``. The result is the review data model
of ``plan`` (:class:`~kr_cfn.changes.review.StackChanges`), checked by the same guard.

How CloudFormation decides, and what is modelled here:
- A changed property listed in the type's ``createOnlyProperties`` replaces the resource
  (https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html);
  when its old or new value is not known before the deploy (a Ref/GetAtt of a resource that is
  itself replaced, a stack parameter given at deploy time, a dynamic reference) the change set
  says ``Conditional`` (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-update-behaviors.html).
- A new logical id is a new resource and a missing one is deleted, so a renamed logical id is a
  delete plus a create (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/resources-section-structure.html).
- A nested stack removed from its parent is deleted with every resource in it
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-nested-stacks.html).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kr_cfn.changes import guard, schemas
from kr_cfn.changes.review import PropertyChange, ResourceChange, StackChanges
from kr_cfn.trees import STACK_TYPE, Tree

INPUT = "KrCfn::Input"
"""Marks a template parameter with no value known before the deploy (e.g. an image tag)."""
MAY_CHANGE = "KrCfn::MayChange"
"""Marks a reference to a resource (or nested stack output) that the deploy creates anew."""
_MISSING = object()
# A subnet group belongs to one VPC (DBSubnetGroup.VpcId): a DB instance moves to another VPC only by
# naming another subnet group (ModifyDBInstance, DBSubnetGroupName: "use this parameter to move your
# DB instance to a different VPC", https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html),
# and DBSubnetGroupName / CacheSubnetGroupName are create-only for the database and the cache. So when
# a subnet group's subnets come from a network that is itself replaced, the group may have to be
# created anew, and what is placed in it by name may be replaced: Conditional, not False.
_VPC_BOUND: dict[str, tuple[tuple[str, ...], ...]] = {
    "AWS::RDS::DBSubnetGroup": (("SubnetIds",),),
    "AWS::ElastiCache::SubnetGroup": (("SubnetIds",),),
    "AWS::DocDB::DBSubnetGroup": (("SubnetIds",),),
}
_SUB_VAR = re.compile(r"\$\{([^!}][^}]*)\}")


@dataclass
class _Side:
    """How references resolve on one side (old or new) of one template."""

    params: dict[str, Any]
    changed: set[str] = field(default_factory=set)
    changed_outputs: dict[str, set[str]] = field(default_factory=dict)


def _is_marked(side: _Side, name: str, attr: str | None) -> bool:
    if name in side.changed:
        return True
    if attr and attr.startswith("Outputs."):
        return attr.removeprefix("Outputs.") in side.changed_outputs.get(name, set())
    return False


def _resolve(value: Any, side: _Side) -> Any:
    """``value`` with parameters replaced by what the parent passes and changing references marked."""
    if isinstance(value, list):
        return [_resolve(v, side) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Ref" and isinstance(inner, str):
            if inner in side.params:
                return side.params[inner]
            return {MAY_CHANGE: value} if _is_marked(side, inner, None) else value
        if key == "Fn::GetAtt":
            parts = list(inner.partition(".")[::2]) if isinstance(inner, str) else inner
            if isinstance(parts, list) and parts and isinstance(parts[0], str):
                attr = str(parts[1]) if len(parts) > 1 else None  # ("Data", "Outputs.Name")
                return {MAY_CHANGE: value} if _is_marked(side, parts[0], attr) else value
        if key == "Fn::Sub":
            return _resolve_sub(inner, side)
    return {k: _resolve(v, side) for k, v in value.items()}


def _resolve_sub(inner: Any, side: _Side) -> Any:
    text, given = (inner[0], inner[1]) if isinstance(inner, list) and len(inner) == 2 else (inner, {})
    if not isinstance(text, str) or not isinstance(given, dict):
        return {"Fn::Sub": _resolve(inner, side)}
    variables = {k: _resolve(v, side) for k, v in given.items()}
    for name in sorted(set(_SUB_VAR.findall(text))):
        if name in variables:  # pseudo parameters (AWS::Region) resolve to themselves below
            continue
        ref, _, attr = name.partition(".")
        value = _resolve({"Fn::GetAtt": [ref, attr]} if attr else {"Ref": ref}, side)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = text.replace("${" + name + "}", str(value))  # a literal parameter: part of the text
        elif value != ({"Fn::GetAtt": [ref, attr]} if attr else {"Ref": ref}):
            variables[name] = value
    return {"Fn::Sub": [text, variables] if variables else text}


def _unknown(value: Any) -> bool:
    """Whether the value is not known before the deploy (so a change of it may or may not replace)."""
    if isinstance(value, list):
        return any(_unknown(v) for v in value)
    if isinstance(value, str):
        return "{{resolve:" in value
    if not isinstance(value, dict):
        return False
    if len(value) == 1 and next(iter(value)) in (INPUT, MAY_CHANGE, "Fn::ImportValue", "Fn::If"):
        return True
    return any(_unknown(v) for v in value.values())


def _intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key == "Ref" or key.startswith(("Fn::", "KrCfn::"))


def _paths(old: Any, new: Any, path: str, out: list[str]) -> None:
    """Append the dotted paths (``A.B[0].C``, ``Environment[REDIS_URL].Value``) where ``old`` and ``new`` differ."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict) and not _intrinsic(old) and not _intrinsic(new):
        for k in sorted(set(old) | set(new)):
            _paths(old.get(k, _MISSING), new.get(k, _MISSING), f"{path}.{k}" if path else k, out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and path:
        for i, (o, n) in enumerate(zip(old, new, strict=True)):
            _paths(o, n, f"{path}[{_item_label(o, n, i)}]", out)
    else:
        out.append(path or "Properties")


def _item_label(old: Any, new: Any, index: int) -> str:
    """A list item by its ``Name`` or ``Key`` (containers, environment, tags) when both sides agree, else its index."""
    for key in ("Name", "Key"):
        if isinstance(old, dict) and isinstance(new, dict):
            label = old.get(key)
            if isinstance(label, str) and label == new.get(key) and re.fullmatch(r"[\w:/@+=,-]+", label):
                return label
    return str(index)


def _at(value: Any, pointer: tuple[str, ...]) -> list[Any]:
    """The values at a schema pointer (``*`` = every list item); missing parts are ``None``."""
    if not pointer:
        return [value]
    head, rest = pointer[0], pointer[1:]
    if head == "*":
        return [x for item in value for x in _at(item, rest)] if isinstance(value, list) else [None]
    if isinstance(value, dict) and head in value:
        return _at(value[head], rest)
    return [None]


def _segments(path: str) -> tuple[str, ...]:
    return tuple(re.sub(r"\[[^\]]*\]", ".*", path).split("."))


def _overlaps(path: tuple[str, ...], pointer: tuple[str, ...]) -> bool:
    return all(a == b or "*" in (a, b) for a, b in zip(path, pointer, strict=False))


def _property_changes(region: str, type_: str, old: dict[str, Any], new: dict[str, Any]) -> tuple[PropertyChange, ...]:
    paths: list[str] = []
    _paths(old, new, "", paths)
    if not paths:
        return ()
    create_only = schemas.create_only(region, type_)
    always: list[tuple[str, ...]] = []
    maybe: list[tuple[str, ...]] = []
    for pointer in create_only:
        before, after = _at(old, pointer), _at(new, pointer)
        if before != after:
            (maybe if _unknown(before) or _unknown(after) else always).append(pointer)
    # (the old side never holds a MAY_CHANGE mark: a marked new value differs from the old one)
    maybe += [p for p in _VPC_BOUND.get(type_, ()) if _unknown_change(_at(new, p))]
    out = []
    for path in paths:
        segs = _segments(path)
        if any(_overlaps(segs, p) for p in always):
            recreate = "Always"
        elif any(_overlaps(segs, p) for p in maybe):
            recreate = "Conditionally"
        else:
            recreate = "Never"
        out.append(PropertyChange(path, recreate, "DirectModification"))
    return tuple(out)


def _replacement(props: Iterable[PropertyChange]) -> str:
    kinds = {p.requires_recreation for p in props}
    return "True" if "Always" in kinds else "Conditional" if "Conditionally" in kinds else "False"


def _references(value: Any, out: set[str]) -> None:
    if isinstance(value, list):
        for v in value:
            _references(v, out)
    elif isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref" and isinstance(inner, str):
                out.add(inner)
            elif key == "Fn::GetAtt":
                parts = [inner.partition(".")[0]] if isinstance(inner, str) else inner
                if isinstance(parts, list) and parts and isinstance(parts[0], str):
                    out.add(parts[0])
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(text, str):
                    out.update(n.partition(".")[0] for n in _SUB_VAR.findall(text))
        for v in value.values():
            _references(v, out)


def _order(resources: dict[str, Any]) -> list[str]:
    """Logical ids with every resource after those it references (template order on a cycle)."""
    deps: dict[str, set[str]] = {}
    for rid, res in resources.items():
        refs: set[str] = set()
        _references(res.get("Properties") if isinstance(res, dict) else None, refs)
        deps[rid] = refs & resources.keys() - {rid}
    done: list[str] = []
    seen: set[str] = set()  # placed, or being placed (a cycle stops here)

    def visit(rid: str) -> None:
        if rid in seen:
            return
        seen.add(rid)
        for dep in sorted(deps[rid]):
            visit(dep)
        done.append(rid)

    for rid in sorted(resources):
        visit(rid)
    return done


def _type(res: Any) -> str:
    return str(res.get("Type", "?")) if isinstance(res, dict) else "?"


def _props(res: Any) -> dict[str, Any]:
    props = res.get("Properties") if isinstance(res, dict) else None
    props = dict(props) if isinstance(props, dict) else {}
    if _type(res) == STACK_TYPE:
        props.pop("TemplateURL", None)  # the child's content is compared instead (a build's path vs S3)
    return props


@dataclass
class _Run:
    region: str
    stacks: list[StackChanges] = field(default_factory=list)


def _expand(run: _Run, tree: Tree | None, path: str, action: str) -> None:
    """Every resource of a nested stack that is created or deleted whole, recursively."""
    if tree is None:
        return
    stack = StackChanges(path, tree.name, "")
    run.stacks.append(stack)
    for rid in sorted(tree.template.get("Resources", {})):
        res = tree.template["Resources"][rid]
        stack.changes.append(ResourceChange(action, rid, _type(res), None))
        if _type(res) == STACK_TYPE:
            _expand(run, tree.children.get(rid), f"{path}/{rid}", action)


def _child_params(tree: Tree | None, resolved: dict[str, Any]) -> dict[str, Any]:
    """The child's parameters: what the parent passes (resolved), else the child's literal default."""
    params: dict[str, Any] = {}
    declared = (tree.template.get("Parameters") if tree else None) or {}
    passed = resolved.get("Parameters") if isinstance(resolved.get("Parameters"), dict) else {}
    for name, spec in declared.items():
        if name in passed:
            params[name] = passed[name]
        elif isinstance(spec, dict) and "Default" in spec and not _intrinsic(spec["Default"]):
            params[name] = spec["Default"]
        else:
            params[name] = {INPUT: name}
    return params


def _top_params(tree: Tree) -> dict[str, Any]:
    """Root parameters are given at deploy time (``plan`` keeps the deployed values): not known here."""
    return {name: {INPUT: name} for name in (tree.template.get("Parameters") or {})}


def _renames(removed: list[ResourceChange], added: list[ResourceChange], fingerprints: dict[str, Any]) -> None:
    """Pair a removed resource with an added one of the same type and properties: a rename."""
    taken: set[int] = set()
    for i, gone in enumerate(removed):
        for j, new in enumerate(added):
            if j in taken or new.type != gone.type:
                continue
            if fingerprints[f"old:{gone.logical_id}"] == fingerprints[f"new:{new.logical_id}"]:
                taken.add(j)
                removed[i] = ResourceChange(
                    "Remove",
                    gone.logical_id,
                    gone.type,
                    None,
                    properties=(PropertyChange(f"renamed to {new.logical_id}", "Always", "Rename"),),
                )
                added[j] = ResourceChange(
                    "Add",
                    new.logical_id,
                    new.type,
                    None,
                    properties=(PropertyChange(f"renamed from {gone.logical_id}", "Always", "Rename"),),
                )
                break


def _fingerprint(tree: Tree | None, rid: str, props: dict[str, Any]) -> Any:
    """What must match for a rename: the properties, and for a nested stack also its template's resources."""
    child = tree.children.get(rid) if tree else None
    return (props, child.template.get("Resources") if child else None)


_POLICIES = ("DeletionPolicy", "UpdateReplacePolicy")


def _policy_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[PropertyChange, ...]:
    """A changed DeletionPolicy/UpdateReplacePolicy: an update of the resource attribute, no replacement.

    A change set names it in ``Target.Attribute``
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceTargetDefinition.html).
    """
    return tuple(PropertyChange(a, "Never", "DirectModification") for a in _POLICIES if old.get(a) != new.get(a))


def _view(res: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """A resource as the guard's protections read it: resolved properties and the policies."""
    return {"Properties": props, **{a: res[a] for a in _POLICIES if a in res}}


def _diff(run: _Run, path: str, old: Tree | None, new: Tree, old_side: _Side, new_side: _Side) -> set[str]:
    """Diff one template (and, depth first, its nested stacks); return its outputs that may change."""
    stack = StackChanges(path, new.name, "")
    run.stacks.append(stack)
    old_res: dict[str, Any] = old.template.get("Resources", {}) if old else {}
    new_res: dict[str, Any] = new.template["Resources"]
    added: list[ResourceChange] = []
    modified: list[ResourceChange] = []
    removed: list[ResourceChange] = []
    fingerprints: dict[str, Any] = {}
    nested_after: list[tuple[str, str]] = []  # (logical id, action) of whole nested stacks to expand
    for rid in _order(new_res):
        res = new_res[rid]
        new_props = _resolve(_props(res), new_side)
        if rid not in old_res or _type(old_res[rid]) != _type(res):
            if rid in old_res:
                removed.append(ResourceChange("Remove", rid, _type(old_res[rid]), None))
                fingerprints[f"old:{rid}"] = ("type changed",)
            new_side.changed.add(rid)
            fingerprints[f"new:{rid}"] = _fingerprint(new, rid, new_props)
            added.append(ResourceChange("Add", rid, _type(res), None))
            if _type(res) == STACK_TYPE:
                nested_after.append((rid, "Add"))
            continue
        old_props = _resolve(_props(old_res[rid]), old_side)
        if _type(res) == STACK_TYPE:
            change = _diff_nested(run, path, rid, old, new, old_props, new_props, new_side)
        else:
            props = _property_changes(run.region, _type(res), old_props, new_props) + _policy_changes(old_res[rid], res)
            weakened = guard.weakened(_type(res), _view(old_res[rid], old_props), _view(res, new_props))
            change = (
                ResourceChange("Modify", rid, _type(res), _replacement(props), properties=props, weakened=weakened)
                if props
                else None
            )
        if change:
            modified.append(change)
            if change.replacement in ("True", "Conditional"):
                new_side.changed.add(rid)
    for rid in sorted(set(old_res) - set(new_res)):
        fingerprints[f"old:{rid}"] = _fingerprint(old, rid, _resolve(_props(old_res[rid]), old_side))
        removed.append(ResourceChange("Remove", rid, _type(old_res[rid]), None))
    _renames(removed, added, fingerprints)
    stack.changes = sorted(added + modified + removed, key=lambda c: (c.logical_id, c.action))
    for change in removed:
        if change.type == STACK_TYPE and old is not None:
            _expand(run, old.children.get(change.logical_id), f"{path}/{change.logical_id}", "Remove")
    for rid, action in nested_after:
        _expand(run, new.children.get(rid), f"{path}/{rid}", action)
    return _changed_outputs(old, new, old_side, new_side)


def _diff_nested(
    run: _Run,
    path: str,
    rid: str,
    old: Tree | None,
    new: Tree,
    old_props: dict[str, Any],
    new_props: dict[str, Any],
    new_side: _Side,
) -> ResourceChange | None:
    old_child = old.children.get(rid) if old else None
    new_child = new.children.get(rid)
    props = _property_changes(run.region, STACK_TYPE, old_props, new_props)
    if new_child is None:
        return ResourceChange("Modify", rid, STACK_TYPE, _replacement(props), properties=props) if props else None
    before = len(run.stacks)
    child_old = _Side(_child_params(old_child, old_props))
    child_new = _Side(_child_params(new_child, new_props))
    outputs = _diff(run, f"{path}/{rid}", old_child, new_child, child_old, child_new)
    if outputs:
        new_side.changed_outputs[rid] = outputs
    changed = any(s.changes for s in run.stacks[before:])
    if not changed:
        del run.stacks[before:]
    if not changed and not props:
        return None
    return ResourceChange(
        "Modify",
        rid,
        STACK_TYPE,
        _replacement(props),
        properties=props,
        nested_change_set_id=f"forecast:{path}/{rid}" if changed else None,
    )


def _changed_outputs(old: Tree | None, new: Tree, old_side: _Side, new_side: _Side) -> set[str]:
    old_out = (old.template.get("Outputs") or {}) if old else {}
    out = set()
    for name, spec in (new.template.get("Outputs") or {}).items():
        value = _resolve(spec.get("Value") if isinstance(spec, dict) else None, new_side)
        before = old_out.get(name)
        # (a value marked MAY_CHANGE differs from the old one: the old side is never marked)
        if not isinstance(before, dict) or _resolve(before.get("Value"), old_side) != value:
            out.add(name)
    return out


def _unknown_change(value: Any) -> bool:
    if isinstance(value, dict):
        return MAY_CHANGE in value or any(_unknown_change(v) for v in value.values())
    if isinstance(value, list):
        return any(_unknown_change(v) for v in value)
    return False


def forecast(old: Tree, new: Tree, region: str) -> list[StackChanges]:
    """The changes from ``old`` to ``new``: the root first, then each changed nested stack, depth first."""
    run = _Run(region)
    _diff(run, "root", old, new, _Side(_top_params(old)), _Side(_top_params(new)))
    return [s for s in run.stacks if s.path == "root" or s.changes]
