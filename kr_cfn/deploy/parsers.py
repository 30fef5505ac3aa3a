"""The deploy subcommands' arguments (kept apart from their code, which imports boto3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any, load_env: Any) -> None:
    """Register the deploy subcommands; ``load_env(params_dir, env)`` validates ``--env``."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", required=True, help="environment (a params/<env>.yaml)")
        p.add_argument("--params", default="params", help="folder of <env>.yaml files (default: params)")
        p.add_argument("--out", default="out", help="build output folder (default: out)")
        p.add_argument(
            "--region", help="deploy to this region although the params name another (default: the params' region)"
        )

    def wrap(name: str) -> Any:
        def run(args: argparse.Namespace) -> int:
            cfg = load_env(Path(args.params), args.env)
            from kr_cfn.deploy.args import check

            check(args, cfg.env)  # malformed options fail before any AWS call
            from botocore.exceptions import BotoCoreError, ClientError

            from kr_cfn.deploy import commands  # boto3 is slow to import; `build` needs none of it
            from kr_cfn.deploy.errors import EXIT_FAILED, DeployError

            try:
                return int(getattr(commands, name)(args, cfg))
            except ClientError as exc:  # an AWS call failed: one line, exit 1
                raise DeployError(f"AWS error: {exc}", code=EXIT_FAILED) from None
            except BotoCoreError as exc:  # no endpoint, no region, unreadable response
                raise DeployError(f"AWS error: {exc}") from None

        return run

    p = sub.add_parser("package", help="upload nested templates by content hash, write the packaged root")
    common(p)
    p.add_argument("--bucket", required=True, help="artifacts bucket (the bootstrap's ArtifactsBucketName)")
    p.add_argument("--prefix", help="key prefix (default: the name prefix)")
    p.add_argument(
        "--pull-request",
        action="store_true",
        help="a pull-request plan: upload under pr/<prefix>, which deploys never use (the plan role writes only there)",
    )
    p.set_defaults(func=wrap("cmd_package"))

    p = sub.add_parser("plan", help="create and review the change set (exit 3: stateful resources at risk)")
    common(p)
    p.add_argument("--stack-name", help="root stack name (default: deploy.stack_name or the name prefix)")
    p.add_argument("--image-tag", action="append", metavar="NAME=TAG", help="e.g. backend=3f2c1ab (repeatable)")
    p.add_argument("--allow-replace", action="append", metavar="LOGICAL_ID", help="accept losing this resource")
    p.add_argument("--review-dir", help="where review.json and review.md go (default: out/<env>)")
    p.set_defaults(func=wrap("cmd_plan"))

    p = sub.add_parser("apply", help="execute a planned change set and follow it")
    common(p)
    p.add_argument("--stack-name", help="root stack name (default: deploy.stack_name or the name prefix)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--change-set", help="the change set name (or ARN) printed by plan")
    which.add_argument(
        "--plan",
        metavar="FILE",
        help="the plan record (plan.json) plan wrote: executes exactly its change set, by ARN, and refuses "
        "when the stack changed since",
    )
    p.set_defaults(func=wrap("cmd_apply"))

    p = sub.add_parser("bootstrap", help="plan and apply the bootstrap stack (once per account, region, env)")
    common(p)
    p.add_argument("--allow-replace", action="append", metavar="LOGICAL_ID", help="accept losing this resource")
    p.add_argument("--plan-only", action="store_true", help="review the change set, do not execute it")
    p.add_argument("--review-dir", help="where bootstrap-review.json/.md go (default: out/<env>)")
    p.set_defaults(func=wrap("cmd_bootstrap"))

    p = sub.add_parser("status", help="stack status, nested stacks, pending change sets")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.set_defaults(func=wrap("cmd_status"))

    p = sub.add_parser("outputs", help="print the stack outputs")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.add_argument("--bootstrap", action="store_true", help="the bootstrap stack's outputs")
    p.add_argument("--key", help="print only this output's value")
    p.add_argument("--json", action="store_true", help="as a JSON object")
    p.set_defaults(func=wrap("cmd_outputs"))
