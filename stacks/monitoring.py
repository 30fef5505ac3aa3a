"""Monitoring stack: the alerts topic, CloudWatch alarms, a dashboard and a saved Logs Insights query.

Everything it watches belongs to other stacks and arrives as Parameters: the cluster and
service names and log group from ecs, the load balancer and target group full names from
alb, the database instance id from data. Prometheus and Grafana are ECS services rendered
from params with the others; this stack only reads CloudWatch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from awacs import cloudwatch as cloudwatch_actions
from awacs import kms as kms_actions
from awacs.aws import (
    Allow,
    ArnLike,
    Condition,
    PolicyDocument,
    Principal,
    SourceAccount,
    SourceArn,
    Statement,
    StringEquals,
)
from troposphere import AccountId, GetAtt, Ref, Sub, Template, chatbot, cloudwatch, iam, kms, logs, sns

from kr_cfn.blocks import add_output, add_parameter, new_template
from kr_cfn.config.monitoring import BACKEND, AlarmSpec, MonitoringSlice
from kr_cfn.config.qdrant import SNAPSHOT_METRIC, metric_namespace
from kr_cfn.iam import arn, bounded, managed_policy, service_trust
from kr_cfn.naming import pascal

ALERTS_KEY = "AlertsKey"
ALERTS_KEY_ALIAS = "AlertsKeyAlias"
ALERTS_TOPIC = "AlertsTopic"
DASHBOARD = "Dashboard"
SLOWEST_ENDPOINTS_QUERY = "SlowestEndpointsQuery"
CHATBOT_ROLE = "AlertsChatbotRole"
CHATBOT_CHANNEL = "AlertsSlackChannel"

BACKEND_CPU_ALARM = "BackendHighCpuAlarm"
BACKEND_MEMORY_ALARM = "BackendHighMemoryAlarm"
BACKEND_TASKS_ALARM = "BackendTasksBelowDesiredAlarm"
BACKEND_LATENCY_ALARM = "BackendHighLatencyAlarm"
HTTP_5XX_ALARM = "AlbHigh5xxRateAlarm"
DB_CONNECTIONS_ALARM = "DbHighConnectionsAlarm"
DB_FREE_STORAGE_ALARM = "DbLowFreeStorageAlarm"
UNHEALTHY_TARGETS_ALARM = "{service}UnhealthyTargetsAlarm"
QDRANT_SNAPSHOT_ALARM = "QdrantSnapshotMissingAlarm"
# One hour per datapoint; 25 of them: a day between snapshots plus an hour for the job to finish.
# Periods of an hour or more may span up to 7 days (PutMetricAlarm, Period:
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html).
SNAPSHOT_ALARM_PERIOD = 3600
SNAPSHOT_ALARM_PERIODS = 25

CLUSTER_NAME = "ClusterName"
LOAD_BALANCER = "LoadBalancerFullName"
DB_INSTANCE = "DbInstanceId"

ECS = "AWS/ECS"
CONTAINER_INSIGHTS = "ECS/ContainerInsights"
ALB = "AWS/ApplicationELB"
RDS = "AWS/RDS"
GIB = 1024**3

# The backend's access log lines must end in the request time in seconds, after the quoted
# request line and the status, e.g. gunicorn with
#   --access-logformat '%(h)s "%(r)s" %(s)s %(b)s %(L)s'
# gives: 10.0.1.23 "POST /api/chat/ HTTP/1.1" 200 1532 0.842113
# The duration needs a decimal point, so a trailing byte count is never taken for it; lines
# without one (uvicorn's own access log: `"GET /api/x HTTP/1.1" 200 OK`) are left out. Only
# /api/ paths count, and the query string is not part of the endpoint.
SLOWEST_ENDPOINTS = (
    "fields @timestamp, @message\n"
    r'| parse @message /"(?<method>[A-Z]+) (?<path>\/api\/[^ ?"]*)[^"]* HTTP\/[0-9.]+" (?<status>\d{3}) '
    r"(?:.* )?(?<duration>\d+\.\d+)\s*$/"
    "\n| filter ispresent(duration)\n"
    "| stats count(*) as requests, avg(duration) as avg_s, pct(duration, 95) as p95_s, max(duration) as max_s"
    " by method, path\n"
    "| sort p95_s desc\n"
    "| limit 10"
)


def build(cfg: MonitoringSlice) -> Template:
    """Build the monitoring template."""
    t = new_template(f"{cfg.names.prefix}: monitoring (alerts topic, alarms, dashboard, saved queries)")
    params = _parameters(t, cfg)
    topic = _alerts_topic(t, cfg)
    alarms = _alarms(t, cfg, topic)
    if cfg.qdrant_snapshots:
        alarms.append(_snapshot_alarm(t, cfg, topic))
    if cfg.monitoring.cloudtrail_log_group and cfg.monitoring.alarms.secret_reads:
        alarms.append(_secret_reads_alarm(t, cfg, topic, cfg.monitoring.cloudtrail_log_group))
    if _log_group_param(BACKEND) in params:
        t.add_resource(
            logs.QueryDefinition(
                SLOWEST_ENDPOINTS_QUERY,
                Name=f"{cfg.names.prefix}/top-10-slowest-api-endpoints",
                LogGroupNames=[Ref(_log_group_param(BACKEND))],
                QueryString=SLOWEST_ENDPOINTS,
            )
        )
    t.add_resource(
        cloudwatch.Dashboard(
            DASHBOARD, DashboardName=cfg.names("overview"), DashboardBody=Sub(json.dumps(dashboard_body(cfg, alarms)))
        )
    )
    add_output(t, "AlertsTopicArn", Ref(topic), "SNS topic that receives every alarm and OK notification")
    return t


# --------------------------------------------------------------------------- parameters


def _service_param(service: str) -> str:
    return f"{pascal(service)}ServiceName"


def _log_group_param(service: str) -> str:
    return f"{pascal(service)}LogGroupName"


def _target_group_param(service: str) -> str:
    return f"{pascal(service)}TargetGroupFullName"


def _parameters(t: Template, cfg: MonitoringSlice) -> set[str]:
    """Declare only what is used (cfn-lint W2001); returns the declared names."""
    declared: set[str] = set()

    def declare(name: str, description: str) -> None:
        add_parameter(t, name, "String", description)
        declared.add(name)

    if cfg.services:
        declare(CLUSTER_NAME, "ECS cluster name (ecs stack)")
    for service in cfg.services:
        declare(_service_param(service), f"ECS service name of {service} (ecs stack)")
    if BACKEND in cfg.services:
        declare(_log_group_param(BACKEND), f"Log group of {BACKEND} (ecs stack), searched by the saved query")
    if cfg.load_balanced:
        declare(LOAD_BALANCER, "Load balancer full name app/<name>/<id> (alb stack), the metrics' dimension")
    for service in cfg.load_balanced:
        declare(_target_group_param(service), f"Target group full name of {service} (alb stack)")
    declare(DB_INSTANCE, "RDS instance identifier (data stack)")
    return declared


# --------------------------------------------------------------------------- alerts topic


def _alerts_topic(t: Template, cfg: MonitoringSlice) -> sns.Topic:
    # CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key (its
    # policy cannot be changed), hence a customer managed key that lets the alarms use it.
    key = t.add_resource(
        kms.Key(
            ALERTS_KEY,
            Description=f"{cfg.names.prefix}: encrypts the alerts topic",
            EnableKeyRotation=True,
            # Only in-flight notifications are encrypted with it, nothing to keep after the stack.
            PendingWindowInDays=7,
            DeletionPolicy="Delete",
            UpdateReplacePolicy="Delete",
            KeyPolicy=PolicyDocument(
                Version="2012-10-17",
                Statement=[
                    Statement(
                        Sid="AccountAdministers",
                        Effect=Allow,
                        Principal=Principal("AWS", arn("iam", "root", region=False)),
                        Action=[kms_actions.Action("*")],
                        Resource=["*"],
                    ),
                    Statement(
                        Sid="AlarmsPublishEncrypted",
                        Effect=Allow,
                        Principal=Principal("Service", "cloudwatch.amazonaws.com"),
                        Action=[kms_actions.Decrypt, kms_actions.Action("GenerateDataKey*")],
                        Resource=["*"],
                        Condition=Condition(
                            [
                                StringEquals(SourceAccount, AccountId),
                                ArnLike(
                                    SourceArn,
                                    arn("cloudwatch", f"alarm:{cfg.names('*')}"),
                                ),
                            ]
                        ),
                    ),
                ],
            ),
        )
    )
    t.add_resource(kms.Alias(ALERTS_KEY_ALIAS, AliasName=f"alias/{cfg.names('alerts')}", TargetKeyId=Ref(key)))
    topic = t.add_resource(
        sns.Topic(
            ALERTS_TOPIC,
            TopicName=cfg.names("devops-alerts"),
            DisplayName=f"{cfg.names.prefix} alerts",
            KmsMasterKeyId=Ref(key),
        )
    )
    _alert_routes(t, cfg, topic)
    return topic


def _alert_routes(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> None:
    """E-mail and HTTPS subscriptions (each confirms once) and the Slack channel through AWS Chatbot."""
    m = cfg.monitoring
    routes = [("email", "AlertEmail", e, e.lower()) for e in m.alert_emails]
    routes += [("https", "AlertHttps", url, url) for url in m.alert_https_endpoints]
    for protocol, prefix, endpoint, key in routes:
        # Named by the address, so removing one address leaves the others' subscriptions alone.
        digest = hashlib.sha256(key.encode()).hexdigest()[:10].upper()
        t.add_resource(
            sns.SubscriptionResource(f"{prefix}{digest}", TopicArn=Ref(topic), Protocol=protocol, Endpoint=endpoint)
        )
    if m.slack is not None:
        _slack_channel(t, cfg, topic)


def _slack_channel(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> None:
    """AWS Chatbot posts the topic's notifications to one Slack channel; its role may only read alarms.

    The workspace must be authorised once in the Chatbot console first (docs/runbook.md "Alert routes").
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-chatbot-slackchannelconfiguration.html
    """
    assert cfg.monitoring.slack is not None
    role = t.add_resource(
        iam.Role(
            CHATBOT_ROLE,
            AssumeRolePolicyDocument=service_trust("chatbot.amazonaws.com", StringEquals(SourceAccount, AccountId)),
            **bounded(cfg.names.prefix),
            Policies=[
                iam.Policy(
                    PolicyName="read-alarms",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[
                            # What Chatbot reads to render an alarm notification: this env's alarms only.
                            Statement(
                                Effect=Allow,
                                Action=[cloudwatch_actions.DescribeAlarms],
                                Resource=[arn("cloudwatch", f"alarm:{cfg.names('*')}")],
                            ),
                        ],
                    ),
                )
            ],
        )
    )
    t.add_resource(
        chatbot.SlackChannelConfiguration(
            CHATBOT_CHANNEL,
            ConfigurationName=cfg.names("alerts"),
            IamRoleArn=GetAtt(role, "Arn"),
            SlackWorkspaceId=cfg.monitoring.slack.workspace_id,
            SlackChannelId=cfg.monitoring.slack.channel_id,
            SnsTopicArns=[Ref(topic)],
            # Channel members get no AWS permissions beyond reading CloudWatch (the default
            # guardrail would be AdministratorAccess); the role above is narrower still.
            GuardrailPolicies=[managed_policy("CloudWatchReadOnlyAccess")],
            UserRoleRequired=False,
            LoggingLevel="ERROR",
        )
    )


# --------------------------------------------------------------------------- alarms


def _dims(**dims: Any) -> list[cloudwatch.MetricDimension]:
    return [cloudwatch.MetricDimension(Name=k, Value=v) for k, v in dims.items()]


def _alarm(
    t: Template,
    cfg: MonitoringSlice,
    topic: sns.Topic,
    logical_id: str,
    *,
    name: str,
    spec: AlarmSpec,
    description: str,
    comparison: str,
    treat_missing: str,
    threshold: float | None = None,
    **metric: Any,
) -> cloudwatch.Alarm:
    """An alarm that notifies the topic on ALARM and on OK; a single metric gets ``spec.period``."""
    props: dict[str, Any] = {
        "AlarmName": cfg.names(name),
        "AlarmDescription": description,
        "ComparisonOperator": comparison,
        "Threshold": spec.threshold if threshold is None else threshold,
        "EvaluationPeriods": spec.evaluation_periods,
        "TreatMissingData": treat_missing,
        "AlarmActions": [Ref(topic)],
        "OKActions": [Ref(topic)],
    }
    if spec.datapoints_to_alarm is not None:
        props["DatapointsToAlarm"] = spec.datapoints_to_alarm
    if "Metrics" not in metric:
        metric["Period"] = spec.period
    return t.add_resource(cloudwatch.Alarm(logical_id, **props, **metric))


def _snapshot_alarm(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> cloudwatch.Alarm:
    """No successful Qdrant snapshot in the last 25 hours (failed, never started, or not scheduled).

    The snapshot job logs one success line; the ecs stack's metric filter counts it. Missing data
    is breaching, so a job that never runs alarms too (and a new environment until its first snapshot).
    """
    spec = AlarmSpec(threshold=1, period=SNAPSHOT_ALARM_PERIOD, evaluation_periods=SNAPSHOT_ALARM_PERIODS)
    return _alarm(
        t,
        cfg,
        topic,
        QDRANT_SNAPSHOT_ALARM,
        name="qdrant-snapshot-missing",
        spec=spec,
        description="No Qdrant snapshot reached the backups bucket in 25 hours: see the qdrant-snapshots "
        "log group and README, Qdrant backups",
        comparison="LessThanThreshold",
        treat_missing="breaching",
        Namespace=metric_namespace(cfg.names.prefix),
        MetricName=SNAPSHOT_METRIC,
        Statistic="Sum",
    )


SECRET_READS_FILTER = "SecretReadsMetricFilter"  # noqa: S105 - a logical id
SECRET_READS_ALARM = "SecretReadsAlarm"  # noqa: S105 - a logical id
SECRET_READS_METRIC = "SecretsManagerGetSecretValue"  # noqa: S105 - a metric name
SECRET_READS_PATTERN = '{ ($.eventSource = "secretsmanager.amazonaws.com") && ($.eventName = "GetSecretValue") }'  # noqa: S105
"""CloudTrail records GetSecretValue as a management event of event source secretsmanager.amazonaws.com
(https://docs.aws.amazon.com/secretsmanager/latest/userguide/cloudtrail_log_entries.html); a JSON
metric filter pattern selects it (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html)."""


def _secret_reads_alarm(t: Template, cfg: MonitoringSlice, topic: sns.Topic, log_group: str) -> cloudwatch.Alarm:
    """The plan's watch on GetSecretValue calls: a metric filter on the trail's log group and its alarm.

    The trail is the account's: the count covers every caller in the account (what the bill counts).
    ECS reads each secret once per task start, so a burst means restarts in a loop or a client
    reading secrets itself.
    """
    t.add_resource(
        logs.MetricFilter(
            SECRET_READS_FILTER,
            LogGroupName=log_group,
            FilterPattern=SECRET_READS_PATTERN,
            MetricTransformations=[
                logs.MetricTransformation(
                    MetricNamespace=metric_namespace(cfg.names.prefix),
                    MetricName=SECRET_READS_METRIC,
                    MetricValue="1",
                    DefaultValue=0,
                )
            ],
        )
    )
    spec = cfg.monitoring.alarms.secret_reads
    assert spec is not None  # the caller checked
    return _alarm(
        t,
        cfg,
        topic,
        SECRET_READS_ALARM,
        name="secret-reads",
        spec=spec,
        description=f"More than {spec.threshold:g} GetSecretValue calls in {spec.period // 60} minutes "
        f"(CloudTrail log group {log_group}): tasks restarting in a loop, or a client reading secrets itself",
        comparison="GreaterThanThreshold",
        treat_missing="notBreaching",
        Namespace=metric_namespace(cfg.names.prefix),
        MetricName=SECRET_READS_METRIC,
        Statistic="Sum",
    )


def _query(id_: str, namespace: str, metric: str, stat: str, period: int, **dims: Any) -> cloudwatch.MetricDataQuery:
    return cloudwatch.MetricDataQuery(
        Id=id_,
        ReturnData=False,
        MetricStat=cloudwatch.MetricStat(
            Metric=cloudwatch.Metric(Namespace=namespace, MetricName=metric, Dimensions=_dims(**dims)),
            Period=period,
            Stat=stat,
        ),
    )


def _alarms(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> list[cloudwatch.Alarm]:
    """Every enabled alarm; thresholds and periods from params, operators and statistics fixed here."""
    alarms = _backend_alarms(t, cfg, topic)
    if cfg.load_balanced:
        alarms += _alb_alarms(t, cfg, topic)
    return alarms + _database_alarms(t, cfg, topic)


def _backend_alarms(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> list[cloudwatch.Alarm]:
    """The backend service's CPU, memory and running-task alarms."""
    a = cfg.monitoring.alarms
    alarms: list[cloudwatch.Alarm] = []
    backend = {"ClusterName": Ref(CLUSTER_NAME), "ServiceName": Ref(_service_param(BACKEND))}
    if a.backend_cpu is not None:
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                BACKEND_CPU_ALARM,
                name="BackendHighCPU",
                spec=a.backend_cpu,
                description=f"Backend CPU above {a.backend_cpu.threshold:g} % (ECS service average)",
                comparison="GreaterThanThreshold",
                # No datapoints means no running task, which BackendTasksBelowDesired reports.
                treat_missing="notBreaching",
                Namespace=ECS,
                MetricName="CPUUtilization",
                Statistic="Average",
                Dimensions=_dims(**backend),
            )
        )
    if a.backend_memory is not None:
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                BACKEND_MEMORY_ALARM,
                name="BackendHighMemory",
                spec=a.backend_memory,
                description=f"Backend memory above {a.backend_memory.threshold:g} % (ECS service average)",
                comparison="GreaterThanThreshold",
                treat_missing="notBreaching",
                Namespace=ECS,
                MetricName="MemoryUtilization",
                Statistic="Average",
                Dimensions=_dims(**backend),
            )
        )
    if a.backend_tasks is not None:
        period = a.backend_tasks.period
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                BACKEND_TASKS_ALARM,
                name="BackendTasksBelowDesired",
                spec=a.backend_tasks,
                description=f"Backend runs at least {a.backend_tasks.threshold:g} task(s) fewer than desired "
                "(failing health checks, no capacity, crash loop)",
                comparison="GreaterThanOrEqualToThreshold",
                # No task metrics at all means the backend service is gone.
                treat_missing="breaching",
                Metrics=[
                    _query("desired", CONTAINER_INSIGHTS, "DesiredTaskCount", "Average", period, **backend),
                    _query("running", CONTAINER_INSIGHTS, "RunningTaskCount", "Average", period, **backend),
                    cloudwatch.MetricDataQuery(
                        Id="shortfall",
                        Expression="desired - FILL(running, 0)",
                        Label="Tasks below desired",
                        ReturnData=True,
                    ),
                ],
            )
        )
    return alarms


