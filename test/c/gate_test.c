// sources: src/core/gate.c src/core/alloc.c
// tsan: --threads-only
/* The gate core on its own: counts, ordering, head-of-line blocking,
 * set_permits and refusals, cancel/clear, stakes, the waiter slab (memory
 * given back, tokens), many priority levels, keeping threads alive,
 * allocation failures, a randomized run against a reference model, and a
 * shared gate used by two and by four threads.
 *
 * Plain C, no framework: CHECK prints file:line and exits 1. Built by
 * scripts/test.js with AddressSanitizer and UBSan, and also run under
 * valgrind --leak-check=full when built without sanitizers.
 * `--threads-only` runs only the threaded tests: scripts/sanitize.js builds
 * this file with ThreadSanitizer and runs it so (the `tsan:` line above). */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "core/alloc.h"
#include "core/gate.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A gate's in_use: shared gates keep it in the fast-path word (gate.h). */
static int64_t in_use_of(const sl_gate_t* g) {
  return g->shared ? (int64_t) (__atomic_load_n(&g->fast, __ATOMIC_RELAXED) >> 1) : g->in_use;
}

/* ------------------------------------------------------------ helpers --- */

/* A waiter tagged with `id` (kept in the binding's `value` field). */
static sl_waiter_t* mk(sl_ctx_t* ctx, int id) {
  sl_waiter_t* w = sl_ctx_waiter_new(ctx);
  CHECK(w != NULL);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  CHECK(w->stake == NULL && w->next == NULL && w->prev == NULL);
  CHECK(w->data == NULL && w->timer == NULL);
  w->value = id;
  return w;
}

static int id_of(const sl_waiter_t* w) {
  return (int) w->value;
}

static int list_len(const sl_wlist_t* l) {
  int n = 0;
  const sl_waiter_t* w;
  for (w = l->head; w != NULL; w = w->next)
    n++;
  return n;
}

/* Queues a new waiter of `s` that must not be granted now. */
static sl_waiter_t* queue(sl_stake_t* s, int id, uint32_t n, int32_t prio) {
  sl_wlist_t out;
  int queued = -1;
  sl_waiter_t* w = mk(s->ctx, id);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_acquire(s, w, n, prio, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  CHECK_EQ(w->state, SL_WAITER_QUEUED);
  CHECK(w->stake == s);
  CHECK_EQ(w->n, n);
  CHECK_EQ(w->priority, prio);
  CHECK(out.head == NULL);
  return w;
}

/* An acquire that must take its permits at once (the waiter is not used). */
static void take_now(sl_stake_t* s, uint32_t n) {
  sl_wlist_t out;
  int queued = -1;
  sl_waiter_t* w = mk(s->ctx, -1);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_acquire(s, w, n, 0, &queued, &out), 0);
  CHECK_EQ(queued, 0);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  CHECK(w->stake == NULL);
  CHECK(out.head == NULL);
  sl_ctx_waiter_free(s->ctx, w);
}

static int64_t avail(sl_stake_t* s) {
  sl_gate_counts_t c;
  sl_gate_counts(s, &c);
  return c.permits == SL_INFINITE ? SL_INFINITE : c.permits - c.in_use;
}

/* Pops the list checking the ids (and the state) in order; frees them. */
static void expect_ids(sl_wlist_t* l, int state, const int* ids, int n, int line) {
  int i;
  sl_waiter_t* w;
  for (i = 0; i < n; i++) {
    w = sl_wlist_shift(l);
    if (w == NULL || id_of(w) != ids[i]) {
      fprintf(stderr, "%s:%d: expected id %d at position %d, got %d\n", __FILE__, line, ids[i], i,
              w == NULL ? -1 : id_of(w));
      exit(1);
    }
    if (w->state != state) {
      fprintf(stderr, "%s:%d: id %d: state %d, expected %d\n", __FILE__, line, ids[i], w->state,
              state);
      exit(1);
    }
    CHECK(w->stake != NULL);
    sl_ctx_waiter_free(w->stake->ctx, w);
  }
  if (l->head != NULL) {
    fprintf(stderr, "%s:%d: %d more waiters than expected (next id %d)\n", __FILE__, line,
            list_len(l), id_of(l->head));
    exit(1);
  }
  CHECK(l->tail == NULL);
}

#define EXPECT_STATE_IDS(list, state, ...)                                                         \
  do {                                                                                             \
    static const int ids_[] = {__VA_ARGS__};                                                       \
    expect_ids((list), (state), ids_, (int) (sizeof(ids_) / sizeof(ids_[0])), __LINE__);           \
  } while (0)
/* Granted, in order. */
#define EXPECT_IDS(list, ...) EXPECT_STATE_IDS(list, SL_WAITER_GRANTED, __VA_ARGS__)
/* Taken out by clear, in order. */
#define EXPECT_CLEARED(list, ...) EXPECT_STATE_IDS(list, SL_WAITER_NEW, __VA_ARGS__)
/* Refused by set_permits, in order. */
#define EXPECT_REFUSED(list, ...) EXPECT_STATE_IDS(list, SL_WAITER_REFUSED, __VA_ARGS__)
#define EXPECT_NONE(list)                                                                          \
  do {                                                                                             \
    expect_ids((list), 0, NULL, 0, __LINE__);                                                      \
  } while (0)

/* Every structural invariant of the queue; for a shared gate, the books of
 * its stakes too. */
static void check_books(const sl_gate_t* g, sl_stake_t* const* stakes, int k);

static void check_structure(const sl_gate_t* g) {
  uint32_t i;
  int64_t count = 0;
  CHECK(g->nlevels <= g->cap_levels);
  for (i = 0; i < g->nlevels; i++) {
    const sl_level_t* lv = &g->levels[i];
    const sl_waiter_t* w;
    const sl_waiter_t* prev = NULL;
    if (i > 0)
      CHECK(g->levels[i - 1].priority < lv->priority);
    CHECK(lv->head != NULL);
    CHECK(lv->head->prev == NULL);
    for (w = lv->head; w != NULL; w = w->next) {
      CHECK(w->prev == prev);
      CHECK_EQ(w->state, SL_WAITER_QUEUED);
      CHECK(w->stake != NULL && w->stake->gate == g);
      CHECK_EQ(w->priority, lv->priority);
      prev = w;
      count++;
    }
    CHECK(lv->tail == prev);
  }
  CHECK_EQ(count, g->npending);
  if (g->shared) {
    /* One party per ctx; each one's books are the sum of its stakes'. */
    const sl_party_t* p;
    const sl_party_t* q;
    int64_t held = 0;
    uint32_t nkeep = 0;
    for (p = g->parties; p != NULL; p = p->next) {
      int64_t mine = 0;
      const sl_waiter_t* w;
      for (q = p->next; q != NULL; q = q->next)
        CHECK(q->ctx != p->ctx);
      for (i = 0; i < g->nlevels; i++)
        for (w = g->levels[i].head; w != NULL; w = w->next)
          mine += w->stake->party == p;
      CHECK_EQ(p->waiting, mine);
      CHECK(p->held >= 0);
      CHECK(p->nstakes > 0);
      held += p->held;
      nkeep += p->keep != 0;
    }
    CHECK_EQ(held, in_use_of(g));
    CHECK_EQ(nkeep, g->nkeep);
  }
}

/* The stakes are all the gate's: their held permits add up to in_use and
 * each one's `waiting` is the number of its waiters in the queue. */
static void check_books(const sl_gate_t* g, sl_stake_t* const* stakes, int k) {
  int64_t held = 0, waiting = 0;
  int j;
  for (j = 0; j < k; j++) {
    int64_t mine = 0;
    uint32_t i;
    const sl_waiter_t* w;
    for (i = 0; i < g->nlevels; i++)
      for (w = g->levels[i].head; w != NULL; w = w->next)
        mine += w->stake == stakes[j];
    CHECK_EQ(stakes[j]->waiting, mine);
    CHECK(stakes[j]->held >= 0);
    held += stakes[j]->held;
    waiting += mine;
  }
  CHECK_EQ(held, in_use_of(g));
  CHECK_EQ(waiting, g->npending);
  if (g->shared)
    CHECK_EQ((g->fast & 1) != 0, g->npending > 0); /* outside the lock: slow iff queued */
}

/* Every doorbell the gate rings comes through here (this definition takes
 * precedence over libuv's), then goes on to libuv's. libuv is not
 * instrumented, so a ring of a closed or freed handle would go unseen by
 * the sanitizers: this reads the handle in instrumented code first, and a
 * handle whose owner marked it closed (data = bell_closed) fails the test.
 * `ring_delay_ms` widens the window between a ring planned under the lock
 * and the ring made after it, for the rings of the thread that sets it. */
static int (*real_async_send)(uv_async_t*);
static __thread unsigned ring_delay_ms;
static char bell_closed[] = "closed";

int uv_async_send(uv_async_t* async) {
  CHECK(real_async_send != NULL);
  if (ring_delay_ms > 0)
    uv_sleep(ring_delay_ms);
  if (async->data == bell_closed) {
    fprintf(stderr, "a doorbell was rung after its ctx was closed\n");
    exit(1);
  }
  return real_async_send(async);
}

/* xorshift64*, fixed seed: the same run every time. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t) ((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* ------------------------------------------------------------- basics --- */

