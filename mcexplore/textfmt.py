"""Plain-text and Markdown renderings of results, for mailing lists, GitHub and docs.

Where it sits: under the CLI (``--format text`` / ``--format markdown`` of ``run``, ``compare`` and
``plot riskmap``), over the JSON dicts the CLI prints with ``--json`` (``run``: cli._summary_json;
``compare``: Comparison.to_dict) and, for the risk map, a sweep's table. Pure functions from those
objects to strings: no click, no printing.

``--format text`` is fixed-width and at most ``WIDTH`` (80) columns wide, intervals included, with
one legend; every number it shows is the JSON's value rounded (``fmt_p``: enough digits that an
interval never reads [1, 1] unless it is exactly 1). ``--format markdown`` renders tables.
"""

from __future__ import annotations

import math
import textwrap

WIDTH = 80

# What each outcome means (docs/model.md, "Budget"; MODEL.md 1.5), one short phrase each.
OUTCOME_TEXT = {
    "migrated": "moved before the timeout",
    "call_failed": "the first migrate_pages call did not move it",
    "livelock": "still retrying at the timeout",
    "censored": "max_attempts used up first (cost cap, not the timeout)",
    "uaf": "a waiter touched the freed page",
    "hang": "a lost wake-up left a waiter asleep",
}
LEGEND = "outcomes: " + "; ".join(f"{k} = {v}" for k, v in OUTCOME_TEXT.items())

# Units of the run JSON's numbers (the `units` map of cli._summary_json; docs/analysis.md).
RUN_UNITS = {
    "wall_s": "s",
    "count": "trials", "p": "probability", "lo": "probability", "hi": "probability",
    "quantiles.attempts": "attempts", "quantiles.t_migrated": "ns", "quantiles.max_wait": "ns",
    "means.attempts": "attempts/trial", "means.calls": "calls/trial", "means.faults": "faults/trial",
    "means.total_wait": "ns/trial", "means.spin": "ns/trial", "means.pages_left": "pages/trial",
}


# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------

def fmt_p(x, sig: int = 3) -> str:
    """A probability with ``sig`` significant digits, and near 1 with ``sig`` significant digits
    of 1 - x (0.99993 for 8191/8192's upper bound, never "1" unless x is exactly 1)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    x = float(x)
    if x == 0.0:
        return "0"
    if x == 1.0:
        return "1"
    if 0.99 <= x < 1.0:
        d = math.ceil(-math.log10(1.0 - x)) + sig - 1
        s = f"{x:.{d}f}"
        while s.endswith("0"):
            s = s[:-1]
        return s
    s = f"{x:.{sig}g}"
    return s.replace("e-0", "e-")


def fmt_interval(pr: dict, sig: int = 3) -> str:
    """``p [lo, hi]``, or ``<= hi`` for a zero count (one-sided bound), ``>= lo`` for count == n."""
    if pr.get("one_sided") and pr["count"] == 0:
        return f"{fmt_p(pr['p'], sig)} (<= {fmt_p(pr['hi'], sig)})"
    return f"{fmt_p(pr['p'], sig)} [{fmt_p(pr['lo'], sig)}, {fmt_p(pr['hi'], sig)}]"


def _fmt_metric(metric: str, v) -> str:
    if v is None:  # an upper bound the trials are too few to give (the JSON's null)
        return "inf"
    if metric == "attempts":
        return f"{v:.0f}"
    from .units import format_ns

    return format_ns(v)


def _wrap(text: str, indent: str = "", first: str = "") -> list[str]:
    """``text`` in lines of at most WIDTH columns, the first starting with ``first``, the others
    with ``indent``."""
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=indent,
                         break_on_hyphens=False, break_long_words=False) or [""]


def censored_note(entry: dict, meta: dict | None = None) -> str | None:
    """Why ``livelock 0`` with ``censored > 0`` is not "no livelock": the cost cap ended them."""
    if not (entry["censored"]["count"] > 0 and entry["livelock"]["count"] == 0):
        return None
    cap = (meta or {}).get("max_attempts")
    cap = f"budget.max_attempts={cap}" if cap else "budget.max_attempts"
    return (f"note: livelock 0 but censored {entry['censored']['count']}: the cost cap ({cap}) "
            "ended those trials before the timeout, so they say nothing about livelock; raise it "
            "(--set budget.max_attempts=...) to see whether they reach the timeout.")


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------

def _meta_line(js: dict) -> str:
    m = js.get("meta", {})
    parts = [f"mcexplore {m['version']}" if m.get("version") else "mcexplore",
             f"scenario {js.get('scenario')}" + (f" ({m['config_hash']})" if m.get("config_hash") else ""),
             f"seed {js.get('seed')}", f"backend {js.get('backend')}"]
    return ", ".join(parts)


def adaptive_lines(ad: dict, threshold=None) -> list[str]:
    """One line per strategy of an adaptive run's stopping decision (``AdaptiveRun.to_dict()``)."""
    out = []
    for label, st in ad.items():
        verdict = ""
        if threshold is not None:
            verdict = "; " + {"below": f"below {threshold:g}",
                              "above": f"above {threshold:g}"}.get(st.get("decision"), "undecided")
        out.append(f"{label}: {st['trials']} trials, stopped by {st['stop_reason']}: "
                   f"P({st['outcome']}) = {fmt_p(st['p'], 4)}, sequence [{fmt_p(st['cs_lo'], 4)}, "
                   f"{fmt_p(st['cs_hi'], 4)}]" + verdict)
    return out


