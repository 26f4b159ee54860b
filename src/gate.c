/* sluice: the gate. See gate.h for the model and the locking rules. */
#include "gate.h"

#include <stdlib.h>
#include <string.h>

/* A gate used by one thread only is never locked (see gate.h). */
#define SL__LOCK(g)                                                           \
  do {                                                                        \
    if ((g)->shared)                                                          \
      uv_mutex_lock(&(g)->lock);                                              \
  } while (0)
#define SL__UNLOCK(g)                                                         \
  do {                                                                        \
    if ((g)->shared)                                                          \
      uv_mutex_unlock(&(g)->lock);                                            \
  } while (0)

/* ---------------------------------------------------------------- ctx --- */

int sl_ctx_init(sl_ctx_t* ctx) {
  int r;
  memset(ctx, 0, sizeof(*ctx));
  sl_wlist_init(&ctx->ready);
  r = uv_mutex_init(&ctx->lock);
  if (r != 0)
    return r;
  r = uv_cond_init(&ctx->idle);
  if (r != 0)
    uv_mutex_destroy(&ctx->lock);
  return r;
}

void sl_ctx_destroy(sl_ctx_t* ctx) {
  uint32_t i;
  for (i = 0; i < ctx->nchunks; i++)
    free(ctx->chunks[i]);
  free(ctx->chunks);
  ctx->chunks = NULL;
  ctx->nchunks = 0;
  ctx->nwaiters = 0;
  ctx->free = NULL;
  uv_cond_destroy(&ctx->idle);
  uv_mutex_destroy(&ctx->lock);
}

sl_waiter_t* sl_ctx_waiter_new(sl_ctx_t* ctx) {
  sl_waiter_t* w;
  uint32_t c;

  w = ctx->free;
  if (w != NULL) {
    ctx->free = w->next;
  } else {
    if (ctx->nwaiters == UINT32_MAX)
      return NULL;
    c = ctx->nwaiters >> SL_CHUNK_SHIFT;
    if (c == ctx->nchunks) {
      /* Only the array of chunk pointers is reallocated; chunks stay put, so
       * no pointer to a waiter is ever invalidated. */
      sl_waiter_t** chunks = realloc(ctx->chunks, (c + 1) * sizeof(*chunks));
      if (chunks == NULL)
        return NULL;
      ctx->chunks = chunks;
      chunks[c] = calloc(SL_CHUNK_SIZE, sizeof(sl_waiter_t));
      if (chunks[c] == NULL)
        return NULL;
      ctx->nchunks++;
    }
    w = &ctx->chunks[c][ctx->nwaiters & (SL_CHUNK_SIZE - 1)];
    w->index = ctx->nwaiters++;
  }
  w->next = NULL;
  w->prev = NULL;
  w->ctx = ctx;
  w->gate = NULL;
  w->data = NULL;
  w->owner = NULL;
  w->timer = NULL;
  w->value = 0;
  w->n = 0;
  w->priority = 0;
  w->state = SL_WAITER_NEW;
  ctx->live++;
  return w;
}

void sl_ctx_waiter_free(sl_ctx_t* ctx, sl_waiter_t* w) {
  w->state = SL_WAITER_FREE;
  w->gen++;
  w->gate = NULL;
  w->data = NULL;
  w->timer = NULL;
  w->next = ctx->free;
  ctx->free = w;
  ctx->live--;
}

sl_waiter_t* sl_ctx_waiter_find(sl_ctx_t* ctx, uint32_t index, uint32_t gen) {
  sl_waiter_t* w;
  if (index >= ctx->nwaiters)
    return NULL;
  w = &ctx->chunks[index >> SL_CHUNK_SHIFT][index & (SL_CHUNK_SIZE - 1)];
  if ((w->gen & SL_GEN_MASK) != (gen & SL_GEN_MASK) || w->state == SL_WAITER_FREE)
    return NULL;
  return w;
}

