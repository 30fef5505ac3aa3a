"""The pull-request comment of ``forecast-comment.yml``: the artifacts' text only inside code fences.

The forecast and the change-set review come from the pull request's own runs: its code wrote them,
so every byte of them is data. Each goes into a fenced code block whose fence is longer than any
backtick run in the text, so nothing in it renders as Markdown or HTML (no forged verdict or
heading, no hidden ``<!-- -->`` text, no mention): a fenced block ends only at a fence of the same
character at least as long as the opening one, and its content is literal text
(GitHub Flavored Markdown, "Fenced code blocks": https://github.github.com/gfm/#fenced-code-blocks).
Only what this module writes itself (the marker, the headings, the verdict of the comparison) is
Markdown. Files are read, never run; a symlink or anything but a plain file is not read.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kr_cfn.changes.diffcmd import disagreements

ENVS = ("dev", "staging", "prod")
LIMIT = 30_000
"""Characters kept of each artifact text (a comment holds at most 65,536)."""


def marker(env: str) -> str:
    """The first line of an environment's comment, by which the workflow finds it to update it."""
    return f"<!-- kr-cfn forecast {env} -->"


def fenced(text: str) -> str:
    """``text`` as a literal code block: the fence is longer than its longest run of backticks."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if not text or text.endswith("\n") else text + "\n"
    return f"{fence}text\n{body}{fence}\n"


def _read(path: Path) -> str | None:
    """The file's text (at most :data:`LIMIT` characters), or None when it is not a plain file."""
    if path.is_symlink() or not path.is_file():
        return None
    text = path.read_bytes().decode("utf-8", errors="replace")
    return text if len(text) <= LIMIT else text[:LIMIT] + "\n[... cut at 30000 characters]\n"


def _json(path: Path) -> dict[str, Any] | None:
    text = _read(path)
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _comparison(forecast_dir: Path, review_dir: Path) -> str:
    forecast, review = _json(forecast_dir / "forecast.json"), _json(review_dir / "review.json")
    if forecast is None:
        return "The forecast's forecast.json is missing or unreadable: nothing to compare.\n"
    if review is None:
        return "No change-set review to compare with (no AWS access for this run): the forecast is all there is.\n"
    lines = disagreements(forecast, review)
    if not lines:
        return "The forecast agrees with the change set.\n"
    return (
        "> [!IMPORTANT]\n> The forecast and the change set disagree; **the change set is the authority**:\n\n"
        + fenced("\n".join(lines))
    )


def render(env: str, forecast_dir: Path, review_dir: Path) -> str:
    """The comment for ``env``: marker, the plan's review and the forecast fenced, their comparison."""
    if env not in ENVS:
        raise ValueError(f"env {env!r}: expected one of {', '.join(ENVS)}")
    parts = [marker(env), ""]
    review = _read(review_dir / "review.md")
    if review is not None:
        # Advisory like the forecast; the authoritative review is the release-plan job's on main.
        parts += [f"**{env}**: change-set review of the pull request's plan (advisory: its own code wrote it)", ""]
        parts += [fenced(review)]
    forecast = _read(forecast_dir / "forecast.md")
    parts += [f"**{env}** (offline forecast; the change set, where there is one, is the authority)", ""]
    parts += [fenced(forecast) if forecast is not None else "No forecast.md in the artifact.\n"]
    parts += ["#### Forecast vs change set", "", _comparison(forecast_dir, review_dir)]
    return "\n".join(parts)


def main(argv: Sequence[str]) -> int:
    """``python -m kr_cfn.changes.prcomment ENV FORECAST_DIR REVIEW_DIR``: the comment on stdout."""
    if len(argv) != 3:
        print("usage: python -m kr_cfn.changes.prcomment ENV FORECAST_DIR REVIEW_DIR", file=sys.stderr)
        return 2
    try:
        print(render(argv[0], Path(argv[1]), Path(argv[2])), end="")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
