/* sluice: the Node-API binding for gates (limiter and semaphore).
 *
 * JS gets, per gate, three functions created with the gate handle as their
 * `data`, so the hot calls carry no argument to unwrap:
 *
 *   take(value?, n = 1, priority = 0, timeoutMs = 0)
 *       Takes n permits now and returns undefined, or queues a waiter and
 *       returns a promise that is resolved with `value` when the permits are
 *       granted (undefined when `value` is not a number). The waiter's token
 *       (for cancel) is written to scratch[0].
 *   release(n, maxGrants = unlimited)
 *       Returns n permits and settles the waiters that now fit, in order.
 *       With no argument: one permit, at most one waiter granted (p-limit's
 *       next(); the hot path, so it parses nothing).
 *   ctl(op, a, b)
 *       Everything else: counts, capacity, clear, cancel, tryTake.
 *
 * Promises of granted waiters are resolved inside the JS call that granted
 * them (microtasks run when that call returns to JS), or from a libuv
 * callback (timeout, doorbell) inside one callback scope per batch.
 */
#define _GNU_SOURCE /* dladdr */
#include "binding.h"
#include "registry.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One gate as JS sees it: the gate itself (unshared gates live inline) and
 * what this env holds of it. Owned by the JS functions that reference it:
 * freed when the last of them is finalized. */
typedef struct sl_handle_s {
  sl_gate_t* gate;
  sl_gate_t local;
  sl_env_t* senv;
  struct sl_handle_s* next; /* senv->handles, for teardown */
  struct sl_handle_s* prev;
  int64_t held;      /* permits granted through this handle, not released */
  uint64_t waiters;  /* waiters queued through this handle */
  uint32_t refs;     /* JS functions still alive */
} sl_handle_t;

/* A timeout for one waiter. The waiter points to it and it points back; the
 * link is cut (waiter = NULL) as soon as the waiter leaves the queue, and the
 * timer is closed then, so a firing timer always finds its waiter queued. */
typedef struct sl_wtimer_s {
  uv_timer_t handle;
  sl_env_t* senv;
  sl_waiter_t* waiter;
} sl_wtimer_t;

enum {
  SL_OP_ACTIVE = 0,
  SL_OP_PENDING = 1,
  SL_OP_PERMITS = 2,
  SL_OP_SET_PERMITS = 3,
  SL_OP_DISPATCH = 4,
  SL_OP_CLEAR = 5,
  SL_OP_TRY_TAKE = 6,
  SL_OP_CANCEL = 7,
  SL_OP_AVAILABLE = 8,
  SL_OP_HELD = 9
};

/* ------------------------------------------------------------ plumbing --- */

/* For failures with no JS caller to throw to, where going on would lose a
 * promise or leave a uv handle open (which aborts the process anyway).
 * napi_fatal_error returns no status: it does not return. */
void sl_fatal(const char* msg) {
  napi_fatal_error("sluice", NAPI_AUTO_LENGTH, msg, NAPI_AUTO_LENGTH);
}

void sl__throw_status(napi_env env, napi_status status, const char* call) {
  const napi_extended_error_info* info = NULL;
  bool pending = false;
  char msg[256];

  /* Read the error info first: any later call overwrites it. This is the
   * status macro's own implementation, so its calls are checked by hand. */
  if (napi_get_last_error_info(env, &info) != napi_ok)
    info = NULL;
  if (napi_is_exception_pending(env, &pending) != napi_ok || pending)
    return;
  snprintf(msg, sizeof(msg), "sluice: %s failed: %s (status %d)", call,
           info != NULL && info->error_message != NULL ? info->error_message : "unknown error",
           (int) status);
  if (napi_throw_error(env, "ERR_SLUICE_NAPI", msg) != napi_ok)
    return; /* nothing more can be reported */
}

sl_env_t* sl_env_get(napi_env env) {
  void* data = NULL;
  SL_CHECK(env, napi_get_instance_data(env, &data));
  return data;
}

void sl_report_pending(napi_env env) {
  bool pending = false;
  napi_value err;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending)
    return;
  if (napi_get_and_clear_last_exception(env, &err) != napi_ok)
    return;
  SL_CHECK_VOID(env, napi_fatal_exception(env, err));
}

int sl_scope_open(sl_env_t* senv, sl_scope_t* scope) {
  napi_env env = senv->env;
  napi_value resource;
  napi_status s;
  SL_CHECK_RET(env, napi_open_handle_scope(env, &scope->handles), -1);
  s = napi_get_reference_value(env, senv->resource, &resource);
  if (s == napi_ok)
    s = napi_open_callback_scope(env, resource, senv->async_context, &scope->callback);
  if (s != napi_ok) {
    sl__throw_status(env, napi_generic_failure, "napi_open_callback_scope");
    sl_report_pending(env);
    SL_CHECK_RET(env, napi_close_handle_scope(env, scope->handles), -1);
    return -1;
  }
  return 0;
}

