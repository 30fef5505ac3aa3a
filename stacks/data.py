"""Data stack: PostgreSQL (RDS), the Qdrant file system (EFS), S3 buckets, secrets, optional ElastiCache.

Every stateful resource carries explicit DeletionPolicy/UpdateReplacePolicy: Snapshot for
the database and the cache, Retain for the rest, unless ``data.delete_with_stack`` says
otherwise. No password or secret value is ever part of the template: RDS generates and
rotates the master password in Secrets Manager, the other secrets are generated
placeholders that an operator overwrites (see docs/runbook.md "Secrets").
"""

from __future__ import annotations

import json
from typing import Any

from awacs import ec2 as ec2_actions
from awacs import elasticfilesystem
from awacs import s3 as s3_actions
from awacs.aws import (
    Allow,
    ArnLike,
    Bool,
    Condition,
    Deny,
    Null,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import (
    AWS_ACCOUNT_ID,
    AWS_REGION,
    GetAtt,
    GetAZs,
    Ref,
    Select,
    Sub,
    Tags,
    Template,
    dlm,
    ec2,
    efs,
    elasticache,
    encode_to_dict,
    iam,
    logs,
    rds,
    s3,
    secretsmanager,
)

from kr_cfn.blocks import add_output, add_parameter, checkov_skip, name_tags, new_template
from kr_cfn.config import DataSlice
from kr_cfn.config.alb import ELB_LOG_SERVICE
from kr_cfn.config.data import DB_MAJOR_VERSION
from kr_cfn.config.qdrant import QDRANT_SECRET_KEYS, SNAPSHOT_PREFIX, STORAGE_OWNER
from kr_cfn.iam import application_role_arns, arn, bounded, deny_insecure_transport, managed_policy, service_trust
from kr_cfn.naming import pascal

APP_SUBNETS = "AppSubnetIds"
DATABASE_SG = "DatabaseSecurityGroupId"
FILE_SYSTEM_SG = "FileSystemSecurityGroupId"
CACHE_SG = "CacheSecurityGroupId"

DATABASE = "Database"
DB_SUBNET_GROUP = "DatabaseSubnetGroup"
DB_PARAMETER_GROUP = "DatabaseParameterGroup"
DB_MONITORING_ROLE = "DatabaseMonitoringRole"
FILE_SYSTEM = "QdrantFileSystem"
ACCESS_POINT = "QdrantAccessPoint"
DATA_BUCKET = "DataBucket"
BACKUPS_BUCKET = "BackupsBucket"
ACCESS_LOGS_BUCKET = "AccessLogsBucket"
CACHE = "RedisReplicationGroup"
CACHE_SUBNET_GROUP = "RedisSubnetGroup"
OPENAI_SECRET = "OpenAiSecret"  # noqa: S105 - a logical id
CONFLUENCE_SECRET = "ConfluenceSecret"  # noqa: S105 - a logical id
JIRA_SECRET = "JiraSecret"  # noqa: S105 - a logical id
GRAFANA_SECRET = "GrafanaAdminSecret"  # noqa: S105 - a logical id
QDRANT_VOLUME = "QdrantVolume"
QDRANT_VOLUME_SNAPSHOTS = "QdrantVolumeSnapshotPolicy"
QDRANT_VOLUME_SNAPSHOTS_ROLE = "QdrantVolumeSnapshotRole"
QDRANT_SECRET = "QdrantSecret"  # noqa: S105 - a logical id
# Tag that marks the volume for its snapshot policy and its snapshots for their deletion.
QDRANT_VOLUME_TAG = "kr-cfn:qdrant-volume"

POSTGRES_FAMILY = f"postgres{DB_MAJOR_VERSION}"
DB_LOG_EXPORTS = ("postgresql", "upgrade")
QDRANT_PATH = "/qdrant/storage"
# S3 server access logs of the data and backups buckets: kept 90 days for audits.
ACCESS_LOG_DAYS = 90
# Enhanced monitoring: OS metrics every 60 s (the default 0 turns it off).
MONITORING_INTERVAL = 60
# Characters that break URLs, JSON or shell quoting when a generated value is used.
_EXCLUDE = "\"'@/\\`$ "
_SECRET_SKIPS = checkov_skip(
    ("CKV_AWS_149", "AWS managed key aws/secretsmanager: the task roles need no KMS grants to read it."),
)


def build(cfg: DataSlice) -> Template:
    """Build the data template."""
    t = new_template(f"{cfg.names.prefix}: data (PostgreSQL, Qdrant file system, buckets, secrets, cache)")
    add_parameter(t, APP_SUBNETS, "List<AWS::EC2::Subnet::Id>", "Subnets for the database, file system and cache")
    add_parameter(t, DATABASE_SG, "AWS::EC2::SecurityGroup::Id", "Security group of the database")
    _database(t, cfg)
    if cfg.file_system:
        add_parameter(
            t, FILE_SYSTEM_SG, "AWS::EC2::SecurityGroup::Id", "Security group of the file system mount targets"
        )
        _file_system(t, cfg)
    _buckets(t, cfg)
    _secrets(t, cfg)
    if cfg.qdrant and cfg.qdrant.storage == "ebs":
        _qdrant_volume(t, cfg)
    if cfg.qdrant and cfg.qdrant.storage == "external":
        _qdrant_secret(t, cfg)
    if cfg.data.redis == "elasticache":
        _cache(t, cfg)
    return t


def _policies(cfg: DataSlice, keep: str) -> dict[str, str]:
    """DeletionPolicy and UpdateReplacePolicy: ``keep`` (Snapshot/Retain) unless the env relaxes them."""
    policy = "Delete" if cfg.data.delete_with_stack else keep
    return {"DeletionPolicy": policy, "UpdateReplacePolicy": policy}


def _database(t: Template, cfg: DataSlice) -> None:
    d = cfg.data
    subnet_group = t.add_resource(
        rds.DBSubnetGroup(
            DB_SUBNET_GROUP,
            DBSubnetGroupDescription=f"{cfg.names.prefix} PostgreSQL subnets",
            SubnetIds=Ref(APP_SUBNETS),
            Tags=name_tags(cfg.names("postgres")),
        )
    )
    params = t.add_resource(
        rds.DBParameterGroup(
            DB_PARAMETER_GROUP,
            Description=f"{cfg.names.prefix} PostgreSQL 15: TLS required",
            Family=POSTGRES_FAMILY,
            Parameters={"rds.force_ssl": "1"},
            Tags=name_tags(cfg.names("postgres")),
        )
    )
    monitoring_role = t.add_resource(
        iam.Role(
            DB_MONITORING_ROLE,
            AssumeRolePolicyDocument=service_trust("monitoring.rds.amazonaws.com"),
            **bounded(cfg.names.prefix),
            ManagedPolicyArns=[managed_policy("service-role/AmazonRDSEnhancedMonitoringRole")],
        )
    )
    # Created here (RDS would create them without expiry) so the logs expire and stay with the stack.
    log_groups = [
        t.add_resource(
            logs.LogGroup(
                f"DatabaseLogGroup{pascal(kind)}",
                LogGroupName=f"/aws/rds/instance/{cfg.names('postgres')}/{kind}",
                RetentionInDays=d.db_log_retention_days,
                Metadata=checkov_skip(
                    ("CKV_AWS_158", "AWS-managed encryption of CloudWatch Logs; no KMS key to administer."),
                ),
                **_policies(cfg, "Retain"),
            )
        )
        for kind in DB_LOG_EXPORTS
    ]
    db = t.add_resource(
        rds.DBInstance(
            DATABASE,
            DBInstanceIdentifier=cfg.names("postgres"),
            Engine="postgres",
            # The major version only: RDS creates its default minor, AutoMinorVersionUpgrade keeps it
            # current (kr_cfn.config.data.DB_MAJOR_VERSION). On an update CloudFormation passes the value to
            # ModifyDBInstance, where "if you specify only a major version, Amazon RDS updates the DB
            # instance to the default minor version if the current minor version is lower"
            # (https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html):
            # never a downgrade, at most the upgrade the maintenance window would bring.
            EngineVersion=d.db_engine_version,
            DBInstanceClass=d.db_instance_class,
            AllocatedStorage=str(d.db_storage_gb),
            StorageType="gp3",
            StorageEncrypted=True,
            MultiAZ=d.multi_az,
            BackupRetentionPeriod=d.backup_retention_days,
            AutoMinorVersionUpgrade=True,
            DeletionProtection=d.deletion_protection,
            PubliclyAccessible=False,
            DBSubnetGroupName=Ref(subnet_group),
            VPCSecurityGroups=[Ref(DATABASE_SG)],
            DBParameterGroupName=Ref(params),
            EnableCloudwatchLogsExports=list(DB_LOG_EXPORTS),
            EnableIAMDatabaseAuthentication=True,
            MonitoringInterval=MONITORING_INTERVAL,
            MonitoringRoleArn=GetAtt(monitoring_role, "Arn"),
            CopyTagsToSnapshot=True,
            DBName=d.db_name,
            MasterUsername=d.db_master_username,
            # RDS generates the password and keeps it in a Secrets Manager secret it owns.
            ManageMasterUserPassword=True,
            Tags=name_tags(cfg.names("postgres")),
            DependsOn=log_groups,
            **_db_metadata(cfg),
            **_policies(cfg, "Snapshot"),
        )
    )
    # RDS rotates its secret itself (managed rotation, every 7 days by default). CloudFormation has
    # no documented way to set that interval: AWS::SecretsManager::RotationSchedule configures a
    # Lambda rotation and sends RDS master credentials to AWS::RDS::DBInstance MasterUserSecret,
    # which has no interval. The interval is set once per environment in Secrets Manager (docs/runbook.md
    # "Secrets", its database password rotation), https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_managed.html
    secret_arn = GetAtt(db, "MasterUserSecret.SecretArn")
    add_output(t, "DbEndpointAddress", GetAtt(db, "Endpoint.Address"), "PostgreSQL host name")
    add_output(t, "DbEndpointPort", GetAtt(db, "Endpoint.Port"), "PostgreSQL port")
    add_output(t, "DbName", d.db_name, "Name of the application database")
    add_output(t, "DbSecretArn", secret_arn, "Secret with the master credentials (JSON keys username, password)")
    add_output(t, "DbInstanceId", Ref(db), "RDS instance identifier")


def _db_metadata(cfg: DataSlice) -> dict[str, Any]:
    # cfn-lint's W3691 list of deprecated versions is every version it knows minus those
    # DescribeDBEngineVersions lists as available (https://github.com/aws-cloudformation/cfn-lint/pull/4302);
    # that API never lists a bare major, so "15" shows as deprecated although RDS documents it for new
    # instances (kr_cfn.config.data.DB_MAJOR_VERSION; cfn-lint's own E3691 accepts majors since
    # https://github.com/aws-cloudformation/cfn-lint/pull/3850). The config refuses minor pins, the only
    # values W3691 could rightly flag.
    metadata: dict[str, Any] = {
        "cfn-lint": {"config": {"ignore_checks": ["W3691"]}},
        "kr_cfn": {"W3691": f"EngineVersion is the major version {DB_MAJOR_VERSION}; RDS picks its default minor."},
    }
    if not cfg.data.multi_az:
        why = "Single-AZ by choice in this environment's params (data.multi_az: false)."
        metadata.update(checkov_skip(("CKV_AWS_157", why)))
    return {"Metadata": metadata}


def _file_system(t: Template, cfg: DataSlice) -> None:
    fs = t.add_resource(
        efs.FileSystem(
            FILE_SYSTEM,
            Encrypted=True,
            PerformanceMode="generalPurpose",
            ThroughputMode="bursting",
            BackupPolicy=efs.BackupPolicy(Status="ENABLED"),
            FileSystemPolicy=encode_to_dict(_file_system_policy()),
            FileSystemTags=name_tags(cfg.names("qdrant-data")),
            **_policies(cfg, "Retain"),
        )
    )
    for i in range(cfg.az_count):
        t.add_resource(
            efs.MountTarget(
                f"QdrantMountTarget{i + 1}",
                FileSystemId=Ref(fs),
                SubnetId=Select(i, Ref(APP_SUBNETS)),
                SecurityGroups=[Ref(FILE_SYSTEM_SG)],
            )
        )
    # Qdrant's files belong to services.qdrant.storage_owner, the uid the qdrant container runs as
    # (kr_cfn.config.services.check_storage_users); the access point enforces it for every access.
    uid, gid = (cfg.qdrant.owner if cfg.qdrant else STORAGE_OWNER).split(":")
    ap = t.add_resource(
        efs.AccessPoint(
            ACCESS_POINT,
            FileSystemId=Ref(fs),
            PosixUser=efs.PosixUser(Uid=uid, Gid=gid),
            RootDirectory=efs.RootDirectory(
                Path=QDRANT_PATH,
                CreationInfo=efs.CreationInfo(OwnerUid=uid, OwnerGid=gid, Permissions="0750"),
            ),
            AccessPointTags=name_tags(cfg.names("qdrant")),
        )
    )
    add_output(t, "FileSystemId", Ref(fs), "EFS file system of Qdrant")
    add_output(t, "FileSystemArn", GetAtt(fs, "Arn"), "ARN of the EFS file system of Qdrant")
    add_output(t, "QdrantAccessPointId", Ref(ap), f"EFS access point for {QDRANT_PATH}")
    add_output(t, "QdrantAccessPointArn", GetAtt(ap, "Arn"), f"ARN of the EFS access point for {QDRANT_PATH}")


def _file_system_policy() -> PolicyDocument:
    """NFS clients only over TLS, only through an access point, never as root; no anonymous client.

    EFS evaluates a file system policy together with the client's identity policy, and an
    Allow in either suffices (https://docs.aws.amazon.com/efs/latest/ug/iam-access-control-nfs-efs.html).
    So this policy holds only Denies, which beat any Allow, and no Allow: an anonymous (non-IAM)
    client, which only the default policy would admit, gets nothing. EFS enforces only four
    condition keys for NFS clients -- aws:SecureTransport, aws:SourceIp,
    elasticfilesystem:AccessPointArn, elasticfilesystem:AccessedViaMountTarget -- "no other
    condition keys are enforced" (same page, "EFS condition keys for clients"), so the caller
    cannot be named in a condition (aws:PrincipalArn), and a Deny with NotPrincipal would have to
    name the ECS task's session ARN, which is unknown. Who may mount is therefore decided by the
    identity side: only the task role of a service with ``volumes`` is granted
    ClientMount/ClientWrite, on this file system through its own access point
    (kr_cfn.services._task_role; tests/test_security_groups.py checks no other role is).
    Management calls (AWS Backup, describe) are not NFS client actions and stay unaffected.
    """
    client = [elasticfilesystem.ClientMount, elasticfilesystem.ClientWrite, elasticfilesystem.ClientRootAccess]
    # The policy belongs to one file system; its own ARN would be a self-reference, so (as in
    # https://docs.aws.amazon.com/efs/latest/ug/access-points-iam-policy.html) every file system
    # of the account and region stands in for it.
    resource = [arn("elasticfilesystem", "file-system/*")]
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Sid="DenyInsecureTransport",
                Effect=Deny,
                Principal=Principal("*"),
                Action=client,
                Resource=resource,
                Condition=Condition(Bool("aws:SecureTransport", False)),
            ),
            Statement(
                # The key is absent when a client mounts without an access point; the only access
                # point (Qdrant's) fixes the directory and the uid/gid.
                Sid="DenyWithoutAccessPoint",
                Effect=Deny,
                Principal=Principal("*"),
                Action=client,
                Resource=resource,
                Condition=Condition(Null("elasticfilesystem:AccessPointArn", True)),
            ),
            Statement(
                # The access point maps every client to uid/gid 1000: nobody needs root.
                Sid="DenyRootAccess",
                Effect=Deny,
                Principal=Principal("*"),
                Action=[elasticfilesystem.ClientRootAccess],
                Resource=resource,
            ),
        ],
    )


