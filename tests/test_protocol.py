"""Protocol schema: contract fields and defaults, resolution per primary, round trip, errors."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tomllib

import pytest
import yaml

from vtrial.errors import UserInputError
from vtrial.protocol import (
    DEFAULT_SEED,
    MAX_PROTOCOL_BYTES,
    apply_overrides,
    load_protocol,
    parse_protocol,
    primary_defaults,
    protocol_to_toml,
)
from vtrial.vocabulary import DEFAULT_SRE_TYPES

MINIMAL = {
    "trial": {"name": "t", "patients": 10, "horizon_months": 12},
    "cohort": {"primary": {"breast": 1.0, "prostate": 1.0}},
    "arm": [{"name": "placebo", "drug": "none"}],
}


def test_contract_example_loads_with_every_field(contract_path):
    p = load_protocol(contract_path)
    assert p.trial.name == "breast-denosumab-vs-zoledronic"
    assert (p.trial.design, p.trial.patients, p.trial.horizon_months, p.trial.seed) == ("parallel", 2046, 34.0, 2010)
    breast = p.cohort.by_primary["breast"]
    assert (breast.age_years.mean, breast.age_years.sd, breast.age_years.min, breast.age_years.max) == (57, 11, 18, 90)
    assert breast.ecog == [0.45, 0.50, 0.05]
    assert (breast.female_fraction, breast.prior_sre, breast.visceral_metastases) == (0.99, 0.37, 0.5)
    assert breast.lesions.mean == 4.0  # the contract's value, not the data-file default 5.7
    assert breast.creatinine_clearance_ml_min.max == 150.0
    assert p.cohort.eligibility.min_creatinine_clearance_ml_min == 30.0
    assert [a.name for a in p.arm] == ["denosumab", "zoledronic_acid", "anti-tgf-beta"]
    assert p.arm[0].stop_after_months == 24.0
    assert p.arm[2].mechanism.tgf_beta_inhibition == 0.6 and p.arm[2].mechanism.half_life_days == 14.0
    assert p.analysis.reference_arm == "zoledronic_acid"
    assert p.analysis.landmarks_months == [12, 24]


def test_defaults_are_those_of_the_contract():
    p = parse_protocol(MINIMAL, "test")
    assert (p.trial.design, p.trial.accrual_months, p.trial.dropout_per_year, p.trial.seed) == (
        "parallel", 0.0, 0.0, DEFAULT_SEED)
    arm = p.arm[0]
    assert (arm.allocation, arm.calcium_vitamin_d, arm.renal_adjustment) == (1.0, True, True)
    assert arm.dose_mg is None and arm.every_weeks is None and arm.stop_after_months is None
    assert p.analysis.reference_arm == "placebo"
    assert p.analysis.sre_types == list(DEFAULT_SRE_TYPES)
    assert p.analysis.sre_window_days == 21.0
    assert p.analysis.landmarks_months == [12.0]  # the default [12, 24] within the 12-month horizon
    assert (p.cohort.eligibility.min_creatinine_clearance_ml_min, p.cohort.eligibility.max_ecog) == (0.0, 2)


def test_profiles_resolve_data_file_then_cohort_then_by_primary():
    data = {**MINIMAL, "cohort": {
        "primary": {"breast": 1.0, "prostate": 1.0},
        "age_years": {"mean": 65.0},
        "female_fraction": 0.7,
        "by_primary": {"prostate": {"age_years": {"sd": 5.0}}},
    }}
    p = parse_protocol(data, "test")
    breast, prostate = p.cohort.by_primary["breast"], p.cohort.by_primary["prostate"]
    # cohort-wide mean over the data-file table; the other figures stay the data file's
    assert (breast.age_years.mean, breast.age_years.sd) == (65.0, primary_defaults("breast")["age_years"]["sd"])
    assert (prostate.age_years.mean, prostate.age_years.sd) == (65.0, 5.0)
    assert breast.female_fraction == 0.7
    assert prostate.female_fraction == 0.0  # prostate patients are always male
    assert prostate.lesions.mean == 4.8  # data file (bone-scan series, targets.csv NH-20)


def test_resolved_toml_round_trips(root, contract_path):
    for path in [contract_path, *sorted((root / "protocols").glob("*.toml"))]:
        p = load_protocol(path)
        text = protocol_to_toml(p)
        assert parse_protocol(tomllib.loads(text), "resolved") == p
        # every default is written out
        resolved = tomllib.loads(text)
        assert {"seed", "design", "accrual_months", "dropout_per_year"} <= set(resolved["trial"])
        assert set(resolved["cohort"]["by_primary"]) == set(p.cohort.primary)


def test_yaml_gives_the_same_protocol_as_toml(tmp_path, root):
    source = root / "protocols" / "example.toml"
    data = tomllib.loads(source.read_text())
    yaml_path = tmp_path / "example.yaml"
    yaml_path.write_text(yaml.safe_dump(data))
    assert load_protocol(yaml_path) == load_protocol(source)


def test_overrides_replace_patients_and_seed_only():
    p = parse_protocol(MINIMAL, "test")
    q = apply_overrides(p, patients=50, seed=3)
    assert (q.trial.patients, q.trial.seed) == (50, 3)
    assert q.cohort == p.cohort and p.trial.patients == 10
    with pytest.raises(UserInputError, match="--patients"):
        apply_overrides(p, patients=0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"trial": {**MINIMAL["trial"], "patients": True}}, "trial.patients"),
        ({"arm": [{"name": "a", "drug": "denosumab", "dose_mg": 120.0, "every_weeks": "4"}]}, "arm[0].every_weeks"),
        ({"cohort": {"primary": {"breast": 1.0}, "sites": {"pelvis": 2.0}}}, "cohort.sites.pelvis"),
        ({"cohort": {"primary": {"breast": 1.0}, "lesions": {"mean": 0.5}}}, "cohort.lesions.mean"),
        ({"analysis": {"landmarks_months": [24, 12]}}, "analysis.landmarks_months"),
        ({"analysis": {"sre_types": ["hypercalcaemia", "hypercalcaemia"]}}, "analysis.sre_types"),
    ],
)
def test_errors_name_the_dotted_field(change, field):
    with pytest.raises(UserInputError) as info:
        parse_protocol({**MINIMAL, **change}, "dict")
    assert info.value.field == field
    assert info.value.file == "dict" and info.value.fix


def test_unknown_key_gives_line_and_closest_key(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[trial]\nname = "t"\npatients = 5\nhorizon_months = 12\nsed = 4\n'
                    '[cohort]\nprimary = { lung = 1.0 }\n[[arm]]\nname = "a"\ndrug = "none"\n')
    with pytest.raises(UserInputError) as info:
        load_protocol(path)
    assert (info.value.field, info.value.line) == ("trial.sed", 5)
    assert "Did you mean 'seed'?" in str(info.value)


# --------------------------------------------------------------------------------------------
# reading the file: regular files up to 1 MiB, a byte-order mark, YAML 1.2 (issue 17, defects 6, 11)

MINIMAL_TOML = '[trial]\nname = "t"\npatients = 10\nhorizon_months = 12\n\n[cohort]\nprimary = { breast = 1.0 }\n\n' \
               '[[arm]]\nname = "placebo"\ndrug = "none"\n'
MINIMAL_YAML = "trial:\n  name: t\n  patients: 10\n  horizon_months: 12\ncohort:\n  primary: {breast: 1.0}\n" \
               "arm:\n  - name: placebo\n    drug: none\n"


def _check_process(path: str) -> subprocess.CompletedProcess:
    """`vtrial check PATH` with 20 s and 1 GiB of address space at most (an endless read fails fast)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "vtrial.cli", "check", path], capture_output=True, text=True,
                          timeout=20, preexec_fn=limit)