def _database_alarms(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> list[cloudwatch.Alarm]:
    """The database's connection and free-storage alarms."""
    a = cfg.monitoring.alarms
    alarms: list[cloudwatch.Alarm] = []
    database = _dims(DBInstanceIdentifier=Ref(DB_INSTANCE))
    if a.db_connections is not None:
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                DB_CONNECTIONS_ALARM,
                name="RDSHighConnections",
                spec=a.db_connections,
                description=f"More than {a.db_connections.threshold:g} database connections",
                comparison="GreaterThanThreshold",
                treat_missing="notBreaching",
                Namespace=RDS,
                MetricName="DatabaseConnections",
                Statistic="Average",
                Dimensions=database,
            )
        )
    if a.db_free_storage is not None:
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                DB_FREE_STORAGE_ALARM,
                name="RDSLowFreeStorage",
                spec=a.db_free_storage,
                description=f"Less than {a.db_free_storage.threshold:g} GiB free database storage",
                comparison="LessThanThreshold",
                threshold=a.db_free_storage.threshold * GIB,
                # Free space does not change while the instance is not reporting: keep the state.
                treat_missing="ignore",
                Namespace=RDS,
                MetricName="FreeStorageSpace",
                Statistic="Minimum",
                Dimensions=database,
            )
        )
    return alarms


