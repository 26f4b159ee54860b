/* sluice: the Node-API binding of the pool core (src/core/pool.c).
 *
 * JS gets, per pool, three functions created with the pool handle as their
 * `data` (no unwrap per call) and one ArrayBuffer shared with C:
 *
 *   acquire(priority, token) -> slot >= 0 (borrowed now), or
 *       SL_ACQ_QUEUED (the waiter index is in hdr[SL_HDR_WAITER]),
 *       SL_ACQ_DRAINING or SL_ACQ_FULL (max waiting clients reached)
 *   release(slot) -> true, or false if the slot is not borrowed
 *   ctl(op, a, b) -> everything else (reports of factory outcomes, drain...)
 *
 *   buffer: counts (Float64Array, SL_POOL_NCOUNTS, kept current by the core),
 *       then a header and a window of events (Int32Array).
 *
 * Events. The core's callbacks (create this slot, resolve that waiter...)
 * are queued as [op, a, b] triples: into the shared window while it has
 * room and nothing older is waiting, else into an overflow queue in C. JS
 * consumes the window with a cursor that lives in the shared header (so a
 * re-entrant consumer, e.g. a factory.create that calls acquire, continues
 * from the same place and order is kept), and calls ctl(REFILL) when the
 * window is used up and hdr[SL_HDR_MORE] says more are queued. After a call
 * from JS, JS consumes what the call produced. From a libuv timer, the core
 * calls `flush`, which calls the pool's JS pump function inside one callback
 * scope (so the microtasks of the whole batch run once, when it closes).
 *
 * No promise is created here: JS makes its own (cheaper than
 * napi_create_promise: about 50 against 250 ns, measured on Node 20) and keeps the resolving functions by
 * token; C only says which token gets which slot. No user code runs inside
 * these functions either: arguments are plain numbers (a number that is not
 * one is refused, never coerced), so nothing can re-enter mid-operation.
 *
 * Lifetime. The JS pool holds its three functions and its pump; C holds the
 * pump strongly only while a libuv callback of C's own could still need it
 * (sl__ph_keepalive). Otherwise a dropped pool, even with queued acquires,
 * is collected, and the functions' finalizers close the C pool.
 */
#include "pool.h"

#include "../core/alloc.h"
#include "../core/pool.h"
#include "protocol.h"

#include <math.h>
#include <string.h>

#define SL_WINDOW SL_POOL_EVENT_WINDOW
#define SL_COUNTS_BYTES (SL_POOL_NCOUNTS * sizeof(double))
#define SL_BUFFER_BYTES (SL_COUNTS_BYTES + (SL_HDR_SIZE + 3 * SL_WINDOW) * sizeof(int32_t))

/* The binding's per-env state: the env's pools, for teardown. */
typedef struct sl_penv_s {
  sl_env_t* senv;
  struct sl_pool_handle_s* pools;
} sl_penv_t;

/* One pool as JS sees it. Owned by its three JS functions: when the last is
 * finalized, the pool is closed and the handle is freed once its timers have
 * closed (or at once, if env teardown closed them already). */
typedef struct sl_pool_handle_s {
  sl_pool_t pool;
  sl_env_t* senv;
  sl_penv_t* penv;
  struct sl_pool_handle_s* next; /* penv->pools */
  struct sl_pool_handle_s* prev;
  napi_ref buffer;    /* the shared ArrayBuffer: keeps `counts` alive */
  napi_ref pump;      /* JS: consumes events (weak unless needed) */
  uint32_t pump_refs; /* 0 or 1 */
  int32_t* hdr;
  int32_t* win;
  int32_t* q; /* overflow events, [qhead, qtail) triples */
  uint32_t qhead;
  uint32_t qtail;
  uint32_t qcap;
  uint32_t refs;     /* JS functions alive */
  int timers_closed; /* the core's `closed` has run */
} sl_pool_handle_t;

static sl_pool_handle_t* sl__ph_of(sl_pool_t* pool) {
  return pool->data;
}

/* ------------------------------------------------------------- events --- */

/* Grows the overflow queue for one more event. Losing an event would lose a
 * promise or a resource, and there is no way to report a failure from
 * inside the core's callbacks: give up loudly. */
