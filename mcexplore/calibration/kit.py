"""The calibration kit's contract: which bpftrace script measures what, in which unit, and which
model field (MODEL.md 1.2) each map feeds. The one table that the scripts' headers, the importer
(mcexplore.calibration.importer), the recorder (mcexplore.calibration.record, record.sh) and
docs/calibration.md agree on.

Where it sits: at the bottom of mcexplore.calibration; it imports nothing of the project. The
scripts themselves are package data beside this module (``<name>.bt``), read with
``script_text(name)``.

A kit output is a directory: ``<name>.txt``, the stdout of ``bpftrace -q <name>.bt SECONDS`` for
each script of ``SCRIPTS``, and ``kit.json`` = {"kernel": `uname -r`, "host": hostname, "date":
ISO-8601 UTC, "duration_s": seconds recorded, "kit_version": KIT_VERSION} (the recorders add
"probes": the kernel function each probe was attached to, "includes": the headers added to a
script that bpftrace asked for one, and keep the scripts as run as ``<name>.bt`` and
bpftrace's stderr as ``<name>.err``).

The scripts name the functions as 6.1 has them; ``PROBES`` lists, for each,
the names it has had, newest first, and the recorders attach to the first one that
/proc/kallsyms has. A name in kallsyms can still be inlined at the call site that matters (an
out-of-line copy keeps the symbol), so the kit avoids such functions where it can: the rmap walks are timed through their per-mapping callbacks
(``try_to_migrate_one()``, ``remove_migration_pte()``, called through a function pointer, so
always out of line), not through ``remove_migration_ptes()``, which 6.1 builds inline into
``migrate_pages_batch()`` (its kprobe attaches and never fires). ``Measure.probes`` names the
functions each measured map relies on, so that the importer can say which probe stayed silent.

``HEADER_FIXES``: bpftrace without BTF types tracepoint fields with clang from the kernel's
headers and stops on a field whose enum type nothing declares (``mm_migrate_pages``'s ``enum
migrate_mode mode``); the recorders then run the script again with the header that declares it
(``with_include``). The shipped scripts carry no include: where there is BTF but no kernel
headers (most distributions), the include itself would be the error.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass

# 2: the restore timed through remove_migration_pte() (kit 1: remove_migration_ptes(), inlined
# on 6.1), the per-PTE maps keyed by mapping class, @refcount_check keyed by integers.
KIT_VERSION = "2"
# Kit versions whose output the importer reads (kit 1: the same maps, unkeyed per-PTE maps and
# string keys; docs/calibration.md, "Kit versions").
READS_KIT_VERSIONS = ("1", "2")
SCRIPTS = ("rmap", "move", "fault", "offline")
META_FILE = "kit.json"
META_KEYS = ("kernel", "host", "date", "duration_s", "kit_version")
# A field measured with fewer samples keeps its estimate (the importer warns): a histogram of a
# handful of samples says more about the probe's luck than about the machine.
MIN_SAMPLES = 20
# The per-PTE maps (@unmap_pte_ns, @remap_pte_ns) are keyed by mapping class: [MULTI_MAPPED] for
# the walks that visited at least MULTI_MAPPED rmap entries (a page mapped by that many tasks:
# the contended page that the model's unmap_pte and remap_pte are about, MODEL.md 1.3), [1] for
# the others. A walk over one or two mappings costs its fixed part (the anon_vma or i_mmap lock,
# the tree descent, the TLB flush) per PTE: on the kernel lab's 6.1 guest 50 us per PTE against
# 11 us for the page mapped 201 times. The importer takes the multi-mapped class.
MULTI_MAPPED = 8
# The observation map that counts the entries of each walk of a per-PTE map: for a kit 1 output
# (not keyed by class) it tells whether the samples mix classes.
ENTRIES_MAPS = {"unmap_pte_ns": "unmap_entries", "remap_pte_ns": "remap_entries"}


@dataclass(frozen=True)
class Measure:
    """One map of one script that feeds one model field."""

    script: str
    map: str        # as bpftrace prints it, without the '@'
    field: str      # dotted scenario path
    unit: str       # of the histogram's values
    how: str
    # The kernel functions (PROBES keys) whose probes every sample needs: a map left empty while
    # the script's other maps fill points at one of them (inlined in this build?).
    probes: tuple[str, ...] = ()
    # The key of the entry that feeds the field when the map is keyed by class (the others are
    # pooled only as a fallback, with a warning); None: every key pooled.
    key: tuple[str, ...] | None = None
    # What an empty map may simply mean (no such event in the recording), for the warning.
    needs: str = ""


@dataclass(frozen=True)
class Observation:
    """A map printed for the reader (a side summary), not a model input."""

    script: str
    map: str
    what: str


MEASURES: tuple[Measure, ...] = (
    Measure("rmap", "unmap_pte_ns", "timing.unmap_pte", "ns",
            "try_to_migrate() duration divided by its try_to_migrate_one() calls (rmap entries "
            f"visited), one sample per call, walks of at least {MULTI_MAPPED} entries "
            "(multi-mapped pages): a per-call mean, so narrower than per-PTE costs",
            probes=("try_to_migrate", "try_to_migrate_one"), key=(str(MULTI_MAPPED),)),
    Measure("rmap", "remap_pte_ns", "timing.remap_pte", "ns",
            "first remove_migration_pte() entry to the last one's return, divided by the calls "
            f"(one per PTE restored), walks of at least {MULTI_MAPPED} entries (multi-mapped pages)",
            probes=("remove_migration_pte",), key=(str(MULTI_MAPPED),)),
    Measure("rmap", "retry_gap_ns", "timing.retry_gap", "ns",
            "end of the restore of a folio (last remove_migration_pte() return) to the next "
            "try_to_migrate() of the same folio in the same migrate_pages() call",
            probes=("remove_migration_pte", "try_to_migrate"),
            needs="an attempt that failed and was retried within one migrate_pages() call"),
    Measure("move", "pre_freeze_ns", "timing.pre_freeze", "ns",
            "return of try_to_migrate(folio) to folio_migrate_mapping(.., folio, ..), per page",
            probes=("try_to_migrate", "folio_migrate_mapping")),
    Measure("move", "freeze_hold_ns", "timing.freeze_hold", "ns",
            "duration of a successful folio_migrate_mapping() of a file page (an upper bound "
            "of the freeze inside it)",
            probes=("folio_migrate_mapping",), needs="a file or shmem page moved"),
    Measure("move", "copy_ns", "timing.copy", "ns", "duration of folio_migrate_copy()",
            probes=("folio_migrate_copy",)),
    Measure("move", "free_delay_ns", "timing.free_delay", "ns",
            "end of the restore to the new folio after a successful refcount check (last "
            "remove_migration_pte() return) to free_unref_page(old folio)",
            probes=("folio_migrate_mapping", "remove_migration_pte", "free_unref_page"),
            needs="a mapped page moved"),
    Measure("fault", "fault_entry_ns", "timing.fault_entry", "ns",
            "exceptions:page_fault_user/_kernel to migration_entry_wait()",
            probes=("migration_entry_wait",), needs="a task faulting on a page under migration"),
    Measure("fault", "wake_latency_ns", "timing.wake_latency", "ns",
            "sched_wakeup of a task asleep in a migration-entry wait to its sched_switch in",
            probes=("migration_entry_wait",), needs="a task asleep in a migration-entry wait"),
    Measure("offline", "outer_gap_ns", "timing.outer_gap", "ns",
            "return of one migrate_pages(MR_MEMORY_HOTPLUG) call to the next in the same task",
            probes=("migrate_pages", "offline_pages"),
            needs="an offline that took more than one migrate_pages() call"),
)

# What kit 1 measured where kit 2 measures otherwise (its outputs' provenance says this).
KIT1_HOW: dict[str, str] = {
    "timing.remap_pte": "remove_migration_ptes() duration divided by its remove_migration_pte() calls",
    "timing.retry_gap": "return of remove_migration_ptes() to the next try_to_migrate() in the same "
                        "migrate_pages() call",
    "timing.free_delay": "return of remove_migration_ptes(old, new) to free_unref_page(old)",
}

# The probes that kit 1's maps relied on, where they differ (Measure.probes).
KIT1_PROBES: dict[str, tuple[str, ...]] = {
    "timing.remap_pte": ("remove_migration_ptes", "remove_migration_pte"),
    "timing.retry_gap": ("remove_migration_ptes", "try_to_migrate"),
    "timing.free_delay": ("remove_migration_ptes", "free_unref_page"),
}

OBSERVATIONS: tuple[Observation, ...] = (
    Observation("rmap", "unmap_entries", "rmap entries visited per unmap (about the mapcount)"),
    Observation("rmap", "remap_entries", "rmap entries visited per restore"),
    Observation("move", "refcount_check", "refcount checks by page kind and result (busy: an "
                "extra reference, a waiter's or a transient one)"),
    Observation("fault", "migration_wait_ns", "migration-entry waits that slept, entry to running again"),
    Observation("fault", "waits", "migration_entry_wait() calls"),
    Observation("offline", "call_ns", "duration of the hotplug migrate_pages() calls"),
    Observation("offline", "calls", "migrate_pages() calls by reason (mm_migrate_pages)"),
    Observation("offline", "succeeded", "pages migrated by reason"),
    Observation("offline", "failed", "pages not migrated by reason"),
    Observation("offline", "failed_per_call", "hotplug calls by pages not migrated"),
)

# @refcount_check[kind, rc]: kind 1 a page with a mapping (file, shmem), 0 anon; rc the check's
# return, 0 or -EAGAIN (kit 1 printed the words, which bpftrace 0.17 repeats: see bpfout).
REFCOUNT_KINDS = {"1": "file", "0": "anon"}
REFCOUNT_RESULTS = {"0": "ok", "-11": "busy"}

# enum migrate_reason (include/linux/migrate_mode.h), the key of the offline script's maps.
MIGRATE_REASONS = {0: "compaction", 1: "memory_failure", 2: "memory_hotplug", 3: "syscall",
                   4: "mempolicy_mbind", 5: "numa_misplaced", 6: "contig_range",
                   7: "longterm_pin", 8: "demotion"}

# What the kit cannot measure, and why: these fields keep the base scenario's estimate.
UNMEASURED: dict[str, str] = {
    "timing.ptl_hold": "the PTL is held for a few instructions between an inlined spin_lock/"
                       "spin_unlock pair inside __migration_entry_wait(): no function boundary to "
                       "probe without the build's disassembly (a kprobe at an offset)",
    "timing.drop_hold": "DROP (put_and_wait_on_page_locked(), 5.0 to 5.16): get_page to put_page "
                        "are inline atomics inside one function; 5.17+ kernels no longer have it",
    "timing.noref_gap": "LOCK_NOREF is a proposal that no kernel carries",
    "timing.lock_hold": "LOCK_NOREF is a proposal that no kernel carries",
    "transient.rate": "transient references (GUP, LRU batches, speculative page-cache gets) are "
                      "inline folio_try_get()/folio_put() calls everywhere: no probe point of "
                      "their own (the refcount check's 'busy' count mixes them with the waiters')",
    "transient.hold": "as transient.rate: a get/put pair has no probe point",
    "page.access_rate": "a property of the workload, not of the kernel",
}

# Kernel function names, newest first: the recorders attach each probe of a script to the first
# name that /proc/kallsyms has (the scripts are written with the 6.1 names, the keys).
PROBES: dict[str, tuple[str, ...]] = {
    # 5.14 split migration off try_to_unmap() (Alistair Popple's rmap series).
    "try_to_migrate": ("try_to_migrate", "try_to_unmap"),
    "try_to_migrate_one": ("try_to_migrate_one", "try_to_unmap_one"),
    # 5.16 folios; recent kernels (seen on 6.18) check in the static __folio_migrate_mapping().
    "folio_migrate_mapping": ("__folio_migrate_mapping", "folio_migrate_mapping",
                              "migrate_page_move_mapping"),
    # Recent kernels (seen on 6.18) copy with folio_mc_copy(), before the refcount check.
    "folio_migrate_copy": ("folio_migrate_copy", "folio_mc_copy", "migrate_page_copy"),
    # 4.15+ free_unref_page(); seen as free_frozen_pages() on 6.18.
    "free_unref_page": ("free_unref_page", "free_frozen_pages"),
    # The rmap_walk callback of the restore (remove_migration_ptes(), which 6.1 builds inline,
    # is not probed); v4.19 to 6.x.
    "remove_migration_pte": ("remove_migration_pte",),
    "migration_entry_wait": ("migration_entry_wait",),
    "migrate_pages": ("migrate_pages",),
    "offline_pages": ("offline_pages",),
}

# (what bpftrace prints on stderr, the header that fixes it): without BTF, bpftrace builds the
# tracepoint structs with clang and the kernel headers, and an enum-typed field needs its header.
HEADER_FIXES: tuple[tuple[str, str], ...] = (
    ("incomplete type 'enum migrate_mode'", "linux/migrate_mode.h"),
)

_PROBE_RE = re.compile(r"\b(kprobe|kretprobe):([A-Za-z_][A-Za-z0-9_]*)\b")


def measure(field: str) -> Measure | None:
    return next((m for m in MEASURES if m.field == field), None)


def script_text(name: str) -> str:
    """The text of the shipped ``<name>.bt``."""
    if name not in SCRIPTS:
        raise ValueError(f"{name!r} is not a kit script (scripts: {', '.join(SCRIPTS)})")
    return importlib.resources.files(__package__).joinpath(f"{name}.bt").read_text(encoding="utf-8")


def kallsyms_names(text: str) -> set[str]:
    """Function names of a /proc/kallsyms text (text symbols, module symbols included)."""
    out = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "t", "W", "w"):
            out.add(parts[2])
    return out


def resolve_probes(available: set[str] | None) -> dict[str, str]:
    """Script name -> kernel name for every probe of PROBES. ``available``: the kernel's function
    names; None (unknown, e.g. /proc/kallsyms unreadable) keeps the scripts' names."""
    if available is None:
        return {k: k for k in PROBES}
    return {k: next((n for n in names if n in available), k) for k, names in PROBES.items()}


