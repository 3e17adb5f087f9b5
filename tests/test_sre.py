"""The SRE window rule on hand-made event lists."""

from __future__ import annotations

import numpy as np

from vtrial.sre import apply_window_rule

SRE = ["pathological_fracture", "radiation_to_bone", "surgery_to_bone", "spinal_cord_compression"]


def counted(events: list[tuple[int, float, str]], window: float = 21.0, types=SRE) -> list[bool]:
    pid, day, kind = zip(*events)
    return apply_window_rule(np.array(pid), np.array(day), np.array(kind), types, window).tolist()


def test_events_within_the_window_of_a_counted_sre_are_not_counted():
    # fracture day 0 counted; radiation day 10 and 21 inside the 21-day window; day 22 counts again
    events = [
        (1, 0.0, "pathological_fracture"),
        (1, 10.0, "radiation_to_bone"),
        (1, 21.0, "radiation_to_bone"),
        (1, 22.0, "surgery_to_bone"),
    ]
    assert counted(events) == [True, False, False, True]


def test_window_runs_from_the_last_counted_sre_not_the_last_event():
    # 0 counted; 15 merged (within 21 of 0); 30 is 30 days after the last *counted* one -> counted
    events = [(7, 0.0, "radiation_to_bone"), (7, 15.0, "radiation_to_bone"), (7, 30.0, "radiation_to_bone")]
    assert counted(events) == [True, False, True]


def test_only_sre_types_count_and_patients_are_independent():
    events = [
        (1, 5.0, "hypercalcaemia"),
        (2, 5.0, "pathological_fracture"),
        (1, 6.0, "death"),
        (2, 6.0, "osteonecrosis_of_the_jaw"),
        (1, 8.0, "pathological_fracture"),
    ]
    assert counted(events) == [False, True, False, False, True]
    # with hypercalcaemia among the SRE types, it counts and then absorbs the fracture 3 days later
    assert counted(events, types=SRE + ["hypercalcaemia"]) == [True, True, False, False, False]


def test_input_order_does_not_matter():
    rng = np.random.default_rng(4)
    pid = rng.integers(0, 50, 2000)
    day = rng.integers(0, 1000, 2000).astype(float)
    kind = rng.choice(SRE + ["death"], 2000)
    reference = apply_window_rule(pid, day, kind, SRE, 21.0)
    order = rng.permutation(2000)
    shuffled = apply_window_rule(pid[order], day[order], kind[order], SRE, 21.0)

    # same counted events (ties on the same day may pick another of the tied rows)
    def kept(p, d, k, c):
        return sorted(zip(p[c], d[c]))

    assert kept(pid[order], day[order], kind[order], shuffled) == kept(pid, day, kind, reference)
    # zero window: every SRE counts (distinct days) unless on the same day as a counted one
    zero = apply_window_rule(pid, day, kind, SRE, 0.0)
    is_sre = np.isin(kind, SRE)
    n_distinct = len({(p, d) for p, d, s in zip(pid, day, is_sre) if s})
    assert zero.sum() == n_distinct
