/* sluice: the pool core. See pool.h for the model, the states and the rules
 * about threads, callbacks and timers. */
#include "pool.h"

#include "alloc.h"

#include <string.h>

/* ------------------------------------------------------------- lists --- */

typedef sl_link_t* (*sl__link_fn)(sl_pool_t* p, int32_t i);

static sl_link_t* sl__slot_link(sl_pool_t* p, int32_t i) {
  return &p->slots[i].link;
}
static sl_link_t* sl__slot_aux(sl_pool_t* p, int32_t i) {
  return &p->slots[i].aux;
}
static sl_link_t* sl__slot_life(sl_pool_t* p, int32_t i) {
  return &p->slots[i].life;
}
static sl_link_t* sl__waiter_link(sl_pool_t* p, int32_t i) {
  return &p->waiters[i].link;
}
static sl_link_t* sl__waiter_tlink(sl_pool_t* p, int32_t i) {
  return &p->waiters[i].tlink;
}

static void sl__list_init(sl_list_t* l) {
  l->head = -1;
  l->tail = -1;
  l->len = 0;
}

static void sl__list_push_back(sl_pool_t* p, sl_list_t* l, sl__link_fn f, int32_t i) {
  sl_link_t* n = f(p, i);
  n->prev = l->tail;
  n->next = -1;
  if (l->tail >= 0)
    f(p, l->tail)->next = i;
  else
    l->head = i;
  l->tail = i;
  l->len++;
}

static void sl__list_push_front(sl_pool_t* p, sl_list_t* l, sl__link_fn f, int32_t i) {
  sl_link_t* n = f(p, i);
  n->prev = -1;
  n->next = l->head;
  if (l->head >= 0)
    f(p, l->head)->prev = i;
  else
    l->tail = i;
  l->head = i;
  l->len++;
}

static void sl__list_remove(sl_pool_t* p, sl_list_t* l, sl__link_fn f, int32_t i) {
  sl_link_t* n = f(p, i);
  if (n->prev >= 0)
    f(p, n->prev)->next = n->next;
  else
    l->head = n->next;
  if (n->next >= 0)
    f(p, n->next)->prev = n->prev;
  else
    l->tail = n->prev;
  n->prev = -1;
  n->next = -1;
  l->len--;
}

static int32_t sl__list_shift(sl_pool_t* p, sl_list_t* l, sl__link_fn f) {
  int32_t i = l->head;
  if (i >= 0)
    sl__list_remove(p, l, f, i);
  return i;
}

/* ------------------------------------------------------------- plumbing --- */

/* Milliseconds of loop time, brought up to date first. libuv caches the
 * time at the start of a loop iteration: after synchronous work (a busy
 * server) the cached value is old, and a deadline or a time stamp counted
 * from it is early by that much. uv_timer_start counts from the same cached
 * value, so every timer is armed right after this too. Node's own timers
 * refresh the clock the same way; it is one vDSO clock read. */
static double sl__now(sl_pool_t* p) {
  uv_update_time(p->loop);
  return (double) uv_now(p->loop);
}

/* Arms `t` to fire at `deadline` (loop time), never before it. */
static void sl__arm(sl_pool_t* p, uv_timer_t* t, uv_timer_cb cb, double deadline) {
  double d = deadline - sl__now(p);
  uint64_t ms;
  if (!(d > 0))
    d = 0;
  if (d > 4294967295.0)
    d = 4294967295.0;
  ms = (uint64_t) d;
  if ((double) ms < d)
    ms++; /* round up: never fire before the deadline (no libm for ceil) */
  uv_timer_start(t, cb, ms, 0);
}

/* Resources in the pool: idle, borrowed, being validated or created. */
static int64_t sl__size(const sl_pool_t* p) {
  return (int64_t) p->idle.len + p->nborrowed + p->nvalidating + p->ncreating;
}

static void sl__sync(sl_pool_t* p) {
  double* c = p->counts;
  int64_t size = sl__size(p);
  c[SL_POOL_SIZE] = (double) size;
  c[SL_POOL_AVAILABLE] = p->idle.len;
  c[SL_POOL_BORROWED] = p->nborrowed;
  c[SL_POOL_PENDING] = p->npending;
  c[SL_POOL_SPARE] = (double) (p->cfg.max - size);
  c[SL_POOL_CREATING] = p->ncreating;
  c[SL_POOL_VALIDATING] = p->nvalidating;
  c[SL_POOL_DESTROYING] = p->ndestroying;
  c[SL_POOL_EXPIRED] = p->nexpired;
  /* A create retry is what serves queued waiters while create fails: it
   * keeps the loop alive exactly while someone waits for it. */
  if (p->backoff_active && !p->closing) {
    if (p->npending > 0 || p->holds > 0)
      uv_ref((uv_handle_t*) &p->backoff_timer);
    else
      uv_unref((uv_handle_t*) &p->backoff_timer);
  }
}

static int sl__expired(const sl_pool_t* p, int32_t s, double now) {
  return p->cfg.max_lifetime > 0 && now - p->slots[s].created_at > p->cfg.max_lifetime;
}

/* The time sl__expired needs: read only if max_lifetime is on. */
static double sl__lifetime_now(sl_pool_t* p) {
  return p->cfg.max_lifetime > 0 ? sl__now(p) : 0;
}

/* Every callback goes through these, so timer callbacks know whether there
 * is anything to flush. */
static void sl__op_create(sl_pool_t* p, int32_t s) {
  p->produced = 1;
  p->ops->create(p, (uint32_t) s);
}
static void sl__op_destroy(sl_pool_t* p, int32_t s) {
  p->produced = 1;
  p->ops->destroy(p, (uint32_t) s);
}
static void sl__op_validate(sl_pool_t* p, int32_t s) {
  p->produced = 1;
  p->ops->validate(p, (uint32_t) s);
}
static void sl__op_resolve(sl_pool_t* p, uint32_t token, int32_t s) {
  p->produced = 1;
  p->ops->resolve(p, token, (uint32_t) s);
}
static void sl__op_reject(sl_pool_t* p, uint32_t token, int reason, int32_t s) {
  p->produced = 1;
  p->ops->reject(p, token, reason, (uint32_t) s);
}
static void sl__op_emit(sl_pool_t* p, int event, int32_t s) {
  p->produced = 1;
  p->ops->emit(p, event, (uint32_t) s);
}

