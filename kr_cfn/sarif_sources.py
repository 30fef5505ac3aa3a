"""Where a stack's source constructs each resource, read from the source text (``ast``), never imported.

``kr-cfn sarif`` needs, for a built template's logical id, the line of ``stacks/<stack>.py`` (or of
the kr_cfn building block the stack delegates to) that constructs it. Logical ids are module-level
constants, literals or f-strings passed as the first argument of a troposphere resource class;
a helper that receives the id as a parameter (``_alarm(t, cfg, topic, BACKEND_CPU_ALARM, ...)``)
is followed back to its call sites, where the id is known.

Each constructor becomes a :class:`Site`: a pattern of the logical id (literal parts and
wildcards for what only the build knows), the resource type of the troposphere class, and the
string patterns of its keyword arguments, which break ties between constructors of one type.
"""

from __future__ import annotations

import ast
import importlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kr_cfn.errors import DeployError


@dataclass(frozen=True)
class Param:
    """A part of a logical id that is a parameter of the enclosing function (``index``: of a tuple)."""

    name: str
    index: int | None = None


Part = str | Param | None
"""A literal, a parameter, or None: a part only the build knows."""
Parts = tuple[Part, ...]
Shape = tuple[str, Any] | None
"""A keyword argument as built: ("str", patterns), ("const", value), ("list", shapes), ("object", fields)."""
_MAX_ALTERNATIVES = 16
_MAX_DEPTH = 3  # helpers followed back through at most this many calls
_PACKAGES = ("stacks", "kr_cfn")


def _normal(parts: Parts) -> Parts:
    out: list[Part] = []
    for part in parts:
        if part == "":
            continue
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part is None and out and out[-1] is None:
            continue
        else:
            out.append(part)
    return tuple(out)


def _literal(parts: Parts) -> int:
    return sum(len(p) for p in parts if isinstance(p, str))


def _regex(parts: Parts) -> str:
    return "".join(re.escape(p) if isinstance(p, str) else ".*" for p in parts)


def _concat(*alternatives: list[Parts]) -> list[Parts]:
    combos = itertools.islice(itertools.product(*alternatives), _MAX_ALTERNATIVES)
    return list(dict.fromkeys(_normal(tuple(p for parts in combo for p in parts)) for combo in combos))


def _wild(alternatives: list[Parts]) -> list[Parts]:
    """Every parameter a wildcard."""
    return list(dict.fromkeys(_normal(tuple(None if isinstance(p, Param) else p for p in a)) for a in alternatives))


@dataclass(frozen=True)
class Site:
    """A place in the source that constructs resources of one type whose logical ids match ``patterns``."""

    path: str  # relative to the repository root
    line: int
    function: str
    resource_type: str
    patterns: tuple[Parts, ...]
    keywords: tuple[tuple[str, Shape], ...] = ()
    via: tuple[str, int] | None = None  # the constructor, when this is the call site of a helper

    def specificity(self, logical_id: str) -> int:
        """Literal characters of the best pattern matching ``logical_id``; -1 if none matches."""
        scores = [_literal(p) for p in self.patterns if re.fullmatch(_regex(p), logical_id)]
        return max(scores, default=-1)

    def evidence(self, resource: dict[str, Any]) -> int:
        """How many known keyword values agree with the built resource, minus those that do not."""
        props = resource.get("Properties") if isinstance(resource.get("Properties"), dict) else {}
        return sum(_agree(shape, props.get(name, resource.get(name))) for name, shape in self.keywords)

    @property
    def key(self) -> str:
        """Stable across line shifts: file, function, resource type and id pattern."""
        shown = " | ".join(_regex(p) for p in self.patterns)
        return f"{self.path}:{self.function}:{self.resource_type}:{shown}"


@dataclass
class _Module:
    name: str
    rel: str
    tree: ast.Module
    constants: dict[str, str] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)


