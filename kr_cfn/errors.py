"""Errors of the deploy commands, each with its exit code."""

from __future__ import annotations

EXIT_FAILED, EXIT_USAGE, EXIT_GUARD, EXIT_AWS = 1, 2, 3, 4
"""1 the deploy (or a check) failed, 2 bad input, 3 the guard, 4 an AWS call or the network failed."""
EXIT_INTERRUPTED = 130


class DeployError(Exception):
    """A clear one-line problem; the CLI prints it and exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code
