"""The generated parts of ``docs/model.md``: parameter values, the parameter table, the coverage table.

Every parameter value the document quotes is a placeholder filled from the registry,
``<!-- p:NAME -->VALUE<!-- /p -->`` (``.4g``, the table's format), and the parameter and coverage
tables sit between ``<!-- generated:parameters -->`` / ``<!-- generated:coverage -->`` and
``<!-- /generated -->``. :func:`render` refills them; a test keeps the document equal to its
rendering, so a changed or newly registered parameter (any agent or engineer adding one to
:data:`~vtrial.model.parameters.REGISTRY`) shows up without editing the prose.
``python -m vtrial.model.docs`` rewrites ``docs/model.md`` in place.

The numbers the prose *measures* by running the model are placeholders too,
``<!-- m:SCENARIO.NUMBER -->TEXT<!-- /m -->``, refilled with the printed text stored in
``docs/measurements.json``, which ``python -m vtrial.measurements`` writes by re-running the
scenarios of :mod:`vtrial.measurements` (this module only reads the file: the model runs no
scenario).

:data:`COVERAGE` maps each tumour–bone player to the nodes of the code that carry it: a name
with a dot is an attribute path under :mod:`vtrial.model` (module, function, class or dataclass
field), a bare name a registry parameter; a test resolves every one. A player without a node
says so (``absent``) and what, if anything, stands in for it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from vtrial.model.parameters import REGISTRY, markdown_table
from vtrial.store import atomic_write_text

#: The document this module generates parts of.
MODEL_DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"
#: The measured numbers it quotes, written by ``python -m vtrial.measurements``.
MEASUREMENTS_JSON = MODEL_DOC.parent / "measurements.json"
_VALUE = re.compile(r"<!-- p:([\w.]+) -->(.*?)<!-- /p -->")
_MEASURED = re.compile(r"<!-- m:([\w.]+) -->(.*?)<!-- /m -->")
_BLOCK = re.compile(r"(<!-- generated:(\w+) -->\n)(.*?)(<!-- /generated -->)", re.S)


class Player(NamedTuple):
    """One row of the coverage table."""

    player: str
    #: nodes in the code (attribute paths under ``vtrial.model`` or registry names); empty: absent
    nodes: tuple[str, ...]
    #: how the code carries it: explicit, "lumped into ...", or "absent ..."
    how: str
    #: the custom-agent mechanism field that acts on it, or "none"
    mechanism: str


COVERAGE: tuple[Player, ...] = (
    Player(
        "PTHrP",
        ("lesion._signals", "pthrp_lytic", "pthrp_blastic", "lesion.LesionState.m"),
        "explicit: `P` from tumour signal × phenotype × the patient's secretion × the matrix induction `M`",
        "`pthrp_inhibition`",
    ),
    Player(
        "RANKL / OPG",
        ("rankl_per_pthrp", "opg_per_pthrp", "agents.base.Course.rankl_inhibition"),
        "explicit algebraic ratio `ρ = (1 + a_P P)(1 + c_P P)(1 − I)`, PTHrP-driven",
        "`rankl_inhibition`",
    ),
    Player(
        "M-CSF",
        ("drugs.StepInputs.recruitment",),
        "lumped into the osteoclast recruitment `X` (permissive, not regulated)",
        "`osteoclast_inhibition` (approx.)",
    ),
    Player(
        "osteoclasts",
        ("lesion.osteoclast_activity", "rankl_osteoclast_survival"),
        "explicit, quasi-steady `u = X²/v`; RANKL also keeps them alive, offsetting part of a bisphosphonate's "
        "loss in a lesion in proportion to its RANKL excess",
        "`osteoclast_inhibition`, `rankl_inhibition`",
    ),
    Player(
        "osteoblasts",
        ("lesion.LesionState.w", "osteoblast_rate", "skeleton.advance", "osteoblast_rankl_blastic"),
        "explicit: `v` per lesion (as `w = v²`) and `v_S` of the uninvolved skeleton; the blastic drive's "
        "osteoblasts add RANKL",
        "via the drive and stimulation",
    ),
    Player(
        "TGF-β (matrix)",
        ("lesion.Signals.tgf_beta", "tgf_beta_growth_gain", "tgf_beta_pthrp_gain", "lesion.pthrp_induction"),
        "explicit: released from resorbed matrix `uZ`, feeds tumour growth and induces tumour PTHrP (`M`): "
        "the vicious cycle",
        "`tgf_beta_inhibition`",
    ),
    Player(
        "calcium",
        ("markers.calcium", "simulate._hypocalcaemia", "calcium_per_release"),
        "explicit: albumin-corrected serum calcium every step from the bone fluxes and PTHrP; "
        "hypocalcaemia is its fall below grade 2",
        "none",
    ),
    Player(
        "CaSR",
        ("calcium_pthrp_gain", "lesion.pthrp_induction"),
        "lumped: matrix calcium released by resorption induces tumour PTHrP (`M`); no CaSR on the "
        "parathyroid (PTH absent)",
        "none",
    ),
    Player(
        "IL-6",
        ("il6_recruitment_share", "il6_growth_share", "lesion.CellInputs.il6_keep"),
        "explicit as shares of the tumour's osteoclastogenic signal and of its growth in bone; stromal IL-6 absent",
        "`il6_inhibition`",
    ),
    Player(
        "MMPs",
        ("strength_tumour_loss",),
        "lumped into the strength lost per unit tumour burden (`c T`); no MMP in the RANKL ratio",
        "none",
    ),
    Player(
        "myeloid / immune cells",
        ("drugs.precursor_reserve",),
        "absent as cells: the precursor reserve `Q` is a lumped pool of committed osteoclast precursors "
        "(rebound after RANKL blockade), not a myeloid population; no immune control of the tumour",
        "none",
    ),
    Player(
        "BMPs / RUNX2",
        ("osteoblast_drive_blastic", "lesion.CellInputs.osteoblast_drive_keep"),
        "lumped into one osteoblastic drive `a_B φ H` of blastic lesions",
        "`osteoblast_drive_inhibition`",
    ),
    Player(
        "DKK1 / Wnt",
        ("osteoblast_drive_blastic", "lesion.CellInputs.osteoblast_drive_keep"),
        "lumped into the osteoblastic drive (Wnt) and the lytic osteoblast suppression (DKK1: "
        "`osteoblast_suppression_lytic`)",
        "`osteoblast_drive_inhibition`",
    ),
    Player(
        "endothelin-1",
        ("osteoblast_drive_blastic", "lesion.interface_share"),
        "lumped into the osteoblastic drive, carried by the tumour at the bone interface (the share `s` a "
        "bone-seeking alpha emitter depletes)",
        "`osteoblast_drive_inhibition`",
    ),
    Player(
        "sclerostin",
        ("lesion.CellInputs.osteoblast_production", "osteoblast_stimulation_max"),
        "lumped: an anabolic agent raises the osteoblast production `F` in lesions and skeleton",
        "`bone_formation_stimulation`",
    ),
    Player(
        "nerves / pain",
        (
            "events.pain_drive",
            "events.lesion_pain",
            "pain_acid_gain",
            "pain_burden_exponent",
            "pain_sensitisation_days",
            "pain_sensitised_share",
            "pain_sensitised_spread",
        ),
        "explicit: a per-lesion pain drive `T^a (1 + c_acid uZ)` (nerve sprouting, acid on TRPV1/ASIC3) and a "
        "per-lesion nerve-sensitisation state `N` that follows the drive up and holds it for months after a course "
        "(pain `(1 - q) P + q N`, sensitised share `q` per lesion): radiotherapy for pain, the pain response "
        "3 months after a course and re-treatment follow from them; no analgesic use",
        "via `osteoclast_inhibition`",
    ),
    Player(
        "niche / homing (CXCL12–CXCR4, α4β1–VCAM-1)",
        ("drugs.StepInputs.homing_keep", "seeding_hazard", "niche_resorption_exponent"),
        "lumped: the new-lesion hazard follows the systemic resorption of the bone cells land in (the niche, "
        "`R_S^e`) and one homing factor `K_h`; red-marrow site shares pick the site",
        "`homing_inhibition`",
    ),
    Player("GLI2", ("lesion._signals",), "lumped into PTHrP (GLI2 is upstream of it)", "`pthrp_inhibition`"),
    Player(
        "HIF-1α, new blood vessels",
        ("lesion.gompertz_rate",),
        "lumped into the Gompertz rate and capacity (`T ≤ 1`)",
        "`tumour_kill` (approx.)",
    ),
    Player(
        "Notch / Jagged1", ("rankl_per_pthrp",), "lumped into the PTHrP/RANKL drive", "`rankl_inhibition` (approx.)"
    ),
    Player("nestin, osteopontin, platelets", (), "absent", "none"),
)


def resolve(node: str) -> Any:
    """The object a coverage node names; raises ``LookupError`` if the code has no such node."""
    if "." not in node:
        if node not in REGISTRY:
            raise LookupError(f"no model parameter {node!r}")
        return REGISTRY[node]
    parts = node.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module("vtrial.model." + ".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
            if hasattr(obj, name):
                obj = getattr(obj, name)
            elif name in fields:
                obj = fields[name]
            else:
                raise LookupError(f"no node {node!r}: {name!r} is missing")
        return obj
    raise LookupError(f"no module for node {node!r}")


def coverage_table() -> str:
    """The coverage table of ``docs/model.md``."""
    rows = ["| Player | Node in the code | How | Custom mechanism |", "|---|---|---|---|"]
    for p in COVERAGE:
        nodes = ", ".join(f"`{n}`" for n in p.nodes) or "—"
        rows.append(f"| {p.player} | {nodes} | {p.how} | {p.mechanism} |")
    return "\n".join(rows)


def load_measurements(path: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """The stored measurements (default :data:`MEASUREMENTS_JSON`): ``{scenario: {number: {"value", "text"}}}``."""
    return json.loads((path or MEASUREMENTS_JSON).read_text(encoding="utf-8"))


def measured_texts(measurements: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, str]:
    """The printed text of every stored number by its placeholder name ``SCENARIO.NUMBER``."""
    return {
        f"{sc}.{number}": entry["text"] for sc, numbers in measurements.items() for number, entry in numbers.items()
    }


def quoted_measurements(text: str) -> list[str]:
    """The names of the measured-number placeholders of ``text``, in order."""
    return [m.group(1) for m in _MEASURED.finditer(text)]


def render(text: str, measured: Mapping[str, str] | None = None) -> str:
    """``text`` with every parameter and measured placeholder and generated block refilled.

    ``measured`` maps ``SCENARIO.NUMBER`` to its printed text; by default from ``docs/measurements.json``.
    """
    texts = measured_texts(load_measurements()) if measured is None else measured

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in REGISTRY:
            raise KeyError(f"docs/model.md quotes an unknown model parameter {name!r}")
        return f"<!-- p:{name} -->{REGISTRY[name].value:.4g}<!-- /p -->"

    def measurement(match: re.Match) -> str:
        name = match.group(1)
        if name not in texts:
            raise KeyError(f"docs/model.md quotes an unknown measurement {name!r} (run python -m vtrial.measurements)")
        return f"<!-- m:{name} -->{texts[name]}<!-- /m -->"

    blocks = {"parameters": markdown_table, "coverage": coverage_table}

    def block(match: re.Match) -> str:
        return f"{match.group(1)}{blocks[match.group(2)]()}\n{match.group(4)}"

    return _BLOCK.sub(block, _MEASURED.sub(measurement, _VALUE.sub(value, text)))


def main() -> None:
    """Rewrite ``docs/model.md`` with its generated parts refilled (parameters, tables, measured numbers)."""
    text = MODEL_DOC.read_text(encoding="utf-8")
    atomic_write_text(MODEL_DOC, render(text))


if __name__ == "__main__":
    main()
