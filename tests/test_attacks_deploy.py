"""Attacks on the deploy path, against the local AWS endpoint (moto's server, see aws_endpoint.py).

An attacker who can open a pull request holds the plan role: PutObject in the artifacts bucket
and CreateChangeSet on the application stacks. moto's server does not enforce IAM, so the
attacker's calls here are made with the test's own credentials (what the plan role was allowed
before), and what the plan role may do now is checked on the bootstrap template itself, offline.
The deploy side runs the real ``kr-cfn`` commands, as the workflow does.

The tests share one deployed environment ``atk`` (a copy of dev, deployed once with image tags
v0) with its own bootstrap stack and bucket, so nothing here shares state with test_deploy_e2e.py;
each test starts from whatever the previous one deployed and uses image tags of its own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from kr_cfn.aws import Aws
from kr_cfn.changes import apply as applying
from kr_cfn.changes import changeset, guard
from kr_cfn.changes.package import load_template
from kr_cfn.cli import main
from kr_cfn.errors import DeployError
from tests.conftest import PARAMS, ROOT, built
from tests.test_deploy_e2e import MOTO_ACCOUNT, REGION, Project, endpoint  # noqa: F401 - the fixture

ENV = "atk"


def _atk_params(params: Path) -> None:
    """``params/atk.yaml``: dev under another name, no ECR repositories (dev's bootstrap makes them)."""
    data = yaml.safe_load((PARAMS / "dev.yaml").read_text())
    data.update(env=ENV, account_id=MOTO_ACCOUNT)
    data.setdefault("bootstrap", {})["repositories"] = []
    (params / f"{ENV}.yaml").write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def bucket(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    """The atk bootstrap stack (service role, artifacts bucket) and root stack, deployed once: the bucket."""
    tmp = tmp_path_factory.mktemp("atk-bootstrap")
    shutil.copytree(PARAMS, tmp / "params")
    _atk_params(tmp / "params")
    common = ["--params", str(tmp / "params"), "--out", str(tmp / "out")]
    assert main(["build", "--env", ENV, "--no-lint", *common]) == 0
    assert main(["bootstrap", "--env", ENV, *common]) == 0
    stack = boto3.client("cloudformation", region_name=REGION).describe_stacks(
        StackName=f"knowledgerouter-{ENV}-bootstrap"
    )["Stacks"][0]
    name = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "ArtifactsBucketName")
    root = load_template(tmp / "out" / ENV / "root.yaml")
    tags = [f"--image-tag={n}=v0" for n in sorted(root.get("Parameters", {})) if n.endswith("ImageTag")]
    assert main(["package", "--env", ENV, "--bucket", name, *common]) == 0
    assert main(["plan", "--env", ENV, *tags, *common]) == 0
    assert main(["apply", "--env", ENV, "--plan", str(tmp / "out" / f"{ENV}.plan" / "plan.json"), *common]) == 0
    yield name


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    p = Project(tmp_path, capsys)
    _atk_params(p.params)
    p.build(ENV)
    return p


def _tags(project: Project, tag: str) -> list[str]:
    root = project.template(ENV, "root")
    return [f"--image-tag={n}={tag}" for n in sorted(root.get("Parameters", {})) if n.endswith("ImageTag")]


STACK = f"knowledgerouter-{ENV}"


def _plan(project: Project, bucket: str, tag: str | None, *more: str) -> str:
    """package -> plan (the workflow's release-plan job); its output."""
    project.ok("package", "--env", ENV, "--bucket", bucket)
    return project.ok("plan", "--env", ENV, *(_tags(project, tag) if tag else []), *more)


def _apply_plan(project: Project) -> None:
    """apply --plan (the workflow's deploy job)."""
    project.ok("apply", "--env", ENV, "--plan", str(project.out / f"{ENV}.plan" / "plan.json"))


def _cfn() -> Any:
    return boto3.client("cloudformation", region_name=REGION)


def _parameters(stack: str) -> dict[str, str]:
    described = _cfn().describe_stacks(StackName=stack)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}


# --------------------------------------------------------------------------- planted artifact


