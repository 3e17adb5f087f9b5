"""Parameter uncertainty of the fit: a Laplace approximation around the fitted parameters and its draws.

``vtrial calibrate --uncertainty`` linearises the calibration around the fitted values (the
registry's values of :data:`~vtrial.calibration.fit.FITTED`): ``J`` is the finite-difference
Jacobian of the standardised residuals (distance from each target in half-widths of its
tolerance) with respect to ``log v`` (:func:`~vtrial.calibration.fit.log_jacobian`, common
random numbers), and the parameters' covariance on the log scale is ``s^2 (J^T J)^+`` with
``s^2 = sum(r^2) / (n - p)``. Directions of ``J^T J`` with an eigenvalue below :data:`RCOND`
times the largest are not identified by the targets: the pseudo-inverse gives them no spread,
and they are listed in the sidecar.

The draws are centred on the fit. A parameter whose fitted value is closer to an end of its
plausible range than :data:`EDGE_SD` standard deviations is held at its fitted value and the
others are drawn from the normal conditional on it (:func:`hold_at_edges`; this also holds one
of a pair the targets see only through its product). The draws come in mirrored pairs
``log v_hat +/- delta``, a pair rejected whole when either member leaves a range
(:func:`sample`), so their distribution is symmetric about the fit. The ensemble is written next
to the parameters (``vtrial/data/parameter-draws.csv`` and its sidecar ``.json``) with the
fingerprint of the parameter set it was made for; a run refuses an ensemble made for another
one (:func:`load_ensemble`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import numpy as np

from vtrial.calibration.fit import (
    DEFAULT_PATIENTS,
    FIT_CHECKS,
    FIT_REPLICATE,
    FITTED,
    Coordinates,
    log_jacobian,
    residuals,
)
from vtrial.calibration.replicas import load_replicas, run_replicas
from vtrial.calibration.validate import replica_names
from vtrial.errors import UserInputError
from vtrial.model.parameters import REGISTRY
from vtrial.store import atomic_write_json, atomic_write_text

#: The shipped ensemble: one row per draw, one column per fitted parameter; its sidecar says how it was made.
DRAWS_CSV = Path(__file__).resolve().parents[1] / "data" / "parameter-draws.csv"
#: Name of the method, as recorded in the sidecar and in ``summary.json``.
METHOD = "laplace-mirrored"
#: Defaults of ``vtrial calibrate --uncertainty``: draws and their seed (patients per replica: the fit's).
DEFAULT_DRAWS, DRAW_SEED = 200, 20240
#: Eigenvalues of ``J^T J`` below this fraction of the largest are not identified.
RCOND = 1e-6
#: A parameter whose fitted value is within this many (conditional) standard deviations of an end of
#: its range is held at the fit: a symmetric interval that narrow keeps less than 38% of its normal mass.
EDGE_SD = 0.5
#: Candidates drawn per round of rejection sampling, and the most rounds before giving up.
BATCH, MAX_ROUNDS = 1000, 1000
#: The regeneration command (the fix of a missing or stale ensemble).
REGENERATE = "vtrial calibrate --uncertainty"


def refuse_fit_options(**given: object) -> None:
    """Refuse the fit's own options with ``--uncertainty``: the ensemble is made around the fitted values."""
    for name, value in given.items():
        if value:
            raise UserInputError(
                "is an option of the fit, not of --uncertainty",
                field=f"--{name}",
                fix=f"drop --{name}: the ensemble is made around all fitted values, on the fit's replicate",
            )


def parameter_fingerprint(names: tuple[str, ...] = FITTED) -> str:
    """SHA-256 of the fitted parameters' names and current values: what an ensemble was made for."""
    text = "\n".join(f"{name}={REGISTRY[name].value!r}" for name in names)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Laplace:
    """Normal approximation of the parameters on the log scale around the fit."""

    names: tuple[str, ...]
    centre: np.ndarray
    covariance: np.ndarray
    scale2: float
    dof: int
    rank: int
    non_identified: list[dict]
    #: Parameters held at their fitted value (:func:`hold_at_edges`), in the order they were held,
    #: each with its standard deviation of ``log v`` and its room to the nearer range end, in those
    #: standard deviations, when it was held.
    held: dict[str, dict] = field(default_factory=dict)

    def sd(self) -> dict[str, float]:
        """Standard deviation of each ``log v``."""
        return dict(zip(self.names, np.sqrt(np.clip(np.diag(self.covariance), 0, None)).tolist()))


