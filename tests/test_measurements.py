"""The measured numbers of docs/model.md: stored in docs/measurements.json, quoted through placeholders, reproducible."""

import json

import pytest

from vtrial import measurements
from vtrial.model import docs

STORED = docs.load_measurements()
DOC = docs.MODEL_DOC.read_text(encoding="utf-8")


def test_the_store_holds_every_declared_number_of_every_scenario_with_its_printed_text():
    assert list(STORED) == list(measurements.SCENARIOS)
    for name, sc in measurements.SCENARIOS.items():
        assert set(STORED[name]) == set(sc.formats), name
        for number, entry in STORED[name].items():
            assert entry["text"] == format(entry["value"], sc.formats[number]), (name, number)


def test_the_document_quotes_every_measured_number_and_only_those():
    quoted = docs.quoted_measurements(DOC)
    declared = {f"{name}.{number}" for name, sc in measurements.SCENARIOS.items() for number in sc.formats}
    assert set(quoted) == declared
    assert docs.render(DOC) == DOC  # each quoted text is the stored one (with the parameter values)


def test_render_refills_a_stale_measured_text_and_rejects_an_unknown_name():
    stale = "OS <!-- m:radium_crpc.os_placebo -->11.8<!-- /m --> months"
    text = STORED["radium_crpc"]["os_placebo"]["text"]
    assert docs.render(stale) == f"OS <!-- m:radium_crpc.os_placebo -->{text}<!-- /m --> months"
    assert docs.render(stale, {"radium_crpc.os_placebo": "12.0"}) == (
        "OS <!-- m:radium_crpc.os_placebo -->12.0<!-- /m --> months"
    )
    with pytest.raises(KeyError, match=r"unknown measurement 'radium_crpc\.no_such'"):
        docs.render("<!-- m:radium_crpc.no_such -->1<!-- /m -->")


def _tiny(value: float) -> measurements.Scenario:
    return measurements.Scenario("tiny", {"share": ".1%", "count": ",d"}, lambda: {"share": value, "count": 12345})


def test_measure_formats_each_number_and_refuses_undeclared_ones(monkeypatch):
    monkeypatch.setitem(measurements.SCENARIOS, "tiny", _tiny(0.1234))
    assert measurements.measure("tiny") == {
        "share": {"value": 0.1234, "text": "12.3%"},
        "count": {"value": 12345, "text": "12,345"},
    }
    bad = measurements.Scenario("bad", {"share": ".1%"}, lambda: {"share": 0.5, "extra": 1.0})
    monkeypatch.setitem(measurements.SCENARIOS, "bad", bad)
    with pytest.raises(RuntimeError, match=r"scenario 'bad' returned \['extra', 'share'\], declared \['share'\]"):
        measurements.measure("bad")


def test_the_command_stores_the_named_scenarios_keeps_the_others_and_rerenders_the_document(tmp_path, monkeypatch):
    store, doc = tmp_path / "measurements.json", tmp_path / "model.md"
    monkeypatch.setattr(docs, "MEASUREMENTS_JSON", store)
    monkeypatch.setattr(docs, "MODEL_DOC", doc)
    other = measurements.Scenario("other", {"x": ".2f"}, lambda: {"x": 2.0 / 3.0})
    monkeypatch.setattr(measurements, "SCENARIOS", {"tiny": _tiny(0.5), "other": other})
    doc.write_text("<!-- m:tiny.share -->?<!-- /m --> and <!-- m:other.x -->?<!-- /m -->\n", encoding="utf-8")
    measurements.main()
    assert (
        doc.read_text(encoding="utf-8")
        == "<!-- m:tiny.share -->50.0%<!-- /m --> and <!-- m:other.x -->0.67<!-- /m -->\n"
    )
    monkeypatch.setitem(measurements.SCENARIOS, "tiny", _tiny(0.25))
    monkeypatch.setitem(
        measurements.SCENARIOS, "other", measurements.Scenario("other", {"x": ".2f"}, lambda: {"x": 9.0})
    )
    measurements.main(["tiny"])  # only tiny re-measured: other keeps its stored 0.67
    assert json.loads(store.read_text(encoding="utf-8"))["other"]["x"]["text"] == "0.67"
    assert (
        doc.read_text(encoding="utf-8")
        == "<!-- m:tiny.share -->25.0%<!-- /m --> and <!-- m:other.x -->0.67<!-- /m -->\n"
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    with pytest.raises(SystemExit, match=r"unknown scenario\(s\) \['nope'\]; known: \['other', 'tiny'\]"):
        measurements.main(["nope"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(measurements.SCENARIOS))
def test_rerunning_a_scenario_reproduces_the_stored_numbers_exactly(name):
    """Same seeds and code: the same floats (stored by JSON's round-tripping repr), hence the same printed text."""
    assert measurements.measure(name) == STORED[name]
