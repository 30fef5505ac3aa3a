"""The public image pins: one Dockerfile Dependabot updates, read as the services' defaults."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kr_cfn.config import qdrant
from kr_cfn.config.images import pins
from kr_cfn.config.service_defaults import DEFAULT_SERVICES
from kr_cfn.config.services import EcsConfig
from tests.conftest import ROOT

PIN_FILE = ROOT / "kr_cfn" / "config" / "images.Dockerfile"
_EXACT = re.compile(r"^v?\d+\.\d+\.\d+(-[a-z0-9]+)?$")


def test_every_public_default_comes_from_the_pin_file() -> None:
    assert pins() == {
        "qdrant": "qdrant/qdrant:v1.19.1-unprivileged",
        "redis": "redis:7.2.4-alpine",
        "prometheus": "prom/prometheus:v3.13.3",
        "grafana": "grafana/grafana:13.2.1",
        "aws-cli": "public.ecr.aws/aws-cli/aws-cli:2.36.4",
    }
    for use in ("qdrant", "redis", "prometheus", "grafana"):
        assert DEFAULT_SERVICES[use]["image"] == pins()[use]
    assert qdrant.Snapshots().image == EcsConfig().discovery_image == pins()["aws-cli"]
    for image in pins().values():
        assert _EXACT.match(image.rpartition(":")[2]), image  # no floating tag (latest, 7, 2.48)


def test_dependabot_updates_the_pins_actions_and_packages_one_group_each() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"docker", "github-actions", "pip"}
    for update in updates.values():
        ((_, group),) = update["groups"].items()
        assert group == {"patterns": ["*"]}  # every update of one kind in one pull request
    # Dependabot's docker fetcher reads files named like *dockerfile* in the directory it is given.
    assert ROOT / updates["docker"]["directory"].lstrip("/") == PIN_FILE.parent
    assert re.search("dockerfile|containerfile", PIN_FILE.name, re.IGNORECASE)
    ignored = {i["dependency-name"]: set(i["update-types"]) for i in updates["docker"]["ignore"]}
    minor = {"version-update:semver-major", "version-update:semver-minor"}
    assert ignored["qdrant/qdrant"] == minor  # storage compatible one minor back: minors by hand
    assert ignored["prom/prometheus"] == minor  # stays on its LTS line
    assert {p.split(":")[0] for p in pins().values()} >= set(ignored)
    assert Path(ROOT / "setup.cfg").is_file()  # the pip entry's manifest (install_requires, extras)
