// drawcache.h: the host's batched draws (native backend only; the GPU never includes this code).
//
// Why. On the host a trial is one thread walking each task's event chain, and every draw on that
// chain is a Philox4x32-10 call whose result the next branch needs at once: ten dependent
// multiply rounds on the critical path. On thread-2018 that was about half of the native engine's
// time (measured by cutting Philox to one round). But the draws of a task's chain within one
// attempt have keys known in advance: (purpose, page, k, i = task + 1, sub), and tasks that faulted in the
// same attempt ask for the same (purpose, k, sub): their first access, fault, PTL hold, the n-th
// wake of a waiter, and so on. So the first time a task asks for (purpose, k, sub) on its page,
// that draw is computed for every task of the page at once, in SIMD lanes (AVX-512, AVX2 or
// SSE2 intrinsics, the best the CPU has unless a run asks for another; a plain loop elsewhere), and the other tasks read
// theirs from the row.
//
// Why results cannot change. A row holds exactly the words mcx_draw returns for the same key (same
// counter, same key, the same ten rounds); a row is tagged with every part of the key it does not
// index (trial, page, k, sub; the purpose picks the row), and any other draw (the migrator's, a
// lane beyond the page's tasks) takes the scalar path. tests/test_kernels_infra.py compares
// every lane implementation with scalar Philox, and tests/test_parity.py runs the native engine
// against the numpy engine bit for bit with each implementation and with the rows off.
//
// When it pays. A row costs its lanes whether or not the tasks use them; in `ref` under livelock
// only about one task in ten draws in a given attempt. So each purpose keeps count of the requests
// and of the lanes its rows would cost, and batches only while requests x (the lanes one scalar
// draw costs) keep up with the lanes. The first MCX_DC_WARMUP lanes are batched, to measure; a
// purpose that fails the test sends its next MCX_DC_SKIP draws straight to the scalar path (no
// bookkeeping at all), then measures afresh.
#pragma once
#include "portability.h"
#include "philox.h"

#if defined(MCX_HOST)

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(MCX_NO_SIMD)
#define MCX_DC_X86 1
#include <immintrin.h>
#endif

// Purposes MCX_P_ACCESS .. MCX_P_WAKE (the per-task draws) have a row each.
#define MCX_DC_FIRST MCX_P_ACCESS
#define MCX_DC_NSLOT (MCX_P_WAKE - MCX_P_ACCESS + 1)
#define MCX_DC_PAD 16          // rows are padded to a multiple of every implementation's width
#ifndef MCX_DC_WARMUP
#define MCX_DC_WARMUP 4096     // lanes of each purpose batched before the counts decide
#endif
#ifndef MCX_DC_SKIP
#define MCX_DC_SKIP 65536      // draws a purpose found not worth batching goes scalar, unmeasured
#endif

// Lane implementations (mcx_simulate takes one, mcx_simd_resolve checks it; tests run each
// the CPU has).
// Implementations: MCX_SIMD_OFF (no rows: every draw scalar), _SCALAR (rows by a plain loop),
// _SSE2, _AVX2, _AVX512 (constants.h).

// Philox4x32-10 for counters (c0, c1, c2[j], c3[j]) and key (k0, k1), j < n (n a multiple of
// MCX_DC_PAD); x0..x3 receive the words. Each lane is mcx_philox4x32_10, round for round.
typedef void (*mcx_lanes_fn)(mcx_i64 n, mcx_u32 c0, mcx_u32 c1, const mcx_u32* c2, const mcx_u32* c3,
                             mcx_u32 k0, mcx_u32 k1, mcx_u32* x0, mcx_u32* x1, mcx_u32* x2,
                             mcx_u32* x3);

static void mcx_lanes_scalar(mcx_i64 n, mcx_u32 c0, mcx_u32 c1, const mcx_u32* c2, const mcx_u32* c3,
                             mcx_u32 k0, mcx_u32 k1, mcx_u32* x0, mcx_u32* x1, mcx_u32* x2,
                             mcx_u32* x3) {
    for (mcx_i64 j = 0; j < n; ++j) {
        const mcx_words w = mcx_philox4x32_10(c0, c1, c2[j], c3[j], k0, k1);
        x0[j] = w.x0;
        x1[j] = w.x1;
        x2[j] = w.x2;
        x3[j] = w.x3;
    }
}