static void sl__flush(sl_pool_t* p) {
  if (p->produced && p->ops->flush != NULL) {
    p->produced = 0;
    p->ops->flush(p);
  }
}

/* ------------------------------------------------------------- slots --- */

/* Doubles an index-addressed array (indices stay below INT32_MAX, so they
 * fit the int32 links). Returns the new array, or NULL with `items` and
 * `*cap` untouched. */
static void* sl__grow(void* items, uint32_t* cap, size_t size, uint32_t first) {
  uint32_t n = *cap ? *cap * 2 : first;
  void* m;
  if (n > INT32_MAX)
    return NULL;
  m = sl_realloc(items, (size_t) n * size);
  if (m != NULL)
    *cap = n;
  return m;
}

/* Makes sure sl__slot_new cannot fail: 0 or UV_ENOMEM (nothing changed). */
static int sl__slot_reserve(sl_pool_t* p) {
  sl_pool_slot_t* n;
  if (p->free_slot >= 0 || p->nslots < p->cap_slots)
    return 0;
  n = sl__grow(p->slots, &p->cap_slots, sizeof(*n), 16);
  if (n == NULL)
    return UV_ENOMEM;
  p->slots = n;
  return 0;
}

static int32_t sl__slot_new(sl_pool_t* p) {
  int32_t s;
  if (sl__slot_reserve(p) != 0)
    return -1;
  s = p->free_slot;
  if (s >= 0)
    p->free_slot = p->slots[s].link.next;
  else
    s = (int32_t) p->nslots++;
  memset(&p->slots[s], 0, sizeof(p->slots[s]));
  p->slots[s].link.prev = p->slots[s].link.next = -1;
  p->slots[s].aux.prev = p->slots[s].aux.next = -1;
  p->slots[s].life.prev = p->slots[s].life.next = -1;
  return s;
}

static void sl__slot_free(sl_pool_t* p, int32_t s) {
  p->slots[s].state = SL_SLOT_FREE;
  p->slots[s].link.next = p->free_slot;
  p->free_slot = s;
}

static void sl__aux_push(sl_pool_t* p, sl_list_t* l, uv_timer_t* t, uv_timer_cb cb, int32_t s,
                         double delay);
static void sl__idle_timeout_cb(uv_timer_t* t);

static void sl__idle_push(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  /* pg-pool arms a client's idle timer on release only while the pool,
   * that client included (it is not counted while it changes state), holds
   * more than min. */
  if (p->cfg.idle_timeout > 0 && sl__size(p) + 1 > p->cfg.min)
    sl__aux_push(p, &p->idles, &p->idle_timer, sl__idle_timeout_cb, s, p->cfg.idle_timeout);
  slot->state = SL_SLOT_IDLE;
  /* Read only by the evictor: the release path, the hottest, reads no
   * clock without one. */
  if (p->cfg.eviction_interval > 0)
    slot->idle_since = sl__now(p);
  /* From the pool's counter, not the slot's: slots are reused (and zeroed),
   * and generic-pool's cursor, once its node left the list, never matches
   * again. */
  slot->idle_seq = ++p->idle_seq;
  if (p->cfg.fifo)
    sl__list_push_back(p, &p->idle, sl__slot_link, s);
  else
    sl__list_push_front(p, &p->idle, sl__slot_link, s);
}

/* Puts `s` on a deadline list (leaks or destroys), arming `t` if it is the
 * only entry (entries come in deadline order: one delay per list). */
static void sl__aux_push(sl_pool_t* p, sl_list_t* l, uv_timer_t* t, uv_timer_cb cb, int32_t s,
                         double delay) {
  sl_pool_slot_t* slot = &p->slots[s];
  slot->deadline = sl__now(p) + delay;
  sl__list_push_back(p, l, sl__slot_aux, s);
  slot->on_aux = 1;
  if (l->len == 1)
    sl__arm(p, t, cb, slot->deadline);
}

static void sl__aux_remove(sl_pool_t* p, sl_list_t* l, int32_t s) {
  if (p->slots[s].on_aux) {
    sl__list_remove(p, l, sl__slot_aux, s);
    p->slots[s].on_aux = 0;
  }
}

/* The next idle slot to hand out, off its idle timer. */
static int32_t sl__idle_shift(sl_pool_t* p) {
  int32_t s = sl__list_shift(p, &p->idle, sl__slot_link);
  if (s >= 0)
    sl__aux_remove(p, &p->idles, s);
  return s;
}

static void sl__expire_cb(uv_timer_t* t);

/* Starts the lifetime of a created slot (expire): one delay for all, so
 * the list stays in deadline order. */
static void sl__life_push(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  if (!(p->cfg.expire > 0))
    return;
  slot->expires = sl__now(p) + p->cfg.expire;
  sl__list_push_back(p, &p->lives, sl__slot_life, s);
  slot->on_life = 1;
  if (p->lives.len == 1)
    sl__arm(p, &p->expire_timer, sl__expire_cb, slot->expires);
}

static void sl__life_remove(sl_pool_t* p, int32_t s) {
  if (p->slots[s].on_life) {
    sl__list_remove(p, &p->lives, sl__slot_life, s);
    p->slots[s].on_life = 0;
  }
}

static void sl__leak_cb(uv_timer_t* t);
static void sl__destroy_timeout_cb(uv_timer_t* t);
static void sl__backoff_cb(uv_timer_t* t);
static void sl__create_timeout_cb(uv_timer_t* t);

/* Creates wait for the backoff timer, whose delay doubles up to
 * backoff_max. A no-op if they wait already. */
static void sl__backoff_start(sl_pool_t* p) {
  double max = p->cfg.backoff_max > 0 ? p->cfg.backoff_max : 1000;
  if (p->backoff_active)
    return;
  p->backoff_active = 1;
  uv_update_time(p->loop); /* uv_timer_start counts from the cached time */
  uv_timer_start(&p->backoff_timer, sl__backoff_cb, (uint64_t) p->backoff, 0);
  p->backoff = p->backoff * 2 > max ? max : p->backoff * 2;
}

