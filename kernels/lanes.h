// lanes.h: a trial's tasks across lanes: the host lane scheduler's memory and counters, and the
// device tile's collectives (a warp's shuffles and votes; coroutines standing in on the host).
//
// The lane scheduler (page.h, mcx_sim_t::advance_lanes) runs a page's tasks as the lanes of one
// tile: each tile step, every task with an event before the horizon runs exactly one event, the
// tasks grouped by event (a queue per event kind, in a fixed order), so that one event method
// runs over a whole queue: the same code and the same draw purpose for every lane of it. Tasks
// of a strategy without global order are independent between the migrator's events, so the
// order in which their events run cannot change a result (docs/kernels.md, "Schedulers"); the
// walk (every task's chain to the horizon in turn) is the cross-check, and tests/test_parity.py
// runs both against the numpy engine.
//
// Lane counters (asked for at run time: mcx_simulate's lane_stats, NativeEngine(lane_stats=True),
// `mcexplore bench --lanes`; otherwise nothing is counted) count how well the steps would fill
// the lanes of a device tile of MCX_LANE_W lanes (a warp), each queue run in chunks of
// MCX_LANE_W lanes: useful lane-slots (events run) against all lane-slots (the chunks' lanes).
//
// The tile (page.h, mcx_sim_t<SPEC, TILT, W> with W > 1): W lanes share one trial, each owning
// the tasks c with c % W == its lane, every lane running the migrator identically. The lanes meet
// only in the collectives below (any, sum, max over the tile): on the device a warp's shuffles and
// votes within the tile (W = 32, or 4, 8, 16 lanes of a warp for a small page: the kernel
// simulate_records_tile<W> of mcexplore.cu); on the host W coroutines
// taking turns (mcx_tile_emu, mcx_simulate_tile of mcexplore.cu), which run exactly the device's
// code path lane by lane, so tests/test_lanes.py holds the tile to the numpy engine's bits
// without a GPU.
#pragma once
#include "portability.h"

#if defined(MCX_HOST)
#include <ucontext.h>

#include <vector>

// W coroutines on one host thread standing in for the lanes of one tile. The lanes run in turn:
// a lane that reaches a collective parks and the next one runs; when the last arrives, lane 0
// resumes. So every lane passes each collective together, as a warp's lanes do, without threads
// (a barrier of threads on a 2-core machine cost milliseconds per collective).
struct mcx_tile_emu {
    int w = 1;
    int cur = 0;      // the lane running
    int arrived = 0;  // lanes parked at the collective being gathered
    ucontext_t main_ctx;
    ucontext_t ctx[MCX_TILE_MAX_LANES];
    std::vector<char> stacks;
    mcx_i64 val[MCX_TILE_MAX_LANES], val2[MCX_TILE_MAX_LANES], val3[MCX_TILE_MAX_LANES];
    // When counting: the tile's steps, events, lane-slots and (step, event kind) rounds
    // (mcexplore.constants.LaneStat; page.h, advance_tile).
    bool counting = false;
    mcx_i64 counts[MCX_NLANE_STATS] = {0, 0, 0, 0};
    void sync() {
        const int me = cur;
        if (++arrived < w) {
            cur = me + 1;
        } else {
            arrived = 0;
            cur = 0;
        }
        if (cur != me) swapcontext(&ctx[me], &ctx[cur]);
    }
    // The tile's fold of every lane's v: op 0 sum, 1 max, 2 or.
    mcx_i64 reduce(int lane, mcx_i64 v, int op) {
        val[lane] = v;
        sync();
        mcx_i64 r = val[0];
        for (int j = 1; j < w; ++j) r = op == 0 ? r + val[j] : op == 1 ? (val[j] > r ? val[j] : r) : (r | val[j]);
        sync();
        return r;
    }
    // Lane src's v, to every lane.
    mcx_i64 bcast(int lane, mcx_i64 v, int src) {
        val[lane] = v;
        sync();
        const mcx_i64 r = val[src];
        sync();
        return r;
    }
    // The smallest (t, s) of every lane's (t, s, c), and its c.
    mcx_i64 argmin(int lane, mcx_i64 t, mcx_i64 s, mcx_i64 c) {
        val[lane] = t;
        val2[lane] = s;
        val3[lane] = c;
        sync();
        int b = 0;
        for (int j = 1; j < w; ++j)
            if (val[j] < val[b] || (val[j] == val[b] && val2[j] < val2[b])) b = j;
        const mcx_i64 r = val3[b];
        sync();
        return r;
    }
    // Run lane(l) for l < w_ as the lanes (each must pass the same collectives) to their end.
    template <class F>
    void run(int w_, F& lane) {
        struct start {
            static void go(unsigned lo, unsigned hi) {
                const unsigned long long p = ((unsigned long long)hi << 32) | lo;
                (*reinterpret_cast<F*>(p))(-1);
            }
        };
        w = w_;
        const size_t stack = 1 << 18;
        stacks.assign(stack * (size_t)w, 0);
        for (int l = 0; l < w; ++l) {
            getcontext(&ctx[l]);
            ctx[l].uc_stack.ss_sp = stacks.data() + stack * (size_t)l;
            ctx[l].uc_stack.ss_size = stack;
            ctx[l].uc_link = &main_ctx;
            const unsigned long long p = (unsigned long long)&lane;
            makecontext(&ctx[l], (void (*)())start::go, 2, (unsigned)(p & 0xFFFFFFFFu), (unsigned)(p >> 32));
        }
        // A lane that returns comes back here; the others are parked at their last collective.
        for (int l = 0; l < w; ++l) {
            cur = l;
            swapcontext(&main_ctx, &ctx[l]);
        }
    }
};
#endif

