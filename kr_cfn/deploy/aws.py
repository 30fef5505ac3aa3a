"""boto3 clients: region and credentials the standard AWS way, ``AWS_ENDPOINT_URL`` honoured."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from kr_cfn.deploy.errors import DeployError


class Aws:
    """One session; every client comes from :meth:`client` so all get the same endpoint."""

    def __init__(self, default_region: str) -> None:
        self.session = boto3.Session()
        self.region = self.session.region_name or default_region
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
