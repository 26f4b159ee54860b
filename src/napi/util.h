/* sluice: Node-API helpers shared by every binding: the status macro, errors
 * and argument parsing, in one style.
 *
 * Only files in src/napi/ include this (and node_api.h). The core in
 * src/core/ never sees a napi_env.
 */
#ifndef SLUICE_NAPI_UTIL_H
#define SLUICE_NAPI_UTIL_H

#include <node_api.h>
#include <stdint.h>

/* Every Node-API status goes through SL_CHECK*: a failure becomes a JS error
 * (unless one is already pending, so we never throw twice, as Node's
 * test/js-native-api NODE_API_CALL does) and the function returns `ret`.
 * Never put a Node-API call inside assert(): NDEBUG drops it. */
void sl_throw_status(napi_env env, napi_status status, const char* call);

#define SL_CHECK_RET(env, call, ret)                                                               \
  do {                                                                                             \
    napi_status sl_status_ = (call);                                                               \
    if (sl_status_ != napi_ok) {                                                                   \
      sl_throw_status((env), sl_status_, #call);                                                   \
      return ret;                                                                                  \
    }                                                                                              \
  } while (0)
#define SL_CHECK(env, call) SL_CHECK_RET(env, call, NULL)
#define SL_CHECK_INT(env, call) SL_CHECK_RET(env, call, -1)
#define SL_CHECK_VOID(env, call) SL_CHECK_RET(env, call, /* void */)
/* Inside a loop that must go on (every waiter freed even if one step
 * fails): report the failure as a pending JS error and continue. */
#define SL_CHECK_GO_ON(env, call)                                                                  \
  do {                                                                                             \
    napi_status sl_status_ = (call);                                                               \
    if (sl_status_ != napi_ok)                                                                     \
      sl_throw_status((env), sl_status_, #call);                                                   \
  } while (0)

/* Aborts the process with a message: for failures with no JS caller, where
 * going on would lose a promise or leave a uv handle open. */
void sl_fatal(const char* msg) __attribute__((noreturn));

/* Reports a JS exception left pending inside a libuv callback as an uncaught
 * exception (there is no JS caller to throw to). */
void sl_report_pending(napi_env env);

/* Throwers. Each returns -1, so `return sl_throw_range(...)` reads well in
 * parsers; the status of the throw itself is checked. */
int sl_throw_type(napi_env env, const char* msg);
int sl_throw_range(napi_env env, const char* msg);
int sl_throw_error(napi_env env, const char* code, const char* msg);
/* A negative UV_E* code from the core as a JS error (ENOMEM, ...). */
int sl_throw_uv(napi_env env, int err);

/* Argument parsing. Each returns 0, or -1 with a TypeError/RangeError that
 * names the argument pending. Coercion never runs user code: a number must
 * be a number (no valueOf), so nothing can re-enter while a caller parses. */

/* An optional number: `def` when undefined. */
int sl_arg_double(napi_env env, napi_value v, const char* name, double def, double* out);
/* A required number. */
int sl_arg_number(napi_env env, napi_value v, const char* name, double* out);
/* An optional integer in [lo, hi]; `def` when undefined. */
int sl_arg_int(napi_env env, napi_value v, const char* name, int64_t lo, int64_t hi, int64_t def,
               int64_t* out);
/* A required integer in [lo, hi]. */
int sl_arg_integer(napi_env env, napi_value v, const char* name, int64_t lo, int64_t hi,
                   int64_t* out);
/* A required capacity: a non-negative integer or Infinity (SL_INFINITE). */
int sl_arg_permits(napi_env env, napi_value v, const char* name, int64_t* out);
/* Whether `v` is undefined. */
int sl_is_undefined(napi_env env, napi_value v, int* out);

/* Values. NULL (with an error pending) on failure. */
napi_value sl_number(napi_env env, double d);
/* A count, with SL_INFINITE as Infinity. */
napi_value sl_count(napi_env env, int64_t n);
napi_value sl_bool(napi_env env, int b);

#endif /* SLUICE_NAPI_UTIL_H */
