/* sluice: the Node-API binding of gates (limiter and semaphore).
 *
 * JS gets, per gate, three functions created with the gate handle as their
 * `data`, so the hot calls carry no argument to unwrap:
 *
 *   take(value?, n = 1, priority = 0, timeoutMs = 0)
 *       Takes n permits now and returns undefined, or queues a waiter and
 *       returns a promise that is resolved with `value` when the permits are
 *       granted (undefined when `value` is not a number). The waiter's token
 *       (for cancel) is written to scratch[0] (index) and scratch[1] (seq).
 *       A request for more permits than the gate has is a rejected promise
 *       (RangeError), as is a queued one when the permits are lowered below
 *       it.
 *   release(n, maxGrants = unlimited)
 *       Returns n permits and settles the waiters that now fit, in order.
 *       With no argument: one permit, at most one waiter granted (p-limit's
 *       next(); the hot path, so it parses nothing).
 *   ctl(op, a, b, c)
 *       Everything else (protocol.h's SL_GATE_OPS). A fleet gate (the local
 *       side of a Redis gate, lib/redis/gate.js; gate.h "fleet gates") has
 *       five more: GRANT_TO(stakeId, seq, value) grants that waiter of any
 *       thread, LEAD(true) claims the gate's lead when free (true if this
 *       handle leads) and LEAD(false) gives it up, STAKES gives [next id,
 *       ...ids of the open stakes], STAKE_ID this handle's stake id, and
 *       EPOCH(bump?) the gate's counter of news (sl_gate_epoch).
 *
 * Promises of granted waiters are resolved inside the JS call that granted
 * them (microtasks run when that call returns to JS), or from a libuv
 * callback (timeout, doorbell) inside one callback scope per batch.
 *
 * Lifetimes. A handle is owned by its three JS functions and freed when the
 * last is collected. While it has a waiter that something other than a JS
 * call through the handle can settle (another thread's release, a timeout),
 * it holds a strong reference to its own `take`, so it cannot be collected
 * under a grant in flight. A handle collected with waiters queued (an
 * unshared gate nobody can release any more) frees their deferreds by
 * resolving them with a thenable that never calls back: the promises stay
 * pending, as p-limit's would, and become garbage with their callers.
 */
#include "gate.h"

#include "../core/gate.h"
#include "../core/hgate.h"
#include "../core/registry.h"
#include "protocol.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sl_handle_s sl_handle_t;

/* The binding's per-env state. */
typedef struct sl_genv_s {
  sl_env_t* senv;
  sl_ctx_t ctx;
  sl_handle_t* handles; /* live handles, for teardown */
  uint64_t live_handles;
  napi_ref never; /* { then() {} }: frees a deferred, leaves its promise pending */
  /* Shared gates: grants made by other threads for this env's waiters go to
   * ctx.ready and ring this doorbell. It is ref'd only while ctx.keep says
   * another thread could grant one of them, so it never keeps a thread alive
   * that nothing could wake. */
  uv_async_t doorbell;
  int doorbell_open;
  int doorbell_refd;
} sl_genv_t;

/* One gate as JS sees it. */
struct sl_handle_s {
  sl_stake_t stake; /* first: a stake of ours converts back to its handle */
  sl_gate_t local;  /* unshared gates live here */
  const sl_gate_backend_t* be;
  sl_genv_t* genv;
  sl_handle_t* next; /* genv->handles */
  sl_handle_t* prev;
  napi_ref self;    /* `take`: weak, strong while pins > 0 */
  uint64_t waiters; /* waiters not yet freed (queued, or granted in flight) */
  uint64_t pins;    /* of those, the ones another thread or a timer may settle */
  uint32_t refs;    /* JS functions alive */
  int shared;       /* named: other threads (or processes) may grant its waiters */
  int host;         /* a host gate (sl_hgate_backend): its stake holds the segment */
  int fleet;        /* a fleet gate (SL_REGISTRY_FLEET): permits 0, grants by GRANT_TO */
  int closed;       /* teardown gave its stake back already */
};

/* A timeout for one waiter. The waiter points to it and it points back; the
 * link is cut (waiter = NULL) as soon as the waiter is done, and the timer
 * is closed then, so a firing timer always finds its waiter. */
typedef struct sl_wtimer_s {
  uv_timer_t handle;
  sl_env_t* senv;
  sl_genv_t* genv;
  sl_waiter_t* waiter;
} sl_wtimer_t;

static sl_handle_t* sl__handle_of(sl_waiter_t* w) {
  return (sl_handle_t*) w->stake;
}

/* ------------------------------------------------------------ doorbell --- */

/* Refs the doorbell while another thread could grant one of our waiters
 * (ctx.keep), unrefs it otherwise. Runs on the env's own thread: after each
 * operation on a shared gate, and in the doorbell callback (other threads
 * ring when our keep count crosses zero). */
static void sl__doorbell_sync(sl_genv_t* genv) {
  int want;
  if (!genv->doorbell_open)
    return;
  want = sl_ctx_keep(&genv->ctx);
  if (want == genv->doorbell_refd)
    return;
  genv->doorbell_refd = want;
  if (want)
    uv_ref((uv_handle_t*) &genv->doorbell);
  else
    uv_unref((uv_handle_t*) &genv->doorbell);
}

/* ------------------------------------------------------------- waiters --- */

static void sl__wtimer_close_cb(uv_handle_t* handle) {
  sl_wtimer_t* t = (sl_wtimer_t*) handle;
  sl_env_t* senv = t->senv;
  free(t);
  sl_env_handle_closed(senv);
}

/* Frees a waiter that left its gate. Its deferred must be settled or
 * deliberately dropped by now. */
static void sl__waiter_done(sl_genv_t* genv, sl_waiter_t* w) {
  sl_handle_t* h = sl__handle_of(w);
  sl_wtimer_t* t = w->timer;
  int pinned = h->shared || t != NULL;

  h->waiters--;
  if (t != NULL) {
    w->timer = NULL;
    t->waiter = NULL;
    uv_close((uv_handle_t*) &t->handle, sl__wtimer_close_cb);
  }
  sl_ctx_waiter_free(&genv->ctx, w);
  /* The last pinned waiter gone: the handle may be collected again. At
   * teardown the references go with the env. */
  if (pinned && --h->pins == 0 && !genv->senv->closing)
    SL_CHECK_VOID(genv->senv->env, napi_reference_unref(genv->senv->env, h->self, NULL));
}

