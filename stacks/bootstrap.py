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

from awacs import aws
from troposphere import GetAtt, Ref, Sub, Tags, Template, ecr, iam, s3

from kr_cfn.blocks import add_output, checkov_skip, new_template
from kr_cfn.config import BootstrapSlice
from kr_cfn.iam import (
    arn,
    deny_insecure_transport,
)
from kr_cfn.naming import pascal
from stacks._bootstrap.boundary import boundary_policy
from stacks._bootstrap.github import (
    DEPLOY_WORKFLOW,
    RELEASE_WORKFLOW,
    caller_trust,
    deploy_workflow_ref,
    github_role,
    github_subjects,
    plan_workflow_ref,
)
from stacks._bootstrap.names import (
    ARTIFACTS_BUCKET,
    ARTIFACTS_BUCKET_POLICY,
    BOUNDARY_POLICY,
    DEPLOY_ROLE,
    GITHUB_OIDC_HOST,
    OIDC_PROVIDER,
    PLAN_ROLE,
    PR_ARTIFACTS_PREFIX,
    PR_CHANGE_SETS,
    RELEASE_PLAN_ROLE,
    SERVICE_ROLE,
    STS_AUDIENCE,
)
from stacks._bootstrap.pipeline import deploy_policy, plan_policy, release_plan_role
from stacks._bootstrap.scope import BOOTSTRAP_STACK_READS
from stacks._bootstrap.service_role import add_service_role

__all__ = [  # the stack's names other code reads (logical ids, workflows), with build
    "BOOTSTRAP_STACK_READS",
    "BOUNDARY_POLICY",
    "DEPLOY_ROLE",
    "DEPLOY_WORKFLOW",
    "OIDC_PROVIDER",
    "PLAN_ROLE",
    "PR_ARTIFACTS_PREFIX",
    "PR_CHANGE_SETS",
    "RELEASE_PLAN_ROLE",
    "RELEASE_WORKFLOW",
    "SERVICE_ROLE",
    "build",
]


def build(cfg: BootstrapSlice) -> Template:
    """Build the bootstrap template of one environment."""
    t = new_template(f"{cfg.names.prefix}: bootstrap (artifacts bucket, ECR repositories, deploy roles)")
    bucket = _artifacts_bucket(t, cfg)
    for name in cfg.bootstrap.repositories:
        repo = _repository(t, cfg, name)
        add_output(t, f"{pascal(name)}RepositoryUri", GetAtt(repo, "RepositoryUri"), f"ECR repository for {name}")
    boundary = boundary_policy(t, cfg)
    service_role = add_service_role(t, cfg)
    service_role.DependsOn = [boundary.title]
    add_output(t, "ArtifactsBucketName", Ref(bucket), "Bucket for packaged templates (kr-cfn package --bucket)")
    add_output(t, "CloudFormationRoleArn", GetAtt(service_role, "Arn"), "Role the application stacks run under")
    add_output(t, "PermissionsBoundaryArn", Ref(boundary), "Boundary every application role carries")
    repository = cfg.bootstrap.github_repository
    if repository is not None:
        provider = _oidc_provider(t, cfg)
        plan_subject, deploy_subject = github_subjects(cfg)
        plan = github_role(t, cfg, PLAN_ROLE, "github-plan", plan_subject, plan_workflow_ref(cfg), provider)
        plan.Policies = [plan_policy(cfg, bucket, service_role, pull_request=True)]
        deploy = github_role(t, cfg, DEPLOY_ROLE, "github-deploy", deploy_subject, deploy_workflow_ref(cfg), provider)
        deploy.Policies = [plan_policy(cfg, bucket, service_role), deploy_policy(cfg)]
        deploy.AssumeRolePolicyDocument.Statement += caller_trust(cfg, provider, environment=cfg.env)
        add_output(t, "PlanRoleArn", GetAtt(plan, "Arn"), "Role for pull-request workflows (plan)")
        release = release_plan_role(t, cfg, bucket, service_role, provider)
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
