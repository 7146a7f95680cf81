"""Native/1 per CPU-second, two checkouts of mcexplore paired on the same trials.

  python3 scripts/ab-native.py BEFORE [--after .] [-s ref] [-n 20] [--set page.mapcount=2048] [--runs 5]

BEFORE and --after are checkouts (a `git worktree add /tmp/before <commit>` is one). Each run
starts a process per checkout, alternating (before, after, before, ...), that imports that
checkout's mcexplore, builds (or finds in the cache) the native library from that checkout's own
kernels, packs the configuration with that checkout's own code, and times trials [0, n) of it on
one thread (CPU seconds of the call alone, after a warm-up on other trials). It prints every run,
the medians and the median of the pair-by-pair ratios (docs/kernels.md, "Comparing two versions
of the code"). Records of two versions differ where the model changed between them: the line
says whether they agree. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(root: str, config: str, strategy: str, n: int, sets: list[str]) -> None:
    sys.path.insert(0, root)
    import mcexplore
    from mcexplore.engines import kernel_source, native
    from mcexplore.engines.pack import pack
    from mcexplore.scenario import load_scenario

    if not Path(mcexplore.__file__).resolve().is_relative_to(Path(root).resolve()):
        raise SystemExit(f"imported {mcexplore.__file__}, not the checkout {root}")
    # The checkout's own kernels, whatever an installed mcexplore's resources say.
    kernel_source._kernel_dir = lambda: Path(root) / "kernels"
    lib = native.build()
    sc = load_scenario(config, sets).with_strategies([strategy])
    P = pack(sc.compile(sc.labels()[0]))
    lib.simulate(P, 0, 10**9, 10**9 + 2, 1)
    t = time.process_time()
    out = lib.simulate(P, 0, 0, n, 1)
    cpu = time.process_time() - t
    print(json.dumps({"cpu_s": cpu, "records": hashlib.sha256(out[:, :15].tobytes()).hexdigest()}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("--after", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--config", default="thread-2018")
    ap.add_argument("-s", "--strategy", default="ref")
    ap.add_argument("-n", "--trials", type=int, default=20)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.before, a.config, a.strategy, a.trials, a.sets)
        return
    env = dict(os.environ)
    times = {"before": [], "after": []}
    records = {}
    for r in range(a.runs):
        for side in ("before", "after"):
            root = a.before if side == "before" else a.after
            cmd = [sys.executable, __file__, root, "--child", "--config", a.config, "-s", a.strategy,
                   "-n", str(a.trials)] + [x for s in a.sets for x in ("--set", s)]
            res = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PYTHONPATH": root})
            if res.returncode != 0:
                raise SystemExit(f"{side} ({root}) failed:\n{res.stderr[-2000:]}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            times[side].append(row["cpu_s"])
            records[side] = row["records"]
            print(f"run {r} {side:<6} {a.trials / row['cpu_s']:>12,.1f} trials/cpu-s", flush=True)
    ratios = [b / c for b, c in zip(times["before"], times["after"])]
    mb, ma = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"{a.strategy} {' '.join(a.sets)}: before {a.trials / mb:,.1f}, after {a.trials / ma:,.1f} trials/cpu-s "
          f"(medians); after is {statistics.median(ratios):.2f}x before (median of {a.runs} pairs, "
          f"{min(ratios):.2f}-{max(ratios):.2f}); records "
          + ("agree" if records["before"] == records["after"] else "differ (the model changed between them)"))


if __name__ == "__main__":
    main()