static napi_status sl__range_error(napi_env env, const char* msg, napi_value* out) {
  napi_value code, text;
  napi_status s = napi_create_string_utf8(env, "ERR_OUT_OF_RANGE", NAPI_AUTO_LENGTH, &code);
  if (s == napi_ok)
    s = napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  if (s == napi_ok)
    s = napi_create_range_error(env, code, text, out);
  return s;
}

/* The RangeError for a request of `n` permits from a gate of `permits`. */
static napi_status sl__too_many(napi_env env, uint32_t n, int64_t permits, napi_value* out) {
  char msg[200];
  snprintf(msg, sizeof(msg),
           "Cannot acquire %u permit%s: the gate has only %lld (a request for more permits than "
           "the gate has could never be granted)",
           n, n == 1 ? "" : "s", (long long) permits);
  return sl__range_error(env, msg, out);
}

/* Resolves a waiter's promise with its value (undefined if not a number). */
static napi_status sl__resolve(napi_env env, sl_waiter_t* w) {
  napi_value v;
  napi_status s =
      isnan(w->value) ? napi_get_undefined(env, &v) : napi_create_double(env, w->value, &v);
  if (s == napi_ok)
    s = napi_resolve_deferred(env, w->data, v);
  return s;
}

/* scratch[2]: how many promises the current call resolved (JS reads it
 * right after take/release/ctl, to keep what runs the granted tasks alive
 * until their reactions have run; lib/p-limit.js). */
static void sl__count_reset(sl_env_t* senv) {
  if (senv->scratch_data != NULL)
    senv->scratch_data[2] = 0;
}

static void sl__count_resolved(sl_env_t* senv) {
  if (senv->scratch_data != NULL)
    senv->scratch_data[2]++;
}

/* Settles the waiters of this env that left the queue (granted: resolve
 * with their value; refused: reject with a RangeError) and frees them.
 * Every waiter is freed even when a settlement fails (the error stays
 * pending for JS). */
static void sl__settle(sl_genv_t* genv, sl_wlist_t* list) {
  napi_env env = genv->senv->env;
  sl_waiter_t* w;
  while ((w = sl_wlist_shift(list)) != NULL) {
    napi_value v;
    if (w->state == SL_WAITER_GRANTED) {
      SL_CHECK_GO_ON(env, sl__resolve(env, w));
      sl__count_resolved(genv->senv);
    } else {
      sl_gate_counts_t c;
      sl__handle_of(w)->be->counts(w->stake, &c);
      SL_CHECK_GO_ON(env, sl__too_many(env, w->n, c.permits, &v));
      SL_CHECK_GO_ON(env, napi_reject_deferred(env, w->data, v));
    }
    sl__waiter_done(genv, w);
  }
}

/* Drops waiters that can never be settled (their handle was collected, or
 * the env is going away): their deferreds are freed by resolving them with
 * a thenable that never calls back, so the promises stay pending. At
 * teardown that fails, and the isolate takes them. */
static void sl__drop(sl_genv_t* genv, sl_wlist_t* list) {
  napi_env env = genv->senv->env;
  napi_value never = NULL;
  sl_waiter_t* w;
  if (!genv->senv->closing && napi_get_reference_value(env, genv->never, &never) != napi_ok)
    never = NULL;
  while ((w = sl_wlist_shift(list)) != NULL) {
    if (never != NULL && napi_resolve_deferred(env, w->data, never) != napi_ok)
      never = NULL;
    sl__waiter_done(genv, w);
  }
}

static void sl__wtimer_cb(uv_timer_t* handle) {
  sl_wtimer_t* t = (sl_wtimer_t*) handle;
  sl_genv_t* genv = t->genv;
  sl_env_t* senv = t->senv;
  sl_waiter_t* w = t->waiter;
  sl_wlist_t out;
  sl_scope_t scope;
  napi_value err;
  char msg[96];

  if (senv->closing || w == NULL)
    return;
  sl_wlist_init(&out);
  if (sl__handle_of(w)->be->cancel(w, &out) != 0)
    return; /* granted by another thread: on its way through the doorbell */
  if (sl_scope_open(senv, &scope) != 0) {
    /* Cannot call into JS: the waiter's promise cannot be rejected; drop it
     * (the gate is consistent either way) and hand on what it let in. */
    sl_wlist_push(&out, w);
    sl__drop(genv, &out);
    return;
  }
  snprintf(msg, sizeof(msg), "Timed out waiting for %u permit%s", w->n, w->n == 1 ? "" : "s");
  if (sl_timeout_error(senv, msg, &err) == napi_ok)
    SL_CHECK_GO_ON(senv->env, napi_reject_deferred(senv->env, w->data, err));
  sl__waiter_done(genv, w);
  sl__settle(genv, &out);
  sl__doorbell_sync(genv);
  sl_scope_close(senv, &scope);
}

/* Grants made (or refusals) by other threads: settle them all in one
 * callback scope. Also rung when our keep count crossed zero. */
static void sl__doorbell_cb(uv_async_t* handle) {
  sl_genv_t* genv = handle->data;
  sl_env_t* senv = genv->senv;
  sl_wlist_t ready;
  sl_scope_t scope;

  if (senv->closing)
    return;
  sl_wlist_init(&ready);
  sl_ctx_take_ready(&genv->ctx, &ready);
  if (ready.head != NULL) {
    if (sl_scope_open(senv, &scope) == 0) {
      sl__settle(genv, &ready);
      sl_scope_close(senv, &scope);
    } else {
      /* Cannot call into JS: give granted permits back rather than lose
       * them. */
      sl_waiter_t* w;
      while ((w = sl_wlist_shift(&ready)) != NULL) {
        sl_wlist_t more;
        sl_wlist_init(&more);
        if (w->state == SL_WAITER_GRANTED)
          sl__handle_of(w)->be->release(w->stake, w->n, 0, &more);
        sl_wlist_push(&more, w);
        sl__drop(genv, &more);
      }
    }
  }
  sl__doorbell_sync(genv);
}

static void sl__doorbell_close_cb(uv_handle_t* handle) {
  sl_genv_t* genv = handle->data;
  sl_env_handle_closed(genv->senv);
}

