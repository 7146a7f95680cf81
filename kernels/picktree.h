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
    int n;          // leaves, a power of two
    int cap;        // most tasks it can hold
    mcx_i64* key;   // [2n]: node v's smallest (key, sec) below it; leaf of task j is n + j,
    mcx_i64* sec;   // [2n]  its key the task's event time or MCX_PICK_NONE (also for j >= A),
    int* idx;       // [2n]  sec the event's stamp, idx the task

    static int leaves(mcx_i64 tasks) {
        int n = 1;
        while (n < tasks) n <<= 1;
        return n;
    }
    // int64 words of memory for up to `tasks` tasks.
    static mcx_i64 words(mcx_i64 tasks) { return 5 * (mcx_i64)leaves(tasks); }
    void init(mcx_i64 tasks, mcx_i64* mem) {
        n = leaves(tasks);
        cap = (int)tasks;
        key = mem;
        sec = mem + 2 * n;
        idx = (int*)(mem + 4 * n);
    }
    // Node v from its children.
    bool pull(int v) {
        const int a = 2 * v, b = 2 * v + 1;
        const int w = (key[b] < key[a] || (key[b] == key[a] && sec[b] < sec[a])) ? b : a;
        if (key[v] == key[w] && sec[v] == sec[w] && idx[v] == idx[w]) return false;
        key[v] = key[w];
        sec[v] = sec[w];
        idx[v] = idx[w];
        return true;
    }
    // Call after setting the keys of leaves n .. 2n - 1.
    void build() {
        for (int j = 0; j < n; ++j) idx[n + j] = j;
        for (int v = n - 1; v >= 1; --v) {
            key[v] = MCX_PICK_NONE;
            sec[v] = MCX_PICK_NONE;
            idx[v] = -1;
            pull(v);
        }
    }
    void set(int c, mcx_i64 k, mcx_i64 s) {
        if (key[n + c] == k && sec[n + c] == s) return;
        key[n + c] = k;
        sec[n + c] = s;
        // Stop where a node's winner did not change: nothing above it can.
        for (int v = (n + c) >> 1; v >= 1 && pull(v); v >>= 1) {
        }
    }
    int top() const { return idx[1]; }
    mcx_i64 top_key() const { return key[1]; }
};

static thread_local mcx_pick_tree* mcx_tls_pick_tree = nullptr;

#endif