void sl_scope_close(sl_env_t* senv, sl_scope_t* scope) {
  napi_env env = senv->env;
  sl_report_pending(env);
  /* Closing the outermost callback scope runs the microtasks that the
   * settlements queued: once per batch. */
  SL_CHECK_VOID(env, napi_close_callback_scope(env, scope->callback));
  SL_CHECK_VOID(env, napi_close_handle_scope(env, scope->handles));
}

napi_status sl_timeout_error(sl_env_t* senv, const char* message, napi_value* out) {
  napi_env env = senv->env;
  napi_value ctor, msg;
  napi_status s;
  if (senv->timeout_ctor == NULL)
    return napi_create_error(env, NULL, NULL, out);
  s = napi_get_reference_value(env, senv->timeout_ctor, &ctor);
  if (s != napi_ok)
    return s;
  s = napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  if (s != napi_ok)
    return s;
  return napi_new_instance(env, ctor, 1, &msg, out);
}

void sl_uv_handle_opened(sl_env_t* senv) {
  senv->open_uv_handles++;
}

void sl_uv_handle_closed(sl_env_t* senv) {
  senv->open_uv_handles--;
  /* Teardown waits (async cleanup hook) until the last handle has closed:
   * a uv handle left open when a worker's loop closes aborts the process. */
  if (senv->closing && senv->open_uv_handles == 0 && senv->cleanup != NULL) {
    napi_async_cleanup_hook_handle h = senv->cleanup;
    senv->cleanup = NULL;
    if (napi_remove_async_cleanup_hook(h) != napi_ok)
      sl_fatal("cannot remove the cleanup hook");
  }
}

int sl_arg_double(napi_env env, napi_value v, const char* name, double def, double* out) {
  napi_valuetype t;
  char msg[128];
  SL_CHECK_RET(env, napi_typeof(env, v, &t), -1);
  if (t == napi_undefined) {
    *out = def;
    return 0;
  }
  if (t != napi_number) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be a number", name);
    SL_CHECK_RET(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg), -1);
    return -1;
  }
  SL_CHECK_RET(env, napi_get_value_double(env, v, out), -1);
  return 0;
}

static int sl__throw_range(napi_env env, const char* msg) {
  SL_CHECK_RET(env, napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg), -1);
  return -1;
}

/* Reads a permit count: an integer from 1 to 2^32-1. */
static int sl__arg_count(napi_env env, napi_value v, const char* name, uint32_t* out) {
  double d;
  char msg[128];
  if (sl_arg_double(env, v, name, 1, &d) != 0)
    return -1;
  if (!(d >= 1 && d <= 4294967295.0 && d == floor(d))) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be an integer from 1 to 4294967295", name);
    return sl__throw_range(env, msg);
  }
  *out = (uint32_t) d;
  return 0;
}

/* Reads a required number argument: a TypeError naming `name` when it is
 * missing (undefined) or not a number. */
static int sl__arg_number(napi_env env, napi_value v, const char* name, double* out) {
  napi_valuetype t;
  char msg[128];
  SL_CHECK_RET(env, napi_typeof(env, v, &t), -1);
  if (t != napi_number) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be a number", name);
    SL_CHECK_RET(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg), -1);
    return -1;
  }
  SL_CHECK_RET(env, napi_get_value_double(env, v, out), -1);
  return 0;
}

/* Reads a capacity: a non-negative integer or Infinity. Required: a
 * missing capacity is an error, not 1. */
static int sl__arg_permits(napi_env env, napi_value v, const char* name, int64_t* out) {
  double d;
  char msg[128];
  if (sl__arg_number(env, v, name, &d) != 0)
    return -1;
  if (d == INFINITY || d >= 9.2e18) {
    *out = SL_INFINITE;
    return 0;
  }
  if (!(d >= 0 && d == floor(d))) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be a non-negative integer or Infinity", name);
    return sl__throw_range(env, msg);
  }
  *out = (int64_t) d;
  return 0;
}

static napi_value sl__number(napi_env env, double d) {
  napi_value v;
  SL_CHECK(env, napi_create_double(env, d, &v));
  return v;
}

static napi_value sl__count(napi_env env, int64_t n) {
  return sl__number(env, n == SL_INFINITE ? INFINITY : (double) n);
}

/* ------------------------------------------------------------- waiters --- */

static void sl__wtimer_close_cb(uv_handle_t* handle) {
  sl_wtimer_t* t = (sl_wtimer_t*) handle;
  sl_env_t* senv = t->senv;
  free(t);
  sl_uv_handle_closed(senv);
}

/* Cuts a waiter from its timer and closes the timer. */
static void sl__wtimer_detach(sl_waiter_t* w) {
  sl_wtimer_t* t = w->timer;
  if (t == NULL)
    return;
  w->timer = NULL;
  t->waiter = NULL;
  uv_close((uv_handle_t*) &t->handle, sl__wtimer_close_cb);
}

/* Frees a waiter that left its gate. Its deferred must be settled or
 * deliberately dropped by now. */
