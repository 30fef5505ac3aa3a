"""What ``monitoring:`` adds to the grafana and prometheus services: Grafana's way in, Prometheus' targets.

- Grafana gets a load-balancer route only when ``monitoring.grafana_allowed_cidrs`` lists networks:
  on ``grafana.<alb.domain_name>`` when the environment has a domain, else on ``/grafana/`` (with
  Grafana's ``root_url`` and ``serve_from_sub_path`` to match), and in both cases only from those
  networks (a ``source-ip`` condition on every listener rule). No networks, no route, no target
  group and no ALB -> grafana security-group rule (flows come from ``load_balancer``).
- Prometheus scrapes itself and every rendered service with a ``metrics_path`` (backend, qdrant),
  every task as Cloud Map's API lists them (file_sd targets written by kr_cfn.discovery); a
  service that is not rendered (Qdrant Cloud instead of the qdrant service) is not scraped.
  Retention comes from ``monitoring.prometheus_retention``.

Called by :func:`kr_cfn.config.ecs_slice`, so the ecs, alb and network stacks all see the same
wired services.
"""

from __future__ import annotations

from kr_cfn.config.alb import AlbConfig
from kr_cfn.config.base import Problem
from kr_cfn.config.monitoring import MonitoringConfig
from kr_cfn.config.services import Route, ServiceSpec, rule_priorities

GRAFANA = "grafana"
PROMETHEUS = "prometheus"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
"""The Prometheus config file (in the prometheus service's ``files``) that the scrape jobs are appended to."""
SD_DIR = "/etc/prometheus/sd"
"""Where the discovery sidecar writes the file_sd targets (a task volume, read-only for Prometheus)."""
RETENTION_FLAG = "--storage.tsdb.retention.time="
LOGIN_SETTINGS = ("GF_AUTH_ANONYMOUS_ENABLED", "GF_AUTH_DISABLE_LOGIN_FORM", "GF_AUTH_PROXY_ENABLED")
"""Grafana settings that would let a request past its login; params may not turn them on."""
SUB_PATH = "/grafana"
HOST_LABEL = "grafana"
GRAFANA_PRIORITY = 1
"""First listener-rule priority of Grafana's route (one rule per chunk of CIDRs, consecutive priorities)."""


def grafana_host(alb: AlbConfig) -> str | None:
    """``grafana.<domain_name>`` when the environment has a domain, else None (Grafana on a path)."""
    return f"{HOST_LABEL}.{alb.domain_name}" if alb.domain_name else None


def grafana_url(alb: AlbConfig) -> str:
    """Grafana's address as an operator types it (``{{output:AlbDnsName}}`` without a domain)."""
    scheme = "https" if alb.tls else "http"
    host = grafana_host(alb)
    return f"{scheme}://{host}/" if host else f"{scheme}://{{{{output:AlbDnsName}}}}{SUB_PATH}/"


def grafana_route(monitoring: MonitoringConfig, alb: AlbConfig) -> Route | None:
    """Grafana's load-balancer route, or None when no network may open it."""
    if not monitoring.grafana_allowed_cidrs:
        return None
    host = grafana_host(alb)
    return Route(
        paths=() if host else (f"{SUB_PATH}/*",),
        hosts=(host,) if host else (),
        source_cidrs=monitoring.grafana_allowed_cidrs,
        priority=GRAFANA_PRIORITY,
        # Grafana strips its sub path before routing (serve_from_sub_path), so both forms answer;
        # the prefixed one is what the load balancer forwards.
        health_check_path="/api/health" if host else f"{SUB_PATH}/api/health",
        health_check_grace=60,
    )


def wire(services: dict[str, ServiceSpec], monitoring: MonitoringConfig, alb: AlbConfig) -> dict[str, ServiceSpec]:
    """The rendered services with Grafana's route and Prometheus' scrape jobs and retention added."""
    out = dict(services)
    if GRAFANA in out:
        out[GRAFANA] = _grafana(out[GRAFANA], monitoring, alb)
    if PROMETHEUS in out:
        out[PROMETHEUS] = _prometheus(out[PROMETHEUS], out, monitoring)
    return out


def _grafana(spec: ServiceSpec, monitoring: MonitoringConfig, alb: AlbConfig) -> ServiceSpec:
    route = grafana_route(monitoring, alb)
    if route is None:
        return spec
    env = dict(spec.environment)
    # root_url is the address browsers use (redirects, links); behind a sub path Grafana also
    # serves from it: https://grafana.com/docs/grafana/latest/setup-grafana/configure-grafana/#root_url
    env["GF_SERVER_ROOT_URL"] = grafana_url(alb)
    if not route.hosts:
        env["GF_SERVER_SERVE_FROM_SUB_PATH"] = "true"
    if alb.tls:
        env["GF_SECURITY_COOKIE_SECURE"] = "true"  # the session cookie never travels over plain HTTP
    return spec.model_copy(update={"environment": env, "load_balancer": route})


