/* sluice: the core's allocator. See alloc.h. */
#include "alloc.h"

#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Written only by single-threaded tests before the allocations they aim at;
 * in production it stays 0 and is only read. */
static uint64_t sl__fail_at;

static int sl__fail(void) {
  if (sl__fail_at == 0)
    return 0;
  return --sl__fail_at == 0;
}

void sl_alloc_fail_at(uint64_t k) {
  sl__fail_at = k;
}

void* sl_malloc(size_t size) {
  return sl__fail() ? NULL : malloc(size);
}

void* sl_calloc(size_t count, size_t size) {
  return sl__fail() ? NULL : calloc(count, size);
}

void* sl_realloc(void* ptr, size_t size) {
  return sl__fail() ? NULL : realloc(ptr, size);
}

void sl_free(void* ptr) {
  free(ptr);
}

void sl_alloc_trim(void) {
#ifdef __GLIBC__
  (void) malloc_trim(0);
#endif
}
