"""The numpy engine: the reference implementation of the model (docs/model.md) on the CPU.

Where it sits: one of the three engines behind ``mcexplore.engines.base.Engine``. It is the ground
truth for the kernels (tests/test_parity.py holds them to the same bits) and is itself checked
against the exact solutions (mcexplore.exact). This module only dispatches:

  numpy_page        the page simulation (``PageSim``, ``simulate_page``, ``transient_held``)
  numpy_block       block level: the offline loop over a block's pages, one PageSim per hot page
  numpy_strategies  what each strategy's waiter does (one handler class per strategy, named by
                    the strategy registry, mcexplore.strategies)

``simulate`` is the one entry point: ``NumpyEngine.run_records`` and replay (mcexplore.replay,
with an observer) both go through it.
"""

from __future__ import annotations

import numpy as np

from ..params import Compiled
from ..results import Records
from .base import Engine
from .numpy_block import simulate_block
from .numpy_page import simulate_page


def simulate(compiled: Compiled, seed: int, trials: np.ndarray, observer=None) -> Records:
    """Per-trial records of ``trials`` (int64 trial numbers), page or block level as the compiled
    scenario says. observer: called with what the simulation does (numpy_page's docstring says
    how); it never changes a result."""
    trials = np.asarray(trials, dtype=np.int64)
    if compiled.block is not None:
        return simulate_block(compiled, seed, trials, observer)
    return simulate_page(compiled, seed, trials, observer)


class NumpyEngine(Engine):
    name = "numpy"

    @classmethod
    def availability(cls):
        return True, f"numpy {np.__version__}"

    def run_records(self, compiled: Compiled, seed: int, t0: int, t1: int, observer=None) -> Records:
        return simulate(compiled, seed, np.arange(t0, t1, dtype=np.int64), observer)

    def default_batch(self, compiled: Compiled) -> int:
        cells = max(1, compiled.page.mapcount)
        return int(max(64, min(8192, 400_000 // cells)))