def run_text(js: dict, threshold=None) -> str:
    """The run summary (the ``--json`` dict of ``mcexplore run``) as fixed-width text, <= 80 columns
    (``threshold``: an adaptive run's --until-upper-bound, for its verdict)."""
    level = js["level"]
    lines = _wrap(_meta_line(js))
    lines += _wrap(f"{level * 100:g}% intervals (Wilson; one-sided bound when the count is 0 or "
                   "all trials); quantile intervals from histogram bucket edges")
    lines += _wrap(LEGEND, "  ")
    for label, e in js["results"].items():
        lines.append("")
        lines.append(f"== {label}: {e['trials']} trials in {e['wall_s']:.2f} s")
        lines.append(f"  {'outcome':<12} {'count':>9}  {'p':<10} interval")
        for o in OUTCOME_TEXT:
            if o not in e:
                continue
            pr = e[o]
            if pr["one_sided"] and pr["count"] == 0:
                ci = f"<= {fmt_p(pr['hi'])} (one-sided)"
            elif pr["one_sided"]:
                ci = f">= {fmt_p(pr['lo'])} (one-sided)"
            else:
                ci = f"[{fmt_p(pr['lo'])}, {fmt_p(pr['hi'])}]"
            lines.append(f"  {o:<12} {pr['count']:>9}  {fmt_p(pr['p']):<10} {ci}")
        note = censored_note(e, js.get("meta"))
        if note:
            lines += _wrap(note, "    ", "  ")
        lines.append(f"  {'quantile':<12} {'q':>5}  {'value':>10}  interval")
        for m, qs in e.get("quantiles", {}).items():
            for qn, v in qs.items():
                if v.get("value") is None:
                    continue
                ci = f"[{_fmt_metric(m, v.get('lo'))}, {_fmt_metric(m, v.get('hi'))}]"
                lines.append(f"  {m:<12} {qn[1:]:>5}  {_fmt_metric(m, v['value']):>10}  {ci}")
        ex = {k: v[0] for k, v in e.get("examples", {}).items() if v}
        if ex:
            lines += _wrap("replay e.g.: " + "; ".join(f"{k}: trial {t}" for k, t in ex.items()), "    ", "  ")
    if js.get("adaptive"):
        lines += ["", "adaptive stopping (anytime-valid confidence sequences):"]
        for ln in adaptive_lines(js["adaptive"], threshold):
            lines += _wrap(ln, "    ", "  ")
    return "\n".join(ln.rstrip() for ln in lines)


def _md_escape(s) -> str:
    return str(s).replace("|", "\\|")


