/* sluice: per-env state (the main thread and each worker), its callback
 * scope, its uv handle count and its teardown.
 *
 * Each binding (gate.c, pool.c) keeps its own per-env state and registers a
 * part here: a teardown, run from the env's async cleanup hook, and a free,
 * run last, after every finalizer. Dependencies point one way: module.c ->
 * bindings -> env -> util -> core.
 */
#ifndef SLUICE_NAPI_ENV_H
#define SLUICE_NAPI_ENV_H

#include "util.h"

#include <stdint.h>
#include <uv.h>

typedef struct sl_env_s sl_env_t;

typedef struct sl_env_part_s {
  /* Teardown: nothing can be settled any more. Drop what is queued, give
   * shared permits back, close uv handles (counted with sl_env_handle_*). */
  void (*teardown)(sl_env_t* senv, void* data);
  /* Last, after every finalizer: free the part's memory. */
  void (*free)(sl_env_t* senv, void* data);
  void* data;
} sl_env_part_t;

#define SL_ENV_MAX_PARTS 4

/* Holds JS handles, so it must never be reachable from another thread. */
struct sl_env_s {
  napi_env env;
  uv_loop_t* loop;
  napi_ref timeout_ctor; /* TimeoutError, given by lib/binding.js */
  napi_ref resource;     /* the resource object of async_context */
  napi_async_context async_context;
  napi_ref scratch;     /* Float64Array shared with JS for out-values */
  double* scratch_data; /* SL_SCRATCH doubles */
  uint64_t open_uv_handles;
  int closing; /* the env is being torn down */
  napi_async_cleanup_hook_handle cleanup;
  sl_env_part_t parts[SL_ENV_MAX_PARTS];
  uint32_t nparts;
};

#define SL_SCRATCH 3 /* [0] index and [1] seq of a new waiter, [2] promises resolved */

/* Creates the env's state and its cleanup hook (module init). NULL with an
 * error pending on failure. */
sl_env_t* sl_env_new(napi_env env);
sl_env_t* sl_env_get(napi_env env);
/* Adds a binding's part; parts are torn down in the order they were added.
 * Returns 0 or UV_ENOSPC. */
int sl_env_register(sl_env_t* senv, const sl_env_part_t* part);

/* A handle scope plus a callback scope, for settling promises from a libuv
 * callback: closing the callback scope drains microtasks once for the whole
 * batch. Returns 0; on failure nothing is left open and -1 is returned. */
typedef struct sl_scope_s {
  napi_handle_scope handles;
  napi_callback_scope callback;
} sl_scope_t;

int sl_scope_open(sl_env_t* senv, sl_scope_t* scope);
void sl_scope_close(sl_env_t* senv, sl_scope_t* scope);

/* A TimeoutError(message) with the class lib/ registered; a plain Error with
 * the message if that cannot be made. Never fails but for want of memory. */
napi_status sl_timeout_error(sl_env_t* senv, const char* message, napi_value* out);

/* Counts uv handles so teardown knows when every close callback has run:
 * the cleanup hook is removed after the last one (a uv handle left open when
 * a worker's loop closes aborts the process). */
void sl_env_handle_opened(sl_env_t* senv);
void sl_env_handle_closed(sl_env_t* senv);

/* setup(TimeoutError, file?) -> scratch Float64Array (module.c exports it).
 * `file` is the addon's own path: the first call pins the library. */
napi_value sl_env_setup(napi_env env, napi_callback_info info);

#endif /* SLUICE_NAPI_ENV_H */
