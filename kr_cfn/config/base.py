"""Base of the config sections: immutable models, problems, the error that lists them."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

Problem = tuple[str, str]
"""A config problem: (dotted key path, message)."""


class ConfigError(Exception):
    """One or more problems in a params file; ``str()`` gives one line per problem."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(
            "\n".join(f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in self.problems)
        )


class Model(BaseModel):
    """Base for config sections: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self) -> list[Problem]:
        """Cross-field checks; paths are relative to this section."""
        return []
