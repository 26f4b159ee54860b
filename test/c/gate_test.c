// sources: src/gate.c
/* The gate core on its own: counts, ordering, head-of-line blocking,
 * cancel/clear, the waiter slab, many priority levels, a randomized run
 * against a reference model, and a shared gate used by two threads.
 *
 * Plain C, no framework: CHECK prints file:line and exits 1. Built by
 * scripts/test.js with AddressSanitizer and UBSan; also clean under
 * valgrind --leak-check=full when built without sanitizers. */
#include "gate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                           \
  do {                                                                        \
    if (!(expr)) {                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

#define CHECK_EQ(a, b)                                                        \
  do {                                                                        \
    long long ca_ = (long long) (a), cb_ = (long long) (b);                   \
    if (ca_ != cb_) {                                                         \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n",    \
              __FILE__, __LINE__, #a, #b, ca_, cb_);                          \
      exit(1);                                                                \
    }                                                                         \
  } while (0)

/* ------------------------------------------------------------ helpers --- */

/* A waiter tagged with `id` (kept in the binding's `value` field). */
static sl_waiter_t* mk(sl_ctx_t* ctx, int id, void* owner) {
  sl_waiter_t* w = sl_ctx_waiter_new(ctx);
  CHECK(w != NULL);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  w->value = id;
  w->owner = owner;
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

/* Queues a new waiter that must not be granted now. */
static sl_waiter_t* queue(sl_gate_t* g, sl_ctx_t* ctx, int id, uint32_t n, int32_t prio) {
  sl_wlist_t granted;
  sl_waiter_t* w = mk(ctx, id, NULL);
  sl_wlist_init(&granted);
  CHECK_EQ(sl_gate_acquire(g, w, n, prio, ctx, &granted), 0);
  CHECK_EQ(w->state, SL_WAITER_QUEUED);
  CHECK(w->gate == g);
  CHECK(granted.head == NULL);
  return w;
}

/* Pops the grant list checking the ids in order; frees the waiters. */
static void expect_ids(sl_wlist_t* l, const int* ids, int n, int line) {
  int i;
  sl_waiter_t* w;
  for (i = 0; i < n; i++) {
    w = sl_wlist_shift(l);
    if (w == NULL || id_of(w) != ids[i]) {
      fprintf(stderr, "%s:%d: expected id %d at position %d, got %d\n", __FILE__, line, ids[i],
              i, w == NULL ? -1 : id_of(w));
      exit(1);
    }
    CHECK(w->state == SL_WAITER_GRANTED || w->state == SL_WAITER_NEW);
    sl_ctx_waiter_free(w->ctx, w);
  }
  if (l->head != NULL) {
    fprintf(stderr, "%s:%d: %d more waiters than expected (next id %d)\n", __FILE__, line,
            list_len(l), id_of(l->head));
    exit(1);
  }
  CHECK(l->tail == NULL);
}

#define EXPECT_IDS(list, ...)                                                 \
  do {                                                                        \
    static const int ids_[] = {__VA_ARGS__};                                  \
    expect_ids((list), ids_, (int) (sizeof(ids_) / sizeof(ids_[0])), __LINE__); \
  } while (0)
#define EXPECT_NONE(list)                                                     \
  do {                                                                        \
    expect_ids((list), NULL, 0, __LINE__);                                    \
  } while (0)

/* Every structural invariant of the queue. */
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
      CHECK(w->gate == g);
      CHECK_EQ(w->priority, lv->priority);
      prev = w;
      count++;
    }
    CHECK(lv->tail == prev);
  }
  CHECK_EQ(count, g->npending);
}

/* -------------------------------------------------------------- tests --- */

static void test_counts(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  sl_waiter_t* w;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 3, 0), 0);
  sl_wlist_init(&granted);
  CHECK_EQ(g.permits, 3);
  CHECK_EQ(g.in_use, 0);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(sl_gate_available(&g), 3);

  CHECK_EQ(sl_gate_try_take(&g, 1), 1);
  CHECK_EQ(g.in_use, 1);
  CHECK_EQ(sl_gate_try_take(&g, 3), 0);
  CHECK_EQ(g.in_use, 1);
  CHECK_EQ(sl_gate_try_take(&g, 2), 1);
  CHECK_EQ(g.in_use, 3);
  CHECK_EQ(sl_gate_available(&g), 0);
  CHECK_EQ(sl_gate_try_take(&g, 1), 0);

  /* Releasing more than is in use changes nothing. */
  CHECK_EQ(sl_gate_release(&g, 4, 0, &ctx, &granted), UV_EINVAL);
  CHECK_EQ(g.in_use, 3);
  CHECK_EQ(sl_gate_release(&g, 3, 0, &ctx, &granted), 0);
  CHECK_EQ(g.in_use, 0);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), UV_EINVAL);
  CHECK_EQ(g.in_use, 0);
  EXPECT_NONE(&granted);

  /* acquire: taken at once when it fits and no one waits (w stays NEW). */
  w = mk(&ctx, 1, NULL);
  CHECK_EQ(sl_gate_acquire(&g, w, 2, 0, &ctx, &granted), 1);
  CHECK_EQ(w->state, SL_WAITER_NEW);
  CHECK_EQ(g.in_use, 2);
  CHECK_EQ(g.npending, 0);
  EXPECT_NONE(&granted);
  sl_ctx_waiter_free(&ctx, w);

  /* Otherwise queued, and granted by a release. */
  w = queue(&g, &ctx, 2, 2, 0);
  CHECK_EQ(w->n, 2);
  CHECK_EQ(w->priority, 0);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(sl_gate_try_take(&g, 1), 0); /* someone is queued */
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  CHECK_EQ(g.in_use, 3); /* 1 released, 2 granted */
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(granted.head, w);
  CHECK_EQ(w->state, SL_WAITER_GRANTED);
  EXPECT_IDS(&granted, 2);
  CHECK_EQ(sl_gate_release(&g, 3, 0, &ctx, &granted), 0);
  CHECK_EQ(g.in_use, 0);

  /* A request bigger than the capacity waits for a raise. */
  w = queue(&g, &ctx, 3, 5, 0);
  CHECK_EQ(sl_gate_available(&g), 3);
  sl_gate_set_permits(&g, 5);
  sl_gate_dispatch(&g, &ctx, &granted);
  EXPECT_IDS(&granted, 3);
  CHECK_EQ(g.in_use, 5);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_fifo_and_priority(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  int i;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 1, 0), 0);
  sl_wlist_init(&granted);
  CHECK_EQ(sl_gate_try_take(&g, 1), 1);

  /* FIFO within one priority. */
  for (i = 0; i < 5; i++)
    queue(&g, &ctx, i, 1, 0);
  CHECK_EQ(g.npending, 5);
  for (i = 0; i < 5; i++) {
    CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
    CHECK_EQ(list_len(&granted), 1);
    CHECK_EQ(id_of(granted.head), i);
    expect_ids(&granted, &i, 1, __LINE__);
    CHECK_EQ(g.in_use, 1);
  }
  CHECK_EQ(g.npending, 0);

  /* Higher priority first, FIFO within each. */
  queue(&g, &ctx, 0, 1, 0);
  queue(&g, &ctx, 1, 1, 5);
  queue(&g, &ctx, 2, 1, -3);
  queue(&g, &ctx, 3, 1, 5);
  queue(&g, &ctx, 4, 1, 0);
  queue(&g, &ctx, 5, 1, 10);
  queue(&g, &ctx, 6, 1, INT32_MIN);
  queue(&g, &ctx, 7, 1, INT32_MAX);
  CHECK_EQ(g.nlevels, 6);
  check_structure(&g);
  {
    static const int order[] = {7, 5, 1, 3, 0, 4, 2, 6};
    for (i = 0; i < 8; i++) {
      CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
      expect_ids(&granted, &order[i], 1, __LINE__);
      check_structure(&g);
    }
  }
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.npending, 0);

  /* With room for all, one release grants them all in order. */
  sl_gate_set_permits(&g, 10);
  CHECK_EQ(sl_gate_try_take(&g, 9), 1); /* in_use 10 */
  queue(&g, &ctx, 0, 1, 0);
  queue(&g, &ctx, 1, 1, 1);
  queue(&g, &ctx, 2, 1, 0);
  CHECK_EQ(sl_gate_release(&g, 5, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 1, 0, 2);
  CHECK_EQ(g.in_use, 8);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_head_of_line(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  sl_waiter_t* w;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 4, 0), 0);
  sl_wlist_init(&granted);
  CHECK_EQ(sl_gate_try_take(&g, 3), 1); /* 1 free */

  queue(&g, &ctx, 1, 3, 0); /* the big head: needs 3 */
  queue(&g, &ctx, 2, 1, 0); /* fits, but must not overtake the head */
  queue(&g, &ctx, 3, 1, 0);
  CHECK_EQ(g.npending, 3);
  CHECK_EQ(sl_gate_available(&g), 1);
  CHECK_EQ(sl_gate_try_take(&g, 1), 0);

  /* A new small acquire of the same priority queues behind too. */
  w = mk(&ctx, 4, NULL);
  CHECK_EQ(sl_gate_acquire(&g, w, 1, 0, &ctx, &granted), 0);
  EXPECT_NONE(&granted);

  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0); /* 2 free */
  EXPECT_NONE(&granted);
  CHECK_EQ(g.in_use, 2);
  /* 3 free: the head is granted the moment it fits, and nothing after it. */
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 1);
  CHECK_EQ(g.in_use, 4);
  CHECK_EQ(g.npending, 3);

  /* A higher priority acquire that fits is not blocked by a lower head. */
  CHECK_EQ(sl_gate_release(&g, 4, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 2, 3, 4);
  CHECK_EQ(g.in_use, 3); /* 1 free */
  queue(&g, &ctx, 5, 2, 0);          /* head at priority 0 needs 2, 1 free */
  w = mk(&ctx, 6, NULL);
  CHECK_EQ(sl_gate_acquire(&g, w, 1, 1, &ctx, &granted), 0); /* priority 1, fits */
  EXPECT_IDS(&granted, 6);
  CHECK_EQ(g.in_use, 4);
  CHECK_EQ(g.npending, 1);
  /* ...but a higher priority big head blocks a lower priority small one. */
  queue(&g, &ctx, 7, 4, 9);
  CHECK_EQ(sl_gate_release(&g, 2, 0, &ctx, &granted), 0); /* 2 free */
  EXPECT_NONE(&granted); /* 5 (needs 2) waits behind 7 (needs 4) */
  CHECK_EQ(sl_gate_release(&g, 2, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 7);
  CHECK_EQ(sl_gate_release(&g, 4, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 5);
  CHECK_EQ(g.in_use, 2);
  CHECK_EQ(g.npending, 0);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_set_permits(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  sl_waiter_t* w;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 1, 0), 0);
  sl_wlist_init(&granted);
  CHECK_EQ(sl_gate_try_take(&g, 1), 1);
  queue(&g, &ctx, 1, 1, 0);
  queue(&g, &ctx, 2, 1, 0);
  queue(&g, &ctx, 3, 1, 0);

  /* Raising does not dispatch by itself; dispatch grants what fits. */
  sl_gate_set_permits(&g, 3);
  CHECK_EQ(g.npending, 3);
  CHECK_EQ(sl_gate_available(&g), 2);
  sl_gate_dispatch(&g, &ctx, &granted);
  EXPECT_IDS(&granted, 1, 2);
  CHECK_EQ(g.in_use, 3);
  CHECK_EQ(g.npending, 1);

  /* Lowering never preempts: in_use may exceed permits. */
  sl_gate_set_permits(&g, 1);
  CHECK_EQ(g.in_use, 3);
  CHECK_EQ(sl_gate_available(&g), -2);
  CHECK_EQ(sl_gate_try_take(&g, 1), 0);
  sl_gate_dispatch(&g, &ctx, &granted);
  EXPECT_NONE(&granted);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  EXPECT_NONE(&granted);
  CHECK_EQ(sl_gate_available(&g), -1);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  EXPECT_NONE(&granted); /* in_use 1 == permits */
  CHECK_EQ(sl_gate_available(&g), 0);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 3);
  CHECK_EQ(g.in_use, 1);

  /* A raise not dispatched yet: a new acquire grants the head, one waiter
   * only (as p-limit's enqueue does); dispatch grants the rest. */
  queue(&g, &ctx, 4, 1, 0);
  sl_gate_set_permits(&g, 3);
  w = mk(&ctx, 5, NULL);
  CHECK_EQ(sl_gate_acquire(&g, w, 1, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 4);
  CHECK_EQ(w->state, SL_WAITER_QUEUED);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(g.in_use, 2);
  /* The new waiter itself can be the one granted. */
  CHECK_EQ(sl_gate_release(&g, 2, 1, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 5);
  CHECK_EQ(g.in_use, 1);
  sl_gate_set_permits(&g, 1);
  queue(&g, &ctx, 6, 1, 0);
  sl_gate_set_permits(&g, 2);
  w = mk(&ctx, 7, NULL);
  CHECK_EQ(sl_gate_acquire(&g, w, 1, 5, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 7); /* higher priority: it is the head, and fits */
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(sl_gate_release(&g, 2, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 6);

  /* SL_INFINITE: no limit. */
  sl_gate_set_permits(&g, SL_INFINITE);
  CHECK_EQ(sl_gate_available(&g), SL_INFINITE);
  CHECK_EQ(sl_gate_try_take(&g, UINT32_MAX), 1);
  CHECK_EQ(sl_gate_try_take(&g, UINT32_MAX), 1);
  CHECK_EQ(g.in_use, 1 + 2 * (int64_t) UINT32_MAX);
  CHECK_EQ(sl_gate_available(&g), SL_INFINITE);
  w = mk(&ctx, 8, NULL);
  CHECK_EQ(sl_gate_acquire(&g, w, UINT32_MAX, 0, &ctx, &granted), 1);
  sl_ctx_waiter_free(&ctx, w);
  /* Back to a finite capacity below what is in use. */
  sl_gate_set_permits(&g, 2);
  CHECK_EQ(sl_gate_available(&g), 2 - (1 + 3 * (int64_t) UINT32_MAX));
  queue(&g, &ctx, 9, 1, 0);
  queue(&g, &ctx, 10, 7, 0);
  sl_gate_set_permits(&g, SL_INFINITE);
  sl_gate_dispatch(&g, &ctx, &granted);
  EXPECT_IDS(&granted, 9, 10);
  CHECK_EQ(sl_gate_release(&g, UINT32_MAX, 0, &ctx, &granted), 0);
  CHECK_EQ(sl_gate_release(&g, UINT32_MAX, 0, &ctx, &granted), 0);
  CHECK_EQ(sl_gate_release(&g, UINT32_MAX, 0, &ctx, &granted), 0);
  CHECK_EQ(g.in_use, 1 + 1 + 7);

  /* Permits 0. */
  sl_gate_set_permits(&g, 0);
  CHECK_EQ(sl_gate_release(&g, 9, 0, &ctx, &granted), 0);
  CHECK_EQ(sl_gate_try_take(&g, 1), 0);
  queue(&g, &ctx, 11, 1, 0);
  CHECK_EQ(sl_gate_available(&g), 0);
  sl_gate_set_permits(&g, 1);
  sl_gate_dispatch(&g, &ctx, &granted);
  EXPECT_IDS(&granted, 11);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_max_grants(void) {
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  int i;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 10, 0), 0);
  sl_wlist_init(&granted);
  CHECK_EQ(sl_gate_try_take(&g, 10), 1);
  for (i = 0; i < 6; i++)
    queue(&g, &ctx, i, 1, 0);
  CHECK_EQ(sl_gate_release(&g, 5, 2, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 0, 1);
  CHECK_EQ(g.in_use, 7);
  CHECK_EQ(sl_gate_release(&g, 1, 1, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 2);
  CHECK_EQ(g.in_use, 7);
  sl_gate_dispatch(&g, &ctx, &granted);
  EXPECT_IDS(&granted, 3, 4, 5);
  CHECK_EQ(g.in_use, 10);
  /* max_grants larger than the queue. */
  queue(&g, &ctx, 6, 1, 0);
  CHECK_EQ(sl_gate_release(&g, 3, 100, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 6);
  CHECK_EQ(g.in_use, 8);
  /* UV_EINVAL with a limit too: nothing granted, nothing changed. */
  queue(&g, &ctx, 7, 5, 0);
  CHECK_EQ(sl_gate_release(&g, 9, 1, &ctx, &granted), UV_EINVAL);
  EXPECT_NONE(&granted);
  CHECK_EQ(g.in_use, 8);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(sl_gate_release(&g, 8, 1, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 7);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

static void test_cancel(void) {
  sl_ctx_t ctx;
  sl_gate_t g, other;
  sl_wlist_t granted;
  sl_waiter_t *a, *b, *c, *d, *e;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 4, 0), 0);
  CHECK_EQ(sl_gate_init(&other, 0, 0), 0);
  sl_wlist_init(&granted);
  CHECK_EQ(sl_gate_try_take(&g, 3), 1);

  a = queue(&g, &ctx, 1, 3, 0); /* big head */
  b = queue(&g, &ctx, 2, 1, 0);
  c = queue(&g, &ctx, 3, 1, 0);
  d = queue(&g, &ctx, 4, 1, 0);
  /* Cancelling the head lets the smaller waiters behind it through, while
   * they fit. */
  CHECK_EQ(sl_gate_cancel(&g, a, &ctx, &granted), 0);
  CHECK_EQ(a->state, SL_WAITER_NEW);
  CHECK(a->gate == NULL);
  (void) b;
  EXPECT_IDS(&granted, 2);
  CHECK_EQ(g.in_use, 4);
  CHECK_EQ(g.npending, 2);
  check_structure(&g);

  /* Not queued any more (or never): UV_ENOENT, nothing changes. */
  CHECK_EQ(sl_gate_cancel(&g, a, &ctx, &granted), UV_ENOENT);
  e = mk(&ctx, 5, NULL);
  CHECK_EQ(sl_gate_cancel(&g, e, &ctx, &granted), UV_ENOENT);
  /* Queued on another gate. */
  CHECK_EQ(sl_gate_acquire(&other, e, 1, 0, &ctx, &granted), 0);
  CHECK_EQ(sl_gate_cancel(&g, e, &ctx, &granted), UV_ENOENT);
  CHECK_EQ(other.npending, 1);
  CHECK_EQ(sl_gate_cancel(&other, e, &ctx, &granted), 0);
  CHECK_EQ(other.npending, 0);
  EXPECT_NONE(&granted);
  CHECK_EQ(g.npending, 2);
  sl_ctx_waiter_free(&ctx, a);
  sl_ctx_waiter_free(&ctx, e);

  /* Cancelling from the middle and the tail keeps FIFO. */
  a = queue(&g, &ctx, 6, 1, 0);
  e = queue(&g, &ctx, 7, 1, 0);
  CHECK_EQ(sl_gate_cancel(&g, d, &ctx, &granted), 0); /* middle: c d a e */
  CHECK_EQ(sl_gate_cancel(&g, e, &ctx, &granted), 0); /* tail */
  EXPECT_NONE(&granted);
  check_structure(&g);
  sl_ctx_waiter_free(&ctx, d);
  sl_ctx_waiter_free(&ctx, e);
  /* A granted waiter cannot be cancelled. */
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  CHECK_EQ(granted.head, c);
  CHECK_EQ(sl_gate_cancel(&g, c, &ctx, &granted), UV_ENOENT);
  EXPECT_IDS(&granted, 3);
  /* Cancelling the last waiter of a level drops the level. */
  b = queue(&g, &ctx, 8, 1, 7);
  CHECK_EQ(g.nlevels, 2);
  CHECK_EQ(sl_gate_cancel(&g, b, &ctx, &granted), 0);
  CHECK_EQ(g.nlevels, 1);
  CHECK_EQ(sl_gate_cancel(&g, a, &ctx, &granted), 0);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.npending, 0);
  EXPECT_NONE(&granted);
  sl_ctx_waiter_free(&ctx, a);
  sl_ctx_waiter_free(&ctx, b);

  /* Cancelling a high priority head unblocks a lower level. */
  b = queue(&g, &ctx, 9, 1, 0);
  a = queue(&g, &ctx, 10, 4, 3);
  c = queue(&g, &ctx, 11, 1, 3);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0); /* 1 free */
  EXPECT_NONE(&granted);
  CHECK_EQ(sl_gate_cancel(&g, a, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 11);
  sl_ctx_waiter_free(&ctx, a);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &ctx, &granted), 0);
  EXPECT_IDS(&granted, 9);

  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_gate_destroy(&other);
  sl_ctx_destroy(&ctx);
}

static void test_clear(void) {
  sl_ctx_t ctx, ctx2;
  sl_gate_t g;
  sl_wlist_t out, granted;
  int o1, o2; /* owner tags */
  sl_waiter_t* w;
  int i;
  /* id, priority, owner (1 or 2) */
  static const int spec[][3] = {{0, 0, 1}, {1, 2, 2}, {2, 0, 2}, {3, 2, 1}, {4, -1, 1},
                                {5, 0, 1}, {6, 9, 2}, {7, -1, 2}, {8, 2, 1}, {9, 9, 1}};

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_ctx_init(&ctx2), 0);
  CHECK_EQ(sl_gate_init(&g, 0, 0), 0);
  sl_wlist_init(&out);
  sl_wlist_init(&granted);

  for (i = 0; i < 10; i++) {
    w = queue(&g, &ctx, spec[i][0], 1, spec[i][1]);
    w->owner = spec[i][2] == 1 ? (void*) &o1 : (void*) &o2;
  }
  CHECK_EQ(g.nlevels, 4);
  /* By owner, in the order they would have run; the rest stay queued. */
  sl_gate_clear(&g, &o1, &out);
  for (w = out.head; w != NULL; w = w->next) {
    CHECK_EQ(w->state, SL_WAITER_NEW);
    CHECK(w->gate == NULL);
    CHECK(w->owner == &o1);
  }
  EXPECT_IDS(&out, 9, 3, 8, 0, 5, 4);
  CHECK_EQ(g.npending, 4);
  CHECK_EQ(g.nlevels, 4);
  check_structure(&g);
  sl_gate_clear(&g, &o1, &out);
  EXPECT_NONE(&out);
  /* Clearing does not grant, even when it removes a head that blocked a
   * waiter that fits now. */
  w = queue(&g, &ctx, 10, 3, 9);
  w->owner = &o1;
  sl_gate_set_permits(&g, 1); /* raised, not dispatched */
  sl_gate_clear(&g, NULL, &out);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.in_use, 0);
  EXPECT_IDS(&out, 6, 10, 1, 2, 7);

  /* clear_ctx: only one context's waiters. */
  sl_gate_set_permits(&g, 0);
  for (i = 0; i < 10; i++)
    queue(&g, i % 2 ? &ctx2 : &ctx, i, 1, spec[i][1]);
  sl_gate_clear_ctx(&g, &ctx2, &out);
  for (w = out.head; w != NULL; w = w->next)
    CHECK(w->ctx == &ctx2);
  EXPECT_IDS(&out, 9, 1, 3, 5, 7);
  check_structure(&g);
  sl_gate_clear_ctx(&g, &ctx, &out);
  EXPECT_IDS(&out, 6, 8, 0, 2, 4);
  CHECK_EQ(g.npending, 0);
  EXPECT_NONE(&granted);

  CHECK_EQ(ctx.live, 0);
  CHECK_EQ(ctx2.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
  sl_ctx_destroy(&ctx2);
}

static void test_slab(void) {
  enum { N = 3000 };
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  sl_waiter_t** ws = calloc(N, sizeof(*ws));
  sl_waiter_t *w, *w2;
  uint32_t gen, idx;
  int i;

  CHECK(ws != NULL);
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 0, 0), 0);
  sl_wlist_init(&granted);

  /* Fresh slots are handed out in index order across chunks. */
  for (i = 0; i < N; i++) {
    ws[i] = mk(&ctx, i, NULL);
    CHECK_EQ(ws[i]->index, i);
    CHECK_EQ(ws[i]->gen, 0);
    CHECK(ws[i]->ctx == &ctx);
    CHECK(sl_ctx_waiter_find(&ctx, (uint32_t) i, 0) == ws[i]);
  }
  CHECK_EQ(ctx.nchunks, (N + SL_CHUNK_SIZE - 1) / SL_CHUNK_SIZE);
  CHECK_EQ(ctx.nwaiters, N);
  CHECK_EQ(ctx.live, N);
  CHECK(sl_ctx_waiter_find(&ctx, N, 0) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, UINT32_MAX, 0) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, 1, 1) == NULL); /* wrong generation */

  /* Queue them all on one gate (pointers into three chunks stay valid
   * while the chunk array grows), then grant them in order. */
  for (i = 0; i < N; i++) {
    CHECK_EQ(sl_gate_acquire(&g, ws[i], 1, 0, &ctx, &granted), 0);
  }
  CHECK_EQ(g.npending, N);
  check_structure(&g);
  sl_gate_set_permits(&g, N);
  sl_gate_dispatch(&g, &ctx, &granted);
  for (i = 0; i < N; i++) {
    w = sl_wlist_shift(&granted);
    CHECK(w == ws[i]);
  }
  CHECK(granted.head == NULL);
  CHECK_EQ(g.in_use, N);

  /* Freeing bumps the generation: a stale token misses. */
  idx = ws[1500]->index;
  gen = ws[1500]->gen;
  sl_ctx_waiter_free(&ctx, ws[1500]);
  CHECK_EQ(ctx.live, N - 1);
  CHECK(sl_ctx_waiter_find(&ctx, idx, gen) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, idx, gen + 1) == NULL); /* free slot */
  /* The free list is reused (LIFO) before the slab grows. */
  sl_ctx_waiter_free(&ctx, ws[7]);
  w = mk(&ctx, 7, NULL);
  CHECK(w == ws[7]);
  CHECK_EQ(w->gen, 1);
  CHECK_EQ(w->index, 7);
  CHECK(w->next == NULL && w->prev == NULL && w->gate == NULL && w->timer == NULL);
  w2 = mk(&ctx, 1500, NULL);
  CHECK(w2 == ws[1500]);
  CHECK_EQ(w2->index, idx);
  CHECK(sl_ctx_waiter_find(&ctx, idx, gen) == NULL);
  CHECK(sl_ctx_waiter_find(&ctx, idx, gen + 1) == w2);
  CHECK(sl_ctx_waiter_find(&ctx, 7, 1) == w);
  CHECK(sl_ctx_waiter_find(&ctx, 7, 0) == NULL);
  CHECK_EQ(ctx.nwaiters, N);
  CHECK_EQ(ctx.live, N);
  /* Only the low SL_GEN_BITS are compared (a token fits in a double). */
  CHECK(sl_ctx_waiter_find(&ctx, 7, 1 + (1u << SL_GEN_BITS)) == w);
  /* A new slot after the free list is empty. */
  w = mk(&ctx, N, NULL);
  CHECK_EQ(w->index, N);
  sl_ctx_waiter_free(&ctx, w);

  /* Many generations on one slot. */
  for (i = 0; i < 5000; i++) {
    w = mk(&ctx, 0, NULL);
    CHECK_EQ(w->index, N);
    CHECK_EQ(w->gen, (uint32_t) i + 1);
    CHECK(sl_ctx_waiter_find(&ctx, N, (uint32_t) i + 1) == w);
    sl_ctx_waiter_free(&ctx, w);
    CHECK(sl_ctx_waiter_find(&ctx, N, (uint32_t) i + 1) == NULL);
  }

  for (i = 0; i < N; i++)
    sl_ctx_waiter_free(&ctx, ws[i]);
  CHECK_EQ(ctx.live, 0);
  CHECK_EQ(sl_gate_release(&g, N, 0, &ctx, &granted), 0);
  /* The whole slab again, from the free list: no growth. */
  for (i = 0; i < N + 1; i++)
    ws[i % N] = mk(&ctx, i, NULL), sl_ctx_waiter_free(&ctx, ws[i % N]);
  CHECK_EQ(ctx.nwaiters, N + 1);
  CHECK_EQ(ctx.live, 0);

  free(ws);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* xorshift64*, fixed seed: the same run every time. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t) ((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static void test_levels(void) {
  enum { P = 1000, PER = 3 };
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  int32_t prios[P];
  sl_waiter_t* ws[P * PER];
  int i, j, k;

  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 0, 0), 0);
  sl_wlist_init(&granted);

  /* Priorities spread over the int32 range, inserted in random order. */
  for (i = 0; i < P; i++)
    prios[i] = (int32_t) ((int64_t) i * 4294967 - 2147483647);
  for (i = P - 1; i > 0; i--) {
    j = (int) (rnd() % (uint32_t) (i + 1));
    int32_t t = prios[i];
    prios[i] = prios[j];
    prios[j] = t;
  }
  for (k = 0; k < PER; k++) {
    for (i = 0; i < P; i++) {
      ws[k * P + i] = queue(&g, &ctx, k * P + i, 1, prios[i]);
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
      CHECK_EQ(sl_gate_cancel(&g, ws[k * P + i], &ctx, &granted), 0);
      sl_ctx_waiter_free(&ctx, ws[k * P + i]);
      ws[k * P + i] = NULL;
    }
  }
  EXPECT_NONE(&granted);
  CHECK_EQ(g.nlevels, P - (P + 2) / 3);
  check_structure(&g);

  /* Re-add some levels (binary search finds existing ones, inserts new). */
  for (i = 0; i < P; i += 6) {
    ws[i] = queue(&g, &ctx, i, 1, prios[i]);
  }
  check_structure(&g);

  /* Drain: strictly descending priority, FIFO within a level. */
  sl_gate_set_permits(&g, SL_INFINITE);
  sl_gate_dispatch(&g, &ctx, &granted);
  CHECK_EQ(g.nlevels, 0);
  CHECK_EQ(g.npending, 0);
  {
    int64_t last_prio = INT64_MAX;
    int last_id = -1;
    sl_waiter_t* w;
    int n = 0;
    while ((w = sl_wlist_shift(&granted)) != NULL) {
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
  }
  CHECK_EQ(ctx.live, 0);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* ------------------------------------------------------ reference model --- */

typedef struct {
  sl_waiter_t* w;
  int id;
  uint32_t n;
  int32_t prio;
  int owner;
} m_entry_t;

#define M_MAX 256
typedef struct {
  int64_t permits;
  int64_t in_use;
  m_entry_t q[M_MAX]; /* in run order: priority descending, FIFO */
  int len;
} model_t;

static int m_fits(const model_t* m, uint32_t n) {
  if (m->permits == SL_INFINITE)
    return 1;
  return m->in_use <= m->permits && (int64_t) n <= m->permits - m->in_use;
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
    ids[k++] = m->q[0].id;
    m_remove(m, 0);
    if ((uint32_t) k == max)
      break;
  }
  return k;
}

static void m_compare(const model_t* m, const sl_gate_t* g, uint64_t step) {
  int i;
  uint32_t lv;
  if (g->in_use != m->in_use || g->npending != m->len || g->permits != m->permits) {
    fprintf(stderr, "step %llu: gate in_use %lld npending %lld permits %lld, model %lld %d %lld\n",
            (unsigned long long) step, (long long) g->in_use, (long long) g->npending,
            (long long) g->permits, (long long) m->in_use, m->len, (long long) m->permits);
    exit(1);
  }
  CHECK_EQ(sl_gate_available(g), m->permits == SL_INFINITE ? SL_INFINITE : m->permits - m->in_use);
  /* The queue in run order equals the model's. */
  i = 0;
  for (lv = g->nlevels; lv-- > 0;) {
    const sl_waiter_t* w;
    for (w = g->levels[lv].head; w != NULL; w = w->next) {
      CHECK(i < m->len);
      CHECK(w == m->q[i].w);
      CHECK_EQ(w->n, m->q[i].n);
      i++;
    }
  }
  CHECK_EQ(i, m->len);
}

/* Pops grants and compares them to the model's; frees them. */
static void m_check_grants(sl_wlist_t* l, const int* ids, int k, uint64_t step) {
  int i;
  for (i = 0; i < k; i++) {
    sl_waiter_t* w = sl_wlist_shift(l);
    if (w == NULL || id_of(w) != ids[i]) {
      fprintf(stderr, "step %llu: grant %d: expected id %d, got %d\n", (unsigned long long) step,
              i, ids[i], w == NULL ? -1 : id_of(w));
      exit(1);
    }
    CHECK_EQ(w->state, SL_WAITER_GRANTED);
    sl_ctx_waiter_free(w->ctx, w);
  }
  if (l->head != NULL) {
    fprintf(stderr, "step %llu: unexpected grant of id %d\n", (unsigned long long) step,
            id_of(l->head));
    exit(1);
  }
}

static void test_random(void) {
  enum { STEPS = 200000 };
  static model_t m;
  static int ids[M_MAX + 1], out_ids[M_MAX + 1];
  sl_ctx_t ctx;
  sl_gate_t g;
  sl_wlist_t granted;
  int owners[3];
  int next_id = 0;
  uint64_t step;
  uint64_t stats[8] = {0};

  rng_state = 0x5EED5EED12345678ull;
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  CHECK_EQ(sl_gate_init(&g, 4, 0), 0);
  sl_wlist_init(&granted);
  memset(&m, 0, sizeof(m));
  m.permits = 4;

  for (step = 0; step < STEPS; step++) {
    uint32_t op = rnd() % 100;
    int k = 0;
    if (op < 35 && m.len < M_MAX - 1) {
      /* acquire */
      uint32_t n = 1 + rnd() % 4;
      int32_t prio = (int32_t) (rnd() % 7) - 3;
      int owner = (int) (rnd() % 3);
      sl_waiter_t* w = mk(&ctx, next_id, &owners[owner]);
      int r = sl_gate_acquire(&g, w, n, prio, &ctx, &granted);
      stats[0]++;
      if (m.len == 0 && m_fits(&m, n)) {
        CHECK_EQ(r, 1);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        m.in_use += n;
        sl_ctx_waiter_free(&ctx, w);
      } else {
        m_entry_t e = {w, next_id, n, prio, owner};
        CHECK_EQ(r, 0);
        m_insert(&m, e);
        k = m_dispatch(&m, 1, ids);
      }
      next_id++;
      m_check_grants(&granted, ids, k, step);
    } else if (op < 45) {
      /* try_take */
      uint32_t n = 1 + rnd() % 4;
      int expect = m.len == 0 && m_fits(&m, n);
      CHECK_EQ(sl_gate_try_take(&g, n), expect);
      if (expect)
        m.in_use += n;
      stats[1]++;
    } else if (op < 80) {
      /* release, sometimes more than is in use */
      uint32_t n = 1 + rnd() % 5;
      uint32_t max = rnd() % 3;
      int r = sl_gate_release(&g, n, max, &ctx, &granted);
      if ((int64_t) n > m.in_use) {
        CHECK_EQ(r, UV_EINVAL);
        stats[3]++;
      } else {
        CHECK_EQ(r, 0);
        m.in_use -= n;
        k = m_dispatch(&m, max, ids);
      }
      stats[2]++;
      m_check_grants(&granted, ids, k, step);
    } else if (op < 86) {
      /* set_permits, with or without a dispatch after it */
      uint32_t x = rnd() % 12;
      int64_t p = x == 11 ? SL_INFINITE : (int64_t) x;
      sl_gate_set_permits(&g, p);
      m.permits = p;
      if (rnd() % 2) {
        sl_gate_dispatch(&g, &ctx, &granted);
        k = m_dispatch(&m, 0, ids);
        m_check_grants(&granted, ids, k, step);
      }
      stats[4]++;
    } else if (op < 97) {
      /* cancel a queued waiter (the head more often), or a stray one */
      if (m.len > 0 && rnd() % 8 != 0) {
        int pos = rnd() % 3 == 0 ? 0 : (int) (rnd() % (uint32_t) m.len);
        sl_waiter_t* w = m.q[pos].w;
        CHECK_EQ(sl_gate_cancel(&g, w, &ctx, &granted), 0);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        m_remove(&m, pos);
        k = m_dispatch(&m, 0, ids);
        m_check_grants(&granted, ids, k, step);
        CHECK_EQ(sl_gate_cancel(&g, w, &ctx, &granted), UV_ENOENT);
        sl_ctx_waiter_free(&ctx, w);
      } else {
        sl_waiter_t* w = mk(&ctx, -1, NULL);
        CHECK_EQ(sl_gate_cancel(&g, w, &ctx, &granted), UV_ENOENT);
        sl_ctx_waiter_free(&ctx, w);
      }
      stats[5]++;
    } else {
      /* clear by owner (or all), in run order; no grants */
      int which = (int) (rnd() % 4);
      sl_wlist_t out;
      int i, n = 0;
      sl_waiter_t* w;
      sl_wlist_init(&out);
      sl_gate_clear(&g, which == 3 ? NULL : &owners[which], &out);
      for (i = 0; i < m.len;) {
        if (which == 3 || m.q[i].owner == which) {
          out_ids[n++] = m.q[i].id;
          m_remove(&m, i);
        } else {
          i++;
        }
      }
      for (i = 0; i < n; i++) {
        w = sl_wlist_shift(&out);
        CHECK(w != NULL);
        CHECK_EQ(id_of(w), out_ids[i]);
        CHECK_EQ(w->state, SL_WAITER_NEW);
        sl_ctx_waiter_free(&ctx, w);
      }
      CHECK(out.head == NULL);
      stats[6]++;
    }
    m_compare(&m, &g, step);
    CHECK_EQ(ctx.live, (uint64_t) m.len);
    if (step % 64 == 0)
      check_structure(&g);
  }
  /* Every op kind ran often. */
  CHECK(stats[0] > 1000 && stats[1] > 1000 && stats[2] > 1000 && stats[3] > 100 &&
        stats[4] > 1000 && stats[5] > 1000 && stats[6] > 100);

  {
    sl_wlist_t out;
    sl_waiter_t* w;
    sl_wlist_init(&out);
    sl_gate_clear(&g, NULL, &out);
    while ((w = sl_wlist_shift(&out)) != NULL)
      sl_ctx_waiter_free(&ctx, w);
  }
  CHECK_EQ(ctx.live, 0);
  printf("  random: %d acquires, %llu releases (%llu EINVAL), %llu cancels, %llu clears\n",
         next_id, (unsigned long long) stats[2], (unsigned long long) stats[3],
         (unsigned long long) stats[5], (unsigned long long) stats[6]);
  sl_gate_destroy(&g);
  sl_ctx_destroy(&ctx);
}

/* ------------------------------------------------------------ threads --- */

typedef struct {
  sl_gate_t* gate;
  sl_ctx_t ctx;
  uv_sem_t queued;   /* posted by the thread when its waiter is queued */
  sl_waiter_t* w;
  int iterations;
  uint64_t via_ready; /* grants that came through the ready queue */
  uint64_t immediate;
} worker_t;

static volatile int inside; /* holders of the single permit (under the gate) */
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
  CHECK(w->ctx == &t->ctx);
  return w;
}

