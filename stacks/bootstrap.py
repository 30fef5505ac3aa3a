"""Bootstrap stack (once per account, region and environment; not a child of the root).

The artifacts bucket for packaged templates, the ECR repositories, the GitHub OIDC
provider (optional), the CloudFormation service role the application stacks run under,
and two GitHub roles whose trust names the exact repository: a plan role for pull
requests (read, change sets, uploads) and a deploy role for the deploy branch and the
environment (executes change sets). The GitHub roles may pass only the service role.
"""

from __future__ import annotations

import json

from awacs import aws, sts
from awacs import cloudformation as cfn
from awacs import ecs as ecs_actions
from awacs import iam as awacs_iam
from awacs import s3 as awacs_s3
from troposphere import GetAtt, Ref, Sub, Tags, Template, ecr, iam, s3

from kr_cfn.blocks import add_output, checkov_skip, new_template
from kr_cfn.config import BootstrapSlice
from kr_cfn.iam import arn, deny_insecure_transport, service_trust
from kr_cfn.naming import pascal

ARTIFACTS_BUCKET = "ArtifactsBucket"
ARTIFACTS_BUCKET_POLICY = "ArtifactsBucketPolicy"
OIDC_PROVIDER = "GitHubOidcProvider"
SERVICE_ROLE = "CloudFormationServiceRole"
PLAN_ROLE = "GitHubPlanRole"
DEPLOY_ROLE = "GitHubDeployRole"

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"

# What the application stacks create; the service role may manage these services.
_STACK_SERVICES = (
    "acm",  # the alb stack's certificate (alb.domain_name + alb.hosted_zone_id)
    "application-autoscaling",
    "chatbot",  # the monitoring stack's Slack channel (monitoring.slack)
    "cloudwatch",
    "ec2",
    "ecs",
    "elasticache",
    "elasticfilesystem",
    "elasticloadbalancing",
    "kms",
    "logs",
    "rds",
    "route53",
    "s3",
    "secretsmanager",
    "servicediscovery",
    "sns",
)


def build(cfg: BootstrapSlice) -> Template:
    """Build the bootstrap template of one environment."""
    t = new_template(f"{cfg.names.prefix}: bootstrap (artifacts bucket, ECR repositories, deploy roles)")
    bucket = _artifacts_bucket(t, cfg)
    for name in cfg.bootstrap.repositories:
        repo = _repository(t, cfg, name)
        add_output(t, f"{pascal(name)}RepositoryUri", GetAtt(repo, "RepositoryUri"), f"ECR repository for {name}")
    service_role = _service_role(t, cfg)
    add_output(t, "ArtifactsBucketName", Ref(bucket), "Bucket for packaged templates (kr-cfn package --bucket)")
    add_output(t, "CloudFormationRoleArn", GetAtt(service_role, "Arn"), "Role the application stacks run under")
    repository = cfg.bootstrap.github_repository
    if repository is not None:
        provider = _oidc_provider(t, cfg)
        plan = _github_role(t, cfg, PLAN_ROLE, "github-plan", [f"repo:{repository}:pull_request"], provider)
        plan.Policies = [_plan_policy(cfg, bucket, service_role)]
        deploy = _github_role(
            t,
            cfg,
            DEPLOY_ROLE,
            "github-deploy",
            [
                *(
                    [f"repo:{repository}:ref:refs/heads/{cfg.bootstrap.deploy_branch}"]
                    if cfg.bootstrap.deploy_branch
                    else []
                ),
                f"repo:{repository}:environment:{cfg.env}",
            ],
            provider,
        )
        deploy.Policies = [_plan_policy(cfg, bucket, service_role), _deploy_policy(cfg)]
        add_output(t, "PlanRoleArn", GetAtt(plan, "Arn"), "Role for pull-request workflows (plan)")
        add_output(t, "DeployRoleArn", GetAtt(deploy, "Arn"), "Role for deploy-branch and environment workflows")
    return t


