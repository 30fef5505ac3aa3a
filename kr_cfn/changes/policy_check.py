"""Inputs of IAM Access Analyzer's policy checks on the built templates (awslabs' cfn-policy-validator).

The release-plan job runs ``cfn-policy-validator validate`` on the root and every child template
before it creates the change set (.github/workflows/release.yml). The validator resolves the
intrinsic functions inside policies and needs a value for every template parameter a policy
names (its ``--template-configuration-file``). A child's parameters come from its parent: an
output of another child (a secret's ARN, a bucket's ARN), so each gets a value of the same shape
as the real one, derived from the resource type that output reads. The checks judge the policy's
grammar and grants, not the ids, so a made-up id of the right shape is enough.
https://github.com/awslabs/aws-cloudformation-iam-policy-validator (its README, "validate")

Usage: ``python -m kr_cfn.changes.policy_check out/<env> <region>`` writes
``out/<env>/policy-check/<template>.json`` and prints ``<template> <configuration>`` per line, root first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kr_cfn.changes.package import load_template

PLACEHOLDER_ACCOUNT = "123456789012"

# What Ref / Fn::GetAtt Arn of a resource type returns, as a format of (partition, region, account).
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-template-resource-type-ref.html
_SHAPES: dict[tuple[str, str], str] = {
    ("AWS::SecretsManager::Secret", "Ref"): "arn:{p}:secretsmanager:{r}:{a}:secret:placeholder-AbCdEf",
    ("AWS::RDS::DBInstance", "MasterUserSecret.SecretArn"): "arn:{p}:secretsmanager:{r}:{a}:secret:rds!db-0-AbCdEf",
    ("AWS::S3::Bucket", "Arn"): "arn:{p}:s3:::placeholder",
    ("AWS::S3::Bucket", "Ref"): "placeholder",
    ("AWS::EFS::FileSystem", "Arn"): "arn:{p}:elasticfilesystem:{r}:{a}:file-system/fs-0123456789abcdef0",
    ("AWS::EFS::AccessPoint", "Arn"): "arn:{p}:elasticfilesystem:{r}:{a}:access-point/fsap-0123456789abcdef0",
    ("AWS::EC2::Volume", "Ref"): "vol-0123456789abcdef0",
    ("AWS::SNS::Topic", "Ref"): "arn:{p}:sns:{r}:{a}:placeholder",
    ("AWS::KMS::Key", "Arn"): "arn:{p}:kms:{r}:{a}:key/01234567-89ab-cdef-0123-456789abcdef",
}


def partition(region: str) -> str:
    """The partition of a region (https://docs.aws.amazon.com/whitepapers/latest/aws-fault-isolation-boundaries/partitions.html)."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _shape(template: dict[str, Any], value: Any, region: str) -> str:
    """A value of the shape ``value`` (an output's Value) takes in ``template`` once deployed."""
    logical_id, attribute = None, "Ref"
    if isinstance(value, dict) and "Ref" in value:
        logical_id = value["Ref"]
    elif isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"][0], value["Fn::GetAtt"][1]
    resource = template.get("Resources", {}).get(logical_id or "", {})
    shape = _SHAPES.get((resource.get("Type", ""), attribute))
    if shape is None and attribute == "Arn" and resource:
        # Any other ARN: its service from the type (AWS::Service::Thing), the thing's id made up.
        service, kind = resource["Type"].split("::")[1:]
        shape = f"arn:{{p}}:{service.lower()}:{{r}}:{{a}}:{kind.lower()}/placeholder"
    return (shape or "placeholder").format(p=partition(region), r=region, a=PLACEHOLDER_ACCOUNT)


def child_parameters(env_dir: Path, region: str) -> dict[str, dict[str, str]]:
    """Per template file name: a value for every parameter without a default."""
    root_path = next(env_dir / n for n in ("root.yaml", "root.json") if (env_dir / n).exists())
    root = load_template(root_path)
    templates = {root_path.name: root}
    wiring: dict[str, dict[str, Any]] = {root_path.name: {}}
    children: dict[str, dict[str, Any]] = {}
    for logical_id, resource in sorted(root.get("Resources", {}).items()):
        if resource.get("Type") != "AWS::CloudFormation::Stack":
            continue
        name = Path(resource["Properties"]["TemplateURL"]).name
        templates[name] = children[logical_id] = load_template(env_dir / name)
        wiring[name] = resource["Properties"].get("Parameters", {})
    out: dict[str, dict[str, str]] = {}
    for name, template in templates.items():
        values: dict[str, str] = {}
        for parameter, spec in template.get("Parameters", {}).items():
            if "Default" in spec:
                continue
            given = wiring[name].get(parameter)
            if isinstance(given, dict) and "Fn::GetAtt" in given:
                source, output = given["Fn::GetAtt"][0], given["Fn::GetAtt"][1].removeprefix("Outputs.")
                value = children[source]["Outputs"][output]["Value"]
                values[parameter] = _shape(children[source], value, region)
            else:
                values[parameter] = given if isinstance(given, str) else "placeholder"
        out[name] = values
    return out


def write_inputs(env_dir: Path, region: str) -> list[tuple[Path, Path]]:
    """Write each template's configuration file; (template, configuration) pairs, root first."""
    pairs = []
    (env_dir / "policy-check").mkdir(exist_ok=True)
    for name, values in child_parameters(env_dir, region).items():
        configuration = env_dir / "policy-check" / f"{Path(name).stem}.json"
        configuration.write_text(json.dumps({"Parameters": values}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        pairs.append((env_dir / name, configuration))
    return pairs


def main(argv: list[str]) -> int:
    """``python -m kr_cfn.changes.policy_check <out/env> <region>``."""
    if len(argv) != 2:
        print("usage: python -m kr_cfn.changes.policy_check <out/env> <region>", file=sys.stderr)
        return 2
    for template, configuration in write_inputs(Path(argv[0]), argv[1]):
        print(f"{template} {configuration}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
