"""Mermaid (for Markdown: GitHub renders it) and Graphviz dot text of a :class:`Graph`."""

from __future__ import annotations

import re
from collections import defaultdict

from kr_cfn.diagram.graph import STORE_TYPES, Edge, Graph, Node

PATH_COLOR = "#d9480f"
TRAFFIC_COLOR = "#1c7ed6"
REF_COLOR = "#868e96"
STATUS_FILL = {"added": "#d3f9d8", "removed": "#ffe3e3", "changed": "#fff3bf"}
STATUS_LINE = {"added": "#2b8a3e", "removed": "#c92a2a", "changed": "#e67700"}
COMPARE_LEGEND = "green: added by the change; red: removed; yellow: changed"

_ENTRY_TYPES = {"AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::Route53::RecordSet"}


def _by_stack(graph: Graph) -> dict[str, dict[int | None, list[Node]]]:
    grouped: dict[str, dict[int | None, list[Node]]] = defaultdict(lambda: defaultdict(list))
    for node in sorted(graph.nodes.values(), key=lambda n: n.key):
        grouped[node.stack][node.az].append(node)
    return grouped


def _stack_title(stack: str) -> str:
    return "root parameters" if stack == "root" else f"{stack} stack"


def _edge_color(edge: Edge) -> str:
    if edge.status in STATUS_LINE:
        return STATUS_LINE[edge.status]
    if edge.path:
        return PATH_COLOR
    return TRAFFIC_COLOR if edge.kind == "traffic" else REF_COLOR


# --------------------------------------------------------------------------- mermaid


