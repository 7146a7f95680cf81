"""Tests of mcexplore.report (``mcexplore report``): the page is one self-contained HTML file whose
figures are inline SVG and whose tables hold the results table's numbers; and, where Debian's
chromium is installed, a real headless Chromium loads it without console messages, every figure
renders (a non-blank screenshot of each) and the rendered DOM's tables equal the parquet's values.

The sweep is tiny (numpy backend, 3 x 2 cells x 3 strategies, 40 trials: about a second)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from mcexplore.report import REPORT_OUTCOMES, build_report  # noqa: E402
from mcexplore.sweep import load_results, run_sweep  # noqa: E402

SPEC = {"base": "thread-2018", "trials": 40, "seed": 7, "strategies": ["ref", "drop", "ptl_pin"],
        "set": {"budget": {"max_attempts": 20, "timeout": "10ms"}, "page": {"active": 2, "mapcount": 3}},
        "axes": [{"path": ["page.mapcount", "page.active"], "name": "mapcount", "values": [1, 2, 3]},
                 {"path": "page.access_rate", "values": ["0.1/us", "2/us"]}]}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    run_sweep(SPEC, d, backend="numpy", progress=False)
    page = d / "report.html"
    build_report(d, out=page)
    return d, page


class _Cells(HTMLParser):
    """The report's data cells (<td data-count=...>) and its <svg> elements."""

    def __init__(self):
        super().__init__()
        self.cells, self.svgs, self.tables, self.external = [], 0, [], []
        self._outcome = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svgs += 1
        if tag == "table":
            self._outcome = a.get("data-outcome")
            self.tables.append(a.get("class"))
        if tag == "td" and "data-count" in a:
            self.cells.append((a.get("data-outcome") or self._outcome, a.get("data-where"), a["data-strategy"],
                               int(a["data-count"]), int(a["data-trials"])))
        if tag in ("script", "link", "img", "iframe", "object", "embed"):
            if tag != "link" or a.get("rel") != "icon" or not str(a.get("href", "")).startswith("data:"):
                self.external.append((tag, a))
        for k in ("src", "href"):
            if k in a and not str(a[k]).startswith(("#", "data:")):
                self.external.append((tag, a))


def _parse(text: str) -> _Cells:
    p = _Cells()
    p.feed(text)
    return p


def _expected(t, outcome, where, strategy):
    sub = t[t.strategy == strategy]
    for kv in where.split("&") if where else []:
        k, _, v = kv.partition("=")
        sub = sub[sub[f"{k}_label"].astype(str) == v]
    n = int(sub.trials.sum())
    c = int((sub.trials - sub.migrated).sum()) if outcome == "not_migrated" else int(sub[outcome].sum())
    return c, n


def _check_tables(html_text: str, results_dir: Path):
    t = load_results(results_dir)
    p = _parse(html_text)
    strategies = list(dict.fromkeys(t.strategy))
    per_outcome = [c for c in p.cells if c[1] is not None]
    totals = [c for c in p.cells if c[1] is None]
    assert len(per_outcome) == len(REPORT_OUTCOMES) * len(t)  # every row, every outcome
    assert len(totals) == len(REPORT_OUTCOMES) * len(strategies)
    for outcome, where, s, c, n in p.cells:
        assert (c, n) == _expected(t, outcome, where, s), (outcome, where, s)
    return p


def test_report_page_is_self_contained_and_holds_the_tables(sweep):
    d, page = sweep
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    p = _check_tables(text, d)
    assert p.svgs == len(REPORT_OUTCOMES)  # one risk map per outcome, panels per strategy
    assert not p.external, p.external  # no script, style sheet, image or link to fetch
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text  # inline, not pasted files
    for s in SPEC["strategies"]:
        assert f">{s}</text>" in text or f">{s}<" in text  # panel titles kept as text
    # provenance, on the page and on every figure
    for word in ("thread-2018", "numpy", "40", "7", "0.1.0", "95%"):
        assert word in text.split('id="provenance"')[1].split("</dl>")[0]
    assert text.count('id="provenance"') == 1 + len(REPORT_OUTCOMES)
    # the scenario's estimates are marked as such; the swept one is said to be swept
    assert text.count('class="est">estimate<') > 5
    assert re.search(r"page\.access_rate</code>.*?swept \(axis access_rate\)", text)
    # zero counts: "<bound", never a bare 0 estimate
    assert "&lt;0.072" in text