// A lane of a tile: its number and, on the host, the coroutines standing in for the others.
struct mcx_lane_ctx {
    int lane;
#if defined(MCX_HOST)
    mcx_tile_emu* emu;
#endif
};

#if defined(MCX_CUDA)
// The lanes of this lane's tile within its warp: W consecutive lanes, W a power of two up to 32,
// or the whole warp for a tile of several warps. Tiles narrower than a warp run their own trials
// and so diverge from each other: every collective names its own tile's lanes only, and a shuffle
// of width W stays inside them.
template <int W>
static __device__ __forceinline__ unsigned mcx_tile_mask() {
    static_assert(W >= 2 && W <= MCX_TILE_MAX_LANES && (W & (W - 1)) == 0,
                  "a device tile is a power-of-two part of a warp, a warp, or a power of two of warps");
    if constexpr (W >= 32) {
        return 0xffffffffu;
    } else {
        return ((1u << W) - 1u) << ((threadIdx.x & 31u) & ~(unsigned)(W - 1));
    }
}
// A tile of several warps is a block of its own (W threads; cupy_engine launches it so). Its
// collectives fold within each warp, then across the warps through shared memory between two
// __syncthreads; the first also makes every write before it, task words of other lanes included,
// seen by the whole tile.
template <int OP>
static __device__ __forceinline__ mcx_i64 mcx_fold_op(mcx_i64 a, mcx_i64 b) {
    return OP == 0 ? a + b : OP == 1 ? (b > a ? b : a) : (a | b);
}
#endif

