"""``kr-cfn diagram``: drawn from the built templates, readable labels, request path, who may talk
to whom, --compare-to, every format."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from kr_cfn.cli import main
from kr_cfn.diagram import compare, draw, graph_of
from kr_cfn.diagram.graph import Graph
from tests.conftest import ENVS, PARAMS

DOT_MISSING = "Graphviz's dot is not installed here (Debian: apt-get install -y graphviz; .ci/run installs it)"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shipped environment built without lint (the diagram reads only the built files)."""
    folder = tmp_path_factory.mktemp("out")
    assert main(["build", "--params", str(PARAMS), "--out", str(folder), "--no-lint"]) == 0
    return folder


def _node(graph: Graph, first_line: str) -> str:
    keys = [k for k, n in graph.nodes.items() if n.lines[0] == first_line]
    assert len(keys) == 1, f"{first_line!r}: {keys} among {[n.lines[0] for n in graph.nodes.values()]}"
    return keys[0]


def _edge(graph: Graph, src: str, dst: str, kind: str | None = None) -> list:
    return [e for e in graph.edges if e.src == src and e.dst == dst and (kind is None or e.kind == kind)]


@pytest.mark.parametrize("env", ENVS)
def test_every_env_draws_its_stacks_with_readable_labels(out: Path, env: str) -> None:
    graph = graph_of(out / env, env)
    assert graph.stacks == ["network", "data", "alb", "ecs", "monitoring"]
    text = draw(graph, "mermaid").decode()
    for stack in graph.stacks:
        assert f'subgraph stack_{stack}["{stack} stack"]' in text
    logical_ids = {
        lid for p in (out / env).glob("*.yaml") for lid in re.findall(r"^  ([A-Z]\w+):$", p.read_text(), re.M)
    }
    for node in graph.nodes.values():
        assert node.lines[0] not in logical_ids, f"{node.key}: a logical id as its label"
        assert all(len(line) <= 100 for line in node.lines), node.lines
    assert "backend service" in [n.lines[0] for n in graph.nodes.values()]
    # a service's task definition, log group and role are folded into it
    assert not [k for k in graph.nodes if re.search(r"TaskDefinition|LogGroup$|TaskRole", k)]
    # subnets per AZ
    subnets = [n for n in graph.nodes.values() if n.type == "AWS::EC2::Subnet"]
    assert sorted({n.az for n in subnets}) == [0, 1]
    assert 'subgraph az_network_0["AZ 1"]' in text


def test_prod_labels_say_what_each_box_is(out: Path) -> None:
    graph = graph_of(out / "prod", "prod")
    firsts = {n.lines[0] for n in graph.nodes.values()}
    assert "PostgreSQL 15 (db.t3.micro)" in firsts
    assert "Redis 7.1 (cache.t3.micro)" in firsts
    assert "HTTPS listener :443" in firsts
    backend = graph.nodes[_node(graph, "backend service")]
    assert "2-10 tasks, autoscaled" in backend.lines[-1]


def test_prod_request_path_is_marked(out: Path) -> None:
    graph = graph_of(out / "prod", "prod")
    alb, https = _node(graph, "load balancer (ALB)"), _node(graph, "HTTPS listener :443")
    tg, backend = _node(graph, "backend target group"), _node(graph, "backend service")
    db = _node(graph, "PostgreSQL 15 (db.t3.micro)")
    for src, dst in (("internet", alb), (alb, https), (https, tg), (tg, backend)):
        edges = _edge(graph, src, dst)
        assert edges and all(e.path for e in edges), (src, dst)
    # the database is on the path: reached from the backend's security group on 5432
    assert graph.nodes[db].path
    assert any(e.dst == db and e.label == "5432" and e.path for e in graph.edges)
    # monitoring is not on the request path, nor is grafana, whose task definition only names
    # the target groups (metric dimensions for its dashboards)
    assert not graph.nodes[_node(graph, "CloudWatch dashboard")].path
    grafana = _node(graph, "grafana service")
    assert not graph.nodes[grafana].path and not _edge(graph, tg, grafana)
    text = draw(graph, "mermaid").decode()
    assert "linkStyle" in text and "stroke:#d9480f" in text