def _artifacts_bucket(t: Template, cfg: BootstrapSlice) -> s3.Bucket:
    bucket = t.add_resource(
        s3.Bucket(
            ARTIFACTS_BUCKET,
            # Bucket names are global: account and region make the name unique.
            BucketName=Sub(f"{cfg.names('artifacts')}-${{AWS::AccountId}}-${{AWS::Region}}"),
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            VersioningConfiguration=s3.VersioningConfiguration(Status="Enabled"),
            BucketEncryption=s3.BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    s3.ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=s3.ServerSideEncryptionByDefault(SSEAlgorithm="aws:kms"),
                        BucketKeyEnabled=True,
                    )
                ]
            ),
            PublicAccessBlockConfiguration=s3.PublicAccessBlockConfiguration(
                BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
            ),
            OwnershipControls=s3.OwnershipControls(
                Rules=[s3.OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
            ),
            LifecycleConfiguration=s3.LifecycleConfiguration(
                Rules=[
                    s3.LifecycleRule(
                        Id="ExpireReplacedTemplates",
                        Status="Enabled",
                        NoncurrentVersionExpiration=s3.NoncurrentVersionExpiration(
                            NoncurrentDays=cfg.bootstrap.noncurrent_version_days
                        ),
                        AbortIncompleteMultipartUpload=s3.AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
                    )
                ]
            ),
            Tags=Tags(**cfg.tags),
            Metadata=checkov_skip(
                ("CKV_AWS_18", "Holds only packaged templates written by the deploy roles; CloudTrail records access."),
            ),
        )
    )
    t.add_resource(
        s3.BucketPolicy(
            ARTIFACTS_BUCKET_POLICY,
            Bucket=Ref(bucket),
            PolicyDocument=aws.PolicyDocument(
                Version="2012-10-17",
                Statement=[deny_insecure_transport(bucket.title)],
            ),
        )
    )
    return bucket


def _repository(t: Template, cfg: BootstrapSlice, name: str) -> ecr.Repository:
    keep = cfg.bootstrap.images_to_keep
    lifecycle = {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Keep the newest {keep} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                "action": {"type": "expire"},
            }
        ]
    }
    return t.add_resource(
        ecr.Repository(
            f"{pascal(name)}Repository",
            # One image is built once and promoted through the environments: the repositories
            # are the project's (knowledgerouter-backend), not an environment's.
            RepositoryName=f"{cfg.names.project}-{name}",
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            ImageScanningConfiguration=ecr.ImageScanningConfiguration(ScanOnPush=True),
            # Tags are commit SHAs: immutable so a deployed tag always means the same image.
            ImageTagMutability="IMMUTABLE",
            EncryptionConfiguration=ecr.EncryptionConfiguration(EncryptionType="KMS"),
            LifecyclePolicy=ecr.LifecyclePolicy(LifecyclePolicyText=json.dumps(lifecycle, sort_keys=True)),
            Tags=Tags(**cfg.tags),
        )
    )


def _oidc_provider(t: Template, cfg: BootstrapSlice) -> object:
    """The provider's ARN: created here, or the account's existing one."""
    if not cfg.bootstrap.create_oidc_provider:
        return arn("iam", f"oidc-provider/{GITHUB_OIDC_HOST}", region=False)
    provider = t.add_resource(
        iam.OIDCProvider(
            OIDC_PROVIDER,
            Url=f"https://{GITHUB_OIDC_HOST}",
            ClientIdList=[STS_AUDIENCE],
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            Tags=Tags(**cfg.tags),
        )
    )
    return Ref(provider)


def _github_role(
    t: Template, cfg: BootstrapSlice, logical_id: str, name: str, subjects: list[str], provider: object
) -> iam.Role:
    trust = aws.PolicyDocument(
        Version="2012-10-17",
        Statement=[
            aws.Statement(
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                # One StringEquals holding both keys: two StringEquals elements would collide.
                Condition=aws.Condition(
                    aws.StringEquals({f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE, f"{GITHUB_OIDC_HOST}:sub": subjects})
                ),
            )
        ],
    )
    return t.add_resource(
        iam.Role(
            logical_id,
            RoleName=cfg.names(name),
            AssumeRolePolicyDocument=trust,
            MaxSessionDuration=3600,
            Tags=Tags(**cfg.tags),
        )
    )


def _stack_arns(cfg: BootstrapSlice) -> list[object]:
    """The root stack and its nested stacks (named '<root>-<LogicalId>-<suffix>')."""
    return [arn("cloudformation", f"stack/{cfg.stack_name}/*"), arn("cloudformation", f"stack/{cfg.stack_name}-*/*")]


