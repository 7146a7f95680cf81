"""One self-contained HTML page from a sweep's output folder (``mcexplore report``).

Where it sits: beside the CLI, over mcexplore.tables (``load_results``), mcexplore.plots (the
figures) and mcexplore.stats (the intervals). It reads what a sweep writes, ``results.parquet``
(or ``results.csv``) in the folder, and, where one is given, the sweep file (to tell which of the
base scenario's estimates the sweep replaced); nothing else.

The page holds, with no external resource (no script, style sheet, font or image fetched; it
views offline):

- the provenance: folder, scenario(s), axes and their values, strategies, trials per cell, seed,
  backend, version, level, when the page was built;
- one risk map per outcome (plots.riskmap, one panel per strategy, over the first two axes; with
  more axes, one map per value of the others, up to ``max_maps``), a curve per outcome for a
  one-axis sweep; each an inline SVG (text kept as text);
- the comparison tables: for each outcome, one row per cell and one column per strategy, the
  count out of the trials, the estimate and its interval (``data-count``/``data-trials``
  attributes hold the table's integers), then the totals per strategy over the sweep;
- the scenario's values marked as estimates in its config, with their reasons, each marked
  "estimate" (those an axis or the sweep file sets are said to be swept / set instead).
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import re
from itertools import product
from pathlib import Path

from . import __version__
from .results import OUTCOMES

REPORT_OUTCOMES = tuple(o for o in OUTCOMES if o != "migrated") + ("not_migrated",)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1400px;
     padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.k,th.k{text-align:left}
td.zero{color:#666;background:repeating-linear-gradient(45deg,#eee,#eee 3px,#fff 3px,#fff 6px)}
.ci{color:#555;font-size:.9em}
.est{display:inline-block;background:#fff3cd;border:1px solid #d9a400;border-radius:3px;
     padding:0 .3em;font-size:.8em;font-weight:600}
.swept{display:inline-block;background:#e2eefb;border:1px solid #5b8fd0;border-radius:3px;
       padding:0 .3em;font-size:.8em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
dl.prov{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dl.prov dt{font-weight:600}
dl.prov dd{margin:0}
.note{color:#555;font-size:.9em}
"""


