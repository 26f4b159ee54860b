/* sluice: the Node-API binding of gates (limiter and semaphore). */
#ifndef SLUICE_NAPI_GATE_H
#define SLUICE_NAPI_GATE_H

#include "env.h"

/* Adds `gate` to exports and registers the binding's part of the env. */
int sl_gate_binding_init(sl_env_t* senv, napi_value exports);

/* Sets the binding's live-object counts on `obj` (debugCounts()). */
int sl_gate_binding_counts(sl_env_t* senv, napi_value obj);

#endif /* SLUICE_NAPI_GATE_H */
