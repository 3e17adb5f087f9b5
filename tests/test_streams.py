"""Random streams keyed to patients: the same draws whatever the block, the order or the purpose mix."""

from __future__ import annotations

import numpy as np
import pytest

from vtrial.streams import CHUNK, Streams


def test_a_patient_gets_the_same_draws_in_any_block():
    streams = Streams(42)
    ids = np.arange(3 * CHUNK + 17)
    whole = streams.draws("events", ids).exponential((3,))
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(ids)
    for block in np.array_split(shuffled, 7):
        part = streams.draws("events", block).exponential((3,))
        assert np.array_equal(part, whole[block])


def test_purposes_seeds_and_replicates_are_independent():
    ids = np.arange(500)
    a = Streams(1).draws("events", ids).random()
    assert not np.array_equal(a, Streams(1).draws("cohort", ids).random())
    assert not np.array_equal(a, Streams(2).draws("events", ids).random())
    assert not np.array_equal(a, Streams(1, replicate=1).draws("events", ids).random())
    assert np.array_equal(a, Streams(1).draws("events", ids).random())
    # uniform draws: mean 1/2 within 4 standard errors (sd 1/sqrt(12))
    assert abs(a.mean() - 0.5) < 4 / np.sqrt(12 * 500)


def test_ragged_draws_follow_the_chunk_not_the_block():
    streams = Streams(9)
    ids = np.arange(2 * CHUNK)
    counts = np.random.default_rng(1).integers(0, 6, 2 * CHUNK)
    whole = streams.draws("lesions", ids).ragged("random", counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    block = np.array([5, 1030, 3, 2000])
    draws = streams.draws("lesions", block)
    part = draws.ragged("random", counts[np.concatenate([np.arange(CHUNK), np.arange(CHUNK, 2 * CHUNK)])])
    expected = np.concatenate([whole[offsets[i] : offsets[i + 1]] for i in block])
    assert np.array_equal(part, expected)
    with pytest.raises(ValueError, match="one entry per row"):
        draws.ragged("random", counts[:10])


def test_negative_ids_and_seeds_are_rejected():
    with pytest.raises(ValueError):
        Streams(-1)
    with pytest.raises(ValueError):
        Streams(1).draws("events", np.array([-3]))


def test_draws_are_each_chunk_generators_own_numbers():
    # the chunks' draws are written in place (``out=``) and a block of whole chunks is returned without a copy:
    # the numbers must be those of each chunk's generator drawn with ``size=``, in chunk order
    streams = Streams(3)
    ids = np.arange(2 * CHUNK)
    for method, name in (("exponential", "standard_exponential"), ("random", "random"), ("standard_normal",) * 2):
        expected = np.concatenate([getattr(streams.generator("events", c), name)(size=(CHUNK, 2, 3)) for c in (0, 1)])
        assert np.array_equal(getattr(streams.draws("events", ids), method)((2, 3)), expected)
        assert np.array_equal(getattr(streams.draws("events", ids[::-1]), method)((2, 3)), expected[::-1])