def test_root_wiring_edges_between_stacks(out: Path) -> None:
    graph = graph_of(out / "prod", "prod")
    wiring = {(e.src, e.dst): e.label for e in graph.wiring}
    assert ("stack/network", "stack/ecs") in wiring
    assert ("stack/data", "stack/ecs") in wiring
    assert wiring[("stack/root", "stack/ecs")] == "BackendImageTag, FrontendImageTag"
    assert ("stack/monitoring", "stack/network") not in wiring


# --------------------------------------------------------------------------- security groups, generally


def _write(folder: Path, name: str, template: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(template), encoding="utf-8")


def _group(desc: str, egress: list | None = None, ingress: list | None = None) -> dict:
    props: dict = {"GroupDescription": desc, "VpcId": "vpc-1"}
    if egress is not None:
        props["SecurityGroupEgress"] = egress
    if ingress is not None:
        props["SecurityGroupIngress"] = ingress
    return {"Type": "AWS::EC2::SecurityGroup", "Properties": props}


NO_EGRESS = [{"CidrIp": "255.255.255.255/32", "IpProtocol": "icmp", "FromPort": 252, "ToPort": 86}]


def _service(name: str, group_param: str) -> dict:
    return {
        "Type": "AWS::ECS::Service",
        "Properties": {
            "ServiceName": name,
            "NetworkConfiguration": {"AwsvpcConfiguration": {"SecurityGroups": [{"Ref": group_param}]}},
        },
    }


@pytest.fixture
def per_service_groups(tmp_path: Path) -> Path:
    """A build with one group per service in one stack, members and a rule in another, wired by the root."""
    build = tmp_path / "build"
    rule = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432}
    network = {
        "Resources": {
            "ApiGroup": _group(
                "api", egress=[{"CidrIp": "0.0.0.0/0", "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}]
            ),
            "WorkerGroup": _group("worker"),  # no inline egress: AWS adds allow-all
            "DbGroup": _group("db", egress=NO_EGRESS),
            "DbFromApi": {
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Properties": {
                    **rule,
                    "GroupId": {"Fn::GetAtt": ["DbGroup", "GroupId"]},
                    "SourceSecurityGroupId": {"Fn::GetAtt": ["ApiGroup", "GroupId"]},
                },
            },
            "ApiToDb": {
                "Type": "AWS::EC2::SecurityGroupEgress",
                "Properties": {
                    **rule,
                    "GroupId": {"Fn::GetAtt": ["ApiGroup", "GroupId"]},
                    "DestinationSecurityGroupId": {"Fn::GetAtt": ["DbGroup", "GroupId"]},
                },
            },
        },
        "Outputs": {
            f"{g}Id": {"Value": {"Fn::GetAtt": [g, "GroupId"]}} for g in ("ApiGroup", "WorkerGroup", "DbGroup")
        },
    }
    app = {
        "Parameters": {p: {"Type": "String"} for p in ("ApiGroupId", "WorkerGroupId", "DbGroupId")},
        "Resources": {
            "ApiService": _service("api", "ApiGroupId"),
            "WorkerService": _service("worker", "WorkerGroupId"),
            "Database": {
                "Type": "AWS::RDS::DBInstance",
                "Properties": {
                    "Engine": "postgres",
                    "DBInstanceClass": "db.t3.micro",
                    "VPCSecurityGroups": [{"Ref": "DbGroupId"}],
                },
            },
            # a rule in another stack than its group, on a group passed in as a parameter
            "DbFromWorker": {
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Properties": {
                    **rule,
                    "GroupId": {"Ref": "DbGroupId"},
                    "SourceSecurityGroupId": {"Ref": "WorkerGroupId"},
                },
            },
        },
    }
    root = {
        "Resources": {
            "NetworkStack": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "./network.json"}},
            "AppStack": {
                "Type": "AWS::CloudFormation::Stack",
                "Properties": {
                    "TemplateURL": "./app.json",
                    "Parameters": {
                        p: {"Fn::GetAtt": ["NetworkStack", f"Outputs.{p}"]}
                        for p in ("ApiGroupId", "WorkerGroupId", "DbGroupId")
                    },
                },
            },
        }
    }
    for name, template in (("root", root), ("network", network), ("app", app)):
        _write(build, name, template)
    return build


