"""``kr-cfn sarif``: cfn-lint and checkov findings moved from the built templates to the source that builds them.

Code scanning shows an alert on a pull request only when all the lines the alert names are in the
pull request's diff
(https://docs.github.com/en/code-security/code-scanning/managing-code-scanning-alerts/triaging-code-scanning-alerts-in-pull-requests).
The linters read ``out/<env>/<stack>.yaml``, which CI builds and the repository never holds, so
as they come no finding can show on a pull request. This rewrites each result in place:

* a finding inside a resource goes to the troposphere constructor of that logical id in
  ``stacks/<stack>.py`` or the kr_cfn building block it delegates to (kr_cfn.sarif_sources);
* a finding on a template-level item (Parameters, Outputs, Conditions...) or on a resource whose
  constructor cannot be told goes to the stack module's ``build`` function;
* a finding in a template that no stack module builds keeps its location and is reported.

The template location stays as a related location; env, template and logical id go into the
message. The same finding in several environments at one source line becomes one result naming
every environment, with a ``partialFingerprints`` entry that does not depend on the line, so code
scanning keeps tracking it while code moves
(https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning).

Stack modules are read as source text, never imported (deployment-side code).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kr_cfn import cliargs
from kr_cfn.built import parse_template, template_node
from kr_cfn.errors import EXIT_USAGE, DeployError
from kr_cfn.sarif_sources import Site, SourceIndex, build_line

FINGERPRINT = "krCfnSourceFinding/v1"
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json", ".template")


class SarifError(Exception):
    """Bad input: ``kr-cfn sarif: <file>: ...``, exit 2."""


# --------------------------------------------------------------------------- templates


def path_at(node: yaml.Node, line: int) -> tuple[str | int, ...]:
    """Keys (and list indices) from the template's top down to the innermost item holding 1-based ``line``."""
    path: list[str | int] = []
    target = line - 1
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if isinstance(node, yaml.MappingNode):
            children = [(str(k.value), k.start_mark.line, v) for k, v in node.value]
        else:
            children = [(i, v.start_mark.line, v) for i, v in enumerate(node.value)]
        chosen = None
        for key, start, value in children:  # in document order: the last one starting at or before the line
            if start > target:
                break
            chosen = (key, value)
        if chosen is None:
            break
        path.append(chosen[0])
        node = chosen[1]
    return tuple(path)


@dataclass
class _Template:
    """A built template: its data, its node tree and the source index of the stack module that builds it."""

    path: Path
    shown: str  # as the SARIF named it
    env: str
    stack: str
    data: dict[str, Any] | None = None
    node: yaml.Node | None = None
    index: SourceIndex | None = None
    problem: str | None = None  # why findings in it keep their location


@dataclass(frozen=True)
class Target:
    """Where a finding goes: a source line, and what in the template it was about."""

    path: str
    line: int
    what: str  # "resource Vpc" or "Outputs.VpcId"
    logical_id: str | None
    site_key: str
    inner: str  # the item inside the resource/section, list indices as *
    note: str | None = None  # why it went to build() rather than a constructor
    via: tuple[str, int] | None = None