def run_markdown(js: dict, threshold=None) -> str:
    """The run summary as Markdown: one table of outcomes and one of quantiles per strategy."""
    out = [f"**{_md_escape(_meta_line(js))}**, {js['level'] * 100:g}% intervals", "", f"_{LEGEND}_"]
    for label, e in js["results"].items():
        out += ["", f"### {_md_escape(label)}: {e['trials']} trials", "",
                "| outcome | count | p | interval |", "|---|---:|---:|---|"]
        for o in OUTCOME_TEXT:
            if o in e:
                pr = e[o]
                ci = (f"<= {fmt_p(pr['hi'])}" if pr["one_sided"] and pr["count"] == 0
                      else f"[{fmt_p(pr['lo'])}, {fmt_p(pr['hi'])}]")
                out.append(f"| {o} | {pr['count']} | {fmt_p(pr['p'])} | {ci} |")
        note = censored_note(e, js.get("meta"))
        if note:
            out += ["", note]
        rows = [(m, qn[1:], v) for m, qs in e.get("quantiles", {}).items() for qn, v in qs.items()
                if v.get("value") is not None]
        if rows:
            out += ["", "| metric | q | value | interval |", "|---|---:|---:|---|"]
            for m, q, v in rows:
                out.append(f"| {m} | {q} | {_fmt_metric(m, v['value'])} | "
                           f"[{_fmt_metric(m, v.get('lo'))}, {_fmt_metric(m, v.get('hi'))}] |")
    if js.get("adaptive"):
        out += ["", "Adaptive stopping (anytime-valid confidence sequences):", ""]
        out += [f"- {_md_escape(ln)}" for ln in adaptive_lines(js["adaptive"], threshold)]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

def _side(r: dict, s: str) -> str:
    p, lo, hi, one = r[f"p_{s}"], r[f"lo_{s}"], r[f"hi_{s}"], r[f"one_sided_{s}"]
    if one and p == 0:
        return f"{fmt_p(p)} (<= {fmt_p(hi)})"
    if one:
        return f"{fmt_p(p)} (>= {fmt_p(lo)})"
    return f"{fmt_p(p)} [{fmt_p(lo)}, {fmt_p(hi)}]"


def _signed(x) -> str:
    if x is None:
        return "nan"
    return ("+" if x > 0 else "") + (fmt_p(x) if x >= 0 else "-" + fmt_p(-x))


def _equiv(x) -> str:
    if x is None:
        return "-"
    if x == "inf":
        return "inf"
    return f"{x:.0f}"


COMPARE_LEGEND = ("diff = p(B) - p(A), Newcombe paired interval; McNemar = exact two-sided p-value; "
                  "disc. = discordant pairs A only/B only; unpaired = trials per strategy an "
                  "unpaired design would need for the same precision.")


def _compare_head(d: dict) -> list[str]:
    head = (f"paired comparison on common random numbers: scenario {d.get('scenario')}"
            + (f" ({d['config_hash']})" if d.get("config_hash") else "")
            + f", {d['trials']} trials, seed {d['seed']}, backend {d['backend']}, "
            f"{100 * d['level']:g}% intervals, baseline A = {d['baseline']}")
    return _wrap(head)


def compare_text(d: dict) -> str:
    """A Comparison's dict (``Comparison.to_dict`` plus scenario, config_hash) as <= 80-column text."""
    lines = _compare_head(d) + _wrap(COMPARE_LEGEND, "  ") + _wrap(LEGEND, "  ")
    by_b: dict = {}
    for r in d["rows"]:
        by_b.setdefault(r["b"], []).append(r)
    for b, rows in by_b.items():
        lines += ["", f"B = {b} vs A = {d['baseline']}",
                  f"  {'outcome':<12} {'A':<31} {'B':<31}"]
        for r in rows:
            lines.append(f"  {r['outcome']:<12} {_side(r, 'a'):<31} {_side(r, 'b'):<31}")
            diff = f"{_signed(r['diff'])} [{_signed(r['diff_lo'])}, {_signed(r['diff_hi'])}]"
            lines.append(f"  {'':<12} diff {diff:<29} McNemar {fmt_p(r['mcnemar_p'])}")
            lines.append(f"  {'':<12} disc. {r['n10']}/{r['n01']}  unpaired {_equiv(r['equiv_unpaired_trials'])}")
    return "\n".join(ln.rstrip() for ln in lines)


