/* sluice: the gate, a counting semaphore with a priority wait queue.
 *
 * No Node-API in here: plain C on libuv primitives, tested on its own
 * (test/c/gate_test.c) under AddressSanitizer, UBSan, ThreadSanitizer and
 * valgrind. Functions return 0 or a negative UV_E* code, as libuv's do.
 *
 * Vocabulary:
 *   gate    - permits (capacity), in_use (granted, not yet released) and the
 *             queue of waiters. Strict order: the highest priority first,
 *             FIFO within a priority, and the head of the queue blocks those
 *             behind it (a waiter for 3 permits is never overtaken by a
 *             waiter for 1), so no waiter starves. A request for more
 *             permits than the gate has is refused (UV_ERANGE), and lowering
 *             the permits refuses queued waiters that can no longer fit, so a
 *             doomed request never blocks the ones behind it. A gate of 0
 *             permits is paused rather than too small: its waiters wait.
 *   stake   - what one holder (a JS Semaphore or limiter: the binding's
 *             handle) has in a gate: the permits granted to it and not yet
 *             released, and how many of its waiters are queued. Every take,
 *             grant and release is booked on a stake, under the gate's lock,
 *             so teardown knows exactly what to give back.
 *   waiter  - one queued request: how many permits, which priority, and its
 *             stake. A fixed struct from its ctx's slab.
 *   ctx     - one per thread that uses gates (a Node env): it owns the
 *             waiter slab and a ready queue, where grants (and refusals)
 *             made by *another* thread are put before that thread's doorbell
 *             rings.
 *
 * Backends. The binding talks to gates only through the functions below
 * (take, acquire, release, cancel, clear, dispatch, counts, permits, stake
 * open/close); sl_gate_backend_t names them as one interface, so another
 * gate (host-wide, in shared memory) can be put behind the same binding.
 *
 * Locking. A gate used by one thread only (the common case) is never locked:
 * every call comes from its own JS thread. A shared gate (shared=1) takes
 * gate->lock around every read and change of its state, stakes included.
 * When two locks are needed the order is gate->lock, then ctx->lock. Nothing
 * calls back into JS while holding either: grants are returned in a list and
 * settled after the locks are dropped, and doorbells are rung after every
 * lock is dropped.
 *
 * Keeping threads alive. A thread whose waiter waits on a shared gate must
 * stay alive only while another thread could let it in: the other thread
 * holds permits of the gate (its release), or its waiter is at the head of
 * the queue, ahead of ours, while the gate has permits (its abort or
 * timeout). Otherwise nothing could ever grant the waiter (its own thread
 * holds what it waits for, or the gate is paused at 0 permits) and the
 * thread must be free to exit, as with p-limit. The gate keeps, per ctx
 * (a "party": the sum of that ctx's stakes), whether that holds ("keep"),
 * in O(1) per party, and counts such parties per ctx (ctx->keep), with the grants on
 * their way to it (in its ready queue): a waiter that was just granted no
 * longer waits, but its thread must stay alive until it has settled the
 * grant. When a ctx's count crosses zero its doorbell is rung, and its
 * thread refs or unrefs the doorbell.
 */
#ifndef SLUICE_CORE_GATE_H
#define SLUICE_CORE_GATE_H

#include <stdint.h>
#include <uv.h>

/* "No limit": permits Infinity. Any larger count is clamped to it. */
#define SL_INFINITE INT64_MAX

typedef struct sl_waiter_s sl_waiter_t;
typedef struct sl_gate_s sl_gate_t;
typedef struct sl_ctx_s sl_ctx_t;
typedef struct sl_stake_s sl_stake_t;
typedef struct sl_party_s sl_party_t;
typedef struct sl_hgate_s sl_hgate_t;

/* A singly linked list of waiters through their `next` field, FIFO. */
typedef struct sl_wlist_s {
  sl_waiter_t* head;
  sl_waiter_t* tail;
} sl_wlist_t;

