"""Drug exposure and effect: label dosing, PK trough, dose-response, agent ranking, rebound."""

from types import SimpleNamespace

import numpy as np
import pytest

from vtrial.model.agents.zoledronic_acid import zoledronic_acid_dose
from vtrial.model.drugs import Exposure, dosing_days
from vtrial.model.lesion import advance, gompertz_rate, initial_state, lesion_traits
from vtrial.model.parameters import Parameters
from vtrial.model.reference import reference_arm

PARAMS = Parameters()


def arm(drug, dose_mg=None, every_weeks=4.0, stop_after_months=None, renal_adjustment=True, mechanism=None):
    return reference_arm(
        drug,
        dose_mg=dose_mg,
        every_weeks=every_weeks,
        stop_after_months=stop_after_months,
        renal_adjustment=renal_adjustment,
        mechanism=mechanism,
    )


LABEL = {
    "none": arm("none", every_weeks=None),
    "pamidronate": arm("pamidronate", 90.0),
    "zoledronic_acid": arm("zoledronic_acid", 4.0),
    "denosumab": arm("denosumab", 120.0),
}


def resorption(a, days, crcl=80.0):
    """Osteoclast activity of a lesion-free (healthy) bone site, day by day, under an arm."""
    exposure = Exposure.of_arm(a, np.array([crcl]), days, PARAMS)
    traits = lesion_traits(np.zeros(1), 1.0, 1.0, gompertz_rate(90.0, PARAMS), PARAMS)
    state = initial_state(np.zeros(1), np.zeros(1, bool))
    out = np.empty(days)
    for d in range(days):
        inputs = exposure.inputs(d, d + 1, np.array([0]))
        sig = advance(state, traits, inputs.recruitment, inputs.recruitment_sq, 1.0, 1.0, 0.0, 1.0, PARAMS)
        out[d] = sig.osteoclast[0]
    return out


def test_zoledronic_acid_label_dose_table():
    crcl = np.array([75.0, 60.5, 60.0, 50.0, 49.9, 40.0, 39.0, 30.0, 29.9])
    np.testing.assert_allclose(zoledronic_acid_dose(4.0, crcl, True), [4.0, 4.0, 3.5, 3.5, 3.3, 3.3, 3.0, 3.0, 0.0])
    np.testing.assert_allclose(zoledronic_acid_dose(4.0, crcl, False), 4.0)


def test_dosing_stops_after_the_given_months():
    days = dosing_days(arm("denosumab", 120.0, stop_after_months=6.0), 1000)
    assert days[0] == 0.0 and np.all(np.diff(days) == 28.0) and days[-1] < 6 * 30.4375 <= days[-1] + 28


def test_denosumab_trough_is_near_the_label_value():
    a = LABEL["denosumab"]
    exp = Exposure.of_arm(a, np.array([80.0]), 400, PARAMS)
    # serum concentration at the end of the 6th interval, from the inhibition: C = IC50 I/(Imax - I)
    i = exp.rankl_inhibition[6 * 28 - 1]
    conc = PARAMS.denosumab_ic50_mg_l * i / (PARAMS.denosumab_imax - i)
    assert 15.0 < conc < 30.0  # label mean trough 20.6 ug/mL
    # saturated: within 0.2% of Imax (the trough is ~600 IC50: 0.9 x 600/601 = 0.8985)
    assert PARAMS.denosumab_imax * 0.998 < i < PARAMS.denosumab_imax


def test_label_doses_rank_denosumab_over_zoledronic_acid_over_pamidronate_over_placebo():
    mean = {name: resorption(a, 365)[90:].mean() for name, a in LABEL.items()}
    assert mean["denosumab"] < mean["zoledronic_acid"] < mean["pamidronate"] < mean["none"]
    assert mean["none"] == pytest.approx(1.0)
    assert mean["denosumab"] < 0.2  # uNTx suppression ~90%+


@pytest.mark.parametrize(
    "drug,doses", [("denosumab", [30.0, 60.0, 120.0, 180.0]), ("zoledronic_acid", [1.0, 2.0, 4.0, 8.0])]
)
def test_more_drug_means_less_resorption(drug, doses):
    mean = [resorption(arm(drug, d), 365)[60:].mean() for d in doses]
    assert np.all(np.diff(mean) < 0)
    frequent = [resorption(arm(drug, doses[1], every_weeks=w), 365)[60:].mean() for w in (12.0, 8.0, 4.0)]
    assert np.all(np.diff(frequent) < 0)


