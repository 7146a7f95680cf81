"""Per-trial records and their aggregates: the one currency every engine pays in.

Where it sits: just above the engines. An engine fills a ``Records`` (one row per trial) or, on the
GPU, reduces on the device into the same ``Aggregate`` (counts of every outcome, sums, and
histograms with integer bucket counts), so aggregates from different engines, batches or sweep
cells can be merged exactly (``Aggregate.merge``). Statistics and plots read aggregates only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .constants import (EXAMPLE_OUTCOMES, EXAMPLES, FIELD_NAMES, HIST_BINS, HIST_METRICS, HIST_SUB,  # noqa: F401
                        NFIELDS, OUTCOMES, SUMS)

# Per-trial fields (MODEL.md 1.5) in the kernels' order, outcomes, sums, histograms and examples:
# mcexplore.constants, shared with the kernels.
RECORD_FIELDS = tuple((n, np.int64) for n in FIELD_NAMES)


def hist_bucket(v):
    v = np.maximum(np.asarray(v, dtype=np.int64), 0)
    out = v.copy()
    big = v >= HIST_SUB
    if big.any():
        vb = v[big].astype(np.uint64)
        e = np.zeros(vb.shape, dtype=np.int64)
        t = vb.copy()
        for s in (32, 16, 8, 4, 2, 1):
            m = (t >> np.uint64(s)) > 0
            e += np.where(m, s, 0)
            t = np.where(m, t >> np.uint64(s), t)
        e += 1  # bit length
        out[big] = 8 * (e - 3) + (vb >> (e - 4).astype(np.uint64)).astype(np.int64) - 8
    return np.minimum(out, HIST_BINS - 1)


def hist_edges() -> np.ndarray:
    """Lower edge of every bucket (bucket b holds values in [edges[b], edges[b+1]))."""
    edges = np.zeros(HIST_BINS + 1, dtype=np.float64)
    for b in range(HIST_BINS + 1):
        if b < HIST_SUB:
            edges[b] = b
        else:
            e = b // 8 + 3  # bit length
            m = b % 8 + 8
            edges[b] = float(m) * 2.0 ** (e - 4)
    return edges


@dataclass
class Aggregate:
    """Counts, sums and histograms of a set of trials of one strategy; mergeable exactly."""

    trials: int = 0
    counts: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    sums: dict = field(default_factory=lambda: {s: 0 for s in SUMS})
    max_wait_max: int = 0
    hists: dict = field(default_factory=lambda: {m: np.zeros(HIST_BINS, dtype=np.int64) for m in HIST_METRICS})
    # Indices of (a bounded number of) trials with a failure outcome, for replay.
    examples: dict = field(default_factory=dict)

    EXAMPLES_PER_OUTCOME = EXAMPLES

    @classmethod
    def from_records(cls, rec: "Records") -> "Aggregate":
        a = cls(trials=len(rec))
        for o in OUTCOMES:
            a.counts[o] = int(rec[o].sum())
        for s in SUMS:
            a.sums[s] = int(rec[s].sum())
        a.max_wait_max = int(rec["max_wait"].max()) if len(rec) else 0
        a.hists["attempts"] = np.bincount(hist_bucket(rec["attempts"]), minlength=HIST_BINS)
        mig = rec["migrated"] == 1
        a.hists["t_migrated"] = np.bincount(hist_bucket(rec["t_migrated"][mig]), minlength=HIST_BINS)
        a.hists["max_wait"] = np.bincount(hist_bucket(rec["max_wait"]), minlength=HIST_BINS)
        for o in EXAMPLE_OUTCOMES:
            idx = np.nonzero(rec[o])[0][: cls.EXAMPLES_PER_OUTCOME]
            a.examples[o] = [int(rec.trial0 + j) for j in idx]
        return a

    def merge(self, other: "Aggregate") -> "Aggregate":
        out = Aggregate(trials=self.trials + other.trials)
        for o in OUTCOMES:
            out.counts[o] = self.counts[o] + other.counts[o]
        for s in SUMS:
            out.sums[s] = self.sums[s] + other.sums[s]
        out.max_wait_max = max(self.max_wait_max, other.max_wait_max)
        for m in HIST_METRICS:
            out.hists[m] = self.hists[m] + other.hists[m]
        for o in set(self.examples) | set(other.examples):
            out.examples[o] = (self.examples.get(o, []) + other.examples.get(o, []))[: self.EXAMPLES_PER_OUTCOME]
        return out

    def to_dict(self) -> dict:
        return {
            "trials": self.trials,
            "counts": dict(self.counts),
            "sums": dict(self.sums),
            "max_wait_max": self.max_wait_max,
            "hists": {m: self.hists[m].tolist() for m in HIST_METRICS},
            "examples": {o: list(v) for o, v in self.examples.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Aggregate":
        a = cls(trials=int(d["trials"]))
        a.counts.update({k: int(v) for k, v in d["counts"].items()})
        a.sums.update({k: int(v) for k, v in d["sums"].items()})
        a.max_wait_max = int(d.get("max_wait_max", 0))
        for m in HIST_METRICS:
            a.hists[m] = np.asarray(d["hists"][m], dtype=np.int64)
        a.examples = {o: list(v) for o, v in d.get("examples", {}).items()}
        return a


class Records:
    """Per-trial results of trials [trial0, trial0 + n): a dict of int64 columns.

    ``stats``: a tilted run's importance-sampling statistics, an int64 matrix of one row per trial
    and ``params.TiltLayout.nslot`` columns (None for an untilted run); mcexplore.tilt turns them
    into the trials' likelihood ratios.
    """

    def __init__(self, trial0: int, columns: dict, stats: np.ndarray | None = None):
        self.trial0 = int(trial0)
        self.columns = {n: np.asarray(columns[n], dtype=np.int64) for n in FIELD_NAMES}
        if stats is not None:
            stats = np.asarray(stats, dtype=np.int64)
            stats = stats.reshape(len(self), stats.shape[-1] if stats.ndim == 2 else -1)
        self.stats = stats

    @classmethod
    def from_matrix(cls, trial0: int, mat: np.ndarray, nslot: int = 0) -> "Records":
        """From rows of NFIELDS fields followed by ``nslot`` statistics (a tilted run's)."""
        mat = np.asarray(mat, dtype=np.int64).reshape(-1, NFIELDS + nslot)
        return cls(trial0, {n: mat[:, j] for j, n in enumerate(FIELD_NAMES)},
                   mat[:, NFIELDS:] if nslot else None)

    def matrix(self) -> np.ndarray:
        """The fields (and a tilted run's statistics after them), one row per trial."""
        m = np.stack([self.columns[n] for n in FIELD_NAMES], axis=1)
        return m if self.stats is None else np.concatenate([m, self.stats], axis=1)

    def __len__(self) -> int:
        return len(self.columns["migrated"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def to_frame(self):
        """A pandas DataFrame: a ``trial`` column, then one column per field."""
        import pandas as pd  # here, not at import: the CLI and the engines never need it

        df = pd.DataFrame(self.columns)
        df.insert(0, "trial", np.arange(self.trial0, self.trial0 + len(self), dtype=np.int64))
        return df

    @classmethod
    def concat(cls, parts: list["Records"]) -> "Records":
        parts = sorted(parts, key=lambda r: r.trial0)
        stats = None if parts[0].stats is None else np.concatenate([p.stats for p in parts])
        return cls(parts[0].trial0, {n: np.concatenate([p[n] for p in parts]) for n in FIELD_NAMES}, stats)

    def equals(self, other: "Records") -> bool:
        same_stats = (self.stats is None) == (other.stats is None) and (
            self.stats is None or np.array_equal(self.stats, other.stats))
        return (self.trial0 == other.trial0 and same_stats
                and all(np.array_equal(self[n], other[n]) for n in FIELD_NAMES))
