"""The JSON report follows its committed JSON Schema (draft 2020-12), and the schema is strict where
the issue says so: control IDs, statuses, grades, kinds."""

from __future__ import annotations

import copy
import json
from importlib import resources

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from scanner.baseline import load_baseline
from scanner.models import SCHEMA_VERSION
from scanner.reporters.json_report import JsonReporter, load_schema, validate
from scanner.reporters.json_schema import render
from tests.testbed.reports import finding, make_report, make_target


@pytest.fixture(scope="module")
def document():
    return json.loads(JsonReporter().render(make_report()))


def test_schema_is_package_data_and_a_valid_2020_12_schema():
    text = resources.files("scanner").joinpath("schemas", "report.schema.json").read_text("utf-8")
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert load_schema() == schema


def test_the_committed_schema_is_generated_from_the_report_models():
    """Regenerate with: python -m scanner.reporters.json_schema > scanner/schemas/report.schema.json"""
    text = resources.files("scanner").joinpath("schemas", "report.schema.json").read_text("utf-8")
    assert text == render()


def test_report_validates(document):
    validate(document)


def test_engine_schema_version_is_accepted():
    given = make_report().model_copy(update={"schema_version": SCHEMA_VERSION})
    validate(json.loads(JsonReporter().render(given)))


def test_empty_report_validates():
    validate(json.loads(JsonReporter().render(make_report().model_copy(update={"targets": ()}))))


def test_every_baseline_control_id_is_accepted():
    pattern = load_schema()["$defs"]["control_id"]
    ids = [c.id for c in load_baseline().controls]
    assert len(ids) == 31
    for cid in ids:
        jsonschema.validate(cid, pattern)


@pytest.mark.parametrize("cid", ["T0", "T7", "H0", "H12", "C5", "E5", "D7", "X1", "t1", "T1 ", "H01"])
def test_control_ids_outside_the_spec_are_refused(document, cid):
    doc = copy.deepcopy(document)
    doc["targets"][0]["controls"][0]["id"] = cid
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@pytest.mark.parametrize(("path", "value"), [
    (("controls", 0, "status"), "failed"),
    (("findings", 0, "status"), "ok"),
    (("grade",), "A-"),
    (("grade",), "G"),
    (("kind",), "host"),
    (("score",), 101),
    (("score",), "87"),
    (("controls", 0, "severity"), "urgent"),
    (("addresses",), "127.0.0.1"),
    (("findings", 0, "evidence"), "text"),
])
def test_bad_values_are_refused(document, path, value):
    doc = copy.deepcopy(document)
    node = doc["targets"][0]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@pytest.mark.parametrize("key", ["member", "kind", "target", "addresses", "grade", "score", "controls",
                                 "findings", "errors"])
def test_target_keys_are_required(document, key):
    doc = copy.deepcopy(document)
    del doc["targets"][0][key]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@pytest.mark.parametrize("key", ["schema_version", "tool", "baseline", "generated_at", "targets"])
def test_top_level_keys_are_required(document, key):
    doc = copy.deepcopy(document)
    del doc[key]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_extra_fields_are_allowed(document):
    doc = copy.deepcopy(document)
    doc["future"] = {"x": 1}
    doc["targets"][0]["history"] = []
    doc["targets"][0]["controls"][0]["trend"] = "up"
    validate(doc)


def test_all_grades_statuses_and_kinds_validate():
    grading = load_baseline().grading
    grades = {*grading.order, grading.undecided_grade}
    assert grades == {"A+", "A", "B", "C", "D", "F", "?"}
    base = make_target("endpoint", "https://a.example/", {})
    targets = [base.model_copy(update={"grade": g}) for g in grades]
    targets.append(make_target("domain", "a.example", {"D5": [finding("dns-mta-sts", "D5", "not_applicable",
                                                                      "No MX")]}))
    validate(json.loads(JsonReporter().render(make_report(*targets))))


def test_hostile_evidence_values_stay_valid_json():
    """Bytes, NaN, non-string keys and deep nesting in evidence never break the document."""
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["d"] = {}
        node = node["d"]
    t = make_target("endpoint", "https://a.example/", {
        "H10": [finding("http-version-disclosure", "H10", "fail", "Banner", evidence={
            "raw": b"\x00\xff<script>", "nan": float("nan"), "inf": float("inf"), "keys": {3: "int key"},
            "tuple": (1, "2"), "deep": deep})]})
    text = JsonReporter().render(make_report(t))
    doc = json.loads(text)  # strict JSON: would fail on NaN
    validate(doc)
    ev = doc["targets"][0]["controls"][next(i for i, c in enumerate(doc["targets"][0]["controls"])
                                            if c["id"] == "H10")]["findings"][0]["evidence"]
    assert ev["raw"] == "\x00\ufffd<script>" and ev["nan"] is None and ev["keys"] == {"3": "int key"}