enum sl_waiter_state {
  SL_WAITER_FREE = 0, /* on its chunk's free list */
  SL_WAITER_NEW,      /* allocated, not queued (or taken out by clear) */
  SL_WAITER_QUEUED,   /* in a gate's wait queue */
  SL_WAITER_GRANTED,  /* permits booked on its stake; to be resolved */
  SL_WAITER_REFUSED   /* can never fit (permits lowered); to be rejected */
};

struct sl_waiter_s {
  sl_waiter_t* next; /* queue link (gate level, out list or free list) */
  union {
    sl_waiter_t* prev; /* queue link, gate levels only (in-process gates) */
    uint32_t hentry;   /* host gates: its entry in the shared segment */
  };
  sl_stake_t* stake; /* whose request it is; never changes once queued */
  void* data;        /* the binding's: the deferred to settle */
  void* timer;       /* the binding's: a timeout timer, or NULL */
  double value;      /* the binding's: what to resolve with */
  uint64_t seq;      /* unique per ctx: with index, the waiter's token */
  uint32_t index;    /* slot in its ctx's slab */
  uint32_t n;        /* permits wanted */
  int32_t priority;  /* higher runs first */
  uint8_t state;     /* enum sl_waiter_state; written under the gate lock
                       * once queued */
};

/* One priority level: a doubly linked FIFO (head/tail, NULL-terminated, so a
 * level can move when the level array grows). */
typedef struct sl_level_s {
  sl_waiter_t* head;
  sl_waiter_t* tail;
  int32_t priority;
} sl_level_t;

/* What one ctx has in a shared gate: the sum of its stakes there (a thread
 * may open one name more than once). Under the gate lock. */
struct sl_party_s {
  sl_ctx_t* ctx;
  sl_party_t* next; /* gate->parties */
  int64_t held;
  int64_t waiting;
  uint32_t nstakes;
  int keep; /* counted in ctx->keep (see "Keeping threads alive") */
};

struct sl_stake_s {
  /* Unique in the process, never reused (the fleet gates of lib/redis name
   * a Redis client after it). */
  uint64_t id;
  /* Shared gates: the gate's list of open stakes, under the gate lock. */
  sl_stake_t* snext;
  sl_stake_t* sprev;
  sl_gate_t* gate;
  sl_ctx_t* ctx;
  sl_party_t* party; /* shared gates: its ctx's party; NULL otherwise */
  sl_hgate_t* host;  /* host gates (src/core/hgate.h): the process's view of
                      * the segment; `gate` is NULL then */
  /* Both under the gate lock (shared gates). `held` counts grants still on
   * the way to their thread (in its ready queue) too: the permits are taken
   * from the gate when granted. */
  int64_t held;
  int64_t waiting;
};

struct sl_gate_s {
  uv_mutex_t lock; /* guards everything below when `shared` */
  int shared;
  int64_t permits; /* capacity; SL_INFINITE for no limit */
  int64_t in_use;  /* granted and not released; may exceed permits after
                    * the capacity was lowered (running work is never
                    * preempted). Unshared gates only: see `fast`. */
  /* Shared gates: in_use << 1 | SL_GATE_SLOW, one word, so that a take or
   * a release with nobody queued is one compare-and-swap, without the lock
   * (gate.c "The fast path"). SL_GATE_SLOW is set while waiters are queued
   * or a lock holder needs in_use to hold still; a fast take or release
   * that finds it set takes the lock instead, so it can never overtake a
   * queued waiter. */
  uint64_t fast;
  int64_t npending; /* waiters queued, all levels */
  /* Non-empty levels sorted by ascending priority, so the highest is the
   * last one and removing it when it empties is O(1). Finding a level for a
   * new waiter is a binary search, O(log P). */
  sl_level_t* levels;
  uint32_t nlevels;
  uint32_t cap_levels;
  sl_party_t* parties; /* shared gates: one per ctx with a stake open */
  uint32_t nkeep;      /* parties with keep set */
  /* Shared gates: every open stake (sl_gate_stakes), and the stake that
   * leads the gate's outside work, 0 when none (sl_gate_lead). */
  sl_stake_t* stakes;
  uint64_t leader;
  uint64_t epoch; /* sl_gate_epoch */
};