void sl_ctx_take_ready(sl_ctx_t* ctx, sl_wlist_t* out) {
  uv_mutex_lock(&ctx->lock);
  if (ctx->ready.head != NULL) {
    if (out->tail == NULL)
      out->head = ctx->ready.head;
    else
      out->tail->next = ctx->ready.head;
    out->tail = ctx->ready.tail;
    sl_wlist_init(&ctx->ready);
  }
  uv_mutex_unlock(&ctx->lock);
}

void sl_ctx_close(sl_ctx_t* ctx) {
  uv_mutex_lock(&ctx->lock);
  ctx->closing = 1;
  while (ctx->ringing > 0)
    uv_cond_wait(&ctx->idle, &ctx->lock);
  ctx->doorbell = NULL;
  uv_mutex_unlock(&ctx->lock);
}

/* Doorbells to ring once the gate lock is dropped. More distinct threads
 * than fit in one dispatch is rare; those are rung under the lock. */
#define SL__RING_MAX 8
typedef struct sl__ring_s {
  sl_ctx_t* ctx[SL__RING_MAX];
  uv_async_t* bell[SL__RING_MAX];
  uint32_t n;
} sl__ring_t;

/* Hands a granted waiter to its thread. Called with the gate lock held, so
 * the owner cannot tear down between finding the waiter in the gate and the
 * push: teardown removes its waiters under the same gate lock first. The
 * doorbell is rung only when the ready queue was empty (the callback drains
 * the whole queue, so one ring per batch is enough), and later, in
 * sl__ring(), outside every lock; `ringing` keeps teardown from closing the
 * doorbell until that ring is made. */
static void sl__ctx_push_ready(sl_ctx_t* ctx, sl_waiter_t* w, sl__ring_t* ring) {
  int was_empty;
  uv_mutex_lock(&ctx->lock);
  was_empty = ctx->ready.head == NULL;
  sl_wlist_push(&ctx->ready, w);
  if (was_empty && !ctx->closing && ctx->doorbell != NULL) {
    if (ring->n < SL__RING_MAX) {
      ctx->ringing++;
      ring->ctx[ring->n] = ctx;
      ring->bell[ring->n] = ctx->doorbell;
      ring->n++;
    } else {
      uv_async_send(ctx->doorbell);
    }
  }
  uv_mutex_unlock(&ctx->lock);
}

/* Rings the doorbells collected under the gate lock. No lock is held. */
static void sl__ring(sl__ring_t* ring) {
  uint32_t i;
  for (i = 0; i < ring->n; i++) {
    sl_ctx_t* ctx = ring->ctx[i];
    uv_async_send(ring->bell[i]);
    uv_mutex_lock(&ctx->lock);
    if (--ctx->ringing == 0 && ctx->closing)
      uv_cond_signal(&ctx->idle);
    uv_mutex_unlock(&ctx->lock);
  }
  ring->n = 0;
}

/* --------------------------------------------------------------- gate --- */

int sl_gate_init(sl_gate_t* g, int64_t permits, int shared) {
  memset(g, 0, sizeof(*g));
  g->permits = permits;
  g->shared = shared;
  if (shared)
    return uv_mutex_init(&g->lock);
  return 0;
}

void sl_gate_destroy(sl_gate_t* g) {
  free(g->levels);
  g->levels = NULL;
  g->nlevels = 0;
  g->cap_levels = 0;
  if (g->shared)
    uv_mutex_destroy(&g->lock);
}

int64_t sl_gate_available(const sl_gate_t* g) {
  if (g->permits == SL_INFINITE)
    return SL_INFINITE;
  return g->permits - g->in_use;
}

static int sl__fits(const sl_gate_t* g, uint32_t n) {
  if (g->permits == SL_INFINITE)
    return 1;
  return g->in_use <= g->permits && (int64_t) n <= g->permits - g->in_use;
}

/* The index of the first level whose priority is >= `priority` (binary
 * search over ascending priorities, O(log P)). */
