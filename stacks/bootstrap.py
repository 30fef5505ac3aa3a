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

import fnmatch
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
    dynamic_reference_arns,
    handler_permissions,
    managed_policy,
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
# Short: the reasons are repeated on the role and each managed policy (the body goes inline while it fits
# in 95 % of CloudFormation's 51,200-byte TemplateBody limit; kr_cfn/deploy/bootbody.py).
_SERVICE_ROLE_SKIPS = (
    ("CKV_AWS_109", "The stacks' handler permissions; roles only on the env's path, with its boundary."),
    ("CKV_AWS_111", "Writing is a service role's job: the stacks' handler permissions, passed only to CloudFormation."),
    ("CKV_AWS_107", "GetSecretValue only on the stacks' own secrets, under the env's path."),
    ("CKV_AWS_108", "Handlers read data: the app's buckets (by name), SSM parameters (launch template image id)."),
)

# Role actions allowed only when the role carries the boundary (condition iam:PermissionsBoundary).
# https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html#access_policies_boundaries-delegate
_WITH_BOUNDARY = ("iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:DeleteRolePolicy")
# IAM handler permissions granted by their own statements (with conditions). Those never granted
# (users and groups, removing a boundary) are in kr_cfn.iam.NOT_GRANTED with every other one.
_IAM_ELSEWHERE = {
    *_WITH_BOUNDARY,
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PassRole",
    "iam:CreateServiceLinkedRole",
}

# Handler permissions granted by their own statement with a condition, not on '*' with the rest.
_SCOPED_ACTIONS = {"route53:ChangeResourceRecordSets", "secretsmanager:GetSecretValue"}
# Actions CloudFormation itself needs besides the handlers: Fn::GetAZs in the network stack.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference-getavailabilityzones.html
_EXTRA_ACTIONS = ("ec2:DescribeAvailabilityZones", "ec2:DescribeAccountAttributes", "ec2:DescribeSubnets")
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
        plan = _github_role(t, cfg, PLAN_ROLE, "github-plan", plan_subject, plan_workflow_ref(cfg), provider)
        plan.Policies = [_plan_policy(cfg, bucket, service_role, pull_request=True)]
        deploy = _github_role(t, cfg, DEPLOY_ROLE, "github-deploy", deploy_subject, deploy_workflow_ref(cfg), provider)
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


def subject_repo(repository: str, subject_repo: str, owner_id: str | None, repository_id: str | None) -> str:
    """The ``repo:`` segment a repository's OIDC ``sub`` starts with, by name or immutable.

    With immutable subject claims GitHub appends the owner's and the repository's ids with ``@``
    (``repo:octo-org@123456/octo-repo@456789``), in its default subject and in a customised one alike
    (``owner_id`` and ``repo_id`` are always included in the ``repo`` segment):
    https://docs.github.com/en/actions/reference/security/oidc#immutable-subject-claims
    (github/docs content/actions/reference/security/oidc.md, "Immutable subject claims" and
    "Customizing the subject claims for an organization or repository").
    """
    if subject_repo != "immutable":
        return f"repo:{repository}"
    if owner_id is None or repository_id is None:  # config.BootstrapConfig.check refuses this first
        raise ValueError(f"{repository}: the immutable subject needs the owner and repository ids")
    owner, name = repository.split("/", 1)
    return f"repo:{owner}@{owner_id}/{name}@{repository_id}"


def _own_repo(cfg: BootstrapSlice) -> str:
    boot = cfg.bootstrap
    assert boot.github_repository is not None
    return subject_repo(boot.github_repository, boot.oidc_subject_repo, boot.github_owner_id, boot.github_repository_id)


def github_subjects(cfg: BootstrapSlice) -> tuple[str, str]:
    """The OIDC ``sub`` the plan role and the deploy role trust.

    With ``oidc_subject: environment_and_ref`` the repository's subject template is
    ``include_claim_keys: [repo, context, ref]``, so a job names both its environment and its
    branch (``repo:o/r:environment:prod:ref:refs/heads/main``) and a workflow_dispatch from an
    unreviewed branch gets a subject the deploy role does not trust. GitHub's default subject
    names the environment only (``repo:o/r:environment:prod``).
    https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#customizing-the-token-claims
    """
    repo = _own_repo(cfg)
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
    repo = _own_repo(cfg)
    return f"{repo}:{ref}" if cfg.bootstrap.oidc_subject == "environment" else f"{repo}:{ref}:{ref}"