def _buckets(t: Template, cfg: DataSlice) -> None:
    d = cfg.data
    log_bucket = _bucket(
        t,
        cfg,
        ACCESS_LOGS_BUCKET,
        "s3-logs",
        s3.LifecycleRule(
            Id="retention",
            Status="Enabled",
            ExpirationInDays=ACCESS_LOG_DAYS,
            NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=1),
        ),
        None,
        Statement(
            Sid="AllowS3ServerAccessLogs",
            Effect=Allow,
            Principal=Principal("Service", "logging.s3.amazonaws.com"),
            Action=[s3_actions.PutObject],
            Resource=[Sub(f"${{{ACCESS_LOGS_BUCKET}.Arn}}/*")],
            Condition=Condition(StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID))),
        ),
        *_alb_log_delivery(cfg),
    )
    add_output(t, "AccessLogsBucketName", Ref(log_bucket), "Bucket for access logs (S3 server access logs, ALB)")
    data = _bucket(
        t,
        cfg,
        DATA_BUCKET,
        "data",
        s3.LifecycleRule(
            Id="tiering",
            Status="Enabled",
            Transitions=[
                s3.LifecycleRuleTransition(StorageClass="STANDARD_IA", TransitionInDays=d.data_ia_days),
                s3.LifecycleRuleTransition(StorageClass="GLACIER_IR", TransitionInDays=d.data_glacier_days),
            ],
            ExpirationInDays=d.data_expire_days,
            NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=d.data_expire_days),
            AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
        ),
        log_bucket,
    )
    backups = _bucket(
        t,
        cfg,
        BACKUPS_BUCKET,
        "backups",
        s3.LifecycleRule(
            Id="retention",
            Status="Enabled",
            ExpirationInDays=d.backups_expire_days,
            NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(NoncurrentDays=d.backups_expire_days),
            AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=1),
        ),
        log_bucket,
        *_keep_backups(cfg),
    )
    for bucket, output, description in (
        (data, "DataBucket", "user uploads and RAG documents"),
        (backups, "BackupsBucket", "database dumps and vector backups"),
    ):
        add_output(t, f"{output}Name", Ref(bucket), f"Bucket for {description}")
        add_output(t, f"{output}Arn", GetAtt(bucket, "Arn"), f"ARN of the bucket for {description}")


