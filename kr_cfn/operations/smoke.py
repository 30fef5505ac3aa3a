"""``kr-cfn smoke``: the plan's smoke tests against a deployed app (or any URL), with retries.

Plain HTTP from the standard library: with ``--url`` no AWS call is made at all.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

HEALTHZ_LIMIT = 2.0
"""Seconds GET /api/healthz may take (the plan's smoke test; also the latency alarm's default)."""
CHAT_BODY = {"message": "Test query", "session_id": "test-session"}
DEFAULT_BUDGET = 300.0

_clock = time.monotonic  # tests replace these two
_sleep = time.sleep


@dataclass(frozen=True)
class Check:
    """One smoke test: a request and what its answer must be."""

    name: str
    method: str
    path: str
    timeout: float
    """Seconds one attempt may wait for the answer."""
    verdict: Callable[[int, bytes, float], str | None]
    """(status, body, seconds) -> the problem, or None when it passes."""
    body: dict[str, str] | None = None


def _healthz(status: int, body: bytes, seconds: float) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if seconds >= HEALTHZ_LIMIT:
        return f"200 in {seconds:.2f} s (limit {HEALTHZ_LIMIT} s)"
    return None


def _chat(status: int, body: bytes, seconds: float) -> str | None:
    if not 200 <= status < 300:
        return f"HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        return f"HTTP {status} but not JSON: {body[:60]!r}"
    if not isinstance(data, dict) or "answer" not in data:
        keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        return f"JSON without 'answer' (got {keys or 'nothing'})"
    return None


CHECKS = (
    Check("GET /api/healthz", "GET", "/api/healthz", 10.0, _healthz),
    Check("POST /api/chat/", "POST", "/api/chat/", 60.0, _chat, CHAT_BODY),
)


def _attempt(base: str, check: Check, timeout: float) -> tuple[str | None, str]:
    """One request: (problem or None, what was seen)."""
    data = json.dumps(check.body).encode() if check.body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's (http or https)
        base + check.path, data=data, method=check.method, headers={"Content-Type": "application/json"}
    )
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no answer ({reason})", ""
    seconds = time.monotonic() - start
    problem = check.verdict(status, body, seconds)
    return problem, f"HTTP {status} in {seconds:.2f} s"


def run(base_url: str, budget: float = DEFAULT_BUDGET, out: TextIO | None = None) -> bool:
    """Run every check; print one verdict line per check; True when all pass.

    Each check is retried with backoff (2 s doubling, at most 30 s) within ``budget`` seconds in
    all; every check gets at least one attempt.
    """
    out = out or sys.stdout
    base = base_url.rstrip("/")
    deadline = _clock() + budget
    ok = True
    for check in CHECKS:
        attempts, delay, started = 0, 2.0, _clock()
        while True:
            attempts += 1
            timeout = max(1.0, min(check.timeout, deadline - _clock()))
            problem, seen = _attempt(base, check, timeout)
            took = _clock() - started
            tries = f"{attempts} attempt{'s' if attempts > 1 else ''}, {took:.0f} s"
            if problem is None:
                print(f"PASS {check.name}: {seen} ({tries})", file=out)
                break
            if _clock() + delay >= deadline:
                print(f"FAIL {check.name}: {problem} ({tries}; budget {budget:.0f} s used up)", file=out)
                ok = False
                break
            _sleep(delay)
            delay = min(delay * 2, 30.0)
    return ok