static void sl__ph_q_grow(sl_pool_handle_t* h) {
  uint32_t cap = h->qcap ? h->qcap * 2 : 3 * 1024;
  int32_t* q = sl_realloc(h->q, cap * sizeof(*q));
  if (q == NULL)
    sl_fatal("out of memory queueing a pool event");
  h->q = q;
  h->qcap = cap;
}

static void sl__ph_ev_push(sl_pool_handle_t* h, int32_t op, int32_t a, int32_t b) {
  int32_t* hdr = h->hdr;
  if (h->qhead == h->qtail) {
    /* Nothing older waits in C, so the event may go to the window. */
    if (hdr[SL_HDR_POS] == hdr[SL_HDR_LEN])
      hdr[SL_HDR_POS] = hdr[SL_HDR_LEN] = 0;
    if (hdr[SL_HDR_LEN] < SL_WINDOW) {
      int32_t* e = &h->win[3 * hdr[SL_HDR_LEN]];
      e[0] = op;
      e[1] = a;
      e[2] = b;
      hdr[SL_HDR_LEN]++;
      return;
    }
    h->qhead = h->qtail = 0;
  }
  if (h->qtail + 3 > h->qcap)
    sl__ph_q_grow(h);
  h->q[h->qtail++] = op;
  h->q[h->qtail++] = a;
  h->q[h->qtail++] = b;
  hdr[SL_HDR_MORE]++;
}

/* Moves queued events into the window once JS has consumed it. */
static void sl__ph_ev_refill(sl_pool_handle_t* h) {
  int32_t* hdr = h->hdr;
  uint32_t n = 0;
  if (hdr[SL_HDR_POS] != hdr[SL_HDR_LEN])
    return;
  while (h->qhead < h->qtail && n < SL_WINDOW) {
    memcpy(&h->win[3 * n], &h->q[h->qhead], 3 * sizeof(int32_t));
    h->qhead += 3;
    n++;
  }
  if (h->qhead == h->qtail)
    h->qhead = h->qtail = 0;
  hdr[SL_HDR_POS] = 0;
  hdr[SL_HDR_LEN] = (int32_t) n;
  hdr[SL_HDR_MORE] -= (int32_t) n;
}

static void sl__ph_op_create(sl_pool_t* p, uint32_t slot) {
  sl__ph_ev_push(sl__ph_of(p), SL_EV_CREATE, (int32_t) slot, 0);
}
static void sl__ph_op_destroy(sl_pool_t* p, uint32_t slot) {
  sl__ph_ev_push(sl__ph_of(p), SL_EV_DESTROY, (int32_t) slot, 0);
}
static void sl__ph_op_validate(sl_pool_t* p, uint32_t slot) {
  sl__ph_ev_push(sl__ph_of(p), SL_EV_VALIDATE, (int32_t) slot, 0);
}
static void sl__ph_op_resolve(sl_pool_t* p, uint32_t token, uint32_t slot) {
  sl__ph_ev_push(sl__ph_of(p), SL_EV_RESOLVE, (int32_t) token, (int32_t) slot);
}
static void sl__ph_op_reject(sl_pool_t* p, uint32_t token, int reason, uint32_t slot) {
  int32_t op;
  switch (reason) {
    case SL_POOL_REASON_TIMEOUT: op = SL_EV_REJECT_TIMEOUT; break;
    case SL_POOL_REASON_CREATE_TIMEOUT: op = SL_EV_REJECT_CREATE_TIMEOUT; break;
    case SL_POOL_REASON_DRAINING: op = SL_EV_REJECT_DRAINING; break;
    default: op = SL_EV_REJECT_CREATE; break;
  }
  sl__ph_ev_push(sl__ph_of(p), op, (int32_t) token, (int32_t) slot);
}
static void sl__ph_op_emit(sl_pool_t* p, int event, uint32_t slot) {
  int32_t op;
  switch (event) {
    case SL_POOL_EV_CREATE_ERROR: op = SL_EV_CREATE_ERROR; break;
    case SL_POOL_EV_DESTROY_TIMEOUT: op = SL_EV_DESTROY_TIMEOUT; break;
    case SL_POOL_EV_LEAK: op = SL_EV_LEAK; break;
    case SL_POOL_EV_CREATE_TIMEOUT: op = SL_EV_CREATE_TIMEOUT; break;
    case SL_POOL_EV_EXPIRED: op = SL_EV_EXPIRED; break;
    default: return;
  }
  sl__ph_ev_push(sl__ph_of(p), op, (int32_t) slot, 0);
}

