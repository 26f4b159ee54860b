/* sluice: the addon's entry point. It only initialises: the env, each
 * binding, and the protocol tables that lib/ reads (protocol.h). */
#include "env.h"
#include "gate.h"
#include "pool.h"
#include "protocol.h"

/* { NAME: value, ... } from one X-macro table. */
#define SL__PROP(name, value) {#name, (double) (value)},
typedef struct sl__prop_s {
  const char* name;
  double value;
} sl__prop_t;

static int sl__table(napi_env env, napi_value protocol, const char* key, const sl__prop_t* props,
                     size_t n) {
  napi_value obj, v;
  size_t i;
  SL_CHECK_INT(env, napi_create_object(env, &obj));
  for (i = 0; i < n; i++) {
    SL_CHECK_INT(env, napi_create_double(env, props[i].value, &v));
    SL_CHECK_INT(env, napi_set_named_property(env, obj, props[i].name, v));
  }
  SL_CHECK_INT(env, napi_object_freeze(env, obj));
  SL_CHECK_INT(env, napi_set_named_property(env, protocol, key, obj));
  return 0;
}

#define SL__TABLE(key, list)                                                                       \
  do {                                                                                             \
    static const sl__prop_t props_[] = {list(SL__PROP)};                                           \
    if (sl__table(env, protocol, key, props_, sizeof(props_) / sizeof(props_[0])) != 0)            \
      return -1;                                                                                   \
  } while (0)

static int sl__protocol(napi_env env, napi_value exports) {
  napi_value protocol;
  SL_CHECK_INT(env, napi_create_object(env, &protocol));
  SL__TABLE("gateOps", SL_GATE_OPS);
  SL__TABLE("poolEvents", SL_POOL_EVENTS);
  SL__TABLE("poolCtls", SL_POOL_CTLS);
  SL__TABLE("poolAcquire", SL_POOL_ACQUIRE);
  SL__TABLE("poolCounts", SL_POOL_COUNTS);
  SL__TABLE("poolHeader", SL_POOL_HEADER);
  SL__TABLE("poolConfig", SL_POOL_CONFIG);
  SL__TABLE("poolSlots", SL_POOL_SLOTS);
  SL__TABLE("limits", SL_LIMITS);
  SL_CHECK_INT(env, napi_object_freeze(env, protocol));
  SL_CHECK_INT(env, napi_set_named_property(env, exports, "protocol", protocol));
  return 0;
}

/* debugCounts() -> { waiters, gates, namedGates, waiterChunks, pools,
 * poolWaiters, poolTimers, uvHandles }: live native objects, for leak
 * tests. */
static napi_value sl__debug_counts(napi_env env, napi_callback_info info) {
  sl_env_t* senv = sl_env_get(env);
  napi_value obj;
  (void) info;
  if (senv == NULL)
    return NULL;
  SL_CHECK(env, napi_create_object(env, &obj));
  if (sl_gate_binding_counts(senv, obj) != 0 || sl_pool_binding_counts(senv, obj) != 0)
    return NULL;
  SL_CHECK(env, napi_set_named_property(env, obj, "uvHandles",
                                        sl_number(env, (double) senv->open_uv_handles)));
  return obj;
}

/* exports[name] = a function calling `cb`. */
static int sl__function(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  SL_CHECK_INT(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn));
  SL_CHECK_INT(env, napi_set_named_property(env, exports, name, fn));
  return 0;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  sl_env_t* senv;

  senv = sl_env_new(env);
  if (senv == NULL)
    return NULL;
  if (sl_gate_binding_init(senv, exports) != 0 || sl_pool_binding_init(senv, exports) != 0 ||
      sl__protocol(env, exports) != 0)
    return NULL;
  if (sl__function(env, exports, "setup", sl_env_setup) != 0 ||
      sl__function(env, exports, "debugCounts", sl__debug_counts) != 0)
    return NULL;
  return exports;
}
