"""Cross-section checks of what an environment exposes: TLS, alert routes, ALB log delivery.

An environment with termination protection (``deploy.termination_protection``, prod) is one
whose users and on-call depend on it: it must serve HTTPS and its alarms must reach someone,
unless its params say otherwise explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kr_cfn.config.base import Problem

if TYPE_CHECKING:
    from kr_cfn.config import EnvConfig


def check_production(cfg: EnvConfig) -> list[Problem]:
    """Problems with TLS, alert routes and access-log delivery, as (key path, message)."""
    problems: list[Problem] = []
    protected = cfg.deploy.termination_protection
    if protected and not cfg.alb.tls and not cfg.alb.allow_plain_http:
        problems.append(
            (
                "alb",
                "no TLS in an environment with termination protection: set alb.domain_name and "
                "alb.hosted_zone_id (or alb.certificate_arn), or alb.allow_plain_http: true with alb.plain_http_reason",
            )
        )
    if protected and not cfg.monitoring.has_route and not cfg.monitoring.allow_no_alert_route:
        problems.append(
            (
                "monitoring",
                "the alarms reach no one in an environment with termination protection: set "
                "monitoring.alert_emails, monitoring.alert_https_endpoints or monitoring.slack, "
                "or monitoring.allow_no_alert_route: true",
            )
        )
    return problems
