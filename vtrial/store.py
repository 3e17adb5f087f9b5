"""The run folder on disk: atomic writes, Parquet parts, their merge, and the manifest.

A run is written into a hidden sibling folder ``.<name>.partial`` and renamed into place only
when complete, so a run that fails or is interrupted never leaves a half-written run folder;
the partial folder keeps every finished block (each part file is itself written atomically)
so that ``--resume`` can finish the run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vtrial.errors import UserInputError

#: Rows per Parquet row group of the merged tables (fixed, so files do not depend on blocks).
ROW_GROUP_ROWS = 65_536

PARTS = "parts"
STATE = "state.json"

#: The process's umask (read once): atomic writes get the mode an ordinary ``open`` would give.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn operating-system write failures (full disk, read-only folder) into a user error."""
    try:
        yield
    except OSError as exc:
        raise UserInputError(
            f"cannot write: {exc.strerror or exc}",
            file=path,
            fix="free disk space or choose a writable folder with --out; nothing already there was changed",
        ) from exc


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    with writing(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o666 & ~_UMASK)  # mkstemp creates files readable by the owner only
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic write of a UTF-8 text file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    """Atomic write of a JSON document (2-space indent, keys in insertion order)."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def to_arrow(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """A pyarrow table from a dict of numpy columns (strings as Arrow strings)."""
    arrays = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind in "UO":
            arrays[name] = pa.array(values.astype(str).tolist(), type=pa.string())
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def part_path(partial: Path, kind: str, arm_index: int, block_index: int) -> Path:
    """Path of one finished block's table (``kind``: ``patients``, ``markers`` or ``events``)."""
    return partial / PARTS / f"{kind}-a{arm_index:03d}-b{block_index:07d}.parquet"


def write_part(partial: Path, kind: str, arm_index: int, block_index: int, table: pa.Table) -> None:
    """Write one block's table atomically into the partial run folder."""
    path = part_path(partial, kind, arm_index, block_index)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def merge_parts(paths: Iterable[Path], out: Path, schema: pa.Schema | None = None) -> int:
    """Concatenate Parquet parts into one file, streaming, with fixed-size row groups.

    Row groups hold exactly :data:`ROW_GROUP_ROWS` rows (the last one fewer), so the merged
    file is byte-identical whatever the block size that produced the parts. Returns the
    number of rows written.
    """
    tmp = out.with_name(f".{out.name}.tmp")
    rows = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    writer: pq.ParquetWriter | None = None
    with writing(out):
        try:
            for path in paths:
                table = pq.read_table(path)
                if schema is None:
                    schema = table.schema
                table = table.cast(schema)
                pending.append(table)
                pending_rows += table.num_rows
                while pending_rows >= ROW_GROUP_ROWS:
                    joined = pa.concat_tables(pending)
                    writer = writer or pq.ParquetWriter(tmp, schema)
                    writer.write_table(joined.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                    rest = joined.slice(ROW_GROUP_ROWS)
                    pending, pending_rows = [rest], rest.num_rows
                    rows += ROW_GROUP_ROWS
            if schema is None:
                raise ValueError(f"no parts to merge into {out}")
            writer = writer or pq.ParquetWriter(tmp, schema)
            if pending_rows or rows == 0:
                tail = pa.concat_tables(pending) if pending else schema.empty_table()
                writer.write_table(tail, row_group_size=ROW_GROUP_ROWS)
                rows += tail.num_rows
            writer.close()
            writer = None
            os.replace(tmp, out)
        finally:
            if writer is not None:
                writer.close()
            tmp.unlink(missing_ok=True)
    return rows


def partial_dir(run_dir: Path) -> Path:
    """The hidden sibling folder where a run is assembled before it is renamed into place."""
    return run_dir.parent / f".{run_dir.name}.partial"


def read_state(partial: Path) -> dict | None:
    """The partial run's state (protocol fingerprint, block layout), or None if absent/corrupt."""
    try:
        return json.loads((partial / STATE).read_text())
    except (OSError, ValueError):
        return None


def prepare_partial(partial: Path, state: dict, resume: bool) -> set[tuple[str, int, int]]:
    """Create (or, when resuming a matching run, reuse) the partial folder.

    Returns the finished ``(kind, arm_index, block_index)`` parts already there.
    """
    previous = read_state(partial)
    if resume and previous is not None and previous != state:
        raise UserInputError(
            "the interrupted run in this folder was started with another protocol, seed or block size",
            file=partial,
            fix="resume with the same protocol and options, or start again without --resume",
        )
    with writing(partial):
        if not (resume and previous == state):
            shutil.rmtree(partial, ignore_errors=True)
        (partial / PARTS).mkdir(parents=True, exist_ok=True)
        atomic_write_json(partial / STATE, state)
    done = set()
    for path in (partial / PARTS).glob("*.parquet"):
        kind, arm, block = path.stem.split("-")
        done.add((kind, int(arm[1:]), int(block[1:])))
    return done


def check_run_dir(run_dir: Path, force: bool) -> None:
    """Refuse to replace an existing run folder unless ``force``."""
    if run_dir.exists() and not force:
        raise UserInputError(
            "the run folder already exists", file=run_dir, fix="pass --force to replace it, or choose --out DIR"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise UserInputError("the output path exists and is not a folder", file=run_dir, fix="choose --out DIR")


def finalise(partial: Path, run_dir: Path, force: bool) -> None:
    """Drop the block parts of a finished run and move its folder into place."""
    check_run_dir(run_dir, force)
    with writing(run_dir):
        shutil.rmtree(partial / PARTS)
        (partial / STATE).unlink()
    finalise_folder(partial, run_dir, force)


def finalise_folder(partial: Path, run_dir: Path, force: bool) -> None:
    """Rename a complete folder into place, replacing an existing one only with ``force``."""
    check_run_dir(run_dir, force)
    with writing(run_dir):
        if run_dir.exists():
            trash = run_dir.parent / f".{run_dir.name}.old"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(run_dir, trash)
            try:
                os.replace(partial, run_dir)
            except BaseException:
                os.replace(trash, run_dir)  # put the existing run folder back
                raise
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(partial, run_dir)
