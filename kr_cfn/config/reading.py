"""Reading a params file safely and turning pydantic's errors into ``(key path, message)`` problems.

A params file is untrusted input (a pull request can change it): it is read as UTF-8 with
PyYAML's safe loader (no Python tags), duplicate and non-string keys are errors, dates stay
strings, and a document that expands (aliases) past :data:`MAX_VALUES` values or nests deeper
than :data:`MAX_DEPTH` is refused before validation walks it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel

from kr_cfn.config.base import Problem, shown

MAX_VALUES = 20_000
"""Values (after expanding aliases) a params file may hold; the shipped ones hold a few hundred."""
MAX_DEPTH = 32
"""Nesting a params file may have; the deepest setting is about six levels down."""


class ReadError(Exception):
    """The file is not a params document; ``problem`` says where and why."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = (where, message)


_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _ParamsLoader(yaml.SafeLoader):
    """The safe loader: duplicate or non-string keys are errors; dates are read as strings."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = _RESOLVERS


class _FastParamsLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """The same rules on libyaml: ten times faster, and it caps nesting itself.

    Its messages are terser, so a file it refuses is read again by :class:`_ParamsLoader` for the message.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = _RESOLVERS


def _construct_mapping(loader: _ParamsLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain name, not a list or mapping", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key_node.value!r} must be a string (quote it)", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_ParamsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_FastParamsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(data: bytes) -> Any:
    """The parsed document; :class:`ReadError` for bytes that are not a small, safe YAML document."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ReadError(
            f"line {line}", f"not UTF-8 text (byte {data[exc.start]:#04x}); save the file as UTF-8"
        ) from None
    try:
        doc = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}"
        elif isinstance(exc, yaml.reader.ReaderError):
            where = f"line {text[: exc.position].count(chr(10)) + 1}"
        else:
            where = "YAML"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
        lines = text.splitlines()
        if mark is not None and mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
            problem = "a tab character; YAML indents with spaces only"
        if isinstance(exc, yaml.reader.ReaderError):
            problem = f"character {exc.character!r} is not allowed in YAML ({exc.reason})"
        raise ReadError(where, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise ReadError("YAML", f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    _check_size(doc)
    return doc


def _parse(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FastParamsLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):
            raise
        yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - for its clearer message
        raise  # pragma: no cover - both parsers refuse the same documents


def _check_size(doc: Any) -> None:
    """Refuse documents that expand (through aliases) or nest past the limits, without expanding them."""
    budget = [MAX_VALUES]

    def visit(value: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ReadError("YAML", f"more than {MAX_VALUES} values (after expanding aliases)")
        if depth > MAX_DEPTH:
            raise ReadError("YAML", f"nested too deeply (at most {MAX_DEPTH} levels)")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            visit(child, depth + 1)

    visit(doc, 0)


def loc_path(loc: tuple[int | str, ...]) -> str:
    """``("services", "backend", "volumes", 0, "path")`` -> ``services.backend.volumes[0].path``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# Pydantic's messages for these name Python types (tuple, instance of ServiceSpec): say it in YAML's terms.
_EXPECTED = {
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping of settings (key: value)",
    "model_attributes_type": "expected a mapping of settings (key: value)",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
}


def translate(
    errors: list[Any], model_at: Callable[[tuple[int | str, ...]], type[BaseModel] | None]
) -> Iterator[Problem]:
    """Pydantic's errors as problems: every one names its key path, what was expected and what was given.

    ``model_at(loc)`` is the model class at ``loc`` (for the known keys of an unknown one).
    """
    for err in errors:
        loc = tuple(err["loc"])
        path = loc_path(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = model_at(loc[:-1])
            known = list(parent.model_fields) if parent else []
            key = str(loc[-1])
            hint = difflib.get_close_matches(key, known, n=1) or [k for k in known if k.startswith(key)][:1]
            expected = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(known)}"
            yield path, f"unknown key ({expected})"
        elif kind == "missing":
            yield path, "required key is missing"
        elif kind == "value_error":  # our own validators: the message names what it got
            yield path, str(err["msg"]).removeprefix("Value error, ")
        else:
            msg = str(err["msg"])
            expected = _EXPECTED.get(kind) or f"{msg[:1].lower()}{msg[1:]}"
            yield path, f"{expected}, got {shown(err.get('input'))}"