def _keep_backups(cfg: DataSlice) -> list[Statement]:
    """No application role removes a backup version, nor a Qdrant snapshot at all.

    The bucket is versioned: an overwrite or a delete keeps the object's earlier version, which
    only s3:DeleteObjectVersion removes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html,
    .../DeletingObjectVersions.html). So the application roles (every role under the env's IAM path,
    aws:PrincipalArn being the role's ARN for its sessions,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn)
    are denied that action, and under qdrant/ also s3:DeleteObject: a snapshot overwritten by
    mistake stays as a noncurrent version until the lifecycle rule expires it like any other.
    Object Lock (governance) would also hold, and CloudFormation can turn it on for an existing
    bucket (ObjectLockEnabled is no create-only property of AWS::S3::Bucket's schema; S3 "Enable
    Object Lock on an existing bucket", https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html),
    but it cannot be turned off again, its default retention covers the whole bucket (the
    backend's dumps too), not one prefix, and every locked PUT must carry a checksum; the Deny is
    reversible, exact and needs nothing from the writers.
    """
    roles = Condition(ArnLike("aws:PrincipalArn", application_role_arns(cfg.names.prefix)))
    return [
        Statement(
            Sid="DenyRemovingBackupVersions",
            Effect=Deny,
            Principal=Principal("*"),  # a Deny: the application roles (the condition), whatever their policies say
            Action=[s3_actions.DeleteObjectVersion],
            Resource=[Sub(f"${{{BACKUPS_BUCKET}.Arn}}/*")],
            Condition=roles,
        ),
        Statement(
            Sid="DenyRemovingQdrantSnapshots",
            Effect=Deny,
            Principal=Principal("*"),  # a Deny: the application roles (the condition), whatever their policies say
            Action=[s3_actions.DeleteObject],
            Resource=[Sub(f"${{{BACKUPS_BUCKET}.Arn}}/{SNAPSHOT_PREFIX}/*")],
            Condition=roles,
        ),
    ]