def test_stopping_denosumab_brings_resorption_above_baseline():
    u = resorption(arm("denosumab", 120.0, stop_after_months=12.0), 3 * 365)
    assert u[300] < 0.2
    assert u[365:].max() > 1.3  # rebound above the untreated baseline of 1
    # no rebound after stopping zoledronic acid
    assert resorption(arm("zoledronic_acid", 4.0, stop_after_months=12.0), 3 * 365)[365:].max() <= 1.0 + 1e-9


def test_custom_agent_exposure_decays_with_its_half_life():
    mech = SimpleNamespace(
        rankl_inhibition=0.0,
        osteoclast_inhibition=0.5,
        tgf_beta_inhibition=0.6,
        pthrp_inhibition=0.0,
        tumour_kill=0.0,
        half_life_days=14.0,
        homing_inhibition=0.7,
        osteoblast_drive_inhibition=0.5,
        bone_formation_stimulation=0.4,
        il6_inhibition=0.8,
    )
    exp = Exposure.of_arm(arm("custom", every_weeks=4.0, mechanism=mech), np.array([80.0]), 60, PARAMS)
    d0, d14 = exp.inputs(0, 1, np.array([0])), exp.inputs(14, 15, np.array([0]))
    assert 1.0 - d0.tgf_beta_keep == pytest.approx(0.6 * 2 ** (-0.5 / 14))
    assert 1.0 - d14.tgf_beta_keep == pytest.approx(0.6 * 2 ** (-14.5 / 14))
    # the version-2 targets follow the same exposure: homing, drive and IL-6 kept, production raised
    for inputs, e in ((d0, 2 ** (-0.5 / 14)), (d14, 2 ** (-14.5 / 14))):
        assert inputs.homing_keep == pytest.approx(1.0 - 0.7 * e, rel=1e-12)
        assert inputs.cells.osteoblast_drive_keep == pytest.approx(1.0 - 0.5 * e, rel=1e-12)
        assert inputs.cells.il6_keep == pytest.approx(1.0 - 0.8 * e, rel=1e-12)
        assert inputs.cells.osteoblast_production == pytest.approx(
            1.0 + PARAMS.osteoblast_stimulation_max * 0.4 * e, rel=1e-12
        )
    assert d0.suppression[0] == pytest.approx(0.5 * 2 ** (-0.5 / 14))


def test_pool_kernel_is_the_superposed_release_of_the_doses_before_each_day():
    """Each dose adds ``2**(-t/half-life)`` after it, and the sum is that of a ``[doses, grid]`` array, bit for bit."""
    from vtrial.model.agents.pk import pool_kernel

    grid = np.arange(-30, 1830) + 0.5
    doses = np.arange(-28.0, 1830.0, 28.0)
    kernel = pool_kernel(doses, 300.0, grid)
    # hand values: before the first dose (day -28) nothing; half a day after it 2**(-0.5/300); on day 0.5 the
    # doses of days -28 and 0
    assert kernel[0] == kernel[1] == 0.0 and kernel[2] == pytest.approx(2 ** (-0.5 / 300.0), rel=1e-15)
    assert kernel[30] == pytest.approx(2 ** (-28.5 / 300.0) + 2 ** (-0.5 / 300.0), rel=1e-15)
    for given, tail in ((doses, grid), (doses[[0, 2, 3, 9, 40]], grid[400:]), (doses[:0], grid)):
        since = tail[None, :] - given[:, None]
        matrix = np.sum(np.where(since > 0, np.exp(-np.log(2.0) / 300.0 * np.maximum(since, 0.0)), 0.0), axis=0)
        assert np.array_equal(pool_kernel(given, 300.0, tail), matrix)


