"""The pipeline roles' policies: plan (pull requests, release plan) and deploy, day two included."""

from __future__ import annotations

from awacs import aws
from awacs import cloudformation as cfn
from awacs import ecs as ecs_actions
from awacs import iam as awacs_iam
from awacs import s3 as awacs_s3
from troposphere import GetAtt, Sub, Template, iam, s3

from kr_cfn.config import BootstrapSlice
from kr_cfn.config.bootstrap import bootstrap_stack_name
from kr_cfn.iam import (
    application_role_arns,
    arn,
    managed_policy,
)
from stacks._bootstrap.github import github_role, release_plan_subject, release_workflow_ref
from stacks._bootstrap.names import PR_ARTIFACTS_PREFIX, PR_CHANGE_SETS, RELEASE_PLAN_ROLE
from stacks._bootstrap.scope import BOOTSTRAP_STACK_READS, deny_bootstrap_stack, deny_import, stack_arns
from stacks._bootstrap.secrets import database_secret

RELEASED_IMAGES = ("backend", "frontend")
"""The services whose image release.yml's ``image_tag`` deploys (its Plan step) and scans."""


def release_plan_role(
    t: Template, cfg: BootstrapSlice, bucket: s3.Bucket, service_role: iam.Role, provider: object
) -> iam.Role:
    """The role that packages and plans the deploy branch, before anyone approves: it cannot execute.

    It uploads under the environment's own prefix, which pull requests cannot write; the job runs
    without the protected environment, so the reviewers see its change set before they approve.
    """
    role = github_role(
        t, cfg, RELEASE_PLAN_ROLE, "github-release-plan", release_plan_subject(cfg), release_workflow_ref(cfg), provider
    )
    role.Policies = [
        plan_policy(cfg, bucket, service_role, upload_prefix=cfg.names.prefix),
        _policy_checks_policy(),
        _scan_images_policy(cfg),
    ]
    return role


def _scan_images_policy(cfg: BootstrapSlice) -> iam.Policy:
    """Pull the application images the release scans (Trivy, before the change set): their repositories only.

    GetAuthorizationToken has no resource type, so '*'; the pull actions act on a repository
    (Service Authorization Reference for Amazon ECR,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html).
    The repositories are the account's ``<project>-<service>`` (stacks/bootstrap.py), whichever env's
    bootstrap makes them: staging scans dev's, so the names do not come from ``bootstrap.repositories``.
    """
    repositories = [arn("ecr", f"repository/{cfg.names.project}-{name}") for name in RELEASED_IMAGES]
    pull = ("BatchCheckLayerAvailability", "GetDownloadUrlForLayer", "BatchGetImage")
    return iam.Policy(
        PolicyName="scan-images",
        PolicyDocument=aws.PolicyDocument(
            Version="2012-10-17",
            Statement=[
                aws.Statement(
                    Sid="EcrLogin",
                    Effect=aws.Allow,
                    Action=[aws.Action("ecr", "GetAuthorizationToken")],
                    # "*": GetAuthorizationToken has no resource type (Service Authorization Reference,
                    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html);
                    # the token pulls only what the statement below allows.
                    Resource=["*"],
                ),
                aws.Statement(
                    Sid="PullReleasedImages",
                    Effect=aws.Allow,
                    Action=[aws.Action("ecr", a) for a in pull],
                    Resource=repositories,
                ),
            ],
        ),
    )


def _policy_checks_policy() -> iam.Policy:
    """What IAM Access Analyzer's policy checks of the built templates call (cfn-policy-validator validate).

    ValidatePolicy per policy; access previews of trust and resource policies on the account's
    analyzer (created when there is none, with its service-linked role); the AWS managed policies
    a template attaches, read from IAM. Resource types per action: Service Authorization Reference,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsiamaccessanalyzer.html
    https://github.com/awslabs/aws-cloudformation-iam-policy-validator (its README, required IAM policy)
    """
    analyzers = arn("access-analyzer", "analyzer/*")
    action = aws.Action
    return iam.Policy(
        PolicyName="policy-checks",
        PolicyDocument=aws.PolicyDocument(
            Version="2012-10-17",
            Statement=[
                aws.Statement(
                    Sid="ValidatePolicies",
                    Effect=aws.Allow,
                    Action=[action("access-analyzer", "ValidatePolicy"), action("access-analyzer", "ListAnalyzers")],
                    Resource=["*"],  # neither action has a resource type
                ),
                aws.Statement(
                    Sid="AccessPreviews",
                    Effect=aws.Allow,
                    Action=[
                        action("access-analyzer", a)
                        for a in (
                            "CreateAccessPreview",
                            "GetAccessPreview",
                            "ListAccessPreviewFindings",
                            "CreateAnalyzer",
                        )
                    ],
                    Resource=[analyzers],
                ),
                aws.Statement(
                    Sid="AnalyzerServiceLinkedRole",
                    Effect=aws.Allow,
                    Action=[awacs_iam.CreateServiceLinkedRole],
                    Resource=[arn("iam", "role/aws-service-role/access-analyzer.amazonaws.com/*", region=False)],
                    Condition=aws.Condition(aws.StringEquals("iam:AWSServiceName", "access-analyzer.amazonaws.com")),
                ),
                aws.Statement(
                    Sid="ReadAwsManagedPolicies",
                    Effect=aws.Allow,
                    Action=[awacs_iam.GetPolicy, awacs_iam.GetPolicyVersion],
                    Resource=[managed_policy("*")],
                ),
            ],
        ),
    )


