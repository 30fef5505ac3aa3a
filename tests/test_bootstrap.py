"""Property tests of the bootstrap stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.changes import bootbody
from stacks import bootstrap
from tests.conftest import ENVS, built, load_env, resources_of_type


def _boot(env: str) -> dict[str, Any]:
    return built(env)["bootstrap"]


def _custom(env: str = "dev", **bootstrap_keys: Any) -> dict[str, Any]:
    cfg = load_env(env).model_copy(update={"bootstrap": config.BootstrapConfig(**bootstrap_keys)})
    return stacks.build_all(cfg)["bootstrap"].to_dict()


def test_bootstrap_is_not_a_child_of_the_root() -> None:
    assert "bootstrap" not in {c.name for c in stacks.CHILDREN}
    assert "BootstrapStack" not in built("dev")["root"]["Resources"]


@pytest.mark.parametrize("env", ENVS)
def test_artifacts_bucket(env: str) -> None:
    (bucket,) = resources_of_type(_boot(env), "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(props["PublicAccessBlockConfiguration"].values())
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert bucket["DeletionPolicy"] == "Retain"
    (policy,) = resources_of_type(_boot(env), "AWS::S3::BucketPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": False}}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_ecr_repositories(env: str) -> None:
    repos = resources_of_type(_boot(env), "AWS::ECR::Repository")
    # The ecs stack's default images name these repositories, made by the env owning the account's.
    assert {r["Properties"]["RepositoryName"] for r in repos.values()} == {
        "knowledgerouter-backend",
        "knowledgerouter-frontend",
    }
    ecr_images = {s.image for s in load_env(env).services.values() if s.ecr_repository is not None}
    assert ecr_images <= {r["Properties"]["RepositoryName"] for r in repos.values()}

    for repo in repos.values():
        props = repo["Properties"]
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert props["ImageTagMutability"] == "IMMUTABLE"
        (rule,) = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
        assert rule["selection"]["countType"] == "imageCountMoreThan" and rule["selection"]["countNumber"] == 30


def _trust(template: dict[str, Any], role: str) -> dict[str, Any]:
    return template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]


@pytest.mark.parametrize("env", ENVS)
def test_github_roles_trust_the_exact_repository(env: str) -> None:
    t = _boot(env)
    plan = _trust(t, bootstrap.PLAN_ROLE)
    provider = plan["Principal"]["Federated"]
    assert provider == {"Ref": bootstrap.OIDC_PROVIDER} or provider["Fn::Sub"].endswith(
        ":oidc-provider/token.actions.githubusercontent.com"
    )
    assert plan["Action"] == ["sts:AssumeRoleWithWebIdentity"]
    # Subject template include_claim_keys [repo, context, ref]: pull requests run on refs/pull/<n>/merge.
    assert plan["Condition"] == {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
        "StringLike": {
            "token.actions.githubusercontent.com:sub": "repo:knowledgerouter/kr_cfn:pull_request:ref:refs/pull/*/merge",
            # only deploy.yml's pull-request job, not another workflow file of the pull request
            "token.actions.githubusercontent.com:job_workflow_ref": (
                "knowledgerouter/kr_cfn/.github/workflows/deploy.yml@refs/pull/*/merge"
            ),
        },
    }
    deploy = _trust(t, bootstrap.DEPLOY_ROLE)
    # The environment (its required reviewers) and the branch, both in one subject; release.yml on main.
    assert deploy["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": (
                f"repo:knowledgerouter/kr_cfn:environment:{env}:ref:refs/heads/main"
            ),
            "token.actions.githubusercontent.com:job_workflow_ref": (
                "knowledgerouter/kr_cfn/.github/workflows/release.yml@refs/heads/main"
            ),
        }
    }


def test_default_github_subject_names_the_environment_only() -> None:
    t = _custom(github_repository="acme/infra", oidc_subject="environment", deploy_branch=None)
    assert _trust(t, bootstrap.DEPLOY_ROLE)["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:acme/infra:environment:dev"
    )
    assert _trust(t, bootstrap.PLAN_ROLE)["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:acme/infra:pull_request"
    )
    # no deploy branch: the environment's branch rule chooses; the role still takes release.yml only
    assert _trust(t, bootstrap.DEPLOY_ROLE)["Condition"]["StringLike"] == {
        "token.actions.githubusercontent.com:job_workflow_ref": "acme/infra/.github/workflows/release.yml@refs/heads/*"
    }


def _statements(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {
        s["Sid"]: s
        for p in template["Resources"][role]["Properties"]["Policies"]
        for s in p["PolicyDocument"]["Statement"]
    }


def test_github_roles_may_pass_only_the_service_role() -> None:
    """To CloudFormation only the service role; the deploy role also the env's application roles, to ECS
    tasks only (kr-cfn migrate runs the backend's task definition, which names its roles)."""
    t = _boot("dev")
    for role in (bootstrap.PLAN_ROLE, bootstrap.DEPLOY_ROLE):
        passes = [s for s in _statements(t, role).values() if "iam:PassRole" in s.get("Action", [])]
        to_cfn = [s for s in passes if s["Sid"] == "PassOnlyTheServiceRole"]
        assert to_cfn and to_cfn[0]["Resource"] == [{"Fn::GetAtt": [bootstrap.SERVICE_ROLE, "Arn"]}]
        others = [s for s in passes if s["Sid"] != "PassOnlyTheServiceRole"]
        if role == bootstrap.PLAN_ROLE:
            assert others == []
            continue
        assert [s["Sid"] for s in others] == ["PassApplicationRolesToTasks"]
        assert others[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
        assert others[0]["Resource"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/knowledgerouter-dev/*"}
        ]


def test_deploy_role_runs_only_the_backends_migration_task() -> None:
    t = _boot("dev")
    st = _statements(t, bootstrap.DEPLOY_ROLE)
    ecs = "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}"
    logs = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
    assert st["RunMigrationTask"]["Action"] == ["ecs:RunTask"]
    assert st["RunMigrationTask"]["Resource"] == [
        {"Fn::Sub": f"{ecs}:task-definition/knowledgerouter-dev-backend:*"},
        {"Fn::Sub": f"{ecs}:task-definition/knowledgerouter-dev-backend-migrate:*"},
    ]
    assert st["RunMigrationTask"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": {"Fn::Sub": f"{ecs}:cluster/knowledgerouter-dev-cluster"}}
    }
    assert st["MigrationTaskDefinition"]["Resource"] == [
        {"Fn::Sub": f"{ecs}:task-definition/knowledgerouter-dev-backend-migrate:*"}
    ]
    assert st["ReadMigrationLog"]["Resource"] == [
        {"Fn::Sub": f"{logs}:log-group:/ecs/knowledgerouter-dev/backend:log-stream:*"}
    ]
    # drift and cancel on the application's stacks, never the bootstrap stack
    assert "cloudformation:CancelUpdateStack" in st["DriftAndCancel"]["Action"]
    assert "DenyBootstrapStack" in st
    wildcards = {sid for sid, s in st.items() if s["Resource"] == ["*"] and s["Effect"] == "Allow"}
    assert wildcards == {
        "ValidateTemplates",  # no resource type; reads no stack
        "ReadServiceCounts",  # only in the env's cluster (condition ecs:cluster)
        "TaskDefinitionsHaveNoResourceLevelPermissions",
        "DriftDetectionStatusHasNoResource",
    }


def test_only_the_deploy_role_executes() -> None:
    t = _boot("dev")
    plan_actions = {a for s in _statements(t, bootstrap.PLAN_ROLE).values() for a in s.get("Action", [])}
    deploy_actions = {a for s in _statements(t, bootstrap.DEPLOY_ROLE).values() for a in s.get("Action", [])}
    assert "cloudformation:ExecuteChangeSet" not in plan_actions
    assert {"cloudformation:CreateChangeSet", "s3:PutObject"} <= plan_actions
    assert {"cloudformation:ExecuteChangeSet", "cloudformation:SetStackPolicy"} <= deploy_actions
    assert {"cloudformation:UpdateTerminationProtection"} <= deploy_actions
    assert {"ecs:ListServices", "ecs:DescribeServices"} <= deploy_actions
    # the plan reads the services' desired counts, the deploy waits for them: in the env's cluster only
    counts = _statements(t, bootstrap.PLAN_ROLE)["ReadServiceCounts"]
    assert (
        counts["Action"] == ["ecs:ListServices", "ecs:DescribeServices"]
        and "ecs:cluster" in counts["Condition"]["ArnEquals"]
    )


def test_service_role_is_for_cloudformation() -> None:
    trust = _trust(_boot("dev"), bootstrap.SERVICE_ROLE)
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}


def test_existing_oidc_provider_is_referenced_not_created() -> None:
    t = _custom(github_repository="acme/infra", create_oidc_provider=False)
    assert not resources_of_type(t, "AWS::IAM::OIDCProvider")
    assert _trust(t, bootstrap.PLAN_ROLE)["Principal"] == {
        "Federated": {
            "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/token.actions.githubusercontent.com"
        }
    }


def test_no_github_roles_without_a_repository() -> None:
    t = _custom()
    assert not resources_of_type(t, "AWS::IAM::OIDCProvider")
    assert set(resources_of_type(t, "AWS::IAM::Role")) == {bootstrap.SERVICE_ROLE}
    assert "PlanRoleArn" not in t["Outputs"]


def test_no_repositories_where_another_environment_makes_them() -> None:
    t = _custom(repositories=())
    assert not resources_of_type(t, "AWS::ECR::Repository")
    assert not [o for o in t["Outputs"] if o.endswith("RepositoryUri")]


def test_images_to_keep_and_repositories_from_params() -> None:
    t = _custom(images_to_keep=5, repositories=("backend", "worker"))
    repos = resources_of_type(t, "AWS::ECR::Repository")
    assert set(repos) == {"BackendRepository", "WorkerRepository"}
    rules = json.loads(repos["WorkerRepository"]["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rules[0]["selection"]["countNumber"] == 5
    assert "WorkerRepositoryUri" in t["Outputs"]


def test_roles_are_scoped_by_the_environment_path_not_a_name_prefix() -> None:
    # prod's prefix 'knowledgerouter' is a name prefix of every dev role; its path '/knowledgerouter/' is not.
    cfg = load_env("dev")
    cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"stack_name": "kr-app"})})
    t = stacks.build_all(cfg)["bootstrap"].to_dict()
    for sid in ("CreateRolesOnlyWithTheBoundary", "ManageApplicationRoles", "PassApplicationRoles"):
        assert _statements(t, bootstrap.SERVICE_ROLE)[sid]["Resource"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/knowledgerouter-dev/*"}
        ]
    nested = _statements(t, bootstrap.SERVICE_ROLE)["NestedStacks"]["Resource"]
    assert {"Fn::Sub": "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/kr-app/*"} in nested


@pytest.mark.parametrize("env", ENVS)
def test_bootstrap_fits_aws_size_limits(env: str) -> None:
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html (characters without
    # whitespace: inline policies of one role 10,240 in total, a managed policy 6,144, 10 managed per role);
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html (a body by
    # TemplateURL: 1 MB; inline, 51,200 bytes, kr-cfn bootstrap's choice: kr_cfn/changes/bootbody.py).
    t = _boot(env)

    def size(doc: Any) -> int:
        return len(json.dumps(doc, separators=(",", ":")))

    for logical_id, r in resources_of_type(t, "AWS::IAM::Role").items():
        assert sum(size(p["PolicyDocument"]) for p in r["Properties"].get("Policies", [])) <= 10_240, logical_id
        assert len(r["Properties"].get("ManagedPolicyArns", [])) <= 10, logical_id
    for logical_id, r in resources_of_type(t, "AWS::IAM::ManagedPolicy").items():
        assert size(r["Properties"]["PolicyDocument"]) <= 6_144, logical_id
    assert size(t) <= bootbody.TEMPLATE_URL_LIMIT


def test_service_role_actions_follow_the_resource_types_of_the_built_templates() -> None:
    base = load_env("dev")
    dev = stacks.build_all(base)["bootstrap"].to_dict()
    actions = {
        a
        for r in resources_of_type(dev, "AWS::IAM::ManagedPolicy").values()
        if r["Properties"]["PolicyDocument"]["Statement"][0]["Sid"] == "StackResources"
        for a in r["Properties"]["PolicyDocument"]["Statement"][0]["Action"]
    }
    # dev runs Redis as a task; prod's ElastiCache adds its handler permissions.
    assert "elasticache:CreateReplicationGroup" not in actions
    prod = {
        a
        for r in resources_of_type(_boot("prod"), "AWS::IAM::ManagedPolicy").values()
        if r["Properties"]["PolicyDocument"]["Statement"][0]["Sid"] == "StackResources"
        for a in r["Properties"]["PolicyDocument"]["Statement"][0]["Action"]
    }
    assert "elasticache:CreateReplicationGroup" in prod
    assert {"ec2:CreateVpc", "ecs:CreateService", "rds:CreateDBInstance"} <= actions
    assert not [a for a in actions if a.endswith(":*") or a.split(":")[0] in {"iam", "lambda", "cloudformation"}]


@pytest.mark.parametrize("env", ENVS)
def test_bootstrap_is_sent_as_compact_json_within_the_url_limit(env: str, tmp_path: Path) -> None:
    """The built YAML is larger; what kr-cfn bootstrap sends (inline or by URL) is the same template, compact."""
    from kr_cfn.changes.bootbody import TEMPLATE_URL_LIMIT
    from kr_cfn.deploy.commands import bootstrap_body
    from kr_cfn.output import render

    path = tmp_path / "bootstrap.yaml"
    path.write_text(render(stacks.build_all(load_env(env))["bootstrap"], "yaml"), encoding="utf-8")
    body = bootstrap_body(path)
    assert len(body.encode()) <= TEMPLATE_URL_LIMIT
    assert json.loads(body) == _boot(env)


def test_a_bootstrap_over_the_url_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    from kr_cfn.deploy.commands import bootstrap_body
    from kr_cfn.errors import DeployError

    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Description": "x" * 1_100_000}}}))
    with pytest.raises(DeployError, match=r"bytes as compact JSON, over CloudFormation's limit of 1048576 bytes for a"):
        bootstrap_body(path)


def test_a_secret_outside_the_environments_path_fails_the_build() -> None:
    """The roles read secrets only under '/<prefix>/': a stack's secret named elsewhere would be unreadable."""
    import dataclasses

    cfg = load_env("staging")
    app = stacks.application([t for name, t in stacks.build_all(cfg).items() if name != "bootstrap"])
    assert app.secret_names and all(n.startswith("/knowledgerouter-staging/") for n in app.secret_names)
    assert app.db_instances == ("knowledgerouter-staging-postgres",)
    odd = dataclasses.replace(app, secret_names=(*app.secret_names, "/knowledgerouter-dev/openai-api-key"))
    with pytest.raises(
        ValueError, match=r"secrets must be named under /knowledgerouter-staging/ .*: /knowledgerouter-dev/"
    ):
        bootstrap.build(config.bootstrap_slice(cfg, odd))
