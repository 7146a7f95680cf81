// params.h: the flat int64 parameter block every kernel reads (packed by mcexplore/engines/pack.py).
//
// One strategy's compiled parameters (mcexplore.params.Compiled) travel to the device as a single
// int64 array P. Layout (all offsets are word indices into P; pack.py documents the same):
//
//   P[0 .. MCX_HDR_WORDS)            header of scalars (MCX_H_* below)
//   P[class_off ..)                  nclasses records of MCX_CLASS_WORDS words (MCX_C_*)
//   P[dist_off ..)                   ndists descriptors of MCX_DIST_WORDS words (MCX_D_*):
//                                    nleaf, guide bits G, leaf offset, guide offset, leaf 0's
//                                    kind, a, b inline, and the value of a constant (-1: not one)
//   P[tables_off ..)                 per distribution: nleaf leaf records of MCX_LEAF_WORDS words
//                                    (MCX_L_*: cum (uint64), kind, a, b; an EXP leaf's b is the
//                                    absolute offset of its table in P), the guide table (2^G leaf
//                                    indices, when G > 0) and the EXP tables (sample.h)
//
// Distributions 0..15 are mcexplore.params.DIST_NAMES in order; a page class's access
// distribution (exp with the class's mean) follows at the index its record names (or -1: the
// class's tasks never touch the page).
#pragma once
#include "portability.h"

#define MCX_PARAMS_MAGIC 0x314D524150584D43LL  // "CMXPARM1" little-endian
#define MCX_PARAMS_VERSION 2

// Header words.
#define MCX_H_MAGIC 0
#define MCX_H_VERSION 1
#define MCX_H_LEN 2
#define MCX_H_STRATEGY 3
#define MCX_H_RECHECK 4
#define MCX_H_FLAG_FROM_UNMAP_END 5
#define MCX_H_PASSES 6
#define MCX_H_TRYLOCK_PASSES 7
#define MCX_H_TIMEOUT_NS 8
#define MCX_H_MAX_ATTEMPTS 9
#define MCX_H_TRANSIENT_MODEL 10  // transient references: 0 none, 1 the Poisson process
#define MCX_H_LEVEL 11
#define MCX_H_BATCH_PAGES 12
#define MCX_H_NCLASSES 13
#define MCX_H_CLASS_OFF 14
#define MCX_H_NDISTS 15
#define MCX_H_DIST_OFF 16
#define MCX_H_TABLES_OFF 17
#define MCX_H_NPAGES 18
#define MCX_H_MAX_MAPCOUNT 19
#define MCX_H_SCRATCH_WORDS 20
// Transient references (mcexplore/transient.py; kernels/transient.h).
#define MCX_H_TRANSIENT_W 21        // window width, ns
#define MCX_H_TRANSIENT_HMAX 22     // the longest hold, ns
#define MCX_H_TRANSIENT_NTHR 23     // Poisson count thresholds (uint64 as int64) ...
#define MCX_H_TRANSIENT_THR_OFF 24  // ... at this offset of P
#define MCX_HDR_WORDS 32

// Page class records.
#define MCX_C_COUNT 0
#define MCX_C_FILE 1
#define MCX_C_MAPCOUNT 2
#define MCX_C_ACTIVE 3
#define MCX_C_ACCESS_DIST 4  // distribution index, -1 if the tasks never touch the page
#define MCX_C_FIRST_PAGE 5   // index of the class's first page in the block
#define MCX_C_SIM_OFF 6      // block level: scratch offset of the class's page simulations
#define MCX_CLASS_WORDS 8

// Distribution descriptors (offsets are absolute word indices into P).
#define MCX_D_NLEAF 0
#define MCX_D_GUIDE_BITS 1
#define MCX_D_LEAF_OFF 2
#define MCX_D_GUIDE_OFF 3
#define MCX_D_KIND 4   // leaf 0, inline (the one-leaf path reads nothing else)
#define MCX_D_A 5
#define MCX_D_B 6
#define MCX_D_CONST 7  // the value (ns) of a one-leaf constant, -1 for any other distribution
#define MCX_DIST_WORDS 8
// Leaf records.
#define MCX_L_CUM 0
#define MCX_L_KIND 1
#define MCX_L_A 2
#define MCX_L_B 3
#define MCX_LEAF_WORDS 4

// Strategies (mcexplore.params.STRATEGIES order).
#define MCX_S_REF 0
#define MCX_S_DROP 1
#define MCX_S_PTL_PIN 2
#define MCX_S_LOCK_NOREF 3
#define MCX_S_FLAG_SPIN 4
#define MCX_S_PTE_WAIT 5

// Named distributions (mcexplore.params.DIST_NAMES order).
#define MCX_DIST_UNMAP_PTE 0
#define MCX_DIST_PRE_FREEZE 1
#define MCX_DIST_FREEZE_HOLD 2
#define MCX_DIST_COPY 3
#define MCX_DIST_REMAP_PTE 4
#define MCX_DIST_FAULT_ENTRY 5
#define MCX_DIST_PTL_HOLD 6
#define MCX_DIST_DROP_HOLD 7
#define MCX_DIST_NOREF_GAP 8
#define MCX_DIST_LOCK_HOLD 9
#define MCX_DIST_WAKE_LATENCY 10
#define MCX_DIST_FREE_DELAY 11
#define MCX_DIST_RETRY_GAP 12
#define MCX_DIST_OUTER_GAP 13
#define MCX_DIST_ACCESS 14
#define MCX_DIST_TRANSIENT_HOLD 15
#define MCX_NAMED_DISTS 16

// Per-trial record fields (mcexplore.results.RECORD_FIELDS order).
#define MCX_R_MIGRATED 0
#define MCX_R_ATTEMPTS 1
#define MCX_R_CALLS 2
#define MCX_R_T_MIGRATED 3
#define MCX_R_CALL_FAILED 4
#define MCX_R_LIVELOCK 5
#define MCX_R_CENSORED 6
#define MCX_R_UAF 7
#define MCX_R_HANG 8
#define MCX_R_FAULTS 9
#define MCX_R_MAX_WAIT 10
#define MCX_R_TOTAL_WAIT 11
#define MCX_R_SPIN 12
#define MCX_R_END_TIME 13
#define MCX_R_PAGES_LEFT 14
#define MCX_NFIELDS 15

MCX_FN mcx_i64 mcx_h(const mcx_i64* MCX_RESTRICT P, int w) { return P[w]; }
MCX_FN const mcx_i64* mcx_class(const mcx_i64* MCX_RESTRICT P, mcx_i64 c) {
    return P + P[MCX_H_CLASS_OFF] + c * MCX_CLASS_WORDS;
}
MCX_FN const mcx_i64* mcx_dist(const mcx_i64* MCX_RESTRICT P, mcx_i64 d) {
    return P + P[MCX_H_DIST_OFF] + d * MCX_DIST_WORDS;
}
// The value of a constant distribution d (only meaningful when mcx_dist_is_const(P, d)).
MCX_FN mcx_i64 mcx_dist_const(const mcx_i64* MCX_RESTRICT P, mcx_i64 d) { return mcx_dist(P, d)[MCX_D_CONST]; }
// Is distribution d a single constant (lets the engine skip a Philox call where the numpy engine
// would get the same value anyway: sampling a constant ignores the words).
MCX_FN bool mcx_dist_is_const(const mcx_i64* MCX_RESTRICT P, mcx_i64 d) { return mcx_dist(P, d)[MCX_D_CONST] >= 0; }
