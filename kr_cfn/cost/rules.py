"""Pricing rules: each billable resource type becomes one or more monthly line items (RULES, by type)."""

from __future__ import annotations

from typing import Any

from kr_cfn.cost.items import Context, Rule, _num, _props, _ref
from kr_cfn.cost.schedule import Action, UnsupportedScheduleError, segments

# --------------------------------------------------------------------------- ECS on Fargate


def _strategy(ctx: Context, props: dict[str, Any]) -> list[tuple[str, float, float]]:
    if props.get("LaunchType"):
        return [("FARGATE" if props["LaunchType"] == "FARGATE" else "EC2", 0.0, 1.0)]
    strategy = props.get("CapacityProviderStrategy")
    if not strategy:
        for res in ctx.stack.resources.values():
            if res.get("Type") == "AWS::ECS::ClusterCapacityProviderAssociations":
                strategy = _props(res).get("DefaultCapacityProviderStrategy")
    return [
        (
            str(s["CapacityProvider"]) if s.get("CapacityProvider") in ("FARGATE", "FARGATE_SPOT") else "EC2",
            _num(s.get("Base")),
            _num(s.get("Weight"), 0.0),
        )
        for s in strategy or [{"CapacityProvider": "FARGATE", "Weight": 1}]
    ]


def split(tasks: float, strategy: list[tuple[str, float, float]]) -> dict[str, float]:
    """Tasks per capacity provider: the base goes to its provider first, the rest by weight.

    "The base value designates how many tasks, at a minimum, to run on the specified capacity provider
    [...] The weight value is taken into consideration after the base value, if defined, is satisfied."
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CapacityProviderStrategyItem.html
    """
    out = {provider: 0.0 for provider, _, _ in strategy}
    left = tasks
    for provider, base, _ in strategy:
        taken = min(left, base)
        out[provider] += taken
        left -= taken
    weights = sum(w for _, _, w in strategy)
    for provider, _, weight in strategy:
        if weights > 0:
            out[provider] += left * weight / weights
    if weights == 0 and strategy:
        out[strategy[0][0]] += left
    return out


def spot_split(tasks: float, strategy: list[tuple[str, float, float]]) -> tuple[float, float]:
    """(Fargate on-demand, Fargate Spot) tasks; tasks on EC2 capacity providers are in neither."""
    shares = split(tasks, strategy)
    return shares.get("FARGATE", 0.0), shares.get("FARGATE_SPOT", 0.0)


def _scalable_target(ctx: Context, service_id: str) -> dict[str, Any] | None:
    for res in ctx.stack.resources.values():
        if res.get("Type") != "AWS::ApplicationAutoScaling::ScalableTarget":
            continue
        if service_id in repr(_props(res).get("ResourceId")):
            return _props(res)
    return None


def _task_segments(
    ctx: Context, service: str, sid: str, props: dict[str, Any]
) -> tuple[list[tuple[float, float]], str]:
    """(share of the month, average tasks) pieces, and a note."""
    target = _scalable_target(ctx, f"'{sid}'")
    desired = _num(props.get("DesiredCount"), 1.0)
    if target is None:
        return [(1.0, desired)], ""
    lo, hi = int(_num(target.get("MinCapacity"), desired)), int(_num(target.get("MaxCapacity"), desired))
    actions = [
        Action(
            str(a.get("Schedule", "")),
            (a.get("ScalableTargetAction") or {}).get("MinCapacity"),
            (a.get("ScalableTargetAction") or {}).get("MaxCapacity"),
        )
        for a in target.get("ScheduledActions") or []
    ]
    note = ""
    try:
        pieces = segments(lo, hi, [] if ctx.options.no_schedules else actions)
    except UnsupportedScheduleError as exc:
        pieces, note = [(1.0, lo, hi)], f"schedule not modelled ({exc}); scheduled minimum ignored"
    extra = ctx.use(sid, "extra_tasks", ctx.usage.extra_tasks.get(service, 0.0))
    return [(share, min(max(mn + extra, mn), mx)) for share, mn, mx in pieces], note