def test_security_view_reads_rules_from_any_stack_through_the_wiring(per_service_groups: Path) -> None:
    graph = graph_of(per_service_groups, "test", "security")
    api, worker = _node(graph, "api service"), _node(graph, "worker service")
    db = _node(graph, "PostgreSQL (db.t3.micro)")
    # both sides allow api -> db: a solid flow
    [flow] = _edge(graph, api, db, "traffic")
    assert (flow.label, flow.dashed) == ("5432", False)
    # worker -> db: ingress in the app stack, egress open by default (no inline egress)
    [flow] = _edge(graph, worker, db, "traffic")
    assert (flow.label, flow.dashed) == ("5432", False)
    assert _edge(graph, worker, "internet-out", "traffic")[0].label == "all"
    assert _edge(graph, api, "internet-out", "traffic")[0].label == "443"
    # the database may send nothing (the no-egress placeholder is no flow)
    assert not [e for e in graph.edges if e.src == db]
    text = draw(graph, "mermaid").decode()
    assert '==>|"5432"|' in text


def test_half_open_flow_is_dashed(per_service_groups: Path) -> None:
    network = per_service_groups / "network.json"
    template = json.loads(network.read_text())
    del template["Resources"]["DbFromApi"]  # egress allowed, nobody lets it in
    network.write_text(json.dumps(template))
    graph = graph_of(per_service_groups, "test", "security")
    [flow] = _edge(graph, _node(graph, "api service"), _node(graph, "PostgreSQL (db.t3.micro)"), "traffic")
    assert flow.label == "5432 (egress only)" and flow.dashed


def test_shared_group_is_drawn_as_a_group_with_its_members(out: Path) -> None:
    graph = graph_of(out / "dev", "dev", "security")
    groups = {k: n for k, n in graph.nodes.items() if n.type == "AWS::EC2::SecurityGroup"}
    for key in groups:
        members = [e.src for e in graph.edges if e.dst == key and e.kind == "member"]
        assert len(members) != 1, f"{key}: a one-member group is drawn as its member"
    assert all(e.kind in ("traffic", "member") for e in graph.edges)


# --------------------------------------------------------------------------- --compare-to


def test_compare_to_marks_added_removed_and_changed(out: Path, tmp_path: Path) -> None:
    params = tmp_path / "params"
    params.mkdir()
    text = (PARAMS / "dev.yaml").read_text()
    text = text.replace("  multi_az: false\n", "  multi_az: false\n  db_instance_class: db.t4g.small\n")
    text = text.replace("services:\n", "services:\n  grafana: null\n  worker: {image: busybox:1.36.1, port: 9000}\n")
    (params / "dev.yaml").write_text(text)
    assert main(["build", "--params", str(params), "--out", str(tmp_path / "new"), "--no-lint", "--env", "dev"]) == 0
    graph = compare(graph_of(tmp_path / "new" / "dev", "dev"), graph_of(out / "dev", "dev"))
    status = {n.lines[0]: n.status for n in graph.nodes.values()}
    assert status["worker service"] == "added"
    assert status["grafana service"] == "removed"
    assert status["PostgreSQL 15 (db.t4g.small)"] == "changed"
    db = graph.nodes[_node(graph, "PostgreSQL 15 (db.t4g.small)")]
    assert "was: PostgreSQL 15 (db.t3.micro)" in db.lines
    assert status["backend service"] == ""
    mermaid = draw(graph, "mermaid").decode()
    assert re.search(r"class .*ecs_WorkerService.* added", mermaid)
    assert re.search(r"class .*ecs_GrafanaService.* removed", mermaid)
    assert "fill:#d3f9d8" in mermaid and "fill:#ffe3e3" in mermaid
    for other in (out / "dev", out):  # the env's folder or the whole output folder
        code = main(["diagram", "--env", "dev", "--out", str(tmp_path / "new"), "--compare-to", str(other)])
        assert code == 0


