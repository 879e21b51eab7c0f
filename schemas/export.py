"""Export the contracts as JSON Schema files (``healthstream schemas export``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.alerts import RiskAlert
from schemas.events import Event
from schemas.health import HealthUpdate

MODELS: dict[str, type[BaseModel]] = {
    "event": Event,
    "health_update": HealthUpdate,
    "risk_alert": RiskAlert,
}

DEFAULT_DIR = Path(__file__).parent / "json"


def render() -> dict[str, str]:
    """File name -> JSON text, deterministic so the committed files can be diffed."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in MODELS.items()
    }


def export(directory: Path = DEFAULT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in render().items():
        path = directory / file_name
        path.write_text(text)
        written.append(path)
    return written
