// lanes.h: the lane scheduler's working memory on the host (native backend only).
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
// MCX_LANE_STATS (a build option: NativeEngine(lane_stats=True), `mcexplore bench --lanes`)
// counts how well the steps would fill the lanes of a device tile of MCX_LANE_W lanes (a warp),
// each queue run in chunks of MCX_LANE_W lanes: useful lane-slots (events run) against all
// lane-slots (the chunks' lanes) over a run.
#pragma once
#include "portability.h"

#if defined(MCX_HOST)

struct mcx_lane_tile {
    int cap;    // most tasks
    int* live;  // [cap] the tasks with an event to run in the next step
    int* q;     // [cap] this step's tasks, grouped by event kind
#if defined(MCX_LANE_STATS)
    mcx_i64 steps, events, slots, queues;
#endif
    // int64 words of memory for up to `tasks` tasks.
    static mcx_i64 words(mcx_i64 tasks) { return tasks + 1; }
    void init(mcx_i64 tasks, mcx_i64* mem) {
        cap = (int)tasks;
        live = (int*)mem;
        q = live + tasks;
#if defined(MCX_LANE_STATS)
        steps = events = slots = queues = 0;
#endif
    }
    // One step's queue of n tasks (MCX_LANE_STATS only).
    void count_queue(int n) {
#if defined(MCX_LANE_STATS)
        queues += 1;
        events += n;
        slots += (mcx_i64)(n + MCX_LANE_W - 1) / MCX_LANE_W * MCX_LANE_W;
#else
        (void)n;
#endif
    }
    void count_step() {
#if defined(MCX_LANE_STATS)
        steps += 1;
#endif
    }
};

// The calling worker thread's tile (null: the walk runs every task's chain in turn).
static thread_local mcx_lane_tile* mcx_tls_lane_tile = nullptr;

#endif
