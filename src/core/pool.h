/* sluice: the pool core, a resource pool's slot state machine.
 *
 * No Node-API in here: plain C on libuv timers, so it can be tested on its
 * own (test/c/pool_test.c) under AddressSanitizer. The core never touches a
 * resource: it decides, and tells its embedder (the binding) what to do
 * through a small table of callbacks (sl_pool_ops_t). The embedder runs the
 * user's factory functions and reports their outcome back.
 *
 * Vocabulary:
 *   slot    - one resource's place in the pool, by index. The embedder keeps
 *             the resource value itself in an array indexed by slot. States:
 *               FREE        unused; on the free list
 *               CREATING    factory.create is running for it
 *               IDLE        in the idle list, ready to be handed out
 *               BORROWED    on loan to a caller
 *               VALIDATING  factory.validate is running (testOnBorrow)
 *               DESTROYING  factory.destroy is running; no longer counted
 *             A slot only goes back to FREE when the embedder reports that
 *             its create failed or its destroy settled, so an index named in
 *             a callback stays valid until the embedder has acted on it.
 *   waiter  - one queued acquire, identified towards the embedder by the
 *             `token` the embedder chose (the binding uses the index of the
 *             promise's resolving functions). Waiters live in a growable
 *             array and are linked by index, so growing never breaks a link.
 *   queue   - priority_range FIFO levels; level 0 is served first.
 *
 * Counts (size, available, borrowed, pending, spare...) are kept current in
 * caller-provided storage (`counts`, SL_POOL_NCOUNTS doubles) at the end of
 * every public call and timer callback, so the binding can share it with JS
 * as a typed array and reading a count costs no call at all. Inside, every
 * count is an integer.
 *
 * Threads. A pool belongs to the thread of its loop: every function must be
 * called on that thread and there is no lock. Callbacks are called
 * synchronously from inside public functions and timer callbacks; they must
 * not call back into the pool (the binding queues them and acts after the
 * call returns), except `flush`, which is called last, after the core's state
 * is consistent again, and may do anything but free the pool.
 *
 * Timers. Eight uv_timer_t per pool, owned here: acquire timeouts, eviction,
 * create-failure backoff, destroy timeouts, leak detection, and pg-pool's
 * create timeouts, per-resource idle timeouts and lifetimes. Each is armed
 * for the earliest deadline of its list only. Only the acquire-timeout timer
 * is ref'd (as generic-pool's setTimeout is; unref_timeouts turns that off,
 * as pg-pool unrefs its queue timer), and the backoff timer while
 * waiters (or `hold`s) need it; everything else is unref'd, so an idle pool
 * never keeps the process alive. Every deadline and every time stamp counts
 * from the clock read at that moment (uv_update_time first), never from the
 * time libuv cached at the start of the loop iteration.
 *
 * Errors. Like libuv, every function that can fail returns 0 or a negative
 * UV_E* code:
 *   UV_ECANCELED  sl_pool_acquire: the pool is draining (or closed)
 *   UV_EBUSY      sl_pool_acquire: max_waiting clients wait already
 *   UV_ENOMEM     an allocation failed; nothing changed
 *   UV_EINVAL     a report or release for a slot not in that state
 *   UV_ENOENT     sl_pool_cancel: no such queued waiter; sl_pool_tail_token:
 *                 nobody waits
 *
 * pg-pool's rules (bind_creates). generic-pool queues every acquire and
 * creates for the shortfall, handing whatever becomes idle to the head of
 * the queue. pg-pool (the Pool inside `pg`) does otherwise, and its users
 * can see it (waitingCount, which caller gets which client, the order of
 * events), so a pool opened with bind_creates follows its rules instead:
 *   - an acquire that finds no idle resource and room creates one for
 *     itself: the create is bound to that caller (it is not queued and not
 *     pending) and the resource goes to it, whoever else waits;
 *   - otherwise it queues, even if a resource is idle: the embedder serves
 *     it later with sl_pool_dispense (pg-pool does so on process.nextTick);
 *   - one "pulse" serves at most one queued waiter: the most recently idled
 *     resource (fifo = 0), or a create bound to it if there is room. A
 *     release to idle pulses, and so does a settled destroy (room comes
 *     back when the old resource is gone, not when it starts to go) and a
 *     failed create (after its own caller is rejected);
 *   - a failed bound create rejects its caller and is not retried;
 *   - while draining, a pulse destroys idle resources and serves nobody,
 *     and draining rejects every queued waiter (pg-pool leaves them waiting
 *     for ever; see SL_POOL_REASON_DRAINING);
 *   - a caller queued with a timeout keeps its deadline when a pulse
 *     creates for it (pg-pool's queue timer runs from connect()): at that
 *     deadline it is rejected as a queue timeout (SL_POOL_REASON_TIMEOUT)
 *     and the create goes on for the pool, its resource going idle;
 *   - create_timeout bounds a create: at the deadline its caller is
 *     rejected at once and the embedder told to abort the create; the slot
 *     stays CREATING (counted: the connection may still exist) until the
 *     outcome is reported, and a create that succeeds after its caller gave
 *     up is destroyed, never handed out or left idle (pg-pool #3543);
 *   - idle_timeout is a per-resource timer armed when a resource becomes
 *     idle while size > min; when it fires, the resource is destroyed if
 *     size is still above min (min is only a floor there: no_fill);
 *   - expire is a per-resource lifetime from its create: an idle resource
 *     is destroyed then (SL_POOL_EV_EXPIRED first), a borrowed one is
 *     counted expired and destroyed on release.
 * Memory comes from sl_malloc/sl_realloc/sl_free (alloc.h), so tests can
 * make any allocation fail. An allocation that fails where the call cannot
 * be undone any more (a create for a waiter queued already, a refill of
 * `min`) is retried from the backoff timer, as a failed create is.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdint.h>
#include <uv.h>

typedef struct sl_pool_s sl_pool_t;

enum sl_pool_slot_state {
  SL_SLOT_FREE = 0,
  SL_SLOT_CREATING,
  SL_SLOT_IDLE,
  SL_SLOT_BORROWED,
  SL_SLOT_VALIDATING,
  SL_SLOT_DESTROYING
};

/* Why a waiter is rejected. */
enum sl_pool_reason {
  SL_POOL_REASON_TIMEOUT = 1, /* acquire timeout */
  SL_POOL_REASON_CREATE_ERROR =
      2, /* propagate_create_error, or bind_creates: slot's create failed */
  SL_POOL_REASON_CREATE_TIMEOUT = 3, /* bind_creates: its create passed create_timeout */
  SL_POOL_REASON_DRAINING = 4        /* bind_creates: the pool is draining */
};