/* Puts CREATING slot `s` on the create-timeout list at `deadline`. The list
 * holds two kinds of deadline (a caller's queue deadline, a create's own
 * timeout), so it is kept sorted by insertion from the tail; it holds at
 * most one entry per create in flight (no more than max). */
static void sl__creates_insert(sl_pool_t* p, int32_t s, double deadline) {
  sl_list_t* l = &p->creates;
  sl_pool_slot_t* slot = &p->slots[s];
  int32_t prev = l->tail;
  slot->deadline = deadline;
  while (prev >= 0 && p->slots[prev].deadline > deadline)
    prev = p->slots[prev].aux.prev;
  if (prev < 0) {
    sl__list_push_front(p, l, sl__slot_aux, s);
    sl__arm(p, &p->create_timer, sl__create_timeout_cb, deadline);
  } else {
    sl_link_t* n = &slot->aux;
    n->prev = prev;
    n->next = p->slots[prev].aux.next;
    if (n->next >= 0)
      p->slots[n->next].aux.prev = s;
    else
      l->tail = s;
    p->slots[prev].aux.next = s;
    l->len++;
  }
  slot->on_aux = 1;
}

/* A create, for waiter `token` if `bound` (bind_creates). Out of memory
 * for its slot, it is retried from the backoff timer, as a failed create
 * is: the caller cannot undo what led to it. (A bound create's caller
 * reserves the slot first: it cannot fail.) `queue_deadline` (> 0) is the
 * bound caller's own deadline, from its wait in the queue. */
static int sl__create(sl_pool_t* p, int bound, uint32_t token, double queue_deadline) {
  int32_t s = sl__slot_new(p);
  if (s < 0) {
    sl__backoff_start(p);
    return UV_ENOMEM;
  }
  p->slots[s].state = SL_SLOT_CREATING;
  p->slots[s].bound = (uint8_t) bound;
  p->slots[s].token = token;
  p->ncreating++;
  if (p->cfg.create_timeout > 0 || queue_deadline > 0) {
    sl_pool_slot_t* slot = &p->slots[s];
    slot->create_end = p->cfg.create_timeout > 0 ? sl__now(p) + p->cfg.create_timeout : 0;
    if (queue_deadline > 0 && (slot->create_end == 0 || queue_deadline <= slot->create_end)) {
      slot->for_queue = 1;
      sl__creates_insert(p, s, queue_deadline);
    } else {
      sl__creates_insert(p, s, slot->create_end);
    }
  }
  sl__op_create(p, s);
  return 0;
}

/* Up to `n` creates, unless creates wait for the backoff timer. */
static void sl__create_n(sl_pool_t* p, int64_t n) {
  int64_t i;
  for (i = 0; i < n && !p->backoff_active; i++)
    if (sl__create(p, 0, 0, 0) != 0)
      break;
}

/* generic-pool's _ensureMinimum: min counts every resource, borrowed too. */
static void sl__ensure_minimum(sl_pool_t* p) {
  if (p->draining || p->cfg.no_fill)
    return;
  sl__create_n(p, p->cfg.min - sl__size(p));
}

/* generic-pool's _destroy: the slot leaves every count at once, its destroy
 * runs, and min is refilled. */
static void sl__destroy_slot(sl_pool_t* p, int32_t s) {
  switch (p->slots[s].state) {
    case SL_SLOT_IDLE:
      sl__list_remove(p, &p->idle, sl__slot_link, s);
      sl__aux_remove(p, &p->idles, s);
      break;
    case SL_SLOT_BORROWED:
      p->nborrowed--;
      sl__aux_remove(p, &p->leaks, s);
      break;
    case SL_SLOT_VALIDATING: p->nvalidating--; break;
    default: return;
  }
  sl__life_remove(p, s);
  if (p->slots[s].expired) {
    p->slots[s].expired = 0;
    p->nexpired--;
  }
  p->slots[s].state = SL_SLOT_DESTROYING;
  p->ndestroying++;
  if (p->cfg.destroy_timeout > 0)
    sl__aux_push(p, &p->destroys, &p->destroy_timer, sl__destroy_timeout_cb, s,
                 p->cfg.destroy_timeout);
  sl__op_destroy(p, s);
  sl__ensure_minimum(p);
}

static void sl__borrow(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  slot->state = SL_SLOT_BORROWED;
  slot->uses++;
  p->nborrowed++;
  if (p->cfg.leak_ms > 0)
    sl__aux_push(p, &p->leaks, &p->leak_timer, sl__leak_cb, s, p->cfg.leak_ms);
}

/* ----------------------------------------------------------- waiters --- */

static void sl__timeout_cb(uv_timer_t* t);

/* Makes sure sl__waiter_new cannot fail: 0 or UV_ENOMEM (nothing changed). */
static int sl__waiter_reserve(sl_pool_t* p) {
  sl_pool_waiter_t* n;
  if (p->free_waiter >= 0 || p->nwaiters < p->cap_waiters)
    return 0;
  n = sl__grow(p->waiters, &p->cap_waiters, sizeof(*n), 64);
  if (n == NULL)
    return UV_ENOMEM;
  p->waiters = n;
  return 0;
}

/* Call after sl__waiter_reserve. */
static int32_t sl__waiter_new(sl_pool_t* p) {
  int32_t w = p->free_waiter;
  if (w >= 0)
    p->free_waiter = p->waiters[w].link.next;
  else
    w = (int32_t) p->nwaiters++;
  memset(&p->waiters[w], 0, sizeof(p->waiters[w]));
  p->waiters[w].link.prev = p->waiters[w].link.next = -1;
  p->waiters[w].tlink.prev = p->waiters[w].tlink.next = -1;
  return w;
}

static void sl__waiter_free(sl_pool_t* p, int32_t w) {
  p->waiters[w].queued = 0;
  p->waiters[w].link.next = p->free_waiter;
  p->free_waiter = w;
}