/* The waiter slab keeps waiters in fixed chunks so a waiter never moves: a
 * shared gate holds pointers to waiters of other threads' contexts. A chunk
 * whose waiters are all free is given back to the allocator (one empty
 * chunk is kept as a spare, so a queue that swings around a chunk boundary
 * does not allocate and free on every turn). New waiters come from the
 * lowest chunk with room, so after a burst the high chunks empty out. When a
 * burst of at least SL_TRIM_PEAK chunks is over (2 or fewer left), the C
 * library is asked to return freed memory to the system (sl_alloc_trim). */
#define SL_TRIM_PEAK 16
#define SL_CHUNK_SHIFT 10
#define SL_CHUNK_SIZE (1u << SL_CHUNK_SHIFT)

typedef struct sl_chunk_s {
  sl_waiter_t* free; /* free list through `next` */
  uint32_t live;
  sl_waiter_t w[SL_CHUNK_SIZE];
} sl_chunk_t;

struct sl_ctx_s {
  /* Guards `ready`, `doorbell`, `closing`, `ringing` and `keep`, which other
   * threads touch when they grant one of our waiters. */
  uv_mutex_t lock;
  uv_cond_t idle;       /* signalled when `ringing` drops to 0 while closing */
  sl_wlist_t ready;     /* granted or refused by other threads, not settled */
  uv_async_t* doorbell; /* rung after a push to an empty `ready`; NULL until set */
  int closing;          /* set at teardown: no new ring after this */
  /* Rings decided under the lock but made after every lock is dropped (so a
   * slow uv_async_send never holds up the gate). Teardown waits for this to
   * reach 0 before it closes the doorbell. */
  uint32_t ringing;
  /* Reasons to keep this ctx's thread alive: stakes another thread could
   * unblock, plus grants waiting in `ready` (nready of them). */
  int64_t keep;
  uint32_t nready;
  /* The slab: touched only by the ctx's own thread. */
  sl_chunk_t** chunks;
  uint32_t nchunks;      /* length of `chunks`; entries may be NULL */
  uint64_t* room;        /* bit i: chunk i is NULL or has a free waiter */
  uint32_t spare;        /* index+1 of the empty chunk kept as a spare, or 0 */
  uint32_t nlive_chunks; /* chunks allocated */
  uint32_t peak_chunks;  /* the most allocated since the last trim */
  uint64_t seq;          /* last waiter sequence number handed out */
  uint64_t live;         /* waiters not free */
};

/* Doorbells to ring once every lock is dropped (see sl_ring). More
 * distinct threads than fit in one operation is rare; those are rung
 * under the lock. */
#define SL_RING_MAX 8
typedef struct sl_ring_s {
  sl_ctx_t* ctx[SL_RING_MAX];
  uv_async_t* bell[SL_RING_MAX];
  uint32_t n;
} sl_ring_t;

/* ---- context ---- */
int sl_ctx_init(sl_ctx_t* ctx);
/* Frees the slab. Every waiter must be free by then. */
void sl_ctx_destroy(sl_ctx_t* ctx);
sl_waiter_t* sl_ctx_waiter_new(sl_ctx_t* ctx); /* NULL when out of memory */
void sl_ctx_waiter_free(sl_ctx_t* ctx, sl_waiter_t* w);
/* Looks a waiter up by its token (index, seq); NULL if it is not live any
 * more. Sequence numbers are never reused within a ctx (2^64 of them), so a
 * stale token never finds another waiter. */
sl_waiter_t* sl_ctx_waiter_find(sl_ctx_t* ctx, uint32_t index, uint64_t seq);
/* How many slab chunks are allocated (tests: memory comes back). */
uint32_t sl_ctx_chunks(const sl_ctx_t* ctx);
/* Moves every waiter that other threads granted or refused into `out`. */
void sl_ctx_take_ready(sl_ctx_t* ctx, sl_wlist_t* out);
/* Whether a stake of this ctx waits on a gate another thread could release
 * (see "Keeping threads alive"), or a grant for it is in its ready queue. */
