/* sluice: the pool core. See pool.h for the model, the states and the rules
 * about threads, callbacks and timers. */
#include "pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A priority level array costs 12 bytes per level, allocated up front; more
 * levels than this is refused at init rather than risking a huge allocation
 * (generic-pool allocates one queue object per level). */
#define SL_POOL_MAX_RANGE (1u << 20)

/* ------------------------------------------------------------- lists --- */

typedef sl_link_t* (*sl__link_fn)(sl_pool_t* p, int32_t i);

static sl_link_t* sl__slot_link(sl_pool_t* p, int32_t i) {
  return &p->slots[i].link;
}
static sl_link_t* sl__slot_aux(sl_pool_t* p, int32_t i) {
  return &p->slots[i].aux;
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

/* Milliseconds of loop time: the time the loop cached at the start of this
 * iteration, which is also what Node's setTimeout counts from. Reading the
 * clock instead costs ~80 ns per call on some VMs (and the release path
 * stamps every resource it puts back). Timers are armed for
 * `deadline - uv_now()`, so they never fire before their deadline. */
static double sl__now(const sl_pool_t* p) {
  return (double) uv_now(p->loop);
}

static void sl__arm(sl_pool_t* p, uv_timer_t* t, uv_timer_cb cb, double deadline) {
  double d = deadline - (double) uv_now(p->loop);
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

static void sl__sync(sl_pool_t* p) {
  double* c = p->counts;
  double size = (double) p->idle.len + p->nborrowed + p->nvalidating + p->ncreating;
  c[SL_POOL_SIZE] = size;
  c[SL_POOL_AVAILABLE] = p->idle.len;
  c[SL_POOL_BORROWED] = p->nborrowed;
  c[SL_POOL_PENDING] = p->npending;
  c[SL_POOL_SPARE] = p->cfg.max - size;
  c[SL_POOL_CREATING] = p->ncreating;
  c[SL_POOL_VALIDATING] = p->nvalidating;
  c[SL_POOL_DESTROYING] = p->ndestroying;
  /* A create retry is what serves queued waiters while create fails: it
   * keeps the loop alive exactly while someone waits for it. */
  if (p->backoff_active && !p->closing) {
    if (p->npending > 0 || p->holds > 0)
      uv_ref((uv_handle_t*) &p->backoff_timer);
    else
      uv_unref((uv_handle_t*) &p->backoff_timer);
  }
}

static double sl__size(const sl_pool_t* p) {
  return (double) p->idle.len + p->nborrowed + p->nvalidating + p->ncreating;
}

static int sl__expired(const sl_pool_t* p, int32_t s, double now) {
  return p->cfg.max_lifetime > 0 && now - p->slots[s].created_at > p->cfg.max_lifetime;
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
  m = realloc(items, (size_t) n * size);
  if (m != NULL)
    *cap = n;
  return m;
}


static int32_t sl__slot_new(sl_pool_t* p) {
  int32_t s = p->free_slot;
  if (s >= 0) {
    p->free_slot = p->slots[s].link.next;
  } else {
    if (p->nslots == p->cap_slots) {
      sl_pool_slot_t* n = sl__grow(p->slots, &p->cap_slots, sizeof(*n), 16);
      if (n == NULL)
        return -1;
      p->slots = n;
    }
    s = (int32_t) p->nslots++;
  }
  memset(&p->slots[s], 0, sizeof(p->slots[s]));
  p->slots[s].link.prev = p->slots[s].link.next = -1;
  p->slots[s].aux.prev = p->slots[s].aux.next = -1;
  return s;
}

static void sl__slot_free(sl_pool_t* p, int32_t s) {
  p->slots[s].state = SL_SLOT_FREE;
  p->slots[s].link.next = p->free_slot;
  p->free_slot = s;
}

static void sl__idle_push(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  slot->state = SL_SLOT_IDLE;
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

static void sl__aux_remove(sl_pool_t* p, sl_list_t* l, int32_t s) {
  if (p->slots[s].on_aux) {
    sl__list_remove(p, l, sl__slot_aux, s);
    p->slots[s].on_aux = 0;
  }
}

static void sl__leak_cb(uv_timer_t* t);
static void sl__destroy_timeout_cb(uv_timer_t* t);
static void sl__backoff_cb(uv_timer_t* t);

/* A create, unless creates wait for the backoff timer. */
static int sl__create(sl_pool_t* p) {
  int32_t s = sl__slot_new(p);
  if (s < 0)
    return UV_ENOMEM;
  p->slots[s].state = SL_SLOT_CREATING;
  p->ncreating++;
  sl__op_create(p, s);
  return 0;
}

/* generic-pool's _ensureMinimum: min counts every resource, borrowed too. */
static void sl__ensure_minimum(sl_pool_t* p) {
  double n, i;
  if (p->draining || p->backoff_active)
    return;
  n = p->cfg.min - sl__size(p);
  for (i = 0; i < n; i++)
    if (sl__create(p) != 0)
      break;
}

/* generic-pool's _destroy: the slot leaves every count at once, its destroy
 * runs, and min is refilled. */
static void sl__destroy_slot(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  switch (slot->state) {
    case SL_SLOT_IDLE:
      sl__list_remove(p, &p->idle, sl__slot_link, s);
      break;
    case SL_SLOT_BORROWED:
      p->nborrowed--;
      sl__aux_remove(p, &p->leaks, s);
      break;
    case SL_SLOT_VALIDATING:
      p->nvalidating--;
      break;
    default:
      return;
  }
  slot = &p->slots[s];
  slot->state = SL_SLOT_DESTROYING;
  p->ndestroying++;
  if (p->cfg.destroy_timeout > 0) {
    slot->deadline = sl__now(p) + p->cfg.destroy_timeout;
    sl__list_push_back(p, &p->destroys, sl__slot_aux, s);
    slot->on_aux = 1;
    if (p->destroys.len == 1)
      sl__arm(p, &p->destroy_timer, sl__destroy_timeout_cb, slot->deadline);
  }
  sl__op_destroy(p, s);
  sl__ensure_minimum(p);
}

static void sl__borrow(sl_pool_t* p, int32_t s) {
  sl_pool_slot_t* slot = &p->slots[s];
  slot->state = SL_SLOT_BORROWED;
  slot->uses++;
  p->nborrowed++;
  if (p->cfg.leak_ms > 0) {
    slot->deadline = sl__now(p) + p->cfg.leak_ms;
    sl__list_push_back(p, &p->leaks, sl__slot_aux, s);
    slot->on_aux = 1;
    if (p->leaks.len == 1)
      sl__arm(p, &p->leak_timer, sl__leak_cb, slot->deadline);
  }
}

/* ----------------------------------------------------------- waiters --- */

static void sl__timeout_cb(uv_timer_t* t);

static int32_t sl__waiter_new(sl_pool_t* p) {
  int32_t w = p->free_waiter;
  if (w >= 0) {
    p->free_waiter = p->waiters[w].link.next;
  } else {
    if (p->nwaiters == p->cap_waiters) {
      sl_pool_waiter_t* n = sl__grow(p->waiters, &p->cap_waiters, sizeof(*n), 64);
      if (n == NULL)
        return -1;
      p->waiters = n;
    }
    w = (int32_t) p->nwaiters++;
  }
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

/* generic-pool's _dispense: create for the shortfall (within max), then hand
 * idle resources to waiters, through validation with testOnBorrow. An idle
 * resource past max_lifetime is destroyed instead, and the counts are
 * computed again. */
static void sl__dispense(sl_pool_t* p) {
  for (;;) {
    double waiting = p->npending, n, i;
    double now = p->cfg.max_lifetime > 0 ? sl__now(p) : 0;
    int again = 0;
    if (waiting < 1)
      return;
    if (!p->backoff_active) {
      double shortfall = waiting - ((double) p->idle.len + p->nvalidating + p->ncreating);
      double spare = p->cfg.max - sl__size(p);
      n = spare < shortfall ? spare : shortfall;
      for (i = 0; i < n; i++)
        if (sl__create(p) != 0)
          break;
    }
    if (p->cfg.test_on_borrow) {
      double want = waiting - p->nvalidating;
      n = p->idle.len < want ? p->idle.len : want;
      for (i = 0; i < n; i++) {
        int32_t s = sl__list_shift(p, &p->idle, sl__slot_link);
        if (sl__expired(p, s, now)) {
          sl__list_push_front(p, &p->idle, sl__slot_link, s);
          sl__destroy_slot(p, s);
          again = 1;
          break;
        }
        p->slots[s].state = SL_SLOT_VALIDATING;
        p->nvalidating++;
        sl__op_validate(p, s);
      }
    } else {
      n = p->idle.len < waiting ? p->idle.len : waiting;
      for (i = 0; i < n; i++) {
        int32_t s = sl__list_shift(p, &p->idle, sl__slot_link);
        if (sl__expired(p, s, now)) {
          sl__list_push_front(p, &p->idle, sl__slot_link, s);
          sl__destroy_slot(p, s);
          again = 1;
          break;
        }
        sl__dispatch(p, s);
      }
    }
    if (!again)
      return;
  }
}

static void sl__check_drained(sl_pool_t* p) {
  if (p->drain_waiting && p->npending == 0 && p->nborrowed == 0) {
    p->drain_waiting = 0;
    uv_timer_stop(&p->evict_timer);
  }
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
  sl__check_drained(p);
  sl__sync(p);
  sl__flush(p);
}

/* generic-pool's _evict with DefaultEvictor, resuming where the last run
 * stopped. As generic-pool's iterator does, the walk starts over from the
 * head after an eviction, or when the slot examined last left the idle list. */
static void sl__evict(sl_pool_t* p) {
  double tests = p->cfg.num_tests < (double) p->idle.len ? p->cfg.num_tests : (double) p->idle.len;
  double run = 0, now = sl__now(p);
  while (run < tests) {
    int32_t s;
    sl_pool_slot_t* slot;
    double idle_time;
    int evict;
    if (p->evict_last < 0) {
      s = p->idle.head;
    } else {
      sl_pool_slot_t* last = &p->slots[p->evict_last];
      if (last->state != SL_SLOT_IDLE || last->idle_seq != p->evict_seq)
        s = -1;
      else
        s = last->link.next;
      if (s < 0) {
        /* The end of the list, or the cursor was detached: start over. */
        p->evict_last = -1;
        if (p->idle.len < 1)
          return;
        continue;
      }
    }
    if (s < 0)
      return;
    slot = &p->slots[s];
    p->evict_last = s;
    p->evict_seq = slot->idle_seq;
    run++;
    idle_time = now - slot->idle_since;
    evict = (p->cfg.soft_idle > 0 && p->cfg.soft_idle < idle_time && p->cfg.min < (double) p->idle.len) ||
            p->cfg.idle < idle_time || sl__expired(p, s, now);
    if (evict)
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
  sl__ensure_minimum(p);
  sl__dispense(p);
  sl__check_drained(p);
  sl__sync(p);
  sl__flush(p);
}

static void sl__destroy_timeout_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  double now;
  int32_t s;
  if (p->closing)
    return;
  now = sl__now(p);
  while ((s = p->destroys.head) >= 0 && p->slots[s].deadline <= now) {
    sl__aux_remove(p, &p->destroys, s);
    sl__op_emit(p, SL_POOL_EV_DESTROY_TIMEOUT, s);
  }
  if (s >= 0)
    sl__arm(p, &p->destroy_timer, sl__destroy_timeout_cb, p->slots[s].deadline);
  sl__sync(p);
  sl__flush(p);
}

static void sl__leak_cb(uv_timer_t* t) {
  sl_pool_t* p = t->data;
  double now;
  int32_t s;
  if (p->closing)
    return;
  now = sl__now(p);
  /* Each borrow is reported once: the slot leaves the list. */
  while ((s = p->leaks.head) >= 0 && p->slots[s].deadline <= now) {
    sl__aux_remove(p, &p->leaks, s);
    sl__op_emit(p, SL_POOL_EV_LEAK, s);
  }
  if (s >= 0)
    sl__arm(p, &p->leak_timer, sl__leak_cb, p->slots[s].deadline);
  sl__sync(p);
  sl__flush(p);
}

/* ------------------------------------------------------------ public --- */

int sl_pool_open(sl_pool_t* p, uv_loop_t* loop, const sl_pool_config_t* cfg,
                 const sl_pool_ops_t* ops, double* counts, void* data) {
  uint32_t i;
  uv_timer_t* timers[5];

  if (cfg->priority_range < 1 || cfg->priority_range > SL_POOL_MAX_RANGE)
    return UV_EINVAL;
  memset(p, 0, sizeof(*p));
  p->levels = malloc(cfg->priority_range * sizeof(*p->levels));
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
  p->evict_last = -1;
  p->backoff = cfg->backoff_min > 0 ? cfg->backoff_min : 10;
  p->sync_waiter = -1;
  p->sync_slot = -1;

  timers[0] = &p->timeout_timer;
  timers[1] = &p->evict_timer;
  timers[2] = &p->backoff_timer;
  timers[3] = &p->destroy_timer;
  timers[4] = &p->leak_timer;
  for (i = 0; i < 5; i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = p;
    /* Only the acquire timeout keeps the loop alive (see pool.h). */
    if (i != 0)
      uv_unref((uv_handle_t*) timers[i]);
  }
  p->open_timers = 5;
  sl__sync(p);
  return 0;
}

void sl_pool_start(sl_pool_t* p) {
  if (p->closing || p->draining || p->started)
    return;
  p->started = 1;
  if (p->cfg.eviction_interval > 0) {
    uint64_t ms = (uint64_t) p->cfg.eviction_interval;
    uv_timer_start(&p->evict_timer, sl__evict_cb, ms, ms);
  }
  sl__ensure_minimum(p);
  sl__sync(p);
}

int sl_pool_started(const sl_pool_t* p) {
  return p->started;
}

int sl_pool_acquire(sl_pool_t* p, int32_t priority, uint32_t token, uint32_t* slot,
                    uint32_t* waiter) {
  int32_t w, s;
  uint32_t level;
  sl_pool_waiter_t* wt;

  if (p->closing || p->draining)
    return SL_POOL_EDRAINING;
  if (p->cfg.max - sl__size(p) < 1 && p->idle.len < 1 && !isnan(p->cfg.max_waiting) &&
      (double) p->npending >= p->cfg.max_waiting)
    return SL_POOL_EFULL;

  /* The common case: nobody waits and a resource is idle. This is exactly
   * what queueing and dispensing would do, without the waiter. */
  if (p->npending == 0 && p->idle.len > 0 && !p->cfg.test_on_borrow &&
      !sl__expired(p, p->idle.head, p->cfg.max_lifetime > 0 ? sl__now(p) : 0)) {
    s = sl__list_shift(p, &p->idle, sl__slot_link);
    sl__borrow(p, s);
    *slot = (uint32_t) s;
    sl__sync(p);
    return SL_POOL_GRANTED;
  }

  w = sl__waiter_new(p);
  if (w < 0)
    return UV_ENOMEM;
  level = priority < 0 || (uint32_t) priority >= p->cfg.priority_range
              ? p->cfg.priority_range - 1
              : (uint32_t) priority;
  wt = &p->waiters[w];
  wt->token = token;
  wt->level = level;
  wt->queued = 1;
  sl__list_push_back(p, &p->levels[level], sl__waiter_link, w);
  if (level < p->min_level)
    p->min_level = level;
  p->npending++;
  if (p->cfg.acquire_timeout > 0) {
    wt->deadline = sl__now(p) + p->cfg.acquire_timeout;
    wt->timed = 1;
    sl__list_push_back(p, &p->timeouts, sl__waiter_tlink, w);
    if (p->timeouts.len == 1)
      sl__arm(p, &p->timeout_timer, sl__timeout_cb, wt->deadline);
  }

  p->sync_waiter = w;
  p->sync_slot = -1;
  sl__dispense(p);
  p->sync_waiter = -1;
  sl__sync(p);
  if (p->sync_slot >= 0) {
    *slot = (uint32_t) p->sync_slot;
    p->sync_slot = -1;
    return SL_POOL_GRANTED;
  }
  *waiter = (uint32_t) w;
  return SL_POOL_QUEUED;
}

int sl_pool_cancel(sl_pool_t* p, uint32_t index, uint32_t token) {
  if (p->closing || index >= p->nwaiters || !p->waiters[index].queued ||
      p->waiters[index].token != token)
    return UV_ENOENT;
  sl__waiter_unqueue(p, (int32_t) index);
  sl__waiter_free(p, (int32_t) index);
  sl__check_drained(p);
  sl__sync(p);
  return 0;
}

int sl_pool_release(sl_pool_t* p, uint32_t slot) {
  sl_pool_slot_t* sl;
  if (p->closing || slot >= p->nslots || p->slots[slot].state != SL_SLOT_BORROWED)
    return UV_EINVAL;
  sl = &p->slots[slot];
  if ((p->cfg.max_uses > 0 && sl->uses >= p->cfg.max_uses) ||
      sl__expired(p, (int32_t) slot, p->cfg.max_lifetime > 0 ? sl__now(p) : 0)) {
    sl__destroy_slot(p, (int32_t) slot);
  } else {
    p->nborrowed--;
    sl__aux_remove(p, &p->leaks, (int32_t) slot);
    sl__idle_push(p, (int32_t) slot);
  }
  sl__dispense(p);
  sl__check_drained(p);
  sl__sync(p);
  return 0;
}

int sl_pool_destroy(sl_pool_t* p, uint32_t slot) {
  if (p->closing || slot >= p->nslots || p->slots[slot].state != SL_SLOT_BORROWED)
    return UV_EINVAL;
  sl__destroy_slot(p, (int32_t) slot);
  sl__dispense(p);
  sl__check_drained(p);
  sl__sync(p);
  return 0;
}

int sl_pool_created(sl_pool_t* p, uint32_t slot) {
  if (p->closing || slot >= p->nslots || p->slots[slot].state != SL_SLOT_CREATING)
    return UV_EINVAL;
  p->ncreating--;
  p->slots[slot].created_at = sl__now(p);
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
  sl__check_drained(p);
  sl__sync(p);
}

int sl_pool_create_failed(sl_pool_t* p, uint32_t slot) {
  int32_t w;
  if (p->closing || slot >= p->nslots || p->slots[slot].state != SL_SLOT_CREATING)
    return UV_EINVAL;
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
   * backoff timer, whose delay doubles up to backoff_max. */
  if (!p->backoff_active) {
    double max = p->cfg.backoff_max > 0 ? p->cfg.backoff_max : 1000;
    p->backoff_active = 1;
    uv_timer_start(&p->backoff_timer, sl__backoff_cb, (uint64_t) p->backoff, 0);
    p->backoff = p->backoff * 2 > max ? max : p->backoff * 2;
  }
  sl__dispense(p);
  sl__check_drained(p);
  sl__sync(p);
  return 0;
}

int sl_pool_destroyed(sl_pool_t* p, uint32_t slot) {
  if (slot >= p->nslots || p->slots[slot].state != SL_SLOT_DESTROYING)
    return UV_EINVAL;
  if (!p->closing)
    sl__aux_remove(p, &p->destroys, (int32_t) slot);
  p->ndestroying--;
  sl__slot_free(p, (int32_t) slot);
  if (!p->closing)
    sl__sync(p);
  return 0;
}

int sl_pool_validated(sl_pool_t* p, uint32_t slot, int valid) {
  if (p->closing || slot >= p->nslots || p->slots[slot].state != SL_SLOT_VALIDATING)
    return UV_EINVAL;
  p->nvalidating--;
  if (valid) {
    sl__dispatch(p, (int32_t) slot);
  } else {
    /* Back to VALIDATING for the bookkeeping of sl__destroy_slot. */
    p->nvalidating++;
    sl__destroy_slot(p, (int32_t) slot);
    sl__dispense(p);
  }
  sl__check_drained(p);
  sl__sync(p);
  return 0;
}

int sl_pool_drain(sl_pool_t* p) {
  p->draining = 1;
  if (p->npending == 0 && p->nborrowed == 0) {
    if (!p->closing)
      uv_timer_stop(&p->evict_timer);
    return 1;
  }
  p->drain_waiting = 1;
  return 0;
}

int64_t sl_pool_tail_token(const sl_pool_t* p) {
  uint32_t i;
  for (i = p->cfg.priority_range; i-- > 0;)
    if (p->levels[i].len > 0)
      return p->waiters[p->levels[i].tail].token;
  return -1;
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
  uv_close((uv_handle_t*) &p->timeout_timer, sl__close_cb);
  uv_close((uv_handle_t*) &p->evict_timer, sl__close_cb);
  uv_close((uv_handle_t*) &p->backoff_timer, sl__close_cb);
  uv_close((uv_handle_t*) &p->destroy_timer, sl__close_cb);
  uv_close((uv_handle_t*) &p->leak_timer, sl__close_cb);
}

void sl_pool_free(sl_pool_t* p) {
  free(p->slots);
  free(p->waiters);
  free(p->levels);
  p->slots = NULL;
  p->waiters = NULL;
  p->levels = NULL;
}
