"""Qdrant's host (storage ebs) and its snapshot job, added to the ecs template.

- :func:`host`: an Auto Scaling group of one EC2 instance (ECS-optimised AMI) in the first app
  subnet, an ECS capacity provider on it, and the instance's role; its user data
  (``kr_cfn/scripts/qdrant_volume.sh``) attaches and mounts the data stack's EBS volume.
- :func:`snapshot_job`: a Fargate task of the stock AWS CLI image running
  ``kr_cfn/scripts/qdrant_snapshots.sh``, scheduled daily by EventBridge Scheduler; a log metric
  filter counts its successes for the monitoring stack's alarm. ``kr-cfn qdrant restore`` runs the
  same task definition with the ``restore`` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from awacs import ec2 as ec2_actions
from awacs import ecs as ecs_actions
from awacs import iam as iam_actions
from awacs import logs as logs_actions
from awacs import s3
from awacs.aws import Allow, ArnEquals, Condition, PolicyDocument, Statement, StringEquals
from troposphere import (
    AWS_ACCOUNT_ID,
    AWS_REGION,
    Base64,
    GetAtt,
    Join,
    Ref,
    Select,
    Sub,
    Tags,
    Template,
    autoscaling,
    ec2,
    ecs,
    iam,
    logs,
    scheduler,
)

from kr_cfn.blocks import add_output, checkov_skip, name_tags
from kr_cfn.config.qdrant import (
    HOST_MOUNT,
    SNAPSHOT_JOB,
    SNAPSHOT_METRIC,
    SNAPSHOT_OK,
    SNAPSHOT_PREFIX,
    QdrantPlan,
    metric_namespace,
)
from kr_cfn.config.services import EcsSlice
from kr_cfn.iam import arn, bounded, service_trust
from kr_cfn.naming import pascal
from kr_cfn.services import SECURITY_GROUP_PARAMETER, HostPlacement, ecs_tasks_trust

HOST_ROLE = "QdrantHostRole"
HOST_PROFILE = "QdrantHostInstanceProfile"
HOST_SG = "QdrantHostSecurityGroup"
HOST_TEMPLATE = "QdrantHostLaunchTemplate"
HOST_GROUP = "QdrantHostGroup"
CAPACITY_PROVIDER = "QdrantCapacityProvider"
SNAPSHOT_LOG_GROUP = "QdrantSnapshotLogGroup"
SNAPSHOT_TASK_ROLE = "QdrantSnapshotTaskRole"
SNAPSHOT_TASK = "QdrantSnapshotTaskDefinition"
SNAPSHOT_SCHEDULE = "QdrantSnapshotSchedule"
SNAPSHOT_SCHEDULER_ROLE = "QdrantSnapshotSchedulerRole"
SNAPSHOT_METRIC_FILTER = "QdrantSnapshotMetricFilter"

HOST_TAG = "kr-cfn:qdrant-host"
"""Tag on the host instance; the instance role may attach the volume only to instances with it."""
VOLUME_ATTRIBUTE = "kr-cfn.qdrant-volume"
"""ECS attribute the host sets once the volume is mounted (see the user data)."""
# AWS's public parameter of the recommended ECS-optimised Amazon Linux 2023 AMI
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/retrieve-ecs-optimized_AMI.html).
ECS_AMI = "{{resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id}}"
HTTPS_PORT = 443
SNAPSHOT_LOG_DAYS = 30
SNAPSHOT_MEMORY = 512
"""MiB; the job streams snapshots (curl | aws s3 cp -), so memory does not grow with their size."""
SNAPSHOT_CONTAINER = "snapshots"


def script(name: str) -> str:
    """The text of a shell script shipped in ``kr_cfn/scripts``."""
    return resources.files("kr_cfn.scripts").joinpath(name).read_text(encoding="utf-8")


def user_data_header(volume_id: str, cluster: str, region: str, owner: str) -> str:
    """The variable lines the template puts above ``qdrant_volume.sh`` (values as Fn::Sub text).

    ``owner``: the ``uid:gid`` the mounted volume is given to, ``services.qdrant.storage_owner``,
    the uid the qdrant task runs as (kr_cfn.config.services.check_storage_users).
    """
    return f"#!/bin/bash\nVOLUME_ID={volume_id}\nCLUSTER={cluster}\nREGION={region}\nMOUNT={HOST_MOUNT}\nOWNER={owner}"


def host(t: Template, cfg: EcsSlice, inputs: Any, cluster: ecs.Cluster, log_group: str) -> HostPlacement:
    """The EC2 host of storage ebs: one instance in the volume's AZ, as an ECS capacity provider."""
    assert cfg.qdrant is not None
    inputs.use("QdrantVolumeId")
    role = t.add_resource(
        iam.Role(
            HOST_ROLE,
            AssumeRolePolicyDocument=service_trust("ec2.amazonaws.com"),
            **bounded(cfg.names.prefix),
            Policies=[
                iam.Policy(PolicyName="qdrant-host", PolicyDocument=_host_policy(cfg, inputs, cluster, log_group))
            ],
        )
    )
    profile = t.add_resource(
        iam.InstanceProfile(HOST_PROFILE, Path=bounded(cfg.names.prefix)["Path"], Roles=[Ref(role)])
    )
    sg = t.add_resource(
        ec2.SecurityGroup(
            HOST_SG,
            GroupDescription="Qdrant host: HTTPS out to the ECS, EC2 and image registry APIs; nothing in",
            VpcId=inputs.ref("VpcId"),
            SecurityGroupEgress=[
                ec2.SecurityGroupRule(
                    IpProtocol="tcp",
                    FromPort=HTTPS_PORT,
                    ToPort=HTTPS_PORT,
                    CidrIp="0.0.0.0/0",
                    Description="HTTPS to AWS APIs and the image registry",
                )
            ],
            Tags=name_tags(cfg.names("qdrant-host")),
        )
    )
    header = Sub(user_data_header("${QdrantVolumeId}", f"${{{cluster.title}}}", "${AWS::Region}", cfg.qdrant.owner))
    template = t.add_resource(
        ec2.LaunchTemplate(
            HOST_TEMPLATE,
            LaunchTemplateData=ec2.LaunchTemplateData(
                ImageId=ECS_AMI,
                InstanceType=cfg.qdrant.ebs.instance_type,
                IamInstanceProfile=ec2.IamInstanceProfile(Arn=GetAtt(profile, "Arn")),
                SecurityGroupIds=[GetAtt(sg, "GroupId")],
                # IMDSv2 only, one hop: containers cannot reach the instance's credentials
                # (awsvpc tasks are also cut off by ECS_AWSVPC_BLOCK_IMDS in the user data).
                MetadataOptions=ec2.MetadataOptions(HttpTokens="required", HttpPutResponseHopLimit=1),
                BlockDeviceMappings=[
                    ec2.LaunchTemplateBlockDeviceMapping(
                        DeviceName="/dev/xvda",
                        Ebs=ec2.EBSBlockDevice(VolumeType="gp3", VolumeSize=30, Encrypted=True),
                    )
                ],
                UserData=Base64(Join("\n", [header, script("qdrant_volume.sh")])),
                TagSpecifications=[
                    ec2.TagSpecifications(ResourceType="volume", Tags=name_tags(cfg.names("qdrant-host")))
                ],
            ),
        )
    )
    group = t.add_resource(
        autoscaling.AutoScalingGroup(
            HOST_GROUP,
            MinSize="1",
            MaxSize="1",
            DesiredCapacity="1",
            # The first app subnet: the data stack puts the volume in that subnet's AZ.
            VPCZoneIdentifier=[Select(0, inputs.ref("AppSubnetIds"))],
            LaunchTemplate=autoscaling.LaunchTemplateSpecification(
                LaunchTemplateId=Ref(template), Version=GetAtt(template, "LatestVersionNumber")
            ),
            HealthCheckType="EC2",
            Tags=[
                autoscaling.Tag("Name", cfg.names("qdrant-host"), True),
                autoscaling.Tag(HOST_TAG, cfg.names.prefix, True),
            ],
        )
    )
    provider = t.add_resource(
        ecs.CapacityProvider(
            CAPACITY_PROVIDER,
            AutoScalingGroupProvider=ecs.AutoScalingGroupProvider(
                AutoScalingGroupArn=Ref(group),
                # One instance, sized in params: ECS does not scale it or protect it from scale-in.
                ManagedScaling=ecs.ManagedScaling(Status="DISABLED"),
                ManagedTerminationProtection="DISABLED",
            ),
        )
    )
    placement = ecs.PlacementConstraint(Type="memberOf", Expression=f"attribute:{VOLUME_ATTRIBUTE} == mounted")
    return HostPlacement(provider, placement)