def test_planted_artifact_is_detected_and_replaced(endpoint: str, bucket: str, project: Project) -> None:  # noqa: F811
    """An object planted under the content-hash key main will use, with other bytes, is not trusted."""
    s3 = boto3.client("s3", region_name=REGION)
    # The attacker computes main's keys by packaging the same commit into a bucket of their own.
    s3.create_bucket(Bucket="kr-attacker-scratch", CreateBucketConfiguration={"LocationConstraint": REGION})
    project.ok("package", "--env", ENV, "--bucket", "kr-attacker-scratch", "--prefix", "planted")
    # (the nested templates: the packaged root names the bucket, so its key differs per bucket)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="kr-attacker-scratch")["Contents"]]
    keys = [k for k in keys if not k.endswith(".root.json")]
    genuine = {k: s3.get_object(Bucket="kr-attacker-scratch", Key=k)["Body"].read() for k in keys}
    assert any(k.endswith(".network.json") for k in keys)
    for key, body in genuine.items():
        template = json.loads(body)
        template["Resources"]["Backdoor"] = {"Type": "AWS::SNS::Topic"}
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(template).encode())

    code, out, err = project.run("package", "--env", ENV, "--bucket", bucket, "--prefix", "planted")
    assert code == 0, err
    for key, body in genuine.items():
        assert f"warning: s3://{bucket}/{key} holds other bytes than the template its key names" in err
        assert f"replaced {key}" in out
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    # Replaced objects carry S3's SHA-256 from now on; a second package trusts them.
    code, out, err = project.run("package", "--env", ENV, "--bucket", bucket, "--prefix", "planted")
    assert code == 0 and "warning" not in err and "uploaded" not in out


