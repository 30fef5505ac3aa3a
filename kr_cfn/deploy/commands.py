"""The deploy subcommands of ``kr-cfn``: package, plan, apply, bootstrap, status, outputs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kr_cfn import config
from kr_cfn.aws import Aws, pinned
from kr_cfn.changes import account, bootbody, changeset
from kr_cfn.changes import apply as applying
from kr_cfn.changes import package as packaging
from kr_cfn.changes.notes import add_template_notes, live_desired_counts
from kr_cfn.changes.review import GuardFinding, Review, render_markdown, render_text
from kr_cfn.cliargs import make_dir, write_file
from kr_cfn.config import bootstrap as config_bootstrap
from kr_cfn.errors import EXIT_GUARD, DeployError
from kr_cfn.naming import pascal
from kr_cfn.operations import drift, rotation

IMAGE_TAG_SUFFIX = "ImageTag"
PLAN_RECORD = "plan.json"
PLAN_DIR_SUFFIX = ".plan"
"""Plan records (plan.json, review.*) go to ``<out>/<env>.plan/``, beside the build ``kr-cfn build`` replaces."""


def _env_dir(args: argparse.Namespace, cfg: config.EnvConfig) -> Path:
    env_dir = Path(args.out) / cfg.env
    if not (env_dir / "root.yaml").exists() and not (env_dir / "root.json").exists():
        raise DeployError(f"{env_dir}: no built templates; run kr-cfn build --env {cfg.env} first")
    return env_dir


def plan_dir(args: argparse.Namespace, cfg: config.EnvConfig) -> Path:
    """Where plan and bootstrap write their records: ``--review-dir``, else ``<out>/<env>.plan``."""
    return Path(getattr(args, "review_dir", None) or Path(args.out) / f"{cfg.env}{PLAN_DIR_SUFFIX}")


def _aws(args: argparse.Namespace, cfg: config.EnvConfig) -> Aws:
    """The session every deploy command uses: region and account pinned to the params."""
    params_file = str(Path(args.params) / f"{cfg.env}.yaml")
    return pinned(params_file, cfg.region, cfg.account_id, getattr(args, "region", None))


def bootstrap_stack_name(cfg: config.EnvConfig) -> str:
    """The bootstrap stack of an environment (its roles deny themselves this name)."""
    return config_bootstrap.bootstrap_stack_name(cfg.names)


def root_stack_name(cfg: config.EnvConfig, args: argparse.Namespace) -> str:
    """The root stack: ``--stack-name`` or the params' ``deploy.stack_name`` (default the name prefix)."""
    return getattr(args, "stack_name", None) or cfg.deploy.stack(cfg.names)


def default_stack(args: argparse.Namespace, cfg: config.EnvConfig) -> str:
    """The stack a command works on, to name in an error that names none."""
    if getattr(args, "command", None) == "bootstrap" or getattr(args, "bootstrap", False):
        return bootstrap_stack_name(cfg)
    return root_stack_name(cfg, args)


def watch_command(cfg: config.EnvConfig, args: argparse.Namespace) -> str:
    """The ``kr-cfn watch`` command that follows this command's stack."""
    if getattr(args, "command", None) == "bootstrap":
        return f"kr-cfn watch --env {cfg.env} --bootstrap"
    named = f" --stack-name {args.stack_name}" if getattr(args, "stack_name", None) else ""
    return f"kr-cfn watch --env {cfg.env}{named}"


