"""Every value the kernels and the Python side must agree on, defined once.

Where it sits: at the bottom of the package (it imports only mcexplore.strategies, for the
strategy codes). The Python side imports these names; the kernels include ``kernels/constants.h``,
which is generated from this module and checked in:

    python -m mcexplore.constants --write     # regenerate kernels/constants.h
    python -m mcexplore.constants --check     # exit 1 if the checked-in file differs

tests/test_constants.py fails when the checked-in header differs from freshly generated text, so
a value changed here and not regenerated (or edited by hand in the header) is caught at once.

Ordered tables are ``IntEnum`` classes: the member order is the packed order, the value the
index, so ``Header.STRATEGY`` is the word the strategy code sits in and ``Field.LIVELOCK`` the
record column of the livelock flag, on both sides. A C macro is ``MCX_<PREFIX>_<MEMBER>``: the
prefix is the ``c`` name given in ``_TABLES``.

Some values are fixed forever because results depend on them: the draw purposes, the distribution
order within a draw key, the Philox constants. Changing one changes every result (and the packed
format's version must change with the layout).
"""

from __future__ import annotations

import sys
from enum import IntEnum
from pathlib import Path

from . import strategies

# ---------------------------------------------------------------------------------------------
# The packed parameter block (mcexplore/engines/pack.py writes it, kernels/params.h reads it).

PARAMS_MAGIC = 0x314D524150584D43  # b"CMXPARM1" read as a little-endian int64
PARAMS_VERSION = 3  # 3: the importance-sampling statistics map (2: leaf lists with 64-bit thresholds)
ABI_VERSION = 6  # of the native library's entry points (native.py refuses a library of another)
# The model's version: what a (config, seed, trial) gives. Bumped whenever any engine's results for
# the same inputs change (tests/test_model_version.py holds a digest of reference trials to it), so
# a sweep never mixes cells of two models when it resumes (its resume key includes it).
MODEL_VERSION = 1


class Header(IntEnum):
    """Header words P[0 .. HDR_WORDS)."""

    MAGIC = 0
    VERSION = 1
    LEN = 2
    STRATEGY = 3
    RECHECK = 4
    FLAG_FROM_UNMAP_END = 5
    PASSES = 6
    TRYLOCK_PASSES = 7
    TIMEOUT_NS = 8
    MAX_ATTEMPTS = 9
    TRANSIENT_MODEL = 10  # Transient.NONE or PROCESS
    LEVEL = 11  # 0 page, 1 block
    BATCH_PAGES = 12
    NCLASSES = 13
    CLASS_OFF = 14
    NDISTS = 15
    DIST_OFF = 16
    TABLES_OFF = 17
    NPAGES = 18
    MAX_MAPCOUNT = 19
    SCRATCH_WORDS = 20
    TRANSIENT_W = 21  # window width, ns
    TRANSIENT_HMAX = 22  # the longest hold, ns
    TRANSIENT_NTHR = 23  # Poisson count thresholds (uint64 as int64) ...
    TRANSIENT_THR_OFF = 24  # ... at this offset of P
    IS_NSLOT = 25  # importance sampling: statistics words after a record's fields (0: untilted)
    IS_MAP_OFF = 26  # ... the per-distribution map of where each leaf's draws are counted
    IS_TRANSIENT_SLOT = 27  # ... the slot of the transient windows counted (-1: rate not tilted)


HDR_WORDS = 32


class ClassWord(IntEnum):
    """Words of a page class record."""

    COUNT = 0
    FILE = 1
    MAPCOUNT = 2
    ACTIVE = 3
    ACCESS_DIST = 4  # distribution index, -1 if the class's tasks never touch the page
    FIRST_PAGE = 5  # index of the class's first page in the block
    SIM_OFF = 6  # block level: scratch offset of the class's page simulations


CLASS_WORDS = 8


class DistWord(IntEnum):
    """Words of a distribution descriptor (offsets are absolute word indices into P)."""

    NLEAF = 0
    GUIDE_BITS = 1
    LEAF_OFF = 2
    GUIDE_OFF = 3
    KIND = 4  # leaf 0, inline (the one-leaf path reads nothing else)
    A = 5
    B = 6
    CONST = 7  # the value (ns) of a one-leaf constant, -1 for any other distribution


DIST_WORDS = 8


class LeafWord(IntEnum):
    """Words of a leaf record."""

    CUM = 0
    KIND = 1
    A = 2
    B = 3


LEAF_WORDS = 4


