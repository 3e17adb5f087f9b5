"""The run folder on disk: atomic writes, Parquet parts, their merge, and the manifest.

A run is written into a hidden sibling folder ``.<name>.partial`` and renamed into place only
when complete, so a run that fails or is interrupted never leaves a half-written run folder;
the partial folder keeps every finished block (each part file is itself written atomically)
so that ``--resume`` can finish the run. One process at a time owns a folder (a lock on the
hidden sibling ``.<name>.lock``), and ``--force`` replaces only a folder vtrial wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vtrial.errors import UserInputError

#: Rows per Parquet row group of the merged tables (fixed, so files do not depend on blocks).
ROW_GROUP_ROWS = 65_536

PARTS = "parts"
#: The tables of a run, one part of each per finished block.
TABLES = ("patients", "markers", "events")
STATE = "state.json"
#: File name of a part (see :func:`part_path`).
PART_NAME = re.compile(rf"(?P<kind>{'|'.join(TABLES)})-a(?P<arm>\d+)-b(?P<block>\d+)\.parquet")


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
        # the name is chosen before the file exists, so an interrupt (Ctrl-C, SIGTERM) landing
        # anywhere after its creation, even before ``open`` returns, finds it and removes it
        tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the mode of an ordinary open
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic write of a UTF-8 text file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    """Atomic write of a JSON document (2-space indent, keys in insertion order)."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def to_arrow(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """A pyarrow table from a dict of numpy columns (strings as Arrow strings), without pandas.

    ``pa.array`` and ``pa.table`` import pandas (~0.35 s) to look for pandas objects; building
    the arrays from their buffers does not, so a process that only simulates never imports it
    (the forked worker of :func:`vtrial.engine.execute`). The arrays are those ``pa.array``
    makes (no nulls: NaN stays a value), so the Parquet files are the same bytes.
    """
    return pa.Table.from_arrays([_arrow_array(np.asarray(v)) for v in columns.values()], names=list(columns))


def _arrow_array(values: np.ndarray) -> pa.Array:
    """One numpy column as an Arrow array: numbers as they are, booleans as bits, text as UTF-8."""
    n = len(values)
    if values.dtype.kind in "UO":
        text = values.astype(str)  # each row's text (str() of an object), as pa.array was given it
        # fixed-width UTF-8 bytes, NUL-padded: each row's first ``length`` bytes are its text
        points = text.view(np.uint32).reshape(n, text.dtype.itemsize // 4)
        if points.max(initial=0) < 128:  # ASCII, the usual labels: the code points are the bytes (~15x faster)
            encoded, lengths = points.astype(np.uint8), np.strings.str_len(text)
        else:
            utf8 = np.strings.encode(text, "utf-8")
            encoded, lengths = utf8.view(np.uint8).reshape(n, utf8.dtype.itemsize), np.strings.str_len(utf8)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        data = encoded[np.arange(encoded.shape[1]) < lengths[:, None]]
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    if values.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(values.dtype), n, [None, pa.py_buffer(np.ascontiguousarray(values))]
    )


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns a run's Parquet files dictionary-encode: text and integers (few distinct values each).

    pyarrow's default tries a dictionary for every column and falls back to plain encoding
    only when the dictionary grows too large: for the floats (days, markers: about one distinct
    value per row) that attempt was half the time of writing the merged tables and made the
    files larger (100,000 patients x 3 arms: 59 MB, 50 MB without it).
    """
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_integer(f.type)]


def part_path(partial: Path, kind: str, arm_index: int, block_index: int) -> Path:
    """Path of one finished block's table (``kind``: ``patients``, ``markers`` or ``events``)."""
    return partial / PARTS / f"{kind}-a{arm_index:03d}-b{block_index:07d}.parquet"


def write_part(partial: Path, kind: str, arm_index: int, block_index: int, table: pa.Table) -> None:
    """Write one block's table atomically into the partial run folder."""
    path = part_path(partial, kind, arm_index, block_index)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, use_dictionary=dictionary_columns(table.schema))
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