class ReportError(ValueError):
    pass


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _svg(fig, salt: str) -> str:
    """A figure as an inline <svg> element (no XML declaration or DOCTYPE; text kept as text)."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # gids repeat (one per zero-count cell): ids must be unique in a page, so they become classes
    seen: dict = {}

    def _unique(m):
        i = m.group(1)
        seen[i] = seen.get(i, 0) + 1
        return f'id="{i}"' if seen[i] == 1 and not i.startswith(("zero-", "cell-")) else f'class="{i}"'

    return re.sub(r'<g id="([a-z][a-z-]*)"', lambda m: "<g " + _unique(m), text)


def _fmt_p(p: float) -> str:
    return "0" if p == 0 else (f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}")


def _axes_values(t, axes):
    from .plots import _ticklabels

    return {a: list(zip(sorted(t[a].unique()), _ticklabels(t, a, sorted(t[a].unique())))) for a in axes}


def _prov(t, src: Path, level: float, axes, vals, spec_file) -> str:
    def u(col):
        return ", ".join(dict.fromkeys(str(v) for v in t[col])) if col in t.columns else "not recorded"

    trials = sorted({int(v) for v in t["trials"]})
    rows = [
        ("results", str(src)),
        ("scenario", u("scenario")),
        ("sweep file", str(spec_file) if spec_file else "not given (mcexplore report --sweep FILE)"),
        ("axes", "; ".join(f"{a}: {', '.join(lb for _, lb in vals[a])}" for a in axes) or "none"),
        ("strategies", ", ".join(dict.fromkeys(map(str, t["strategy"])))),
        ("cells x strategies", f"{t['cell'].nunique() if 'cell' in t.columns else '?'} x "
                               f"{t['strategy'].nunique()} = {len(t)} rows"),
        ("trials per cell", ", ".join(f"{n:,}" for n in trials)),
        ("seed", u("base_seed") + " (base; each cell's seed is a hash of it and the cell's values)"),
        ("backend", u("backend")),
        ("version", u("version")),
        ("config hashes", str(t["config_hash"].nunique()) if "config_hash" in t.columns else "not recorded"),
        ("level", f"{100 * level:g}% (intervals: mcexplore.stats.proportion_ci; zero counts: one-sided "
                  "upper bound)"),
        ("page built", f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC} by mcexplore {__version__}"),
    ]
    return '<dl class="prov" id="provenance">' + "".join(
        f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows) + "</dl>"


def _estimates(t, axes, spec_file) -> str:
    """The scenario's estimated values, marked; those the sweep sets, said so."""
    from .scenario import ScenarioError, load_scenario

    names = list(dict.fromkeys(str(v) for v in t["scenario"])) if "scenario" in t.columns else []
    set_by: dict[str, str] = {}
    base = None
    if spec_file is not None:
        from .sweep import base_scenario, load_sweep

        spec = load_sweep(spec_file)
        for a in spec.axes:
            for p in a.paths:
                set_by[p] = f"swept (axis {a.name})"
            if a.derived == "window":
                set_by["timing.pre_freeze"] = f"swept (derived axis {a.name})"
        for p, _ in spec.overrides:
            set_by.setdefault(p, "set by the sweep file")
        try:
            base = base_scenario(spec)
        except ScenarioError:
            base = None
    out = []
    for name in names or ([base.name] if base is not None else []):
        sc = None
        try:
            sc = load_scenario(name)
        except (ScenarioError, FileNotFoundError, ValueError, OSError):
            pass
        if sc is None:
            out.append(f"<p>Scenario <b>{_esc(name)}</b>: its config could not be loaded here, so its "
                       "estimates are not listed.</p>")
            continue
        notes = sc.notes
        est = sc.estimates()
        out.append(f"<h3>Scenario {_esc(name)}</h3>")
        if not est:
            out.append("<p>No value of this scenario is marked as an estimate.</p>")
            continue
        out.append('<table class="estimates"><tr><th class="k">value</th><th class="k">in the config</th>'
                   '<th class="k">status</th><th class="k">why</th></tr>')
        cfg = sc.to_dict(notes=False)
        for path in est:
            node = cfg
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else (
                    node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else None)
            val = node if not isinstance(node, dict) else ", ".join(f"{k}={v}" for k, v in node.items())
            status = set_by.get(path) or next((f"swept (axis {a})" for a in axes if path.split(".")[-1] == a), None)
            if status is None and spec_file is not None and any(path.startswith(p + ".") for p in set_by):
                status = "set by the sweep file"
            badge = (f'<span class="swept">{_esc(status)}</span>' if status else '<span class="est">estimate</span>')
            out.append(f'<tr class="{"row-swept" if status else "row-estimate"}"><td class="k"><code>{_esc(path)}</code></td>'
                       f'<td class="k">{_esc(val)}</td><td class="k">{badge}</td>'
                       f'<td class="k">{_esc(notes[path].why)}</td></tr>')
        out.append("</table>")
        if spec_file is None:
            out.append('<p class="note">Without the sweep file (<code>--sweep</code>) the page cannot tell '
                       "which of these values the sweep's fixed overrides replaced; a value whose last key is "
                       "an axis name is shown as swept.</p>")
    return "".join(out) or "<p>The results do not name a scenario.</p>"


def _outcome_table(t, outcome, axes, vals, strategies, level) -> str:
    from .plots import _intervals, _pool

    g = _intervals(_pool(t, [*axes, "strategy"], outcome), level)
    key = {tuple(getattr(r, a) for a in axes) + (r.strategy,): r for r in g.itertuples(index=False)}
    head = "".join(f'<th class="k">{_esc(a)}</th>' for a in axes) + "".join(
        f"<th>{_esc(s)}</th>" for s in strategies)
    rows = []
    for combo in product(*[vals[a] for a in axes]):
        cells = "".join(f'<td class="k">{_esc(lb)}</td>' for _, lb in combo)
        where = "&".join(f"{a}={lb}" for a, (_, lb) in zip(axes, combo))
        any_row = False
        for s in strategies:
            r = key.get(tuple(v for v, _ in combo) + (s,))
            if r is None:
                cells += '<td class="none">-</td>'
                continue
            any_row = True
            c, n = int(r.count), int(r.trials)
            cls = "zero" if c == 0 else "seen"
            est = f"&lt;{_fmt_p(r.hi)}" if c == 0 else _fmt_p(r.p)
            cells += (f'<td class="{cls}" data-where="{_esc(where)}" data-strategy="{_esc(s)}" '
                      f'data-count="{c}" data-trials="{n}">'
                      f'<span class="kn">{c}/{n}</span><br><span class="p">{est}</span> '
                      f'<span class="ci">[{_fmt_p(r.lo)}, {_fmt_p(r.hi)}]</span></td>')
        if any_row:
            rows.append(f"<tr>{cells}</tr>")
    return (f'<table class="outcome" data-outcome="{_esc(outcome)}"><tr>{head}</tr>' + "".join(rows) + "</table>")


