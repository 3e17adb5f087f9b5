"""Whether two checkouts simulate the same tables, bit for bit (``python -m benchmarks.identical``).

A speed change must leave every table identical. ``dump OUT`` simulates every protocol of
``protocols/`` and ``protocols/trials/`` (at most ``--patients`` patients each, blocks of
``--block`` patients, the protocol's seed) and the block of :mod:`benchmarks.block`, and pickles
each block's patient, event and marker columns; ``compare A B`` compares two dumps column by
column (float columns by their bytes, so ``-0.0``, NaN payloads and the last ulp count) and exits
with 1 if any differs. Run ``dump`` once with each checkout on ``PYTHONPATH``, as this file (the
protocols are this checkout's), e.g.
``PYTHONPATH=/path/to/main python benchmarks/identical.py dump /tmp/main.pkl``, then
``python -m benchmarks.identical compare /tmp/main.pkl /tmp/this.pkl``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

Dump = dict[str, list[tuple[dict, dict, dict]]]
TABLES = ("patients", "events", "markers")


def dump(out: Path, patients: int, block: int) -> None:
    """Simulate every protocol (capped at ``patients``) in blocks of ``block`` and the benchmark block; pickle the columns."""
    from benchmarks.block import PROTOCOL
    from vtrial.engine import plan_tasks, simulate_block
    from vtrial.protocol import load_protocol
    from vtrial.streams import Streams

    here = Path(__file__).resolve().parents[1] / "protocols"
    result: Dump = {}
    for path in sorted(here.glob("*.toml")) + sorted((here / "trials").glob("*.toml")):
        protocol = load_protocol(path)
        trial = protocol.trial.model_copy(update={"patients": min(protocol.trial.patients, patients)})
        protocol = protocol.model_copy(update={"trial": trial})
        streams = Streams(protocol.trial.seed)
        result[path.name] = [simulate_block(protocol, streams, t) for t in plan_tasks(protocol, streams, block)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "block.toml"
        path.write_text(PROTOCOL)
        protocol = load_protocol(path)
    streams = Streams(protocol.trial.seed)
    result["benchmarks.block"] = [simulate_block(protocol, streams, t) for t in plan_tasks(protocol, streams, 4096)]
    out.write_bytes(pickle.dumps(result))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tolist() == b.tolist() if a.dtype == object else a.tobytes() == b.tobytes()


def compare(a: Dump, b: Dump) -> list[str]:
    """The columns that differ (``protocol task table column``); empty when every table is identical."""
    if a.keys() != b.keys():
        return [f"protocols differ: {sorted(a.keys() ^ b.keys())}"]
    differ = []
    for name in a:
        if len(a[name]) != len(b[name]):
            differ.append(f"{name}: {len(a[name])} against {len(b[name])} tasks")
            continue
        for task, (left, right) in enumerate(zip(a[name], b[name])):
            for table, x, y in zip(TABLES, left, right):
                if x.keys() != y.keys():
                    differ.append(f"{name} {task} {table}: columns {sorted(x.keys() ^ y.keys())}")
                    continue
                differ += [f"{name} {task} {table} {c}" for c in x if not _same(np.asarray(x[c]), np.asarray(y[c]))]
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identical", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="simulate and pickle the tables of the code on PYTHONPATH")
    d.add_argument("out", type=Path)
    d.add_argument("--patients", type=int, default=600)
    d.add_argument("--block", type=int, default=256)
    c = sub.add_parser("compare", help="compare two dumps column by column")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out, args.patients, args.block)
        return
    a, b = (pickle.loads(p.read_bytes()) for p in (args.a, args.b))
    differ = compare(a, b)
    columns = sum(len(t) for tasks in a.values() for task in tasks for t in task)
    print(f"{len(a)} protocols, {columns} columns: {len(differ)} differ")
    for line in differ:
        print(line)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
