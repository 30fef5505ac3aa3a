"""Bad input, derived from the config models: every setting reachable from EnvConfig gets wrong values.

Whatever a params file holds, ``kr-cfn build`` (in-process, ``--no-lint``) either builds or exits 2
with one line per problem, each ``<params file>: <key path>: <message>``; never a traceback, never a
changed output folder. The settings are found by walking the pydantic models, so a key added to any
section is mutated here without a change to this file. Mutations of one kind are applied to every
setting at once (pydantic reports every field's error together), which keeps the module fast.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from kr_cfn import config
from kr_cfn.cli import main
from kr_cfn.config.reading import MAX_DEPTH, MAX_VALUES, loc_path
from tests.conftest import PARAMS

ENV = "dev"

# The shipped dev params plus an example of every optional section, so that every setting exists
# in the fully expanded document (test_every_setting_is_reached says what to add here).
RICH_EXTRA: dict[str, Any] = {
    "tags": {"Team": "platform"},
    "monitoring": {
        "slack": {"workspace_id": "T07EA123LEP", "channel_id": "C07EZ1ABC23"},
        "alert_emails": ["ops@example.com"],
        "alert_https_endpoints": ["https://hooks.example.com/alerts"],
    },
    "cost": {"log_ingest_gb_by_group": {"BackendLogGroup": 1.0}, "extra_tasks": {"backend": 1.0}},
    "services": {"qdrant": {"ebs": {"instance_type": "t3.small"}, "snapshots": {"time": "03:00"}}},
    "bootstrap": {"callers": [{"repository": "acme/app", "branch": "main"}]},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _rich() -> dict[str, Any]:
    shipped = yaml.safe_load((PARAMS / f"{ENV}.yaml").read_text(encoding="utf-8"))
    cfg = config.EnvConfig.model_validate(_merge(shipped, RICH_EXTRA))
    return cfg.model_dump(mode="json")


FULL = _rich()


# --------------------------------------------------------------------------- walking the models


def _unwrap(ann: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return (_unwrap(args[0])[0] if len(args) == 1 else ann), True
    return ann, False


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


@dataclass(frozen=True)
class Setting:
    path: tuple[str | int, ...]
    """With ``*`` for any dict key and ``0`` for the first list entry."""
    ann: Any
    optional: bool


def settings(model: type[BaseModel] = config.EnvConfig, prefix: tuple[str | int, ...] = ()) -> Iterator[Setting]:
    """Every field reachable from ``model``, through nested models, dicts of models and lists of models."""
    for name, field in model.model_fields.items():
        ann, optional = _unwrap(field.annotation)
        path = (*prefix, name)
        yield Setting(path, ann, optional or field.default is None)
        origin = typing.get_origin(ann)
        if _is_model(ann):
            yield from settings(ann, path)
        elif origin is dict and _is_model(_unwrap(typing.get_args(ann)[1])[0]):
            yield from settings(_unwrap(typing.get_args(ann)[1])[0], (*path, "*"))
        elif origin is tuple and _is_model(_unwrap(typing.get_args(ann)[0])[0]):
            yield from settings(_unwrap(typing.get_args(ann)[0])[0], (*path, 0))


def concrete(path: tuple[str | int, ...], data: Any = FULL) -> tuple[str | int, ...] | None:
    """The first path in ``data`` that ``path`` (with ``*`` and ``0``) names, or None."""
    if not path:
        return ()
    head, rest = path[0], path[1:]
    if head == "*":
        keys = list(data) if isinstance(data, dict) else []
    elif head == 0:
        keys = [0] if isinstance(data, list) and data else []
    else:
        keys = [head] if isinstance(data, dict) and head in data else []
    for key in keys:
        tail = concrete(rest, data[key])
        if tail is not None:
            return (key, *tail)
    return None


SETTINGS = list(settings())


def test_every_setting_is_reached() -> None:
    """A new optional section needs an example in RICH_EXTRA, else its keys would go untested."""
    missing = [loc_path(s.path) for s in SETTINGS if concrete(s.path) is None]
    assert not missing, f"add an example of these to RICH_EXTRA: {missing}"
    assert len(SETTINGS) > 100


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    code: int
    err: list[str]
    source: str


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A params folder and an output folder holding one good build of dev."""
    root = tmp_path_factory.mktemp("bad")
    (root / "params").mkdir()
    (root / "params" / f"{ENV}.yaml").write_bytes((PARAMS / f"{ENV}.yaml").read_bytes())
    assert main(["build", "--env", ENV, "--params", str(root / "params"), "--out", str(root / "out"), "--no-lint"]) == 0
    return root


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else b"/" for p in sorted(out.rglob("*"))}


