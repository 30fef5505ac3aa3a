"""IAM building blocks (awacs): ARNs from pseudo-parameters, trust policies, bucket guards."""

from __future__ import annotations

from awacs import s3
from awacs.aws import Allow, Bool, Condition, ConditionElement, Deny, PolicyDocument, Principal, Statement
from awacs.sts import AssumeRole
from troposphere import GetAtt, Sub

POLICY_VERSION = "2012-10-17"


def arn(service: str, resource: str, *, region: bool = True, account: str | None = None) -> Sub:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` from the pseudo-parameters.

    ``region=False`` for global services (IAM); ``account="aws"`` for AWS managed policies.
    ``resource`` may itself use ``${...}`` substitutions.
    """
    where = "${AWS::Region}" if region else ""
    who = account if account is not None else "${AWS::AccountId}"
    return Sub(f"arn:${{AWS::Partition}}:{service}:{where}:{who}:{resource}")


def managed_policy(name: str) -> Sub:
    """The ARN of an AWS managed policy, e.g. ``service-role/AmazonRDSEnhancedMonitoringRole``."""
    return arn("iam", f"policy/{name}", region=False, account="aws")


def service_trust(service: str, *conditions: ConditionElement) -> PolicyDocument:
    """Trust policy letting one AWS service principal assume the role, under ``conditions``."""
    statement = Statement(Effect=Allow, Principal=Principal("Service", service), Action=[AssumeRole])
    if conditions:
        statement.Condition = Condition(list(conditions))
    return PolicyDocument(Version=POLICY_VERSION, Statement=[statement])


def deny_insecure_transport(bucket_logical_id: str) -> Statement:
    """Bucket-policy statement refusing every request that does not use TLS."""
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[s3.Action("*")],
        Resource=[GetAtt(bucket_logical_id, "Arn"), Sub(f"${{{bucket_logical_id}.Arn}}/*")],
        Condition=Condition(Bool("aws:SecureTransport", False)),
    )