static uint32_t sl__level_search(const sl_gate_t* g, int32_t priority) {
  uint32_t lo = 0, hi = g->nlevels, mid;
  while (lo < hi) {
    mid = lo + (hi - lo) / 2;
    if (g->levels[mid].priority < priority)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Returns the level for `priority`, or NULL if there is none. */
static sl_level_t* sl__level_find(sl_gate_t* g, int32_t priority) {
  uint32_t i = sl__level_search(g, priority);
  if (i < g->nlevels && g->levels[i].priority == priority)
    return &g->levels[i];
  return NULL;
}

/* Returns the level for `priority`, creating it, or NULL when out of
 * memory. */
static sl_level_t* sl__level_get(sl_gate_t* g, int32_t priority) {
  uint32_t i;
  sl_level_t* lv;

  /* Fast path: most gates only ever see one priority. */
  if (g->nlevels > 0 && g->levels[g->nlevels - 1].priority == priority)
    return &g->levels[g->nlevels - 1];
  i = sl__level_search(g, priority);
  if (i < g->nlevels && g->levels[i].priority == priority)
    return &g->levels[i];
  if (g->nlevels == g->cap_levels) {
    uint32_t cap = g->cap_levels ? g->cap_levels * 2 : 4;
    sl_level_t* levels = realloc(g->levels, cap * sizeof(*levels));
    if (levels == NULL)
      return NULL;
    g->levels = levels;
    g->cap_levels = cap;
  }
  memmove(&g->levels[i + 1], &g->levels[i], (g->nlevels - i) * sizeof(sl_level_t));
  g->nlevels++;
  lv = &g->levels[i];
  lv->head = NULL;
  lv->tail = NULL;
  lv->priority = priority;
  return lv;
}

static void sl__level_drop(sl_gate_t* g, sl_level_t* lv) {
  uint32_t i = (uint32_t) (lv - g->levels);
  memmove(&g->levels[i], &g->levels[i + 1], (g->nlevels - i - 1) * sizeof(sl_level_t));
  g->nlevels--;
}

static void sl__unlink(sl_gate_t* g, sl_level_t* lv, sl_waiter_t* w) {
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    lv->head = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  else
    lv->tail = w->prev;
  w->next = NULL;
  w->prev = NULL;
  g->npending--;
  if (lv->head == NULL)
    sl__level_drop(g, lv);
}

/* The gate lock is held. Grants the head to its context. */
static void sl__grant_head(sl_gate_t* g, sl_ctx_t* self, sl_wlist_t* granted, sl__ring_t* ring) {
  sl_level_t* lv = &g->levels[g->nlevels - 1];
  sl_waiter_t* w = lv->head;
  sl__unlink(g, lv, w);
  g->in_use += w->n;
  w->state = SL_WAITER_GRANTED;
  if (w->ctx == self)
    sl_wlist_push(granted, w);
  else
    sl__ctx_push_ready(w->ctx, w, ring);
}

/* The gate lock is held. Grants the head while it fits, at most `max`
 * waiters (0: no limit). */
static void sl__dispatch_locked(sl_gate_t* g, uint32_t max, sl_ctx_t* self, sl_wlist_t* granted,
                                sl__ring_t* ring) {
  uint32_t i = 0;
  while (g->nlevels > 0 && sl__fits(g, g->levels[g->nlevels - 1].head->n)) {
    sl__grant_head(g, self, granted, ring);
    if (++i == max)
      break;
  }
}

int sl_gate_try_take(sl_gate_t* g, uint32_t n) {
  int ok;
  SL__LOCK(g);
  ok = g->npending == 0 && sl__fits(g, n);
  if (ok)
    g->in_use += n;
  SL__UNLOCK(g);
  return ok;
}

int sl_gate_acquire(sl_gate_t* g, sl_waiter_t* w, uint32_t n, int32_t priority,
                    sl_ctx_t* self, sl_wlist_t* granted) {
  sl__ring_t ring = {.n = 0};
  sl_level_t* lv;
  int r = 0;

  SL__LOCK(g);
  if (g->npending == 0 && sl__fits(g, n)) {
    g->in_use += n;
    r = 1;
  } else if ((lv = sl__level_get(g, priority)) == NULL) {
    r = UV_ENOMEM;
  } else {
    w->n = n;
    w->priority = priority;
    w->gate = g;
    w->state = SL_WAITER_QUEUED;
    w->next = NULL;
    w->prev = lv->tail;
    if (lv->tail != NULL)
      lv->tail->next = w;
    else
      lv->head = w;
    lv->tail = w;
    g->npending++;
    if (sl__fits(g, g->levels[g->nlevels - 1].head->n))
      sl__grant_head(g, self, granted, &ring);
  }
  SL__UNLOCK(g);
  sl__ring(&ring);
  return r;
}

int sl_gate_release(sl_gate_t* g, uint32_t n, uint32_t max_grants, sl_ctx_t* self,
                    sl_wlist_t* granted) {
  sl__ring_t ring = {.n = 0};
  SL__LOCK(g);
  if ((int64_t) n > g->in_use) {
    SL__UNLOCK(g);
    return UV_EINVAL;
  }
  g->in_use -= n;
  sl__dispatch_locked(g, max_grants, self, granted, &ring);
  SL__UNLOCK(g);
  sl__ring(&ring);
  return 0;
}

void sl_gate_dispatch(sl_gate_t* g, sl_ctx_t* self, sl_wlist_t* granted) {
  sl__ring_t ring = {.n = 0};
  SL__LOCK(g);
  sl__dispatch_locked(g, 0, self, granted, &ring);
  SL__UNLOCK(g);
  sl__ring(&ring);
}

void sl_gate_set_permits(sl_gate_t* g, int64_t permits) {
  SL__LOCK(g);
  g->permits = permits;
  SL__UNLOCK(g);
}

int sl_gate_cancel(sl_gate_t* g, sl_waiter_t* w, sl_ctx_t* self, sl_wlist_t* granted) {
  sl__ring_t ring = {.n = 0};
  sl_level_t* lv;
  SL__LOCK(g);
  if (w->state != SL_WAITER_QUEUED || w->gate != g) {
    SL__UNLOCK(g);
    return UV_ENOENT;
  }
  lv = sl__level_find(g, w->priority);
  sl__unlink(g, lv, w);
  w->state = SL_WAITER_NEW;
  w->gate = NULL;
  sl__dispatch_locked(g, 0, self, granted, &ring);
  SL__UNLOCK(g);
  sl__ring(&ring);
  return 0;
}

static void sl__clear(sl_gate_t* g, const void* owner, const sl_ctx_t* ctx, sl_wlist_t* out) {
  uint32_t i;
  SL__LOCK(g);
  /* Highest priority first, FIFO within each: the order they would have run. */
  for (i = g->nlevels; i-- > 0;) {
    sl_level_t* lv = &g->levels[i];
    sl_waiter_t* w = lv->head;
    while (w != NULL) {
      sl_waiter_t* next = w->next;
      if ((owner == NULL || w->owner == owner) && (ctx == NULL || w->ctx == ctx)) {
        /* Unlinking the last waiter drops the level (levels above it move
         * down one); `next` is NULL then, so the loop ends and i-1 is still
         * the next level to visit. */
        sl__unlink(g, lv, w);
        w->state = SL_WAITER_NEW;
        w->gate = NULL;
        sl_wlist_push(out, w);
      }
      w = next;
    }
  }
  SL__UNLOCK(g);
}

void sl_gate_clear(sl_gate_t* g, const void* owner, sl_wlist_t* out) {
  sl__clear(g, owner, NULL, out);
}

void sl_gate_clear_ctx(sl_gate_t* g, const sl_ctx_t* ctx, sl_wlist_t* out) {
  sl__clear(g, NULL, ctx, out);
}
