"""The public image pins, from ``images.Dockerfile`` next to this module (Dependabot updates that file).

Dependabot cannot read Python or params YAML, but its docker ecosystem updates ``FROM`` lines of
files named like ``*.Dockerfile``
(https://docs.github.com/en/code-security/dependabot/ecosystems-supported-by-dependabot/supported-ecosystems-and-repositories#docker),
so the pins live in one such file and the defaults are read from it. Its file fetcher takes every
file of the configured directory whose name matches ``/dockerfile|containerfile/i``
(dependabot-core ``docker/lib/dependabot/docker/file_fetcher.rb``), ``images.Dockerfile`` included.
Params may still override any service's ``image``; those overrides are the operator's to keep current.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_FROM = re.compile(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", re.IGNORECASE)


@cache
def pins() -> dict[str, str]:
    """``{use: image}`` of every ``FROM <image> AS <use>`` line."""
    text = resources.files("kr_cfn.config").joinpath("images.Dockerfile").read_text(encoding="utf-8")
    return {m.group(2): m.group(1) for m in map(_FROM.match, text.splitlines()) if m}


def image(use: str) -> str:
    """The pinned image for ``use`` (qdrant, redis, prometheus, grafana, aws-cli)."""
    return pins()[use]