def _host_policy(cfg: EcsSlice, inputs: Any, cluster: ecs.Cluster, log_group: str) -> PolicyDocument:
    """The ECS agent's calls (AmazonEC2ContainerServiceforEC2Role's, scoped to this cluster) and the volume attach.

    https://docs.aws.amazon.com/AmazonECS/latest/developerguide/instance_IAM_role.html
    """
    cluster_arn = GetAtt(cluster, "Arn")
    # ${Cluster}: the cluster resource's name (its Ref); ${QdrantVolumeId}: the data stack's volume.
    instances = arn("ecs", f"container-instance/${{{cluster.title}}}/*")
    volume = arn("ec2", "volume/${QdrantVolumeId}")
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Effect=Allow,
                Action=[
                    ecs_actions.RegisterContainerInstance,
                    ecs_actions.DeregisterContainerInstance,
                    ecs_actions.SubmitAttachmentStateChanges,
                    ecs_actions.SubmitContainerStateChange,
                    ecs_actions.SubmitTaskStateChange,
                ],
                Resource=[cluster_arn],
            ),
            Statement(
                Effect=Allow,
                Action=[ecs_actions.Poll, ecs_actions.StartTelemetrySession, ecs_actions.UpdateContainerInstancesState],
                Resource=[instances],
            ),
            # DiscoverPollEndpoint and DescribeVolumes have no resource-level permissions: "*".
            Statement(
                Effect=Allow,
                Action=[ecs_actions.DiscoverPollEndpoint, ec2_actions.DescribeVolumes],
                Resource=["*"],
            ),
            # AttachVolume is authorised on the volume and on the instance: this volume, to an
            # instance carrying this environment's host tag.
            Statement(Effect=Allow, Action=[ec2_actions.AttachVolume], Resource=[volume]),
            Statement(
                Effect=Allow,
                Action=[ec2_actions.AttachVolume],
                Resource=[arn("ec2", "instance/*")],
                Condition=Condition(StringEquals(f"aws:ResourceTag/{HOST_TAG}", cfg.names.prefix)),
            ),
            # The awslogs driver of a task on EC2 may write with the instance's credentials.
            Statement(
                Effect=Allow,
                Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
                Resource=[GetAtt(log_group, "Arn")],
            ),
        ],
    )


