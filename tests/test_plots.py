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
