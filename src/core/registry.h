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
#ifndef SLUICE_CORE_REGISTRY_H
#define SLUICE_CORE_REGISTRY_H

#include "gate.h"

#include <stddef.h>

/* Opens the gate of that `kind` called `name` (`len` bytes, any bytes: names are compared
 * with their length, so "a\0b" and "a" are two gates; at most SL_NAME_MAX),
 * creating it with `permits` if it does not exist; permits < 0 means
 * "attach only". Sets *out and returns 0, or:
 *   UV_ENOENT  no such gate and permits < 0 (nothing to create it with);
 *   UV_EEXIST  the gate exists with a different capacity (*existing);
 *   UV_EINVAL  len is 0 or over SL_NAME_MAX;
 *   UV_ENOMEM  out of memory. */
#define SL_NAME_MAX 1023
/* Names live in one namespace per kind: a process-wide named gate, and the
 * local side of a Redis gate (lib/redis), which may share a name with it. */
enum sl_registry_kind { SL_REGISTRY_GATE = 0, SL_REGISTRY_FLEET = 1 };
int sl_registry_open(int kind, const char* name, size_t len, int64_t permits, sl_gate_t** out,
                     int64_t* existing);

/* Drops one reference; frees the gate with the last one. The gate's queue
 * must hold no waiter of the caller's (teardown and finalizers clear them). */
void sl_registry_close(sl_gate_t* gate);

/* How many named gates exist (for tests). */
uint64_t sl_registry_count(void);

#endif /* SLUICE_CORE_REGISTRY_H */
