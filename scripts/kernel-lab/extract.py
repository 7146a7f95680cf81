#!/usr/bin/env python3
"""kernel-lab: split a guest's results (its second serial port) into files and summarize them.

    python3 scripts/kernel-lab/extract.py RUN_DIR DATA_DIR

RUN_DIR holds results.txt (what init.sh wrote to ttyS1: "=====FILE name=====" ... "=====END
name=====" blocks) and console.log. DATA_DIR (scripts/kernel-lab/data/LABEL) gets:

- kit/: the calibration kit's output as record.sh wrote it (NAME.txt, NAME.bt, NAME.err,
  kit.json): what `mcexplore calibrate import` reads.
- guest.txt, kallsyms.txt, offline.txt, workload.txt, events.txt, record.log: as the guest wrote
  them; dmesg.txt cut to its lines about memory, migration, lockups and hung tasks.
- calls.txt: one line per memory-hotplug migrate_pages call (mm_migrate_pages tracepoint):
  t_ns succeeded failed (t relative to the first call).
- attempts.txt (attempts.txt.gz when over 100 kB): one line per migration attempt of the hot
  page (lab-migrate.bt ATT lines), t relative to the first call.
- lab-hist.txt: the histograms lab-migrate.bt printed at exit.
- summary.json: the counts derived from those (summarize()).

Standard library only; run-lab.sh calls it, and it can be rerun on a RUN_DIR.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
import sys
from pathlib import Path

FILE_RE = re.compile(r"^=====FILE (.+)=====$")
END_RE = re.compile(r"^=====END (.+)=====$")
DMESG_KEEP = re.compile(r"memory|migrat|offlin|onlin|lockup|hung|blocked for|BUG|WARNING|"
                        r"Call Trace|soft|rcu", re.I)


def split_results(text: str) -> dict[str, str]:
    files: dict[str, list[str]] = {}
    cur = None
    for line in text.replace("\r", "").split("\n"):
        m = FILE_RE.match(line)
        if m:
            cur = m.group(1)
            files[cur] = []
            continue
        if cur is not None and END_RE.match(line) and END_RE.match(line).group(1) == cur:
            cur = None
            continue
        if cur is not None:
            files[cur].append(line)
    return {k: "\n".join(v) + ("\n" if v else "") for k, v in files.items()}


def quantiles(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0}
    xs = sorted(xs)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))]
    return {"n": len(xs), "min": xs[0], "p10": q(0.10), "median": statistics.median(xs),
            "mean": statistics.fmean(xs), "p90": q(0.90), "max": xs[-1]}


def parse_offline(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if "OFFLINE" not in line:
            continue
        d = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        out.append({"rep": d.get("rep"), "pfn": d.get("pfn") or None,
                    "mapcount": int(d["mapcount"]) if d.get("mapcount", "").isdigit() else None,
                    "result": d.get("result"), "dur_s": int(d.get("dur_ns", 0)) / 1e9,
                    "t0_ns": int(d.get("t0_ns", 0)), "state_after": d.get("state"),
                    "timeout_s": int(d.get("timeout_s", 0))})
    return out


def summarize(files: dict[str, str]) -> tuple[dict, str, str, str]:
    lab = files.get("lab-migrate.txt", "")
    calls, atts, hist = [], [], []
    in_hist = False
    for line in lab.splitlines():
        p = line.split()
        if p[:1] == ["CALL"] and len(p) == 4:
            calls.append((int(p[1]), int(p[2]), int(p[3])))
        elif p[:1] == ["ATT"] and len(p) == 11:
            atts.append({"t": int(p[1]), "unmap_ns": int(p[2]), "premove_ns": int(p[3]),
                         "move_rc": int(p[4]), "refs": int(p[5]), "remap_ns": int(p[6]),
                         "waits": int(p[7]), "mapcount": int(p[8]), "remapped": int(p[9]),
                         "folio": p[10]})
        elif line.startswith("@") or in_hist:
            in_hist = True
            hist.append(line)
    offl = parse_offline(files.get("offline.txt", ""))
    t_origin = calls[0][0] if calls else (atts[0]["t"] if atts else 0)

    # which calls ran while a loaded offline was under way (not the after-stop one)
    loaded = [o for o in offl if o["rep"] != "after-stop"]

    def rep_of(t: int):
        for o in offl:
            if o["t0_ns"] <= t <= o["t0_ns"] + int(o["dur_s"] * 1e9) + 1_000_000:
                return o["rep"]
        return None

    per_rep = {}
    for o in offl:
        cs = [c for c in calls if rep_of(c[0]) == o["rep"]]
        at = [a for a in atts if rep_of(a["t"]) == o["rep"]]
        failed_calls = [c for c in cs if c[2] > 0]
        gaps = [(b[0] - a[0]) / 1e6 for a, b in zip(failed_calls, failed_calls[1:])]
        per_rep[o["rep"]] = {
            "offline": o["result"], "dur_s": o["dur_s"], "mapcount": o["mapcount"],
            "calls": len(cs), "calls_failed": len(failed_calls),
            "pages_succeeded": sum(c[1] for c in cs), "pages_failed": sum(c[2] for c in cs),
            "hot_attempts": len(at),
            "hot_attempts_failed": sum(1 for a in at if a["move_rc"] != 0),
            "failed_call_gap_ms": quantiles(gaps),
        }
    hot_calls = []  # calls in loaded reps, after the first attempt on the hot page of that rep
    fail_gaps = []  # between consecutive failed calls of one offline (never across offlines)
    for o in loaded:
        at = [a for a in atts if rep_of(a["t"]) == o["rep"]]
        if not at:
            continue
        first = at[0]["t"]
        hc = [c for c in calls if rep_of(c[0]) == o["rep"] and c[0] >= first]
        hot_calls += hc
        fc = [c for c in hc if c[2] > 0]
        fail_gaps += [(b[0] - a[0]) / 1e6 for a, b in zip(fc, fc[1:])]
    la = [a for a in atts if rep_of(a["t"]) in {o["rep"] for o in loaded}]
    rc_counts: dict[str, int] = {}
    for a in la:
        rc_counts[str(a["move_rc"])] = rc_counts.get(str(a["move_rc"]), 0) + 1
    failed_hot = [c for c in hot_calls if c[2] > 0]
    summary = {
        "offlines": offl,
        "per_rep": per_rep,
        "loaded": {
            "reps": len(loaded),
            "offlined": sum(1 for o in loaded if o["result"] == "ok"),
            "hot_calls": len(hot_calls),
            "hot_calls_failed": len(failed_hot),
            "failed_call_gap_ms": quantiles(fail_gaps),
            "hot_attempts": len(la),
            "hot_attempts_failed": sum(1 for a in la if a["move_rc"] != 0),
            "move_rc": rc_counts,
            "unmap_ns": quantiles([a["unmap_ns"] for a in la]),
            "remap_ns": quantiles([a["remap_ns"] for a in la]),
            "waits_per_attempt": quantiles([a["waits"] for a in la]),
            "refs_at_move": quantiles([a["refs"] for a in la if a["refs"] >= 0]),
            "mapcount_at_unmap": quantiles([a["mapcount"] for a in la]),
        },
        "lab_lines": {"calls": len(calls), "attempts": len(atts)},
    }
    calls_txt = "# t_ns succeeded failed  (memory-hotplug migrate_pages calls; t from the first)\n"
    calls_txt += "".join(f"{c[0] - t_origin} {c[1]} {c[2]}\n" for c in calls)
    att_txt = ("# t_ns unmap_ns premove_ns move_rc refs_at_move remap_ns waits mapcount remapped "
               "folio  (hot-page attempts, lab-migrate.bt; t from the first call)\n")
    att_txt += "".join(f"{a['t'] - t_origin} {a['unmap_ns']} {a['premove_ns']} {a['move_rc']} "
                       f"{a['refs']} {a['remap_ns']} {a['waits']} {a['mapcount']} "
                       f"{a['remapped']} {a['folio']}\n" for a in atts)
    return summary, calls_txt, att_txt, "\n".join(hist) + "\n"


def main(argv: list[str]) -> int:
    run, data = Path(argv[1]), Path(argv[2])
    text = (run / "results.txt").read_text(errors="replace") if (run / "results.txt").exists() else ""
    files = split_results(text)
    data.mkdir(parents=True, exist_ok=True)
    if not files:
        print(f"extract: no results in {run}/results.txt (see {run}/console.log)", file=sys.stderr)
        return 1
    for name, body in files.items():
        if name == "lab-migrate.txt":
            continue
        if name == "dmesg.txt":
            body = "".join(l + "\n" for l in body.splitlines() if DMESG_KEEP.search(l))
        dst = data / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(body)
    summary, calls_txt, att_txt, hist_txt = summarize(files)
    (data / "calls.txt").write_text(calls_txt)
    for old in ("attempts.txt", "attempts.txt.gz"):
        (data / old).unlink(missing_ok=True)
    if len(att_txt) > 100_000:  # the ref kernel's thousands of attempts: keep the repo small
        with gzip.open(data / "attempts.txt.gz", "wt") as f:
            f.write(att_txt)
    else:
        (data / "attempts.txt").write_text(att_txt)
    (data / "lab-hist.txt").write_text(hist_txt)
    summary["done_marker"] = "=====LAB DONE=====" in text
    (data / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary["loaded"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
