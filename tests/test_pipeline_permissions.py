"""The pipeline roles' permissions, offline: the workflows run what the proof covers, every env allows
the recorded calls, and the bootstrap stack's Deny leaves exactly its reads.

The recording and its evaluation against dev's roles happen in the end-to-end deploy
(tests/test_deploy_e2e.py::test_full_deploy_sequence, tests/pipeline_calls.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest
import yaml

from kr_cfn.iam import role_path
from stacks import bootstrap
from tests import pipeline_calls
from tests.conftest import ENVS, ROOT, built, load_env
from tests.policy_eval import Request, evaluate

ACCOUNT, REGION = "111122223333", "eu-west-3"
RECORDS: list[dict[str, Any]] = json.loads(pipeline_calls.RECORD.read_text(encoding="utf-8"))
RECORDED_PREFIX = "knowledgerouter-dev"  # the end-to-end deploy's environment


def _role_of_job(job: dict[str, Any]) -> str | None:
    """The pipeline role a job assumes: the variable naming its ARN (in the step or the job's matrix)."""
    text = json.dumps(job)
    if "role-to-assume" not in text:
        return None
    roles = {name for var, name in pipeline_calls.JOB_ROLES.items() if re.search(rf"(?<![A-Z_]){var}", text)}
    assert len(roles) == 1, f"a job assumes {roles or 'no known role'}"
    return roles.pop()


def _workflow_commands() -> dict[str, set[str]]:
    """Role -> the kr-cfn commands (with the flags that change what they call) its jobs run."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for job in (yaml.safe_load(path.read_text(encoding="utf-8")).get("jobs") or {}).values():
            role = _role_of_job(job)
            if role is None:  # no AWS credentials (ci.yml: build, lint, docs, cost)
                continue
            scripts = "\n".join(str(s.get("run", "")) for s in job.get("steps", []))
            for command, rest in re.findall(r"kr-cfn\s+([a-z-]+)([^\n|;&)]*)", scripts):
                if command == "build":  # no AWS call
                    continue
                flags = [f for f in ("--bootstrap", "--pull-request") if f in rest.split()]
                found.setdefault(role, set()).add(" ".join([command, *flags]))
    return found


def test_workflows_run_the_commands_the_proof_covers() -> None:
    assert _workflow_commands() == pipeline_calls.WORKFLOW_COMMANDS


def test_every_command_of_every_role_was_recorded() -> None:
    recorded = {(r["role"], r["command"]) for r in RECORDS}
    wanted = {(role, c) for role, commands in pipeline_calls.WORKFLOW_COMMANDS.items() for c in commands}
    assert wanted | {("deploy", "status")} == recorded


def _concrete(value: str, prefix: str) -> str:
    """A recorded (generalized) ARN or value as one concrete request of environment ``prefix``."""
    value = value.replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)
    value = value.replace(f"{RECORDED_PREFIX}-*Stack-*", f"{RECORDED_PREFIX}-NetworkStack-x1")  # a nested stack
    return value.replace(RECORDED_PREFIX, prefix).replace("*", "x1")


@pytest.mark.parametrize("env", ENVS)
def test_every_environment_allows_the_recorded_calls(env: str) -> None:
    prefix = load_env(env).names.prefix
    template = built(env)["bootstrap"]
    denied = []
    for r in RECORDS:
        if r["action"] in pipeline_calls.NO_PERMISSION:
            continue
        context = {
            k: [_concrete(x, prefix) for x in v] if isinstance(v, list) else _concrete(v, prefix)
            for k, v in r["context"].items()
        }
        request = Request(r["action"], _concrete(r["resource"], prefix), context)
        decision = evaluate(request, pipeline_calls.role_policies(template, r["role"], ACCOUNT, REGION))
        if not decision.allowed:
            denied.append(f"{r['role']}: {request}: {decision.reason}")
    assert not denied, "\n".join(denied)


def _cloudformation_actions() -> list[str]:
    model = botocore.session.get_session().get_service_model("cloudformation")
    return [f"cloudformation:{op}" for op in model.operation_names]


READS = {f"cloudformation:{a.action}" for a in bootstrap.BOOTSTRAP_STACK_READS}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("role", sorted(pipeline_calls.LOGICAL_IDS))
def test_bootstrap_stack_denies_everything_but_its_reads(env: str, role: str) -> None:
    policies = pipeline_calls.role_policies(built(env)["bootstrap"], role, ACCOUNT, REGION)
    stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{load_env(env).names.prefix}-bootstrap/0a1b2c"
    assert {
        "cloudformation:DescribeStacks",
        "cloudformation:ListStackResources",
        "cloudformation:ListChangeSets",
    } == READS
    for action in READS:  # allowed: the pipeline reads the bucket name and role ARNs
        assert evaluate(Request(action, stack), policies).allowed, action
    # every other action, of today's API and any later one
    for action in [*_cloudformation_actions(), "cloudformation:SomeFutureWrite"]:
        if action in READS:
            continue
        decision = evaluate(Request(action, stack), policies)
        assert decision.reason.startswith("explicitly denied by DenyBootstrapStack"), (action, decision)


def test_deploy_role_passes_the_task_roles_migrate_registers() -> None:
    """moto's task definitions made by CloudFormation carry no roles: the PassRole of migrate, offline."""
    for env in ENVS:
        cfg, ecs = load_env(env), built(env)["ecs"]
        policies = pipeline_calls.role_policies(built(env)["bootstrap"], "deploy", ACCOUNT, REGION)
        roles = [k for k, v in ecs["Resources"].items() if v["Type"] == "AWS::IAM::Role"]
        assert roles, env
        for logical_id in roles:
            assert ecs["Resources"][logical_id]["Properties"]["Path"] == role_path(cfg.names.prefix)
            arn = f"arn:aws:iam::{ACCOUNT}:role{role_path(cfg.names.prefix)}{cfg.names.prefix}-{logical_id}-1A2B"
            to_ecs = Request("iam:PassRole", arn, {"iam:PassedToService": "ecs-tasks.amazonaws.com"})
            assert evaluate(to_ecs, policies).allowed, (env, logical_id)
            to_lambda = Request("iam:PassRole", arn, {"iam:PassedToService": "lambda.amazonaws.com"})
            assert not evaluate(to_lambda, policies).allowed, (env, logical_id)


def test_the_recorder_names_real_operations_and_actions() -> None:
    session = botocore.session.get_session()
    for service, operation in {*pipeline_calls.RESOURCES, *pipeline_calls.ACTIONS, *pipeline_calls.IMPLIED}:
        assert operation in session.get_service_model(service).operation_names, (service, operation)
    where = pipeline_calls.Where(REGION, ACCOUNT)
    requests = pipeline_calls.requests_of("s3", "HeadObject", {"Bucket": "b", "Key": "k/x.json"}, where)
    assert requests == [Request("s3:GetObject", "arn:aws:s3:::b/k/x.json")]
    with pytest.raises(KeyError):
        pipeline_calls.requests_of("cloudformation", "DeleteStack", {"StackName": "s"}, where)


def test_generalized_records_keep_names_and_drop_ids() -> None:
    g = pipeline_calls.generalize
    stack = (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/kr-dev-EcsStack-1X2Y3Z/0bd1c4a0-1234-4abc-8def-0123456789ab"
    )
    assert (
        g(stack, ACCOUNT, REGION) == "arn:aws:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/kr-dev-*Stack-*/*"
    )
    assert g("kr-cfn-pr-780eaf2bdd5283e2-17a8280b", ACCOUNT, REGION) == "kr-cfn-pr-*"
    assert g("arn:aws:s3:::b/pr/kr/03a563abd65e4fd7f05d.ecs.json", ACCOUNT, REGION) == "arn:aws:s3:::b/pr/kr/*.json"


@pytest.mark.parametrize("env", ENVS)
def test_deploy_role_waits_for_the_services_of_its_cluster_only(env: str) -> None:
    """The deploy job's `aws ecs list-services` and `aws ecs wait services-stable` (the AWS CLI, not recorded)."""
    prefix = load_env(env).names.prefix
    policies = pipeline_calls.role_policies(built(env)["bootstrap"], "deploy", ACCOUNT, REGION)
    for cluster, allowed in ((f"{prefix}-cluster", True), ("another-cluster", False)):
        on = {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"}
        service = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/backend"
        assert evaluate(Request("ecs:ListServices", "*", on), policies).allowed is allowed
        assert evaluate(Request("ecs:DescribeServices", service, on), policies).allowed is allowed


def test_the_artifacts_bucket_policy_takes_part() -> None:
    policies = pipeline_calls.role_policies(built("dev")["bootstrap"], "release-plan", ACCOUNT, REGION)
    key = f"arn:aws:s3:::knowledgerouter-dev-artifacts-{ACCOUNT}-{REGION}/knowledgerouter-dev/x.json"
    assert evaluate(Request("s3:PutObject", key, {"aws:SecureTransport": "true"}), policies).allowed
    plain = evaluate(Request("s3:PutObject", key, {"aws:SecureTransport": "false"}), policies)
    assert plain.reason == "explicitly denied by DenyInsecureTransport (ArtifactsBucketPolicy)"


@pytest.mark.parametrize("env", ENVS)
def test_a_pull_requests_plan_without_changes_deletes_its_change_set(env: str) -> None:
    """Not reached in the end-to-end deploy (a pull request's templates always differ from the deployed ones)."""
    prefix = load_env(env).names.prefix
    policies = pipeline_calls.role_policies(built(env)["bootstrap"], "plan", ACCOUNT, REGION)
    root = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{load_env(env).deploy.stack(load_env(env).names)}/x1"
    for name, allowed in (("kr-cfn-pr-780eaf2bdd5283e2-17a8280b", True), ("kr-cfn-780eaf2bdd5283e2-17a8280b", False)):
        delete = Request("cloudformation:DeleteChangeSet", root, {"cloudformation:ChangeSetName": name})
        assert evaluate(delete, policies).allowed is allowed, (prefix, name)


@pytest.mark.parametrize("env", ENVS)
def test_release_plan_pulls_the_images_it_scans_and_nothing_else(env: str) -> None:
    """The release-plan job's image scan (`aws ecr get-login-password`, then Trivy's pulls; the AWS CLI and
    the registry, not recorded): the auth token and the project's repositories, read only."""
    cfg = load_env(env)
    policies = pipeline_calls.role_policies(built(env)["bootstrap"], "release-plan", ACCOUNT, REGION)
    assert evaluate(Request("ecr:GetAuthorizationToken", "*"), policies).allowed
    pulls = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
    # what the ECS stack pulls (the workflow scans exactly these), whichever env's bootstrap makes them
    repositories = [cfg.services[name].ecr_repository for name in ("backend", "frontend")]
    assert repositories == ["knowledgerouter-backend", "knowledgerouter-frontend"]
    for name in [*repositories, "another-backend", f"{cfg.names.project}-worker"]:
        repository = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"
        for action in pulls:
            assert evaluate(Request(action, repository), policies).allowed is (name in repositories), (action, name)
        for action in ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:BatchDeleteImage"):
            assert not evaluate(Request(action, repository), policies).allowed, (action, name)