/* C holds the pool's JS (through the pump, which holds the pool) only while
 * a libuv callback of C's own could still need to call it: an acquire
 * timeout, a create retry, a leak or destroy deadline, the evictor (as
 * generic-pool's evictor setTimeout holds its pool). Queued waiters alone
 * do not count: only a call from JS could serve them, and nobody can make
 * one once the pool is unreachable. Nor do factory calls in flight: their
 * promise chains reference the pool themselves, for as long as anything can
 * settle them. */
static int sl__ph_needs_js(const sl_pool_t* p) {
  return p->timeouts.len > 0 || p->backoff_active || p->leaks.len > 0 || p->destroys.len > 0 ||
         p->creates.len > 0 || p->idles.len > 0 || p->lives.len > 0 ||
         uv_is_active((const uv_handle_t*) &p->evict_timer);
}

static void sl__ph_keepalive(sl_pool_handle_t* h) {
  napi_env env = h->senv->env;
  int need;
  if (h->pool.closing || h->pump == NULL)
    return;
  need = sl__ph_needs_js(&h->pool);
  if (need && h->pump_refs == 0)
    SL_CHECK_VOID(env, napi_reference_ref(env, h->pump, &h->pump_refs));
  else if (!need && h->pump_refs == 1)
    SL_CHECK_VOID(env, napi_reference_unref(env, h->pump, &h->pump_refs));
}

/* Calls the pump, if it is still alive. A failure leaves an exception
 * pending, which the caller's sl_scope_close reports. */
static void sl__ph_call_pump(sl_pool_handle_t* h) {
  napi_env env = h->senv->env;
  napi_value fn = NULL, recv, ret;
  SL_CHECK_VOID(env, napi_get_reference_value(env, h->pump, &fn));
  if (fn == NULL)
    return; /* collected: nobody is left to tell */
  SL_CHECK_VOID(env, napi_get_undefined(env, &recv));
  SL_CHECK_VOID(env, napi_call_function(env, recv, fn, 0, NULL, &ret));
}

/* From a timer callback: let JS act on the events, in one callback scope. */
static void sl__ph_op_flush(sl_pool_t* p) {
  sl_pool_handle_t* h = sl__ph_of(p);
  sl_env_t* senv = h->senv;
  sl_scope_t scope;
  if (senv->closing || p->closing || h->pump == NULL)
    return;
  if (sl_scope_open(senv, &scope) != 0)
    return;
  sl__ph_call_pump(h);
  sl__ph_keepalive(h);
  sl_scope_close(senv, &scope);
}

static void sl__ph_free(sl_pool_handle_t* h) {
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    h->penv->pools = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  sl_pool_free(&h->pool);
  sl_free(h->q);
  sl_free(h);
}

/* Every timer of the pool has closed. */
static void sl__ph_op_closed(sl_pool_t* p) {
  sl_pool_handle_t* h = sl__ph_of(p);
  h->timers_closed = 1;
  sl_env_handle_closed(h->senv);
  if (h->refs == 0)
    sl__ph_free(h);
}

static const sl_pool_ops_t sl__ph_ops = {sl__ph_op_create,  sl__ph_op_destroy, sl__ph_op_validate,
                                         sl__ph_op_resolve, sl__ph_op_reject,  sl__ph_op_emit,
                                         sl__ph_op_flush,   sl__ph_op_closed};

/* ------------------------------------------------------------ methods --- */

static napi_value sl__ph_int(napi_env env, int32_t n) {
  napi_value v;
  SL_CHECK(env, napi_create_int32(env, n, &v));
  return v;
}

/* The pool's answer to a refused acquire, as JS reads it. */
static int32_t sl__ph_refusal(int err) {
  return err == UV_ECANCELED ? SL_ACQ_DRAINING : err == UV_EBUSY ? SL_ACQ_FULL : 0;
}

/* The handle and `n` arguments of a call; -1 with a TypeError pending if
 * fewer were passed. */
