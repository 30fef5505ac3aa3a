"""The rotation schedule of the RDS-managed master password: read, compare, set.

CloudFormation cannot set it: ``AWS::RDS::DBInstance`` ``MasterUserSecret`` has only
``KmsKeyId`` (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-rds-dbinstance-masterusersecret.html),
and ``AWS::SecretsManager::RotationSchedule`` configures a Lambda rotation or a hosted rotation
(``HostedRotationLambda``), not a managed one. RDS's managed rotation defaults to seven days and
the interval is changed through Secrets Manager: ``RotateSecret`` with ``RotationRules`` and no
``RotationLambdaARN`` ("For secrets that use a managed rotation, omit this field",
https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html;
https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_managed.html).
``RotateImmediately: false`` only changes the schedule: the next rotation comes in the next window.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from kr_cfn.aws import Aws

DATA_STACK = "DataStack"
SECRET_OUTPUT = "DbSecretArn"  # noqa: S105 - an output name


def secret_arn(aws: Aws, stack: dict[str, Any]) -> str | None:
    """The ARN of the database secret from the deployed data stack's outputs, or None."""
    cfn = aws.client("cloudformation")
    try:
        res = cfn.describe_stack_resource(StackName=stack["StackId"], LogicalResourceId=DATA_STACK)
    except ClientError:
        return None
    nested = res["StackResourceDetail"].get("PhysicalResourceId")
    if not nested:
        return None
    (data,) = cfn.describe_stacks(StackName=nested)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in data.get("Outputs") or []}.get(SECRET_OUTPUT)


def live_days(aws: Aws, arn: str) -> int | None:
    """The secret's rotation interval in days, or None when it does not rotate (or not every N days)."""
    desc = aws.client("secretsmanager").describe_secret(SecretId=arn)
    if not desc.get("RotationEnabled"):
        return None
    rules = desc.get("RotationRules") or {}
    if "AutomaticallyAfterDays" in rules:
        return int(rules["AutomaticallyAfterDays"])
    match = re.fullmatch(r"rate\((\d+) days?\)", rules.get("ScheduleExpression", ""))
    return int(match.group(1)) if match else None


def ensure(aws: Aws, arn: str, days: int) -> bool:
    """Set the interval to ``days`` unless it already is; True when it changed."""
    if live_days(aws, arn) == days:
        return False
    aws.client("secretsmanager").rotate_secret(
        SecretId=arn, RotationRules={"AutomaticallyAfterDays": days}, RotateImmediately=False
    )
    return True


def warnings(aws: Aws, stack: dict[str, Any] | None, days: int, env: str) -> list[str]:
    """``plan``'s warning when the deployed secret's interval is not the params' one."""
    if not stack or stack.get("StackStatus") == "REVIEW_IN_PROGRESS":
        return []
    try:
        arn = secret_arn(aws, stack)
        if arn is None:
            return []
        live = live_days(aws, arn)
    except ClientError as exc:  # the plan goes on: this is a reminder, not a check of the change set
        return [f"could not read the database password's rotation schedule ({exc}); see kr-cfn rotation --env {env}"]
    if live == days:
        return []
    shown = "does not rotate on a fixed interval" if live is None else f"rotates every {live} days"
    return [
        f"the database password {shown}, params say every {days} days "
        f"(data.db_password_rotation_days): run kr-cfn rotation --env {env}"
    ]
