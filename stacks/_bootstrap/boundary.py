"""The permissions boundary every application role carries: the most any of them may do."""

from __future__ import annotations

from awacs import aws
from awacs import iam as awacs_iam
from awacs import s3 as awacs_s3
from troposphere import Sub, Template, iam

from kr_cfn.config import BootstrapSlice
from kr_cfn.iam import (
    application_role_arns,
    arn,
    boundary_name,
)
from kr_cfn.rotation import state_machine_name
from stacks._bootstrap.names import BOUNDARY_POLICY
from stacks._bootstrap.scope import deny_other_stacks
from stacks._bootstrap.secrets import read_secrets


def boundary_policy(t: Template, cfg: BootstrapSlice) -> iam.ManagedPolicy:
    """The permissions boundary: the most any application role may do.

    Pull images, write logs, read secrets, use the environment's buckets and file systems, read
    alarms (Chatbot), and what RDS Enhanced Monitoring needs. Every application role carries it (kr_cfn.iam.bounded),
    so no template can grant more.
    """
    region_account = "${AWS::Region}:${AWS::AccountId}"
    buckets = [Sub(f"arn:${{AWS::Partition}}:s3:::{name}") for name in cfg.app.bucket_names]
    objects = [Sub(f"arn:${{AWS::Partition}}:s3:::{name}/*") for name in cfg.app.bucket_names]
    statements = [
        # No resource-level permissions: it only returns a registry login token.
        aws.Statement(
            Sid="EcrLogin", Effect=aws.Allow, Action=[aws.Action("ecr", "GetAuthorizationToken")], Resource=["*"]
        ),
        aws.Statement(
            Sid="PullImages",
            Effect=aws.Allow,
            Action=[
                aws.Action("ecr", a) for a in ("BatchCheckLayerAvailability", "GetDownloadUrlForLayer", "BatchGetImage")
            ],
            # the account's repositories: envs share them (docs/runbook.md "Accounts")
            Resource=[arn("ecr", "repository/*")],
        ),
        aws.Statement(
            Sid="WriteLogs",
            Effect=aws.Allow,
            Action=[aws.Action("logs", a) for a in ("CreateLogStream", "PutLogEvents", "DescribeLogStreams")],
            # log-group:*: ECS and RDS name their log groups; the roles' own policies name each group.
            Resource=[Sub(f"arn:${{AWS::Partition}}:logs:{region_account}:log-group:*")],
        ),
        # AmazonRDSEnhancedMonitoringRole: the RDSOSMetrics log group and its streams.
        aws.Statement(
            Sid="RdsEnhancedMonitoring",
            Effect=aws.Allow,
            Action=[aws.Action("logs", a) for a in ("CreateLogGroup", "PutRetentionPolicy", "GetLogEvents")],
            Resource=[Sub(f"arn:${{AWS::Partition}}:logs:{region_account}:log-group:RDS*")],
        ),
        *read_secrets(cfg, "ReadSecrets", database=True),
        # AWS Chatbot's role reads the alarms it posts (monitoring.slack).
        aws.Statement(
            Sid="ReadAlarms",
            Effect=aws.Allow,
            Action=[aws.Action("cloudwatch", "DescribeAlarms")],
            Resource=[arn("cloudwatch", "alarm:*")],  # read-only; the Chatbot role's policy names this env's alarms
        ),
        # Grafana's CloudWatch data source (services.grafana.reads_cloudwatch_metrics) reads metrics.
        # Neither action has a resource type or condition key (Service Authorization Reference,
        # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html).
        aws.Statement(
            Sid="ReadMetrics",
            Effect=aws.Allow,
            Action=[aws.Action("cloudwatch", a) for a in ("GetMetricData", "ListMetrics")],
            Resource=["*"],
        ),
        aws.Statement(
            Sid="MountFileSystems",
            Effect=aws.Allow,
            Action=[aws.Action("elasticfilesystem", a) for a in ("ClientMount", "ClientWrite")],
            # file-system/*: ids are generated; the roles' policies name the file system and access point.
            Resource=[arn("elasticfilesystem", "file-system/*")],
        ),
    ]
    statements += _qdrant_boundary(cfg)
    statements += _day_two_boundary(cfg)
    if buckets:
        statements.append(
            aws.Statement(
                Sid="EnvironmentBuckets",
                Effect=aws.Allow,
                Action=[awacs_s3.GetObject, awacs_s3.PutObject, awacs_s3.DeleteObject, awacs_s3.AbortMultipartUpload],
                Resource=objects,
            )
        )
        statements.append(
            aws.Statement(
                Sid="ListEnvironmentBuckets", Effect=aws.Allow, Action=[awacs_s3.ListBucket], Resource=buckets
            )
        )
    # ECR: the repositories are the account's, made by one env's bootstrap stack and pulled by all.
    statements.append(deny_other_stacks(cfg, "DenyOtherStacksResources", [aws.Action("ecr", "*")]))
    return t.add_resource(
        iam.ManagedPolicy(
            BOUNDARY_POLICY,
            # A fixed name: the application stacks compute its ARN at build time (kr_cfn.iam).
            ManagedPolicyName=boundary_name(cfg.names.prefix),
            Description=f"{cfg.names.prefix}: the most any application role may do (permissions boundary)",
            PolicyDocument=aws.PolicyDocument(Version="2012-10-17", Statement=statements),
        )
    )


