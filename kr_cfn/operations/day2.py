"""The day-two subcommands of ``kr-cfn``: smoke, migrate, drift, rotation, destroy, cancel, watch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kr_cfn import config
from kr_cfn.aws import Aws, stack_label
from kr_cfn.changes import apply as applying
from kr_cfn.changes import changeset
from kr_cfn.deploy.args import IMAGE_TAG
from kr_cfn.deploy.commands import _aws as session
from kr_cfn.deploy.commands import (
    bootstrap_stack_name,
    check_plan,
    read_plan_record,
    root_stack_name,
    watch_command,
)
from kr_cfn.errors import EXIT_FAILED, DeployError
from kr_cfn.operations import destroy, drift, migrate, rotation, smoke

# The statuses an operation starts with (the root stack's own event), newest first in the events.
_STARTS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "IMPORT_IN_PROGRESS")
_FAILED_END = ("ROLLBACK_COMPLETE", "_FAILED")


def _deployed(aws: Aws, name: str, env: str) -> dict[str, Any]:
    stack = changeset.stack_status(aws, name)
    if stack is None:
        raise DeployError(f"stack {name} does not exist in {aws.region} (kr-cfn status --env {env})")
    return stack


def cmd_smoke(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """The plan's smoke tests against the env's ``AppUrl`` (or ``--url``: no AWS call)."""
    url = args.url
    if not url:
        outs = applying.outputs(session(args, cfg), root_stack_name(cfg, args))
        if "AppUrl" not in outs:
            raise DeployError(f"stack {root_stack_name(cfg, args)} has no AppUrl output: name the app with --url")
        url = outs["AppUrl"]
    print(f"smoke tests against {url} (budget {args.timeout:.0f} s)")
    return 0 if smoke.run(url, args.timeout) else EXIT_FAILED


def cmd_migrate(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """``python manage.py migrate`` as a one-off task of the backend; exit with its exit code.

    ``--plan FILE``: the backend image tag comes from the planned change set (its
    ``BackendImageTag`` parameter), once apply's own checks of the record pass (``--plan-digest``,
    the change set and the stack as planned, the guard); nothing runs when it brings no new
    backend image. The tag must be a Docker tag either way.
    """
    aws = session(args, cfg)
    stack_name, tag = root_stack_name(cfg, args), args.migrate_image_tag
    option = "--image-tag"
    if args.plan:
        record = read_plan_record(Path(args.plan), cfg, aws, args.plan_digest)
        stack_name = record["stack_name"]
        if record.get("has_changes"):
            check_plan(aws, record)  # what apply checks, before anything runs
        stack = changeset.stack_status(aws, stack_name)
        if record.get("change_set_type") == "CREATE" or stack is None:
            print(f"{stack_name} is new: no backend runs yet; migrate after apply (kr-cfn migrate --env {cfg.env})")
            return 0
        planned = {p["ParameterKey"]: p.get("ParameterValue") for p in record.get("parameters") or []}
        deployed = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters") or []}
        tag = planned.get(migrate.IMAGE_TAG_PARAMETER)
        option = f"--plan {args.plan}: {migrate.IMAGE_TAG_PARAMETER}"
        if not record.get("has_changes") or tag is None or tag == deployed.get(migrate.IMAGE_TAG_PARAMETER):
            print(
                f"the plan brings no new backend image ({migrate.IMAGE_TAG_PARAMETER} stays "
                f"{deployed.get(migrate.IMAGE_TAG_PARAMETER)}): nothing to migrate"
            )
            return 0
    if tag is not None and not IMAGE_TAG.match(str(tag)):
        raise DeployError(f"{option} {tag!r}: not a Docker tag (letters, digits, _ . -, at most 128 characters)")
    backend = migrate.find_backend(aws, stack_name, cfg.env)
    return migrate.run(aws, backend, tag, args.timeout)


def cmd_drift(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Drift detection on the root and every nested stack; exit 1 when something drifted."""
    aws = session(args, cfg)
    name = root_stack_name(cfg, args)
    stack = _deployed(aws, name, cfg.env)
    print(f"detecting drift on {name} and its nested stacks ...")
    stacks, drifts = drift.detect(aws, stack["StackId"])
    for s in stacks:
        extra = f": {s.reason}" if s.reason else ""
        count = f" ({s.drifted_resources} resource(s))" if s.status == "DRIFTED" else ""
        print(f"  {s.stack}: {s.status}{count}{extra}")
    if drifts:
        print(drift.table(drifts), end="")
    if any(s.status == "DRIFTED" for s in stacks):
        print(
            "drifted: the next plan compares templates only and will not show this; bring the resources back "
            "(or the params forward) and check again"
        )
        return EXIT_FAILED
    if any(s.status != "IN_SYNC" for s in stacks):
        print("some stacks could not be checked (see above)")
        return EXIT_FAILED
    print(f"{name}: in sync with its templates")
    return 0


