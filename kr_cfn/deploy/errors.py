"""Errors of the deploy commands, each with its exit code."""

from __future__ import annotations

EXIT_FAILED, EXIT_USAGE, EXIT_GUARD = 1, 2, 3


class DeployError(Exception):
    """A clear one-line problem; the CLI prints it and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code