static int sl__doorbell_open(sl_genv_t* genv) {
  int r;
  if (genv->doorbell_open)
    return 0;
  r = uv_async_init(genv->senv->loop, &genv->doorbell, sl__doorbell_cb);
  if (r != 0)
    return r;
  genv->doorbell.data = genv;
  genv->doorbell_open = 1;
  genv->doorbell_refd = 0;
  uv_unref((uv_handle_t*) &genv->doorbell);
  sl_env_handle_opened(genv->senv);
  sl_ctx_set_doorbell(&genv->ctx, &genv->doorbell);
  return 0;
}

/* -------------------------------------------------------- gate methods --- */

/* The arguments of take(), all read before anything changes. */
typedef struct sl_take_args_s {
  double value;
  double timeout;
  int64_t n;
  int64_t priority;
} sl_take_args_t;

static int sl__take_args(napi_env env, size_t argc, napi_value* argv, sl_take_args_t* a) {
  a->value = NAN;
  a->timeout = 0;
  a->n = 1;
  a->priority = 0;
  if (argc >= 1 && napi_get_value_double(env, argv[0], &a->value) != napi_ok)
    a->value = NAN; /* not a number: resolve with undefined */
  if (argc >= 2 && sl_arg_int(env, argv[1], "n", 1, UINT32_MAX, 1, &a->n) != 0)
    return -1;
  if (argc >= 3 && sl_arg_int(env, argv[2], "priority", INT32_MIN, INT32_MAX, 0, &a->priority) != 0)
    return -1;
  if (argc >= 4) {
    if (sl_arg_double(env, argv[3], "timeout", 0, &a->timeout) != 0)
      return -1;
    if (!(a->timeout >= 0 && a->timeout <= SL_TIMEOUT_MAX))
      return sl_throw_range(env, "Expected `timeout` to be a number of milliseconds from 0 to "
                                 "4294967295");
  }
  return 0;
}

static void sl__pin(sl_handle_t* h) {
  napi_env env = h->genv->senv->env;
  if (h->pins++ == 0)
    SL_CHECK_VOID(env, napi_reference_ref(env, h->self, NULL));
}

/* Settles a take that was not queued after all: refused (more than the
 * gate has, or no memory), or granted at once (a shared gate freed up since
 * try_take). */
static napi_value sl__take_unqueued(napi_env env, sl_handle_t* h, int r, double value, uint32_t n,
                                    napi_deferred deferred, napi_value promise) {
  napi_value err, code, text;
  sl_gate_counts_t c;
  if (r == 0) {
    SL_CHECK(env, sl__resolve(env, &(sl_waiter_t){.value = value, .data = deferred}));
    sl__count_resolved(h->genv->senv);
    return promise;
  }
  if (r == UV_ERANGE) {
    h->be->counts(&h->stake, &c);
    SL_CHECK(env, sl__too_many(env, n, c.permits, &err));
  } else if (r == UV_ENOSPC || r == UV_EIO) {
    /* Host gates only: the shared queue is full, or the segment cannot be
     * used any more. */
    SL_CHECK(env, napi_create_string_utf8(
                      env, r == UV_ENOSPC ? "ERR_SLUICE_QUEUE_FULL" : "ERR_SLUICE_HOST_GATE",
                      NAPI_AUTO_LENGTH, &code));
    SL_CHECK(env, napi_create_string_utf8(
                      env,
                      r == UV_ENOSPC ? "sluice: the host gate's queue is full (16384 waiters)"
                                     : "sluice: the host gate's shared memory is unusable",
                      NAPI_AUTO_LENGTH, &text));
    SL_CHECK(env, napi_create_error(env, code, text, &err));
  } else {
    SL_CHECK(env, napi_create_string_utf8(env, "ERR_SLUICE_NOMEM", NAPI_AUTO_LENGTH, &code));
    SL_CHECK(env, napi_create_string_utf8(env, "sluice: out of memory", NAPI_AUTO_LENGTH, &text));
    SL_CHECK(env, napi_create_error(env, code, text, &err));
  }
  SL_CHECK(env, napi_reject_deferred(env, deferred, err));
  return promise;
}

/* Arms a queued waiter's timeout. The timer keeps the handle alive (pinned)
 * until it fires or the waiter is done. */
static void sl__wtimer_arm(sl_handle_t* h, sl_waiter_t* w, sl_wtimer_t* t, double ms) {
  sl_env_t* senv = h->genv->senv;
  t->senv = senv;
  t->genv = h->genv;
  t->waiter = w;
  w->timer = t;
  uv_timer_init(senv->loop, &t->handle); /* cannot fail */
  sl_env_handle_opened(senv);
  if (!h->shared)
    sl__pin(h); /* a shared gate's waiter is pinned already */
  /* Count from now, not from the start of this loop iteration (libuv caches
   * the loop's time; uv_timer_start counts from the cached value). */
  uv_update_time(senv->loop);
  /* Fails only for a NULL callback or a closing handle: neither here. */
  (void) uv_timer_start(&t->handle, sl__wtimer_cb, (uint64_t) ms, 0);
}

/* Queues a waiter for a take that could not be granted at once. Every step
 * that can fail comes before the waiter is queued, so a failure changes
 * nothing; after it, the promise is returned whatever happens (a refusal
 * rejects it). */
