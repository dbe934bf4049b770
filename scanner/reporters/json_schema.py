"""The JSON report's JSON Schema, generated from the pydantic report models (``scanner.models``) and the
baseline's data (control IDs, areas, grades). The committed ``scanner/schemas/report.schema.json`` is
this output; regenerate it after changing a report model:

    python -m scanner.reporters.json_schema > scanner/schemas/report.schema.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from scanner.baseline import Baseline, load_baseline
from scanner.models import SCHEMA_MAJOR, Report

DESCRIPTION = ("Result of one pledgescan run: per target, the baseline's controls with their status, the "
               "findings behind them and the grade. Required fields are stable; producers may add fields "
               "(consumers must ignore unknown ones).")


OMITTED_WHEN_EMPTY = ("comparison",)  # top-level fields of stored runs' reports only


def _open(node: Any) -> Any:
    """Drop what pydantic adds but the format does not promise (closed objects, per-field titles); point
    the baseline's values (``x-baseline`` marks in ``scanner.models``) to their $defs."""
    if isinstance(node, dict):
        if "x-baseline" in node:
            return {"$ref": f"#/$defs/{node['x-baseline']}"}
        out = {k: _open(v) for k, v in node.items() if k != "additionalProperties" or v is not False}
        if isinstance(out.get("properties"), dict):
            for prop in out["properties"].values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        return out
    if isinstance(node, list):
        return [_open(v) for v in node]
    return node


def report_schema(baseline: Baseline | None = None) -> dict[str, Any]:
    """Draft 2020-12 schema of ``JsonReporter``'s document under ``baseline`` (the bundled one)."""
    b = baseline or load_baseline()
    body = _open(Report.model_json_schema(mode="serialization"))
    # written only when there is something to say (JsonReporter omits an empty one)
    body["required"] = [name for name in body.get("required", []) if name not in OMITTED_WHEN_EMPTY]
    defs = body.pop("$defs", {})
    defs.update({
        "control_id": {"description": f"A control of the {b.title} (version {b.version}).",
                       "enum": [c.id for c in b.controls]},
        "area": {"enum": list(b.areas)},
        "grade": {"description": "Best to worst; the last means nothing could be decided.",
                  "enum": [*b.grading.order, b.grading.undecided_grade]},
    })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:pledgescan:schema:report:{SCHEMA_MAJOR}",
        **body,
        "title": "pledgescan report",
        "description": DESCRIPTION,
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    return json.dumps(report_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