static void sl__waiter_done(sl_env_t* senv, sl_waiter_t* w) {
  sl_handle_t* h = w->owner;
  if (h != NULL) {
    h->waiters--;
    /* The last waiter on a shared gate gone: the doorbell need not keep
     * this thread's loop alive any more. */
    if (h->gate->shared && --senv->shared_waiters == 0 && senv->doorbell_open)
      uv_unref((uv_handle_t*) &senv->doorbell);
  }
  sl__wtimer_detach(w);
  sl_ctx_waiter_free(&senv->ctx, w);
}

/* Removes `w` from a grant list (it failed before it could be settled). */
static void sl__waiter_unlink_granted(sl_wlist_t* list, sl_waiter_t* w) {
  sl_waiter_t** p = &list->head;
  sl_waiter_t* prev = NULL;
  while (*p != NULL && *p != w) {
    prev = *p;
    p = &(*p)->next;
  }
  if (*p == NULL)
    return;
  *p = w->next;
  if (list->tail == w)
    list->tail = prev;
  w->next = NULL;
}

static int sl__resolve(napi_env env, sl_waiter_t* w) {
  napi_value v;
  if (isnan(w->value))
    SL_CHECK_RET(env, napi_get_undefined(env, &v), -1);
  else
    SL_CHECK_RET(env, napi_create_double(env, w->value, &v), -1);
  SL_CHECK_RET(env, napi_resolve_deferred(env, w->data, v), -1);
  return 0;
}

static int sl__reject(napi_env env, sl_waiter_t* w, napi_value reason) {
  SL_CHECK_RET(env, napi_reject_deferred(env, w->data, reason), -1);
  return 0;
}

/* Settles granted waiters: they hold their permits now. Every waiter is
 * freed even when a settlement fails (the error stays pending for JS). */
static void sl__settle_granted(sl_env_t* senv, sl_wlist_t* list) {
  sl_waiter_t* w;
  while ((w = sl_wlist_shift(list)) != NULL) {
    sl_handle_t* h = w->owner;
    h->held += w->n;
    sl__resolve(senv->env, w);
    sl__waiter_done(senv, w);
  }
}

static void sl__wtimer_cb(uv_timer_t* handle) {
  sl_wtimer_t* t = (sl_wtimer_t*) handle;
  sl_env_t* senv = t->senv;
  sl_waiter_t* w = t->waiter;
  sl_handle_t* h;
  sl_wlist_t granted;
  sl_scope_t scope;
  napi_value err = NULL;
  char msg[96];

  if (senv->closing || w == NULL)
    return;
  h = w->owner;
  sl_wlist_init(&granted);
  if (sl_gate_cancel(h->gate, w, &senv->ctx, &granted) != 0)
    return; /* not queued any more: being granted by another thread */
  if (sl_scope_open(senv, &scope) != 0) {
    /* Cannot call into JS: put the waiter back is not possible (order), so
     * drop it; the gate state is consistent either way. */
    sl__waiter_done(senv, w);
    sl__settle_granted(senv, &granted);
    return;
  }
  snprintf(msg, sizeof(msg), "Timed out waiting for %u permit%s", w->n, w->n == 1 ? "" : "s");
  /* The waiter must be settled whatever happens: if the registered class
   * cannot be constructed, reject with a plain Error of the same message. */
  if (sl_timeout_error(senv, msg, &err) != napi_ok) {
    napi_value ignored, text;
    napi_status st = napi_get_and_clear_last_exception(senv->env, &ignored);
    if (st == napi_ok)
      st = napi_create_string_utf8(senv->env, msg, NAPI_AUTO_LENGTH, &text);
    if (st == napi_ok)
      st = napi_create_error(senv->env, NULL, text, &err);
    if (st != napi_ok)
      err = NULL;
  }
  if (err != NULL)
    sl__reject(senv->env, w, err);
  sl__waiter_done(senv, w);
  sl__settle_granted(senv, &granted);
  sl_scope_close(senv, &scope);
}

static int sl__wtimer_start(sl_env_t* senv, sl_waiter_t* w, double ms) {
  sl_wtimer_t* t = malloc(sizeof(*t));
  if (t == NULL)
    return UV_ENOMEM;
  t->senv = senv;
  t->waiter = w;
  uv_timer_init(senv->loop, &t->handle);
  sl_uv_handle_opened(senv);
  w->timer = t;
  return uv_timer_start(&t->handle, sl__wtimer_cb, (uint64_t) ms, 0);
}

/* Grants made by other threads: settle them all in one callback scope. */
static void sl__doorbell_cb(uv_async_t* handle) {
  sl_env_t* senv = handle->data;
  sl_wlist_t ready;
  sl_scope_t scope;

  if (senv->closing)
    return;
  sl_wlist_init(&ready);
  sl_ctx_take_ready(&senv->ctx, &ready);
  if (ready.head == NULL)
    return;
  if (sl_scope_open(senv, &scope) != 0) {
    /* Cannot call into JS: give the permits back rather than lose them. */
    sl_waiter_t* w;
    while ((w = sl_wlist_shift(&ready)) != NULL) {
      sl_handle_t* h = w->owner;
      sl_wlist_t none;
      sl_wlist_init(&none);
      sl_gate_release(h->gate, w->n, 0, NULL, &none);
      sl__waiter_done(senv, w);
    }
    return;
  }
  sl__settle_granted(senv, &ready);
  sl_scope_close(senv, &scope);
}

