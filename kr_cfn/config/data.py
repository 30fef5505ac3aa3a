"""Data section (``data:``): database, file system, buckets, secrets, cache."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kr_cfn.config.base import Model


class DataConfig(Model):
    """Settings of the data stack."""

    redis: Literal["fargate", "elasticache"] = Field(
        "fargate",
        description="Where Redis runs: a Fargate service (cheapest) or ElastiCache (survives restarts, backups).",
    )
