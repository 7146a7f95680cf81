#!/usr/bin/env python3
"""Start-up benchmark of the mcexplore CLI (a measurement, not a test: it asserts nothing).

Runs each command several times, each as a separate process, and prints the min and median wall
seconds and CPU seconds (user + system of the child, from ``resource.getrusage(RUSAGE_CHILDREN)``
deltas) of each:

* ``mcexplore --help`` (the console script installed beside this Python, not a pyenv shim),
* ``python -c "import mcexplore.cli"``,
* a one-trial ``mcexplore run`` of a small scenario on the native and on the numpy backend.

The native backend caches its compiled library, so every command gets one untimed warm-up run
first. Targets (issue #9, item 7, on a 2-core machine): ``--help`` under 0.3 s, a one-trial run
under 1 s.

Usage: python3 scripts/bench-startup.py [--repeat N] [--only NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["run", "thread-2018", "-n", "1", "-s", "drop", "--set", "page.mapcount=4",
         "--set", "page.active=4", "--no-progress"]


def _cli() -> list[str]:
    """The ``mcexplore`` console script beside this interpreter (a pyenv shim costs ~50 ms of
    bash per call, which is not mcexplore's start-up); else ``python -m mcexplore.cli``."""
    here = Path(sys.executable).parent / "mcexplore"
    if here.exists():
        return [str(here)]
    found = shutil.which("mcexplore")
    if found and "shims" not in found:
        return [found]
    return [sys.executable, "-m", "mcexplore.cli"]


def commands() -> dict[str, list[str]]:
    cli = _cli()
    return {
        "help": cli + ["--help"],
        "import": [sys.executable, "-c", "import mcexplore.cli"],
        "run-native": cli + SMALL + ["--backend", "native"],
        "run-numpy": cli + SMALL + ["--backend", "numpy"],
    }


def measure(argv: list[str], repeat: int, env: dict) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeat`` runs of ``argv`` (after one untimed warm-up run)."""
    walls, cpus = [], []
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr.decode()[-2000:]}")
        if i == 0:
            continue  # warm-up: the native library's cache, the OS page cache, .pyc files
        walls.append(wall)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return walls, cpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per command (default 7)")
    ap.add_argument("--only", nargs="*", default=None, help="command names to run (default: all)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmds = commands()
    rows = {}
    for name, argv in cmds.items():
        if args.only and name not in args.only:
            continue
        walls, cpus = measure(argv, args.repeat, env)
        rows[name] = {"argv": argv, "runs": len(walls),
                      "wall_min": min(walls), "wall_median": statistics.median(walls),
                      "cpu_min": min(cpus), "cpu_median": statistics.median(cpus)}
        if not args.json:
            r = rows[name]
            print(f"{name:<11} wall min {r['wall_min']:6.3f} s  median {r['wall_median']:6.3f} s   "
                  f"cpu min {r['cpu_min']:6.3f} s  median {r['cpu_median']:6.3f} s   "
                  f"({r['runs']} runs: {' '.join(argv[1:]) if len(argv) > 1 else argv[0]})", flush=True)
    if args.json:
        print(json.dumps({"cores": os.cpu_count(), "python": sys.version.split()[0], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
