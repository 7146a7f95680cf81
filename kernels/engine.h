// engine.h: one trial of the model (MODEL.md; docs/model.md), the entry every kernel calls.
//
// The simulation is split over (docs/kernels.md, "Sources"):
//   page.h        one page: task state, draws, the common events, the migrator, advancing tasks,
//                 save/load, and the page-level trial mcx_trial_page<SPEC, TILT>
//   strategies.h  one handler per strategy, mcx_strategy<S>, and the dispatch to it
//   block.h       block level: mcx_block and mcx_trial_block
// and mcx_trial below picks the level and, on the host, the page-level trial compiled for the
// strategy (or, for a tilted run, the generic one that counts).
#pragma once
#include "page.h"
#include "strategies.h"
#include "block.h"

// One trial: writes MCX_NFIELDS int64 values to rec, then a tilted run's P[MCX_H_IS_NSLOT]
// statistics (params.TiltLayout) (all -1 if the simulation made no progress, where the numpy
// engine raises; the Python side raises too).
MCX_FN void mcx_trial(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                      mcx_i64* MCX_RESTRICT rec, mcx_scratch scratch) {
    if (P[MCX_H_LEVEL]) {
        mcx_trial_block(P, seed, trial, rec, scratch);
        // Block level counts nothing (the Python side refuses a tilt there): never leave the
        // statistics words undefined all the same.
        for (mcx_i64 s = 0; s < P[MCX_H_IS_NSLOT]; ++s) rec[MCX_NFIELDS + s] = 0;
        return;
    }
#if defined(MCX_HOST)
    // One page-level trial per strategy, each compiled with its handler known (SPEC = the code)
    // and counting nothing (TILT false, mcx_sim_t); a tilted run takes the generic trial.
    if (!P[MCX_H_IS_NSLOT] && !mcx_tls_lane_tile) {
        switch ((int)P[MCX_H_STRATEGY]) {
#define MCX_TRIAL_CASE(S)                                        \
    case S:                                                      \
        mcx_trial_page<S, false>(P, seed, trial, rec, scratch); \
        return;
            MCX_FOR_EACH_STRATEGY(MCX_TRIAL_CASE)
#undef MCX_TRIAL_CASE
            default:
                break;
        }
    }
#elif defined(MCX_DEVICE_SPEC)
    // A device module built for one strategy (-DMCX_DEVICE_SPEC=<code> in $MCEXPLORE_NVRTC_OPTIONS;
    // an experiment, docs/kernels.md) runs that strategy's specialised trial, any other the generic.
    if ((int)P[MCX_H_STRATEGY] == MCX_DEVICE_SPEC) {
        mcx_trial_page<MCX_DEVICE_SPEC, true>(P, seed, trial, rec, scratch);
        return;
    }
#endif
    // The generic trial: the handler picked at run time, counting a tilted run's statistics (the
    // device; a tilted run or an unknown code on the host).
    mcx_trial_page<-1, true>(P, seed, trial, rec, scratch);
}
