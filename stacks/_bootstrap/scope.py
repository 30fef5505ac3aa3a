"""Which stacks the pipeline roles and the service role may touch: the env's own, never the bootstrap stack."""

from __future__ import annotations

from awacs import aws
from awacs import cloudformation as cfn

from kr_cfn.config import BootstrapSlice
from kr_cfn.config.bootstrap import bootstrap_stack_name
from kr_cfn.iam import (
    arn,
)


def stack_arns(cfg: BootstrapSlice) -> list[object]:
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


def deny_import() -> aws.Statement:
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


def deny_bootstrap_stack(cfg: BootstrapSlice) -> aws.Statement:
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
    the same names :func:`stack_arns` allows, never the bootstrap stack nor another environment's.
    """
    return [cfg.stack_name, *(f"{cfg.stack_name}-{child}-*" for child in cfg.app.children)]


def deny_other_stacks(cfg: BootstrapSlice, sid: str, not_actions: list[aws.Action]) -> aws.Statement:
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