/* What the pool tells its embedder besides create/destroy/settle. */
enum sl_pool_event {
  SL_POOL_EV_CREATE_ERROR = 1,    /* the create of `slot` failed (slot is FREE now) */
  SL_POOL_EV_DESTROY_TIMEOUT = 2, /* the destroy of `slot` is taking too long */
  SL_POOL_EV_LEAK = 3,            /* `slot` has been borrowed longer than leak_ms */
  SL_POOL_EV_CREATE_TIMEOUT = 4,  /* the create of `slot` passed create_timeout: abort it
                                   * (it is still CREATING until reported) */
  SL_POOL_EV_EXPIRED = 5          /* idle `slot` passed its lifetime; its destroy follows */
};

/* Indexes into the counts storage. */
enum sl_pool_count {
  SL_POOL_SIZE = 0,  /* idle + borrowed + validating + creating */
  SL_POOL_AVAILABLE, /* idle */
  SL_POOL_BORROWED,
  SL_POOL_PENDING, /* queued waiters */
  SL_POOL_SPARE,   /* max - size */
  SL_POOL_CREATING,
  SL_POOL_VALIDATING,
  SL_POOL_DESTROYING,
  SL_POOL_EXPIRED, /* borrowed past their lifetime (expire), destroyed on release */
  SL_POOL_NCOUNTS
};