def _alb_alarms(t: Template, cfg: MonitoringSlice, topic: sns.Topic) -> list[cloudwatch.Alarm]:
    a = cfg.monitoring.alarms
    alarms: list[cloudwatch.Alarm] = []
    lb = Ref(LOAD_BALANCER)
    if a.backend_latency is not None and BACKEND in cfg.load_balanced:
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                BACKEND_LATENCY_ALARM,
                name="BackendHighLatency",
                spec=a.backend_latency,
                description=f"Backend p95 response time above {a.backend_latency.threshold:g} s",
                comparison="GreaterThanThreshold",
                treat_missing="notBreaching",  # no requests, no latency
                Namespace=ALB,
                MetricName="TargetResponseTime",
                ExtendedStatistic="p95",
                # A p95 of a handful of requests is noise: such periods are not evaluated.
                EvaluateLowSampleCountPercentile="ignore",
                Dimensions=_dims(LoadBalancer=lb, TargetGroup=Ref(_target_group_param(BACKEND))),
            )
        )
    if a.unhealthy_targets is not None:
        for service in cfg.load_balanced:
            threshold = a.unhealthy_targets.threshold
            alarms.append(
                _alarm(
                    t,
                    cfg,
                    topic,
                    UNHEALTHY_TARGETS_ALARM.format(service=pascal(service)),
                    name=f"ALBUnhealthyTargets-{service}",
                    spec=a.unhealthy_targets,
                    description=f"At least {threshold:g} unhealthy {service} target(s) behind the load balancer",
                    comparison="GreaterThanOrEqualToThreshold",
                    # No datapoints means no registered target; the task-count alarm covers the backend.
                    treat_missing="notBreaching",
                    Namespace=ALB,
                    MetricName="UnHealthyHostCount",
                    Statistic="Maximum",
                    Dimensions=_dims(LoadBalancer=lb, TargetGroup=Ref(_target_group_param(service))),
                )
            )
    if a.http_5xx is not None:
        period = a.http_5xx.period
        minimum = cfg.monitoring.http_5xx_min_requests
        rate = "100 * (FILL(elb5xx, 0) + FILL(target5xx, 0)) / requests"
        alarms.append(
            _alarm(
                t,
                cfg,
                topic,
                HTTP_5XX_ALARM,
                name="ALBHigh5xxRate",
                spec=a.http_5xx,
                description=f"More than {a.http_5xx.threshold:g} % of requests answered 5xx (load balancer or "
                f"targets), in periods with at least {minimum} requests",
                comparison="GreaterThanThreshold",
                treat_missing="notBreaching",  # no requests, no errors
                Metrics=[
                    _query("requests", ALB, "RequestCount", "Sum", period, LoadBalancer=lb),
                    _query("elb5xx", ALB, "HTTPCode_ELB_5XX_Count", "Sum", period, LoadBalancer=lb),
                    _query("target5xx", ALB, "HTTPCode_Target_5XX_Count", "Sum", period, LoadBalancer=lb),
                    cloudwatch.MetricDataQuery(
                        Id="rate",
                        Expression=f"IF(requests >= {minimum}, {rate}, 0)",
                        Label="5xx % of requests",
                        ReturnData=True,
                    ),
                ],
            )
        )
    return alarms


