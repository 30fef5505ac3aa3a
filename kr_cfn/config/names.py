"""Physical names AWS must accept: the name prefix and tags, checked against each service's rules.

The prefix (``name_prefix``, default ``<project>-<env>``) starts every physical name; a prefix
that one service refuses fails the first deploy, so it is refused at build time instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kr_cfn.config.base import Problem

if TYPE_CHECKING:
    from kr_cfn.config import EnvConfig

# (name suffix, maximum length, what it names, doc), for names that cannot hold two hyphens in a row.
# RDS DBInstanceIdentifier: "1 to 63 letters, numbers, or hyphens ... can't end with a hyphen or contain
# two consecutive hyphens" https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html
# ElastiCache ReplicationGroupId: "1 to 40 alphanumeric characters or hyphens ... cannot end with a hyphen or
# contain two consecutive hyphens" https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/API_CreateReplicationGroup.html
_STRICT_NAMES = (
    ("postgres", 63, "the RDS instance identifier", None),
    ("redis", 40, "the ElastiCache replication group id", ("redis", "elasticache")),
)

# Tags: "Maximum key length: 128 Unicode characters ... Maximum value length: 256 Unicode characters ...
# letters, numbers, and spaces representable in UTF-8, and the following characters: _ . : / = + - @"
# (and at most 50 tags a resource) https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html
_TAG_PUNCTUATION = set("_.:/=+-@ ")
TAG_KEY_MAX, TAG_VALUE_MAX, TAGS_MAX = 128, 256, 50


def _tag_text_ok(text: str) -> bool:
    return all(c.isalnum() or c in _TAG_PUNCTUATION for c in text)


def check_names(cfg: EnvConfig) -> list[Problem]:
    """Problems with the name prefix (per the services that use it) and with the extra tags."""
    problems: list[Problem] = []
    key = "name_prefix" if cfg.name_prefix else "project" if "--" in cfg.project else "env"
    for suffix, limit, what, only in _STRICT_NAMES:
        if only is not None and getattr(cfg.data, only[0]) != only[1]:
            continue
        name = cfg.names(suffix)
        if "--" in name:
            problems.append((key, f"{name!r} ({what}) must not hold two hyphens in a row"))
        elif len(name) > limit:
            problems.append((key, f"{name!r} ({what}) has {len(name)} characters, the limit is {limit}"))
    total = len(cfg.names.tags(cfg.tags) | {"Name": ""})
    if total > TAGS_MAX:
        problems.append(
            ("tags", f"{total} tags with kr_cfn's own (Project, Environment, ManagedBy, Name), max {TAGS_MAX}")
        )
    for tag, value in cfg.tags.items():
        if not 1 <= len(tag) <= TAG_KEY_MAX or not _tag_text_ok(tag):
            problems.append((f"tags.{tag}", f"a tag key has 1-{TAG_KEY_MAX} letters, digits, spaces and _.:/=+-@"))
        if len(value) > TAG_VALUE_MAX or not _tag_text_ok(value):
            problems.append(
                (f"tags.{tag}", f"{value!r}: a tag value has 0-{TAG_VALUE_MAX} letters, digits, spaces and _.:/=+-@")
            )
    return problems
