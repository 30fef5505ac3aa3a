"""The application's secrets: which ones roles may read, and the database's RDS-managed secret."""

from __future__ import annotations

from awacs import aws

from kr_cfn.config import BootstrapSlice
from kr_cfn.iam import (
    arn,
)

RDS_SECRET_TAG = "aws:rds:primaryDBInstanceArn"  # noqa: S105 - a tag key
"""The tag RDS puts on the secret it manages for a DB instance: the instance's ARN."""


def read_secrets(cfg: BootstrapSlice, sid: str, *, database: bool) -> list[aws.Statement]:
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
        statements += database_secret(cfg, f"{sid}OfTheDatabase", read)
    return statements


def database_secret(cfg: BootstrapSlice, sid: str, actions: list[aws.Action]) -> list[aws.Statement]:
    """``actions`` on the secret RDS keeps this env's master password in, by its RDS tag (see :func:`read_secrets`)."""
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
