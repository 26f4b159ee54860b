/* sluice: the gate. See gate.h for the model and the locking rules. */
#include "gate.h"

#include "alloc.h"

#include <string.h>

/* The fast path (shared gates). in_use lives in g->fast, shifted left by
 * one, with SL_GATE_SLOW as bit 0. With the bit clear (nobody queued, no
 * lock holder deciding on in_use), a take that fits and any release are
 * one compare-and-swap, without the lock. Lock holders that read in_use to
 * decide (grants, queueing, permits, stakes closing) first set the bit
 * ("freeze"): from then on only lock holders change in_use, and a fast
 * path that loaded the word before fails its compare-and-swap and takes
 * the lock. Every unlock clears the bit again unless waiters are queued
 * ("thaw"): outside the lock, the bit is set exactly while npending > 0.
 *
 * Memory order: the thaw is a release and the fast path's load an
 * acquire, so what a lock holder wrote (a grant booked on a stake, the
 * stake's party) happens before the stake's own thread, on the fast path,
 * reads or writes it. Booking on a stake from the fast path touches only
 * that thread's own stake and party, whose `held` other threads read only
 * while that party has waiters queued, when the fast path is closed to it.
 * `permits` is written under the lock with an atomic store and read by the
 * fast path with an atomic load. */
#define SL_GATE_SLOW ((uint64_t) 1)

static int64_t sl__in_use(const sl_gate_t* g) {
  if (g->shared)
    return (int64_t) (__atomic_load_n(&g->fast, __ATOMIC_RELAXED) >> 1);
  return g->in_use;
}

/* Under the lock (shared gates: frozen). */
static void sl__in_use_add(sl_gate_t* g, int64_t d) {
  if (g->shared)
    __atomic_fetch_add(&g->fast, (uint64_t) d << 1, __ATOMIC_RELAXED);
  else
    g->in_use += d;
}

static void sl__freeze(sl_gate_t* g) {
  if (g->shared)
    __atomic_fetch_or(&g->fast, SL_GATE_SLOW, __ATOMIC_ACQ_REL);
}

static void sl__thaw(sl_gate_t* g) {
  if (g->npending == 0 && (__atomic_load_n(&g->fast, __ATOMIC_RELAXED) & SL_GATE_SLOW))
    __atomic_fetch_and(&g->fast, ~SL_GATE_SLOW, __ATOMIC_RELEASE);
}

/* A gate used by one thread only is never locked (see gate.h). */
#define SL__LOCK(g)                                                                                \
  do {                                                                                             \
    if ((g)->shared)                                                                               \
      uv_mutex_lock(&(g)->lock);                                                                   \
  } while (0)
#define SL__LOCK_FROZEN(g)                                                                         \
  do {                                                                                             \
    if ((g)->shared) {                                                                             \
      uv_mutex_lock(&(g)->lock);                                                                   \
      sl__freeze(g);                                                                               \
    }                                                                                              \
  } while (0)
#define SL__UNLOCK(g)                                                                              \
  do {                                                                                             \
    if ((g)->shared) {                                                                             \
      sl__thaw(g);                                                                                 \
      uv_mutex_unlock(&(g)->lock);                                                                 \
    }                                                                                              \
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
    sl_free(ctx->chunks[i]);
  sl_free(ctx->chunks);
  sl_free(ctx->room);
  ctx->chunks = NULL;
  ctx->room = NULL;
  ctx->nchunks = 0;
  uv_cond_destroy(&ctx->idle);
  uv_mutex_destroy(&ctx->lock);
}

static void sl__room_set(sl_ctx_t* ctx, uint32_t i) {
  ctx->room[i >> 6] |= (uint64_t) 1 << (i & 63);
}

static void sl__room_clear(sl_ctx_t* ctx, uint32_t i) {
  ctx->room[i >> 6] &= ~((uint64_t) 1 << (i & 63));
}

/* The lowest chunk index with room (or not allocated), or nchunks if every
 * chunk is full. One word covers 64 chunks (65,536 waiters). */