static int sl__ph_args(napi_env env, napi_callback_info info, size_t n, napi_value* argv,
                       sl_pool_handle_t** h, const char* usage) {
  size_t argc = n;
  void* data;
  SL_CHECK_INT(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  *h = data;
  if (argc < n)
    return sl_throw_type(env, usage);
  return 0;
}

static napi_value sl__pool_acquire(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  sl_pool_handle_t* h;
  sl_pool_acquired_t got;
  int64_t priority, token;
  int r;

  if (sl__ph_args(env, info, 2, argv, &h, "acquire(priority, token)") != 0)
    return NULL;
  if (sl_arg_integer(env, argv[0], "priority", INT32_MIN, INT32_MAX, &priority) != 0 ||
      sl_arg_integer(env, argv[1], "token", 0, UINT32_MAX, &token) != 0)
    return NULL;
  r = sl_pool_acquire(&h->pool, (int32_t) priority, (uint32_t) token, &got);
  sl__ph_keepalive(h);
  if (r == UV_ENOMEM) {
    sl_throw_uv(env, r);
    return NULL;
  }
  if (r != 0)
    return sl__ph_int(env, sl__ph_refusal(r));
  if (got.granted)
    return sl__ph_int(env, (int32_t) got.slot);
  h->hdr[SL_HDR_WAITER] = (int32_t) got.waiter;
  return sl__ph_int(env, SL_ACQ_QUEUED);
}

static napi_value sl__pool_release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  sl_pool_handle_t* h;
  int64_t slot;
  int r;

  if (sl__ph_args(env, info, 1, argv, &h, "release(slot)") != 0)
    return NULL;
  if (sl_arg_integer(env, argv[0], "slot", 0, UINT32_MAX, &slot) != 0)
    return NULL;
  r = sl_pool_release(&h->pool, (uint32_t) slot);
  sl__ph_keepalive(h);
  return sl_bool(env, r == 0);
}

/* Runs ctl operation `op`; *result stays NULL (undefined) unless it has
 * one. Returns -1 with a RangeError pending for an unknown op. */
static int sl__ph_ctl(napi_env env, sl_pool_handle_t* h, int32_t op, uint32_t a, uint32_t b,
                      napi_value* result) {
  sl_pool_t* p = &h->pool;
  uint32_t token;
  switch (op) {
    case SL_PCTL_DESTROY: *result = sl_bool(env, sl_pool_destroy(p, a) == 0); break;
    case SL_PCTL_CREATED: *result = sl_bool(env, sl_pool_created(p, a) == 0); break;
    case SL_PCTL_CREATE_FAILED: *result = sl_bool(env, sl_pool_create_failed(p, a) == 0); break;
    case SL_PCTL_DESTROYED: *result = sl_bool(env, sl_pool_destroyed(p, a) == 0); break;
    case SL_PCTL_VALIDATED: *result = sl_bool(env, sl_pool_validated(p, a, b != 0) == 0); break;
    case SL_PCTL_CANCEL: *result = sl_bool(env, sl_pool_cancel(p, a, b) == 0); break;
    case SL_PCTL_DRAIN: sl_pool_drain(p); break;
    case SL_PCTL_CLEAR_IDLE: sl_pool_clear_idle(p); break;
    case SL_PCTL_HOLD: sl_pool_hold(p, a ? 1 : -1); break;
    case SL_PCTL_STATE: *result = sl__ph_int(env, sl_pool_slot_state(p, a)); break;
    case SL_PCTL_START: sl_pool_start(p); break;
    case SL_PCTL_STARTED: *result = sl_bool(env, sl_pool_started(p)); break;
    case SL_PCTL_REFILL: sl__ph_ev_refill(h); break;
    case SL_PCTL_DISPENSE: sl_pool_dispense(p); break;
    case SL_PCTL_TAIL:
      *result = sl__ph_int(env, sl_pool_tail_token(p, &token) == 0 ? (int32_t) token : -1);
      break;
    case SL_PCTL_CHECK: *result = sl__ph_int(env, sl__ph_refusal(sl_pool_check(p))); break;
    case SL_PCTL_REMOVE: *result = sl_bool(env, sl_pool_remove(p, a) == 0); break;
    default: return sl_throw_range(env, "Unknown pool operation");
  }
  return 0;
}

