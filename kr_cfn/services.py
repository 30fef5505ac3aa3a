"""The service builder: one ``ServiceSpec`` -> the resources of one ECS service.

Task definition, service, log group, Cloud Map record and autoscaling, added to the ecs
template. Each service runs in its own security group, whose rules the network stack
renders from the same params (kr_cfn.config.flows).

Everything a service needs from other stacks arrives as a Parameter named like the
producing Output; :class:`Inputs` adds each Parameter the first time a spec uses it, so a
template declares exactly the Parameters its services reference.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from awacs import cloudwatch, ecr, elasticfilesystem, s3, secretsmanager
from awacs import logs as logs_actions
from awacs.aws import Allow, ArnLike, Condition, PolicyDocument, Statement, StringEquals
from troposphere import (
    AWS_ACCOUNT_ID,
    AWS_REGION,
    GetAtt,
    Join,
    Parameter,
    Ref,
    Sub,
    Tags,
    Template,
    ecs,
    iam,
    logs,
)
from troposphere import (
    applicationautoscaling as aas,
)
from troposphere import (
    servicediscovery as sd,
)

from kr_cfn import dashboards
from kr_cfn.blocks import checkov_skip
from kr_cfn.config.qdrant import HOST_MOUNT
from kr_cfn.config.services import BACKUPS_BUCKET, PLACEHOLDER, EcsSlice, ServiceSpec, backups_prefix
from kr_cfn.iam import arn, bounded, service_trust
from kr_cfn.naming import pascal

_PARAMETER_TYPES = {
    "AppSubnetIds": "List<AWS::EC2::Subnet::Id>",
    "VpcId": "AWS::EC2::VPC::Id",
}
SECURITY_GROUP_PARAMETER = "{}ServiceSecurityGroupId"
"""The network stack's output with a service's own security group (``BackendServiceSecurityGroupId``)."""


@dataclass
class Inputs:
    """The ecs template's Parameters, added on first use."""

    t: Template
    used: dict[str, Parameter] = field(default_factory=dict)

    def ref(self, name: str) -> Ref:
        """``Ref`` to the Parameter ``name`` (an Output of another stack, or an image tag)."""
        return Ref(self.use(name))

    def sub(self, name: str) -> str:
        """``${name}`` for use inside ``Fn::Sub``, declaring the Parameter."""
        return "${" + self.use(name).title + "}"

    def use(self, name: str) -> Parameter:
        """The Parameter ``name``, added on first use."""
        if name not in self.used:
            kwargs: dict[str, Any] = {}
            if name == "TaskAssignPublicIp":
                kwargs["AllowedValues"] = ["ENABLED", "DISABLED"]
            if name.endswith("ImageTag"):
                kwargs["AllowedPattern"] = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
            self.used[name] = self.t.add_parameter(
                Parameter(
                    name,
                    Type=_PARAMETER_TYPES.get(
                        name, "AWS::EC2::SecurityGroup::Id" if name.endswith("SecurityGroupId") else "String"
                    ),
                    Description=f"{name} (wired by the root stack)",
                    **kwargs,
                )
            )
        return self.used[name]


@dataclass(frozen=True)
class Rendered:
    """What the stack needs back from one rendered service."""

    service: ecs.Service
    log_group: logs.LogGroup
    secret_parameters: tuple[str, ...]
    ecr_repository: str | None