static napi_value sl__take_slow(napi_env env, sl_handle_t* h, const sl_take_args_t* a) {
  sl_genv_t* genv = h->genv;
  sl_env_t* senv = genv->senv;
  sl_wtimer_t* t = NULL;
  sl_waiter_t* w;
  sl_wlist_t out;
  napi_value promise, result;
  napi_deferred deferred;
  int r, queued = 0;

  sl__count_reset(senv);
  w = sl_ctx_waiter_new(&genv->ctx);
  if (w == NULL || (a->timeout > 0 && (t = malloc(sizeof(*t))) == NULL)) {
    if (w != NULL)
      sl_ctx_waiter_free(&genv->ctx, w);
    sl_throw_uv(env, UV_ENOMEM);
    return NULL;
  }
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) {
    free(t);
    sl_ctx_waiter_free(&genv->ctx, w);
    sl_throw_status(env, napi_generic_failure, "napi_create_promise");
    return NULL;
  }
  w->value = a->value;
  w->data = deferred;
  sl_wlist_init(&out);
  r = h->be->acquire(&h->stake, w, (uint32_t) a->n, (int32_t) a->priority, &queued, &out);
  if (!queued) {
    free(t);
    sl_ctx_waiter_free(&genv->ctx, w);
    result = sl__take_unqueued(env, h, r, a->value, (uint32_t) a->n, deferred, promise);
    sl__settle(genv, &out);
    return result;
  }
  /* Queued (and perhaps granted already, into `out`). No other thread
   * settles this waiter: grants by other threads go to our ready queue. */
  h->waiters++;
  if (h->shared)
    sl__pin(h);
  if (t != NULL && out.head == w)
    free(t); /* granted in the call: no timeout */
  else if (t != NULL)
    sl__wtimer_arm(h, w, t, a->timeout);
  if (senv->scratch_data != NULL) { /* NULL only if setup() was never called */
    senv->scratch_data[0] = (double) w->index;
    senv->scratch_data[1] = (double) w->seq;
  }
  sl__settle(genv, &out);
  if (h->shared)
    sl__doorbell_sync(genv);
  return promise;
}

static napi_value sl__take(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void* data;
  sl_handle_t* h;
  sl_take_args_t a;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  if (sl__take_args(env, argc, argv, &a) != 0)
    return NULL;
  if (h->closed) {
    sl_throw_error(env, "ERR_SLUICE_CLOSING", "sluice: the environment is shutting down");
    return NULL;
  }
  /* The common case, a free permit: no waiter, no promise. */
  if (h->be->try_take(&h->stake, (uint32_t) a.n) == 0)
    return NULL;
  return sl__take_slow(env, h, &a);
}

static napi_value sl__release(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data;
  sl_handle_t* h;
  sl_wlist_t out;
  int64_t n = 1, max_grants = 0;

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  sl__count_reset(h->genv->senv);
  if (argc == 0)
    max_grants = 1; /* p-limit's next(): one back, at most one started */
  if (argc >= 1 && sl_arg_int(env, argv[0], "n", 1, UINT32_MAX, 1, &n) != 0)
    return NULL;
  if (argc >= 2 && sl_arg_int(env, argv[1], "maxGrants", 0, UINT32_MAX, 0, &max_grants) != 0)
    return NULL;
  sl_wlist_init(&out);
  if (h->closed || h->be->release(&h->stake, n, (uint32_t) max_grants, &out) != 0) {
    char msg[200];
    int64_t held = h->closed ? 0 : h->be->held(&h->stake);
    snprintf(msg, sizeof(msg),
             "Cannot release %lld permit%s: only %lld %s held (releasing more than was acquired)",
             (long long) n, n == 1 ? "" : "s", (long long) held, held == 1 ? "is" : "are");
    sl_throw_range(env, msg);
    return NULL;
  }
  sl__settle(h->genv, &out);
  if (h->shared)
    sl__doorbell_sync(h->genv);
  return NULL;
}

/* clearQueue: every waiter of this handle leaves the queue, in order; their
 * values are returned. Without `reject_with` their promises are resolved
 * (p-limit's JS then drops the cleared tasks), with it they are rejected. */
static napi_value sl__ctl_clear(napi_env env, sl_handle_t* h, napi_value reject_with) {
  sl_wlist_t out;
  sl_waiter_t* w;
  napi_value arr;
  uint32_t i = 0;

  /* Made first: a failure here changes nothing. */
  SL_CHECK(env, napi_create_array(env, &arr));
  sl_wlist_init(&out);
  h->be->clear(&h->stake, &out);
  while ((w = sl_wlist_shift(&out)) != NULL) {
    napi_value v;
    /* Settle every waiter even if building the result fails. */
    if (napi_create_double(env, w->value, &v) == napi_ok)
      SL_CHECK_GO_ON(env, napi_set_element(env, arr, i++, v));
    if (reject_with != NULL) {
      SL_CHECK_GO_ON(env, napi_reject_deferred(env, w->data, reject_with));
    } else {
      SL_CHECK_GO_ON(env, sl__resolve(env, w));
      sl__count_resolved(h->genv->senv);
    }
    sl__waiter_done(h->genv, w);
  }
  /* Removing waiters frees no permit, but a head waiter we removed may have
   * held up others that fit: grant in order. */
  h->be->dispatch(&h->stake, &out);
  sl__settle(h->genv, &out);
  return arr;
}

/* cancel(index, seq, reason): an abort. A stale token is fine: false. */
static napi_value sl__ctl_cancel(napi_env env, sl_handle_t* h, size_t argc, napi_value* argv) {
  int64_t index, seq;
  sl_waiter_t* w;
  sl_wlist_t out;
  int ok = 0;

  if (sl_arg_integer(env, argv[1], "index", 0, UINT32_MAX, &index) != 0 ||
      sl_arg_integer(env, argv[2], "seq", 1, ((int64_t) 1 << 53) - 1, &seq) != 0)
    return NULL;
  if (argc < 4) {
    sl_throw_type(env, "Expected a rejection `reason`");
    return NULL;
  }
  sl_wlist_init(&out);
  w = sl_ctx_waiter_find(&h->genv->ctx, (uint32_t) index, (uint64_t) seq);
  if (w != NULL && w->stake == &h->stake && h->be->cancel(w, &out) == 0) {
    SL_CHECK_GO_ON(env, napi_reject_deferred(env, w->data, argv[3]));
    sl__waiter_done(h->genv, w);
    ok = 1;
  }
  sl__settle(h->genv, &out);
  return sl_bool(env, ok);
}