@dataclass(frozen=True)
class SnapshotJob:
    """The snapshot job's resources the ecs stack wires further."""

    task: ecs.TaskDefinition
    log_group: logs.LogGroup
    subnets: Any
    security_groups: list[Any]
    assign_public_ip: Any


def snapshot_outputs(t: Template, job: SnapshotJob) -> None:
    """What ``kr-cfn qdrant restore`` needs to run the job as the schedule does."""
    add_output(t, "QdrantSnapshotTaskDefinitionArn", Ref(job.task), "Qdrant snapshot/restore task (kr-cfn qdrant)")
    add_output(t, "QdrantSnapshotLogGroupName", Ref(job.log_group), "Log group of the Qdrant snapshot task")
    add_output(t, "QdrantSnapshotSubnets", Join(",", job.subnets), "Subnets of the Qdrant snapshot task")
    add_output(
        t, "QdrantSnapshotSecurityGroups", Join(",", job.security_groups), "Security groups of the Qdrant snapshot task"
    )
    add_output(t, "QdrantSnapshotAssignPublicIp", job.assign_public_ip, "Public IP choice of the Qdrant snapshot task")


def snapshot_job(
    t: Template, cfg: EcsSlice, inputs: Any, cluster: ecs.Cluster, execution_role: str, qdrant_url: str
) -> SnapshotJob:
    """The daily snapshot task, its schedule and the metric filter that counts successes."""
    plan: QdrantPlan | None = cfg.qdrant
    assert plan is not None
    log_group = _snapshot_logs(t, cfg)
    objects = Sub(inputs.sub("BackupsBucketArn") + f"/{SNAPSHOT_PREFIX}/*")
    task_role = t.add_resource(
        iam.Role(
            SNAPSHOT_TASK_ROLE,
            AssumeRolePolicyDocument=ecs_tasks_trust(),
            **bounded(cfg.names.prefix),
            Policies=[
                iam.Policy(
                    PolicyName="qdrant-snapshots",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[
                            # Upload (multipart for large snapshots) and, for restore, download;
                            # only under the qdrant/ prefix of the backups bucket.
                            Statement(
                                Effect=Allow,
                                Action=[s3.PutObject, s3.AbortMultipartUpload, s3.GetObject],
                                Resource=[objects],
                            )
                        ],
                    ),
                )
            ],
        )
    )
    container = _snapshot_container(plan, inputs, log_group, qdrant_url)
    task = t.add_resource(
        ecs.TaskDefinition(
            SNAPSHOT_TASK,
            Family=cfg.names("qdrant-snapshots"),
            Cpu="256",
            Memory=str(SNAPSHOT_MEMORY),
            NetworkMode="awsvpc",
            RequiresCompatibilities=["FARGATE"],
            RuntimePlatform=ecs.RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
            ExecutionRoleArn=GetAtt(execution_role, "Arn"),
            TaskRoleArn=GetAtt(task_role, "Arn"),
            ContainerDefinitions=[container],
            Volumes=[ecs.Volume(Name="scratch-tmp")],
            Tags=Tags(Service="qdrant-snapshots"),
        )
    )
    job = SnapshotJob(
        task,
        log_group,
        subnets=inputs.ref("AppSubnetIds"),
        security_groups=[inputs.ref(SECURITY_GROUP_PARAMETER.format(pascal(SNAPSHOT_JOB)))],
        assign_public_ip=inputs.ref("TaskAssignPublicIp"),
    )
    _schedule(t, cfg, job, cluster, (execution_role, SNAPSHOT_TASK_ROLE))
    return job