/* Queues a new waiter (room reserved) at its level and, with an acquire
 * timeout, on the timeout list. */
static int32_t sl__enqueue(sl_pool_t* p, int32_t priority, uint32_t token) {
  int32_t w = sl__waiter_new(p);
  sl_pool_waiter_t* wt = &p->waiters[w];
  uint32_t range = p->cfg.priority_range;
  wt->token = token;
  wt->level = priority < 0 || (uint32_t) priority >= range ? range - 1 : (uint32_t) priority;
  wt->queued = 1;
  sl__list_push_back(p, &p->levels[wt->level], sl__waiter_link, w);
  if (wt->level < p->min_level)
    p->min_level = wt->level;
  p->npending++;
  if (p->cfg.acquire_timeout > 0) {
    wt->deadline = sl__now(p) + p->cfg.acquire_timeout;
    wt->timed = 1;
    sl__list_push_back(p, &p->timeouts, sl__waiter_tlink, w);
    if (p->timeouts.len == 1)
      sl__arm(p, &p->timeout_timer, sl__timeout_cb, wt->deadline);
  }
  return w;
}

/* Takes a queued waiter out of its level and the timeout list. */
static void sl__waiter_unqueue(sl_pool_t* p, int32_t w) {
  sl_pool_waiter_t* wt = &p->waiters[w];
  sl__list_remove(p, &p->levels[wt->level], sl__waiter_link, w);
  if (wt->timed) {
    sl__list_remove(p, &p->timeouts, sl__waiter_tlink, w);
    wt->timed = 0;
    /* The acquire-timeout timer is ref'd: it must not outlive the last
     * waiter it is for. (While others remain, it stays armed for an earlier
     * deadline and re-arms itself when it fires.) */
    if (p->timeouts.len == 0)
      uv_timer_stop(&p->timeout_timer);
  }
  wt->queued = 0;
  p->npending--;
}

/* The next waiter to serve: the lowest level, FIFO within it. */
static int32_t sl__dequeue(sl_pool_t* p) {
  uint32_t l;
  int32_t w;
  if (p->npending == 0)
    return -1;
  for (l = p->min_level; l < p->cfg.priority_range; l++) {
    if (p->levels[l].len > 0) {
      p->min_level = l;
      w = p->levels[l].head;
      sl__waiter_unqueue(p, w);
      return w;
    }
  }
  return -1;
}

/* Waiter `w` (already unqueued) borrows slot `s`. The waiter of the acquire
 * call in progress gets its slot as that call's result instead. */
static void sl__grant(sl_pool_t* p, int32_t w, int32_t s) {
  uint32_t token = p->waiters[w].token;
  sl__waiter_free(p, w);
  if (w == p->sync_waiter) {
    p->sync_slot = s;
    p->sync_waiter = -1;
    return;
  }
  sl__op_resolve(p, token, s);
}

/* generic-pool's _dispatchPooledResourceToNextWaitingClient. */
static void sl__dispatch(sl_pool_t* p, int32_t s) {
  int32_t w = sl__dequeue(p);
  if (w < 0) {
    sl__idle_push(p, s);
    return;
  }
  sl__borrow(p, s);
  sl__grant(p, w, s);
}

static int64_t sl__min(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/* Hands up to `n` idle resources to the next waiters, through validation
 * with testOnBorrow. An idle resource past max_lifetime is destroyed
 * instead: returns 1 then, and the caller computes its counts again. */
static int sl__dispense_idle(sl_pool_t* p, int64_t n, double now) {
  int64_t i;
  for (i = 0; i < n; i++) {
    int32_t s = sl__idle_shift(p);
    if (sl__expired(p, s, now)) {
      sl__list_push_front(p, &p->idle, sl__slot_link, s);
      sl__destroy_slot(p, s);
      return 1;
    }
    if (p->cfg.test_on_borrow) {
      p->slots[s].state = SL_SLOT_VALIDATING;
      p->nvalidating++;
      sl__op_validate(p, s);
    } else {
      sl__dispatch(p, s);
    }
  }
  return 0;
}

/* pg-pool's _pulseQueue (bind_creates): serves at most one queued waiter,
 * with the most recently idled resource or a create bound to it; while
 * draining, destroys the idle resources instead. */
static void sl__pulse(sl_pool_t* p) {
  int32_t w, s;
  uint32_t token;
  double deadline;
  if (p->draining) {
    /* Oldest first, in the order pg-pool ends them. */
    while (p->idle.len > 0)
      sl__destroy_slot(p, p->cfg.fifo ? p->idle.head : p->idle.tail);
    return;
  }
  if (p->npending == 0 || (p->idle.len == 0 && sl__size(p) >= p->cfg.max))
    return;
  if (p->idle.len == 0 && sl__slot_reserve(p) != 0) {
    sl__backoff_start(p); /* the waiter stays queued; the retry pulses */
    return;
  }
  w = sl__dequeue(p);
  token = p->waiters[w].token;
  /* Every waiter has a deadline when acquire_timeout is on. */
  deadline = p->cfg.acquire_timeout > 0 ? p->waiters[w].deadline : 0;
  sl__waiter_free(p, w);
  if (p->idle.len > 0) {
    s = sl__idle_shift(p);
    sl__borrow(p, s);
    sl__op_resolve(p, token, s);
  } else {
    sl__create(p, 1, token, deadline); /* reserved: cannot fail */
  }
}

/* generic-pool's _dispense: create for the shortfall (within max), then hand
 * idle resources to waiters. */
static void sl__dispense(sl_pool_t* p) {
  double now;
  int64_t waiting, busy, n;
  if (p->cfg.bind_creates) {
    sl__pulse(p);
    return;
  }
  now = sl__lifetime_now(p);
  do {
    waiting = p->npending;
    if (waiting < 1)
      return;
    busy = (int64_t) p->idle.len + p->nvalidating + p->ncreating;
    sl__create_n(p, sl__min(p->cfg.max - sl__size(p), waiting - busy));
    n = p->cfg.test_on_borrow ? waiting - p->nvalidating : waiting;
  } while (sl__dispense_idle(p, sl__min(p->idle.len, n), now));
}

static void sl__check_drained(sl_pool_t* p) {
  if (p->drain_waiting && p->npending == 0 && p->nborrowed == 0) {
    p->drain_waiting = 0;
    uv_timer_stop(&p->evict_timer);
  }
}

/* The end of every public call and timer callback that changed anything. */
static void sl__settle(sl_pool_t* p) {
  sl__check_drained(p);
  sl__sync(p);
}

/* ------------------------------------------------------------ timers --- */

static void sl__timeout_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  double now;
  int32_t w;
  if (p->closing)
    return;
  now = sl__now(p);
  while ((w = p->timeouts.head) >= 0 && p->waiters[w].deadline <= now) {
    uint32_t token = p->waiters[w].token;
    sl__waiter_unqueue(p, w);
    sl__waiter_free(p, w);
    sl__op_reject(p, token, SL_POOL_REASON_TIMEOUT, 0);
  }
  if (w >= 0)
    sl__arm(p, &p->timeout_timer, sl__timeout_cb, p->waiters[w].deadline);
  sl__settle(p);
  sl__flush(p);
}

