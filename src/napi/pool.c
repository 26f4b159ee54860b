/* sluice: the Node-API binding of the pool core (src/core/pool.c).
 *
 * JS gets, per pool, three functions created with the pool handle as their
 * `data` (no unwrap per call) and one ArrayBuffer shared with C:
 *
 *   acquire(priority, token) -> slot >= 0 (borrowed now), -1 (queued; the
 *       waiter index is in hdr[SL_HDR_WAITER]), -2 (draining), -3 (max
 *       waiting clients reached)
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
 * napi_create_promise, see DESIGN.md) and keeps the resolving functions by
 * token; C only says which token gets which slot.
 */
#include "pool.h"

#include "core/pool.h"
#include "protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
  napi_ref buffer;               /* the shared ArrayBuffer: keeps `counts` alive */
  napi_ref pump;                 /* JS: consumes events (weak while idle) */
  uint32_t pump_refs;            /* 0 or 1 */
  int32_t* hdr;
  int32_t* win;
  int32_t* q;                    /* overflow events, [qhead, qtail) triples */
  uint32_t qhead;
  uint32_t qtail;
  uint32_t qcap;
  uint32_t refs;                 /* JS functions alive */
  int timers_closed;             /* the core's `closed` has run */
} sl_pool_handle_t;

static sl_pool_handle_t* sl__ph_of(sl_pool_t* pool) {
  return pool->data;
}

/* ------------------------------------------------------------- events --- */

static void sl__ev_push(sl_pool_handle_t* h, int32_t op, int32_t a, int32_t b) {
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
  if (h->qtail + 3 > h->qcap) {
    uint32_t cap = h->qcap ? h->qcap * 2 : 3 * 1024;
    int32_t* q = realloc(h->q, cap * sizeof(*q));
    if (q == NULL) {
      /* Losing an event would lose a promise or a resource. There is no
       * way to report it from inside the core: give up loudly. */
      sl_fatal("out of memory queueing a pool event");
    }
    h->q = q;
    h->qcap = cap;
  }
  h->q[h->qtail++] = op;
  h->q[h->qtail++] = a;
  h->q[h->qtail++] = b;
  hdr[SL_HDR_MORE]++;
}