def test_a_fifo_is_refused_instead_of_waiting_forever(tmp_path):
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    result = _check_process(str(fifo))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {fifo}: is not a regular file (a pipe, a device or a socket)")


def test_an_endless_device_is_refused_instead_of_filling_the_memory():
    result = _check_process("/dev/zero")
    assert result.returncode == 2
    assert result.stderr.startswith("error: /dev/zero: is not a regular file") and "Traceback" not in result.stderr


def test_files_up_to_one_mebibyte_are_read_and_larger_ones_refused(tmp_path):
    exact = tmp_path / "exact.toml"
    exact.write_text(MINIMAL_TOML + "#" * (MAX_PROTOCOL_BYTES - len(MINIMAL_TOML) - 1) + "\n")
    assert exact.stat().st_size == MAX_PROTOCOL_BYTES == 1_048_576
    assert load_protocol(exact).trial.patients == 10
    larger = tmp_path / "larger.toml"
    larger.write_text(MINIMAL_TOML + "#" * (MAX_PROTOCOL_BYTES - len(MINIMAL_TOML)) + "\n")
    with pytest.raises(UserInputError, match=r"larger.toml: is larger than 1 MiB \(1,048,576 bytes\)"):
        load_protocol(larger)


@pytest.mark.parametrize(("suffix", "text"), [(".toml", MINIMAL_TOML), (".yaml", MINIMAL_YAML)])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path, suffix, text):
    plain, marked = tmp_path / f"plain{suffix}", tmp_path / f"marked{suffix}"
    plain.write_text(text, encoding="utf-8")
    marked.write_text(text, encoding="utf-8-sig")
    assert marked.read_bytes()[:3] == b"\xef\xbb\xbf"
    assert load_protocol(marked) == load_protocol(plain)


def test_a_yaml_key_given_twice_is_refused_naming_the_key_and_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(MINIMAL_YAML.replace("  patients: 10\n", "  patients: 10\n  patients: 2000\n"))
    with pytest.raises(UserInputError) as info:
        load_protocol(path)
    assert str(info.value) == (f"{path}:4: is not valid YAML: the key 'patients' is given twice "
                               "Fix: remove one of the two (the last would otherwise win silently)")


@pytest.mark.parametrize(("value", "patients"), [("0100", 100), ("+250", 250), ("0x10", 16), ("0o17", 15)])
def test_yaml_integers_follow_yaml_1_2(tmp_path, value, patients):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_YAML.replace("patients: 10", f"patients: {value}"))
    assert load_protocol(path).trial.patients == patients  # YAML 1.1 reads 0100 as octal 64


@pytest.mark.parametrize("value", ["1:40", "1_000"])
def test_yaml_1_1_only_numbers_are_text(tmp_path, value):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_YAML.replace("patients: 10", f"patients: {value}"))
    with pytest.raises(UserInputError, match="trial.patients"):  # YAML 1.1: 1:40 is 100 (base 60), 1_000 is 1000
        load_protocol(path)


def test_yaml_floats_follow_yaml_1_2(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL_YAML.replace("horizon_months: 12", "horizon_months: 1.2e1"))
    assert load_protocol(path).trial.horizon_months == 12.0  # YAML 1.1 (PyYAML) reads 1.2e1 as text