/* The next idle slot the evictor examines, resuming where its last run
 * stopped; -1 at the end of the list. As generic-pool's iterator does, the
 * walk starts over from the head after an eviction, or when the slot
 * examined last left the idle list. */
static int32_t sl__evict_next(sl_pool_t* p) {
  sl_pool_slot_t* last;
  if (p->evict_last < 0)
    return p->idle.head;
  last = &p->slots[p->evict_last];
  if (last->state != SL_SLOT_IDLE || last->idle_seq != p->evict_seq)
    return -1;
  return last->link.next;
}

/* generic-pool's DefaultEvictor. */
static int sl__evictable(sl_pool_t* p, int32_t s, double now) {
  double idle_time = now - p->slots[s].idle_since;
  return (p->cfg.soft_idle > 0 && p->cfg.soft_idle < idle_time &&
          p->cfg.min < (int64_t) p->idle.len) ||
         p->cfg.idle < idle_time || sl__expired(p, s, now);
}

/* generic-pool's _evict: examines num_tests idle slots (fewer if fewer are
 * idle), starting over from the head at the end of the list. */
static void sl__evict(sl_pool_t* p) {
  int64_t tests = sl__min(p->cfg.num_tests, p->idle.len);
  int64_t run = 0;
  double now = sl__now(p);
  while (run < tests) {
    int32_t s = sl__evict_next(p);
    if (s < 0) {
      if (p->evict_last < 0)
        return; /* the list is empty */
      /* The end of the list, or the cursor was detached: start over. */
      p->evict_last = -1;
      if (p->idle.len < 1)
        return;
      continue;
    }
    p->evict_last = s;
    p->evict_seq = p->slots[s].idle_seq;
    run++;
    if (sl__evictable(p, s, now))
      sl__destroy_slot(p, s);
  }
}

static void sl__evict_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  if (p->closing)
    return;
  sl__evict(p);
  sl__sync(p);
  sl__flush(p);
}

static void sl__backoff_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  if (p->closing)
    return;
  p->backoff_active = 0;
  /* Flushed even if nothing else happens: the embedder may keep things
   * alive for as long as a retry is pending (see `flush` in pool.h). */
  p->produced = 1;
  sl__ensure_minimum(p);
  sl__dispense(p);
  sl__settle(p);
  sl__flush(p);
}

/* What a deadline timer does with a slot whose time has passed, once the
 * slot is off the timer's list. */
typedef void (*sl__due_fn)(sl_pool_t* p, int32_t s);

/* When slot `s` of deadline list `l` is due: the lives list is in expiry
 * order, the aux lists (leaks, destroys, creates, idles) in `deadline`
 * order. */
static double sl__due_at(const sl_pool_t* p, const sl_list_t* l, int32_t s) {
  return l == &p->lives ? p->slots[s].expires : p->slots[s].deadline;
}

/* The timer `t` (callback `cb`) of deadline list `l` fired: takes every
 * slot of `l` whose time has passed off `l` and hands it to `due` (which
 * may put it back at a later deadline), in order, and re-arms `t` for the
 * next. Then settles the pool (`settle`: `due` may have changed what a
 * drain waits for; else it is only synced) and flushes. */
static void sl__deadlines(sl_pool_t* p, sl_list_t* l, uv_timer_t* t, uv_timer_cb cb, sl__due_fn due,
                          int settle) {
  double now;
  int32_t s;
  if (p->closing)
    return;
  now = sl__now(p);
  while ((s = l->head) >= 0 && sl__due_at(p, l, s) <= now) {
    if (l == &p->lives)
      sl__life_remove(p, s);
    else
      sl__aux_remove(p, l, s);
    due(p, s);
  }
  if (s >= 0)
    sl__arm(p, t, cb, sl__due_at(p, l, s));
  if (settle)
    sl__settle(p);
  else
    sl__sync(p);
  sl__flush(p);
}

/* destroy_timeout and leak: each late slot is reported once (it has left
 * the list). A slot's aux list is its state's: destroys while DESTROYING,
 * leaks while BORROWED. */
static void sl__report_late(sl_pool_t* p, int32_t s) {
  sl__op_emit(
      p, p->slots[s].state == SL_SLOT_DESTROYING ? SL_POOL_EV_DESTROY_TIMEOUT : SL_POOL_EV_LEAK, s);
}

static void sl__destroy_timeout_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  sl__deadlines(p, &p->destroys, t, sl__destroy_timeout_cb, sl__report_late, 0);
}

static void sl__leak_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  sl__deadlines(p, &p->leaks, t, sl__leak_cb, sl__report_late, 0);
}

/* create_timeout: the caller of each late create is rejected now, and the
 * embedder told to abort it. The slot stays CREATING, and counted, until
 * the outcome is reported: the connection may exist, and counting it is
 * what keeps the pool within max. */