class PartsMerger:
    """Parquet parts concatenated into one file in a fixed order, streaming, as they become ready.

    Row groups hold exactly :data:`ROW_GROUP_ROWS` rows (the last one fewer), so the merged
    file is byte-identical whatever the block size that produced the parts, and whatever the
    order in which they were ready. A run merges each finished block while the workers
    simulate the next ones (:meth:`ready`), so that little is left after the last one.
    """

    def __init__(self, paths: Iterable[Path], out: Path, schema: pa.Schema | None = None) -> None:
        self.paths, self.out, self.schema = list(paths), out, schema
        self.tmp = out.with_name(f".{out.name}.tmp")
        self.waiting: set[Path] = set()
        self.merged = self.rows = 0
        self.pending: list[pa.Table] = []
        self.writer: pq.ParquetWriter | None = None

    def ready(self, *paths: Path) -> None:
        """Mark parts as written; every part whose predecessors are all ready is merged now."""
        self.waiting.update(paths)
        with writing(self.out):
            while self.merged < len(self.paths) and self.paths[self.merged] in self.waiting:
                path = self.paths[self.merged]
                with pq.ParquetFile(path) as part:  # the file alone, without read_table's dataset layer
                    table = part.read()
                self.schema = self.schema or table.schema
                self.pending.append(table.cast(self.schema))
                self.waiting.discard(path)
                self.merged += 1
                while sum(t.num_rows for t in self.pending) >= ROW_GROUP_ROWS:
                    joined = pa.concat_tables(self.pending)
                    self._write(joined.slice(0, ROW_GROUP_ROWS))
                    self.pending = [joined.slice(ROW_GROUP_ROWS)]

    def close(self) -> int:
        """Merge the parts not merged yet, write the last row group and move the file into place; its rows."""
        self.ready(*self.paths[self.merged :])
        with writing(self.out):
            if self.schema is None:
                raise ValueError(f"no parts to merge into {self.out}")
            rest = pa.concat_tables(self.pending) if self.pending else self.schema.empty_table()
            if rest.num_rows or self.rows == 0:
                self._write(rest)
            assert self.writer is not None
            self.writer.close()
            self.writer = None
            os.replace(self.tmp, self.out)
        return self.rows

    def abort(self) -> None:
        """Drop the unfinished file (nothing once :meth:`close` has moved it into place)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.tmp.unlink(missing_ok=True)

    def _write(self, table: pa.Table) -> None:
        if self.writer is None:
            assert self.schema is not None
            self.writer = pq.ParquetWriter(self.tmp, self.schema, use_dictionary=dictionary_columns(self.schema))
        self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows


def merge_parts(paths: Iterable[Path], out: Path, schema: pa.Schema | None = None) -> int:
    """Concatenate Parquet parts into one file (:class:`PartsMerger`); returns the number of rows written."""
    merger = PartsMerger(paths, out, schema)
    try:
        return merger.close()
    finally:
        merger.abort()


def partial_dir(run_dir: Path) -> Path:
    """The hidden sibling folder where a run is assembled before it is renamed into place."""
    return run_dir.parent / f".{run_dir.name}.partial"


def read_state(partial: Path) -> dict | None:
    """The partial run's state (protocol fingerprint, block layout), or None if absent/corrupt."""
    try:
        return json.loads((partial / STATE).read_text())
    except (OSError, ValueError):
        return None


def _readable(path: Path) -> bool:
    """Whether a part file is a complete Parquet table (not truncated or corrupt)."""
    try:
        pq.read_table(path)
    except (OSError, pa.ArrowException):
        return False
    return True


def _finished_blocks(partial: Path) -> set[tuple[int, int]]:
    """The ``(arm_index, block_index)`` blocks of a partial folder whose parts (one per table) are all readable.

    Everything else in the folder (merged tables, summary, report, a temporary file left by an
    interrupted write, a file whose name is not a part's, a truncated part, half a block) is
    deleted, so that only finished blocks are carried into the resumed run.
    """
    parts: dict[tuple[int, int], set[str]] = {}
    for path in (partial / PARTS).iterdir():
        match = PART_NAME.fullmatch(path.name)
        if match is None:
            continue
        kind, block = match["kind"], (int(match["arm"]), int(match["block"]))
        if path == part_path(partial, kind, *block) and path.is_file() and _readable(path):
            parts.setdefault(block, set()).add(kind)
    done = {block for block, kinds in parts.items() if kinds == set(TABLES)}
    keep = {part_path(partial, kind, *block) for block in done for kind in TABLES}
    keep |= {partial / PARTS, partial / STATE}
    for path in [*partial.iterdir(), *(partial / PARTS).iterdir()]:
        if path in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return done