#if defined(MCX_DC_X86)
// Each lane lives in the low half of a 64-bit element: vpmuludq multiplies the low 32 bits of each
// element into a 64-bit product, so one instruction gives a round's high and low words for every
// lane. The high halves of a1/a3 (a previous product's high word) only ever reach high halves, and
// the stores keep the low halves.

// SSE2 (every x86-64): two lanes per register, two registers interleaved.
static void mcx_lanes_sse2(mcx_i64 n, mcx_u32 c0, mcx_u32 c1, const mcx_u32* c2, const mcx_u32* c3,
                           mcx_u32 k0, mcx_u32 k1, mcx_u32* x0, mcx_u32* x1, mcx_u32* x2,
                           mcx_u32* x3) {
    const __m128i m0 = _mm_set1_epi64x(MCX_PHILOX_M0), m1 = _mm_set1_epi64x(MCX_PHILOX_M1);
    const __m128i z = _mm_setzero_si128();
    for (mcx_i64 b = 0; b < n; b += 4) {
        const __m128i c2v = _mm_loadu_si128((const __m128i*)(c2 + b));
        const __m128i c3v = _mm_loadu_si128((const __m128i*)(c3 + b));
        __m128i a0 = _mm_set1_epi64x(c0), a1 = _mm_set1_epi64x(c1);
        __m128i a2 = _mm_unpacklo_epi32(c2v, z), a3 = _mm_unpacklo_epi32(c3v, z);
        __m128i b0 = a0, b1 = a1, b2 = _mm_unpackhi_epi32(c2v, z), b3 = _mm_unpackhi_epi32(c3v, z);
        mcx_u32 q0 = k0, q1 = k1;
        for (int r = 0; r < 10; ++r) {
            const __m128i kq0 = _mm_set1_epi64x(q0), kq1 = _mm_set1_epi64x(q1);
            const __m128i p0 = _mm_mul_epu32(a0, m0), p1 = _mm_mul_epu32(a2, m1);
            const __m128i r0 = _mm_mul_epu32(b0, m0), r1 = _mm_mul_epu32(b2, m1);
            a0 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(p1, 32), a1), kq0);
            a2 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(p0, 32), a3), kq1);
            a1 = p1;
            a3 = p0;
            b0 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(r1, 32), b1), kq0);
            b2 = _mm_xor_si128(_mm_xor_si128(_mm_srli_epi64(r0, 32), b3), kq1);
            b1 = r1;
            b3 = r0;
            q0 += MCX_PHILOX_W0;
            q1 += MCX_PHILOX_W1;
        }
        // The low halves of a (lanes b, b+1) then of b (lanes b+2, b+3).
#define MCX_DC_PACK2(A, B) \
    _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(A), _mm_castsi128_ps(B), 0x88))
        _mm_storeu_si128((__m128i*)(x0 + b), MCX_DC_PACK2(a0, b0));
        _mm_storeu_si128((__m128i*)(x1 + b), MCX_DC_PACK2(a1, b1));
        _mm_storeu_si128((__m128i*)(x2 + b), MCX_DC_PACK2(a2, b2));
        _mm_storeu_si128((__m128i*)(x3 + b), MCX_DC_PACK2(a3, b3));
#undef MCX_DC_PACK2
    }
}

__attribute__((target("avx2"))) static void mcx_lanes_avx2(
    mcx_i64 n, mcx_u32 c0, mcx_u32 c1, const mcx_u32* c2, const mcx_u32* c3, mcx_u32 k0,
    mcx_u32 k1, mcx_u32* x0, mcx_u32* x1, mcx_u32* x2, mcx_u32* x3) {
    const __m256i m0 = _mm256_set1_epi64x(MCX_PHILOX_M0), m1 = _mm256_set1_epi64x(MCX_PHILOX_M1);
    const __m256i lows = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (mcx_i64 b = 0; b < n; b += 4) {
        __m256i a0 = _mm256_set1_epi64x(c0), a1 = _mm256_set1_epi64x(c1);
        __m256i a2 = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i*)(c2 + b)));
        __m256i a3 = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i*)(c3 + b)));
        mcx_u32 q0 = k0, q1 = k1;
        for (int r = 0; r < 10; ++r) {
            const __m256i p0 = _mm256_mul_epu32(a0, m0), p1 = _mm256_mul_epu32(a2, m1);
            a0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), a1),
                                  _mm256_set1_epi64x(q0));
            a2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), a3),
                                  _mm256_set1_epi64x(q1));
            a1 = p1;
            a3 = p0;
            q0 += MCX_PHILOX_W0;
            q1 += MCX_PHILOX_W1;
        }