class Mapper:
    """Maps template locations to stack sources; one per run of the command (templates and sources read once)."""

    def __init__(self, repo: Path, out: Path) -> None:
        self.repo, self.out = repo, out
        self._templates: dict[Path, _Template] = {}
        self._indexes: dict[str, SourceIndex] = {}

    def template_file(self, uri: str, base: str | None, run: dict[str, Any]) -> Path | None:
        """The local file an artifact location names (relative to the repo, the working folder or --out)."""
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
        elif parsed.scheme and len(parsed.scheme) > 1:  # "C:" is a drive, not a scheme
            return None
        else:
            path = Path(urllib.parse.unquote(uri))
        bases = run.get("originalUriBaseIds")
        if base and isinstance(bases, dict) and isinstance(bases.get(base), dict):
            base_uri = bases[base].get("uri")
            if isinstance(base_uri, str) and base_uri.startswith("file:"):
                path = Path(urllib.parse.unquote(urllib.parse.urlparse(base_uri).path)) / path
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, self.repo / path, self.out / path]
        return next((p.resolve() for p in candidates if p.is_file()), None)

    def template(self, path: Path, shown: str) -> _Template:
        """A template read once; ``problem`` says why its findings cannot move."""
        if path in self._templates:
            return self._templates[path]
        t = _Template(path, shown, env=path.parent.name, stack=path.stem)
        self._templates[path] = t
        module = self.repo / "stacks" / f"{t.stack}.py"
        if path.suffix not in TEMPLATE_SUFFIXES or t.stack.startswith("_") or not module.is_file():
            t.problem = f"no stack module builds it (no stacks/{t.stack}.py)"
            return t
        try:
            text = path.read_text(encoding="utf-8")
            t.data, t.node = parse_template(text, shown), template_node(text, shown)
        except (OSError, UnicodeDecodeError) as exc:
            t.problem = f"cannot read it ({exc})"
            return t
        except DeployError as exc:
            t.problem = str(exc).removeprefix(f"{shown}: ")
            return t
        if t.stack not in self._indexes:
            shared = next(iter(self._indexes.values()), None)
            self._indexes[t.stack] = SourceIndex(self.repo, f"stacks.{t.stack}", shared)
        t.index = self._indexes[t.stack]
        return t

    def target(self, t: _Template, line: int | None) -> Target:
        """Where a finding at ``line`` of template ``t`` goes."""
        assert t.index is not None and t.data is not None and t.node is not None
        path = path_at(t.node, line) if line else ()
        build = build_line(t.index)
        entry = t.index.entry.rel
        inner = "/".join("*" if isinstance(p, int) else p for p in path[2:])
        resources = t.data["Resources"]
        if len(path) >= 2 and path[0] == "Resources" and path[1] in resources:
            logical_id = str(path[1])
            site, note = best_site(t.index.sites, logical_id, resources[logical_id])
            if site is not None:
                return Target(site.path, site.line, f"resource {logical_id}", logical_id, site.key, inner, via=site.via)
            return Target(
                entry, build, f"resource {logical_id}", logical_id, f"{entry}:build:{logical_id}", inner, note
            )
        item = ".".join(str(p) for p in path[:2]) or "the template"
        return Target(entry, build, item, None, f"{entry}:build:{item}", inner, "a template-level item")


def best_site(sites: list[Site], logical_id: str, resource: dict[str, Any]) -> tuple[Site | None, str | None]:
    """The construction site of one resource: its type, the most literal id pattern, then its keywords."""
    kind = resource.get("Type")
    scored = []
    for site in sites:
        if site.resource_type != kind:
            continue
        specificity = site.specificity(logical_id)
        if specificity >= 0:
            scored.append(((specificity, site.evidence(resource)), site))
    if not scored:
        return None, f"no {kind} constructor for {logical_id}"
    top = max(score for score, _ in scored)
    best = {(s.path, s.line): s for score, s in scored if score == top}
    if len(best) > 1:
        lines = ", ".join(f"{p}:{n}" for p, n in sorted(best))
        return None, f"{logical_id} could be built at {lines}"
    return next(iter(best.values())), None


# --------------------------------------------------------------------------- SARIF