def cmd_rotation(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Set the RDS-managed secret's rotation interval to ``data.db_password_rotation_days``.

    (kr_cfn.operations.rotation)
    """
    aws = session(args, cfg)
    name = root_stack_name(cfg, args)
    arn = rotation.secret_arn(aws, _deployed(aws, name, cfg.env))
    if arn is None:
        raise DeployError(f"stack {name} has no data stack output {rotation.SECRET_OUTPUT}: deploy it first")
    days = cfg.data.db_password_rotation_days
    if rotation.ensure(aws, arn, days):
        print(f"{arn}: rotation every {days} days set (the next rotation follows the new schedule)")
    else:
        print(f"{arn}: already rotates every {days} days")
    return 0


def _since(aws: Aws, stack_id: str) -> Any:
    """When the stack's current operation started (its newest start event), or None."""
    cfn = aws.client("cloudformation")
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        for e in page["StackEvents"]:
            if e["LogicalResourceId"] == e.get("StackName") and e["ResourceStatus"] in _STARTS:
                return e["Timestamp"]
    return None


def follow(aws: Aws, stack: dict[str, Any]) -> tuple[str, applying._Progress]:
    """``apply``'s progress display for an operation started elsewhere; the final status."""
    since = _since(aws, stack["StackId"]) or stack.get("LastUpdatedTime") or stack["CreationTime"]
    cfn = aws.client("cloudformation")
    total = 0
    for sid in [stack["StackId"], *(s for s, _ in applying.nested_stacks(aws, stack["StackId"]))]:
        pages = cfn.get_paginator("list_stack_resources").paginate(StackName=sid)
        total += sum(len(p["StackResourceSummaries"]) for p in pages)
    progress = applying._Progress()
    status = applying.follow(aws, stack["StackId"], since, progress, total, sys.stdout)
    return status, progress


def cmd_watch(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Follow a running operation started elsewhere, as ``apply`` does; ``--restore-policy`` once stable."""
    aws = session(args, cfg)
    name = bootstrap_stack_name(cfg) if args.bootstrap else root_stack_name(cfg, args)
    stack = _deployed(aws, name, cfg.env)
    status = stack["StackStatus"]
    progress = None
    if status.endswith("_IN_PROGRESS"):
        print(f"following {name} ({status})")
        status, progress = follow(aws, stack)
    else:
        print(f"{name}: {status} (no operation running)")
    if args.restore_policy:
        failed = applying.restore_policies(aws, stack["StackId"])
        if failed:
            raise DeployError(f"could not set the stack policy on: {', '.join(map(stack_label, failed))}", EXIT_FAILED)
        print(f"{name}: stack policy restored on the root and every nested stack")
    if progress is not None:
        applying.fail_with_root_cause(status, progress)
    elif status.endswith(_FAILED_END):
        raise DeployError(f"stack {name} is {status}: its last operation failed (kr-cfn status --env {cfg.env})", 1)
    print(f"stack {name}: {status}")
    return 0


def cmd_cancel(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Cancel the update in progress (CancelUpdateStack): CloudFormation rolls back to the last stable state.

    "You can cancel only stacks that are in the UPDATE_IN_PROGRESS state."
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CancelUpdateStack.html)
    """
    aws = session(args, cfg)
    name = root_stack_name(cfg, args)
    stack = _deployed(aws, name, cfg.env)
    status = stack["StackStatus"]
    if status != "UPDATE_IN_PROGRESS":
        hint = {
            "CREATE_IN_PROGRESS": "a stack being created cannot be cancelled; it rolls back by itself if it fails",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS": "the update is done and only cleans up; nothing to cancel",
        }.get(status, "nothing to cancel")
        raise DeployError(f"stack {name} is {status}: only an update in progress can be cancelled ({hint})")
    aws.client("cloudformation").cancel_update_stack(StackName=stack["StackId"])
    print(f"cancel requested: CloudFormation rolls {name} back to its last stable state")
    if not args.wait:
        print(f"follow it with: {watch_command(cfg, args)}")
        return 0
    status, _ = follow(aws, {**stack, "StackStatus": "UPDATE_ROLLBACK_IN_PROGRESS"})
    print(f"stack {name}: {status}")
    return 0 if status == "UPDATE_ROLLBACK_COMPLETE" else EXIT_FAILED


def _confirm_flag(env: str) -> str:
    return "--yes-really-prod" if env == "prod" else f"--yes-really {env}"


def cmd_destroy(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Delete the env's application stacks, keeping every Retain/Snapshot resource; print how to re-create."""
    aws = session(args, cfg)
    name = root_stack_name(cfg, args)
    stack = _deployed(aws, name, cfg.env)
    protected = cfg.deploy.termination_protection or bool(stack.get("EnableTerminationProtection"))
    if protected and args.yes_really != cfg.env:
        raise DeployError(
            f"stack {name} ({cfg.env}) has termination protection: destroying it takes "
            f"--env {cfg.env} {_confirm_flag(cfg.env)}"
        )
    if stack["StackStatus"].endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is {stack['StackStatus']}: wait until it ends (kr-cfn watch --env {cfg.env})")
    inv = destroy.inventory(aws, stack["StackId"])
    print(f"destroy {name} ({cfg.env}, {aws.region}); the bootstrap stack {bootstrap_stack_name(cfg)} stays")
    print(destroy.render(inv), end="")
    if inv.blockers:
        for b in inv.blockers:
            print(f"blocked: {b}", file=sys.stderr)
        raise DeployError(f"destroy stopped before deleting anything: {len(inv.blockers)} resource(s) are protected")
    if args.dry_run:
        print("dry run: nothing deleted")
        return 0
    cfn = aws.client("cloudformation")
    if stack.get("EnableTerminationProtection"):
        cfn.update_termination_protection(EnableTerminationProtection=False, StackName=stack["StackId"])
        print(f"{name}: termination protection turned off")
    kwargs = {"StackName": stack["StackId"]}
    boot = changeset.stack_status(aws, bootstrap_stack_name(cfg))
    role = {o["OutputKey"]: o["OutputValue"] for o in (boot or {}).get("Outputs") or []}.get("CloudFormationRoleArn")
    if role:  # the role the stacks were made with may delete what they hold
        kwargs["RoleARN"] = role
    cfn.delete_stack(**kwargs)
    status, progress = follow(aws, {**stack, "StackStatus": "DELETE_IN_PROGRESS"})
    if status != "DELETE_COMPLETE":
        applying.fail_with_root_cause(status, progress)
    print(f"stack {name}: deleted")
    for line in destroy.final_snapshots(aws, inv):
        print(f"  {line}")
    print(destroy.recreate_steps(cfg.env, inv), end="")
    return 0