static void test_counts(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s, s2;
  sl_stake_t* all[2] = {&s, &s2};
  sl_gate_counts_t c;
  sl_wlist_t out;
  sl_waiter_t* w;
  int queued;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 3, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_stake_open(&s2, &g, &ctx);
  CHECK(s.gate == &g && s.ctx == &ctx);
  sl_wlist_init(&out);
  sl_gate_counts(&s, &c);
  CHECK_EQ(c.permits, 3);
  CHECK_EQ(c.in_use, 0);
  CHECK_EQ(c.npending, 0);
  CHECK_EQ(avail(&s), 3);

  CHECK_EQ(sl_gate_try_take(&s, 1), 0);
  CHECK_EQ(in_use_of(&g), 1);
  CHECK_EQ(sl_stake_held(&s), 1);
  CHECK_EQ(sl_gate_try_take(&s, 3), UV_EBUSY);
  CHECK_EQ(in_use_of(&g), 1);
  CHECK_EQ(sl_gate_try_take(&s2, 2), 0);
  CHECK_EQ(in_use_of(&g), 3);
  CHECK_EQ(sl_stake_held(&s2), 2);
  CHECK_EQ(avail(&s), 0);
  CHECK_EQ(sl_gate_try_take(&s, 1), UV_EBUSY);
  check_books(&g, all, 2);

  /* A stake returns only what it holds; anything else changes nothing. */
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), UV_ERANGE);
  CHECK_EQ(sl_gate_release(&s, -1, 0, &out), UV_ERANGE);
  CHECK_EQ(in_use_of(&g), 3);
  CHECK_EQ(sl_stake_held(&s), 1);
  CHECK_EQ(sl_gate_release(&s2, 2, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 1);
  CHECK_EQ(sl_stake_held(&s2), 0);
  CHECK_EQ(sl_gate_release(&s2, 1, 0, &out), UV_ERANGE); /* s holds it, not s2 */
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), UV_ERANGE);
  CHECK_EQ(sl_gate_release(&s, 0, 0, &out), 0); /* nothing, allowed */
  CHECK_EQ(in_use_of(&g), 0);
  EXPECT_NONE(&out);

  /* acquire: taken at once when it fits and no one waits (w stays NEW). */
  w = mk(&ctx, 1);
  CHECK_EQ(sl_gate_acquire(&s, w, 2, 0, &queued, &out), 0);
  CHECK_EQ(queued, 0);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  CHECK_EQ(in_use_of(&g), 2);
  CHECK_EQ(sl_stake_held(&s), 2);
  CHECK_EQ(g.npending, 0);
  EXPECT_NONE(&out);
  sl_ctx_waiter_free(&ctx, w);

  /* Otherwise queued, and granted by a release of another stake: the
   * permits are booked on the waiter's stake. */
  w = queue(&s2, 2, 2, 0);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(s2.waiting, 1);
  CHECK_EQ(sl_gate_try_take(&s2, 1), UV_EBUSY); /* someone is queued */
  sl_gate_counts(&s2, &c);
  CHECK_EQ(c.npending, 1);
  CHECK_EQ(c.in_use, 2);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 3); /* 1 released, 2 granted */
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(s2.waiting, 0);
  CHECK(out.head == w);
  CHECK_EQ(sl_stake_held(&s), 1);
  CHECK_EQ(sl_stake_held(&s2), 2);
  check_books(&g, all, 2);
  EXPECT_IDS(&out, 2);
  CHECK_EQ(sl_gate_release(&s2, 2, 0, &out), 0);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 0);

  /* Exactly the capacity fits; a request of 0 always does. */
  take_now(&s, 3);
  take_now(&s, 0);
  CHECK_EQ(sl_gate_try_take(&s2, 0), 0);
  CHECK_EQ(sl_gate_release(&s, 3, 0, &out), 0);
  EXPECT_NONE(&out);

  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_stake_close(&s2);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_fifo_and_priority(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  int i;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 1, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s, 1), 0);

  /* FIFO within one priority. */
  for (i = 0; i < 5; i++)
    queue(&s, i, 1, 0);
  CHECK_EQ(g.npending, 5);
  for (i = 0; i < 5; i++) {
    CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
    CHECK_EQ(list_len(&out), 1);
    CHECK_EQ(id_of(out.head), i);
    expect_ids(&out, SL_WAITER_GRANTED, &i, 1, __LINE__);
    CHECK_EQ(in_use_of(&g), 1);
  }
  CHECK_EQ(g.npending, 0);

  /* Higher priority first, FIFO within each. */
  queue(&s, 0, 1, 0);
  queue(&s, 1, 1, 5);
  queue(&s, 2, 1, -3);
  queue(&s, 3, 1, 5);
  queue(&s, 4, 1, 0);
  queue(&s, 5, 1, 10);
  queue(&s, 6, 1, INT32_MIN);
  queue(&s, 7, 1, INT32_MAX);
  CHECK_EQ(g.nlevels, 6);
  check_structure(&g);
  {
    static const int order[] = {7, 5, 1, 3, 0, 4, 2, 6};
    for (i = 0; i < 8; i++) {
      CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
      expect_ids(&out, SL_WAITER_GRANTED, &order[i], 1, __LINE__);
      check_structure(&g);
    }
  }
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.npending, 0);

  /* With room for all, one release grants them all in order. */
  sl_gate_set_permits(&s, 10, &out);
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_try_take(&s, 9), 0); /* in_use 10 */
  queue(&s, 0, 1, 0);
  queue(&s, 1, 1, 1);
  queue(&s, 2, 1, 0);
  CHECK_EQ(sl_gate_release(&s, 5, 0, &out), 0);
  EXPECT_IDS(&out, 1, 0, 2);
  CHECK_EQ(in_use_of(&g), 8);
  CHECK_EQ(sl_gate_release(&s, 8, 0, &out), 0);

  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_head_of_line(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  sl_waiter_t* w;
  int queued;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 4, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s, 3), 0); /* 1 free */

  queue(&s, 1, 3, 0); /* the big head: needs 3 */
  queue(&s, 2, 1, 0); /* fits, but must not overtake the head */
  queue(&s, 3, 1, 0);
  CHECK_EQ(g.npending, 3);
  CHECK_EQ(avail(&s), 1);
  CHECK_EQ(sl_gate_try_take(&s, 1), UV_EBUSY);

  /* A new small acquire of the same priority queues behind too. */
  w = mk(&ctx, 4);
  CHECK_EQ(sl_gate_acquire(&s, w, 1, 0, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  EXPECT_NONE(&out);

  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0); /* 2 free */
  EXPECT_NONE(&out);
  CHECK_EQ(in_use_of(&g), 2);
  /* 3 free: the head is granted the moment it fits, and nothing after it. */
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  EXPECT_IDS(&out, 1);
  CHECK_EQ(in_use_of(&g), 4);
  CHECK_EQ(g.npending, 3);

  /* A higher priority acquire that fits is not blocked by a lower head. */
  CHECK_EQ(sl_gate_release(&s, 4, 0, &out), 0);
  EXPECT_IDS(&out, 2, 3, 4);
  CHECK_EQ(in_use_of(&g), 3); /* 1 free */
  queue(&s, 5, 2, 0);         /* head at priority 0 needs 2, 1 free */
  w = mk(&ctx, 6);
  CHECK_EQ(sl_gate_acquire(&s, w, 1, 1, &queued, &out), 0); /* priority 1, fits */
  CHECK_EQ(queued, 1); /* queued, as the head of its level, then granted */
  EXPECT_IDS(&out, 6);
  CHECK_EQ(in_use_of(&g), 4);
  CHECK_EQ(g.npending, 1);
  /* ...but a higher priority big head blocks a lower priority small one. */
  queue(&s, 7, 4, 9);
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), 0); /* 2 free */
  /* 5 (needs 2) waits behind 7 (needs 4). */
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), 0);
  EXPECT_IDS(&out, 7);
  CHECK_EQ(sl_gate_release(&s, 4, 0, &out), 0);
  EXPECT_IDS(&out, 5);
  CHECK_EQ(in_use_of(&g), 2);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), 0);

  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_set_permits(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  sl_waiter_t* w;
  int queued;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 1, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s, 1), 0);
  queue(&s, 1, 1, 0);
  queue(&s, 2, 1, 0);
  queue(&s, 3, 1, 0);

  /* Raising does not dispatch by itself; dispatch grants what fits. */
  sl_gate_set_permits(&s, 3, &out);
  EXPECT_NONE(&out);
  CHECK_EQ(g.npending, 3);
  CHECK_EQ(avail(&s), 2);
  sl_gate_dispatch(&s, &out);
  EXPECT_IDS(&out, 1, 2);
  CHECK_EQ(in_use_of(&g), 3);
  CHECK_EQ(g.npending, 1);

  /* Lowering never preempts: in_use may exceed permits. */
  sl_gate_set_permits(&s, 1, &out);
  EXPECT_NONE(&out); /* 3 wants 1: it still fits the capacity */
  CHECK_EQ(in_use_of(&g), 3);
  CHECK_EQ(avail(&s), -2);
  CHECK_EQ(sl_gate_try_take(&s, 1), UV_EBUSY);
  sl_gate_dispatch(&s, &out);
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  EXPECT_NONE(&out);
  CHECK_EQ(avail(&s), -1);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  EXPECT_NONE(&out); /* in_use 1 == permits */
  CHECK_EQ(avail(&s), 0);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  EXPECT_IDS(&out, 3);
  CHECK_EQ(in_use_of(&g), 1);

  /* A raise not dispatched yet: a new acquire grants the head, one waiter
   * only (as p-limit's enqueue does); dispatch grants the rest. */
  queue(&s, 4, 1, 0);
  sl_gate_set_permits(&s, 3, &out);
  w = mk(&ctx, 5);
  CHECK_EQ(sl_gate_acquire(&s, w, 1, 0, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  EXPECT_IDS(&out, 4);
  CHECK_EQ(w->state, SL_WAITER_QUEUED);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(in_use_of(&g), 2);
  CHECK_EQ(sl_gate_release(&s, 2, 1, &out), 0);
  EXPECT_IDS(&out, 5);
  CHECK_EQ(in_use_of(&g), 1);
  /* The new waiter itself can be the one granted. */
  sl_gate_set_permits(&s, 1, &out);
  queue(&s, 6, 1, 0);
  sl_gate_set_permits(&s, 2, &out);
  w = mk(&ctx, 7);
  CHECK_EQ(sl_gate_acquire(&s, w, 1, 5, &queued, &out), 0);
  EXPECT_IDS(&out, 7); /* higher priority: it is the head, and fits */
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), 0);
  EXPECT_IDS(&out, 6);
  EXPECT_NONE(&out);

  /* SL_INFINITE: no limit. */
  sl_gate_set_permits(&s, SL_INFINITE, &out);
  CHECK_EQ(avail(&s), SL_INFINITE);
  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  CHECK_EQ(in_use_of(&g), 1 + 2 * (int64_t) UINT32_MAX);
  CHECK_EQ(avail(&s), SL_INFINITE);
  take_now(&s, UINT32_MAX);
  CHECK_EQ(sl_stake_held(&s), 1 + 3 * (int64_t) UINT32_MAX);
  /* Back to a finite capacity below what is in use. */
  sl_gate_set_permits(&s, 2, &out);
  EXPECT_NONE(&out);
  CHECK_EQ(avail(&s), 2 - (1 + 3 * (int64_t) UINT32_MAX));
  queue(&s, 9, 1, 0);
  queue(&s, 10, 2, 0);
  sl_gate_set_permits(&s, SL_INFINITE, &out);
  EXPECT_NONE(&out);
  sl_gate_dispatch(&s, &out);
  EXPECT_IDS(&out, 9, 10);
  CHECK_EQ(sl_gate_release(&s, UINT32_MAX, 0, &out), 0);
  CHECK_EQ(sl_gate_release(&s, UINT32_MAX, 0, &out), 0);
  CHECK_EQ(sl_gate_release(&s, UINT32_MAX, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 1 + 1 + 2);

  /* Permits 0: paused, not too small. Waiters of any size wait for a raise;
   * the raise refuses those that still do not fit. */
  sl_gate_set_permits(&s, 0, &out);
  CHECK_EQ(sl_gate_release(&s, 4, 0, &out), 0);
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_try_take(&s, 1), UV_EBUSY);
  queue(&s, 11, 1, 0);
  queue(&s, 12, 5, 0);
  queue(&s, 13, 1, 0);
  CHECK_EQ(avail(&s), 0);
  sl_gate_set_permits(&s, 0, &out);
  EXPECT_NONE(&out);
  sl_gate_set_permits(&s, 1, &out);
  EXPECT_REFUSED(&out, 12);
  CHECK_EQ(g.npending, 2);
  sl_gate_dispatch(&s, &out);
  EXPECT_IDS(&out, 11);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  EXPECT_IDS(&out, 13);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 0);

  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_max_grants(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  int i;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 10, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s, 10), 0);
  for (i = 0; i < 6; i++)
    queue(&s, i, 1, 0);
  CHECK_EQ(sl_gate_release(&s, 5, 2, &out), 0);
  EXPECT_IDS(&out, 0, 1);
  CHECK_EQ(in_use_of(&g), 7);
  CHECK_EQ(sl_gate_release(&s, 1, 1, &out), 0);
  EXPECT_IDS(&out, 2);
  CHECK_EQ(in_use_of(&g), 7);
  sl_gate_dispatch(&s, &out);
  EXPECT_IDS(&out, 3, 4, 5);
  CHECK_EQ(in_use_of(&g), 10);
  /* max_grants larger than the queue. */
  queue(&s, 6, 1, 0);
  CHECK_EQ(sl_gate_release(&s, 3, 100, &out), 0);
  EXPECT_IDS(&out, 6);
  CHECK_EQ(in_use_of(&g), 8);
  /* UV_ERANGE with a limit too: nothing granted, nothing changed. */
  queue(&s, 7, 5, 0);
  CHECK_EQ(sl_gate_release(&s, 9, 1, &out), UV_ERANGE);
  EXPECT_NONE(&out);
  CHECK_EQ(in_use_of(&g), 8);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(sl_gate_release(&s, 8, 1, &out), 0);
  EXPECT_IDS(&out, 7);
  CHECK_EQ(sl_gate_release(&s, 5, 0, &out), 0);

  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_cancel(void) {
  sl_ctx_t ctx;
  sl_gate_t g, other;
  sl_stake_t s, so;
  sl_wlist_t out;
  sl_waiter_t *a, *b, *c, *d, *e;
  int queued;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 4, 0), 0);
  CHECK_EQ(sl_gate_init(&other, 0, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_stake_open(&so, &other, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s, 3), 0);

  a = queue(&s, 1, 3, 0); /* big head */
  b = queue(&s, 2, 1, 0);
  c = queue(&s, 3, 1, 0);
  d = queue(&s, 4, 1, 0);
  CHECK_EQ(s.waiting, 4);
  /* Cancelling the head lets the smaller waiters behind it through, while
   * they fit. */
  CHECK_EQ(sl_gate_cancel(a, &out), 0);
  CHECK_EQ(a->state, SL_WAITER_NEW);
  (void) b;
  EXPECT_IDS(&out, 2);
  CHECK_EQ(in_use_of(&g), 4);
  CHECK_EQ(g.npending, 2);
  CHECK_EQ(s.waiting, 2);
  check_structure(&g);

  /* Not queued any more (or never): UV_ENOENT, nothing changes. */
  CHECK_EQ(sl_gate_cancel(a, &out), UV_ENOENT);
  e = mk(&ctx, 5);
  CHECK_EQ(sl_gate_cancel(e, &out), UV_ENOENT);
  /* Queued on another gate: cancelled there, this one untouched. */
  CHECK_EQ(sl_gate_acquire(&so, e, 1, 0, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  CHECK_EQ(other.npending, 1);
  CHECK_EQ(sl_gate_cancel(e, &out), 0);
  CHECK_EQ(other.npending, 0);
  CHECK_EQ(so.waiting, 0);
  CHECK_EQ(other.nlevels, 0);
  CHECK_EQ(sl_gate_cancel(e, &out), UV_ENOENT);
  EXPECT_NONE(&out);
  CHECK_EQ(g.npending, 2);
  sl_ctx_waiter_free(&ctx, a);
  sl_ctx_waiter_free(&ctx, e);

  /* Cancelling from the middle and the tail keeps FIFO. */
  a = queue(&s, 6, 1, 0);
  e = queue(&s, 7, 1, 0);
  CHECK_EQ(sl_gate_cancel(d, &out), 0); /* middle: c d a e */
  CHECK_EQ(sl_gate_cancel(e, &out), 0); /* tail */
  EXPECT_NONE(&out);
  check_structure(&g);
  sl_ctx_waiter_free(&ctx, d);
  sl_ctx_waiter_free(&ctx, e);
  /* A granted waiter cannot be cancelled. */
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  CHECK(out.head == c);
  CHECK_EQ(sl_gate_cancel(c, &out), UV_ENOENT);
  EXPECT_IDS(&out, 3);
  /* Cancelling the last waiter of a level drops the level. */
  b = queue(&s, 8, 1, 7);
  CHECK_EQ(g.nlevels, 2);
  CHECK_EQ(sl_gate_cancel(b, &out), 0);
  CHECK_EQ(g.nlevels, 1);
  CHECK_EQ(sl_gate_cancel(a, &out), 0);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.npending, 0);
  EXPECT_NONE(&out);
  sl_ctx_waiter_free(&ctx, a);
  sl_ctx_waiter_free(&ctx, b);

  /* Cancelling a high priority head unblocks a lower level. */
  b = queue(&s, 9, 1, 0);
  a = queue(&s, 10, 4, 3);
  c = queue(&s, 11, 1, 3);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0); /* 1 free */
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_cancel(a, &out), 0);
  EXPECT_IDS(&out, 11);
  sl_ctx_waiter_free(&ctx, a);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  EXPECT_IDS(&out, 9);

  /* A refused waiter cannot be cancelled either. */
  a = queue(&s, 12, 4, 0);
  sl_gate_set_permits(&s, 2, &out);
  CHECK(out.head == a);
  CHECK_EQ(sl_gate_cancel(a, &out), UV_ENOENT);
  EXPECT_REFUSED(&out, 12);
  CHECK_EQ(sl_gate_release(&s, 4, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 0);

  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_stake_close(&so);
  sl_gate_destroy(&g);
  sl_gate_destroy(&other);
  sl_ctx_destroy(&ctx);
}