def test_pull_requests_write_only_under_pr(endpoint: str, bucket: str, project: Project) -> None:  # noqa: F811
    """Pull-request packages go under pr/, the plan role may write only there, deploys never use it."""
    project.ok("package", "--env", ENV, "--bucket", bucket, "--pull-request")
    pkg = json.loads((project.out / ENV / "package.json").read_text())
    assert pkg["pull_request"] is True
    assert f"/{bucket}/pr/knowledgerouter-{ENV}/" in pkg["root_template_url"]
    code, _, err = project.run("package", "--env", ENV, "--bucket", bucket, "--prefix", "pr/knowledgerouter-atk")
    assert code == 2 and err.strip() == (
        "--prefix pr/knowledgerouter-atk: pr/ holds pull-request artifacts, which a deploy never uses; "
        "name another prefix, or pass --pull-request for a pull-request plan"
    )
    # A pull request's plan record is never applied.
    project.ok("plan", "--env", ENV, *_tags(project, "pr"))
    record = project.out / f"{ENV}.plan" / "plan.json"
    # Named as a pull request's: the plan role may delete only these, the deploy role never executes one.
    assert project.review(ENV)["change_set_name"].startswith(changeset.PR_CHANGE_SET_PREFIX)
    code, _, err = project.run("apply", "--env", ENV, "--plan", str(record))
    assert code == 2
    assert err.strip() == f"--plan {record}: planned from pull-request artifacts (pr/), which are never deployed"
    # Failed before: by name or ARN, apply executed a pull request's change set (the deploy role's
    # Deny on the name was the only stop). Now one line, exit 2, and nothing executed.
    review = project.review(ENV)
    before = _parameters(STACK)
    untrusted = {**json.loads(record.read_text()), "pull_request": False}
    record.write_text(json.dumps(untrusted))
    for option in (
        ["--change-set", review["change_set_name"]],
        ["--change-set", review["change_set_id"]],
        ["--plan", str(record)],
    ):
        code, _, err = project.run("apply", "--env", ENV, *option)
        assert (code, err.strip()) == (
            2,
            f"change set {review['change_set_name']} is a pull request's (kr-cfn-pr-*): never executed; "
            "deploy from main (release.yml) or plan it yourself",
        ), option
    assert _parameters(STACK) == before

    # Offline (moto's server does not enforce IAM): the plan role's only PutObject is pr/*.
    boot = built("dev")["bootstrap"]
    for role, prefix in (("GitHubPlanRole", "pr"), ("GitHubReleasePlanRole", "knowledgerouter-dev")):
        statements = [
            s for p in boot["Resources"][role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
        ]
        allows = [s for s in statements if s["Effect"] == "Allow"]  # (the Denies may use NotAction)
        puts = [s for s in allows if "s3:PutObject" in s["Action"] or "s3:*" in s["Action"]]
        assert [s["Resource"] for s in puts] == [[{"Fn::Sub": f"${{ArtifactsBucket.Arn}}/{prefix}/*"}]], role
        actions = {a for s in allows for a in s["Action"]}
        assert "cloudformation:ExecuteChangeSet" not in actions, role


# --------------------------------------------------------------------------- planted change set


def test_planted_change_set_is_not_executed(endpoint: str, bucket: str, project: Project) -> None:  # noqa: F811
    """A change set made ahead with the name main's plan derives, and other parameters, is never used."""
    stack = STACK
    # main's next commit changes the templates too (a tag), so the change set has resource changes.
    project.set(ENV, "tags", {"Release": "planted-cs"})
    project.build(ENV)
    project.ok("package", "--env", ENV, "--bucket", bucket)
    pkg = json.loads((project.out / ENV / "package.json").read_text())
    role = _cfn().describe_stacks(StackName=f"knowledgerouter-{ENV}-bootstrap")["Stacks"][0]["Outputs"]
    role_arn = next(o["OutputValue"] for o in role if o["OutputKey"] == "CloudFormationRoleArn")
    names = sorted(_parameters(stack))
    # The name a plan with image tags v2 derives from its content (what plan reused before).
    target = changeset.Target(
        stack_name=stack,
        template_url=pkg["root_template_url"],
        parameters=tuple((n, "v2") for n in names),
        role_arn=role_arn,
    )
    predictable = changeset.change_set_name(target, "UPDATE", [])
    _cfn().create_change_set(
        StackName=stack,
        ChangeSetName=predictable,
        TemplateURL=pkg["root_template_url"],
        Parameters=[{"ParameterKey": n, "ParameterValue": "evil"} for n in names],
        Capabilities=changeset.CAPABILITIES,
        ChangeSetType="UPDATE",
    )

    out = _plan(project, bucket, "v2")
    _apply_plan(project)
    assert set(_parameters(stack).values()) == {"v2"}  # not "evil"
    review = project.review(ENV)
    assert review["change_set_name"] != predictable and "evil" not in out
    assert all(p["planned"] == "v2" for p in review["parameters"]), review["parameters"]
    # Applying by the name printed works the same way: that name was never the attacker's.
    assert review["change_set_id"].split("/")[1] == review["change_set_name"]


# --------------------------------------------------------------------------- review


def test_review_shows_changed_parameter_values(endpoint: str, bucket: str, project: Project) -> None:  # noqa: F811
    stack = STACK
    _plan(project, bucket, "v1")
    _apply_plan(project)
    names = sorted(_parameters(stack))
    backend = next(n for n in names if n.startswith("Backend"))
    others = [n for n in names if n != backend]
    out = _plan(project, bucket, None, f"--image-tag={backend}=v2")  # the others: UsePreviousValue
    review = project.review(ENV)
    by_key = {p["key"]: p for p in review["parameters"]}
    assert by_key[backend] == {"key": backend, "deployed": "v1", "planned": "v2", "status": "changed"}
    assert others and all(by_key[n]["status"] == "kept" and by_key[n]["deployed"] == "v1" for n in others)
    assert f"{backend}  v1 -> v2" in out or f"{backend} v1 -> v2" in " ".join(out.split())
    assert "v1 (kept: UsePreviousValue)" in out
    md = (project.out / f"{ENV}.plan" / "review.md").read_text()
    assert f"| `{backend}` | `v1` | **`v2`** |" in md
    assert f"| `{others[0]}` | `v1` | kept (UsePreviousValue) |" in md


# --------------------------------------------------------------------------- account and region


def test_account_mismatch_is_refused_before_anything_is_done(
    endpoint: str,  # noqa: F811
    bucket: str,
    project: Project,
) -> None:
    project.set(ENV, "account_id", "111111111111")
    params = project.params / f"{ENV}.yaml"
    for command in (["status"], ["package", "--bucket", bucket, "--prefix", "wrong-account"], ["bootstrap"]):
        code, _, err = project.run(command[0], "--env", ENV, *command[1:])
        assert code == 2, command
        assert err.strip() == (
            f"{params}: account_id: 111111111111, but the credentials are for account {MOTO_ACCOUNT} "
            f"(arn:aws:sts::{MOTO_ACCOUNT}:user/moto): use credentials for 111111111111 or correct account_id"
        )
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket, Prefix="wrong-account/")
    assert listed.get("KeyCount", 0) == 0