/* Moves queued events into the window once JS has consumed it. */
static void sl__ev_refill(sl_pool_handle_t* h) {
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

static void sl__op_create(sl_pool_t* p, uint32_t slot) {
  sl__ev_push(sl__ph_of(p), SL_EV_CREATE, (int32_t) slot, 0);
}
static void sl__op_destroy(sl_pool_t* p, uint32_t slot) {
  sl__ev_push(sl__ph_of(p), SL_EV_DESTROY, (int32_t) slot, 0);
}
static void sl__op_validate(sl_pool_t* p, uint32_t slot) {
  sl__ev_push(sl__ph_of(p), SL_EV_VALIDATE, (int32_t) slot, 0);
}
static void sl__op_resolve(sl_pool_t* p, uint32_t token, uint32_t slot) {
  sl__ev_push(sl__ph_of(p), SL_EV_RESOLVE, (int32_t) token, (int32_t) slot);
}
static void sl__op_reject(sl_pool_t* p, uint32_t token, int reason, uint32_t slot) {
  sl__ev_push(sl__ph_of(p),
              reason == SL_POOL_REASON_TIMEOUT ? SL_EV_REJECT_TIMEOUT : SL_EV_REJECT_CREATE,
              (int32_t) token, (int32_t) slot);
}
static void sl__op_emit(sl_pool_t* p, int event, uint32_t slot) {
  int32_t op;
  switch (event) {
    case SL_POOL_EV_CREATE_ERROR: op = SL_EV_CREATE_ERROR; break;
    case SL_POOL_EV_DESTROY_TIMEOUT: op = SL_EV_DESTROY_TIMEOUT; break;
    case SL_POOL_EV_LEAK: op = SL_EV_LEAK; break;
    default: return;
  }
  sl__ev_push(sl__ph_of(p), op, (int32_t) slot, 0);
}

/* The pump must stay reachable while a libuv callback may still need it
 * (queued waiters, factory calls in flight, the evictor, a create retry,
 * leak or destroy deadlines); otherwise the reference is weak, so a pool
 * that nobody uses any more can be collected. */
static void sl__ph_keepalive(sl_pool_handle_t* h) {
  sl_pool_t* p = &h->pool;
  napi_env env = h->senv->env;
  int need = p->npending > 0 || p->ncreating > 0 || p->nvalidating > 0 || p->ndestroying > 0 ||
             p->backoff_active || p->leaks.len > 0 || uv_is_active((uv_handle_t*) &p->evict_timer);
  if (p->closing || h->pump == NULL)
    return;
  if (need && h->pump_refs == 0)
    SL_CHECK_VOID(env, napi_reference_ref(env, h->pump, &h->pump_refs));
  else if (!need && h->pump_refs == 1)
    SL_CHECK_VOID(env, napi_reference_unref(env, h->pump, &h->pump_refs));
}

/* From a timer callback: let JS act on the events, in one callback scope. */
static void sl__op_flush(sl_pool_t* p) {
  sl_pool_handle_t* h = sl__ph_of(p);
  sl_env_t* senv = h->senv;
  napi_env env = senv->env;
  sl_scope_t scope;
  napi_value fn = NULL, recv;
  napi_status st;

  if (senv->closing || p->closing)
    return;
  if (sl_scope_open(senv, &scope) != 0)
    return;
  /* A failure leaves an exception pending; sl_scope_close reports it. */
  st = napi_get_reference_value(env, h->pump, &fn);
  if (st == napi_ok && fn != NULL)
    st = napi_get_undefined(env, &recv);
  if (st == napi_ok && fn != NULL) {
    napi_value ret;
    SL_CHECK_GO_ON(env, napi_call_function(env, recv, fn, 0, NULL, &ret));
  } else if (st != napi_ok) {
    sl_throw_status(env, st, "napi_get_reference_value");
  }
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
  free(h->q);
  free(h);
}

/* Every timer of the pool has closed. */
static void sl__op_closed(sl_pool_t* p) {
  sl_pool_handle_t* h = sl__ph_of(p);
  h->timers_closed = 1;
  sl_env_handle_closed(h->senv);
  if (h->refs == 0)
    sl__ph_free(h);
}

static const sl_pool_ops_t sl__pool_ops = {
  sl__op_create, sl__op_destroy, sl__op_validate, sl__op_resolve,
  sl__op_reject, sl__op_emit, sl__op_flush, sl__op_closed
};

/* ------------------------------------------------------------ methods --- */

static int sl__arg_slot(napi_env env, napi_value v, uint32_t* out) {
  SL_CHECK_RET(env, napi_get_value_uint32(env, v, out), -1);
  return 0;
}

static napi_value sl__int(napi_env env, int32_t n) {
  napi_value v;
  SL_CHECK(env, napi_create_int32(env, n, &v));
  return v;
}

static napi_value sl__pool_acquire(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data;
  sl_pool_handle_t* h;
  int32_t priority;
  uint32_t token, slot = 0, waiter = 0;
  int r;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  if (argc < 2) {
    SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "acquire(priority, token)"));
    return NULL;
  }
  SL_CHECK(env, napi_get_value_int32(env, argv[0], &priority));
  SL_CHECK(env, napi_get_value_uint32(env, argv[1], &token));
  r = sl_pool_acquire(&h->pool, priority, token, &slot, &waiter);
  sl__ph_keepalive(h);
  switch (r) {
    case SL_POOL_GRANTED:
      return sl__int(env, (int32_t) slot);
    case SL_POOL_QUEUED:
      h->hdr[SL_HDR_WAITER] = (int32_t) waiter;
      return sl__int(env, -1);
    case SL_POOL_EDRAINING:
      return sl__int(env, -2);
    case SL_POOL_EFULL:
      return sl__int(env, -3);
    default:
      SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
      return NULL;
  }
}

static napi_value sl__pool_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  sl_pool_handle_t* h;
  uint32_t slot;
  int r;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  if (argc < 1) {
    SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "release(slot)"));
    return NULL;
  }
  if (sl__arg_slot(env, argv[0], &slot) != 0)
    return NULL;
  r = sl_pool_release(&h->pool, slot);
  sl__ph_keepalive(h);
  return sl_bool(env, r == 0);
}

