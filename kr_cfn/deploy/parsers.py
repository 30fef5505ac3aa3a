"""The deploy subcommands' arguments (kept apart from their code, which imports boto3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kr_cfn import cliargs


def add_parsers(sub: Any, load_env: Any) -> None:
    """Register the deploy subcommands; ``load_env(params_dir, env)`` validates ``--env``."""

    def common(p: argparse.ArgumentParser) -> None:
        cliargs.add_env(p)
        cliargs.add_build_dir(p)
        p.add_argument(
            "--region", help="deploy to this region although the params name another (default: the params' region)"
        )

    def wrap(name: str, module: str = "kr_cfn.deploy.commands") -> Any:
        def run(args: argparse.Namespace) -> int:
            cfg = load_env(Path(args.params), args.env)
            import importlib

            from kr_cfn.deploy.args import check

            check(args, cfg.env)  # malformed options fail before any AWS call

            from kr_cfn.aws import AWS_FAILURES, failure, invocation
            from kr_cfn.deploy import commands  # boto3 is slow to import; `build` needs none of it

            try:
                with invocation(args):
                    return int(getattr(importlib.import_module(module), name)(args, cfg))
            except AWS_FAILURES as exc:  # an AWS call or the network failed: one line, exit 4
                raise failure(exc, commands.default_stack(args, cfg)) from None

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
    p.add_argument("--review-dir", help="folder for review.json, review.md, plan.json (default: <out>/<env>.plan)")
    p.set_defaults(func=wrap("cmd_plan"))

    p = sub.add_parser("apply", help="execute a planned change set and follow it")
    common(p)
    p.add_argument("--stack-name", help="root stack name (default: deploy.stack_name or the name prefix)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--change-set", help="the change set name (or ARN) printed by plan")
    which.add_argument(
        "--plan",
        metavar="FILE",
        help="the plan record plan wrote (<out>/<env>.plan/plan.json): executes exactly its change set, "
        "by name on its stack, and refuses when the stack changed since",
    )
    _plan_digest(p)
    p.add_argument(
        "--allow-replace",
        action="append",
        metavar="LOGICAL_ID",
        help="accept losing this resource (besides the plan record's; the change set's description is never read)",
    )
    p.set_defaults(func=wrap("cmd_apply"))

    p = sub.add_parser("bootstrap", help="plan and apply the bootstrap stack (once per account, region, env)")
    common(p)
    p.add_argument("--allow-replace", action="append", metavar="LOGICAL_ID", help="accept losing this resource")
    p.add_argument("--plan-only", action="store_true", help="review the change set, do not execute it")
    p.add_argument("--review-dir", help="folder for bootstrap-review.json/.md (default: <out>/<env>.plan)")
    p.set_defaults(func=wrap("cmd_bootstrap"))

    p = sub.add_parser("status", help="stack status, nested stacks, pending change sets")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    cliargs.add_format(p, ("text", "json"), json_alias=True)  # json: stacks, nested stacks, change sets, drift
    p.set_defaults(func=wrap("cmd_status"))

    p = sub.add_parser("outputs", help="print the stack outputs")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.add_argument("--bootstrap", action="store_true", help="the bootstrap stack's outputs")
    p.add_argument("--key", help="print only this output's value")
    cliargs.add_format(p, ("text", "json"), json_alias=True)  # json: one object
    p.set_defaults(func=wrap("cmd_outputs"))

    add_day_two_parsers(sub, common, wrap)
    add_qdrant_parsers(sub, common, wrap)


def _plan_digest(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plan-digest",
        metavar="SHA256",
        help="with --plan: the record's sha256 plan published (release.yml: the release-plan job's output); "
        "refused when the file differs",
    )


def add_qdrant_parsers(sub: Any, common: Any, wrap: Any) -> None:
    """``kr-cfn qdrant snapshots`` and ``kr-cfn qdrant restore``."""
    q = sub.add_parser("qdrant", help="Qdrant snapshots in S3 and restoring them")
    qsub = q.add_subparsers(dest="qdrant_command")
    p = qsub.add_parser("snapshots", help="list the collection snapshots in the backups bucket")
    common(p)
    p.add_argument("--stack-name", help="root stack name (default: deploy.stack_name or the name prefix)")
    p.set_defaults(func=wrap("cmd_qdrant_snapshots"))
    p = qsub.add_parser("restore", help="restore a collection snapshot from S3 into the running Qdrant")
    common(p)
    p.add_argument("--stack-name", help="root stack name (default: deploy.stack_name or the name prefix)")
    p.add_argument("--snapshot", required=True, metavar="KEY", help="e.g. qdrant/2026-01-31T030000Z/docs.snapshot")
    p.add_argument("--collection", help="collection to restore into (default: the key's file name)")
    p.add_argument("--timeout", type=int, default=3600, help="seconds to wait for the task (default: 3600)")
    p.add_argument("--no-wait", action="store_true", help="start the task and return")
    p.set_defaults(func=wrap("cmd_qdrant_restore"))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def add_day_two_parsers(sub: Any, common: Any, wrap: Any) -> None:
    """smoke, migrate, drift, destroy, cancel, watch (code in kr_cfn.operations.day2)."""
    p = sub.add_parser("smoke", help="the smoke tests against the app (GET /api/healthz, POST /api/chat/)")
    common(p)
    p.add_argument("--stack-name", help="root stack name (its AppUrl output is the default URL)")
    p.add_argument("--url", help="base URL to test instead of the stack's AppUrl (no AWS call then)")
    p.add_argument("--timeout", type=_positive, default=300.0, metavar="SECONDS", help="total budget (default: 300)")
    p.set_defaults(func=wrap("cmd_smoke", "kr_cfn.operations.day2"))

    p = sub.add_parser("migrate", help="run the Django migrations as a one-off task of the backend")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    image = p.add_mutually_exclusive_group()
    image.add_argument(
        "--image-tag",
        dest="migrate_image_tag",  # one tag, not the NAME=TAG list of plan
        metavar="TAG",
        help="run this backend image tag (before the deploy that brings it)",
    )
    image.add_argument(
        "--plan",
        metavar="FILE",
        help="the plan record: once apply's checks of it pass, run its new backend image, if it brings one",
    )
    _plan_digest(p)
    p.add_argument("--timeout", type=_positive, default=1800.0, metavar="SECONDS", help="give up after (default: 1800)")
    p.set_defaults(func=wrap("cmd_migrate", "kr_cfn.operations.day2"))

    p = sub.add_parser("drift", help="detect drift on the root and every nested stack (exit 1: drifted)")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.set_defaults(func=wrap("cmd_drift", "kr_cfn.operations.day2"))

    p = sub.add_parser("rotation", help="set the database password's rotation interval from params (idempotent)")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.set_defaults(func=wrap("cmd_rotation", "kr_cfn.operations.day2"))

    p = sub.add_parser("destroy", help="delete the env's stacks, keeping every Retain/Snapshot resource")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.add_argument("--dry-run", action="store_true", help="list what is kept and deleted; delete nothing")
    confirm = p.add_mutually_exclusive_group()
    confirm.add_argument(
        "--yes-really-prod", dest="yes_really", action="store_const", const="prod", help="confirm destroying prod"
    )
    confirm.add_argument(
        "--yes-really", metavar="ENV", help="confirm destroying ENV, an env with termination protection"
    )
    p.set_defaults(func=wrap("cmd_destroy", "kr_cfn.operations.day2"))

    p = sub.add_parser("cancel", help="cancel the update in progress (CloudFormation rolls back)")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.add_argument("--wait", action="store_true", help="follow the rollback to its end")
    p.set_defaults(func=wrap("cmd_cancel", "kr_cfn.operations.day2"))

    p = sub.add_parser("watch", help="follow a running update started elsewhere (as apply shows it)")
    common(p)
    p.add_argument("--stack-name", help="root stack name")
    p.add_argument("--bootstrap", action="store_true", help="the bootstrap stack")
    p.add_argument(
        "--restore-policy", action="store_true", help="once stable, set the full stack policy on every stack again"
    )
    p.set_defaults(func=wrap("cmd_watch", "kr_cfn.operations.day2"))