RELEASE_WORKFLOW = ".github/workflows/release.yml"
"""The reusable workflow (``on: workflow_call``) that plans and deploys one environment."""
DEPLOY_WORKFLOW = ".github/workflows/deploy.yml"
"""The workflow whose pull-request job (``plan``) assumes the plan role."""

# GitHub-specific claims AWS STS validates as condition keys of a role trust policy (since January 2026):
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif
# https://aws.amazon.com/about-aws/whats-new/2026/01/aws-sts-supports-validation-identity-provider-claims/
# What each claim holds in a called workflow (repository, ref and environment are the caller's;
# job_workflow_ref names the called workflow): https://docs.github.com/en/actions/reference/security/oidc
CLAIM_REPOSITORY = f"{GITHUB_OIDC_HOST}:repository"
CLAIM_REF = f"{GITHUB_OIDC_HOST}:ref"
CLAIM_JOB_WORKFLOW_REF = f"{GITHUB_OIDC_HOST}:job_workflow_ref"
CLAIM_ENVIRONMENT = f"{GITHUB_OIDC_HOST}:environment"
CLAIM_REPOSITORY_ID = f"{GITHUB_OIDC_HOST}:repository_id"
# GitHub keys listed for STS (IAM User Guide, condition-keys-wif; January 2026 announcement): actor,
# actor_id, job_workflow_ref, repository, repository_id, workflow, ref, environment, enterprise_id.
# Not repository_owner_id: a key STS does not fill is absent, and StringEquals on an absent key never
# matches (the role would lock everyone out); the owner's id is pinned through the immutable sub.


def release_workflow_ref(cfg: BootstrapSlice) -> str:
    """The ``job_workflow_ref`` of a job of the release workflow on the deploy branch of this repository.

    deploy.yml calls it as ``./.github/workflows/release.yml``, so its jobs (release-plan, deploy) carry
    the called file at the caller's ref: ``owner/repo/.github/workflows/release.yml@refs/heads/main``
    (https://docs.github.com/en/actions/reference/security/oidc, claim job_workflow_ref).
    """
    return f"{cfg.bootstrap.github_repository}/{RELEASE_WORKFLOW}@refs/heads/{cfg.bootstrap.deploy_branch or 'main'}"


def deploy_workflow_ref(cfg: BootstrapSlice) -> str:
    """The deploy role's ``job_workflow_ref``: release.yml on the deploy branch.

    With ``deploy_branch: null`` (only with the default subject) the GitHub environment's deployment-branch
    rule chooses the branches, so the role takes release.yml from any branch (never a pull-request or tag ref).
    """
    if cfg.bootstrap.deploy_branch is None:
        return f"{cfg.bootstrap.github_repository}/{RELEASE_WORKFLOW}@refs/heads/*"
    return release_workflow_ref(cfg)


def plan_workflow_ref(cfg: BootstrapSlice) -> str:
    """The ``job_workflow_ref`` of deploy.yml's ``plan`` job: a pull request runs on refs/pull/<number>/merge."""
    return f"{cfg.bootstrap.github_repository}/{DEPLOY_WORKFLOW}@refs/pull/*/merge"


def _claims_condition(claims: dict[str, str]) -> aws.Condition:
    """One StringEquals with every exact claim, one StringLike with those holding a wildcard.

    Two StringEquals elements in one condition would collide (one JSON key), so each operator comes once.
    """
    equals = {k: v for k, v in claims.items() if "*" not in v}
    like = {k: v for k, v in claims.items() if "*" in v}
    return aws.Condition([aws.StringEquals(equals), *([aws.StringLike(like)] if like else [])])


