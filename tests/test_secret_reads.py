"""The plan's watch on GetSecretValue calls: a metric filter on the account's CloudTrail log group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import stacks
from kr_cfn import config
from stacks.monitoring import SECRET_READS_ALARM, SECRET_READS_FILTER, SECRET_READS_PATTERN
from tests.conftest import ENVS, built, write_params
from tests.policy_eval import Request, evaluate
from tests.test_rotation import ACCOUNT, REGION, _service_role


def _monitoring(tmp_path: Path, text: str) -> dict:
    return stacks.build_all(config.load(write_params(tmp_path, "dev", text)))["monitoring"].to_dict()


def test_a_trail_s_log_group_gets_the_filter_and_the_alarm(tmp_path: Path) -> None:
    resources = _monitoring(tmp_path, "monitoring:\n  cloudtrail_log_group: aws-cloudtrail-logs-kr\n")["Resources"]
    f = resources[SECRET_READS_FILTER]["Properties"]
    assert f["LogGroupName"] == "aws-cloudtrail-logs-kr"
    assert f["FilterPattern"] == SECRET_READS_PATTERN
    assert '($.eventName = "GetSecretValue")' in SECRET_READS_PATTERN
    assert '($.eventSource = "secretsmanager.amazonaws.com")' in SECRET_READS_PATTERN
    (metric,) = f["MetricTransformations"]
    alarm = resources[SECRET_READS_ALARM]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (metric["MetricNamespace"], metric["MetricName"])
    assert (alarm["Threshold"], alarm["Period"], alarm["Statistic"]) == (1000, 3600, "Sum")
    assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}]


@pytest.mark.parametrize("env", ENVS)
def test_no_trail_no_filter(env: str) -> None:
    resources = built(env)["monitoring"]["Resources"]
    assert SECRET_READS_FILTER not in resources and SECRET_READS_ALARM not in resources


def test_the_alarm_can_be_dropped(tmp_path: Path) -> None:
    text = "monitoring:\n  cloudtrail_log_group: aws-cloudtrail-logs-kr\n  alarms:\n    secret_reads: null\n"
    assert SECRET_READS_FILTER not in json.dumps(_monitoring(tmp_path, text))


def test_the_service_role_may_put_the_filter_on_the_trail_s_log_group(tmp_path: Path) -> None:
    path = write_params(tmp_path, "dev", "monitoring:\n  cloudtrail_log_group: aws-cloudtrail-logs-kr\n")
    templates = {n: t.to_dict() for n, t in stacks.build_all(config.load(path)).items()}
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:aws-cloudtrail-logs-kr"
    for action in ("logs:PutMetricFilter", "logs:DeleteMetricFilter", "logs:DescribeMetricFilters"):
        assert evaluate(Request(action, group), _service_role(templates)).allowed, action


def test_a_log_group_name_is_checked(tmp_path: Path) -> None:
    path = write_params(tmp_path, "dev", "monitoring:\n  cloudtrail_log_group: 'not a group'\n")
    with pytest.raises(config.ConfigError) as exc:
        config.load(path)
    assert str(exc.value) == (
        f"{path}: monitoring.cloudtrail_log_group: string should match pattern '^[A-Za-z0-9_./#-]{{1,512}}$', "
        "got 'not a group'"
    )
