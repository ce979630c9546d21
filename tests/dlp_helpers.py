"""Small policies written on the fly for DLP tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.dlp import Engine, load_policy_set


def rule(rule_id: str, detectors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base = {
        "id": rule_id,
        "description": f"test rule {rule_id}",
        "severity": "high",
        "action": "redact",
        "detectors": detectors,
    }
    base.update(extra)
    return base


def write_policy(directory: Path, rules: list[dict[str, Any]], name: str = "policy", **extra: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"id": name, "description": f"test policy {name}", **extra, "rules": rules}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def engine_for(
    directory: Path, rules: list[dict[str, Any]], env: dict[str, str] | None = None, **extra: Any
) -> Engine:
    return Engine(load_policy_set(write_policy(directory, rules, **extra)), hash_key_env=env)
