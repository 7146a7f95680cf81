"""The registry of waiting strategies (MODEL.md 1.4): one row per strategy, the one list of them.

Where it sits: at the bottom, beside mcexplore.constants (which numbers the strategies from this
list for the kernels' generated header). Everything that enumerates strategies reads this
registry: scenario validation (names and options), the CLI's choices, the numpy engine (it loads
the row's handler class lazily, by import string), the kernel dispatch (an X-macro in the
generated header), the exact solver's coverage, the parity matrix of the tests and the docs'
strategy table (``markdown_table``). docs/strategies.md says how to add one.

A row's ``code`` is its index in the parameter block and the kernels' ``template<int S>``
specialisation; codes are fixed forever (they are part of the packed format), a new strategy takes
the next free one. ``use(registry)`` swaps the registry for the duration of a ``with`` block, so a
test can add a toy strategy without touching the shipped list.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    """A strategy option: its values (the first is the default) and what it means."""

    name: str
    values: tuple
    doc: str

    @property
    def default(self):
        return self.values[0]


@dataclass(frozen=True)
class Strategy:
    """One waiting strategy.

    name: what configs, the CLI and results call it. code: its number in the packed parameters and
    in the kernels (MCX_S_<NAME>). summary / reference / seen_in: the docs' table (MODEL.md 1.4).
    global_order: its tasks interact (through the page lock), so events must run one at a time in
    (time, stamp) order (docs/model.md, "Ties"); otherwise every task advances on its own.
    takes_page_lock: the migrator may have to acquire the page lock from a waiter (trylock passes).
    options: its options (scenario ``[[strategies]]`` keys). numpy: import string of its handler
    class in the numpy engine ("module:Class"). exact: what the exact solver covers for it
    ("chain": the attempt chain and the closed forms; "closed": the closed forms only (attempt 1,
    and every attempt where no waiter can fail one); "none": nothing, every quantity is refused).
    """

    name: str
    code: int
    summary: str
    reference: str
    seen_in: str
    numpy: str
    global_order: bool = False
    takes_page_lock: bool = False
    options: tuple[Option, ...] = ()
    exact: str = "chain"

    def handler(self):
        """The numpy engine's handler class for this strategy (imported on first use)."""
        mod, _, attr = self.numpy.partition(":")
        try:
            return getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"strategy {self.name!r}: cannot load its numpy handler {self.numpy!r} ({e})") from e

    def option_cases(self) -> list[dict]:
        """Every combination of option values (the parity matrix runs each)."""
        cases: list[dict] = [{}]
        for o in self.options:
            cases = [dict(c, **{o.name: v}) for c in cases for v in o.values]
        return cases


_H = "mcexplore.engines.numpy_strategies"

SHIPPED = (
    Strategy("ref", 0, "get_page_unless_zero at the fault, sleep on the page lock holding the reference, put_page when woken with the page unlocked",
             "from x until it runs with the page unlocked", "v4.19, the seed's bug", f"{_H}:Ref"),
    Strategy("drop", 1, "take a reference, enqueue, test the lock bit and put_page at x + ptl_hold + drop_hold; sleep without the reference",
             "[x, x + ptl_hold + drop_hold)", "put_and_wait_on_page_locked(), v5.0", f"{_H}:Drop"),
    Strategy("ptl_pin", 2, "enqueue under the PTL (the entry pins the page), no reference; sleep until the unlock",
             "none", "migration_entry_wait_on_locked(), v5.17 and later", f"{_H}:PtlPin"),
    Strategy("lock_noref", 3, "drop the PTL, lock_page without a reference, hold it lock_hold, unlock",
             "none (but it can touch a freed page: uaf)", "Michal Hocko's proposal in the seed", f"{_H}:LockNoref",
             global_order=True, takes_page_lock=True, exact="closed"),
    Strategy("flag_spin", 4, "spin without a reference while the migrator's flag is set; else behave as ref",
             "as ref, outside the flag window", "Vlastimil Babka's first proposal", f"{_H}:FlagSpin",
             options=(Option("flag_from", ("lock", "unmap_end"),
                             "when the flag goes up: at the page lock (L_k) or at the end of the unmap (U_k,M)"),)),
    Strategy("pte_wait", 5, "no reference: wait on a queue keyed by the PTE, woken by its next restore",
             "none (recheck = false can lose a wake-up: hang)", "Vlastimil Babka's second proposal", f"{_H}:PteWait",
             options=(Option("recheck", (True, False),
                             "enqueue under the PTL (true), or after dropping it and a noref_gap (false: a wake-up can be lost)"),)),
)


@dataclass
class Registry:
    rows: tuple[Strategy, ...] = field(default_factory=tuple)

    def __post_init__(self):
        codes = [s.code for s in self.rows]
        if codes != list(range(len(codes))):
            raise ValueError(f"strategy codes must be 0..{len(codes) - 1} in order, got {codes}")
        names = [s.name for s in self.rows]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy names must be unique, got {names}")
        for s in self.rows:
            if s.exact not in ("chain", "closed", "none"):
                raise ValueError(f"strategy {s.name!r}: exact must be 'chain', 'closed' or 'none', got {s.exact!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.rows)

    def get(self, name: str) -> Strategy:
        for s in self.rows:
            if s.name == name:
                return s
        raise KeyError(f"unknown strategy {name!r}; one of {', '.join(self.names())}")

    def by_code(self, code: int) -> Strategy:
        return self.rows[int(code)]

    def add(self, row: Strategy) -> "Registry":
        """A new registry with ``row`` appended (its code must be the next one)."""
        return Registry(self.rows + (row,))


_current = Registry(SHIPPED)


def registry() -> Registry:
    """The registry in use (the shipped one unless a test swapped it with ``use``)."""
    return _current


def names() -> tuple[str, ...]:
    return _current.names()


def get(name: str) -> Strategy:
    return _current.get(name)


def by_code(code: int) -> Strategy:
    return _current.by_code(code)


def option_owners() -> dict[str, str]:
    """option name -> the strategy that takes it."""
    return {o.name: s.name for s in _current.rows for o in s.options}


@contextlib.contextmanager
def use(reg: Registry):
    """Use ``reg`` as the registry inside the ``with`` block (tests: a toy strategy)."""
    global _current
    old = _current
    _current = reg
    try:
        yield reg
    finally:
        _current = old


def markdown_table(reg: Registry | None = None) -> str:
    """The docs' strategy table (docs/strategies.md holds it; a test keeps the two equal)."""
    reg = reg or _current
    lines = ["| strategy | code | what the waiter does | reference held | seen in | options | exact solver |",
             "|---|---|---|---|---|---|---|"]
    for s in reg.rows:
        opts = ", ".join(f"`{o.name}` ({' / '.join(str(v).lower() for v in o.values)})" for o in s.options) or "-"
        ex = {"chain": "chain and closed forms", "closed": "closed forms only", "none": "none"}[s.exact]
        lines.append(f"| `{s.name}` | {s.code} | {s.summary} | {s.reference} | {s.seen_in} | {opts} | {ex} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # The docs' table: python -m mcexplore.strategies > the table in docs/strategies.md.
    print(markdown_table(), end="")