SWEEP_TOML = """
base = "thread-2018"
trials = 40
seed = 7
strategies = ["ref", "drop", "ptl_pin"]
[set]
"budget.max_attempts" = 20
"budget.timeout" = "10ms"
"page.active" = 2
"page.mapcount" = 3
[[axes]]
path = ["page.mapcount", "page.active"]
name = "mapcount"
values = [1, 2, 3]
[[axes]]
path = "page.access_rate"
values = ["0.1/us", "2/us"]
"""


def test_report_with_the_sweep_file_and_the_cli(sweep, tmp_path):
    from click.testing import CliRunner

    from mcexplore.cli import main

    d, _ = sweep
    f = tmp_path / "sweep.toml"
    f.write_text(SWEEP_TOML)
    out = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["report", str(d), "--sweep", str(f), "--level", "0.99", "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "99%" in text and str(f) in text
    assert re.search(r"page\.access_rate</code>.*?swept \(axis access_rate\)", text)
    assert "--sweep</code>) the page cannot tell" not in text
    _check_tables(text, d)
    r = CliRunner().invoke(main, ["report", str(tmp_path), "--out", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "results" in r.output


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_chromium(exe, *args, timeout=90):
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: a fetch would fail and show
           "--enable-logging=stderr", "--v=0", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    return r, console


def _not_blank(png: Path, min_ink=0.01):
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    ink = (img.min(axis=2) < 0.9).mean()  # share of pixels that are not (near) white
    assert img.var() > 1e-3 and ink > min_ink, (png, img.var(), ink)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_in_headless_chromium(sweep, tmp_path):
    exe = _chromium()
    d, page = sweep
    url = page.resolve().as_uri()
    # the positive control: a console error on a page is seen
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>")
    _, console = _run_chromium(exe, "--dump-dom", bad.resolve().as_uri())
    if not any("boom" in ln for ln in console):
        pytest.skip("this chromium does not log console messages on stderr")
    # the page loads without a console message; the DOM it renders holds the parquet's values
    r, console = _run_chromium(exe, "--dump-dom", url)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not console, console
    p = _check_tables(r.stdout, d)
    assert p.svgs == len(REPORT_OUTCOMES)
    # the page renders: a screenshot of it is not blank
    shot = tmp_path / "page.png"
    r, console = _run_chromium(exe, f"--screenshot={shot}", "--window-size=1200,3000", url)
    assert shot.is_file(), r.stderr[-2000:]
    assert not console, console
    _not_blank(shot)
    # every figure renders: each <svg>, in a band of its own on one page, gives a non-blank band
    import matplotlib.image as mpimg

    svgs = re.findall(r"<svg\b.*?</svg>", page.read_text(encoding="utf-8"), flags=re.S)
    assert len(svgs) == len(REPORT_OUTCOMES)
    band = 520
    f = tmp_path / "figures.html"
    f.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><style>body{margin:0}"
                 f"div{{width:1100px;height:{band}px;overflow:hidden}}svg{{width:1100px;height:auto}}"
                 "</style></head><body>" + "".join(f"<div>{svg}</div>" for svg in svgs) + "</body></html>",
                 encoding="utf-8")
    png = tmp_path / "figures.png"
    r, console = _run_chromium(exe, f"--screenshot={png}", f"--window-size=1100,{band * len(svgs)}",
                               f.resolve().as_uri())
    assert png.is_file(), r.stderr[-2000:]
    assert not console, console
    img = mpimg.imread(png)[..., :3]
    assert img.shape[0] >= band * len(svgs)
    for i in range(len(svgs)):
        part = img[i * band:(i + 1) * band]
        ink = (part.min(axis=2) < 0.9).mean()
        assert part.var() > 1e-3 and ink > 0.05, (i, part.var(), ink)


@pytest.mark.parametrize("axes,svgs", [(3, 2 * len(REPORT_OUTCOMES)), (1, len(REPORT_OUTCOMES)), (0, 0)])
def test_report_for_other_numbers_of_axes(tmp_path, axes, svgs):
    """Three axes: one map per value of the third; one axis: curves; none: the tables alone."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_plots import _table

    t = _table(extra_axis=axes == 3)
    if axes == 1:
        t = t[t.access_rate == 1e6].drop(columns=["access_rate", "access_rate_label"])
    if axes == 0:
        t = t[(t.access_rate == 1e6) & (t.mapcount == 4)].drop(
            columns=["access_rate", "access_rate_label", "mapcount", "mapcount_label"])
    t.to_parquet(tmp_path / "results.parquet", index=False)
    text = build_report(tmp_path, out=tmp_path / "r.html")
    p = _check_tables(text, tmp_path)
    assert p.svgs == svgs
    if axes == 3:
        assert "P(livelock) at window=1us" in text and "P(livelock) at window=2us" in text