static napi_value sl__pool_ctl(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void* data;
  sl_pool_handle_t* h;
  int64_t op, a, b;
  napi_value result = NULL;

  /* Arguments not passed read as undefined (argv is filled up to 3). */
  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  if (sl_arg_integer(env, argv[0], "op", 0, SL_PCTL_COUNT_ - 1, &op) != 0 ||
      sl_arg_int(env, argv[1], "a", 0, UINT32_MAX, 0, &a) != 0 ||
      sl_arg_int(env, argv[2], "b", 0, UINT32_MAX, 0, &b) != 0)
    return NULL;
  if (sl__ph_ctl(env, h, (int32_t) op, (uint32_t) a, (uint32_t) b, &result) != 0)
    return NULL;
  sl__ph_keepalive(h);
  return result;
}

/* ----------------------------------------------------------- lifetime --- */

/* Deletes a reference at the end of a handle's life. It fails only at env
 * teardown, when the env has deleted its references itself: nothing is
 * left to release then, so the status is deliberately not acted on. */
static void sl__ph_unref(napi_env env, napi_ref* ref) {
  napi_status st;
  if (*ref == NULL)
    return;
  st = napi_delete_reference(env, *ref);
  (void) st;
  *ref = NULL;
}

/* Runs once per JS function of the pool. At env teardown finalizers run
 * after the cleanup hook, which closed the timers already. */
static void sl__pool_finalize(napi_env env, void* data, void* hint) {
  sl_pool_handle_t* h = data;
  (void) hint;
  if (--h->refs > 0)
    return;
  sl__ph_unref(env, &h->pump);
  sl__ph_unref(env, &h->buffer);
  if (h->timers_closed)
    sl__ph_free(h);
  else
    sl_pool_close(&h->pool); /* frees in sl__ph_op_closed */
}

/* Env teardown: close every pool's timers. Queued waiters are dropped:
 * their promises cannot be settled any more. */
static void sl__ph_penv_teardown(sl_env_t* senv, void* data) {
  sl_penv_t* penv = data;
  sl_pool_handle_t* h;
  (void) senv;
  for (h = penv->pools; h != NULL; h = h->next)
    if (!h->pool.closing)
      sl_pool_close(&h->pool);
}

static void sl__ph_penv_free(sl_env_t* senv, void* data) {
  (void) senv;
  sl_free(data);
}

/* ------------------------------------------------------------ new pool --- */

/* A count from the config array, clamped to [lo, hi] and rounded up
 * (generic-pool compares its counts with < and >=, so 2.5 acts as 3); `nan`
 * for NaN. */
static int64_t sl__ph_count(double d, int64_t lo, int64_t hi, int64_t nan) {
  if (d != d)
    return nan;
  if (d <= (double) lo)
    return lo;
  if (d >= (double) hi)
    return hi;
  return (int64_t) ceil(d);
}

/* The core's config from the JS config array (lib/generic-pool.js has
 * applied generic-pool's parsing rules; this only makes it safe). */
