// mcexplore.cu: the kernels and host entry points of the compiled engines.
//
// One source for both compiled engines (docs/kernels.md):
//   * CUDA (NVRTC via cupy.RawModule, or nvcc): the __global__ kernels simulate_records (one
//     thread per trial) and reduce_records (the device reduction of the records), and the test
//     kernels mcx_philox_kernel, sample_draws, sample_words, hist_buckets;
//   * host C++17 (g++, mcexplore.engines.native): extern "C" functions mcx_*, a loop over trials
//     spread over worker threads.
// mcexplore/engines/kernel_source.py inlines the headers below (with #line directives) into one
// translation unit, so no include path is needed by either compiler.
#include "portability.h"
#include "philox.h"
#include "constants.h"
#include "params.h"
#include "sample.h"
#include "engine.h"

// Aggregates (mcexplore.constants): the record field of the o-th counted outcome, the q-th sum,
// the h-th histogram metric and the e-th example outcome, by name from the generated tables.
// Histograms: MCX_HIST_SUB sub-buckets per power of two (mcexplore.results.hist_bucket).
MCX_FN int mcx_outcome_field(int o) {
    const int f[MCX_NOUT] = MCX_OUTCOME_FIELDS;
    return f[o];
}
MCX_FN int mcx_sum_field(int q) {
    const int f[MCX_NSUM] = MCX_SUM_FIELDS;
    return f[q];
}
MCX_FN int mcx_hist_field(int h) {
    const int f[MCX_NHIST] = MCX_HIST_FIELDS;
    return f[h];
}
MCX_FN int mcx_example_field(int e) {
    const int f[MCX_NEX] = MCX_EXAMPLE_FIELDS;
    return f[e];
}

// results.hist_bucket, exactly: v < 8 -> v; else 8*(e-3) + (v >> (e-4)) - 8 with e the bit
// length of v; negative values count as 0; the last bucket takes everything above.
MCX_FN int mcx_hist_bucket(mcx_i64 v) {
    if (v < MCX_HIST_SUB) return v < 0 ? 0 : (int)v;
    const mcx_i64 e = 64 - mcx_clz64((mcx_u64)v);
    const mcx_i64 b = 8 * (e - 3) + (mcx_i64)((mcx_u64)v >> (e - 4)) - 8;
    return b < MCX_HIST_BINS - 1 ? (int)b : MCX_HIST_BINS - 1;
}

// One draw of the sampling test: key = (trial, purpose, page, k, i, sub); dist < 0: words only.
MCX_FN void mcx_sample_one(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, const mcx_i64* key,
                           int dist, mcx_i64* value, mcx_u32* words) {
    const mcx_words w = mcx_draw(seed, key[0], (int)key[1], key[2], key[3], key[4], key[5]);
    words[0] = w.x0;
    words[1] = w.x1;
    words[2] = w.x2;
    words[3] = w.x3;
    *value = dist >= 0 ? mcx_sample(P, dist, w) : 0;
}

// Row j of a known-answer test: Philox of counter row j under key row j.
MCX_FN void mcx_philox_row(mcx_i64 j, const mcx_u32* ctr, const mcx_u32* key, mcx_u32* out) {
    const mcx_words w = mcx_philox4x32_10(ctr[4 * j], ctr[4 * j + 1], ctr[4 * j + 2],
                                          ctr[4 * j + 3], key[2 * j], key[2 * j + 1]);
    out[4 * j] = w.x0;
    out[4 * j + 1] = w.x1;
    out[4 * j + 2] = w.x2;
    out[4 * j + 3] = w.x3;
}

// Row j of a sampling test: distribution dist sampled from the given Philox words.
MCX_FN void mcx_sample_row(const mcx_i64* P, mcx_i64 j, const mcx_u32* words, int dist,
                           mcx_i64* values) {
    mcx_words w;
    w.x0 = words[4 * j];
    w.x1 = words[4 * j + 1];
    w.x2 = words[4 * j + 2];
    w.x3 = words[4 * j + 3];
    values[j] = mcx_sample(P, dist, w);
}

#if defined(MCX_CUDA)
// ---------------------------------------------------------------------------------------------
// Device kernels. Names are extern "C" so cupy.RawModule finds them without name mangling.