def _alb_log_delivery(cfg: DataSlice) -> list[Statement]:
    """Let Elastic Load Balancing write this account's ALB access logs under the ALB's prefix.

    The log delivery service principal, which AWS recommends in every region ("Enable access logs
    for your Application Load Balancer", step 2: kr_cfn.config.alb.ELB_ACCESS_LOGS_DOC); the
    region's ELB account is the legacy policy, and needed a table that refused unknown regions.
    """
    if cfg.alb_log_prefix is None:
        return []
    return [
        Statement(
            Sid="AllowAlbAccessLogs",
            Effect=Allow,
            Principal=Principal("Service", ELB_LOG_SERVICE),
            Action=[s3_actions.PutObject],
            Resource=[Sub(f"${{{ACCESS_LOGS_BUCKET}.Arn}}/{cfg.alb_log_prefix}/AWSLogs/${{{AWS_ACCOUNT_ID}}}/*")],
        )
    ]


def _bucket(
    t: Template,
    cfg: DataSlice,
    logical_id: str,
    part: str,
    rule: s3.LifecycleRule,
    log_bucket: s3.Bucket | None,
    *extra: Statement,
) -> s3.Bucket:
    """A versioned, encrypted, private bucket that only accepts TLS requests."""
    bucket = t.add_resource(
        s3.Bucket(
            logical_id,
            # Account and region make the name unique across accounts; the prefix across environments.
            BucketName=Sub(f"{cfg.names(part)}-${{{AWS_ACCOUNT_ID}}}-${{{AWS_REGION}}}"),
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            BucketEncryption=s3.BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    s3.ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="AES256")
                    )
                ]
            ),
            PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
                BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
            ),
            OwnershipControls=s3.OwnershipControls(
                Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
            ),
            LifecycleConfiguration=s3.LifecycleConfiguration(Rules=[rule]),
            **(
                {
                    "LoggingConfiguration": s3.LoggingConfiguration(
                        DestinationBucketName=Ref(log_bucket), LogFilePrefix=f"{part}/"
                    ),
                    # S3 delivers access logs only once the log bucket's policy admits them.
                    "DependsOn": [f"{log_bucket.title}Policy"],
                }
                if log_bucket
                else {
                    "Metadata": checkov_skip(
                        ("CKV_AWS_18", "This is the access-log bucket; logging it into itself would loop.")
                    )
                }
            ),
            Tags=name_tags(cfg.names(part)),
            **_policies(cfg, "Retain"),
        )
    )
    t.add_resource(
        s3.BucketPolicy(
            f"{logical_id}Policy",
            Bucket=Ref(bucket),
            PolicyDocument=PolicyDocument(
                Version="2012-10-17",
                Statement=[
                    deny_insecure_transport(logical_id),
                    *extra,
                ],
            ),
        )
    )
    return bucket