def run_build(project: Path, body: str | bytes) -> Run:
    """Write dev.yaml and build it; check the invariants every outcome must keep."""
    params, out = project / "params", project / "out"
    path = params / f"{ENV}.yaml"
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    before = _snapshot(out)
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        code = main(["build", "--env", ENV, "--params", str(params), "--out", str(out), "--no-lint"])
    text = err.getvalue()
    assert "Traceback" not in text
    assert code in (0, 2), text
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    if code == 2:
        assert _snapshot(out) == before, "a failed build changed the output folder"
        lines = text.splitlines()
        assert lines
        for line in lines:
            assert re.match(rf"^{re.escape(str(path))}: (\S[^:]*: )?\S", line), line
            assert len(line) <= len(str(path)) + 600, line
    return Run(code, text.splitlines(), str(path))


def dump(doc: dict[str, Any]) -> str:
    dumper = yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper
    return yaml.dump(doc, Dumper=dumper, allow_unicode=True, width=10**6, sort_keys=False)


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _reported(run: Run, key: str) -> bool:
    return any(
        line.startswith(f"{run.source}: {key}: ") or line.startswith(f"{run.source}: {key}.") for line in run.err
    )


# --------------------------------------------------------------------------- mutations that must fail

_INF = float("inf")
# GitHub's owner and repository ids: digits kept as text (new ids pass 2**31), an unquoted YAML number accepted.
NUMERIC_IDS = {"github_owner_id", "github_repository_id", "owner_id", "repository_id"}


def _wrong_values(s: Setting) -> dict[str, tuple[Any, str]]:
    """Mutation kind -> (value, suffix of the key path the error is reported at) that must be refused."""
    ann, origin = s.ann, typing.get_origin(s.ann)
    out: dict[str, tuple[Any, str]] = {}
    if not s.optional:
        out["null"] = (None, "")
    if _is_model(ann) or origin is dict:
        out |= {"list_for_mapping": (["a"], ""), "string_for_mapping": ("text", ""), "number_for_mapping": (5, "")}
        if origin is dict:
            value_ann = _unwrap(typing.get_args(ann)[1])[0]
            out["bad_value"] = ({"k": "text" if _is_model(value_ann) else ["x"]}, ".k")
    elif origin is tuple:
        out |= {"mapping_for_list": ({"a": 1}, ""), "string_for_list": ("text", ""), "number_for_list": (5, "")}
        out["bad_item"] = (["text"] if _is_model(typing.get_args(ann)[0]) else [["x"]], "[0]")
    elif ann in (int, float):
        out |= {
            "string_for_number": ("many", ""),
            "list_for_number": ([1], ""),
            "mapping_for_number": ({"a": 1}, ""),
            "bool_for_number": (True, ""),
            "infinity": (_INF, ""),
        }
        if ann is int:
            out |= {"fraction_for_int": (1.5, ""), "beyond_32_bit": (2**31, "")}
    elif ann is bool:
        out |= {"word_for_bool": ("sometimes", ""), "list_for_bool": ([True], ""), "number_for_bool": (2, "")}
    elif ann is str:
        out |= {"list_for_string": (["a"], ""), "mapping_for_string": ({"a": 1}, "")}
        if s.path[-1] not in NUMERIC_IDS:
            out["number_for_string"] = (123, "")
        out["bool_for_string"] = (True, "")
    elif origin is typing.Literal:
        out |= {
            "unknown_choice": ("zz-none-of-these", ""),
            "list_for_choice": (["a"], ""),
            "number_for_choice": (7, ""),
        }
    elif ann is ipaddress.IPv4Network:
        out |= {"bad_cidr": ("10.0.0.0/33", ""), "host_bits": ("10.0.0.1/16", ""), "word_for_cidr": ("ten", "")}
    return out


