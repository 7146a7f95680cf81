"""The kernel infrastructure without a GPU: Philox and sampling parity of the compiled sources
against mcexplore.rng, the parameter block, #line directives, the cache key, a PTX compile check
(where nvcc is installed) and lazy imports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mcexplore import constants as K
from mcexplore import params, rng
from mcexplore.engines import kernel_source, native, pack
from mcexplore.params import (Compiled, compile_mixture, const, const_component, exp_component,
                              exponential, segments_component, table_component, uniform,
                              uniform_component)
from mcexplore.results import HIST_BINS, hist_bucket

KAT = [
    # (counter, key, expected): Random123's kat_vectors for philox4x32_10.
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.fixture(scope="module")
def lib():
    ok, why = native.NativeEngine.availability()
    if not ok:
        pytest.skip(why)
    return native.build()


def _lognormal(median, sigma):
    from scipy.stats import norm

    return table_component(lambda p: median * np.exp(sigma * norm.ppf(p)))


def _histogram(n_buckets, seed):
    r = np.random.default_rng(seed)
    edges = np.cumsum(r.integers(1, 5000, n_buckets + 1)).astype(np.float64)
    counts = r.integers(0, 50, n_buckets).astype(np.float64)
    counts[r.random(n_buckets) < 0.2] = 0  # empty buckets make no leaf
    counts[0] = 1
    return segments_component(edges[:-1], edges[1:], counts)


def test_dists():
    """Every leaf kind, mixtures of 2 to 1000 components, nested mixtures, guide tables with long
    scans (many tiny leaves in one guide bucket), 1e-10 weights."""
    tiny = compile_mixture([const_component(float(j)) for j in range(1000)],
                           [1e-10] * 999 + [1.0])  # 999 leaves below 1e-7 of mass: one bucket
    nested = compile_mixture([compile_mixture([exp_component(30.0), uniform_component(5.0, 9.5)], [0.3, 0.7]),
                              compile_mixture([const_component(4e6), _lognormal(2e4, 2.0)], [1e-10, 1.0]),
                              exp_component(1e6)], [0.9, 0.0999, 0.0001])
    return {
        "const": const(1234.0),
        "const0": const(0.0),
        "uniform": uniform(100.0, 5000.0),
        "uniform_wide": uniform(0.0, 3e12),
        "exp": exponential(1000.0),
        "exp_small": exponential(3.0),
        "exp_large": exponential(4e9),
        "lognormal": compile_mixture([_lognormal(300.0, 1.5)]),
        "mix2": compile_mixture([const_component(200.0), exp_component(2e6)], [0.999, 0.001]),
        "mix3": compile_mixture([exp_component(50.0), table_component(lambda p: 10 + 90 * p),
                                 const_component(7.0)], [0.2, 0.5, 0.3]),
        "mix4": compile_mixture([const_component(1.0), exp_component(1e3), _lognormal(1e4, 0.5),
                                 table_component(lambda p: 1e6 * p * p)], [1, 2, 3, 4]),
        "histogram300": compile_mixture([_histogram(300, 1)]),
        "mix12": compile_mixture([exp_component(10.0 * 3 ** j) if j % 3 == 0 else
                                  uniform_component(100.0 * j, 150.0 * j + 7) if j % 3 == 1 else
                                  const_component(11.0 * j) for j in range(12)],
                                 list(np.linspace(1, 3, 12))),
        "exp_mix": compile_mixture([exp_component(m) for m in (1.0, 7.5, 333.0, 1e5, 2e9, 1e12)],
                                   [0.5, 0.2, 0.15, 0.1, 0.05 - 1e-10, 1e-10]),
        "lognormal3": compile_mixture([_lognormal(1000.0, 3.0)]),
        "tiny_weights": tiny,
        "nested": nested,
        "weight_1e-10": compile_mixture([uniform_component(0.0, 10.0), const_component(5e6)], [1.0, 1e-10]),
    }


test_dists.__test__ = False  # a helper, not a test


def _compiled_with(dists):
    return Compiled(strategy=0, dists=list(dists))


# -- Philox ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ctr,key,expect", KAT)
def test_philox_kat_numpy(ctr, key, expect):
    got = rng.philox4x32(*ctr, *key)
    assert tuple(int(x) for x in got) == expect


@pytest.mark.parametrize("ctr,key,expect", KAT)
def test_philox_kat_native(lib, ctr, key, expect):
    got = lib.philox([ctr], [key])[0]
    assert tuple(int(x) for x in got) == expect


def test_philox_random_native_vs_numpy(lib):
    r = np.random.default_rng(1)
    ctr = r.integers(0, 2**32, size=(5000, 4), dtype=np.uint64)
    key = r.integers(0, 2**32, size=(5000, 2), dtype=np.uint64)
    got = lib.philox(ctr.astype(np.uint32), key.astype(np.uint32))
    ref = np.stack(rng.philox4x32(ctr[:, 0], ctr[:, 1], ctr[:, 2], ctr[:, 3], key[:, 0], key[:, 1]),
                   axis=1)
    assert np.array_equal(got.astype(np.uint64), ref)


# -- draws and sampling ------------------------------------------------------------------------

def random_keys(n, seed=0):
    r = np.random.default_rng(seed)
    keys = np.stack([
        r.integers(0, 2**32, n),          # trial
        r.integers(1, 17, n),             # purpose
        r.integers(0, 2**24, n),          # page
        r.integers(0, 2**32, n),          # k
        r.integers(0, 2**12, n),          # i
        r.integers(0, 2**20, n),          # sub
    ], axis=1).astype(np.int64)
    keys[:50] = np.abs(keys[:50]) % 4  # small indices too
    return keys


def _ref_words(seed, keys):
    out = [np.zeros(len(keys), dtype=np.uint64) for _ in range(4)]
    for p in np.unique(keys[:, 1]):
        sel = keys[:, 1] == p
        k = keys[sel]
        w = rng.draw_words(seed, k[:, 0], int(p), k[:, 2], k[:, 3], k[:, 4], k[:, 5])
        for j in range(4):
            out[j][sel] = w[j]
    return tuple(out)


@pytest.mark.parametrize("seed", [0, 12345, 2**40 + 17, 2**64 - 1])
def test_draw_words_native_vs_numpy(lib, seed):
    keys = random_keys(4000, seed=seed % 1000)
    comp = _compiled_with([const(1.0)])
    P = pack.pack(comp)
    _, words = lib.sample_draws(P, seed, keys, -1)
    ref = _ref_words(seed, keys)
    for j in range(4):
        assert np.array_equal(words[:, j].astype(np.uint64), ref[j]), f"word x{j}"


@pytest.mark.parametrize("name", list(test_dists()))
def test_sampling_native_vs_numpy(lib, name):
    dists = test_dists()
    names = list(dists)
    comp = _compiled_with(dists.values())
    P = pack.pack(comp)
    d = names.index(name)
    seed = 987654321
    keys = random_keys(20000, seed=d)
    values, words = lib.sample_draws(P, seed, keys, d)
    ref_w = _ref_words(seed, keys)
    ref = rng.sample(dists[name], ref_w)
    assert values.dtype == np.int64
    assert np.array_equal(values, ref)
    # The distribution is not degenerate where it should not be (the test tests something).
    if not dists[name].is_const and name not in ("tiny_weights", "weight_1e-10"):
        assert len(np.unique(values)) > 10


@pytest.mark.parametrize("name", [n for n, d in test_dists().items() if d.nleaf > 1])
def test_sampling_every_leaf_native_vs_numpy(lib, name):
    """u1 at random inside every leaf's interval (so the guide's scans run over every leaf, the
    1e-10 ones too), u2 random: the same values, and each leaf is the one chosen."""
    dists = test_dists()
    d = list(dists).index(name)
    P = pack.pack(_compiled_with(dists.values()))
    dist = dists[name]
    r = np.random.default_rng(d)
    lo = [0] + [int(c) for c in dist.cum[:-1]]
    hi = [int(c) for c in dist.cum[:-1]] + [2**64]
    u1 = np.array([int(r.integers(0, 2**62)) * (h - l) // 2**62 + l for l, h in zip(lo, hi) for _ in range(3)],
                  dtype=np.uint64)
    u2 = r.integers(0, 2**64, len(u1), dtype=np.uint64)
    words = np.stack([u1 >> np.uint64(32), u1 & np.uint64(0xFFFFFFFF), u2 >> np.uint64(32),
                      u2 & np.uint64(0xFFFFFFFF)], axis=1).astype(np.uint32)
    got = lib.sample_words(P, words, d)
    ref = rng.sample(dist, tuple(words[:, j].astype(np.uint64) for j in range(4)))
    assert np.array_equal(got, ref)
    leaf = np.searchsorted(dist.cum[:-1], u1, side="right")
    assert np.array_equal(leaf, np.repeat(np.arange(dist.nleaf), 3))


@pytest.mark.parametrize("name", list(test_dists()))
def test_sampling_edge_words(lib, name):
    """Edge words: u1 at and next to every leaf threshold (and 0, 2**64 - 1), u2 = 0 (-> 1 in exp),
    all ones, single bits; and the leaf each u1 picks is the first with u1 < cum[c]."""
    dists = test_dists()
    d = list(dists).index(name)
    P = pack.pack(_compiled_with(dists.values()))
    dist = dists[name]
    u1s = {0, 1, 2**63, 2**64 - 1}
    for c in range(dist.nleaf - 1):
        t = int(dist.cum[c])
        u1s |= {max(0, t - 1), t, min(t + 1, 2**64 - 1)}
    u2s = [0, 1, 2, 2**32 - 1, 2**32, 2**63, 2**63 - 1, 2**64 - 1, 2**64 - 2, 0xFFF << 52,
           (1 << 51) - 1, 0x0123456789ABCDEF]
    words = np.array([(u1 >> 32, u1 & 0xFFFFFFFF, u2 >> 32, u2 & 0xFFFFFFFF)
                      for u1 in sorted(u1s) for u2 in u2s], dtype=np.uint32)
    got = lib.sample_words(P, words, d)
    ref = rng.sample(dist, tuple(words[:, j].astype(np.uint64) for j in range(4)))
    assert np.array_equal(got, ref)
    assert (ref >= 0).all() and ref.max() <= dist.max_ns
    if dist.nleaf > 1:
        # The leaf choice by itself: a SEG leaf's lo is what u2 = 0 gives (EXP leaves: skip).
        u1 = np.array(sorted(u1s), dtype=np.uint64)
        leaf = _first_leaf(dist, u1)
        zero = (u1 >> np.uint64(32), u1 & np.uint64(0xFFFFFFFF), np.zeros_like(u1), np.zeros_like(u1))
        v0 = rng.sample(dist, zero)
        seg = dist.kind[leaf] == rng.LEAF_SEG
        assert np.array_equal(v0[seg], (dist.a[leaf] >> rng.FP_BITS)[seg])


def _first_leaf(dist, u1):
    """The first leaf c with u1 < cum[c] (the last if none), by its definition: c is that leaf iff
    cum[c-1] <= u1 (c > 0) and u1 < cum[c] (c < n-1); checked for the leaf rng.sample picks."""
    c = np.searchsorted(dist.cum[:-1], u1, side="right")
    above = (c == 0) | (u1 >= dist.cum[np.maximum(c - 1, 0)])
    below = (c == dist.nleaf - 1) | (u1 < dist.cum[np.minimum(c, dist.nleaf - 1)])
    assert above.all() and below.all()
    return c


def test_guide_table():
    """Entry j of the guide is the leaf of u1 = j << (64 - G); 2**G >= nleaf; none below 5 leaves."""
    dists = test_dists()
    for name, d in dists.items():
        g = d.guide_bits
        assert (g == 0) == (d.nleaf < 5), name
        if g:
            assert 1 << g >= d.nleaf
            j = np.arange(1 << g, dtype=np.uint64) << np.uint64(64 - g)
            assert np.array_equal(d.guide(), _first_leaf(d, j)), name
            assert (np.diff(d.guide()) >= 0).all()
    assert dists["tiny_weights"].guide_bits == 10 and len(set(dists["tiny_weights"].guide().tolist())) == 2


def test_sampling_named_dists_of_a_compiled(lib):
    """pack() keeps DIST_NAMES order: sampling index j of the block is sampling compiled.dists[j]."""
    from mcexplore.params import DIST_NAMES, PageClass

    r = np.random.default_rng(5)
    dists = [exponential(float(r.uniform(10, 1e5))) if j % 3 == 0 else
             uniform(float(j), float(j * 100 + 50)) if j % 3 == 1 else const(float(j * 11))
             for j in range(len(DIST_NAMES))]
    comp = Compiled(strategy=3, dists=dists, page=PageClass(1, False, 4, 2, 1000.0))
    P = pack.pack(comp)
    keys = random_keys(3000, seed=9)
    ref_w = _ref_words(77, keys)
    for j in range(len(DIST_NAMES)):
        values, _ = lib.sample_draws(P, 77, keys, j)
        assert np.array_equal(values, rng.sample(dists[j], ref_w)), DIST_NAMES[j]
    # Page level: the class's access distribution is the named "access" (as the numpy engine's).
    cls_rec = P[P[K.Header.CLASS_OFF]:P[K.Header.CLASS_OFF] + K.CLASS_WORDS]
    assert int(cls_rec[K.ClassWord.ACCESS_DIST]) == DIST_NAMES.index("access")
    assert P[K.Header.SCRATCH_WORDS] == K.TASK_WORDS * 2


def test_hist_bucket_native_vs_numpy(lib):
    r = np.random.default_rng(3)
    v = np.concatenate([np.arange(-5, 5000), r.integers(0, 2**62, 20000),
                        2 ** np.arange(0, 63, dtype=np.int64), 2 ** np.arange(1, 63, dtype=np.int64) - 1,
                        [np.iinfo(np.int64).max, np.iinfo(np.int64).min]]).astype(np.int64)
    got = lib.hist_buckets(v)
    assert np.array_equal(got, hist_bucket(v))
    assert got.max() == HIST_BINS - 1


# -- the parameter block -----------------------------------------------------------------------

def test_pack_layout():
    from mcexplore.params import PageClass

    from mcexplore import transient

    dists = [const(float(j)) for j in range(16)]  # transient_hold (the 16th) is 15 ns
    comp = Compiled(strategy=4, dists=dists, page=PageClass(1, True, 7, 3, 500.0), recheck=False,
                    flag_from_unmap_end=True, passes=9, trylock_passes=2, timeout_ns=123456789,
                    max_attempts=77, transient_rate_per_ns=0.01)
    P = pack.pack(comp)
    assert P.dtype == np.int64 and P[K.Header.LEN] == len(P)
    assert P[K.Header.MAGIC] == K.PARAMS_MAGIC and P[K.Header.VERSION] == K.PARAMS_VERSION
    assert [P[K.Header.STRATEGY], P[K.Header.RECHECK], P[K.Header.FLAG_FROM_UNMAP_END], P[K.Header.PASSES],
            P[K.Header.TRYLOCK_PASSES], P[K.Header.TIMEOUT_NS], P[K.Header.MAX_ATTEMPTS],
            P[K.Header.LEVEL]] == [4, 0, 1, 9, 2, 123456789, 77, 0]
    assert P[K.Header.NCLASSES] == 1 and P[K.Header.NDISTS] == 16 and P[K.Header.NPAGES] == 1
    # Transient references: windows of max(15, sqrt(15 / 0.01)) = 39 ns, their Poisson(0.39)
    # count thresholds appended at the end of the block as uint64.
    lay = transient.layout(comp)
    assert [P[K.Header.TRANSIENT_MODEL], P[K.Header.TRANSIENT_W], P[K.Header.TRANSIENT_HMAX]] == [1, 39, 15]
    n, off = int(P[K.Header.TRANSIENT_NTHR]), int(P[K.Header.TRANSIENT_THR_OFF])
    assert n == len(lay.thresholds) > 5 and off + n == len(P)
    assert (P[off:].view(np.uint64) == lay.thresholds).all()
    comp.transient_rate_per_ns = 0.0
    P2 = pack.pack(comp)
    assert P2[K.Header.TRANSIENT_MODEL] == 0 and P2[K.Header.TRANSIENT_NTHR] == 0
    comp.transient_rate_per_ns = 0.01
    # Constants: one leaf, the value in D_CONST.
    for d in range(int(P[K.Header.NDISTS])):
        base = int(P[K.Header.DIST_OFF]) + d * K.DIST_WORDS
        assert P[base + K.DistWord.NLEAF] == 1 and P[base + K.DistWord.CONST] == d
        assert P[base + K.DistWord.KIND] == 0 and P[base + K.DistWord.A] == d << 16 and P[base + K.DistWord.B] == 0
        assert P[K.Header.TABLES_OFF] <= P[base + K.DistWord.LEAF_OFF] < off
    # Leaves, guides and tables of other distributions, inside the block and in order.
    tw = test_dists()
    many = Compiled(strategy=0, dists=list(tw.values()))
    P = pack.pack(many)
    end = int(P[K.Header.TRANSIENT_THR_OFF])
    pos = int(P[K.Header.TABLES_OFF])
    for j, dist in enumerate(tw.values()):
        base = int(P[K.Header.DIST_OFF]) + j * K.DIST_WORDS
        n, g = int(P[base + K.DistWord.NLEAF]), int(P[base + K.DistWord.GUIDE_BITS])
        assert (n, g) == (dist.nleaf, dist.guide_bits)
        assert P[base + K.DistWord.LEAF_OFF] == pos
        rec = P[pos:pos + n * K.LEAF_WORDS].reshape(n, K.LEAF_WORDS)
        assert np.array_equal(rec[:, K.LeafWord.CUM].view(np.uint64), dist.cum)
        kw = np.where(dist.kind == rng.LEAF_EXP, 1 | (dist.shift << 8), 0)
        assert np.array_equal(rec[:, K.LeafWord.KIND], kw) and np.array_equal(rec[:, K.LeafWord.A], dist.a)
        assert (dist.shift[dist.kind == rng.LEAF_SEG] == rng.FP_BITS).all()
        pos += n * K.LEAF_WORDS
        if g:
            assert P[base + K.DistWord.GUIDE_OFF] == pos
            assert np.array_equal(P[pos:pos + (1 << g)], dist.guide())
            pos += 1 << g
        for c in np.nonzero(dist.kind == rng.LEAF_EXP)[0]:  # b: the table's absolute offset
            t = int(rec[c, K.LeafWord.B])
            assert pos <= t and t + 8193 <= pos + len(dist.tables) <= end
            assert np.array_equal(P[t:t + 8193], dist.tables[int(dist.b[c]):int(dist.b[c]) + 8193])
        assert [P[base + K.DistWord.KIND], P[base + K.DistWord.A], P[base + K.DistWord.B]] == rec[0, 1:].tolist()
        assert P[base + K.DistWord.CONST] == (dist.const_ns if dist.is_const else -1)
        pos += len(dist.tables)
    assert pos == end
    # Block level: classes in order, first pages cumulative.
    blk = [PageClass(100, False, 1, 0, 0.0), PageClass(3, True, 50, 50, 1000.0)]
    comp.block = blk
    P = pack.pack(comp)
    assert P[K.Header.LEVEL] == 1 and P[K.Header.NCLASSES] == 2 and P[K.Header.NPAGES] == 103
    c1 = int(P[K.Header.CLASS_OFF]) + K.CLASS_WORDS
    assert P[c1 + K.ClassWord.FIRST_PAGE] == 100 and P[c1 + K.ClassWord.MAPCOUNT] == 50
    # Scratch: 103 page words + 256 batch slots, then 3 hot pages of 50 tasks each.
    assert P[int(P[K.Header.CLASS_OFF]) + K.ClassWord.SIM_OFF] == -1
    assert P[c1 + K.ClassWord.SIM_OFF] == 103 + 256
    assert P[K.Header.SCRATCH_WORDS] == 103 + 256 + 3 * (K.SIM_WORDS + 50 * K.TASK_WORDS)
    assert P[int(P[K.Header.CLASS_OFF]) + K.ClassWord.ACCESS_DIST] == -1
    a1 = int(P[c1 + K.ClassWord.ACCESS_DIST])
    assert a1 == 16  # appended after the 16 dists of compiled.dists
    base = int(P[K.Header.DIST_OFF]) + a1 * K.DIST_WORDS
    fp = params.exp_shift(1000.0)  # the finest fixed point with 64 * val < 2**62: 2**-46 ns
    assert fp == 46 and P[base + K.DistWord.KIND] == rng.LEAF_EXP | fp << 8 and P[base + K.DistWord.NLEAF] == 1
    assert P[base + K.DistWord.A] == round(1000 * np.log(2) * 2**fp) and P[base + K.DistWord.CONST] == -1


# -- sources, #line and the cache -------------------------------------------------------------

def test_sources_are_package_data():
    files = kernel_source.source_files()
    for n in (kernel_source.MAIN,) + kernel_source.HEADERS:
        assert n in files and files[n].strip()
    code = kernel_source.assemble()
    assert '#include "' not in code
    assert code.count("#line 1 ") == 1 + len(kernel_source.HEADERS)


def test_line_directives_name_the_real_file(lib, tmp_path):
    files = kernel_source.source_files()
    lines = files["sample.h"].splitlines()
    bad_line = next(j for j, line in enumerate(lines, 1) if "MCX_FN mcx_i64 mcx_sample(" in line)
    lines.insert(bad_line - 1, "int this_is_not_cpp = ;")
    broken = "\n".join(lines) + "\n"
    code = kernel_source.assemble(overrides={"sample.h": broken})
    with pytest.raises(native.CompileError) as ei:
        native.compile_source(code, tmp_path / "broken.so")
    msg = str(ei.value)
    assert f"sample.h:{bad_line}:" in msg, msg
    # And one in the main file.
    mlines = files["mcexplore.cu"].splitlines()
    j = next(j for j, line in enumerate(mlines, 1) if "MCX_FN int mcx_hist_bucket" in line)
    mlines.insert(j - 1, "static_assert(false, \"planted\");")
    code = kernel_source.assemble(overrides={"mcexplore.cu": "\n".join(mlines) + "\n"})
    with pytest.raises(native.CompileError) as ei:
        native.compile_source(code, tmp_path / "broken2.so")
    assert f"mcexplore.cu:{j}:" in str(ei.value)
    assert not (tmp_path / "broken.so").exists()


def test_cache_key_changes_with_every_file_and_option():
    base = kernel_source.cache_key(options=("-O3",), compiler_id="g++ 12")
    assert base == kernel_source.cache_key(options=("-O3",), compiler_id="g++ 12")
    seen = {base}
    for name, text in kernel_source.source_files().items():
        k = kernel_source.cache_key(options=("-O3",), compiler_id="g++ 12",
                                    overrides={name: text + "\n// changed\n"})
        assert k not in seen, name
        seen.add(k)
    assert kernel_source.cache_key(options=("-O2",), compiler_id="g++ 12") not in seen
    assert kernel_source.cache_key(options=("-O3",), compiler_id="g++ 13") not in seen


def test_native_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MCEXPLORE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    lib1 = native.build()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".so") and lib1.path.parent == tmp_path
    mtime = lib1.path.stat().st_mtime_ns
    monkeypatch.setattr(native, "_loaded", {})
    lib2 = native.build()
    assert lib2.path == lib1.path and lib2.path.stat().st_mtime_ns == mtime
    # A changed header gives another library.
    src = kernel_source.source_files()
    monkeypatch.setattr(native, "_loaded", {})
    lib3 = native.build(overrides={"philox.h": src["philox.h"] + "\n// touched\n"})
    assert lib3.path != lib1.path
    assert len(list(tmp_path.glob("*.so"))) == 2


def test_native_availability_reports_why(monkeypatch):
    ok, why = native.NativeEngine.availability()
    assert ok and why
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    ok, why = native.NativeEngine.availability()
    assert not ok and "compiler" in why


def test_cupy_engine_availability_never_raises():
    from mcexplore.engines.cupy_engine import CupyEngine

    ok, why = CupyEngine.availability()
    assert isinstance(ok, bool) and isinstance(why, str) and why


# -- device compile check ----------------------------------------------------------------------

def _nvcc():
    return shutil.which("nvcc") or (os.path.exists("/usr/local/cuda/bin/nvcc") and "/usr/local/cuda/bin/nvcc")


@pytest.mark.parametrize("arch,defines", [("compute_80", ()), ("compute_90", ("-DMCX_TILE_INSTANCES",)),
                                          ("compute_90", ("-DMCX_DEVICE_SPEC=1",)),
                                          ("compute_90", ("-DMCX_TILE_ONLY", "-DMCX_TILE_INSTANCES"))])
def test_device_code_compiles_to_ptx(tmp_path, arch, defines):
    """Device-only code compiles (also a module specialised for one strategy, MCX_DEVICE_SPEC, the
    tile kernel at every width, which the engine instantiates one by one by name, and a tile
    width's own module, MCX_TILE_ONLY, without the per-trial kernel)."""
    nvcc = _nvcc()
    if not nvcc:
        pytest.skip("nvcc not installed")
    src = tmp_path / "mcexplore_all.cu"
    src.write_text(kernel_source.assemble())
    out = tmp_path / f"k_{arch}.ptx"
    r = subprocess.run([nvcc, "-ptx", f"-arch={arch}", "-std=c++17", "--fmad=false", "-Werror",
                        "all-warnings", *defines, str(src), "-o", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    ptx = out.read_text()
    from mcexplore.engines.cupy_engine import KERNELS

    for k in KERNELS:
        assert (f".entry {k}(" in ptx) == (k != "simulate_records" or "-DMCX_TILE_ONLY" not in defines), k
    from mcexplore.constants import TILE_LANES

    tiles = sorted(int(w) for w in re.findall(r"\.entry _Z21simulate_records_tileILi(\d+)EE", ptx))
    assert tiles == (sorted(TILE_LANES) if "-DMCX_TILE_INSTANCES" in defines else []), tiles


# -- lazy imports ------------------------------------------------------------------------------

def test_importing_mcexplore_does_not_import_cupy():
    import importlib.util

    mods = ["mcexplore", "mcexplore.api", "mcexplore.engines.base", "mcexplore.engines.native",
            "mcexplore.engines.cupy_engine", "mcexplore.engines.kernel_source"]
    for extra in ("mcexplore.cli", "mcexplore.scenario", "mcexplore.engines.numpy_engine"):
        if importlib.util.find_spec(extra) is not None:
            mods.append(extra)
    code = textwrap.dedent(f"""
        import sys, importlib
        for m in {mods!r}:
            importlib.import_module(m)
        from mcexplore.engines.cupy_engine import CupyEngine
        bad = sorted(m for m in sys.modules if m == "cupy" or m.startswith("cupy."))
        print("CUPY:" + ",".join(bad))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "CUPY:\n" in r.stdout or r.stdout.strip() == "CUPY:", r.stdout


def test_first_examples_assembly_matches_from_records():
    """The host half of the device reduction: per-block counts and first examples give the same
    example trials as Aggregate.from_records (first 16 per outcome, in trial order)."""
    from mcexplore.engines.cupy_engine import EXAMPLE_OUTCOMES, EXAMPLES, NEX, REDUCE_BLOCK, first_examples

    r = np.random.default_rng(0)
    for _ in range(100):
        n = int(r.integers(1, 3000))
        nb = (n + REDUCE_BLOCK - 1) // REDUCE_BLOCK
        flags = r.random((n, NEX)) < r.choice([0.001, 0.01, 0.3])
        bc = np.zeros((nb, NEX), dtype=np.int32)
        bx = np.zeros((nb, NEX, EXAMPLES), dtype=np.int32)
        for b in range(nb):
            for e in range(NEX):
                idx = np.nonzero(flags[b * REDUCE_BLOCK:(b + 1) * REDUCE_BLOCK, e])[0] + b * REDUCE_BLOCK
                bc[b, e] = len(idx)
                bx[b, e, :min(EXAMPLES, len(idx))] = idx[:EXAMPLES]
        ex = first_examples(bc, lambda: bx, 1000)
        for e, o in enumerate(EXAMPLE_OUTCOMES):
            assert ex[o] == [1000 + int(j) for j in np.nonzero(flags[:, e])[0][:EXAMPLES]]


def test_both_cupy_extras_installed_is_refused_with_a_reason(monkeypatch):
    from importlib import metadata

    from mcexplore.engines import cupy_engine

    monkeypatch.setattr(metadata, "version", lambda name: "14.0.0")
    ok, why = cupy_engine.CupyEngine.availability()
    assert not ok and "cupy-cuda12x and cupy-cuda13x" in why and "mutually exclusive" in why


# -- the native engine's batched draws (kernels/drawcache.h) ------------------------------------

@pytest.mark.parametrize("simd", ["scalar", "sse2", "avx2", "avx512"])
def test_philox_lanes_match_numpy(lib, simd):
    """Every lane implementation gives the Philox words of rng.philox4x32, lane for lane."""
    if lib.simd_resolve(simd) != simd:
        pytest.skip(f"this CPU cannot run {simd}")
    r = np.random.default_rng(7)
    for n in (16, 48, 208):
        c0, c1, k0, k1 = (int(x) for x in r.integers(0, 2**32, size=4, dtype=np.uint64))
        c2, c3 = r.integers(0, 2**32, size=(2, n), dtype=np.uint64)
        got = lib.philox_lanes(simd, c0, c1, c2.astype(np.uint32), c3.astype(np.uint32), (k0, k1))
        ref = np.stack(rng.philox4x32(c0, c1, c2, c3, k0, k1))
        assert np.array_equal(got.astype(np.uint64), ref), (simd, n)


def test_simd_choice_is_checked(lib):
    assert lib.simd_resolve("auto") in native.SIMD
    assert lib.simd_resolve("off") == "off" and lib.simd_resolve("scalar") == "scalar"
    with pytest.raises(ValueError, match="lanes"):
        lib.philox_lanes("scalar", 0, 0, np.zeros(10, dtype=np.uint32), np.zeros(10, dtype=np.uint32),
                         (0, 0))  # not a multiple of 16 lanes
    with pytest.raises(ValueError, match="MCEXPLORE_SIMD.*'avx9'.*auto, off, scalar"):
        native.NativeEngine(simd="avx9")


def test_gcc_is_told_apart_from_clang_by_its_macros(tmp_path):
    # The GCC-only build options must not reach clang (which calls itself GNUC 4 too).
    for name, macros, expect in (("fakegcc", "#define __GNUC__ 12", True),
                                 ("fakeclang", "#define __GNUC__ 4\\n#define __clang__ 1", False)):
        exe = tmp_path / name
        exe.write_text(f"#!/bin/sh\nprintf '{macros}\\n'\n")
        exe.chmod(0o755)
        assert native.is_gcc(str(exe)) is expect, name
