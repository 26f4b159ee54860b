/* sluice: the gate, a counting semaphore with a priority wait queue.
 *
 * No Node-API in here: this is plain C on libuv primitives, so it can be
 * tested on its own (test/c/gate_test.c) under AddressSanitizer and valgrind.
 *
 * Vocabulary:
 *   gate    - permits (capacity), in_use (granted, not yet released) and the
 *             queue of waiters. Strict order: the highest priority first,
 *             FIFO within a priority, and the head of the queue blocks those
 *             behind it (a waiter for 3 permits is never overtaken by a
 *             waiter for 1), so no waiter starves.
 *   waiter  - one queued request: how many permits, which priority, and the
 *             context (env) it belongs to. A fixed struct from a slab; no
 *             other allocation per operation.
 *   ctx     - one per Node env (main thread, each worker): it owns the waiter
 *             slab and a ready queue, where grants made by *another* thread
 *             are put before that thread's doorbell rings.
 *
 * Locking. A gate used by one thread only (the common case) is never locked:
 * every call comes from its own JS thread. A shared gate (sl_gate_init with
 * shared=1) takes gate->lock around every change. When both are needed, the
 * order is gate->lock, then ctx->lock; nothing calls back into JS while
 * holding either (grants are returned to the caller in a list and settled
 * after the locks are dropped).
 */
#ifndef SLUICE_GATE_H
#define SLUICE_GATE_H

#include <stdint.h>
#include <uv.h>

/* "No limit": concurrency Infinity. Any larger count is clamped to it. */
#define SL_INFINITE INT64_MAX

typedef struct sl_waiter_s sl_waiter_t;
typedef struct sl_gate_s sl_gate_t;
typedef struct sl_ctx_s sl_ctx_t;

/* A singly linked list of waiters through their `next` field, FIFO. */
typedef struct sl_wlist_s {
  sl_waiter_t* head;
  sl_waiter_t* tail;
} sl_wlist_t;

enum sl_waiter_state {
  SL_WAITER_FREE = 0,   /* on the slab's free list */
  SL_WAITER_NEW,        /* allocated, not queued yet */
  SL_WAITER_QUEUED,     /* in a gate's wait queue */
  SL_WAITER_GRANTED     /* permits taken for it; being settled */
};

struct sl_waiter_s {
  sl_waiter_t* next;   /* queue link (gate level, grant list or free list) */
  sl_waiter_t* prev;   /* queue link, gate levels only */
  sl_ctx_t* ctx;       /* the env this waiter belongs to; never changes */
  sl_gate_t* gate;     /* the gate it waits on, while QUEUED or GRANTED */
  void* data;          /* the binding's: the deferred to settle */
  void* owner;         /* the binding's: the handle that queued it */
  void* timer;         /* the binding's: a timeout timer, or NULL */
  double value;        /* the binding's: what to resolve with */
  uint32_t n;          /* permits wanted */
  int32_t priority;    /* higher runs first */
  uint32_t index;      /* slot in ctx's slab */
  uint32_t gen;        /* bumped on every free, so stale tokens miss */
  uint8_t state;       /* enum sl_waiter_state */
};

/* One priority level: a doubly linked FIFO (head/tail, NULL-terminated, so a
 * level can move when the level array grows). */
typedef struct sl_level_s {
  sl_waiter_t* head;
  sl_waiter_t* tail;
  int32_t priority;
} sl_level_t;

struct sl_gate_s {
  uv_mutex_t lock;     /* guards everything below when `shared` */
  int shared;
  int64_t permits;     /* capacity; SL_INFINITE for no limit */
  int64_t in_use;      /* granted and not released; may exceed permits after
                        * the capacity was lowered (running work is never
                        * preempted) */
  int64_t npending;    /* waiters queued, all levels */
  /* Non-empty levels sorted by ascending priority, so the highest is the
   * last one and removing it when it empties is O(1). Finding a level for a
   * new waiter is a binary search, O(log P); a new level is inserted with a
   * memmove of at most P pointers-sized entries. */
  sl_level_t* levels;
  uint32_t nlevels;
  uint32_t cap_levels;
};

/* The waiter slab keeps waiters in fixed chunks so a waiter never moves: a
 * shared gate holds pointers to waiters of other threads' contexts. */
#define SL_CHUNK_SHIFT 10
#define SL_CHUNK_SIZE (1u << SL_CHUNK_SHIFT)

struct sl_ctx_s {
  uv_mutex_t lock;      /* guards `ready`, `doorbell`, `closing`, `ringing` */
  uv_cond_t idle;       /* signalled when `ringing` drops to 0 while closing */
  sl_wlist_t ready;     /* granted by other threads, not yet settled */
  uv_async_t* doorbell; /* rung after a push to an empty `ready`; NULL until set */
  int closing;          /* set at teardown: no new ring after this */
  /* Rings decided under the lock but made after every lock is dropped (so a
   * slow uv_async_send never holds up the gate or the woken thread).
   * Teardown waits for this to reach 0 before it closes the doorbell. */
  uint32_t ringing;
  /* The slab; touched only by the ctx's own thread. */
  sl_waiter_t** chunks;
  uint32_t nchunks;
  uint32_t nwaiters;    /* slots handed out so far (high-water mark) */
  sl_waiter_t* free;    /* free list through `next` */
  uint64_t live;        /* waiters not on the free list */
};