def caller_trust(cfg: BootstrapSlice, provider: object, environment: str | None = None) -> list[aws.Statement]:
    """One trust statement per ``bootstrap.callers`` entry: its branch running our release workflow.

    A job of a called workflow gets an OIDC token whose ``sub``, ``repository``, ``ref`` and
    ``environment`` are the caller's and whose ``job_workflow_ref`` names the called workflow
    file at the ref it was called at. So the statement admits exactly: the caller repository, on
    its configured branch (not a pull request, not another branch), running this repository's
    release.yml from the deploy branch (not another workflow, not another ref of this repository),
    and for the deploy role in the GitHub environment ``environment`` (the caller's, with its
    protection rules). The ``sub`` condition repeats the repository (``repo:<caller>:*``, whatever
    the caller's subject template; ``repo:<owner>@<id>/<name>@<id>:*`` when the caller sends immutable
    subjects) so the trust names it where reviewers and checkov look; a configured ``repository_id``
    is pinned too, so a repository that takes the caller's name later is refused.
    """
    statements = []
    for i, caller in enumerate(cfg.bootstrap.callers, start=1):
        claims = {
            f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
            CLAIM_REPOSITORY: caller.repository,
            CLAIM_REF: f"refs/heads/{caller.branch}",
            CLAIM_JOB_WORKFLOW_REF: release_workflow_ref(cfg),
        }
        if environment is not None:
            claims[CLAIM_ENVIRONMENT] = environment
        if caller.repository_id is not None:
            claims[CLAIM_REPOSITORY_ID] = caller.repository_id
        # "*": the rest of the subject follows the caller's own subject template; the claims above pin
        # its branch, this workflow and the environment exactly. The repo segment is the caller's format.
        repo = subject_repo(caller.repository, caller.subject_repo, caller.owner_id, caller.repository_id)
        claims[f"{GITHUB_OIDC_HOST}:sub"] = f"{repo}:*"
        statements.append(
            aws.Statement(
                Sid=f"Caller{i}ReleaseWorkflow",
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=_claims_condition(claims),
            )
        )
    return statements