/* The fleet gate operations (see the top of this file). */
static napi_value sl__ctl_fleet(napi_env env, sl_handle_t* h, int64_t op, napi_value* argv) {
  int64_t id, seq;
  double value;
  sl_wlist_t out;
  uint64_t next = 0;
  uint32_t n, i;
  napi_value arr;
  int r;

  if (!h->fleet) {
    sl_throw_type(env, "Not a fleet gate");
    return NULL;
  }
  switch (op) {
    case SL_OP_GRANT_TO:
      if (sl_arg_integer(env, argv[1], "stakeId", 1, ((int64_t) 1 << 53) - 1, &id) != 0 ||
          sl_arg_integer(env, argv[2], "seq", 1, ((int64_t) 1 << 53) - 1, &seq) != 0 ||
          sl_arg_number(env, argv[3], "value", &value) != 0)
        return NULL;
      /* A fencing token, or -1 for a refusal: never NaN or infinite. */
      if (!isfinite(value)) {
        sl_throw_range(env, "Expected `value` to be a finite number");
        return NULL;
      }
      sl_wlist_init(&out);
      r = sl_gate_grant_to(&h->stake, (uint64_t) id, (uint64_t) seq, value, &out);
      sl__settle(h->genv, &out);
      return sl_bool(env, r == 0);
    case SL_OP_LEAD: {
      /* LEAD(false) gives the lead up; LEAD(true) (or LEAD()) claims it
       * when free. */
      bool claim = true;
      napi_valuetype t;
      SL_CHECK(env, napi_typeof(env, argv[1], &t));
      if (t == napi_boolean)
        SL_CHECK(env, napi_get_value_bool(env, argv[1], &claim));
      else if (t != napi_undefined) {
        sl_throw_type(env, "Expected `claim` to be a boolean");
        return NULL;
      }
      if (!claim) {
        sl_gate_resign(&h->stake);
        return sl_bool(env, 0);
      }
      return sl_bool(env, sl_gate_lead(&h->stake) == h->stake.id);
    }
    case SL_OP_STAKES: {
      /* Counted first, then read into a buffer with room to spare; stakes
       * opened between the two calls are left to the next STAKES (their
       * ids are at or above `next`). */
      uint64_t* ids;
      uint32_t room = sl_gate_stakes(&h->stake, NULL, 0, &next) + 16;
      napi_status st;
      ids = malloc(sizeof(*ids) * room);
      if (ids == NULL) {
        sl_throw_uv(env, UV_ENOMEM);
        return NULL;
      }
      n = sl_gate_stakes(&h->stake, ids, room, &next);
      if (n > room)
        n = room;
      st = napi_create_array_with_length(env, n + 1, &arr);
      for (i = 0; st == napi_ok && i < n; i++)
        st = napi_set_element(env, arr, i + 1, sl_count(env, (int64_t) ids[i]));
      free(ids);
      SL_CHECK(env, st);
      SL_CHECK(env, napi_set_element(env, arr, 0, sl_count(env, (int64_t) next)));
      return arr;
    }
    case SL_OP_EPOCH: {
      /* EPOCH(true) bumps it; EPOCH() or EPOCH(false) reads it. */
      bool bump = false;
      napi_valuetype t;
      SL_CHECK(env, napi_typeof(env, argv[1], &t));
      if (t == napi_boolean)
        SL_CHECK(env, napi_get_value_bool(env, argv[1], &bump));
      else if (t != napi_undefined) {
        sl_throw_type(env, "Expected `bump` to be a boolean");
        return NULL;
      }
      return sl_count(env, (int64_t) sl_gate_epoch(&h->stake, bump));
    }
    default: return sl_count(env, (int64_t) h->stake.id);
  }
}

static napi_value sl__ctl_op(napi_env env, sl_handle_t* h, int64_t op, size_t argc,
                             napi_value* argv) {
  sl_gate_counts_t c;
  sl_wlist_t out;
  int64_t n;

  sl_wlist_init(&out);
  /* A fleet gate's permits stay 0: its grants are Redis's (GRANT_TO), and
   * the gate is shared by every Redis gate of its name in the process, so
   * permits set here would be granted locally, past the fleet's limit. */
  if (h->fleet && (op == SL_OP_SET_PERMITS || op == SL_OP_TRY_TAKE)) {
    sl_throw_type(env, "A fleet gate has no permits of its own (its grants come from Redis)");
    return NULL;
  }
  switch (op) {
    case SL_OP_ACTIVE:
    case SL_OP_PENDING:
    case SL_OP_PERMITS:
    case SL_OP_AVAILABLE:
      /* One consistent snapshot, under the gate's lock when shared. */
      h->be->counts(&h->stake, &c);
      if (op == SL_OP_ACTIVE)
        return sl_count(env, c.in_use);
      if (op == SL_OP_PENDING)
        return sl_count(env, c.npending);
      if (op == SL_OP_PERMITS || c.permits == SL_INFINITE)
        return sl_count(env, c.permits);
      return sl_count(env, c.permits - c.in_use);
    case SL_OP_SET_PERMITS:
      if (sl_arg_permits(env, argv[1], "permits", &n) != 0)
        return NULL;
      h->be->set_permits(&h->stake, n, &out);
      sl__settle(h->genv, &out);
      return NULL;
    case SL_OP_DISPATCH:
      h->be->dispatch(&h->stake, &out);
      sl__settle(h->genv, &out);
      return NULL;
    case SL_OP_CLEAR: return sl__ctl_clear(env, h, argc >= 2 ? argv[1] : NULL);
    case SL_OP_TRY_TAKE:
      if (sl_arg_integer(env, argv[1], "n", 1, UINT32_MAX, &n) != 0)
        return NULL;
      return sl_bool(env, h->be->try_take(&h->stake, (uint32_t) n) == 0);
    case SL_OP_CANCEL: return sl__ctl_cancel(env, h, argc, argv);
    case SL_OP_GRANT_TO:
    case SL_OP_LEAD:
    case SL_OP_STAKES:
    case SL_OP_STAKE_ID:
    case SL_OP_EPOCH: return sl__ctl_fleet(env, h, op, argv);
    default: sl_throw_range(env, "Unknown gate operation"); return NULL;
  }
}

static napi_value sl__ctl(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void* data;
  sl_handle_t* h;
  int64_t op;
  napi_value result;

  /* Arguments not passed read as undefined (argv is filled up to 4). */
  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  h = data;
  sl__count_reset(h->genv->senv);
  {
    /* Read as a double: napi_get_value_int32 would wrap NaN, 1.5 or 2^32 to
     * a valid op. */
    double d;
    if (sl_arg_number(env, argv[0], "op", &d) != 0)
      return NULL;
    if (!(d >= 0 && d < SL_OP_COUNT_ && d == floor(d))) {
      sl_throw_range(env, "Unknown gate operation");
      return NULL;
    }
    op = (int64_t) d;
  }
  if (h->closed) {
    sl_throw_error(env, "ERR_SLUICE_CLOSING", "sluice: the environment is shutting down");
    return NULL;
  }
  result = sl__ctl_op(env, h, op, argc, argv);
  if (h->shared)
    sl__doorbell_sync(h->genv);
  return result;
}