def _secret_string(**template: str) -> str:
    return json.dumps(template, separators=(",", ":"))


def _secrets(t: Template, cfg: DataSlice) -> None:
    placeholder = "Generated placeholder; the operator sets the real value (README, Secrets)."
    for logical_id, output, name, description, generate in (
        (
            OPENAI_SECRET,
            "OpenAiSecretArn",
            "openai-api-key",
            "OpenAI API key (plain string)",
            secretsmanager.GenerateSecretString(PasswordLength=32, ExcludeCharacters=_EXCLUDE),
        ),
        (
            CONFLUENCE_SECRET,
            "ConfluenceSecretArn",
            "confluence-credentials",
            "Confluence credentials (JSON keys base_url, email, api_token)",
            secretsmanager.GenerateSecretString(
                SecretStringTemplate=_secret_string(base_url="https://example.atlassian.net/wiki", email="unset"),
                GenerateStringKey="api_token",
                PasswordLength=32,
                ExcludeCharacters=_EXCLUDE,
            ),
        ),
        (
            JIRA_SECRET,
            "JiraSecretArn",
            "jira-credentials",
            "Jira credentials (JSON keys base_url, email, api_token)",
            secretsmanager.GenerateSecretString(
                SecretStringTemplate=_secret_string(base_url="https://example.atlassian.net", email="unset"),
                GenerateStringKey="api_token",
                PasswordLength=32,
                ExcludeCharacters=_EXCLUDE,
            ),
        ),
        (
            GRAFANA_SECRET,
            "GrafanaAdminSecretArn",
            "grafana-admin",
            "Grafana admin login (JSON keys username, password), generated",
            secretsmanager.GenerateSecretString(
                SecretStringTemplate=_secret_string(username="admin"),
                GenerateStringKey="password",
                PasswordLength=32,
                ExcludeCharacters=_EXCLUDE,
            ),
        ),
    ):
        external = logical_id != GRAFANA_SECRET
        secret = t.add_resource(
            secretsmanager.Secret(
                logical_id,
                Name=f"/{cfg.names.prefix}/{name}",
                Description=f"{description}. {placeholder}" if external else description,
                GenerateSecretString=generate,
                Tags=name_tags(cfg.names(name)),
                Metadata=_SECRET_SKIPS,
                **_policies(cfg, "Retain"),
            )
        )
        add_output(t, output, Ref(secret), description)