def _kinds() -> dict[tuple[str, int], list[tuple[tuple[str | int, ...], Any, str]]]:
    """(kind, depth) -> [(concrete path, value, reported suffix)]; one document per kind and depth.

    Depth keeps a mutated section from hiding the mutations of its own keys.
    """
    groups: dict[tuple[str, int], list[tuple[tuple[str | int, ...], Any, str]]] = {}
    for s in SETTINGS:
        path = concrete(s.path)
        assert path is not None
        for kind, (value, suffix) in _wrong_values(s).items():
            groups.setdefault((kind, len(path)), []).append((path, value, suffix))
    return groups


KINDS = _kinds()


@pytest.mark.parametrize("kind", sorted(KINDS), ids=[f"{k}-{d}" for k, d in sorted(KINDS)])
def test_wrong_values_are_each_reported_at_their_key(project: Path, kind: tuple[str, int]) -> None:
    doc = _rich()
    for path, value, _ in KINDS[kind]:
        _set(doc, path, value)
    run = run_build(project, dump(doc))
    assert run.code == 2
    missed = [loc_path(p) + s for p, _, s in KINDS[kind] if not _reported(run, loc_path(p) + s)]
    assert not missed, f"not reported at their key: {missed}\n" + "\n".join(run.err)


def test_unknown_keys_at_every_level(project: Path) -> None:
    doc = _rich()
    sections = [concrete(s.path) for s in SETTINGS if _is_model(s.ann)]
    sections += [concrete(s.path[:-1]) for s in SETTINGS if s.path[-1:] == (0,) or "*" in s.path[-2:-1]]
    wanted = []
    for path in [(), *{p for p in sections if p is not None}]:
        target: Any = doc
        for part in path:
            target = target[part]
        if isinstance(target, dict) and path[-1:] != ("services",):
            target["zz_unknown"] = 1
            wanted.append(loc_path((*path, "zz_unknown")))
    run = run_build(project, dump(doc))
    assert run.code == 2
    for key in wanted:
        assert any(line.startswith(f"{run.source}: {key}: unknown key (") for line in run.err), key
    assert len(wanted) > 20


# --------------------------------------------------------------------------- values that may be fine

_MAYBE_STRINGS = {
    "empty": "",
    "unicode": "ünïcødé ✓ 中文",
    "long": "x" * 300,
    "control": "a\nb\tc\x1b",
    "padded": " padded ",
}


@pytest.mark.parametrize("kind", sorted(_MAYBE_STRINGS))
def test_odd_strings_either_build_or_are_refused_at_their_key(project: Path, kind: str) -> None:
    """Every string setting at once; what is refused is named, what is accepted must then build."""
    paths = [concrete(s.path) for s in SETTINGS if s.ann is str]
    doc = _rich()
    for path in paths:
        _set(doc, path, _MAYBE_STRINGS[kind])
    run = run_build(project, dump(doc))
    accepted = [p for p in paths if not _reported(run, loc_path(p))]
    doc = _rich()
    for path in accepted:
        _set(doc, path, _MAYBE_STRINGS[kind])
    run_build(project, dump(doc))  # builds, or fails on a cross-check, cleanly either way


@pytest.mark.parametrize("value", [-1, 0, 2**31 - 1, 1e308, 1e-300])
def test_edge_numbers_either_build_or_are_refused_at_their_key(project: Path, value: float) -> None:
    paths = [concrete(s.path) for s in SETTINGS if s.ann in (int, float)]
    doc = _rich()
    for path in paths:
        _set(doc, path, value)
    run = run_build(project, dump(doc))
    assert run.code == 2
    accepted = [p for p in paths if not _reported(run, loc_path(p))]
    doc = _rich()
    for path in accepted:
        _set(doc, path, value)
    run_build(project, dump(doc))


# --------------------------------------------------------------------------- the file itself


def _bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


