/* sluice: what the Node-API files share. Only binding*.c include this. */
#ifndef SLUICE_BINDING_H
#define SLUICE_BINDING_H

#include <node_api.h>
#include <uv.h>

#include "gate.h"

/* Every Node-API status goes through this: a failure becomes a JS error
 * (unless one is already pending, so we never throw twice) and the function
 * returns `ret`. Never put a Node-API call inside assert(): NDEBUG drops it. */
void sl__throw_status(napi_env env, napi_status status, const char* call);

#define SL_CHECK_RET(env, call, ret)                                          \
  do {                                                                        \
    napi_status sl_status_ = (call);                                          \
    if (sl_status_ != napi_ok) {                                              \
      sl__throw_status((env), sl_status_, #call);                             \
      return ret;                                                             \
    }                                                                         \
  } while (0)
#define SL_CHECK(env, call) SL_CHECK_RET(env, call, NULL)
#define SL_CHECK_VOID(env, call) SL_CHECK_RET(env, call, /* void */)
/* Inside a loop that must go on (every waiter freed even if one step
 * fails): report the failure as a pending JS error and continue. */
#define SL_CHECK_VOID_IN_LOOP(env, call)                                      \
  do {                                                                        \
    napi_status sl_status_ = (call);                                          \
    if (sl_status_ != napi_ok)                                                \
      sl__throw_status((env), sl_status_, #call);                             \
  } while (0)

/* Per-env state (main thread and each worker): instance data. Holds JS
 * handles, so it must never be reachable from another thread; the only part
 * other threads touch is `ctx` (its ready queue, under ctx.lock). */
typedef struct sl_env_s {
  napi_env env;
  uv_loop_t* loop;
  sl_ctx_t ctx;
  napi_ref timeout_ctor;     /* TimeoutError, given by lib/binding.js */
  napi_ref resource;         /* the resource object of async_context */
  napi_async_context async_context;
  napi_ref scratch;          /* Float64Array shared with JS for out-values */
  double* scratch_data;
  struct sl_handle_s* handles; /* live gate handles, for teardown */
  uint64_t live_handles;       /* gate handles not yet finalized */
  uint64_t open_uv_handles;    /* uv handles not yet closed (timers...) */
  int closing;                 /* the env is being torn down */
  /* Shared gates: grants made by other threads for this env's waiters go
   * to ctx.ready and ring this doorbell. It is ref'd only while this env has
   * waiters on shared gates, so it never keeps an idle thread alive. */
  uv_async_t doorbell;
  int doorbell_open;
  uint64_t shared_waiters;
  napi_async_cleanup_hook_handle cleanup;
  /* Hooks for the other binding files, run at teardown. */
  void (*pool_teardown)(struct sl_env_s* senv);
  void* pool_state;
} sl_env_t;

sl_env_t* sl_env_get(napi_env env);

/* A handle scope plus a callback scope, for settling promises from a libuv
 * callback: closing the callback scope drains microtasks once for the whole
 * batch. Returns 0 on success; on failure nothing is left open. */
typedef struct sl_scope_s {
  napi_handle_scope handles;
  napi_callback_scope callback;
} sl_scope_t;

int sl_scope_open(sl_env_t* senv, sl_scope_t* scope);
void sl_scope_close(sl_env_t* senv, sl_scope_t* scope);

/* Aborts the process with a message: for failures with no JS caller. */
void sl_fatal(const char* msg) __attribute__((noreturn));

/* Reports a JS exception left pending inside a libuv callback as an uncaught
 * exception (there is no JS caller to throw to). */
void sl_report_pending(napi_env env);

/* Creates a TimeoutError(message) with the class lib/ registered. */
napi_status sl_timeout_error(sl_env_t* senv, const char* message, napi_value* out);

/* Counts uv handles so teardown knows when every close callback has run. */
void sl_uv_handle_opened(sl_env_t* senv);
void sl_uv_handle_closed(sl_env_t* senv);

/* Reads an optional number argument: `def` when absent or undefined.
 * Throws a TypeError naming `name` when it is not a number. */
int sl_arg_double(napi_env env, napi_value v, const char* name, double def, double* out);

/* Live pools of this env (not yet freed), their queued waiters and their
 * open uv timers, for debugCounts() (src/binding_pool.c). */
void sl_pool_debug_counts(sl_env_t* senv, double* pools, double* waiters, double* timers);

/* Adds the pool functions to the binding's exports (src/binding_pool.c). */
napi_value sl_pool_init(napi_env env, napi_value exports);

#endif /* SLUICE_BINDING_H */