def _qdrant_boundary(cfg: BootstrapSlice) -> list[aws.Statement]:
    """What Qdrant's roles need, only where the templates have them (services.qdrant.storage ebs, snapshots).

    The qdrant host's ECS agent and volume attach (ECS capacity provider), Data Lifecycle Manager's
    volume snapshots, EventBridge Scheduler's run of the snapshot task; each role's own policy names
    the cluster, volume, tag and task family.
    """
    types = set(cfg.app.resource_types)
    cluster = arn("ecs", "cluster/*")
    statements = []
    if "AWS::ECS::CapacityProvider" in types:
        statements += [
            aws.Statement(
                Sid="EcsAgent",
                Effect=aws.Allow,
                Action=[
                    aws.Action("ecs", a)
                    for a in (
                        "RegisterContainerInstance",
                        "DeregisterContainerInstance",
                        "SubmitAttachmentStateChanges",
                        "SubmitContainerStateChange",
                        "SubmitTaskStateChange",
                        "Poll",
                        "StartTelemetrySession",
                        "UpdateContainerInstancesState",
                    )
                ],
                Resource=[cluster, arn("ecs", "container-instance/*")],
            ),
            # No resource-level permissions for these two.
            aws.Statement(
                Sid="EcsAgentDiscoverAndVolumes",
                Effect=aws.Allow,
                Action=[aws.Action("ecs", "DiscoverPollEndpoint"), aws.Action("ec2", "DescribeVolumes")],
                Resource=["*"],
            ),
            aws.Statement(
                Sid="AttachVolumes",
                Effect=aws.Allow,
                Action=[aws.Action("ec2", "AttachVolume")],
                Resource=[arn("ec2", "volume/*"), arn("ec2", "instance/*")],
            ),
        ]
    if "AWS::DLM::LifecyclePolicy" in types:
        snapshots = arn("ec2", "snapshot/*", account="")
        statements += [
            aws.Statement(
                Sid="VolumeSnapshots",
                Effect=aws.Allow,
                Action=[aws.Action("ec2", a) for a in ("CreateSnapshot", "CreateTags", "DeleteSnapshot")],
                Resource=[arn("ec2", "volume/*"), snapshots],
            ),
            # Describe* calls have no resource-level permissions.
            aws.Statement(
                Sid="DescribeForSnapshots",
                Effect=aws.Allow,
                Action=[aws.Action("ec2", a) for a in ("DescribeInstances", "DescribeVolumes", "DescribeSnapshots")],
                Resource=["*"],
            ),
        ]
    if "AWS::Scheduler::Schedule" in types:
        statements += [
            aws.Statement(
                Sid="ScheduledTasks",
                Effect=aws.Allow,
                Action=[aws.Action("ecs", "RunTask")],
                Resource=[arn("ecs", "task-definition/*")],
                Condition=aws.Condition(aws.ArnLike("ecs:cluster", cluster)),
            ),
            aws.Statement(
                Sid="PassTaskRoles",
                Effect=aws.Allow,
                Action=[awacs_iam.PassRole],
                Resource=[application_role_arns(cfg.names.prefix)],
                Condition=aws.Condition(aws.StringEquals("iam:PassedToService", "ecs-tasks.amazonaws.com")),
            ),
        ]
    return statements


def _day_two_boundary(cfg: BootstrapSlice) -> list[aws.Statement]:
    """Prometheus' discovery sidecar (kr_cfn.discovery); the database-secret redeploy (kr_cfn.rotation).

    DiscoverInstances only reads Cloud Map and has no resource type; the sidecar's own policy
    names the namespace. EventBridge starts the state machine, which forces new deployments of
    the cluster's services; each role's own policy names the state machine and the services.
    """
    discover = aws.Statement(
        Sid="DiscoverInstances",
        Effect=aws.Allow,
        Action=[aws.Action("servicediscovery", "DiscoverInstances")],
        Resource=["*"],
    )
    if "AWS::StepFunctions::StateMachine" not in cfg.app.resource_types:
        return [discover]
    return [
        discover,
        aws.Statement(
            Sid="RedeployServices",
            Effect=aws.Allow,
            Action=[aws.Action("ecs", "UpdateService")],
            Resource=[arn("ecs", f"service/{cfg.names('cluster')}/*")],
        ),
        aws.Statement(
            Sid="StartRedeploy",
            Effect=aws.Allow,
            Action=[aws.Action("states", "StartExecution")],
            Resource=[arn("states", f"stateMachine:{state_machine_name(cfg.names.prefix)}")],
        ),
    ]
