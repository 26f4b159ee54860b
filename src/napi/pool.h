/* sluice: the Node-API binding of the pool core. */
#ifndef SLUICE_NAPI_POOL_H
#define SLUICE_NAPI_POOL_H

#include "env.h"

/* Adds `pool` to exports and registers the binding's part of the env. */
int sl_pool_binding_init(sl_env_t* senv, napi_value exports);

/* Sets the binding's live-object counts on `obj` (debugCounts()). */
int sl_pool_binding_counts(sl_env_t* senv, napi_value obj);

#endif /* SLUICE_NAPI_POOL_H */
