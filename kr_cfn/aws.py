"""boto3 clients: region and credentials the standard AWS way, ``AWS_ENDPOINT_URL`` honoured.

Every client retries in botocore's ``adaptive`` mode: throttling errors, 5xx answers and
dropped or timed-out connections are retried with exponential backoff (capped at 20 s per
wait) and a client-side rate limiter that slows down while AWS throttles
(https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html). What still
fails after the last attempt becomes one line naming the operation and the stack
(:func:`failure`), exit 4.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.parsers import ResponseParserError
from urllib3.exceptions import HTTPError as Urllib3Error

from kr_cfn.errors import EXIT_AWS, EXIT_USAGE, DeployError

MAX_ATTEMPTS = 8
"""Attempts per call (the first one included); ``AWS_MAX_ATTEMPTS`` overrides it."""

AWS_FAILURES: tuple[type[BaseException], ...] = (ClientError, BotoCoreError, ResponseParserError, Urllib3Error)
"""Every error an AWS call can raise (botocore wraps most of urllib3's; the rest are caught too)."""

SESSION_HOOKS: list[Callable[[boto3.Session, argparse.Namespace | None], None]] = []
"""Called with every new session and the arguments of the command it serves (None outside one).

The tests register a recorder of every API call each command makes here (tests/pipeline_calls.py).
"""
_INVOCATION: ContextVar[argparse.Namespace | None] = ContextVar("kr_cfn_invocation", default=None)

_BAD_SETUP = (NoCredentialsError, PartialCredentialsError, NoRegionError, ProfileNotFound)
_LAST_CALL: dict[str, Any] = {}
_MAX_LINE = 300


@contextlib.contextmanager
def invocation(args: argparse.Namespace) -> Iterator[None]:
    """The sessions made inside the block serve the command ``args`` was parsed from."""
    token = _INVOCATION.set(args)
    try:
        yield
    finally:
        _INVOCATION.reset(token)


NOTICE_AFTER = 10.0
"""Seconds an AWS call may stay unanswered before a "waiting for AWS" line (``KR_CFN_AWS_NOTICE`` overrides)."""
READ_TIMEOUT = 60.0
"""Seconds botocore waits for an answer per attempt (``KR_CFN_AWS_READ_TIMEOUT`` overrides; connect: 10)."""


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        raise DeployError(f"{name}={os.environ[name]!r}: expected a number of seconds") from None
    return value if value > 0 else default


def max_attempts() -> int:
    """Attempts per call, the first one included (``AWS_MAX_ATTEMPTS`` or :data:`MAX_ATTEMPTS`)."""
    try:
        return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS") or MAX_ATTEMPTS))
    except ValueError:
        raise DeployError(f"AWS_MAX_ATTEMPTS={os.environ['AWS_MAX_ATTEMPTS']!r}: expected a whole number") from None


def _client_config() -> Config:
    # Timeouts and retries: https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html
    read_timeout = _seconds("KR_CFN_AWS_READ_TIMEOUT", READ_TIMEOUT)
    return Config(
        retries={"mode": "adaptive", "total_max_attempts": max_attempts()},
        connect_timeout=min(10.0, read_timeout),
        read_timeout=read_timeout,
    )


class _Waiting:
    """Says on stderr when an AWS call has not answered for a while: silence would look like a hang.

    botocore emits ``request-created`` (with the retry context, attempt n) and ``before-send`` before
    each attempt and ``response-received`` after it, answered or failed (botocore/endpoint.py).
    """

    def __init__(self) -> None:
        self.after = _seconds("KR_CFN_AWS_NOTICE", NOTICE_AFTER)
        self.attempts = max_attempts()
        self.attempt = 1
        self.timer: threading.Timer | None = None

    def created(self, request: Any, **_: Any) -> None:
        self.attempt = int(((getattr(request, "context", None) or {}).get("retries") or {}).get("attempt") or 1)

    def sending(self, event_name: str, **_: Any) -> None:
        self.answered()
        _, service, operation = ([*event_name.split("."), "", ""])[:3]
        line = (
            f"waiting for AWS (attempt {self.attempt}/{self.attempts}): {service} {operation} "
            f"has not answered for {self.after:g} s"
        )
        self.timer = threading.Timer(self.after, lambda: print(line, file=sys.stderr, flush=True))
        self.timer.daemon = True
        self.timer.start()

    def answered(self, **_: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _remember_call(params: dict[str, Any], model: Any, **_: Any) -> None:
    """Record the operation about to be called, so a failure can name it and its stack."""
    _LAST_CALL.clear()
    _LAST_CALL.update(service=model.service_model.service_name, operation=model.name, params=dict(params))


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
        self.session.events.register("before-parameter-build", _remember_call)
        waiting = _Waiting()
        self.session.events.register("request-created", waiting.created)
        self.session.events.register("before-send", waiting.sending)
        self.session.events.register("response-received", waiting.answered)
        for hook in SESSION_HOOKS:
            hook(self.session, _INVOCATION.get())
        self._config = _client_config()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """A client for ``service`` in the deploy region (endpoint from ``AWS_ENDPOINT_URL`` if set)."""
        if service not in self._clients:
            # botocore reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself.
            self._clients[service] = self.session.client(service, region_name=self.region, config=self._config)
        return self._clients[service]


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ``ClientError``."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    """The AWS error message of a ``ClientError``."""
    return str(exc.response.get("Error", {}).get("Message", exc))


def stack_label(stack: str) -> str:
    """A stack's name from its name or ARN (``arn:...:stack/NAME/uuid``)."""
    match = re.match(r"arn:[^:]+:cloudformation:[^:]*:[^:]*:stack/([^/]+)/", stack)
    return match.group(1) if match else stack


def one_line(text: str, limit: int = _MAX_LINE) -> str:
    """``text`` on one line, cut at ``limit`` characters (garbage answers can be long)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        tried = f" (after {attempts + 1} attempts)" if attempts else ""
        return f"{error_code(exc) or 'error'}: {error_message(exc)}{tried}"
    if isinstance(exc, ResponseParserError):
        return f"unreadable answer (not the AWS protocol; a proxy or an outage?): {exc}"
    return f"{type(exc).__name__}: {exc}"


def failure(exc: BaseException, stack: str | None = None) -> DeployError:
    """One line for an AWS or network error: the operation, the stack, what went wrong.

    Exit 2 when the local setup is wrong (no credentials, no region, unknown profile), exit 4
    for everything AWS or the network answered (or did not).
    """
    if isinstance(exc, _BAD_SETUP):
        return DeployError(f"AWS setup: {one_line(str(exc))}", code=EXIT_USAGE)
    operation = getattr(exc, "operation_name", None) or _LAST_CALL.get("operation", "?")
    service = _LAST_CALL.get("service", "")
    named = _LAST_CALL.get("params", {}).get("StackName") if _LAST_CALL.get("operation") == operation else None
    where = stack_label(str(named or stack or ""))
    on = (f" on stack {where}" if service == "cloudformation" else f" (for stack {where})") if where else ""
    what = f"{service} {operation}".strip()
    return DeployError(f"AWS error: {what}{on} failed: {one_line(_reason(exc))}", EXIT_AWS)


def pinned(params_file: str, params_region: str, account_id: str | None, cli_region: str | None) -> Aws:
    """A session in the params' region and account, checked before any command acts.

    The region: ``--region`` when given on the command line; otherwise the session's region
    (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile) must equal the params' ``region``,
    so a shell left on another region cannot create a second copy of an environment there.
    The account: with ``account_id`` in the params, STS GetCallerIdentity must name it
    (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html; it needs
    no permission, so every role can call it).
    """
    # boto3 reads AWS_DEFAULT_REGION and the profile, not AWS_REGION (botocore/configprovider.py:
    # 'region': AWS_DEFAULT_REGION), while the AWS CLI v2 and the other SDKs take AWS_REGION first
    # (https://docs.aws.amazon.com/sdkref/latest/guide/feature-region.html): check both.
    for where, session_region in (("AWS_REGION", os.environ.get("AWS_REGION")), ("", boto3.Session().region_name)):
        if cli_region is None and session_region and session_region != params_region:
            raise DeployError(
                f"{params_file}: region: {params_region}, but the AWS session is in {session_region} "
                f"({where or 'AWS_DEFAULT_REGION or the profile'}): use the params' region, "
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
