/* sluice: per-env state and teardown. See env.h. */
#include "env.h"

#include <stdlib.h>
#include <string.h>

sl_env_t* sl_env_get(napi_env env) {
  void* data = NULL;
  SL_CHECK(env, napi_get_instance_data(env, &data));
  return data;
}

int sl_env_register(sl_env_t* senv, const sl_env_part_t* part) {
  if (senv->nparts == SL_ENV_MAX_PARTS)
    return UV_ENOSPC;
  senv->parts[senv->nparts++] = *part;
  return 0;
}

int sl_scope_open(sl_env_t* senv, sl_scope_t* scope) {
  napi_env env = senv->env;
  napi_value resource;
  napi_status s;
  SL_CHECK_INT(env, napi_open_handle_scope(env, &scope->handles));
  s = napi_get_reference_value(env, senv->resource, &resource);
  if (s == napi_ok)
    s = napi_open_callback_scope(env, resource, senv->async_context, &scope->callback);
  if (s != napi_ok) {
    sl_throw_status(env, s, "napi_open_callback_scope");
    sl_report_pending(env);
    SL_CHECK_INT(env, napi_close_handle_scope(env, scope->handles));
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

static napi_status sl__plain_error(napi_env env, const char* message, napi_value* out) {
  napi_value text;
  napi_status s = napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  if (s != napi_ok)
    return s;
  return napi_create_error(env, NULL, text, out);
}

napi_status sl_timeout_error(sl_env_t* senv, const char* message, napi_value* out) {
  napi_env env = senv->env;
  napi_value ctor, msg, ignored;
  napi_status s;
  if (senv->timeout_ctor == NULL)
    return sl__plain_error(env, message, out);
  s = napi_get_reference_value(env, senv->timeout_ctor, &ctor);
  if (s == napi_ok)
    s = napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  if (s == napi_ok)
    s = napi_new_instance(env, ctor, 1, &msg, out);
  if (s == napi_ok)
    return s;
  /* The waiter must be settled whatever happens: if the registered class
   * cannot be constructed (it threw), a plain Error of the same message. */
  if (s == napi_pending_exception && napi_get_and_clear_last_exception(env, &ignored) != napi_ok)
    return s;
  return sl__plain_error(env, message, out);
}

void sl_env_handle_opened(sl_env_t* senv) {
  senv->open_uv_handles++;
}

void sl_env_handle_closed(sl_env_t* senv) {
  senv->open_uv_handles--;
  /* Teardown waits (async cleanup hook) until the last handle has closed. */
  if (senv->closing && senv->open_uv_handles == 0 && senv->cleanup != NULL) {
    napi_async_cleanup_hook_handle h = senv->cleanup;
    senv->cleanup = NULL;
    if (napi_remove_async_cleanup_hook(h) != napi_ok)
      sl_fatal("cannot remove the cleanup hook");
  }
}

/* Node unloads an addon when a worker env that loaded it ends; if only
 * workers load it, statics (the registry of shared gates) would vanish with
 * it. Opening the library once more, by the path lib/ loaded it from, and
 * never closing it keeps it loaded for the life of the process. libuv's
 * uv_dlopen works the same on every platform (dlopen, LoadLibraryExW), and
 * the addon then needs no dl* symbol of its own from the C library (glibc
 * moved those to version 2.34). Best effort: if it fails, named gates still
 * work as long as some thread keeps the addon loaded. */
static uv_mutex_t sl__pin_lock;
static uv_once_t sl__pin_once = UV_ONCE_INIT;
static int sl__pinned;
static uv_lib_t sl__pin_lib;

static void sl__pin_init(void) {
  if (uv_mutex_init(&sl__pin_lock) != 0)
    abort(); /* cannot happen with pthreads short of memory exhaustion */
}

static void sl__pin(const char* file) {
  uv_once(&sl__pin_once, sl__pin_init);
  uv_mutex_lock(&sl__pin_lock);
  if (!sl__pinned && uv_dlopen(file, &sl__pin_lib) == 0)
    sl__pinned = 1;
  uv_mutex_unlock(&sl__pin_lock);
}

/* The addon's path, to pin it: at most PATH_MAX-ish bytes. */
static int sl__setup_pin(napi_env env, napi_value v) {
  char file[4096];
  size_t len = 0;
  napi_valuetype t;
  SL_CHECK_INT(env, napi_typeof(env, v, &t));
  if (t == napi_undefined)
    return 0;
  if (t != napi_string)
    return sl_throw_type(env, "Expected `file` to be a string");
  SL_CHECK_INT(env, napi_get_value_string_utf8(env, v, file, sizeof(file), &len));
  if (len + 1 < sizeof(file))
    sl__pin(file);
  return 0;
}

/* setup(TimeoutError, file?) -> scratch Float64Array */
napi_value sl_env_setup(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ab, ta;
  sl_env_t* senv = sl_env_get(env);
  void* data;

  if (senv == NULL)
    return NULL;
  SL_CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 1) {
    napi_valuetype t;
    SL_CHECK(env, napi_typeof(env, argv[0], &t));
    if (t != napi_function) {
      sl_throw_type(env, "Expected `TimeoutError` to be a class");
      return NULL;
    }
    if (senv->timeout_ctor != NULL) {
      SL_CHECK(env, napi_delete_reference(env, senv->timeout_ctor));
      senv->timeout_ctor = NULL;
    }
    SL_CHECK(env, napi_create_reference(env, argv[0], 1, &senv->timeout_ctor));
  }
  if (argc >= 2 && sl__setup_pin(env, argv[1]) != 0)
    return NULL;
  if (senv->scratch == NULL) {
    SL_CHECK(env, napi_create_arraybuffer(env, SL_SCRATCH * sizeof(double), &data, &ab));
    SL_CHECK(env, napi_create_typedarray(env, napi_float64_array, SL_SCRATCH, ab, 0, &ta));
    SL_CHECK(env, napi_create_reference(env, ta, 1, &senv->scratch));
    senv->scratch_data = data;
    return ta;
  }
  SL_CHECK(env, napi_get_reference_value(env, senv->scratch, &ta));
  return ta;
}

/* Teardown of an env (worker exit or terminate, or process exit): every
 * binding drops what it queued and closes its uv handles. Node keeps the
 * loop running until this hook is removed, which happens once the last
 * handle has closed. */
static void sl__env_cleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  sl_env_t* senv = arg;
  uint32_t i;

  senv->closing = 1;
  senv->cleanup = hook;
  for (i = 0; i < senv->nparts; i++)
    if (senv->parts[i].teardown != NULL)
      senv->parts[i].teardown(senv, senv->parts[i].data);
  if (senv->open_uv_handles == 0) {
    senv->cleanup = NULL;
    if (napi_remove_async_cleanup_hook(hook) != napi_ok)
      sl_fatal("cannot remove the cleanup hook");
  }
}