static void sl__ph_config(const double* c, sl_pool_config_t* cfg) {
  const int64_t big = SL_POOL_COUNT_MAX;
  memset(cfg, 0, sizeof(*cfg));
  cfg->max = sl__ph_count(floor(c[SL_CFG_MAX]), 1, big, 1);
  cfg->min = sl__ph_count(c[SL_CFG_MIN], -big, cfg->max, 0);
  /* NaN: no limit. A negative limit acts as 0 (npending >= -1 always). */
  cfg->max_waiting = sl__ph_count(c[SL_CFG_MAX_WAITING], 0, big, big);
  /* NaN: no tests (generic-pool: Math.min(NaN, n) runs none). */
  cfg->num_tests = sl__ph_count(c[SL_CFG_NUM_TESTS], 0, big, 0);
  cfg->max_uses = sl__ph_count(c[SL_CFG_MAX_USES], 0, big, 0);
  cfg->priority_range = (uint32_t) c[SL_CFG_PRIORITY_RANGE]; /* checked by the caller */
  cfg->fifo = c[SL_CFG_FIFO] != 0;
  cfg->test_on_borrow = c[SL_CFG_TEST_ON_BORROW] != 0;
  cfg->propagate_create_error = c[SL_CFG_PROPAGATE] != 0;
  cfg->acquire_timeout = c[SL_CFG_ACQUIRE_TIMEOUT];
  cfg->destroy_timeout = c[SL_CFG_DESTROY_TIMEOUT];
  cfg->eviction_interval = c[SL_CFG_EVICTION_INTERVAL];
  cfg->soft_idle = c[SL_CFG_SOFT_IDLE];
  cfg->idle = c[SL_CFG_IDLE];
  cfg->max_lifetime = c[SL_CFG_MAX_LIFETIME];
  cfg->leak_ms = c[SL_CFG_LEAK];
  cfg->backoff_min = c[SL_CFG_BACKOFF_MIN];
  cfg->backoff_max = c[SL_CFG_BACKOFF_MAX];
  cfg->bind_creates = c[SL_CFG_BIND_CREATES] != 0;
  cfg->no_fill = c[SL_CFG_NO_FILL] != 0;
  cfg->unref_timeouts = c[SL_CFG_UNREF_TIMEOUTS] != 0;
  cfg->create_timeout = c[SL_CFG_CREATE_TIMEOUT];
  cfg->idle_timeout = c[SL_CFG_IDLE_TIMEOUT];
  cfg->expire = c[SL_CFG_EXPIRE];
}

/* pool(config, pump): the config Float64Array's data, checked. Returns 0,
 * or -1 with an error pending. */
static int sl__ph_parse(napi_env env, const napi_value* argv, const double** config) {
  napi_typedarray_type type;
  napi_valuetype t;
  size_t len = 0;
  void* data = NULL;
  bool is_ta = false;
  double range;

  SL_CHECK_INT(env, napi_is_typedarray(env, argv[0], &is_ta));
  if (is_ta)
    SL_CHECK_INT(env, napi_get_typedarray_info(env, argv[0], &type, &len, &data, NULL, NULL));
  if (!is_ta || type != napi_float64_array || len < SL_CFG_COUNT)
    return sl_throw_type(env, "Expected `config` to be a Float64Array");
  SL_CHECK_INT(env, napi_typeof(env, argv[1], &t));
  if (t != napi_function)
    return sl_throw_type(env, "Expected `pump` to be a function");
  range = ((const double*) data)[SL_CFG_PRIORITY_RANGE];
  if (!(range >= 1 && range <= SL_POOL_MAX_RANGE))
    return sl_throw_range(env, "Expected `priorityRange` to be at most 1048576");
  *config = data;
  return 0;
}

/* A handle with its pool open on the env's loop, linked into the env's
 * list. NULL with an error pending on failure, nothing left behind. */
static sl_pool_handle_t* sl__ph_open(napi_env env, sl_penv_t* penv, const double* config,
                                     void* buffer) {
  sl_env_t* senv = penv->senv;
  sl_pool_config_t cfg;
  sl_pool_handle_t* h;
  int r;

  sl__ph_config(config, &cfg);
  h = sl_calloc(1, sizeof(*h));
  if (h == NULL) {
    sl_throw_uv(env, UV_ENOMEM);
    return NULL;
  }
  h->senv = senv;
  h->penv = penv;
  h->hdr = (int32_t*) ((char*) buffer + SL_COUNTS_BYTES);
  h->win = h->hdr + SL_HDR_SIZE;
  r = sl_pool_open(&h->pool, senv->loop, &cfg, &sl__ph_ops, (double*) buffer, h);
  if (r != 0) {
    sl_free(h);
    sl_throw_uv(env, r);
    return NULL;
  }
  sl_env_handle_opened(senv);
  h->next = penv->pools;
  if (h->next != NULL)
    h->next->prev = h;
  penv->pools = h;
  return h;
}

/* [acquire, release, ctl, buffer] for an open handle. Each function owns a
 * share of the handle (h->refs) through its finalizer. On failure the
 * functions made so far are garbage whose finalizers close the pool; if
 * none was made, the pool is closed here, as a last finalizer would. */