/* ------------------------------------------------------ handle lifetime --- */

static void sl__handle_unlink(sl_handle_t* h) {
  sl_genv_t* genv = h->genv;
  if (h->prev != NULL)
    h->prev->next = h->next;
  else
    genv->handles = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  genv->live_handles--;
}

/* Gives back what the handle has in its gate: its queued waiters are
 * dropped (nothing can grant them: the handle was collected, or the env is
 * going away) and its permits return to the gate. */
static void sl__handle_close(sl_handle_t* h) {
  sl_wlist_t out;
  sl_wlist_init(&out);
  if (h->waiters > 0) {
    h->be->clear(&h->stake, &out);
    sl__drop(h->genv, &out);
  }
  h->be->close(&h->stake);
  if (h->shared && !h->host)
    sl_registry_close(h->stake.gate);
  h->closed = 1;
}

/* Runs once per JS function of the handle (three of them). Finalizers run
 * after the env's teardown too; it closed the handle already then. */
static void sl__handle_finalize(napi_env env, void* data, void* hint) {
  sl_handle_t* h = data;
  (void) hint;
  if (--h->refs > 0)
    return;
  if (!h->closed)
    sl__handle_close(h);
  if (h->self != NULL && napi_delete_reference(env, h->self) != napi_ok)
    h->self = NULL; /* only at teardown, where the env frees it */
  sl__handle_unlink(h);
  if (!h->shared)
    sl_gate_destroy(&h->local);
  free(h);
}

/* Whether UTF-16 code units hold a lone surrogate (UTF-8 would turn it
 * into U+FFFD, so 'q\ud800' and 'q\udfff' would name one gate). */
static int sl__lone_surrogate(const char16_t* u, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (u[i] >= 0xd800 && u[i] <= 0xdbff && i + 1 < n && u[i + 1] >= 0xdc00 && u[i + 1] <= 0xdfff)
      i++; /* a pair */
    else if (u[i] >= 0xd800 && u[i] <= 0xdfff)
      return 1;
  }
  return 0;
}

/* Reads a gate name: a non-empty, well-formed string of at most SL_NAME_MAX
 * bytes of UTF-8, embedded NULs included (the registry compares lengths). */
static int sl__arg_name(napi_env env, napi_value v, char* buf, size_t* len) {
  char16_t units[SL_NAME_MAX + 1];
  napi_valuetype t;
  size_t n = 0, nu = 0;
  SL_CHECK_INT(env, napi_typeof(env, v, &t));
  if (t != napi_string)
    return sl_throw_type(env, "Expected `name` to be a string");
  SL_CHECK_INT(env, napi_get_value_string_utf8(env, v, NULL, 0, &n));
  if (n == 0 || n > SL_NAME_MAX)
    return sl_throw_range(env, "Expected `name` to be a non-empty string of at most 1023 bytes");
  /* At most 1023 bytes of UTF-8 are at most 1023 UTF-16 units. */
  SL_CHECK_INT(env, napi_get_value_string_utf16(env, v, units, SL_NAME_MAX + 1, &nu));
  if (sl__lone_surrogate(units, nu))
    return sl_throw_range(env, "Expected `name` to be a well-formed string (no lone surrogate)");
  SL_CHECK_INT(env, napi_get_value_string_utf8(env, v, buf, SL_NAME_MAX + 1, len));
  return 0;
}

/* Opens the named gate, with a RangeError/TypeError that says why not. */
static int sl__open_named(napi_env env, sl_genv_t* genv, int kind, const char* name, size_t len,
                          int64_t permits, sl_gate_t** out) {
  int64_t existing = 0;
  char msg[SL_NAME_MAX + 200];
  int r;
  if ((r = sl__doorbell_open(genv)) != 0)
    return sl_throw_uv(env, r);
  r = sl_registry_open(kind, name, len, permits, out, &existing);
  if (r == UV_EEXIST) {
    if (existing == SL_INFINITE)
      snprintf(msg, sizeof(msg),
               "The shared limit \"%.*s\" exists with Infinity permits; open it "
               "with that number or with none",
               (int) len, name);
    else
      snprintf(msg, sizeof(msg),
               "The shared limit \"%.*s\" exists with %lld permits; open it "
               "with that number or with none",
               (int) len, name, (long long) existing);
    return sl_throw_range(env, msg);
  }
  if (r == UV_ENOENT) {
    snprintf(msg, sizeof(msg),
             "No shared limit is named \"%.*s\": the first opener must give "
             "the number of permits",
             (int) len, name);
    return sl_throw_type(env, msg);
  }
  return r == 0 ? 0 : sl_throw_uv(env, r);
}

/* Opens a stake in the host gate `name` (scope: 'host'), with an error
 * that says why not. */