def prepare_partial(partial: Path, state: dict, resume: bool, force: bool) -> set[tuple[int, int]]:
    """Create (or, when resuming a matching run, reuse) the partial folder.

    An interrupted run's finished blocks are thrown away only with ``force``: without
    ``resume`` or ``force`` they are kept and a ``UserInputError`` asks for one of them.
    Returns the finished ``(arm_index, block_index)`` blocks already there (see
    :func:`_finished_blocks`: unreadable parts are dropped and their blocks run again).
    """
    previous = read_state(partial)
    _keep_interrupted(partial, previous, resume or force, "run", "blocks", PARTS, "*.parquet")
    if resume and previous is not None and previous != state:
        raise UserInputError(
            "the interrupted run in this folder was started with another protocol, seed or block size",
            file=partial,
            fix="resume with the same protocol and options, or pass --force instead of --resume to discard it and start again",
        )
    _open_partial(partial, state, resume and previous == state, PARTS)
    with writing(partial):
        return _finished_blocks(partial)


def _keep_interrupted(
    partial: Path, previous: dict | None, allowed: bool, command: str, finished: str, tasks: str, pattern: str
) -> None:
    """Refuse to start over an interrupted ``command`` that has finished ``tasks`` unless ``allowed``.

    Its finished work (blocks, replicates, samples) may have cost hours: it is thrown away only
    with ``--force`` and kept by ``--resume``; without either a ``UserInputError`` asks for one.
    Shared by run, batch and sensitivity.
    """
    if allowed or previous is None or not any((partial / tasks).glob(pattern)):
        return
    raise UserInputError(
        f"an interrupted {command} of this folder is kept, with its finished {finished}, in the hidden folder {partial.name}",
        file=partial.parent / partial.name[1 : -len(".partial")],
        fix="pass --resume to finish it (same protocol and options), or --force to discard it and start again",
    )


def _open_partial(partial: Path, state: dict, keep: bool, tasks: str) -> None:
    """Empty the partial folder unless ``keep`` (a resume with the same settings); make its ``tasks``
    subfolder and write ``state.json``: the start shared by run, batch and sensitivity."""
    with writing(partial):
        if not keep:
            shutil.rmtree(partial, ignore_errors=True)
        (partial / tasks).mkdir(parents=True, exist_ok=True)
        atomic_write_json(partial / STATE, state)