typedef struct sl_pool_ops_s {
  /* Run the factory's create for `slot`; report with sl_pool_created or
   * sl_pool_create_failed. */
  void (*create)(sl_pool_t* pool, uint32_t slot);
  /* Run the factory's destroy for `slot`; report with sl_pool_destroyed. */
  void (*destroy)(sl_pool_t* pool, uint32_t slot);
  /* Run the factory's validate for `slot`; report with sl_pool_validated. */
  void (*validate)(sl_pool_t* pool, uint32_t slot);
  /* Waiter `token` now borrows `slot`. */
  void (*resolve)(sl_pool_t* pool, uint32_t token, uint32_t slot);
  /* Waiter `token` is rejected (enum sl_pool_reason; `slot` names the failed
   * create for SL_POOL_REASON_CREATE_ERROR). */
  void (*reject)(sl_pool_t* pool, uint32_t token, int reason, uint32_t slot);
  /* enum sl_pool_event. */
  void (*emit)(sl_pool_t* pool, int event, uint32_t slot);
  /* Called at the end of a timer callback that produced any callback above
   * (the embedder should act on what it queued), and after every create
   * retry (the backoff timer), so an embedder that keeps anything alive
   * while a retry is pending learns that it is over. May be NULL. */
  void (*flush)(sl_pool_t* pool);
  /* Called once, after sl_pool_close, when every timer has closed. The pool
   * memory may be freed from here. */
  void (*closed)(sl_pool_t* pool);
} sl_pool_ops_t;

/* Parsed options. Times are milliseconds; 0 turns a feature off unless
 * noted. The embedder does the option parsing (generic-pool's quirks). */
/* The largest count a config may hold: the embedder clamps larger ones (a
 * pool never holds 2^53 resources or waiters, so it is no limit at all). */
#define SL_POOL_COUNT_MAX ((int64_t) 1 << 53)

typedef struct sl_pool_config_s {
  int64_t max;             /* 1 .. SL_POOL_COUNT_MAX */
  int64_t min;             /* may be negative (creates nothing); <= max */
  int64_t max_waiting;     /* >= 0; SL_POOL_COUNT_MAX: no limit */
  int64_t num_tests;       /* per eviction run, >= 0 */
  int64_t max_uses;        /* > 0 to enable */
  uint32_t priority_range; /* 1 .. SL_POOL_MAX_RANGE */
  int fifo;                /* 1: oldest idle first; 0: newest first */
  int test_on_borrow;
  int propagate_create_error;
  double acquire_timeout;   /* > 0 to enable */
  double destroy_timeout;   /* > 0 to enable */
  double eviction_interval; /* > 0 to enable */
  double soft_idle;         /* > 0 to enable */
  double idle;              /* NaN never evicts */
  double max_lifetime;      /* > 0 to enable */
  double leak_ms;           /* > 0 to enable */
  double backoff_min;       /* first create retry delay (ms), e.g. 10 */
  double backoff_max;       /* cap of the doubling delay, e.g. 1000 */
  /* pg-pool's rules (see the top of this file); all 0 for generic-pool. */
  int bind_creates;      /* creates bound to their caller, pulses */
  int no_fill;           /* min is an idle floor only: nothing is created for it */
  int unref_timeouts;    /* the acquire-timeout timer does not keep the loop alive */
  double create_timeout; /* > 0 to enable */
  double idle_timeout;   /* > 0 to enable: per-resource idle timer */
  double expire;         /* > 0 to enable: per-resource lifetime timer */
} sl_pool_config_t;

/* Index-linked list node and list. -1 is "none". */
typedef struct sl_link_s {
  int32_t prev;
  int32_t next;
} sl_link_t;

typedef struct sl_list_s {
  int32_t head;
  int32_t tail;
  uint32_t len;
} sl_list_t;

typedef struct sl_pool_slot_s {
  sl_link_t link;    /* idle list, or the free list (next only) */
  sl_link_t aux;     /* leak list while BORROWED, destroy list while DESTROYING,
                      * create-timeout list while CREATING, idle-timeout list
                      * while IDLE: one deadline list per state */
  sl_link_t life;    /* the lifetime list (expire), in any state but DESTROYING */
  double idle_since; /* when it last became idle */
  double created_at; /* when its create succeeded */
  double deadline;   /* the deadline of its aux list */
  double expires;    /* its lifetime deadline */
  double create_end; /* CREATING: the create timeout's deadline */
  uint64_t uses;     /* times handed out */
  uint64_t idle_seq; /* pool-wide sequence of its last idle push (eviction cursor) */
  uint32_t token;    /* bind_creates: the caller its create is for, if bound */
  uint8_t state;     /* enum sl_pool_slot_state */
  uint8_t on_aux;    /* linked in its state's deadline list */
  uint8_t on_life;   /* linked in the lifetime list */
  uint8_t bound;     /* CREATING for `token` */
  uint8_t abandoned; /* CREATING, but its caller gave up (create timeout) */
  uint8_t for_queue; /* CREATING: `deadline` is its caller's queue deadline */
  uint8_t orphan;    /* CREATING: its caller's queue deadline passed first */
  uint8_t expired;   /* BORROWED past its lifetime */
} sl_pool_slot_t;