#define MCX_DC_LOW4(A) _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(A, lows))
        _mm_storeu_si128((__m128i*)(x0 + b), MCX_DC_LOW4(a0));
        _mm_storeu_si128((__m128i*)(x1 + b), MCX_DC_LOW4(a1));
        _mm_storeu_si128((__m128i*)(x2 + b), MCX_DC_LOW4(a2));
        _mm_storeu_si128((__m128i*)(x3 + b), MCX_DC_LOW4(a3));
#undef MCX_DC_LOW4
    }
}

__attribute__((target("avx512f"))) static void mcx_lanes_avx512(
    mcx_i64 n, mcx_u32 c0, mcx_u32 c1, const mcx_u32* c2, const mcx_u32* c3, mcx_u32 k0,
    mcx_u32 k1, mcx_u32* x0, mcx_u32* x1, mcx_u32* x2, mcx_u32* x3) {
    const __m512i m0 = _mm512_set1_epi64(MCX_PHILOX_M0), m1 = _mm512_set1_epi64(MCX_PHILOX_M1);
    for (mcx_i64 b = 0; b < n; b += 8) {
        __m512i a0 = _mm512_set1_epi64(c0), a1 = _mm512_set1_epi64(c1);
        __m512i a2 = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i*)(c2 + b)));
        __m512i a3 = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i*)(c3 + b)));
        mcx_u32 q0 = k0, q1 = k1;
        for (int r = 0; r < 10; ++r) {
            const __m512i p0 = _mm512_mul_epu32(a0, m0), p1 = _mm512_mul_epu32(a2, m1);
            // 0x96: a ^ b ^ c in one instruction.
            a0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), a1, _mm512_set1_epi64(q0), 0x96);
            a2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), a3, _mm512_set1_epi64(q1), 0x96);
            a1 = p1;
            a3 = p0;
            q0 += MCX_PHILOX_W0;
            q1 += MCX_PHILOX_W1;
        }
        _mm256_storeu_si256((__m256i*)(x0 + b), _mm512_cvtepi64_epi32(a0));
        _mm256_storeu_si256((__m256i*)(x1 + b), _mm512_cvtepi64_epi32(a1));
        _mm256_storeu_si256((__m256i*)(x2 + b), _mm512_cvtepi64_epi32(a2));
        _mm256_storeu_si256((__m256i*)(x3 + b), _mm512_cvtepi64_epi32(a3));
    }
}
#endif

// Whether this CPU (and build) can run implementation `simd`.
static bool mcx_simd_supported(int simd) {
    if (simd == MCX_SIMD_OFF || simd == MCX_SIMD_SCALAR) return true;
#if defined(MCX_DC_X86)
    __builtin_cpu_init();
    if (simd == MCX_SIMD_SSE2) return __builtin_cpu_supports("sse2");
    if (simd == MCX_SIMD_AVX2) return __builtin_cpu_supports("avx2");
    if (simd == MCX_SIMD_AVX512) return __builtin_cpu_supports("avx512f");
#endif
    return false;
}

// The best implementation this CPU has.
static int mcx_simd_best() {
    for (int s = MCX_SIMD_AVX512; s > MCX_SIMD_SCALAR; --s)
        if (mcx_simd_supported(s)) return s;
    return MCX_SIMD_SCALAR;
}

static mcx_lanes_fn mcx_lanes_of(int simd) {
#if defined(MCX_DC_X86)
    if (simd == MCX_SIMD_SSE2) return mcx_lanes_sse2;
    if (simd == MCX_SIMD_AVX2) return mcx_lanes_avx2;
    if (simd == MCX_SIMD_AVX512) return mcx_lanes_avx512;
#endif
    (void)simd;
    return mcx_lanes_scalar;
}