def read_log(path: Path) -> dict[str, Any]:
    """A SARIF 2.1.0 log, checked for the parts this command reads and writes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SarifError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SarifError(f"{path}: is a folder, expected a SARIF file") from None
    except OSError as exc:
        raise SarifError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SarifError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from None
    try:
        log = json.loads(text)
    except ValueError as exc:
        raise SarifError(f"{path}: not JSON ({exc})") from None
    if not isinstance(log, dict) or log.get("version") != "2.1.0":
        got = log.get("version") if isinstance(log, dict) else type(log).__name__
        raise SarifError(f"{path}: not a SARIF 2.1.0 log (version: expected 2.1.0, got {got!r})")
    if not isinstance(log.get("runs"), list):
        raise SarifError(f"{path}: runs: expected a list of runs")
    for i, run in enumerate(log["runs"]):
        if not isinstance(run, dict) or not isinstance(run.get("tool"), dict):
            raise SarifError(f"{path}: runs[{i}]: expected a run with a tool")
        if not isinstance(run["tool"].get("driver"), dict) or not isinstance(run["tool"]["driver"].get("name"), str):
            raise SarifError(f"{path}: runs[{i}].tool.driver.name: expected the tool's name")
        results = run.get("results", [])
        if not isinstance(results, list):
            raise SarifError(f"{path}: runs[{i}].results: expected a list")
        for j, result in enumerate(results):
            where = f"runs[{i}].results[{j}]"
            if not isinstance(result, dict) or not isinstance(result.get("message"), dict):
                raise SarifError(f"{path}: {where}: expected a result with a message")
            if not isinstance(result.get("locations", []), list):
                raise SarifError(f"{path}: {where}.locations: expected a list")
    return log


def _physical(result: dict[str, Any]) -> dict[str, Any] | None:
    for location in result.get("locations") or []:
        if isinstance(location, dict) and isinstance(location.get("physicalLocation"), dict):
            physical = location["physicalLocation"]
            if isinstance(physical.get("artifactLocation"), dict) and isinstance(
                physical["artifactLocation"].get("uri"), str
            ):
                return physical
    return None


def _text(result: dict[str, Any]) -> str:
    message = result["message"]
    return str(message.get("text") or message.get("markdown") or message.get("id") or "")


@dataclass
class _Merged:
    result: dict[str, Any]
    text: str
    target: Target
    stack: str
    envs: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class Summary:
    """What one file's rewrite did, for the one-line report."""

    results: int = 0
    constructors: int = 0
    builds: int = 0
    alerts: int = 0
    unchanged: int = 0  # results that keep their location
    kept: dict[str, str] = field(default_factory=dict)  # template -> why its findings keep their location
    notes: list[str] = field(default_factory=list)


def rewrite(log: dict[str, Any], mapper: Mapper) -> Summary:
    """Rewrite every run of ``log`` in place; returns what it did."""
    summary = Summary()
    for run in log["runs"]:
        tool = run["tool"]["driver"]["name"]
        out: list[dict[str, Any]] = []
        merged: dict[str, _Merged] = {}
        for result in run.get("results", []):
            summary.results += 1
            physical = _physical(result)
            if physical is None:
                summary.unchanged += 1
                out.append(result)
                continue
            artifact = physical["artifactLocation"]
            file = mapper.template_file(artifact["uri"], artifact.get("uriBaseId"), run)
            if file is None:
                summary.kept.setdefault(artifact["uri"], "not found (run kr-cfn build first, or pass --out)")
                summary.unchanged += 1
                out.append(result)
                continue
            t = mapper.template(file, artifact["uri"])
            if t.index is None:
                summary.kept.setdefault(t.shown, t.problem or "not mapped")
                summary.unchanged += 1
                out.append(result)
                continue
            region = physical.get("region") if isinstance(physical.get("region"), dict) else {}
            line = region.get("startLine") if isinstance(region.get("startLine"), int) else None
            target = mapper.target(t, line)
            if target.note and target.logical_id:
                summary.notes.append(f"{t.shown}: {target.note}: on {target.path}:{target.line} (build)")
            # A finding suppressed in one env's template (a checkov skip) stays apart from one that is not.
            suppressed = "suppressed" if result.get("suppressions") else ""
            key = "|".join(
                (tool, str(result.get("ruleId", "")), target.path, target.site_key, target.inner, suppressed)
            )
            if key not in merged:
                fresh = _moved(result, target, key)
                merged[key] = _Merged(fresh, _text(result), target, t.stack)
                out.append(fresh)
                summary.alerts += 1
                if target.note:
                    summary.builds += 1
                else:
                    summary.constructors += 1
            entry = merged[key]
            _add_env(entry, t, physical, line, target, _text(result))
        for entry in merged.values():
            _finish(entry)
        run["results"] = out
    return summary


def _moved(result: dict[str, Any], target: Target, key: str) -> dict[str, Any]:
    fresh = copy.deepcopy(result)
    fresh["locations"] = [
        {"physicalLocation": {"artifactLocation": {"uri": target.path}, "region": {"startLine": target.line}}}
    ]
    fresh["relatedLocations"] = [r for r in result.get("relatedLocations") or [] if isinstance(r, dict)]
    if target.via:
        fresh["relatedLocations"].append(
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": target.via[0]},
                    "region": {"startLine": target.via[1]},
                },
                "message": {"text": "the constructor this call reaches"},
            }
        )
    # The linters' own fingerprints (if any) hashed the template's lines; this one is the source's.
    fresh.pop("fingerprints", None)
    fresh["partialFingerprints"] = {FINGERPRINT: hashlib.sha256(key.encode()).hexdigest()}
    return fresh


