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
// Distributions 0..MCX_NAMED_DISTS-1 are mcexplore.constants.Dist in order; a page class's access
// distribution (exp with the class's mean) follows at the index its record names (or -1: the
// class's tasks never touch the page).
#pragma once
#include "portability.h"
#include "constants.h"


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
