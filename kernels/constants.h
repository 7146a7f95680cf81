// constants.h: GENERATED from mcexplore/constants.py (and mcexplore/strategies.py) by
//     python -m mcexplore.constants --write
// Do not edit: tests/test_constants.py fails when this file differs from the generated text.
#pragma once

#define MCX_PARAMS_MAGIC 0x314D524150584D43LL  // b"CMXPARM1" little-endian
#define MCX_PARAMS_VERSION 3
#define MCX_ABI_VERSION 6  // mcx_abi_version() returns it
#define MCX_NLANE_STATS 4  // lane counters (mcexplore.constants.LaneStat)
#define MCX_LANE_W 32  // lanes of the device tile the lane counters measure against
#define MCX_TILE_MAX_LANES 128  // the widest tile (TILE_LANES)
#define MCX_DRAW_COUNT_DISTS 64  // distributions the draw counters tell apart
#define MCX_DRAW_COUNTERS 68  // mcx_draw_counts words
#define MCX_HDR_WORDS 32
#define MCX_CLASS_WORDS 8
#define MCX_DIST_WORDS 8
#define MCX_LEAF_WORDS 4
#define MCX_FP_BITS 16
#define MCX_EXP_TABLE_BITS 13
#define MCX_NAMED_DISTS 16
#define MCX_PHILOX_M0 0xD2511F53u
#define MCX_PHILOX_M1 0xCD9E8D57u
#define MCX_PHILOX_W0 0x9E3779B9u
#define MCX_PHILOX_W1 0xBB67AE85u
#define MCX_PAGE_BITS 24  // counter word 1: purpose << PAGE_BITS | page
#define MCX_SUB_BITS 20  // counter word 3: i << SUB_BITS | sub
#define MCX_WINDOW_I_BITS 12  // a transient window index: 32 bits in k, these in i
#define MCX_SUB_SHIFT 10
#define MCX_BLOCK_PAGE 0xFFFFFF
#define MCX_NFIELDS 15
#define MCX_NOUT 6
#define MCX_NSUM 6
#define MCX_NHIST 3
#define MCX_NEX 5
#define MCX_EXAMPLES 16
#define MCX_HIST_SUB 8
#define MCX_HIST_BINS 488
#define MCX_REDUCE_BLOCK 256
#define MCX_TW 13  // task words per task
#define MCX_SIMW 17
#define MCX_IS_MAX_SLOTS 32  // importance-sampling statistics per trial, at most
#define MCX_INF ((mcx_i64)2305843009213693951LL)  // int64 max // 4
#define MCX_MAX_EVENTS 10000000LL

// Header words of the parameter block (mcexplore.constants.Header).
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
#define MCX_H_TRANSIENT_MODEL 10
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
#define MCX_H_TRANSIENT_W 21
#define MCX_H_TRANSIENT_HMAX 22
#define MCX_H_TRANSIENT_NTHR 23
#define MCX_H_TRANSIENT_THR_OFF 24
#define MCX_H_IS_NSLOT 25
#define MCX_H_IS_MAP_OFF 26
#define MCX_H_IS_TRANSIENT_SLOT 27

// Page class record words (mcexplore.constants.ClassWord).
#define MCX_C_COUNT 0
#define MCX_C_FILE 1
#define MCX_C_MAPCOUNT 2
#define MCX_C_ACTIVE 3
#define MCX_C_ACCESS_DIST 4
#define MCX_C_FIRST_PAGE 5
#define MCX_C_SIM_OFF 6

// Distribution descriptor words (mcexplore.constants.DistWord).
#define MCX_D_NLEAF 0
#define MCX_D_GUIDE_BITS 1
#define MCX_D_LEAF_OFF 2
#define MCX_D_GUIDE_OFF 3
#define MCX_D_KIND 4
#define MCX_D_A 5
#define MCX_D_B 6
#define MCX_D_CONST 7

// Leaf record words (mcexplore.constants.LeafWord).
#define MCX_L_CUM 0
#define MCX_L_KIND 1
#define MCX_L_A 2
#define MCX_L_B 3

// Leaf kinds (mcexplore.constants.Leaf).
#define MCX_LEAF_SEG 0
#define MCX_LEAF_EXP 1

// Transient reference models (mcexplore.constants.Transient).
#define MCX_TRANSIENT_NONE 0
#define MCX_TRANSIENT_PROCESS 1

// Named distributions (mcexplore.constants.Dist).
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

// Draw purposes (mcexplore.constants.Purpose).
#define MCX_P_UNMAP 1
#define MCX_P_REMAP 2
#define MCX_P_PRE_FREEZE 3
#define MCX_P_FREEZE_HOLD 4
#define MCX_P_COPY 5
#define MCX_P_FREE_DELAY 6
#define MCX_P_GAP 7
#define MCX_P_TRANSIENT 8
#define MCX_P_ACCESS 9
#define MCX_P_FAULT_ENTRY 10
#define MCX_P_PTL_HOLD 11
#define MCX_P_DROP_HOLD 12
#define MCX_P_NOREF_GAP 13
#define MCX_P_LOCK_HOLD 14
#define MCX_P_WAKE 15
#define MCX_P_MIG_WAKE 16