static void test_clear(void) {
  sl_ctx_t ctx, ctx2;
  sl_gate_t g, sg;
  sl_stake_t s1, s2, s3, sa, sb;
  sl_wlist_t out;
  sl_waiter_t* w;
  int i;
  /* id, priority, stake (1 or 2) */
  static const int spec[][3] = {{0, 0, 1}, {1, 2, 2}, {2, 0, 2},  {3, 2, 1}, {4, -1, 1},
                                {5, 0, 1}, {6, 9, 2}, {7, -1, 2}, {8, 2, 1}, {9, 9, 1}};

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_ctx_init(&ctx2), 0);
  CHECK_EQ(sl_gate_init(&g, 3, 0), 0);
  sl_stake_open(&s1, &g, &ctx);
  sl_stake_open(&s2, &g, &ctx);
  sl_stake_open(&s3, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s3, 3), 0);

  for (i = 0; i < 10; i++)
    queue(spec[i][2] == 1 ? &s1 : &s2, spec[i][0], 1, spec[i][1]);
  CHECK_EQ(g.nlevels, 4);
  /* By stake, in the order they would have run; the rest stay queued. */
  sl_gate_clear(&s1, &out);
  for (w = out.head; w != NULL; w = w->next) {
    CHECK_EQ(w->state, SL_WAITER_NEW);
    CHECK(w->stake == &s1);
  }
  EXPECT_CLEARED(&out, 9, 3, 8, 0, 5, 4);
  CHECK_EQ(g.npending, 4);
  CHECK_EQ(g.nlevels, 4);
  CHECK_EQ(s1.waiting, 0);
  CHECK_EQ(s2.waiting, 4);
  check_structure(&g);
  sl_gate_clear(&s1, &out);
  EXPECT_NONE(&out);
  /* Clearing does not grant, even when it removes a head that blocked a
   * waiter that fits now. */
  queue(&s1, 10, 3, 10);
  CHECK_EQ(sl_gate_release(&s3, 2, 0, &out), 0); /* 2 free: 6 would fit */
  EXPECT_NONE(&out);
  sl_gate_clear(&s1, &out);
  EXPECT_CLEARED(&out, 10);
  CHECK_EQ(g.npending, 4);
  CHECK_EQ(in_use_of(&g), 1);
  sl_gate_clear(&s2, &out);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(in_use_of(&g), 1);
  EXPECT_CLEARED(&out, 6, 1, 2, 7);
  CHECK_EQ(sl_gate_release(&s3, 1, 0, &out), 0);
  EXPECT_NONE(&out);

  /* A shared gate: each context's stake clears its own waiters only. */
  CHECK_EQ(sl_gate_init(&sg, 0, 1), 0);
  sl_stake_open(&sa, &sg, &ctx);
  sl_stake_open(&sb, &sg, &ctx2);
  for (i = 0; i < 10; i++)
    queue(i % 2 ? &sb : &sa, i, 1, spec[i][1]);
  check_structure(&sg);
  sl_gate_clear(&sb, &out);
  for (w = out.head; w != NULL; w = w->next)
    CHECK(w->stake == &sb);
  EXPECT_CLEARED(&out, 9, 1, 3, 5, 7);
  check_structure(&sg);
  sl_gate_clear(&sa, &out);
  EXPECT_CLEARED(&out, 6, 8, 0, 2, 4);
  CHECK_EQ(sg.npending, 0);
  check_structure(&sg);
  sl_wlist_init(&out);
  sl_ctx_take_ready(&ctx, &out);
  sl_ctx_take_ready(&ctx2, &out);
  EXPECT_NONE(&out);

  CHECK_EQ(ctx.live, 0);
  CHECK_EQ(ctx2.live, 0);
  sl_stake_close(&s1);
  sl_stake_close(&s2);
  sl_stake_close(&s3);
  sl_stake_close(&sa);
  sl_stake_close(&sb);
  CHECK(sg.parties == NULL);
  sl_gate_destroy(&g);
  sl_gate_destroy(&sg);
  sl_ctx_destroy(&ctx);
  sl_ctx_destroy(&ctx2);
}

static void test_levels(void) {
  enum { P = 1000, PER = 3 };
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  int32_t prios[P];
  sl_waiter_t* ws[P * PER];
  int i, j, k;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 0, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_wlist_init(&out);

  /* Priorities spread over the int32 range, inserted in random order. */
  for (i = 0; i < P; i++)
    prios[i] = (int32_t) ((int64_t) i * 4294967 - 2147483647);
  for (i = P - 1; i > 0; i--) {
    int32_t t;
    j = (int) (rnd() % (uint32_t) (i + 1));
    t = prios[i];
    prios[i] = prios[j];
    prios[j] = t;
  }
  for (k = 0; k < PER; k++) {
    for (i = 0; i < P; i++) {
      ws[k * P + i] = queue(&s, k * P + i, 1, prios[i]);
      if (k == 0) {
        CHECK_EQ(g.nlevels, i + 1);
        if (i % 97 == 0)
          check_structure(&g);
      }
    }
  }
  CHECK_EQ(g.nlevels, P);
  CHECK_EQ(g.npending, P * PER);
  check_structure(&g);

  /* Remove whole levels from the middle by cancelling. */
  for (i = 0; i < P; i += 3) {
    for (k = 0; k < PER; k++) {
      CHECK_EQ(sl_gate_cancel(ws[k * P + i], &out), 0);
      sl_ctx_waiter_free(&ctx, ws[k * P + i]);
      ws[k * P + i] = NULL;
    }
  }
  EXPECT_NONE(&out);
  CHECK_EQ(g.nlevels, P - (P + 2) / 3);
  check_structure(&g);

  /* Re-add some levels (binary search finds existing ones, inserts new). */
  for (i = 0; i < P; i += 6)
    ws[i] = queue(&s, i, 1, prios[i]);
  check_structure(&g);

  /* Drain: strictly descending priority, FIFO within a level. */
  sl_gate_set_permits(&s, SL_INFINITE, &out);
  EXPECT_NONE(&out);
  sl_gate_dispatch(&s, &out);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.npending, 0);
  {
    int64_t last_prio = INT64_MAX;
    int last_id = -1;
    sl_waiter_t* w;
    int n = 0;
    while ((w = sl_wlist_shift(&out)) != NULL) {
      CHECK_EQ(w->state, SL_WAITER_GRANTED);
      if (w->priority != last_prio) {
        CHECK(w->priority < last_prio);
        last_prio = w->priority;
      } else {
        /* Within a level, in queue order: the re-added (i % 6 == 0, k = 0
         * again) came last; otherwise by id (k * P + i grows with k). */
        CHECK(id_of(w) > last_id || (id_of(w) % 6 == 0 && id_of(w) < P));
      }
      last_id = id_of(w);
      sl_ctx_waiter_free(&ctx, w);
      n++;
    }
    CHECK_EQ(n, P * PER - PER * ((P + 2) / 3) + (P + 5) / 6);
    CHECK_EQ(in_use_of(&g), n);
    CHECK_EQ(sl_gate_release(&s, n, 0, &out), 0);
  }
  CHECK_EQ(ctx.live, 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* --------------------------------------------------------------- slab --- */

static void test_slab(void) {
  enum { N = 3000 };
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  sl_waiter_t** ws = calloc(N, sizeof(*ws));
  sl_waiter_t *w, *w2;
  uint64_t seq;
  uint32_t idx;
  int i;

  CHECK(ws != NULL);
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 0, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_ctx_chunks(&ctx), 0);

  /* Fresh slots are handed out in index order across chunks, each with a
   * new sequence number. */
  for (i = 0; i < N; i++) {
    ws[i] = mk(&ctx, i);
    CHECK_EQ(ws[i]->index, i);
    CHECK_EQ(ws[i]->seq, (uint64_t) i + 1);
    CHECK(sl_ctx_waiter_find(&ctx, (uint32_t) i, ws[i]->seq) == ws[i]);
  }
  CHECK_EQ(sl_ctx_chunks(&ctx), (N + SL_CHUNK_SIZE - 1) / SL_CHUNK_SIZE);
  CHECK_EQ(ctx.live, N);
  CHECK(sl_ctx_waiter_find(&ctx, N, N + 1) == NULL); /* a free slot */
  CHECK(sl_ctx_waiter_find(&ctx, UINT32_MAX, 1) == NULL);
  /* Past the table; the wrong sequence; 0, which is never handed out. */
  CHECK(sl_ctx_waiter_find(&ctx, 64 * SL_CHUNK_SIZE, 1) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, 1, 1) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, 1, 0) == NULL);

  /* Queue them all on one gate (pointers into three chunks stay valid
   * while the chunk table grows), then grant them in order. */
  for (i = 0; i < N; i++) {
    int queued;
    CHECK_EQ(sl_gate_acquire(&s, ws[i], 1, 0, &queued, &out), 0);
    CHECK_EQ(queued, 1);
  }
  CHECK_EQ(g.npending, N);
  check_structure(&g);
  sl_gate_set_permits(&s, N, &out);
  EXPECT_NONE(&out);
  sl_gate_dispatch(&s, &out);
  for (i = 0; i < N; i++) {
    w = sl_wlist_shift(&out);
    CHECK(w == ws[i]);
    CHECK_EQ(w->state, SL_WAITER_GRANTED);
  }
  CHECK(out.head == NULL);
  CHECK_EQ(in_use_of(&g), N);

  /* A freed waiter's token misses. */
  idx = ws[1500]->index;
  seq = ws[1500]->seq;
  sl_ctx_waiter_free(&ctx, ws[1500]);
  CHECK_EQ(ctx.live, N - 1);
  CHECK(sl_ctx_waiter_find(&ctx, idx, seq) == NULL);
  /* Free slots are reused (the lowest chunk with room first, LIFO within a
   * chunk) before the slab grows; a reused waiter is as new. */
  sl_ctx_waiter_free(&ctx, ws[7]);
  w = mk(&ctx, 7);
  CHECK(w == ws[7]);
  CHECK_EQ(w->index, 7);
  CHECK_EQ(w->seq, (uint64_t) N + 1);
  w2 = mk(&ctx, 1500);
  CHECK(w2 == ws[1500]);
  CHECK_EQ(w2->index, idx);
  CHECK(w2->seq > seq);
  CHECK(sl_ctx_waiter_find(&ctx, idx, seq) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, idx, w2->seq) == w2);
  CHECK(sl_ctx_waiter_find(&ctx, 7, w->seq) == w);
  CHECK(sl_ctx_waiter_find(&ctx, 7, 8) == NULL); /* its old sequence */
  CHECK_EQ(sl_ctx_chunks(&ctx), 3);
  CHECK_EQ(ctx.live, N);
  /* A new slot once the free lists of the lower chunks are empty. */
  w = mk(&ctx, N);
  CHECK_EQ(w->index, N);
  sl_ctx_waiter_free(&ctx, w);

  /* Many sequence numbers on one slot. */
  for (i = 0; i < 5000; i++) {
    w = mk(&ctx, 0);
    CHECK_EQ(w->index, N);
    seq = w->seq;
    CHECK(sl_ctx_waiter_find(&ctx, N, seq) == w);
    sl_ctx_waiter_free(&ctx, w);
    CHECK(sl_ctx_waiter_find(&ctx, N, seq) == NULL);
  }

  for (i = 0; i < N; i++)
    sl_ctx_waiter_free(&ctx, ws[i]);
  CHECK_EQ(ctx.live, 0);
  CHECK_EQ(sl_gate_release(&s, N, 0, &out), 0);
  /* The whole slab again, from the free lists: no growth. */
  for (i = 0; i < N + 1; i++) {
    ws[i % N] = mk(&ctx, i);
    sl_ctx_waiter_free(&ctx, ws[i % N]);
  }
  CHECK(sl_ctx_chunks(&ctx) <= 2);
  CHECK_EQ(ctx.live, 0);

  free(ws);
  sl_stake_close(&s);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* Counts chunk allocations: the increase of sl_ctx_chunks() since the last
 * call (one waiter_new allocates at most one chunk). */
typedef struct {
  uint32_t last;
  uint32_t allocs;
  uint32_t max;
} chunk_meter_t;

static void meter(sl_ctx_t* ctx, chunk_meter_t* m) {
  uint32_t n = sl_ctx_chunks(ctx);
  if (n > m->last)
    m->allocs += n - m->last;
  if (n > m->max)
    m->max = n;
  m->last = n;
}

/* (a) Memory comes back once a burst is over: 1M waiters, freed in three
 * orders, leave at most two chunks (chunk 0 and one spare). */