def script_for_kernel(name: str, probes: dict[str, str]) -> str:
    """``<name>.bt`` with each kprobe/kretprobe attached to the kernel's name of its function."""
    return _PROBE_RE.sub(lambda m: f"{m.group(1)}:{probes.get(m.group(2), m.group(2))}",
                         script_text(name))


def header_fix(stderr: str, script: str) -> str | None:
    """The header to include in ``script`` (its text as run) for bpftrace's ``stderr``, or None:
    an error of HEADER_FIXES that the script does not already include the header for."""
    for error, header in HEADER_FIXES:
        if error in stderr and f"#include <{header}>" not in script.splitlines():
            return header
    return None


def with_include(script: str, header: str) -> str:
    """``script`` with ``#include <header>`` after the line that ends its leading comment
    (bpftrace wants includes before the first probe; the comment stays first, so the script
    still says what it is); record.sh does the same with awk."""
    line = f"#include <{header}>"
    if line in script.splitlines():
        return script
    if not script.startswith("/*"):
        return line + "\n\n" + script
    lines = script.splitlines(keepends=True)
    for i, ln in enumerate(lines):
        if ln.rstrip().endswith("*/"):
            return "".join(lines[:i + 1]) + "\n" + line + "\n" + "".join(lines[i + 1:])
    return script + ("" if script.endswith("\n") else "\n") + "\n" + line + "\n"