def _github_role(
    t: Template, cfg: BootstrapSlice, logical_id: str, name: str, subject: str, workflow_ref: str, provider: object
) -> iam.Role:
    """A role this repository's jobs assume: its subject, the one workflow file and ref that runs the job.

    ``job_workflow_ref`` pins the workflow file and its ref (a new workflow on the deploy branch with
    ``id-token: write`` gets no role), ``repository_id`` the repository when its id is configured (a
    repository that takes the name later has another id). Both are GitHub claims STS validates:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#condition-keys-wif
    """
    claims = {
        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
        f"{GITHUB_OIDC_HOST}:sub": subject,
        CLAIM_JOB_WORKFLOW_REF: workflow_ref,
    }
    if cfg.bootstrap.github_repository_id is not None:
        claims[CLAIM_REPOSITORY_ID] = cfg.bootstrap.github_repository_id
    trust = aws.PolicyDocument(
        Version="2012-10-17",
        Statement=[
            aws.Statement(
                Effect=aws.Allow,
                Principal=aws.Principal("Federated", provider),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=_claims_condition(claims),
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


BOOTSTRAP_STACK_READS = (cfn.DescribeStacks, cfn.ListStackResources, cfn.ListChangeSets)
"""What the pipeline's commands read of the bootstrap stack: its outputs (``kr-cfn outputs --bootstrap``,
``plan``: bucket and role ARNs), its resources and change sets (``status``). Proven by
tests/test_deploy_e2e.py (docs/permissions.md)."""


def _deny_bootstrap_stack(cfg: BootstrapSlice) -> aws.Statement:
    """Explicit deny of every CloudFormation action on this (the bootstrap) stack but the reads above.

    NotAction: every other action, present and future, stays denied
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html).
    """
    return aws.Statement(
        Sid="DenyBootstrapStack",
        Effect=aws.Deny,
        NotAction=list(BOOTSTRAP_STACK_READS),
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
    not covered: see docs/runbook.md "Accounts".
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
    role = _github_role(
        t, cfg, RELEASE_PLAN_ROLE, "github-release-plan", release_plan_subject(cfg), release_workflow_ref(cfg), provider
    )
    role.Policies = [_plan_policy(cfg, bucket, service_role, upload_prefix=cfg.names.prefix), _policy_checks_policy()]
    return role


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
                        cfn.DescribeChangeSet,
                    ],
                    # This env's root and nested stacks only: in a shared account, another env's
                    # templates, outputs and events stay unread (the review reads nested stacks by ARN).
                    Resource=_stack_arns(cfg),
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
                # plan's reminder when the live rotation interval differs from params (kr_cfn/deploy/rotation.py):
                # the secret's metadata, never its value.
                *_database_secret(cfg, "ReadDatabaseSecretRotation", [aws.Action("secretsmanager", "DescribeSecret")]),
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


def _read_service_counts(cfg: BootstrapSlice) -> aws.Statement:
    """The ECS services of the env's cluster: their desired counts, their state (read only).

    The plan's review shows each service's desired count now (kr_cfn.deploy.notes); the deploy job
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

    Pull-request plans name their change sets 'kr-cfn-pr-...' (kr_cfn.deploy.changeset): the plan
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
        Resource=_stack_arns(cfg),
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
                # The workflow waits for the ECS services to be stable after a deploy (ListServices,
                # DescribeServices): ReadServiceCounts of the plan policy, in the env's cluster.
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
        *_read_secrets(cfg, "ReadSecrets", database=True),
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


RDS_SECRET_TAG = "aws:rds:primaryDBInstanceArn"  # noqa: S105 - a tag key
"""The tag RDS puts on the secret it manages for a DB instance: the instance's ARN."""


def _read_secrets(cfg: BootstrapSlice, sid: str, *, database: bool) -> list[aws.Statement]:
    """GetSecretValue on this environment's secrets only (another env's in the same account: refused).

    The named secrets under the env's own path: ``secret:/<prefix>/*`` (every secret the stacks make
    is named there, checked below; '/knowledgerouter/' is no prefix of '/knowledgerouter-dev/'), one
    pattern rather than one ARN per secret (the bootstrap cannot name the data stack's secrets by ARN)
    (ARNs: https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html).
    With ``database``, also the secret RDS keeps the master password in: its name ('rds!db-<uuid>')
    names no environment, its tag does. RDS tags it ``aws:rds:primaryDBInstanceArn`` = the DB
    instance's ARN (RDS's service-linked role may tag 'rds!' secrets with that key only,
    https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonRDSServiceRolePolicy.html;
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html), and tags
    under 'aws:' are AWS's to set, so the condition names exactly this env's instance
    (secretsmanager:ResourceTag, https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html).
    The bootstrap cannot name that secret's ARN: it lives in the data stack (GetAtt
    MasterUserSecret.SecretArn, which the execution role's own policy names).
    """
    read = [aws.Action("secretsmanager", "GetSecretValue")]
    path = f"/{cfg.names.prefix}/"
    outside = [name for name in cfg.app.secret_names if not name.startswith(path)]
    if outside:
        raise ValueError(f"secrets must be named under {path} (the roles read only those): {', '.join(outside)}")
    statements = []
    if cfg.app.secret_names:
        statements.append(
            aws.Statement(Sid=sid, Effect=aws.Allow, Action=read, Resource=[arn("secretsmanager", f"secret:{path}*")])
        )
    if database:
        statements += _database_secret(cfg, f"{sid}OfTheDatabase", read)
    return statements


def _database_secret(cfg: BootstrapSlice, sid: str, actions: list[aws.Action]) -> list[aws.Statement]:
    """``actions`` on the secret RDS keeps this env's master password in, by its RDS tag (see :func:`_read_secrets`)."""
    if not cfg.app.db_instances:
        return []
    return [
        aws.Statement(
            Sid=sid,
            Effect=aws.Allow,
            Action=actions,
            Resource=[arn("secretsmanager", "secret:rds!db-*")],
            Condition=aws.Condition(
                aws.StringEquals(
                    f"secretsmanager:ResourceTag/{RDS_SECRET_TAG}",
                    [arn("rds", f"db:{db}") for db in cfg.app.db_instances],
                )
            ),
        )
    ]


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
            by_service.setdefault(action.split(":", 1)[0], set()).add(action)
    for action in _EXTRA_ACTIONS:
        by_service.setdefault(action.split(":", 1)[0], set()).add(action)
    return {service: _without_covered(actions) for service, actions in sorted(by_service.items())}


def _without_covered(actions: set[str]) -> list[str]:
    """The actions, less those a wildcard among them grants (``ec2:DescribeVpcs`` under ``ec2:Describe*``)."""
    patterns = [a for a in actions if "*" in a]
    return sorted(a for a in actions if not any(p != a and fnmatch.fnmatchcase(a.lower(), p.lower()) for p in patterns))


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
        # A nested stack runs under its parent's role: CloudFormation passes the service role itself
        # (AWS::CloudFormation::Stack's handlers list iam:PassRole; refused, it fails with "AWSCloudFormation
        # is not authorized to perform: iam:PassRole on resource: <the role>",
        # https://github.com/aws-solutions-library-samples/data-lakes-on-aws/issues/275).
        aws.Statement(
            Sid="PassItselfToNestedStacks",
            Effect=aws.Allow,
            Action=[awacs_iam.PassRole],
            Resource=own[:1],
            Condition=aws.Condition(aws.StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")),
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
    if "route53:ChangeResourceRecordSets" in by_service.get("route53", []) and cfg.app.record_names:
        statements.append(_dns_records_statement(cfg))
    if "secretsmanager:GetSecretValue" in by_service.get("secretsmanager", []):
        # AWS::SecretsManager::Secret's handlers read the secrets the stacks make; no handler reads
        # the RDS-managed one (AWS::RDS::DBInstance's list CreateSecret and TagResource only).
        statements += _read_secrets(cfg, "ReadTheStacksSecrets", database=False)
    statements += _dynamic_reference_statements(cfg)
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
            Action=[awacs_iam.Action("*")],  # a Deny: no IAM action on these but passing itself (below)
            Resource=[*own, boundary],
            Condition=aws.Condition(aws.StringNotEqualsIfExists("iam:PassedToService", "cloudformation.amazonaws.com")),
        ),
        aws.Statement(
            Sid="DenyPassingTheGitHubRoles",
            Effect=aws.Deny,
            Action=[awacs_iam.PassRole],
            Resource=own[1:],  # a Deny: the GitHub roles are never passed, to any service
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
        *_deny_other_database_secrets(cfg),
    ]
    return statements


def _deny_other_database_secrets(cfg: BootstrapSlice) -> list[aws.Statement]:
    """No action on the master-password secret RDS keeps for another env's DB instance.

    RDS, not CloudFormation, makes that secret, so it carries no stack-name tag and
    DenyOtherStacksResources does not cover it; its RDS tag names the instance (see :func:`_read_secrets`).
    The service role's Secrets Manager handler permissions are on '*' (ids made at create time).
    Null "false": only a secret that carries the tag; a new one (CreateSecret) carries none yet.
    """
    if not cfg.app.db_instances:
        return []
    key = f"secretsmanager:ResourceTag/{RDS_SECRET_TAG}"
    return [
        aws.Statement(
            Sid="DenyOtherDatabasesSecrets",
            Effect=aws.Deny,
            Action=[aws.Action("secretsmanager", "*")],  # a Deny: every action on another env's DB secret
            Resource=[arn("secretsmanager", "secret:rds!db-*")],
            Condition=aws.Condition(
                [
                    aws.Null(key, "false"),
                    aws.StringNotEquals(key, [arn("rds", f"db:{db}") for db in cfg.app.db_instances]),
                ]
            ),
        )
    ]


def _dynamic_reference_statements(cfg: BootstrapSlice) -> list[aws.Statement]:
    """Read exactly the parameters and secrets the templates' dynamic references name.

    CloudFormation resolves ``{{resolve:...}}`` under the stack's service role: Parameter Store
    references with ``ssm:GetParameters``, Secrets Manager ones with ``secretsmanager:GetSecretValue``
    (kr_cfn.iam.dynamic_references).
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references.html
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html
    """
    refs = cfg.app.dynamic_references
    wanted = (
        ("ReadReferencedParameters", "ssm", "GetParameters", [r for r in refs if r.startswith("ssm:")]),
        ("ReadReferencedSecrets", "secretsmanager", "GetSecretValue", [r for r in refs if r.startswith("secrets")]),
    )
    return [
        aws.Statement(
            Sid=sid,
            Effect=aws.Allow,
            Action=[aws.Action(service, action)],
            Resource=[dynamic_reference_arns(r) for r in named],
        )
        for sid, service, action, named in wanted
        if named
    ]


def _dns_records_statement(cfg: BootstrapSlice) -> aws.Statement:
    """Record changes only under the names the stacks write: the ALB alias and ACM validation names.

    No Cloud Map name: Cloud Map writes its private zone's records itself (kr_cfn.iam._record_names),
    so no environment may write another's service-discovery records in a shared account; and only
    in the zones the templates name (kr_cfn.iam.dns_hosted_zones), no longer every zone.
    Every name of a ChangeResourceRecordSets request must match
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
        # The zones the templates name (alb.hosted_zone_id); no Cloud Map zone, whose id is made at create time.
        Resource=[arn("route53", f"hostedzone/{zone}", region=False, account="") for zone in cfg.app.hosted_zones],
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