static void test_slab_returns_memory(void) {
  enum { M = 1 << 20 };
  sl_ctx_t ctx;
  sl_waiter_t** ws = malloc(M * sizeof(*ws));
  uint32_t* perm = malloc(M * sizeof(*perm));
  int order, i;

  CHECK(ws != NULL && perm != NULL);
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  for (i = 0; i < M; i++)
    perm[i] = (uint32_t) i;
  for (i = M - 1; i > 0; i--) {
    uint32_t j = rnd() % (uint32_t) (i + 1), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (order = 0; order < 3; order++) {
    uint32_t stale_index;
    uint64_t stale_seq;
    for (i = 0; i < M; i++)
      ws[i] = mk(&ctx, i);
    CHECK_EQ(ctx.live, M);
    CHECK_EQ(sl_ctx_chunks(&ctx), M / SL_CHUNK_SIZE);
    stale_index = ws[M - 3]->index;
    stale_seq = ws[M - 3]->seq;
    for (i = 0; i < M; i++) {
      /* 0: in allocation order (a FIFO queue drained), 1: reverse, 2: random. */
      int k = order == 0 ? i : order == 1 ? M - 1 - i : (int) perm[i];
      sl_ctx_waiter_free(&ctx, ws[k]);
    }
    CHECK_EQ(ctx.live, 0);
    CHECK(sl_ctx_chunks(&ctx) <= 2);
    /* A token into a chunk given back finds nothing (and reads no freed
     * memory: ASan and valgrind watch). */
    CHECK(sl_ctx_waiter_find(&ctx, stale_index, stale_seq) == NULL);
    /* New waiters come from the low chunks kept. */
    ws[0] = mk(&ctx, 0);
    CHECK(ws[0]->index < 2 * SL_CHUNK_SIZE);
    sl_ctx_waiter_free(&ctx, ws[0]);
    printf("  slab: 1M waiters freed (order %d): %u chunk(s) kept\n", order, sl_ctx_chunks(&ctx));
  }
  free(perm);
  free(ws);
  sl_ctx_destroy(&ctx);
}

/* (a) A queue that swings around a chunk boundary does not allocate and
 * free a chunk on every turn. */
static void test_slab_no_thrash(void) {
  enum { C = SL_CHUNK_SIZE, W = 1500 };
  sl_ctx_t ctx;
  sl_waiter_t** ws = calloc(3 * C, sizeof(*ws));
  chunk_meter_t m = {0, 0, 0};
  int i, j, turn;

  CHECK(ws != NULL);
  CHECK_EQ(sl_ctx_init(&ctx), 0);

  /* Chunk 0 full; one waiter over the boundary, freed, 10,000 times. */
  for (i = 0; i < C; i++)
    ws[i] = mk(&ctx, i);
  meter(&ctx, &m);
  CHECK_EQ(m.allocs, 1);
  for (turn = 0; turn < 10000; turn++) {
    sl_waiter_t* w = mk(&ctx, -1);
    CHECK_EQ(w->index, C);
    meter(&ctx, &m);
    sl_ctx_waiter_free(&ctx, w);
    meter(&ctx, &m);
  }
  CHECK_EQ(m.allocs, 2); /* chunk 1, once: then kept as the spare */
  CHECK_EQ(sl_ctx_chunks(&ctx), 2);

  /* Half a chunk over the boundary and back, LIFO, 200 times. */
  for (turn = 0; turn < 200; turn++) {
    for (i = C; i < C + C / 2; i++)
      ws[i] = mk(&ctx, i);
    meter(&ctx, &m);
    for (i = C + C / 2; i-- > C;)
      sl_ctx_waiter_free(&ctx, ws[i]);
    meter(&ctx, &m);
  }
  CHECK_EQ(m.allocs, 2);

  /* A FIFO queue of W waiters sliding along (free the oldest, add one),
   * 100,000 steps: W fits in two chunks, so after the first pass nothing is
   * allocated. */
  for (i = C; i < W; i++)
    ws[i] = mk(&ctx, i);
  meter(&ctx, &m);
  CHECK_EQ(m.allocs, 2);
  for (j = 0; j < 100000; j++) {
    int k = j % W;
    sl_ctx_waiter_free(&ctx, ws[k]);
    ws[k] = mk(&ctx, j);
    meter(&ctx, &m);
  }
  CHECK_EQ(m.allocs, 2);
  CHECK_EQ(m.max, 2);

  /* A swing of more than a chunk (W + C and back to C) allocates at most
   * one chunk a turn: the spare absorbs one, the other is given back. */
  for (i = 0; i < W; i++)
    sl_ctx_waiter_free(&ctx, ws[i]);
  CHECK(sl_ctx_chunks(&ctx) <= 2);
  for (i = 0; i < C; i++)
    ws[i] = mk(&ctx, i);
  meter(&ctx, &m);
  {
    uint32_t before = m.allocs;
    for (turn = 0; turn < 50; turn++) {
      for (i = C; i < 3 * C; i++)
        ws[i] = mk(&ctx, i);
      meter(&ctx, &m);
      CHECK_EQ(sl_ctx_chunks(&ctx), 3);
      for (i = 3 * C; i-- > C;)
        sl_ctx_waiter_free(&ctx, ws[i]);
      meter(&ctx, &m);
      CHECK_EQ(sl_ctx_chunks(&ctx), 2);
    }
    CHECK(m.allocs - before <= 50);
  }
  for (i = 0; i < C; i++)
    sl_ctx_waiter_free(&ctx, ws[i]);
  CHECK_EQ(ctx.live, 0);
  free(ws);
  sl_ctx_destroy(&ctx);
}

/* (b) Tokens: a freed and reused slot's old (index, seq) never finds the
 * new waiter, after 2^20 and more reuses of one slot too (bug 11: only 20
 * bits of the generation were compared), and all 64 bits count. */
static void test_tokens(void) {
  sl_ctx_t ctx;
  sl_waiter_t *w, *other;
  uint32_t idx;
  uint64_t s0, i, last = 0;
  static const uint64_t jumps[] = {(uint64_t) 1 << 32, (uint64_t) 1 << 53, (uint64_t) 1 << 63};
  size_t j;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  other = mk(&ctx, 99); /* slot 0 stays live: the slot under test is 1 */
  w = mk(&ctx, 0);
  idx = w->index;
  s0 = w->seq;
  CHECK_EQ(idx, 1);
  sl_ctx_waiter_free(&ctx, w);
  CHECK(sl_ctx_waiter_find(&ctx, idx, s0) == NULL);

  for (i = 1; i <= ((uint64_t) 1 << 20) + 2; i++) {
    w = mk(&ctx, 0);
    CHECK_EQ(w->index, idx);
    CHECK(w->seq > s0);
    if (sl_ctx_waiter_find(&ctx, idx, s0) != NULL) {
      fprintf(stderr, "%s:%d: a stale token (seq %llu) found the waiter of seq %llu (reuse %llu)\n",
              __FILE__, __LINE__, (unsigned long long) s0, (unsigned long long) w->seq,
              (unsigned long long) i);
      exit(1);
    }
    CHECK(last == 0 || sl_ctx_waiter_find(&ctx, idx, last) == NULL);
    CHECK(sl_ctx_waiter_find(&ctx, idx, w->seq) == w);
    CHECK(sl_ctx_waiter_find(&ctx, idx + 1, w->seq) == NULL);
    last = w->seq;
    sl_ctx_waiter_free(&ctx, w);
    CHECK(sl_ctx_waiter_find(&ctx, idx, last) == NULL);
  }
  /* The reuse whose sequence equals s0 in its low 20 bits was checked above;
   * now differences in bit 32, 53 and 63 alone. The counter is set ahead by
   * hand (ctx->seq is the last one handed out). */
  for (j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
    ctx.seq = s0 + jumps[j] - 1;
    w = mk(&ctx, 0);
    CHECK_EQ(w->index, idx);
    CHECK_EQ(w->seq, s0 + jumps[j]);
    CHECK(sl_ctx_waiter_find(&ctx, idx, s0) == NULL);
    CHECK(sl_ctx_waiter_find(&ctx, idx, w->seq) == w);
    sl_ctx_waiter_free(&ctx, w);
  }
  CHECK(sl_ctx_waiter_find(&ctx, other->index, other->seq) == other);
  sl_ctx_waiter_free(&ctx, other);
  CHECK_EQ(ctx.live, 0);
  sl_ctx_destroy(&ctx);
}

/* ------------------------------------------------------- refusals (c) --- */

/* A doorbell on a loop that this (single) thread runs: counts its rings. */
typedef struct {
  uv_async_t async;
  int calls;
} bell_t;

static void bell_cb(uv_async_t* a) {
  ((bell_t*) a->data)->calls++;
}

static void bell_init(uv_loop_t* loop, bell_t* b, sl_ctx_t* ctx) {
  CHECK_EQ(uv_async_init(loop, &b->async, bell_cb), 0);
  b->async.data = b;
  b->calls = 0;
  sl_ctx_set_doorbell(ctx, &b->async);
}

/* How many times the bell rang since the last call (uv_async_send
 * coalesces: rings between two calls count as one). */
static int rang(uv_loop_t* loop, bell_t* b) {
  int n;
  uv_run(loop, UV_RUN_NOWAIT);
  n = b->calls;
  b->calls = 0;
  return n;
}

static void test_range(void) {
  uv_loop_t loop;
  bell_t bell_a, bell_b;
  sl_ctx_t ca, cb;
  sl_gate_t g, sg;
  sl_stake_t s, sa, sb;
  sl_wlist_t out;
  sl_waiter_t* w;
  int queued;

  CHECK_EQ(uv_loop_init(&loop), 0);
  CHECK_EQ(sl_ctx_init(&ca), 0);
  CHECK_EQ(sl_ctx_init(&cb), 0);
  sl_wlist_init(&out);

  /* acquire(n > permits) is refused and queues nothing, even when others
   * are queued or the permits are all in use; n == permits waits. */
  CHECK_EQ(sl_gate_init(&g, 3, 0), 0);
  sl_stake_open(&s, &g, &ca);
  w = mk(&ca, 1);
  queued = -1;
  CHECK_EQ(sl_gate_acquire(&s, w, 4, 0, &queued, &out), UV_ERANGE);
  CHECK_EQ(queued, 0);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  CHECK(w->stake == NULL);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(sl_gate_try_take(&s, 4), UV_EBUSY);
  CHECK_EQ(sl_gate_try_take(&s, 2), 0);
  queue(&s, 2, 3, 0);
  CHECK_EQ(sl_gate_acquire(&s, w, UINT32_MAX, 7, &queued, &out), UV_ERANGE);
  CHECK_EQ(queued, 0);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(g.nlevels, 1); /* no level made for it */
  EXPECT_NONE(&out);
  check_structure(&g);

  /* Permits 0 is paused: any n queues. */
  sl_gate_set_permits(&s, 0, &out);
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_acquire(&s, w, UINT32_MAX, 0, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  CHECK_EQ(w->state, SL_WAITER_QUEUED);
  CHECK_EQ(g.npending, 2);
  /* Raising to a capacity that still does not fit it refuses it; to one
   * that does, nothing is refused. */
  sl_gate_set_permits(&s, SL_INFINITE, &out);
  EXPECT_NONE(&out);
  sl_gate_set_permits(&s, 3, &out);
  EXPECT_REFUSED(&out, 1);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(in_use_of(&g), 2);
  CHECK_EQ(s.waiting, 1);
  check_structure(&g);

  /* Lowering below a queued waiter's n refuses it, wherever it stands, and
   * the waiters it blocked go through on the next dispatch. g: permits 3,
   * in_use 2, queue [2 (n 3)]. Add a small one behind it and a doomed one
   * of a higher priority. */
  queue(&s, 3, 1, 0);
  queue(&s, 4, 3, 5);
  queue(&s, 5, 2, 0);
  queue(&s, 6, 1, -1);
  sl_gate_dispatch(&s, &out);
  EXPECT_NONE(&out); /* 4 (n 3) is the head and blocks everyone */
  sl_gate_set_permits(&s, 2, &out);
  EXPECT_REFUSED(&out, 4, 2); /* run order: priority 5 first */
  CHECK_EQ(g.npending, 3);
  CHECK_EQ(in_use_of(&g), 2);
  CHECK_EQ(g.nlevels, 2);
  check_structure(&g);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0); /* in_use 1 of 2 */
  EXPECT_IDS(&out, 3);
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), 0); /* 0 of 2 */
  EXPECT_IDS(&out, 5);
  CHECK_EQ(sl_gate_release(&s, 2, 0, &out), 0);
  EXPECT_IDS(&out, 6);
  CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(g.npending, 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);

  /* A shared gate: a waiter of another context is refused into that
   * context's ready queue, its doorbell rung; the caller's own go to `out`.
   * After a dispatch the waiters it blocked are granted. */
  bell_init(&loop, &bell_a, &ca);
  bell_init(&loop, &bell_b, &cb);
  CHECK_EQ(sl_gate_init(&sg, 4, 1), 0);
  sl_stake_open(&sa, &sg, &ca);
  sl_stake_open(&sb, &sg, &cb);
  CHECK_EQ(sl_gate_try_take(&sa, 2), 0);
  queue(&sb, 10, 4, 0); /* head, blocks */
  queue(&sa, 11, 3, 0);
  queue(&sb, 12, 1, 0);
  queue(&sa, 13, 2, 0);
  check_structure(&sg);
  (void) rang(&loop, &bell_a);
  (void) rang(&loop, &bell_b);
  sl_gate_set_permits(&sa, 2, &out);
  EXPECT_REFUSED(&out, 11); /* sa's own */
  CHECK_EQ(rang(&loop, &bell_b), 1);
  sl_ctx_take_ready(&cb, &out);
  EXPECT_REFUSED(&out, 10);
  CHECK_EQ(sg.npending, 2);
  CHECK_EQ(sb.waiting, 1);
  CHECK_EQ(sa.waiting, 1);
  CHECK_EQ(in_use_of(&sg), 2);
  check_structure(&sg);
  /* 12 (n 1) is the head now, but 2 of 2 are in use. */
  sl_gate_dispatch(&sa, &out);
  EXPECT_NONE(&out);
  CHECK_EQ(sl_gate_release(&sa, 1, 0, &out), 0);
  EXPECT_NONE(&out); /* 12 is cb's: granted into its ready queue */
  CHECK_EQ(rang(&loop, &bell_b), 1);
  sl_ctx_take_ready(&cb, &out);
  EXPECT_IDS(&out, 12);
  CHECK_EQ(sl_stake_held(&sb), 1);
  /* Raised, then dispatched: 13 goes through. */
  sl_gate_set_permits(&sb, 4, &out);
  EXPECT_NONE(&out);
  sl_gate_dispatch(&sb, &out);
  EXPECT_NONE(&out); /* 13 is ca's */
  CHECK_EQ(rang(&loop, &bell_a), 1);
  sl_ctx_take_ready(&ca, &out);
  EXPECT_IDS(&out, 13);
  CHECK_EQ(sl_stake_held(&sa), 3);
  CHECK_EQ(sg.npending, 0);
  check_structure(&sg);
  CHECK_EQ(sl_gate_release(&sa, 3, 0, &out), 0);
  CHECK_EQ(sl_gate_release(&sb, 1, 0, &out), 0);
  EXPECT_NONE(&out);
  CHECK_EQ(in_use_of(&sg), 0);

  CHECK_EQ(ca.live, 0);
  CHECK_EQ(cb.live, 0);
  sl_stake_close(&sa);
  sl_stake_close(&sb);
  sl_gate_destroy(&sg);
  sl_ctx_close(&ca);
  sl_ctx_close(&cb);
  uv_close((uv_handle_t*) &bell_a.async, NULL);
  uv_close((uv_handle_t*) &bell_b.async, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&loop), 0);
  sl_ctx_destroy(&ca);
  sl_ctx_destroy(&cb);
}

/* --------------------------------------------------- big releases (d) --- */

/* Bug 3: held permits were truncated to 32 bits at teardown. A stake of a
 * shared gate of 1e10 holding 2 * (2^32 - 1) permits gives all of them back
 * when closed, and what it gives back goes to the next waiter (through the
 * ready queue, as from a finalizer). Releases of more than 2^32 at once. */
static void test_big_release(void) {
  const int64_t big = 2 * (int64_t) UINT32_MAX; /* 8,589,934,590 */
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s, s2;
  sl_wlist_t out;
  sl_waiter_t* w;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 10000000000LL, 1), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_stake_open(&s2, &g, &ctx);
  sl_wlist_init(&out);

  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  CHECK_EQ(sl_stake_held(&s), big);
  CHECK_EQ(in_use_of(&g), big);
  /* Release more than 2^32 in one call, then take it back. */
  CHECK_EQ(sl_gate_release(&s, ((int64_t) 1 << 32) + 7, 0, &out), 0);
  CHECK_EQ(sl_stake_held(&s), big - ((int64_t) 1 << 32) - 7);
  CHECK_EQ(in_use_of(&g), big - ((int64_t) 1 << 32) - 7);
  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  CHECK_EQ(sl_gate_try_take(&s, 8), 0);
  CHECK_EQ(sl_stake_held(&s), big);
  EXPECT_NONE(&out);

  /* s2 waits for UINT32_MAX: 1e10 - big = 1,410,065,410 free. */
  w = queue(&s2, 1, UINT32_MAX, 0);
  CHECK_EQ(g.npending, 1);
  sl_stake_close(&s);
  CHECK_EQ(in_use_of(&g), UINT32_MAX); /* all of s's back, then s2's granted */
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(sl_stake_held(&s2), UINT32_MAX);
  CHECK(ctx.ready.head == w); /* closing settles nothing itself */
  sl_ctx_take_ready(&ctx, &out);
  EXPECT_IDS(&out, 1);
  check_structure(&g);

  sl_stake_close(&s2);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK(g.parties == NULL);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* sl_stake_close on a gate that is not shared: gate.h says the stake's held
 * permits go back to the gate and the waiters they let in are granted
 * through the ready queue, shared or not. */