def _mid(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


def _mtext(lines: list[str]) -> str:
    escaped = [line.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;") for line in lines]
    return "<br/>".join(escaped)


def _mnode(node: Node) -> str:
    text = f'"{_mtext(node.lines)}"'
    if node.type == "external":
        return f"{_mid(node.key)}(({text}))"
    if node.type in STORE_TYPES:
        return f"{_mid(node.key)}[({text})]"
    if node.type in _ENTRY_TYPES:
        return f"{_mid(node.key)}{{{{{text}}}}}"
    if node.type == "AWS::ECS::Service":
        return f"{_mid(node.key)}([{text}])"
    return f"{_mid(node.key)}[{text}]"


def mermaid(graph: Graph) -> str:
    """Mermaid flowchart text."""
    out = ["flowchart LR"]
    stacks = [s for s in [*graph.stacks] if s in _by_stack(graph)] + (["root"] if _has_root(graph) else [])
    grouped = _by_stack(graph)
    for node in grouped.get("", {}).get(None, []):
        out.append(f"  {_mnode(node)}")
    for stack in stacks:
        out.append(f'  subgraph stack_{_mid(stack)}["{_stack_title(stack)}"]')
        for az, nodes in sorted(grouped.get(stack, {}).items(), key=lambda i: (i[0] is not None, i[0] or 0)):
            indent = "    "
            if az is not None:
                out.append(f'    subgraph az_{_mid(stack)}_{az}["AZ {az + 1}"]')
                indent = "      "
            out += [f"{indent}{_mnode(n)}" for n in nodes]
            if az is not None:
                out.append("    end")
        if stack == "root":
            out.append('    root_params["image tags"]')
        out.append("  end")
    styles: dict[str, list[int]] = defaultdict(list)
    for index, edge in enumerate([*graph.edges, *graph.wiring]):
        src, dst = (_mid_end(graph, k) for k in (edge.src, edge.dst))
        arrow = "-.->" if edge.dashed else ("==>" if edge.path or edge.kind == "traffic" else "-->")
        label = f'|"{_mtext([edge.label])}"|' if edge.label and edge.kind != "member" else ""
        out.append(f"  {src} {arrow}{label} {dst}")
        width = "3px" if edge.path else ("2px" if edge.kind == "traffic" else "1px")
        styles[f"stroke:{_edge_color(edge)},stroke-width:{width}"].append(index)
    for style, indexes in styles.items():
        out.append(f"  linkStyle {','.join(map(str, indexes))} {style}")
    out.append(f"  classDef path stroke:{PATH_COLOR},stroke-width:2px")
    for status, fill in STATUS_FILL.items():
        out.append(f"  classDef {status} fill:{fill},stroke:{STATUS_LINE[status]},stroke-width:2px")
    classes: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes.values():
        if node.status:
            classes[node.status].append(_mid(node.key))
        elif node.path:
            classes["path"].append(_mid(node.key))
    for name, ids in sorted(classes.items()):
        out.append(f"  class {','.join(sorted(ids))} {name}")
    return "\n".join(out) + "\n"


def _has_root(graph: Graph) -> bool:
    return any(e.src == "stack/root" for e in graph.wiring)


def _mid_end(graph: Graph, key: str) -> str:
    if key == "stack/root":
        return "root_params"
    if key.startswith("stack/"):
        return f"stack_{_mid(key.removeprefix('stack/'))}"
    return _mid(key)


# --------------------------------------------------------------------------- dot


def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dnode(node: Node) -> str:
    shape = (
        "ellipse"
        if node.type == "external"
        else "cylinder"
        if node.type in STORE_TYPES
        else "hexagon"
        if node.type in _ENTRY_TYPES
        else "box"
    )
    style = "filled" if shape != "box" else "rounded,filled"
    fill = STATUS_FILL.get(node.status, "#fff4e6" if node.path else "white")
    color = STATUS_LINE.get(node.status, PATH_COLOR if node.path else "#495057")
    width = "2" if node.path or node.status else "1"
    text = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in node.lines)
    return (
        f'{_dq(node.key)} [label="{text}", shape={shape}, style="{style}", fillcolor="{fill}", '
        f'color="{color}", penwidth={width}];'
    )


def dot(graph: Graph, legend: str) -> str:
    """Graphviz dot text (``dot -Tpng``)."""
    out = [
        "digraph kr_cfn {",
        '  graph [rankdir=LR, compound=true, fontname="Helvetica", fontsize=18, labelloc=t, nodesep=0.3, '
        f"ranksep=0.9, newrank=true, label={_dq(graph.title + chr(10) + legend)}];",
        '  node [fontname="Helvetica", fontsize=12, margin="0.15,0.06"];',
        '  edge [fontname="Helvetica", fontsize=11];',
    ]
    grouped = _by_stack(graph)
    anchor: dict[str, str] = {}
    for node in grouped.get("", {}).get(None, []):
        out.append(f"  {_dnode(node)}")
    stacks = [s for s in graph.stacks if s in grouped] + (["root"] if _has_root(graph) else [])
    for stack in stacks:
        out.append(f"  subgraph {_dq('cluster_' + stack)} {{")
        out.append(f"    label={_dq(_stack_title(stack))};")
        out.append('    style="rounded,filled"; fillcolor="#f8f9fa"; color="#adb5bd";')
        if stack == "root":
            out.append('    "stack/root" [label="image tags", shape=note];')
            anchor["root"] = "stack/root"
        for az, nodes in sorted(grouped.get(stack, {}).items(), key=lambda i: (i[0] is not None, i[0] or 0)):
            if az is not None:
                out.append(f"    subgraph {_dq(f'cluster_{stack}_az{az}')} {{")
                out.append(f'      label="AZ {az + 1}"; style="dashed,rounded"; fillcolor="#ffffff"; color="#adb5bd";')
            out += [f"    {_dnode(n)}" for n in nodes]
            anchor.setdefault(stack, nodes[0].key)
            if az is not None:
                out.append("    }")
        out.append("  }")
    for edge in graph.edges:
        attrs = [f'color="{_edge_color(edge)}"', f"penwidth={3 if edge.path else 2 if edge.kind == 'traffic' else 1}"]
        if edge.label and edge.kind != "member":
            attrs.append(f"label={_dq(edge.label)}")
            attrs.append(f'fontcolor="{_edge_color(edge)}"')
        if edge.dashed:
            attrs.append("style=dashed")
        out.append(f"  {_dq(edge.src)} -> {_dq(edge.dst)} [{', '.join(attrs)}];")
    for edge in graph.wiring:
        src, dst = (k.removeprefix("stack/") for k in (edge.src, edge.dst))
        if src not in anchor or dst not in anchor:
            continue
        attrs = [
            "style=dashed",
            f'color="{_edge_color(edge) if edge.status else "#adb5bd"}"',
            "constraint=false",  # the stacks' wiring must not stretch the layout; Mermaid names the outputs
        ]
        if src != "root":
            attrs.append(f"ltail={_dq('cluster_' + src)}")
        attrs.append(f"lhead={_dq('cluster_' + dst)}")
        out.append(f"  {_dq(anchor[src])} -> {_dq(anchor[dst])} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"
