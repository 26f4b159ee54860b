/* sluice: Node-API helpers. See util.h. */
#include "util.h"

#include "../core/gate.h"

#include <math.h>
#include <stdio.h>
#include <uv.h>

void sl_fatal(const char* msg) {
  /* napi_fatal_error returns no status: it does not return. */
  napi_fatal_error("sluice", NAPI_AUTO_LENGTH, msg, NAPI_AUTO_LENGTH);
}

void sl_throw_status(napi_env env, napi_status status, const char* call) {
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

void sl_report_pending(napi_env env) {
  bool pending = false;
  napi_value err;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending)
    return;
  if (napi_get_and_clear_last_exception(env, &err) != napi_ok)
    return;
  SL_CHECK_VOID(env, napi_fatal_exception(env, err));
}

int sl_throw_type(napi_env env, const char* msg) {
  SL_CHECK_INT(env, napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg));
  return -1;
}

int sl_throw_range(napi_env env, const char* msg) {
  SL_CHECK_INT(env, napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg));
  return -1;
}

int sl_throw_error(napi_env env, const char* code, const char* msg) {
  SL_CHECK_INT(env, napi_throw_error(env, code, msg));
  return -1;
}

int sl_throw_uv(napi_env env, int err) {
  char msg[128];
  if (err == UV_ENOMEM)
    return sl_throw_error(env, "ERR_SLUICE_NOMEM", "sluice: out of memory");
  snprintf(msg, sizeof(msg), "sluice: %s (%s)", uv_strerror(err), uv_err_name(err));
  return sl_throw_error(env, "ERR_SLUICE_UV", msg);
}

int sl_is_undefined(napi_env env, napi_value v, int* out) {
  napi_valuetype t;
  SL_CHECK_INT(env, napi_typeof(env, v, &t));
  *out = t == napi_undefined;
  return 0;
}

int sl_arg_number(napi_env env, napi_value v, const char* name, double* out) {
  napi_valuetype t;
  char msg[128];
  SL_CHECK_INT(env, napi_typeof(env, v, &t));
  if (t != napi_number) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be a number", name);
    return sl_throw_type(env, msg);
  }
  SL_CHECK_INT(env, napi_get_value_double(env, v, out));
  return 0;
}

int sl_arg_double(napi_env env, napi_value v, const char* name, double def, double* out) {
  int undef;
  if (sl_is_undefined(env, v, &undef) != 0)
    return -1;
  if (undef) {
    *out = def;
    return 0;
  }
  return sl_arg_number(env, v, name, out);
}

static int sl__int_in(napi_env env, double d, const char* name, int64_t lo, int64_t hi,
                      int64_t* out) {
  char msg[160];
  if (!(d >= (double) lo && d <= (double) hi && d == floor(d))) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be an integer from %lld to %lld", name,
             (long long) lo, (long long) hi);
    return sl_throw_range(env, msg);
  }
  *out = (int64_t) d;
  return 0;
}

int sl_arg_integer(napi_env env, napi_value v, const char* name, int64_t lo, int64_t hi,
                   int64_t* out) {
  double d;
  if (sl_arg_number(env, v, name, &d) != 0)
    return -1;
  return sl__int_in(env, d, name, lo, hi, out);
}

int sl_arg_int(napi_env env, napi_value v, const char* name, int64_t lo, int64_t hi, int64_t def,
               int64_t* out) {
  double d;
  if (sl_arg_double(env, v, name, (double) def, &d) != 0)
    return -1;
  return sl__int_in(env, d, name, lo, hi, out);
}

int sl_arg_permits(napi_env env, napi_value v, const char* name, int64_t* out) {
  double d;
  char msg[128];
  if (sl_arg_number(env, v, name, &d) != 0)
    return -1;
  /* 2^63 and up do not fit an int64_t: they mean "no limit", as Infinity. */
  if (d >= 9223372036854775807.0) {
    *out = SL_INFINITE;
    return 0;
  }
  if (!(d >= 0 && d == floor(d))) {
    snprintf(msg, sizeof(msg), "Expected `%s` to be a non-negative integer or Infinity", name);
    return sl_throw_range(env, msg);
  }
  *out = (int64_t) d;
  return 0;
}

napi_value sl_number(napi_env env, double d) {
  napi_value v;
  SL_CHECK(env, napi_create_double(env, d, &v));
  return v;
}

napi_value sl_count(napi_env env, int64_t n) {
  return sl_number(env, n == SL_INFINITE ? INFINITY : (double) n);
}

napi_value sl_bool(napi_env env, int b) {
  napi_value v;
  SL_CHECK(env, napi_get_boolean(env, b != 0, &v));
  return v;
}