static void sl__create_timeout_due(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  if (slot->for_queue) {
    /* Its caller's wait is over; the create goes on, for the pool. */
    slot->for_queue = 0;
    if (slot->bound) {
      slot->bound = 0;
      slot->orphan = 1;
      sl__op_reject(p, slot->token, SL_POOL_REASON_TIMEOUT, s);
    }
    if (slot->create_end > 0)
      sl__creates_insert(p, s, slot->create_end);
    return;
  }
  slot->abandoned = 1;
  sl__op_emit(p, SL_POOL_EV_CREATE_TIMEOUT, s);
  if (slot->bound)
    sl__op_reject(p, slot->token, SL_POOL_REASON_CREATE_TIMEOUT, s);
}

static void sl__create_timeout_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  sl__deadlines(p, &p->creates, t, sl__create_timeout_cb, sl__create_timeout_due, 1);
}

/* idle_timeout: pg-pool's idle timer checks min again when it fires. */
static void sl__idle_timeout_due(sl_pool_t* p, int32_t s) {
  if (sl__size(p) > p->cfg.min)
    sl__destroy_slot(p, s);
}

static void sl__idle_timeout_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  sl__deadlines(p, &p->idles, t, sl__idle_timeout_cb, sl__idle_timeout_due, 1);
}

/* expire: an idle resource goes now, a borrowed one on release. */
static void sl__expire_due(sl_pool_t* p, int32_t s) {
  if (p->slots[s].state == SL_SLOT_IDLE) {
    sl__op_emit(p, SL_POOL_EV_EXPIRED, s);
    sl__destroy_slot(p, s);
  } else if (p->slots[s].state == SL_SLOT_BORROWED) {
    p->slots[s].expired = 1;
    p->nexpired++;
  }
}

static void sl__expire_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  sl__deadlines(p, &p->lives, t, sl__expire_cb, sl__expire_due, 1);
}

/* ------------------------------------------------------------ public --- */

#define SL_POOL_NTIMERS 8

static void sl__timers(sl_pool_t* p, uv_timer_t* timers[SL_POOL_NTIMERS]) {
  timers[0] = &p->timeout_timer;
  timers[1] = &p->evict_timer;
  timers[2] = &p->backoff_timer;
  timers[3] = &p->destroy_timer;
  timers[4] = &p->leak_timer;
  timers[5] = &p->create_timer;
  timers[6] = &p->idle_timer;
  timers[7] = &p->expire_timer;
}

static void sl__timers_open(sl_pool_t* p) {
  uv_timer_t* timers[SL_POOL_NTIMERS];
  int i;
  sl__timers(p, timers);
  for (i = 0; i < SL_POOL_NTIMERS; i++) {
    /* uv_timer_init cannot fail: it only fills in the handle. */
    uv_timer_init(p->loop, timers[i]);
    timers[i]->data = p;
    /* Only the acquire timeout keeps the loop alive, unless unref_timeouts
     * says otherwise (see pool.h). */
    if (i != 0 || p->cfg.unref_timeouts)
      uv_unref((uv_handle_t*) timers[i]);
  }
  p->open_timers = SL_POOL_NTIMERS;
}

int sl_pool_open(sl_pool_t* p, uv_loop_t* loop, const sl_pool_config_t* cfg,
                 const sl_pool_ops_t* ops, double* counts, void* data) {
  uint32_t i;
  if (cfg->priority_range < 1 || cfg->priority_range > SL_POOL_MAX_RANGE)
    return UV_EINVAL;
  memset(p, 0, sizeof(*p));
  p->levels = sl_malloc(cfg->priority_range * sizeof(*p->levels));
  if (p->levels == NULL)
    return UV_ENOMEM;
  for (i = 0; i < cfg->priority_range; i++)
    sl__list_init(&p->levels[i]);
  p->data = data;
  p->loop = loop;
  p->ops = ops;
  p->cfg = *cfg;
  p->counts = counts;
  p->free_slot = -1;
  p->free_waiter = -1;
  p->min_level = cfg->priority_range;
  sl__list_init(&p->timeouts);
  sl__list_init(&p->idle);
  sl__list_init(&p->leaks);
  sl__list_init(&p->destroys);
  sl__list_init(&p->creates);
  sl__list_init(&p->idles);
  sl__list_init(&p->lives);
  p->evict_last = -1;
  p->backoff = cfg->backoff_min > 0 ? cfg->backoff_min : 10;
  p->sync_waiter = -1;
  p->sync_slot = -1;
  sl__timers_open(p);
  sl__sync(p);
  return 0;
}

void sl_pool_start(sl_pool_t* p) {
  if (p->closing || p->draining || p->started)
    return;
  p->started = 1;
  if (p->cfg.eviction_interval > 0) {
    uint64_t ms = (uint64_t) p->cfg.eviction_interval;
    uv_update_time(p->loop); /* uv_timer_start counts from the cached time */
    uv_timer_start(&p->evict_timer, sl__evict_cb, ms, ms);
  }
  sl__ensure_minimum(p);
  sl__sync(p);
}

int sl_pool_started(const sl_pool_t* p) {
  return p->started;
}

int sl_pool_check(const sl_pool_t* p) {
  if (p->closing || p->draining)
    return UV_ECANCELED;
  if (p->cfg.max - sl__size(p) < 1 && p->idle.len < 1 &&
      (int64_t) p->npending >= p->cfg.max_waiting)
    return UV_EBUSY;
  return 0;
}

/* The common case of an acquire: nobody waits and a resource is idle. This
 * is exactly what queueing and dispensing would do, without the waiter.
 * Returns 1 if it applied. */
static int sl__acquire_idle(sl_pool_t* p, sl_pool_acquired_t* out) {
  int32_t s;
  if (p->npending != 0 || p->idle.len == 0 || p->cfg.test_on_borrow ||
      sl__expired(p, p->idle.head, sl__lifetime_now(p)))
    return 0;
  s = sl__idle_shift(p);
  sl__borrow(p, s);
  out->granted = 1;
  out->slot = (uint32_t) s;
  return 1;
}

/* pg-pool's connect: a create bound to the caller if nothing is idle and
 * there is room, else the queue (served by a later pulse). */
