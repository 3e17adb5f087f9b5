"""Fit the population parameters to the calibration targets (``vtrial calibrate``).

One parameter set for every replica: only the protocols differ. Each free parameter
(:data:`FITTED`) is searched on the log scale inside its plausible range through an unbounded
logistic coordinate, ``log v = log low + (log high - log low) / (1 + exp(-z))``, with
:func:`scipy.optimize.least_squares` (trust region, soft-L1 loss so that a target the model
cannot reach does not dominate). The Jacobian is a forward difference of :data:`STEP` in
``log v`` (about 10%), carried to ``z`` by the chain rule. The residual of a check is its
distance from the published value in half-widths of its tolerance
(:func:`vtrial.calibration.targets.residual`): ``|r| <= 1`` is inside. Every evaluation
simulates the same virtual patients (fixed seeds and replicate: common random numbers), so the
objective is a deterministic, nearly smooth function of the parameters and the fit is
reproducible. The fit uses its own replicate of the random streams, so ``vtrial validate``
(replicate 0) checks the result on other virtual patients.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from vtrial.calibration.replicas import load_replicas, run_replicas
from vtrial.calibration.statistics import estimate
from vtrial.calibration.targets import CHECKS, check_tolerance, residual, target_version
from vtrial.calibration.validate import replica_names
from vtrial.errors import UserInputError
from vtrial.model.parameters import REGISTRY
from vtrial.store import atomic_write_text

#: The checks the fit's cost sums: the version-1 targets. The version-2 targets are validated
#: (``vtrial validate``) but were added after the last fit and are not fitted yet.
FIT_CHECKS = tuple(c for c in CHECKS if target_version(c.target) == 1)
#: The fitted model parameters (vtrial/model/parameters.py), each inside its plausible range.
FITTED: tuple[str, ...] = (
    "fracture_base_hazard",
    "radiation_hazard",
    "hypercalcaemia_hazard",
    "death_hazard.breast",
    "death_hazard.prostate",
    "death_hazard.lung",
    "death_hazard.head_and_neck",
    "death_log_hr_ecog",
    "death_log_hr_visceral",
    "zoledronic_acid_emax",
    "pamidronate_emax",
    "doubling_time_days.prostate",
    "doubling_time_days.lung",
    "doubling_time_days.breast",
    "pain_blastic_gain",
    "pain_growth_exponent",
    "pain_acid_gain",
    "death_growth_exponent",
    "death_log_hr_burden",
    "strength_tumour_loss",
    "fracture_strength_slope",
    "tgf_beta_growth_gain",
    "calcium_per_release",
    "calcium_lesion_weight",
)
#: Residual of a check whose statistic cannot be estimated (e.g. no SRE in an arm).
MISSING_RESIDUAL = 3.0
#: Finite-difference step of the Jacobian, in log units (about a 10% change of a parameter).
STEP = 0.1
#: A start at the end of a range moves this fraction of the log-range inside (finite ``z``).
EDGE = 0.02
#: Defaults of ``vtrial calibrate``: patients per replica, evaluation budget, replicate.
DEFAULT_PATIENTS, DEFAULT_EVALUATIONS, FIT_REPLICATE = 1000, 100, 1


class _BudgetSpent(Exception):
    """Raised inside the objective once the evaluation budget is spent."""


@dataclass
class FitResult:
    """The fitted values, where the fit started and how the objective went."""

    start: dict[str, float]
    fitted: dict[str, float]
    cost_start: float
    cost: float
    evaluations: int
    inside: int
    checks: int
    finished: bool
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        """The result as JSON text."""
        return json.dumps(self.__dict__, indent=2) + "\n"


def residuals(observations: Mapping) -> np.ndarray:
    """Residuals of every check with a numeric tolerance (medians "not reached" are left out)."""
    out = []
    for check in FIT_CHECKS:
        tol = check_tolerance(check)
        if tol.centre is None:
            continue
        sim = estimate(observations, check)
        r = residual(tol, sim.value, sim.ceiling) if sim.value is not None or sim.ceiling is not None else None
        out.append(MISSING_RESIDUAL if r is None else r)
    return np.asarray(out)


class Coordinates:
    """The map between parameter values and the unbounded coordinates ``z`` of the optimiser."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.start = np.array([REGISTRY[n].value for n in names])
        self.log_low = np.log([REGISTRY[n].low for n in names])
        self.width = np.log([REGISTRY[n].high for n in names]) - self.log_low

    def position(self, values: np.ndarray) -> np.ndarray:
        """Place of ``log v`` in the log-range, 0 at the low end and 1 at the high end."""
        return (np.log(values) - self.log_low) / self.width

    def z_of(self, values: np.ndarray) -> np.ndarray:
        """Coordinates of values (a value at the end of its range is moved :data:`EDGE` inside)."""
        q = np.clip(self.position(values), EDGE, 1 - EDGE)
        return np.log(q / (1 - q))

    def values(self, z: np.ndarray) -> np.ndarray:
        """Parameter values at coordinates ``z``."""
        return np.exp(self.log_low + self.width / (1 + np.exp(-z)))