def laplace(residual: Callable[[np.ndarray], np.ndarray], names: tuple[str, ...] = FITTED) -> Laplace:
    """Covariance ``s^2 (J^T J)^+`` of ``log v`` around the registry's values of ``names``.

    ``residual(values)`` gives the standardised residuals at parameter values (in the order of
    ``names``). The pseudo-inverse keeps only the eigen-directions of ``J^T J`` above
    :data:`RCOND` times the largest eigenvalue; each dropped one is returned with its three
    largest loadings.
    """
    coords = Coordinates(names)
    r, jac = log_jacobian(residual, coords.start, coords)
    dof = len(r) - len(names)
    if dof < 1:
        raise UserInputError(
            f"{len(r)} targets cannot determine {len(names)} parameters",
            field="--parameter",
            fix="fit fewer parameters than there are targets",
        )
    scale2 = float(np.sum(r**2) / dof)
    eigenvalues, vectors = np.linalg.eigh(jac.T @ jac)
    kept = eigenvalues > RCOND * max(eigenvalues.max(), 0.0)
    inverse = np.where(kept, 1 / np.where(kept, eigenvalues, 1.0), 0.0)
    covariance = scale2 * (vectors * inverse) @ vectors.T
    dropped = []
    for value, vector in zip(eigenvalues[~kept], vectors[:, ~kept].T):
        top = np.argsort(-np.abs(vector))[:3]
        dropped.append({"eigenvalue": float(value), "loadings": {names[i]: round(float(vector[i]), 4) for i in top}})
    return Laplace(tuple(names), np.log(coords.start), covariance, scale2, dof, int(kept.sum()), dropped)


def _room(names: tuple[str, ...], centre: np.ndarray) -> np.ndarray:
    """Distance on the log scale from ``centre`` to the nearer end of each parameter's plausible range."""
    low = np.log([REGISTRY[n].low for n in names])
    high = np.log([REGISTRY[n].high for n in names])
    return np.minimum(centre - low, high - centre)


def hold_at_edges(approximation: Laplace, edge_sd: float = EDGE_SD) -> Laplace:
    """The approximation with the parameters too close to a range end held at their fitted values.

    Repeatedly, the parameter with the least room to the nearer end of its range, in standard
    deviations of the current (conditional) normal, is held if that room is below ``edge_sd``,
    and the normal is conditioned on it (``C - C[:, j] C[j, :] / C[j, j]``, its row and column
    zero). Why: a fit at or near a range end is where the normal approximation fails (the
    likelihood continues past the end, the range does not); truncating it there moves the draws'
    centre off the fit. Holding it is what bounded least-squares fitters do with a parameter at
    an active bound; its own uncertainty (one-sided, into the range) is then not represented, and
    ``held`` records how large it was. A pair the targets see only through its product has a
    large standard deviation and little room, so one of the pair is held and the other carries
    the product's uncertainty.
    """
    names = approximation.names
    room = _room(names, approximation.centre)
    cov = approximation.covariance.copy()
    held: dict[str, dict] = {}
    while True:
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        ratio = np.divide(room, sd, out=np.full(len(names), np.inf), where=sd > 0)
        j = int(np.argmin(ratio))
        if ratio[j] >= edge_sd:
            return dataclasses.replace(approximation, covariance=cov, held=held)
        held[names[j]] = {"sd_log": float(sd[j]), "room_sd": float(ratio[j])}
        cov = cov - np.outer(cov[:, j], cov[j, :]) / cov[j, j]
        cov[j, :] = cov[:, j] = 0.0
        cov = (cov + cov.T) / 2


def sample(approximation: Laplace, draws: int, seed: int = DRAW_SEED) -> np.ndarray:
    """``draws`` parameter sets (rows) in mirrored pairs about the centre, each inside every plausible range.

    Rows ``2i`` and ``2i + 1`` are ``exp(centre + delta_i)`` and ``exp(centre - delta_i)`` with
    ``delta_i`` normal with the approximation's covariance (0 for the held parameters); a pair
    with either member outside a range is rejected whole, so the accepted ``delta`` are
    symmetric about 0 and the draws are centred on the fit. An odd ``draws`` ends with the first
    member of a pair. Candidates come in rounds of :data:`BATCH` from one generator, so the
    ensemble depends only on the seed.
    """
    names, centre = approximation.names, approximation.centre
    room = _room(names, centre)
    held = [names.index(n) for n in approximation.held]
    rng = np.random.default_rng(seed)
    pairs = (draws + 1) // 2
    accepted: list[np.ndarray] = []
    for _ in range(MAX_ROUNDS):
        delta = rng.multivariate_normal(np.zeros(len(names)), approximation.covariance, size=BATCH, method="eigh")
        delta[:, held] = 0.0
        accepted.extend(delta[np.all(np.abs(delta) <= room, axis=1)])
        if len(accepted) >= pairs:
            delta = np.array(accepted[:pairs])
            return np.exp(np.stack([centre + delta, centre - delta], axis=1).reshape(-1, len(names))[:draws])
    raise UserInputError(
        f"fewer than {pairs} of {BATCH * MAX_ROUNDS} mirrored pairs of draws fell inside the plausible ranges",
        field="--draws",
        fix="ask for fewer draws, or refit so that the fit is inside the ranges",
    )