// About how many lanes of a row cost as much as one scalar draw on the critical path (measured
// on a Xeon: scalar in the engine about 12 ns a draw; lanes 5 ns (SSE2), 3 ns (AVX2), 1.5 ns
// (AVX-512); the plain loop about 6 ns, its rounds overlapping across lanes).
static int mcx_simd_lanes_per_draw(int simd) {
    return simd == MCX_SIMD_AVX512 ? 8 : simd == MCX_SIMD_AVX2 ? 4 : 2;
}

// One worker thread's rows: two for each purpose, picked by the parity of k + sub (a task may
// still draw for attempt k - 1 while attempt k runs; a waiter's wakes go sub, sub + 1, ...), each
// the words of lanes i = 1 .. n, tagged with their key. (Rows of sampled values instead cost more
// than they saved: sampling the lanes no task asks for.)
struct mcx_draw_cache {
    mcx_u64 seed;
    mcx_i64 cap;       // lanes per row, a multiple of MCX_DC_PAD
    mcx_u32* words_;   // [slot][parity][4][cap]: x0, x1, x2, x3 of the lanes
    mcx_u32* c2;       // [cap]: counter words 2 and 3 of the lanes being computed
    mcx_u32* c3;       // [cap]
    // The wake row: lane c holds task c's own next wake draw (key k = own_k[c], sub = own_sub[c])
    // for (own_trial, own_page), filled by page.h (advance) before tasks run.
    mcx_u32* own_w;    // [4][cap]
    mcx_i64 *own_k, *own_sub;
    mcx_i64 own_trial, own_page;
    mcx_lanes_fn lanes;
    int lanes_per_draw;
    // Key of the row each (slot, parity) holds (tag_trial -1: none).
    mcx_i64 tag_trial[MCX_DC_NSLOT][2], tag_page[MCX_DC_NSLOT][2], tag_k[MCX_DC_NSLOT][2];
    mcx_i64 tag_sub[MCX_DC_NSLOT][2];
    // Per slot: draws asked for, lanes of the rows they belonged to, draws left to skip.
    mcx_i64 requests[MCX_DC_NSLOT], row_lanes[MCX_DC_NSLOT], skip[MCX_DC_NSLOT];

    static mcx_i64 padded(mcx_i64 n) { return (n + MCX_DC_PAD - 1) / MCX_DC_PAD * MCX_DC_PAD; }
    // 64-bit words of memory for pages of up to n active tasks.
    static mcx_i64 words(mcx_i64 n) { return (2 + ((mcx_i64)MCX_DC_NSLOT * 2 * 4 + 2 + 4) / 2) * padded(n); }

    void init(mcx_u64 seed_, mcx_i64 n, mcx_i64* mem, int simd) {
        seed = seed_;
        cap = padded(n);
        own_k = mem;
        own_sub = own_k + cap;
        words_ = (mcx_u32*)(own_sub + cap);
        c2 = words_ + (mcx_i64)MCX_DC_NSLOT * 2 * 4 * cap;
        c3 = c2 + cap;
        own_w = c3 + cap;
        own_trial = -1;
        lanes = mcx_lanes_of(simd);
        lanes_per_draw = mcx_simd_lanes_per_draw(simd);
        for (int s = 0; s < MCX_DC_NSLOT; ++s) {
            requests[s] = row_lanes[s] = skip[s] = 0;
            for (int p = 0; p < 2; ++p) tag_trial[s][p] = -1;
        }
    }

    // Whether a draw of this purpose should come from a row (it counts the skipped ones). The
    // caller has checked MCX_DC_FIRST <= purpose < MCX_DC_FIRST + MCX_DC_NSLOT.
    bool wanted(int purpose) {
        const int s = purpose - MCX_DC_FIRST;
        if (skip[s] == 0) return true;
        --skip[s];
        return false;
    }