def compare_markdown(d: dict) -> str:
    out = ["**" + " ".join(_compare_head(d)) + "**", "", f"_{COMPARE_LEGEND}_"]
    by_b: dict = {}
    for r in d["rows"]:
        by_b.setdefault(r["b"], []).append(r)
    for b, rows in by_b.items():
        out += ["", f"### {_md_escape(b)} vs {_md_escape(d['baseline'])}", "",
                "| outcome | A | B | diff (B - A) | McNemar p | disc. | unpaired equiv. |",
                "|---|---|---|---|---:|---:|---:|"]
        for r in rows:
            diff = f"{_signed(r['diff'])} [{_signed(r['diff_lo'])}, {_signed(r['diff_hi'])}]"
            out.append(f"| {r['outcome']} | {_side(r, 'a')} | {_side(r, 'b')} | {diff} | "
                       f"{fmt_p(r['mcnemar_p'])} | {r['n10']}/{r['n01']} | {_equiv(r['equiv_unpaired_trials'])} |")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# risk map
# ---------------------------------------------------------------------------------------------

def riskmap_grid(table, x: str, y: str, facet: str = "strategy", outcome: str = "livelock",
                 where: dict | None = None, level: float = 0.95) -> dict:
    """The numbers of ``plots.riskmap`` (same pooling, same intervals) as a JSON-able dict:
    ``{"x", "y", "facet", "outcome", "level", "xs": [labels], "ys": [labels], "panels":
    [{"facet": label, "cells": [[cell or None per x] per y]}]}``, a cell being
    ``{count, trials, p, lo, hi, zero}``."""
    from .plots import _ticklabels, riskmap_cells

    t, g, xs, ys, facets = riskmap_cells(table, x, y, facet, outcome, where, level)
    rare = "warning" in g.columns  # a rare table: importance-sampling estimates
    panels = []
    for fv in facets:
        sub = g[g[facet] == fv]
        cells = [[None] * len(xs) for _ in ys]
        for r in sub.itertuples(index=False):
            i, j = ys.index(getattr(r, y)), xs.index(getattr(r, x))
            cells[i][j] = {"count": int(r.count), "trials": int(r.trials), "p": float(r.p),
                           "lo": float(r.lo), "hi": float(r.hi), "zero": bool(r.zero)}
            if rare:
                cells[i][j]["warning"] = bool(r.warning)
        label = str(fv) if facet == "strategy" else f"{facet} = {_ticklabels(t, facet, [fv])[0]}"
        panels.append({"facet": label, "cells": cells})
    return {"x": x, "y": y, "facet": facet, "outcome": outcome, "level": level,
            "method": "importance-sampling" if rare else "counts",
            "xs": _ticklabels(t, x, xs), "ys": _ticklabels(t, y, ys), "panels": panels}


def fmt_short(x) -> str:
    """A probability in at most 7 characters for the risk-map grid: 2 significant digits,
    ``5.5e-4`` below 0.01, and near 1 as many digits as ``fmt_p`` needs (never "1" below 1)."""
    x = float(x)
    if x > 1.0:  # an importance-sampling estimate or bound can exceed 1
        return f"{x:.3g}"
    if 0.0 < x < 0.01:
        m, e = f"{x:.1e}".split("e")
        return f"{m.rstrip('0').rstrip('.')}e{int(e)}"
    return fmt_p(x, 2)


def _cell_lines(c) -> tuple[str, str]:
    if c is None:
        return "", ""
    if c["zero"] and not math.isfinite(c["hi"]):  # importance sampling without a hit: no estimate
        return "none", ""
    if c["zero"]:
        return f"<{fmt_short(c['hi'])}", f"[0,{fmt_short(c['hi'])}]"
    star = "*" if c.get("warning") else ""
    return fmt_short(c["p"]) + star, f"[{fmt_short(c['lo'])},{fmt_short(c['hi'])}]"