static int sl__acquire_bound(sl_pool_t* p, uint32_t token, sl_pool_acquired_t* out) {
  out->granted = 0;
  if (sl__size(p) >= p->cfg.max || p->idle.len > 0) {
    if (sl__waiter_reserve(p) != 0)
      return UV_ENOMEM;
    out->waiter = (uint32_t) sl__enqueue(p, 0, token);
  } else {
    if (sl__slot_reserve(p) != 0)
      return UV_ENOMEM;
    sl__create(p, 1, token, 0);
    out->waiter = UINT32_MAX; /* not queued: nothing to cancel */
  }
  sl__sync(p);
  return 0;
}

int sl_pool_acquire(sl_pool_t* p, int32_t priority, uint32_t token, sl_pool_acquired_t* out) {
  int32_t w;
  int r = sl_pool_check(p);
  if (r != 0)
    return r;
  if (p->cfg.bind_creates)
    return sl__acquire_bound(p, token, out);
  if (sl__acquire_idle(p, out)) {
    sl__sync(p);
    return 0;
  }
  /* Room for the waiter, and for the create it may start, before anything
   * changes: the only allocations an acquire makes on its own behalf. */
  if (sl__waiter_reserve(p) != 0)
    return UV_ENOMEM;
  if (p->cfg.max - sl__size(p) >= 1 && !p->backoff_active && sl__slot_reserve(p) != 0)
    return UV_ENOMEM;
  w = sl__enqueue(p, priority, token);
  p->sync_waiter = w;
  p->sync_slot = -1;
  sl__dispense(p);
  p->sync_waiter = -1;
  sl__sync(p);
  out->granted = p->sync_slot >= 0;
  if (out->granted)
    out->slot = (uint32_t) p->sync_slot;
  else
    out->waiter = (uint32_t) w;
  p->sync_slot = -1;
  return 0;
}

int sl_pool_cancel(sl_pool_t* p, uint32_t index, uint32_t token) {
  if (p->closing || index >= p->nwaiters || !p->waiters[index].queued ||
      p->waiters[index].token != token)
    return UV_ENOENT;
  sl__waiter_unqueue(p, (int32_t) index);
  sl__waiter_free(p, (int32_t) index);
  sl__settle(p);
  return 0;
}

static int sl__borrowed(const sl_pool_t* p, uint32_t slot) {
  return !p->closing && slot < p->nslots && p->slots[slot].state == SL_SLOT_BORROWED;
}

/* Destroys borrowed or idle slot `s`, and serves the queue from the room
 * it leaves. */
static void sl__discard(sl_pool_t* p, int32_t s) {
  sl__destroy_slot(p, s);
  /* bind_creates: room comes back when the destroy settles. */
  if (!p->cfg.bind_creates)
    sl__dispense(p);
}

int sl_pool_release(sl_pool_t* p, uint32_t slot) {
  int32_t s = (int32_t) slot;
  if (!sl__borrowed(p, slot))
    return UV_EINVAL;
  if ((p->cfg.max_uses > 0 && p->slots[s].uses >= (uint64_t) p->cfg.max_uses) ||
      p->slots[s].expired || sl__expired(p, s, sl__lifetime_now(p))) {
    sl__discard(p, s);
  } else {
    p->nborrowed--;
    sl__aux_remove(p, &p->leaks, s);
    sl__idle_push(p, s);
    sl__dispense(p);
  }
  sl__settle(p);
  return 0;
}

int sl_pool_destroy(sl_pool_t* p, uint32_t slot) {
  if (!sl__borrowed(p, slot))
    return UV_EINVAL;
  sl__discard(p, (int32_t) slot);
  sl__settle(p);
  return 0;
}

int sl_pool_remove(sl_pool_t* p, uint32_t slot) {
  if (p->closing || slot >= p->nslots)
    return UV_EINVAL;
  if (p->slots[slot].state == SL_SLOT_BORROWED)
    return sl_pool_destroy(p, slot);
  if (p->slots[slot].state != SL_SLOT_IDLE)
    return UV_EINVAL;
  sl__discard(p, (int32_t) slot);
  sl__settle(p);
  return 0;
}

static int sl__in_state(const sl_pool_t* p, uint32_t slot, int state) {
  return !p->closing && slot < p->nslots && p->slots[slot].state == state;
}

/* sl_pool_created with bind_creates: the resource goes to its caller; if
 * the caller gave up (create timeout), it is destroyed at once, never
 * handed out nor left idle; a create for min goes idle. */
static void sl__created_bound(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  sl__aux_remove(p, &p->creates, s);
  p->ncreating--;
  slot->uses = 0;
  slot->for_queue = slot->orphan = 0;
  if (slot->abandoned) {
    /* As if it were borrowed and destroyed in one go. */
    slot->state = SL_SLOT_BORROWED;
    p->nborrowed++;
    sl__destroy_slot(p, s);
    return;
  }
  sl__life_push(p, s);
  if (slot->bound) {
    slot->bound = 0;
    sl__borrow(p, s);
    sl__op_resolve(p, slot->token, s);
    return;
  }
  sl__idle_push(p, s);
  sl__pulse(p);
}

int sl_pool_created(sl_pool_t* p, uint32_t slot) {
  if (!sl__in_state(p, slot, SL_SLOT_CREATING))
    return UV_EINVAL;
  if (p->cfg.bind_creates) {
    sl__created_bound(p, (int32_t) slot);
    sl__settle(p);
    return 0;
  }
  p->ncreating--;
  p->slots[slot].created_at = sl__lifetime_now(p); /* read by sl__expired only */
  p->slots[slot].uses = 0;
  sl__idle_push(p, (int32_t) slot);
  /* Create works again: retry at once, from the shortest delay next time. */
  p->backoff = p->cfg.backoff_min > 0 ? p->cfg.backoff_min : 10;
  if (p->backoff_active) {
    p->backoff_active = 0;
    uv_timer_stop(&p->backoff_timer);
    sl__ensure_minimum(p);
  }
  sl__sync(p);
  return 0;
}

void sl_pool_dispense(sl_pool_t* p) {
  if (p->closing)
    return;
  sl__dispense(p);
  sl__settle(p);
}

