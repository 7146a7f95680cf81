"""Tests of mcexplore.plots on small synthetic tables: the files decode, have the expected size,
are not blank, have one panel per strategy, share one colour scale, and mark zero-count cells."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mcexplore.plots import PANEL, PlotError, cdf, curve, riskmap  # noqa: E402
from mcexplore.results import HIST_BINS, OUTCOMES, SUMS, Aggregate, hist_bucket  # noqa: E402
from mcexplore.sweep import hist_to_json  # noqa: E402

STRATS = ["ref", "drop", "ptl_pin"]
MAPCOUNTS = [1, 4, 16, 64]
RATES = [1e5, 1e6, 1e7]
RATE_LABELS = {1e5: "0.1/us", 1e6: "1/us", 1e7: "10/us"}


def _table(extra_axis=False):
    rng = np.random.default_rng(0)
    rows = []
    for s_i, s in enumerate(STRATS):
        for m in MAPCOUNTS:
            for r in RATES:
                for z in ([1, 2] if extra_axis else [None]):
                    trials = 1000
                    # ref: livelock grows with mapcount and rate; ptl_pin: never
                    p = 0.0 if s == "ptl_pin" else min(0.9, 1e-3 * m * r / 1e6 / (1 + 20 * s_i))
                    k = int(rng.binomial(trials, p))
                    row = {"mapcount": m, "mapcount_label": str(m), "access_rate": r,
                           "access_rate_label": RATE_LABELS[r], "strategy": s, "trials": trials}
                    if z is not None:
                        row.update({"window": z, "window_label": f"{z}us"})
                    row.update({o: 0 for o in OUTCOMES})
                    row["livelock"] = k
                    row["migrated"] = trials - k
                    row.update({f"sum_{x}": 0 for x in SUMS})
                    row["max_wait_max"] = 0
                    t_mig = rng.lognormal(np.log(1e4 * (1 + 5 * (s == "ref"))), 1.0, trials - k).astype(np.int64)
                    row["hist_t_migrated"] = hist_to_json(np.bincount(hist_bucket(t_mig), minlength=HIST_BINS))
                    row["hist_attempts"] = hist_to_json(np.bincount(hist_bucket(rng.geometric(0.5, trials)), minlength=HIST_BINS))
                    row["hist_max_wait"] = hist_to_json(np.bincount(hist_bucket(rng.integers(0, 10**6, trials)), minlength=HIST_BINS))
                    rows.append(row)
    return pd.DataFrame(rows)


def _check_png(path, fig, dpi=100):
    img = mpimg.imread(path)
    w, h = fig.get_size_inches() * dpi
    assert img.shape[:2] == (round(h), round(w))
    assert img[..., :3].var() > 1e-3  # not blank
    return img


def _panels(fig):
    return [a for a in fig.axes if a.get_label() == PANEL]


def test_riskmap(tmp_path):
    t = _table()
    fig = riskmap(t, "mapcount", "access_rate", out=tmp_path / "r.png")
    _check_png(tmp_path / "r.png", fig)
    panels = _panels(fig)
    assert len(panels) == len(STRATS) and [a.get_title() for a in panels] == STRATS
    assert len(fig.axes) == len(STRATS) + 1  # plus one shared colour bar
    # one shared colour scale
    clims = {a.collections[0].get_clim() for a in panels}
    assert len(clims) == 1
    # zero-count cells are hatched, one patch per zero cell, in the right panel
    for a, s in zip(panels, STRATS):
        hatched = [p for p in a.patches if p.get_gid() == "zero-count" and p.get_hatch()]
        zeros = int(((t.strategy == s) & (t.livelock == 0)).sum())
        assert len(hatched) == zeros
    assert len(_panels(fig)[2].patches) == len(MAPCOUNTS) * len(RATES)  # ptl_pin: all zero
    # tick labels come from the *_label columns
    assert [x.get_text() for x in panels[0].get_yticklabels()] == ["0.1/us", "1/us", "10/us"]
    # zero cells sit at their upper bound: log10(1 - 0.05**(1/1000))
    z = np.asarray(panels[2].collections[0].get_array())
    assert np.allclose(z, np.log10(1 - 0.05 ** (1 / 1000)))
    plt.close(fig)
    fig = riskmap(t, "mapcount", "access_rate", out=tmp_path / "r.svg")
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    plt.close(fig)


def test_riskmap_needs_fixed_axes(tmp_path):
    t = _table(extra_axis=True)
    with pytest.raises(PlotError, match="window"):
        riskmap(t, "mapcount", "access_rate")
    fig = riskmap(t, "mapcount", "access_rate", where={"window": "2us"}, out=tmp_path / "w.png")
    _check_png(tmp_path / "w.png", fig)
    plt.close(fig)
    fig = riskmap(t[t.strategy == "ref"], "mapcount", "access_rate", facet="window", out=tmp_path / "f.png")
    assert [a.get_title() for a in _panels(fig)] == ["window = 1us", "window = 2us"]
    plt.close(fig)
    with pytest.raises(PlotError, match="no row"):
        riskmap(t, "mapcount", "access_rate", where={"window": 9})
    with pytest.raises(PlotError, match="outcome"):
        riskmap(t, "mapcount", "access_rate", where={"window": 1}, outcome="explode")


def test_curve(tmp_path):
    t = _table()
    sub = t[t.access_rate == 1e6]
    fig = curve(sub, "mapcount", out=tmp_path / "c.png")
    _check_png(tmp_path / "c.png", fig)
    (ax,) = _panels(fig)
    zero_markers = [ln for ln in ax.lines if ln.get_gid() == "zero-count"]
    assert sum(len(ln.get_xdata()) for ln in zero_markers) == int((sub.livelock == 0).sum())
    assert len(ax.collections) == len(STRATS)  # one band per strategy
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(PlotError, match="access_rate"):
        curve(t, "mapcount")


def test_cdf_from_table_and_aggregates(tmp_path):
    t = _table()
    fig = cdf(t, "t_migrated", out=tmp_path / "d.png")
    _check_png(tmp_path / "d.png", fig)
    (ax,) = _panels(fig)
    lines = [ln for ln in ax.lines if len(ln.get_xdata())]
    assert len(lines) == len(STRATS)
    # t_migrated is normalised by all trials: the curve ends at P(migrated)
    for ln, s in zip(lines, STRATS):
        sub = t[t.strategy == s]
        assert ln.get_ydata()[-1] == pytest.approx(sub.migrated.sum() / sub.trials.sum())
        assert np.all(np.diff(ln.get_ydata()) >= 0)
    plt.close(fig)
    aggs = {}
    rng = np.random.default_rng(1)
    for s in STRATS:
        a = Aggregate(trials=100)
        a.hists["max_wait"] = np.bincount(hist_bucket(rng.integers(0, 10**5, 100)), minlength=HIST_BINS)
        aggs[s] = a
    fig = cdf(aggs, "max_wait", out=tmp_path / "m.svg")
    (ax,) = _panels(fig)
    assert all(ln.get_ydata()[-1] == pytest.approx(1.0) for ln in ax.lines if len(ln.get_xdata()))
    plt.close(fig)
    with pytest.raises(PlotError):
        cdf(aggs, "nonsense")


def test_plot_cli(tmp_path):
    from click.testing import CliRunner

    from mcexplore.cli_analysis import plot

    t = _table()
    t.to_parquet(tmp_path / "results.parquet", index=False)
    r = CliRunner().invoke(plot, ["riskmap", str(tmp_path), "--x", "mapcount", "--y", "access_rate",
                                  "--out", str(tmp_path / "r.png")])
    assert r.exit_code == 0, r.output
    assert mpimg.imread(tmp_path / "r.png").shape[2] == 4
    r = CliRunner().invoke(plot, ["curve", str(tmp_path / "results.parquet"), "--x", "mapcount",
                                  "--where", "access_rate=1/us", "--out", str(tmp_path / "c.svg")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(plot, ["cdf", str(tmp_path), "--metric", "max_wait", "--out", str(tmp_path / "d.png")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(plot, ["curve", str(tmp_path), "--x", "mapcount", "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "access_rate" in r.output  # an unplotted axis varies
    r = CliRunner().invoke(plot, ["riskmap", str(tmp_path), "--x", "nope", "--y", "access_rate", "--out", "a.png"])
    assert r.exit_code == 2 and "nope" in r.output
    for sub in ("riskmap", "curve", "cdf"):
        assert "Example" in CliRunner().invoke(plot, [sub, "--help"]).output


# --------------------------------------------------------------------------- issue #12: misleading plots

def _grid(strats, xs, ys, count, trials=1000, extra=None):
    """A synthetic table: count(strategy, x, y) events out of ``trials`` per cell."""
    rows = []
    for s in strats:
        for m in xs:
            for r in ys:
                k = count(s, m, r)
                row = {"mapcount": m, "mapcount_label": str(m), "access_rate": r,
                       "access_rate_label": RATE_LABELS.get(r, f"{r / 1e6:g}/us"), "strategy": s,
                       "trials": trials, **{o: 0 for o in OUTCOMES}, "livelock": k, "migrated": trials - k,
                       **{f"sum_{x}": 0 for x in SUMS}, "max_wait_max": 0,
                       "hist_t_migrated": hist_to_json(np.bincount(hist_bucket(np.full(trials - k, 5000)), minlength=HIST_BINS)),
                       "hist_attempts": hist_to_json(np.bincount(hist_bucket(np.ones(trials, dtype=np.int64)), minlength=HIST_BINS)),
                       "hist_max_wait": hist_to_json(np.zeros(HIST_BINS, dtype=np.int64))}
                row.update(extra or {})
                rows.append(row)
    return pd.DataFrame(rows)


def test_riskmap_zero_cells_are_neutral_hatched_and_labelled_with_their_bound(tmp_path):
    from matplotlib.colors import to_rgba

    from mcexplore.plots import NEUTRAL, ZERO, ZERO_LABEL

    # one cell: nothing seen in 100 trials (< 0.03); the others observed, one of them at 0.01
    t = _grid(["ref"], [1, 4], [1e6, 1e7], lambda s, m, r: 0 if (m, r) == (1, 1e6) else (1 if m == 1 else 50),
              trials=100)
    fig = riskmap(t, "mapcount", "access_rate", out=tmp_path / "z.png")
    (ax,) = _panels(fig)
    mesh = ax.collections[0]
    assert mesh.get_cmap().name.startswith(("viridis", "cividis"))  # colour-blind safe
    (patch,) = [p for p in ax.patches if p.get_gid() == ZERO]
    assert patch.get_hatch() and patch.get_xy() == (0, 0)
    bound = 1 - 0.05 ** (1 / 100)
    drawn = patch.get_facecolor()
    assert np.allclose(drawn, to_rgba(NEUTRAL))
    # not the colour the scale gives its bound, nor any colour of the scale near it
    scale = mesh.cmap(mesh.norm(np.log10(bound)))
    assert not np.allclose(drawn, scale, atol=0.05)
    # the mesh does not colour the zero cell (masked), and the observed 0.01 is on the scale
    arr = mesh.get_array()
    assert np.ma.getmaskarray(arr)[0, 0] and not np.ma.getmaskarray(arr)[0, 1]
    assert mesh.norm.vmin == pytest.approx(np.log10(0.01))  # the scale spans observed cells only
    labels = [x for x in ax.texts if x.get_gid() == ZERO_LABEL]
    assert [x.get_text() for x in labels] == ["<0.03"] and labels[0].get_position() == (0.5, 0.5)
    plt.close(fig)


@pytest.mark.parametrize("ncols", [9, 16])
def test_riskmap_cell_labels_do_not_overlap(tmp_path, ncols):
    from mcexplore.plots import CELL_LABEL, ZERO_LABEL

    xs = [2 ** i for i in range(ncols)]
    t = _grid(STRATS, xs, RATES, lambda s, m, r: 0 if s == "ptl_pin" or m == 1 else min(999, m * 3 + 1))
    fig = riskmap(t, "mapcount", "access_rate", out=tmp_path / "n.png")
    fig.canvas.draw()
    rend = fig.canvas.get_renderer()
    for ax in _panels(fig):
        texts = [x for x in ax.texts if x.get_gid() in (CELL_LABEL, ZERO_LABEL)]
        assert len(texts) == ncols * len(RATES)
        boxes = [x.get_window_extent(rend) for x in texts]
        for x, b in zip(texts, boxes):
            cx, cy = x.get_position()
            cell = ax.transData.transform([[cx - 0.5, cy - 0.5], [cx + 0.5, cy + 0.5]])
            assert cell[0][0] <= b.x0 and b.x1 <= cell[1][0], x.get_text()  # inside its cell
            assert cell[0][1] <= b.y0 and b.y1 <= cell[1][1], x.get_text()
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
    plt.close(fig)


def test_curve_six_all_zero_series_stay_distinguishable(tmp_path):
    from mcexplore.plots import ZERO

    six = ["ref", "drop", "ptl_pin", "pte_wait", "pte_wait_norecheck", "noref"]
    t = _grid(six, MAPCOUNTS, [1e6], lambda s, m, r: 0)
    fig = curve(t, "mapcount", out=tmp_path / "z.png")
    (ax,) = _panels(fig)
    zero = [ln for ln in ax.lines if ln.get_gid() == ZERO]
    assert len(zero) == 6
    assert len({ln.get_marker() for ln in zero}) == 6  # a marker each
    xs = np.array([ln.get_xdata() for ln in zero], dtype=float)
    assert all(len(set(col)) == 6 for col in xs.T)  # dodged: no two at the same x
    assert np.all(np.abs(np.log10(xs / np.array(MAPCOUNTS, dtype=float))) < 0.1)  # but only a little
    texts = [x.get_text() for x in ax.get_legend().get_texts()]
    note = [x for x in texts if x.startswith("all zero: ")]
    assert len(note) == 1 and all(s in note[0] for s in six)
    plt.close(fig)
    # series that do not coincide are not moved
    fig = curve(_table()[lambda d: d.access_rate == 1e6], "mapcount")
    (ax,) = _panels(fig)
    for ln in ax.lines:
        if len(ln.get_xdata()) and ln.get_gid() != ZERO:
            assert set(np.asarray(ln.get_xdata(), dtype=float)) <= {float(m) for m in MAPCOUNTS}
    plt.close(fig)


def test_cdf_identical_lines_stay_distinguishable(tmp_path):
    five = ["ref", "drop", "ptl_pin", "pte_wait", "noref"]
    t = _grid(five, [1], [1e6], lambda s, m, r: 0)
    fig = cdf(t, "t_migrated", out=tmp_path / "c.png")
    (ax,) = _panels(fig)
    lines = [ln for ln in ax.lines if len(ln.get_xdata())]
    assert len(lines) == 5
    styles = {(str(ln.get_linestyle()), ln.get_marker(), ln.get_linewidth()) for ln in lines}
    assert len(styles) == 5 and len({ln.get_linewidth() for ln in lines}) == 5  # the first widest, under the rest
    assert len({ln.get_marker() for ln in lines}) == 5
    note = [x.get_text() for x in ax.get_legend().get_texts() if x.get_text().startswith("identical: ")]
    assert len(note) == 1 and all(s in note[0] for s in five)
    plt.close(fig)


def test_every_figure_carries_its_provenance(tmp_path):
    from matplotlib.text import Text

    from mcexplore.plots import PROVENANCE

    meta = {"scenario": "thread-2018", "base_seed": 2018, "seed": 1, "backend": "numpy", "version": "0.1.0"}
    t = _grid(STRATS, MAPCOUNTS, RATES, lambda s, m, r: m, extra=meta)
    figs = [riskmap(t, "mapcount", "access_rate", level=0.99),
            curve(t, "mapcount", where={"access_rate": "1/us"}),
            cdf(t, "attempts", where={"access_rate": "1/us", "mapcount": "4"})]
    wheres = ["where: all rows", "where access_rate=1/us", "where access_rate=1/us, mapcount=4"]
    for fig, where in zip(figs, wheres):
        (prov,) = [x for x in fig.findobj(Text) if x.get_gid() == PROVENANCE and x.get_text()]
        text = prov.get_text()
        for word in ("scenario thread-2018", where, "1,000 trials per cell", "seed 2018", "backend numpy",
                     "mcexplore 0.1.0"):
            assert word in text, (word, text)
        plt.close(fig)
    assert "level 99%" in [x for x in figs[0].findobj(Text) if x.get_gid() == PROVENANCE][0].get_text()


def test_riskmap_without_any_event_draws_no_colour_scale(tmp_path):
    t = _table().assign(livelock=0)
    fig = riskmap(t, x="mapcount", y="access_rate", outcome="livelock", out=tmp_path / "r.png")
    try:
        assert [a for a in fig.axes if a.get_label() != PANEL] == []  # no colour bar axes
        assert "no colour scale" in fig._suptitle.get_text()
        # with an event somewhere, the scale is there
        fig2 = riskmap(_table(), x="mapcount", y="access_rate", outcome="livelock", out=tmp_path / "s.png")
        assert [a for a in fig2.axes if a.get_label() != PANEL]
        plt.close(fig2)
    finally:
        plt.close(fig)