def cmd_package(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Upload the nested templates by content hash; write the packaged root."""
    env_dir = _env_dir(args, cfg)
    aws = _aws(args, cfg)
    prefix = packaging.artifact_prefix(args.prefix or cfg.names.prefix, args.pull_request)
    result = packaging.package(aws, env_dir, args.bucket, prefix, args.pull_request)
    for name, (url, uploaded) in sorted(result.uploads.items()):
        print(f"{'uploaded' if uploaded else 'present '} {name}: {url}")
    for key in result.replaced:
        print(f"replaced {key}: it held other bytes than its name says (see the warning above)")
    print(f"packaged root: {env_dir / packaging.PACKAGED_ROOT} ({result.root_url})")
    return 0


def _parameters(
    args: argparse.Namespace, root: dict[str, Any], stack: dict[str, Any] | None
) -> list[tuple[str, str | None]]:
    declared = root.get("Parameters", {})
    given: dict[str, str] = {}
    for item in args.image_tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise DeployError(f"--image-tag {item}: expected NAME=TAG, e.g. backend=3f2c1ab")
        name = key if key.endswith(IMAGE_TAG_SUFFIX) else f"{pascal(key)}{IMAGE_TAG_SUFFIX}"
        if name not in declared:
            have = ", ".join(sorted(declared)) or "none"
            raise DeployError(f"--image-tag {item}: the root template has no parameter {name} (have: {have})")
        given[name] = value
    deployed = stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS"
    # A parameter left out of an update takes the template's Default, not the deployed value:
    # keep the deployed image tags unless new ones are named.
    previous = {p["ParameterKey"] for p in (stack or {}).get("Parameters") or []} if deployed else set()
    params: list[tuple[str, str | None]] = []
    for name, spec in sorted(declared.items()):
        if name in given:
            params.append((name, given[name]))
        elif name in previous:
            params.append((name, None))
        elif "Default" not in spec:
            raise DeployError(f"parameter {name} has no default: name it with --image-tag {name}=TAG")
    return params


def _write_review(review: Review, directory: Path, stem: str) -> tuple[Path, Path]:
    make_dir(directory, "--review-dir")
    js, md = directory / f"{stem}.json", directory / f"{stem}.md"
    write_file(js, review.to_json(), "--review-dir")
    write_file(md, render_markdown(review), "--review-dir")
    return js, md


def _github_output(**values: str) -> None:
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            for k, v in values.items():
                f.write(f"{k}={v}\n")


def _report(review: Review, directory: Path, stem: str) -> int:
    print(render_text(review), end="")
    js, md = _write_review(review, directory, stem)
    print(f"review: {js} {md}")
    _github_output(
        change_set=review.change_set_name if review.has_changes else "",
        change_set_id=review.change_set_id if review.has_changes else "",
        has_changes=str(review.has_changes).lower(),
    )
    if not review.has_changes:
        print(f"no changes: stack {review.stack_name} is up to date (empty change set deleted)")
        return 0
    if review.blocked:
        for f in review.blocked:
            print(
                f"guard: {f.path}/{f.logical_id} ({f.type}) would be "
                f"{_at_risk(f)}; re-plan with --allow-replace {f.allow_id} "
                "if that data may be lost",
                file=sys.stderr,
            )
        return EXIT_GUARD
    return 0


def _at_risk(f: GuardFinding) -> str:
    """What the guard finding would do, for the one-line message on stderr."""
    if f.weakened:
        taken = "; ".join(w.text for w in f.weakened)
        return f"{'updated' if f.in_place else 'replaced'}, losing a protection: {taken}"
    if f.reason and f.action == "Modify" and f.replacement in (None, "False"):
        return f"updated, what it does inside unknown ({f.reason})"
    if f.reason:
        return f"deleted with everything in it (its deployed template could not be read: {f.reason})"
    if f.nested_stack:
        return f"removed with nested stack {f.nested_stack}"
    if f.action == "Dynamic":
        return "replaced or deleted (Dynamic: CloudFormation cannot tell yet)"
    return "deleted" if f.action == "Remove" else "replaced"


def _role_arn(aws: Aws, cfg: config.EnvConfig) -> str:
    name = bootstrap_stack_name(cfg)
    stack = changeset.stack_status(aws, name)
    if stack is None:
        raise DeployError(
            f"bootstrap stack {name} not found in {aws.region}: run kr-cfn bootstrap --env {cfg.env} first"
        )
    outs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    if "CloudFormationRoleArn" not in outs:
        raise DeployError(f"bootstrap stack {name} has no CloudFormationRoleArn output ({stack['StackStatus']})")
    return outs["CloudFormationRoleArn"]


def cmd_plan(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Create the change set of the packaged root and review it."""
    env_dir = _env_dir(args, cfg)
    pkg = packaging.read_package(env_dir)
    root = packaging.load_template(env_dir / packaging.PACKAGED_ROOT)
    aws = _aws(args, cfg)
    stack_name = root_stack_name(cfg, args)
    stack = changeset.stack_status(aws, stack_name)
    changeset.check_deployable(stack, cfg.env)  # fail fast, before anything else is read
    target = changeset.Target(
        stack_name=stack_name,
        template_url=pkg["root_template_url"],
        parameters=tuple(_parameters(args, root, stack)),
        role_arn=_role_arn(aws, cfg),
        tags=tuple(sorted(cfg.names.tags(cfg.tags).items())),
        pull_request=bool(pkg.get("pull_request")),
    )
    review, cs = changeset.plan(aws, target, cfg.env, args.allow_replace or [])
    directory = plan_dir(args, cfg)
    review.cost = _cost_delta(aws, stack, env_dir, cfg)
    add_template_notes(review, env_dir, cfg.env, live_desired_counts(aws, stack))
    review.warnings += drift.warnings(aws, stack, cfg.env)  # a change set does not see drift
    review.warnings += rotation.warnings(aws, stack, cfg.data.db_password_rotation_days, cfg.env)
    code = _report(review, directory, "review")
    kept = frozenset(k for k, v in target.parameters if v is None)
    # The stack as the change set found it (a CREATE made it REVIEW_IN_PROGRESS); a change after
    # the change set was made shows in its LastUpdatedTime, which apply compares too.
    stack = changeset.stack_status(aws, stack_name) if cs else stack
    allowed = args.allow_replace or []
    record = applying.plan_record(
        review, cs, stack, cfg.env, cfg.account_id, bool(pkg.get("pull_request")), kept, allowed
    )
    record_file = directory / PLAN_RECORD
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
    write_file(record_file, data, "--review-dir")
    # The release's deploy job takes these from this job's outputs, not from an artifact another
    # job of the caller's run could have replaced: apply --plan-digest checks the record against it.
    _github_output(plan_digest=applying.record_digest(data))
    if code == 0 and review.has_changes:
        print(f"plan record: {record_file}")
        print(f"apply with: kr-cfn apply --env {cfg.env} --plan {record_file}")
        also = "".join(f" --allow-replace {x}" for x in sorted(set(allowed)))  # apply never reads the Description
        print(f"        or: kr-cfn apply --env {cfg.env} --change-set {review.change_set_name}{also}")
    return code


def _cost_delta(aws: Aws, stack: dict[str, Any] | None, env_dir: Path, cfg: config.EnvConfig) -> dict[str, Any]:
    """Monthly cost before (deployed templates) and after (built ones); the reason instead when it cannot."""
    from kr_cfn.cost.deployed import plan_delta
    from kr_cfn.cost.estimating import CostError
    from kr_cfn.cost.prices import PriceError

    try:
        return plan_delta(aws.client("cloudformation"), stack, env_dir, cfg)
    except (CostError, PriceError, DeployError) as exc:  # the estimate is information: the plan goes on
        return {"error": str(exc)}


def _apply(
    aws: Aws, stack_name: str, change_set: str, termination_protection: bool, watch: str, allowed: Sequence[str]
) -> int:
    review, cs = applying.check(aws, stack_name, change_set, allowed=allowed)
    return _execute(aws, review, cs, termination_protection, watch)


def _execute(
    aws: Aws, review: Review, cs: dict[str, Any], termination_protection: bool, watch: str = "kr-cfn watch --env ENV"
) -> int:
    stack_name = review.stack_name
    outs = applying.execute(aws, review, cs, termination_protection, watch=watch)
    print(f"stack {stack_name}: deployed")
    for key, value in sorted(outs.items()):
        print(f"  {key} = {value}")
    if "AppUrl" in outs:
        print(f"app: {outs['AppUrl']}")
    return 0


def read_plan_record(path: Path, cfg: config.EnvConfig, aws: Aws, digest: str | None = None) -> dict[str, Any]:
    """The record ``plan`` wrote; exit 2 if unreadable, not of ``digest`` (sha256), or for another env.

    Another env, account or region than this command's is refused too.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeployError(f"--plan {path}: cannot read ({exc.strerror}); pass the {PLAN_RECORD} plan wrote") from None
    if digest is not None and applying.record_digest(data) != digest.lower():
        raise DeployError(
            f"--plan {path}: its sha256 is {applying.record_digest(data)}, not the --plan-digest {digest} "
            "the plan published: not the reviewed record; plan again"
        )
    try:
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        raise DeployError(f"--plan {path}: not JSON; pass the {PLAN_RECORD} plan wrote") from None
    if not isinstance(record, dict) or not record.get("stack_name"):
        raise DeployError(f"--plan {path}: not a plan record; pass the {PLAN_RECORD} plan wrote")
    record["_file"] = f"--plan {path}"
    for key, now in (("env", cfg.env), ("region", aws.region), ("account_id", cfg.account_id)):
        if record.get(key) != now:
            raise DeployError(f"--plan {path}: planned for {key} {record.get(key)}, this apply is for {now}")
    return record


def cmd_apply(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Execute a planned change set: by name, or exactly the one a plan record names (by name, ARN checked)."""
    aws = _aws(args, cfg)
    watch = watch_command(cfg, args)
    allowed = args.allow_replace or []
    if args.plan:
        record = read_plan_record(Path(args.plan), cfg, aws, args.plan_digest)
        if not record.get("has_changes"):
            print(f"no changes planned for stack {record['stack_name']}: nothing to apply")
            return 0
        review, cs = check_plan(aws, record, allowed)
        return _execute(aws, review, cs, cfg.deploy.termination_protection, watch)
    stack_name = root_stack_name(cfg, args)
    return _apply(aws, stack_name, args.change_set, cfg.deploy.termination_protection, watch, allowed)


def check_plan(aws: Aws, record: dict[str, Any], allowed: Sequence[str] = ()) -> tuple[Review, dict[str, Any]]:
    """The checks apply makes of a plan record: its change set by name on its stack, unchanged, the guard passed."""
    return applying.check(aws, record["stack_name"], str(record.get("change_set_name")), record, allowed)


TEMPLATE_BODY_LIMIT = bootbody.TEMPLATE_BODY_LIMIT
"""Bytes of a TemplateBody (kr_cfn.changes.bootbody: over its inline share the bootstrap goes by URL)."""


def bootstrap_body(path: Path) -> str:
    """The bootstrap template as compact JSON (the built YAML is larger); exit 2 over the TemplateURL limit."""
    body = bootbody.compact(packaging.load_template(path))
    bootbody.check_url_size(body, str(path))
    return body


def _bootstrap_phase(
    aws: Aws, cfg: config.EnvConfig, args: argparse.Namespace, template: dict[str, str], note: str, stem: str
) -> int:
    """Plan one bootstrap change set (the review says how its template was sent), apply it unless --plan-only."""
    target = changeset.Target(
        stack_name=bootstrap_stack_name(cfg),
        nested=False,
        tags=tuple(sorted(cfg.names.tags(cfg.tags).items())),
        **template,
    )
    review, _ = changeset.plan(aws, target, cfg.env, args.allow_replace or [])
    review.notes.append(note)
    code = _report(review, plan_dir(args, cfg), stem)
    if code or not review.has_changes or args.plan_only:
        return code
    return _apply(
        aws,
        target.stack_name,
        review.change_set_id,
        termination_protection=True,
        watch=watch_command(cfg, args),
        allowed=args.allow_replace or [],
    )


def _bootstrap_bucket(aws: Aws, stack_name: str) -> str:
    """The artifacts bucket the bootstrap stack made (its output), for the full template's TemplateURL."""
    outs = applying.outputs(aws, stack_name)
    if bootbody.BUCKET_OUTPUT not in outs:
        raise DeployError(
            f"stack {stack_name} has no output {bootbody.BUCKET_OUTPUT}: the bootstrap template cannot be sent by "
            "URL without its bucket; see kr-cfn status and the stack's events"
        )
    return outs[bootbody.BUCKET_OUTPUT]


def cmd_bootstrap(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Plan and apply the bootstrap stack (operator credentials; no service role, it creates it).

    A compact body within :data:`bootbody.INLINE_SHARE` of the TemplateBody limit goes inline. A
    larger one goes by TemplateURL from the stack's own bucket; on a new stack a first change set
    creates only that bucket (:func:`bootbody.phase_one`).
    """
    env_dir = _env_dir(args, cfg)
    path = env_dir / "bootstrap.yaml"
    if not path.exists():
        path = env_dir / "bootstrap.json"
    if not path.exists():
        raise DeployError(f"{env_dir / 'bootstrap.yaml'}: not found; run kr-cfn build --env {cfg.env} first")
    template = packaging.load_template(path)
    body = bootstrap_body(path)
    aws = _aws(args, cfg)
    name = bootstrap_stack_name(cfg)
    params_file = str(Path(getattr(args, "params", None) or "params") / f"{cfg.env}.yaml")
    account.check_account_resources(aws, template, name, params_file)
    size, limit = bootbody.size(body), TEMPLATE_BODY_LIMIT
    share = f"{size} bytes, {size / limit:.1%} of CloudFormation's {limit}-byte TemplateBody limit"
    if bootbody.fits_inline(body):
        inline = f"template sent inline ({share})"
        return _bootstrap_phase(aws, cfg, args, {"template_body": body}, inline, "bootstrap-review")
    stack = changeset.stack_status(aws, name)
    if changeset.check_deployable(stack, cfg.env) == "CREATE":  # fail fast, before anything is uploaded
        first = bootbody.compact(bootbody.phase_one(template))
        note = (
            f"phase one of two: the template ({share}) goes by TemplateURL from the artifacts bucket, which this "
            f"change set creates first (only the bucket and its policy, {bootbody.size(first)} bytes inline)"
        )
        code = _bootstrap_phase(aws, cfg, args, {"template_body": first}, note, "bootstrap-phase-one-review")
        if code or args.plan_only:
            if args.plan_only and not code:
                print("plan only: phase two (the full template by TemplateURL) is planned once phase one is applied")
            return code
    bucket = _bootstrap_bucket(aws, name)
    url, uploaded = packaging.upload_template(aws, bucket, bootbody.KEY_PREFIX, "bootstrap.json", body.encode())
    note = f"template sent by TemplateURL {url} ({share}; {'uploaded' if uploaded else 'already uploaded'})"
    return _bootstrap_phase(aws, cfg, args, {"template_url": url}, note, "bootstrap-review")


def status_data(aws: Aws, cfg: config.EnvConfig, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The bootstrap and root stacks as data: status, reason, protection, drift, nested stacks, change sets."""
    cfn = aws.client("cloudformation")
    out: list[dict[str, Any]] = []
    for role, name in (("bootstrap", bootstrap_stack_name(cfg)), ("root", root_stack_name(cfg, args))):
        stack = changeset.stack_status(aws, name)
        if stack is None:
            out.append({"role": role, "name": name, "status": None})
            continue
        nested = []
        for sid, depth in applying.nested_stacks(aws, stack["StackId"]):
            n = cfn.describe_stacks(StackName=sid)["Stacks"][0]
            nested.append({"name": n["StackName"], "status": n["StackStatus"], "depth": depth})
        change_sets = [
            {"name": c["ChangeSetName"], "execution_status": c.get("ExecutionStatus"), "status": c.get("Status")}
            for c in cfn.list_change_sets(StackName=stack["StackId"]).get("Summaries", [])
        ]
        out.append(
            {
                "role": role,
                "name": name,
                "id": stack["StackId"],
                "status": stack["StackStatus"],
                "reason": stack.get("StackStatusReason"),
                "termination_protection": bool(stack.get("EnableTerminationProtection")),
                "drift": (stack.get("DriftInformation") or {}).get("StackDriftStatus"),
                "nested": nested,
                "change_sets": change_sets,
            }
        )
    return out


def cmd_status(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """The root and bootstrap stacks, their nested stacks and pending change sets (``--format json``: as data)."""
    stacks = status_data(_aws(args, cfg), cfg, args)
    if getattr(args, "format", "text") == "json":
        print(json.dumps({"env": cfg.env, "stacks": stacks}, indent=2))
        return 0
    for stack in stacks:
        if stack["status"] is None:
            print(f"{stack['name']}: not deployed")
            continue
        reason = f" ({stack['reason']})" if stack["reason"] else ""
        protected = ", termination protection on" if stack["termination_protection"] else ""
        print(f"{stack['name']}: {stack['status']}{reason}{protected}")
        for n in stack["nested"]:
            print(f"{'  ' * n['depth']}{n['name']}: {n['status']}")
        for c in stack["change_sets"]:
            print(f"  change set {c['name']}: {c['execution_status']} ({c['status']})")
    return 0


def cmd_outputs(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Print the stack outputs (``--key K`` prints one value)."""
    aws = _aws(args, cfg)
    name = bootstrap_stack_name(cfg) if args.bootstrap else root_stack_name(cfg, args)
    outs = applying.outputs(aws, name)
    if args.key:
        if args.key not in outs:
            raise DeployError(f"stack {name} has no output {args.key} (have: {', '.join(sorted(outs)) or 'none'})")
        print(outs[args.key])
    elif args.format == "json":
        print(json.dumps(outs, indent=2, sort_keys=True))
    else:
        for key, value in sorted(outs.items()):
            print(f"{key} = {value}")
    return 0


def cmd_qdrant_snapshots(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """List the Qdrant snapshots in the backups bucket, oldest first."""
    from kr_cfn.operations import qdrant

    aws = Aws(cfg.region)
    job = qdrant.find_job(aws, root_stack_name(cfg, args))
    found = qdrant.list_snapshots(aws, job)
    for key, size, modified in found:
        print(f"{modified}  {size:>14}  {key}")
    if not found:
        print(f"no snapshots under s3://{job.bucket}/{qdrant.PREFIX}")
    return 0


def cmd_qdrant_restore(args: argparse.Namespace, cfg: config.EnvConfig) -> int:
    """Restore one collection snapshot from S3 into the running Qdrant (a one-off task in the VPC)."""
    from kr_cfn.operations import qdrant

    collection = qdrant.collection_of(args.snapshot, args.collection)
    aws = Aws(cfg.region)
    job = qdrant.find_job(aws, root_stack_name(cfg, args))
    task = qdrant.start_restore(aws, job, args.snapshot, collection)
    print(f"restore task {task}: s3://{job.bucket}/{args.snapshot} -> collection {collection}")
    if args.no_wait:
        print(f"not waiting; follow it in log group {job.log_group}")
        return 0
    ok, why = qdrant.outcome(qdrant.wait(aws, job, task, args.timeout))
    for line in qdrant.log_lines(aws, job, task):
        print(f"  {line}")
    if not ok:
        raise DeployError(f"restore of {collection} failed ({why}); see log group {job.log_group}", code=1)
    print(f"restored collection {collection}")
    return 0
