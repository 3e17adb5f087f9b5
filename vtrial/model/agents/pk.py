"""Pharmacokinetic helpers shared by the agents: superposed single-dose kernels and the Emax law.

Every kernel is evaluated on the daily grid (mid-day times, days since randomisation) for the
dose days of one administration, by closed-form superposition: no ODE, no per-patient loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def first_order_absorption_kernel(days: np.ndarray, ka: float, ke: float, grid: np.ndarray) -> np.ndarray:
    """Sum over doses of ``e^{-ke t} - e^{-ka t}`` (``t`` since each dose) on ``grid``.

    Times the dose scale ``dose F ka / (V (ka - ke))`` it is the concentration of a
    one-compartment model with first-order absorption. The sum is that of a ``[doses, grid]``
    array (the doses' terms in their order, zeros before each dose); on the daily grid with whole
    dose days its terms come from one table of the recurring times (:func:`_superposed`).
    """
    kernel = _superposed(days, grid, lambda since: np.exp(-ke * since) - np.exp(-ka * since))
    if kernel is not None:
        return kernel
    since = grid[None, :] - days[:, None]
    after = since > 0
    since = np.where(after, since, 0.0)
    return np.sum(np.where(after, np.exp(-ke * since) - np.exp(-ka * since), 0.0), axis=0)


def pool_kernel(days: np.ndarray, half_life_days: float, grid: np.ndarray) -> np.ndarray:
    """Bone-surface pool per unit deposited dose on ``grid`` (ascending): superposed first-order release.

    Each dose adds its decay on the grid points after it, in the order of the doses (a sum over
    a ``[doses, grid]`` array would add the same terms, and zeros, in the same order). On the
    daily grid with whole dose days the times since the doses recur: their decays are computed
    once and each dose adds its slice (:func:`_superposed`).
    """
    rate = -np.log(2.0) / half_life_days
    pool = _superposed(days, grid, lambda since: np.exp(rate * since))
    if pool is not None:
        return pool
    pool = np.zeros(grid.shape)
    after = np.searchsorted(grid, days, side="right")
    for day, start in zip(days.tolist(), after.tolist()):
        pool[start:] += np.exp(rate * (grid[start:] - day))
    return pool


def _superposed(days: np.ndarray, grid: np.ndarray, response: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | None:
    """Sum over doses, in their order, of ``response(t)`` at the grid points after each dose (``t`` since it).

    From one table of ``response`` at the times that recur on the daily grid (:func:`_unit_times`;
    the same arguments, so the same values), each dose adding its slice; None when the times do
    not recur.
    """
    since = _unit_times(days, grid)
    if since is None:
        return None
    table = response(since)
    out = np.zeros(grid.shape)
    for start, day in zip(np.searchsorted(grid, days, side="right").tolist(), days.tolist()):
        if start < grid.size:
            first = int(grid[start] - day)  # grid[start] - day = first + 0.5
            out[start:] += table[first : first + grid.size - start]
    return out


def _unit_times(days: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Every time from a dose to a later grid point, ``0.5, 1.5, ...``, when these are exactly half-integers; else None.

    They are when the grid is mid-day times in unit steps and the dose days are whole (the daily
    grid of :class:`~vtrial.model.drugs.Exposure` and the schedules of the protocols), all well
    inside the range where float64 holds half-integers exactly: then ``grid[j] - day`` is the
    table's entry ``grid[j] - day - 0.5`` bit for bit.
    """
    if not days.size or not grid.size:
        return None
    exact = max(abs(float(grid[0])), abs(float(grid[-1])), float(np.abs(days).max())) < 2.0**40
    if not (
        exact
        and float(grid[0]) % 1.0 == 0.5
        and np.array_equal(grid, grid[0] + np.arange(grid.size))
        and np.array_equal(days, np.floor(days))
    ):
        return None
    return np.arange(max(int(grid[-1] - days.min()), 0) + 1) + 0.5


def last_dose_decay(days: np.ndarray, half_life_days: float, grid: np.ndarray) -> np.ndarray:
    """Exposure in [0, 1]: full at each dose, halving every ``half_life_days`` since the last one."""
    if days.size == 0:
        return np.zeros(grid.shape)
    last = np.searchsorted(days, grid, side="right") - 1
    since = grid - days[np.maximum(last, 0)]
    return np.where(last >= 0, np.exp(-np.log(2.0) / half_life_days * since), 0.0)


def emax_effect(amount: np.ndarray, emax: float, ec50: float, hill: float) -> np.ndarray:
    """Sigmoid Emax of an amount: ``emax a^h / (ec50^h + a^h)``."""
    a = np.power(np.maximum(amount, 0.0) / ec50, hill)
    return emax * a / (1.0 + a)
