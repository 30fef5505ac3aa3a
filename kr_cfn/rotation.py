"""A rotated database password reaches the running tasks: EventBridge rule -> Step Functions -> ECS.

RDS rotates its managed master-user secret itself; ECS injects a secret only when a container
starts ("If the secret is subsequently updated or rotated, the container will not receive the
updated value automatically. You must either launch a new task or ... force a new deployment",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html).
So every successful rotation of *this environment's* secret starts a new deployment of every
service that injects it:

- an EventBridge rule on Secrets Manager's ``RotationSucceeded`` event, which CloudTrail delivers
  as ``detail-type`` "AWS Service Event via CloudTrail" with the secret's ARN in
  ``detail.additionalEventData.SecretId`` (Secrets Manager user guide, "Match Secrets Manager
  events with EventBridge" and "Log entries for rotation",
  https://docs.aws.amazon.com/secretsmanager/latest/userguide/monitoring-eventbridge.html,
  https://docs.aws.amazon.com/secretsmanager/latest/userguide/cloudtrail_log_entries.html;
  "AWS Service Event via CloudTrail": https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html).
  CloudTrail delivers it on a best-effort basis: a missed event means a redeploy by hand
  (runbook, "Rotation and running tasks").
- a Step Functions state machine with one task per service, the AWS SDK integration
  ``arn:<partition>:states:::aws-sdk:ecs:updateService`` with ``ForceNewDeployment: true``
  (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html: the
  integration's parameters are the API's members in PascalCase); no Lambda code.

Both roles are least privilege (awacs): the state machine's may call ``ecs:UpdateService`` on
exactly those services' ARNs, the rule's may start exactly that state machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from awacs import ecs as ecs_actions
from awacs import states
from awacs.aws import Allow, ArnLike, PolicyDocument, Statement, StringEquals
from troposphere import AWS_ACCOUNT_ID, GetAtt, Ref, Sub, Template, events, iam, stepfunctions

from kr_cfn.blocks import checkov_skip
from kr_cfn.iam import arn, bounded, service_trust
from kr_cfn.naming import pascal

DB_SECRET_OUTPUT = "DbSecretArn"  # noqa: S105 - an output name
"""The data stack's output with the ARN of RDS's managed master-user secret."""
RULE = "DbSecretRotatedRule"
STATE_MACHINE = "DbSecretRedeployStateMachine"
STATE_MACHINE_ROLE = "DbSecretRedeployRole"
EVENTS_ROLE = "DbSecretRotatedEventsRole"
UPDATE_SERVICE = "arn:${AWS::Partition}:states:::aws-sdk:ecs:updateService"
"""The Step Functions AWS SDK integration for ECS UpdateService (Resource of each task state)."""


def state_machine_name(prefix: str) -> str:
    """The state machine's name: the environment's prefix, so the boundary can name it."""
    return f"{prefix}-db-secret-redeploy"


@dataclass(frozen=True)
class Consumer:
    """A service that injects the secret: its name in params and its ECS service resource."""

    name: str
    service: Any


def event_pattern(secret_arn: object) -> dict[str, Any]:
    """The EventBridge pattern of one secret's successful rotation (CloudTrail service event)."""
    return {
        "source": ["aws.secretsmanager"],
        "detail-type": ["AWS Service Event via CloudTrail"],
        "detail": {
            "eventSource": ["secretsmanager.amazonaws.com"],
            "eventName": ["RotationSucceeded"],
            "additionalEventData": {"SecretId": [secret_arn]},
        },
    }


def definition(consumers: Sequence[Consumer]) -> dict[str, Any]:
    """States-language definition: one ``updateService`` task per service, in order, each retried.

    ``${Cluster}``, ``${UpdateService}`` and ``${<Name>Service}`` are DefinitionSubstitutions.
    """
    names = [f"Redeploy{pascal(c.name)}" for c in consumers]
    machine_states: dict[str, Any] = {}
    for i, (c, state) in enumerate(zip(consumers, names, strict=True)):
        task: dict[str, Any] = {
            "Type": "Task",
            "Resource": "${UpdateService}",
            "Parameters": {
                "Cluster": "${Cluster}",
                "Service": f"${{{pascal(c.name)}Service}}",
                "ForceNewDeployment": True,
            },
            "ResultPath": None,
            # Throttling or a deployment being set up: try again with backoff.
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 5, "BackoffRate": 2.0}],
        }
        if i + 1 < len(names):
            task["Next"] = names[i + 1]
        else:
            task["End"] = True
        machine_states[state] = task
    return {
        "Comment": "Force a new deployment of every service that injects the rotated database secret",
        "StartAt": names[0],
        "States": machine_states,
    }


def redeploy_on_rotation(
    t: Template, prefix: str, secret_arn: object, cluster: Any, consumers: Sequence[Consumer]
) -> None:
    """Add the rule, the state machine and their two roles; nothing when no service injects the secret."""
    if not consumers:
        return
    service_arns = [Ref(c.service) for c in consumers]  # Ref of AWS::ECS::Service is its ARN
    machine_role = t.add_resource(
        iam.Role(
            STATE_MACHINE_ROLE,
            AssumeRolePolicyDocument=service_trust(
                "states.amazonaws.com",
                StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID)),
                ArnLike("aws:SourceArn", arn("states", "stateMachine:*")),
            ),
            **bounded(prefix),
            Policies=[
                iam.Policy(
                    PolicyName="redeploy-services",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[Statement(Effect=Allow, Action=[ecs_actions.UpdateService], Resource=service_arns)],
                    ),
                )
            ],
        )
    )
    substitutions: dict[str, object] = {"Cluster": Ref(cluster), "UpdateService": Sub(UPDATE_SERVICE)}
    for c in consumers:
        substitutions[f"{pascal(c.name)}Service"] = GetAtt(c.service, "Name")
    machine = t.add_resource(
        stepfunctions.StateMachine(
            STATE_MACHINE,
            StateMachineName=state_machine_name(prefix),
            StateMachineType="STANDARD",
            Definition=definition(consumers),
            DefinitionSubstitutions=substitutions,
            RoleArn=GetAtt(machine_role, "Arn"),
            Metadata=checkov_skip(
                ("CKV_AWS_284", "Two API calls per rotation; the execution history in Step Functions is the trace."),
                ("CKV_AWS_285", "Execution history (90 days) is kept by Step Functions; no payload worth logging."),
            ),
        )
    )
    events_role = t.add_resource(
        iam.Role(
            EVENTS_ROLE,
            AssumeRolePolicyDocument=service_trust(
                "events.amazonaws.com", StringEquals("aws:SourceAccount", Ref(AWS_ACCOUNT_ID))
            ),
            **bounded(prefix),
            Policies=[
                iam.Policy(
                    PolicyName="start-redeploy",
                    PolicyDocument=PolicyDocument(
                        Version="2012-10-17",
                        Statement=[Statement(Effect=Allow, Action=[states.StartExecution], Resource=[Ref(machine)])],
                    ),
                )
            ],
        )
    )
    t.add_resource(
        events.Rule(
            RULE,
            Name=f"{prefix}-db-secret-rotated",
            Description=f"{prefix}: the database secret rotated; redeploy the services that inject it",
            EventPattern=event_pattern(secret_arn),
            State="ENABLED",
            Targets=[events.Target(Id="Redeploy", Arn=Ref(machine), RoleArn=GetAtt(events_role, "Arn"))],
        )
    )