# --------------------------------------------------------------------------- formats and the command


@pytest.mark.parametrize("env", ENVS)
def test_dot_text(out: Path, env: str) -> None:
    text = draw(graph_of(out / env, env), "dot").decode()
    assert text.startswith("digraph kr_cfn {") and text.rstrip().endswith("}")
    assert 'subgraph "cluster_ecs"' in text and 'label="backend service' in text


@pytest.fixture
def graphviz() -> None:
    """Skip where Graphviz is missing, with the reason; in CI (``$CI``) fail instead: .ci/run installs it."""
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail(DOT_MISSING)
        pytest.skip(DOT_MISSING)


@pytest.mark.usefixtures("graphviz")
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("view", ["architecture", "security"])
def test_png_and_svg_render_with_graphviz(out: Path, env: str, view: str, tmp_path: Path) -> None:
    png, svg = tmp_path / "d.png", tmp_path / "d.svg"
    for fmt, target in (("png", png), ("svg", svg)):
        args = ["diagram", "--env", env, "--out", str(out), "--view", view, "--format", fmt, "-o", str(target)]
        assert main(args) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 500 and height > 200
    assert "<svg" in svg.read_text() and "backend service" in svg.read_text()


def test_png_without_graphviz_is_a_clear_error(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    args = ["diagram", "--env", "dev", "--out", str(out), "--format", "png", "-o", str(tmp_path / "d.png")]
    assert main(args) == 2
    assert "Graphviz's dot is not installed" in capsys.readouterr().err
    assert not (tmp_path / "d.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "nowhere"], "nowhere/dev: no root.yaml or root.json; run kr-cfn build first"),
        (["--format", "png"], "--format png writes binary data: name a file with -o/--output FILE"),
        (
            ["--compare-to", "nowhere"],
            "--compare-to nowhere: not a build folder (out/ or out/<env>), an environment in params, or stack:NAME",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    out: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = ["diagram", "--env", "dev", "--out", str(out), *args]
    assert main(full) == 2
    assert capsys.readouterr().err.strip() == message


def test_writes_a_file(out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "prod.mmd"
    assert main(["diagram", "--env", "prod", "--out", str(out), "-o", str(target)]) == 0
    assert target.read_text().startswith("flowchart LR")


def test_an_ec2_capacity_provider_and_its_instances_fold_into_the_service(tmp_path: Path) -> None:
    build = tmp_path / "build"
    ref = {"Ref": "LaunchTemplate"}
    ecs = {
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}},
            "Associations": {
                "Type": "AWS::ECS::ClusterCapacityProviderAssociations",
                "Properties": {"Cluster": {"Ref": "Cluster"}, "CapacityProviders": [{"Ref": "Provider"}]},
            },
            "InstanceRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "InstanceProfile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"Roles": [{"Ref": "InstanceRole"}]},
            },
            "LaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateData": {"IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["InstanceProfile", "Arn"]}}}
                },
            },
            "Instances": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {"LaunchTemplate": {"LaunchTemplateId": ref}, "MinSize": "1", "MaxSize": "1"},
            },
            "Provider": {
                "Type": "AWS::ECS::CapacityProvider",
                "Properties": {"AutoScalingGroupProvider": {"AutoScalingGroupArn": {"Ref": "Instances"}}},
            },
            "VectorsService": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "ServiceName": "vectors",
                    "Cluster": {"Ref": "Cluster"},
                    "DesiredCount": 1,
                    "CapacityProviderStrategy": [{"CapacityProvider": {"Ref": "Provider"}, "Weight": 1}],
                },
            },
        }
    }
    root = {
        "Resources": {"EcsStack": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "./ecs.json"}}}
    }
    _write(build, "root", root)
    _write(build, "ecs", ecs)
    graph = graph_of(build, "test")
    assert sorted(graph.nodes) == ["ecs/Cluster", "ecs/VectorsService"]
    assert graph.nodes["ecs/VectorsService"].lines == ["vectors service", "1 task, EC2 capacity provider"]
