"""Reproducible random streams keyed to patients and purposes, never to workers.

One :class:`numpy.random.SeedSequence` per run. Every draw for patient ``i`` and purpose
``p`` comes from the generator of the *stream chunk* ``i // CHUNK`` of that purpose, spawned
as ``SeedSequence(seed, spawn_key=(replicate, purpose, chunk))``. A computation on any subset
of patients generates the draws of every chunk it touches in full and keeps its own rows, so
patient ``i`` receives the same numbers whatever the block size, the number of workers, the
backend or the arm it is simulated under (common random numbers for paired designs). The purpose
``lesion_slots`` is keyed to single patients instead (``spawn_key=(replicate, purpose, patient_id)``):
draws that only a few patients need, made for those alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Patients per stream chunk. Part of the reproducibility contract: changing it changes draws.
CHUNK = 1024

#: Independent purposes; the integer is part of the spawn key (append, never renumber).
PURPOSES: dict[str, int] = {
    "randomisation": 0,
    "accrual": 1,
    "dropout": 2,
    "cohort": 3,
    "biology": 4,
    "events": 5,
    "eligibility": 6,
    "lesions": 7,
    "systemic": 8,
    "markers": 9,
    "marrow": 10,
    "label_rules": 11,
    "skeleton": 12,
    "heterogeneity": 13,
    "calcium": 14,
    "disease_control": 15,
    "subtype": 16,
    "lesion_slots": 17,  # one generator per patient: ``generator("lesion_slots", patient_id)``
}


#: Generator methods that can write their draws into a given array (``out=``): the same numbers as ``size=``.
_FILLS = frozenset({"random", "standard_normal", "standard_exponential"})


class Streams:
    """Factory of per-patient random draws for one run (one seed, one replicate).

    Parameters
    ----------
    seed : int
        The run's root seed (from the protocol or ``--seed``).
    replicate : int, default 0
        Replicate trial index in a batch; replicates get independent streams.
    """

    def __init__(self, seed: int, replicate: int = 0) -> None:
        if seed < 0 or replicate < 0:
            raise ValueError("seed and replicate must be non-negative integers")
        self.seed = int(seed)
        self.replicate = int(replicate)

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed}, replicate={self.replicate})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Streams) and (self.seed, self.replicate) == (other.seed, other.replicate)

    def __hash__(self) -> int:
        return hash((self.seed, self.replicate))

    def generator(self, purpose: str, chunk: int) -> np.random.Generator:
        """The generator of one stream chunk of one purpose (of one patient, ``chunk`` = its id, for ``lesion_slots``)."""
        key = PURPOSES[purpose]
        ss = np.random.SeedSequence(self.seed, spawn_key=(self.replicate, key, int(chunk)))
        return np.random.Generator(np.random.PCG64(ss))

    def trial_generator(self, purpose: str) -> np.random.Generator:
        """A generator for trial-level draws that are not keyed to one patient chunk."""
        key = PURPOSES[purpose]
        ss = np.random.SeedSequence(self.seed, spawn_key=(self.replicate, key, 2**32 - 1))
        return np.random.Generator(np.random.PCG64(ss))

    def draws(self, purpose: str, patient_ids: Sequence[int] | np.ndarray) -> PatientDraws:
        """Per-patient draws of ``purpose`` for the given (non-negative, unique) patient ids."""
        return PatientDraws(self, purpose, np.asarray(patient_ids, dtype=np.int64))


class PatientDraws:
    """Draws for a set of patients, identical for each patient whatever set it is in.

    Each method call advances every touched chunk's generator by a whole chunk of draws of
    the requested per-patient shape, so the sequence of calls (not the set of patients)
    determines what each patient receives. Call methods in a fixed order.

    Use :meth:`chunk_rows` when a computation must itself run on whole chunks (for example
    rejection sampling whose number of rounds depends on the draws).
    """

    def __init__(self, streams: Streams, purpose: str, patient_ids: np.ndarray) -> None:
        if patient_ids.ndim != 1:
            raise ValueError("patient_ids must be one-dimensional")
        if patient_ids.size and patient_ids.min() < 0:
            raise ValueError("patient ids must be non-negative")
        self.patient_ids = patient_ids
        chunk_of = patient_ids // CHUNK
        self.chunks = np.unique(chunk_of)
        self._generators = [streams.generator(purpose, c) for c in self.chunks]
        # row of each requested patient in the stacked full-chunk arrays
        position = np.searchsorted(self.chunks, chunk_of)
        self.rows = position * CHUNK + (patient_ids - chunk_of * CHUNK)
        self._all_rows = self.rows.size == self.n_chunk_rows and bool((self.rows == np.arange(self.rows.size)).all())

    @property
    def n_chunk_rows(self) -> int:
        """Number of rows of the stacked full-chunk arrays (``len(chunks) * CHUNK``)."""
        return len(self._generators) * CHUNK

    def chunk_rows(self, method: str, per_patient_shape: tuple[int, ...] = (), **kwargs) -> np.ndarray:
        """Draw ``method`` for every patient of every touched chunk, stacked (no selection)."""
        if method not in _FILLS or kwargs:
            if not self._generators:
                return np.empty((0, *per_patient_shape))
            parts = [getattr(g, method)(size=(CHUNK, *per_patient_shape), **kwargs) for g in self._generators]
            return np.concatenate(parts, axis=0)
        out = np.empty((self.n_chunk_rows, *per_patient_shape))
        for k, g in enumerate(self._generators):  # each chunk's draws written in place: no concatenation
            getattr(g, method)(out=out[k * CHUNK : (k + 1) * CHUNK], **kwargs)
        return out

    def select(self, chunk_array: np.ndarray) -> np.ndarray:
        """Rows of a full-chunk array that belong to the requested patients, in request order.

        When the requested patients are every row of the touched chunks in order (a block of whole
        chunks), that is the array itself, returned without a copy.
        """
        if self._all_rows:
            return chunk_array
        return chunk_array[self.rows]

    def ragged(self, method: str, counts: np.ndarray, **kwargs) -> np.ndarray:
        """A variable number of draws per patient, concatenated in request order.

        ``counts`` gives the number of draws of every row of the touched chunks (a full-chunk
        array, e.g. lesions per patient computed with :meth:`chunk_rows`). Each chunk's
        generator draws exactly its rows' total, and patient ``i`` takes the segment after the
        draws of the rows before it in its chunk, so what it receives depends on its chunk only,
        never on the block. Costs one draw per real item, not per padded slot.
        """
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (self.n_chunk_rows,):
            raise ValueError("counts must hold one entry per row of the touched chunks")
        per_chunk = counts.reshape(len(self._generators), CHUNK).sum(axis=1)
        flat = np.concatenate(
            [getattr(g, method)(size=int(k), **kwargs) for g, k in zip(self._generators, per_chunk)] or [np.empty(0)]
        )
        starts = np.cumsum(counts) - counts
        take = counts[self.rows]
        offsets = np.repeat(starts[self.rows] - (np.cumsum(take) - take), take)
        return flat[offsets + np.arange(take.sum())]

    def _draw(self, method: str, shape: tuple[int, ...], **kwargs) -> np.ndarray:
        return self.select(self.chunk_rows(method, shape, **kwargs))

    def random(self, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Uniform [0, 1) draws, shape ``(n_patients, *shape)``."""
        return self._draw("random", shape)

    def standard_normal(self, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Standard normal draws, shape ``(n_patients, *shape)``."""
        return self._draw("standard_normal", shape)

    def exponential(self, shape: tuple[int, ...] = ()) -> np.ndarray:
        """Unit-mean exponential draws (cumulative-hazard thresholds), shape ``(n_patients, *shape)``."""
        return self._draw("standard_exponential", shape)