def resolve(text: str, cfg: EcsSlice, inputs: Inputs) -> Any:
    """A string with ``{{host:x}}``, ``{{port:x}}``, ``{{tls:x}}``, ``{{output:X}}`` placeholders as a value.

    Service addresses become literal text; outputs (and services the data stack provides)
    become Parameters, so such a value is a ``Ref`` or an ``Fn::Sub``.
    """

    def plain(m: re.Match[str]) -> str:
        kind, ref = m.groups()
        if kind == "tls":  # services the data stack provides (ElastiCache) require TLS
            return "true" if ref in cfg.external else "false"
        if kind == "output" or ref in cfg.external:
            return m.group(0)
        return (
            f"{cfg.services[ref].discovery_name}.{cfg.ecs.namespace}" if kind == "host" else str(cfg.services[ref].port)
        )

    text = PLACEHOLDER.sub(plain, text)
    if not PLACEHOLDER.search(text):
        return text

    def name(kind: str, ref: str) -> str:
        return ref if kind == "output" else cfg.external[ref][1 if kind == "port" else 0]

    pieces = PLACEHOLDER.split(text)  # literal, kind, ref, literal, ...
    if len(pieces) == 4 and pieces[0] == pieces[3] == "":
        return inputs.ref(name(pieces[1], pieces[2]))
    return Sub(PLACEHOLDER.sub(lambda m: inputs.sub(name(*m.groups())), text.replace("${", "${!")))


def ecs_tasks_trust() -> PolicyDocument:
    """Trust policy for roles assumed by ECS tasks of this account only (confused-deputy guard)."""
    return service_trust(
        "ecs-tasks.amazonaws.com",
        StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID)),
        ArnLike("aws:SourceArn", arn("ecs", "*")),
    )


def _volume_name(path: str) -> str:
    return "scratch" + re.sub(r"[^A-Za-z0-9]+", "-", path).rstrip("-")


@dataclass(frozen=True)
class HostPlacement:
    """An EC2 capacity provider a service runs on instead of Fargate (qdrant with storage ebs).

    Its ``volumes`` become the host path the instance mounts its EBS volume at.
    """

    capacity_provider: Any
    placement: ecs.PlacementConstraint


def _data_volume_name(access_point: str, host: HostPlacement | None) -> str:
    return f"{'host' if host else 'efs'}-{access_point.lower()}"


def dashboard_values(cfg: EcsSlice, inputs: Inputs, cluster: ecs.Cluster) -> dict[str, Any]:
    """What ``{{dash:<value>}}`` stands for in this environment (kr_cfn.dashboards.VALUES).

    Other stacks' resources arrive as Parameters (the alb and data stacks' Outputs); service names
    are the ServiceName each service gets (its params key, set by :func:`render_service`).
    Only called for the values a dashboard uses, so no Parameter is declared without a use.
    """
    routed = [n for n, s in cfg.services.items() if s.load_balancer is not None]
    makers: dict[str, Any] = {
        "cluster": lambda: Ref(cluster),
        "services": lambda: ",".join(cfg.services),
        "load_balancer": lambda: inputs.ref("LoadBalancerFullName"),
        "target_groups": lambda: Join(",", [inputs.ref(f"{pascal(n)}TargetGroupFullName") for n in routed]),
        "db_instance": lambda: inputs.ref("DbInstanceId"),
    }
    wanted = {v for spec in cfg.services.values() for d in spec.dashboards for v in dashboards.placeholders(d)}
    return {v: makers[v]() for v in dashboards.VALUES if v in wanted}


def _dashboard_steps(spec: ServiceSpec, values: dict[str, Any], environment: dict[str, Any]) -> list[str]:
    """Shell steps that write the spec's dashboards, their placeholders replaced (adds their variables).

    Each dashboard is gzip + base64 in KR_DASHBOARD_<n> (a task definition has 64 KiB in all,
    kr_cfn.dashboards.TASK_DEFINITION_LIMIT); each value in KR_DASH_<VALUE>. Values are AWS names
    (letters, digits, - _ / and commas), so they are safe in a sed replacement with | as delimiter.
    """
    steps = [f"mkdir -p {dashboards.DASHBOARDS_PATH}"]
    for i, dashboard in enumerate(spec.dashboards, start=1):
        environment[f"KR_DASHBOARD_{i}"] = dashboards.encoded(dashboard)
        edits = ""
        for value in dashboards.placeholders(dashboard):
            environment[f"KR_DASH_{value.upper()}"] = values[value]
            edits += f' -e "s|{{{{dash:{value}}}}}|$KR_DASH_{value.upper()}|g"'
        steps.append(
            f"printf '%s' \"$KR_DASHBOARD_{i}\" | base64 -d | gunzip | {f'sed{edits}' if edits else 'cat'}"
            f" > {dashboards.DASHBOARDS_PATH}/{dashboard}.json"
        )
    return steps