def _cache(t: Template, cfg: DataSlice) -> None:
    add_parameter(t, CACHE_SG, "AWS::EC2::SecurityGroup::Id", "Security group of the cache")
    subnet_group = t.add_resource(
        elasticache.SubnetGroup(
            CACHE_SUBNET_GROUP,
            Description=f"{cfg.names.prefix} Redis subnets",
            SubnetIds=Ref(APP_SUBNETS),
        )
    )
    cache = t.add_resource(
        elasticache.ReplicationGroup(
            CACHE,
            ReplicationGroupId=cfg.names("redis"),
            ReplicationGroupDescription=f"{cfg.names.prefix} Redis (cache and sessions)",
            Engine="redis",
            EngineVersion=cfg.data.redis_engine_version,
            CacheNodeType=cfg.data.redis_node_type,
            NumCacheClusters=1,
            AutomaticFailoverEnabled=False,
            AtRestEncryptionEnabled=True,
            TransitEncryptionEnabled=True,
            AutoMinorVersionUpgrade=True,
            SnapshotRetentionLimit=cfg.data.backup_retention_days,
            CacheSubnetGroupName=Ref(subnet_group),
            SecurityGroupIds=[Ref(CACHE_SG)],
            Tags=name_tags(cfg.names("redis")),
            Metadata=checkov_skip(
                (
                    "CKV_AWS_31",
                    "No AUTH token: only the ECS tasks' security group reaches the cache, over TLS.",
                ),
            ),
            **_policies(cfg, "Snapshot"),
        )
    )
    add_output(t, "RedisEndpointAddress", GetAtt(cache, "PrimaryEndPoint.Address"), "Redis host name (TLS)")
    add_output(t, "RedisEndpointPort", GetAtt(cache, "PrimaryEndPoint.Port"), "Redis port")


