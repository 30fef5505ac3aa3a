"""``kr-cfn sarif``: findings on built templates moved to the stack source that builds them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import troposphere
import yaml

from kr_cfn.cli import main
from tests.conftest import PARAMS, ROOT

ENVS3 = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev, staging and prod built by the project's build (no lint: the findings here are crafted)."""
    folder = tmp_path_factory.mktemp("out")
    args = ["build", "--no-lint", "--params", str(PARAMS), "--out", str(folder)]
    assert main([*args, *(a for env in ENVS3 for a in ("--env", env))]) == 0
    return folder


def line_of(template: Path, *keys: str) -> int:
    """1-based line of the key at ``keys`` (read with yaml's own marks, not the code under test)."""
    node = yaml.compose(template.read_text(encoding="utf-8"), Loader=_Loader)
    line = 0
    for key in keys:
        k, node = next((k, v) for k, v in node.value if k.value == key)
        line = k.start_mark.line + 1
    return line


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def source_lines(rel: str) -> list[str]:
    return (ROOT / rel).read_text(encoding="utf-8").splitlines()


def first_line(rel: str, text: str, after: str | None = None) -> int:
    """1-based line of the first line containing ``text`` (after the first containing ``after``)."""
    lines = source_lines(rel)
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i + 1 for i, line in enumerate(lines) if i >= start and text in line)


def result(uri: str, line: int, rule: str = "E3012", text: str = "a finding", **extra: Any) -> dict[str, Any]:
    region = {"startLine": line, "startColumn": 1, "endLine": line, "endColumn": 5}
    return {
        "ruleId": rule,
        "level": "error",
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": region}}],
        **extra,
    }


def sarif_file(folder: Path, results: list[dict[str, Any]], tool: str = "cfn-lint", name: str = "x.sarif") -> Path:
    path = folder / name
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": tool}}, "results": results}]}
    path.write_text(json.dumps(log), encoding="utf-8")
    return path