/* ---- context ---- */
int sl_ctx_init(sl_ctx_t* ctx);
/* Frees the slab. Every waiter must be out of every gate by then. */
void sl_ctx_destroy(sl_ctx_t* ctx);
sl_waiter_t* sl_ctx_waiter_new(sl_ctx_t* ctx);   /* NULL when out of memory */
void sl_ctx_waiter_free(sl_ctx_t* ctx, sl_waiter_t* w);
/* Looks a waiter up by the token the binding handed out; NULL if the token
 * is out of range or stale (the waiter was freed since). Only the low
 * SL_GEN_BITS of the generation are compared, so a token fits in a double. */
#define SL_GEN_BITS 20
#define SL_GEN_MASK ((1u << SL_GEN_BITS) - 1)
sl_waiter_t* sl_ctx_waiter_find(sl_ctx_t* ctx, uint32_t index, uint32_t gen);
/* Moves every waiter that other threads granted into `out`. */
void sl_ctx_take_ready(sl_ctx_t* ctx, sl_wlist_t* out);
/* Teardown: no doorbell is rung from now on; waits for rings in flight.
 * Call after every waiter of the ctx left every gate. */
void sl_ctx_close(sl_ctx_t* ctx);

/* ---- gate ---- */
int sl_gate_init(sl_gate_t* g, int64_t permits, int shared);
/* The queue must be empty. */
void sl_gate_destroy(sl_gate_t* g);

/* Takes n permits now if no one is queued and enough are free. Returns 1 if
 * taken, 0 if not. */
int sl_gate_try_take(sl_gate_t* g, uint32_t n);

/* Takes n permits for `w` now if no one is queued and they fit (returns 1;
 * w stays NEW), or queues it (returns 0; w is QUEUED). When others are
 * queued and the head fits (the capacity was raised and not dispatched
 * yet), the head is granted into `granted` (it may be `w`), one waiter as
 * p-limit's enqueue does. A request for more permits than the gate has is
 * queued like any other: capacity may be raised later. Returns UV_ENOMEM
 * when a new priority level cannot be allocated. */
int sl_gate_acquire(sl_gate_t* g, sl_waiter_t* w, uint32_t n, int32_t priority,
                    sl_ctx_t* self, sl_wlist_t* granted);

/* Returns n permits and grants queued waiters in order while they fit, at
 * most `max_grants` of them (0: no limit; p-limit starts one task per
 * completion and leaves the rest to its dispatch after a capacity raise).
 * Waiters of `self` are appended to `granted` for the caller to settle;
 * waiters of other contexts go to their ready queue and their doorbell is
 * rung. Returns 0, or UV_EINVAL if n exceeds the permits in use (nothing is
 * changed then). */
int sl_gate_release(sl_gate_t* g, uint32_t n, uint32_t max_grants, sl_ctx_t* self,
                    sl_wlist_t* granted);

/* Grants queued waiters while they fit (after the capacity was raised). */
void sl_gate_dispatch(sl_gate_t* g, sl_ctx_t* self, sl_wlist_t* granted);

/* Changes the capacity. Does not dispatch: the caller decides when. */
void sl_gate_set_permits(sl_gate_t* g, int64_t permits);

/* Removes a QUEUED waiter (timeout, abort). Removing the head may let the
 * waiters behind it fit, so this dispatches too. Returns 0, or UV_ENOENT if
 * `w` is not queued on `g`. */
int sl_gate_cancel(sl_gate_t* g, sl_waiter_t* w, sl_ctx_t* self, sl_wlist_t* granted);

/* Removes every queued waiter whose `owner` is `owner` (all of them when
 * owner is NULL) into `out`, in the order they would have run. Their state
 * becomes NEW. */
void sl_gate_clear(sl_gate_t* g, const void* owner, sl_wlist_t* out);

/* Removes every queued waiter of context `ctx` into `out` (teardown). */
void sl_gate_clear_ctx(sl_gate_t* g, const sl_ctx_t* ctx, sl_wlist_t* out);

int64_t sl_gate_available(const sl_gate_t* g);

/* ---- lists ---- */
static inline void sl_wlist_init(sl_wlist_t* l) {
  l->head = NULL;
  l->tail = NULL;
}

static inline void sl_wlist_push(sl_wlist_t* l, sl_waiter_t* w) {
  w->next = NULL;
  if (l->tail == NULL)
    l->head = w;
  else
    l->tail->next = w;
  l->tail = w;
}

static inline sl_waiter_t* sl_wlist_shift(sl_wlist_t* l) {
  sl_waiter_t* w = l->head;
  if (w != NULL) {
    l->head = w->next;
    if (l->head == NULL)
      l->tail = NULL;
    w->next = NULL;
  }
  return w;
}

#endif /* SLUICE_GATE_H */
