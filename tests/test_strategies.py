"""The strategy registry: adding a strategy takes exactly the steps docs/strategies.md lists.

A toy strategy ("back_off": no reference; drop the PTL, wait noref_gap, retry the access) is added
in a temporary registry, with its numpy handler class below and its kernel specialisation
appended to the kernel sources, and nothing else: the generated header, the numpy engine, a native
library built from the amended sources (bit for bit against numpy, page and block level), scenario
validation, the CLI, the exact solver's coverage and the docs' table all take it from the row.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcexplore import constants as K
from mcexplore import rng, strategies
from mcexplore.engines import kernel_source, numpy_strategies
from mcexplore.engines.numpy_engine import NumpyEngine

import test_parity as tp

DOCS = Path(__file__).resolve().parent.parent / "docs" / "strategies.md"


class BackOff(numpy_strategies.Handler):
    """The toy's waiter: no reference and no sleep; it drops the PTL and retries after noref_gap."""

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        y = p + sim.draw("noref_gap", rng.NOREF_GAP, rows, kf, cols + 1, sub)
        sim.observe("ptl_drop", rows, cols, p)
        sim.schedule(rows, cols, int(K.Ev.RET), y)


# Step 4 of docs/strategies.md: the kernel handler, before the dispatch section of strategies.h.
KERNEL_HANDLER = """
template <>
struct mcx_strategy<MCX_S_BACK_OFF> : mcx_strategy_defaults<MCX_S_BACK_OFF> {
    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        (void)x, (void)inc, (void)inp, (void)frozen;
        s.schedule(c, MCX_EV_RET, p + s.draw(MCX_DIST_NOREF_GAP, MCX_P_NOREF_GAP, kf, c + 1, sub));
    }
};

"""
DISPATCH_MARK = "// -- the dispatch"


def toy_registry():
    # Step 1: a registry row (the next code; exact "none": the exact solver does not model it).
    row = strategies.Strategy("back_off", len(strategies.names()), "drop the PTL and retry after noref_gap",
                              "none", "a toy (tests/test_strategies.py)", f"{__name__}:BackOff", exact="none")
    return strategies.registry().add(row)


def test_docs_table_is_the_registry():
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(r"<!-- strategy-table -->\n(.*?)<!-- /strategy-table -->", text, flags=re.S)
    assert m, "docs/strategies.md lost its table markers"
    assert m.group(1) == strategies.markdown_table(), "run python -m mcexplore.strategies and paste the table"


def test_registry_rejects_a_row_that_breaks_the_numbering():
    reg = strategies.registry()
    bad = strategies.Strategy("x", len(reg.rows) + 1, "", "", "", "m:C")
    with pytest.raises(ValueError, match="codes must be"):
        reg.add(bad)
    with pytest.raises(ValueError, match="unique"):
        reg.add(strategies.Strategy("ref", len(reg.rows), "", "", "", "m:C"))


@pytest.fixture(scope="module")
def toy_native():
    """A native library built from the kernel sources plus steps 2 and 4 (no file is touched)."""
    from mcexplore.engines.native import NativeEngine

    ok, why = NativeEngine.availability()
    if not ok:
        pytest.skip(why)
    with strategies.use(toy_registry()):
        header = K.header_text()  # step 2
    src = kernel_source.source_files()["strategies.h"]
    assert DISPATCH_MARK in src
    amended = src.replace(DISPATCH_MARK, KERNEL_HANDLER + DISPATCH_MARK, 1)
    return NativeEngine(nthreads=1, overrides={"constants.h": header, "strategies.h": amended})


def _toy(compiled):
    compiled.strategy = strategies.get("back_off").code
    return compiled


@pytest.mark.parametrize("scen", ["base_file", "dists_anon_transient", "timeout_mid", "ties", "cold"])
def test_toy_strategy_numpy_and_native_agree(toy_native, scen):
    with strategies.use(toy_registry()):
        c = _toy(tp.make("ptl_pin", {}, **tp.SCENARIOS[scen]))
        ref = NumpyEngine().run_records(c, 77, 0, 64)
        got = toy_native.run_records(c, 77, 0, 64)
    tp.assert_same(ref, got, f"back_off {scen}")
    if scen != "cold":
        # Nobody holds a reference: only transient references fail an attempt; waiters refault.
        assert ref["faults"].sum() > 0 and ref["hang"].sum() == 0 and ref["uaf"].sum() == 0


@pytest.mark.parametrize("scen", ["block_base", "block_timeout"])
def test_toy_strategy_block_level_agrees(toy_native, scen):
    with strategies.use(toy_registry()):
        c = _toy(tp.make_block("ptl_pin", {}, scen))
        tp.assert_same(NumpyEngine().run_records(c, 5, 0, 32), toy_native.run_records(c, 5, 0, 32),
                       f"back_off {scen}")


def test_toy_strategy_in_the_scenario_the_cli_and_exact():
    from click.testing import CliRunner

    from mcexplore import exact
    from mcexplore.cli import main
    from mcexplore.scenario import ScenarioError, load_scenario

    small = ["page.mapcount=3", "page.active=3", "budget.max_attempts=20"]
    with pytest.raises(ScenarioError, match="back_off"):
        load_scenario("thread-2018", overrides=small + ['strategies=["back_off"]'])
    with strategies.use(toy_registry()):
        s = load_scenario("thread-2018", overrides=small + ['strategies=["back_off", "ref"]'])
        assert s.labels() == ["back_off", "ref"]
        with pytest.raises(exact.NotExact, match="back_off"):
            exact.exact_for(s.compile("back_off"))
        sets = sum((["--set", kv] for kv in small + ['strategies=["back_off", "ref"]']), [])
        r = CliRunner().invoke(main, ["run", "thread-2018", "-s", "back_off", "-n", "20", "--backend", "numpy",
                                      "--json", *sets])
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        assert "back_off" in json.dumps(out)
        assert "`back_off`" in strategies.markdown_table()