/* Runs last at teardown, after every finalizer. */
static void sl__env_finalize(napi_env env, void* data, void* hint) {
  sl_env_t* senv = data;
  uint32_t i;
  (void) hint;
  for (i = senv->nparts; i-- > 0;)
    if (senv->parts[i].free != NULL)
      senv->parts[i].free(senv, senv->parts[i].data);
  /* At teardown this may fail; there is nobody to tell, and the env's memory
   * goes with it. */
  if (senv->async_context != NULL && napi_async_destroy(env, senv->async_context) != napi_ok)
    senv->async_context = NULL;
  free(senv);
}

sl_env_t* sl_env_new(napi_env env) {
  sl_env_t* senv;
  napi_value resource, name;

  senv = calloc(1, sizeof(*senv));
  if (senv == NULL) {
    sl_throw_uv(env, UV_ENOMEM);
    return NULL;
  }
  senv->env = env;
  if (napi_set_instance_data(env, senv, sl__env_finalize, NULL) != napi_ok) {
    free(senv);
    sl_throw_status(env, napi_generic_failure, "napi_set_instance_data");
    return NULL;
  }
  /* From here on the instance data owns senv: a failure leaves it to
   * sl__env_finalize. */
  SL_CHECK(env, napi_get_uv_event_loop(env, &senv->loop));
  SL_CHECK(env, napi_create_object(env, &resource));
  SL_CHECK(env, napi_create_reference(env, resource, 1, &senv->resource));
  SL_CHECK(env, napi_create_string_utf8(env, "sluice", NAPI_AUTO_LENGTH, &name));
  SL_CHECK(env, napi_async_init(env, resource, name, &senv->async_context));
  SL_CHECK(env, napi_add_async_cleanup_hook(env, sl__env_cleanup, senv, NULL));
  return senv;
}