static void sl__doorbell_close_cb(uv_handle_t* handle) {
  sl_uv_handle_closed(handle->data);
}

static int sl__doorbell_open(sl_env_t* senv) {
  int r;
  if (senv->doorbell_open)
    return 0;
  r = uv_async_init(senv->loop, &senv->doorbell, sl__doorbell_cb);
  if (r != 0)
    return r;
  senv->doorbell.data = senv;
  senv->doorbell_open = 1;
  sl_uv_handle_opened(senv);
  if (senv->shared_waiters == 0)
    uv_unref((uv_handle_t*) &senv->doorbell);
  /* Other threads read ctx.doorbell under ctx.lock when they push. */
  uv_mutex_lock(&senv->ctx.lock);
  senv->ctx.doorbell = &senv->doorbell;
  uv_mutex_unlock(&senv->ctx.lock);
  return 0;
}

/* -------------------------------------------------------- gate methods --- */

static napi_value sl__take(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void* data;
  sl_handle_t* h;
  sl_env_t* senv;
  sl_waiter_t* w;
  double value = NAN, timeout = 0, prio = 0;
  uint32_t n = 1;
  napi_value promise;
  napi_deferred deferred;
  sl_wlist_t granted;
  int r;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  senv = h->senv;
  if (argc >= 1 && napi_get_value_double(env, argv[0], &value) != napi_ok)
    value = NAN; /* not a number: resolve with undefined */
  if (argc >= 2 && sl__arg_count(env, argv[1], "n", &n) != 0)
    return NULL;
  if (argc >= 3) {
    if (sl_arg_double(env, argv[2], "priority", 0, &prio) != 0)
      return NULL;
    if (!(prio >= -2147483648.0 && prio <= 2147483647.0 && prio == floor(prio))) {
      sl__throw_range(env, "Expected `priority` to be an integer from -2147483648 to 2147483647");
      return NULL;
    }
  }
  if (argc >= 4) {
    if (sl_arg_double(env, argv[3], "timeout", 0, &timeout) != 0)
      return NULL;
    if (!(timeout >= 0 && timeout <= 4294967295.0)) {
      sl__throw_range(env, "Expected `timeout` to be a number of milliseconds from 0 to 4294967295");
      return NULL;
    }
  }

  /* The common case, a free permit: no waiter, no promise. */
  if (sl_gate_try_take(h->gate, n)) {
    h->held += n;
    return NULL;
  }

  w = sl_ctx_waiter_new(&senv->ctx);
  if (w == NULL) {
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
    return NULL;
  }
  sl_wlist_init(&granted);
  r = sl_gate_acquire(h->gate, w, n, (int32_t) prio, &senv->ctx, &granted);
  if (r != 0) {
    sl_ctx_waiter_free(&senv->ctx, w);
    if (r == 1) { /* a shared gate freed up in between */
      h->held += n;
      return NULL;
    }
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
    return NULL;
  }
  /* Queued (and perhaps granted already, if it was at the head of a queue
   * with room). No other thread settles this waiter: grants for it made by
   * other threads go to this env's ready queue, drained on this thread. */
  w->owner = h;
  w->value = value;
  h->waiters++;
  /* A waiter on a shared gate may be granted by another thread: keep this
   * loop alive for the doorbell until it is settled. */
  if (h->gate->shared && senv->shared_waiters++ == 0 && senv->doorbell_open)
    uv_ref((uv_handle_t*) &senv->doorbell);
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) {
    if (w->state == SL_WAITER_QUEUED)
      sl_gate_cancel(h->gate, w, &senv->ctx, &granted);
    else
      sl_gate_release(h->gate, w->n, 0, &senv->ctx, &granted);
    sl__waiter_unlink_granted(&granted, w);
    sl__waiter_done(senv, w);
    sl__settle_granted(senv, &granted);
    sl__throw_status(env, napi_generic_failure, "napi_create_promise");
    return NULL;
  }
  w->data = deferred;
  if (senv->scratch_data != NULL) /* NULL only if setup() was never called */
    senv->scratch_data[0] = (double) w->index + (double) (w->gen & SL_GEN_MASK) * 4294967296.0;
  if (w->state == SL_WAITER_QUEUED && timeout > 0 && sl__wtimer_start(senv, w, timeout) != 0) {
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
    return NULL;
  }
  sl__settle_granted(senv, &granted);
  return promise;
}