def _container(
    name: str,
    spec: ServiceSpec,
    cfg: EcsSlice,
    inputs: Inputs,
    log_group: logs.LogGroup,
    values: dict[str, Any] | None = None,
    host: HostPlacement | None = None,
) -> Any:
    if spec.ecr_repository:
        tag = inputs.sub(f"{pascal(name)}ImageTag")
        image: Any = Sub(
            f"${{AWS::AccountId}}.dkr.ecr.${{AWS::Region}}.${{AWS::URLSuffix}}/{spec.ecr_repository}:{tag}"
        )
    else:
        # A digest pins the bytes; the tag stays in the reference as documentation (with both,
        # the digest decides: https://docs.docker.com/engine/reference/commandline/pull/#pull-an-image-by-digest-immutable-identifier).
        image = f"{spec.image}@{spec.image_digest}" if spec.image_digest else spec.image
    environment = {k: resolve(v, cfg, inputs) for k, v in spec.environment.items()}
    entry_point = list(spec.entry_point) if spec.entry_point else None
    files = dict(spec.files)
    if spec.dashboards:
        files[dashboards.PROVIDER_PATH] = dashboards.provider_yaml()
    if files:
        # Config files without custom images: each file's content travels in an environment
        # variable of the task definition (KR_FILE_1, ...); the entry point becomes a shell
        # that writes them with printf (no expansion of the content) and then execs the
        # service's own command, which ECS appends as the shell's arguments ("$@").
        steps = []
        for i, (path, content) in enumerate(sorted(files.items()), start=1):
            environment[f"KR_FILE_{i}"] = resolve(content, cfg, inputs)
            steps.append(f"mkdir -p {posixpath.dirname(path)} && printf '%s' \"$KR_FILE_{i}\" > {path}")
        if spec.dashboards:
            steps += _dashboard_steps(spec, values or {}, environment)
        entry_point = ["/bin/sh", "-c", " && ".join([*steps, 'exec "$@"']), "sh"]
    secrets = []
    for var, s in sorted(spec.secrets.items()):
        value = inputs.ref(s.secret)
        # ECS selects a JSON key with <secret-arn>:<json-key>:<version-stage>:<version-id>.
        secrets.append(ecs.Secret(Name=var, ValueFrom=Join(":", [value, s.key, "", ""]) if s.key else value))
    mounts = [ecs.MountPoint(SourceVolume=_volume_name(p), ContainerPath=p, ReadOnly=False) for p in spec.scratch_paths]
    mounts += [
        ecs.MountPoint(SourceVolume=_data_volume_name(v.access_point, host), ContainerPath=v.path, ReadOnly=False)
        for v in spec.volumes
    ]
    props: dict[str, Any] = {
        "Name": name,
        "Image": image,
        "Essential": True,
        "PortMappings": [ecs.PortMapping(ContainerPort=spec.port, Protocol="tcp", Name=name)],
        "Environment": [ecs.Environment(Name=k, Value=v) for k, v in sorted(environment.items())],
        "Secrets": secrets,
        "LogConfiguration": ecs.LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(log_group),
                "awslogs-region": Ref(AWS_REGION),
                "awslogs-stream-prefix": "ecs",
            },
        ),
        "ReadonlyRootFilesystem": spec.read_only_root,
        "MountPoints": mounts,
    }
    if spec.health_check:
        hc = spec.health_check
        props["HealthCheck"] = ecs.HealthCheck(
            Command=["CMD-SHELL", hc.command],
            Interval=hc.interval,
            Timeout=hc.timeout,
            Retries=hc.retries,
            StartPeriod=hc.start_period,
        )
    if entry_point:
        props["EntryPoint"] = entry_point
    if spec.command:
        props["Command"] = list(spec.command)
    if spec.user:
        props["User"] = spec.user
    if spec.drop_capabilities:
        # Fargate can only add SYS_PTRACE, so a capability dropped here cannot come back:
        # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_KernelCapabilities.html
        props["LinuxParameters"] = ecs.LinuxParameters(
            Capabilities=ecs.KernelCapabilities(Drop=list(spec.drop_capabilities))
        )
    return ecs.ContainerDefinition(**{k: v for k, v in props.items() if v != []})


