"""The cost model: the pricing rules (kr_cfn.cost.rules) applied to every resource, free allowances, savings.

A rule reads the resource's properties from the built template and the usage assumptions
(``cost:`` in params); it never guesses a figure the price book does not hold: such a line
is kept with ``usd=None`` ("unpriced") and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from kr_cfn.config.cost import CostConfig
from kr_cfn.cost.items import Context, Line, Options, Overrides, _props
from kr_cfn.cost.prices import PriceBook
from kr_cfn.cost.rules import RULES
from kr_cfn.cost.templates import Stack

_NO_CHARGE = "no charge of its own"
_ECS_FREE = (
    "ECS orchestration carries no charge "
    "(https://spot.io/resources/aws-pricing/aws-ecs-pricing-3-pricing-models-and-5-cost-saving-tips/)"
)
_ACM_FREE = "public certificates carry no charge (https://aws.amazon.com/certificate-manager/pricing/; not read here)"
_ZONE_QUERIES = (
    "records carry no charge of their own; queries are billed to the hosted zone, priced where the templates "
    "create it (cost.route53_queries_million)"
)
_CHATBOT_FREE = "Chatbot carries no charge of its own (not confirmed by a stored page); SNS delivers underneath"
FREE: dict[str, str] = {
    "AWS::CloudFormation::Stack": "priced through the resources of the nested template",
    "AWS::EC2::VPC": "VPCs carry no charge (https://jayendrapatil.com/aws-pricing-whitepaper/)",
    "AWS::EC2::Subnet": _NO_CHARGE + " (part of the VPC)",
    "AWS::EC2::RouteTable": _NO_CHARGE + " (part of the VPC)",
    "AWS::EC2::Route": _NO_CHARGE + " (part of the VPC)",
    "AWS::EC2::SubnetRouteTableAssociation": _NO_CHARGE + " (part of the VPC)",
    "AWS::EC2::InternetGateway": _NO_CHARGE + "; data out is the env-wide data transfer line",
    "AWS::EC2::VPCGatewayAttachment": _NO_CHARGE,
    "AWS::EC2::SecurityGroup": _NO_CHARGE,
    "AWS::EC2::SecurityGroupIngress": _NO_CHARGE,
    "AWS::EC2::SecurityGroupEgress": _NO_CHARGE,
    "AWS::EC2::LaunchTemplate": "priced through the instances or Auto Scaling group that use it",
    "AWS::ECS::CapacityProvider": "priced through its Auto Scaling group's instances",
    "AWS::EC2::VolumeAttachment": _NO_CHARGE + "; the volume is priced",
    "AWS::IAM::Role": "IAM carries no charge (https://jayendrapatil.com/aws-pricing-whitepaper/)",
    "AWS::IAM::Policy": "IAM carries no charge",
    "AWS::IAM::ManagedPolicy": "IAM carries no charge",
    "AWS::IAM::InstanceProfile": "IAM carries no charge",
    "AWS::IAM::OIDCProvider": "IAM carries no charge",
    "AWS::ECS::ClusterCapacityProviderAssociations": _ECS_FREE,
    "AWS::ECS::TaskDefinition": "priced through the services and scheduled tasks that run it",
    "AWS::ApplicationAutoScaling::ScalableTarget": "Auto Scaling carries no charge; its schedule shapes the task count",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "Auto Scaling carries no charge (its alarms are AWS-managed)",
    "AWS::ServiceDiscovery::PrivateDnsNamespace": "not modelled: Cloud Map private zone and queries (no stored price)",
    "AWS::ServiceDiscovery::Service": "not modelled: Cloud Map instances registered by ECS (no stored price page)",
    "AWS::ElasticLoadBalancingV2::Listener": "part of the load balancer's hours and LCUs",
    "AWS::ElasticLoadBalancingV2::ListenerRule": "part of the load balancer's LCUs (rule evaluations)",
    "AWS::ElasticLoadBalancingV2::ListenerCertificate": "part of the load balancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup": "part of the load balancer",
    "AWS::RDS::DBParameterGroup": _NO_CHARGE,
    "AWS::RDS::DBSubnetGroup": _NO_CHARGE,
    "AWS::ElastiCache::SubnetGroup": _NO_CHARGE,
    "AWS::ElastiCache::ParameterGroup": _NO_CHARGE,
    "AWS::EFS::MountTarget": _NO_CHARGE + "; storage is priced on the file system",
    "AWS::EFS::AccessPoint": _NO_CHARGE,
    "AWS::S3::BucketPolicy": _NO_CHARGE,
    "AWS::SecretsManager::RotationSchedule": "rotation Lambda runs a few times a quarter; not modelled",
    "AWS::SecretsManager::SecretTargetAttachment": _NO_CHARGE,
    "AWS::KMS::Alias": "aliases carry no charge (https://aws.amazon.com/kms/pricing/ prices keys and requests)",
    "AWS::Logs::QueryDefinition": "saved queries carry no charge; scans are not modelled",
    "AWS::Logs::MetricFilter": _NO_CHARGE,
    "AWS::Logs::SubscriptionFilter": _NO_CHARGE,
    "AWS::SNS::Topic": "alert volumes are far below a million publishes; not modelled",
    "AWS::SNS::Subscription": "e-mail deliveries of alerts; not modelled",
    "AWS::SNS::TopicPolicy": _NO_CHARGE,
    "AWS::CloudWatch::CompositeAlarm": "not modelled: no stored price figure",
    "AWS::CertificateManager::Certificate": _ACM_FREE,
    "AWS::Route53::RecordSet": _ZONE_QUERIES,
    "AWS::Route53::RecordSetGroup": _ZONE_QUERIES,
    "AWS::Chatbot::SlackChannelConfiguration": _CHATBOT_FREE,
    "AWS::Backup::BackupVault": "the vault is free; the plan's snapshots are priced",
    "AWS::Backup::BackupSelection": "selection only; the plan's snapshots are priced",
    "AWS::Scheduler::ScheduleGroup": _NO_CHARGE,
    "AWS::Events::Rule": "not modelled: EventBridge rules on AWS events are free; targets priced on their own",
    "AWS::StepFunctions::StateMachine": "not modelled: the database-secret redeploy runs a few state transitions "
    "per rotation (every 90 days), within Step Functions' monthly free transitions "
    "(https://aws.amazon.com/step-functions/pricing/; not read here)",
    "AWS::Lambda::Permission": _NO_CHARGE,
}
"""Types that carry no charge of their own (or are priced through another resource), with the reason."""


def env_lines(ctx: Context) -> Iterator[Line]:
    """Env-wide lines: data out to the internet, Secrets Manager API calls."""
    u = ctx.usage
    free = ctx.prices.get("data_transfer.free_gb") if u.free_tier else None
    out_gb = ctx.use("DataTransferOut", "gb", u.data_transfer_out_gb)
    gb = max(out_gb - (free.usd if free else 0.0), 0.0)
    kept = f", {free.usd:g} GB free a month (cost.free_tier)" if free else ""
    ctx.add(
        "DataTransferOut",
        "-",
        "Data transfer out",
        f"{out_gb:g} GB to the internet{kept}",
        [("data_transfer.out_gb", gb)],
    )
    if any(r.get("Type") == "AWS::SecretsManager::Secret" for s in ctx.stacks for r in s.resources.values()):
        calls = ctx.use("SecretsManagerApi", "calls", float(u.secrets_api_calls))
        ctx.add(
            "SecretsManagerApi",
            "-",
            "Secrets Manager API",
            f"{calls:,.0f} calls",
            [("secretsmanager.api_10k", calls / 10_000)],
        )
    yield from ()


DEFAULT_OPTIONS = Options()
"""Deployment options as the templates state them (no what-if)."""


def price(
    stacks: list[Stack],
    prices: PriceBook,
    usage: CostConfig,
    options: Options = DEFAULT_OPTIONS,
    overrides: Overrides | None = None,
    used: list[tuple[str, str, str, float]] | None = None,
) -> list[Line]:
    """Every line of the estimate, in template order; unknown types kept as unpriced lines.

    ``overrides``: usage figures per resource (the usage file); ``used`` collects every usage figure read.
    """
    log_groups = sum(1 for s in stacks for r in s.resources.values() if r.get("Type") == "AWS::Logs::LogGroup")
    out: list[Line] = []
    seen = used if used is not None else []
    for stack in stacks:
        ctx = Context(stack, stacks, prices, usage, options, log_groups, overrides=overrides or {}, used=seen)
        for sid, res in stack.resources.items():
            type_ = str(res.get("Type"))
            rule = RULES.get(type_)
            if rule is not None:
                rule(ctx, sid, res)
            elif type_ not in FREE and not type_.startswith("Custom::"):
                ctx.unpriced(sid, type_, type_, "-", "billable type the cost model does not price yet")
        out += ctx.lines
    env = Context(Stack("env", {}), stacks, prices, usage, options, log_groups, overrides=overrides or {}, used=seen)
    list(env_lines(env))
    for line in env.lines:
        line.stack = "env"
    out += env.lines
    if options.nat_per_az:
        out = _per_az_nat(out, stacks, prices, usage)
    if usage.free_tier:
        _free_allowances(out)
    return out


FREE_ALLOWANCES: dict[str, float] = {
    "cloudwatch.metric_month": 10,
    "cloudwatch.alarm_month": 10,
    "cloudwatch.dashboard_month": 3,
    "logs.ingest_gb": 5,
}
"""CloudWatch's always-free monthly allowances per account (``cost.free_tier``: the env is the account's only
workload): 10 custom metrics, 10 standard-resolution alarm metrics, 3 dashboards, 5 GB of logs ("ingestion,
archive storage, and Logs Insights queries": taken off ingestion here). Transcribed from
https://aws.amazon.com/cloudwatch/pricing/ in
https://raw.githubusercontent.com/api-evangelist/cloudwatch/refs/heads/main/plans/cloudwatch-plans-pricing.yml
(2026-05-05, an API Evangelist transcription: check it against the AWS page). The 100 GB of data transfer
out is the price file's ``data_transfer.free_gb``, taken off the env-wide line.
"""


def _free_allowances(lines: list[Line]) -> None:
    """Take the account's free allowances off the priced lines, in line order, as negative components."""
    left = dict(FREE_ALLOWANCES)
    for ln in lines:
        if ln.usd is None:
            continue
        extra = []
        for part in ln.parts:
            if part.free or left.get(part.key, 0) <= 0 or part.quantity <= 0:
                continue
            take = min(left[part.key], part.quantity)
            left[part.key] -= take
            extra.append(replace(part, quantity=-take, count=1.0, free=True))
        if extra:
            ln.parts = [*ln.parts, *extra]
            ln.usd = sum(p.usd or 0.0 for p in ln.parts)
            ln.note = "; ".join(filter(None, [ln.note, "account free allowance taken off (cost.free_tier)"]))


def _per_az_nat(lines: list[Line], stacks: list[Stack], prices: PriceBook, usage: CostConfig) -> list[Line]:
    """The lines with the NAT layout replaced by one NAT gateway (and its EIP) per public subnet's AZ."""
    kept = [ln for ln in lines if ln.type not in ("AWS::EC2::NatGateway", "AWS::EC2::EIP")]
    azs = (
        sum(
            1
            for s in stacks
            for r in s.resources.values()
            if r.get("Type") == "AWS::EC2::Subnet" and _props(r).get("MapPublicIpOnLaunch") is True
        )
        or 2
    )
    ctx = Context(Stack("network", {}), stacks, prices, usage, Options(nat_per_az=True))
    gb = usage.nat_processed_gb / azs
    for i in range(azs):
        ctx.add(
            f"NatGateway{i + 1}",
            "AWS::EC2::NatGateway",
            "NAT gateway",
            f"1 gateway, {gb:g} GB",
            [("nat.hour", usage.hours_per_month), ("nat.gb", gb)],
        )
        ctx.add(f"NatEip{i + 1}", "AWS::EC2::EIP", "Public IPv4 EIP", "1 IP", [("ipv4.hour", usage.hours_per_month)])
    return kept + ctx.lines


def total(lines: list[Line]) -> float:
    """Sum of the priced lines (a lower bound when ``unpriced(lines)`` is not empty)."""
    return sum(ln.usd for ln in lines if ln.usd is not None)


def unpriced(lines: list[Line]) -> list[Line]:
    """The lines without a price: a total over ``lines`` leaves them out."""
    return [ln for ln in lines if ln.usd is None]


SAVINGS: dict[str, tuple[str, Options]] = {
    "spot_share": ("Spot share", Options(no_spot=True)),
    "schedules": ("schedules", Options(no_schedules=True)),
    "arm64": ("ARM64", Options(x86_only=True)),
    "log_retention": ("log retention", Options(log_retention_days=-1)),
    "nat_choice": ("NAT choice", Options(nat_per_az=True)),
}
"""Each optimisation by its machine id: its label and the options that turn it off (log retention: the baseline)."""


def savings(
    stacks: list[Stack], prices: PriceBook, usage: CostConfig, overrides: Overrides | None = None
) -> dict[str, float | None]:
    """USD a month each optimisation saves: the estimate with it turned off, minus the estimate.

    None (unknown) when the two estimates leave different lines unpriced: their difference would
    count a missing price as $0.
    """
    base_lines = price(stacks, prices, usage, overrides=overrides)
    base, missing = total(base_lines), {ln.key for ln in unpriced(base_lines)}
    out: dict[str, float | None] = {}
    for name, (_, opts) in SAVINGS.items():
        if opts.log_retention_days == -1:
            opts = replace(opts, log_retention_days=usage.baseline_log_retention_days)
        off = price(stacks, prices, usage, opts, overrides)
        if {ln.key for ln in unpriced(off)} != missing:
            out[name] = None
            continue
        # to the cent, so a float remainder of an unchanged estimate reads 0.00, not -0.00
        out[name] = round(total(off) - base, 2) + 0.0
    return out


SAVINGS_PLAN_PREFIX = "compute_sp_1y_no_upfront."
"""Price-file keys of the 1-year, no-upfront Compute Savings Plan rate: this prefix + the on-demand key."""
_PLAN_COVERS = ("fargate.", "ec2.")
"""On-demand usage a Compute Savings Plan covers here: Fargate vCPU and memory, EC2 instance hours.

"Compute Savings Plans [...] apply to EC2 instance usage [...] AWS Fargate and AWS Lambda usage":
https://docs.aws.amazon.com/savingsplans/latest/userguide/what-is-savings-plans.html (Fargate Spot is not
covered: it is already discounted). Extra ephemeral storage is left out (not a compute rate).
"""


def savings_plan(lines: list[Line], prices: PriceBook) -> dict[str, Any]:
    """What a 1-year Compute Savings Plan (no upfront) committed to today's steady usage would save a month.

    Each covered on-demand part is re-priced at the plan's rate for the same key
    (``compute_sp_1y_no_upfront.<key>`` in the price file); ``usd`` is None, with the reason,
    while the price data has no sourced rate for a covered key.
    """
    covered = [
        p
        for ln in lines
        for p in ln.parts
        if p.key.startswith(_PLAN_COVERS) and not p.key.startswith("fargate.ephemeral") and p.unit_usd is not None
    ]
    missing = sorted({p.key for p in covered if prices.get(SAVINGS_PLAN_PREFIX + p.key) is None})
    on_demand = sum(p.usd or 0.0 for p in covered)
    out: dict[str, Any] = {
        "id": "compute_savings_plan_1y_no_upfront",
        "label": "Compute Savings Plan 1y",
        "on_demand_usd": round(on_demand, 2),
        "usd": None,
        "note": "",
    }
    if missing:
        out["note"] = (
            f"no sourced plan rate in the price data for {', '.join(missing)} "
            f"(keys {SAVINGS_PLAN_PREFIX}<key>); the covered on-demand spend is {on_demand:,.2f} USD a month"
        )
        return out
    plan = sum(p.quantity * prices.figures[SAVINGS_PLAN_PREFIX + p.key].usd for p in covered)
    out["usd"] = round(on_demand - plan, 2) + 0.0
    out["note"] = f"commitment {plan:,.2f} USD a month at the plan's rates"
    return out
