"""The CloudFormation service role: the stacks' handler permissions, in managed policies under budget."""

from __future__ import annotations

import fnmatch

from awacs import aws
from awacs import cloudformation as cfn
from awacs import iam as awacs_iam
from awacs import s3 as awacs_s3
from troposphere import GetAtt, Ref, Sub, Tags, Template, iam

from kr_cfn.blocks import checkov_skip
from kr_cfn.config import BootstrapSlice
from kr_cfn.iam import (
    application_instance_profile_arns,
    application_policy_arns,
    application_role_arns,
    arn,
    dynamic_reference_arns,
    handler_permissions,
    permissions_boundary,
    service_trust,
)
from stacks._bootstrap.names import ARTIFACTS_BUCKET, SERVICE_ROLE, STACK_ACTIONS_POLICY
from stacks._bootstrap.scope import deny_bootstrap_stack, deny_import, deny_other_stacks, stack_arns
from stacks._bootstrap.secrets import RDS_SECRET_TAG, read_secrets

_MANAGED_POLICY_BUDGET = 5000  # characters of actions per managed policy (limit 6,144 with the rest)
_MAX_STACK_POLICIES = 9  # a role may have 10 managed policies
# Short: the reasons are repeated on the role and each managed policy (the body goes inline while it fits
# in 95 % of CloudFormation's 51,200-byte TemplateBody limit; kr_cfn/changes/bootbody.py).
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
    prefix = cfg.names.prefix
    roles = [application_role_arns(prefix)]
    boundary = permissions_boundary(prefix)
    with_boundary = aws.StringEquals("iam:PermissionsBoundary", boundary)
    managed = [Sub(p) for p in cfg.app.managed_policies]
    own_policies = [application_policy_arns(prefix)] if "iam:CreatePolicy" in iam_actions else []
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
        _nested_stacks_statement(cfg),
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
    statements += _application_statements(cfg, by_service)
    statements += _denies(cfg, own, boundary)
    return statements


def _nested_stacks_statement(cfg: BootstrapSlice) -> aws.Statement:
    """The env's root and nested stacks: a nested stack runs and changes under its parent's role."""
    return aws.Statement(
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
        Resource=stack_arns(cfg),
    )


def _application_statements(cfg: BootstrapSlice, by_service: dict[str, list[str]]) -> list[aws.Statement]:
    """What the stacks' own resources need beyond '*': their buckets, DNS records, secrets, service-linked roles."""
    s3_actions = by_service.get("s3", [])
    linked = sorted({name for p, name in _SERVICE_LINKED.items() for rt in cfg.app.resource_types if rt.startswith(p)})
    statements: list[aws.Statement] = []
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
        statements += read_secrets(cfg, "ReadTheStacksSecrets", database=False)
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
    return statements


def _denies(cfg: BootstrapSlice, own: list[object], boundary: object) -> list[aws.Statement]:
    """What the service role never does: the bootstrap roles, boundary, bucket and stack, other envs' stacks."""
    return [
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
        deny_bootstrap_stack(cfg),
        deny_import(),
        # Stacks are scoped by ARN above; the application buckets by name (S3 ABAC is off by default).
        deny_other_stacks(cfg, "DenyOtherStacksResources", [cfn.Action("*"), awacs_s3.Action("*")]),
        *_deny_other_database_secrets(cfg),
    ]


def _deny_other_database_secrets(cfg: BootstrapSlice) -> list[aws.Statement]:
    """No action on the master-password secret RDS keeps for another env's DB instance.

    RDS, not CloudFormation, makes that secret, so it carries no stack-name tag and
    DenyOtherStacksResources does not cover it; its RDS tag names the instance (see :func:`read_secrets`).
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


def add_service_role(t: Template, cfg: BootstrapSlice) -> iam.Role:
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