static napi_value sl__pool_ctl(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void* data;
  sl_pool_handle_t* h;
  sl_pool_t* p;
  int32_t op;
  uint32_t a = 0, b = 0;
  napi_value result = NULL;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  p = &h->pool;
  if (argc < 1) {
    SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "ctl(op, a, b)"));
    return NULL;
  }
  SL_CHECK(env, napi_get_value_int32(env, argv[0], &op));
  if (argc >= 2)
    SL_CHECK(env, napi_get_value_uint32(env, argv[1], &a));
  if (argc >= 3)
    SL_CHECK(env, napi_get_value_uint32(env, argv[2], &b));
  switch (op) {
    case SL_PCTL_DESTROY:
      result = sl_bool(env, sl_pool_destroy(p, a) == 0);
      break;
    case SL_PCTL_CREATED:
      result = sl_bool(env, sl_pool_created(p, a) == 0);
      break;
    case SL_PCTL_CREATE_FAILED:
      result = sl_bool(env, sl_pool_create_failed(p, a) == 0);
      break;
    case SL_PCTL_DESTROYED:
      result = sl_bool(env, sl_pool_destroyed(p, a) == 0);
      break;
    case SL_PCTL_VALIDATED:
      result = sl_bool(env, sl_pool_validated(p, a, b != 0) == 0);
      break;
    case SL_PCTL_CANCEL:
      result = sl_bool(env, sl_pool_cancel(p, a, b) == 0);
      break;
    case SL_PCTL_DRAIN:
      result = sl_bool(env, sl_pool_drain(p));
      break;
    case SL_PCTL_CLEAR_IDLE:
      sl_pool_clear_idle(p);
      break;
    case SL_PCTL_HOLD:
      sl_pool_hold(p, a ? 1 : -1);
      break;
    case SL_PCTL_STATE:
      result = sl__int(env, sl_pool_slot_state(p, a));
      break;
    case SL_PCTL_START:
      sl_pool_start(p);
      break;
    case SL_PCTL_STARTED:
      result = sl_bool(env, sl_pool_started(p));
      break;
    case SL_PCTL_REFILL:
      sl__ev_refill(h);
      break;
    case SL_PCTL_DISPENSE:
      sl_pool_dispense(p);
      break;
    case SL_PCTL_TAIL:
      result = sl__int(env, (int32_t) sl_pool_tail_token(p));
      break;
    default:
      SL_CHECK(env, napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "Unknown pool operation"));
      return NULL;
  }
  sl__ph_keepalive(h);
  return result;
}

/* ----------------------------------------------------------- lifetime --- */

/* Runs once per JS function of the pool. At env teardown finalizers run
 * after the cleanup hook, which closed the timers already. */
static void sl__pool_finalize(napi_env env, void* data, void* hint) {
  sl_pool_handle_t* h = data;
  if (--h->refs > 0)
    return;
  if (h->pump != NULL) {
    /* A failure is possible only at teardown, when the env frees its
     * references itself: nothing to do about it. */
    if (napi_delete_reference(env, h->pump) != napi_ok) {
    }
    h->pump = NULL;
  }
  if (h->buffer != NULL) {
    if (napi_delete_reference(env, h->buffer) != napi_ok) {
    }
    h->buffer = NULL;
  }
  if (h->timers_closed)
    sl__ph_free(h);
  else
    sl_pool_close(&h->pool); /* frees in sl__op_closed */
}

/* Env teardown: close every pool's timers. Queued waiters are dropped:
 * their promises cannot be settled any more. */
static void sl__penv_teardown(sl_env_t* senv, void* data) {
  sl_penv_t* penv = data;
  sl_pool_handle_t* h;
  (void) senv;
  for (h = penv->pools; h != NULL; h = h->next)
    if (!h->pool.closing)
      sl_pool_close(&h->pool);
}

static void sl__penv_free(sl_env_t* senv, void* data) {
  (void) senv;
  free(data);
}

static double sl__cfg(const double* c, int i) {
  return c[i];
}

