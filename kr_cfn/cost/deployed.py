"""The monthly delta a plan brings: the deployed templates (GetTemplate) against the built ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kr_cfn import config
from kr_cfn.built import parse_template
from kr_cfn.cost import model
from kr_cfn.cost.estimating import estimate
from kr_cfn.cost.items import Line
from kr_cfn.cost.report import compare
from kr_cfn.cost.templates import STACK_TYPE, Stack


def _template(cfn: Any, stack_id: str) -> dict[str, Any]:
    # TemplateStage Original: the template as submitted (nested stacks' TemplateURL bodies included)
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplate.html
    body = cfn.get_template(StackName=stack_id, TemplateStage="Original")["TemplateBody"]
    return body if isinstance(body, dict) else parse_template(body, f"stack {stack_id}")


def _params(cfn: Any, stack_id: str) -> dict[str, Any]:
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    return {p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue")) for p in stack.get("Parameters") or []}


def deployed_stacks(cfn: Any, stack_id: str, name: str = "root") -> list[Stack]:
    """The deployed root and its nested stacks (recursively), each with its deployed parameter values."""
    stacks = [Stack(name, _template(cfn, stack_id), _params(cfn, stack_id))]
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
    for page in pages:
        for res in page["StackResourceSummaries"]:
            if res["ResourceType"] == STACK_TYPE and res.get("PhysicalResourceId"):
                stacks += deployed_stacks(cfn, res["PhysicalResourceId"], res["LogicalResourceId"])
    return stacks


def plan_delta(cfn: Any, stack: dict[str, Any] | None, env_dir: Path, cfg: config.EnvConfig) -> dict[str, Any]:
    """Before (deployed, 0 when new), after (built) and the changed lines, in USD a month."""
    new = estimate(cfg, env_dir, with_savings=False)
    new.lines = [ln for ln in new.lines if ln.stack != "bootstrap"]  # a stack of its own, not in this plan
    old: list[Line] = []
    if stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS":
        from kr_cfn.cost import prices

        book = prices.load(cfg.region)
        old = model.price(deployed_stacks(cfn, stack["StackId"]), book, cfg.cost)
    return compare(old, new.lines, cfg.cost.fail_above_usd)
