"""A cache of cfn-lint verdicts, one entry per template, under the user's cache folder.

A ``kr-cfn build`` of unchanged templates then reads the earlier findings instead of
linting again (cfn-lint takes seconds; reading an entry takes microseconds). An entry's
key is a SHA-256 over everything that can change the verdict:

- the template's name and bytes (its ``Metadata`` ``cfn-lint`` rule config included), and the
  bytes of the templates it nests by local path (``TemplateURL: ./network.yaml``: E3043 reads
  the child's Parameters from disk, https://github.com/aws-cloudformation/cfn-lint/blob/main/src/cfnlint/rules/resources/cloudformation/NestedStackParameters.py);
- the settings given to cfn-lint (regions, included checks: :data:`kr_cfn.lint.SETTINGS`);
- the ``.cfnlintrc`` files cfn-lint reads itself, in the home folder and the current folder
  (``ConfigFileArgs._find_config`` in
  https://github.com/aws-cloudformation/cfn-lint/blob/main/src/cfnlint/config.py);
- the versions of cfn-lint, of the libraries it runs on and of Python, and the date of the
  resource schemas it uses (bundled, or newer ones ``cfn-lint --update-specs`` put in
  ``~/.cache/aws/cfn-lint/schemas``: ``_resolve_schema_dirs`` in
  https://github.com/aws-cloudformation/cfn-lint/blob/main/src/cfnlint/schema/manager.py).

Where: ``$KR_CFN_CACHE_DIR/lint`` when set, else ``$XDG_CACHE_HOME/kr_cfn/lint``, else
``~/.cache/kr_cfn/lint`` (https://specifications.freedesktop.org/basedir-spec/latest/).
``KR_CFN_LINT_CACHE=off`` (or ``0``, ``false``, ``no``) turns the cache off.

Safe with concurrent runs: an entry is written to a temporary file in the same folder and
renamed into place with :func:`os.replace` (atomic on POSIX: a reader sees the old file or
the new one, never a partial one: https://docs.python.org/3/library/os.html#os.replace). An
entry that cannot be read, does not parse or carries another key counts as a miss and is
rewritten; a cache folder that cannot be written only means no caching.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

FORMAT = "kr_cfn lint cache 1"
"""Changes when the entry format or the key's recipe changes (old entries then miss)."""

_OFF = {"0", "off", "false", "no"}
_NESTED_TYPES = (b"AWS::CloudFormation::Stack", b"AWS::Serverless::Application")
# A nested template by local path, in YAML (``TemplateURL: ./x.yaml``) or JSON (``"TemplateURL": "./x.json"``).
_LOCAL_REF = re.compile(rb"""["']?(?:TemplateURL|Location)["']?\s*:\s*["']?([^\s"',}]+)""")


def cache_dir() -> Path | None:
    """The folder of lint entries, or None when ``KR_CFN_LINT_CACHE`` turns the cache off."""
    if os.environ.get("KR_CFN_LINT_CACHE", "").strip().lower() in _OFF:
        return None
    root = os.environ.get("KR_CFN_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        # the spec: a relative XDG_CACHE_HOME is invalid and ignored
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
        root = str(base / "kr_cfn")
    return Path(root) / "lint"


def _cfnlint_schema_dates() -> list[str]:
    """The bundled and the downloaded schema ``version.json`` (cfn-lint uses the newer)."""
    spec = importlib.util.find_spec("cfnlint")  # finds the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    files = [Path(loc) / "data" / "schemas" / "version.json" for loc in locations]
    # cfnlint/helpers.py get_cache_dir(), for Linux/macOS/Windows
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~\\AppData\\Local"))
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    files.append(Path(base) / "aws" / "cfn-lint" / "schemas" / "version.json")
    return [_read_or_empty(f) for f in files]


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _rcfiles() -> list[tuple[str, str]]:
    """The user and project ``.cfnlintrc`` cfn-lint loads (the first of each that exists)."""
    found = []
    for folder in (Path.home(), Path.cwd()):
        for name in (".cfnlintrc", ".cfnlintrc.yaml", ".cfnlintrc.yml"):
            if (folder / name).is_file():
                found.append((str(folder / name), _read_or_empty(folder / name)))
                break
    return found


@cache
def _linter_identity() -> str:
    """cfn-lint's version, its libraries', Python's and the schema dates, as one string."""
    dist = importlib.metadata.distribution("cfn-lint")
    versions = {"cfn-lint": dist.version, "python": sys.version.split()[0]}
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    return json.dumps([versions, _cfnlint_schema_dates()], sort_keys=True)


def _nested_files(path: Path, data: bytes) -> list[Path]:
    """The local files cfn-lint may read while linting ``path``: the templates it nests."""
    if not any(t in data for t in _NESTED_TYPES):
        return []
    refs = {ref.decode("utf-8", "replace") for ref in _LOCAL_REF.findall(data)}
    local = {path.parent / r for r in refs if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", r)}  # not a URL
    siblings = {p for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".template")}
    # every sibling too: a reference the pattern does not see still changes the key
    return sorted((local | siblings) - {path})


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def entry_key(path: Path, settings: dict[str, Any]) -> str:
    """The cache key of linting ``path`` with cfn-lint ``settings`` (everything but ``templates``)."""
    data = path.read_bytes()
    nested = [(os.path.relpath(p, path.parent), _digest(p)) for p in _nested_files(path, data)]
    recipe = [FORMAT, _linter_identity(), settings, _rcfiles(), path.name, hashlib.sha256(data).hexdigest(), nested]
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


_DIR = "\x00dir\x00"  # the template's folder, where a message names it (stored folder-independent)


def load(root: Path, key: str, path: Path) -> list[tuple[str, int, str, str]] | None:
    """The findings stored under ``key`` as ``(file, line, rule, message)``, or None on a miss.

    A missing, unreadable, unparsable or mismatched entry is a miss.
    """
    try:
        entry = json.loads((root / f"{key}.json").read_bytes())
        if entry["key"] != key:
            return None
        folder = str(path.parent)
        found = []
        for file, line, rule, message in entry["findings"]:
            if not (isinstance(file, str) and isinstance(line, int) and isinstance(rule, str)):
                return None
            found.append((str(path.parent / file), line, rule, str(message).replace(_DIR, folder)))
        return found
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(root: Path, key: str, path: Path, findings: list[tuple[str, int, str, str]]) -> None:
    """Store the findings of linting ``path`` under ``key`` (atomically; silently skipped if unwritable)."""
    folder = str(path.parent)
    rows = [
        [os.path.relpath(file, folder), line, rule, message.replace(folder, _DIR)]
        for file, line, rule, message in findings
    ]
    data = json.dumps({"key": key, "findings": rows}, sort_keys=True).encode()
    tmp = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=root)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, root / f"{key}.json")
    except OSError:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