def test_account_id_is_required_with_termination_protection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = Project(tmp_path, capsys)
    data = yaml.safe_load((project.params / "prod.yaml").read_text())
    del data["account_id"]
    (project.params / "prod.yaml").write_text(yaml.safe_dump(data))
    code, _, err = project.run("status", "--env", "prod")
    assert code == 2 and err.strip() == (
        f"{project.params / 'prod.yaml'}: account_id: required when deploy.termination_protection is true: "
        "the 12-digit AWS account this environment deploys to (the deploy commands refuse any other)"
    )
    (project.params / "prod.yaml").write_text(yaml.safe_dump({**data, "account_id": 123}))
    code, _, err = project.run("status", "--env", "prod")
    assert code == 2 and "account_id: write the 12-digit account id in quotes" in err


def test_region_mismatch_is_refused_unless_named(
    endpoint: str,  # noqa: F811
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    code, out, err = project.run("status", "--env", ENV)
    assert code == 2 and err.strip() == (
        f"{project.params / f'{ENV}.yaml'}: region: {REGION}, but the AWS session is in us-west-2 "
        "(AWS_DEFAULT_REGION or the profile): use the params' region, "
        "or pass --region us-west-2 to deploy there on purpose"
    )
    # boto3 ignores AWS_REGION, the AWS CLI v2 honours it: set alone to another region, it is refused too.
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    code, out, err = project.run("status", "--env", ENV)
    assert code == 2 and err.strip() == (
        f"{project.params / f'{ENV}.yaml'}: region: {REGION}, but the AWS session is in us-west-2 "
        "(AWS_REGION): use the params' region, or pass --region us-west-2 to deploy there on purpose"
    )
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    out = project.ok("status", "--env", ENV, "--region", "us-west-2")  # explicit: that region, on purpose
    assert f"knowledgerouter-{ENV}-bootstrap: not deployed" in out


# --------------------------------------------------------------------------- stale change set


def test_stale_change_set_is_refused_by_apply(endpoint: str, bucket: str, project: Project) -> None:  # noqa: F811
    """A change set reviewed before another deploy changed the stack is not executed afterwards."""
    stack = STACK
    _plan(project, bucket, "stale-a")
    stale_review = project.review(ENV)
    stale_record = project.out / "stale-plan.json"
    shutil.copy(project.out / f"{ENV}.plan" / "plan.json", stale_record)
    _plan(project, bucket, "stale-b")
    _apply_plan(project)
    assert set(_parameters(stack).values()) == {"stale-b"}

    code, _, err = project.run(
        "apply", "--env", ENV, "--stack-name", stack, "--change-set", stale_review["change_set_name"]
    )
    assert code == 2
    assert f"change set {stale_review['change_set_name']} is stale: made " in err
    assert "run kr-cfn plan again and review it" in err
    code, _, err = project.run("apply", "--env", ENV, "--plan", str(stale_record))
    assert code == 2 and f"--plan {stale_record}: stack {stack} changed since the plan (then UPDATE_COMPLETE" in err
    assert set(_parameters(stack).values()) == {"stale-b"}


def test_plan_record_is_bound_to_its_change_set(endpoint: str, bucket: str, project: Project) -> None:  # noqa: F811
    """apply --plan executes the change set the record names by ARN, with the recorded parameters only."""
    stack = STACK
    before = _parameters(stack)
    _plan(project, bucket, "record")
    path = project.out / f"{ENV}.plan" / "plan.json"
    record = json.loads(path.read_text())
    assert record["change_set_id"].startswith(f"arn:aws:cloudformation:{REGION}:{MOTO_ACCOUNT}:changeSet/")
    tampered = {**record, "parameters": [{**p, "ParameterValue": "v9"} for p in record["parameters"]]}
    path.write_text(json.dumps(tampered))
    code, _, err = project.run("apply", "--env", ENV, "--plan", str(path))
    assert (
        code == 2
        and err.strip() == f"--plan {path}: the change set's parameters differ from the reviewed plan's; plan again"
    )
    path.write_text(json.dumps({**record, "env": "prod"}))
    code, _, err = project.run("apply", "--env", ENV, "--plan", str(path))
    assert code == 2 and err.strip() == f"--plan {path}: planned for env prod, this apply is for {ENV}"
    assert _parameters(stack) == before


def test_apply_takes_only_the_record_of_the_published_digest(
    endpoint: str,  # noqa: F811
    bucket: str,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Failed before: the deploy job trusted whatever plan.json the artifact held, and another job of
    the caller's run can replace an artifact. plan publishes the record's sha256 as a job output;
    apply --plan-digest refuses any other record (here: one allowing the database to go)."""
    outputs = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    _plan(project, bucket, "digest")
    path = project.out / f"{ENV}.plan" / "plan.json"
    published = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    record = json.loads(path.read_text())
    assert published["plan_digest"] == applying.record_digest(path.read_bytes())
    assert published["change_set_id"] == record["change_set_id"] and record["allow_replace"] == []
    good = path.read_bytes()
    path.write_text(json.dumps({**record, "allow_replace": ["DataStack"]}, indent=2, sort_keys=True) + "\n")
    code, _, err = project.run("apply", "--env", ENV, "--plan", str(path), "--plan-digest", published["plan_digest"])
    assert code == 2 and err.strip() == (
        f"--plan {path}: its sha256 is {applying.record_digest(path.read_bytes())}, not the --plan-digest "
        f"{published['plan_digest']} the plan published: not the reviewed record; plan again"
    )
    code, _, err = project.run("apply", "--env", ENV, "--plan", str(path), "--plan-digest", "")
    assert code == 2 and err.strip() == "--plan-digest '': expected the 64 hex digits of a sha256"
    assert set(_parameters(STACK).values()) != {"digest"}
    path.write_bytes(good)
    project.ok("apply", "--env", ENV, "--plan", str(path), "--plan-digest", published["plan_digest"])
    assert set(_parameters(STACK).values()) == {"digest"}


# --------------------------------------------------------------------------- the workflow


def test_workflow_approves_a_published_change_set_and_executes_exactly_it() -> None:
    workflows = ROOT / ".github" / "workflows"
    deploy_yml = yaml.safe_load((workflows / "deploy.yml").read_text())["jobs"]
    # main and workflow_dispatch: release.yml per environment (the application repository calls it too)
    assert [j.get("uses") for j in deploy_yml.values()] == [None, "./.github/workflows/release.yml"]
    jobs = {"plan": deploy_yml["plan"], **yaml.safe_load((workflows / "release.yml").read_text())["jobs"]}
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    roles = {
        name: "\n".join(str(s.get("with", {}).get("role-to-assume", "")) for s in job["steps"])
        for name, job in jobs.items()
    }
    # pull requests: the plan role, artifacts under pr/
    assert "--pull-request" in runs["plan"] and roles["plan"].strip() == "${{ vars[matrix.plan_role] }}"
    assert {i["plan_role"] for i in jobs["plan"]["strategy"]["matrix"]["include"]} == {
        "PLAN_ROLE_ARN_DEV",
        "PLAN_ROLE_ARN_STAGING",
        "PLAN_ROLE_ARN_PROD",
    }
    # the change set is made and published before approval, by a role that cannot execute
    release = jobs["release-plan"]
    assert "environment" not in release and "RELEASE_PLAN_ROLE_ARN" in roles["release-plan"]
    assert "DEPLOY_ROLE_ARN" not in roles["release-plan"] and "kr-cfn apply" not in runs["release-plan"]
    uploads = [s for s in release["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert any(all(f in u["with"]["path"] for f in ("review.md", "review.json", "plan.json")) for u in uploads)
    assert "GITHUB_STEP_SUMMARY" in runs["release-plan"]
    # after approval: exactly that change set, from the plan record
    deploy = jobs["deploy"]
    assert deploy["needs"] == "release-plan" and deploy["environment"] == "${{ inputs.env }}"
    assert 'kr-cfn apply --env "$KR_ENV" --plan plan/plan.json' in runs["deploy"]
    assert "kr-cfn plan" not in runs["deploy"] and "kr-cfn package" not in runs["deploy"]
    assert "services-stable" in runs["deploy"] and 'kr-cfn smoke --env "$KR_ENV"' in runs["deploy"]
    assert jobs.pop("validate")["permissions"] == {}  # checks the env input, reaches nothing
    # Uploads the image scan's SARIF: no role, and no repository code (no checkout, no run step).
    findings = jobs.pop("image-findings")
    assert findings["permissions"] == {"contents": "read", "actions": "read", "security-events": "write"}
    assert not any("run" in st or "checkout" in str(st.get("uses", "")) for st in findings["steps"])
    for name, job in jobs.items():
        assert job["permissions"].get("id-token") == "write", name  # every other job assumes a role
        assert set(job["permissions"]) <= {"id-token", "contents", "pull-requests"}, name
    assert "pull-requests" not in jobs["release-plan"]["permissions"] and "pull-requests" not in deploy["permissions"]


def test_no_job_that_runs_pull_request_code_holds_a_write_token() -> None:
    """A pull request controls the code its plan job runs (kr_cfn, params, the workflow itself).

    With ``pull-requests: write`` it could forge or overwrite any environment's review comment; the
    comment is posted by forecast-comment.yml (workflow_run, default branch's code only).
    """
    import yaml

    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        triggers = data.get(True, data.get("on"))  # PyYAML reads the key `on` as True
        if "pull_request" not in (triggers if isinstance(triggers, (dict, list)) else [triggers]):
            continue
        top = data.get("permissions") or {}
        for name, job in data["jobs"].items():
            if str(job.get("if", "")).replace(" ", "") == "github.event_name!='pull_request'":
                continue  # never runs for a pull request (deploy.yml's release: main and on demand only)
            steps = job.get("steps") or []
            runs_code = any("run" in st or str(st.get("uses", "")).startswith("actions/checkout") for st in steps)
            if not runs_code and "steps" in job:  # only pinned actions on artifacts (the SARIF upload)
                continue
            perms = {**top, **(job.get("permissions") or {})}
            writes = sorted(k for k, v in perms.items() if v == "write" and k != "id-token")
            assert not writes, f"{path.name}: job {name} runs pull-request code with write access to {writes}"


# --------------------------------------------------------------------------- apply interrupted


class _CtrlC:
    """An output stream whose first write is interrupted, as by Ctrl-C while apply follows the events."""

    def write(self, text: str) -> int:
        raise KeyboardInterrupt

    def flush(self) -> None:
        pass


def test_interrupted_apply_says_the_update_goes_on_and_restores_the_policy(
    endpoint: str,  # noqa: F811
    bucket: str,
    project: Project,
) -> None:
    """Against the local endpoint. Failed before: Ctrl-C during apply exited 130 with no word that
    CloudFormation goes on updating the stack, nor how to follow or stop it."""
    _plan(project, bucket, "ctrl-c")
    record = json.loads((project.out / f"{ENV}.plan" / "plan.json").read_text())
    aws = Aws(REGION)
    # A stack policy left lifted from an earlier run: apply restores the full one whatever happens.
    _cfn().set_stack_policy(StackName=STACK, StackPolicyBody=guard.stack_policy(except_ids=["DataStack"]))
    review, cs = applying.check(aws, STACK, record["change_set_id"], record)
    with pytest.raises(DeployError) as caught:
        applying.execute(aws, review, cs, termination_protection=False, out=_CtrlC())  # type: ignore[arg-type]
    assert caught.value.code == 130
    assert str(caught.value) == (
        f"interrupted: only kr-cfn stopped; CloudFormation goes on updating stack {STACK} "
        "(follow it: kr-cfn watch --env ENV; "
        f"roll it back: aws cloudformation cancel-update-stack --stack-name {STACK}); "
        "the stack policies were restored"
    )
    assert json.loads(_cfn().get_stack_policy(StackName=STACK)["StackPolicyBody"]) == json.loads(guard.stack_policy())


def test_no_workflow_on_untrusted_events_can_assume_a_role() -> None:
    """The release-plan role trusts release.yml's jobs on the deploy branch without an environment.

    A workflow started by an event a stranger controls (a comment, another workflow's run, a
    pull_request_target) also runs on main: none of its jobs may ask for an OIDC token.
    """
    import yaml

    untrusted = {"issue_comment", "workflow_run", "pull_request_target", "issues", "discussion", "fork", "watch"}
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        triggers = data.get(True, data.get("on"))
        events = set(triggers) if isinstance(triggers, (dict, list)) else {triggers}
        if not events & untrusted:
            continue
        top = data.get("permissions") or {}
        assert top.get("id-token") != "write", path.name
        for name, job in data["jobs"].items():
            assert (job.get("permissions") or {}).get("id-token") != "write", f"{path.name}: {name}"