class Leaf(IntEnum):
    """Leaf kinds of a compiled distribution (mcexplore.params)."""

    SEG = 0  # uniform on [lo, lo + width) in fixed point; width 0: a constant
    EXP = 1  # exponential: leading zeros of a 64-bit uniform and a mantissa table


FP_BITS = 16  # fixed point of SEG leaves: values are ns * 2**16; the sample is floored to ns
EXP_TABLE_BITS = 13  # an exponential's mantissa table has 2**13 + 1 points


class Transient(IntEnum):
    """Transient reference models (mcexplore.transient)."""

    NONE = 0
    PROCESS = 1


class Dist(IntEnum):
    """The named distributions, in the packed order (a page class's access distribution at block
    level follows them)."""

    UNMAP_PTE = 0
    PRE_FREEZE = 1
    FREEZE_HOLD = 2
    COPY = 3
    REMAP_PTE = 4
    FAULT_ENTRY = 5
    PTL_HOLD = 6
    DROP_HOLD = 7
    NOREF_GAP = 8
    LOCK_HOLD = 9
    WAKE_LATENCY = 10
    FREE_DELAY = 11
    RETRY_GAP = 12
    OUTER_GAP = 13
    ACCESS = 14
    TRANSIENT_HOLD = 15


DIST_NAMES = tuple(d.name.lower() for d in Dist)
NAMED_DISTS = len(Dist)

# ---------------------------------------------------------------------------------------------
# Randomness (mcexplore/rng.py, kernels/philox.h).


class Purpose(IntEnum):
    """Draw purposes: the top byte of counter word 1. Fixed forever. ACCESS .. WAKE are the
    per-task draws (kernels/drawcache.h batches them as one contiguous range)."""

    UNMAP = 1
    REMAP = 2
    PRE_FREEZE = 3
    FREEZE_HOLD = 4
    COPY = 5
    FREE_DELAY = 6
    GAP = 7
    TRANSIENT = 8
    ACCESS = 9
    FAULT_ENTRY = 10
    PTL_HOLD = 11
    DROP_HOLD = 12
    NOREF_GAP = 13
    LOCK_HOLD = 14
    WAKE = 15
    MIG_WAKE = 16


PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85

# The draw layout: counter word 1 = purpose << PAGE_BITS | page, word 3 = i << SUB_BITS | sub.
PAGE_BITS = 24
SUB_BITS = 20
# A transient window index w is split over a draw's k word (its low 32 bits) and i (the next
# WINDOW_I_BITS): mcexplore.transient.
WINDOW_I_BITS = 12
SUB_SHIFT = 10  # a task's draw sub-index: (fault number jf << SUB_SHIFT) | wake number w
BLOCK_PAGE = 0xFFFFFF  # page field of the migrator's own (gap) draws at block level

# ---------------------------------------------------------------------------------------------
# Results (mcexplore/results.py; kernels write records, mcexplore.cu reduces them).


class Field(IntEnum):
    """Per-trial record fields (MODEL.md 1.5), in the order the kernels write them (all int64)."""

    MIGRATED = 0
    ATTEMPTS = 1
    CALLS = 2
    T_MIGRATED = 3  # -1 when not migrated
    CALL_FAILED = 4
    LIVELOCK = 5
    CENSORED = 6
    UAF = 7
    HANG = 8
    FAULTS = 9
    MAX_WAIT = 10
    TOTAL_WAIT = 11
    SPIN = 12
    END_TIME = 13
    PAGES_LEFT = 14  # block level; 0 or 1 at page level


FIELD_NAMES = tuple(f.name.lower() for f in Field)
NFIELDS = len(Field)
# Counted outcomes, summed fields and histogrammed metrics of an aggregate, by field.
OUTCOMES = ("migrated", "call_failed", "livelock", "censored", "uaf", "hang")
SUMS = ("attempts", "calls", "faults", "total_wait", "spin", "pages_left")
HIST_METRICS = ("attempts", "t_migrated", "max_wait")
# Failure outcomes whose first trial numbers an aggregate keeps as examples.
EXAMPLE_OUTCOMES = ("call_failed", "livelock", "censored", "uaf", "hang")
EXAMPLES = 16
# Histogram buckets: HIST_SUB sub-buckets per power of two (results.hist_bucket).
HIST_SUB = 8
HIST_BINS = 8 * 61
REDUCE_BLOCK = 256  # threads per block of the device reduction (reduce_records)

# ---------------------------------------------------------------------------------------------
# The engines' state machine (numpy_page.py and kernels/page.h carry the same events).


