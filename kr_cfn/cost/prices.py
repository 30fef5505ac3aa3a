"""Price data: one JSON file per region (``data/<region>.json``), each figure with its source page."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"


class PriceError(Exception):
    """A price file that cannot be used: one line naming the file, the key and what was expected."""


@dataclass(frozen=True)
class Price:
    """One figure: USD per unit, where it was read, and whether it is another region's figure standing in."""

    usd: float
    source: str
    stand_in: str | None = None
    file: str = ""
    """The price file the figure comes from."""
    read: str | None = None
    """The figure's date, ISO format: its ``page_date`` when that is a date, else the file's ``read`` date.

    A ``page_date`` of a month (``2026-06``) stands for the month's first day.
    """


@dataclass
class PriceBook:
    """The figures of one region, after ``same_as`` stand-ins and ``--prices`` overrides."""

    region: str
    figures: dict[str, Price] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def get(self, key: str) -> Price | None:
        """The figure for ``key``, or None when no file gives one."""
        return self.figures.get(key)


class _Bare(str):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a price file: not JSON numbers (RFC 8259, section 6)."""


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PriceError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise PriceError(f"{path}: byte {exc.start}: not UTF-8 text") from None
    try:
        # json reads NaN and Infinity as floats unless told otherwise: kept as text, refused per key below
        data = json.loads(text, parse_constant=_Bare)
    except json.JSONDecodeError as exc:
        raise PriceError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise PriceError(f"{path}: expected an object with a 'prices' object")
    read = data.get("read")
    if read is not None:
        try:
            date.fromisoformat(str(read))
        except ValueError:
            raise PriceError(f"{path}: read: {read!r} is not a date (YYYY-MM-DD)") from None
    return data


def _dated(entry: dict[str, Any], read: str | None) -> str | None:
    """The date a figure stands for: its page's date when it is one, else the file's read date."""
    page = str(entry.get("page_date", ""))
    for text in (page, f"{page}-01"):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            continue
    return read


def valid_usd(value: Any) -> bool:
    """A price: a finite, non-negative JSON number (a boolean is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _figures(path: Path, data: dict[str, Any], stand_in: str | None = None) -> dict[str, Price]:
    out: dict[str, Price] = {}
    read = str(data["read"]) if data.get("read") is not None else None
    for key, entry in data["prices"].items():
        if not isinstance(entry, dict) or not valid_usd(entry.get("usd")):
            got = entry.get("usd") if isinstance(entry, dict) else entry
            shown = got if isinstance(got, _Bare) else json.dumps(got)
            raise PriceError(
                f"{path}: prices.{key}.usd: {shown} is not a finite, non-negative number "
                "(USD per unit; a boolean or a string is not one)"
            )
        if not isinstance(entry.get("source"), str) or not entry["source"]:
            raise PriceError(f"{path}: prices.{key}: expected 'source', the page the figure was read from")
        out[key] = Price(float(entry["usd"]), entry["source"], stand_in, str(path), _dated(entry, read))
    return out


def load(region: str, override: Path | None = None, data_dir: Path = DATA_DIR) -> PriceBook:
    """The price book of ``region``, with the figures of ``override`` (``--prices FILE``) on top."""
    book = PriceBook(region)
    path = data_dir / f"{region}.json"
    if path.exists():
        data = _read(path)
        book.files.append(str(path))
        same_as = data.get("same_as")
        if isinstance(same_as, dict) and same_as.get("region"):
            other = data_dir / f"{same_as['region']}.json"
            book.figures.update(_figures(other, _read(other), stand_in=str(same_as["region"])))
            book.files.append(str(other))
        book.figures.update(_figures(path, data))
    if override is not None:
        data = _read(override)
        if data.get("region") not in (None, region):
            raise PriceError(f"{override}: region: {data['region']!r}, but the environment deploys to {region}")
        book.files.append(str(override))
        book.figures.update(_figures(override, data))
    if not book.files:
        have = ", ".join(sorted(p.stem for p in data_dir.glob("*.json")))
        raise PriceError(f"no price data for region {region} (have: {have}); give one with --prices FILE")
    return book


@functools.cache
def shipped_keys(region: str) -> frozenset[str] | None:
    """Keys the shipped price data gives for ``region`` (stand-ins included); None without a file."""
    try:
        return frozenset(load(region).figures)
    except PriceError:
        return None
