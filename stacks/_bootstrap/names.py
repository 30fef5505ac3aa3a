"""Logical ids and names of the bootstrap stack, shared by its stack module and its policy modules."""

from __future__ import annotations

ARTIFACTS_BUCKET = "ArtifactsBucket"
ARTIFACTS_BUCKET_POLICY = "ArtifactsBucketPolicy"
OIDC_PROVIDER = "GitHubOidcProvider"
SERVICE_ROLE = "CloudFormationServiceRole"
PLAN_ROLE = "GitHubPlanRole"
DEPLOY_ROLE = "GitHubDeployRole"
RELEASE_PLAN_ROLE = "GitHubReleasePlanRole"
PR_CHANGE_SETS = "kr-cfn-pr-"
"""Name prefix of pull-request change sets (kr_cfn.changes.changeset.PR_CHANGE_SET_PREFIX)."""
PR_ARTIFACTS_PREFIX = "pr"
"""Key prefix of pull-request packages (``kr-cfn package --pull-request``); deploys never read it."""

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"

BOUNDARY_POLICY = "ApplicationPermissionsBoundary"
STACK_ACTIONS_POLICY = "StackActionsPolicy"