class Ev(IntEnum):
    """Task events."""

    NONE = 0  # idle with nothing scheduled: done, hung, or asleep on a waiter's page lock
    ACCESS = 1  # the task accesses the page (its next access, or a retry after returning)
    FAULT = 2  # the fault handler holds the PTL (x = access + fault_entry)
    PTL = 3  # ref / flag_spin ref path / ptl_pin: drops the PTL (p = x + ptl_hold)
    DROPB = 4  # drop: put_page and lock-bit test (b = p + drop_hold)
    WAKE = 5  # a sleeping task runs after its wake latency
    WAKE_RES = 6  # virtual: sleeping on attempt kw's unlock; T_kw now known
    SPIN_RES = 7  # virtual: spinning on attempt kw's flag; its clear time now known
    PTE_RES = 8  # virtual: pte_wait on PTE restore of attempt kw; R_kw,i now known
    RET = 9  # the task returns from the fault (ends its wait) and retries its access
    TOUCH = 10  # lock_noref: touches the page and tries lock_page (y = p + noref_gap)
    UNLOCK = 11  # lock_noref: unlock_page after lock_hold


class TaskWord(IntEnum):
    """The kernels' per-task state words in scratch (pack.py sizes scratch from TASK_WORDS)."""

    EV = 0  # event code (low byte) and flags
    T = 1  # time of the next event
    WAIT_START = 2
    KF = 3  # attempt of the fault's migration entry (draw key)
    JF = 4  # fault number within attempt kf
    W = 5  # wake number within the fault
    KW = 6  # attempt waited on
    P = 7  # PTL release time (also the start of a spin)
    E = 8  # pte_wait without recheck: enqueue time
    U = 9  # U_cur (INF when attempt kc has not unmapped)
    R = 10  # R_prev
    STAMP = 11  # lock_noref: the tie key of the next event (when it was scheduled)
    QUEUE = 12  # lock_noref: word j holds the j-th sleeper on the page lock (FIFO)


TASK_WORDS = len(TaskWord)
# Importance sampling (mcexplore.tilt, docs/analysis.md): at most this many integer statistics per
# trial, stored after the MCX_NFIELDS fields of its record.
IS_MAX_SLOTS = 32
SIM_WORDS = 17  # a saved page simulation at block level (kernels/page.h: mcx_sim_t::save/load)
INF = (2 ** 63 - 1) // 4  # "never": far beyond any time, and INF + INF does not overflow
MAX_EVENTS = 10_000_000  # a guard against zero-duration loops (the trial is reported as an error)


class Simd(IntEnum):
    """How the native engine batches draws (kernels/drawcache.h; never changes a result)."""

    OFF = 0
    SCALAR = 1
    SSE2 = 2
    AVX2 = 3
    AVX512 = 4


class Sched(IntEnum):
    """How the native engine runs the tasks of a strategy without global order (kernels/lanes.h;
    never changes a result)."""

    WALK = 0  # every task's event chain to the horizon in turn
    LANES = 1  # tile steps: one event of every task per step, queue by event kind


class LaneStat(IntEnum):
    """The lane counters (kernels/lanes.h), as mcx_simulate and mcx_simulate_tile return them."""

    STEPS = 0  # tile steps
    EVENTS = 1  # events run: the useful lane-slots
    SLOTS = 2  # lane-slots of a device tile of LANE_W lanes running each queue in chunks
    QUEUES = 3  # non-empty queues run


LANE_W = 32  # the lanes of a device tile (a warp) that the counters measure against
# Widths of a device tile (simulate_records_tile<W>, each requested by name): a warp; a
# power-of-two part of one for a page with few tasks; several warps (a block) for a page of more
# than 32 tasks a lane (cupy_engine.tile_lanes picks it). The host runs the tile's code at three
# of them (mcx_simulate_tile): the warp, and in a build that asks for them (-DMCX_HOST_TILE_WIDTHS:
# each instance adds about 8 s to a build) one sub-warp width and one of two warps; the other
# widths differ from those only in a constant.
TILE_LANES = (4, 8, 16, 32, 64, 128)
HOST_TILE_LANES = (8, 32, 64)


class DrawCount(IntEnum):
    """What a host build with -DMCX_COUNT_DRAWS counts (kernels/philox.h, scripts/draw-floor.py)."""

    SCALAR = 0  # draws computed one at a time (the Philox words of one key)
    LANES = 1  # lanes of batched rows
    ROWS = 2  # batched rows
    EVENTS = 3  # task events
    SAMPLES = 4  # samples of distribution d at SAMPLES + d, d < DRAW_COUNT_DISTS


