"""Production behaviour: deploys keep the autoscaled count, HTTPS and its refusals, alert routes, kept logs.

Template properties of the built envs, one test per refusal message, and the review's notes and
warnings read from the built templates (kr_cfn.changes.notes).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import stacks
from kr_cfn import config
from kr_cfn.changes import notes
from kr_cfn.changes.review import Review, render_markdown, render_text
from stacks import data, ecs, monitoring
from tests.conftest import ENVS, built, load_env, resources_of_type, write_params

PROTECTED = "account_id: '123456789012'\ndeploy:\n  termination_protection: true\n"  # account_id: required with it
TLS = "alb:\n  domain_name: kr.example.com\n  hosted_zone_id: Z1D633PJN98FT9\n"
ROUTE = "monitoring:\n  alert_emails: [ops@example.com]\n"


def _errors(tmp_path: Path, text: str, env: str = "dev") -> list[str]:
    path = write_params(tmp_path, env, text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    return [line.removeprefix(f"{path}: ") for line in str(exc.value).splitlines()]


def _load(tmp_path: Path, text: str, env: str = "dev") -> config.EnvConfig:
    return config.load(write_params(tmp_path, env, text))


# --------------------------------------------------------------------------- 2. task counts


@pytest.mark.parametrize("env", ENVS)
def test_autoscaled_services_leave_the_count_to_autoscaling(env: str) -> None:
    t = built(env)["ecs"]
    targets = resources_of_type(t, "AWS::ApplicationAutoScaling::ScalableTarget")
    for name, spec in config.ecs_slice(load_env(env)).services.items():
        service = t["Resources"][f"{name.capitalize()}Service"]["Properties"]
        if spec.autoscaling:
            assert "DesiredCount" not in service, name
            (target,) = (p["Properties"] for k, p in targets.items() if k == f"{name.capitalize()}ScalableTarget")
            # a new service starts at 1 and registering the target raises it to MinCapacity
            assert (target["MinCapacity"], target["MaxCapacity"]) == (spec.min_count, spec.max_count)
            assert {"Fn::GetAtt": [f"{name.capitalize()}Service", "Name"]} in target["ResourceId"]["Fn::Join"][1]
        else:
            assert service["DesiredCount"] == spec.desired_count, name


def test_prod_backend_is_autoscaled_without_a_desired_count() -> None:
    backend = built("prod")["ecs"]["Resources"]["BackendService"]["Properties"]
    assert "DesiredCount" not in backend
    assert load_env("prod").services["backend"].autoscaling is not None


def test_review_says_the_running_count_is_kept() -> None:
    found, warnings = notes.capacity(built("prod")["ecs"])
    assert warnings == []
    assert found == [
        "BackendService (backend): autoscaled 2-10; this deploy keeps its running task count "
        "(no DesiredCount in the template, Application Auto Scaling owns it)"
    ]


def test_review_shows_the_live_count_when_deployed() -> None:
    found, _ = notes.capacity(built("prod")["ecs"], {"backend": 4, "frontend": 2})
    assert found[0].startswith("BackendService (backend): autoscaled 2-10; this deploy keeps its 4 desired task(s)")


def test_review_warns_when_a_template_would_reset_the_count() -> None:
    t = copy.deepcopy(built("prod")["ecs"])
    t["Resources"]["BackendService"]["Properties"]["DesiredCount"] = 2
    found, warnings = notes.capacity(t)
    assert found == []
    assert warnings == [
        "BackendService (backend): DesiredCount 2 with autoscaling 2-10: "
        "every deploy resets the running task count to it"
    ]


def test_capacity_notes_in_the_rendered_review() -> None:
    review = Review("s", "cs", "arn:cs", "UPDATE", "eu-central-1")
    review.notes, review.warnings = notes.capacity(built("prod")["ecs"])
    review.warnings.append("the alarms of prod reach no one: ...")
    text = render_text(review)
    assert "note: BackendService (backend): autoscaled 2-10; this deploy keeps" in text
    assert "warning: the alarms of prod reach no one" in text
    md = render_markdown(review)
    assert "> [!NOTE]\n> - BackendService (backend): autoscaled 2-10" in md
    assert "> [!WARNING]\n> - the alarms of prod reach no one" in md
    assert '"notes": [' in review.to_json()


# --------------------------------------------------------------------------- 3. HTTPS and access logs


def test_protected_env_without_tls_is_refused(tmp_path: Path) -> None:
    assert _errors(tmp_path, PROTECTED + ROUTE) == [
        "alb: no TLS in an environment with termination protection: set alb.domain_name and alb.hosted_zone_id "
        "(or alb.certificate_arn), or alb.allow_plain_http: true with alb.plain_http_reason"
    ]


def test_protected_env_may_serve_plain_http_when_params_say_why(tmp_path: Path) -> None:
    text = PROTECTED + ROUTE + "alb:\n  allow_plain_http: true\n  plain_http_reason: internal pilot behind a VPN\n"
    cfg = _load(tmp_path, text)
    assert cfg.alb.allow_plain_http and not cfg.alb.tls


def test_plain_http_needs_a_reason(tmp_path: Path) -> None:
    assert _errors(tmp_path, "alb:\n  allow_plain_http: true\n") == [
        "alb.plain_http_reason: required with allow_plain_http: true (why no TLS here)"
    ]


def test_reason_without_allow_plain_http(tmp_path: Path) -> None:
    assert _errors(tmp_path, "alb:\n  plain_http_reason: no domain for now\n") == [
        "alb.plain_http_reason: set, but allow_plain_http is not true"
    ]


def test_plain_http_and_tls_contradict(tmp_path: Path) -> None:
    text = TLS + "  allow_plain_http: true\n  plain_http_reason: no domain for now\n"
    assert _errors(tmp_path, text) == ["alb.allow_plain_http: true, but TLS is configured; remove allow_plain_http"]


def test_hosted_zone_needs_a_domain(tmp_path: Path) -> None:
    assert _errors(tmp_path, "alb:\n  hosted_zone_id: Z1D633PJN98FT9\n") == [
        "alb.hosted_zone_id: needs domain_name (the name the certificate and record are for)"
    ]


def test_invalid_hosted_zone_id(tmp_path: Path) -> None:
    (error,) = _errors(tmp_path, "alb:\n  domain_name: kr.example.com\n  hosted_zone_id: my-zone\n")
    assert error.startswith("alb.hosted_zone_id: string should match pattern ")


def test_access_log_prefix_must_not_contain_awslogs(tmp_path: Path) -> None:
    assert _errors(tmp_path, "alb:\n  access_logs_prefix: AWSLogs\n") == [
        "alb.access_logs_prefix: must not contain AWSLogs (ELB adds AWSLogs/<account>/ itself)"
    ]


def test_access_logs_in_a_region_unknown_to_the_build_are_delivered(tmp_path: Path) -> None:
    """Failed before: a region outside the ELB account table was refused (alb.access_logs: region ... table)."""
    cfg = _load(tmp_path, "region: xx-nowhere-9\n")
    assert set(stacks.build_all(cfg)) >= {"data", "alb", "bootstrap"}  # every template builds
    statement = _alb_log_statement(cfg)
    assert statement is not None
    assert statement["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def _alb_log_statement(cfg: config.EnvConfig) -> dict[str, Any] | None:
    t = data.build(config.data_slice(cfg)).to_dict()
    policy = t["Resources"]["AccessLogsBucketPolicy"]["Properties"]["PolicyDocument"]
    return next((s for s in policy["Statement"] if s.get("Sid") == "AllowAlbAccessLogs"), None)


@pytest.mark.parametrize("env", ENVS)
def test_elb_writes_only_its_prefix_of_the_access_log_bucket(env: str) -> None:
    statement = _alb_log_statement(load_env(env))
    assert statement is not None
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"] == [{"Fn::Sub": "${AccessLogsBucket.Arn}/alb/AWSLogs/${AWS::AccountId}/*"}]
    # the log delivery service principal, in every region (no per-region ELB account)
    assert statement["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def test_newer_regions_use_the_log_delivery_service_principal(tmp_path: Path) -> None:
    statement = _alb_log_statement(_load(tmp_path, "region: eu-central-2\n"))
    assert statement is not None
    assert statement["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def test_no_elb_statement_without_access_logs(tmp_path: Path) -> None:
    assert _alb_log_statement(_load(tmp_path, "alb:\n  access_logs: false\n")) is None


def test_shipped_prod_uses_documented_example_values_the_review_flags() -> None:
    cfg = load_env("prod")
    assert cfg.alb.domain_name == "knowledgerouter.example.com" and cfg.alb.tls
    (warning,) = notes.example_values(built("prod"))
    assert "knowledgerouter.example.com" in warning and "devops-alerts@example.com" in warning
    assert notes.example_values({"alb": built("dev")["alb"], "monitoring": built("dev")["monitoring"]}) == []


# --------------------------------------------------------------------------- 4. alert routes


def test_protected_env_without_an_alert_route_is_refused(tmp_path: Path) -> None:
    assert _errors(tmp_path, PROTECTED + TLS) == [
        "monitoring: the alarms reach no one in an environment with termination protection: set "
        "monitoring.alert_emails, monitoring.alert_https_endpoints or monitoring.slack, "
        "or monitoring.allow_no_alert_route: true"
    ]


def test_protected_env_may_go_without_a_route_when_params_say_so(tmp_path: Path) -> None:
    cfg = _load(tmp_path, PROTECTED + TLS + "monitoring:\n  allow_no_alert_route: true\n")
    assert not cfg.monitoring.has_route


def test_allow_no_route_with_routes_contradicts(tmp_path: Path) -> None:
    assert _errors(tmp_path, ROUTE + "  allow_no_alert_route: true\n") == [
        "monitoring.allow_no_alert_route: true, but alert routes are configured; remove it"
    ]


def test_https_endpoint_must_be_https(tmp_path: Path) -> None:
    assert _errors(tmp_path, "monitoring:\n  alert_https_endpoints: ['http://hooks.example.com/x']\n") == [
        "monitoring.alert_https_endpoints[0]: 'http://hooks.example.com/x' is not an https:// URL"
    ]


def test_slack_ids_are_checked(tmp_path: Path) -> None:
    (error,) = _errors(tmp_path, "monitoring:\n  slack: {workspace_id: T07EA123LEP, channel_id: '#alerts'}\n")
    assert error.startswith("monitoring.slack.channel_id: string should match pattern ")


def _monitoring(tmp_path: Path, text: str) -> dict[str, Any]:
    return monitoring.build(config.monitoring_slice(_load(tmp_path, text))).to_dict()


def test_https_and_slack_routes(tmp_path: Path) -> None:
    text = (
        "monitoring:\n  alert_https_endpoints: ['https://hooks.example.com/alerts']\n"
        "  slack: {workspace_id: T07EA123LEP, channel_id: C07EZ1ABC23}\n"
    )
    t = _monitoring(tmp_path, text)
    (sub,) = resources_of_type(t, "AWS::SNS::Subscription").values()
    assert sub["Properties"] == {
        "TopicArn": {"Ref": "AlertsTopic"},
        "Protocol": "https",
        "Endpoint": "https://hooks.example.com/alerts",
    }
    channel = t["Resources"][monitoring.CHATBOT_CHANNEL]["Properties"]
    assert (channel["SlackWorkspaceId"], channel["SlackChannelId"]) == ("T07EA123LEP", "C07EZ1ABC23")
    assert channel["SnsTopicArns"] == [{"Ref": "AlertsTopic"}]
    assert channel["IamRoleArn"] == {"Fn::GetAtt": [monitoring.CHATBOT_ROLE, "Arn"]}
    assert channel["GuardrailPolicies"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/CloudWatchReadOnlyAccess"}
    ]
    role = t["Resources"][monitoring.CHATBOT_ROLE]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "chatbot.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["cloudwatch:DescribeAlarms"]
    assert statement["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:knowledgerouter-dev-*"}
    ]
    found, warnings = notes.alert_routes(t, "dev")
    assert warnings == []
    assert found == [
        "alert subscriptions (1 https) receive nothing until each is confirmed once (docs/runbook.md, Alert routes)",
        "Slack alerts need the workspace authorised once in the AWS Chatbot console (docs/runbook.md, Alert routes)",
    ]


def test_review_warns_when_the_alarms_reach_no_one() -> None:
    assert notes.alert_routes(built("dev")["monitoring"], "dev") == (
        [],
        [
            "the alarms of dev reach no one: the monitoring template has no subscription or Chatbot channel on "
            "their topic (set monitoring.alert_emails, monitoring.alert_https_endpoints or monitoring.slack)"
        ],
    )
    found, warnings = notes.alert_routes(built("prod")["monitoring"], "prod")
    assert warnings == [] and found[0].startswith("alert subscriptions (1 email)")


def test_a_subscription_on_another_topic_does_not_count() -> None:
    t = copy.deepcopy(built("prod")["monitoring"])
    for sub in resources_of_type(t, "AWS::SNS::Subscription").values():
        sub["Properties"]["TopicArn"] = {"Ref": "SomeOtherTopic"}
    _, warnings = notes.alert_routes(t, "prod")
    assert warnings and warnings[0].startswith("the alarms of prod reach no one")


# --------------------------------------------------------------------------- 5. logs


@pytest.mark.parametrize(("env", "policy"), [("dev", "Delete"), ("staging", "Delete"), ("prod", "Retain")])
def test_app_log_groups_are_kept_with_termination_protection(env: str, policy: str) -> None:
    groups = resources_of_type(built(env)["ecs"], "AWS::Logs::LogGroup")
    assert groups
    assert {(g["DeletionPolicy"], g["UpdateReplacePolicy"]) for g in groups.values()} == {(policy, policy)}


def test_retain_logs_param_overrides_the_default(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "ecs:\n  retain_logs: true\n")
    groups = resources_of_type(ecs.build(config.ecs_slice(cfg)).to_dict(), "AWS::Logs::LogGroup")
    assert {g["DeletionPolicy"] for g in groups.values()} == {"Retain"}


def test_readme_lists_every_variable_the_backend_receives() -> None:
    docs = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    section = docs.read_text(encoding="utf-8").split("## Backend environment", 1)[1].split("\n## ", 1)[0]
    for env in ENVS:
        backend = load_env(env).services["backend"]
        for name in [*backend.environment, *backend.secrets]:
            assert f"`{name}`" in section, (
                f"{env}: {name} is not documented in docs/configuration.md, Backend environment"
            )