def rewrite(path: Path, out: Path, capsys: pytest.CaptureFixture[str], *more: Path) -> tuple[list[dict[str, Any]], str]:
    code = main(["sarif", str(path), *map(str, more), "--repo", str(ROOT), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err == ""
    return json.loads(path.read_text(encoding="utf-8"))["runs"][0]["results"], captured.out


def where(r: dict[str, Any]) -> tuple[str, int]:
    physical = r["locations"][0]["physicalLocation"]
    return physical["artifactLocation"]["uri"], physical["region"]["startLine"]


# --------------------------------------------------------------------------- mapping


CASES = [
    # stack, logical id, property line, file, the line's text, text within the call's next lines
    ("network", "Vpc", "CidrBlock", "stacks/network.py", "ec2.VPC(", "VPC,"),
    ("network", "PublicSubnet2", "MapPublicIpOnLaunch", "stacks/network.py", "ec2.Subnet(", 'f"PublicSubnet{i}"'),
    (
        "network",
        "PublicSubnet1RouteTableAssociation",
        "RouteTableId",
        "stacks/network.py",
        "ec2.SubnetRouteTableAssociation(",
        "RouteTableAssociation",
    ),
    (
        "network",
        "BackendServiceSecurityGroup",
        "GroupDescription",
        "stacks/network.py",
        "ec2.SecurityGroup(",
        "group_id",
    ),
    (
        "network",
        "DatabaseSecurityGroup",
        "GroupDescription",
        "stacks/network.py",
        "ec2.SecurityGroup(",
        "endpoint.group",
    ),
    ("data", "Database", "StorageEncrypted", "stacks/data.py", "rds.DBInstance(", "DATABASE,"),
    ("data", "DataBucket", "BucketName", "stacks/data.py", "_bucket(", "DATA_BUCKET"),
    ("data", "DataBucketPolicy", "PolicyDocument", "stacks/data.py", "_bucket(", "DATA_BUCKET"),
    ("data", "JiraSecret", "Name", "stacks/data.py", "secretsmanager.Secret(", "logical_id"),
    ("monitoring", "BackendHighCpuAlarm", "Threshold", "stacks/monitoring.py", "_alarm(", "BACKEND_CPU_ALARM"),
    ("ecs", "BackendService", "TaskDefinition", "kr_cfn/services.py", "ecs.Service(", 'f"{p}Service"'),
    ("ecs", "Cluster", "ClusterSettings", "stacks/ecs.py", "ecs.Cluster(", "CLUSTER,"),
    ("root", "NetworkStack", "TemplateURL", "stacks/root.py", "cloudformation.Stack(", "child.logical_id"),
]


@pytest.mark.parametrize(("stack", "logical_id", "prop", "file", "call", "nearby"), CASES, ids=[c[1] for c in CASES])
def test_a_resource_finding_goes_to_the_call_that_constructs_it(
    out: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stack: str,
    logical_id: str,
    prop: str,
    file: str,
    call: str,
    nearby: str,
) -> None:
    template = out / "dev" / f"{stack}.yaml"
    line = line_of(template, "Resources", logical_id, "Properties", prop)
    [moved], report = rewrite(sarif_file(tmp_path, [result(str(template), line)]), out, capsys)
    path, source_line = where(moved)
    assert path == file
    text = source_lines(file)[source_line - 1]
    assert call in text, f"{file}:{source_line}: {text!r} is not the {call} call"
    assert nearby in "\n".join(source_lines(file)[source_line - 1 : source_line + 4])
    # env, template and logical id in the message; the template location kept as a related location
    message = moved["message"]["text"]
    assert message.startswith("a finding [") and f"{stack} template" in message and logical_id in message
    assert "env dev" in message
    related = [r["physicalLocation"] for r in moved["relatedLocations"]]
    assert {
        "artifactLocation": {"uri": str(template)},
        "region": result("", line)["locations"][0]["physicalLocation"]["region"],
    } in related
    assert "1 on the stack sources (1 at a constructor" in report


def test_a_helper_call_site_also_names_the_constructor_it_reaches(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A security-group rule is built by kr_cfn.blocks.allow_tcp: the finding goes to the call in network.py."""
    template = out / "dev" / "network.yaml"
    rule = next(name for name, _, _ in _resources(template) if "IngressFrom" in name)
    line = line_of(template, "Resources", rule, "Properties", "FromPort")
    [moved], _ = rewrite(sarif_file(tmp_path, [result(str(template), line)]), out, capsys)
    assert where(moved) == ("stacks/network.py", first_line("stacks/network.py", "allow_tcp(", after="for flow in"))
    constructor = first_line("kr_cfn/blocks.py", "ec2.SecurityGroupIngress(")
    assert {"artifactLocation": {"uri": "kr_cfn/blocks.py"}, "region": {"startLine": constructor}} in [
        r["physicalLocation"] for r in moved["relatedLocations"]
    ]


def _resources(template: Path) -> list[tuple[str, int, str]]:
    """(logical id, line of its key, type) of every resource of a template."""
    node = yaml.compose(template.read_text(encoding="utf-8"), Loader=_Loader)
    resources = next(v for k, v in node.value if k.value == "Resources")
    kinds = [next(t.value for k, t in v.value if k.value == "Type") for _, v in resources.value]
    return [(k.value, k.start_mark.line + 1, kind) for (k, _), kind in zip(resources.value, kinds, strict=True)]


def _resource_type_at(path: str, text: str) -> str | None:
    """The resource type of a ``module.Class(`` troposphere call on a source line, if that is what it is."""
    import importlib

    for match in re.finditer(r"\b(\w+)\.(\w+)\(", text):
        alias = re.search(rf"\b(\w+) as {match.group(1)}\b", (ROOT / path).read_text(encoding="utf-8"))
        try:
            module = importlib.import_module(f"troposphere.{alias.group(1) if alias else match.group(1)}")
        except ImportError:
            continue
        kind = getattr(getattr(module, match.group(2), None), "resource_type", None)
        if kind:
            return kind
    return None


def test_every_resource_of_every_env_lands_on_a_constructor_of_its_type(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each resource's first line: a troposphere call of the resource's own type, or a helper call that reaches one."""
    templates = sorted(out.glob("*/*.yaml"))
    findings = [(t, *r) for t in templates for r in _resources(t)]
    assert len(findings) > 300
    results = [result(str(t), line, rule=f"R{i}") for i, (t, _, line, _) in enumerate(findings)]
    moved, report = rewrite(sarif_file(tmp_path, results), out, capsys)
    assert len(moved) == len(findings)  # a distinct rule each: nothing merged
    assert "at a build function" in report and ", 0 at a build function" in report
    for r, (template, name, _, kind) in zip(moved, findings, strict=True):
        path, line = where(r)
        text = source_lines(path)[line - 1]
        via = [
            x["physicalLocation"]
            for x in r["relatedLocations"]
            if "constructor" in x.get("message", {}).get("text", "")
        ]
        if via:  # a helper's call site: the related location is the constructor, of the resource's type
            path, line = via[0]["artifactLocation"]["uri"], via[0]["region"]["startLine"]
            text = source_lines(path)[line - 1]
        assert _resource_type_at(path, text) == kind, (
            f"{template.parent.name}/{template.name} {name}: {path}:{line} {text!r}"
        )


def test_template_level_items_go_to_the_build_function(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = out / "dev" / "network.yaml"
    results = [
        result(str(template), line_of(template, "Outputs", "VpcId", "Value"), rule="W1"),
        result(str(template), 1, rule="W2"),  # AWSTemplateFormatVersion
    ]
    moved, report = rewrite(sarif_file(tmp_path, results), out, capsys)
    build = first_line("stacks/network.py", "def build(")
    assert [where(r) for r in moved] == [("stacks/network.py", build)] * 2
    assert "Outputs.VpcId" in moved[0]["message"]["text"] and "AWSTemplateFormatVersion" in moved[1]["message"]["text"]
    assert "2 at a build function" in report


# --------------------------------------------------------------------------- one alert for every env


def test_the_same_finding_in_every_env_is_one_alert_naming_them_all(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def at(env: str, rule: str = "E3012") -> dict[str, Any]:
        template = out / env / "network.yaml"
        return result(str(template), line_of(template, "Resources", "Vpc", "Properties", "CidrBlock"), rule=rule)

    moved, report = rewrite(sarif_file(tmp_path, [*(at(e) for e in ENVS3), at("dev", "W9999")]), out, capsys)
    assert len(moved) == 2
    merged, other = moved
    assert where(merged) == where(other) == ("stacks/network.py", first_line("stacks/network.py", "ec2.VPC("))
    assert merged["message"]["text"].endswith("envs dev, prod, staging]")
    assert merged["properties"]["kr-cfn"]["envs"] == sorted(ENVS3)
    assert [r["message"]["text"].split(":")[0] for r in merged["relatedLocations"]] == list(ENVS3)
    assert sorted({r["id"] for r in merged["relatedLocations"]}) == [1, 2, 3]
    # one fingerprint per alert, independent of the line (code scanning follows it while code moves)
    [(key, value)] = merged["partialFingerprints"].items()
    assert value != other["partialFingerprints"][key]
    assert "2 merged" in report

    # the same finding from dev alone has the same fingerprint: the alert stays one across runs
    [alone], _ = rewrite(sarif_file(tmp_path, [at("dev")], name="y.sarif"), out, capsys)
    assert alone["partialFingerprints"] == merged["partialFingerprints"]


def test_a_finding_suppressed_in_one_env_stays_apart(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {e: out / e / "data.yaml" for e in ("dev", "prod")}
    line = {e: line_of(t, "Resources", "Database") for e, t in template.items()}
    skipped = {"suppressions": [{"kind": "inSource", "justification": "Single-AZ by choice"}]}
    results = [result(str(template["dev"]), line["dev"], "CKV_AWS_157", **skipped)]
    results.append(result(str(template["prod"]), line["prod"], "CKV_AWS_157"))
    moved, _ = rewrite(sarif_file(tmp_path, results, tool="Checkov"), out, capsys)
    assert len(moved) == 2 and where(moved[0]) == where(moved[1])
    assert moved[0]["suppressions"] and "suppressions" not in moved[1]


# --------------------------------------------------------------------------- unmapped


def test_a_template_no_stack_module_builds_keeps_its_location(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "dev" / "extra.yaml"
    extra.parent.mkdir()
    shutil.copy(out / "dev" / "network.yaml", extra)
    missing = str(out / "dev" / "gone.yaml")
    results = [result(str(extra), 5), result(missing, 3)]
    original = json.loads(json.dumps(results))
    moved, report = rewrite(sarif_file(tmp_path, results), out, capsys)
    assert moved == original
    assert f"{extra}: no stack module builds it (no stacks/extra.py); its findings keep their location" in report
    assert f"{missing}: not found" in report and "2 kept where they were" in report


def test_paths_relative_to_the_out_folder_are_found(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """checkov -d out names files relative to where it ran; a path relative to --out is found too."""
    line = line_of(out / "dev" / "network.yaml", "Resources", "Vpc")
    [moved], _ = rewrite(sarif_file(tmp_path, [result("dev/network.yaml", line)]), out, capsys)
    assert where(moved)[0] == "stacks/network.py"


# --------------------------------------------------------------------------- real linter output


def test_real_cfn_lint_sarif_on_a_broken_template(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "out" / "dev" / "network.yaml"
    broken.parent.mkdir(parents=True)
    text = (out / "dev" / "network.yaml").read_text(encoding="utf-8")
    assert text.count("MapPublicIpOnLaunch: true") >= 1
    broken.write_text(text.replace("MapPublicIpOnLaunch: true", "MapPublicIpOnLaunch: maybe", 1), encoding="utf-8")
    report = tmp_path / "cfn-lint.sarif"
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    run = subprocess.run(
        [str(cfn_lint), "--format", "sarif", "--output-file", str(report), "--", "out/dev/network.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0 and report.is_file(), run.stderr
    here = Path.cwd()
    os.chdir(tmp_path)  # as in CI: the SARIF paths are relative to where cfn-lint ran
    try:
        moved, _ = rewrite(report, tmp_path / "out", capsys)
    finally:
        os.chdir(here)
    [finding] = [r for r in moved if r["ruleId"] == "E3012"]
    assert where(finding) == ("stacks/network.py", first_line("stacks/network.py", "ec2.Subnet("))
    assert "PublicSubnet1" in finding["message"]["text"] and "'maybe'" in finding["message"]["text"]
    _check_sarif(json.loads(report.read_text(encoding="utf-8")))


def _check_sarif(log: dict[str, Any]) -> None:
    """The SARIF 2.1.0 fields code scanning needs (and the full schema when KR_CFN_SARIF_SCHEMA names a copy)."""
    assert log["version"] == "2.1.0"
    for run in log["runs"]:
        assert isinstance(run["tool"]["driver"]["name"], str)
        for r in run["results"]:
            assert isinstance(r["message"]["text"], str) and r["message"]["text"]
            for location in [*r["locations"], *r.get("relatedLocations", [])]:
                physical = location["physicalLocation"]
                assert isinstance(physical["artifactLocation"]["uri"], str)
                assert physical["region"]["startLine"] >= 1
            uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            assert not uri.startswith(("/", "..")) and (ROOT / uri).is_file()
            ids = [x["id"] for x in r.get("relatedLocations", [])]
            assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i >= 0 for i in ids)
            assert all(isinstance(v, str) for v in r["partialFingerprints"].values())
    schema = os.environ.get("KR_CFN_SARIF_SCHEMA")
    if schema:
        import jsonschema

        jsonschema.validate(log, json.loads(Path(schema).read_text(encoding="utf-8")))


def test_the_rewritten_log_has_what_code_scanning_needs(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = out / "prod" / "data.yaml"
    snippet = {"snippet": {"text": "  Database:\n    Type: AWS::RDS::DBInstance\n"}}
    r = result(str(template), line_of(template, "Resources", "Database"), "CKV_AWS_16")
    r["locations"][0]["physicalLocation"]["region"].update(snippet)
    path = sarif_file(tmp_path, [r], tool="Checkov")
    [moved], _ = rewrite(path, out, capsys)
    assert "snippet" not in json.dumps(moved)  # a template snippet would be wrong on the source line
    _check_sarif(json.loads(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not JSON (Expecting property name"),
        ('{"version": "2.0.0", "runs": []}', "not a SARIF 2.1.0 log (version: expected 2.1.0, got '2.0.0')"),
        ("[1, 2]", "not a SARIF 2.1.0 log (version: expected 2.1.0, got 'list')"),
        ('{"version": "2.1.0", "runs": {}}', "runs: expected a list of runs"),
        ('{"version": "2.1.0", "runs": [{"results": []}]}', "runs[0]: expected a run with a tool"),
        (
            '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [3]}]}',
            "runs[0].results[0]: expected a result with a message",
        ),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0xff at 0)"),
    ],
    ids=["missing", "not-json", "old-version", "a-list", "runs-not-list", "no-tool", "bad-result", "not-utf8"],
)
def test_bad_input_is_one_line_and_exit_2_and_changes_no_file(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes | None, expected: str
) -> None:
    bad = tmp_path / "bad.sarif"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content, encoding="utf-8")
    good = sarif_file(tmp_path, [result(str(out / "dev" / "network.yaml"), 5)])
    before = good.read_text(encoding="utf-8")
    code = main(["sarif", str(good), str(bad), "--repo", str(ROOT), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"kr-cfn sarif: {bad}: {expected}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert good.read_text(encoding="utf-8") == before  # all or nothing


def test_a_folder_and_a_wrong_repo_are_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sarif", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"kr-cfn sarif: {tmp_path}: is a folder, expected a SARIF file\n"
    good = sarif_file(tmp_path, [])
    assert main(["sarif", str(good), "--repo", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"kr-cfn sarif: --repo {tmp_path}: no stacks/ folder (expected the repository root)\n"
    )


def test_the_command_never_imports_the_stack_modules(out: Path, tmp_path: Path) -> None:
    """Deployment-side code reads stacks/ as text: in a fresh interpreter no stacks module gets loaded."""
    template = out / "dev" / "ecs.yaml"
    path = sarif_file(tmp_path, [result(str(template), line_of(template, "Resources", "Cluster"))])
    code = (
        "import sys; from kr_cfn.cli import main; "
        f"rc = main(['sarif', {str(path)!r}, '--repo', {str(ROOT)!r}, '--out', {str(out)!r}]); "
        "loaded = sorted(m for m in sys.modules if m == 'stacks' or m.startswith('stacks.')); "
        "print(rc, loaded)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert run.stdout.splitlines()[-1] == "0 []"
    assert troposphere.__version__  # (troposphere itself is a library, not stack code)


def test_an_unreadable_template_keeps_its_findings_where_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "out" / "dev" / "network.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("Resources: [unclosed\n", encoding="utf-8")
    listed = tmp_path / "out" / "dev" / "data.yaml"
    listed.write_text("- a list\n", encoding="utf-8")
    results = [result(str(broken), 1), result(str(listed), 1)]
    moved, report = rewrite(sarif_file(tmp_path, results), tmp_path / "out", capsys)
    assert [where(r)[0] for r in moved] == [str(broken), str(listed)]
    assert f"{broken}: not a readable template (" in report
    assert f"{listed}: not a CloudFormation template (expected a mapping with Resources)" in report


def test_json_templates_map_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert (
        main(["build", "--no-lint", "--env", "dev", "--format", "json", "--params", str(PARAMS), "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    template = out / "dev" / "network.json"
    line = next(i for i, text in enumerate(template.read_text().splitlines(), 1) if '"CidrBlock"' in text)
    [moved], _ = rewrite(sarif_file(tmp_path, [result(str(template), line)]), out, capsys)
    assert where(moved)[0] == "stacks/network.py" and "network template" in moved["message"]["text"]
