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
from kr_cfn.docs import CONFIG_END, CONFIG_START, configuration_reference
from tests.conftest import PARAMS, ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"kr-cfn\s+([a-z][a-z-]*)((?:[ \t]+(?:\\\n\s*)?[^\s|;&)`'\"#]+)*)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def test_generated_docs_are_fresh(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["docs", "--check", "--repo", str(ROOT), "--params", str(PARAMS)])
    assert code == 0, f"{capsys.readouterr().err.strip()} (run: kr-cfn docs)"


def test_readme_shows_the_prod_diagram() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- kr-cfn diagram --env prod -->\n```mermaid\nflowchart LR\n" in readme


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
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    text = config.read_text()
    assert text.startswith("# Configuration\n\nintro\n\n") and text.endswith("\n\nnotes\n")
    assert configuration_reference().strip() in text
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
                used.setdefault(match[1], set()).update(OPTION.findall(match[2]))
            if re.fullmatch(r"--[a-z][a-z0-9-]*( [A-Za-z_.=<>\\|-]+)?", span):
                alone.add(span.split()[0])
    return used, alone


@functools.cache
def _help(command: str) -> str:
    exe = shutil.which("kr-cfn", path=str(Path(sys.executable).parent)) or shutil.which("kr-cfn")
    cmd = [exe] if exe else [sys.executable, "-m", "kr_cfn.cli"]
    proc = subprocess.run(
        [*cmd, command, "--help"], capture_output=True, text=True, check=False, cwd=ROOT, env=dict(os.environ)
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


def test_ci_installs_graphviz_as_the_readme_says() -> None:
    """The README's test command (what .ci/run runs) starts with .ci/tools, which installs Graphviz."""
    run = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "pytest" in line]
    assert len(run) == 1 and run[0].startswith("bash .ci/tools && ")
    assert f"```sh\n{run[0]}\n```" in (ROOT / "README.md").read_text()
    tools = [line for line in (ROOT / ".ci" / "tools").read_text().splitlines() if not line.startswith("#")]
    assert any("missing+=(graphviz)" in line for line in tools)


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