def riskmap_legend(grid: dict) -> str:
    if grid.get("method") == "importance-sampling":
        return (f"cell: P({grid['outcome']}) estimated by importance sampling (each cell its own tilt), "
                f"its {100 * grid['level']:g}% normal interval below; *: a warning (too few effective "
                "hits or a failed mean-weight check); none: no hit under the tilt, no estimate; blank: "
                "no row")
    return (f"cell: P({grid['outcome']}), its {100 * grid['level']:g}% interval below; <u: no event "
            f"seen, u the one-sided upper bound; blank: no trials")


def riskmap_text(grid: dict) -> str:
    """The grid as fixed-width text, <= 80 columns (columns split into chunks when needed)."""
    cells_all = [c for p in grid["panels"] for row in p["cells"] for c in row]
    body = [s for c in cells_all for s in _cell_lines(c)] + list(map(str, grid["xs"]))
    cw = max([len(s) for s in body] + [4]) + 2
    yw = max([len(str(v)) for v in grid["ys"]] + [4]) + 1
    per = max(1, (WIDTH - yw) // cw)
    lines = [f"P({grid['outcome']}) by {grid['x']} and {grid['y']}"]
    lines += _wrap(riskmap_legend(grid), "  ")
    for p in grid["panels"]:
        for start in range(0, len(grid["xs"]), per):
            js = range(start, min(start + per, len(grid["xs"])))
            lines.append("")
            part = "" if len(js) == len(grid["xs"]) else (
                f" (column {start + 1} of {len(grid['xs'])})" if len(js) == 1 else
                f" (columns {start + 1}-{js[-1] + 1} of {len(grid['xs'])})")
            lines.append(f"{p['facet']}: rows {grid['y']}, columns {grid['x']}{part}")
            head = " " * yw + "".join(f"{str(grid['xs'][j]):>{cw}}" for j in js)
            lines.append(head.rstrip())
            for i, yv in enumerate(grid["ys"]):
                a = [_cell_lines(p["cells"][i][j]) for j in js]
                lines.append((f"{str(yv):<{yw}}" + "".join(f"{s[0]:>{cw}}" for s in a)).rstrip())
                lines.append((" " * yw + "".join(f"{s[1]:>{cw}}" for s in a)).rstrip())
    return "\n".join(ln.rstrip() for ln in lines)


def riskmap_markdown(grid: dict) -> str:
    out = [f"**P({grid['outcome']}) by {_md_escape(grid['x'])} and {_md_escape(grid['y'])}**", "",
           f"_{riskmap_legend(grid)}_"]
    for p in grid["panels"]:
        out += ["", f"### {_md_escape(p['facet'])}", "",
                f"| {_md_escape(grid['y'])} \\ {_md_escape(grid['x'])} | "
                + " | ".join(_md_escape(v) for v in grid["xs"]) + " |",
                "|---|" + "---:|" * len(grid["xs"])]
        for i, yv in enumerate(grid["ys"]):
            cells = []
            for c in p["cells"][i]:
                a, b = _cell_lines(c)
                cells.append(f"{a} {b}".strip())
            out.append(f"| {_md_escape(yv)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# importance sampling (run / compare with --rare or --tilt)
# ---------------------------------------------------------------------------------------------

RARE_LEGEND = ("estimate [interval]: the outcome's probability in the untilted world, "
               "sum(w_i I_i)/n, with a normal interval from the empirical variance of the terms "
               "w_i I_i; hits: trials with the outcome in the tilted world; ESS: the effective number "
               "of hits, (sum w_i I_i)^2 / sum (w_i I_i)^2; mean weight: 1 in expectation under a valid "
               "tilt, so its interval should contain 1.")


def fmt_x(x, sig: int = 3) -> str:
    """A probability-like number that may leave [0, 1] (a normal interval's upper end, a mean
    weight): ``fmt_p`` inside [0, 1), ``sig + 1`` significant digits above 1; ``None`` (the
    JSON's null: no estimate, or an infinite bound) as "-"."""
    if x is None:
        return "-"
    x = float(x)
    if not math.isfinite(x):
        return "-" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x > 1.0:
        return f"{x:.{sig + 1}g}"
    if x < 0.0:
        return "-" + fmt_x(-x, sig)
    return fmt_p(x, sig)


def _is_est(e: dict) -> str:
    """``estimate [lo, hi]`` of an importance-sampling estimate's dict, "no hit" without one."""
    if not e.get("hits"):
        return "no hit"
    return f"{fmt_x(e['estimate'])} [{fmt_x(e['lo'])}, {fmt_x(e['hi'])}]"


def _ess(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _no_hit(w) -> bool:
    return bool(w) and w.startswith("no trial had this outcome")


def _rare_head(d: dict) -> list[str]:
    m = d.get("meta", {})
    what = (f"paired comparison by importance sampling (baseline A = {d['baseline']})"
            if d.get("differences") else "importance sampling")
    head = (f"{what}, backend {d['backend']}: scenario {d.get('scenario')}"
            + (f" ({m['config_hash']})" if m.get("config_hash") else "")
            + f", seed {d['seed']}, {d['trials']} trials per strategy in the tilted world, "
            f"{100 * d['level']:g}% normal intervals")
    return [head]


def _rare_tilt(d: dict) -> list[tuple[str, str, str]]:
    return [(t["path"], t["untilted"], t["tilted"]) for t in d.get("tilt", [])]


def _rare_ce(d: dict) -> list[str]:
    out = []
    for i, r in enumerate(d.get("cross_entropy") or [], 1):
        out.append(f"round {i}: {r['hits']} hits in {r['trials']} trials ({r['action']})")
    return out


def _outcomes_shown(d: dict, outcomes=None) -> list[str]:
    if outcomes:
        return list(outcomes)
    return [d["outcome"]] if d.get("outcome") else list(OUTCOME_TEXT)


def rare_blocks(d: dict, outcomes=None) -> dict:
    """What the text and Markdown renderings of an importance-sampling result show, from its JSON
    (``RareResult.to_dict()`` plus ``meta``): the head, the tilt table, the cross-entropy rounds and
    per strategy its main rows (outcome, estimate, hits, ESS), the mean-weight check, the other
    outcomes compactly and every warning; and the paired differences, if any."""
    main = _outcomes_shown(d, outcomes)
    strategies = []
    for label, s in d["strategies"].items():
        ests = s["estimates"]
        rows = [(o, _is_est(ests[o]), ests[o]["hits"], _ess(ests[o]["ess"])) for o in main if o in ests]
        others = [f"{o} {_is_est(e)}" for o, e in ests.items() if o not in main]
        warnings = []
        for o, e in ests.items():
            w = e.get("warning")
            if not w or (o != d.get("outcome") and _no_hit(w)):
                continue  # an outcome without hits says so in its "no hit" (in full for --rare's)
            warnings.append(f"warning ({o}): {w}")
        mw = s["mean_weight"]
        ok = (mw["lo"] is not None and mw["hi"] is not None and mw["lo"] <= 1.0 <= mw["hi"])
        check = (f"mean weight {fmt_x(mw['estimate'], 4)} [{fmt_x(mw['lo'], 4)}, {fmt_x(mw['hi'], 4)}]"
                 + (" (contains 1)" if ok else " (does NOT contain 1)"))
        strategies.append({"label": label, "rows": rows, "others": others, "check": check,
                           "warnings": warnings})
    diffs = []
    for label, by_o in (d.get("differences") or {}).items():
        for o in main:
            if o not in by_o:
                continue
            x = by_o[o]
            diffs.append((label, o, f"{_signed_x(x['difference'])} [{_signed_x(x['lo'])}, {_signed_x(x['hi'])}]"))
    return {"head": _rare_head(d), "tilt": _rare_tilt(d), "ce": _rare_ce(d), "outcome": d.get("outcome"),
            "pilot_trials": d.get("meta", {}).get("pilot_trials"), "strategies": strategies,
            "baseline": d.get("baseline"), "diffs": diffs}


def _signed_x(x) -> str:
    if x is None:
        return "-"
    s = fmt_x(x)
    return ("+" + s) if (x > 0 and not s.startswith("-") and s not in ("inf",)) else s


PAIRED_NOTE = ("paired: every strategy ran on the same tilted trials (same seed, same trial indices), "
               "so each difference p(B) - p(A) has its interval from the per-trial differences "
               "w_i(B) I_i(B) - w_i(A) I_i(A); the pairing is kept.")


def rare_text(d: dict, outcomes=None) -> str:
    """An importance-sampling result (its JSON dict) as fixed-width text, <= 80 columns."""
    b = rare_blocks(d, outcomes)
    lines = []
    for h in b["head"]:
        lines += _wrap(h)
    lines += _wrap(RARE_LEGEND, "  ")
    lines.append("")
    if b["tilt"]:
        lines.append("tilted world (path: untilted -> tilted):")
        pw = max(len(p) for p, _, _ in b["tilt"])
        for p, a, t in b["tilt"]:
            row = f"  {p:<{pw}}  {a} -> {t}"
            lines += [row] if len(row) <= WIDTH else [f"  {p}", f"    {a} -> {t}"]
    else:
        lines.append("tilted world: the untilted one (the search changed nothing)")
    if b["ce"]:
        per = f", {b['pilot_trials']} pilot trials per strategy a round" if b["pilot_trials"] else ""
        lines += _wrap(f"cross-entropy search for {b['outcome']}{per} (pilot seeds apart from the "
                       "estimate's trials):")
        lines += ["  " + c for c in b["ce"]]
    for s in b["strategies"]:
        lines.append("")
        lines.append(f"== {s['label']}")
        lines.append(f"  {'outcome':<12} {'estimate [interval]':<36} {'hits':>8}  {'ESS':>7}")
        for o, est, hits, ess in s["rows"]:
            lines.append(f"  {o:<12} {est:<36} {hits:>8}  {ess:>7}")
        lines.append("  " + s["check"])
        if s["others"]:
            lines += _wrap("other outcomes: " + "; ".join(s["others"]), "    ", "  ")
        for w in s["warnings"]:
            lines += _wrap(w, "    ", "  ")
    if b["diffs"]:
        lines += [""] + _wrap(f"paired differences vs A = {b['baseline']} (B - A):")
        lines += _wrap(PAIRED_NOTE, "  ", "  ")
        for label, o, x in b["diffs"]:
            lines.append(f"  B = {label:<12} {o:<12} {x}")
    return "\n".join(ln.rstrip() for ln in lines)


def rare_markdown(d: dict, outcomes=None) -> str:
    """An importance-sampling result as Markdown tables."""
    b = rare_blocks(d, outcomes)
    out = ["**" + _md_escape(" ".join(b["head"])) + "**", "", f"_{RARE_LEGEND}_", ""]
    if b["tilt"]:
        out += ["| tilted parameter | untilted | tilted |", "|---|---:|---:|"]
        out += [f"| `{p}` | {_md_escape(a)} | {_md_escape(t)} |" for p, a, t in b["tilt"]]
    else:
        out.append("Tilted world: the untilted one.")
    if b["ce"]:
        out += ["", f"Cross-entropy search for {b['outcome']} (pilot seeds apart from the estimate's trials):", ""]
        out += [f"- {c}" for c in b["ce"]]
    for s in b["strategies"]:
        out += ["", f"### {_md_escape(s['label'])}", "", "| outcome | estimate [interval] | hits | ESS |",
                "|---|---|---:|---:|"]
        out += [f"| {o} | {est} | {hits} | {ess} |" for o, est, hits, ess in s["rows"]]
        out += ["", s["check"]]
        if s["others"]:
            out += ["", "Other outcomes: " + "; ".join(s["others"])]
        out += [f"\n> {_md_escape(w)}" for w in s["warnings"]]
    if b["diffs"]:
        out += ["", f"### Paired differences vs {_md_escape(b['baseline'])}", "", f"_{PAIRED_NOTE}_", "",
                "| B | outcome | p(B) - p(A) [interval] |", "|---|---|---|"]
        out += [f"| {_md_escape(label)} | {o} | {x} |" for label, o, x in b["diffs"]]
    return "\n".join(out)