def _task_role(
    t: Template, name: str, spec: ServiceSpec, inputs: Inputs, prefix: str, on_host: bool = False
) -> iam.Role:
    statements = []
    for bucket, access in sorted(spec.buckets.items()):
        bucket_arn = inputs.ref(bucket)
        # The backups bucket is shared by its writers: each service only under its own prefix
        # ('<service>/'), so none reaches another's backups or the Qdrant snapshots (qdrant/).
        objects = Sub(inputs.sub(bucket) + (f"/{backups_prefix(name)}*" if bucket == BACKUPS_BUCKET else "/*"))
        actions = {
            "read": [s3.GetObject],
            "write": [s3.PutObject, s3.AbortMultipartUpload],
            "read_write": [s3.GetObject, s3.PutObject, s3.DeleteObject, s3.AbortMultipartUpload],
        }[access]
        statements.append(Statement(Effect=Allow, Action=actions, Resource=[objects]))
        statements.append(Statement(Effect=Allow, Action=[s3.ListBucket], Resource=[bucket_arn]))
    if spec.reads_cloudwatch_metrics:
        statements.append(
            Statement(
                Effect=Allow,
                # GetMetricData answers the dashboards' queries; ListMetrics fills the query editor's
                # namespace, metric and dimension choices. Neither action has a resource type or
                # condition key to narrow it (Service Authorization Reference, Amazon CloudWatch:
                # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html),
                # so "*"; both only read metrics, and no write, alarm or dashboard action is granted.
                Action=[cloudwatch.GetMetricData, cloudwatch.ListMetrics],
                Resource=["*"],
            )
        )
    for v in () if on_host else spec.volumes:
        statements.append(
            Statement(
                Effect=Allow,
                Action=[elasticfilesystem.ClientMount, elasticfilesystem.ClientWrite],
                Resource=[inputs.ref("FileSystemArn")],
                Condition=Condition(
                    StringEquals("elasticfilesystem:AccessPointArn", inputs.ref(f"{v.access_point}AccessPointArn"))
                ),
            )
        )
    props: dict[str, Any] = {"AssumeRolePolicyDocument": ecs_tasks_trust(), **bounded(prefix)}
    if statements:
        props["Policies"] = [
            iam.Policy(
                PolicyName=f"{name}-task",
                PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=statements),
            )
        ]
    return t.add_resource(iam.Role(f"{pascal(name)}TaskRole", **props))