class _Scope:
    """Names inside one function (or a module's top level) as logical-id parts."""

    def __init__(self, index: SourceIndex, module: _Module, func: ast.FunctionDef | None, params_wild: bool) -> None:
        self.index, self.module, self.func, self.params_wild = index, module, func, params_wild
        self.params: list[str] = []
        self.assigned: dict[str, Any] = {}
        bound: set[str] = set()
        if func is not None:
            a = func.args
            self.params = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
            self.params += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
            for node in ast.walk(func):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    bound.add(node.id)
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        self._assign(target.id, ("expr", node.value))
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Name):
                        for i, elt in enumerate(target.elts):
                            if isinstance(elt, ast.Name):
                                self._assign(elt.id, ("unpack", node.value.id, i))
        self.opaque = bound - set(self.assigned) | {n for n, v in self.assigned.items() if v is None}

    def _assign(self, name: str, value: Any) -> None:
        self.assigned[name] = None if name in self.assigned else value  # assigned twice: unknown

    def name(self, name: str, depth: int) -> list[Parts]:
        if name in self.params:
            return [(None,)] if self.params_wild else [(Param(name),)]
        if name in self.opaque:
            return [(None,)]
        if name in self.assigned:
            value = self.assigned[name]
            if value[0] == "expr":
                return self.index.evaluate(value[1], self, depth + 1)
            if value[1] in self.params and not self.params_wild:
                return [(Param(value[1], value[2]),)]
            return [(None,)]
        return self.index.constant(self.module, name)


