// picktree.h: lock_noref's pick on the host (native backend only; the GPU never includes this
// code). page.h's global_pick needs the task with the smallest (event time, stamp) among those
// with an event to run (stamps are unique within a page, so nothing ties further); scanning every task per event was 90% of lock_noref's time with 201
// tasks. This tournament tree, updated whenever a task's event changes, gives the candidate in
// O(1) and an update in O(log A). The tree only finds the candidate; the rule stays in
// global_pick.
#pragma once
#include "portability.h"

#if defined(MCX_HOST)

#define MCX_PICK_NONE MCX_I64_MAX  // key of a task with nothing to run

struct mcx_pick_tree {
    int n;    // leaves, a power of two
    int cap;  // most tasks it can hold
    // Leaf j's key (task j's event time, or MCX_PICK_NONE, also for j >= A) and sec (its event's
    // stamp) as one unsigned 128-bit word, key above sec: (key, sec) in lexicographic order is
    // that word's order (both are >= 0), so one comparison ranks two leaves.
    unsigned __int128* leaf;  // [n]
    int* idx;                 // [2n] node v's winner, the leaf with the smallest word below it
                              //      (the left one at a tie); the leaves' own are 0 .. n - 1

    static int leaves(mcx_i64 tasks) {
        int n = 1;
        while (n < tasks) n <<= 1;
        return n;
    }
    static unsigned __int128 word(mcx_i64 k, mcx_i64 s) {
        return ((unsigned __int128)(mcx_u64)k << 64) | (mcx_u64)s;
    }
    // int64 words of memory for up to `tasks` tasks.
    static mcx_i64 words(mcx_i64 tasks) { return 3 * (mcx_i64)leaves(tasks) + 2; }
    void init(mcx_i64 tasks, mcx_i64* mem) {
        n = leaves(tasks);
        cap = (int)tasks;
        // 16-byte aligned for the 128-bit words.
        mcx_i64* a = (mcx_i64*)(((unsigned long long)mem + 15) & ~15ull);
        leaf = (unsigned __int128*)a;
        idx = (int*)(a + 2 * n);
    }
    void put(int c, mcx_i64 k, mcx_i64 s) { leaf[c] = word(k, s); }
    // Node v's winner from its children's; false if it did not change.
    bool pull(int v) {
        const int a = idx[2 * v], b = idx[2 * v + 1];
        const int w = leaf[b] < leaf[a] ? b : a;
        if (idx[v] == w) return false;
        idx[v] = w;
        return true;
    }
    // Call after put() of leaves 0 .. n - 1.
    void build() {
        for (int j = 0; j < n; ++j) idx[n + j] = j;
        for (int v = n - 1; v >= 1; --v) {
            const int a = idx[2 * v], b = idx[2 * v + 1];
            idx[v] = leaf[b] < leaf[a] ? b : a;
        }
    }
    void set(int c, mcx_i64 k, mcx_i64 s) {
        const unsigned __int128 x = word(k, s);
        if (leaf[c] == x) return;
        leaf[c] = x;
        // Up from the leaf: a node whose winner is still another leaf than c has an unchanged
        // winner with an unchanged word, so nothing above it changes; where c wins, its word did.
        for (int v = (n + c) >> 1; v >= 1; v >>= 1)
            if (!pull(v) && idx[v] != c) break;
    }
    int top() const { return idx[1]; }
    mcx_i64 top_key() const { return (mcx_i64)(mcx_u64)(leaf[idx[1]] >> 64); }
};

static thread_local mcx_pick_tree* mcx_tls_pick_tree = nullptr;

#endif