static int sl__open_host(napi_env env, sl_genv_t* genv, const char* name, size_t len,
                         int64_t permits, sl_stake_t* s) {
  int64_t existing = 0;
  char msg[SL_NAME_MAX + 600], path[512];
  int r;
  if ((r = sl__doorbell_open(genv)) != 0)
    return sl_throw_uv(env, r);
  r = sl_hgate_open(NULL, name, len, permits, &genv->ctx, s, &existing);
  if (r == 0)
    return 0;
  if (r == UV_ENOTSUP)
    return sl_throw_error(env, "ERR_SLUICE_HOST_UNSUPPORTED",
                          "scope: 'host' is not supported on this platform yet (Linux only); "
                          "use scope: 'process'");
  if (r == UV_EINVAL)
    return sl_throw_range(env, "Expected `name` to be 1 to 200 bytes with no \"/\" and no NUL "
                               "for scope: 'host' (it is part of a file name)");
  if (sl_hgate_path(NULL, name, len, path, sizeof(path)) != 0)
    snprintf(path, sizeof(path), "(its file)");
  switch (r) {
    case UV_EEXIST:
      if (existing == SL_INFINITE)
        snprintf(msg, sizeof(msg),
                 "The host-wide limit \"%.*s\" exists with Infinity permits; open it with that "
                 "number or with none",
                 (int) len, name);
      else
        snprintf(msg, sizeof(msg),
                 "The host-wide limit \"%.*s\" exists with %lld permits; open it with that "
                 "number or with none",
                 (int) len, name, (long long) existing);
      return sl_throw_range(env, msg);
    case UV_ENOENT:
      if (permits >= 0) {
        /* Permits given, so the gate was to be created: its directory is
         * missing (a container without /dev/shm). */
        snprintf(msg, sizeof(msg),
                 "ENOENT: no such file or directory, cannot create the host-wide limit \"%.*s\" "
                 "(%s): scope: 'host' needs /dev/shm",
                 (int) len, name, path);
        return sl_throw_error(env, "ENOENT", msg);
      }
      snprintf(msg, sizeof(msg),
               "No host-wide limit is named \"%.*s\": the first opener must give the number "
               "of permits",
               (int) len, name);
      return sl_throw_type(env, msg);
    case UV_EACCES:
    case UV_EPERM:
      snprintf(msg, sizeof(msg),
               "EACCES: permission denied, host-wide limit \"%.*s\" (%s): the file belongs to "
               "another user, or others may read or write it. A host-wide limit is shared only "
               "by the processes of one user",
               (int) len, name, path);
      return sl_throw_error(env, "EACCES", msg);
    case UV_EPROTO:
      snprintf(msg, sizeof(msg),
               "%s is not a host-wide limit of this version of sluice (layout %d, this "
               "architecture): refused. Stop the processes that use it, or delete it if none "
               "does",
               path, SL_HGATE_LAYOUT);
      return sl_throw_error(env, "ERR_SLUICE_HOST_LAYOUT", msg);
    case UV_EBUSY:
      snprintf(msg, sizeof(msg), "sluice: %d processes have the host-wide limit \"%.*s\" open",
               SL_HGATE_SLOTS, (int) len, name);
      return sl_throw_error(env, "ERR_SLUICE_HOST_FULL", msg);
    default: return sl_throw_uv(env, r);
  }
}

/* Makes the three functions of `h`. On failure the handle is left to the
 * finalizers of those made so far, or freed here if none was. */
static napi_value sl__handle_functions(napi_env env, sl_handle_t* h) {
  static const struct {
    const char* name;
    napi_callback cb;
  } fns[3] = {{"take", sl__take}, {"release", sl__release}, {"ctl", sl__ctl}};
  napi_value arr, fn;
  napi_status s;
  uint32_t i;

  s = napi_create_array_with_length(env, 3, &arr);
  for (i = 0; s == napi_ok && i < 3; i++) {
    s = napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, h, &fn);
    if (s == napi_ok)
      s = napi_add_finalizer(env, fn, h, sl__handle_finalize, NULL, NULL);
    if (s != napi_ok)
      break;
    h->refs++;
    if (i == 0)
      s = napi_create_reference(env, fn, 0, &h->self);
    if (s == napi_ok)
      s = napi_set_element(env, arr, i, fn);
  }
  if (s == napi_ok)
    return arr;
  sl_throw_status(env, s, "making the gate's functions");
  if (h->refs == 0) {
    h->refs = 1;
    sl__handle_finalize(env, h, NULL);
  }
  return NULL;
}

/* gate(permits, name?) -> [take, release, ctl]
 * With a name, every thread that opens it gets the same gate: the first
 * opener sets the permits; later openers pass the same number or
 * undefined. */
static napi_value sl__gate_new(napi_env env, napi_callback_info info) {
  size_t argc = 3, len = 0;
  napi_value argv[3];
  void* data;
  sl_genv_t* genv;
  sl_handle_t* h;
  sl_gate_t* shared = NULL;
  int64_t permits = -1;
  int named = 0, no_permits = 0, host = 0, fleet = 0;
  char name[SL_NAME_MAX + 1];

  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, &data));
  genv = data;
  /* argv is filled with undefined up to 3. Everything is read first. */
  if (sl_is_undefined(env, argv[1], &named) != 0)
    return NULL;
  named = !named;
  if (named && sl__arg_name(env, argv[1], name, &len) != 0)
    return NULL;
  if (sl_is_undefined(env, argv[0], &no_permits) != 0)
    return NULL;
  if ((!named || !no_permits) && sl_arg_permits(env, argv[0], "permits", &permits) != 0)
    return NULL;
  {
    /* The third argument: `host` (a boolean), or the string 'fleet'. */
    napi_valuetype t;
    SL_CHECK(env, napi_typeof(env, argv[2], &t));
    if (t == napi_string) {
      char kind[8];
      size_t klen = 0;
      SL_CHECK(env, napi_get_value_string_utf8(env, argv[2], kind, sizeof(kind), &klen));
      if (klen != 5 || memcmp(kind, "fleet", 5) != 0) {
        sl_throw_type(env, "Expected `host` to be a boolean or 'fleet'");
        return NULL;
      }
      fleet = 1;
    } else if (t != napi_undefined && t != napi_boolean) {
      sl_throw_type(env, "Expected `host` to be a boolean or 'fleet'");
      return NULL;
    }
    if (t == napi_boolean) {
      bool b = false;
      SL_CHECK(env, napi_get_value_bool(env, argv[2], &b));
      host = b;
    }
  }
  if ((host || fleet) && !named) {
    sl_throw_type(env, host ? "Expected a `name` with scope 'host'"
                            : "Expected a `name` for a fleet gate");
    return NULL;
  }
  if (fleet && permits != 0) {
    sl_throw_range(env, "Expected `permits` to be 0 for a fleet gate");
    return NULL;
  }
  if (genv->senv->closing) {
    sl_throw_error(env, "ERR_SLUICE_CLOSING", "sluice: the environment is shutting down");
    return NULL;
  }
  if (named && !host &&
      sl__open_named(env, genv, fleet ? SL_REGISTRY_FLEET : SL_REGISTRY_GATE, name, len, permits,
                     &shared) != 0)
    return NULL;
  h = calloc(1, sizeof(*h));
  if (h == NULL) {
    if (shared != NULL)
      sl_registry_close(shared);
    sl_throw_uv(env, UV_ENOMEM);
    return NULL;
  }
  h->genv = genv;
  h->be = &sl_gate_local;
  h->shared = shared != NULL;
  h->fleet = fleet;
  if (host) {
    /* The stake is opened by the host gate, into h->stake. */
    if (sl__open_host(env, genv, name, len, permits, &h->stake) != 0) {
      free(h);
      return NULL;
    }
    h->be = &sl_hgate_backend;
    h->shared = 1;
    h->host = 1;
  } else {
    if (shared == NULL)
      sl_gate_init(&h->local, permits, 0); /* cannot fail unshared */
    if (sl_stake_open(&h->stake, shared != NULL ? shared : &h->local, &genv->ctx) != 0) {
      if (shared != NULL)
        sl_registry_close(shared);
      free(h);
      sl_throw_uv(env, UV_ENOMEM);
      return NULL;
    }
  }
  h->next = genv->handles;
  if (h->next != NULL)
    h->next->prev = h;
  genv->handles = h;
  genv->live_handles++;
  return sl__handle_functions(env, h);
}