def render_service(
    t: Template,
    cfg: EcsSlice,
    inputs: Inputs,
    name: str,
    cluster: ecs.Cluster,
    namespace: sd.PrivateDnsNamespace,
    execution_role: str,
    depends_on: list[str],
    host: HostPlacement | None = None,
) -> Rendered:
    """Add one service's resources to ``t``; the execution role is shared and built afterwards."""
    spec = cfg.services[name]
    p = pascal(name)
    log_group = _log_group(t, cfg, name, spec)
    task_role = _task_role(t, name, spec, inputs, cfg.names.prefix, on_host=host is not None)
    volumes = _volumes(spec, inputs, host)
    task_props: dict[str, Any] = {}
    if volumes:
        task_props["Volumes"] = volumes
    task = t.add_resource(
        ecs.TaskDefinition(
            f"{p}TaskDefinition",
            Family=cfg.names(name),
            Cpu=str(spec.cpu),
            Memory=str(spec.memory),
            NetworkMode="awsvpc",
            RequiresCompatibilities=["EC2" if host else "FARGATE"],
            RuntimePlatform=ecs.RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
            ExecutionRoleArn=GetAtt(execution_role, "Arn"),
            TaskRoleArn=GetAtt(task_role, "Arn"),
            ContainerDefinitions=[
                _container(
                    name,
                    spec,
                    cfg,
                    inputs,
                    log_group,
                    dashboard_values(cfg, inputs, cluster) if spec.dashboards else None,
                    host,
                )
            ],
            Tags=Tags(Service=name),
            **task_props,
        )
    )
    service_props, capacity, public_ip = _placement(t, name, spec, inputs, namespace, host)
    service_props.update(_desired_count(spec))
    service = t.add_resource(
        ecs.Service(
            f"{p}Service",
            DependsOn=depends_on,
            Cluster=Ref(cluster),
            ServiceName=name,
            TaskDefinition=Ref(task),
            CapacityProviderStrategy=capacity,
            NetworkConfiguration=ecs.NetworkConfiguration(
                AwsvpcConfiguration=ecs.AwsvpcConfiguration(
                    AssignPublicIp=public_ip,
                    Subnets=inputs.ref("AppSubnetIds"),
                    # The service's own group: the network stack opens only its flows.
                    SecurityGroups=[inputs.ref(SECURITY_GROUP_PARAMETER.format(p))],
                )
            ),
            DeploymentConfiguration=ecs.DeploymentConfiguration(
                DeploymentCircuitBreaker=ecs.DeploymentCircuitBreaker(Enable=True, Rollback=True),
                MinimumHealthyPercent=spec.min_healthy_percent,
                MaximumPercent=spec.max_percent,
            ),
            EnableECSManagedTags=True,
            PropagateTags="SERVICE",
            EnableExecuteCommand=False,
            Tags=Tags(Service=name),
            **service_props,
        )
    )
    if spec.autoscaling:
        _autoscaling(t, name, spec, cluster, service, inputs)
    return Rendered(
        service=service,
        log_group=log_group,
        secret_parameters=tuple(sorted({s.secret for s in spec.secrets.values()})),
        ecr_repository=spec.ecr_repository,
    )


def _log_group(t: Template, cfg: EcsSlice, name: str, spec: ServiceSpec) -> logs.LogGroup:
    """The service's log group."""
    p = pascal(name)
    # Retain (ecs.retain_logs, default on with termination protection): the app's logs outlive a
    # replaced log group or a deleted stack, like the data stack's database logs.
    keep = "Retain" if cfg.retain_logs else "Delete"
    log_group = t.add_resource(
        logs.LogGroup(
            f"{p}LogGroup",
            LogGroupName=cfg.names.path("ecs", name),
            RetentionInDays=spec.log_retention_days,
            DeletionPolicy=keep,
            UpdateReplacePolicy=keep,
            Metadata=checkov_skip(
                ("CKV_AWS_158", "Encrypted at rest with CloudWatch Logs' own keys; the logs hold no secrets."),
            ),
        )
    )
    return log_group