typedef struct sl_pool_waiter_s {
  sl_link_t link;  /* its priority level, or the free list (next only) */
  sl_link_t tlink; /* the timeout list */
  double deadline;
  uint32_t token;
  uint32_t level;
  uint8_t queued;
  uint8_t timed; /* in the timeout list */
} sl_pool_waiter_t;

struct sl_pool_s {
  void* data; /* the embedder's */
  uv_loop_t* loop;
  const sl_pool_ops_t* ops;
  sl_pool_config_t cfg;
  double* counts; /* SL_POOL_NCOUNTS, caller-provided */

  sl_pool_slot_t* slots;
  uint32_t nslots; /* high-water mark */
  uint32_t cap_slots;
  int32_t free_slot; /* free list head through link.next */

  sl_pool_waiter_t* waiters;
  uint32_t nwaiters;
  uint32_t cap_waiters;
  int32_t free_waiter;

  sl_list_t* levels;  /* priority_range FIFOs of waiters */
  uint32_t min_level; /* no level below this is non-empty */
  sl_list_t timeouts; /* waiters with a deadline, by deadline */
  sl_list_t idle;     /* IDLE slots, head is dispatched first */
  sl_list_t leaks;    /* BORROWED slots not yet reported, by deadline */
  sl_list_t destroys; /* DESTROYING slots with a deadline */
  sl_list_t creates;  /* CREATING slots with a deadline (create_timeout) */
  sl_list_t idles;    /* IDLE slots with a deadline (idle_timeout) */
  sl_list_t lives;    /* slots with a lifetime (expire), by deadline */

  uint32_t ncreating;
  uint32_t nborrowed;
  uint32_t nvalidating;
  uint32_t ndestroying;
  uint32_t npending;
  uint32_t nexpired;

  int32_t evict_last; /* slot examined last by the evictor, or -1 */
  uint64_t evict_seq; /* its idle_seq then */
  uint64_t idle_seq;  /* last idle_seq handed out: pool-wide, so a
                              * reused slot never matches a stale cursor */

  double backoff;     /* next create retry delay */
  int backoff_active; /* creates wait for the backoff timer */
  int32_t holds;      /* sl_pool_hold: reasons to keep the loop alive */

  int started;
  int draining;
  int drain_waiting; /* draining: the evictor stops once empty */
  int closing;
  int open_timers;
  int produced; /* a callback was made since the last flush */

  int32_t sync_waiter; /* the waiter of the acquire in progress */
  int32_t sync_slot;   /* the slot it got, or -1 */

  uv_timer_t timeout_timer;
  uv_timer_t evict_timer;
  uv_timer_t backoff_timer;
  uv_timer_t destroy_timer;
  uv_timer_t leak_timer;
  uv_timer_t create_timer;
  uv_timer_t idle_timer;
  uv_timer_t expire_timer;
};

/* The most priority levels a pool may have: the level array costs 12 bytes
 * per level, allocated up front (generic-pool allocates one queue object
 * per level). */
#define SL_POOL_MAX_RANGE (1u << 20)

/* Initializes the pool and its timers on `loop`. Does not start it (no
 * creates, no evictor): call sl_pool_start. Returns 0, UV_ENOMEM, or
 * UV_EINVAL (priority_range out of range). On failure nothing is left open
 * or allocated. */
int sl_pool_open(sl_pool_t* pool, uv_loop_t* loop, const sl_pool_config_t* cfg,
                 const sl_pool_ops_t* ops, double* counts, void* data);

/* Schedules the evictor and creates `min` resources. A no-op if draining or
 * started already. */
void sl_pool_start(sl_pool_t* pool);
int sl_pool_started(const sl_pool_t* pool);

/* Whether an acquire would be accepted now: 0, UV_ECANCELED (draining or
 * closed) or UV_EBUSY (max_waiting reached; generic-pool counts a pool
 * full only when no resource is idle and none can be created). Changes
 * nothing: the embedder may ask before it runs user code that an acquire
 * must not run when refused. */
