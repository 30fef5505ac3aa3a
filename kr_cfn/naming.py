"""Physical resource names and the tags every stack carries.

Logical IDs are constants in the stack modules; this module only derives *physical*
names, which include the environment so dev, staging and prod can share an account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def pascal(key: str) -> str:
    """A params key as a PascalCase logical-id part: ``knowledge-worker`` -> ``KnowledgeWorker``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", key) if part)


@dataclass(frozen=True)
class Naming:
    """Name factory for one environment: ``names("cluster") -> "knowledgerouter-dev-cluster"``."""

    project: str
    env: str
    prefix: str

    def __call__(self, *parts: str) -> str:
        """Join the prefix and ``parts`` with dashes."""
        return "-".join((self.prefix, *parts))

    def path(self, *parts: str) -> str:
        """A slash path under the prefix, e.g. ``/ecs/knowledgerouter-dev/backend``."""
        return "/" + "/".join((*parts[:1], self.prefix, *parts[1:]))

    def tags(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Tags applied to every nested stack (CloudFormation propagates them)."""
        tags = {"Project": self.project, "Environment": self.env, "ManagedBy": "kr_cfn"}
        tags.update(extra or {})
        return tags