def _fargate_parts(
    ctx: Context, td: dict[str, Any], on_demand: float, spot: float
) -> tuple[list[tuple[str, float] | tuple[str, float, float]], str]:
    vcpu = _num(td.get("Cpu")) / 1024
    gb = _num(td.get("Memory")) / 1024
    arch = str((td.get("RuntimePlatform") or {}).get("CpuArchitecture", "X86_64")).upper()
    arm = arch == "ARM64" and not ctx.options.x86_only
    kind = "arm" if arm else "x86"
    h = ctx.hours
    parts: list[tuple[str, float] | tuple[str, float, float]] = [
        (f"fargate.{kind}.vcpu_hour", on_demand * vcpu * h, on_demand),
        (f"fargate.{kind}.gb_hour", on_demand * gb * h, on_demand),
        (f"fargate_spot.{kind}.vcpu_hour", spot * vcpu * h, spot),
        (f"fargate_spot.{kind}.gb_hour", spot * gb * h, spot),
    ]
    extra_storage = max(_num((td.get("EphemeralStorage") or {}).get("SizeInGiB"), 20) - 20, 0)
    parts.append(("fargate.ephemeral_gb_hour", extra_storage * (on_demand + spot) * h, on_demand + spot))
    return parts, f"{vcpu:g} vCPU / {gb:g} GB {'ARM64' if arm else 'x86'}"


def ecs_service(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Fargate tasks: vCPU-hours and GB-hours, on-demand and Spot, averaged over the schedule."""
    props = _props(res)
    td = _props(ctx.stack.resources.get(_ref(props.get("TaskDefinition")) or "", {}))
    name = str(props.get("ServiceName") or sid)
    if not td:
        ctx.unpriced(sid, res["Type"], f"ECS service {name}", "-", "task definition not found in the template")
        return
    pieces, note = _task_segments(ctx, name, sid, props)
    strategy = _strategy(ctx, props)
    if ctx.options.no_spot:  # Spot off: FARGATE_SPOT runs on FARGATE; EC2 capacity providers stay as they are
        strategy = [("FARGATE" if p == "FARGATE_SPOT" else p, base, w) for p, base, w in strategy]
    on_demand = sum(share * spot_split(n, strategy)[0] for share, n in pieces)
    spot = sum(share * spot_split(n, strategy)[1] for share, n in pieces)
    tasks = on_demand + spot
    ec2 = sum(share * n for share, n in pieces) - tasks
    if ec2 > 1e-9:
        ctx.add(
            sid, res["Type"], f"ECS on EC2 {name}", f"avg {ec2:.2f} tasks", [], "priced as the EC2 capacity it runs on"
        )
    if tasks < 1e-9 and ec2 > 1e-9:
        return
    parts, size = _fargate_parts(ctx, td, on_demand, spot)
    spot_note = f", {spot / tasks:.0%} Spot" if tasks and spot else ""
    ctx.add(sid, res["Type"], f"Fargate {name}", f"{size}, avg {tasks:.2f} tasks{spot_note}", parts, note)
    network = ((props.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration")) or {}
    public = ctx.stack.value(network.get("AssignPublicIp"))
    if public == "ENABLED" and not ctx.options.nat_per_az:
        ctx.add(
            sid, res["Type"], f"Public IPv4 {name}", f"{tasks:.2f} task IPs", [("ipv4.hour", tasks * ctx.hours, tasks)]
        )
    elif isinstance(network.get("AssignPublicIp"), dict) and public is None:
        ctx.unpriced(sid, res["Type"], f"Public IPv4 {name}", "-", "AssignPublicIp not resolvable from the templates")


def ecs_cluster(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Container Insights: its metrics at the assumed counts (custom metrics) and its performance log events.

    "When you use Container Insights to collect the following metrics, the metrics are charged as
    custom metrics": one metric per name and dimension set (cluster, each service, each task
    definition family), counted from the table in
    https://github.com/awsdocs/amazon-cloudwatch-user-guide/blob/master/doc_source/Container-Insights-metrics-ECS.md
    The enhanced-observability level is billed differently and has no figure in the price data.
    """
    for setting in _props(res).get("ClusterSettings") or []:
        if setting.get("Name") != "containerInsights" or setting.get("Value") not in ("enabled", "enhanced"):
            continue
        if setting["Value"] == "enhanced":
            ctx.unpriced(
                sid,
                res["Type"],
                "Container Insights",
                "enhanced",
                "enhanced observability is not priced: the price data has no figure for it (see not_found)",
            )
            continue
        u = ctx.usage
        log_gb = ctx.use(sid, "performance_log_gb", u.container_insights_log_gb)
        kinds = [r.get("Type") for r in ctx.stack.resources.values()]
        services, families = kinds.count("AWS::ECS::Service"), kinds.count("AWS::ECS::TaskDefinition")
        per_cluster = u.container_insights_metrics_per_cluster + int("AWS::ECS::CapacityProvider" in kinds)
        metrics = (
            per_cluster
            + services * u.container_insights_metrics_per_service
            + families * u.container_insights_metrics_per_task_family
        )
        ctx.add(
            sid,
            res["Type"],
            "Container Insights",
            f"{metrics:g} metrics ({services} services, {families} task families), {log_gb:g} GB performance logs",
            [("cloudwatch.metric_month", metrics), ("logs.ingest_gb", log_gb)],
        )


def _schedule_runs(expr: str, hours: float) -> float | None:
    """Runs a month of an EventBridge Scheduler / rule expression (``rate(...)`` or weekly ``cron(...)``)."""
    from kr_cfn.cost.schedule import WEEK_MINUTES, firings

    expr = expr.strip()
    if expr.startswith("rate(") and expr.endswith(")"):
        amount, _, unit = expr[5:-1].partition(" ")
        minutes = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}.get(unit.strip())
        return hours * 60 / (minutes * _num(amount, 1)) if minutes else None
    try:
        return len(firings(expr)) * hours * 60 / WEEK_MINUTES
    except UnsupportedScheduleError:
        return None


