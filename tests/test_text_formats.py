"""--format text / markdown (issue #12): the width, every number against the JSON's, the legend,
the censored note, near-1 digits, the risk-map grid, and what info, bench and replay print."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

import numpy as np
import pandas as pd
from click.testing import CliRunner

from mcexplore.cli import main
from mcexplore.results import HIST_BINS, OUTCOMES, SUMS
from mcexplore.stats import proportion_ci
from mcexplore.sweep import hist_to_json
from mcexplore.textfmt import LEGEND, WIDTH, censored_note, fmt_p, riskmap_grid, run_text
from mcexplore.units import DURATION_UNITS

SMALL = ["--set", "page.mapcount=4", "--set", "page.active=3", "--set", "budget.max_attempts=30"]
RUN = ["run", "thread-2018", "-n", "20", "-b", "numpy", "-s", "ref", "-s", "drop", "--no-progress", *SMALL]


def invoke(*args, env=None):
    r = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return r


def _width_ok(text: str):
    for line in text.splitlines():
        assert len(line) <= WIDTH, f"{len(line)} columns: {line!r}"


def _half_ulp(s: str) -> Decimal:
    return Decimal(1).scaleb(Decimal(s).as_tuple().exponent) / 2


def _same(s: str, v) -> bool:
    """The printed number ``s`` is ``v`` rounded to the digits printed (and never "1" below 1)."""
    if v is None:
        return s in ("inf", "-")
    if s == "1" and v != 1:
        return False
    return abs(Decimal(s) - Decimal(repr(float(v)))) <= _half_ulp(s) * Decimal("1.000001")


def _same_time(s: str, v) -> bool:
    if v is None:
        return s == "inf"
    m = re.fullmatch(r"([0-9.e+-]+)([a-z]*)", s)
    num, unit = m.group(1), m.group(2) or None
    f = Decimal(DURATION_UNITS[unit]) if unit else Decimal(1)
    return abs(Decimal(num) * f - Decimal(repr(float(v)))) <= _half_ulp(num) * f * Decimal("1.000001")


# ---------------------------------------------------------------------------------------------

def test_near_one_never_reads_one():
    for n in (8192, 1000, 10**6):
        pr = proportion_ci(n - 1, n)
        for v in (pr.p, pr.lo, pr.hi):
            s = fmt_p(v)
            assert s != "1" and float(s) < 1 and _same(s, v), (n, v, s)
    assert fmt_p(1.0) == "1" and fmt_p(0.0) == "0"
    assert fmt_p(8191 / 8192) == "0.999878"


def test_run_text_width_and_every_number_equals_the_json():
    js = json.loads(invoke(*RUN, "--json").output)
    r = invoke(*RUN, "--format", "text")
    assert r.exit_code == 0, r.output
    text = r.output
    _width_ok(text)
    meta = js["meta"]
    head = text.splitlines()[0]
    assert f"scenario {meta['scenario']} ({meta['config_hash']})" in head
    assert f"seed {meta['seed']}" in head and f"backend {meta['backend']}" in head
    assert f"mcexplore {meta['version']}" in head
    assert "outcomes: migrated = " in text  # the legend
    blocks = re.split(r"^== ", text, flags=re.M)[1:]
    assert len(blocks) == len(js["results"])
    seen_outcomes = seen_quantiles = 0
    for block in blocks:
        label, trials = re.match(r"(\S+): (\d+) trials", block).groups()
        e = js["results"][label]
        assert int(trials) == e["trials"]
        for line in block.splitlines():
            m = re.match(r"^  (\w+)\s+(\d+)  (\S+)\s+(.*)$", line)
            if m and m.group(1) in OUTCOMES:
                o, count, p, ci = m.groups()
                pr = e[o]
                assert int(count) == pr["count"] and _same(p, pr["p"]), line
                if ci.startswith("<="):
                    assert pr["one_sided"] and _same(ci.split()[1], pr["hi"]), line
                elif ci.startswith(">="):
                    assert pr["one_sided"] and _same(ci.split()[1], pr["lo"]), line
                else:
                    lo, hi = re.fullmatch(r"\[(\S+), (\S+)\]", ci).groups()
                    assert _same(lo, pr["lo"]) and _same(hi, pr["hi"]), line
                seen_outcomes += 1
            q = re.match(r"^  (attempts|t_migrated|max_wait)\s+(\S+)\s+(\S+)  \[(\S+), (\S+)\]$", line)
            if q:
                metric, qn, val, lo, hi = q.groups()
                v = e["quantiles"][metric][f"q{qn}"]
                same = _same if metric == "attempts" else _same_time
                if metric == "attempts":
                    assert Decimal(val) == Decimal(f"{v['value']:.0f}"), line
                else:
                    assert same(val, v["value"]), line
                assert _same_time(lo, v["lo"]) and _same_time(hi, v["hi"]), line
                seen_quantiles += 1
    assert seen_outcomes == len(OUTCOMES) * len(js["results"])
    assert seen_quantiles > 0


def test_json_carries_meta_and_units_and_keeps_the_old_keys():
    js = json.loads(invoke(*RUN, "--json").output)
    m = js["meta"]
    assert {"version", "scenario", "config_hash", "seed", "backend", "level", "trials"} <= set(m)
    assert m["backend"] == js["backend"] == "numpy" and m["seed"] == js["seed"] == 0
    assert re.fullmatch(r"[0-9a-f]{16}", m["config_hash"]) and m["max_attempts"] == 30
    assert js["units"]["quantiles.t_migrated"] == "ns" and js["units"]["p"] == "probability"
    assert js["results"]["ref"]["livelock"]["count"] >= 0  # keys of before


def test_censored_note_when_the_cost_cap_ended_the_trials():
    js = json.loads(invoke(*RUN, "--json").output)
    e = js["results"]["ref"]
    assert e["censored"]["count"] > 0 and e["livelock"]["count"] == 0, "this scenario censors ref"
    for out in (invoke(*RUN).output, invoke(*RUN, "--format", "text").output,
                invoke(*RUN, "--format", "markdown").output):
        assert "livelock 0 but censored" in out and "budget.max_attempts=30" in out
        assert LEGEND.split(";")[0] in out.replace("\n  ", " ")
    assert censored_note(js["results"]["drop"]) is None or js["results"]["drop"]["livelock"]["count"] == 0


def _check_markdown_tables(text: str):
    rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert rows, "no table"
    assert any(re.fullmatch(r"\|(-{3}:?\|)+", ln.replace("---:", "---:")) for ln in rows)
    # every table's rows have as many cells as its header
    tables, cur = [], []
    for ln in text.splitlines() + [""]:
        if ln.startswith("|"):
            cur.append(ln)
        elif cur:
            tables.append(cur)
            cur = []
    for t in tables:
        n = t[0].replace("\\|", "").count("|")
        assert re.fullmatch(r"\|(-{3}:?\|)+", t[1]), t[1]
        assert all(r.replace("\\|", "").count("|") == n for r in t), t


def test_markdown_renders_tables():
    r = invoke(*RUN, "--format", "markdown")
    assert r.exit_code == 0, r.output
    _check_markdown_tables(r.output)
    assert "| outcome | count | p | interval |" in r.output


def test_compare_text_width_and_numbers_and_markdown():
    args = ["compare", "thread-2018", "-n", "20", "-b", "numpy", "-s", "ref", "-s", "drop", *SMALL]
    d = json.loads(invoke(*args, "--json").output)
    r = invoke(*args, "--format", "text")
    assert r.exit_code == 0, r.output
    _width_ok(r.output)
    assert d["config_hash"] in r.output and "outcomes: migrated = " in r.output
    lines = r.output.splitlines()
    i = 0
    for row in d["rows"]:
        while not re.match(rf"^  {row['outcome']}\s", lines[i]):
            i += 1
        sides = re.findall(r"(\S+) (?:\[(\S+), (\S+)\]|\((<=|>=) (\S+)\))", lines[i])
        assert len(sides) == 2, lines[i]
        for (p, lo, hi, op, bound), s in zip(sides, "ab"):
            assert _same(p, row[f"p_{s}"]), lines[i]
            if op == "<=":
                assert _same(bound, row[f"hi_{s}"])
            elif op == ">=":
                assert _same(bound, row[f"lo_{s}"])
            else:
                assert _same(lo, row[f"lo_{s}"]) and _same(hi, row[f"hi_{s}"])
        dm = re.search(r"diff (\S+) \[(\S+), (\S+)\]\s+McNemar (\S+)", lines[i + 1])
        for s, k in zip(dm.groups(), ("diff", "diff_lo", "diff_hi", "mcnemar_p")):
            assert _same(s.lstrip("+"), row[k]), (lines[i + 1], k)
        assert f"disc. {row['n10']}/{row['n01']}" in lines[i + 2]
        i += 3
    md = invoke(*args, "--format", "markdown")
    assert md.exit_code == 0
    _check_markdown_tables(md.output)


def _sweep_table():
    """A tiny synthetic sweep table (tests/test_plots.py's recipe): two strategies, 3 x 2 cells,
    with a zero-count cell and a cell at 8191/8192."""
    rows = []
    for s in ("ref", "ptl_pin"):
        for m in (1, 4, 16):
            for r, lab in ((1e6, "1/us"), (1e7, "10/us")):
                trials = 8192
                k = 0 if s == "ptl_pin" else (8191 if (m, r) == (16, 1e7) else m * int(r / 1e6))
                row = {"mapcount": m, "mapcount_label": str(m), "access_rate": r, "access_rate_label": lab,
                       "strategy": s, "trials": trials}
                row.update({o: 0 for o in OUTCOMES})
                row["livelock"], row["migrated"] = k, trials - k
                row.update({f"sum_{x}": 0 for x in SUMS})
                row["max_wait_max"] = 0
                for h in ("t_migrated", "attempts", "max_wait"):
                    row[f"hist_{h}"] = hist_to_json(np.zeros(HIST_BINS, dtype=np.int64))
                rows.append(row)
    return pd.DataFrame(rows)


def test_riskmap_text_grid(tmp_path):
    t = _sweep_table()
    t.to_parquet(tmp_path / "results.parquet", index=False)
    r = invoke("plot", "riskmap", str(tmp_path), "--x", "mapcount", "--y", "access_rate", "--format", "text")
    assert r.exit_code == 0, r.output
    text = r.output
    _width_ok(text)
    assert "cell: P(livelock)" in text and "no event seen" in text  # the legend
    assert not list(tmp_path.glob("*.png"))
    grid = riskmap_grid(t, "mapcount", "access_rate")
    # every cell's numbers against the grid's (the same pooling and intervals as the image)
    for panel in grid["panels"]:
        block = text.split(f"{panel['facet']}: rows")[1].split("\n\n")[0].splitlines()[2:]
        for i, yv in enumerate(grid["ys"]):
            top, bottom = block[2 * i], block[2 * i + 1]
            assert top.startswith(yv)
            vals = top[len(yv):].split()
            cis = re.findall(r"\[(\S+?),(\S+?)\]", bottom)
            for c, v, (lo, hi) in zip(panel["cells"][i], vals, cis):
                if c["zero"]:
                    assert v == "<" + hi and _same(hi, c["hi"]) and lo == "0"
                else:
                    assert _same(v, c["p"]) and _same(lo, c["lo"]) and _same(hi, c["hi"]), (v, lo, hi, c)
            assert len(vals) == len(cis) == len(grid["xs"])
    assert "0.99988" in text and "[0.99931,0.999978]" in text  # 8191/8192, never [1, 1]
    md = invoke("plot", "riskmap", str(tmp_path), "--x", "mapcount", "--y", "access_rate", "--format", "markdown")
    assert md.exit_code == 0
    _check_markdown_tables(md.output)
    r = CliRunner().invoke(main, ["plot", "riskmap", str(tmp_path), "--x", "mapcount", "--y", "access_rate"])
    assert r.exit_code == 2 and "--out" in r.output  # the image still needs a file


def test_table_output_has_the_legend_line():
    out = invoke(*RUN).output
    assert LEGEND in out.splitlines()


def test_info_shows_threads_simd_cache_and_compiler_and_rejects_a_bad_simd():
    r = invoke("info")
    assert r.exit_code == 0, r.output
    for word in ("threads:", "SIMD level:", "cache folder:", "compiler:"):
        assert word in r.output
    r = CliRunner().invoke(main, ["info"], env={"MCEXPLORE_SIMD": "avx9"})
    assert r.exit_code == 2
    assert "MCEXPLORE_SIMD='avx9' is not valid" in r.output and "avx2" in r.output


def test_bench_prints_a_header_that_says_what_xn_means():
    r = invoke("bench", "thread-2018", "-b", "numpy", "-n", "20", "-s", "ptl_pin", *SMALL)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["backend", "strategy", "trials"] and "xN" in lines[0]
    assert "xN: the trials were run N times" in r.output


def test_replay_last_line_gives_times_with_units():
    r = invoke("replay", "thread-2018", "--trial", "0", "-s", "ref", "--set", "page.mapcount=3",
               "--set", "page.active=2")
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("outcome: ")
    fields = dict(kv.split("=") for kv in last[len("outcome: "):].split(", "))
    for k in ("t_migrated", "max_wait", "total_wait", "spin", "end_time"):
        assert fields[k] == "-" or re.fullmatch(r"[0-9.]+(ns|us|ms|s)", fields[k]), (k, fields[k])
    assert re.fullmatch(r"\d+", fields["attempts"])


def test_run_text_from_a_dict_fits_80_columns_with_long_labels():
    pr = {"count": 0, "p": 0.0, "lo": 0.0, "hi": 3.7e-4, "one_sided": True}
    near = {"count": 8191, "p": 8191 / 8192, "lo": 0.9993, "hi": 0.99998, "one_sided": False}
    e = {"trials": 8192, "wall_s": 1.0, "quantiles": {}, "examples": {}, "means": {},
         **{o: dict(pr) for o in OUTCOMES}}
    e["migrated"] = near
    e["censored"] = dict(near)
    js = {"backend": "native", "scenario": "x" * 60, "seed": 2**40, "level": 0.95,
          "meta": {"version": "0.1.0", "config_hash": "0" * 16, "max_attempts": 1000},
          "results": {"pte_wait_norecheck": e}}
    text = run_text(js)
    _width_ok(text)
    assert "livelock 0 but censored 8191" in text and "[1, 1]" not in text
    assert math.isclose(float(re.search(r"migrated\s+8191\s+(\S+)", text).group(1)), 8191 / 8192, rel_tol=1e-5)
