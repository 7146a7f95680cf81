"""The engine interface and the backend registry.

Where it sits: the engines (numpy, native, cupy) implement ``Engine``; everything above them
(mcexplore.api, statistics, sweeps, CLI) talks to this interface only and never learns which
engine ran beyond its name. Backends are named here as import strings and loaded lazily, so
importing mcexplore never imports cupy or builds the native library.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

from ..params import Compiled
from ..results import Aggregate, Records

# name -> "module:Class"; order is the preference of backend="auto".
BACKENDS = {
    "cupy": "mcexplore.engines.cupy_engine:CupyEngine",
    "native": "mcexplore.engines.native:NativeEngine",
    "numpy": "mcexplore.engines.numpy_engine:NumpyEngine",
}
BACKEND_CHOICES = ("auto",) + tuple(BACKENDS)


class BackendUnavailable(RuntimeError):
    pass


class Engine(ABC):
    name: str = "?"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """(usable here, why not / what it is). Must be cheap and must not raise."""
        return True, ""

    @abstractmethod
    def run_records(self, compiled: Compiled, seed: int, t0: int, t1: int) -> Records:
        """Per-trial results of trials [t0, t1)."""

    def run_aggregate(self, compiled: Compiled, seed: int, t0: int, t1: int) -> Aggregate:
        return Aggregate.from_records(self.run_records(compiled, seed, t0, t1))

    def default_batch(self, compiled: Compiled) -> int:
        return 4096


def _load_class(name: str):
    if name not in BACKENDS:
        raise BackendUnavailable(
            f"backend {name!r} is not valid: choose one of {', '.join(BACKEND_CHOICES)}")
    mod, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def availability(name: str) -> tuple[bool, str]:
    try:
        return _load_class(name).availability()
    except BackendUnavailable:
        raise
    except Exception as e:  # an import error is a reason, not a crash
        return False, f"{type(e).__name__}: {e}"


_instances: dict[str, Engine] = {}


def get_engine(name: str = "auto") -> Engine:
    """The engine called ``name`` ("auto": cupy if a GPU is usable, else native, else numpy)."""
    if name == "auto":
        for cand in BACKENDS:
            ok, _ = availability(cand)
            if ok:
                name = cand
                break
    ok, why = availability(name)
    if not ok:
        raise BackendUnavailable(f"backend {name!r} is not usable here: {why}")
    if name not in _instances:
        _instances[name] = _load_class(name)()
    return _instances[name]