def scheduler_schedule(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Scheduler invocations (first 14 million a month free) and the ECS task each run starts."""
    props = _props(res)
    runs = _schedule_runs(str(props.get("ScheduleExpression", "")), ctx.hours)
    target = props.get("Target") or {}
    ecs = target.get("EcsParameters")
    if runs is None:
        ctx.unpriced(
            sid, res["Type"], "Scheduled task", str(props.get("ScheduleExpression")), "expression not modelled"
        )
        return
    ctx.add(sid, res["Type"], "Scheduler invocations", f"{runs:.0f} runs", [], "within the 14 million free a month")
    if isinstance(ecs, dict):
        td = _props(ctx.stack.resources.get(_ref(ecs.get("TaskDefinitionArn")) or "", {}))
        if not td:
            ctx.unpriced(sid, res["Type"], "Scheduled ECS task", f"{runs:.0f} runs", "task definition not in template")
            return
        minutes = ctx.use(sid, "minutes_per_run", ctx.usage.scheduled_task_minutes)
        share = runs * minutes / 60 / ctx.hours
        count = _num(ecs.get("TaskCount"), 1) * share
        parts, size = _fargate_parts(ctx, td, count, 0.0)
        ctx.add(
            sid,
            res["Type"],
            "Scheduled ECS task",
            f"{size}, {runs:.0f} runs x {minutes:g} min",
            parts,
        )


# --------------------------------------------------------------------------- data


def rds_instance(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Instance hours (twice for Multi-AZ), storage (twice for Multi-AZ), backups beyond the free allowance.

    Multi-AZ bills the standby's instance hours and storage too:
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_OnDemandDBInstances.html
    """
    p = _props(res)
    cls, engine = str(p.get("DBInstanceClass")), str(p.get("Engine", "postgres"))
    copies = 2 if ctx.stack.value(p.get("MultiAZ")) in (True, "true", "True") else 1
    storage_type = str(p.get("StorageType", "gp2"))
    gb = _num(p.get("AllocatedStorage"))
    az = "Multi-AZ" if copies == 2 else "Single-AZ"
    ctx.add(
        sid,
        res["Type"],
        "RDS instance",
        f"{cls} {engine} {az}",
        [(f"rds.{engine}.{cls}.hour", copies * ctx.hours, copies)],
    )
    ctx.add(
        sid,
        res["Type"],
        "RDS storage",
        f"{gb:g} GB {storage_type} x {copies}",
        [(f"rds.storage.{storage_type}.gb_month", copies * gb, copies)],
    )
    backup_gb = ctx.use(sid, "backup_gb", ctx.usage.rds_backup_gb)
    backup = max(backup_gb - gb, 0) if _num(p.get("BackupRetentionPeriod"), 1) else 0
    if backup:
        ctx.add(
            sid,
            res["Type"],
            "RDS backups",
            f"{backup:g} GB beyond the free allowance",
            [("rds.backup.gb_month", backup)],
        )


def elasticache(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Node hours of a replication group or cache cluster."""
    p = _props(res)
    node = str(p.get("CacheNodeType"))
    if res["Type"] == "AWS::ElastiCache::CacheCluster":
        nodes = _num(p.get("NumCacheNodes"), 1)
    elif p.get("NumNodeGroups"):
        nodes = _num(p.get("NumNodeGroups"), 1) * (_num(p.get("ReplicasPerNodeGroup"), 0) + 1)
    else:
        nodes = _num(p.get("NumCacheClusters"), 1)
    ctx.add(
        sid, res["Type"], "ElastiCache", f"{nodes:g} x {node}", [(f"elasticache.{node}.hour", nodes * ctx.hours, nodes)]
    )


def efs(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Standard storage at the assumed average size."""
    gb = ctx.use(sid, "gb", ctx.usage.efs_gb)
    ctx.add(sid, res["Type"], "EFS", f"{gb:g} GB Standard", [("efs.standard.gb_month", gb)])


def s3_bucket(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Standard storage at the assumed size (requests and lifecycle transitions not modelled)."""
    gb = ctx.use(sid, "gb", ctx.usage.s3_gb.get(sid, 0.0))
    ctx.add(sid, res["Type"], "S3", f"{gb:g} GB Standard", [("s3.standard.gb_month", gb)])


def ecr(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Image storage at the assumed size."""
    gb = ctx.use(sid, "gb", ctx.usage.ecr_gb)
    ctx.add(sid, res["Type"], "ECR", f"{gb:g} GB images", [("ecr.gb_month", gb)])


def secret(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """A secret a month (API calls are one env-wide line)."""
    ctx.add(sid, res["Type"], "Secrets Manager secret", "1 secret", [("secretsmanager.secret_month", 1)])


def kms_key(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """A customer managed key a month (requests within the 20,000 free)."""
    ctx.add(sid, res["Type"], "KMS key", "1 key", [("kms.key_month", 1)])


# --------------------------------------------------------------------------- network


def alb(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Load balancer hours and LCU-hours; an internet-facing one has a public IPv4 address per subnet."""
    p = _props(res)
    if p.get("Type", "application") != "application":
        ctx.unpriced(
            sid, res["Type"], "Load balancer", str(p.get("Type")), "only application load balancers are priced"
        )
        return
    lcu = ctx.use(sid, "lcu", ctx.usage.alb_lcu)
    ctx.add(
        sid, res["Type"], "ALB", f"1 ALB, {lcu:g} LCU", [("alb.hour", ctx.hours), ("alb.lcu_hour", lcu * ctx.hours)]
    )
    if p.get("Scheme", "internet-facing") == "internet-facing":
        subnets = p.get("Subnets") if isinstance(p.get("Subnets"), list) else None
        ips = len(subnets) if subnets else _public_subnets(ctx)
        ctx.add(
            sid, res["Type"], "Public IPv4 ALB", f"{ips} IPs (one per subnet)", [("ipv4.hour", ips * ctx.hours, ips)]
        )


def _public_subnets(ctx: Context) -> int:
    count = sum(
        1
        for s in ctx.stacks
        for r in s.resources.values()
        if r.get("Type") == "AWS::EC2::Subnet" and _props(r).get("MapPublicIpOnLaunch") is True
    )
    return count or 2


def _nat_count(ctx: Context) -> int:
    return sum(1 for s in ctx.stacks for r in s.resources.values() if r.get("Type") == "AWS::EC2::NatGateway")


def nat_gateway(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Hours and processed GB (the assumed total shared evenly); its Elastic IP is priced as an EIP."""
    gb = ctx.use(sid, "processed_gb", ctx.usage.nat_processed_gb / max(_nat_count(ctx), 1))
    ctx.add(sid, res["Type"], "NAT gateway", f"1 gateway, {gb:g} GB", [("nat.hour", ctx.hours), ("nat.gb", gb)])


def eip(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """A public IPv4 address, billed hourly whether attached or idle."""
    ctx.add(sid, res["Type"], "Public IPv4 EIP", "1 IP", [("ipv4.hour", ctx.hours)])


# --------------------------------------------------------------------------- monitoring


def log_group(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Ingestion (an even share of the assumed GB unless named) and storage kept for the retention."""
    u = ctx.usage
    named = u.log_ingest_gb_by_group
    unnamed = max(ctx.log_groups - len([g for g in named if g != sid]), 1) if sid not in named else 1
    gb = ctx.use(sid, "ingest_gb", named.get(sid, (u.log_ingest_gb - sum(named.values())) / unnamed))
    days = ctx.options.log_retention_days or _num(_props(res).get("RetentionInDays"), 0)
    months = days / (ctx.hours / 24) if days else u.log_never_expire_months
    kept = f"{days:g} d retention" if days else "never expires"
    parts = [("logs.ingest_gb", gb), ("logs.storage_gb_month", gb * months)]
    ctx.add(sid, res["Type"], "CloudWatch Logs", f"{gb:.2f} GB/month in, {kept}", parts)


def alarm(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Standard-resolution alarm per metric (metric math: each metric it reads)."""
    metrics = _props(res).get("Metrics")
    count = sum(1 for m in metrics if "MetricStat" in m) if isinstance(metrics, list) else 1
    ctx.add(sid, res["Type"], "CloudWatch alarm", f"{count} metric(s)", [("cloudwatch.alarm_month", max(count, 1))])


def dashboard(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """A custom dashboard a month."""
    ctx.add(sid, res["Type"], "CloudWatch dashboard", "1 dashboard", [("cloudwatch.dashboard_month", 1)])


# --------------------------------------------------------------------------- EC2 and friends


def _launch_data(ctx: Context, node: Any) -> dict[str, Any]:
    """The ``LaunchTemplateData`` of the launch template ``node`` refers to (empty when not in the template)."""
    lt = _props(ctx.stack.resources.get(_ref((node or {}).get("LaunchTemplateId")) or "", {}))
    data = lt.get("LaunchTemplateData")
    return data if isinstance(data, dict) else {}


def _instance_type(ctx: Context, node: Any) -> str | None:
    value = _launch_data(ctx, node).get("InstanceType")
    return ctx.stack.value(value) if value is not None else None


def _block_devices(ctx: Context, sid: str, res: dict[str, Any], mappings: Any, count: float, what: str) -> None:
    """The EBS volumes each instance gets from its block device mappings (root volume included), per GB-month.

    Each instance launched gets its own volumes, billed like any EBS volume while they exist:
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/block-device-mapping-concepts.html
    """
    for mapping in mappings if isinstance(mappings, list) else []:
        ebs = mapping.get("Ebs") if isinstance(mapping, dict) else None
        if not isinstance(ebs, dict):
            continue  # instance store or NoDevice: no EBS charge
        device = mapping.get("DeviceName", "?")
        vtype, size = str(ctx.stack.value(ebs.get("VolumeType")) or "gp2"), ctx.stack.value(ebs.get("VolumeSize"))
        if size is None:
            ctx.unpriced(
                sid, res["Type"], f"EBS {device} ({what})", vtype, "size taken from the AMI: not in the template"
            )
            continue
        gb = _num(size)
        ctx.add(
            sid,
            res["Type"],
            f"EBS {device} ({what})",
            f"{count:g} x {gb:g} GB {vtype}",
            [(f"ebs.{vtype}.gb_month", count * gb, count)],
        )


def ec2_instance(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """On-demand instance hours and the EBS volumes of its block device mappings (its own, else its template's)."""
    p = _props(res)
    itype = ctx.stack.value(p.get("InstanceType")) or _instance_type(ctx, p.get("LaunchTemplate"))
    ctx.add(sid, res["Type"], "EC2 instance", f"1 x {itype}", [(f"ec2.{itype}.hour", ctx.hours)])
    mappings = p.get("BlockDeviceMappings") or _launch_data(ctx, p.get("LaunchTemplate")).get("BlockDeviceMappings")
    _block_devices(ctx, sid, res, mappings, 1, "instance volume")


def asg(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Desired (else minimum) instances of the launch template's type, on demand."""
    p = _props(res)
    count = _num(p.get("DesiredCapacity"), _num(p.get("MinSize"), 0))
    if p.get("MixedInstancesPolicy"):
        ctx.unpriced(
            sid, res["Type"], "EC2 Auto Scaling", f"{count:g} instances", "mixed instances policy not modelled"
        )
        return
    itype = _instance_type(ctx, p.get("LaunchTemplate"))
    if itype is None:
        ctx.unpriced(sid, res["Type"], "EC2 Auto Scaling", f"{count:g} instances", "instance type not found")
        return
    ctx.add(
        sid, res["Type"], "EC2 Auto Scaling", f"{count:g} x {itype}", [(f"ec2.{itype}.hour", count * ctx.hours, count)]
    )
    mappings = _launch_data(ctx, p.get("LaunchTemplate")).get("BlockDeviceMappings")
    _block_devices(ctx, sid, res, mappings, count, "launch template volume")


def ebs_volume(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Provisioned GB of the volume type."""
    p = _props(res)
    vtype = str(p.get("VolumeType", "gp2"))
    ctx.add(
        sid,
        res["Type"],
        "EBS volume",
        f"{_num(p.get('Size')):g} GB {vtype}",
        [(f"ebs.{vtype}.gb_month", _num(p.get("Size")))],
    )


def snapshots(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """Snapshot storage kept by a backup plan or lifecycle policy, at the assumed size and the EBS snapshot rate.

    The shipped templates snapshot EBS volumes (a DLM policy on the Qdrant volume); a Backup plan
    of another resource type bills that type's backup rate, which the price data does not hold.
    """
    gb = ctx.use(sid, "gb", ctx.usage.backup_gb)
    ctx.add(sid, res["Type"], "Snapshots", f"{gb:g} GB kept", [("ebs.snapshot.gb_month", gb)])


def hosted_zone(ctx: Context, sid: str, res: dict[str, Any]) -> None:
    """A hosted zone a month and the assumed standard queries it answers."""
    q = ctx.use(sid, "queries_million", ctx.usage.route53_queries_million)
    ctx.add(
        sid,
        res["Type"],
        "Route 53 zone",
        f"1 zone, {q:g} M standard queries",
        [("route53.zone_month", 1), ("route53.queries_million", q)],
    )


RULES: dict[str, Rule] = {
    "AWS::ECS::Service": ecs_service,
    "AWS::ECS::Cluster": ecs_cluster,
    "AWS::Scheduler::Schedule": scheduler_schedule,
    "AWS::RDS::DBInstance": rds_instance,
    "AWS::ElastiCache::ReplicationGroup": elasticache,
    "AWS::ElastiCache::CacheCluster": elasticache,
    "AWS::EFS::FileSystem": efs,
    "AWS::S3::Bucket": s3_bucket,
    "AWS::ECR::Repository": ecr,
    "AWS::SecretsManager::Secret": secret,
    "AWS::KMS::Key": kms_key,
    "AWS::ElasticLoadBalancingV2::LoadBalancer": alb,
    "AWS::EC2::NatGateway": nat_gateway,
    "AWS::EC2::EIP": eip,
    "AWS::Logs::LogGroup": log_group,
    "AWS::CloudWatch::Alarm": alarm,
    "AWS::CloudWatch::Dashboard": dashboard,
    "AWS::EC2::Instance": ec2_instance,
    "AWS::AutoScaling::AutoScalingGroup": asg,
    "AWS::EC2::Volume": ebs_volume,
    "AWS::Backup::BackupPlan": snapshots,
    "AWS::DLM::LifecyclePolicy": snapshots,
    "AWS::Route53::HostedZone": hosted_zone,
}
"""Billable resource types and their rules."""