def _snapshot_logs(t: Template, cfg: EcsSlice) -> logs.LogGroup:
    """The snapshot task's log group and the metric filter that counts its successes."""
    log_group = t.add_resource(
        logs.LogGroup(
            SNAPSHOT_LOG_GROUP,
            LogGroupName=cfg.names.path("ecs", "qdrant-snapshots"),
            RetentionInDays=SNAPSHOT_LOG_DAYS,
            # As the services' log groups (ecs.retain_logs).
            DeletionPolicy="Retain" if cfg.retain_logs else "Delete",
            UpdateReplacePolicy="Retain" if cfg.retain_logs else "Delete",
            Metadata=checkov_skip(
                ("CKV_AWS_158", "Encrypted at rest with CloudWatch Logs' own keys; the logs hold no secrets."),
            ),
        )
    )
    t.add_resource(
        logs.MetricFilter(
            SNAPSHOT_METRIC_FILTER,
            LogGroupName=Ref(log_group),
            FilterPattern=f'"{SNAPSHOT_OK}"',
            MetricTransformations=[
                logs.MetricTransformation(
                    MetricNamespace=metric_namespace(cfg.names.prefix),
                    MetricName=SNAPSHOT_METRIC,
                    MetricValue="1",
                    Unit="Count",
                )
            ],
        )
    )
    return log_group


