"""JSON Schema of the wire format for publishers, generated from the models.

The checked-in ``wire-v1.schema.json`` next to this module is the published copy; a unit test
fails when it drifts from the models. Regenerate it with::

    .venv/bin/python -c 'import ingest.events.jsonschema as s; s.write_json_schema()'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from ingest.events.common import WIRE_VERSION
from ingest.events.models import EVENT_ADAPTER, KINDS

SCHEMA_PATH: Final = Path(__file__).with_name(f"wire-v{WIRE_VERSION}.schema.json")
SCHEMA_ID: Final = f"urn:mesh-ingest:wire:v{WIRE_VERSION}"

_DESCRIPTION = (
    "A Kafka record value published by a mesh node: one event object, or a JSON array of event "
    "objects (each element is validated and stored on its own). The record key, when set, is "
    "the reporting node's UUID as text. Every event carries kind, node_id and ts; v defaults to "
    f"{WIRE_VERSION} and event_id is for tracing only. Unknown fields are ignored. Enumerations "
    "are case-sensitive. Numbers are JSON numbers (never strings); integers must be whole. "
    "Timestamps are RFC 3339 strings with an offset, or integer Unix epoch milliseconds. "
    "Kinds: " + ", ".join(KINDS) + "."
)


def export_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one record value: an event or an array of events."""
    event_schema = EVENT_ADAPTER.json_schema(mode="validation")
    definitions: dict[str, Any] = event_schema.pop("$defs")
    definitions["Event"] = {
        "title": "Event",
        "description": "One event; its kind selects the fields that apply.",
        **event_schema,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"mesh-ingest wire format, version {WIRE_VERSION}",
        "description": _DESCRIPTION,
        "anyOf": [
            {"$ref": "#/$defs/Event"},
            {"type": "array", "items": {"$ref": "#/$defs/Event"}},
        ],
        "$defs": definitions,
    }


def render_json_schema() -> str:
    """The export as the text of the checked-in file (stable, so diffs stay readable)."""
    return json.dumps(export_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_json_schema(path: Path | str = SCHEMA_PATH) -> None:
    """Write the export to ``path`` (by default the checked-in copy)."""
    Path(path).write_text(render_json_schema(), encoding="utf-8")