int sl_pool_check(const sl_pool_t* pool);

/* The outcome of an accepted acquire. */
typedef struct sl_pool_acquired_s {
  int granted;     /* 1: `slot` is borrowed by the caller now (no resolve
                    * callback is made for it); 0: a waiter is queued */
  uint32_t slot;   /* granted: the slot */
  uint32_t waiter; /* queued: the waiter's index, for sl_pool_cancel */
} sl_pool_acquired_t;

/* Queues an acquire at `priority` (generic-pool semantics: 0 is served
 * first; negative or out of range is the lowest level) and dispenses; the
 * caller's own waiter may be served within the call (out->granted). Returns
 * 0, or UV_ECANCELED, UV_EBUSY (see sl_pool_check) or UV_ENOMEM, with
 * nothing queued and nothing changed. */
int sl_pool_acquire(sl_pool_t* pool, int32_t priority, uint32_t token, sl_pool_acquired_t* out);

/* Removes a queued waiter (abort). Returns 0, or UV_ENOENT if waiter `index`
 * is not queued with `token`. No reject callback is made: the caller settles. */
int sl_pool_cancel(sl_pool_t* pool, uint32_t index, uint32_t token);

/* A borrowed slot comes back. It is destroyed instead when it reached
 * max_uses or max_lifetime. Returns 0, or UV_EINVAL if it is not borrowed. */
int sl_pool_release(sl_pool_t* pool, uint32_t slot);

/* A borrowed slot is destroyed. Returns 0, or UV_EINVAL if not borrowed. */
int sl_pool_destroy(sl_pool_t* pool, uint32_t slot);

/* A borrowed or idle slot is destroyed (an idle resource reported broken:
 * pg's idle client errors). Returns 0, or UV_EINVAL in any other state. */
int sl_pool_remove(sl_pool_t* pool, uint32_t slot);

/* Reports the outcome of a create, a destroy, a validate. A report for a
 * slot that is not in the matching state returns UV_EINVAL and changes
 * nothing. sl_pool_created only puts the resource in the idle list: the
 * embedder calls sl_pool_dispense when it wants waiters served (generic-pool
 * dispenses a few microtasks after the resource became idle). */
int sl_pool_created(sl_pool_t* pool, uint32_t slot);
int sl_pool_create_failed(sl_pool_t* pool, uint32_t slot);
int sl_pool_destroyed(sl_pool_t* pool, uint32_t slot);
int sl_pool_validated(sl_pool_t* pool, uint32_t slot, int valid);

/* Hands idle resources to waiters and creates for the shortfall (with
 * bind_creates: one pulse). */
void sl_pool_dispense(sl_pool_t* pool);

/* The token of the waiter that would be served last (the tail of the lowest
 * non-empty priority level, generic-pool's _waitingClientsQueue.tail) in
 * *token. Returns 0, or UV_ENOENT if none waits. */
int sl_pool_tail_token(const sl_pool_t* pool, uint32_t* token);

/* Stops accepting acquires (queued ones are still served, except with
 * bind_creates: they are rejected, SL_POOL_REASON_DRAINING). The evictor
 * stops once no waiter is queued and nothing is borrowed; the embedder
 * tracks the drain's completion itself (generic-pool follows the last
 * waiter's and the loans' promises). */
void sl_pool_drain(sl_pool_t* pool);

/* Destroys every idle slot (min is refilled unless draining). */
void sl_pool_clear_idle(sl_pool_t* pool);

/* +1/-1: someone (ready()) waits for resources, so a create retry should
 * keep the loop alive like a waiter does. */
void sl_pool_hold(sl_pool_t* pool, int delta);

/* The state of a slot (FREE for an index out of range). */
int sl_pool_slot_state(const sl_pool_t* pool, uint32_t slot);

/* Teardown: stops and closes every timer and forgets every waiter (no
 * callbacks but `closed`, which comes from the last close callback). The
 * pool must not be used afterwards, except that reports for slots are
 * ignored until `closed` has run. */
void sl_pool_close(sl_pool_t* pool);

/* Frees the arrays. Call after `closed` (never after a failed open). */
void sl_pool_free(sl_pool_t* pool);

#endif /* SLUICE_POOL_H */
