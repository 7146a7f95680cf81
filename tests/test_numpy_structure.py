"""The numpy engine's structure (issue #9): strategies are units named by the registry, so a new
one runs without an edit to the engine; the engine reports through one observer hook, and replay
renders exactly what the observer sees."""

import dataclasses
import io
import tokenize
from pathlib import Path

import pytest

from helpers import small
from mcexplore import strategies
from mcexplore.constants import Ev
from mcexplore.engines import numpy_strategies
from mcexplore.engines.numpy_engine import NumpyEngine
from mcexplore.params import PageClass, const, exponential, uniform
from mcexplore.replay import TEXT, Observations, render, replay_compiled

ENGINE = NumpyEngine()
ENGINES = Path(__file__).resolve().parent.parent / "mcexplore" / "engines"


def _contended(strategy, **kw):
    kw = {"transient": 0.05, "max_attempts": 12, "timeout_ns": 300_000, **kw}
    return small(strategy, M=4, A=3, access_us=0.5, lock_hold=exponential(3000.0),
                 noref_gap=uniform(0, 4000.0), **kw)


def _block(strategy, **kw):
    c = _contended(strategy, **kw)
    c.block = [PageClass(2, True, 0, 0, 0.0), PageClass(1, True, 4, 3, 1000.0), PageClass(3, False, 1, 0, 0.0),
               PageClass(1, False, 3, 2, 3000.0)]
    c.batch_pages = 3
    c.max_attempts = 4
    c.timeout_ns = 5_000_000
    return c


CASES = [(s.name, dict(o)) for s in strategies.registry().rows for o in s.option_cases()]
KW = {"recheck": lambda v: {"recheck": v}, "flag_from": lambda v: {"flag_unmap_end": v == "unmap_end"}}


def _kw(opts):
    out = {}
    for k, v in opts.items():
        out.update(KW[k](v))
    return out


# -- one observer hook; the English lives in replay ---------------------------------------------

@pytest.mark.parametrize("level", ["page", "block"])
@pytest.mark.parametrize("strategy,opts", CASES, ids=[f"{s}-{o}" for s, o in CASES])
def test_replay_prints_what_the_observer_sees(strategy, opts, level):
    c = (_contended if level == "page" else _block)(strategy, **_kw(opts))
    seed, t0, n = 5, 10, 6
    obs = Observations()
    batch = ENGINE.run_records(c, seed, t0, t0 + n, observer=obs)
    # the observer changes no result
    assert batch.equals(ENGINE.run_records(c, seed, t0, t0 + n))
    kinds = {kind for _, _, _, kind, _ in obs.items}
    assert kinds <= set(TEXT), kinds - set(TEXT)
    for row in range(n):
        rp = replay_compiled(c, t0 + row, seed=seed)
        # replay's timeline is the observations rendered, one line each ...
        mine = sorted(((t, w, render(k, d)) for r, t, w, k, d in obs.items if r == row), key=lambda e: e[0])
        assert rp.events == mine
        # ... whether the trial runs alone or in a batch
        assert rp.events == obs.events(row)
        assert len(rp.format().splitlines()) == len(rp.events) + 2
        assert rp.record == {f: int(v[row]) for f, v in batch.columns.items()}
    assert "fault" in kinds and "refcount_check" in kinds
    if level == "block":
        assert {"call", "cold_attempt"} <= kinds
        assert all(d.get("page") is not None for _, _, _, k, d in obs.items if k != "call")