// The tile's fold of every lane's v (OP 0 sum, 1 max, 2 or): on the device a butterfly of warp
// shuffles within the tile, or within each warp of a wider tile and then across its warps through
// shared memory (a vote for or); on the host the coroutines' turn (mcx_tile_emu::reduce).
template <int W, int OP>
MCX_FN mcx_i64 mcx_lanes_fold(const mcx_lane_ctx& lc, mcx_i64 v) {
#if defined(MCX_CUDA)
    (void)lc;
    const unsigned m = mcx_tile_mask<W>();
    constexpr int WW = W > 32 ? 32 : W;  // the butterfly's width: the tile, or each of its warps
    if constexpr (OP == 2) {
        v = __any_sync(m, v != 0 ? 1 : 0) != 0;
    } else {
        for (int o = WW / 2; o; o >>= 1) v = mcx_fold_op<OP>(v, __shfl_xor_sync(m, v, o, WW));
    }
    if constexpr (W > 32) {
        __shared__ mcx_i64 part[W / 32];
        __syncthreads();
        if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
        __syncthreads();
        v = part[0];
        for (int j = 1; j < W / 32; ++j) v = mcx_fold_op<OP>(v, part[j]);
    }
    return v;
#else
    return lc.emu->reduce(lc.lane, v, OP);
#endif
}
// Lane src's v, to every lane of the tile. On the device the tile's memory writes before it are
// seen by every lane of it after it (__syncwarp, or __syncthreads for several warps), so a lane
// that ran an event for all of them can hand over its state with it.
template <int W>
MCX_FN mcx_i64 mcx_lanes_bcast(const mcx_lane_ctx& lc, mcx_i64 v, int src) {
#if defined(MCX_CUDA)
    (void)lc;
    if constexpr (W > 32) {
        __shared__ mcx_i64 b;
        __syncthreads();
        if ((int)threadIdx.x == src) b = v;
        __syncthreads();
        return b;
    } else {
        const unsigned m = mcx_tile_mask<W>();
        __syncwarp(m);
        return __shfl_sync(m, v, src, W);
    }
#else
    return lc.emu->bcast(lc.lane, v, src);
#endif
}
// The c of the smallest (t, s) over the lanes' (t, s, c) (the s are distinct where the t tie,
// so the winner is one lane's, whatever the order of the fold).
template <int W>
MCX_FN mcx_i64 mcx_lanes_argmin(const mcx_lane_ctx& lc, mcx_i64 t, mcx_i64 s, mcx_i64 c) {
#if defined(MCX_CUDA)
    (void)lc;
    const unsigned m = mcx_tile_mask<W>();
    constexpr int WW = W > 32 ? 32 : W;  // the butterfly's width: the tile, or each of its warps
    for (int o = WW / 2; o; o >>= 1) {
        const mcx_i64 ut = __shfl_xor_sync(m, t, o, WW);
        const mcx_i64 us = __shfl_xor_sync(m, s, o, WW);
        const mcx_i64 uc = __shfl_xor_sync(m, c, o, WW);
        if (ut < t || (ut == t && us < s)) {
            t = ut;
            s = us;
            c = uc;
        }
    }
    if constexpr (W > 32) {
        __shared__ mcx_i64 pt[W / 32], ps[W / 32], pc[W / 32];
        __syncthreads();
        if ((threadIdx.x & 31) == 0) {
            const int w = threadIdx.x >> 5;
            pt[w] = t;
            ps[w] = s;
            pc[w] = c;
        }
        __syncthreads();
        int b = 0;
        for (int j = 1; j < W / 32; ++j)
            if (pt[j] < pt[b] || (pt[j] == pt[b] && ps[j] < ps[b])) b = j;
        c = pc[b];
    }
    return c;
#else
    return lc.emu->argmin(lc.lane, t, s, c);
#endif
}
template <int W>
MCX_FN bool mcx_lanes_any(const mcx_lane_ctx& lc, bool v) {
    return mcx_lanes_fold<W, 2>(lc, v ? 1 : 0) != 0;
}
template <int W>
MCX_FN mcx_i64 mcx_lanes_sum(const mcx_lane_ctx& lc, mcx_i64 v) {
    return mcx_lanes_fold<W, 0>(lc, v);
}
template <int W>
MCX_FN mcx_i64 mcx_lanes_max(const mcx_lane_ctx& lc, mcx_i64 v) {
    return mcx_lanes_fold<W, 1>(lc, v);
}

#if defined(MCX_HOST)

struct mcx_lane_tile {
    int cap;    // most tasks
    int* live;  // [cap] the tasks with an event to run in the next step
    int* q;     // [cap] this step's tasks, grouped by event kind
    bool counting;
    mcx_i64 steps, events, slots, queues;
    // int64 words of memory for up to `tasks` tasks.
    static mcx_i64 words(mcx_i64 tasks) { return tasks + 1; }
    void init(mcx_i64 tasks, mcx_i64* mem, bool count) {
        cap = (int)tasks;
        live = (int*)mem;
        q = live + tasks;
        counting = count;
        steps = events = slots = queues = 0;
    }
    // One step's queue of n tasks.
    void count_queue(int n) {
        if (!counting) return;
        queues += 1;
        events += n;
        slots += (mcx_i64)(n + MCX_LANE_W - 1) / MCX_LANE_W * MCX_LANE_W;
    }
    void count_step() {
        if (counting) steps += 1;
    }
};

// The calling worker thread's tile (null: the walk runs every task's chain in turn).
static thread_local mcx_lane_tile* mcx_tls_lane_tile = nullptr;

#endif