int sl_ctx_keep(sl_ctx_t* ctx);
/* Sets the doorbell (NULL until set: grants by others are then not rung). */
void sl_ctx_set_doorbell(sl_ctx_t* ctx, uv_async_t* doorbell);
/* Teardown: no doorbell is rung from now on; waits for rings in flight.
 * Call after every waiter of the ctx left every gate. */
void sl_ctx_close(sl_ctx_t* ctx);

/* For other gate backends (src/core/hgate.c), which decide grants under a
 * lock of their own and must hand them to threads the same way:
 * - sl_ctx_push_ready: hands a GRANTED or REFUSED waiter to its ctx's ready
 *   queue (counted in ctx->keep until taken) and plans a ring of its
 *   doorbell when the queue was empty. Call it under the backend's lock, so
 *   the owner's teardown (which clears its waiters under that lock first)
 *   cannot run between finding the waiter and the push.
 * - sl_ctx_keep_add: changes ctx->keep by `delta` (+1 or -1) and plans a
 *   ring when it crosses zero (the owner refs or unrefs its doorbell).
 * - sl_ring: makes the planned rings; call it with no lock held. */
void sl_ctx_push_ready(sl_ctx_t* ctx, sl_waiter_t* w, sl_ring_t* ring);
void sl_ctx_keep_add(sl_ctx_t* ctx, int delta, sl_ring_t* ring);
void sl_ring(sl_ring_t* ring);

/* ---- gate ---- */
int sl_gate_init(sl_gate_t* g, int64_t permits, int shared);
/* The queue must be empty and every stake closed. */
void sl_gate_destroy(sl_gate_t* g);

/* Opens a stake of `ctx` in `g` (nothing held, nothing queued). Returns 0,
 * or UV_ENOMEM (a shared gate's first stake of a ctx allocates its party). */
int sl_stake_open(sl_stake_t* s, sl_gate_t* g, sl_ctx_t* ctx);
/* Closes a stake whose waiters have left the queue: its held permits go back
 * to the gate, and waiters they let in are granted through their threads'
 * ready queues (none is settled here: this may run in a finalizer). */
void sl_stake_close(sl_stake_t* s);
/* The permits the stake holds. */
int64_t sl_stake_held(sl_stake_t* s);

/* Every operation below goes through a stake: s->gate is the gate. */

/* Takes n permits for `s` now if no one is queued and enough are free.
 * Returns 0, or UV_EBUSY if not. */
int sl_gate_try_take(sl_stake_t* s, uint32_t n);

/* Takes n permits for `s` now if no one is queued and they fit (*queued = 0;
 * `w` is not used), or queues `w` for them (*queued = 1). When others are
 * queued and the head fits (the capacity was raised and not dispatched
 * yet), the head is granted, one waiter as p-limit's enqueue does; if it is
 * a waiter of s->ctx (`w` perhaps) it is appended to `out`. Returns 0,
 * UV_ERANGE when n exceeds the permits (nothing is queued: it could never
 * be granted), or UV_ENOMEM. */
int sl_gate_acquire(sl_stake_t* s, sl_waiter_t* w, uint32_t n, int32_t priority, int* queued,
                    sl_wlist_t* out);

/* Returns n permits of `s` and grants queued waiters in order while they fit,
 * at most `max_grants` (0: no limit; p-limit starts one task per completion
 * and leaves the rest to its dispatch after a capacity raise). Waiters of
 * s->ctx are appended to `out` for the caller to settle; waiters of other
 * contexts go to their ready queue and their doorbell is rung. Returns 0, or
 * UV_ERANGE if n exceeds what `s` holds (nothing is changed then). */
int sl_gate_release(sl_stake_t* s, int64_t n, uint32_t max_grants, sl_wlist_t* out);

/* Grants queued waiters while they fit (after the capacity was raised). */
void sl_gate_dispatch(sl_stake_t* s, sl_wlist_t* out);

/* Changes the capacity. Queued waiters that want more than `permits` are
 * refused (state REFUSED: into `out` if of s->ctx, else to their ready
 * queue). Does not dispatch: the caller decides when. */
void sl_gate_set_permits(sl_stake_t* s, int64_t permits, sl_wlist_t* out);