# --------------------------------------------------------------------------- dashboard


def _metric_widget(title: str, metrics: list[list[Any]], stat: str, period: int = 300, **extra: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "view": "timeSeries",
            "region": "${AWS::Region}",
            "stat": stat,
            "period": period,
            "metrics": metrics,
            **extra,
        },
    }


def _percent_axis() -> dict[str, Any]:
    return {"yAxis": {"left": {"min": 0, "max": 100}}}


def dashboard_body(cfg: MonitoringSlice, alarms: list[cloudwatch.Alarm]) -> dict[str, Any]:
    """The dashboard as data; ``${Name}`` placeholders are the stack's Parameters (resolved by Fn::Sub)."""
    widgets: list[tuple[int, int, dict[str, Any]]] = []  # (width, height, widget)
    if alarms:
        status = {"title": "Alarms", "alarms": [f"${{{a.title}.Arn}}" for a in alarms]}
        widgets.append((24, 3, {"type": "alarm", "properties": status}))
    if cfg.services:
        for metric, title in (("CPUUtilization", "ECS CPU % per service"), ("MemoryUtilization", "ECS memory %")):
            lines = [
                [ECS, metric, "ClusterName", "${ClusterName}", "ServiceName", f"${{{_service_param(s)}}}", {"label": s}]
                for s in cfg.services
            ]
            widgets.append((12, 6, _metric_widget(title, lines, "Average", **_percent_axis())))
    if BACKEND in cfg.services and cfg.container_insights:
        dims = ["ClusterName", "${ClusterName}", "ServiceName", f"${{{_service_param(BACKEND)}}}"]
        lines = [[CONTAINER_INSIGHTS, m, *dims, {"label": label}] for m, label in _TASK_COUNTS]
        widgets.append((12, 6, _metric_widget("Backend tasks", lines, "Average", 60)))
    if cfg.load_balanced:
        widgets += _alb_widgets(cfg)
    db = ["DBInstanceIdentifier", "${DbInstanceId}"]
    widgets.append((8, 6, _metric_widget("RDS connections", [[RDS, "DatabaseConnections", *db]], "Average")))
    widgets.append((8, 6, _metric_widget("RDS CPU %", [[RDS, "CPUUtilization", *db]], "Average", **_percent_axis())))
    widgets.append((8, 6, _metric_widget("RDS free storage (bytes)", [[RDS, "FreeStorageSpace", *db]], "Minimum")))
    if BACKEND in cfg.services:
        query = f"SOURCE '${{{_log_group_param(BACKEND)}}}' | {SLOWEST_ENDPOINTS}".replace("\n", " ")
        props = {"title": "Top 10 slowest API endpoints", "region": "${AWS::Region}", "view": "table", "query": query}
        widgets.append((24, 6, {"type": "log", "properties": props}))
    return {"widgets": _layout(widgets)}