def _qdrant_volume(t: Template, cfg: DataSlice) -> None:
    """Qdrant's block storage (storage ebs): a gp3 volume that the qdrant host attaches at boot, snapshotted daily."""
    assert cfg.qdrant is not None
    ebs = cfg.qdrant.ebs
    # CloudFormation updates SnapshotId in place ("Update requires: No interruption",
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-ec2-ebs-volume.html),
    # which makes no new volume: a restore from an EBS snapshot is a new volume resource, so its
    # logical id carries the snapshot id on purpose (the old volume goes, with a final snapshot).
    logical_id = QDRANT_VOLUME + (pascal(ebs.snapshot_id) if ebs.snapshot_id else "")
    volume = t.add_resource(
        ec2.Volume(
            logical_id,
            # The AZ of the first app subnet (the network stack puts subnet i in GetAZs' i-th AZ),
            # where the ecs stack's qdrant host runs: a volume attaches only within its AZ.
            AvailabilityZone=Select(0, GetAZs(Ref(AWS_REGION))),
            Size=ebs.volume_gb,
            **({"SnapshotId": ebs.snapshot_id} if ebs.snapshot_id else {}),
            VolumeType="gp3",
            Encrypted=True,
            Tags=Tags(Name=cfg.names("qdrant-data"), **{QDRANT_VOLUME_TAG: cfg.names.prefix}),
            # Snapshot on delete and on replacement: CloudFormation takes a final EBS snapshot
            # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html).
            **_policies(cfg, "Snapshot"),
        )
    )
    role = t.add_resource(
        iam.Role(
            QDRANT_VOLUME_SNAPSHOTS_ROLE,
            AssumeRolePolicyDocument=service_trust(
                "dlm.amazonaws.com", StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID))
            ),
            **bounded(cfg.names.prefix),
            Policies=[
                iam.Policy(
                    PolicyName="qdrant-volume-snapshots", PolicyDocument=_snapshot_role_policy(cfg, volume.title)
                )
            ],
        )
    )
    hour, minute = cfg.qdrant.snapshots.time.split(":")
    t.add_resource(
        dlm.LifecyclePolicy(
            QDRANT_VOLUME_SNAPSHOTS,
            Description=f"{cfg.names.prefix} daily snapshots of the Qdrant volume",
            State="ENABLED",
            ExecutionRoleArn=GetAtt(role, "Arn"),
            PolicyDetails=dlm.PolicyDetails(
                PolicyType="EBS_SNAPSHOT_MANAGEMENT",
                ResourceTypes=["VOLUME"],
                TargetTags=Tags(**{QDRANT_VOLUME_TAG: cfg.names.prefix}),
                Schedules=[
                    dlm.Schedule(
                        Name="daily",
                        CreateRule=dlm.CreateRule(Interval=24, IntervalUnit="HOURS", Times=[f"{hour}:{minute}"]),
                        RetainRule=dlm.RetainRule(Count=ebs.snapshot_retention_days),
                        CopyTags=True,
                    )
                ],
            ),
            Tags=name_tags(cfg.names("qdrant-data")),
        )
    )
    add_output(t, "QdrantVolumeId", Ref(volume), "EBS volume of Qdrant (attached by the qdrant host at boot)")