def _volumes(spec: ServiceSpec, inputs: Inputs, host: HostPlacement | None) -> list[ecs.Volume]:
    """The task's volumes: scratch paths, then the data volumes (the host's disk on EC2, else EFS)."""
    volumes = [ecs.Volume(Name=_volume_name(path)) for path in spec.scratch_paths]
    if host:
        volumes += [
            ecs.Volume(Name=_data_volume_name(v.access_point, host), Host=ecs.Host(SourcePath=HOST_MOUNT))
            for v in spec.volumes
        ]
    volumes += [
        ecs.Volume(
            Name=f"efs-{v.access_point.lower()}",
            EFSVolumeConfiguration=ecs.EFSVolumeConfiguration(
                FilesystemId=inputs.ref("FileSystemId"),
                TransitEncryption="ENABLED",
                AuthorizationConfig=ecs.AuthorizationConfig(
                    AccessPointId=inputs.ref(f"{v.access_point}AccessPointId"), IAM="ENABLED"
                ),
            ),
        )
        for v in (() if host else spec.volumes)
    ]
    return volumes


def _placement(
    t: Template,
    name: str,
    spec: ServiceSpec,
    inputs: Inputs,
    namespace: sd.PrivateDnsNamespace,
    host: HostPlacement | None,
) -> tuple[dict[str, Any], list[ecs.CapacityProviderStrategyItem], Any]:
    """Where the service runs and how it is found: its properties, capacity strategy and public-IP setting."""
    p = pascal(name)
    service_props: dict[str, Any] = {"PlatformVersion": "LATEST"}
    capacity = [
        ecs.CapacityProviderStrategyItem(CapacityProvider=c.provider, Base=c.base, Weight=c.weight)
        for c in spec.capacity
    ]
    public_ip: Any = inputs.ref("TaskAssignPublicIp")
    if host:
        # On EC2, awsvpc tasks get no public IP (AssignPublicIp is Fargate-only:
        # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_AwsVpcConfiguration.html)
        # and no platform version.
        service_props = {"PlacementConstraints": [host.placement]}
        capacity = [ecs.CapacityProviderStrategyItem(CapacityProvider=Ref(host.capacity_provider), Weight=1)]
        public_ip = "DISABLED"
    if spec.discovery_name:
        discovery = t.add_resource(
            sd.Service(
                f"{p}Discovery",
                Name=spec.discovery_name,
                Description=f"{name} tasks",
                DnsConfig=sd.DnsConfig(
                    NamespaceId=GetAtt(namespace, "Id"),
                    DnsRecords=[sd.DnsRecord(Type="A", TTL=10)],
                    RoutingPolicy="MULTIVALUE",
                ),
                HealthCheckCustomConfig=sd.HealthCheckCustomConfig(FailureThreshold=1),
            )
        )
        service_props["ServiceRegistries"] = [ecs.ServiceRegistry(RegistryArn=GetAtt(discovery, "Arn"))]
    if spec.load_balancer:
        service_props["LoadBalancers"] = [
            ecs.LoadBalancer(
                ContainerName=name, ContainerPort=spec.port, TargetGroupArn=inputs.ref(f"{p}TargetGroupArn")
            )
        ]
        service_props["HealthCheckGracePeriodSeconds"] = spec.load_balancer.health_check_grace
    return service_props, capacity, public_ip


def _desired_count(spec: ServiceSpec) -> dict[str, Any]:
    """``DesiredCount`` for a fixed-size service; none where Application Auto Scaling owns the count.

    AWS::ECS::Service DesiredCount: "For new services, if a desired count is not specified, a
    default value of 1 is used. [...] For existing services, if a desired count is not specified,
    it is omitted from the operation."
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ecs-service.html
    So a deploy (new task definition, any other change) keeps the running count instead of resetting
    it to a fixed number (why AWS CDK dropped its default: https://github.com/aws/aws-cdk/pull/13130,
    https://github.com/aws/containers-roadmap/issues/493). A new service starts with 1 task and the
    ScalableTarget, registered right after it, raises it to min_count: RegisterScalableTarget "changes
    the resource's current capacity to a value that is inside of this range".
    https://docs.aws.amazon.com/autoscaling/application/APIReference/API_RegisterScalableTarget.html
    """
    return {} if spec.autoscaling else {"DesiredCount": spec.desired_count}


