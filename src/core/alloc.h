/* sluice: the core's allocator, with a failure hook for tests.
 *
 * Every allocation of the core goes through these, so that the C tests can
 * make the k-th one fail and check that each out-of-memory path unwinds to a
 * consistent state (test/c/).
 */
#ifndef SLUICE_CORE_ALLOC_H
#define SLUICE_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void* sl_malloc(size_t size);
void* sl_calloc(size_t count, size_t size);
void* sl_realloc(void* ptr, size_t size);
void sl_free(void* ptr);

/* Gives memory freed since a burst back to the system where the C library
 * keeps it otherwise (glibc's heap does not shrink below blocks in use, so
 * a million freed waiters stay resident); a no-op elsewhere. Costs a walk
 * of the heap: call it once a burst is over, not per free. */
void sl_alloc_trim(void);

/* Tests only: the k-th allocation from now fails (k >= 1), and only that
 * one; 0 turns failures off. Set it from one thread while no other thread
 * allocates. */
void sl_alloc_fail_at(uint64_t k);

#endif /* SLUICE_CORE_ALLOC_H */
