// sources: src/core/registry.c src/core/gate.c src/core/alloc.c
// tsan: --threads-only
/* The registry of named gates on its own: names compared with their length
 * (bug 8), attach-only, capacity conflicts, refcounts, allocation failure,
 * and threads opening, using and closing the same names at once.
 *
 * Plain C, as gate_test.c: CHECK prints file:line and exits 1. Built with
 * ASan/UBSan and run under valgrind by scripts/test.js; `--threads-only`
 * runs the threaded test alone (the ThreadSanitizer run of
 * scripts/sanitize.js). */
#include "core/alloc.h"
#include "core/gate.h"
#include "core/registry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void test_names(void) {
  static char longname[SL_NAME_MAX + 1];
  sl_gate_t *a, *a2, *ab, *ac, *l, *none = NULL;
  sl_gate_t* out;
  int64_t existing = -7;
  sl_ctx_t ctx;
  sl_stake_t s;
  sl_wlist_t list;
  uint64_t base = sl_registry_count();

  CHECK_EQ(base, 0);
  CHECK_EQ(sl_ctx_init(&ctx), 0);
  sl_wlist_init(&list);

  /* Created with its capacity, shared; opened again: the same gate. */
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, 3, &a, &existing), 0);
  CHECK_EQ(existing, -7); /* only set on UV_EEXIST */
  CHECK(a->shared);
  CHECK_EQ(a->permits, 3);
  CHECK_EQ(sl_registry_count(), 1);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, 3, &a2, &existing), 0);
  CHECK(a2 == a);
  CHECK_EQ(sl_registry_count(), 1);
  /* Attach only (permits < 0): any capacity. */
  out = NULL;
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, -1, &out, &existing), 0);
  CHECK(out == a);
  sl_registry_close(out);
  /* Another capacity: UV_EEXIST with the one it has; *out untouched. */
  out = none;
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, 4, &out, &existing), UV_EEXIST);
  CHECK_EQ(existing, 3);
  CHECK(out == NULL);
  /* The capacity changed by an opener is what the next opener must match. */
  sl_stake_open(&s, a, &ctx);
  sl_gate_set_permits(&s, 5, &list);
  CHECK(list.head == NULL);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, 3, &out, &existing), UV_EEXIST);
  CHECK_EQ(existing, 5);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, 5, &out, &existing), 0);
  CHECK(out == a);
  sl_registry_close(out);
  sl_stake_close(&s);

  /* No such gate to attach to. */
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "b", 1, -1, &out, &existing), UV_ENOENT);
  CHECK_EQ(sl_registry_count(), 1);

  /* Bug 8: names are bytes with a length. "a\0b", "a\0c" and "a" are three
   * gates; a prefix is another gate. */
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a\0b", 3, 1, &ab, &existing), 0);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a\0c", 3, 2, &ac, &existing), 0);
  CHECK(ab != a && ac != a && ab != ac);
  CHECK_EQ(ab->permits, 1);
  CHECK_EQ(ac->permits, 2);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a\0b", 2, -1, &out, &existing), UV_ENOENT);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "ab", 2, -1, &out, &existing), UV_ENOENT);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a\0b", 3, -1, &out, &existing), 0);
  CHECK(out == ab);
  sl_registry_close(out);
  CHECK_EQ(sl_registry_count(), 3);
  /* A fleet gate (the local side of a Redis gate) of the same name is
   * another gate: its own namespace. */
  CHECK_EQ(sl_registry_open(SL_REGISTRY_FLEET, "a", 1, -1, &out, &existing), UV_ENOENT);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_FLEET, "a", 1, 0, &out, &existing), 0);
  CHECK(out != a && out->permits == 0);
  sl_registry_close(out);
  CHECK_EQ(sl_registry_count(), 3);

  /* Length limits. */
  memset(longname, 'x', sizeof(longname));
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "", 0, 1, &out, &existing), UV_EINVAL);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, longname, SL_NAME_MAX + 1, 1, &out, &existing),
           UV_EINVAL);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, longname, SL_NAME_MAX, 1, &l, &existing), 0);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, longname, SL_NAME_MAX - 1, -1, &out, &existing),
           UV_ENOENT);
  CHECK_EQ(sl_registry_count(), 4);

  /* A gate lives until its last opener closes it. */
  sl_registry_close(a);
  CHECK_EQ(sl_registry_count(), 4);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, -1, &out, &existing), 0);
  CHECK(out == a);
  sl_registry_close(out);
  sl_registry_close(a2);
  CHECK_EQ(sl_registry_count(), 3);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, -1, &out, &existing), UV_ENOENT);
  /* A new gate of the same name starts afresh. */
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "a", 1, 9, &a, &existing), 0);
  CHECK_EQ(a->permits, 9);
  sl_registry_close(a);
  sl_registry_close(ab);
  sl_registry_close(ac);
  sl_registry_close(l);
  CHECK_EQ(sl_registry_count(), 0);
  sl_ctx_destroy(&ctx);
}

