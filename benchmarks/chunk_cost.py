"""What batch invariance by construction costs: the vmapped layout with every group's chunk of
``plan.chunk_groups`` groups (``core.train``'s ``lax.map`` over chunks) against the same batch
as one chunk of all G groups (the layout before chunking), timed interleaved on this machine.

    python benchmarks/chunk_cost.py [--repeats 5] [--steps 200] [--json F]

Each row: the bench workload (``bench.study_for``, stop_on_success off) at one width, trial
count and vary, planned for this platform and forced to the vmapped layout (the GPU's; on a
CPU the plan picks it for depth > 1 and for tabular studies), one device. Prints the median
seconds of a batch of S steps, old and new, and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import jax

from parity_jax import bench, devices, kinds, plan, timing

ROWS = [(100, 64, "both"), (100, 256, "init"), (1000, 64, "both"), (1000, 256, "init")]


def row(width: int, trials: int, vary: str, steps: int, repeats: int) -> dict:
    study = bench.study_for(width, trials, vary, steps)
    p = kinds.parity.make_plan(study, n_devices=1)
    pb = p.batches[0]
    shape = dataclasses.replace(pb.shape, layout="vmapped", chunk=1)
    chunk = plan.chunk_groups(jax.default_backend() == "cpu", "vmapped", shape.P, shape.W,
                              study_groups=shape.G)
    G = plan.round_groups(shape.G, chunk, 1, False)
    shapes = {"old (one chunk of G)": dataclasses.replace(shape, G=G, chunk=G),
              f"new (chunks of {chunk})": dataclasses.replace(shape, G=G, chunk=chunk)}
    slots = pb.slots + ((None,) * shape.P,) * (G - len(pb.slots))
    padded = dataclasses.replace(pb, slots=slots, shape=dataclasses.replace(shape, G=G))
    inputs = kinds.parity.batch_inputs(study, p.cells, padded)
    timers = {}
    for name, s in shapes.items():
        fn = devices.program(s, 1).lower(inputs).compile()
        jax.block_until_ready(fn(inputs))  # warm
        timers[name] = lambda fn=fn: jax.block_until_ready(fn(inputs))
    t = timing.interleaved(timers, repeats)
    old, new = t.values()
    return {"width": width, "trials": trials, "vary": vary, "G": G, "P": shape.P,
            "chunk": chunk, "steps": steps, "old_s": old, "new_s": new, "new_over_old": new / old}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    devices.setup()
    rows = []
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}, steps {args.steps}, "
          f"median of {args.repeats} interleaved")
    print(f"{'width':>6} {'trials':>6} {'vary':>5} {'G x P':>9} {'chunk':>5} "
          f"{'old s':>8} {'new s':>8} {'new/old':>7}")
    for width, trials, vary in ROWS:
        r = row(width, trials, vary, args.steps, args.repeats)
        rows.append(r)
        print(f"{width:>6} {trials:>6} {vary:>5} {r['G']:>4} x {r['P']:<3} {r['chunk']:>5} "
              f"{r['old_s']:>8.3f} {r['new_s']:>8.3f} {r['new_over_old']:>7.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