def _totals_table(t, strategies, level) -> str:
    from .stats import proportion_ci

    head = '<th class="k">strategy</th><th>trials</th>' + "".join(f"<th>{_esc(o)}</th>" for o in REPORT_OUTCOMES)
    rows = []
    for s in strategies:
        sub = t[t["strategy"] == s]
        n = int(sub["trials"].sum())
        cells = f'<td class="k">{_esc(s)}</td><td>{n:,}</td>'
        for o in REPORT_OUTCOMES:
            c = int((sub["trials"] - sub["migrated"]).sum()) if o == "not_migrated" else int(sub[o].sum())
            r = proportion_ci(c, n, level)
            cells += (f'<td class="{"zero" if c == 0 else "seen"}" data-strategy="{_esc(s)}" data-outcome="{o}" '
                      f'data-count="{c}" data-trials="{n}">{c}<br><span class="ci">'
                      f'{"&lt;" + _fmt_p(r.hi) if c == 0 else _fmt_p(r.p)}</span></td>')
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="totals"><tr>{head}</tr>' + "".join(rows) + "</table>"


def build_report(sweep_dir, out=None, level: float = 0.95, sweep_file=None, outcomes=None,
                 max_maps: int = 24) -> str:
    """The report page of the sweep in ``sweep_dir`` (a folder or its results file) as a string;
    written to ``out`` when given. ``sweep_file``: the sweep's TOML, to mark what it sets."""
    from .plots import PlotError, axis_columns, curve, riskmap
    from .tables import load_results

    src = Path(sweep_dir)
    try:
        t = load_results(src)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise ReportError(f"{sweep_dir}: cannot read results: {e}") from None
    if t.empty:
        raise ReportError(f"{sweep_dir}: the results table is empty")
    if "is_sums" in t.columns:
        raise ReportError(f"{sweep_dir}: an importance-sampling table (sweep --rare): the report's tables "
                          "pool counts, which its rows do not have; use mcexplore plot riskmap (or curve) "
                          "on it, with --format text for the numbers")
    axes = axis_columns(t)
    # the horizontal axis: the one with more values (columns are cheaper than rows)
    if len(axes) >= 2 and t[axes[1]].nunique() > t[axes[0]].nunique():
        axes = [axes[1], axes[0], *axes[2:]]
    vals = _axes_values(t, axes)
    strategies = list(dict.fromkeys(map(str, t["strategy"])))
    outcomes = tuple(outcomes or REPORT_OUTCOMES)
    title = f"mcexplore sweep report: {', '.join(dict.fromkeys(map(str, t.get('scenario', ['?']))))}"

    figs = []
    rest = axes[2:] if len(axes) >= 2 else []
    combos = list(product(*[vals[a] for a in rest]))[:max_maps]
    n_fig = 0
    for outcome in outcomes:
        for combo in combos or [()]:
            where = {a: lb for a, (_, lb) in zip(rest, combo)}
            try:
                if len(axes) >= 2:
                    fig = riskmap(t, axes[0], axes[1], outcome=outcome, where=where or None, level=level)
                elif len(axes) == 1:
                    fig = curve(t, axes[0], outcome=outcome, level=level)
                else:
                    continue
            except PlotError as e:
                figs.append(f'<p class="note">P({_esc(outcome)}): no figure ({_esc(e)})</p>')
                continue
            n_fig += 1
            cap = f"P({outcome})" + (" at " + ", ".join(f"{k}={v}" for k, v in where.items()) if where else "")
            figs.append(f'<figure class="plot" data-outcome="{_esc(outcome)}">{_svg(fig, f"f{n_fig}")}'
                        f"<figcaption>{_esc(cap)}</figcaption></figure>")
    if not axes:
        figs.append('<p class="note">The sweep has no axis: no map or curve, only the tables.</p>')

    tables = [f"<h3>P({_esc(o)})</h3>" + _outcome_table(t, o, axes, vals, strategies, level) for o in outcomes]
    body = f"""<h1>{_esc(title)}</h1>
<p class="note">Every number on this page comes from the results table; each cell's strategies ran on
the same seed (common random numbers). A zero count is shown as &lt; its {100 * level:g}% one-sided upper
bound, grey and hatched, never as a value. Values marked <span class="est">estimate</span> are the
scenario's estimates, not measurements.</p>
<h2 id="prov">Provenance</h2>
{_prov(t, src, level, axes, vals, sweep_file)}
<h2 id="estimates">The scenario's estimates</h2>
{_estimates(t, axes, sweep_file)}
<h2 id="maps">{"Risk maps" if len(axes) >= 2 else "Curves"}</h2>
{"".join(figs)}
<h2 id="tables">Comparison tables</h2>
<p class="note">Count / trials, the estimate and its {100 * level:g}% interval, per cell and strategy.</p>
{"".join(tables)}
<h3>Totals over the sweep, per strategy</h3>
{_totals_table(t, strategies, level)}
"""
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n")
    if out is not None:
        from .io import atomic_write_bytes

        import os

        atomic_write_bytes(Path(out), page.encode("utf-8"))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(out, 0o666 & ~mask)  # a page to share: the usual mode, not the temporary file's 0600
    return page