/* Creating a gate allocates once; when that fails: UV_ENOMEM, nothing
 * registered, *out untouched, nothing leaked. Opening an existing gate
 * allocates nothing. */
static void test_alloc_failure(void) {
  sl_gate_t *g = NULL, *g2 = NULL;
  int64_t existing = -1;
  uint64_t k;
  int failed = 0;

  for (k = 1;; k++) {
    int r;
    CHECK(k < 10);
    sl_alloc_fail_at(k);
    r = sl_registry_open(SL_REGISTRY_GATE, "oom", 3, 2, &g, &existing);
    sl_alloc_fail_at(0);
    if (r == 0)
      break;
    CHECK_EQ(r, UV_ENOMEM);
    CHECK(g == NULL);
    CHECK_EQ(existing, -1);
    CHECK_EQ(sl_registry_count(), 0);
    CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "oom", 3, -1, &g2, &existing), UV_ENOENT);
    failed++;
  }
  CHECK_EQ(failed, 1);
  CHECK(g != NULL);
  CHECK_EQ(g->permits, 2);
  CHECK_EQ(sl_registry_count(), 1);
  sl_alloc_fail_at(1);
  CHECK_EQ(sl_registry_open(SL_REGISTRY_GATE, "oom", 3, 2, &g2, &existing), 0);
  sl_alloc_fail_at(0);
  CHECK(g2 == g);
  sl_registry_close(g2);
  sl_registry_close(g);
  CHECK_EQ(sl_registry_count(), 0);
}

/* Threads opening (or attaching to) three names at once, taking and
 * releasing permits through stakes, and closing: the registry lock, the
 * gate locks and the refcounts under ThreadSanitizer. A gate has 1 permit;
 * each thread holds at most one at a time and waits for a grant only while
 * holding none, so someone can always go on. */
#define RT_THREADS 4
#define RT_ROUNDS 3000

static uv_barrier_t rt_start;

typedef struct {
  sl_ctx_t ctx;
  uint64_t rng;
  uint64_t opened, attached, absent, waited;
} rt_t;