extern "C" __global__ void mcx_philox_kernel(mcx_i64 n, const mcx_u32* ctr, const mcx_u32* key,
                                             mcx_u32* out) {
    const mcx_i64 j = (mcx_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    mcx_philox_row(j, ctr, key, out);
}

extern "C" __global__ void sample_draws(const mcx_i64* P, mcx_u64 seed, mcx_i64 n,
                                        const mcx_i64* keys, int dist, mcx_i64* values,
                                        mcx_u32* words) {
    const mcx_i64 j = (mcx_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    mcx_sample_one(P, seed, keys + 6 * j, dist, values + j, words + 4 * j);
}

extern "C" __global__ void sample_words(const mcx_i64* P, mcx_i64 n, const mcx_u32* words, int dist,
                                        mcx_i64* values) {
    const mcx_i64 j = (mcx_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    mcx_sample_row(P, j, words, dist, values);
}

extern "C" __global__ void hist_buckets(const mcx_i64* v, mcx_i64 n, mcx_i64* out) {
    const mcx_i64 j = (mcx_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < n) out[j] = mcx_hist_bucket(v[j]);
}

// Per-trial records of trials [t0, t0 + n): out is n x (MCX_NFIELDS + nslot) int64, row-major,
// nslot = P[MCX_H_IS_NSLOT] <= MCX_IS_MAX_SLOTS (a tilted run's statistics; the caller checks).
// Not in a module built for one tile width (-DMCX_TILE_ONLY, cupy_engine.get_module): it is the
// largest kernel to compile, and the main module has it.
#if !defined(MCX_TILE_ONLY)
extern "C" __global__ void simulate_records(const mcx_i64* P, mcx_u64 seed, mcx_i64 t0, mcx_i64 n,
                                            mcx_i64* out, mcx_i64* scratch) {
    const mcx_i64 j = (mcx_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    mcx_i64 rec[MCX_NFIELDS + MCX_IS_MAX_SLOTS];
    mcx_scratch s;
    s.base = scratch + j;
    s.stride = n;
    mcx_trial(P, seed, t0 + j, rec, s);
    const int width = MCX_NFIELDS + (int)P[MCX_H_IS_NSLOT];
    for (int f = 0; f < width; ++f) out[j * width + f] = rec[f];
}
#endif

// The same records, one tile of W lanes per trial (page.h, lanes.h): W = 32, a warp; a
// power-of-two part of one for pages with few tasks; or W / 32 warps, a block of W threads, for
// pages with more than 32 tasks a lane (cupy_engine.py picks W from the page's tasks and
// launches so; each W is requested by name, simulate_records_tile<W>), for a page-level,
// untilted P (the Python side checks). Persistent tiles: each tile takes the next trial from
// *next (zero at launch) until none is left, so a long trial holds up its own tile only.
// scratch: P[MCX_H_SCRATCH_WORDS] words per tile of the launch.
template <int W>
__global__ void simulate_records_tile(const mcx_i64* P, mcx_u64 seed, mcx_i64 t0, mcx_i64 n,
                                      mcx_i64* out, mcx_i64* scratch, unsigned long long* next) {
    const int lane = (int)(threadIdx.x & (W - 1));
    const mcx_i64 tile = ((mcx_i64)blockIdx.x * blockDim.x + threadIdx.x) / W;
    mcx_scratch s;
    s.base = scratch + tile * P[MCX_H_SCRATCH_WORDS];
    s.stride = 1;
    mcx_lane_ctx lc;
    lc.lane = lane;
    for (;;) {
        unsigned long long j = 0;
        if (lane == 0) j = atomicAdd(next, 1ull);
        // Also the tile's barrier between trials: the last trial's lane-0 record is written.
        j = (unsigned long long)mcx_lanes_bcast<W>(lc, (mcx_i64)j, 0);
        if ((mcx_i64)j >= n) break;
        mcx_i64 rec[MCX_NFIELDS];
        mcx_trial_page<-1, false, W>(P, seed, t0 + (mcx_i64)j, rec, s, lc);
        if (lane == 0)
            for (int f = 0; f < MCX_NFIELDS; ++f) out[(mcx_i64)j * MCX_NFIELDS + f] = rec[f];
    }
}
#if defined(MCX_TILE_INSTANCES)
// Every width at once, for nvcc (tests/test_kernels_infra.py, scripts/predict-device.py); the
// engine's NVRTC module instantiates only the width it runs.
#define MCX_TILE_INSTANCE(W)                                                                    \
    template __global__ void simulate_records_tile<W>(const mcx_i64*, mcx_u64, mcx_i64, mcx_i64, \
                                                      mcx_i64*, mcx_i64*, unsigned long long*);
MCX_FOR_EACH_TILE_LANES(MCX_TILE_INSTANCE)
#undef MCX_TILE_INSTANCE
#endif

// Records of n trials (recs: n x MCX_NFIELDS, from simulate_records of an untilted P) reduced on
// the device:
// launch with blockDim.x == MCX_REDUCE_BLOCK.
//   counts[MCX_NOUT + 1], sums[MCX_NSUM]: added to (global atomics after a per-block shared
//     reduction); counts[MCX_NOUT] counts trials that made no progress (records of all -1)
//   max_wait: atomicMax
//   hists[MCX_NHIST * MCX_HIST_BINS]: added to
//   blk_counts[gridDim.x * MCX_NEX]: number of trials of this block with each failure outcome
//   blk_ex[gridDim.x * MCX_NEX * MCX_EXAMPLES]: the first MCX_EXAMPLES of them (offsets in recs,
//     in trial order), so the host can pick the chunk's first examples exactly as
//     Aggregate.from_records does, whatever order the blocks ran in.
// The reduction is a separate kernel rather than fused into the simulation: with the simulation's
// out-of-line calls in the same kernel, NVRTC (CUDA 13.0, sm_90) produced code whose global
// histogram pointer was corrupted (compute-sanitizer: invalid global atomic at address ~0x2000).
// The extra 120 bytes per trial written and read back cost nothing next to the simulation.
extern "C" __global__ void reduce_records(const mcx_i64* recs, mcx_i64 n, unsigned long long* counts,
                                          unsigned long long* sums, long long* max_wait,
                                          unsigned long long* hists, int* blk_counts, int* blk_ex) {
    __shared__ unsigned long long s_counts[MCX_NOUT + 1];
    __shared__ unsigned long long s_sums[MCX_NSUM];
    __shared__ long long s_max;
    __shared__ unsigned int s_hist[MCX_NHIST * MCX_HIST_BINS];
    __shared__ unsigned char s_flags[MCX_REDUCE_BLOCK];

    const int tid = threadIdx.x;
    for (int b = tid; b < MCX_NHIST * MCX_HIST_BINS; b += blockDim.x) s_hist[b] = 0;
    if (tid <= MCX_NOUT) s_counts[tid] = 0;
    if (tid < MCX_NSUM) s_sums[tid] = 0;
    if (tid == 0) s_max = MCX_I64_MIN;
    s_flags[tid] = 0;
    __syncthreads();

    const mcx_i64 j = (mcx_i64)blockIdx.x * blockDim.x + tid;
    if (j < n) {
        const mcx_i64* rec = recs + j * MCX_NFIELDS;
        if (rec[MCX_R_MIGRATED] < 0) atomicAdd(&s_counts[MCX_NOUT], 1ull);
        for (int o = 0; o < MCX_NOUT; ++o) {
            const mcx_i64 v = rec[mcx_outcome_field(o)];
            if (v) atomicAdd(&s_counts[o], (unsigned long long)v);
        }
        for (int q = 0; q < MCX_NSUM; ++q) {
            const mcx_i64 v = rec[mcx_sum_field(q)];
            if (v) atomicAdd(&s_sums[q], (unsigned long long)v);
        }
        atomicMax(&s_max, (long long)rec[MCX_R_MAX_WAIT]);
        for (int h = 0; h < MCX_NHIST; ++h) {
            const int fh = mcx_hist_field(h);
            // t_migrated is histogrammed over migrated trials only (results.Aggregate).
            if (fh == MCX_R_T_MIGRATED && rec[MCX_R_MIGRATED] != 1) continue;
            atomicAdd(&s_hist[h * MCX_HIST_BINS + mcx_hist_bucket(rec[fh])], 1u);
        }
        unsigned char f = 0;
        for (int e = 0; e < MCX_NEX; ++e)
            if (rec[mcx_example_field(e)] != 0) f |= (unsigned char)(1u << e);
        s_flags[tid] = f;
    }
    __syncthreads();

    for (int b = tid; b < MCX_NHIST * MCX_HIST_BINS; b += blockDim.x)
        if (s_hist[b]) atomicAdd(&hists[b], (unsigned long long)s_hist[b]);
    if (tid <= MCX_NOUT && s_counts[tid]) atomicAdd(&counts[tid], s_counts[tid]);
    if (tid < MCX_NSUM && s_sums[tid]) atomicAdd(&sums[tid], s_sums[tid]);
    if (tid == 0 && (mcx_i64)blockIdx.x * blockDim.x < n) atomicMax(max_wait, s_max);
    if (tid < MCX_NEX) {
        // Thread e scans the block's flags in trial order for outcome e.
        int cnt = 0;
        int* ex = blk_ex + ((mcx_i64)blockIdx.x * MCX_NEX + tid) * MCX_EXAMPLES;
        const mcx_i64 left = n - (mcx_i64)blockIdx.x * blockDim.x;
        const int lim = (int)(left < (mcx_i64)blockDim.x ? left : (mcx_i64)blockDim.x);
        for (int t = 0; t < lim; ++t) {
            if (s_flags[t] & (1u << tid)) {
                if (cnt < MCX_EXAMPLES) ex[cnt] = (int)((mcx_i64)blockIdx.x * blockDim.x + t);
                ++cnt;
            }
        }
        blk_counts[(mcx_i64)blockIdx.x * MCX_NEX + tid] = cnt;
    }
}

#else
// ---------------------------------------------------------------------------------------------
// Host entry points (g++ -shared; loaded with ctypes by mcexplore.engines.native).
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

extern "C" int mcx_abi_version(void) { return MCX_ABI_VERSION; }

extern "C" void mcx_philox(mcx_i64 n, const mcx_u32* ctr, const mcx_u32* key, mcx_u32* out) {
    for (mcx_i64 j = 0; j < n; ++j) {
        mcx_philox_row(j, ctr, key, out);
    }
}

extern "C" void mcx_sample_draws(const mcx_i64* P, mcx_u64 seed, mcx_i64 n, const mcx_i64* keys,
                                 int dist, mcx_i64* values, mcx_u32* words) {
    for (mcx_i64 j = 0; j < n; ++j) mcx_sample_one(P, seed, keys + 6 * j, dist, values + j, words + 4 * j);
}

extern "C" void mcx_sample_words(const mcx_i64* P, mcx_i64 n, const mcx_u32* words, int dist,
                                 mcx_i64* values) {
    for (mcx_i64 j = 0; j < n; ++j) {
        mcx_sample_row(P, j, words, dist, values);
    }
}

// The implementation mcx_simulate uses for its batched draws (drawcache.h) when asked for
// `simd` (< 0: the best this CPU has); -1 if this CPU or build cannot run it.
extern "C" int mcx_simd_resolve(int simd) {
    if (simd < 0) return mcx_simd_best();
    if (simd > MCX_SIMD_AVX512 || !mcx_simd_supported(simd)) return -1;
    return simd;
}

// Lanes of implementation `simd` (> MCX_SIMD_OFF, supported): the words of Philox counters
// (c0, c1, c2[j], c3[j]) under key (k0, k1), j < n (n a multiple of MCX_DC_PAD), into x (4 x n).
extern "C" int mcx_philox_lanes(int simd, mcx_i64 n, mcx_u32 c0, mcx_u32 c1, const mcx_u32* c2,
                                const mcx_u32* c3, mcx_u32 k0, mcx_u32 k1, mcx_u32* x) {
    if (simd <= MCX_SIMD_OFF || mcx_simd_resolve(simd) != simd || n % MCX_DC_PAD) return -1;
    mcx_lanes_of(simd)(n, c0, c1, c2, c3, k0, k1, x, x + n, x + 2 * n, x + 3 * n);
    return 0;
}

// The device tile's code on the host: trials [t0, t1) into out ((t1 - t0) x MCX_NFIELDS), each
// run by `lanes` coroutines standing in for the lanes of a tile (lanes.h), the device's own
// template instance (mcx_trial_page<-1, false, W>, as simulate_records_tile<W> runs it): the
// warp's 32 lanes, or in a build with -DMCX_HOST_TILE_WIDTHS also the 8 of a sub-warp tile and the
// 64 of a two-warp one (the other device widths differ from those only in a constant; each
// instance adds about 8 s to a build, so only the tests that run them ask for them). For tests
// (the lanes take turns on the calling thread). lane_stats (null, or MCX_NLANE_STATS words): the
// tile's lane counters (page.h, advance_tile and run_global), counted only when given. Returns 0,
// -1 if P is not a parameter block of this version, -4 if P cannot run on a tile (block level, or
// tilted), -5 for a lane count this build does not run.
template <int W>
static void mcx_tile_run(const mcx_i64* P, mcx_u64 seed, mcx_i64 t0, mcx_i64 t1, mcx_i64* out,
                         mcx_i64* lane_stats) {
    const mcx_i64 sw = P[MCX_H_SCRATCH_WORDS];
    std::vector<mcx_i64> buf((size_t)(sw > 0 ? sw : 1));
    mcx_tile_emu emu;
    emu.counting = lane_stats != nullptr;
    // Each lane learns its number from the turn it starts in (emu.cur), as a warp lane reads its own.
    auto lane_fn = [&](int) {
        const int lane = emu.cur;
        mcx_scratch s;
        s.base = buf.data();
        s.stride = 1;
        mcx_lane_ctx lc;
        lc.lane = lane;
        lc.emu = &emu;
        for (mcx_i64 j = t0; j < t1; ++j) {
            mcx_i64 rec[MCX_NFIELDS];
            mcx_trial_page<-1, false, W>(P, seed, j, rec, s, lc);
            if (lane == 0)
                for (int f = 0; f < MCX_NFIELDS; ++f) out[(j - t0) * MCX_NFIELDS + f] = rec[f];
            emu.sync();
        }
    };
    emu.run(W, lane_fn);
    if (lane_stats)
        for (int j = 0; j < MCX_NLANE_STATS; ++j) lane_stats[j] = emu.counts[j];
}

extern "C" int mcx_simulate_tile(const mcx_i64* P, mcx_u64 seed, mcx_i64 t0, mcx_i64 t1, mcx_i64* out,
                                 int lanes, mcx_i64* lane_stats) {
    if (P[MCX_H_MAGIC] != MCX_PARAMS_MAGIC || P[MCX_H_VERSION] != MCX_PARAMS_VERSION) return -1;
    if (P[MCX_H_LEVEL] || P[MCX_H_IS_NSLOT]) return -4;
    if (lanes == MCX_LANE_W)
        mcx_tile_run<MCX_LANE_W>(P, seed, t0, t1, out, lane_stats);
#if defined(MCX_HOST_TILE_WIDTHS)
    else if (lanes == 8)
        mcx_tile_run<8>(P, seed, t0, t1, out, lane_stats);
    else if (lanes == 64)
        mcx_tile_run<64>(P, seed, t0, t1, out, lane_stats);
#endif
    else
        return -5;
    return 0;
}

extern "C" void mcx_hist_buckets(const mcx_i64* v, mcx_i64 n, mcx_i64* out) {
    for (mcx_i64 j = 0; j < n; ++j) out[j] = mcx_hist_bucket(v[j]);
}

// Per-trial records of trials [t0, t1) into out ((t1 - t0) x (MCX_NFIELDS + P[MCX_H_IS_NSLOT])
// int64: the fields, then a tilted run's statistics), on nthreads
// worker threads (<= 0: all hardware threads), batching draws with implementation simd
// (mcx_simd_resolve; MCX_SIMD_OFF: none), the tasks of strategies without global order run by
// scheduler sched (MCX_SCHED_LANES: the lane scheduler; MCX_SCHED_WALK: the walk; lanes.h).
// Trials are handed out in chunks from an atomic counter (a worker that finishes its chunk takes
// the next, and the chunks shrink to one trial as the run ends: a long trial holds up one worker,
// never the others); each record depends on
// (P, seed, trial) only, so neither the split, simd nor sched ever changes a result. lane_stats
// (null, or MCX_NLANE_STATS words) receives the lane scheduler's counters (lanes.h), summed over
// the workers; they are counted only when it is given. Returns 0, -1 if P is not a parameter block
// of this version, -2 if simd cannot run here, -3 for an unknown sched.
extern "C" int mcx_simulate(const mcx_i64* P, mcx_u64 seed, mcx_i64 t0, mcx_i64 t1, mcx_i64* out,
                            int nthreads, int simd, int sched, mcx_i64* lane_stats) {
    if (P[MCX_H_MAGIC] != MCX_PARAMS_MAGIC || P[MCX_H_VERSION] != MCX_PARAMS_VERSION) return -1;
    if (P[MCX_H_IS_NSLOT] < 0 || P[MCX_H_IS_NSLOT] > MCX_IS_MAX_SLOTS) return -1;
    const mcx_i64 width = MCX_NFIELDS + P[MCX_H_IS_NSLOT];
    simd = mcx_simd_resolve(simd);
    if (simd < 0) return -2;
    if (sched != MCX_SCHED_WALK && sched != MCX_SCHED_LANES) return -3;
    if (lane_stats)
        for (int j = 0; j < MCX_NLANE_STATS; ++j) lane_stats[j] = 0;
    std::mutex stats_lock;
    const mcx_i64 n = t1 - t0;
    if (n <= 0) return 0;
    if (nthreads <= 0) nthreads = (int)std::thread::hardware_concurrency();
    if (nthreads <= 0) nthreads = 1;
    const mcx_i64 chunk = 64;
    if ((mcx_i64)nthreads > (n + chunk - 1) / chunk) nthreads = (int)((n + chunk - 1) / chunk);
    const mcx_i64 sw = P[MCX_H_SCRATCH_WORDS];
    std::atomic<mcx_i64> next(0);
    auto worker = [&]() {
        std::vector<mcx_i64> buf((size_t)(sw > 0 ? sw : 1));
        // Batched draws for pages of up to max_mapcount active tasks (drawcache.h).
        const mcx_i64 lanes = P[MCX_H_MAX_MAPCOUNT] > 0 ? P[MCX_H_MAX_MAPCOUNT] : 1;
        std::vector<mcx_i64> rows((size_t)mcx_draw_cache::words(lanes));
        mcx_draw_cache dc;
        dc.init(seed, lanes, rows.data(), simd);
        mcx_tls_draw_cache = simd == MCX_SIMD_OFF ? nullptr : &dc;
        std::vector<mcx_i64> tree_mem((size_t)mcx_pick_tree::words(lanes));
        mcx_pick_tree tree;
        tree.init(lanes, tree_mem.data());
        mcx_tls_pick_tree = &tree;
        std::vector<mcx_i64> tile_mem((size_t)mcx_lane_tile::words(lanes));
        mcx_lane_tile tile;
        tile.init(lanes, tile_mem.data(), lane_stats != nullptr);
        mcx_tls_lane_tile = sched == MCX_SCHED_LANES ? &tile : nullptr;
        mcx_scratch s;
        s.base = buf.data();
        s.stride = 1;
        for (;;) {
            // Guided chunks: a quarter of each worker's share of what is left, at most `chunk`,
            // so near the end a worker takes one trial at a time and a long trial (in flag_spin
            // 0.11% of the trials carry half the attempts) holds up only the worker running it.
            mcx_i64 take = (n - next.load(std::memory_order_relaxed)) / (4 * (mcx_i64)nthreads);
            take = take < 1 ? 1 : (take > chunk ? chunk : take);
            const mcx_i64 a = next.fetch_add(take);
            if (a >= n) break;
            const mcx_i64 b = a + take < n ? a + take : n;
            for (mcx_i64 j = a; j < b; ++j) mcx_trial(P, seed, t0 + j, out + j * width, s);
        }
        mcx_tls_draw_cache = nullptr;
        mcx_tls_pick_tree = nullptr;
        mcx_tls_lane_tile = nullptr;
        if (lane_stats) {
            std::lock_guard<std::mutex> g(stats_lock);
            lane_stats[0] += tile.steps;
            lane_stats[1] += tile.events;
            lane_stats[2] += tile.slots;
            lane_stats[3] += tile.queues;
        }
    };
    if (nthreads == 1) {
        worker();
    } else {
        std::vector<std::thread> pool;
        pool.reserve((size_t)nthreads);
        for (int t = 0; t < nthreads; ++t) pool.emplace_back(worker);
        for (auto& th : pool) th.join();
    }
    return 0;
}
#endif