static uint32_t sl__room_first(const sl_ctx_t* ctx) {
  uint32_t words = (ctx->nchunks + 63) / 64, i;
  for (i = 0; i < words; i++)
    if (ctx->room[i] != 0)
      return i * 64 + (uint32_t) __builtin_ctzll(ctx->room[i]);
  return ctx->nchunks;
}

/* Doubles the chunk table (entries NULL, with room). */
static int sl__chunks_grow(sl_ctx_t* ctx) {
  uint32_t n = ctx->nchunks ? ctx->nchunks * 2 : 64;
  uint32_t words = n / 64, old_words = ctx->nchunks / 64;
  sl_chunk_t** chunks;
  uint64_t* room;
  if (n > (UINT32_MAX >> SL_CHUNK_SHIFT))
    return UV_ENOMEM; /* 2^32 waiters: the index would overflow */
  chunks = sl_realloc(ctx->chunks, n * sizeof(*chunks));
  if (chunks == NULL)
    return UV_ENOMEM;
  ctx->chunks = chunks;
  room = sl_realloc(ctx->room, words * sizeof(*room));
  if (room == NULL)
    return UV_ENOMEM; /* the larger chunk table is kept; nchunks is not */
  ctx->room = room;
  memset(&chunks[ctx->nchunks], 0, (n - ctx->nchunks) * sizeof(*chunks));
  memset(&room[old_words], 0xff, (words - old_words) * sizeof(*room));
  ctx->nchunks = n;
  return 0;
}

static sl_chunk_t* sl__chunk_new(void) {
  sl_chunk_t* c = sl_malloc(sizeof(*c));
  uint32_t i;
  if (c == NULL)
    return NULL;
  c->live = 0;
  c->free = &c->w[0];
  for (i = 0; i < SL_CHUNK_SIZE; i++) {
    c->w[i].next = i + 1 < SL_CHUNK_SIZE ? &c->w[i + 1] : NULL;
    c->w[i].state = SL_WAITER_FREE;
    c->w[i].seq = 0; /* matches no token (see sl_ctx_waiter_find) */
  }
  return c;
}

sl_waiter_t* sl_ctx_waiter_new(sl_ctx_t* ctx) {
  uint32_t i = sl__room_first(ctx);
  sl_chunk_t* c;
  sl_waiter_t* w;

  if (i == ctx->nchunks && sl__chunks_grow(ctx) != 0)
    return NULL;
  c = ctx->chunks[i];
  if (c == NULL) {
    c = sl__chunk_new();
    if (c == NULL)
      return NULL;
    ctx->chunks[i] = c;
    if (++ctx->nlive_chunks > ctx->peak_chunks)
      ctx->peak_chunks = ctx->nlive_chunks;
  }
  if (c->live == 0 && ctx->spare == i + 1)
    ctx->spare = 0; /* the spare is in use again */
  w = c->free;
  c->free = w->next;
  if (c->free == NULL)
    sl__room_clear(ctx, i);
  c->live++;
  memset(w, 0, sizeof(*w));
  w->index = (i << SL_CHUNK_SHIFT) | (uint32_t) (w - c->w);
  w->seq = ++ctx->seq;
  w->state = SL_WAITER_NEW;
  ctx->live++;
  return w;
}

void sl_ctx_waiter_free(sl_ctx_t* ctx, sl_waiter_t* w) {
  uint32_t i = w->index >> SL_CHUNK_SHIFT;
  sl_chunk_t* c = ctx->chunks[i];

  w->state = SL_WAITER_FREE;
  w->seq = 0; /* no token matches a free waiter (see sl_ctx_waiter_find) */
  w->stake = NULL;
  w->data = NULL;
  w->timer = NULL;
  w->next = c->free;
  c->free = w;
  sl__room_set(ctx, i);
  ctx->live--;
  if (--c->live > 0 || i == 0)
    return;
  /* The chunk is empty. Keep one spare; give any other back, so memory
   * returns once a burst is over. */
  if (ctx->spare == 0) {
    ctx->spare = i + 1;
    return;
  }
  /* Keep the lower of the two as the spare: new waiters come from low
   * chunks, so the high one is the one less likely to be needed. */
  if (ctx->spare - 1 > i) {
    uint32_t j = ctx->spare - 1;
    ctx->spare = i + 1;
    i = j;
    c = ctx->chunks[i];
  }
  sl_free(c);
  ctx->chunks[i] = NULL;
  /* A burst is over: hand what it freed (these chunks, and whatever the
   * embedder freed with them) back to the system, once. */
  if (--ctx->nlive_chunks <= 2 && ctx->peak_chunks >= SL_TRIM_PEAK) {
    ctx->peak_chunks = ctx->nlive_chunks;
    sl_alloc_trim();
  }
}