static napi_value sl__release(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data;
  sl_handle_t* h;
  sl_wlist_t granted;
  uint32_t n = 1, max_grants = 0;
  char msg[160];

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  if (argc == 0)
    max_grants = 1; /* p-limit's next(): one back, at most one started */
  if (argc >= 1 && sl__arg_count(env, argv[0], "n", &n) != 0)
    return NULL;
  if (argc >= 2) {
    double d;
    if (sl_arg_double(env, argv[1], "maxGrants", 0, &d) != 0)
      return NULL;
    if (!(d >= 0 && d <= 4294967295.0 && d == floor(d))) {
      sl__throw_range(env, "Expected `maxGrants` to be an integer from 0 (no limit) to 4294967295");
      return NULL;
    }
    max_grants = (uint32_t) d;
  }
  if ((int64_t) n > h->held) {
    snprintf(msg, sizeof(msg),
             "Cannot release %u permit%s: only %lld %s held (releasing more than was acquired)",
             n, n == 1 ? "" : "s", (long long) h->held, h->held == 1 ? "is" : "are");
    sl__throw_range(env, msg);
    return NULL;
  }
  sl_wlist_init(&granted);
  if (sl_gate_release(h->gate, n, max_grants, &h->senv->ctx, &granted) != 0) {
    sl__throw_range(env, "Cannot release more permits than are in use");
    return NULL;
  }
  h->held -= n;
  sl__settle_granted(h->senv, &granted);
  return NULL;
}

static napi_value sl__clear(napi_env env, sl_handle_t* h, napi_value reject_with) {
  sl_env_t* senv = h->senv;
  sl_wlist_t out;
  sl_waiter_t* w;
  napi_value arr;
  uint32_t i = 0;

  sl_wlist_init(&out);
  sl_gate_clear(h->gate, h, &out);
  SL_CHECK(env, napi_create_array(env, &arr));
  while ((w = sl_wlist_shift(&out)) != NULL) {
    napi_value v;
    /* Settle every waiter even if building the result fails. */
    if (napi_create_double(env, w->value, &v) == napi_ok)
      SL_CHECK_VOID_IN_LOOP(env, napi_set_element(env, arr, i++, v));
    if (reject_with != NULL)
      sl__reject(env, w, reject_with);
    else
      sl__resolve(env, w);
    sl__waiter_done(senv, w);
  }
  /* Removing waiters never frees permits, but the gate may have room that
   * was waiting on a head waiter we just removed: grant in order. */
  sl_gate_dispatch(h->gate, &senv->ctx, &out);
  sl__settle_granted(senv, &out);
  return arr;
}

static napi_value sl__ctl(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void* data;
  sl_handle_t* h;
  sl_env_t* senv;
  int32_t op;
  napi_value result = NULL;
  double d;

  /* Arguments not passed read as undefined (argv is filled up to 3). */
  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  senv = h->senv;
  /* Read `op` as a double: napi_get_value_int32 would fail with a generic
   * error on a non-number and wrap NaN, 1.5 or 2^32 to a valid op. */
  if (sl__arg_number(env, argv[0], "op", &d) != 0)
    return NULL;
  if (!(d >= SL_OP_ACTIVE && d <= SL_OP_HELD && d == floor(d))) {
    sl__throw_range(env, "Unknown gate operation");
    return NULL;
  }
  op = (int32_t) d;
  switch (op) {
    case SL_OP_ACTIVE:
      return sl__count(env, h->gate->in_use);
    case SL_OP_PENDING:
      return sl__count(env, h->gate->npending);
    case SL_OP_PERMITS:
      return sl__count(env, h->gate->permits);
    case SL_OP_AVAILABLE:
      return sl__count(env, sl_gate_available(h->gate));
    case SL_OP_HELD:
      return sl__count(env, h->held);
    case SL_OP_SET_PERMITS: {
      int64_t permits;
      if (sl__arg_permits(env, argv[1], "permits", &permits) != 0)
        return NULL;
      sl_gate_set_permits(h->gate, permits);
      return NULL;
    }
    case SL_OP_DISPATCH: {
      sl_wlist_t granted;
      sl_wlist_init(&granted);
      sl_gate_dispatch(h->gate, &senv->ctx, &granted);
      sl__settle_granted(senv, &granted);
      return NULL;
    }
    case SL_OP_CLEAR:
      return sl__clear(env, h, argc >= 2 ? argv[1] : NULL);
    case SL_OP_TRY_TAKE: {
      uint32_t n = 1;
      bool ok;
      if (argc >= 2 && sl__arg_count(env, argv[1], "n", &n) != 0)
        return NULL;
      ok = sl_gate_try_take(h->gate, n);
      if (ok)
        h->held += n;
      SL_CHECK(env, napi_get_boolean(env, ok, &result));
      return result;
    }
    case SL_OP_CANCEL: {
      double token;
      sl_waiter_t* w;
      sl_wlist_t granted;
      bool ok = false;
      /* A stale token (its waiter was granted or freed) is fine: false.
       * A missing or malformed one is the caller's error; so is a missing
       * reason (it used to return undefined without throwing, and a missing
       * token read as 0, the token of a live waiter). */
      if (sl__arg_number(env, argv[1], "token", &token) != 0)
        return NULL;
      if (!(token >= 0 && token < 4503599627370496.0 && token == floor(token))) {
        sl__throw_range(env, "Expected `token` to be a waiter token (an integer from 0 to 2^52-1)");
        return NULL;
      }
      if (argc < 3) {
        SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "Expected a rejection `reason`"));
        return NULL;
      }
      {
        uint64_t t = (uint64_t) token;
        w = sl_ctx_waiter_find(&senv->ctx, (uint32_t) (t & 0xffffffffu), (uint32_t) (t >> 32));
        sl_wlist_init(&granted);
        if (w != NULL && w->owner == h && sl_gate_cancel(h->gate, w, &senv->ctx, &granted) == 0) {
          sl__reject(env, w, argv[2]);
          sl__waiter_done(senv, w);
          ok = true;
        }
        sl__settle_granted(senv, &granted);
      }
      SL_CHECK(env, napi_get_boolean(env, ok, &result));
      return result;
    }
    default:
      sl__throw_range(env, "Unknown gate operation");
      return NULL;
  }
}