def _snapshot_role_policy(cfg: DataSlice, volume: str) -> PolicyDocument:
    """What Data Lifecycle Manager needs for EBS snapshot policies, no more.

    The actions of AWS's AWSDataLifecycleManagerServiceRole that volume snapshots use
    (https://docs.aws.amazon.com/ebs/latest/userguide/service-role.html), scoped to this
    environment's volume and to snapshots carrying its tag.
    """
    snapshots = arn("ec2", "snapshot/*", account="")
    tagged = Condition(StringEquals(f"ec2:ResourceTag/{QDRANT_VOLUME_TAG}", cfg.names.prefix))
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Effect=Allow,
                Action=[ec2_actions.CreateSnapshot],
                Resource=[arn("ec2", f"volume/${{{volume}}}")],
            ),
            # A new snapshot's id is not known in advance: snapshot/* of this region (EC2 snapshot ARNs
            # name no account). Deleting is held to snapshots with this environment's tag (below).
            Statement(Effect=Allow, Action=[ec2_actions.CreateSnapshot, ec2_actions.CreateTags], Resource=[snapshots]),
            Statement(Effect=Allow, Action=[ec2_actions.DeleteSnapshot], Resource=[snapshots], Condition=tagged),
            # Describe* calls have no resource-level permissions in EC2, so Resource "*".
            Statement(
                Effect=Allow,
                Action=[ec2_actions.DescribeInstances, ec2_actions.DescribeVolumes, ec2_actions.DescribeSnapshots],
                Resource=["*"],
            ),
        ],
    )


def _qdrant_secret(t: Template, cfg: DataSlice) -> None:
    """The external Qdrant's URL and API key (storage external); the operator sets both (docs/runbook.md "Secrets")."""
    url, api_key = QDRANT_SECRET_KEYS
    secret = t.add_resource(
        secretsmanager.Secret(
            QDRANT_SECRET,
            Name=f"/{cfg.names.prefix}/qdrant",
            Description=f"Qdrant URL and API key (JSON keys {url}, {api_key}). Generated placeholder; "
            "the operator sets the real value (README, Secrets).",
            GenerateSecretString=secretsmanager.GenerateSecretString(
                SecretStringTemplate=_secret_string(**{url: "https://unset.invalid:6333"}),
                GenerateStringKey=api_key,
                PasswordLength=32,
                ExcludeCharacters=_EXCLUDE,
            ),
            Tags=name_tags(cfg.names("qdrant")),
            Metadata=_SECRET_SKIPS,
            **_policies(cfg, "Retain"),
        )
    )
    add_output(t, "QdrantSecretArn", Ref(secret), f"External Qdrant (JSON keys {url}, {api_key})")
