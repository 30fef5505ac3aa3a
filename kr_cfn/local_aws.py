"""``kr-cfn local-aws``: a local AWS endpoint to try bootstrap, package, plan, apply and status on.

moto's server (https://docs.getmoto.org/en/latest/docs/server_mode.html) with the shims of
kr_cfn/moto_shims.py, which the deploy tests use too: a plain ``moto_server`` fails at
bootstrap. It prints the ``export AWS_...`` lines that point boto3 and the AWS CLI at it
(``AWS_ENDPOINT_URL``: https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html)
and serves until Ctrl-C or SIGTERM, which stop it cleanly (exit 0: stopping is how it is
meant to end). Everything it holds lives in memory and is gone when it stops.

moto is an optional extra: ``pip install -e '.[local]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import threading
from typing import Any

EXIT_OK, EXIT_SETUP = 0, 2
MOTO_ACCOUNT = "123456789012"
"""moto's default account: what its STS ``GetCallerIdentity`` answers unless ``--account-id`` says otherwise."""


def export_lines(url: str, region: str) -> list[str]:
    """The shell lines that point boto3 and the AWS CLI at ``url`` with dummy credentials in ``region``."""
    return [
        f"export AWS_ENDPOINT_URL={shlex.quote(url)}",
        "export AWS_ACCESS_KEY_ID=testing",
        "export AWS_SECRET_ACCESS_KEY=testing",
        f"export AWS_REGION={shlex.quote(region)}",
        f"export AWS_DEFAULT_REGION={shlex.quote(region)}",
        # a profile or a real session token left in the shell must not travel along
        "unset AWS_PROFILE AWS_SESSION_TOKEN",
    ]


def _wait_for_stop() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):  # a timed wait: signals are handled between waits
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_local_aws(args: argparse.Namespace) -> int:
    """Run the local endpoint until stopped; 2 when moto is missing or the port cannot be used."""
    try:
        import moto

        from kr_cfn.moto_shims import local_endpoint
    except ModuleNotFoundError as exc:  # moto, or a library of its server extra
        print(f"kr-cfn local-aws: {exc.name} is not installed; pip install -e '.[local]'", file=sys.stderr)
        return EXIT_SETUP
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(local_endpoint(args.host, args.port))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            print(
                f"kr-cfn local-aws: cannot listen on {args.host}:{args.port} ({reason}); "
                "pick another --port (0: any free one)",
                file=sys.stderr,
            )
            return EXIT_SETUP
        # the account of every request: https://docs.getmoto.org/en/latest/docs/multi_account.html
        os.environ["MOTO_ACCOUNT_ID"] = args.account_id
        # werkzeug logs every request; moto warns "No Moto CloudFormation support" for what the shims stand in
        for name in ("werkzeug", "moto"):
            logging.getLogger(name).setLevel(logging.INFO if args.verbose else logging.ERROR)
        print("\n".join(export_lines(url, args.region)), flush=True)
        print(
            f"local AWS (moto {moto.__version__}, account {args.account_id}) at {url}: run the lines above "
            "in the shell that runs kr-cfn; Ctrl-C stops it (its state is in memory only)",
            file=sys.stderr,
            flush=True,
        )
        _wait_for_stop()
    print("local AWS stopped", file=sys.stderr)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register ``kr-cfn local-aws``."""
    p = sub.add_parser(
        "local-aws",
        help="run a local AWS endpoint (moto) to try deploys on; prints the export AWS_... lines",
        description=(
            "Run moto's server with the shims kr-cfn's templates need, print the export lines that point "
            "boto3 at it, serve until Ctrl-C. Needs pip install -e '.[local]'. "
            "Example: kr-cfn local-aws --port 5050. "
            "Exit codes: 0 stopped (Ctrl-C or SIGTERM); 2 moto not installed or the port cannot be used."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    # not moto_server's 5000: macOS's AirPlay Receiver may hold it, as werkzeug's bind error says
    # (https://github.com/pallets/werkzeug/blob/main/src/werkzeug/serving.py, BaseWSGIServer.__init__)
    p.add_argument("--port", type=int, default=5050, help="port to listen on; 0 picks a free one (default: 5050)")
    p.add_argument(
        "--region", default="eu-central-1", help="region the export lines name (default: eu-central-1, the params')"
    )
    p.add_argument(
        "--account-id",
        default=MOTO_ACCOUNT,
        help=f"the account the endpoint says it is (default: moto's {MOTO_ACCOUNT}); an env whose params "
        "name an account_id deploys only to that account",
    )
    p.add_argument("--verbose", action="store_true", help="log every request and moto's warnings")
    p.set_defaults(func=cmd_local_aws)
