"""Load balancer section (``alb:``), the alb stack's slice and who delivers its access logs."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from kr_cfn.config.base import Model, Problem
from kr_cfn.config.services import Route
from kr_cfn.naming import Naming

ELB_ACCESS_LOGS_DOC = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html"
"""AWS, "Enable access logs for your Application Load Balancer", step 2 "Attach a policy to your S3 bucket"."""

ELB_LOG_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"
"""Who writes ALB access logs, in every region: the log delivery service principal AWS recommends
(ELB_ACCESS_LOGS_DOC, step 2); the per-region ELB account ids are its legacy policy. No region table,
so a region added later builds too."""


class AlbConfig(Model):
    """The internet-facing Application Load Balancer."""

    certificate_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$",
        description="Existing ACM certificate for the HTTPS listener; null = the stack creates one "
        "when domain_name and hosted_zone_id are set.",
    )
    domain_name: str | None = Field(
        None,
        pattern=r"^[a-z0-9*][a-z0-9.-]*[a-z0-9]$",
        description="Name the app is served on (AppUrl https://<domain_name>); null = the ALB's DNS name.",
    )
    hosted_zone_id: str | None = Field(
        None,
        pattern=r"^Z[A-Z0-9]{1,31}$",
        description="Route 53 public hosted zone of domain_name: the stack validates the certificate "
        "there (DNS) and adds an alias record for the ALB; null = DNS is managed elsewhere.",
    )
    allow_plain_http: bool = Field(
        False, description="Serve HTTP without TLS; needs plain_http_reason (an environment without TLS must say so)."
    )
    plain_http_reason: str | None = Field(
        None, min_length=10, description="Why this environment serves plain HTTP (kept in the checkov skip)."
    )
    ssl_policy: str = Field(
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        pattern=r"^ELBSecurityPolicy-[A-Za-z0-9-]{1,100}$",
        description="HTTPS listener policy (TLS 1.2 and 1.3 only); one of ELB's predefined ELBSecurityPolicy-*.",
    )
    deletion_protection: bool = Field(False, description="Deletion protection (prod: true).")
    idle_timeout: int = Field(60, ge=1, le=4000, description="Seconds an idle connection stays open.")
    deregistration_delay: int = Field(
        30, ge=0, le=3600, description="Seconds a target drains before it is removed (ELB default 300)."
    )
    access_logs: bool = Field(
        True, description="Access logs into the data stack's access-log bucket (ELB default: off)."
    )
    access_logs_prefix: str = Field(
        "alb",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="Key prefix of the access logs (ELB adds AWSLogs/<account>/... after it).",
    )

    @property
    def tls(self) -> bool:
        """Whether the ALB gets an HTTPS listener (an existing certificate or one the stack creates)."""
        return bool(self.certificate_arn or (self.domain_name and self.hosted_zone_id))

    def check(self) -> list[Problem]:
        """A domain needs a certificate or a zone to create one in; plain HTTP needs its reason."""
        problems: list[Problem] = []
        if self.domain_name and not self.tls:
            problems.append(
                ("domain_name", "needs hosted_zone_id (the stack creates the certificate) or certificate_arn")
            )
        if self.hosted_zone_id and not self.domain_name:
            problems.append(("hosted_zone_id", "needs domain_name (the name the certificate and record are for)"))
        if self.allow_plain_http and self.tls:
            problems.append(("allow_plain_http", "true, but TLS is configured; remove allow_plain_http"))
        if self.allow_plain_http and not self.plain_http_reason:
            problems.append(("plain_http_reason", "required with allow_plain_http: true (why no TLS here)"))
        if "AWSLogs" in self.access_logs_prefix:
            problems.append(("access_logs_prefix", "must not contain AWSLogs (ELB adds AWSLogs/<account>/ itself)"))
        if self.plain_http_reason and not self.allow_plain_http:
            problems.append(("plain_http_reason", "set, but allow_plain_http is not true"))
        return problems


@dataclass(frozen=True)
class AlbSlice:
    """What the alb stack may see: its settings and the load-balanced services."""

    names: Naming
    alb: AlbConfig
    routes: dict[str, tuple[int, Route]]
    """Service name -> (container port, route), in params order."""
