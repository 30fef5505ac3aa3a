"""Load balancer section (``alb:``) and the alb stack's slice."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from kr_cfn.config.base import Model, Problem
from kr_cfn.config.services import Route
from kr_cfn.naming import Naming


class AlbConfig(Model):
    """The internet-facing Application Load Balancer."""

    certificate_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$",
        description="ACM certificate: adds an HTTPS listener and redirects HTTP to it; null = HTTP only.",
    )
    domain_name: str | None = Field(
        None,
        pattern=r"^[a-z0-9*][a-z0-9.-]*[a-z0-9]$",
        description="Name the certificate covers (AppUrl uses it); null = the ALB's DNS name.",
    )
    ssl_policy: str = Field(
        "ELBSecurityPolicy-TLS13-1-2-2021-06", description="HTTPS listener policy (TLS 1.2 and 1.3 only)."
    )
    deletion_protection: bool = Field(False, description="Deletion protection (prod: true).")
    idle_timeout: int = Field(60, ge=1, le=4000, description="Seconds an idle connection stays open.")
    deregistration_delay: int = Field(
        30, ge=0, le=3600, description="Seconds a target drains before it is removed (ELB default 300)."
    )
    access_logs_bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Existing S3 bucket (allowing ELB log delivery) for access logs; null = off.",
    )
    access_logs_prefix: str = Field("alb", description="Key prefix of the access logs.")

    def check(self) -> list[Problem]:
        """A domain name only means something with a certificate."""
        if self.domain_name and not self.certificate_arn:
            return [("domain_name", "needs certificate_arn (the app is served over HTTPS on that name)")]
        return []


@dataclass(frozen=True)
class AlbSlice:
    """What the alb stack may see: its settings and the load-balanced services."""

    names: Naming
    alb: AlbConfig
    routes: dict[str, tuple[int, Route]]
    """Service name -> (container port, route), in params order."""
