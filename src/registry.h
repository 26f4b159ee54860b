/* sluice: the process-wide registry of named (shared) gates.
 *
 * Every thread that opens the same name gets the same gate. Gates are
 * refcounted by their openers and freed when the last one closes. Nothing
 * in here points into any env: a gate holds waiters (which point to their
 * ctx), and a ctx outlives its waiters (teardown removes them first).
 *
 * Lock order: registry lock, then a gate's lock, then a ctx's lock. The
 * registry lock is never held while calling into JS.
 */
#ifndef SLUICE_REGISTRY_H
#define SLUICE_REGISTRY_H

#include "gate.h"

/* Opens the gate called `name` (a NUL-terminated string of at most
 * SL_NAME_MAX bytes), creating it with `permits` if it does not exist.
 * permits < 0 means "attach only". Returns the gate, or NULL with *err set:
 *   UV_ENOENT  no such gate and permits < 0 (nothing to create it with);
 *   UV_EEXIST  the gate exists with a different capacity (*existing);
 *   UV_ENOMEM  out of memory. */
#define SL_NAME_MAX 1024
sl_gate_t* sl_registry_open(const char* name, int64_t permits, int* err, int64_t* existing);

/* Drops one reference; frees the gate with the last one. The gate's queue
 * must hold no waiter of the caller's (teardown and finalizers clear them). */
void sl_registry_close(sl_gate_t* gate);

/* How many named gates exist (for tests). */
uint64_t sl_registry_count(void);

#endif /* SLUICE_REGISTRY_H */