/* The deterministic hand-off: queue on the shared gate, tell the main
 * thread, and wait for the grant on the ready queue. */
static void handoff_thread(void* arg) {
  worker_t* t = arg;
  sl_wlist_t granted;
  sl_waiter_t* w;
  sl_wlist_init(&granted);
  t->w = mk(&t->ctx, 42, NULL);
  CHECK_EQ(sl_gate_acquire(t->gate, t->w, 1, 0, &t->ctx, &granted), 0);
  CHECK(granted.head == NULL);
  uv_sem_post(&t->queued);
  w = wait_ready(t);
  CHECK_EQ(id_of(w), 42);
  sl_ctx_waiter_free(&t->ctx, w);
  /* Release from this thread: nothing is queued, nothing granted. */
  CHECK_EQ(sl_gate_release(t->gate, 1, 0, &t->ctx, &granted), 0);
  CHECK(granted.head == NULL);
}

/* The stress loop: both threads take the single permit in turns, through
 * try_take, acquire (immediate or queued) and grants made by the other. */
static void stress_thread(void* arg) {
  worker_t* t = arg;
  sl_wlist_t granted;
  int i;
  sl_wlist_init(&granted);
  for (i = 0; i < t->iterations; i++) {
    if (i % 3 == 0 && sl_gate_try_take(t->gate, 1)) {
      t->immediate++;
    } else {
      int r;
      t->w = mk(&t->ctx, i, NULL);
      r = sl_gate_acquire(t->gate, t->w, 1, (int32_t) (i % 2), &t->ctx, &granted);
      CHECK(r == 0 || r == 1);
      if (r == 1) {
        t->immediate++;
      } else if (granted.head != NULL) {
        /* Granted in the call (head with room, after a raise). */
        CHECK(sl_wlist_shift(&granted) == t->w);
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
    CHECK_EQ(sl_gate_release(t->gate, 1, 0, &t->ctx, &granted), 0);
    /* Our own waiter is never queued while we release. */
    CHECK(granted.head == NULL);
  }
}

static void test_threads(void) {
  sl_gate_t g;
  sl_ctx_t main_ctx;
  sl_wlist_t granted;
  worker_t a, b;
  uv_thread_t ta, tb;
  sl_waiter_t* w;

  CHECK_EQ(uv_mutex_init(&inside_lock), 0);
  CHECK_EQ(sl_gate_init(&g, 1, 1), 0);
  CHECK_EQ(sl_ctx_init(&main_ctx), 0);
  sl_wlist_init(&granted);
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  CHECK_EQ(sl_ctx_init(&a.ctx), 0);
  CHECK_EQ(sl_ctx_init(&b.ctx), 0);
  a.gate = b.gate = &g;
  CHECK(a.ctx.doorbell == NULL && b.ctx.doorbell == NULL);

  /* 1. The main thread holds the permit; the other thread's waiter is
   * granted by the main thread's release into that thread's ready queue,
   * not into the releaser's grant list. */
  CHECK_EQ(uv_sem_init(&a.queued, 0), 0);
  CHECK_EQ(sl_gate_try_take(&g, 1), 1);
  CHECK_EQ(uv_thread_create(&ta, handoff_thread, &a), 0);
  uv_sem_wait(&a.queued);
  CHECK_EQ(g.npending, 1);
  CHECK_EQ(sl_gate_release(&g, 1, 0, &main_ctx, &granted), 0);
  CHECK(granted.head == NULL);
  CHECK_EQ(uv_thread_join(&ta), 0);
  CHECK_EQ(g.in_use, 0);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(a.ctx.live, 0);
  uv_sem_destroy(&a.queued);

  /* 2. A mixed list on the ready queue, taken in push order, appended to
   * what `out` already holds. */
  {
    sl_wlist_t out;
    sl_waiter_t *x, *y, *z;
    CHECK_EQ(sl_gate_try_take(&g, 1), 1);
    x = mk(&a.ctx, 1, NULL);
    y = mk(&a.ctx, 2, NULL);
    z = mk(&main_ctx, 3, NULL);
    CHECK_EQ(sl_gate_acquire(&g, x, 1, 0, &a.ctx, &granted), 0);
    CHECK_EQ(sl_gate_acquire(&g, z, 1, 0, &main_ctx, &granted), 0);
    CHECK_EQ(sl_gate_acquire(&g, y, 1, 0, &a.ctx, &granted), 0);
    sl_gate_set_permits(&g, 4);
    sl_gate_dispatch(&g, &main_ctx, &granted);
    EXPECT_IDS(&granted, 3); /* main's own grant, in the caller's list */
    sl_wlist_init(&out);
    w = mk(&a.ctx, 0, NULL);
    sl_wlist_push(&out, w);
    sl_ctx_take_ready(&a.ctx, &out);
    EXPECT_IDS(&out, 0, 1, 2);
    sl_ctx_take_ready(&a.ctx, &out);
    EXPECT_NONE(&out);
    CHECK(a.ctx.ready.head == NULL && a.ctx.ready.tail == NULL);
    CHECK_EQ(sl_gate_release(&g, 4, 0, &main_ctx, &granted), 0);
    sl_gate_set_permits(&g, 1);
  }

  /* 3. clear_ctx on a shared gate: one context's waiters only. */
  {
    sl_wlist_t out;
    sl_wlist_init(&out);
    CHECK_EQ(sl_gate_try_take(&g, 1), 1);
    queue(&g, &a.ctx, 1, 1, 0);
    queue(&g, &b.ctx, 2, 1, 0);
    queue(&g, &a.ctx, 3, 1, 1);
    sl_gate_clear_ctx(&g, &a.ctx, &out);
    EXPECT_IDS(&out, 3, 1);
    CHECK_EQ(g.npending, 1);
    CHECK_EQ(sl_gate_release(&g, 1, 0, &main_ctx, &granted), 0);
    CHECK(granted.head == NULL);
    sl_ctx_take_ready(&b.ctx, &out);
    EXPECT_IDS(&out, 2);
    CHECK_EQ(sl_gate_release(&g, 1, 0, &main_ctx, &granted), 0);
  }

  /* 4. Stress: two threads contending for one permit. */
  a.iterations = b.iterations = 20000;
  CHECK_EQ(uv_thread_create(&ta, stress_thread, &a), 0);
  CHECK_EQ(uv_thread_create(&tb, stress_thread, &b), 0);
  CHECK_EQ(uv_thread_join(&ta), 0);
  CHECK_EQ(uv_thread_join(&tb), 0);
  CHECK_EQ(g.in_use, 0);
  CHECK_EQ(g.npending, 0);
  CHECK_EQ(a.ctx.live, 0);
  CHECK_EQ(b.ctx.live, 0);
  CHECK(a.ctx.ready.head == NULL && b.ctx.ready.head == NULL);
  CHECK_EQ(a.immediate + a.via_ready, 20000);
  CHECK_EQ(b.immediate + b.via_ready, 20000);
  printf("  threads: %llu + %llu grants through the ready queues\n",
         (unsigned long long) a.via_ready, (unsigned long long) b.via_ready);

  sl_gate_destroy(&g);
  sl_ctx_destroy(&main_ctx);
  sl_ctx_destroy(&a.ctx);
  sl_ctx_destroy(&b.ctx);
  uv_mutex_destroy(&inside_lock);
}

int main(void) {
  static const struct {
    const char* name;
    void (*fn)(void);
  } tests[] = {
      {"counts", test_counts},
      {"fifo_and_priority", test_fifo_and_priority},
      {"head_of_line", test_head_of_line},
      {"set_permits", test_set_permits},
      {"max_grants", test_max_grants},
      {"cancel", test_cancel},
      {"clear", test_clear},
      {"slab", test_slab},
      {"levels", test_levels},
      {"random", test_random},
      {"threads", test_threads},
  };
  size_t i;
  setvbuf(stdout, NULL, _IONBF, 0);
  for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    tests[i].fn();
    printf("ok %zu - %s\n", i + 1, tests[i].name);
  }
  printf("gate_test: %zu tests passed\n", i);
  return 0;
}