/* pool(config Float64Array, pump) -> [acquire, release, ctl, buffer] */
static napi_value sl__pool_new(napi_env env, napi_callback_info info) {
  void* pdata = NULL;
  sl_penv_t* penv;
  size_t argc = 2, len = 0;
  napi_value argv[2], arr, fn, ab;
  napi_typedarray_type type;
  napi_valuetype t;
  void* cdata = NULL;
  void* bdata = NULL;
  sl_env_t* senv;
  sl_pool_handle_t* h;
  sl_pool_config_t cfg;
  const double* c;
  double range;
  bool is_ta = false;
  napi_status st;
  int r;
  uint32_t i;
  static const struct {
    const char* name;
    napi_callback cb;
  } fns[3] = {{"acquire", sl__pool_acquire}, {"release", sl__pool_release}, {"ctl", sl__pool_ctl}};

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &pdata));
  penv = pdata;
  if (argc < 2) {
    SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "pool(config, pump)"));
    return NULL;
  }
  SL_CHECK(env, napi_is_typedarray(env, argv[0], &is_ta));
  if (is_ta)
    SL_CHECK(env, napi_get_typedarray_info(env, argv[0], &type, &len, &cdata, NULL, NULL));
  if (!is_ta || type != napi_float64_array || len < SL_CFG_COUNT) {
    SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "Expected `config` to be a Float64Array"));
    return NULL;
  }
  SL_CHECK(env, napi_typeof(env, argv[1], &t));
  if (t != napi_function) {
    SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "Expected `pump` to be a function"));
    return NULL;
  }
  c = cdata;
  range = sl__cfg(c, SL_CFG_PRIORITY_RANGE);
  if (!(range >= 1 && range <= 1048576)) {
    SL_CHECK(env, napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                                         "Expected `priorityRange` to be at most 1048576"));
    return NULL;
  }
  memset(&cfg, 0, sizeof(cfg));
  cfg.max = sl__cfg(c, SL_CFG_MAX);
  cfg.min = sl__cfg(c, SL_CFG_MIN);
  cfg.max_waiting = sl__cfg(c, SL_CFG_MAX_WAITING);
  cfg.fifo = sl__cfg(c, SL_CFG_FIFO) != 0;
  cfg.test_on_borrow = sl__cfg(c, SL_CFG_TEST_ON_BORROW) != 0;
  cfg.propagate_create_error = sl__cfg(c, SL_CFG_PROPAGATE) != 0;
  cfg.priority_range = (uint32_t) range;
  cfg.acquire_timeout = sl__cfg(c, SL_CFG_ACQUIRE_TIMEOUT);
  cfg.destroy_timeout = sl__cfg(c, SL_CFG_DESTROY_TIMEOUT);
  cfg.eviction_interval = sl__cfg(c, SL_CFG_EVICTION_INTERVAL);
  cfg.num_tests = sl__cfg(c, SL_CFG_NUM_TESTS);
  cfg.soft_idle = sl__cfg(c, SL_CFG_SOFT_IDLE);
  cfg.idle = sl__cfg(c, SL_CFG_IDLE);
  cfg.max_uses = sl__cfg(c, SL_CFG_MAX_USES);
  cfg.max_lifetime = sl__cfg(c, SL_CFG_MAX_LIFETIME);
  cfg.leak_ms = sl__cfg(c, SL_CFG_LEAK);
  cfg.backoff_min = sl__cfg(c, SL_CFG_BACKOFF_MIN);
  cfg.backoff_max = sl__cfg(c, SL_CFG_BACKOFF_MAX);

  senv = penv->senv;
  if (senv->closing) {
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_CLOSING", "sluice: the environment is shutting down"));
    return NULL;
  }
  SL_CHECK(env, napi_create_arraybuffer(env, SL_BUFFER_BYTES, &bdata, &ab));
  memset(bdata, 0, SL_BUFFER_BYTES);

  h = calloc(1, sizeof(*h));
  if (h == NULL) {
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
    return NULL;
  }
  h->senv = senv;
  h->hdr = (int32_t*) ((char*) bdata + SL_COUNTS_BYTES);
  h->win = h->hdr + SL_HDR_SIZE;
  r = sl_pool_open(&h->pool, senv->loop, &cfg, &sl__pool_ops, (double*) bdata, h);
  if (r != 0) {
    free(h);
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: cannot create the pool"));
    return NULL;
  }
  sl_env_handle_opened(senv);
  h->penv = penv;
  h->next = penv->pools;
  if (h->next != NULL)
    h->next->prev = h;
  penv->pools = h;

  /* From here on, a failure leaves the handle to its finalizers (or closes
   * it at once if no JS function owns it yet). */
  st = napi_create_reference(env, ab, 1, &h->buffer);
  if (st == napi_ok)
    st = napi_create_reference(env, argv[1], 0, &h->pump);
  if (st == napi_ok)
    st = napi_create_array_with_length(env, 4, &arr);
  if (st != napi_ok) {
    sl_throw_status(env, st, "napi_create_reference");
    goto fail;
  }
  for (i = 0; i < 3; i++) {
    st = napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, h, &fn);
    if (st == napi_ok)
      st = napi_add_finalizer(env, fn, h, sl__pool_finalize, NULL, NULL);
    if (st != napi_ok) {
      sl_throw_status(env, st, "napi_create_function");
      goto fail;
    }
    h->refs++;
    SL_CHECK(env, napi_set_element(env, arr, i, fn));
  }
  SL_CHECK(env, napi_set_element(env, arr, 3, ab));
  return arr;

fail:
  if (h->refs == 0) {
    h->refs = 1;
    sl__pool_finalize(env, h, NULL);
  }
  return NULL;
}

static sl_penv_t* sl__penv_of(sl_env_t* senv) {
  uint32_t i;
  for (i = 0; i < senv->nparts; i++)
    if (senv->parts[i].teardown == sl__penv_teardown)
      return senv->parts[i].data;
  return NULL;
}

int sl_pool_binding_counts(sl_env_t* senv, napi_value obj) {
  napi_env env = senv->env;
  sl_penv_t* penv = sl__penv_of(senv);
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

  penv = calloc(1, sizeof(*penv));
  if (penv == NULL)
    return sl_throw_uv(env, UV_ENOMEM);
  penv->senv = senv;
  part.teardown = sl__penv_teardown;
  part.free = sl__penv_free;
  part.data = penv;
  if ((r = sl_env_register(senv, &part)) != 0) {
    free(penv);
    return sl_throw_uv(env, r);
  }
  SL_CHECK_INT(env, napi_create_function(env, "pool", NAPI_AUTO_LENGTH, sl__pool_new, penv, &fn));
  SL_CHECK_INT(env, napi_set_named_property(env, exports, "pool", fn));
  return 0;
}