_TASK_COUNTS = (("DesiredTaskCount", "desired"), ("RunningTaskCount", "running"), ("PendingTaskCount", "pending"))


def _alb_widgets(cfg: MonitoringSlice) -> list[tuple[int, int, dict[str, Any]]]:
    lb = ["LoadBalancer", "${LoadBalancerFullName}"]

    def tg(service: str) -> list[str]:
        return ["TargetGroup", f"${{{_target_group_param(service)}}}", *lb]

    requests = [[ALB, "RequestCount", *lb, {"label": "all"}]]
    requests += [[ALB, "RequestCount", *tg(s), {"label": s}] for s in cfg.load_balanced]
    latency = [
        [ALB, "TargetResponseTime", *tg(s), {"stat": stat, "label": f"{s} {stat}"}]
        for s in cfg.load_balanced
        for stat in ("p50", "p95")
    ]
    errors = [
        [ALB, "HTTPCode_ELB_5XX_Count", *lb, {"label": "load balancer 5xx"}],
        [ALB, "HTTPCode_Target_5XX_Count", *lb, {"label": "targets 5xx"}],
    ]
    hosts = [
        [ALB, metric, *tg(s), {"label": f"{s} {word}"}]
        for s in cfg.load_balanced
        for metric, word in (("HealthyHostCount", "healthy"), ("UnHealthyHostCount", "unhealthy"))
    ]
    return [
        (12, 6, _metric_widget("ALB requests", requests, "Sum")),
        (12, 6, _metric_widget("ALB target response time (s)", latency, "p95")),
        (12, 6, _metric_widget("ALB 5xx responses", errors, "Sum")),
        (12, 6, _metric_widget("ALB targets", hosts, "Maximum", 60)),
    ]


def _layout(widgets: list[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Place widgets left to right in rows of 24 grid units."""
    placed, x, y, row_height = [], 0, 0, 0
    for width, height, widget in widgets:
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append({**widget, "x": x, "y": y, "width": width, "height": height})
        x, row_height = x + width, max(row_height, height)
    return placed