// Per-trial record fields (mcexplore.constants.Field).
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

// Task events (mcexplore.constants.Ev).
#define MCX_EV_NONE 0
#define MCX_EV_ACCESS 1
#define MCX_EV_FAULT 2
#define MCX_EV_PTL 3
#define MCX_EV_DROPB 4
#define MCX_EV_WAKE 5
#define MCX_EV_WAKE_RES 6
#define MCX_EV_SPIN_RES 7
#define MCX_EV_PTE_RES 8
#define MCX_EV_RET 9
#define MCX_EV_TOUCH 10
#define MCX_EV_UNLOCK 11

// Per-task words in scratch (mcexplore.constants.TaskWord).
#define MCX_TW_EV 0
#define MCX_TW_T 1
#define MCX_TW_WAIT_START 2
#define MCX_TW_KF 3
#define MCX_TW_JF 4
#define MCX_TW_W 5
#define MCX_TW_KW 6
#define MCX_TW_P 7
#define MCX_TW_E 8
#define MCX_TW_U 9
#define MCX_TW_R 10
#define MCX_TW_STAMP 11
#define MCX_TW_QUEUE 12

// Draw batching implementations (mcexplore.constants.Simd).
#define MCX_SIMD_OFF 0
#define MCX_SIMD_SCALAR 1
#define MCX_SIMD_SSE2 2
#define MCX_SIMD_AVX2 3
#define MCX_SIMD_AVX512 4

// Task schedulers of the native engine (mcexplore.constants.Sched).
#define MCX_SCHED_WALK 0
#define MCX_SCHED_LANES 1

// Draw counters of a -DMCX_COUNT_DRAWS build (mcexplore.constants.DrawCount).
#define MCX_CNT_SCALAR 0
#define MCX_CNT_LANES 1
#define MCX_CNT_ROWS 2
#define MCX_CNT_EVENTS 3
#define MCX_CNT_SAMPLES 4
#define MCX_NEV 12  // task events: codes 0 .. MCX_NEV - 1
// X(code) for every task event that runs (not NONE): the event dispatch and the lane scheduler (page.h).
#define MCX_FOR_EACH_TASK_EVENT(X) X(MCX_EV_ACCESS) X(MCX_EV_FAULT) X(MCX_EV_PTL) X(MCX_EV_DROPB) X(MCX_EV_WAKE) X(MCX_EV_WAKE_RES) X(MCX_EV_SPIN_RES) X(MCX_EV_PTE_RES) X(MCX_EV_RET) X(MCX_EV_TOUCH) X(MCX_EV_UNLOCK)
// X(W) for every device tile width (TILE_LANES; mcexplore.cu's instances under MCX_TILE_INSTANCES).
#define MCX_FOR_EACH_TILE_LANES(X) X(4) X(8) X(16) X(32) X(64) X(128)

// Strategies (mcexplore.strategies: the registry's codes).
#define MCX_S_REF 0
#define MCX_S_DROP 1
#define MCX_S_PTL_PIN 2
#define MCX_S_LOCK_NOREF 3
#define MCX_S_FLAG_SPIN 4
#define MCX_S_PTE_WAIT 5
#define MCX_NSTRATEGIES 6
// X(code) for every strategy: the host's dispatch (engine.h), the run-time switch (strategies.h).
#define MCX_FOR_EACH_STRATEGY(X) X(MCX_S_REF) X(MCX_S_DROP) X(MCX_S_PTL_PIN) X(MCX_S_LOCK_NOREF) X(MCX_S_FLAG_SPIN) X(MCX_S_PTE_WAIT)
// Strategies whose tasks need global event order (lock_noref's page lock).
#define MCX_GLOBAL_ORDER(S) ((S) == MCX_S_LOCK_NOREF)
// Strategies whose migrator may have to take the page lock from a waiter (trylock passes).
#define MCX_TAKES_PAGE_LOCK(S) ((S) == MCX_S_LOCK_NOREF)

// Aggregates: the record field of each counted outcome, summed field, histogram and example
// outcome, in mcexplore.constants order (mcexplore.cu reduces by these tables).
#define MCX_OUTCOME_FIELDS {MCX_R_MIGRATED, MCX_R_CALL_FAILED, MCX_R_LIVELOCK, MCX_R_CENSORED, MCX_R_UAF, MCX_R_HANG}
#define MCX_SUM_FIELDS {MCX_R_ATTEMPTS, MCX_R_CALLS, MCX_R_FAULTS, MCX_R_TOTAL_WAIT, MCX_R_SPIN, MCX_R_PAGES_LEFT}
#define MCX_HIST_FIELDS {MCX_R_ATTEMPTS, MCX_R_T_MIGRATED, MCX_R_MAX_WAIT}
#define MCX_EXAMPLE_FIELDS {MCX_R_CALL_FAILED, MCX_R_LIVELOCK, MCX_R_CENSORED, MCX_R_UAF, MCX_R_HANG}