def _snapshot_container(
    plan: QdrantPlan, inputs: Any, log_group: logs.LogGroup, qdrant_url: str
) -> ecs.ContainerDefinition:
    """The snapshot container: the script in the task definition, run by bash in the AWS CLI image."""
    return ecs.ContainerDefinition(
        Name=SNAPSHOT_CONTAINER,
        Image=plan.snapshots.image,
        Essential=True,
        Memory=SNAPSHOT_MEMORY,  # the whole task's memory, as the container's hard limit
        # The script travels in the task definition; bash runs it with the command's arguments.
        EntryPoint=["/bin/bash", "-c", 'exec /bin/bash -c "$KR_QDRANT_SCRIPT" kr-qdrant "$@"', "kr-qdrant"],
        Command=["snapshot"],
        Environment=[
            ecs.Environment(Name=k, Value=v)
            for k, v in (
                ("BUCKET", inputs.ref("BackupsBucketName")),
                ("HOME", "/tmp"),  # noqa: S108 - the task's own scratch volume
                ("KR_QDRANT_SCRIPT", "#!/bin/bash\n" + script("qdrant_snapshots.sh")),
                ("PREFIX", SNAPSHOT_PREFIX),
                ("QDRANT_URL", qdrant_url),
            )
        ],
        # The AWS CLI image sets no USER and runs as root (https://github.com/aws/aws-cli/blob/v2/docker/Dockerfile);
        # stated in params (services.qdrant.snapshots.user) so an image change cannot silently change it.
        User=plan.snapshots.user,
        ReadonlyRootFilesystem=True,
        # bash, curl and the AWS CLI need no Linux capability (root owns its task-local /tmp).
        LinuxParameters=ecs.LinuxParameters(Capabilities=ecs.KernelCapabilities(Drop=["ALL"])),
        MountPoints=[ecs.MountPoint(SourceVolume="scratch-tmp", ContainerPath="/tmp", ReadOnly=False)],  # noqa: S108
        LogConfiguration=ecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(log_group),
                "awslogs-region": Ref(AWS_REGION),
                "awslogs-stream-prefix": "ecs",
            },
        ),
    )


def _schedule(t: Template, cfg: EcsSlice, job: SnapshotJob, cluster: ecs.Cluster, roles: tuple[str, str]) -> None:
    """EventBridge Scheduler runs the task daily at the params' UTC time.

    Role as in https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html
    (execution role) and https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html (ECS).
    """
    assert cfg.qdrant is not None
    family = arn("ecs", f"task-definition/{cfg.names('qdrant-snapshots')}:*")
    role = t.add_resource(
        iam.Role(
            SNAPSHOT_SCHEDULER_ROLE,
            AssumeRolePolicyDocument=service_trust(
                "scheduler.amazonaws.com", StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID))
            ),
            **bounded(cfg.names.prefix),
            Policies=[
                iam.Policy(
                    PolicyName="run-qdrant-snapshots",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[
                            Statement(
                                Effect=Allow,
                                Action=[ecs_actions.RunTask],
                                Resource=[family],
                                Condition=Condition(ArnEquals("ecs:cluster", GetAtt(cluster, "Arn"))),
                            ),
                            Statement(
                                Effect=Allow,
                                Action=[iam_actions.PassRole],
                                Resource=[GetAtt(r, "Arn") for r in roles],
                                Condition=Condition(StringEquals("iam:PassedToService", "ecs-tasks.amazonaws.com")),
                            ),
                        ],
                    ),
                )
            ],
        )
    )
    hour, minute = cfg.qdrant.snapshots.time.split(":")
    t.add_resource(
        scheduler.Schedule(
            SNAPSHOT_SCHEDULE,
            Name=cfg.names("qdrant-snapshots"),
            Description="Daily snapshot of every Qdrant collection to the backups bucket",
            ScheduleExpression=f"cron({int(minute)} {int(hour)} * * ? *)",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow=scheduler.FlexibleTimeWindow(Mode="OFF"),
            State="ENABLED",
            Target=scheduler.Target(
                Arn=GetAtt(cluster, "Arn"),
                RoleArn=GetAtt(role, "Arn"),
                RetryPolicy=scheduler.RetryPolicy(MaximumRetryAttempts=2, MaximumEventAgeInSeconds=3600),
                EcsParameters=scheduler.EcsParameters(
                    TaskDefinitionArn=Ref(job.task),
                    TaskCount=1,
                    LaunchType="FARGATE",
                    PlatformVersion="LATEST",
                    NetworkConfiguration=scheduler.NetworkConfiguration(
                        AwsvpcConfiguration=scheduler.AwsVpcConfiguration(
                            Subnets=job.subnets,
                            SecurityGroups=job.security_groups,
                            AssignPublicIp=job.assign_public_ip,
                        )
                    ),
                ),
            ),
        )
    )
