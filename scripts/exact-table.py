"""Print exact values next to Monte Carlo estimates and 99.9% intervals (the closing-note table).

Usage: python3 scripts/exact-table.py [--trials N] [--backend auto|numpy|native|cupy]
The cases are those of tests/test_exact_mc.py; only values the solver labels exact are shown.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_exact_mc import CASES, TRANSIENT_CASES, build_case, transient_scenario  # noqa: E402

from mcexplore import api  # noqa: E402
from mcexplore.exact import exact_for  # noqa: E402
from mcexplore.stats import proportion_ci  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--trials", type=int, default=100_000)
ap.add_argument("--backend", default="auto")
a = ap.parse_args()
print("| case | quantity | exact | estimate | 99.9% interval | backend |")
print("|---|---|---|---|---|---|")
ALL = [(cid, *build_case(strategy, overrides)) for cid, strategy, overrides in CASES]
ALL += [(f"transient-{cid}", transient_scenario(hold, rate), "ref") for cid, hold, rate in TRANSIENT_CASES]
for cid, sc, label in ALL:
    ex = exact_for(sc.compile(label))
    res = api.run(sc, trials=a.trials, seed=20181119, backend=a.backend, records=True, progress=False)
    rec = res[label].records
    n = len(rec)
    rows = []
    if ex["first_attempt_success"]["status"] == "exact":
        rows.append(("P(first attempt)", ex["first_attempt_success"]["value"],
                     int(((rec["attempts"] == 1) & (rec["migrated"] == 1)).sum())))
    if ex["call_failed"]["status"] == "exact":
        rows.append(("call_failed", ex["call_failed"]["value"], int(rec["call_failed"].sum())))
    if ex["attempts_pmf"]["exact_k"] >= 2:
        pmf = np.asarray(ex["attempts_pmf"]["value"][:2], dtype=float)
        rows.append(("P(attempts=2)", float(pmf[1]), int(((rec["attempts"] == 2) & (rec["migrated"] == 1)).sum())))
    if ex["attempts_tail"]["status"] == "exact":
        rows.append(("P(not migrated)", ex["attempts_tail"]["value"], int((rec["migrated"] == 0).sum())))
    for q, e, c in rows:
        ci = proportion_ci(c, n, 0.999)
        ok = "" if ci.lo <= e <= ci.hi else " **outside**"
        print(f"| {cid} | {q} | {e:.5f} | {c / n:.5f} | [{ci.lo:.5f}, {ci.hi:.5f}]{ok} | {res.backend} |")