def _autoscaling(
    t: Template, name: str, spec: ServiceSpec, cluster: ecs.Cluster, service: ecs.Service, inputs: Inputs
) -> None:
    assert spec.autoscaling is not None
    a = spec.autoscaling
    p = pascal(name)
    schedules = [
        aas.ScheduledAction(
            ScheduledActionName=f"{name}-{s.name}",
            Schedule=f"cron({s.cron})",
            Timezone="UTC",
            ScalableTargetAction=aas.ScalableTargetAction(MinCapacity=s.min_count, MaxCapacity=s.max_count),
        )
        for s in a.schedules
    ]
    target = t.add_resource(
        aas.ScalableTarget(
            f"{p}ScalableTarget",
            ServiceNamespace="ecs",
            ScalableDimension="ecs:service:DesiredCount",
            ResourceId=Join("/", ["service", Ref(cluster), GetAtt(service, "Name")]),
            MinCapacity=spec.min_count,
            MaxCapacity=spec.max_count,
            **({"ScheduledActions": schedules} if schedules else {}),
        )
    )
    policies: list[tuple[str, str, float, Any]] = []
    if a.cpu_target is not None:
        policies.append(("Cpu", "ECSServiceAverageCPUUtilization", a.cpu_target, None))
    if a.memory_target is not None:
        policies.append(("Memory", "ECSServiceAverageMemoryUtilization", a.memory_target, None))
    if a.requests_per_target is not None:
        label = Join("/", [inputs.ref("LoadBalancerFullName"), inputs.ref(f"{p}TargetGroupFullName")])
        policies.append(("Requests", "ALBRequestCountPerTarget", a.requests_per_target, label))
    for suffix, metric, value, label in policies:
        t.add_resource(
            aas.ScalingPolicy(
                f"{p}{suffix}Scaling",
                PolicyName=f"{name}-{suffix.lower()}",
                PolicyType="TargetTrackingScaling",
                ScalingTargetId=Ref(target),
                TargetTrackingScalingPolicyConfiguration=aas.TargetTrackingScalingPolicyConfiguration(
                    PredefinedMetricSpecification=aas.PredefinedMetricSpecification(
                        PredefinedMetricType=metric, **({"ResourceLabel": label} if label is not None else {})
                    ),
                    TargetValue=value,
                    ScaleInCooldown=a.scale_in_cooldown,
                    ScaleOutCooldown=a.scale_out_cooldown,
                ),
            )
        )


def execution_role_policy(
    rendered: list[Rendered], inputs: Inputs, extra_log_groups: list[logs.LogGroup] | None = None
) -> PolicyDocument:
    """Pull only our ECR repositories, write only our log groups, read only the named secrets."""
    statements = [
        # GetAuthorizationToken has no resource-level permissions; it only yields a registry login.
        Statement(Effect=Allow, Action=[ecr.GetAuthorizationToken], Resource=["*"]),
        Statement(
            Effect=Allow,
            Action=[logs_actions.CreateLogStream, logs_actions.PutLogEvents],
            Resource=[GetAtt(g, "Arn") for g in [*(r.log_group for r in rendered), *(extra_log_groups or [])]],
        ),
    ]
    repos = sorted({r.ecr_repository for r in rendered if r.ecr_repository})
    if repos:
        statements.append(
            Statement(
                Effect=Allow,
                Action=[ecr.BatchCheckLayerAvailability, ecr.GetDownloadUrlForLayer, ecr.BatchGetImage],
                Resource=[arn("ecr", f"repository/{repo}") for repo in repos],
            )
        )
    secrets = sorted({s for r in rendered for s in r.secret_parameters})
    if secrets:
        statements.append(
            Statement(
                Effect=Allow,
                Action=[secretsmanager.GetSecretValue],
                Resource=[inputs.ref(s) for s in secrets],
            )
        )
    return PolicyDocument(Version="2012-10-17", Statement=statements)