def _plan_policy(cfg: BootstrapSlice, bucket: s3.Bucket, service_role: iam.Role) -> iam.Policy:
    return iam.Policy(
        PolicyName="plan",
        PolicyDocument=aws.PolicyDocument(
            Version="2012-10-17",
            Statement=[
                aws.Statement(
                    Sid="ReadStacks",
                    Effect=aws.Allow,
                    Action=[
                        cfn.DescribeStacks,
                        cfn.DescribeStackEvents,
                        cfn.DescribeStackResource,
                        cfn.DescribeStackResources,
                        cfn.ListStackResources,
                        cfn.GetTemplate,
                        cfn.GetTemplateSummary,
                        cfn.GetStackPolicy,
                        cfn.ListChangeSets,
                        cfn.ValidateTemplate,
                    ],
                    Resource=["*"],
                ),
                aws.Statement(
                    Sid="ChangeSets",
                    Effect=aws.Allow,
                    Action=[cfn.CreateChangeSet, cfn.DescribeChangeSet, cfn.DeleteChangeSet],
                    Resource=_stack_arns(cfg),
                ),
                aws.Statement(
                    Sid="UploadTemplates",
                    Effect=aws.Allow,
                    Action=[awacs_s3.GetObject, awacs_s3.PutObject, awacs_s3.ListBucket, awacs_s3.GetBucketLocation],
                    Resource=[GetAtt(bucket, "Arn"), Sub("${ArtifactsBucket.Arn}/*")],
                ),
                aws.Statement(
                    Sid="PassOnlyTheServiceRole",
                    Effect=aws.Allow,
                    Action=[awacs_iam.PassRole],
                    Resource=[GetAtt(service_role, "Arn")],
                    Condition=aws.Condition(aws.StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")),
                ),
            ],
        ),
    )


def _deploy_policy(cfg: BootstrapSlice) -> iam.Policy:
    return iam.Policy(
        PolicyName="deploy",
        PolicyDocument=aws.PolicyDocument(
            Version="2012-10-17",
            Statement=[
                aws.Statement(
                    Sid="ExecuteChangeSets",
                    Effect=aws.Allow,
                    Action=[cfn.ExecuteChangeSet, cfn.SetStackPolicy, cfn.UpdateTerminationProtection],
                    Resource=_stack_arns(cfg),
                ),
                # Read-only: the workflow waits for the ECS services to be stable after a deploy.
                aws.Statement(
                    Sid="WatchServices",
                    Effect=aws.Allow,
                    Action=[ecs_actions.ListServices, ecs_actions.DescribeServices],
                    Resource=["*"],
                ),
            ],
        ),
    )


def _service_role(t: Template, cfg: BootstrapSlice) -> iam.Role:
    trust = service_trust("cloudformation.amazonaws.com")
    # Roles named by the stacks (cfg.names) and roles CloudFormation names itself
    # ('<nested stack name>-<LogicalId>-<suffix>', starting with the root stack's name).
    role_arns = [
        arn("iam", f"role/{name}-*", region=False) for name in dict.fromkeys([cfg.names.prefix, cfg.stack_name])
    ]
    policy = aws.PolicyDocument(
        Version="2012-10-17",
        Statement=[
            aws.Statement(
                Sid="StackServices",
                Effect=aws.Allow,
                Action=[aws.Action(service, "*") for service in _STACK_SERVICES],
                Resource=["*"],
            ),
            aws.Statement(
                Sid="ApplicationRoles",
                Effect=aws.Allow,
                Action=[awacs_iam.Action("*")],
                Resource=role_arns,
            ),
            aws.Statement(
                Sid="ServiceLinkedRoles",
                Effect=aws.Allow,
                Action=[awacs_iam.CreateServiceLinkedRole],
                Resource=[arn("iam", "role/aws-service-role/*", region=False)],
            ),
            aws.Statement(
                Sid="NestedStacks",
                Effect=aws.Allow,
                Action=[cfn.Action("*")],
                Resource=_stack_arns(cfg),
            ),
            aws.Statement(
                Sid="ReadTemplates",
                Effect=aws.Allow,
                Action=[awacs_s3.GetObject],
                Resource=[Sub("${ArtifactsBucket.Arn}/*")],
            ),
        ],
    )
    return t.add_resource(
        iam.Role(
            SERVICE_ROLE,
            RoleName=cfg.names("cloudformation"),
            AssumeRolePolicyDocument=trust,
            Policies=[iam.Policy(PolicyName="stacks", PolicyDocument=policy)],
            Tags=Tags(**cfg.tags),
            Metadata=checkov_skip(
                (
                    "CKV_AWS_109",
                    "CloudFormation creates and deletes the whole application with this role; only it may pass it.",
                ),
                ("CKV_AWS_111", "Write access is what a CloudFormation service role is for; only deploys can use it."),
                ("CKV_AWS_107", "The stacks create secrets (Secrets Manager) and must read them back."),
                ("CKV_AWS_108", "The stacks create buckets and must manage their objects (e.g. empty on delete)."),
            ),
        )
    )