/* ------------------------------------------------------ handle lifetime --- */

/* Drops every waiter this handle queued without settling it: at teardown
 * settling is impossible, and after the handle's functions were collected
 * nothing can ever grant them. Their deferreds go with the isolate. */
static void sl__handle_drop_waiters(sl_handle_t* h) {
  sl_wlist_t out;
  sl_waiter_t* w;
  sl_wlist_init(&out);
  sl_gate_clear(h->gate, h, &out);
  while ((w = sl_wlist_shift(&out)) != NULL)
    sl__waiter_done(h->senv, w);
}

static void sl__handle_free(sl_handle_t* h) {
  sl_env_t* senv = h->senv;
  if (h->waiters > 0)
    sl__handle_drop_waiters(h);
  if (h->gate->shared) {
    /* A semaphore dropped while holding permits of a shared gate: return
     * them, or every thread would lose them for good. Grants go through
     * the ready queues (self = NULL): this may run inside a finalizer,
     * where no promise is settled. */
    if (h->held > 0) {
      sl_wlist_t none;
      sl_wlist_init(&none);
      sl_gate_release(h->gate, (uint32_t) h->held, 0, NULL, &none);
      h->held = 0;
    }
    sl_registry_close(h->gate);
  }
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    senv->handles = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  senv->live_handles--;
  if (h->gate == &h->local)
    sl_gate_destroy(&h->local);
  free(h);
}

/* Runs once per JS function of the handle (three of them). Finalizers run
 * after the env's cleanup hook at teardown; the hook leaves handles in
 * place, so this is safe then too. */
static void sl__handle_finalize(napi_env env, void* data, void* hint) {
  sl_handle_t* h = data;
  if (--h->refs == 0)
    sl__handle_free(h);
}

static napi_value sl__make_fn(napi_env env, sl_handle_t* h, const char* name, napi_callback cb) {
  napi_value fn;
  SL_CHECK(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, h, &fn));
  SL_CHECK(env, napi_add_finalizer(env, fn, h, sl__handle_finalize, NULL, NULL));
  h->refs++;
  return fn;
}

/* Reads a gate name: a non-empty string of at most SL_NAME_MAX bytes. */
static int sl__arg_name(napi_env env, napi_value v, char* buf, size_t size) {
  napi_valuetype t;
  size_t len = 0;
  SL_CHECK_RET(env, napi_typeof(env, v, &t), -1);
  if (t != napi_string) {
    SL_CHECK_RET(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "Expected `name` to be a string"), -1);
    return -1;
  }
  SL_CHECK_RET(env, napi_get_value_string_utf8(env, v, NULL, 0, &len), -1);
  if (len == 0 || len >= size) {
    sl__throw_range(env, "Expected `name` to be a non-empty string of at most 1023 bytes");
    return -1;
  }
  SL_CHECK_RET(env, napi_get_value_string_utf8(env, v, buf, size, &len), -1);
  return 0;
}

/* gate(permits, name?) -> [take, release, ctl]
 * With a name, every thread that opens it gets the same gate: the first
 * opener sets the permits; later openers pass the same number or
 * undefined. */
