"""Bootstrap stack (once per account, region and environment; not a child of the root).

The artifacts bucket for packaged templates, the ECR repositories, the GitHub OIDC
provider (optional), the CloudFormation service role the application stacks run under,
and two GitHub roles whose trust names the exact repository: a plan role for pull
requests (read, change sets, uploads) and a deploy role for the deploy branch and the
environment (executes change sets). The GitHub roles may pass only the service role.

The service role works through a permissions boundary (``ApplicationPermissionsBoundary``):
it may create and change only roles under the environment's IAM path that carry that
boundary, and it is denied its own role, the GitHub roles, the boundary, the artifacts bucket
and this stack. Its other actions are the handler permissions of the resource types the
built application templates hold (see kr_cfn.iam.handler_permissions).
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
from kr_cfn.config.bootstrap import bootstrap_stack_name
from kr_cfn.iam import (
    application_instance_profile_arns,
    application_policy_arns,
    application_role_arns,
    arn,
    boundary_name,
    deny_insecure_transport,
    handler_permissions,
    permissions_boundary,
    service_trust,
)
from kr_cfn.naming import pascal
from kr_cfn.rotation import state_machine_name

ARTIFACTS_BUCKET = "ArtifactsBucket"
ARTIFACTS_BUCKET_POLICY = "ArtifactsBucketPolicy"
OIDC_PROVIDER = "GitHubOidcProvider"
SERVICE_ROLE = "CloudFormationServiceRole"
PLAN_ROLE = "GitHubPlanRole"
DEPLOY_ROLE = "GitHubDeployRole"
RELEASE_PLAN_ROLE = "GitHubReleasePlanRole"
PR_CHANGE_SETS = "kr-cfn-pr-"
"""Name prefix of pull-request change sets (kr_cfn.deploy.changeset.PR_CHANGE_SET_PREFIX)."""
PR_ARTIFACTS_PREFIX = "pr"
"""Key prefix of pull-request packages (``kr-cfn package --pull-request``); deploys never read it."""

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"

BOUNDARY_POLICY = "ApplicationPermissionsBoundary"
STACK_ACTIONS_POLICY = "StackActionsPolicy"
_MANAGED_POLICY_BUDGET = 5000  # characters of actions per managed policy (limit 6,144 with the rest)
_MAX_STACK_POLICIES = 9  # a role may have 10 managed policies
_SERVICE_ROLE_SKIPS = (
    (
        "CKV_AWS_109",
        "Only the handler permissions of the stacks' resource types; roles only under the env's path with its "
        "boundary; its own role, the GitHub roles, the boundary and the bootstrap stack are denied.",
    ),
    (
        "CKV_AWS_111",
        "Write access is what a CloudFormation service role is for: exactly the handler permissions of the "
        "stacks' resource types; only the GitHub roles may pass it, to CloudFormation.",
    ),
    ("CKV_AWS_107", "The Secrets Manager handlers read the secrets the stacks create (GetSecretValue)."),
    ("CKV_AWS_108", "The S3 bucket handlers read bucket data (only the application's buckets, by name)."),
)

# Role actions allowed only when the role carries the boundary (condition iam:PermissionsBoundary).
# https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html#access_policies_boundaries-delegate
_WITH_BOUNDARY = ("iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:DeleteRolePolicy")
# IAM handler permissions granted by their own statements (with conditions) or never.
_IAM_ELSEWHERE = {
    *_WITH_BOUNDARY,
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:DeleteRolePermissionsBoundary",
    "iam:PassRole",
    "iam:CreateServiceLinkedRole",
    # Users and groups: the stacks make none (AWS::IAM::ManagedPolicy's handlers list these).
    "iam:AttachGroupPolicy",
    "iam:AttachUserPolicy",
    "iam:DetachGroupPolicy",
    "iam:DetachUserPolicy",
}

# Handler permissions the application templates do not use; reviewed, left out of the service role.
_UNUSED_HANDLER_SERVICES = {
    "lambda": "provisioned concurrency and rotation Lambdas: the stacks have no Lambda functions",
    "firehose": "log delivery to Kinesis Data Firehose: the stacks deliver logs to CloudWatch Logs only",
    "cognito-idp": "ALB Cognito authentication: the listeners do not authenticate",
    "s3tables": "S3 metadata table configurations: the buckets have none",
}
# Handler permissions granted by their own statement with a condition, not on '*' with the rest.
_SCOPED_ACTIONS = {"route53:ChangeResourceRecordSets"}
# Actions CloudFormation itself needs besides the handlers: Fn::GetAZs in the network stack.
_EXTRA_ACTIONS = ("ec2:DescribeAvailabilityZones",)
# Service-linked roles the stacks' services create on first use, by resource-type prefix.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/using-service-linked-roles.html
_SERVICE_LINKED = {
    "AWS::ApplicationAutoScaling::": "ecs.application-autoscaling.amazonaws.com",
    # AWSServiceRoleForAutoScaling: https://docs.aws.amazon.com/autoscaling/ec2/userguide/autoscaling-service-linked-role.html
    "AWS::AutoScaling::": "autoscaling.amazonaws.com",
    # AWSServiceRoleForBackup: https://docs.aws.amazon.com/aws-backup/latest/devguide/using-service-linked-roles.html
    "AWS::Backup::": "backup.amazonaws.com",
    "AWS::ECS::": "ecs.amazonaws.com",
    "AWS::EFS::": "elasticfilesystem.amazonaws.com",
    "AWS::ElastiCache::": "elasticache.amazonaws.com",
    "AWS::ElasticLoadBalancingV2::": "elasticloadbalancing.amazonaws.com",
    "AWS::RDS::": "rds.amazonaws.com",
}


def build(cfg: BootstrapSlice) -> Template:
    """Build the bootstrap template of one environment."""
    t = new_template(f"{cfg.names.prefix}: bootstrap (artifacts bucket, ECR repositories, deploy roles)")
    bucket = _artifacts_bucket(t, cfg)
    for name in cfg.bootstrap.repositories:
        repo = _repository(t, cfg, name)
        add_output(t, f"{pascal(name)}RepositoryUri", GetAtt(repo, "RepositoryUri"), f"ECR repository for {name}")
    boundary = _boundary_policy(t, cfg)
    service_role = _service_role(t, cfg)
    service_role.DependsOn = [boundary.title]
    add_output(t, "ArtifactsBucketName", Ref(bucket), "Bucket for packaged templates (kr-cfn package --bucket)")
    add_output(t, "CloudFormationRoleArn", GetAtt(service_role, "Arn"), "Role the application stacks run under")
    add_output(t, "PermissionsBoundaryArn", Ref(boundary), "Boundary every application role carries")
    repository = cfg.bootstrap.github_repository
    if repository is not None:
        provider = _oidc_provider(t, cfg)
        plan_subject, deploy_subject = github_subjects(cfg)
        plan = _github_role(t, cfg, PLAN_ROLE, "github-plan", plan_subject, provider)
        plan.Policies = [_plan_policy(cfg, bucket, service_role, pull_request=True)]
        deploy = _github_role(t, cfg, DEPLOY_ROLE, "github-deploy", deploy_subject, provider)
        deploy.Policies = [_plan_policy(cfg, bucket, service_role), _deploy_policy(cfg)]
        deploy.AssumeRolePolicyDocument.Statement += caller_trust(cfg, provider, environment=cfg.env)
        add_output(t, "PlanRoleArn", GetAtt(plan, "Arn"), "Role for pull-request workflows (plan)")
        release = _release_plan_role(t, cfg, bucket, service_role, provider)
        release.AssumeRolePolicyDocument.Statement += caller_trust(cfg, provider)
        add_output(t, "ReleasePlanRoleArn", GetAtt(release, "Arn"), "Role that plans the deploy branch's changes")
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


def github_subjects(cfg: BootstrapSlice) -> tuple[str, str]:
    """The OIDC ``sub`` the plan role and the deploy role trust.

    With ``oidc_subject: environment_and_ref`` the repository's subject template is
    ``include_claim_keys: [repo, context, ref]``, so a job names both its environment and its
    branch (``repo:o/r:environment:prod:ref:refs/heads/main``) and a workflow_dispatch from an
    unreviewed branch gets a subject the deploy role does not trust. GitHub's default subject
    names the environment only (``repo:o/r:environment:prod``).
    https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#customizing-the-token-claims
    """
    repo = f"repo:{cfg.bootstrap.github_repository}"
    if cfg.bootstrap.oidc_subject == "environment":
        return f"{repo}:pull_request", f"{repo}:environment:{cfg.env}"
    # Pull-request workflows run on the merge ref refs/pull/<number>/merge.
    return (
        f"{repo}:pull_request:ref:refs/pull/*/merge",
        f"{repo}:environment:{cfg.env}:ref:refs/heads/{cfg.bootstrap.deploy_branch}",
    )


def release_plan_subject(cfg: BootstrapSlice) -> str:
    """The OIDC ``sub`` the release-plan role trusts: a job on the deploy branch without an environment.

    The context of such a job is its ref (``ref:refs/heads/main``); with the subject template
    [repo, context, ref] (see :func:`github_subjects`) the ref follows once more.
    """
    ref = f"ref:refs/heads/{cfg.bootstrap.deploy_branch or 'main'}"
    repo = f"repo:{cfg.bootstrap.github_repository}"
    return f"{repo}:{ref}" if cfg.bootstrap.oidc_subject == "environment" else f"{repo}:{ref}:{ref}"


RELEASE_WORKFLOW = ".github/workflows/release.yml"
"""The reusable workflow (``on: workflow_call``) that plans and deploys one environment."""

# GitHub-specific claims AWS STS validates as condition keys of a role trust policy (since January 2026):
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif
# https://aws.amazon.com/about-aws/whats-new/2026/01/aws-sts-supports-validation-identity-provider-claims/
# What each claim holds in a called workflow (repository, ref and environment are the caller's;
# job_workflow_ref names the called workflow): https://docs.github.com/en/actions/reference/security/oidc
CLAIM_REPOSITORY = f"{GITHUB_OIDC_HOST}:repository"
CLAIM_REF = f"{GITHUB_OIDC_HOST}:ref"
CLAIM_JOB_WORKFLOW_REF = f"{GITHUB_OIDC_HOST}:job_workflow_ref"
CLAIM_ENVIRONMENT = f"{GITHUB_OIDC_HOST}:environment"


def release_workflow_ref(cfg: BootstrapSlice) -> str:
    """The ``job_workflow_ref`` of a job of the release workflow on the deploy branch of this repository."""
    return f"{cfg.bootstrap.github_repository}/{RELEASE_WORKFLOW}@refs/heads/{cfg.bootstrap.deploy_branch or 'main'}"


def caller_trust(cfg: BootstrapSlice, provider: object, environment: str | None = None) -> list[aws.Statement]:
    """One trust statement per ``bootstrap.callers`` entry: its branch running our release workflow.

    A job of a called workflow gets an OIDC token whose ``sub``, ``repository``, ``ref`` and
    ``environment`` are the caller's and whose ``job_workflow_ref`` names the called workflow
    file at the ref it was called at. So the statement admits exactly: the caller repository, on
    its configured branch (not a pull request, not another branch), running this repository's
    release.yml from the deploy branch (not another workflow, not another ref of this repository),
    and for the deploy role in the GitHub environment ``environment`` (the caller's, with its
    protection rules). The ``sub`` condition repeats the repository (``repo:<caller>:*``, whatever
    the caller's subject template) so the trust names it where reviewers and checkov look.
    """
    statements = []
    for i, caller in enumerate(cfg.bootstrap.callers, start=1):
        equals = {
            f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
            CLAIM_REPOSITORY: caller.repository,
            CLAIM_REF: f"refs/heads/{caller.branch}",
            CLAIM_JOB_WORKFLOW_REF: release_workflow_ref(cfg),
        }
        if environment is not None:
            equals[CLAIM_ENVIRONMENT] = environment
        statements.append(
            aws.Statement(
                Sid=f"Caller{i}ReleaseWorkflow",
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=aws.Condition(
                    [
                        aws.StringEquals(equals),
                        # "*": the rest of the subject follows the caller's own subject template; the
                        # claims above pin its branch, this workflow and the environment exactly.
                        aws.StringLike(f"{GITHUB_OIDC_HOST}:sub", f"repo:{caller.repository}:*"),
                    ]
                ),
            )
        )
    return statements


def _github_role(
    t: Template, cfg: BootstrapSlice, logical_id: str, name: str, subject: str, provider: object
) -> iam.Role:
    aud, sub = f"{GITHUB_OIDC_HOST}:aud", f"{GITHUB_OIDC_HOST}:sub"
    # StringLike only where the subject has a wildcard (the pull-request number); otherwise one
    # StringEquals holding both keys (two StringEquals elements would collide).
    condition = (
        aws.Condition([aws.StringEquals(aud, STS_AUDIENCE), aws.StringLike(sub, subject)])
        if "*" in subject
        else aws.Condition(aws.StringEquals({aud: STS_AUDIENCE, sub: subject}))
    )
    trust = aws.PolicyDocument(
        Version="2012-10-17",
        Statement=[
            aws.Statement(
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=condition,
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
    """The root stack and its nested stacks, and nothing else.

    Nested stacks are named '<root>-<LogicalId>-<suffix>'; the logical ids are the root's
    children (PascalCase), so '<root>-NetworkStack-*' never matches '<root>-bootstrap' nor
    another environment's '<root>-dev-...' stacks. Stack ARN: stack/<name>/<id>.
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html#awscloudformation-resources-for-iam-policies
    """
    return [
        arn("cloudformation", f"stack/{cfg.stack_name}/*"),
        *(arn("cloudformation", f"stack/{cfg.stack_name}-{child}-*/*") for child in cfg.app.children),
    ]


def _deny_import() -> aws.Statement:
    """Explicit deny of resource import.

    Importing would adopt a resource another stack or environment owns into the application
    stacks, to change or delete it there.

    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/security_iam_id-based-policy-examples.html
    """
    return aws.Statement(
        Sid="DenyImport",
        Effect=aws.Deny,
        Action=[cfn.Action("*")],  # a Deny: every action of an import
        Resource=["*"],  # a Deny: on every stack
        Condition=aws.Condition(aws.ForAnyValueStringLike("cloudformation:ImportResourceTypes", ["*"])),
    )


def _deny_bootstrap_stack(cfg: BootstrapSlice) -> aws.Statement:
    """Explicit deny of every CloudFormation action on this (the bootstrap) stack."""
    return aws.Statement(
        Sid="DenyBootstrapStack",
        Effect=aws.Deny,
        Action=[cfn.Action("*")],  # a Deny: every action, present and future
        Resource=[arn("cloudformation", f"stack/{bootstrap_stack_name(cfg.names)}/*")],
    )


STACK_NAME_TAG = "aws:cloudformation:stack-name"
"""The tag CloudFormation puts on every resource it creates (where the type propagates stack tags)."""


def own_stack_names(cfg: BootstrapSlice) -> list[str]:
    """Patterns of the stack names this environment's application resources are tagged with.

    The root, its children (and the stacks nested in them, named '<child stack>-<LogicalId>-*'):
    the same names :func:`_stack_arns` allows, never the bootstrap stack nor another environment's.
    """
    return [cfg.stack_name, *(f"{cfg.stack_name}-{child}-*" for child in cfg.app.children)]


def _deny_other_stacks(cfg: BootstrapSlice, sid: str, not_actions: list[aws.Action]) -> aws.Statement:
    """Explicit deny of every action on a resource another stack made (another env, the bootstrap).

    The handler permissions are on '*' (ids made at create time); in an account shared by several
    environments, a template could still point a resource at another environment's security
    group, listener, file system, database, secret or key (an ingress rule, a listener rule, an
    access point, a read replica, a dynamic reference). CloudFormation tags what it creates with
    aws:cloudformation:stack-name, and the aws: prefix is reserved: no template can set or change
    it (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-resource-tags.html).
    So a resource that carries the tag with a name outside this environment's stacks is refused
    (aws:ResourceTag: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-resourcetag;
    Null "false": only when the tag is there,
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null).
    Resources without the tag (made outside CloudFormation, or types that do not propagate it) are
    not covered: see README "Accounts".
    """
    key = f"aws:ResourceTag/{STACK_NAME_TAG}"
    return aws.Statement(
        Sid=sid,
        Effect=aws.Deny,
        NotAction=not_actions,
        Resource=["*"],  # a Deny: any resource that carries another stack's name
        Condition=aws.Condition([aws.Null(key, "false"), aws.StringNotLike(key, own_stack_names(cfg))]),
    )


def _release_plan_role(
    t: Template, cfg: BootstrapSlice, bucket: s3.Bucket, service_role: iam.Role, provider: object
) -> iam.Role:
    """The role that packages and plans the deploy branch, before anyone approves: it cannot execute.

    It uploads under the environment's own prefix, which pull requests cannot write; the job runs
    without the protected environment, so the reviewers see its change set before they approve.
    """
    role = _github_role(t, cfg, RELEASE_PLAN_ROLE, "github-release-plan", release_plan_subject(cfg), provider)
    role.Policies = [_plan_policy(cfg, bucket, service_role, upload_prefix=cfg.names.prefix)]
    return role


def _plan_policy(
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
                        cfn.ValidateTemplate,
                    ],
                    # "*": read-only; ValidateTemplate has no resource, and the review reads nested stacks by ARN.
                    Resource=["*"],
                ),
                *_change_set_statements(cfg, pull_request=pull_request),
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
                _deny_bootstrap_stack(cfg),
                _deny_import(),
            ],
        ),
    )


def _change_set_statements(cfg: BootstrapSlice, *, pull_request: bool) -> list[aws.Statement]:
    """Change sets on the application stacks; a pull request's only under its own names.

    Pull-request plans name their change sets 'kr-cfn-pr-...' (kr_cfn.deploy.changeset): the plan
    role may create and delete only those, so a pull request cannot delete the change set the
    reviewers are about to approve, and the deploy role never executes one of them
    (cloudformation:ChangeSetName on CreateChangeSet, DeleteChangeSet, ExecuteChangeSet:
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html).
    """
    read = aws.Statement(
        Sid="DescribeChangeSets", Effect=aws.Allow, Action=[cfn.DescribeChangeSet], Resource=_stack_arns(cfg)
    )
    write = aws.Statement(
        Sid="ChangeSets",
        Effect=aws.Allow,
        Action=[cfn.CreateChangeSet, cfn.DeleteChangeSet],
        Resource=_stack_arns(cfg),
    )
    if pull_request:
        write.Condition = aws.Condition(aws.StringLike("cloudformation:ChangeSetName", f"{PR_CHANGE_SETS}*"))
    return [read, write]


def _deny_executing_pull_request_change_sets() -> aws.Statement:
    return aws.Statement(
        Sid="NeverExecutePullRequestChangeSets",
        Effect=aws.Deny,
        Action=[cfn.ExecuteChangeSet],
        Resource=["*"],  # a Deny: a pull request's change set, on any stack
        Condition=aws.Condition(aws.StringLike("cloudformation:ChangeSetName", f"{PR_CHANGE_SETS}*")),
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
                *_day_two_statements(cfg),
                _deny_bootstrap_stack(cfg),
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
            Resource=_stack_arns(cfg),
        ),
        # Resource "*": DescribeStackDriftDetectionStatus takes a detection id, no stack (no resource type).
        aws.Statement(
            Sid="DriftDetectionStatusHasNoResource",
            Effect=aws.Allow,
            Action=[cfn.DescribeStackDriftDetectionStatus],
            Resource=["*"],
        ),
    ]


def _boundary_policy(t: Template, cfg: BootstrapSlice) -> iam.ManagedPolicy:
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
            Resource=[arn("ecr", "repository/*")],  # the account's repositories: envs share them (README "Accounts")
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
        aws.Statement(
            Sid="ReadSecrets",
            Effect=aws.Allow,
            Action=[aws.Action("secretsmanager", "GetSecretValue")],
            # secret:*: RDS names its managed secret 'rds!db-<id>'; the roles' own policies name each secret.
            Resource=[arn("secretsmanager", "secret:*")],
        ),
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
    statements.append(_deny_other_stacks(cfg, "DenyOtherStacksResources", [aws.Action("ecr", "*")]))
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


def _stack_actions(cfg: BootstrapSlice) -> dict[str, list[str]]:
    """The handler permissions of the application's resource types, by service prefix."""
    by_service: dict[str, set[str]] = {}
    for actions in handler_permissions(cfg.app.resource_types, cfg.region).values():
        for action in actions:
            service = action.split(":", 1)[0]
            if service not in _UNUSED_HANDLER_SERVICES:
                by_service.setdefault(service, set()).add(action)
    for action in _EXTRA_ACTIONS:
        by_service.setdefault(action.split(":", 1)[0], set()).add(action)
    return {service: sorted(actions) for service, actions in sorted(by_service.items())}


# The API that receives a role can differ from the principal the role trusts: RDS's
# CreateDBInstance takes the Enhanced Monitoring role (MonitoringRoleArn) that
# monitoring.rds.amazonaws.com assumes. AWS does not document which of the two IAM reports as
# iam:PassedToService there, so both are allowed (the role is bounded either way).
_RECEIVED_BY = {"monitoring.rds.amazonaws.com": "rds.amazonaws.com"}


def _passed_to(trusted: tuple[str, ...]) -> list[str]:
    """Services the application roles may be passed to: those they trust, and the APIs taking them."""
    return sorted({*trusted, *(_RECEIVED_BY[t] for t in trusted if t in _RECEIVED_BY)})


def _action(name: str) -> aws.Action:
    service, action = name.split(":", 1)
    return aws.Action(service, action)


def _iam_resource_statements(prefix: str, actions: set[str]) -> list[aws.Statement]:
    """The IAM handler permissions without conditions, each on the env's own path of what it acts on.

    Instance profiles (AWS::IAM::InstanceProfile) and customer managed policies
    (AWS::IAM::ManagedPolicy) the stacks make live under the same path as their roles; the
    action's resource type decides which ARN it is scoped to
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
    """
    kinds = {"InstanceProfile": application_instance_profile_arns(prefix), "Policy": application_policy_arns(prefix)}
    grouped: dict[str, list[str]] = {}
    for action in sorted(actions):
        name = action.split(":", 1)[1]
        kind = "InstanceProfile" if "InstanceProfile" in name else "Policy" if _on_policy(name) else "Role"
        grouped.setdefault(kind, []).append(action)
    sids = {"Role": "ManageApplicationRoles", "InstanceProfile": "ManageInstanceProfiles", "Policy": "ManagePolicies"}
    return [
        aws.Statement(
            Sid=sids[kind],
            Effect=aws.Allow,
            Action=[_action(a) for a in grouped[kind]],
            Resource=[kinds.get(kind, application_role_arns(prefix))],
        )
        for kind in ("Role", "InstanceProfile", "Policy")
        if kind in grouped
    ]


def _on_policy(name: str) -> bool:
    """Whether an IAM action acts on a managed policy (CreatePolicy, GetPolicyVersion, ...), not a role."""
    return "Role" not in name and ("Policy" in name or "Policies" in name or name == "ListEntitiesForPolicy")


def _service_role_statements(cfg: BootstrapSlice) -> list[aws.Statement]:
    by_service = _stack_actions(cfg)
    iam_actions = set(by_service.get("iam", []))
    s3_actions = by_service.get("s3", [])
    prefix = cfg.names.prefix
    roles = [application_role_arns(prefix)]
    boundary = permissions_boundary(prefix)
    with_boundary = aws.StringEquals("iam:PermissionsBoundary", boundary)
    managed = [Sub(p) for p in cfg.app.managed_policies]
    own_policies = [application_policy_arns(prefix)] if "iam:CreatePolicy" in iam_actions else []
    linked = sorted({name for p, name in _SERVICE_LINKED.items() for rt in cfg.app.resource_types if rt.startswith(p)})
    own = [
        arn("iam", f"role/{cfg.names(name)}", region=False)
        for name in ("cloudformation", "github-plan", "github-deploy", "github-release-plan")
    ]
    statements = [
        aws.Statement(
            Sid="CreateRolesOnlyWithTheBoundary",
            Effect=aws.Allow,
            Action=[_action(a) for a in _WITH_BOUNDARY],
            Resource=roles,
            Condition=aws.Condition(with_boundary),
        ),
        *_iam_resource_statements(prefix, iam_actions - _IAM_ELSEWHERE),
        aws.Statement(
            Sid="PassApplicationRoles",
            Effect=aws.Allow,
            Action=[awacs_iam.PassRole],
            Resource=roles,
            Condition=aws.Condition(aws.StringEquals("iam:PassedToService", _passed_to(cfg.app.role_services))),
        ),
        aws.Statement(
            Sid="NestedStacks",
            Effect=aws.Allow,
            Action=[
                _action(f"cloudformation:{a}")
                for a in (
                    "CreateStack",
                    "UpdateStack",
                    "DeleteStack",
                    "DescribeStacks",
                    "DescribeStackEvents",
                    "DescribeStackResource",
                    "DescribeStackResources",
                    "ListStackResources",
                    "GetTemplate",
                    "GetTemplateSummary",
                    "GetStackPolicy",
                    "SetStackPolicy",
                    "UpdateTerminationProtection",
                    # Nested change sets (IncludeNestedStacks) are made and run under the root's role.
                    "CreateChangeSet",
                    "DescribeChangeSet",
                    "ExecuteChangeSet",
                    "DeleteChangeSet",
                )
            ],
            Resource=_stack_arns(cfg),
        ),
        aws.Statement(
            Sid="ReadTemplates",
            Effect=aws.Allow,
            Action=[awacs_s3.GetObject],
            Resource=[Sub("${ArtifactsBucket.Arn}/*")],
        ),
    ]
    if managed or own_policies:
        statements.insert(
            2,
            aws.Statement(
                Sid="AttachOnlyTheStacksManagedPolicies",
                Effect=aws.Allow,
                Action=[awacs_iam.AttachRolePolicy, awacs_iam.DetachRolePolicy],
                Resource=roles,
                # The AWS managed policies the templates name, and the stacks' own under the env's path.
                Condition=aws.Condition([with_boundary, aws.ArnEquals("iam:PolicyARN", [*managed, *own_policies])]),
            ),
        )
    if s3_actions:
        names = [f"arn:${{AWS::Partition}}:s3:::{name}" for name in cfg.app.bucket_names]
        statements.append(
            aws.Statement(
                Sid="ApplicationBuckets",
                Effect=aws.Allow,
                Action=[_action(a) for a in s3_actions],
                Resource=[Sub(n) for n in names] + [Sub(f"{n}/*") for n in names],
            )
        )
    if "route53:ChangeResourceRecordSets" in by_service.get("route53", []):
        statements.append(_dns_records_statement(cfg))
    if linked:
        statements.append(
            aws.Statement(
                Sid="ServiceLinkedRoles",
                Effect=aws.Allow,
                Action=[awacs_iam.CreateServiceLinkedRole],
                # Service-linked roles have fixed AWS paths; the condition names the services.
                Resource=[arn("iam", "role/aws-service-role/*", region=False)],
                Condition=aws.Condition(aws.StringEquals("iam:AWSServiceName", linked)),
            )
        )
    statements += [
        aws.Statement(
            Sid="DenyBootstrapRolesAndBoundary",
            Effect=aws.Deny,
            Action=[awacs_iam.Action("*")],  # a Deny: no IAM action at all on these
            Resource=[*own, boundary],
        ),
        aws.Statement(
            Sid="DenyRemovingBoundaries",
            Effect=aws.Deny,
            Action=[awacs_iam.DeleteRolePermissionsBoundary],
            Resource=["*"],  # a Deny: no role in the account loses its boundary through this role
        ),
        aws.Statement(
            Sid="DenyArtifactsBucketChanges",
            Effect=aws.Deny,
            NotAction=[awacs_s3.GetObject],
            # A Deny of everything but reading the packaged templates, on the bucket and every object.
            Resource=[GetAtt(ARTIFACTS_BUCKET, "Arn"), Sub("${ArtifactsBucket.Arn}/*")],
        ),
        _deny_bootstrap_stack(cfg),
        _deny_import(),
        # Stacks are scoped by ARN above; the application buckets by name (S3 ABAC is off by default).
        _deny_other_stacks(cfg, "DenyOtherStacksResources", [cfn.Action("*"), awacs_s3.Action("*")]),
    ]
    return statements


def _dns_records_statement(cfg: BootstrapSlice) -> aws.Statement:
    """Record changes only under the names the stacks write (alias, certificate validation, Cloud Map).

    On every hosted zone, not one: Cloud Map's private zone gets its id when it is created. The
    names are the limit: every name of a ChangeResourceRecordSets request must match
    (ForAllValues), and the key must be present (Null false), since ForAllValues alone also
    holds for a request without it.
    https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/specifying-conditions-route53.html
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    """
    key = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    return aws.Statement(
        Sid="DnsRecordsOfTheStacks",
        Effect=aws.Allow,
        Action=[aws.Action("route53", "ChangeResourceRecordSets")],
        # "*": every zone, because Cloud Map's private zone gets its id at create time; the names below are the limit.
        Resource=[arn("route53", "hostedzone/*", region=False, account="")],
        Condition=aws.Condition([aws.Null(key, "false"), aws.ForAllValuesStringLike(key, list(cfg.app.record_names))]),
    )


def _stack_resource_policies(t: Template, cfg: BootstrapSlice) -> list[iam.ManagedPolicy]:
    """The handler permissions on '*', in managed policies of at most 6,144 characters each.

    Inline policies of one role may total 10,240 characters, a managed policy 6,144, and a role
    may have 10 managed policies: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
    """
    # Granted by their own, scoped statements (iam, s3, cloudformation).
    by_service = {
        s: [a for a in actions if a not in _SCOPED_ACTIONS]
        for s, actions in _stack_actions(cfg).items()
        if s not in {"iam", "s3", "cloudformation"}
    }
    chunks: list[list[str]] = [[]]
    for actions in by_service.values():
        for action in actions:
            if sum(len(a) + 3 for a in chunks[-1]) + len(action) > _MANAGED_POLICY_BUDGET:
                chunks.append([])
            chunks[-1].append(action)
    if len(chunks) > _MAX_STACK_POLICIES:
        raise ValueError(f"the stacks' handler permissions need {len(chunks)} managed policies (limit 9)")
    return [
        t.add_resource(
            iam.ManagedPolicy(
                f"{STACK_ACTIONS_POLICY}{i}",
                Description=f"{cfg.names.prefix}: what CloudFormation needs for the stacks' resources",
                PolicyDocument=aws.PolicyDocument(
                    Version="2012-10-17",
                    Statement=[
                        aws.Statement(
                            Sid="StackResources",
                            Effect=aws.Allow,
                            Action=[_action(a) for a in chunk],
                            # "*": exactly the handler permissions of the stacks' resource types; their resources
                            # get ids at create time (vpc-..., sg-..., key ids), many actions have no resource scope.
                            Resource=["*"],
                        )
                    ],
                ),
                Metadata=checkov_skip(*_SERVICE_ROLE_SKIPS),
            )
        )
        for i, chunk in enumerate(chunks, start=1)
    ]


def _service_role(t: Template, cfg: BootstrapSlice) -> iam.Role:
    trust = service_trust("cloudformation.amazonaws.com")
    policy = aws.PolicyDocument(Version="2012-10-17", Statement=_service_role_statements(cfg))
    return t.add_resource(
        iam.Role(
            SERVICE_ROLE,
            RoleName=cfg.names("cloudformation"),
            AssumeRolePolicyDocument=trust,
            Policies=[iam.Policy(PolicyName="stacks", PolicyDocument=policy)],
            ManagedPolicyArns=[Ref(p) for p in _stack_resource_policies(t, cfg)],
            Tags=Tags(**cfg.tags),
            Metadata=checkov_skip(*_SERVICE_ROLE_SKIPS),
        )
    )