def plan_policy(
    cfg: BootstrapSlice,
    bucket: s3.Bucket,
    service_role: iam.Role,
    upload_prefix: str = PR_ARTIFACTS_PREFIX,
    *,
    pull_request: bool = False,
) -> iam.Policy:
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
                        cfn.DescribeChangeSet,
                    ],
                    # This env's root and nested stacks only: in a shared account, another env's
                    # templates, outputs and events stay unread (the review reads nested stacks by ARN).
                    Resource=stack_arns(cfg),
                ),
                # The bootstrap stack's outputs (bucket, role ARNs), resources and change sets: exactly
                # the reads DenyBootstrapStack leaves, on this env's bootstrap stack only.
                aws.Statement(
                    Sid="ReadBootstrapStack",
                    Effect=aws.Allow,
                    Action=list(BOOTSTRAP_STACK_READS),
                    Resource=[arn("cloudformation", f"stack/{bootstrap_stack_name(cfg.names)}/*")],
                ),
                # ValidateTemplate has no resource type (Service Authorization Reference,
                # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html):
                # it checks the template it is sent and reads no stack.
                aws.Statement(Sid="ValidateTemplates", Effect=aws.Allow, Action=[cfn.ValidateTemplate], Resource=["*"]),
                *_change_set_statements(cfg, pull_request=pull_request),
                _read_service_counts(cfg),
                # plan's reminder when the live rotation interval differs from params (kr_cfn/operations/rotation.py):
                # the secret's metadata, never its value.
                *database_secret(cfg, "ReadDatabaseSecretRotation", [aws.Action("secretsmanager", "DescribeSecret")]),
                aws.Statement(
                    Sid="ReadTemplates",
                    Effect=aws.Allow,
                    Action=[awacs_s3.GetObject, awacs_s3.ListBucket, awacs_s3.GetBucketLocation],
                    Resource=[GetAtt(bucket, "Arn"), Sub("${ArtifactsBucket.Arn}/*")],
                ),
                # Only under its own prefix: pull requests write pr/, which no deploy reads, so a
                # pull request cannot plant a template under a key the deploy branch will use.
                aws.Statement(
                    Sid="UploadTemplates",
                    Effect=aws.Allow,
                    Action=[awacs_s3.PutObject],
                    Resource=[Sub(f"${{ArtifactsBucket.Arn}}/{upload_prefix}/*")],
                ),
                aws.Statement(
                    Sid="PassOnlyTheServiceRole",
                    Effect=aws.Allow,
                    Action=[awacs_iam.PassRole],
                    Resource=[GetAtt(service_role, "Arn")],
                    Condition=aws.Condition(aws.StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")),
                ),
                deny_bootstrap_stack(cfg),
                deny_import(),
            ],
        ),
    )


def _read_service_counts(cfg: BootstrapSlice) -> aws.Statement:
    """The ECS services of the env's cluster: their desired counts, their state (read only).

    The plan's review shows each service's desired count now (kr_cfn.changes.notes); the deploy job
    waits for the services to be stable (``aws ecs wait services-stable``). ListServices has no
    resource type and both take the ecs:cluster condition key
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html).
    """
    cluster = cfg.names("cluster")
    return aws.Statement(
        Sid="ReadServiceCounts",
        Effect=aws.Allow,
        Action=[ecs_actions.ListServices, ecs_actions.DescribeServices],
        Resource=["*"],  # ListServices has no resource; both only in the env's cluster (condition)
        Condition=aws.Condition(aws.ArnEquals("ecs:cluster", arn("ecs", f"cluster/{cluster}"))),
    )


def _change_set_statements(cfg: BootstrapSlice, *, pull_request: bool) -> list[aws.Statement]:
    """Change sets on the application stacks; a pull request's only under its own names.

    Pull-request plans name their change sets 'kr-cfn-pr-...' (kr_cfn.changes.changeset): the plan
    role may create and delete only those, so a pull request cannot delete the change set the
    reviewers are about to approve, and the deploy role never executes one of them
    (cloudformation:ChangeSetName on CreateChangeSet, DeleteChangeSet, ExecuteChangeSet:
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html).
    """
    # DescribeChangeSet is read with the stacks (ReadStacks), on the same ARNs.
    write = aws.Statement(
        Sid="ChangeSets",
        Effect=aws.Allow,
        Action=[cfn.CreateChangeSet, cfn.DeleteChangeSet],
        Resource=stack_arns(cfg),
    )
    if pull_request:
        write.Condition = aws.Condition(aws.StringLike("cloudformation:ChangeSetName", f"{PR_CHANGE_SETS}*"))
    return [write]


