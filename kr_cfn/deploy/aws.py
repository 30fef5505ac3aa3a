"""boto3 clients: region and credentials the standard AWS way, ``AWS_ENDPOINT_URL`` honoured."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from kr_cfn.deploy.errors import DeployError


class Aws:
    """One session; every client comes from :meth:`client` so all get the same endpoint."""

    def __init__(self, default_region: str, region: str | None = None) -> None:
        self.session = boto3.Session()
        self.region = region or self.session.region_name or default_region
        if self.session.get_credentials() is None:
            raise DeployError(
                "no AWS credentials found: set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run in a role (GitHub OIDC, instance profile)"
            )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """A client for ``service`` in the deploy region (endpoint from ``AWS_ENDPOINT_URL`` if set)."""
        if service not in self._clients:
            # botocore reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself.
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ``ClientError``."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    """The AWS error message of a ``ClientError``."""
    return str(exc.response.get("Error", {}).get("Message", exc))


def pinned(params_file: str, params_region: str, account_id: str | None, cli_region: str | None) -> Aws:
    """A session in the params' region and account, checked before any command acts.

    The region: ``--region`` when given on the command line; otherwise the session's region
    (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile) must equal the params' ``region``,
    so a shell left on another region cannot create a second copy of an environment there.
    The account: with ``account_id`` in the params, STS GetCallerIdentity must name it
    (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html; it needs
    no permission, so every role can call it).
    """
    session_region = boto3.Session().region_name
    if cli_region is None and session_region and session_region != params_region:
        raise DeployError(
            f"{params_file}: region: {params_region}, but the AWS session is in {session_region} "
            "(AWS_REGION, AWS_DEFAULT_REGION or the profile): use the params' region, "
            f"or pass --region {session_region} to deploy there on purpose"
        )
    aws = Aws(params_region, region=cli_region or params_region)
    if account_id is not None:
        identity = aws.client("sts").get_caller_identity()
        if identity.get("Account") != account_id:
            raise DeployError(
                f"{params_file}: account_id: {account_id}, but the credentials are for account "
                f"{identity.get('Account')} ({identity.get('Arn')}): use credentials for {account_id} "
                "or correct account_id"
            )
    return aws