def test_every_text_is_reachable():
    """Every kind replay can render is observed somewhere (a stale entry in TEXT would say
    nothing)."""
    seen = set()
    for strategy, opts in CASES:
        for level in (_contended, _block):
            obs = Observations()
            ENGINE.run_records(level(strategy, **_kw(opts)), 5, 0, 40, observer=obs)
            seen |= {kind for _, _, _, kind, _ in obs.items}
    abandon = _block("ref")
    abandon.max_attempts = 1
    abandon.transient_rate_per_ns = 5e-3  # checks fail: pages abandoned
    # ref: long PTL holds, so the page is unlocked when some drop the PTL
    ptl = _contended("ref", ptl_hold=exponential(5000.0))
    # lock_noref: waiters hold the lock as the migrator retries, its trylock passes fail
    trylock = small("lock_noref", M=4, A=3, access_us=0.5, lock_hold=exponential(3000.0),
                    wake_latency=const(500.0), retry_gap=const(2000.0), transient=0.5, max_attempts=40)
    for c in (abandon, ptl, trylock):
        obs = Observations()
        ENGINE.run_records(c, 5, 0, 40, observer=obs)
        seen |= {kind for _, _, _, kind, _ in obs.items}
    assert seen == set(TEXT), set(TEXT) - seen


# -- strategies are units ----------------------------------------------------------------------

SHIPPED = {s.name for s in strategies.SHIPPED}
STRATEGY_IDENTS = {n.upper() for n in SHIPPED} | {"strat", "STRATEGY_CODE"}


def _code_tokens(path):
    return list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))


@pytest.mark.parametrize("module", ["numpy_engine.py", "numpy_page.py", "numpy_block.py"])
def test_the_engine_has_no_strategy_branches(module):
    """No strategy is named in the engine's code: what a strategy does is its handler's, found
    through the registry."""
    toks = _code_tokens(ENGINES / module)
    names = {t.string for t in toks if t.type == tokenize.NAME}
    assert not names & STRATEGY_IDENTS, names & STRATEGY_IDENTS
    strings = {t.string.strip("\"'") for t in toks if t.type == tokenize.STRING}
    assert not strings & SHIPPED, strings & SHIPPED
    if module == "numpy_page.py":
        src = (ENGINES / module).read_text()
        assert "strategies.by_code(c.strategy)" in src and ".handler()" in src


def test_every_registry_row_names_a_handler():
    for row in strategies.registry().rows:
        h = row.handler()
        assert issubclass(h, numpy_strategies.Handler), row.name


def _row(name, numpy, **kw):
    reg = strategies.registry()
    return strategies.Strategy(name, len(reg.rows), "a toy", "none", "tests", numpy, **kw)


@pytest.mark.parametrize("shipped", ["ptl_pin", "lock_noref", "drop"])
def test_a_registered_copy_of_a_strategy_runs_as_it(shipped):
    """A new registry row reusing a shipped handler (and its registry columns) gives the same
    results: the engine takes the behaviour, the global order and the page lock from the row."""
    orig = strategies.get(shipped)
    c = _contended(shipped)
    want = ENGINE.run_records(c, 3, 0, 60)
    row = dataclasses.replace(orig, name="copy_of_" + shipped, code=len(strategies.registry().rows))
    with strategies.use(strategies.registry().add(row)):
        c.strategy = row.code
        assert c.strategy_name == row.name
        assert ENGINE.run_records(c, 3, 0, 60).equals(want)


class GiveUp(numpy_strategies.Handler):
    """A toy: take no reference and do not wait; drop the PTL and retry the access."""

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        sim.observe("ptl_drop", rows, cols, p)
        sim.schedule(rows, cols, int(Ev.RET), p)


def test_a_toy_strategy_runs_without_an_edit_to_the_engine():
    row = _row("give_up", f"{__name__}:GiveUp")
    c = _contended("ptl_pin", max_attempts=50, timeout_ns=10**9, transient=0)
    with strategies.use(strategies.registry().add(row)):
        c.strategy = row.code
        r = ENGINE.run_records(c, 8, 0, 100)
        rp = replay_compiled(c, 0, seed=8)
    # Nobody holds a reference: every trial moves at its first attempt, its waiters refault.
    assert (r["migrated"] == 1).all() and (r["attempts"] == 1).all()
    assert r["faults"].sum() > 0 and r["hang"].sum() == 0 and r["uaf"].sum() == 0
    assert rp.label == "give_up" and "unlock_page: page migrated" in rp.format()
