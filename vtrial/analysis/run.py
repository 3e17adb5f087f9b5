"""The analysis of a run folder: read its tables and protocol, write ``summary.json`` atomically."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vtrial.analysis.summary import coded, headline, summarise, to_json, uncertainty_block
from vtrial.errors import ProtocolWarning, UserInputError
from vtrial.store import atomic_write_text
from vtrial.vocabulary import EVENT_TYPES, PRIMARIES

_FIX = "give the folder written by `vtrial run PROTOCOL`, or run the protocol again with --force"
#: The run folder's file of the parameter draws' results (``vtrial run --parameter-draws K``, :mod:`vtrial.uncertainty`).
DRAWS_FILE = "parameter-draws.json"

#: Parquet types of each kind of column.
_KINDS = {
    "integer": pa.types.is_integer,
    "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t),
    "boolean": pa.types.is_boolean,
    "text": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
}


@dataclass(frozen=True)
class Column:
    """A contract column of a run table: its kind and the values it may hold.

    ``kind`` is ``integer``, ``number``, ``boolean`` or ``text``; numbers must be finite and at
    least ``minimum``; NaN is allowed only when ``nan_means`` says what it stands for; text must
    be one of ``allowed`` when given. Nothing may be null.
    """

    name: str
    kind: str
    minimum: float | None = None
    nan_means: str | None = None
    allowed: tuple[str, ...] | None = None

    def describe(self) -> str:
        """What the column must hold, in words (the fix of an error message)."""
        text = {"integer": "integers", "number": "finite numbers", "boolean": "true/false values", "text": "text"}[
            self.kind
        ]
        if self.minimum is not None:
            text += f" >= {self.minimum:g}"
        if self.allowed is not None:
            text += f" from {list(self.allowed)}"
        if self.nan_means is not None:
            text += f" (NaN: {self.nan_means})"
        return text


#: The contract columns of ``patients.parquet``; each (patient_id, arm) appears once.
PATIENT_SCHEMA: tuple[Column, ...] = (
    Column("patient_id", "integer"),
    Column("arm", "text"),
    Column("primary", "text", allowed=PRIMARIES),
    Column("age_years", "number", minimum=0),
    Column("sex", "text"),
    Column("ecog", "integer", minimum=0),
    Column("creatinine_clearance_ml_min", "number", minimum=0),
    Column("n_lesions", "integer", minimum=0),
    Column("followup_days", "number", minimum=0),
    Column("died", "boolean"),
    Column("first_sre_day", "number", minimum=0, nan_means="no SRE"),
    Column("n_sre", "integer", minimum=0),
)
#: The contract columns of ``events.parquet``.
EVENT_SCHEMA: tuple[Column, ...] = (
    Column("patient_id", "integer"),
    Column("arm", "text"),
    Column("day", "number", minimum=0),
    Column("type", "text", allowed=EVENT_TYPES),
    Column("site", "text"),
    Column("counted", "boolean"),
)
#: The contract columns of ``markers.parquet`` (version 2; older run folders have no such file).
MARKER_SCHEMA: tuple[Column, ...] = (
    Column("patient_id", "integer"),
    Column("arm", "text"),
    Column("week", "integer", minimum=0),
    Column("untx_nmol_mmol", "number", minimum=0),
    Column("bsap_ug_l", "number", minimum=0),
    Column("calcium_mmol_l", "number", minimum=0),
)
#: The columns that identify a patient under an arm.
KEY: list[str] = ["patient_id", "arm"]


def _require(run_dir: Path, name: str) -> Path:
    """Path of a file the run folder must hold; ``UserInputError`` naming it when absent."""
    if not run_dir.is_dir():
        raise UserInputError("is not a run folder (no such directory)", file=run_dir, fix=_FIX)
    path = run_dir / name
    if not path.is_file():
        raise UserInputError(f"the run folder has no {name}", file=path, fix=_FIX)
    return path


def _bad_rows(values: pd.Series, column: Column) -> tuple[np.ndarray, str]:
    """Mask of the rows whose value ``column`` does not allow, and what is wrong with them."""
    if column.kind == "number":
        numbers = values.to_numpy(dtype=float)
        bad = np.isinf(numbers) if column.nan_means else ~np.isfinite(numbers)
        problem = "infinite" if column.nan_means else "NaN or infinite"
    else:
        bad, problem = values.isna().to_numpy(), "null"
    if bad.any():
        return bad, problem
    if column.minimum is not None:
        below = (values < column.minimum).to_numpy()  # NaN compares False
        if below.any():
            return below, f"below {column.minimum:g}"
    if column.allowed is not None:
        unknown = ~values.isin(column.allowed).to_numpy()
        if unknown.any():
            return unknown, "not one of the allowed values"
    return np.zeros(len(values), dtype=bool), ""


def _check_column(path: Path, column: Column, arrow_type: pa.DataType, values: pd.Series) -> None:
    """``UserInputError`` naming the file, the column and the first bad row, if the column breaks the contract."""
    fix = f"the column must hold {column.describe()}; {_FIX}"
    if not _KINDS[column.kind](arrow_type):
        raise UserInputError(f"has type {arrow_type}, not {column.kind}", file=path, field=column.name, fix=fix)
    bad, problem = _bad_rows(values, column)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserInputError(
            f"{int(bad.sum())} row(s) {problem} (first: row {row}, value {values.iloc[row]})",
            file=path,
            field=column.name,
            fix=fix,
        )


def read_table(
    run_dir: str | Path,
    name: str,
    schema: tuple[Column, ...],
    unique: list[str] | None = None,
    categorical: bool = False,
) -> pd.DataFrame:
    """Read a Parquet table of the run folder and check it against the contract's ``schema``.

    Every column must exist with its kind and allowed values (:class:`Column`), and no two
    rows may share the ``unique`` columns (a patient under an arm). The first breach is a
    ``UserInputError`` naming the file, the column and the row: a run folder is read, not
    trusted. With ``categorical`` its text columns are categoricals with sorted categories
    (:func:`~vtrial.analysis.summary.coded`: what the analysis works on, read without a
    Python string per row), else Python strings.
    """
    path = _require(Path(run_dir), name)
    try:
        arrow_schema = pq.read_schema(path)
        if categorical:  # text columns read dictionary-encoded, which pandas makes categorical
            text = [c.name for c in schema if c.kind == "text" and c.name in arrow_schema.names]
            text = [n for n in text if _KINDS["text"](arrow_schema.field(n).type)]
            table = coded(pq.read_table(path, read_dictionary=text).to_pandas(), text)
        else:
            table = pd.read_parquet(path)
    except Exception as problem:  # pyarrow raises several types for a damaged file
        raise UserInputError(f"cannot be read as Parquet ({problem})", file=path, fix=_FIX) from problem
    missing = [c.name for c in schema if c.name not in table.columns]
    if missing:
        raise UserInputError(f"lacks the column(s) {missing}", file=path, fix=_FIX)
    for column in schema:
        _check_column(path, column, arrow_schema.field(column.name).type, table[column.name])
    if unique is not None:
        repeated = table.duplicated(unique).to_numpy()
        if repeated.any():
            row = int(np.flatnonzero(repeated)[0])
            raise UserInputError(
                f"{int(repeated.sum())} repeated row(s) (first: row {row}, "
                + ", ".join(f"{c} {table[c].iloc[row]}" for c in unique)
                + ")",
                file=path,
                field=", ".join(unique),
                fix=f"each {', '.join(unique)} appears once; remove the repeated rows, or {_FIX}",
            )
    return table


def read_tables(
    run_dir: str | Path, arms: list[str], categorical: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """``patients.parquet``, ``events.parquet`` and ``markers.parquet``, checked (:func:`read_table`) and consistent.

    Each may hold only the protocol's ``arms``, and every event and marker row must belong to a
    patient of the patients table; otherwise a ``UserInputError`` names the file and the first
    bad row. The markers are ``None`` for a run folder without them (written before version 2).
    """
    run_dir = Path(run_dir)
    contracts = {"patients.parquet": (PATIENT_SCHEMA, KEY), "events.parquet": (EVENT_SCHEMA, None)}
    if (run_dir / "markers.parquet").is_file():
        contracts["markers.parquet"] = (MARKER_SCHEMA, [*KEY, "week"])
    # read at once (pyarrow reads without the interpreter lock); a breach is raised in the order above
    with ThreadPoolExecutor(2) as pool:
        reading = {
            name: pool.submit(read_table, run_dir, name, schema, unique, categorical)
            for name, (schema, unique) in contracts.items()
        }
        tables = {name: table.result() for name, table in reading.items()}
    for name, table in tables.items():
        unknown = ~table["arm"].isin(arms).to_numpy()
        if unknown.any():
            raise UserInputError(
                f"has rows on arm(s) {sorted(set(table['arm'][unknown]))} that protocol.toml does not define",
                file=run_dir / name,
                field="arm",
                fix=f"keep only rows of the arms {arms}; {_FIX}",
            )
    patients = tables.pop("patients.parquet")
    known = pd.MultiIndex.from_frame(patients[KEY])
    for name, table in tables.items():
        orphan = ~pd.MultiIndex.from_frame(table[KEY]).isin(known)
        if orphan.any():
            row = int(np.flatnonzero(orphan)[0])
            raise UserInputError(
                f"{int(orphan.sum())} row(s) of patients not in patients.parquet (first: row {row}, patient_id "
                f"{table['patient_id'].iloc[row]}, arm {table['arm'].iloc[row]})",
                file=run_dir / name,
                field="patient_id, arm",
                fix=_FIX,
            )
    return patients, tables["events.parquet"], tables.get("markers.parquet")


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
        "non_inferiority_hr": protocol.analysis.non_inferiority_hr,
        "non_inferiority_rd": protocol.analysis.non_inferiority_rd,
    }


def analyse_run(run_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """:func:`summarise_run`, and the checked patients table it read (the report draws from it: read once).

    The tables are read with categorical text columns (:func:`read_tables`), which the analysis
    and the report compare and group fast.
    """
    settings = analysis_settings(read_protocol(run_dir))
    patients, events, markers = read_tables(run_dir, settings["arms"], categorical=True)
    summary = summarise(patients, events, **settings, markers=markers)
    if (Path(run_dir) / DRAWS_FILE).is_file():
        summary["uncertainty"] = read_uncertainty(Path(run_dir) / DRAWS_FILE, headline(summary))
    return summary, patients


def summarise_run(run_dir: str | Path) -> dict:
    """Analyse a run folder from its Parquet tables and resolved protocol alone."""
    return analyse_run(run_dir)[0]


def read_uncertainty(path: Path, fitted: Mapping) -> dict:
    """The ``uncertainty`` block of the summary from the run folder's :data:`DRAWS_FILE`.

    ``fitted`` is the headline of the run itself (:func:`vtrial.analysis.summary.headline`).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ensemble = data["ensemble"]
        block = uncertainty_block([draw["headline"] for draw in data["draws"]], ensemble["method"], fitted)
    except (ValueError, KeyError, TypeError, IndexError) as problem:
        raise UserInputError(
            f"is not a file of parameter draws ({type(problem).__name__}: {problem})",
            file=path,
            fix=f"run the protocol again with --parameter-draws K --force, or delete it; {_FIX}",
        ) from None
    block["ensemble"] = {key: ensemble.get(key) for key in ("parameter_fingerprint", "created_utc", "patients")}
    return block


def write_summary(run_dir: str | Path, summary: dict | None = None) -> Path:
    """Write ``summary.json`` of a run folder (rebuilt from its tables if not given); returns its path."""
    summary = summarise_run(run_dir) if summary is None else summary
    path = Path(run_dir) / "summary.json"
    atomic_write_text(path, to_json(summary))
    return path