def log_jacobian(
    evaluate: Callable[[np.ndarray], np.ndarray], values: np.ndarray, coords: Coordinates
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals at ``values`` and their Jacobian with respect to ``log v``.

    Forward differences of :data:`STEP` in ``log v``, backwards where a forward step would
    leave the plausible range (the fit and the uncertainty of :mod:`.uncertainty` share it).
    """
    f0, columns = evaluate(values), []
    for i in range(len(values)):
        h = STEP if coords.position(values)[i] + STEP / coords.width[i] <= 1 else -STEP
        columns.append((evaluate(values * np.exp(h * np.eye(len(values))[i])) - f0) / h)
    return f0, np.column_stack(columns)


def fit(
    out: str | Path,
    *,
    patients: int = DEFAULT_PATIENTS,
    evaluations: int = DEFAULT_EVALUATIONS,
    jobs: int | None = None,
    replicate: int = FIT_REPLICATE,
    trials: str | Path | None = None,
    names: tuple[str, ...] = FITTED,
    on_evaluation: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Fit ``names`` to the targets and write ``calibration.json`` into ``out``.

    Parameters
    ----------
    out : path
        Folder for ``calibration.json`` (fitted values, start, cost, every evaluation), rewritten
        after every evaluation with the best point so far (``finished`` false until the end).
    patients : int
        Patients per replica protocol during the fit.
    evaluations : int
        Budget of objective evaluations (each simulates every replica); the best point seen is
        returned when it is spent.
    jobs : int, optional
        Parallel workers, one replica per task.
    replicate : int
        Replicate of the random streams used by every evaluation (common random numbers).
    trials : path, optional
        Folder of the replica protocols.
    names : tuple of str
        Parameters to fit (registered in :data:`vtrial.model.parameters.REGISTRY`).
    on_evaluation : callable, optional
        Called as ``on_evaluation(count, cost)`` after each evaluation.
    """
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UserInputError(
            f"unknown model parameter(s) {unknown}",
            field="--parameter",
            fix="name parameters of vtrial/model/parameters.py",
        )
    if any(REGISTRY[n].low <= 0 for n in names):
        raise UserInputError(
            "a fitted parameter's range starts at 0, which has no log scale",
            field="--parameter",
            fix="fit parameters with a positive plausible range",
        )
    if evaluations < len(names) + 2:
        raise UserInputError(
            f"--evaluations {evaluations} is too few for {len(names)} parameters",
            field="--evaluations",
            fix=f"pass at least {len(names) + 2}",
        )
    protocols = load_replicas(replica_names(FIT_CHECKS), trials)
    coords = Coordinates(names)
    history: list[dict] = []
    cache: dict[tuple, np.ndarray] = {}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def record(finished: bool) -> FitResult:
        # the best point so far, written after every evaluation: an interrupted fit keeps it
        best = min(history, key=lambda h: h["cost"])
        result = FitResult(
            start=dict(zip(names, coords.start.tolist())),
            fitted=best["parameters"],
            cost_start=history[0]["cost"],
            cost=best["cost"],
            evaluations=len(history),
            inside=best["inside"],
            checks=len(cache[next(iter(cache))]),
            finished=finished,
            history=history,
        )
        atomic_write_text(out / "calibration.json", result.to_json())
        return result

    def evaluate(values: np.ndarray) -> np.ndarray:
        key = tuple(np.round(np.log(values), 12))
        if key not in cache:
            if len(history) >= evaluations:
                raise _BudgetSpent
            started = time.perf_counter()
            overrides = dict(zip(names, values.tolist()))
            r = residuals(run_replicas(protocols, patients, replicate=replicate, parameters=overrides, jobs=jobs))
            cache[key] = r
            cost = float(np.sum(np.sqrt(1 + r**2) - 1))  # the soft-L1 cost least_squares minimises
            history.append(
                {
                    "parameters": overrides,
                    "cost": cost,
                    "inside": int(np.sum(np.abs(r) <= 1)),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            record(finished=False)
            if on_evaluation:
                on_evaluation(len(history), cost)
        return cache[key]

    def jacobian(z: np.ndarray) -> np.ndarray:
        # d r / d log v, then d log v / dz
        q = 1 / (1 + np.exp(-z))
        return log_jacobian(evaluate, coords.values(z), coords)[1] * (coords.width * q * (1 - q))

    try:
        least_squares(
            lambda z: evaluate(coords.values(z)),
            coords.z_of(coords.start),
            jac=jacobian,
            method="trf",
            loss="soft_l1",
            f_scale=1.0,
        )
    except _BudgetSpent:
        pass
    return record(finished=True)
