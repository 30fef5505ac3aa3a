"""The usage file (``kr-cfn cost --usage FILE``): usage figures per resource, keyed by stack and logical id.

Like infracost's ``infracost-usage.yml``: a figure here replaces the ``cost:`` default for that one
resource. ``--sync-usage FILE`` writes the skeleton: every usage figure the estimate reads, with its default.

    version: 1
    resources:
      DataStack:          # stack: root, bootstrap, env or the nested stack's logical id
        DataBucket:       # logical id (env: DataTransferOut, SecretsManagerApi)
          gb: 40          # the figure's name, as --sync-usage writes it
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kr_cfn.cost.items import Overrides
from kr_cfn.cost.prices import valid_usd

VERSION = 1


class UsageError(Exception):
    """A usage file that cannot be used: one line naming the file and the key."""


def load(path: Path) -> Overrides:
    """The figures of the usage file at ``path``, by (stack, logical id)."""
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: byte {exc.start}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{path}: line {mark.line + 1 if mark else '?'}: invalid YAML") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("resources", {}), dict):
        raise UsageError(f"{path}: expected 'version: {VERSION}' and a 'resources' mapping of stack -> logical id")
    out: Overrides = {}
    for stack, resources in (data.get("resources") or {}).items():
        if not isinstance(resources, dict):
            raise UsageError(f"{path}: resources.{stack}: expected a mapping of logical id -> figures")
        for sid, figures in resources.items():
            if not isinstance(figures, dict):
                raise UsageError(f"{path}: resources.{stack}.{sid}: expected a mapping of figure name -> number")
            for name, value in figures.items():
                if not valid_usd(value):
                    raise UsageError(
                        f"{path}: resources.{stack}.{sid}.{name}: {value!r} is not a finite, non-negative number"
                    )
            out[(str(stack), str(sid))] = {str(k): float(v) for k, v in figures.items()}
    return out


def check(path: Path, overrides: Overrides, used: list[tuple[str, str, str, float]]) -> None:
    """Refuse a figure the estimate never reads (a typo, a removed resource), naming it."""
    known = {(s, r, n) for s, r, n, _ in used}
    for (stack, sid), figures in overrides.items():
        for name in figures:
            if (stack, sid, name) not in known:
                names = sorted({n for s, r, n, _ in used if (s, r) == (stack, sid)})
                expected = f"figures of this resource: {', '.join(names)}" if names else "no such priced resource"
                raise UsageError(f"{path}: resources.{stack}.{sid}.{name}: not read by the estimate ({expected})")


def skeleton(used: list[tuple[str, str, str, float]], existing: Overrides) -> str:
    """The usage file with every figure the estimate reads: the existing file's value, else the default."""
    resources: dict[str, dict[str, dict[str, float]]] = {}
    for stack, sid, name, default in used:
        value = existing.get((stack, sid), {}).get(name, default)
        resources.setdefault(stack, {}).setdefault(sid, {})[name] = round(value, 6)
    head = (
        "# kr-cfn cost usage file: per-resource usage figures (stack -> logical id -> figure).\n"
        "# Written by kr-cfn cost --sync-usage with the cost: defaults; edit a figure to override it.\n"
    )
    return head + yaml.safe_dump({"version": VERSION, "resources": resources}, sort_keys=False)