def scraped(services: dict[str, ServiceSpec]) -> list[str]:
    """The services Prometheus scrapes besides itself: those with a ``metrics_path``."""
    return [name for name, spec in services.items() if spec.metrics_path is not None and name != PROMETHEUS]


def scrape_jobs(services: dict[str, ServiceSpec]) -> str:
    """Prometheus ``scrape_configs`` entries for every scraped service, from ``file_sd`` targets.

    The discovery sidecar (kr_cfn.discovery) writes ``<SD_DIR>/<service>.json`` from Cloud Map's
    DiscoverInstances: every task, where DNS (dns_sd_configs) answers at most eight. Prometheus
    watches the files and re-reads them at ``refresh_interval`` too
    (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config).
    """
    lines = []
    for name in scraped(services):
        lines += [
            f"  - job_name: {name}",
            f"    metrics_path: {services[name].metrics_path}",
            # Prometheus 3 fails a scrape whose Content-Type is missing or unknown unless a
            # fallback is named (https://prometheus.io/docs/prometheus/latest/migration/).
            "    fallback_scrape_protocol: PrometheusText0.0.4",
            "    file_sd_configs:",
            f'      - files: ["{SD_DIR}/{name}.json"]',
            "        refresh_interval: 1m",
        ]
    return "".join(line + "\n" for line in lines)


def _prometheus(spec: ServiceSpec, services: dict[str, ServiceSpec], monitoring: MonitoringConfig) -> ServiceSpec:
    update: dict[str, object] = {}
    if PROMETHEUS_CONFIG in spec.files:
        files = dict(spec.files)
        files[PROMETHEUS_CONFIG] = files[PROMETHEUS_CONFIG] + scrape_jobs(services)
        update["files"] = files
        # The file_sd targets name no {{host:}}: the scraped services are the flows (kr_cfn.config.flows).
        new = [s for s in scraped(services) if services[s].discovery_name and s not in spec.connects_to]
        update["connects_to"] = (*spec.connects_to, *new)
    if spec.command is not None:
        kept = [a for a in spec.command if not a.startswith(RETENTION_FLAG)]
        update["command"] = (*kept, RETENTION_FLAG + monitoring.prometheus_retention)
    return spec.model_copy(update=update)


def check_route_hosts(rendered: dict[str, ServiceSpec], alb: AlbConfig) -> list[Problem]:
    """Route hosts are ``alb.domain_name`` or names under it: the certificate and hosted zone cover only those."""
    problems: list[Problem] = []
    for name, spec in rendered.items():
        for i, host in enumerate(spec.load_balancer.hosts if spec.load_balancer else ()):
            if not alb.domain_name:
                problems.append((f"services.{name}.load_balancer.hosts[{i}]", "needs alb.domain_name (and TLS)"))
            elif host != alb.domain_name and not host.endswith(f".{alb.domain_name}"):
                problems.append(
                    (
                        f"services.{name}.load_balancer.hosts[{i}]",
                        f"{host!r} is not under alb.domain_name {alb.domain_name!r}",
                    )
                )
    return problems


def check_grafana(
    services: dict[str, ServiceSpec], rendered: dict[str, ServiceSpec], monitoring: MonitoringConfig
) -> list[Problem]:
    """Grafana's route comes only from ``monitoring.grafana_allowed_cidrs`` and fits among the other routes.

    ``services`` are the params' services, ``rendered`` the wired ones (:func:`wire`).
    """
    problems: list[Problem] = []
    given = services.get(GRAFANA)
    for var, value in sorted((given.environment if given else {}).items()):
        if var in LOGIN_SETTINGS and value.lower() != "false":
            problems.append(
                (f"services.{GRAFANA}.environment.{var}", "must stay false (Grafana's own login, no anonymous access)")
            )
    if given is not None and given.load_balancer is not None:
        problems.append(
            (
                f"services.{GRAFANA}.load_balancer",
                "Grafana's route comes from monitoring.grafana_allowed_cidrs (limited to those networks); remove it",
            )
        )
    if monitoring.grafana_allowed_cidrs and GRAFANA not in rendered:
        problems.append(("monitoring.grafana_allowed_cidrs", f"set, but no {GRAFANA} service is rendered"))
    route = rendered[GRAFANA].load_balancer if GRAFANA in rendered and given and not given.load_balancer else None
    if route is not None:
        mine = rule_priorities(route)
        for name, spec in rendered.items():
            other = spec.load_balancer
            clash = sorted(set(mine) & set(rule_priorities(other))) if other and name != GRAFANA else []
            if clash:
                problems.append(
                    (
                        f"services.{name}.load_balancer.priority",
                        f"{clash[0]} is taken by Grafana's listener rules (priorities {mine[0]}-{mine[-1]})",
                    )
                )
    return problems