class SourceIndex:
    """The construction sites of the resources of one stack module and the building blocks it imports."""

    def __init__(self, root: Path, module: str, shared: SourceIndex | None = None) -> None:
        """``shared``: an index of another stack of the same repository, whose parsed modules this one reuses."""
        self.root = root
        self._modules: dict[str, _Module | None] = shared._modules if shared else {}
        self._troposphere: dict[str, Any] = shared._troposphere if shared else {}
        self._calls: dict[str, list[tuple[ast.FunctionDef | None, ast.Call]]] = shared._calls if shared else {}
        self._scopes: dict[tuple[str, int, bool], _Scope] = shared._scopes if shared else {}
        start = self.module(module)
        if start is None:
            raise DeployError(f"{module}: no such module under {root}")
        self.entry = start
        self.closure = self._closure(start)
        self.sites = list(self._sites())

    # ------------------------------------------------------------------ modules

    def module(self, name: str) -> _Module | None:
        """A repository module (stacks.*, kr_cfn.*) parsed, or None."""
        if name in self._modules:
            return self._modules[name]
        self._modules[name] = None
        if name.split(".")[0] not in _PACKAGES:
            return None
        base = self.root.joinpath(*name.split("."))
        path = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
        if path is None:
            return None
        rel = path.relative_to(self.root).as_posix()
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            raise DeployError(f"{rel}: cannot read the stack source ({type(exc).__name__}: {exc})") from None
        mod = _Module(name, rel, tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                mod.functions[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                text = node.value.value if isinstance(node.value, ast.Constant) else None
                if len(targets) == 1 and isinstance(targets[0], ast.Name) and isinstance(text, str):
                    mod.constants[targets[0].id] = text
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:
                    source = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], source]).strip(
                        "."
                    )
                for alias in node.names:
                    mod.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        mod.imports[alias.asname] = (alias.name, None)
                    else:
                        top = alias.name.split(".")[0]
                        mod.imports[top] = (top, None)
        self._modules[name] = mod
        return mod

    def _closure(self, start: _Module) -> list[_Module]:
        seen: dict[str, _Module] = {start.name: start}
        todo = [start]
        while todo:
            mod = todo.pop()
            for source, attr in mod.imports.values():
                for candidate in (source, f"{source}.{attr}" if attr else None):
                    found = self.module(candidate) if candidate else None
                    if found is not None and found.name not in seen:
                        seen[found.name] = found
                        todo.append(found)
        return list(seen.values())

    def constant(self, module: _Module, name: str, depth: int = 0) -> list[Parts]:
        """A module-level string constant (also one imported from a repository module)."""
        if name in module.constants:
            return [(module.constants[name],)]
        if name in module.imports and depth < _MAX_DEPTH:
            source, attr = module.imports[name]
            other = self.module(source)
            if other is not None and attr is not None:
                return self.constant(other, attr, depth + 1)
        return [(None,)]

    # ------------------------------------------------------------------ names

    def _troposphere_object(self, module: _Module, expr: ast.expr) -> Any:
        if isinstance(expr, ast.Name) and expr.id in module.imports:
            source, attr = module.imports[expr.id]
            return self._load(source, attr)
        if isinstance(expr, ast.Attribute):
            base = self._troposphere_object(module, expr.value)
            return getattr(base, expr.attr, None) if base is not None else None
        return None

    def _load(self, source: str, attr: str | None) -> Any:
        if source.split(".")[0] != "troposphere":
            return None
        key = f"{source}:{attr}"
        if key not in self._troposphere:
            try:
                found: Any = importlib.import_module(source)
                if attr is not None:
                    found = getattr(found, attr, None)
                    if found is None:
                        found = importlib.import_module(f"{source}.{attr}")
            except ImportError:
                found = None
            self._troposphere[key] = found
        return self._troposphere[key]

    def resource_type(self, module: _Module, call: ast.Call) -> str | None:
        """The CloudFormation type when ``call`` constructs a troposphere resource."""
        from troposphere import AWSObject

        cls = self._troposphere_object(module, call.func)
        if isinstance(cls, type) and issubclass(cls, AWSObject):
            kind = getattr(cls, "resource_type", None)
            return kind if isinstance(kind, str) else None
        return None

    def callee(self, module: _Module, func: ast.expr) -> tuple[_Module, ast.FunctionDef] | None:
        """The repository function a call goes to, if it is one."""
        if isinstance(func, ast.Name):
            if func.id in module.functions:
                return module, module.functions[func.id]
            if func.id in module.imports:
                source, attr = module.imports[func.id]
                other = self.module(source)
                if other is not None and attr in other.functions:
                    return other, other.functions[attr]
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in module.imports:
            source, attr = module.imports[func.value.id]
            other = self.module(f"{source}.{attr}" if attr else source)
            if other is not None and func.attr in other.functions:
                return other, other.functions[func.attr]
        return None

    def evaluate(self, expr: ast.expr, scope: _Scope, depth: int = 0) -> list[Parts]:
        """The alternatives of a string expression: literals, parameters and wildcards."""
        if depth > 8:
            return [(None,)]
        if isinstance(expr, ast.Constant):
            return [(expr.value,)] if isinstance(expr.value, str) else [(None,)]
        if isinstance(expr, ast.Name):
            return scope.name(expr.id, depth)
        if isinstance(expr, ast.JoinedStr):
            pieces = []
            for value in expr.values:
                if isinstance(value, ast.FormattedValue):
                    plain = value.conversion == -1 and value.format_spec is None
                    pieces.append(self.evaluate(value.value, scope, depth + 1) if plain else [(None,)])
                else:
                    pieces.append(self.evaluate(value, scope, depth + 1))
            return _concat(*pieces)
        if isinstance(expr, ast.IfExp):
            both = self.evaluate(expr.body, scope, depth + 1) + self.evaluate(expr.orelse, scope, depth + 1)
            return list(dict.fromkeys(both))[:_MAX_ALTERNATIVES]
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return _concat(self.evaluate(expr.left, scope, depth + 1), self.evaluate(expr.right, scope, depth + 1))
        if isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Attribute) and expr.func.attr == "format":
                return [_format(p) for p in self.evaluate(expr.func.value, scope, depth + 1)]
            target = self.callee(scope.module, expr.func)
            if target is not None:  # a helper that returns the id: each return statement an alternative
                inner = self.scope(target[0], target[1], params_wild=True)
                returns = [n.value for n in ast.walk(target[1]) if isinstance(n, ast.Return) and n.value is not None]
                found = [p for r in returns for p in self.evaluate(r, inner, depth + 1)]
                return list(dict.fromkeys(found))[:_MAX_ALTERNATIVES] or [(None,)]
        return [(None,)]

    def shape(self, expr: ast.expr, scope: _Scope, depth: int = 0) -> Shape:
        """What a keyword argument renders to, as far as the source tells: strings, numbers, lists, properties."""
        if depth > 6:
            return None
        if isinstance(expr, ast.Name) and expr.id in scope.assigned and expr.id not in scope.params:
            value = scope.assigned[expr.id]
            return self.shape(value[1], scope, depth + 1) if value and value[0] == "expr" else None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, (bool, int, float)):
            return ("const", expr.value)
        if isinstance(expr, ast.List) and not any(isinstance(e, ast.Starred) for e in expr.elts):
            return ("list", tuple(self.shape(e, scope, depth + 1) for e in expr.elts))
        if isinstance(expr, ast.Call) and self._troposphere_object(scope.module, expr.func) is not None:
            fields = tuple((k.arg, self.shape(k.value, scope, depth + 1)) for k in expr.keywords if k.arg)
            return ("object", fields) if all(k.arg for k in expr.keywords) and not expr.args else None
        if isinstance(expr, (ast.Constant, ast.JoinedStr, ast.BinOp, ast.IfExp)) or (
            isinstance(expr, ast.Name) and expr.id not in scope.params
        ):
            patterns = tuple(_wild(self.evaluate(expr, scope, depth + 1)))
            return ("str", patterns) if max(_literal(p) for p in patterns) > 0 else None
        return None

    # ------------------------------------------------------------------ sites

    def scope(self, module: _Module, func: ast.FunctionDef | None, params_wild: bool) -> _Scope:
        """The names of one function (made once)."""
        key = (module.name, id(func), params_wild)
        if key not in self._scopes:
            self._scopes[key] = _Scope(self, module, func, params_wild)
        return self._scopes[key]

    def _functions(self, module: _Module) -> list[tuple[ast.FunctionDef | None, ast.Call]]:
        """Every call of a module with its innermost enclosing function (listed once)."""
        if module.name not in self._calls:
            self._calls[module.name] = list(self._walk_calls(module))
        return self._calls[module.name]

    def _walk_calls(self, module: _Module) -> Iterator[tuple[ast.FunctionDef | None, ast.Call]]:

        def walk(node: ast.AST, func: ast.FunctionDef | None) -> Iterator[tuple[ast.FunctionDef | None, ast.Call]]:
            for child in ast.iter_child_nodes(node):
                inner = child if isinstance(child, ast.FunctionDef) else func
                if isinstance(child, ast.Call):
                    yield func, child
                yield from walk(child, inner)

        yield from walk(module.tree, None)

    def _sites(self) -> Iterator[Site]:
        for module in self.closure:
            for func, call in self._functions(module):
                kind = self.resource_type(module, call)
                if kind is None:
                    continue
                title = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "title"), None)
                if title is None or isinstance(title, ast.Starred):
                    continue
                scope = self.scope(module, func, params_wild=False)
                patterns = self.evaluate(title, scope)
                wild = self.scope(module, func, params_wild=True)
                shapes = ((k.arg, self.shape(k.value, wild)) for k in call.keywords if k.arg and k.arg != "title")
                keywords = tuple((k, shape) for k, shape in shapes if shape is not None)
                name = func.name if func else "<module>"
                own = Site(module.rel, call.lineno, name, kind, tuple(_wild(patterns)), keywords)
                yield own
                if func is not None and any(isinstance(x, Param) for p in patterns for x in p):
                    yield from self._forwarded(module, func, patterns, own, 1)

    def _forwarded(
        self, module: _Module, func: ast.FunctionDef, patterns: list[Parts], own: Site, depth: int
    ) -> Iterator[Site]:
        """The call sites of helper ``func`` that make its logical id more specific."""
        if depth > _MAX_DEPTH:
            return
        best = max(_literal(p) for p in own.patterns)
        for caller_module in self.closure:
            for caller, call in self._functions(caller_module):
                target = self.callee(caller_module, call.func)
                if target is None or target[1] is not func:
                    continue
                scope = self.scope(caller_module, caller, params_wild=False)
                bound = _bind(func, call)
                pieces = []
                for parts in patterns:
                    options = [self._argument(bound, p, scope) if isinstance(p, Param) else [(p,)] for p in parts]
                    pieces += _concat(*options)
                here = list(dict.fromkeys(pieces))[:_MAX_ALTERNATIVES]
                if max(_literal(p) for p in _wild(here)) <= best:
                    continue
                name = caller.name if caller else "<module>"
                site = Site(
                    caller_module.rel,
                    call.lineno,
                    name,
                    own.resource_type,
                    tuple(_wild(here)),
                    own.keywords,
                    via=own.via or (own.path, own.line),
                )
                yield site
                if caller is not None and any(isinstance(x, Param) for p in here for x in p):
                    yield from self._forwarded(caller_module, caller, here, site, depth + 1)

    def _argument(self, bound: dict[str, ast.expr], param: Param, scope: _Scope) -> list[Parts]:
        expr = bound.get(param.name)
        if expr is None:
            return [(None,)]
        if param.index is not None:
            if isinstance(expr, (ast.Tuple, ast.List)) and param.index < len(expr.elts):
                expr = expr.elts[param.index]
            else:
                return [(None,)]
        return self.evaluate(expr, scope)