static void test_close_unshared(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s, s2;
  sl_wlist_t out;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 10000000000LL, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  sl_stake_open(&s2, &g, &ctx);
  sl_wlist_init(&out);
  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  CHECK_EQ(sl_gate_try_take(&s, UINT32_MAX), 0);
  queue(&s2, 1, UINT32_MAX, 0);
  sl_stake_close(&s);
  CHECK_EQ(in_use_of(&g), UINT32_MAX);
  CHECK_EQ(g.npending, 0);
  sl_ctx_take_ready(&ctx, &out);
  EXPECT_IDS(&out, 1);
  CHECK_EQ(sl_stake_held(&s2), UINT32_MAX);
  sl_stake_close(&s2);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* ---------------------------------------------------------- keep (e) --- */

/* A thread stays alive only while another context holds permits of, or has
 * waiters on, a gate it waits on; crossing zero rings its doorbell. */
static void test_keep(void) {
  uv_loop_t loop;
  bell_t bell_a, bell_b;
  sl_ctx_t ca, cb;
  sl_gate_t g;
  sl_stake_t sa, sa2, sb;
  sl_wlist_t out;
  sl_waiter_t *wa, *wb;

  CHECK_EQ(uv_loop_init(&loop), 0);
  CHECK_EQ(sl_ctx_init(&ca), 0);
  CHECK_EQ(sl_ctx_init(&cb), 0);
  bell_init(&loop, &bell_a, &ca);
  bell_init(&loop, &bell_b, &cb);
  sl_wlist_init(&out);

  /* One context alone: waiting on its own permits keeps nothing alive
   * (bug 4: nothing else could ever grant it), with two stakes too. */
  CHECK_EQ(sl_gate_init(&g, 1, 1), 0);
  sl_stake_open(&sa, &g, &ca);
  sl_stake_open(&sa2, &g, &ca);
  CHECK_EQ(sl_gate_try_take(&sa, 1), 0);
  wa = queue(&sa2, 1, 1, 0);
  CHECK_EQ(ca.keep, 0);
  CHECK_EQ(sl_ctx_keep(&ca), 0);
  CHECK_EQ(sa2.party->keep, 0);
  CHECK_EQ(g.nkeep, 0);
  CHECK_EQ(rang(&loop, &bell_a), 0);
  check_structure(&g);
  CHECK_EQ(sl_gate_release(&sa, 1, 0, &out), 0);
  EXPECT_IDS(&out, 1);
  CHECK_EQ(sl_gate_release(&sa2, 1, 0, &out), 0);
  sl_stake_close(&sa2);

  /* A waits while B holds: A's keep is 1 and its doorbell rang. */
  sl_gate_set_permits(&sa, 3, &out);
  sl_stake_open(&sb, &g, &cb);
  CHECK_EQ(sl_gate_try_take(&sb, 2), 0);
  CHECK_EQ(sl_gate_try_take(&sa, 1), 0);
  CHECK_EQ(rang(&loop, &bell_a), 0);
  wa = queue(&sa, 2, 3, 0);
  CHECK_EQ(sa.party->keep, 1);
  CHECK_EQ(ca.keep, 1);
  CHECK_EQ(sl_ctx_keep(&ca), 1);
  CHECK_EQ(g.nkeep, 1);
  CHECK_EQ(sb.party->keep, 0);
  CHECK_EQ(cb.keep, 0);
  CHECK_EQ(rang(&loop, &bell_a), 1);
  CHECK_EQ(rang(&loop, &bell_b), 0);
  check_structure(&g);
  /* B releases its last permits without granting A (A wants 3, 2 free):
   * nothing but A's own permit is left, so A's keep drops to 0, rung. */
  CHECK_EQ(sl_gate_release(&sb, 2, 0, &out), 0);
  EXPECT_NONE(&out);
  CHECK_EQ(wa->state, SL_WAITER_QUEUED);
  CHECK_EQ(sa.party->keep, 0);
  CHECK_EQ(ca.keep, 0);
  CHECK_EQ(sl_ctx_keep(&ca), 0);
  CHECK_EQ(g.nkeep, 0);
  CHECK_EQ(rang(&loop, &bell_a), 1);
  check_structure(&g);

  /* B queues behind A: B waits on A's permit (keep 1, rung); A's waiter
   * heads the queue, so B's waiter behind it can never let A in (keep 0). */
  wb = queue(&sb, 3, 1, 0);
  CHECK_EQ(ca.keep, 0);
  CHECK_EQ(cb.keep, 1);
  CHECK_EQ(rang(&loop, &bell_a), 0);
  CHECK_EQ(rang(&loop, &bell_b), 1);
  /* A releases: its own waiter is granted (3 of 3); B waits on A's permits
   * still (keep stays 1: no ring). */
  CHECK_EQ(sl_gate_release(&sa, 1, 0, &out), 0);
  CHECK(out.head == wa);
  EXPECT_IDS(&out, 2);
  CHECK_EQ(ca.keep, 0);
  CHECK_EQ(cb.keep, 1);
  CHECK_EQ(rang(&loop, &bell_a), 0);
  CHECK_EQ(rang(&loop, &bell_b), 0);
  check_structure(&g);
  /* A releases what B waits for: B's waiter is granted into B's ready
   * queue. Its stake stops counting, but the grant on its way counts until
   * B takes it, so B's keep stays 1 (B must not let its thread exit with
   * the grant unsettled), then drops to 0 when B takes it. */
  CHECK_EQ(sl_gate_release(&sa, 3, 0, &out), 0);
  EXPECT_NONE(&out);
  CHECK_EQ(cb.keep, 1);
  CHECK_EQ(sl_ctx_keep(&cb), 1);
  CHECK_EQ(g.nkeep, 0);
  CHECK(rang(&loop, &bell_b) >= 1);
  CHECK_EQ(rang(&loop, &bell_a), 0);
  sl_ctx_take_ready(&cb, &out);
  CHECK_EQ(cb.keep, 0);
  CHECK(out.head == wb);
  EXPECT_IDS(&out, 3);
  CHECK_EQ(sl_gate_release(&sb, 1, 0, &out), 0);

  /* Cancelling and clearing drop the keep too. */
  CHECK_EQ(sl_gate_try_take(&sb, 3), 0);
  wa = queue(&sa, 4, 1, 0);
  CHECK_EQ(ca.keep, 1);
  CHECK_EQ(sl_gate_cancel(wa, &out), 0);
  CHECK_EQ(ca.keep, 0);
  sl_ctx_waiter_free(&ca, wa);
  queue(&sa, 5, 1, 0);
  queue(&sa, 6, 1, 0);
  CHECK_EQ(ca.keep, 1); /* counted per stake: one */
  CHECK_EQ(sl_ctx_keep(&ca), 1);
  sl_gate_clear(&sa, &out);
  EXPECT_CLEARED(&out, 5, 6);
  CHECK_EQ(ca.keep, 0);
  CHECK_EQ(g.nkeep, 0);
  (void) rang(&loop, &bell_a);
  /* B's stake closing (a worker gone) grants A's waiter through A's ready
   * queue: A's stake stops counting, the grant on its way counts until A
   * takes it. */
  wa = queue(&sa, 7, 1, 0);
  CHECK_EQ(ca.keep, 1);
  (void) rang(&loop, &bell_a);
  sl_stake_close(&sb);
  CHECK_EQ(ca.keep, 1);
  CHECK_EQ(sl_stake_held(&sa), 1);
  CHECK_EQ(rang(&loop, &bell_a), 1);
  sl_ctx_take_ready(&ca, &out); /* granted by a close: via the ready queue */
  CHECK_EQ(ca.keep, 0);
  EXPECT_IDS(&out, 7);
  CHECK_EQ(sl_gate_release(&sa, 1, 0, &out), 0);

  /* A closed context is rung no more. */
  sl_stake_open(&sb, &g, &cb);
  CHECK_EQ(sl_gate_try_take(&sb, 3), 0);
  sl_ctx_close(&ca);
  wa = queue(&sa, 8, 1, 0);
  CHECK_EQ(ca.keep, 1);
  CHECK_EQ(rang(&loop, &bell_a), 0);
  sl_gate_clear(&sa, &out);
  EXPECT_CLEARED(&out, 8);
  CHECK_EQ(ca.keep, 0);
  CHECK_EQ(sl_gate_release(&sb, 3, 0, &out), 0);
  check_structure(&g);

  CHECK_EQ(ca.live, 0);
  CHECK_EQ(cb.live, 0);
  sl_stake_close(&sa);
  sl_stake_close(&sb);
  CHECK(g.parties == NULL);
  CHECK_EQ(in_use_of(&g), 0);
  sl_gate_destroy(&g);
  sl_ctx_close(&cb);
  uv_close((uv_handle_t*) &bell_a.async, NULL);
  uv_close((uv_handle_t*) &bell_b.async, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&loop), 0);
  sl_ctx_destroy(&ca);
  sl_ctx_destroy(&cb);
}

/* ------------------------------------------- allocation failures (f) --- */

/* The counts and the queue of a gate, to compare before and after. */
typedef struct {
  int64_t permits, in_use, npending;
  uint32_t nlevels;
} snap_t;

static snap_t snap(const sl_gate_t* g) {
  snap_t s = {g->permits, in_use_of(g), g->npending, g->nlevels};
  return s;
}

static void same(const sl_gate_t* g, snap_t a) {
  snap_t b = snap(g);
  CHECK_EQ(a.permits, b.permits);
  CHECK_EQ(a.in_use, b.in_use);
  CHECK_EQ(a.npending, b.npending);
  CHECK_EQ(a.nlevels, b.nlevels);
  check_structure(g);
}

/* Runs waiter_new with the k-th allocation failing, k = 1, 2, ... until it
 * succeeds; each failure must return NULL and leave the slab as it was
 * (nothing live, no chunk lost or leaked). Returns the waiter, and in
 * *failures how many allocations could fail on the way. */
static sl_waiter_t* new_failing(sl_ctx_t* ctx, int* failures) {
  uint64_t k;
  for (k = 1;; k++) {
    uint32_t chunks = sl_ctx_chunks(ctx);
    uint64_t live = ctx->live, seq = ctx->seq;
    sl_waiter_t* w;
    CHECK(k < 10);
    sl_alloc_fail_at(k);
    w = sl_ctx_waiter_new(ctx);
    sl_alloc_fail_at(0);
    if (w != NULL) {
      *failures = (int) k - 1;
      return w;
    }
    CHECK_EQ(ctx->live, live);
    CHECK_EQ(ctx->seq, seq);
    CHECK_EQ(sl_ctx_chunks(ctx), chunks);
  }
}

