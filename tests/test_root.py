"""The root stack's Outputs -> Parameters wiring."""

from __future__ import annotations

import pytest
from troposphere import Output, Parameter, Template

import stacks
from kr_cfn.config import RootSlice
from kr_cfn.naming import Naming
from stacks import root
from tests.conftest import ENVS, built

CFG = RootSlice(Naming("kr", "test", "kr-test"), {"Project": "kr"}, "latest")


def _child(name: str, outputs: tuple[str, ...] = (), params: tuple[str, ...] = ()) -> root.ChildTemplate:
    t = Template()
    for o in outputs:
        t.add_output(Output(o, Value="x", Description=o))
    for p in params:
        t.add_parameter(Parameter(p, Type="String", Description=p))
    return root.ChildTemplate(name, f"{name.title()}Stack", t)


def test_parameters_are_wired_from_the_producing_output() -> None:
    t = root.build(CFG, [_child("a", outputs=("VpcId",)), _child("b", params=("VpcId",))]).to_dict()
    assert t["Resources"]["BStack"]["Properties"]["Parameters"] == {
        "VpcId": {"Fn::GetAtt": ["AStack", "Outputs.VpcId"]}
    }
    assert t["Resources"]["BStack"]["Properties"]["TemplateURL"] == "./b.yaml"
    assert "Parameters" not in t


def test_image_tags_become_root_parameters_with_the_env_default() -> None:
    children = [_child("a", params=("BackendImageTag",)), _child("b", params=("BackendImageTag",))]
    t = root.build(CFG, children, "json").to_dict()
    assert t["Parameters"] == {
        "BackendImageTag": {"Type": "String", "Description": "BackendImageTag", "Default": "latest"}
    }
    assert t["Resources"]["AStack"]["Properties"]["Parameters"] == {"BackendImageTag": {"Ref": "BackendImageTag"}}
    assert t["Resources"]["AStack"]["Properties"]["TemplateURL"] == "./a.json"
    assert root.parameter_values(root.build(CFG, children)) == [
        {"ParameterKey": "BackendImageTag", "ParameterValue": "latest"}
    ]


def test_no_default_image_tag_when_the_env_has_none() -> None:
    cfg = RootSlice(CFG.names, CFG.tags, None)
    t = root.build(cfg, [_child("a", params=("BackendImageTag",))])
    assert "Default" not in t.to_dict()["Parameters"]["BackendImageTag"]
    assert root.parameter_values(t) == []


def test_unproduced_parameter_is_a_wiring_error() -> None:
    with pytest.raises(root.WiringError, match="b: parameter DbHost has no producing stack output"):
        root.build(CFG, [_child("a"), _child("b", params=("DbHost",))])


def test_output_produced_twice_is_a_wiring_error() -> None:
    with pytest.raises(root.WiringError, match="output VpcId is produced by both AStack and BStack"):
        root.build(CFG, [_child("a", outputs=("VpcId",)), _child("b", outputs=("VpcId",))])


def test_root_output_must_exist() -> None:
    child = root.ChildTemplate("a", "AStack", Template(), root_outputs=("AppUrl",))
    with pytest.raises(root.WiringError, match="a: root output AppUrl is not an output of the stack"):
        root.build(CFG, [child])


@pytest.mark.parametrize("env", ENVS)
def test_every_child_is_nested_by_relative_path_and_tagged(env: str) -> None:
    t = built(env)["root"]
    nested = {k: v for k, v in t["Resources"].items() if v["Type"] == "AWS::CloudFormation::Stack"}
    assert sorted(nested) == sorted(c.logical_id for c in stacks.CHILDREN)
    for child in stacks.CHILDREN:
        props = nested[child.logical_id]["Properties"]
        assert props["TemplateURL"] == f"./{child.name}.yaml"
        assert {"Key": "Environment", "Value": env} in props["Tags"]
    assert t["Metadata"]["cfn-lint"]["config"]["ignore_checks"] == ["W3002"]


@pytest.mark.parametrize("env", ENVS)
def test_no_exports_anywhere(env: str) -> None:
    for name, t in built(env).items():
        assert all("Export" not in o for o in t.get("Outputs", {}).values()), name