def _agree(shape: Shape, value: Any) -> int:
    """+1 per known leaf of ``shape`` that the built value matches, -1 per one it contradicts."""
    if shape is None:
        return 0
    kind, known = shape
    if value is None:
        return -1
    if kind == "str":
        if not isinstance(value, str):
            return 0  # an intrinsic function or a number: nothing to compare
        return 1 if any(re.fullmatch(_regex(p), value, re.DOTALL) for p in known) else -1
    if kind == "const":
        if isinstance(value, (dict, list)):
            return 0
        same = str(value).lower() == str(known).lower() if isinstance(known, bool) else str(value) == str(known)
        return 1 if same else -1
    if kind == "list":
        if not isinstance(value, list):
            return 0
        if len(value) != len(known):
            return -1
        return sum(_agree(s, v) for s, v in zip(known, value, strict=True))
    if not isinstance(value, dict):
        return 0
    return sum(_agree(s, value.get(k)) for k, s in known if s is not None)


def _format(parts: Parts) -> Parts:
    """``"{service}Alarm".format(...)``: each replacement field a wildcard."""
    out: list[Part] = []
    for part in parts:
        if isinstance(part, str):
            for i, piece in enumerate(re.split(r"\{[^{}]*\}", part)):
                if i:
                    out.append(None)
                out.append(piece)
        else:
            out.append(part)
    return _normal(tuple(out))


def _bind(func: ast.FunctionDef, call: ast.Call) -> dict[str, ast.expr]:
    """Parameter name -> argument expression of one call (defaults included; starred arguments stop it)."""
    a = func.args
    positional = [x.arg for x in (*a.posonlyargs, *a.args)]
    bound: dict[str, ast.expr] = {}
    defaults = dict(zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True))
    defaults.update({x.arg: d for x, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None})
    bound.update(defaults)
    for name, arg in zip(positional, call.args, strict=False):
        if isinstance(arg, ast.Starred):
            break
        bound[name] = arg
    for keyword in call.keywords:
        if keyword.arg is not None:
            bound[keyword.arg] = keyword.value
    return bound


def build_line(index: SourceIndex) -> int:
    """The line of the stack module's ``build`` function (1 without one)."""
    func = index.entry.functions.get("build")
    return func.lineno if func is not None else 1