def write_ensemble(path: Path, values: np.ndarray, approximation: Laplace, meta: dict) -> None:
    """Write the draws (CSV, one row per draw) and their sidecar JSON next to it, each atomically."""
    names = approximation.names
    rows = [",".join(["draw", *names])]
    rows += [",".join([str(i), *(f"{v:.10g}" for v in row)]) for i, row in enumerate(values)]
    text = "\n".join(rows) + "\n"
    atomic_write_text(path, text)
    atomic_write_json(
        path.with_suffix(".json"),
        {
            "method": METHOD,
            "description": "Laplace approximation around the fit: log-normal, covariance s^2 (J^T J)^+ of the "
            f"standardised residuals on log parameters; parameters within {EDGE_SD:g} sd of a range end held at "
            "the fit, the others conditional on them; mirrored pairs about the fit, a pair rejected whole when "
            "either member leaves a plausible range",
            **meta,
            "draws": len(values),
            "parameter_fingerprint": parameter_fingerprint(names),
            "draws_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "parameters": list(names),
            "fitted": {n: REGISTRY[n].value for n in names},
            "residual_scale2": approximation.scale2,
            "degrees_of_freedom": approximation.dof,
            "rank": approximation.rank,
            "non_identified": approximation.non_identified,
            "held": approximation.held,
            "sd_log": approximation.sd(),
        },
    )


def generate(
    *,
    draws: int = DEFAULT_DRAWS,
    patients: int = DEFAULT_PATIENTS,
    jobs: int | None = None,
    trials: str | Path | None = None,
    seed: int = DRAW_SEED,
    path: Path | None = None,
    on_evaluation: Callable[[int, int], None] | None = None,
) -> dict:
    """Compute the Laplace approximation on the replicas and write ``draws`` parameter sets to ``path``.

    Every evaluation simulates every replica with ``patients`` patients on the fit's replicate
    (common random numbers); ``len(FITTED) + 1`` evaluations in all. Returns the sidecar.
    """
    if draws < 1:
        raise UserInputError(
            f"--draws must be at least 1, got {draws}",
            field="--draws",
            fix=f"pass a positive number of draws (default {DEFAULT_DRAWS})",
        )
    protocols = load_replicas(replica_names(FIT_CHECKS), trials)
    count = 0

    def residual(values: np.ndarray) -> np.ndarray:
        nonlocal count
        observed = run_replicas(
            protocols, patients, replicate=FIT_REPLICATE, parameters=dict(zip(FITTED, values.tolist())), jobs=jobs
        )
        count += 1
        if on_evaluation:
            on_evaluation(count, len(FITTED) + 1)
        return residuals(observed)

    approximation = hold_at_edges(laplace(residual))
    meta = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "patients": patients,
        "replicate": FIT_REPLICATE,
        "seed": seed,
        "evaluations": count,
    }
    path = DRAWS_CSV if path is None else Path(path)
    write_ensemble(path, sample(approximation, draws, seed), approximation, meta)
    return json.loads(path.with_suffix(".json").read_text())


def load_ensemble(k: int, path: Path | None = None) -> tuple[list[dict[str, float]], dict]:
    """The first ``k`` parameter sets of the ensemble and its sidecar, checked against the model.

    Raises
    ------
    UserInputError
        ``k`` negative or more than the ensemble holds; the ensemble missing, altered, or made
        for another parameter set (a refit changed the fitted values: regenerate it).
    """
    flag = "--parameter-draws"
    if k < 0:
        raise UserInputError(
            f"must be 0 or more, got {k}",
            field=flag,
            fix="pass the number of parameter sets to run, or 0 (the default) for none",
        )
    path = DRAWS_CSV if path is None else Path(path)
    sidecar_path = path.with_suffix(".json")
    if not path.is_file() or not sidecar_path.is_file():
        raise UserInputError(
            "the parameter ensemble (draws and sidecar) is missing",
            file=path,
            field=flag,
            fix=f"generate it with `{REGENERATE}`",
        )
    text = path.read_text()
    try:
        sidecar = json.loads(sidecar_path.read_text())
        fingerprint, sha = sidecar["parameter_fingerprint"], sidecar["draws_sha256"]
        names = tuple(sidecar["parameters"])
    except (ValueError, KeyError, TypeError) as problem:
        raise UserInputError(
            f"is not an ensemble sidecar ({problem})",
            file=sidecar_path,
            field=flag,
            fix=f"regenerate the ensemble with `{REGENERATE}`",
        ) from None
    if hashlib.sha256(text.encode()).hexdigest() != sha:
        raise UserInputError(
            "the draws differ from those its sidecar describes",
            file=path,
            field=flag,
            fix=f"regenerate the ensemble with `{REGENERATE}`",
        )
    if names != FITTED or fingerprint != parameter_fingerprint():
        raise UserInputError(
            f"the ensemble was made for another parameter set (fingerprint {fingerprint[:12]}, the model's is "
            f"{parameter_fingerprint()[:12]}): the parameters were refitted since",
            file=sidecar_path,
            field=flag,
            fix=f"regenerate it with `{REGENERATE}`, or run without {flag}",
        )
    rows = [line.split(",") for line in text.splitlines()[1:]]
    if k > len(rows):
        raise UserInputError(
            f"asks for {k} parameter sets but the ensemble holds {len(rows)}",
            field=flag,
            fix=f"pass at most {len(rows)}, or regenerate a larger ensemble with `{REGENERATE} --draws {k}`",
        )
    return [dict(zip(names, map(float, row[1:]))) for row in rows[:k]], sidecar
