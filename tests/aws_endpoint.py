"""The local AWS endpoint for the deploy tests: kr_cfn/moto_shims.py (moto's server plus its shims).

The shims, what each fills in and what is left out are described in kr_cfn/moto_shims.py;
``kr-cfn local-aws`` runs the same endpoint for a person. Here: pytest's side of it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from kr_cfn.moto_shims import PLACEHOLDERS, UNSUPPORTED_ATTRIBUTES, Placeholder, local_endpoint, reset, shims

__all__ = ["PLACEHOLDERS", "UNSUPPORTED_ATTRIBUTES", "Placeholder", "local_endpoint", "reset", "shims"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def point_boto3_at(mp: Any, url: str, region: str) -> None:
    """Make every boto3 client of the tests reach ``url`` with dummy credentials in ``region``."""
    mp.setenv("AWS_ENDPOINT_URL", url)
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.delenv("AWS_SESSION_TOKEN", raising=False)
    mp.delenv("AWS_PROFILE", raising=False)
    mp.setenv("AWS_DEFAULT_REGION", region)
    mp.setenv("AWS_REGION", region)


def moto_url_fixture(region: str) -> Any:
    """A module-scoped pytest fixture: the local endpoint, boto3 pointed at it; yields its URL."""
    import logging

    import pytest

    @pytest.fixture(scope="module")
    def moto_url() -> Iterator[str]:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        with local_endpoint() as url, pytest.MonkeyPatch.context() as mp:
            point_boto3_at(mp, url, region)
            yield url

    return moto_url