/* --------------------------------------------------------- env part --- */

/* Teardown (worker exit or terminate, or process exit): nothing can be
 * settled any more. */
static void sl__genv_teardown(sl_env_t* senv, void* data) {
  sl_genv_t* genv = data;
  sl_handle_t* h;
  sl_wlist_t list;
  (void) senv;

  /* 1. Take this env's waiters out of every gate, under each gate's lock.
   *    After this no other thread can find one of them, so nothing more is
   *    pushed to our ready queue. */
  sl_wlist_init(&list);
  for (h = genv->handles; h != NULL; h = h->next)
    if (h->waiters > 0)
      h->be->clear(&h->stake, &list);
  sl__drop(genv, &list);
  /* 2. No doorbell from now on; wait for rings other threads decided before
   *    step 1 but have not made yet (they make them without locks). */
  sl_ctx_close(&genv->ctx);
  /* 3. Grants other threads made to us that we never settled: their permits
   *    are booked on our stakes, and go back in step 4. */
  sl_ctx_take_ready(&genv->ctx, &list);
  sl__drop(genv, &list);
  /* 4. Everything we hold on shared gates goes back to them. Unshared gates
   *    die with the env; nothing else can see them. */
  for (h = genv->handles; h != NULL; h = h->next)
    if (!h->closed)
      sl__handle_close(h);
  /* 5. Close the doorbell; the env's hook is removed once it has closed. */
  if (genv->doorbell_open) {
    genv->doorbell_open = 0;
    uv_close((uv_handle_t*) &genv->doorbell, sl__doorbell_close_cb);
  }
}

static void sl__genv_free(sl_env_t* senv, void* data) {
  sl_genv_t* genv = data;
  (void) senv;
  sl_ctx_destroy(&genv->ctx);
  free(genv);
}

static napi_value sl__noop(napi_env env, napi_callback_info info) {
  (void) env;
  (void) info;
  return NULL;
}

/* The process's id for Redis gates (lib/redis): the same in every thread,
 * so that the threads of a process share one lease and one subscriber.
 * 16 hex digits of uv_random, made once; the pid and the clock if the
 * system has no randomness to give. */
static uv_once_t sl__pid_once = UV_ONCE_INIT;
static char sl__pid[17];

static void sl__pid_init(void) {
  unsigned char b[8];
  uint64_t x;
  int i;
  if (uv_random(NULL, NULL, b, sizeof(b), 0, NULL) == 0) {
    for (x = 0, i = 0; i < 8; i++)
      x = x << 8 | b[i];
  } else {
    x = uv_hrtime() ^ ((uint64_t) uv_os_getpid() << 40);
  }
  snprintf(sl__pid, sizeof(sl__pid), "%016llx", (unsigned long long) x);
}

int sl_gate_binding_init(sl_env_t* senv, napi_value exports) {
  napi_env env = senv->env;
  sl_env_part_t part;
  sl_genv_t* genv;
  napi_value fn, never;
  int r;

  genv = calloc(1, sizeof(*genv));
  if (genv == NULL)
    return sl_throw_uv(env, UV_ENOMEM);
  genv->senv = senv;
  if ((r = sl_ctx_init(&genv->ctx)) != 0) {
    free(genv);
    return sl_throw_uv(env, r);
  }
  part.teardown = sl__genv_teardown;
  part.free = sl__genv_free;
  part.data = genv;
  if ((r = sl_env_register(senv, &part)) != 0) {
    sl__genv_free(senv, genv);
    return sl_throw_uv(env, r);
  }
  /* From here on the env owns genv. */
  SL_CHECK_INT(env, napi_create_object(env, &never));
  SL_CHECK_INT(env, napi_create_function(env, "then", NAPI_AUTO_LENGTH, sl__noop, NULL, &fn));
  SL_CHECK_INT(env, napi_set_named_property(env, never, "then", fn));
  SL_CHECK_INT(env, napi_create_reference(env, never, 1, &genv->never));
  SL_CHECK_INT(env, napi_create_function(env, "gate", NAPI_AUTO_LENGTH, sl__gate_new, genv, &fn));
  SL_CHECK_INT(env, napi_set_named_property(env, exports, "gate", fn));
  uv_once(&sl__pid_once, sl__pid_init);
  SL_CHECK_INT(env, napi_create_string_utf8(env, sl__pid, 16, &fn));
  SL_CHECK_INT(env, napi_set_named_property(env, exports, "processId", fn));
  return 0;
}

int sl_gate_binding_counts(sl_env_t* senv, napi_value obj) {
  napi_env env = senv->env;
  sl_genv_t* genv = NULL;
  uint32_t i;
  for (i = 0; i < senv->nparts; i++)
    if (senv->parts[i].teardown == sl__genv_teardown)
      genv = senv->parts[i].data;
  if (genv == NULL)
    return 0;
  SL_CHECK_INT(
      env, napi_set_named_property(env, obj, "waiters", sl_number(env, (double) genv->ctx.live)));
  SL_CHECK_INT(
      env, napi_set_named_property(env, obj, "gates", sl_number(env, (double) genv->live_handles)));
  SL_CHECK_INT(env, napi_set_named_property(env, obj, "namedGates",
                                            sl_number(env, (double) sl_registry_count())));
  SL_CHECK_INT(env, napi_set_named_property(env, obj, "waiterChunks",
                                            sl_number(env, (double) sl_ctx_chunks(&genv->ctx))));
  return 0;
}