/* sl_pool_create_failed with bind_creates: pg-pool rejects the caller and
 * never retries; a failed create for min is retried after the backoff. The
 * caller is rejected before the pulse, so the slot index the rejection
 * names is not reused by then. */
static void sl__create_failed_bound(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  int bound = slot->bound, abandoned = slot->abandoned, orphan = slot->orphan;
  uint32_t token = slot->token;
  sl__aux_remove(p, &p->creates, s);
  p->ncreating--;
  slot->bound = slot->abandoned = slot->for_queue = slot->orphan = 0;
  sl__slot_free(p, s);
  /* A create that fails once its time is up (the client's own timer, set
   * from the same option, may beat ours) is reported as the timeout. */
  if (bound && !abandoned)
    sl__op_reject(p, token,
                  p->cfg.create_timeout > 0 && sl__now(p) >= slot->create_end
                      ? SL_POOL_REASON_CREATE_TIMEOUT
                      : SL_POOL_REASON_CREATE_ERROR,
                  s);
  if (!bound && !orphan)
    sl__backoff_start(p); /* a create for min: retried */
  sl__pulse(p);
}

int sl_pool_create_failed(sl_pool_t* p, uint32_t slot) {
  int32_t w;
  if (!sl__in_state(p, slot, SL_SLOT_CREATING))
    return UV_EINVAL;
  if (p->cfg.bind_creates) {
    sl__create_failed_bound(p, (int32_t) slot);
    sl__settle(p);
    return 0;
  }
  p->ncreating--;
  sl__slot_free(p, (int32_t) slot);
  sl__op_emit(p, SL_POOL_EV_CREATE_ERROR, (int32_t) slot);
  if (p->cfg.propagate_create_error && (w = sl__dequeue(p)) >= 0) {
    uint32_t token = p->waiters[w].token;
    sl__waiter_free(p, w);
    sl__op_reject(p, token, SL_POOL_REASON_CREATE_ERROR, (int32_t) slot);
  }
  /* Never retry at once (generic-pool does, and a create that rejects
   * synchronously then loops in microtasks forever): creates wait for the
   * backoff timer. */
  sl__backoff_start(p);
  sl__dispense(p);
  sl__settle(p);
  return 0;
}

int sl_pool_destroyed(sl_pool_t* p, uint32_t slot) {
  if (slot >= p->nslots || p->slots[slot].state != SL_SLOT_DESTROYING)
    return UV_EINVAL;
  if (!p->closing)
    sl__aux_remove(p, &p->destroys, (int32_t) slot);
  p->ndestroying--;
  sl__slot_free(p, (int32_t) slot);
  if (!p->closing) {
    /* bind_creates: pg-pool pulses once the removed client has ended. */
    if (p->cfg.bind_creates)
      sl__pulse(p);
    sl__settle(p);
  }
  return 0;
}

int sl_pool_validated(sl_pool_t* p, uint32_t slot, int valid) {
  if (!sl__in_state(p, slot, SL_SLOT_VALIDATING))
    return UV_EINVAL;
  if (valid) {
    p->nvalidating--;
    sl__dispatch(p, (int32_t) slot);
  } else {
    sl__destroy_slot(p, (int32_t) slot);
    sl__dispense(p);
  }
  sl__settle(p);
  return 0;
}

void sl_pool_drain(sl_pool_t* p) {
  int32_t w;
  p->draining = 1;
  if (p->cfg.bind_creates && !p->closing) {
    /* pg-pool leaves them queued for ever (or until their timeout): nothing
     * will serve them any more, so they are told now. */
    while ((w = sl__dequeue(p)) >= 0) {
      uint32_t token = p->waiters[w].token;
      sl__waiter_free(p, w);
      sl__op_reject(p, token, SL_POOL_REASON_DRAINING, 0);
    }
    sl__pulse(p); /* destroys the idle resources */
    sl__sync(p);
  }
  if (p->npending == 0 && p->nborrowed == 0) {
    if (!p->closing)
      uv_timer_stop(&p->evict_timer);
    return;
  }
  p->drain_waiting = 1;
}

int sl_pool_tail_token(const sl_pool_t* p, uint32_t* token) {
  uint32_t i;
  for (i = p->cfg.priority_range; i-- > 0;) {
    if (p->levels[i].len > 0) {
      *token = p->waiters[p->levels[i].tail].token;
      return 0;
    }
  }
  return UV_ENOENT;
}

void sl_pool_clear_idle(sl_pool_t* p) {
  if (p->closing)
    return;
  while (p->idle.len > 0)
    sl__destroy_slot(p, p->idle.head);
  sl__sync(p);
}

void sl_pool_hold(sl_pool_t* p, int delta) {
  p->holds += delta;
  if (!p->closing)
    sl__sync(p);
}

int sl_pool_slot_state(const sl_pool_t* p, uint32_t slot) {
  if (slot >= p->nslots)
    return SL_SLOT_FREE;
  return p->slots[slot].state;
}

static void sl__close_cb(uv_handle_t* h) {
  sl_pool_t* p = h->data;
  if (--p->open_timers == 0 && p->ops->closed != NULL)
    p->ops->closed(p);
}

void sl_pool_close(sl_pool_t* p) {
  uv_timer_t* timers[SL_POOL_NTIMERS];
  uint32_t i;
  if (p->closing)
    return;
  p->closing = 1;
  /* Waiters are forgotten: whoever waits on them can no longer be settled
   * (the binding drops their promises at env teardown). */
  for (i = 0; i < p->cfg.priority_range; i++)
    sl__list_init(&p->levels[i]);
  sl__list_init(&p->timeouts);
  p->npending = 0;
  sl__timers(p, timers);
  for (i = 0; i < SL_POOL_NTIMERS; i++)
    uv_close((uv_handle_t*) timers[i], sl__close_cb);
}

void sl_pool_free(sl_pool_t* p) {
  sl_free(p->slots);
  sl_free(p->waiters);
  sl_free(p->levels);
  p->slots = NULL;
  p->waiters = NULL;
  p->levels = NULL;
}