DRAW_COUNT_DISTS = 64
DRAW_COUNTERS = DrawCount.SAMPLES + DRAW_COUNT_DISTS


# ---------------------------------------------------------------------------------------------
# The generated header.

def _header_path() -> Path:
    """kernels/constants.h of the checkout (editable install, PYTHONPATH=.), else the installed
    package's copy (mcexplore.kernels), so ``--check`` checks what the engines will compile."""
    checkout = Path(__file__).resolve().parent.parent / "kernels"
    if (checkout / "mcexplore.cu").is_file():
        return checkout / "constants.h"
    import importlib.resources

    return Path(str(importlib.resources.files("mcexplore.kernels").joinpath("constants.h")))


HEADER_PATH = _header_path()

# (IntEnum, C prefix, what it is) in header order.
_TABLES = (
    (Header, "H", "Header words of the parameter block"),
    (ClassWord, "C", "Page class record words"),
    (DistWord, "D", "Distribution descriptor words"),
    (LeafWord, "L", "Leaf record words"),
    (Leaf, "LEAF", "Leaf kinds"),
    (Transient, "TRANSIENT", "Transient reference models"),
    (Dist, "DIST", "Named distributions"),
    (Purpose, "P", "Draw purposes"),
    (Field, "R", "Per-trial record fields"),
    (Ev, "EV", "Task events"),
    (TaskWord, "TW", "Per-task words in scratch"),
    (Simd, "SIMD", "Draw batching implementations"),
    (Sched, "SCHED", "Task schedulers of the native engine"),
    (DrawCount, "CNT", "Draw counters of a -DMCX_COUNT_DRAWS build"),
)

# (C name, value, comment) scalars.
_SCALARS = (
    ("PARAMS_MAGIC", f"0x{PARAMS_MAGIC:X}LL", 'b"CMXPARM1" little-endian'),
    ("PARAMS_VERSION", PARAMS_VERSION, ""),
    ("ABI_VERSION", ABI_VERSION, "mcx_abi_version() returns it"),
    ("NLANE_STATS", len(LaneStat), "lane counters (mcexplore.constants.LaneStat)"),
    ("LANE_W", LANE_W, "lanes of the device tile the lane counters measure against"),
    ("TILE_MAX_LANES", max(TILE_LANES), "the widest tile (TILE_LANES)"),
    ("DRAW_COUNT_DISTS", DRAW_COUNT_DISTS, "distributions the draw counters tell apart"),
    ("DRAW_COUNTERS", int(DRAW_COUNTERS), "mcx_draw_counts words"),
    ("HDR_WORDS", HDR_WORDS, ""),
    ("CLASS_WORDS", CLASS_WORDS, ""),
    ("DIST_WORDS", DIST_WORDS, ""),
    ("LEAF_WORDS", LEAF_WORDS, ""),
    ("FP_BITS", FP_BITS, ""),
    ("EXP_TABLE_BITS", EXP_TABLE_BITS, ""),
    ("NAMED_DISTS", NAMED_DISTS, ""),
    ("PHILOX_M0", f"0x{PHILOX_M0:X}u", ""),
    ("PHILOX_M1", f"0x{PHILOX_M1:X}u", ""),
    ("PHILOX_W0", f"0x{PHILOX_W0:X}u", ""),
    ("PHILOX_W1", f"0x{PHILOX_W1:X}u", ""),
    ("PAGE_BITS", PAGE_BITS, "counter word 1: purpose << PAGE_BITS | page"),
    ("SUB_BITS", SUB_BITS, "counter word 3: i << SUB_BITS | sub"),
    ("WINDOW_I_BITS", WINDOW_I_BITS, "a transient window index: 32 bits in k, these in i"),
    ("SUB_SHIFT", SUB_SHIFT, ""),
    ("BLOCK_PAGE", f"0x{BLOCK_PAGE:X}", ""),
    ("NFIELDS", NFIELDS, ""),
    ("NOUT", len(OUTCOMES), ""),
    ("NSUM", len(SUMS), ""),
    ("NHIST", len(HIST_METRICS), ""),
    ("NEX", len(EXAMPLE_OUTCOMES), ""),
    ("EXAMPLES", EXAMPLES, ""),
    ("HIST_SUB", HIST_SUB, ""),
    ("HIST_BINS", HIST_BINS, ""),
    ("REDUCE_BLOCK", REDUCE_BLOCK, ""),
    ("TW", TASK_WORDS, "task words per task"),
    ("SIMW", SIM_WORDS, ""),
    ("IS_MAX_SLOTS", IS_MAX_SLOTS, "importance-sampling statistics per trial, at most"),
    ("INF", f"((mcx_i64){INF}LL)", "int64 max // 4"),
    ("MAX_EVENTS", f"{MAX_EVENTS}LL", ""),
)