static napi_value sl__ph_functions(napi_env env, sl_pool_handle_t* h, napi_value pump,
                                   napi_value ab) {
  static const struct {
    const char* name;
    napi_callback cb;
  } fns[3] = {{"acquire", sl__pool_acquire}, {"release", sl__pool_release}, {"ctl", sl__pool_ctl}};
  napi_value arr, fn;
  napi_status st;
  uint32_t i;

  st = napi_create_reference(env, ab, 1, &h->buffer);
  if (st == napi_ok)
    st = napi_create_reference(env, pump, 0, &h->pump);
  if (st == napi_ok)
    st = napi_create_array_with_length(env, 4, &arr);
  for (i = 0; i < 3 && st == napi_ok; i++) {
    st = napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, h, &fn);
    if (st == napi_ok)
      st = napi_add_finalizer(env, fn, h, sl__pool_finalize, NULL, NULL);
    if (st == napi_ok) {
      h->refs++;
      st = napi_set_element(env, arr, i, fn);
    }
  }
  if (st == napi_ok)
    st = napi_set_element(env, arr, 3, ab);
  if (st == napi_ok)
    return arr;
  sl_throw_status(env, st, "making the pool's functions");
  if (h->refs == 0) {
    h->refs = 1;
    sl__pool_finalize(env, h, NULL);
  }
  return NULL;
}

/* pool(config Float64Array, pump) -> [acquire, release, ctl, buffer] */
static napi_value sl__pool_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ab;
  void* pdata = NULL;
  void* buffer = NULL;
  const double* config = NULL;
  sl_penv_t* penv;
  sl_pool_handle_t* h;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &pdata));
  penv = pdata;
  if (argc < 2) {
    sl_throw_type(env, "pool(config, pump)");
    return NULL;
  }
  if (sl__ph_parse(env, argv, &config) != 0)
    return NULL;
  if (penv->senv->closing) {
    sl_throw_error(env, "ERR_SLUICE_CLOSING", "sluice: the environment is shutting down");
    return NULL;
  }
  SL_CHECK(env, napi_create_arraybuffer(env, SL_BUFFER_BYTES, &buffer, &ab));
  memset(buffer, 0, SL_BUFFER_BYTES);
  h = sl__ph_open(env, penv, config, buffer);
  if (h == NULL)
    return NULL;
  return sl__ph_functions(env, h, argv[1], ab);
}

static sl_penv_t* sl__ph_penv_of(sl_env_t* senv) {
  uint32_t i;
  for (i = 0; i < senv->nparts; i++)
    if (senv->parts[i].teardown == sl__ph_penv_teardown)
      return senv->parts[i].data;
  return NULL;
}

int sl_pool_binding_counts(sl_env_t* senv, napi_value obj) {
  napi_env env = senv->env;
  sl_penv_t* penv = sl__ph_penv_of(senv);
  sl_pool_handle_t* h;
  double pools = 0, waiters = 0, timers = 0;
  for (h = penv != NULL ? penv->pools : NULL; h != NULL; h = h->next) {
    pools += 1;
    waiters += h->pool.npending;
    timers += h->pool.open_timers;
  }
  SL_CHECK_INT(env, napi_set_named_property(env, obj, "pools", sl_number(env, pools)));
  SL_CHECK_INT(env, napi_set_named_property(env, obj, "poolWaiters", sl_number(env, waiters)));
  SL_CHECK_INT(env, napi_set_named_property(env, obj, "poolTimers", sl_number(env, timers)));
  return 0;
}

/* ---------------------------------------------------------------- init --- */

int sl_pool_binding_init(sl_env_t* senv, napi_value exports) {
  napi_env env = senv->env;
  sl_env_part_t part;
  sl_penv_t* penv;
  napi_value fn;
  int r;

  penv = sl_calloc(1, sizeof(*penv));
  if (penv == NULL)
    return sl_throw_uv(env, UV_ENOMEM);
  penv->senv = senv;
  part.teardown = sl__ph_penv_teardown;
  part.free = sl__ph_penv_free;
  part.data = penv;
  if ((r = sl_env_register(senv, &part)) != 0) {
    sl_free(penv);
    return sl_throw_uv(env, r);
  }
  /* From here the env owns penv (its part's free runs at teardown). */
  SL_CHECK_INT(env, napi_create_function(env, "pool", NAPI_AUTO_LENGTH, sl__pool_new, penv, &fn));
  SL_CHECK_INT(env, napi_set_named_property(env, exports, "pool", fn));
  return 0;
}
