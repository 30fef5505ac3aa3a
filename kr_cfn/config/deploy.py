"""Deploy section (``deploy:``) and the root stack's slice."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from kr_cfn.config.base import Model
from kr_cfn.naming import Naming


class DeployConfig(Model):
    """Root-stack and deployment settings."""

    stack_name: str | None = Field(
        None, pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$", description="Root stack name; default the name prefix."
    )
    image_tag_default: str | None = Field(
        "latest",
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        description="Default of the root's *ImageTag parameters; null makes every deploy name its tags (prod).",
    )
    termination_protection: bool = Field(
        False, description="Turn on the root stack's termination protection when deploying (prod)."
    )

    def stack(self, names: Naming) -> str:
        """The root stack's name."""
        return self.stack_name or names.prefix


@dataclass(frozen=True)
class RootSlice:
    """What the root stack may see."""

    names: Naming
    tags: dict[str, str]
    image_tag_default: str | None