def _add_env(
    entry: _Merged, t: _Template, physical: dict[str, Any], line: int | None, target: Target, text: str
) -> None:
    if t.env not in entry.envs:
        entry.envs[:] = sorted([*entry.envs, t.env])
    if target.logical_id and target.logical_id not in entry.ids:
        entry.ids[:] = sorted([*entry.ids, target.logical_id])
    entry.texts.setdefault(t.env, text)
    original = {k: v for k, v in physical.items() if k != "contextRegion"}
    if isinstance(original.get("region"), dict):
        original["region"] = {k: v for k, v in original["region"].items() if k != "snippet"}
    where = f"{t.shown}" + (f" line {line}" if line else "")
    entry.result["relatedLocations"].append(
        {"physicalLocation": original, "message": {"text": f"{t.env}: {where} ({target.what})"}}
    )
    entry.result.setdefault("properties", {})["kr-cfn"] = {
        "envs": entry.envs,
        "template": t.stack,
        **({"logicalIds": entry.ids} if entry.ids else {"item": target.what}),
    }


def _finish(entry: _Merged) -> None:
    target = entry.target
    texts = dict.fromkeys(entry.texts.values())
    body = entry.text if len(texts) == 1 else " / ".join(f"{env}: {text}" for env, text in entry.texts.items())
    what = f"resource{'s' if len(entry.ids) > 1 else ''} {', '.join(entry.ids)}" if entry.ids else target.what
    envs = ", ".join(sorted(entry.envs))
    note = f"; {target.note}" if target.note and target.logical_id else ""
    entry.result["message"] = {
        "text": f"{body} [{entry.stack} template, {what}; env{'s' if len(entry.envs) > 1 else ''} {envs}{note}]"
    }
    for i, related in enumerate(entry.result["relatedLocations"], start=1):
        related["id"] = i


def write_atomic(path: Path, log: dict[str, Any]) -> None:
    """Replace ``path`` with ``log`` as JSON, all or nothing."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(log, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(files: list[Path], repo: Path, out: Path) -> list[tuple[Path, Summary]]:
    """Read every log first (bad input changes nothing), then rewrite each in place."""
    logs = [(path, read_log(path)) for path in files]
    mapper = Mapper(repo.resolve(), out)
    done = []
    for path, log in logs:
        summary = rewrite(log, mapper)
        done.append((path, summary))
    for path, log in logs:
        try:
            write_atomic(path, log)
        except OSError as exc:
            raise SarifError(f"{path}: cannot write ({exc.strerror})") from None
    return done


def cmd_sarif(args: Any) -> int:
    """``kr-cfn sarif FILE...``: rewrite the SARIF files in place; one line per file."""
    repo, out = Path(args.repo), Path(args.out)
    try:
        if not (repo / "stacks").is_dir():
            raise SarifError(f"--repo {repo}: no stacks/ folder (expected the repository root)")
        done = run([Path(f) for f in args.files], repo, out)
    except (SarifError, DeployError) as exc:
        print(f"kr-cfn sarif: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path, s in done:
        merged = s.results - s.unchanged - s.alerts
        print(
            f"{path}: {s.results} result(s): {s.alerts} on the stack sources "
            f"({s.constructors} at a constructor, {s.builds} at a build function; "
            f"{merged} merged: same rule and source line), "
            f"{s.unchanged} kept where they were"
        )
        for note in dict.fromkeys(s.notes):
            print(f"  {note}")
        for template, why in s.kept.items():
            print(f"  {template}: {why}; its findings keep their location")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``kr-cfn sarif``."""
    p = sub.add_parser(
        "sarif",
        help="move cfn-lint/checkov SARIF findings from out/<env>/<stack>.yaml to the stacks/ source lines (in place)",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="SARIF 2.1.0 files (cfn-lint --format sarif, checkov -o sarif)"
    )
    p.add_argument("--repo", default=".", help="repository root holding stacks/ (default: .)")
    cliargs.add_build_dir(p, help="build output folder the SARIF paths may be relative to (default: out)")
    p.set_defaults(func=cmd_sarif)