/* Removes a QUEUED waiter of the calling thread (timeout, abort); removing
 * the head may let the waiters behind it fit, so this dispatches too, into
 * `out`. Returns 0, or UV_ENOENT if `w` is not queued. */
int sl_gate_cancel(sl_waiter_t* w, sl_wlist_t* out);

/* Removes every queued waiter of `s` into `out`, in the order they would
 * have run. Their state becomes NEW. Does not dispatch. */
void sl_gate_clear(sl_stake_t* s, sl_wlist_t* out);

/* ---- fleet gates ----
 * A fleet gate (lib/redis) is a shared gate of 0 permits whose grants are
 * decided elsewhere (by Redis): its waiters are the process's local waiters,
 * queued here so that timeouts, aborts and teardown work as for any gate,
 * and a grant from Redis is handed to its thread through the same ready
 * queues and doorbells. Its permits stay 0, so the gate itself never grants
 * anyone; in_use counts what its stakes hold (above the permits). */

/* Grants the queued waiter (stake_id, seq) whatever the gate's room: the
 * permits were granted elsewhere. It resolves with `value`. Searched from
 * the head of each level, highest first: a grant from Redis is nearly
 * always the head of its level. Returns 0, or UV_ENOENT when no such waiter
 * is queued (it timed out, was aborted, or its thread went away). */
int sl_gate_grant_to(sl_stake_t* s, uint64_t stake_id, uint64_t seq, double value, sl_wlist_t* out);

/* The lead of a shared gate: one stake at a time does the outside work of
 * the process's stakes (renewing their Redis lease, listening for grants).
 * Claims it for `s` when no open stake has it, and returns the leader's id
 * (s->id when `s` leads). A leader's close frees it. */
uint64_t sl_gate_lead(sl_stake_t* s);
/* Gives the lead up, if `s` has it. */
void sl_gate_resign(sl_stake_t* s);
/* A counter for the stakes of a shared gate to see news by (the lead bumps
 * it when Redis reaped clients of the process). Returns it, after adding 1
 * if `bump`. */
uint64_t sl_gate_epoch(sl_stake_t* s, int bump);

/* Writes the ids of the gate's open stakes, at most `max`, into `ids`, and
 * returns how many are open. *next_id is set to a number above every stake
 * id handed out so far (in any gate): a stake opened later has a higher
 * id. */
uint32_t sl_gate_stakes(sl_stake_t* s, uint64_t* ids, uint32_t max, uint64_t* next_id);

typedef struct sl_gate_counts_s {
  int64_t permits;
  int64_t in_use;
  int64_t npending;
} sl_gate_counts_t;

/* A consistent snapshot of the gate's counts. */
void sl_gate_counts(sl_stake_t* s, sl_gate_counts_t* out);

/* ---- the backend interface ----
 * The binding holds stakes and calls these; a stake is opened by its
 * backend (sl_stake_open for an in-process gate, the registry for a named
 * one). */
typedef struct sl_gate_backend_s {
  int (*try_take)(sl_stake_t* s, uint32_t n);
  int (*acquire)(sl_stake_t* s, sl_waiter_t* w, uint32_t n, int32_t priority, int* queued,
                 sl_wlist_t* out);
  int (*release)(sl_stake_t* s, int64_t n, uint32_t max_grants, sl_wlist_t* out);
  int (*cancel)(sl_waiter_t* w, sl_wlist_t* out);
  void (*clear)(sl_stake_t* s, sl_wlist_t* out);
  void (*dispatch)(sl_stake_t* s, sl_wlist_t* out);
  void (*set_permits)(sl_stake_t* s, int64_t permits, sl_wlist_t* out);
  void (*counts)(sl_stake_t* s, sl_gate_counts_t* out);
  int64_t (*held)(sl_stake_t* s);
  /* Gives back what the stake holds and forgets it (see sl_stake_close). */
  void (*close)(sl_stake_t* s);
} sl_gate_backend_t;

/* The in-process gate (unshared, or shared by the threads of a process). */
extern const sl_gate_backend_t sl_gate_local;

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

#endif /* SLUICE_CORE_GATE_H */