    // The words of draw (purpose, page, k, i, sub) of this trial, for a page with n active tasks.
    // The caller has checked wanted(purpose) and 1 <= i <= n <= cap.
    mcx_words get(mcx_i64 trial, int purpose, mcx_i64 page, mcx_i64 k, mcx_i64 i, mcx_i64 sub,
                  mcx_i64 n) {
        const int s = purpose - MCX_DC_FIRST;
        const int p = (int)((k + sub) & 1);
        mcx_u32* row = words_ + ((mcx_i64)s * 2 + p) * 4 * cap;
        requests[s] += 1;
        if (tag_trial[s][p] != trial || tag_page[s][p] != page || tag_k[s][p] != k ||
            tag_sub[s][p] != sub) {
            const mcx_i64 m = padded(n);
            row_lanes[s] += m;
            if (row_lanes[s] > MCX_DC_WARMUP && requests[s] * lanes_per_draw < row_lanes[s]) {
                skip[s] = MCX_DC_SKIP;
                requests[s] = row_lanes[s] = 0;
                tag_trial[s][0] = tag_trial[s][1] = -1;
                return mcx_draw(seed, trial, purpose, page, k, i, sub);
            }
            tag_trial[s][p] = trial;
            tag_page[s][p] = page;
            tag_k[s][p] = k;
            tag_sub[s][p] = sub;
            const mcx_u32 c1 = (mcx_u32)(((mcx_u64)purpose << MCX_PAGE_BITS) | ((mcx_u64)page & ((1ull << MCX_PAGE_BITS) - 1)));
            const mcx_u32 c3sub = (mcx_u32)((mcx_u64)sub & ((1ull << MCX_SUB_BITS) - 1));
            for (mcx_i64 j = 0; j < m; ++j) {
                c2[j] = (mcx_u32)(mcx_u64)k;
                c3[j] = (mcx_u32)(((mcx_u64)(j + 1) << MCX_SUB_BITS) | c3sub);
            }
            MCX_COUNT(MCX_CNT_LANES, m);
            MCX_COUNT(MCX_CNT_ROWS, 1);
            lanes(m, (mcx_u32)(mcx_u64)trial, c1, c2, c3, (mcx_u32)seed,
                  (mcx_u32)(seed >> 32), row, row + cap, row + 2 * cap, row + 3 * cap);
        }
        mcx_words w;
        w.x0 = row[i - 1];
        w.x1 = row[cap + i - 1];
        w.x2 = row[2 * cap + i - 1];
        w.x3 = row[3 * cap + i - 1];
        return w;
    }

    // The wake row: set the key of every task c < n, then wake_run computes lanes 0 .. n - 1.
    void wake_key(int c, mcx_i64 k, mcx_i64 sub) {
        own_k[c] = k;
        own_sub[c] = sub;
        c2[c] = (mcx_u32)(mcx_u64)k;
        c3[c] = (mcx_u32)(((mcx_u64)(c + 1) << MCX_SUB_BITS) | ((mcx_u64)sub & ((1ull << MCX_SUB_BITS) - 1)));
    }
    void wake_run(mcx_i64 trial, mcx_i64 page, mcx_i64 n) {
        const mcx_i64 m = padded(n);
        for (mcx_i64 j = n; j < m; ++j) c2[j] = c3[j] = 0;
        const mcx_u32 c1 = (mcx_u32)(((mcx_u64)MCX_P_WAKE << MCX_PAGE_BITS) | ((mcx_u64)page & ((1ull << MCX_PAGE_BITS) - 1)));
        MCX_COUNT(MCX_CNT_LANES, m);
        MCX_COUNT(MCX_CNT_ROWS, 1);
        lanes(m, (mcx_u32)(mcx_u64)trial, c1, c2, c3, (mcx_u32)seed, (mcx_u32)(seed >> 32), own_w,
              own_w + cap, own_w + 2 * cap, own_w + 3 * cap);
        own_trial = trial;
        own_page = page;
    }
    // Task i - 1's wake draw (page, k, i, sub) from the wake row, if the row holds it.
    bool wake_words(mcx_i64 trial, mcx_i64 page, mcx_i64 k, mcx_i64 i, mcx_i64 sub, mcx_words& w) {
        const mcx_i64 c = i - 1;
        if (own_trial != trial || own_page != page || own_k[c] != k || own_sub[c] != sub) return false;
        own_sub[c] = -1;  // once
        w.x0 = own_w[c];
        w.x1 = own_w[cap + c];
        w.x2 = own_w[2 * cap + c];
        w.x3 = own_w[3 * cap + c];
        return true;
    }
};

// The calling worker thread's rows (null: every draw takes the scalar path).
static thread_local mcx_draw_cache* mcx_tls_draw_cache = nullptr;

#endif