static napi_value sl__gate_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], arr, fn;
  sl_env_t* senv;
  sl_handle_t* h;
  sl_gate_t* shared = NULL;
  int64_t permits = -1;
  napi_valuetype t = napi_undefined;
  char name[SL_NAME_MAX];
  static const struct {
    const char* name;
    napi_callback cb;
  } fns[3] = {{"take", sl__take}, {"release", sl__release}, {"ctl", sl__ctl}};
  uint32_t i;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 2) {
    SL_CHECK(env, napi_typeof(env, argv[1], &t));
    if (t != napi_undefined && sl__arg_name(env, argv[1], name, sizeof(name)) != 0)
      return NULL;
  }
  if (argc >= 1 && t != napi_undefined) {
    napi_valuetype pt;
    SL_CHECK(env, napi_typeof(env, argv[0], &pt));
    if (pt != napi_undefined && sl__arg_permits(env, argv[0], "permits", &permits) != 0)
      return NULL;
  } else if (argc < 1 || sl__arg_permits(env, argv[0], "permits", &permits) != 0) {
    if (argc < 1)
      SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "Expected `permits` to be a number"));
    return NULL;
  }
  senv = sl_env_get(env);
  if (senv == NULL)
    return NULL;
  if (t != napi_undefined) {
    int err = 0;
    int64_t existing = 0;
    char msg[SL_NAME_MAX + 160];
    if (sl__doorbell_open(senv) != 0) {
      SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_UV", "sluice: cannot create the doorbell"));
      return NULL;
    }
    shared = sl_registry_open(name, permits, &err, &existing);
    if (shared == NULL) {
      if (err == UV_EEXIST) {
        if (existing == SL_INFINITE)
          snprintf(msg, sizeof(msg), "The shared limit \"%s\" exists with Infinity permits; open it with that number or with none", name);
        else
          snprintf(msg, sizeof(msg), "The shared limit \"%s\" exists with %lld permits; open it with that number or with none", name, (long long) existing);
        sl__throw_range(env, msg);
      } else if (err == UV_ENOENT) {
        snprintf(msg, sizeof(msg), "No shared limit is named \"%s\": the first opener must give the number of permits", name);
        SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg));
      } else {
        SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
      }
      return NULL;
    }
  }
  h = calloc(1, sizeof(*h));
  if (h == NULL) {
    if (shared != NULL)
      sl_registry_close(shared);
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
    return NULL;
  }
  h->senv = senv;
  if (shared != NULL) {
    h->gate = shared;
  } else {
    h->gate = &h->local;
    sl_gate_init(&h->local, permits, 0);
  }
  h->next = senv->handles;
  if (h->next != NULL)
    h->next->prev = h;
  senv->handles = h;
  senv->live_handles++;

  SL_CHECK(env, napi_create_array_with_length(env, 3, &arr));
  for (i = 0; i < 3; i++) {
    fn = sl__make_fn(env, h, fns[i].name, fns[i].cb);
    if (fn == NULL) {
      if (h->refs == 0)
        sl__handle_free(h);
      return NULL;
    }
    SL_CHECK(env, napi_set_element(env, arr, i, fn));
  }
  return arr;
}

/* ------------------------------------------------------------ env setup --- */

/* setup(TimeoutError) -> scratch Float64Array */
static napi_value sl__setup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, ta;
  sl_env_t* senv = sl_env_get(env);
  void* data;

  if (senv == NULL)
    return NULL;
  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1) {
    napi_valuetype t;
    SL_CHECK(env, napi_typeof(env, argv[0], &t));
    if (t != napi_function) {
      SL_CHECK(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "Expected `TimeoutError` to be a class"));
      return NULL;
    }
    if (senv->timeout_ctor != NULL)
      SL_CHECK(env, napi_delete_reference(env, senv->timeout_ctor));
    SL_CHECK(env, napi_create_reference(env, argv[0], 1, &senv->timeout_ctor));
  }
  if (senv->scratch == NULL) {
    SL_CHECK(env, napi_create_arraybuffer(env, 4 * sizeof(double), &data, &ab));
    SL_CHECK(env, napi_create_typedarray(env, napi_float64_array, 4, ab, 0, &ta));
    SL_CHECK(env, napi_create_reference(env, ta, 1, &senv->scratch));
    senv->scratch_data = data;
    return ta;
  }
  SL_CHECK(env, napi_get_reference_value(env, senv->scratch, &ta));
  return ta;
}

/* debugCounts() -> { waiters, gates, uvHandles, namedGates, pools,
 * poolWaiters, poolTimers }: live native objects, for leak tests. */
static napi_value sl__debug_counts(napi_env env, napi_callback_info info) {
  sl_env_t* senv = sl_env_get(env);
  napi_value obj;
  if (senv == NULL)
    return NULL;
  SL_CHECK(env, napi_create_object(env, &obj));
  SL_CHECK(env, napi_set_named_property(env, obj, "waiters", sl__number(env, (double) senv->ctx.live)));
  SL_CHECK(env, napi_set_named_property(env, obj, "gates", sl__number(env, (double) senv->live_handles)));
  SL_CHECK(env, napi_set_named_property(env, obj, "uvHandles", sl__number(env, (double) senv->open_uv_handles)));
  SL_CHECK(env, napi_set_named_property(env, obj, "namedGates", sl__number(env, (double) sl_registry_count())));
  {
    double pools = 0, pool_waiters = 0, pool_timers = 0;
    sl_pool_debug_counts(senv, &pools, &pool_waiters, &pool_timers);
    SL_CHECK(env, napi_set_named_property(env, obj, "pools", sl__number(env, pools)));
    SL_CHECK(env, napi_set_named_property(env, obj, "poolWaiters", sl__number(env, pool_waiters)));
    SL_CHECK(env, napi_set_named_property(env, obj, "poolTimers", sl__number(env, pool_timers)));
  }
  return obj;
}

