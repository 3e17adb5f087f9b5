"""The analysis of a run folder: read its tables and protocol, write ``summary.json`` atomically."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from vtrial.analysis.summary import summarise, to_json
from vtrial.errors import ProtocolWarning, UserInputError
from vtrial.store import atomic_write_text

#: Columns the contract guarantees in ``patients.parquet``.
PATIENT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "arm",
    "primary",
    "age_years",
    "sex",
    "ecog",
    "creatinine_clearance_ml_min",
    "n_lesions",
    "followup_days",
    "died",
    "first_sre_day",
    "n_sre",
)
#: Columns the contract guarantees in ``events.parquet``.
EVENT_COLUMNS: tuple[str, ...] = ("patient_id", "arm", "day", "type", "site", "counted")
#: Columns the contract guarantees in ``markers.parquet`` (version 2; older run folders have no such file).
MARKER_COLUMNS: tuple[str, ...] = ("patient_id", "arm", "week", "untx_nmol_mmol", "bsap_ug_l", "calcium_mmol_l")

_FIX = "give the folder written by `vtrial run PROTOCOL`, or run the protocol again with --force"


def _require(run_dir: Path, name: str) -> Path:
    """Path of a file the run folder must hold; ``UserInputError`` naming it when absent."""
    if not run_dir.is_dir():
        raise UserInputError("is not a run folder (no such directory)", file=run_dir, fix=_FIX)
    path = run_dir / name
    if not path.is_file():
        raise UserInputError(f"the run folder has no {name}", file=path, fix=_FIX)
    return path


def read_table(run_dir: str | Path, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a Parquet table of the run folder and check it has the contract's columns."""
    path = _require(Path(run_dir), name)
    try:
        table = pd.read_parquet(path)
    except Exception as problem:  # pyarrow raises several types for a damaged file
        raise UserInputError(f"cannot be read as Parquet ({problem})", file=path, fix=_FIX) from problem
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserInputError(f"lacks the column(s) {missing}", file=path, fix=_FIX)
    return table


def read_protocol(run_dir: str | Path):
    """The run's resolved ``protocol.toml``, loaded and validated by :func:`vtrial.protocol.load_protocol`.

    Its plausibility warnings are not repeated: they were shown when the protocol was loaded to run.
    """
    from vtrial.protocol import load_protocol

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtocolWarning)
        return load_protocol(_require(Path(run_dir), "protocol.toml"))


def analysis_settings(protocol) -> dict:
    """The plain settings :func:`summarise` needs, taken from a resolved protocol."""
    return {
        "trial": protocol.trial.name,
        "design": protocol.trial.design,
        "arms": [arm.name for arm in protocol.arm],
        "reference_arm": protocol.analysis.reference_arm,
        "sre_types": list(protocol.analysis.sre_types),
        "sre_window_days": protocol.analysis.sre_window_days,
        "landmarks_months": list(protocol.analysis.landmarks_months),
        "horizon_months": protocol.trial.horizon_months,
    }


def summarise_run(run_dir: str | Path) -> dict:
    """Analyse a run folder from its Parquet tables and resolved protocol alone."""
    settings = analysis_settings(read_protocol(run_dir))
    patients = read_table(run_dir, "patients.parquet", PATIENT_COLUMNS)
    events = read_table(run_dir, "events.parquet", EVENT_COLUMNS)
    has_markers = (Path(run_dir) / "markers.parquet").is_file()
    markers = read_table(run_dir, "markers.parquet", MARKER_COLUMNS) if has_markers else None
    return summarise(patients, events, **settings, markers=markers)


def write_summary(run_dir: str | Path, summary: dict | None = None) -> Path:
    """Write ``summary.json`` of a run folder (rebuilt from its tables if not given); returns its path."""
    summary = summarise_run(run_dir) if summary is None else summary
    path = Path(run_dir) / "summary.json"
    atomic_write_text(path, to_json(summary))
    return path