static uint32_t rt_rnd(rt_t* t) {
  t->rng ^= t->rng >> 12;
  t->rng ^= t->rng << 25;
  t->rng ^= t->rng >> 27;
  return (uint32_t) ((t->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static void rt_thread(void* arg) {
  static const char* names[] = {"one", "two", "three"};
  rt_t* t = arg;
  sl_wlist_t out;
  int i;

  sl_wlist_init(&out);
  uv_barrier_wait(&rt_start);
  for (i = 0; i < RT_ROUNDS; i++) {
    const char* name = names[rt_rnd(t) % 3];
    int attach = rt_rnd(t) % 4 == 0;
    sl_gate_t* g = NULL;
    int64_t existing = 0;
    sl_stake_t s;
    sl_waiter_t* w;
    int r, queued;

    r = sl_registry_open(SL_REGISTRY_GATE, name, strlen(name), attach ? -1 : 1, &g, &existing);
    if (r == UV_ENOENT) {
      CHECK(attach);
      t->absent++;
      continue;
    }
    CHECK_EQ(r, 0);
    if (attach)
      t->attached++;
    else
      t->opened++;
    sl_stake_open(&s, g, &t->ctx);
    w = sl_ctx_waiter_new(&t->ctx);
    CHECK(w != NULL);
    CHECK_EQ(sl_gate_acquire(&s, w, 1, 0, &queued, &out), 0);
    if (queued && out.head == NULL) {
      sl_wlist_t got;
      sl_wlist_init(&got);
      while (got.head == NULL) {
        sl_ctx_take_ready(&t->ctx, &got);
        if (got.head == NULL)
          uv_sleep(0);
      }
      CHECK(sl_wlist_shift(&got) == w);
      t->waited++;
    } else if (queued) {
      CHECK(sl_wlist_shift(&out) == w);
    }
    CHECK(out.head == NULL);
    CHECK_EQ(sl_stake_held(&s), 1);
    sl_ctx_waiter_free(&t->ctx, w);
    uv_sleep(0); /* hold it a while: others queue */
    if (rt_rnd(t) % 2)
      CHECK_EQ(sl_gate_release(&s, 1, 0, &out), 0);
    /* else: the close gives it back (a dropped semaphore) */
    CHECK(out.head == NULL);
    sl_stake_close(&s);
    sl_registry_close(g);
  }
  CHECK_EQ(t->ctx.live, 0);
}

static void test_threads(void) {
  static rt_t ts[RT_THREADS];
  uv_thread_t tids[RT_THREADS];
  uint64_t opened = 0, attached = 0, absent = 0, waited = 0;
  int i;

  CHECK_EQ(uv_barrier_init(&rt_start, RT_THREADS), 0);
  for (i = 0; i < RT_THREADS; i++) {
    memset(&ts[i], 0, sizeof(ts[i]));
    CHECK_EQ(sl_ctx_init(&ts[i].ctx), 0);
    ts[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t) (i + 1);
  }
  for (i = 0; i < RT_THREADS; i++)
    CHECK_EQ(uv_thread_create(&tids[i], rt_thread, &ts[i]), 0);
  for (i = 0; i < RT_THREADS; i++) {
    CHECK_EQ(uv_thread_join(&tids[i]), 0);
    opened += ts[i].opened;
    attached += ts[i].attached;
    absent += ts[i].absent;
    waited += ts[i].waited;
    sl_ctx_destroy(&ts[i].ctx);
  }
  uv_barrier_destroy(&rt_start);
  CHECK_EQ(sl_registry_count(), 0);
  CHECK_EQ(opened + attached + absent, RT_THREADS * RT_ROUNDS);
  CHECK(waited > 0);
  printf("  threads: %llu opened, %llu attached, %llu found no gate, %llu waited for a grant\n",
         (unsigned long long) opened, (unsigned long long) attached, (unsigned long long) absent,
         (unsigned long long) waited);
}

int main(int argc, char** argv) {
  static const struct {
    const char* name;
    void (*fn)(void);
    int threaded;
  } tests[] = {
      {"names", test_names, 0},
      {"alloc_failure", test_alloc_failure, 0},
      {"threads", test_threads, 1},
  };
  size_t i, ran = 0;
  int threads_only = argc > 1 && strcmp(argv[1], "--threads-only") == 0;
  if (argc > 2 || (argc == 2 && !threads_only)) {
    fprintf(stderr, "usage: %s [--threads-only]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    if (threads_only && !tests[i].threaded)
      continue;
    tests[i].fn();
    printf("ok %zu - %s\n", ++ran, tests[i].name);
  }
  printf("registry_test: %zu tests passed\n", ran);
  return 0;
}
