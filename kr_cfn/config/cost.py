"""Cost section (``cost:``): usage assumptions of ``kr-cfn cost``; the templates say what runs, these say how much.

The defaults are the plan's usage figures (``architecture.md``, "Cost"), so an unchanged
params file prices the plan's assumptions.
"""

from __future__ import annotations

from pydantic import Field

from kr_cfn.config.base import Model, Problem

MAX_FIGURE = 1e12
"""The largest usage figure: far above any real month, far below where the priced sums overflow."""


class CostConfig(Model):
    """Usage assumptions for pricing the built templates (never read by the stacks)."""

    hours_per_month: float = Field(730.0, gt=0, le=744, description="Hours in a month (AWS prices a month as 730 h).")
    free_tier: bool = Field(
        False,
        description="The env is the only workload in its AWS account: subtract the account-wide always-free "
        "allowances (100 GB data transfer out); off: other workloads use them up.",
    )
    fail_above_usd: float | None = Field(
        None,
        ge=0,
        description="Monthly increase (USD) the plan review flags and kr-cfn cost --compare-to exits 3 above; "
        "null: no limit.",
    )
    data_transfer_out_gb: float = Field(50.0, ge=0, description="GB a month sent to the internet.")
    alb_lcu: float = Field(
        1.0, ge=0, description="Average load balancer capacity units per hour (the largest of the four LCU dimensions)."
    )
    nat_processed_gb: float = Field(50.0, ge=0, description="GB a month through the NAT gateways (all of them).")
    efs_gb: float = Field(5.0, ge=0, description="Average GB stored in each EFS file system (Standard class).")
    s3_gb: dict[str, float] = Field(
        default_factory=lambda: {"DataBucket": 4.0, "BackupsBucket": 1.0},
        description="Average GB stored per bucket, by logical id; other buckets 0 (S3 Standard).",
    )
    ecr_gb: float = Field(5.0, ge=0, description="Average GB of images kept in each ECR repository.")
    secrets_api_calls: int = Field(100_000, ge=0, description="Secrets Manager API calls a month (all secrets).")
    log_ingest_gb: float = Field(
        10.0, ge=0, description="GB of logs written a month, spread evenly over the log groups not named below."
    )
    log_ingest_gb_by_group: dict[str, float] = Field(
        default_factory=dict, description="GB a month for named log groups (logical id), taken out of log_ingest_gb."
    )
    log_never_expire_months: float = Field(
        12.0, gt=0, description="Months of logs assumed stored by a log group without retention."
    )
    baseline_log_retention_days: int = Field(
        30, ge=1, description="Retention the 'log retention' saving is measured against."
    )
    extra_tasks: dict[str, float] = Field(
        default_factory=dict,
        description="Average tasks above the (scheduled) minimum, per autoscaled service (target tracking's share).",
    )
    rds_backup_gb: float = Field(
        20.0, ge=0, description="GB of RDS backup storage; up to the provisioned storage is free."
    )
    scheduled_task_minutes: float = Field(10.0, ge=0, description="Minutes each scheduled ECS task run lasts.")
    backup_gb: float = Field(10.0, ge=0, description="GB of snapshots kept by each AWS Backup plan or DLM policy.")
    container_insights_metrics_per_cluster: int = Field(
        10,
        ge=0,
        description="Container Insights metrics per cluster: the 8 per-resource metrics at the cluster level plus "
        "ServiceCount and TaskCount (one more, ContainerInstanceCount, with EC2 capacity).",
    )
    container_insights_metrics_per_service: int = Field(
        13,
        ge=0,
        description="Container Insights metrics per ECS service: the 8 per-resource metrics plus DeploymentCount, "
        "DesiredTaskCount, PendingTaskCount, RunningTaskCount and TaskSetCount.",
    )
    container_insights_metrics_per_task_family: int = Field(
        8,
        ge=0,
        description="Container Insights metrics per task definition family (CPU and memory used and reserved, "
        "network and storage bytes in and out), each counted for the whole month.",
    )
    container_insights_log_gb: float = Field(
        1.0, ge=0, description="GB a month of Container Insights performance log events per cluster (ingestion)."
    )
    route53_queries_million: float = Field(
        1.0, ge=0, description="Million standard DNS queries a month answered by each hosted zone the templates create."
    )

    def check(self) -> list[Problem]:
        """Negative per-key figures, figures too large to price, named log groups using more than the total."""
        problems: list[Problem] = []
        for name, value in self:
            items = value.items() if isinstance(value, dict) else [(None, value)]
            for key, figure in items:
                if isinstance(figure, float) and figure > MAX_FIGURE:
                    path = f"{name}.{key}" if key is not None else name
                    problems.append((path, f"{figure:g} is above {MAX_FIGURE:g}, more than any usage"))
        for field in ("s3_gb", "log_ingest_gb_by_group", "extra_tasks"):
            for key, value in getattr(self, field).items():
                if value < 0:
                    problems.append((f"{field}.{key}", f"{value} must be >= 0"))
        named = sum(self.log_ingest_gb_by_group.values())
        if named > self.log_ingest_gb:
            problems.append(
                ("log_ingest_gb_by_group", f"the named log groups add up to {named} GB, more than log_ingest_gb")
            )
        return problems


def check_priced(region: str, db_class: str, cache_node: str | None, host_type: str | None) -> list[Problem]:
    """Refuse an instance class the shipped price data of ``region`` has no figure for (stand-ins count).

    Without the refusal the estimate would leave the line out; with it, a bigger class can never
    read as a saving. A region without shipped data is left to ``kr-cfn cost --prices``.
    """
    from kr_cfn.cost import prices  # the price data lives with the cost code; read lazily (no import cycle)

    keys = prices.shipped_keys(region)
    if keys is None:
        return []
    file = f"kr_cfn/cost/data/{region}.json"
    wanted = [("data.db_instance_class", "rds.postgres.", db_class)]
    if cache_node is not None:
        wanted.append(("data.redis_node_type", "elasticache.", cache_node))
    if host_type is not None:
        wanted.append(("services.qdrant.ebs.instance_type", "ec2.", host_type))
    problems: list[Problem] = []
    for path, prefix, value in wanted:
        if f"{prefix}{value}.hour" not in keys:
            have = sorted(k.removeprefix(prefix).removesuffix(".hour") for k in keys if k.startswith(prefix))
            problems.append(
                (
                    path,
                    f"{value} has no price in {file} ({prefix}{value}.hour): kr-cfn cost could not price it; "
                    f"priced: {', '.join(have)} (add a sourced figure to price another)",
                )
            )
    return problems