NESTING = rf"(YAML: nested too deeply \(at most {MAX_DEPTH} levels\)|line 1: invalid YAML: exceeded maximum nesting)"
RAW: dict[str, tuple[str | bytes, str]] = {
    "non_utf8": (b'env: dev\ntags: {Team: "\xff\xfe"}\n', r"line 2: not UTF-8 text \(byte 0xff\)"),
    "utf16": ("env: dev\n".encode("utf-16"), "line 1: not UTF-8 text"),
    "list_document": ("- a\n- b\n", "expected a mapping of settings at the top level, got list"),
    "scalar_document": ("just text\n", "expected a mapping of settings at the top level, got str"),
    "tab_indent": (
        "network:\n\tvpc_cidr: 10.0.0.0/16\n",
        "line 2: invalid YAML: a tab character; YAML indents with spaces only",
    ),
    "duplicate_top": ("data: {}\ndata: {}\n", "line 2: invalid YAML: duplicate key 'data'"),
    "duplicate_nested": ("data:\n  multi_az: false\n  multi_az: true\n", "line 3: invalid YAML: duplicate key"),
    "python_object": ("data: !!python/object/apply:os.system ['true']\n", "line 1: invalid YAML: could not determine"),
    "python_name": ("data: !!python/name:os.system\n", "line 1: invalid YAML: could not determine a constructor"),
    "unknown_tag": ("data: !Ref Something\n", "line 1: invalid YAML: could not determine a constructor"),
    "list_as_key": ("? [a, b]\n: 1\n", "line 1: invalid YAML: a key must be a plain name"),
    "number_as_key": ("1: x\n", "line 1: invalid YAML: key '1' must be a string"),
    "null_as_key": ("~: x\n", "line 1: invalid YAML: key '~' must be a string"),
    "deep_nesting": (
        "a: " + "[" * 3000 + "]" * 3000 + "\n",
        NESTING,
    ),
    "deep_block_nesting": ("".join(f"{'  ' * i}k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n", "YAML: nested too"),
    "alias_bomb": (_bomb(), f"YAML: more than {MAX_VALUES} values"),
    "control_character": ('env: dev\ntags: {a: "\x07"}\n', "line 2: invalid YAML: character"),
    "two_documents": ("env: dev\n---\nenv: dev\n", "line 2: invalid YAML"),
    "merge_key": ("base: &b {multi_az: false}\ndata:\n  <<: *b\n", "line 3: invalid YAML"),
    "env_mismatch": ("env: prod\n", "env: 'prod' must equal the file name 'dev'"),
    "bool_from_yes": ("services:\n  backend:\n    min_count: no\n", "services.backend.min_count: expected a number"),
    "unknown_null_service": ("services:\n  grafna: null\n", "services: grafna: null, but 'grafna' is not a default"),
    "unknown_service_without_image": ("services:\n  worker: {cpu: 256}\n", "services.worker.image: required key"),
}


@pytest.mark.parametrize("name", sorted(RAW))
def test_bad_files_are_one_line_each(project: Path, name: str) -> None:
    body, message = RAW[name]
    run = run_build(project, body)
    assert run.code == 2
    assert re.match(rf"^{re.escape(run.source)}: {message}", run.err[0]), run.err


def test_anchors_and_aliases_in_a_good_file_are_fine(project: Path) -> None:
    body = "services:\n  backend:\n    environment: &shared {FEATURE_X: 'on'}\n  frontend:\n    environment: *shared\n"
    assert run_build(project, body).code == 0


def test_yaml_dates_stay_strings(project: Path) -> None:
    assert run_build(project, "tags: {Created: 2024-01-01}\n").code == 0


def test_messages_are_one_line_even_for_keys_with_newlines(project: Path) -> None:
    run = run_build(project, 'tags: {"a\\nb": x}\nservices:\n  backend:\n    environment: {"X\\nY": "1"}\n')
    assert run.code == 2
    assert f"{run.source}: tags.a\\nb: a tag key has 1-128 letters, digits, spaces and _.:/=+-@" in run.err
    assert f"{run.source}: services.backend.environment.X\\nY: is not a valid environment variable name" in run.err


def test_long_inputs_are_shortened_in_messages(project: Path) -> None:
    run = run_build(project, f"region: {'x' * 5000}\n")
    assert run.code == 2
    assert "... (5002 characters)" in run.err[0] and len(run.err[0]) < len(run.source) + 300


# --------------------------------------------------------------------------- one test per cross-field message

MESSAGES: dict[str, tuple[str, str]] = {
    "health_check_timeout_below_interval": (
        "services:\n  redis:\n    health_check: {interval: 10, timeout: 10}\n",
        "services.redis.health_check.timeout: 10 must be below interval 10 (a check ends before the next)",
    ),
    "alb_path_pattern": (
        "services:\n  backend:\n    load_balancer: {paths: ['/api/*', '/a b']}\n",
        "services.backend.load_balancer.paths[1]: '/a b' is not an ALB path pattern "
        "(1-128 of A-Z a-z 0-9 _-.$/~\"'@:+&*?)",
    ),
    "alb_path_pattern_too_long": (
        f"services:\n  backend:\n    load_balancer: {{paths: ['/{'a' * 128}']}}\n",
        f"services.backend.load_balancer.paths[0]: '/{'a' * 128}' is not an ALB path pattern",
    ),
    "health_check_path": (
        "services:\n  frontend:\n    load_balancer: {health_check_path: 'health'}\n",
        "services.frontend.load_balancer.health_check_path: string should match pattern",
    ),
    "ssl_policy": ("alb: {ssl_policy: TLS1.2}\n", "alb.ssl_policy: string should match pattern"),
    "cron_day_fields": (
        "services:\n  backend:\n    autoscaling:\n      schedules:\n"
        "        - {name: night, cron: '0 1 * * MON *', min_count: 1, max_count: 3}\n",
        "services.backend.autoscaling.schedules[0].cron: '0 1 * * MON *': "
        "exactly one of day-of-month and day-of-week must be '?'",
    ),
    "schedule_above_max_count": (
        "services:\n  backend:\n    max_count: 8\n    autoscaling:\n      schedules:\n"
        "        - {name: day, cron: '0 7 ? * MON-FRI *', min_count: 2, max_count: 9}\n",
        "services.backend.autoscaling.schedules[0].max_count: 9 is above the service's max_count 8",
    ),
    "schedule_max_below_min": (
        "services:\n  backend:\n    autoscaling:\n      schedules:\n"
        "        - {name: day, cron: '0 7 ? * MON-FRI *', min_count: 3, max_count: 2}\n",
        "services.backend.autoscaling.schedules[0].max_count: 2 is below min_count 3",
    ),
    "unknown_service_nulled": (
        "services:\n  grafna: null\n",
        "services: grafna: null, but 'grafna' is not a default service (null drops one of: backend, frontend, "
        "qdrant, redis, prometheus, grafana)",
    ),
    "services_null": ("services:\n", "services: expected a mapping (key: value), got None"),
    "double_hyphen_name": (
        "project: kr--app\n",
        "project: 'kr--app-dev-postgres' (the RDS instance identifier) must not hold two hyphens in a row",
    ),
    "elasticache_name_length": (
        "name_prefix: abcdefghij-abcdefghij-abcdefghij-a\ndata: {redis: elasticache}\n",
        "name_prefix: string should match pattern",
    ),
    "tag_key": ('tags: {"bad*key": x}\n', "tags.bad*key: a tag key has 1-128 letters, digits, spaces and _.:/=+-@"),
    "tag_value": (
        f"tags: {{Team: '{'v' * 257}'}}\n",
        "tags.Team: 'vvvvvvvvvv",
    ),
    "too_many_tags": (
        "tags: {" + ", ".join(f"T{i}: x" for i in range(47)) + "}\n",
        "tags: 51 tags with kr_cfn's own (Project, Environment, ManagedBy, Name), max 50",
    ),
    "bool_for_number": (
        "services:\n  backend:\n    desired_count: yes\n",
        "services.backend.desired_count: expected a number, got true (YAML reads yes, no, on, off as true/false)",
    ),
    "beyond_32_bit": (
        "cost: {secrets_api_calls: 2147483648}\n",
        "cost.secrets_api_calls: 2147483648 is above 2147483647, the largest number CloudFormation takes here",
    ),
    "infinity": (
        "monitoring:\n  alarms:\n    db_connections: {threshold: .inf}\n",
        "monitoring.alarms.db_connections.threshold: input should be a finite number, got inf",
    ),
    "not_a_number": (
        "monitoring:\n  alarms:\n    db_connections: {threshold: .nan}\n",
        "monitoring.alarms.db_connections.threshold: input should be a finite number, got nan",
    ),
    "cost_figure_too_large": (
        "cost: {efs_gb: 1.0e+300, s3_gb: {DataBucket: 2.0e+13}}\n",
        "cost.efs_gb: 1e+300 is above 1e+12, more than any usage",
    ),
    "cost_per_key_figure_too_large": (
        "cost: {s3_gb: {DataBucket: 2.0e+13}}\n",
        "cost.s3_gb.DataBucket: 2e+13 is above 1e+12, more than any usage",
    ),
    "section_as_list": ("network: [a]\n", "network: expected a mapping of settings (key: value), got ['a']"),
    "list_as_mapping": ("bootstrap: {repositories: {a: 1}}\n", "bootstrap.repositories: expected a list, got {'a': 1}"),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_cross_field_and_type_messages(project: Path, name: str) -> None:
    body, expected = MESSAGES[name]
    run = run_build(project, body)
    assert run.code == 2
    assert any(line.startswith(f"{run.source}: {expected}") for line in run.err), run.err


# --------------------------------------------------------------------------- command-line options


def _cli(argv: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    text = err.getvalue()
    assert "Traceback" not in text
    return code, text.splitlines()


@pytest.fixture
def shipped(project: Path) -> Path:
    """The project with the shipped dev params back in place."""
    (project / "params" / f"{ENV}.yaml").write_bytes((PARAMS / f"{ENV}.yaml").read_bytes())
    return project


def _build_args(project: Path, *extra: str) -> list[str]:
    return ["build", "--env", ENV, "--params", str(project / "params"), "--no-lint", *extra]


def test_build_format_must_be_known(shipped: Path) -> None:
    code, err = _cli([*_build_args(shipped, "--out", str(shipped / "out")), "--format", "xml"])
    assert code == 2
    assert err == [
        "kr-cfn build: argument --format: invalid choice: 'xml' (choose from 'yaml', 'json') (see kr-cfn build --help)"
    ]


def test_build_out_must_not_be_a_file(shipped: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert _cli(_build_args(shipped, "--out", str(tmp_path / "file"))) == (
        2,
        [f"--out {tmp_path / 'file'}: is a file, not a folder"],
    )
    assert _cli(_build_args(shipped, "--out", str(tmp_path / "file" / "sub"))) == (
        2,
        [f"--out {tmp_path / 'file' / 'sub'}: is inside {tmp_path / 'file'}, which is a file, not a folder"],
    )
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_build_params_folder(tmp_path: Path, kind: str) -> None:
    params = tmp_path / "params"
    if kind == "file":
        params.write_text("x")
    elif kind == "empty":
        params.mkdir()
    code, err = _cli(["build", "--params", str(params), "--out", str(tmp_path / "out"), "--no-lint"])
    expected = {
        "missing": f"--params {params}: no such folder",
        "file": f"--params {params}: not a folder",
        "empty": f"{params}: no params files (*.yaml) found",
    }[kind]
    assert (code, err) == (2, [expected])
    assert not (tmp_path / "out").exists()


def test_no_command_and_unknown_command() -> None:
    assert _cli([]) == (2, [])  # bare kr-cfn prints the help on stdout (tests/test_cli_unix.py)
    code, err = _cli(["frobnicate"])
    assert code == 2 and len(err) == 1 and err[0].startswith("kr-cfn: argument COMMAND: invalid choice: 'frobnicate'")


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that would work, pointed at a closed port: these checks must fail before any call."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


DEPLOY_CASES: dict[str, tuple[list[str], str]] = {
    "plan_without_build": (
        ["plan", "--out", "{empty}"],
        "{empty}/dev: no built templates; run kr-cfn build --env dev first",
    ),
    "package_without_build": (
        ["package", "--out", "{empty}", "--bucket", "kr-artifacts"],
        "{empty}/dev: no built templates; run kr-cfn build --env dev first",
    ),
    "bootstrap_without_build": (
        ["bootstrap", "--out", "{empty}"],
        "{empty}/dev: no built templates; run kr-cfn build --env dev first",
    ),
    "image_tag_without_tag": (["plan", "--image-tag", "backend"], "--image-tag 'backend': expected NAME=TAG"),
    "image_tag_bad_tag": (
        ["plan", "--image-tag", "backend=-bad tag"],
        "--image-tag 'backend=-bad tag': '-bad tag' is not a Docker tag",
    ),
    "image_tag_unknown_service": (
        ["plan", "--image-tag", "nosuch=1.2.3"],
        "--image-tag: the root template has no parameter NosuchImageTag (have: BackendImageTag, FrontendImageTag)",
    ),
    "image_tag_twice": (
        ["plan", "--image-tag", "backend=1", "--image-tag", "backend=2"],
        "--image-tag 'backend=2': backend is named twice",
    ),
    "allow_replace_not_a_logical_id": (
        ["plan", "--allow-replace", "DataStack/Database"],
        "--allow-replace 'DataStack/Database': expected a logical id (letters and digits, e.g. DatabaseInstance)",
    ),
    "bootstrap_allow_replace": (
        ["bootstrap", "--allow-replace", "my-bucket"],
        "--allow-replace 'my-bucket': expected a logical id",
    ),
    "change_set_name": (["apply", "--change-set", "1 bad"], "--change-set '1 bad': expected the change set name"),
    "apply_allow_replace": (
        ["apply", "--change-set", "kr-cfn-1", "--allow-replace", "Data-Stack"],
        "--allow-replace 'Data-Stack': expected a logical id",
    ),
    "plan_digest_not_sha256": (
        ["migrate", "--plan", "{params}/dev.yaml", "--plan-digest", "abc"],
        "--plan-digest 'abc': expected the 64 hex digits of a sha256",
    ),
    "plan_digest_without_plan": (
        ["apply", "--change-set", "kr-cfn-1", "--plan-digest", "a" * 64],
        "--plan-digest: only with --plan (the record it is the digest of)",
    ),
    "stack_name": (
        ["status", "--stack-name", "no_underscores"],
        "--stack-name 'no_underscores': expected a stack name",
    ),
    "bucket_name": (["package", "--bucket", "Not_A_Bucket"], "--bucket 'Not_A_Bucket': expected an S3 bucket name"),
    "diff_allow_replace": (
        ["diff", "--compare-to", "{empty}", "--allow-replace", "Data Stack"],
        "--allow-replace 'Data Stack': expected a logical id",
    ),
    "unknown_env": (["plan", "--env", "qa"], "--env qa: no params file {params}/qa.yaml (have: dev)"),
}


@pytest.mark.parametrize("name", sorted(DEPLOY_CASES))
def test_deploy_options_fail_before_aws(shipped: Path, tmp_path: Path, no_aws: None, name: str) -> None:
    argv, expected = DEPLOY_CASES[name]
    where = {"empty": str(tmp_path), "params": str(shipped / "params")}
    argv = [a.format(**where) for a in argv]
    base = [argv[0], "--params", str(shipped / "params")]
    if "--env" not in argv:
        base += ["--env", ENV]
    if "--out" not in argv and argv[0] != "diff":
        base += ["--out", str(shipped / "out")]
    code, err = _cli([*base, *argv[1:]])
    assert code == 2
    assert len(err) == 1 and err[0].startswith(expected.format(**where)), err


# --------------------------------------------------------------------------- hand-edited built templates

TEMPLATE_EDITS: dict[str, tuple[str, str | bytes, str]] = {
    "resource_not_a_mapping": (
        "root.yaml",
        "Resources: {A: 5}\n",
        "Resources.A: expected a mapping with Type, got int",
    ),
    "resource_without_type": ("root.yaml", "Resources: {A: {}}\n", "Resources.A.Type: expected a resource type"),
    "properties_not_a_mapping": (
        "ecs.yaml",
        "Resources: {S: {Type: AWS::ECS::Service, Properties: 5}}\n",
        "Resources.S.Properties: expected a mapping, got int",
    ),
    "parameters_a_list": ("root.yaml", "Parameters: [1]\nResources: {}\n", "Parameters: expected a mapping, got list"),
    "no_resources": ("data.yaml", "Outputs: {}\n", "not a CloudFormation template"),
    "not_utf8": ("data.yaml", b"\xff\xfe\x00", "not UTF-8 text|can't decode byte 0xff"),
}


@pytest.mark.parametrize("command", ["cost", "diff"])
@pytest.mark.parametrize("name", sorted(TEMPLATE_EDITS))
def test_edited_templates_are_one_line_each(shipped: Path, tmp_path: Path, command: str, name: str) -> None:
    import shutil

    file, body, message = TEMPLATE_EDITS[name]
    out = tmp_path / "out"
    shutil.copytree(shipped / "out", out)
    edited = out / ENV / file
    edited.write_bytes(body if isinstance(body, bytes) else body.encode())
    params = ["--env", ENV, "--params", str(shipped / "params")]
    argv = {
        "cost": ["cost", *params, "--out", str(out)],
        "diff": ["diff", *params, "--compare-to", str(shipped / "out" / ENV), "--out", str(out / ENV)],
    }[command]
    code, err = _cli(argv)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"{edited}: "), err
    assert any(m in err[0] for m in message.split("|")), err