sl_waiter_t* sl_ctx_waiter_find(sl_ctx_t* ctx, uint32_t index, uint64_t seq) {
  uint32_t i = index >> SL_CHUNK_SHIFT;
  sl_waiter_t* w;
  if (i >= ctx->nchunks || ctx->chunks[i] == NULL)
    return NULL;
  w = &ctx->chunks[i]->w[index & (SL_CHUNK_SIZE - 1)];
  /* Only `seq` is read: the owner thread alone writes it (0 when free),
   * while `state` is written by whichever thread grants the waiter. */
  if (seq == 0 || w->seq != seq)
    return NULL;
  return w;
}

uint32_t sl_ctx_chunks(const sl_ctx_t* ctx) {
  return ctx->nlive_chunks;
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
    ctx->keep -= ctx->nready;
    ctx->nready = 0;
  }
  uv_mutex_unlock(&ctx->lock);
}

int sl_ctx_keep(sl_ctx_t* ctx) {
  int keep;
  uv_mutex_lock(&ctx->lock);
  keep = ctx->keep > 0;
  uv_mutex_unlock(&ctx->lock);
  return keep;
}

void sl_ctx_set_doorbell(sl_ctx_t* ctx, uv_async_t* doorbell) {
  /* Other threads read it under ctx->lock when they push. */
  uv_mutex_lock(&ctx->lock);
  ctx->doorbell = doorbell;
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

/* ctx->lock is held. Plans a ring of ctx's doorbell: made in sl_ring(),
 * outside every lock; `ringing` keeps teardown from closing the doorbell
 * until it is made. */
static void sl__ring_plan(sl_ctx_t* ctx, sl_ring_t* ring) {
  if (ctx->closing || ctx->doorbell == NULL)
    return;
  if (ring->n < SL_RING_MAX) {
    ctx->ringing++;
    ring->ctx[ring->n] = ctx;
    ring->bell[ring->n] = ctx->doorbell;
    ring->n++;
  } else {
    uv_async_send(ctx->doorbell);
  }
}

/* Hands a granted or refused waiter to its thread. Called with the gate
 * lock held, so the owner cannot tear down between finding the waiter in
 * the gate and the push: teardown removes its waiters under the same gate
 * lock first. The doorbell is rung only when the ready queue was empty (the
 * callback drains the whole queue, so one ring per batch is enough). */
void sl_ctx_push_ready(sl_ctx_t* ctx, sl_waiter_t* w, sl_ring_t* ring) {
  int was_empty;
  uv_mutex_lock(&ctx->lock);
  was_empty = ctx->ready.head == NULL;
  sl_wlist_push(&ctx->ready, w);
  /* A grant on its way counts as a reason to stay alive until the owner
   * has taken it (sl_ctx_take_ready): its waiter no longer waits, so its
   * stake may stop counting, and the owner must not unref its doorbell in
   * between and exit with the grant unsettled. */
  ctx->nready++;
  ctx->keep++;
  if (was_empty)
    sl__ring_plan(ctx, ring);
  uv_mutex_unlock(&ctx->lock);
}

/* Rings the doorbells planned under the gate lock. No lock is held. */
void sl_ring(sl_ring_t* ring) {
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
  sl_free(g->levels);
  g->levels = NULL;
  g->nlevels = 0;
  g->cap_levels = 0;
  if (g->shared)
    uv_mutex_destroy(&g->lock);
}

static int sl__fits(const sl_gate_t* g, uint32_t n) {
  int64_t in_use = sl__in_use(g);
  if (g->permits == SL_INFINITE)
    return 1;
  return in_use <= g->permits && (int64_t) n <= g->permits - in_use;
}

/* Whether a request for n permits can never be granted: more than the gate
 * has. A gate of 0 permits is paused, not too small: its waiters wait for a
 * raise (they hold up nobody who could run meanwhile). */
static int sl__doomed(int64_t permits, uint32_t n) {
  return permits != SL_INFINITE && permits > 0 && (int64_t) n > permits;
}

/* ---- keeping threads alive (shared gates; the gate lock is held) ---- */

/* Books a change of held permits and queued waiters on a stake and, for a
 * shared gate, on its ctx's party. The gate lock is held. */
static void sl__book(sl_stake_t* s, int64_t held, int64_t waiting) {
  s->held += held;
  s->waiting += waiting;
  if (s->party != NULL) {
    s->party->held += held;
    s->party->waiting += waiting;
  }
}

/* The fast path's booking: held permits only (`waiting` is read by other
 * threads under the lock at any time; a write of +0 would still race). */
static void sl__book_held(sl_stake_t* s, int64_t held) {
  s->held += held;
  if (s->party != NULL)
    s->party->held += held;
}

/* Whether another ctx could let a party's waiters in: it holds permits of
 * the gate, or its waiter heads the queue (ahead of all of ours) while the
 * gate has permits, so its abort or timeout could move ours up. */
static int sl__others_could_grant(const sl_gate_t* g, const sl_party_t* p) {
  const sl_waiter_t* head;
  if (sl__in_use(g) > p->held)
    return 1;
  if (g->nlevels == 0 || g->permits == 0)
    return 0;
  head = g->levels[g->nlevels - 1].head;
  return head->stake->party != p;
}

/* Sets a party's keep, counting it in its ctx; a ctx whose count crosses
 * zero gets its doorbell rung, so its thread refs or unrefs it (uv_ref is
 * not thread-safe). */
static void sl__party_keep(sl_gate_t* g, sl_party_t* p, int want, sl_ring_t* ring) {
  if (want == p->keep)
    return;
  p->keep = want;
  g->nkeep = want ? g->nkeep + 1 : g->nkeep - 1;
  sl_ctx_keep_add(p->ctx, want ? 1 : -1, ring);
}

void sl_ctx_keep_add(sl_ctx_t* ctx, int delta, sl_ring_t* ring) {
  int64_t before;
  uv_mutex_lock(&ctx->lock);
  before = ctx->keep;
  ctx->keep += delta;
  if ((before == 0) != (ctx->keep == 0))
    sl__ring_plan(ctx, ring);
  uv_mutex_unlock(&ctx->lock);
}

/* Brings every party's keep up to date after a change: O(parties), that is
 * O(threads), and only while waiters are queued or a keep is set. */
static void sl__keep_sync(sl_gate_t* g, sl_ring_t* ring) {
  sl_party_t* p;
  if (!g->shared || (g->npending == 0 && g->nkeep == 0))
    return;
  for (p = g->parties; p != NULL; p = p->next)
    sl__party_keep(g, p, p->waiting > 0 && sl__others_could_grant(g, p), ring);
}

/* ---- the queue ---- */

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

/* Returns the level for `priority`, which must exist. */
static sl_level_t* sl__level_find(sl_gate_t* g, int32_t priority) {
  return &g->levels[sl__level_search(g, priority)];
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
    sl_level_t* levels = sl_realloc(g->levels, cap * sizeof(*levels));
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

static void sl__link(sl_level_t* lv, sl_waiter_t* w) {
  w->next = NULL;
  w->prev = lv->tail;
  if (lv->tail != NULL)
    lv->tail->next = w;
  else
    lv->head = w;
  lv->tail = w;
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
  sl__book(w->stake, 0, -1);
  if (lv->head == NULL)
    sl__level_drop(g, lv);
}

/* The gate lock is held. Hands a waiter that left the queue (GRANTED or
 * REFUSED) to its thread: the caller's list or the owner's ready queue. */
static void sl__hand_over(sl_waiter_t* w, sl_ctx_t* self, sl_wlist_t* out, sl_ring_t* ring) {
  if (w->stake->ctx == self)
    sl_wlist_push(out, w);
  else
    sl_ctx_push_ready(w->stake->ctx, w, ring);
}

/* The gate lock is held. Grants the head to its stake. */
static void sl__grant_head(sl_gate_t* g, sl_ctx_t* self, sl_wlist_t* out, sl_ring_t* ring) {
  sl_level_t* lv = &g->levels[g->nlevels - 1];
  sl_waiter_t* w = lv->head;
  sl__unlink(g, lv, w);
  sl__in_use_add(g, w->n);
  sl__book(w->stake, w->n, 0);
  w->state = SL_WAITER_GRANTED;
  sl__hand_over(w, self, out, ring);
}

/* The gate lock is held. Grants the head while it fits, at most `max`
 * waiters (0: no limit). */
static void sl__dispatch_locked(sl_gate_t* g, uint32_t max, sl_ctx_t* self, sl_wlist_t* out,
                                sl_ring_t* ring) {
  uint32_t i = 0;
  while (g->nlevels > 0 && sl__fits(g, g->levels[g->nlevels - 1].head->n)) {
    sl__grant_head(g, self, out, ring);
    if (++i == max)
      break;
  }
}

/* Drops the lock, then rings: the end of every locked operation. */
static void sl__unlock_ring(sl_gate_t* g, sl_ring_t* ring) {
  sl__keep_sync(g, ring);
  SL__UNLOCK(g);
  sl_ring(ring);
}

/* -------------------------------------------------------------- stakes --- */

/* Stake ids: one counter for the process, atomic (stakes of different
 * gates take ids concurrently); it only grows, so ids are never reused. */
static uint64_t sl__stake_ids;

int sl_stake_open(sl_stake_t* s, sl_gate_t* g, sl_ctx_t* ctx) {
  sl_party_t* p;
  memset(s, 0, sizeof(*s));
  s->gate = g;
  s->ctx = ctx;
  if (!g->shared) {
    s->id = __atomic_add_fetch(&sl__stake_ids, 1, __ATOMIC_RELAXED);
    return 0;
  }
  uv_mutex_lock(&g->lock);
  /* Under the gate lock, with the link below: sl_gate_stakes, under the
   * same lock, sees every stake of this gate whose id is below the counter
   * it reads. */
  s->id = __atomic_add_fetch(&sl__stake_ids, 1, __ATOMIC_RELAXED);
  for (p = g->parties; p != NULL && p->ctx != ctx; p = p->next)
    ;
  if (p == NULL) {
    p = sl_calloc(1, sizeof(*p));
    if (p == NULL) {
      uv_mutex_unlock(&g->lock);
      return UV_ENOMEM;
    }
    p->ctx = ctx;
    p->next = g->parties;
    g->parties = p;
  }
  p->nstakes++;
  s->party = p;
  s->snext = g->stakes;
  if (g->stakes != NULL)
    g->stakes->sprev = s;
  g->stakes = s;
  uv_mutex_unlock(&g->lock);
  return 0;
}

void sl_stake_close(sl_stake_t* s) {
  sl_gate_t* g = s->gate;
  sl_party_t* p = s->party;
  sl_ring_t ring = {.n = 0};
  sl_wlist_t none;

  sl_wlist_init(&none);
  SL__LOCK_FROZEN(g);
  /* Permits the holder never released (a dropped semaphore, a terminated
   * worker) go back, and whoever waits next gets them. self = NULL: every
   * grant goes through a ready queue, since this may run in a finalizer. */
  sl__in_use_add(g, -s->held);
  sl__book(s, -s->held, 0);
  if (p != NULL && --p->nstakes == 0) {
    sl_party_t** pp;
    sl__party_keep(g, p, 0, &ring);
    for (pp = &g->parties; *pp != p; pp = &(*pp)->next)
      ;
    *pp = p->next;
    sl_free(p);
  }
  s->party = NULL;
  if (g->shared) {
    if (s->sprev != NULL)
      s->sprev->snext = s->snext;
    else
      g->stakes = s->snext;
    if (s->snext != NULL)
      s->snext->sprev = s->sprev;
    s->snext = s->sprev = NULL;
    /* A leader that closes frees the lead for the next to claim it. */
    if (g->leader == s->id)
      g->leader = 0;
  }
  sl__dispatch_locked(g, 0, NULL, &none, &ring);
  sl__unlock_ring(g, &ring);
}

int64_t sl_stake_held(sl_stake_t* s) {
  int64_t held;
  SL__LOCK(s->gate);
  held = s->held;
  SL__UNLOCK(s->gate);
  return held;
}

/* ---------------------------------------------------------- operations --- */

/* Shared gates: takes n permits with one compare-and-swap if nobody is
 * queued and they fit. Returns 1 if taken, 0 if not (too few free), -1 if
 * the lock must decide (waiters queued, or a lock holder at work). */
static int sl__fast_take(sl_stake_t* s, uint32_t n) {
  sl_gate_t* g = s->gate;
  uint64_t w = __atomic_load_n(&g->fast, __ATOMIC_ACQUIRE);
  for (;;) {
    int64_t permits = __atomic_load_n(&g->permits, __ATOMIC_RELAXED);
    int64_t in_use = (int64_t) (w >> 1);
    if (w & SL_GATE_SLOW)
      return -1;
    if (permits != SL_INFINITE && (in_use > permits || (int64_t) n > permits - in_use))
      return 0;
    if (__atomic_compare_exchange_n(&g->fast, &w, w + ((uint64_t) n << 1), 1, __ATOMIC_ACQUIRE,
                                    __ATOMIC_ACQUIRE))
      break;
  }
  sl__book_held(s, n);
  return 1;
}

/* Shared gates: returns n permits with one compare-and-swap if nobody is
 * queued (nobody to hand them to). Returns 1 if done, -1 if the lock must
 * do it. */
static int sl__fast_release(sl_stake_t* s, int64_t n) {
  sl_gate_t* g = s->gate;
  uint64_t w = __atomic_load_n(&g->fast, __ATOMIC_ACQUIRE);
  if (w & SL_GATE_SLOW)
    return -1;
  /* No waiter of ours is queued (the bit would be set), so only this
   * thread writes s->held now. */
  if (n < 0 || n > s->held)
    return -1; /* the locked path answers UV_ERANGE */
  for (;;) {
    if (w & SL_GATE_SLOW)
      return -1;
    if (__atomic_compare_exchange_n(&g->fast, &w, w - ((uint64_t) n << 1), 1, __ATOMIC_RELEASE,
                                    __ATOMIC_ACQUIRE))
      break;
  }
  sl__book_held(s, -n);
  return 1;
}

int sl_gate_try_take(sl_stake_t* s, uint32_t n) {
  sl_gate_t* g = s->gate;
  int r = UV_EBUSY;
  if (g->shared) {
    int f = sl__fast_take(s, n);
    if (f >= 0)
      return f ? 0 : UV_EBUSY;
  }
  SL__LOCK_FROZEN(g);
  if (g->npending == 0 && sl__fits(g, n)) {
    sl__in_use_add(g, n);
    sl__book(s, n, 0);
    r = 0;
  }
  SL__UNLOCK(g);
  return r;
}

int sl_gate_acquire(sl_stake_t* s, sl_waiter_t* w, uint32_t n, int32_t priority, int* queued,
                    sl_wlist_t* out) {
  sl_gate_t* g = s->gate;
  sl_ring_t ring = {.n = 0};
  sl_level_t* lv;
  int r = 0;

  *queued = 0;
  if (g->shared && sl__fast_take(s, n) == 1)
    return 0;
  SL__LOCK_FROZEN(g);
  if (sl__doomed(g->permits, n)) {
    r = UV_ERANGE;
  } else if (g->npending == 0 && sl__fits(g, n)) {
    sl__in_use_add(g, n);
    sl__book(s, n, 0);
  } else if ((lv = sl__level_get(g, priority)) == NULL) {
    r = UV_ENOMEM;
  } else {
    w->n = n;
    w->priority = priority;
    w->stake = s;
    w->state = SL_WAITER_QUEUED;
    sl__link(lv, w);
    g->npending++;
    sl__book(s, 0, 1);
    *queued = 1;
    if (sl__fits(g, g->levels[g->nlevels - 1].head->n))
      sl__grant_head(g, s->ctx, out, &ring);
  }
  sl__unlock_ring(g, &ring);
  return r;
}

int sl_gate_release(sl_stake_t* s, int64_t n, uint32_t max_grants, sl_wlist_t* out) {
  sl_gate_t* g = s->gate;
  sl_ring_t ring = {.n = 0};
  if (g->shared && sl__fast_release(s, n) == 1)
    return 0;
  SL__LOCK_FROZEN(g);
  if (n < 0 || n > s->held) {
    SL__UNLOCK(g);
    return UV_ERANGE;
  }
  sl__in_use_add(g, -n);
  sl__book(s, -n, 0);
  sl__dispatch_locked(g, max_grants, s->ctx, out, &ring);
  sl__unlock_ring(g, &ring);
  return 0;
}

void sl_gate_dispatch(sl_stake_t* s, sl_wlist_t* out) {
  sl_gate_t* g = s->gate;
  sl_ring_t ring = {.n = 0};
  SL__LOCK_FROZEN(g);
  sl__dispatch_locked(g, 0, s->ctx, out, &ring);
  sl__unlock_ring(g, &ring);
}

void sl_gate_set_permits(sl_stake_t* s, int64_t permits, sl_wlist_t* out) {
  sl_gate_t* g = s->gate;
  sl_ring_t ring = {.n = 0};
  uint32_t i;
  SL__LOCK_FROZEN(g);
  /* Atomic: the fast path reads it without the lock. */
  __atomic_store_n(&g->permits, permits, __ATOMIC_RELAXED);
  /* Refuse the waiters that can never fit now, from the highest level down
   * (dropping a level moves the ones above it, already visited, down). */
  for (i = permits != SL_INFINITE && permits > 0 ? g->nlevels : 0; i-- > 0;) {
    sl_level_t* lv = &g->levels[i];
    sl_waiter_t* w = lv->head;
    while (w != NULL) {
      sl_waiter_t* next = w->next;
      if (sl__doomed(permits, w->n)) {
        sl__unlink(g, lv, w);
        w->state = SL_WAITER_REFUSED;
        sl__hand_over(w, s->ctx, out, &ring);
      }
      w = next;
    }
  }
  sl__unlock_ring(g, &ring);
}

int sl_gate_cancel(sl_waiter_t* w, sl_wlist_t* out) {
  sl_stake_t* s = w->stake;
  sl_gate_t* g;
  sl_ring_t ring = {.n = 0};
  if (s == NULL)
    return UV_ENOENT;
  g = s->gate;
  SL__LOCK_FROZEN(g);
  /* Read under the lock: another thread may be granting it right now. */
  if (w->state != SL_WAITER_QUEUED) {
    SL__UNLOCK(g);
    return UV_ENOENT;
  }
  sl__unlink(g, sl__level_find(g, w->priority), w);
  w->state = SL_WAITER_NEW;
  sl__dispatch_locked(g, 0, s->ctx, out, &ring);
  sl__unlock_ring(g, &ring);
  return 0;
}

/* ---------------------------------------------------------- fleet gates --- */

int sl_gate_grant_to(sl_stake_t* s, uint64_t stake_id, uint64_t seq, double value,
                     sl_wlist_t* out) {
  sl_gate_t* g = s->gate;
  sl_ring_t ring = {.n = 0};
  sl_waiter_t* w = NULL;
  uint32_t i;
  /* Frozen: in_use changes, and the fast path must not act on a stale
   * count meanwhile. */
  SL__LOCK_FROZEN(g);
  for (i = g->nlevels; w == NULL && i-- > 0;) {
    for (w = g->levels[i].head; w != NULL; w = w->next)
      if (w->seq == seq && w->stake->id == stake_id)
        break;
  }
  if (w == NULL) {
    SL__UNLOCK(g);
    return UV_ENOENT;
  }
  sl__unlink(g, &g->levels[i], w);
  sl__in_use_add(g, w->n);
  sl__book(w->stake, w->n, 0);
  w->value = value;
  w->state = SL_WAITER_GRANTED;
  sl__hand_over(w, s->ctx, out, &ring);
  sl__unlock_ring(g, &ring);
  return 0;
}

uint64_t sl_gate_lead(sl_stake_t* s) {
  sl_gate_t* g = s->gate;
  uint64_t leader;
  /* `leader` is read and written under the gate lock only (here, in
   * sl_gate_resign and in sl_stake_close), so two threads cannot both
   * claim a free lead. */
  SL__LOCK(g);
  if (g->leader == 0)
    g->leader = s->id;
  leader = g->leader;
  SL__UNLOCK(g);
  return leader;
}

void sl_gate_resign(sl_stake_t* s) {
  sl_gate_t* g = s->gate;
  SL__LOCK(g);
  if (g->leader == s->id)
    g->leader = 0;
  SL__UNLOCK(g);
}

uint64_t sl_gate_epoch(sl_stake_t* s, int bump) {
  sl_gate_t* g = s->gate;
  uint64_t e;
  /* Under the gate lock, as `leader`: a plain counter shared by threads. */
  SL__LOCK(g);
  if (bump)
    g->epoch++;
  e = g->epoch;
  SL__UNLOCK(g);
  return e;
}

uint32_t sl_gate_stakes(sl_stake_t* s, uint64_t* ids, uint32_t max, uint64_t* next_id) {
  sl_gate_t* g = s->gate;
  sl_stake_t* t;
  uint32_t n = 0;
  SL__LOCK(g);
  /* Read under the lock: every stake in the list was opened (and its id
   * taken) before this point, so every later one gets a higher id. */
  *next_id = __atomic_load_n(&sl__stake_ids, __ATOMIC_RELAXED) + 1;
  if (!g->shared) {
    if (max > 0)
      ids[0] = s->id;
    n = 1;
  }
  for (t = g->stakes; t != NULL; t = t->snext, n++)
    if (n < max)
      ids[n] = t->id;
  SL__UNLOCK(g);
  return n;
}

void sl_gate_clear(sl_stake_t* s, sl_wlist_t* out) {
  sl_gate_t* g = s->gate;
  sl_ring_t ring = {.n = 0};
  uint32_t i;
  SL__LOCK(g);
  /* Highest priority first, FIFO within each: the order they would have
   * run. Unlinking the last waiter drops the level (levels above it move
   * down one); `next` is NULL then, so the loop ends and i-1 is still the
   * next level to visit. */
  for (i = s->waiting > 0 ? g->nlevels : 0; i-- > 0;) {
    sl_level_t* lv = &g->levels[i];
    sl_waiter_t* w = lv->head;
    while (w != NULL) {
      sl_waiter_t* next = w->next;
      if (w->stake == s) {
        sl__unlink(g, lv, w);
        w->state = SL_WAITER_NEW;
        sl_wlist_push(out, w);
      }
      w = next;
    }
  }
  sl__unlock_ring(g, &ring);
}

void sl_gate_counts(sl_stake_t* s, sl_gate_counts_t* out) {
  sl_gate_t* g = s->gate;
  SL__LOCK(g);
  out->permits = g->permits;
  out->in_use = sl__in_use(g);
  out->npending = g->npending;
  SL__UNLOCK(g);
}

const sl_gate_backend_t sl_gate_local = {
    sl_gate_try_take, sl_gate_acquire,     sl_gate_release, sl_gate_cancel, sl_gate_clear,
    sl_gate_dispatch, sl_gate_set_permits, sl_gate_counts,  sl_stake_held,  sl_stake_close,
};