def test_first_order_absorption_kernel_is_the_sum_of_a_doses_by_grid_array_bit_for_bit():
    """From the table of recurring times (daily grid, whole dose days) or not, the bits of the ``[doses, grid]`` sum."""
    from vtrial.model.agents.pk import _unit_times, first_order_absorption_kernel

    ka, ke = 0.2, np.log(2.0) / 28.0

    def matrix(given: np.ndarray, tail: np.ndarray) -> np.ndarray:
        since = tail[None, :] - given[:, None]
        after = since > 0
        since = np.where(after, since, 0.0)
        return np.sum(np.where(after, np.exp(-ke * since) - np.exp(-ka * since), 0.0), axis=0)

    grid = np.arange(-30, 1830) + 0.5
    doses = np.arange(-28.0, 1830.0, 28.0)
    odd = np.arange(0.25, 1830.0, 24.5)
    for given, tail in (
        (doses, grid),
        (doses[[0, 2, 3, 9, 40]], grid[400:]),
        (doses[[9, 0, 40, 3]], grid),  # doses not in day order: added in their order
        (doses[:5], grid[1700:]),
        (odd, grid),
        (doses[:0], grid),
    ):
        assert (_unit_times(given, tail) is not None) == (given is not odd and given.size > 0)
        assert first_order_absorption_kernel(given, ka, ke, tail).tobytes() == matrix(given, tail).tobytes()
    # hand value: one dose on day 0, read half a day later: e^{-0.5 ke} - e^{-0.5 ka}
    value = first_order_absorption_kernel(np.array([0.0]), ka, ke, np.array([0.5]))[0]
    assert value == pytest.approx(2 ** (-0.5 / 28.0) - np.exp(-0.1), rel=1e-12)


def test_pool_kernel_table_equals_the_exponential_of_each_dose_bit_for_bit():
    """The table of recurring times gives the values of one exponential per dose and grid point; other grids fall back."""
    from vtrial.model.agents.pk import _unit_times, pool_kernel

    def direct(given: np.ndarray, tail: np.ndarray) -> np.ndarray:
        pool = np.zeros(tail.shape)
        for day in given:
            after = tail > day
            pool[after] += np.exp(-np.log(2.0) / 180.0 * (tail[after] - day))
        return pool

    grid = np.arange(-30, 1830) + 0.5
    doses = np.arange(-28.0, 1830.0, 28.0)
    for given, tail in ((doses, grid), (doses[[0, 2, 3, 9, 40]], grid[400:]), (doses[:5], grid[1700:])):
        assert _unit_times(given, tail) is not None
        assert np.array_equal(pool_kernel(given, 180.0, tail), direct(given, tail))
    # every 3.5 weeks from day 0.25 (not whole days), and a grid of quarter days: the per-dose exponentials
    odd = np.arange(0.25, 1830.0, 24.5)
    assert _unit_times(odd, grid) is None and _unit_times(doses, np.arange(0, 100) * 0.25) is None
    assert np.array_equal(pool_kernel(odd, 180.0, grid), direct(odd, grid))
    # hand value: one dose on day 0, read half a day later: 2**(-0.5/180)
    assert pool_kernel(np.array([0.0]), 180.0, np.array([0.5]))[0] == pytest.approx(2 ** (-0.5 / 180.0), rel=1e-15)


def test_precursor_reserve_equals_the_day_by_day_recurrence_bit_for_bit():
    """Rates and decays computed for all days at once give the reserve of the scalar day-by-day update exactly."""
    from vtrial.model.drugs import precursor_reserve

    def day_by_day(inhibition: np.ndarray) -> np.ndarray:
        a, r, qmax = PARAMS.precursor_accumulation_rate, PARAMS.precursor_release_rate, PARAMS.precursor_reserve_max
        out, q = np.zeros(inhibition.shape), 0.0
        for day, i in enumerate(inhibition.tolist()):
            rate = a * i / qmax + r * (1.0 - i)
            target = a * i / rate
            q = target + (q - target) * np.exp(-rate)
            out[day] = q
        return out

    days = np.arange(1830) + 0.5
    inhibition = 0.937 * np.exp(-((days % 28.0) / 40.0)) * (days < 900)  # monthly doses stopped after 900 days
    reserve = precursor_reserve(inhibition, PARAMS)
    assert np.array_equal(reserve, day_by_day(inhibition))
    # the reserve fills under blockade and empties after it: hand check of its sign and its decay to ~0
    assert reserve[899] > 0.1 and reserve[-1] < 1e-3 * reserve[899]
    # a variant that differs from day 600 copies the days before and continues the same recurrence
    variant = np.where(days < 600, inhibition, 0.0)
    assert np.array_equal(precursor_reserve(variant, PARAMS, (inhibition, reserve)), day_by_day(variant))
