"""Base of the config sections: immutable models, problems, the error that lists them."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

Problem = tuple[str, str]
"""A config problem: (dotted key path, message)."""

MAX_INT = 2**31 - 1
"""The largest whole number a setting may have: CloudFormation and the AWS APIs take 32-bit integers."""

_LONG_WORD = re.compile(r"\S{161,}")
_MAX_LINE = 500


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing an input in a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text)} characters)"


def one_line(text: str) -> str:
    """``text`` as one readable line: control characters escaped, very long words and lines shortened."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    text = _LONG_WORD.sub(lambda m: f"{m.group()[:60]}...({len(m.group())} characters)", text)
    return text if len(text) <= _MAX_LINE else f"{text[:350]} ... {text[-140:]}"


class ConfigError(Exception):
    """One or more problems in a params file; ``str()`` gives one line per problem."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(
            "\n".join(f"{source}: {one_line(f'{path}: {msg}' if path else msg)}" for path, msg in self.problems)
        )


def _admits_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits_bool(a) for a in typing.get_args(annotation) if a is not type(None))
    return not (annotation in (int, float) or typing.get_origin(annotation) is typing.Literal)


class Model(BaseModel):
    """Base for config sections: immutable, unknown keys rejected, numbers finite and 32-bit, no bool for a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML reads yes/no/on/off as booleans and pydantic would take them as 1/0.
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and not _admits_bool(field.annotation):
            raise ValueError(f"expected a number, got {str(value).lower()} (YAML reads yes, no, on, off as true/false)")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _int_in_range(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            raise ValueError(f"{value} is above {MAX_INT}, the largest number CloudFormation takes here (32-bit)")
        return value

    def check(self) -> list[Problem]:
        """Cross-field checks; paths are relative to this section."""
        return []