def prepare_records(
    partial: Path, state: dict, resume: bool, force: bool, command: str, finished: str, records: str
) -> dict[str, Any]:
    """Create the partial folder of ``command`` (its ``records`` subfolder and ``state.json``), or keep it
    when resuming one started with the same settings; return the records already finished there.

    Shared by ``vtrial batch`` and ``vtrial sensitivity``, whose finished tasks (``finished``, e.g.
    "replicates") are JSON records, one file each. An interrupted folder with finished records is
    emptied only with ``force``; without ``resume`` or ``force`` a ``UserInputError`` asks for one.
    Resuming a folder whose ``state.json`` differs from ``state`` raises ``UserInputError`` naming
    the differing settings. Returns file name -> content of each readable record (the caller checks
    that a record is the one it names); an unreadable one (cut short, corrupt) is left out and its
    task runs again.
    """
    previous = read_state(partial)
    _keep_interrupted(partial, previous, resume or force, command, finished, records, "*.json")
    if resume and previous is not None and previous != state:
        changed = sorted(k for k in state.keys() | previous.keys() if state.get(k) != previous.get(k))
        raise UserInputError(
            f"the interrupted {command} in this folder was started with other settings; changed: {', '.join(changed)}",
            file=partial,
            field=", ".join(changed),
            fix="resume with the same protocol and options, or pass --force instead of --resume to discard it and start again",
        )
    _open_partial(partial, state, resume and previous == state, records)
    done: dict[str, Any] = {}
    for path in (partial / records).glob("*.json"):
        try:
            done[path.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return done


def drop_records(partial: Path, records: str) -> None:
    """Remove the finished-task records and ``state.json`` of a complete partial folder before it is renamed."""
    shutil.rmtree(partial / records)
    (partial / STATE).unlink()


def folder_kind(folder: Path) -> str | None:
    """``"run"``, ``"batch"`` or ``"sensitivity"`` if ``manifest.json`` says which vtrial command wrote the folder.

    A run manifest names the ``vtrial`` version and the ``trial``; a batch manifest names the
    ``replicates`` and ``trials`` and sits next to ``batch_summary.json``; a sensitivity manifest
    names the ``sensitivity`` method and the ``parameters`` and sits next to ``sensitivity.csv``.
    """
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    if {"vtrial", "trial"} <= manifest.keys():
        return "run"
    if {"replicates", "trials"} <= manifest.keys() and (folder / "batch_summary.json").is_file():
        return "batch"
    if {"sensitivity", "parameters"} <= manifest.keys() and (folder / "sensitivity.csv").is_file():
        return "sensitivity"
    return None


@dataclass(frozen=True)
class OutputFolder:
    """The folder a run or batch writes, and what may be replaced there.

    Parameters
    ----------
    path : Path
        The folder, absolute with symlinks resolved: a symlinked ``--out`` writes the folder it
        points to, and ``--out .`` has a real name, so its hidden siblings are computed right.
    kind : {"run", "batch", "sensitivity"}
        The only kind of existing folder ``--force`` may replace (besides an empty one).
    force : bool
        Replace an existing folder of this kind.
    inputs : tuple of Path
        Input files (resolved): a folder holding one is never replaced, nor one holding the
        current folder (``--out .`` or ``..``), which a rename would pull from under the shell.
    """

    path: Path
    kind: str
    force: bool
    inputs: tuple[Path, ...] = ()

    @classmethod
    def of(cls, out: str | Path, kind: str, force: bool, inputs: Iterable[str | Path] = ()) -> OutputFolder:
        """Resolve ``--out`` and the input paths."""
        return cls(Path(out).resolve(), kind, force, tuple(Path(p).resolve() for p in inputs))

    @property
    def partial(self) -> Path:
        """The hidden sibling where the folder is assembled."""
        return partial_dir(self.path)

    def check(self) -> None:
        """Refuse (``UserInputError``, nothing touched) unless the folder may be written or replaced."""
        path, name = self.path, f"{self.kind} folder"
        if path == path.parent:
            raise UserInputError(f"the root folder cannot be a {name}", file=path, fix="choose --out DIR")
        if path.exists() and not path.is_dir():
            raise UserInputError("the output path exists and is not a folder", file=path, fix="choose --out DIR")
        for kept in (*self.inputs, Path.cwd()):
            if kept.is_relative_to(path):
                raise UserInputError(
                    f"the output folder holds {kept}, which must not be replaced or deleted",
                    file=path,
                    fix="choose an --out that holds neither the protocol files nor the current folder",
                )
        if not path.exists():
            return
        if not self.force:
            raise UserInputError(
                f"the {name} already exists", file=path, fix="pass --force to replace it, or choose --out DIR"
            )
        found = folder_kind(path)
        if found != self.kind and any(path.iterdir()):
            what = f"a vtrial {found} folder" if found else f"not a vtrial {name} (no manifest.json of one)"
            raise UserInputError(
                f"--force replaces only a {name} or an empty folder, and this one is {what}; nothing was changed",
                file=path,
                fix="choose another --out, or move the folder away yourself",
            )


def check_output_file(path: Path, force: bool, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse to write ``path`` if it is an input (even with ``force``), a folder, or exists without ``force``."""
    if path.exists() and any(os.path.samefile(path, source) for source in inputs):
        raise UserInputError(
            "the output file is an input of this command; writing it would destroy the input",
            file=path,
            field="--out",
            fix="choose another --out file",
        )
    if path.is_dir():
        raise UserInputError(
            "the output path is a folder", file=path, field="--out", fix="give a file name, e.g. cohort.parquet"
        )
    if path.exists() and not force:
        raise UserInputError(
            "the output file already exists",
            file=path,
            field="--out",
            fix="pass --force to replace it, or choose another --out file",
        )


def lock_path(folder: Path) -> Path:
    """The lock file of a folder: a hidden sibling, so that it outlives the partial folder's removal."""
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def owning(folder: OutputFolder) -> Iterator[None]:
    """Own ``folder`` (and its partial sibling) for a whole run: check it and hold an exclusive lock.

    The lock is ``flock`` on a hidden sibling file holding the owner's PID; the kernel releases it
    when the process dies, so a lock file left by a killed run blocks nothing. Another run of the
    same folder meanwhile is refused with ``UserInputError`` naming the owner's PID.
    """
    folder.check()  # refuse before anything is created
    path = lock_path(folder.path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UserInputError(
                    f"another vtrial process (PID {owner}) is writing this {folder.kind} folder",
                    file=folder.path,
                    fix="wait for it to finish (or stop it), or choose another --out",
                ) from None
            try:
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # the owner removed the file between our open and lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        folder.check()  # again, now that no other vtrial process can change it
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def finalise(partial: Path, folder: OutputFolder) -> None:
    """Drop the block parts of a finished run and move its folder into place."""
    folder.check()
    with writing(folder.path):
        shutil.rmtree(partial / PARTS)
        (partial / STATE).unlink()
    finalise_folder(partial, folder)


def finalise_folder(partial: Path, folder: OutputFolder) -> None:
    """Rename a complete folder into place, replacing an existing one only as ``folder`` allows."""
    folder.check()
    run_dir = folder.path
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
