// engine.h: one trial of the model (MODEL.md), ported from mcexplore/engines/numpy_engine.py.
// PLACEHOLDER until the reference engine is ready: writes an all-zero record.
#pragma once
#include "portability.h"
#include "philox.h"
#include "params.h"
#include "sample.h"

// Per-trial scratch memory: word j of this trial's scratch is base[j * stride] (stride = number
// of trials in the launch on the GPU, so that neighbouring threads touch neighbouring words; 1 on
// the host, where each worker thread owns a contiguous buffer).
struct mcx_scratch {
    mcx_i64* base;
    mcx_i64 stride;
};

MCX_FN void mcx_trial(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                      mcx_i64* MCX_RESTRICT rec, mcx_scratch scratch) {
    (void)P; (void)seed; (void)trial; (void)scratch;
    for (int f = 0; f < MCX_NFIELDS; ++f) rec[f] = 0;
}
