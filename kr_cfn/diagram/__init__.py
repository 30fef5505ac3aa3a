"""``kr-cfn diagram``: the architecture of a built environment, drawn from its templates.

Reads ``out/<env>/`` (what ``kr-cfn build`` wrote), never ``stacks/``. Mermaid text for
Markdown; dot, PNG and SVG through Graphviz's ``dot``. ``--compare-to`` another build (``out/``,
``out/<env>`` or an env name) draws what a change adds (green), removes (red) and changes (yellow).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

from kr_cfn import cliargs
from kr_cfn.diagram.graph import Edge, Graph, build_graph
from kr_cfn.diagram.render import COMPARE_LEGEND, dot, mermaid
from kr_cfn.diagram.templates import Build, build_of_templates, load_build
from kr_cfn.errors import EXIT_USAGE, DeployError

__all__ = ["FORMATS", "VIEWS", "Build", "Graph", "add_parser", "compare", "draw", "graph_of", "load_build"]

FORMATS = ("mermaid", "dot", "png", "svg")
VIEWS = ("architecture", "security")


def graph_of(folder: Path, env: str, view: str = "architecture") -> Graph:
    """The graph of the build in ``folder``."""
    return build_graph(load_build(folder), env, view)


def compare(new: Graph, old: Graph) -> Graph:
    """One graph with what ``new`` adds (``added``), drops (``removed``) and relabels (``changed``)."""
    merged = Graph(new.title + " (compared)", list(dict.fromkeys([*new.stacks, *old.stacks])), legend=new.legend)
    for key, node in new.nodes.items():
        before = old.nodes.get(key)
        status = "added" if before is None else ("changed" if before.lines != node.lines else "")
        lines = node.lines
        if status == "changed" and before is not None:
            was = [line for line in before.lines if line not in node.lines]
            lines = [*node.lines, *(f"was: {line}" for line in was)]
        merged.nodes[key] = replace(node, status=status, lines=lines)
    for key, node in old.nodes.items():
        if key not in new.nodes:
            merged.nodes[key] = replace(node, status="removed", path=False)
    for attr in ("edges", "wiring"):
        now: list[Edge] = getattr(new, attr)
        before_edges: list[Edge] = getattr(old, attr)
        known = {e.ident for e in before_edges}
        current = {e.ident for e in now}
        edges = [replace(e, status="" if e.ident in known else "added") for e in now]
        edges += [replace(e, status="removed", path=False) for e in before_edges if e.ident not in current]
        setattr(merged, attr, edges)
    return merged


def draw(graph: Graph, fmt: str) -> bytes:
    """The graph in ``fmt``: mermaid and dot as text, png and svg rendered by Graphviz."""
    compared = any(n.status for n in graph.nodes.values()) or "(compared)" in graph.title
    legend = graph.legend + ("\n" + COMPARE_LEGEND if compared else "")
    if fmt == "mermaid":
        return mermaid(graph).encode()
    text = dot(graph, legend)
    if fmt == "dot":
        return text.encode()
    exe = shutil.which("dot")
    if exe is None:
        raise DeployError(
            f"--format {fmt}: Graphviz's dot is not installed (Debian: apt-get install -y graphviz); "
            "--format mermaid or dot needs no Graphviz"
        )
    done = subprocess.run([exe, f"-T{fmt}"], input=text.encode(), capture_output=True, check=False, timeout=120)
    if done.returncode != 0:
        raise DeployError(f"dot -T{fmt} failed: {done.stderr.decode(errors='replace').strip()}", code=1)
    return done.stdout


LEGACY_FILE_SUFFIXES = (".png", ".svg", ".dot", ".gv", ".mmd", ".mermaid", ".md", ".txt")
"""``diagram --out x.png`` named the output file before ``--out`` meant the build folder everywhere."""


def _legacy_out(args: argparse.Namespace) -> None:
    """The old ``--out FILE`` (a file name, not a folder): take it as ``-o FILE`` for one release, and say so."""
    out, build_dir = Path(args.out), getattr(args, "build_dir", None)
    if args.output is None and out.suffix.lower() in LEGACY_FILE_SUFFIXES and not out.is_dir():
        cliargs.warn_deprecated("kr-cfn diagram", f"--out {args.out} (a file)", f"-o/--output {args.out}")
        args.output, args.out = args.out, build_dir or "out"
    elif build_dir:
        args.out = build_dir


def _cmd_diagram(args: argparse.Namespace) -> int:
    _legacy_out(args)
    folder = Path(args.out) / args.env
    graph = graph_of(folder, args.env, args.view)
    cliargs.warn_if_stale(folder, Path(args.params) / f"{args.env}.yaml")
    if args.compare_to:
        found = cliargs.resolve_compare(args.compare_to, args.env, Path(args.params), Path(args.out))
        graph = compare(graph, _old_graph(found, graph, args))
    data = draw(graph, args.format)
    if args.output:
        target = Path(args.output)
        cliargs.write_file(target, data, "--output")
        print(f"{target}: {args.view} diagram of {folder} ({args.format})")
    elif args.format in ("png",):
        raise DeployError("--format png writes binary data: name a file with -o/--output FILE", code=EXIT_USAGE)
    else:
        print(data.decode(), end="")
    return 0


def _old_graph(found: cliargs.Comparison, new: Graph, args: argparse.Namespace) -> Graph:
    """The graph ``--compare-to`` names: a build folder, or a deployed root stack's templates (an AWS read)."""
    if found.folder is not None:
        return graph_of(found.folder, args.env, args.view)
    from kr_cfn import config
    from kr_cfn.aws import AWS_FAILURES, failure
    from kr_cfn.trees import from_stack_name

    assert found.stack is not None
    try:
        region = config.load(Path(args.params) / f"{args.env}.yaml").region
    except config.ConfigError as exc:
        raise DeployError(str(exc)) from None
    try:
        tree = from_stack_name(found.stack, region)
    except AWS_FAILURES as exc:
        raise failure(exc, found.stack) from None
    names = load_build(Path(args.out) / args.env).stack_of
    children = {logical: child.template for logical, child in tree.children.items()}
    build = build_of_templates(Path(found.label), tree.template, children, names)
    return build_graph(build, args.env, args.view)


def add_parser(sub: Any) -> None:
    """Register ``kr-cfn diagram``."""
    p = sub.add_parser("diagram", help="draw a built environment: stacks, resources, who may talk to whom")
    cliargs.add_env(p, help="environment whose build (<out>/<env>/) is drawn")
    cliargs.add_build_dir(p)
    cliargs.deprecated(p, "--build-dir", "build_dir", "--out")
    p.add_argument("--format", choices=FORMATS, default="mermaid", help="output format (default: mermaid)")
    p.add_argument(
        "--view",
        choices=VIEWS,
        default="architecture",
        help="architecture (stacks, resources, request path) or security (security-group flows only)",
    )
    cliargs.add_compare_to(p, help=cliargs.COMPARE_HELP + ": draw what changes")
    cliargs.add_output_file(p, help="write the diagram here instead of standard output (needed for png)")
    p.set_defaults(func=_cmd_diagram)