def _field_list(names) -> str:
    return ", ".join(f"MCX_R_{n.upper()}" for n in names)


def header_text() -> str:
    """The text of kernels/constants.h for the current strategy registry."""
    out = [
        "// constants.h: GENERATED from mcexplore/constants.py (and mcexplore/strategies.py) by",
        "//     python -m mcexplore.constants --write",
        "// Do not edit: tests/test_constants.py fails when this file differs from the generated text.",
        "#pragma once",
        "",
    ]
    for name, value, comment in _SCALARS:
        out.append(f"#define MCX_{name} {value}" + (f"  // {comment}" if comment else ""))
    for enum, prefix, what in _TABLES:
        out += ["", f"// {what} (mcexplore.constants.{enum.__name__})."]
        out += [f"#define MCX_{prefix}_{m.name} {int(m)}" for m in enum]
    out.append(f"#define MCX_NEV {len(Ev)}  // task events: codes 0 .. MCX_NEV - 1")
    out.append("// X(code) for every task event that runs (not NONE): the event dispatch and the lane scheduler (page.h).")
    out.append("#define MCX_FOR_EACH_TASK_EVENT(X) " + " ".join(f"X(MCX_EV_{e.name})" for e in Ev if e != Ev.NONE))
    out.append("// X(W) for every device tile width (TILE_LANES; mcexplore.cu's instances under MCX_TILE_INSTANCES).")
    out.append("#define MCX_FOR_EACH_TILE_LANES(X) " + " ".join(f"X({w})" for w in TILE_LANES))
    reg = strategies.registry()
    out += ["", "// Strategies (mcexplore.strategies: the registry's codes)."]
    out += [f"#define MCX_S_{s.name.upper()} {s.code}" for s in reg.rows]
    out.append(f"#define MCX_NSTRATEGIES {len(reg.rows)}")
    out.append("// X(code) for every strategy: the host's dispatch (engine.h), the run-time switch (strategies.h).")
    out.append("#define MCX_FOR_EACH_STRATEGY(X) " + " ".join(f"X(MCX_S_{s.name.upper()})" for s in reg.rows))
    out.append("// Strategies whose tasks need global event order (lock_noref's page lock).")
    glob = [f"(S) == MCX_S_{s.name.upper()}" for s in reg.rows if s.global_order]
    out.append("#define MCX_GLOBAL_ORDER(S) (" + (" || ".join(glob) if glob else "0") + ")")
    out.append("// Strategies whose migrator may have to take the page lock from a waiter (trylock passes).")
    lock = [f"(S) == MCX_S_{s.name.upper()}" for s in reg.rows if s.takes_page_lock]
    out.append("#define MCX_TAKES_PAGE_LOCK(S) (" + (" || ".join(lock) if lock else "0") + ")")
    out += ["", "// Aggregates: the record field of each counted outcome, summed field, histogram and example",
            "// outcome, in mcexplore.constants order (mcexplore.cu reduces by these tables)."]
    out.append(f"#define MCX_OUTCOME_FIELDS {{{_field_list(OUTCOMES)}}}")
    out.append(f"#define MCX_SUM_FIELDS {{{_field_list(SUMS)}}}")
    out.append(f"#define MCX_HIST_FIELDS {{{_field_list(HIST_METRICS)}}}")
    out.append(f"#define MCX_EXAMPLE_FIELDS {{{_field_list(EXAMPLE_OUTCOMES)}}}")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = header_text()
    if argv == ["--write"]:
        HEADER_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {HEADER_PATH}")
        return 0
    if argv == ["--check"]:
        ok = HEADER_PATH.is_file() and HEADER_PATH.read_text(encoding="utf-8") == text
        print(f"{HEADER_PATH}: " + ("up to date" if ok else "differs from mcexplore/constants.py: run "
                                    "python -m mcexplore.constants --write"))
        return 0 if ok else 1
    if not argv:
        sys.stdout.write(text)
        return 0
    print("usage: python -m mcexplore.constants [--write | --check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
