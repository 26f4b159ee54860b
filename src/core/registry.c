/* sluice: the process-wide registry of named gates. See registry.h. */
#include "registry.h"

#include "alloc.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct sl_named_s {
  sl_gate_t gate; /* first: a gate pointer converts back to its entry */
  struct sl_named_s* next;
  uint64_t refs;
  int kind; /* enum sl_registry_kind */
  size_t len;
  char name[]; /* `len` bytes, not NUL-terminated */
} sl_named_t;

/* The registry lives as long as the process: the library is pinned (see
 * src/napi/module.c), and the lock is made once, whichever thread comes first. */
static uv_once_t sl__once = UV_ONCE_INIT;
static uv_mutex_t sl__lock;
static sl_named_t* sl__gates;
static uint64_t sl__count;

static void sl__init(void) {
  if (uv_mutex_init(&sl__lock) != 0)
    abort(); /* cannot happen with pthreads short of memory exhaustion */
}

int sl_registry_open(int kind, const char* name, size_t len, int64_t permits, sl_gate_t** out,
                     int64_t* existing) {
  sl_named_t* e;

  if (len == 0 || len > SL_NAME_MAX)
    return UV_EINVAL;
  uv_once(&sl__once, sl__init);
  uv_mutex_lock(&sl__lock);
  for (e = sl__gates; e != NULL; e = e->next) {
    if (e->kind != kind || e->len != len || memcmp(e->name, name, len) != 0)
      continue;
    if (permits >= 0) {
      /* The capacity may be changed by any opener at any time: read it
       * under the gate's own lock (registry lock, then gate lock). */
      int64_t cur;
      uv_mutex_lock(&e->gate.lock);
      cur = e->gate.permits;
      uv_mutex_unlock(&e->gate.lock);
      if (cur != permits) {
        uv_mutex_unlock(&sl__lock);
        *existing = cur;
        return UV_EEXIST;
      }
    }
    e->refs++;
    uv_mutex_unlock(&sl__lock);
    *out = &e->gate;
    return 0;
  }
  if (permits < 0) {
    uv_mutex_unlock(&sl__lock);
    return UV_ENOENT;
  }
  e = sl_malloc(offsetof(sl_named_t, name) + len);
  if (e == NULL || sl_gate_init(&e->gate, permits, 1) != 0) {
    uv_mutex_unlock(&sl__lock);
    sl_free(e);
    return UV_ENOMEM;
  }
  memcpy(e->name, name, len);
  e->kind = kind;
  e->len = len;
  e->refs = 1;
  e->next = sl__gates;
  sl__gates = e;
  sl__count++;
  uv_mutex_unlock(&sl__lock);
  *out = &e->gate;
  return 0;
}

void sl_registry_close(sl_gate_t* gate) {
  sl_named_t* e = (sl_named_t*) gate;
  sl_named_t** p;

  uv_mutex_lock(&sl__lock);
  if (--e->refs > 0) {
    uv_mutex_unlock(&sl__lock);
    return;
  }
  for (p = &sl__gates; *p != e; p = &(*p)->next)
    ;
  *p = e->next;
  sl__count--;
  uv_mutex_unlock(&sl__lock);
  /* No opener is left, so no thread can reach the gate any more. */
  sl_gate_destroy(&e->gate);
  sl_free(e);
}

uint64_t sl_registry_count(void) {
  uint64_t n;
  uv_once(&sl__once, sl__init);
  uv_mutex_lock(&sl__lock);
  n = sl__count;
  uv_mutex_unlock(&sl__lock);
  return n;
}