/* Teardown of an env (worker exit or terminate, or process exit): nothing
 * can be settled any more, so queued waiters are dropped and every uv handle
 * is closed. Node keeps the loop running until we remove this hook, which
 * happens in the last close callback. */
static void sl__env_cleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  sl_env_t* senv = arg;
  sl_handle_t* h;
  sl_wlist_t ready, none;
  sl_waiter_t* w;

  senv->closing = 1;
  senv->cleanup = hook;
  /* 1. Take this env's waiters out of every gate, under each gate's lock.
   *    After this no other thread can find one of them, so nothing more is
   *    pushed to our ready queue. */
  for (h = senv->handles; h != NULL; h = h->next)
    if (h->waiters > 0)
      sl__handle_drop_waiters(h);
  /* 2. No doorbell from now on; wait for rings other threads decided
   *    before step 1 but have not made yet (they make them without locks). */
  sl_ctx_close(&senv->ctx);
  /* 3. Grants that other threads made to us but we never settled: their
   *    permits go back to the gate (and on to whoever waits next). */
  sl_wlist_init(&ready);
  sl_ctx_take_ready(&senv->ctx, &ready);
  while ((w = sl_wlist_shift(&ready)) != NULL) {
    sl_handle_t* owner = w->owner;
    sl_wlist_init(&none);
    sl_gate_release(owner->gate, w->n, 0, NULL, &none);
    sl__waiter_done(senv, w);
  }
  /* 4. Permits this env holds on shared gates go back too. Unshared gates
   *    die with the env; nothing else can see them. */
  for (h = senv->handles; h != NULL; h = h->next) {
    if (h->gate->shared && h->held > 0) {
      sl_wlist_init(&none);
      sl_gate_release(h->gate, (uint32_t) h->held, 0, NULL, &none);
      h->held = 0;
    }
  }
  if (senv->pool_teardown != NULL)
    senv->pool_teardown(senv);
  /* 5. Close our handles; the hook is removed when the last one closed. */
  if (senv->doorbell_open) {
    senv->doorbell_open = 0;
    uv_close((uv_handle_t*) &senv->doorbell, sl__doorbell_close_cb);
  }
  if (senv->open_uv_handles == 0) {
    senv->cleanup = NULL;
    if (napi_remove_async_cleanup_hook(hook) != napi_ok)
      sl_fatal("cannot remove the cleanup hook");
  }
}

/* Runs last at teardown, after every finalizer. */
static void sl__env_finalize(napi_env env, void* data, void* hint) {
  sl_env_t* senv = data;
  /* At teardown this may fail; there is nobody to tell, and the env's
   * memory goes with it. */
  if (senv->async_context != NULL && napi_async_destroy(env, senv->async_context) != napi_ok)
    senv->async_context = NULL;
  sl_ctx_destroy(&senv->ctx);
  free(senv);
}

/* Node dlcloses an addon when a worker env that loaded it ends; if only
 * workers load it, statics (the registry of shared gates) would vanish with
 * it. Reopening ourselves with RTLD_NODELETE pins the library for the life
 * of the process. */
static uv_once_t sl__pin_once = UV_ONCE_INIT;
static void sl__pin_library(void) {
  Dl_info info;
  if (dladdr((void*) &sl__pin_library, &info) != 0 && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  sl_env_t* senv;
  napi_value resource, name, fn;
  static const struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"setup", sl__setup}, {"gate", sl__gate_new}, {"debugCounts", sl__debug_counts}};
  size_t i;

  uv_once(&sl__pin_once, sl__pin_library);

  senv = calloc(1, sizeof(*senv));
  if (senv == NULL) {
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory"));
    return NULL;
  }
  senv->env = env;
  if (sl_ctx_init(&senv->ctx) != 0) {
    free(senv);
    SL_CHECK(env, napi_throw_error(env, "ERR_SLUICE_INIT", "sluice: cannot create a mutex"));
    return NULL;
  }
  if (napi_set_instance_data(env, senv, sl__env_finalize, NULL) != napi_ok) {
    sl_ctx_destroy(&senv->ctx);
    free(senv);
    sl__throw_status(env, napi_generic_failure, "napi_set_instance_data");
    return NULL;
  }
  SL_CHECK(env, napi_get_uv_event_loop(env, &senv->loop));
  SL_CHECK(env, napi_create_object(env, &resource));
  SL_CHECK(env, napi_create_reference(env, resource, 1, &senv->resource));
  SL_CHECK(env, napi_create_string_utf8(env, "sluice", NAPI_AUTO_LENGTH, &name));
  SL_CHECK(env, napi_async_init(env, resource, name, &senv->async_context));
  SL_CHECK(env, napi_add_async_cleanup_hook(env, sl__env_cleanup, senv, NULL));

  for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    SL_CHECK(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn));
    SL_CHECK(env, napi_set_named_property(env, exports, fns[i].name, fn));
  }
  sl_pool_init(env, exports);
  return exports;
}