def _deny_executing_pull_request_change_sets() -> aws.Statement:
    """No pull request's change set is executed, named by name or by ARN.

    cloudformation:ChangeSetName is documented as the change set's name (CloudFormation's condition
    keys: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/control-access-with-iam.html,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html);
    what it holds when the call names the change set by ARN is not documented, so the ARN form is
    matched too (any partition, region and account: a Deny). ``kr-cfn apply`` executes by name and stack.
    """
    return aws.Statement(
        Sid="NeverExecutePullRequestChangeSets",
        Effect=aws.Deny,
        Action=[cfn.ExecuteChangeSet],
        Resource=["*"],  # a Deny: a pull request's change set, on any stack
        Condition=aws.Condition(
            aws.StringLike(
                "cloudformation:ChangeSetName",
                [f"{PR_CHANGE_SETS}*", f"arn:*:cloudformation:*:*:changeSet/{PR_CHANGE_SETS}*/*"],
            )
        ),
    )


def deploy_policy(cfg: BootstrapSlice) -> iam.Policy:
    return iam.Policy(
        PolicyName="deploy",
        PolicyDocument=aws.PolicyDocument(
            Version="2012-10-17",
            Statement=[
                aws.Statement(
                    Sid="ExecuteChangeSets",
                    Effect=aws.Allow,
                    Action=[cfn.ExecuteChangeSet, cfn.SetStackPolicy, cfn.UpdateTerminationProtection],
                    Resource=stack_arns(cfg),
                ),
                # The workflow waits for the ECS services to be stable after a deploy (ListServices,
                # DescribeServices): ReadServiceCounts of the plan policy, in the env's cluster.
                *_day_two_statements(cfg),
                deny_bootstrap_stack(cfg),
                _deny_executing_pull_request_change_sets(),
            ],
        ),
    )


MIGRATION_SERVICE = "backend"
"""The service whose task definition ``kr-cfn migrate`` runs (its family ``<prefix>-backend``)."""


def _day_two_statements(cfg: BootstrapSlice) -> list[aws.Statement]:
    """What ``kr-cfn migrate``, ``drift`` and ``cancel`` need from the deploy role, and no more.

    Resource types and condition keys per action: the Service Authorization Reference,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html
    and .../list_awscloudformation.html.
    """
    family = cfg.names(MIGRATION_SERVICE)
    cluster = cfg.names("cluster")
    return [
        # migrate: a copy of the backend's task definition with the new image, in its own family
        aws.Statement(
            Sid="MigrationTaskDefinition",
            Effect=aws.Allow,
            Action=[ecs_actions.RegisterTaskDefinition],
            Resource=[arn("ecs", f"task-definition/{family}-migrate:*")],
        ),
        aws.Statement(
            Sid="RunMigrationTask",
            Effect=aws.Allow,
            Action=[ecs_actions.RunTask],
            Resource=[arn("ecs", f"task-definition/{family}:*"), arn("ecs", f"task-definition/{family}-migrate:*")],
            Condition=aws.Condition(aws.ArnEquals("ecs:cluster", arn("ecs", f"cluster/{cluster}"))),
        ),
        aws.Statement(
            Sid="FollowMigrationTask",
            Effect=aws.Allow,
            Action=[ecs_actions.DescribeTasks],
            Resource=[arn("ecs", f"task/{cluster}/*")],
        ),
        aws.Statement(
            Sid="ReadMigrationLog",
            Effect=aws.Allow,
            Action=[aws.Action("logs", "GetLogEvents")],
            Resource=[arn("logs", f"log-group:{cfg.names.path('ecs', MIGRATION_SERVICE)}:log-stream:*")],
        ),
        # Resource "*": DescribeTaskDefinition and DeregisterTaskDefinition have no resource-level
        # permissions (Service Authorization Reference above). Read one, retire the one-off copy.
        aws.Statement(
            Sid="TaskDefinitionsHaveNoResourceLevelPermissions",
            Effect=aws.Allow,
            Action=[ecs_actions.DescribeTaskDefinition, ecs_actions.DeregisterTaskDefinition],
            Resource=["*"],
        ),
        # The task definition names the application's task and execution roles: pass them to ECS only.
        aws.Statement(
            Sid="PassApplicationRolesToTasks",
            Effect=aws.Allow,
            Action=[awacs_iam.PassRole],
            Resource=[application_role_arns(cfg.names.prefix)],
            Condition=aws.Condition(aws.StringEquals("iam:PassedToService", "ecs-tasks.amazonaws.com")),
        ),
        # drift and cancel, on the application's stacks only
        aws.Statement(
            Sid="DriftAndCancel",
            Effect=aws.Allow,
            Action=[
                cfn.DetectStackDrift,
                cfn.DetectStackResourceDrift,
                cfn.DescribeStackResourceDrifts,
                cfn.CancelUpdateStack,
            ],
            Resource=stack_arns(cfg),
        ),
        # Resource "*": DescribeStackDriftDetectionStatus takes a detection id, no stack (no resource type).
        aws.Statement(
            Sid="DriftDetectionStatusHasNoResource",
            Effect=aws.Allow,
            Action=[cfn.DescribeStackDriftDetectionStatus],
            Resource=["*"],
        ),
    ]