static void test_alloc_failures(void) {
  enum { FULL = 64 * SL_CHUNK_SIZE };
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t s;
  sl_wlist_t out;
  sl_waiter_t* w;
  sl_waiter_t** ws = calloc(FULL + 1, sizeof(*ws));
  int i, failures, queued;
  uint64_t k;

  CHECK(ws != NULL);
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  sl_wlist_init(&out);

  /* The first waiter: the chunk table, its room bits, the chunk (three
   * allocations that can fail, in turn). */
  ws[0] = new_failing(&ctx, &failures);
  CHECK_EQ(failures, 3);
  CHECK_EQ(ws[0]->index, 0);
  CHECK_EQ(sl_ctx_chunks(&ctx), 1);
  /* A new chunk only. */
  for (i = 1; i < (int) SL_CHUNK_SIZE; i++)
    ws[i] = mk(&ctx, i);
  ws[i] = new_failing(&ctx, &failures);
  CHECK_EQ(failures, 1);
  CHECK_EQ(ws[i]->index, SL_CHUNK_SIZE);
  /* Growing the chunk table (64 chunks full): table, room bits, chunk.
   * Every waiter is still found by its token after each failure. */
  for (i = SL_CHUNK_SIZE + 1; i < FULL; i++)
    ws[i] = mk(&ctx, i);
  CHECK_EQ(ctx.nchunks, 64);
  ws[FULL] = new_failing(&ctx, &failures);
  CHECK_EQ(failures, 3);
  CHECK_EQ(ws[FULL]->index, FULL);
  CHECK_EQ(ctx.nchunks, 128);
  for (i = 0; i <= FULL; i++)
    CHECK(sl_ctx_waiter_find(&ctx, ws[i]->index, ws[i]->seq) == ws[i]);
  for (i = 0; i <= FULL; i++)
    sl_ctx_waiter_free(&ctx, ws[i]);
  CHECK_EQ(ctx.live, 0);
  CHECK(sl_ctx_chunks(&ctx) <= 2);

  /* acquire that needs a new priority level: the first level array, and
   * growing it past 4 and 8 levels. UV_ENOMEM, nothing queued, nothing
   * changed; then it works. */
  CHECK_EQ(sl_gate_init(&g, 0, 0), 0);
  sl_stake_open(&s, &g, &ctx);
  for (i = 0; i < 10; i++) {
    int failed = 0;
    w = mk(&ctx, i);
    for (k = 1;; k++) {
      snap_t before = snap(&g);
      int r;
      CHECK(k < 10);
      sl_alloc_fail_at(k);
      queued = -1;
      r = sl_gate_acquire(&s, w, 1, i, &queued, &out);
      sl_alloc_fail_at(0);
      if (r == 0)
        break;
      CHECK_EQ(r, UV_ENOMEM);
      CHECK_EQ(queued, 0);
      CHECK_EQ(w->state, SL_WAITER_NEW);
      CHECK_EQ(s.waiting, before.npending);
      same(&g, before);
      failed++;
    }
    CHECK_EQ(queued, 1);
    /* Allocations happen for levels 1, 5 and 9 (capacity 4, 8, 16). */
    CHECK_EQ(failed, i == 0 || i == 4 || i == 8);
    CHECK_EQ(g.nlevels, i + 1);
    check_structure(&g);
  }
  /* An existing level needs no allocation: a failure armed is not hit. */
  w = mk(&ctx, 10);
  sl_alloc_fail_at(1);
  CHECK_EQ(sl_gate_acquire(&s, w, 1, 3, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  sl_alloc_fail_at(0);
  sl_gate_set_permits(&s, SL_INFINITE, &out);
  sl_gate_dispatch(&s, &out);
  EXPECT_IDS(&out, 9, 8, 7, 6, 5, 4, 3, 10, 2, 1, 0);
  CHECK_EQ(sl_gate_release(&s, 11, 0, &out), 0);
  CHECK_EQ(in_use_of(&g), 0);
  sl_stake_close(&s);
  sl_gate_destroy(&g);

  CHECK_EQ(ctx.live, 0);
  free(ws);
  sl_ctx_destroy(&ctx);
}

/* ------------------------------------------------------ reference model --- */

typedef struct {
  sl_waiter_t* w;
  int id;
  uint32_t n;
  int32_t prio;
  int owner; /* which stake */
} m_entry_t;

#define M_MAX 256
#define M_STAKES 3
typedef struct {
  int64_t permits;
  int64_t in_use;
  int64_t held[M_STAKES];
  m_entry_t q[M_MAX]; /* in run order: priority descending, FIFO */
  int len;
} model_t;

static int m_fits(const model_t* m, uint32_t n) {
  if (m->permits == SL_INFINITE)
    return 1;
  return m->in_use <= m->permits && (int64_t) n <= m->permits - m->in_use;
}

static int m_doomed(const model_t* m, uint32_t n) {
  return m->permits != SL_INFINITE && m->permits > 0 && (int64_t) n > m->permits;
}

static void m_insert(model_t* m, m_entry_t e) {
  int pos = m->len;
  while (pos > 0 && m->q[pos - 1].prio < e.prio)
    pos--;
  memmove(&m->q[pos + 1], &m->q[pos], (size_t) (m->len - pos) * sizeof(m_entry_t));
  m->q[pos] = e;
  m->len++;
}

static void m_remove(model_t* m, int pos) {
  memmove(&m->q[pos], &m->q[pos + 1], (size_t) (m->len - pos - 1) * sizeof(m_entry_t));
  m->len--;
}

/* Grants the head while it fits, at most max (0: no limit), into ids. */
static int m_dispatch(model_t* m, uint32_t max, int* ids) {
  int k = 0;
  while (m->len > 0 && m_fits(m, m->q[0].n)) {
    m->in_use += m->q[0].n;
    m->held[m->q[0].owner] += m->q[0].n;
    ids[k++] = m->q[0].id;
    m_remove(m, 0);
    if ((uint32_t) k == max)
      break;
  }
  return k;
}

/* Removes the waiters that can never fit, in run order, into ids. */
static int m_refuse(model_t* m, int* ids) {
  int i, k = 0;
  for (i = 0; i < m->len;) {
    if (m_doomed(m, m->q[i].n)) {
      ids[k++] = m->q[i].id;
      m_remove(m, i);
    } else {
      i++;
    }
  }
  return k;
}

static void m_compare(const model_t* m, const sl_gate_t* g, sl_stake_t* st, uint64_t step) {
  sl_gate_counts_t c;
  int i, o;
  uint32_t lv;
  sl_gate_counts(&st[0], &c);
  if (c.in_use != m->in_use || c.npending != m->len || c.permits != m->permits) {
    fprintf(stderr, "step %llu: gate in_use %lld npending %lld permits %lld, model %lld %d %lld\n",
            (unsigned long long) step, (long long) c.in_use, (long long) c.npending,
            (long long) c.permits, (long long) m->in_use, m->len, (long long) m->permits);
    exit(1);
  }
  for (o = 0; o < M_STAKES; o++) {
    int waiting = 0;
    for (i = 0; i < m->len; i++)
      waiting += m->q[i].owner == o;
    CHECK_EQ(sl_stake_held(&st[o]), m->held[o]);
    CHECK_EQ(st[o].waiting, waiting);
  }
  /* The queue in run order equals the model's. */
  i = 0;
  for (lv = g->nlevels; lv-- > 0;) {
    const sl_waiter_t* w;
    for (w = g->levels[lv].head; w != NULL; w = w->next) {
      CHECK(i < m->len);
      CHECK(w == m->q[i].w);
      CHECK_EQ(w->n, m->q[i].n);
      CHECK(w->stake == &st[m->q[i].owner]);
      i++;
    }
  }
  CHECK_EQ(i, m->len);
}

/* Pops the list and compares it to the model's ids and state; frees. */
static void m_check_list(sl_wlist_t* l, int state, const int* ids, int k, uint64_t step) {
  int i;
  for (i = 0; i < k; i++) {
    sl_waiter_t* w = sl_wlist_shift(l);
    if (w == NULL || id_of(w) != ids[i]) {
      fprintf(stderr, "step %llu: item %d: expected id %d, got %d\n", (unsigned long long) step, i,
              ids[i], w == NULL ? -1 : id_of(w));
      exit(1);
    }
    CHECK_EQ(w->state, state);
    sl_ctx_waiter_free(w->stake->ctx, w);
  }
  if (l->head != NULL) {
    fprintf(stderr, "step %llu: unexpected waiter id %d (state %d)\n", (unsigned long long) step,
            id_of(l->head), l->head->state);
    exit(1);
  }
}

static void test_random(void) {
  enum { STEPS = 200000 };
  static model_t m;
  static int ids[M_MAX + 1];
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_stake_t st[M_STAKES];
  sl_stake_t* all[M_STAKES] = {&st[0], &st[1], &st[2]};
  sl_wlist_t out;
  int next_id = 0, o;
  uint64_t step;
  enum { ACQ, ACQ_RANGE, TRY, REL, REL_RANGE, SET, REFUSED, CANCEL, CLEAR, NSTATS };
  uint64_t stats[NSTATS] = {0};

  rng_state = 0x5EED5EED12345678ull;
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 4, 0), 0);
  for (o = 0; o < M_STAKES; o++)
    sl_stake_open(&st[o], &g, &ctx);
  sl_wlist_init(&out);
  memset(&m, 0, sizeof(m));
  m.permits = 4;

  for (step = 0; step < STEPS; step++) {
    uint32_t op = rnd() % 100;
    int k = 0;
    if (op < 33 && m.len < M_MAX - 1) {
      /* acquire */
      uint32_t n = 1 + rnd() % 4;
      int32_t prio = (int32_t) (rnd() % 7) - 3;
      int owner = (int) (rnd() % M_STAKES), queued = -1;
      sl_waiter_t* w = mk(&ctx, next_id);
      int r = sl_gate_acquire(&st[owner], w, n, prio, &queued, &out);
      if (m_doomed(&m, n)) {
        CHECK_EQ(r, UV_ERANGE);
        CHECK_EQ(queued, 0);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        sl_ctx_waiter_free(&ctx, w);
        stats[ACQ_RANGE]++;
      } else if (m.len == 0 && m_fits(&m, n)) {
        CHECK_EQ(r, 0);
        CHECK_EQ(queued, 0);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        m.in_use += n;
        m.held[owner] += n;
        sl_ctx_waiter_free(&ctx, w);
      } else {
        m_entry_t e = {w, next_id, n, prio, owner};
        CHECK_EQ(r, 0);
        CHECK_EQ(queued, 1);
        m_insert(&m, e);
        k = m_dispatch(&m, 1, ids);
      }
      next_id++;
      stats[ACQ]++;
      m_check_list(&out, SL_WAITER_GRANTED, ids, k, step);
    } else if (op < 43) {
      /* try_take */
      uint32_t n = 1 + rnd() % 4;
      int owner = (int) (rnd() % M_STAKES);
      int expect = m.len == 0 && m_fits(&m, n);
      CHECK_EQ(sl_gate_try_take(&st[owner], n), expect ? 0 : UV_EBUSY);
      if (expect) {
        m.in_use += n;
        m.held[owner] += n;
      }
      stats[TRY]++;
    } else if (op < 76) {
      /* release: all a stake holds, or a few, sometimes more than it holds */
      int owner = (int) (rnd() % M_STAKES);
      int64_t n = rnd() % 3 == 0 ? m.held[owner] : (int64_t) (rnd() % 6);
      uint32_t max = rnd() % 3;
      int r = sl_gate_release(&st[owner], n, max, &out);
      if (n > m.held[owner]) {
        CHECK_EQ(r, UV_ERANGE);
        stats[REL_RANGE]++;
      } else {
        CHECK_EQ(r, 0);
        m.in_use -= n;
        m.held[owner] -= n;
        k = m_dispatch(&m, max, ids);
      }
      stats[REL]++;
      m_check_list(&out, SL_WAITER_GRANTED, ids, k, step);
    } else if (op < 82) {
      /* set_permits (refusing who can never fit), with or without a
       * dispatch after it */
      uint32_t x = rnd() % 12;
      int64_t p = x == 11 ? SL_INFINITE : (int64_t) x;
      sl_gate_set_permits(&st[rnd() % M_STAKES], p, &out);
      m.permits = p;
      k = m_refuse(&m, ids);
      stats[REFUSED] += (uint64_t) k;
      m_check_list(&out, SL_WAITER_REFUSED, ids, k, step);
      if (rnd() % 2) {
        sl_gate_dispatch(&st[rnd() % M_STAKES], &out);
        k = m_dispatch(&m, 0, ids);
        m_check_list(&out, SL_WAITER_GRANTED, ids, k, step);
      }
      stats[SET]++;
    } else if (op < 94) {
      /* cancel a queued waiter (the head more often), found by its token
       * as an abort does; or a stray one */
      if (m.len > 0 && rnd() % 8 != 0) {
        int pos = rnd() % 3 == 0 ? 0 : (int) (rnd() % (uint32_t) m.len);
        sl_waiter_t* w = m.q[pos].w;
        uint32_t index = w->index;
        uint64_t seq = w->seq;
        CHECK(sl_ctx_waiter_find(&ctx, index, seq) == w);
        CHECK_EQ(sl_gate_cancel(w, &out), 0);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        m_remove(&m, pos);
        k = m_dispatch(&m, 0, ids);
        m_check_list(&out, SL_WAITER_GRANTED, ids, k, step);
        CHECK_EQ(sl_gate_cancel(w, &out), UV_ENOENT);
        sl_ctx_waiter_free(&ctx, w);
        CHECK(sl_ctx_waiter_find(&ctx, index, seq) == NULL);
      } else {
        sl_waiter_t* w = mk(&ctx, -1);
        CHECK_EQ(sl_gate_cancel(w, &out), UV_ENOENT);
        sl_ctx_waiter_free(&ctx, w);
      }
      stats[CANCEL]++;
    } else {
      /* clear one stake (or all three), in run order; no grants */
      int which = (int) (rnd() % (M_STAKES + 1)), i;
      for (o = 0; o < M_STAKES; o++) {
        if (which != M_STAKES && which != o)
          continue;
        sl_gate_clear(&st[o], &out);
        k = 0;
        for (i = 0; i < m.len;) {
          if (m.q[i].owner == o) {
            ids[k++] = m.q[i].id;
            m_remove(&m, i);
          } else {
            i++;
          }
        }
        m_check_list(&out, SL_WAITER_NEW, ids, k, step);
      }
      stats[CLEAR]++;
    }
    m_compare(&m, &g, st, step);
    CHECK_EQ(ctx.live, (uint64_t) m.len);
    if (step % 64 == 0) {
      check_structure(&g);
      check_books(&g, all, M_STAKES);
    }
  }
  /* Every op kind ran often. */
  CHECK(stats[ACQ] > 1000 && stats[ACQ_RANGE] > 100 && stats[TRY] > 1000 && stats[REL] > 1000 &&
        stats[REL_RANGE] > 100 && stats[SET] > 1000 && stats[REFUSED] > 100 &&
        stats[CANCEL] > 1000 && stats[CLEAR] > 100);

  for (o = 0; o < M_STAKES; o++) {
    sl_waiter_t* w;
    sl_gate_clear(&st[o], &out);
    while ((w = sl_wlist_shift(&out)) != NULL)
      sl_ctx_waiter_free(&ctx, w);
    CHECK_EQ(sl_gate_release(&st[o], m.held[o], 0, &out), 0);
    CHECK(out.head == NULL);
    sl_stake_close(&st[o]);
  }
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(ctx.live, 0);
  printf("  random: %llu acquires (%llu out of range), %llu releases (%llu out of range), "
         "%llu refused, %llu cancels, %llu clears\n",
         (unsigned long long) stats[ACQ], (unsigned long long) stats[ACQ_RANGE],
         (unsigned long long) stats[REL], (unsigned long long) stats[REL_RANGE],
         (unsigned long long) stats[REFUSED], (unsigned long long) stats[CANCEL],
         (unsigned long long) stats[CLEAR]);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* ------------------------------------------------------------ threads --- */

typedef struct {
  sl_gate_t* gate;
  sl_ctx_t ctx;
  sl_stake_t stake;
  uv_sem_t queued; /* posted by the thread when its waiter is queued */
  sl_waiter_t* w;
  int iterations;
  uint64_t via_ready; /* grants that came through the ready queue */
  uint64_t immediate;
} worker_t;

static int inside; /* holders of the single permit (under inside_lock) */
static uv_mutex_t inside_lock;

static void enter(void) {
  uv_mutex_lock(&inside_lock);
  CHECK_EQ(inside, 0);
  inside = 1;
  uv_mutex_unlock(&inside_lock);
}

static void leave(void) {
  uv_mutex_lock(&inside_lock);
  CHECK_EQ(inside, 1);
  inside = 0;
  uv_mutex_unlock(&inside_lock);
}

/* Waits until this thread's waiter comes through its ready queue. */
static sl_waiter_t* wait_ready(worker_t* t) {
  sl_wlist_t got;
  sl_waiter_t* w;
  sl_wlist_init(&got);
  for (;;) {
    sl_ctx_take_ready(&t->ctx, &got);
    if (got.head != NULL)
      break;
    uv_sleep(0);
  }
  w = sl_wlist_shift(&got);
  CHECK(got.head == NULL); /* one waiter per thread at a time */
  CHECK(w == t->w);
  CHECK_EQ(w->state, SL_WAITER_GRANTED);
  CHECK(w->stake == &t->stake);
  return w;
}

/* The deterministic hand-off: queue on the shared gate, tell the main
 * thread, and wait for the grant on the ready queue. */
static void handoff_thread(void* arg) {
  worker_t* t = arg;
  sl_wlist_t out;
  sl_waiter_t* w;
  int queued;
  sl_wlist_init(&out);
  t->w = mk(&t->ctx, 42);
  CHECK_EQ(sl_gate_acquire(&t->stake, t->w, 1, 0, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  CHECK(out.head == NULL);
  uv_sem_post(&t->queued);
  w = wait_ready(t);
  CHECK_EQ(id_of(w), 42);
  CHECK_EQ(sl_stake_held(&t->stake), 1);
  sl_ctx_waiter_free(&t->ctx, w);
  /* Release from this thread: nothing is queued, nothing granted. */
  CHECK_EQ(sl_gate_release(&t->stake, 1, 0, &out), 0);
  CHECK(out.head == NULL);
}

/* The stress loop: both threads take the single permit in turns, through
 * try_take, acquire (immediate or queued) and grants made by the other. */
static void stress_thread(void* arg) {
  worker_t* t = arg;
  sl_wlist_t out;
  int i;
  sl_wlist_init(&out);
  for (i = 0; i < t->iterations; i++) {
    if (i % 3 == 0 && sl_gate_try_take(&t->stake, 1) == 0) {
      t->immediate++;
    } else {
      int queued;
      t->w = mk(&t->ctx, i);
      CHECK_EQ(sl_gate_acquire(&t->stake, t->w, 1, (int32_t) (i % 2), &queued, &out), 0);
      if (!queued) {
        t->immediate++;
      } else if (out.head != NULL) {
        /* Granted in the call (head with room). */
        CHECK(sl_wlist_shift(&out) == t->w);
        CHECK_EQ(t->w->state, SL_WAITER_GRANTED);
        t->immediate++;
      } else {
        wait_ready(t);
        t->via_ready++;
      }
      sl_ctx_waiter_free(&t->ctx, t->w);
      t->w = NULL;
    }
    enter();
    if (i % 7 == 0)
      uv_sleep(0);
    leave();
    CHECK_EQ(sl_gate_release(&t->stake, 1, 0, &out), 0);
    /* Our own waiter is never queued while we release. */
    CHECK(out.head == NULL);
  }
}

static void test_threads(void) {
  sl_gate_t g;
  sl_ctx_t main_ctx;
  sl_stake_t sm;
  sl_gate_counts_t c;
  sl_wlist_t out;
  worker_t a, b;
  uv_thread_t ta, tb;
  sl_waiter_t* w;

  CHECK_EQ(uv_mutex_init(&inside_lock), 0);
  CHECK_EQ(sl_gate_init(&g, 1, 1), 0);
  CHECK_EQ(sl_ctx_init(&main_ctx), 0);
  sl_wlist_init(&out);
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  CHECK_EQ(sl_ctx_init(&a.ctx), 0);
  CHECK_EQ(sl_ctx_init(&b.ctx), 0);
  a.gate = b.gate = &g;
  sl_stake_open(&sm, &g, &main_ctx);
  sl_stake_open(&a.stake, &g, &a.ctx);
  sl_stake_open(&b.stake, &g, &b.ctx);
  CHECK(a.ctx.doorbell == NULL && b.ctx.doorbell == NULL);

  /* 1. The main thread holds the permit; the other thread's waiter is
   * granted by the main thread's release into that thread's ready queue,
   * not into the releaser's list. While it waits, the main thread's permit
   * keeps it alive. */
  CHECK_EQ(uv_sem_init(&a.queued, 0), 0);
  CHECK_EQ(sl_gate_try_take(&sm, 1), 0);
  CHECK_EQ(uv_thread_create(&ta, handoff_thread, &a), 0);
  uv_sem_wait(&a.queued);
  sl_gate_counts(&sm, &c);
  CHECK_EQ(c.npending, 1);
  CHECK_EQ(sl_ctx_keep(&a.ctx), 1);
  CHECK_EQ(sl_gate_release(&sm, 1, 0, &out), 0);
  CHECK(out.head == NULL);
  CHECK_EQ(uv_thread_join(&ta), 0);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(a.ctx.live, 0);
  CHECK_EQ(sl_ctx_keep(&a.ctx), 0);
  uv_sem_destroy(&a.queued);

  /* 2. A mixed list on the ready queue, taken in push order, appended to
   * what `out` already holds. */
  {
    sl_waiter_t *x, *y, *z;
    CHECK_EQ(sl_gate_try_take(&sm, 1), 0);
    x = queue(&a.stake, 1, 1, 0);
    z = queue(&sm, 3, 1, 0);
    y = queue(&a.stake, 2, 1, 0);
    (void) x;
    (void) y;
    (void) z;
    sl_gate_set_permits(&sm, 4, &out);
    EXPECT_NONE(&out);
    sl_gate_dispatch(&sm, &out);
    EXPECT_IDS(&out, 3); /* main's own grant, in the caller's list */
    w = mk(&a.ctx, 0);
    sl_wlist_push(&out, w);
    sl_ctx_take_ready(&a.ctx, &out);
    CHECK(sl_wlist_shift(&out) == w);
    sl_ctx_waiter_free(&a.ctx, w);
    EXPECT_IDS(&out, 1, 2);
    sl_ctx_take_ready(&a.ctx, &out);
    EXPECT_NONE(&out);
    CHECK(a.ctx.ready.head == NULL && a.ctx.ready.tail == NULL);
    CHECK_EQ(sl_stake_held(&a.stake), 2);
    CHECK_EQ(sl_stake_held(&sm), 2);
    CHECK_EQ(sl_gate_release(&a.stake, 2, 0, &out), 0);
    CHECK_EQ(sl_gate_release(&sm, 2, 0, &out), 0);
    sl_gate_set_permits(&sm, 1, &out);
    EXPECT_NONE(&out);
  }

  /* 3. clear on a shared gate: one stake's waiters only. */
  {
    CHECK_EQ(sl_gate_try_take(&sm, 1), 0);
    queue(&a.stake, 1, 1, 0);
    queue(&b.stake, 2, 1, 0);
    queue(&a.stake, 3, 1, 1);
    sl_gate_clear(&a.stake, &out);
    EXPECT_CLEARED(&out, 3, 1);
    CHECK_EQ(g.npending, 1);
    CHECK_EQ(sl_gate_release(&sm, 1, 0, &out), 0);
    CHECK(out.head == NULL);
    sl_ctx_take_ready(&b.ctx, &out);
    EXPECT_IDS(&out, 2);
    CHECK_EQ(sl_gate_release(&b.stake, 1, 0, &out), 0);
    check_structure(&g);
  }

  /* 4. Stress: two threads contending for one permit. */
  a.iterations = b.iterations = 20000;
  CHECK_EQ(uv_thread_create(&ta, stress_thread, &a), 0);
  CHECK_EQ(uv_thread_create(&tb, stress_thread, &b), 0);
  CHECK_EQ(uv_thread_join(&ta), 0);
  CHECK_EQ(uv_thread_join(&tb), 0);
  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(a.ctx.live, 0);
  CHECK_EQ(b.ctx.live, 0);
  CHECK(a.ctx.ready.head == NULL && b.ctx.ready.head == NULL);
  CHECK_EQ(a.immediate + a.via_ready, 20000);
  CHECK_EQ(b.immediate + b.via_ready, 20000);
  CHECK_EQ(a.ctx.keep, 0);
  CHECK_EQ(b.ctx.keep, 0);
  check_structure(&g);
  printf("  threads: %llu + %llu grants through the ready queues\n",
         (unsigned long long) a.via_ready, (unsigned long long) b.via_ready);

  sl_stake_close(&sm);
  sl_stake_close(&a.stake);
  sl_stake_close(&b.stake);
  CHECK(g.parties == NULL);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&main_ctx);
  sl_ctx_destroy(&a.ctx);
  sl_ctx_destroy(&b.ctx);
  uv_mutex_destroy(&inside_lock);
}

/* Four threads, each a Node env in miniature: its own ctx, a doorbell on
 * its own uv loop, two stakes (two limiters of one name) in one shared gate
 * of 1 to 4 permits. Each mixes try_take, acquire (waiting on its doorbell,
 * or aborting: the waiter looked up by its token and cancelled, racing the
 * grant), set_permits + dispatch (refusing other threads' waiters) and
 * counts. Checks: never more permits held than the gate ever had (4), every
 * waiter comes back exactly once (granted, refused or cancelled), a ring
 * for every grant (a missed one would hang: a watchdog fails the test), and
 * the books balance at the end. Under ThreadSanitizer: no data race. */
#define T4_THREADS 4
#define T4_MAX_PERMITS 4

typedef struct {
  sl_gate_t* gate;
  sl_ctx_t ctx;
  sl_stake_t stake[2];
  uv_loop_t loop;
  uv_async_t bell;
  uv_timer_t watchdog;
  sl_wlist_t ready; /* filled by the doorbell */
  uint64_t rng;
  int iterations;
  uint64_t immediate, granted, refused, erange, cancelled, lost_race, sets, rings, keeps;
} t4_t;

static int64_t t4_inside; /* permits held by the threads (under t4_lock) */
static uv_mutex_t t4_lock;

static uint32_t t4_rnd(t4_t* t) {
  t->rng ^= t->rng >> 12;
  t->rng ^= t->rng << 25;
  t->rng ^= t->rng >> 27;
  return (uint32_t) ((t->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static void t4_bell_cb(uv_async_t* a) {
  t4_t* t = a->data;
  sl_ctx_take_ready(&t->ctx, &t->ready);
  t->rings++;
  t->keeps += (uint64_t) sl_ctx_keep(&t->ctx); /* what the binding does here */
}

static void t4_watchdog_cb(uv_timer_t* h) {
  (void) h;
  fprintf(stderr, "threads4: a waiter got no doorbell for 60 s (a lost ring or a lost grant)\n");
  exit(1);
}

/* Runs the loop until the doorbell brought `w` back. */
static void t4_wait(t4_t* t, sl_waiter_t* w) {
  CHECK_EQ(uv_timer_start(&t->watchdog, t4_watchdog_cb, 60000, 0), 0);
  while (t->ready.head == NULL)
    uv_run(&t->loop, UV_RUN_ONCE);
  CHECK_EQ(uv_timer_stop(&t->watchdog), 0);
  CHECK(sl_wlist_shift(&t->ready) == w);
  CHECK(t->ready.head == NULL); /* one waiter per thread at a time */
}

static void t4_hold(int64_t n) {
  uv_mutex_lock(&t4_lock);
  t4_inside += n;
  CHECK(t4_inside <= T4_MAX_PERMITS);
  CHECK(t4_inside >= 0);
  uv_mutex_unlock(&t4_lock);
}

static void t4_thread(void* arg) {
  t4_t* t = arg;
  sl_wlist_t out;
  int i;

  sl_wlist_init(&out);
  sl_wlist_init(&t->ready);
  CHECK_EQ(uv_loop_init(&t->loop), 0);
  CHECK_EQ(uv_async_init(&t->loop, &t->bell, t4_bell_cb), 0);
  t->bell.data = t;
  CHECK_EQ(uv_timer_init(&t->loop, &t->watchdog), 0);
  sl_ctx_set_doorbell(&t->ctx, &t->bell);
  sl_stake_open(&t->stake[0], t->gate, &t->ctx);
  sl_stake_open(&t->stake[1], t->gate, &t->ctx);

  for (i = 0; i < t->iterations; i++) {
    sl_stake_t* s = &t->stake[t4_rnd(t) & 1];
    uint32_t op = t4_rnd(t) % 100, n = 1 + t4_rnd(t) % 4;
    int64_t got = 0;
    if (op < 15) {
      if (sl_gate_try_take(s, n) == 0) {
        got = n;
        t->immediate++;
      }
    } else if (op < 75) {
      sl_waiter_t* w = sl_ctx_waiter_new(&t->ctx);
      int queued = -1, r;
      CHECK(w != NULL);
      r = sl_gate_acquire(s, w, n, (int32_t) (t4_rnd(t) % 3), &queued, &out);
      CHECK(r == 0 || r == UV_ERANGE);
      if (r == UV_ERANGE) {
        CHECK_EQ(queued, 0);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        t->erange++;
      } else if (!queued) {
        got = n;
        t->immediate++;
      } else if (out.head != NULL) {
        CHECK(sl_wlist_shift(&out) == w);
        CHECK(out.head == NULL);
        CHECK_EQ(w->state, SL_WAITER_GRANTED);
        got = n;
        t->immediate++;
      } else {
        int waiting = 1;
        if (t4_rnd(t) % 3 == 0) {
          /* An abort: the binding finds the waiter by its token, then
           * cancels it; another thread may be granting or refusing it right
           * now. */
          if (t4_rnd(t) % 2)
            uv_sleep(0);
          CHECK(sl_ctx_waiter_find(&t->ctx, w->index, w->seq) == w);
          if (sl_gate_cancel(w, &out) == 0) {
            CHECK_EQ(w->state, SL_WAITER_NEW);
            t->cancelled++;
            waiting = 0;
          } else {
            t->lost_race++; /* granted or refused: it comes by the doorbell */
          }
          CHECK(out.head == NULL); /* no other waiter of ours to grant */
        }
        if (waiting) {
          t4_wait(t, w);
          if (w->state == SL_WAITER_GRANTED) {
            got = n;
            t->granted++;
          } else {
            CHECK_EQ(w->state, SL_WAITER_REFUSED);
            t->refused++;
          }
        }
      }
      sl_ctx_waiter_free(&t->ctx, w);
    } else if (op < 88) {
      sl_gate_set_permits(s, 1 + t4_rnd(t) % T4_MAX_PERMITS, &out);
      CHECK(out.head == NULL); /* no waiter of ours is queued */
      sl_gate_dispatch(s, &out);
      CHECK(out.head == NULL);
      t->sets++;
    } else {
      sl_gate_counts_t c;
      sl_gate_counts(s, &c);
      CHECK(c.permits >= 1 && c.permits <= T4_MAX_PERMITS);
      CHECK(c.in_use >= 0 && c.in_use <= T4_MAX_PERMITS);
      CHECK(c.npending >= 0 && c.npending < T4_THREADS);
      CHECK_EQ(sl_stake_held(s), 0);
    }
    if (got > 0) {
      CHECK_EQ(sl_stake_held(s), got);
      t4_hold(got);
      if (i % 5 == 0)
        uv_sleep(0);
      t4_hold(-got);
      CHECK_EQ(sl_gate_release(s, got, t4_rnd(t) % 2, &out), 0);
      CHECK(out.head == NULL);
    }
  }

  CHECK_EQ(t->ctx.live, 0);
  sl_stake_close(&t->stake[0]);
  sl_stake_close(&t->stake[1]);
  CHECK_EQ(sl_ctx_keep(&t->ctx), 0);
  sl_ctx_close(&t->ctx);
  uv_run(&t->loop, UV_RUN_NOWAIT); /* a last ring, if any */
  CHECK(t->ready.head == NULL);
  uv_close((uv_handle_t*) &t->bell, NULL);
  uv_close((uv_handle_t*) &t->watchdog, NULL);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  CHECK_EQ(uv_loop_close(&t->loop), 0);
}

static void test_threads4(void) {
  static t4_t ts[T4_THREADS];
  uv_thread_t tids[T4_THREADS];
  sl_gate_t g;
  sl_ctx_t main_ctx;
  sl_stake_t sm;
  uint64_t sum[9] = {0};
  int i;

  CHECK_EQ(uv_mutex_init(&t4_lock), 0);
  CHECK_EQ(sl_gate_init(&g, 2, 1), 0);
  CHECK_EQ(sl_ctx_init(&main_ctx), 0);
  sl_stake_open(&sm, &g, &main_ctx);
  t4_inside = 0;
  for (i = 0; i < T4_THREADS; i++) {
    memset(&ts[i], 0, sizeof(ts[i]));
    CHECK_EQ(sl_ctx_init(&ts[i].ctx), 0);
    ts[i].gate = &g;
    ts[i].rng = 0x1234567887654321ull * (uint64_t) (i + 1);
    ts[i].iterations = 20000;
  }
  for (i = 0; i < T4_THREADS; i++)
    CHECK_EQ(uv_thread_create(&tids[i], t4_thread, &ts[i]), 0);
  for (i = 0; i < T4_THREADS; i++)
    CHECK_EQ(uv_thread_join(&tids[i]), 0);

  CHECK_EQ(in_use_of(&g), 0);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(g.nkeep, 0);
  CHECK(g.parties == sm.party && sm.party->next == NULL);
  CHECK_EQ(t4_inside, 0);
  for (i = 0; i < T4_THREADS; i++) {
    t4_t* t = &ts[i];
    CHECK_EQ(t->ctx.keep, 0);
    CHECK_EQ(t->ctx.ringing, 0);
    sum[0] += t->immediate;
    sum[1] += t->granted;
    sum[2] += t->refused;
    sum[3] += t->erange;
    sum[4] += t->cancelled;
    sum[5] += t->lost_race;
    sum[6] += t->sets;
    sum[7] += t->rings;
    sum[8] += t->keeps;
    sl_ctx_destroy(&t->ctx);
  }
  printf("  threads4: %llu immediate, %llu granted by the doorbell, %llu refused, %llu out of "
         "range, %llu cancelled, %llu cancels that lost the race, %llu set_permits, %llu rings\n",
         (unsigned long long) sum[0], (unsigned long long) sum[1], (unsigned long long) sum[2],
         (unsigned long long) sum[3], (unsigned long long) sum[4], (unsigned long long) sum[5],
         (unsigned long long) sum[6], (unsigned long long) sum[7]);
  /* The mix happened: waits through the doorbell, refusals, aborts. */
  CHECK(sum[1] > 100 && sum[2] > 10 && sum[3] > 10 && sum[4] > 10 && sum[7] >= sum[1]);
  sl_stake_close(&sm);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&main_ctx);
  uv_mutex_destroy(&t4_lock);
}

/* A thread tears down (clears its waiter, closes its stake and its ctx,
 * closes its doorbell and frees it) while another thread's release grants
 * that waiter and rings that doorbell. sl_ctx_close must wait for the ring
 * in flight, so no uv_async_send reaches a closed or freed handle (ASan:
 * heap-use-after-free; TSan: a race), and the grant's permit must come back
 * with the stake whichever way the race goes. */
typedef struct {
  sl_gate_t* gate;
  sl_ctx_t ctx;
  sl_stake_t stake;
  uv_sem_t queued;
  int spin;
  int granted; /* the waiter came back granted (else cleared) */
} td_t;

static void td_thread(void* arg) {
  td_t* t = arg;
  uv_loop_t loop;
  uv_async_t* bell = malloc(sizeof(*bell));
  sl_wlist_t out, ready;
  sl_waiter_t* w;
  int queued, i;
  volatile int sink = 0;

  CHECK(bell != NULL);
  sl_wlist_init(&out);
  sl_wlist_init(&ready);
  CHECK_EQ(uv_loop_init(&loop), 0);
  CHECK_EQ(uv_async_init(&loop, bell, NULL), 0);
  bell->data = NULL; /* uv_async_init leaves it: this memory may be the last round's */
  sl_ctx_set_doorbell(&t->ctx, bell);
  sl_stake_open(&t->stake, t->gate, &t->ctx);
  w = mk(&t->ctx, 1);
  CHECK_EQ(sl_gate_acquire(&t->stake, w, 1, 0, &queued, &out), 0);
  CHECK_EQ(queued, 1);
  uv_sem_post(&t->queued);
  for (i = 0; i < t->spin; i++)
    sink += i;
  /* Teardown, in the binding's order. */
  sl_gate_clear(&t->stake, &out);
  sl_stake_close(&t->stake);
  sl_ctx_close(&t->ctx);
  bell->data = bell_closed; /* from here on, no one may ring it */
  sl_ctx_take_ready(&t->ctx, &ready);
  if (ready.head != NULL) {
    CHECK(sl_wlist_shift(&ready) == w);
    CHECK_EQ(w->state, SL_WAITER_GRANTED);
    CHECK(out.head == NULL);
    t->granted = 1;
  } else {
    CHECK(sl_wlist_shift(&out) == w);
    CHECK_EQ(w->state, SL_WAITER_NEW);
  }
  CHECK(ready.head == NULL && out.head == NULL);
  sl_ctx_waiter_free(&t->ctx, w);
  uv_close((uv_handle_t*) bell, NULL);
  CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  CHECK_EQ(uv_loop_close(&loop), 0);
  free(bell);
}

static void test_teardown_race(void) {
  enum { ROUNDS = 1000 };
  sl_gate_t g;
  sl_ctx_t main_ctx;
  sl_stake_t sm;
  sl_wlist_t out;
  int round, granted = 0;

  CHECK_EQ(sl_gate_init(&g, 1, 1), 0);
  CHECK_EQ(sl_ctx_init(&main_ctx), 0);
  sl_stake_open(&sm, &g, &main_ctx);
  sl_wlist_init(&out);
  rng_state = 0xC0FFEE;
  ring_delay_ms = 1;
  for (round = 0; round < ROUNDS; round++) {
    td_t t;
    uv_thread_t tid;
    memset(&t, 0, sizeof(t));
    t.gate = &g;
    t.spin = (int) (rnd() % 2000);
    CHECK_EQ(sl_ctx_init(&t.ctx), 0);
    CHECK_EQ(uv_sem_init(&t.queued, 0), 0);
    CHECK_EQ(sl_gate_try_take(&sm, 1), 0);
    CHECK_EQ(uv_thread_create(&tid, td_thread, &t), 0);
    uv_sem_wait(&t.queued);
    CHECK_EQ(sl_gate_release(&sm, 1, 0, &out), 0);
    CHECK(out.head == NULL);
    CHECK_EQ(uv_thread_join(&tid), 0);
    CHECK_EQ(in_use_of(&g), 0);
    CHECK_EQ(g.npending, 0);
    CHECK(g.parties == sm.party && sm.party->next == NULL);
    CHECK_EQ(t.ctx.live, 0);
    CHECK_EQ(t.ctx.ringing, 0);
    granted += t.granted;
    uv_sem_destroy(&t.queued);
    sl_ctx_destroy(&t.ctx);
  }
  ring_delay_ms = 0;
  printf("  teardown: %d of %d waiters granted during teardown, the rest cleared\n", granted,
         ROUNDS);
  sl_stake_close(&sm);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&main_ctx);
}

/* ---------------------------------------------------------------- main --- */

/* Fleet gates (gate.h): 0 permits, grants directed at one waiter by
 * (stake id, seq), across threads; the lead; the list of open stakes. */
static void test_fleet(void) {
  sl_ctx_t ca, cb;
  sl_gate_t g;
  sl_stake_t sa, sb, sc;
  sl_wlist_t out, ready;
  sl_waiter_t *w1, *w2, *w3, *w4;
  uint64_t ids[8], next = 0;

  CHECK_EQ(sl_ctx_init(&ca), 0);
  CHECK_EQ(sl_ctx_init(&cb), 0);
  sl_wlist_init(&out);
  sl_wlist_init(&ready);
  CHECK_EQ(sl_gate_init(&g, 0, 1), 0);
  CHECK_EQ(sl_stake_open(&sa, &g, &ca), 0);
  CHECK_EQ(sl_stake_open(&sb, &g, &cb), 0);
  CHECK(sa.id != 0 && sb.id > sa.id);

  /* Nothing is ever granted by the gate itself. */
  CHECK_EQ(sl_gate_try_take(&sa, 1), UV_EBUSY);
  w1 = queue(&sa, 1, 2, 0);
  w2 = queue(&sb, 2, 1, 0);
  w3 = queue(&sa, 3, 1, 5);
  w4 = queue(&sb, 4, 3, 0);
  /* Granted out of queue order, whatever the room: w2 (behind w1) first,
   * by a's stake: it goes to b's ready queue with its value. */
  CHECK_EQ(sl_gate_grant_to(&sa, sb.id, w2->seq, 7.5, &out), 0);
  CHECK(out.head == NULL);
  sl_ctx_take_ready(&cb, &ready);
  CHECK(ready.head == w2 && w2->state == SL_WAITER_GRANTED && w2->value == 7.5);
  CHECK_EQ(sl_wlist_shift(&ready), w2);
  CHECK_EQ(sb.held, 1);
  CHECK_EQ(g.npending, 3);
  /* A stale or wrong token finds nothing: w2 again, a seq of another
   * stake, an id that is no stake. */
  CHECK_EQ(sl_gate_grant_to(&sa, sb.id, w2->seq, 1, &out), UV_ENOENT);
  CHECK_EQ(sl_gate_grant_to(&sa, sb.id, w1->seq, 1, &out), UV_ENOENT);
  CHECK_EQ(sl_gate_grant_to(&sa, 999999, w1->seq, 1, &out), UV_ENOENT);
  /* Another level, then the caller's own waiter: into `out`. */
  CHECK_EQ(sl_gate_grant_to(&sb, sa.id, w3->seq, 3, &out), 0);
  sl_ctx_take_ready(&ca, &ready);
  CHECK(ready.head == w3 && w3->value == 3);
  CHECK_EQ(sl_wlist_shift(&ready), w3);
  CHECK_EQ(sl_gate_grant_to(&sa, sa.id, w1->seq, 2, &out), 0);
  CHECK(out.head == w1 && w1->state == SL_WAITER_GRANTED);
  CHECK_EQ(sl_wlist_shift(&out), w1);
  CHECK_EQ(sa.held, 3);
  check_structure(&g);
  /* A release grants nobody (0 permits), and b's last waiter stays. */
  CHECK_EQ(sl_gate_release(&sa, 3, 0, &out), 0);
  CHECK(out.head == NULL);
  CHECK_EQ(g.npending, 1);

  /* The epoch: read, bumped, the same for every stake. */
  CHECK_EQ(sl_gate_epoch(&sa, 0), 0);
  CHECK_EQ(sl_gate_epoch(&sb, 1), 1);
  CHECK_EQ(sl_gate_epoch(&sa, 0), 1);
  /* The lead: the first to ask has it; a close frees it for the next. */
  CHECK_EQ(sl_gate_lead(&sb), sb.id);
  CHECK_EQ(sl_gate_lead(&sa), sb.id);
  /* The open stakes, and an id above them all. */
  CHECK_EQ(sl_gate_stakes(&sa, ids, 8, &next), 2);
  CHECK((ids[0] == sa.id && ids[1] == sb.id) || (ids[0] == sb.id && ids[1] == sa.id));
  CHECK(next > sb.id);
  CHECK_EQ(sl_gate_stakes(&sa, NULL, 0, &next), 2);
  CHECK_EQ(sl_stake_open(&sc, &g, &ca), 0);
  CHECK(sc.id >= next);
  CHECK_EQ(sl_gate_stakes(&sa, ids, 1, &next), 3); /* counts beyond `max` */
  sl_gate_clear(&sb, &out);
  CHECK(out.head == w4);
  sl_wlist_init(&out);
  sl_stake_close(&sb); /* gives back w2's permit, frees the lead */
  CHECK_EQ(sl_gate_lead(&sc), sc.id);
  CHECK_EQ(sl_gate_lead(&sa), sc.id);
  sl_gate_resign(&sa); /* not the leader: nothing changes */
  CHECK_EQ(sl_gate_lead(&sa), sc.id);
  sl_gate_resign(&sc);
  CHECK_EQ(sl_gate_lead(&sa), sa.id);
  sl_gate_resign(&sa);
  CHECK_EQ(sl_gate_lead(&sc), sc.id);
  CHECK_EQ(sl_gate_stakes(&sa, ids, 8, &next), 2);
  sl_stake_close(&sc);
  CHECK_EQ(sl_gate_lead(&sa), sa.id);
  sl_stake_close(&sa);
  CHECK(g.stakes == NULL && g.leader == 0 && g.parties == NULL);
  sl_ctx_waiter_free(&ca, w1);
  sl_ctx_waiter_free(&ca, w3);
  sl_ctx_waiter_free(&cb, w2);
  sl_ctx_waiter_free(&cb, w4);
  sl_gate_destroy(&g);
  sl_ctx_close(&ca);
  sl_ctx_close(&cb);
  sl_ctx_destroy(&ca);
  sl_ctx_destroy(&cb);
}

int main(int argc, char** argv) {
  static const struct {
    const char* name;
    void (*fn)(void);
    int threaded;
  } tests[] = {
      {"counts", test_counts, 0},
      {"fifo_and_priority", test_fifo_and_priority, 0},
      {"head_of_line", test_head_of_line, 0},
      {"set_permits", test_set_permits, 0},
      {"max_grants", test_max_grants, 0},
      {"cancel", test_cancel, 0},
      {"clear", test_clear, 0},
      {"slab", test_slab, 0},
      {"slab_returns_memory", test_slab_returns_memory, 0},
      {"slab_no_thrash", test_slab_no_thrash, 0},
      {"tokens", test_tokens, 0},
      {"range", test_range, 0},
      {"big_release", test_big_release, 0},
      {"keep", test_keep, 0},
      {"alloc_failures", test_alloc_failures, 0},
      {"levels", test_levels, 0},
      {"random", test_random, 0},
      {"threads", test_threads, 1},
      {"threads4", test_threads4, 1},
      {"teardown_race", test_teardown_race, 1},
      {"close_unshared", test_close_unshared, 0},
      {"fleet", test_fleet, 0},
  };
  size_t i, ran = 0;
  int threads_only = 0, a;
  const char* only = NULL;
  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--threads-only") == 0)
      threads_only = 1;
    else if (strncmp(argv[a], "--only=", 7) == 0)
      only = argv[a] + 7;
    else {
      fprintf(stderr, "usage: %s [--threads-only] [--only=NAME]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  real_async_send = (int (*)(uv_async_t*)) dlsym(RTLD_NEXT, "uv_async_send");
  CHECK(real_async_send != NULL);
  for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    if ((threads_only && !tests[i].threaded) || (only != NULL && strcmp(only, tests[i].name) != 0))
      continue;
    tests[i].fn();
    printf("ok %zu - %s\n", ++ran, tests[i].name);
  }
  if (ran == 0) {
    fprintf(stderr, "gate_test: no test matched\n");
    return 2;
  }
  printf("gate_test: %zu tests passed\n", ran);
  return 0;
}
