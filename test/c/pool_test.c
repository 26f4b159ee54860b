// sources: src/core/pool.c src/core/alloc.c
/* Unit tests of the pool core (src/core/pool.c) with fake callbacks and a real
 * libuv loop. Plain C, asserts; exits non-zero on the first failure.
 *
 * Timing. These tests also run under valgrind (SLUICE_VALGRIND=1), many times
 * slower, and next to other jobs, so nothing here may depend on how fast an
 * iteration of the loop runs:
 *   - a test waits for the pool with RUN_UNTIL, which keeps the loop alive
 *     with its own ref'd timer (the pool's timers are mostly unref'd, and a
 *     ref'd acquire timeout may expire first) and fails after a wall-clock
 *     limit instead of spinning;
 *   - a fake create that must fail is failed from the `flush` callback, in
 *     the same timer callback that asked for it (as the binding does), not
 *     after uv_run returns, so every retry is seen however late it runs;
 *   - checks on time are lower bounds on loop time (timers never fire early).
 *
 *   gcc -std=gnu11 -Wall -Wextra -fsanitize=address,undefined -I/usr/include/node \
 *       -Isrc test/c/pool_test.c src/core/pool.c src/core/alloc.c -luv
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/pool.h"

#include "check.h"

/* What the fake embedder was told, in order. */
enum { E_CREATE = 1, E_DESTROY, E_VALIDATE, E_RESOLVE, E_REJECT, E_EMIT, E_FLUSH };
typedef struct {
  int kind;
  uint32_t a;
  uint32_t b;
  int c;
  uint64_t t;  /* uv_now() when it was called */
  uint64_t hr; /* uv_hrtime() when it was called */
} ev_t;

static uv_loop_t loop;
static ev_t evs[4096];
static int nev;
static int closed_calls;

static void push(int kind, uint32_t a, uint32_t b, int c) {
  CHECK(nev < 4096);
  evs[nev].kind = kind;
  evs[nev].a = a;
  evs[nev].b = b;
  evs[nev].c = c;
  evs[nev].t = uv_now(&loop);
  evs[nev].hr = uv_hrtime();
  nev++;
}

/* fail_creates: the fake factory's create fails. The core must not be called
 * back from inside a callback, so failed creates are queued and reported by
 * fail_queued_creates(), which `flush` calls at the end of every timer
 * callback (and a test calls itself after a public call). */
static int fail_creates;
static uint32_t to_fail[64];
static int nto_fail;
/* Loop time right after each reported failure: the core arms the backoff
 * timer from the clock it reads then. */
static uint64_t fail_t[64];
static int nfail_t;

static void f_create(sl_pool_t* p, uint32_t s) {
  (void) p;
  push(E_CREATE, s, 0, 0);
  if (fail_creates) {
    CHECK(nto_fail < 64);
    to_fail[nto_fail++] = s;
  }
}
static void f_destroy(sl_pool_t* p, uint32_t s) {
  (void) p;
  push(E_DESTROY, s, 0, 0);
}
static void f_validate(sl_pool_t* p, uint32_t s) {
  (void) p;
  push(E_VALIDATE, s, 0, 0);
}
static void f_resolve(sl_pool_t* p, uint32_t t, uint32_t s) {
  (void) p;
  push(E_RESOLVE, t, s, 0);
}
static void f_reject(sl_pool_t* p, uint32_t t, int r, uint32_t s) {
  (void) p;
  push(E_REJECT, t, s, r);
}
static void f_emit(sl_pool_t* p, int e, uint32_t s) {
  (void) p;
  push(E_EMIT, s, 0, e);
}
static void f_closed(sl_pool_t* p) {
  (void) p;
  closed_calls++;
}

static void fail_queued_creates(sl_pool_t* p) {
  int i, n = nto_fail;
  nto_fail = 0;
  for (i = 0; i < n; i++) {
    CHECK(sl_pool_create_failed(p, to_fail[i]) == 0);
    if (nfail_t < 64)
      fail_t[nfail_t++] = uv_now(&loop);
  }
}

static void f_flush(sl_pool_t* p) {
  push(E_FLUSH, 0, 0, 0);
  fail_queued_creates(p);
}

static const sl_pool_ops_t ops = {f_create, f_destroy, f_validate, f_resolve,
                                  f_reject, f_emit,    f_flush,    f_closed};

static int count(int kind) {
  int i, n = 0;
  for (i = 0; i < nev; i++)
    n += evs[i].kind == kind;
  return n;
}

static const ev_t* last(int kind) {
  int i;
  for (i = nev - 1; i >= 0; i--)
    if (evs[i].kind == kind)
      return &evs[i];
  return NULL;
}

static sl_pool_config_t defaults(void) {
  sl_pool_config_t c;
  memset(&c, 0, sizeof(c));
  c.max = 1;
  c.min = 0;
  c.max_waiting = SL_POOL_COUNT_MAX;
  c.fifo = 1;
  c.priority_range = 1;
  c.num_tests = 3;
  c.soft_idle = -1;
  c.idle = 30000;
  c.backoff_min = 5;
  c.backoff_max = 20;
  return c;
}

static sl_pool_t pool;
static double counts[SL_POOL_NCOUNTS];

/* sl_pool_acquire's outcome as one code: GRANTED (*slot set), QUEUED
 * (*waiter set), or its negative error. */
#define GRANTED 1
#define QUEUED 0
static int acquire(int32_t priority, uint32_t token, uint32_t* slot, uint32_t* waiter) {
  sl_pool_acquired_t got;
  int r = sl_pool_acquire(&pool, priority, token, &got);
  if (r != 0)
    return r;
  if (got.granted) {
    *slot = got.slot;
    return GRANTED;
  }
  *waiter = got.waiter;
  return QUEUED;
}

/* The token served last, or -1. */
static int64_t tail(void) {
  uint32_t token;
  return sl_pool_tail_token(&pool, &token) == 0 ? (int64_t) token : -1;
}

static void open_pool(const sl_pool_config_t* c) {
  nev = 0;
  closed_calls = 0;
  fail_creates = 0;
  nto_fail = 0;
  nfail_t = 0;
  /* The core reads a fresh clock for every deadline; this only makes
   * uv_now() current for the tests' own checks. */
  uv_update_time(&loop);
  CHECK(sl_pool_open(&pool, &loop, c, &ops, counts, NULL) == 0);
}

/* Waiting for the pool. keepalive is a ref'd timer started only while a test
 * waits, so the loop always has something to wait for (and the test's
 * deadline gets checked at least every few ms); it is stopped, not closed,
 * between waits, so it never shows in uv_loop_alive() checks. */
static uv_timer_t keepalive;
static void keepalive_cb(uv_timer_t* t) {
  (void) t;
}

/* Wall-clock limit of one wait: far beyond any real need, even under
 * valgrind on a loaded machine; exceeding it means the pool is stuck. */
#define WAIT_LIMIT_MS 20000

static void wait_timed_out(const char* what, int line) {
  fprintf(stderr, "%s:%d: CHECK failed: no %s within %d ms\n", __FILE__, line, what, WAIT_LIMIT_MS);
  exit(1);
}

/* Runs the loop one iteration at a time until `cond` holds. */
#define RUN_UNTIL(cond)                                                                            \
  do {                                                                                             \
    uint64_t deadline_ = uv_hrtime() + (uint64_t) WAIT_LIMIT_MS * 1000000;                         \
    CHECK(uv_timer_start(&keepalive, keepalive_cb, 2, 2) == 0);                                    \
    while (!(cond)) {                                                                              \
      if (uv_hrtime() > deadline_)                                                                 \
        wait_timed_out(#cond, __LINE__);                                                           \
      uv_run(&loop, UV_RUN_ONCE);                                                                  \
    }                                                                                              \
    CHECK(uv_timer_stop(&keepalive) == 0);                                                         \
  } while (0)

static int has_emit(int event, uint32_t slot) {
  int i;
  for (i = 0; i < nev; i++)
    if (evs[i].kind == E_EMIT && evs[i].c == event && evs[i].a == slot)
      return 1;
  return 0;
}

static void close_pool(void) {
  sl_pool_close(&pool);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(closed_calls == 1);
  sl_pool_free(&pool);
}

/* Creates and adds one resource; returns its slot. */
static uint32_t add_resource(void) {
  uint32_t slot;
  const ev_t* e = last(E_CREATE);
  CHECK(e != NULL);
  slot = e->a;
  CHECK(sl_pool_created(&pool, slot) == 0);
  sl_pool_dispense(&pool);
  return slot;
}

static void test_basic(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot = 99, w = 0, s2;
  c.max = 2;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(counts[SL_POOL_SIZE] == 0 && counts[SL_POOL_SPARE] == 2);
  CHECK(acquire(0, 7, &slot, &w) == QUEUED);
  CHECK(count(E_CREATE) == 1);
  CHECK(counts[SL_POOL_SIZE] == 1 && counts[SL_POOL_PENDING] == 1 && counts[SL_POOL_CREATING] == 1);
  s2 = add_resource();
  CHECK(last(E_RESOLVE)->a == 7 && last(E_RESOLVE)->b == s2);
  CHECK(counts[SL_POOL_BORROWED] == 1 && counts[SL_POOL_PENDING] == 0 &&
        counts[SL_POOL_AVAILABLE] == 0);
  /* Double release, release of a never-used slot. */
  CHECK(sl_pool_release(&pool, s2) == 0);
  CHECK(sl_pool_release(&pool, s2) == UV_EINVAL);
  CHECK(sl_pool_release(&pool, 1234) == UV_EINVAL);
  CHECK(counts[SL_POOL_AVAILABLE] == 1);
  /* Fast path: granted synchronously, no resolve callback. */
  nev = 0;
  CHECK(acquire(0, 8, &slot, &w) == GRANTED);
  CHECK(slot == s2 && nev == 0);
  CHECK(sl_pool_slot_state(&pool, slot) == SL_SLOT_BORROWED);
  /* Destroy: the count drops at once; the slot is freed on the report. */
  CHECK(sl_pool_destroy(&pool, slot) == 0);
  CHECK(last(E_DESTROY)->a == slot);
  CHECK(counts[SL_POOL_SIZE] == 0 && counts[SL_POOL_DESTROYING] == 1);
  CHECK(sl_pool_destroyed(&pool, slot) == 0);
  CHECK(sl_pool_destroyed(&pool, slot) == UV_EINVAL);
  CHECK(counts[SL_POOL_DESTROYING] == 0);
  close_pool();
}

static void test_priority_and_fifo(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, holder;
  int i;
  int32_t prios[] = {2, 0, 1, 7, -1, 0, 1};
  uint32_t expect[] = {1, 5, 2, 6, 0, 3, 4}; /* tokens by service order */
  c.priority_range = 3;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 100, &slot, &w) == QUEUED);
  holder = add_resource();
  for (i = 0; i < 7; i++)
    CHECK(acquire(prios[i], (uint32_t) i, &slot, &w) == QUEUED);
  CHECK(counts[SL_POOL_PENDING] == 7);
  for (i = 0; i < 7; i++) {
    /* The tail (served last, what drain() waits for) is token 4 throughout. */
    CHECK(tail() == 4);
    nev = 0;
    CHECK(sl_pool_release(&pool, holder) == 0);
    CHECK(count(E_RESOLVE) == 1 && last(E_RESOLVE)->a == expect[i]);
  }
  CHECK(tail() == -1);
  CHECK(sl_pool_release(&pool, holder) == 0);
  close_pool();

  /* fifo 0: the most recently released resource goes first. */
  c = defaults();
  c.max = 2;
  c.fifo = 0;
  open_pool(&c);
  sl_pool_start(&pool);
  {
    uint32_t a, b;
    CHECK(acquire(0, 1, &slot, &w) == QUEUED);
    CHECK(acquire(0, 2, &slot, &w) == QUEUED);
    CHECK(count(E_CREATE) == 2);
    a = evs[0].a;
    b = evs[1].a;
    CHECK(sl_pool_created(&pool, a) == 0);
    CHECK(sl_pool_created(&pool, b) == 0);
    sl_pool_dispense(&pool);
    CHECK(sl_pool_release(&pool, a) == 0);
    CHECK(sl_pool_release(&pool, b) == 0);
    CHECK(acquire(0, 3, &slot, &w) == GRANTED && slot == b);
    CHECK(sl_pool_release(&pool, b) == 0);
  }
  close_pool();
}

static void test_limits(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w;
  c.max_waiting = 1;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED); /* spare: create */
  CHECK(acquire(0, 2, &slot, &w) == UV_EBUSY);
  /* cancel */
  CHECK(sl_pool_cancel(&pool, w, 999) == UV_ENOENT);
  CHECK(sl_pool_cancel(&pool, w, 1) == 0);
  CHECK(counts[SL_POOL_PENDING] == 0);
  sl_pool_drain(&pool);
  CHECK(!pool.drain_waiting); /* nothing to wait for */
  CHECK(acquire(0, 3, &slot, &w) == UV_ECANCELED);
  add_resource(); /* the late create goes idle */
  CHECK(counts[SL_POOL_AVAILABLE] == 1);
  sl_pool_clear_idle(&pool);
  CHECK(counts[SL_POOL_AVAILABLE] == 0 && counts[SL_POOL_SIZE] == 0);
  CHECK(count(E_CREATE) == 1); /* draining: min is not refilled */
  close_pool();

  CHECK(sl_pool_open(&pool, &loop, &c, &ops, counts, NULL) == 0);
  sl_pool_close(&pool);
  uv_run(&loop, UV_RUN_DEFAULT);
  sl_pool_free(&pool);
  c.priority_range = 0;
  CHECK(sl_pool_open(&pool, &loop, &c, &ops, counts, NULL) == UV_EINVAL);
}

static void test_drain(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  s = add_resource();
  CHECK(acquire(0, 2, &slot, &w) == QUEUED);
  sl_pool_drain(&pool);
  CHECK(pool.drain_waiting);
  CHECK(sl_pool_release(&pool, s) == 0); /* served to waiter 2 */
  CHECK(last(E_RESOLVE)->a == 2);
  CHECK(count(E_EMIT) == 0);
  CHECK(!uv_loop_alive(&loop));
  CHECK(pool.drain_waiting);
  CHECK(sl_pool_release(&pool, s) == 0); /* empty now: drained, no event */
  CHECK(!pool.drain_waiting);
  CHECK(count(E_EMIT) == 0);
  sl_pool_drain(&pool);
  CHECK(!pool.drain_waiting);
  close_pool();
}

static void test_timeout(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s;
  c.acquire_timeout = 10000;
  open_pool(&c);
  sl_pool_start(&pool);
  /* A served waiter leaves no ref'd timer behind. */
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  CHECK(uv_loop_alive(&loop));
  s = add_resource();
  CHECK(!uv_loop_alive(&loop));
  CHECK(sl_pool_release(&pool, s) == 0);
  /* Nor does a cancelled one. */
  CHECK(acquire(0, 2, &slot, &w) == GRANTED);
  CHECK(acquire(0, 3, &slot, &w) == QUEUED);
  CHECK(uv_loop_alive(&loop));
  CHECK(sl_pool_cancel(&pool, w, 3) == 0);
  CHECK(!uv_loop_alive(&loop));
  close_pool();

  c.acquire_timeout = 10;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 5, &slot, &w) == QUEUED);
  {
    /* A waiter with a timeout keeps the loop alive, on its own, until it is
     * rejected (no keepalive here). */
    uint64_t deadline = uv_hrtime() + (uint64_t) WAIT_LIMIT_MS * 1000000;
    while (counts[SL_POOL_PENDING] > 0) {
      CHECK(uv_loop_alive(&loop));
      if (uv_hrtime() > deadline)
        wait_timed_out("acquire timeout", __LINE__);
      uv_run(&loop, UV_RUN_ONCE);
    }
  }
  CHECK(last(E_REJECT)->a == 5 && last(E_REJECT)->c == SL_POOL_REASON_TIMEOUT);
  CHECK(count(E_FLUSH) == 1);
  CHECK(counts[SL_POOL_PENDING] == 0 && counts[SL_POOL_SIZE] == 1);
  /* The late create goes idle; nobody waits. */
  add_resource();
  CHECK(counts[SL_POOL_AVAILABLE] == 1);
  close_pool();
}

static void test_create_backoff(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w;
  uint64_t start, deadline_hi, delay = 5;
  int i, n, k;
  c.acquire_timeout = 250;
  open_pool(&c);
  sl_pool_start(&pool);
  fail_creates = 1;
  start = uv_now(&loop);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  CHECK(count(E_CREATE) == 1 && nto_fail == 1);
  /* The deadline was counted from a clock read between these two. */
  CHECK(evs[0].kind == E_CREATE && evs[0].t >= start);
  deadline_hi = evs[0].t + 250;
  fail_queued_creates(&pool);
  CHECK(last(E_EMIT)->c == SL_POOL_EV_CREATE_ERROR);
  CHECK(count(E_CREATE) == 1); /* no retry in the same call */
  CHECK(counts[SL_POOL_SIZE] == 0);
  /* Every retry fails (from `flush`, in the timer callback that asked for
   * it): retries come from the timer, with backoff, until the acquire times
   * out. */
  RUN_UNTIL(counts[SL_POOL_PENDING] == 0);
  CHECK(last(E_REJECT)->a == 1 && last(E_REJECT)->c == SL_POOL_REASON_TIMEOUT);
  CHECK(last(E_REJECT)->t >= start + 250);
  CHECK(counts[SL_POOL_CREATING] == 0 && nto_fail == 0);
  /* The delays double from backoff_min (5) up to backoff_max (20): retry k
   * was due `delay k` after the failure before it and before the acquire
   * deadline; the retry after the last one would have been due at or after
   * it. Only the count depends on the machine: 5 + 10 + 20 ms leave room for
   * at least 3 creates within 250 ms unless the process stalls for ~200 ms,
   * and timers never fire early, so there are 15 at most. */
  n = count(E_CREATE);
  CHECK(n >= 3 && n <= 15);
  CHECK(nfail_t == n);
  for (i = 1, k = 0; i < nev; i++) {
    if (evs[i].kind != E_CREATE)
      continue;
    CHECK(evs[i].t >= fail_t[k] + delay);
    CHECK(fail_t[k] + delay < deadline_hi);
    k++;
    delay = delay * 2 > 20 ? 20 : delay * 2;
  }
  CHECK(k == n - 1);
  CHECK(fail_t[k] + delay >= start + 250);
  close_pool();

  /* propagate_create_error rejects the first waiter with the error. */
  c = defaults();
  c.propagate_create_error = 1;
  c.priority_range = 2;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(1, 1, &slot, &w) == QUEUED);
  CHECK(acquire(0, 2, &slot, &w) == QUEUED);
  CHECK(sl_pool_create_failed(&pool, last(E_CREATE)->a) == 0);
  CHECK(last(E_REJECT)->a == 2 && last(E_REJECT)->c == SL_POOL_REASON_CREATE_ERROR);
  CHECK(counts[SL_POOL_PENDING] == 1);
  RUN_UNTIL(count(E_CREATE) == 2); /* the retry, which succeeds */
  add_resource();
  CHECK(last(E_RESOLVE)->a == 1);
  close_pool();

  /* min is refilled after failures. */
  c = defaults();
  c.max = 2;
  c.min = 2;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(count(E_CREATE) == 2);
  CHECK(sl_pool_create_failed(&pool, evs[0].a) == 0);
  CHECK(sl_pool_created(&pool, evs[1].a) == 0); /* success resets the backoff and refills */
  CHECK(count(E_CREATE) == 3);
  CHECK(sl_pool_created(&pool, last(E_CREATE)->a) == 0);
  CHECK(counts[SL_POOL_AVAILABLE] == 2);
  CHECK(!uv_loop_alive(&loop)); /* an idle pool keeps nothing alive */
  close_pool();
}

static void test_eviction(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s[3];
  int i;
  c.max = 3;
  c.idle = 1;
  c.eviction_interval = 5;
  c.num_tests = 2;
  open_pool(&c);
  sl_pool_start(&pool);
  for (i = 0; i < 3; i++) {
    CHECK(acquire(0, (uint32_t) i, &slot, &w) == QUEUED);
  }
  for (i = 0; i < 3; i++) {
    s[i] = evs[i].a;
    CHECK(sl_pool_created(&pool, s[i]) == 0);
  }
  sl_pool_dispense(&pool);
  for (i = 0; i < 3; i++)
    CHECK(sl_pool_release(&pool, s[i]) == 0);
  CHECK(!uv_loop_alive(&loop)); /* the evictor is unref'd */
  nev = 0;
  RUN_UNTIL(count(E_DESTROY) >= 3); /* the evictor alone would not keep it alive */
  CHECK(count(E_DESTROY) == 3);
  CHECK(counts[SL_POOL_SIZE] == 0);
  for (i = 0; i < 3; i++)
    CHECK(sl_pool_destroyed(&pool, s[i]) == 0);
  close_pool();
}

static void test_uses_leak_destroy_timeout(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s;
  c.max_uses = 2;
  c.leak_ms = 5;
  c.destroy_timeout = 5;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  s = add_resource();
  CHECK(sl_pool_release(&pool, s) == 0);
  CHECK(acquire(0, 2, &slot, &w) == GRANTED && slot == s);
  /* Borrowed past leak_ms: one LEAK event. */
  CHECK(acquire(0, 3, &slot, &w) == QUEUED);
  RUN_UNTIL(has_emit(SL_POOL_EV_LEAK, s));
  CHECK(count(E_EMIT) == 1);
  /* Second use ends: destroyed instead of going idle; a new one is created. */
  CHECK(sl_pool_release(&pool, s) == 0);
  CHECK(last(E_DESTROY)->a == s);
  /* Its destroy never reports: DESTROY_TIMEOUT. */
  RUN_UNTIL(has_emit(SL_POOL_EV_DESTROY_TIMEOUT, s));
  CHECK(count(E_EMIT) == 2); /* and the LEAK was not reported again */
  CHECK(counts[SL_POOL_PENDING] == 1);
  CHECK(sl_pool_destroyed(&pool, s) == 0);
  slot = add_resource();
  CHECK(last(E_RESOLVE)->a == 3 && last(E_RESOLVE)->b == slot);
  CHECK(sl_pool_release(&pool, slot) == 0);
  close_pool();
}

static void test_validate(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s;
  c.test_on_borrow = 1;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  s = add_resource();
  CHECK(last(E_VALIDATE)->a == s && count(E_RESOLVE) == 0);
  CHECK(sl_pool_validated(&pool, s, 0) == 0); /* invalid: destroyed, recreated */
  CHECK(last(E_DESTROY)->a == s);
  CHECK(count(E_CREATE) == 2);
  CHECK(sl_pool_destroyed(&pool, s) == 0);
  s = add_resource();
  CHECK(sl_pool_validated(&pool, s, 1) == 0);
  CHECK(last(E_RESOLVE)->a == 1 && last(E_RESOLVE)->b == s);
  CHECK(sl_pool_validated(&pool, s, 1) == UV_EINVAL);
  CHECK(sl_pool_release(&pool, s) == 0);
  close_pool();
}

static void test_close_with_waiters(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w;
  c.acquire_timeout = 1000;
  c.eviction_interval = 10;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  CHECK(sl_pool_create_failed(&pool, last(E_CREATE)->a) == 0);
  sl_pool_close(&pool);
  /* Reports after close are refused; nothing is called but `closed`. */
  nev = 0;
  CHECK(acquire(0, 2, &slot, &w) == UV_ECANCELED);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(closed_calls == 1 && nev == 0);
  sl_pool_free(&pool);
}

static void test_many_waiters(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s, i;
  const uint32_t n = 100000;
  c.priority_range = 4;
  open_pool(&c);
  sl_pool_start(&pool);
  for (i = 0; i < n; i++)
    CHECK(acquire((int32_t) (i % 4), i, &slot, &w) == QUEUED);
  s = add_resource();
  CHECK(counts[SL_POOL_PENDING] == n - 1);
  for (i = 1; i < n; i++) {
    nev = 0;
    CHECK(sl_pool_release(&pool, s) == 0);
    CHECK(count(E_RESOLVE) == 1);
  }
  CHECK(counts[SL_POOL_PENDING] == 0);
  CHECK(sl_pool_release(&pool, s) == 0);
  close_pool();
}

/* Spins for `ms` without running the loop: a busy server. */
static void busy(uint64_t ms) {
  uint64_t end = uv_hrtime() + ms * 1000000;
  while (uv_hrtime() < end)
    ;
}

/* Milliseconds since `since` (uv_hrtime), by the wall clock. */
static double elapsed_ms(uint64_t since, uint64_t until) {
  return (double) (until - since) / 1e6;
}

/* Every deadline counts from the moment it is set, not from the time the
 * loop cached before 50 ms of synchronous work (issue 9: a 30 ms acquire
 * timeout then fired after under 1 ms). The bounds allow 1 ms for the loop
 * clock's truncation to whole milliseconds. */
static void test_fresh_clock(void) {
  sl_pool_config_t c = defaults();
  uint32_t slot, w, s;
  uint64_t t0;
  c.acquire_timeout = 30;
  c.leak_ms = 30;
  c.backoff_min = 20; /* due before the acquire timeout */
  c.backoff_max = 20;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  s = add_resource();
  CHECK(last(E_RESOLVE)->a == 1);
  uv_run(&loop, UV_RUN_NOWAIT); /* the loop caches its time here */

  /* Acquire timeout. */
  busy(50);
  t0 = uv_hrtime();
  CHECK(acquire(0, 2, &slot, &w) == QUEUED);
  RUN_UNTIL(count(E_REJECT) == 1);
  CHECK(elapsed_ms(t0, last(E_REJECT)->hr) >= 29);

  /* Leak detection: a borrow after busy work. */
  CHECK(sl_pool_release(&pool, s) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  busy(50);
  t0 = uv_hrtime();
  CHECK(acquire(0, 3, &slot, &w) == GRANTED && slot == s);
  RUN_UNTIL(has_emit(SL_POOL_EV_LEAK, s));
  CHECK(elapsed_ms(t0, last(E_EMIT)->hr) >= 29);

  /* The create retry after a failure (uv_timer_start, not a deadline). */
  CHECK(sl_pool_destroy(&pool, s) == 0);
  CHECK(sl_pool_destroyed(&pool, s) == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  busy(50);
  nev = 0;
  fail_creates = 1;
  CHECK(acquire(0, 4, &slot, &w) == QUEUED);
  t0 = uv_hrtime();
  fail_queued_creates(&pool);
  fail_creates = 0;
  RUN_UNTIL(count(E_CREATE) == 2 || count(E_REJECT) == 1);
  CHECK(count(E_CREATE) == 2);
  CHECK(elapsed_ms(t0, last(E_CREATE)->hr) >= 19);
  s = add_resource();
  CHECK(last(E_RESOLVE)->a == 4);
  CHECK(sl_pool_release(&pool, s) == 0);
  close_pool();

  /* The evictor's interval and the idle stamp of a release. */
  c = defaults();
  c.idle = 30;
  c.eviction_interval = 5;
  c.num_tests = 1;
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  s = add_resource();
  uv_run(&loop, UV_RUN_NOWAIT);
  busy(50);
  t0 = uv_hrtime();
  CHECK(sl_pool_release(&pool, s) == 0);
  RUN_UNTIL(count(E_DESTROY) == 1);
  CHECK(elapsed_ms(t0, last(E_DESTROY)->hr) >= 29);
  CHECK(sl_pool_destroyed(&pool, s) == 0);
  close_pool();
}

/* ------------------------------------------------------ out of memory --- */

static double saved[SL_POOL_NCOUNTS];

static void save_counts(void) {
  memcpy(saved, counts, sizeof(counts));
}

static int counts_unchanged(void) {
  return memcmp(saved, counts, sizeof(counts)) == 0;
}

/* sl_pool_open: its one allocation (the priority levels) fails; nothing is
 * left allocated or open (ASan's leak check and uv_loop_alive say so). */
static void test_oom_open(void) {
  sl_pool_config_t c = defaults();
  int k, failed = 0;
  c.priority_range = 1000;
  for (k = 1; k <= 4; k++) {
    int r;
    sl_alloc_fail_at((uint64_t) k);
    r = sl_pool_open(&pool, &loop, &c, &ops, counts, NULL);
    sl_alloc_fail_at(0);
    if (r == UV_ENOMEM) {
      failed++;
      CHECK(!uv_loop_alive(&loop));
      continue;
    }
    CHECK(r == 0);
    closed_calls = 0;
    close_pool();
  }
  CHECK(failed == 1);
}

/* Queues `n` waiters on a pool of `max` resources, the k-th allocation
 * failing: the acquire that meets it returns UV_ENOMEM and changes no count;
 * every other one is queued (or granted). Then serves them all: every
 * accepted waiter gets a resource exactly once. Returns whether an
 * allocation failed. */
static int oom_acquires(int64_t max, uint32_t n, int k) {
  sl_pool_config_t c = defaults();
  static uint8_t served[4096];
  uint32_t i, slot, w, accepted = 0, granted = 0;
  int failed = 0, j;
  CHECK(n <= sizeof(served));
  c.max = max;
  c.priority_range = 4;
  open_pool(&c);
  sl_pool_start(&pool);
  memset(served, 0, sizeof(served));
  sl_alloc_fail_at((uint64_t) k);
  for (i = 0; i < n; i++) {
    int r;
    save_counts();
    r = acquire((int32_t) (i % 4), i, &slot, &w);
    if (r == UV_ENOMEM) {
      failed++;
      CHECK(counts_unchanged());
      served[i] = 2; /* refused: must never be served */
      continue;
    }
    CHECK(r == QUEUED);
    accepted++;
  }
  sl_alloc_fail_at(0);
  CHECK(failed <= 1);
  CHECK(counts[SL_POOL_PENDING] == accepted);
  CHECK(counts[SL_POOL_CREATING] == (double) (max < accepted ? max : accepted));
  /* Every create succeeds; each resource then serves waiters in turn. */
  for (j = 0; j < nev; j++)
    if (evs[j].kind == E_CREATE)
      CHECK(sl_pool_created(&pool, evs[j].a) == 0);
  sl_pool_dispense(&pool);
  while (granted < accepted) {
    const ev_t* e = NULL;
    for (j = 0; j < nev; j++) {
      if (evs[j].kind == E_RESOLVE) {
        e = &evs[j];
        evs[j].kind = 0; /* consumed */
        break;
      }
    }
    CHECK(e != NULL);
    CHECK(e->a < n && served[e->a] == 0);
    served[e->a] = 1;
    granted++;
    slot = e->b;
    if (granted % 512 == 0)
      nev = 0; /* keep the event log small; nothing older is needed */
    CHECK(sl_pool_release(&pool, slot) == 0);
  }
  CHECK(counts[SL_POOL_PENDING] == 0 && counts[SL_POOL_BORROWED] == 0);
  close_pool();
  return failed;
}

/* Growing the waiter array (64, 128, 256, 512...) and the slot array (16,
 * 32, 64...) with every allocation failing in turn. */
static void test_oom_grow(void) {
  int k, failed;
  /* Many waiters on one resource. */
  for (k = 1, failed = 1; failed; k++)
    failed = oom_acquires(1, 600, k);
  CHECK(k > 5); /* the slot array and four waiter arrays */
  /* Many slots: each acquire creates one. */
  for (k = 1, failed = 1; failed; k++)
    failed = oom_acquires(100, 100, k);
  CHECK(k > 5);
}

/* Allocations that fail where the call cannot be undone (refilling `min`,
 * whose creates are not for any one caller) are retried from the backoff
 * timer, as failed creates are: the pool gets there, late. */
static void test_oom_retry(void) {
  sl_pool_config_t c = defaults();
  int j;
  c.max = 40;
  c.min = 40;
  open_pool(&c);
  sl_alloc_fail_at(2); /* 16 slots, then growing to 32 fails */
  sl_pool_start(&pool);
  sl_alloc_fail_at(0);
  CHECK(count(E_CREATE) == 16 && counts[SL_POOL_CREATING] == 16);
  CHECK(pool.backoff_active);
  RUN_UNTIL(count(E_CREATE) == 40);
  CHECK(counts[SL_POOL_CREATING] == 40);
  for (j = 0; j < nev; j++)
    if (evs[j].kind == E_CREATE)
      CHECK(sl_pool_created(&pool, evs[j].a) == 0);
  CHECK(counts[SL_POOL_AVAILABLE] == 40);
  close_pool();
}

/* pg-pool's rules (bind_creates): see pool.h. */
static sl_pool_config_t pg_defaults(void) {
  sl_pool_config_t c = defaults();
  c.bind_creates = 1;
  c.no_fill = 1;
  c.unref_timeouts = 1;
  c.fifo = 0;
  c.idle = 0.0 / 0.0; /* no evictor */
  return c;
}

static const ev_t* nth(int kind, int n) {
  int i;
  for (i = 0; i < nev; i++)
    if (evs[i].kind == kind && n-- == 0)
      return &evs[i];
  return NULL;
}

static void test_pg_bind_and_pulse(void) {
  sl_pool_config_t c = pg_defaults();
  uint32_t slot = 99, w = 99, a, b;
  c.max = 2;
  c.min = 5; /* a floor only: nothing is created for it */
  open_pool(&c);
  sl_pool_start(&pool);
  CHECK(count(E_CREATE) == 0);
  /* Room and nothing idle: a create bound to the caller, not queued. */
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  CHECK(w == UINT32_MAX && counts[SL_POOL_PENDING] == 0 && counts[SL_POOL_SIZE] == 1);
  CHECK(acquire(0, 2, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 0);
  a = nth(E_CREATE, 0)->a;
  b = nth(E_CREATE, 1)->a;
  /* Full: queued. The second create finishes first and goes to ITS caller,
   * though caller 3 waits too. */
  CHECK(acquire(0, 3, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  CHECK(sl_pool_created(&pool, b) == 0);
  CHECK(last(E_RESOLVE)->a == 2 && last(E_RESOLVE)->b == b);
  CHECK(counts[SL_POOL_PENDING] == 1);
  CHECK(sl_pool_created(&pool, a) == 0);
  CHECK(last(E_RESOLVE)->a == 1 && last(E_RESOLVE)->b == a);
  /* A release pulses: the waiter gets that resource. */
  CHECK(sl_pool_release(&pool, a) == 0);
  CHECK(last(E_RESOLVE)->a == 3 && last(E_RESOLVE)->b == a && counts[SL_POOL_PENDING] == 0);
  /* Idle resources: an acquire queues anyway and a dispense (one pulse)
   * serves it with the most recently idled one (LIFO). */
  CHECK(sl_pool_release(&pool, b) == 0);
  CHECK(sl_pool_release(&pool, a) == 0);
  CHECK(counts[SL_POOL_AVAILABLE] == 2);
  CHECK(acquire(0, 4, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  CHECK(acquire(0, 5, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 2);
  sl_pool_dispense(&pool);
  CHECK(last(E_RESOLVE)->a == 4 && last(E_RESOLVE)->b == a && counts[SL_POOL_PENDING] == 1);
  sl_pool_dispense(&pool);
  CHECK(last(E_RESOLVE)->a == 5 && last(E_RESOLVE)->b == b && counts[SL_POOL_PENDING] == 0);
  /* A destroy gives room back only once it has settled. */
  CHECK(acquire(0, 6, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  CHECK(sl_pool_destroy(&pool, a) == 0);
  CHECK(counts[SL_POOL_SIZE] == 1 && counts[SL_POOL_PENDING] == 1);
  {
    int creates = count(E_CREATE);
    CHECK(sl_pool_destroyed(&pool, a) == 0);
    CHECK(count(E_CREATE) == creates + 1 && counts[SL_POOL_PENDING] == 0);
    /* Its create fails: caller 6 is rejected, nothing is retried. */
    CHECK(sl_pool_create_failed(&pool, last(E_CREATE)->a) == 0);
    CHECK(last(E_REJECT)->a == 6 && last(E_REJECT)->c == SL_POOL_REASON_CREATE_ERROR);
    CHECK(count(E_CREATE) == creates + 1 && counts[SL_POOL_SIZE] == 1);
  }
  /* An idle resource reported broken is removed. */
  CHECK(sl_pool_release(&pool, b) == 0);
  CHECK(sl_pool_remove(&pool, b) == 0 && counts[SL_POOL_SIZE] == 0);
  CHECK(sl_pool_remove(&pool, b) == UV_EINVAL);
  CHECK(sl_pool_destroyed(&pool, b) == 0);
  close_pool();
}

static void test_pg_drain(void) {
  sl_pool_config_t c = pg_defaults();
  uint32_t slot, w, s[3];
  int i;
  c.max = 3;
  open_pool(&c);
  for (i = 0; i < 3; i++) {
    CHECK(acquire(0, (uint32_t) i, &slot, &w) == QUEUED);
    s[i] = last(E_CREATE)->a;
    CHECK(sl_pool_created(&pool, s[i]) == 0);
  }
  CHECK(acquire(0, 10, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  CHECK(sl_pool_release(&pool, s[0]) == 0); /* serves 10 */
  CHECK(acquire(0, 11, &slot, &w) == QUEUED);
  CHECK(sl_pool_release(&pool, s[1]) == 0); /* serves 11 */
  CHECK(acquire(0, 12, &slot, &w) == QUEUED);
  CHECK(sl_pool_release(&pool, s[2]) == 0); /* serves 12 */
  CHECK(sl_pool_release(&pool, s[0]) == 0);
  CHECK(sl_pool_release(&pool, s[2]) == 0); /* idle: s[2] newest, s[0] oldest */
  CHECK(acquire(0, 13, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  nev = 0;
  /* Queued callers are rejected; idle resources go, oldest first. */
  sl_pool_drain(&pool);
  CHECK(nev == 3);
  CHECK(evs[0].kind == E_REJECT && evs[0].a == 13 && evs[0].c == SL_POOL_REASON_DRAINING);
  CHECK(evs[1].kind == E_DESTROY && evs[1].a == s[0]);
  CHECK(evs[2].kind == E_DESTROY && evs[2].a == s[2]);
  CHECK(acquire(0, 14, &slot, &w) == UV_ECANCELED);
  CHECK(counts[SL_POOL_SIZE] == 1 && counts[SL_POOL_BORROWED] == 1);
  /* A release while draining pulses: the resource goes. */
  CHECK(sl_pool_release(&pool, s[1]) == 0);
  CHECK(last(E_DESTROY)->a == s[1] && counts[SL_POOL_SIZE] == 0);
  close_pool();
}

static void test_pg_create_timeout(void) {
  sl_pool_config_t c = pg_defaults();
  uint32_t slot, w, a, b, d;
  c.max = 1;
  /* Long enough that the 100 ms wait below ends well before a deadline,
   * even under valgrind. */
  c.create_timeout = 300;
  c.acquire_timeout = 300;
  open_pool(&c);
  /* The queue timer is unref'd (pg-pool unrefs it). */
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  a = last(E_CREATE)->a;
  CHECK(acquire(0, 2, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  CHECK(!uv_loop_alive(&loop));
  /* Both deadlines pass: the creating caller is rejected (create timeout,
   * the embedder told to abort), the queued one too (queue timeout). The
   * slot stays counted until its outcome is known. */
  RUN_UNTIL(count(E_REJECT) == 2);
  CHECK(has_emit(SL_POOL_EV_CREATE_TIMEOUT, a));
  CHECK(nth(E_REJECT, 0)->c != nth(E_REJECT, 1)->c);
  CHECK(counts[SL_POOL_SIZE] == 1 && counts[SL_POOL_PENDING] == 0);
  /* It connects after all: destroyed, never handed out nor left idle. */
  CHECK(sl_pool_created(&pool, a) == 0);
  CHECK(last(E_DESTROY)->a == a && count(E_RESOLVE) == 0 && counts[SL_POOL_AVAILABLE] == 0);
  CHECK(sl_pool_destroyed(&pool, a) == 0 && counts[SL_POOL_SIZE] == 0);

  /* A queued caller keeps its deadline when a pulse creates for it: it is
   * rejected as a queue timeout, and the create goes on for the pool. */
  CHECK(acquire(0, 3, &slot, &w) == QUEUED);
  b = last(E_CREATE)->a;
  CHECK(sl_pool_created(&pool, b) == 0 && last(E_RESOLVE)->a == 3);
  CHECK(acquire(0, 4, &slot, &w) == QUEUED && counts[SL_POOL_PENDING] == 1);
  {
    /* It waits a while first, so its deadline comes before the create's. */
    uint64_t t = uv_now(&loop) + 100;
    RUN_UNTIL(uv_now(&loop) >= t);
  }
  CHECK(counts[SL_POOL_PENDING] == 1);
  CHECK(sl_pool_destroy(&pool, b) == 0);
  CHECK(sl_pool_destroyed(&pool, b) == 0); /* pulse: a create for 4 */
  d = last(E_CREATE)->a;
  CHECK(counts[SL_POOL_PENDING] == 0 && counts[SL_POOL_CREATING] == 1);
  RUN_UNTIL(last(E_REJECT)->a == 4);
  CHECK(last(E_REJECT)->c == SL_POOL_REASON_TIMEOUT);
  CHECK(sl_pool_created(&pool, d) == 0);
  CHECK(counts[SL_POOL_AVAILABLE] == 1 && last(E_RESOLVE)->a == 3);
  close_pool();
}

static void test_pg_idle_and_expire(void) {
  sl_pool_config_t c = pg_defaults();
  uint32_t slot, w, s[3];
  int i;
  c.max = 3;
  c.min = 1;
  c.idle_timeout = 10;
  open_pool(&c);
  for (i = 0; i < 3; i++) {
    CHECK(acquire(0, (uint32_t) i, &slot, &w) == QUEUED);
    s[i] = last(E_CREATE)->a;
    CHECK(sl_pool_created(&pool, s[i]) == 0);
  }
  for (i = 0; i < 3; i++)
    CHECK(sl_pool_release(&pool, s[i]) == 0);
  /* Idle timers: removed down to min, not below. */
  RUN_UNTIL(count(E_DESTROY) == 2);
  CHECK(counts[SL_POOL_AVAILABLE] == 1 && counts[SL_POOL_SIZE] == 1);
  {
    uint64_t t = uv_now(&loop) + 40;
    RUN_UNTIL(uv_now(&loop) >= t);
  }
  CHECK(count(E_DESTROY) == 2);
  close_pool();

  c = pg_defaults();
  c.max = 2;
  c.expire = 15;
  open_pool(&c);
  CHECK(acquire(0, 1, &slot, &w) == QUEUED);
  s[0] = last(E_CREATE)->a;
  CHECK(acquire(0, 2, &slot, &w) == QUEUED);
  s[1] = last(E_CREATE)->a;
  CHECK(sl_pool_created(&pool, s[0]) == 0 && sl_pool_created(&pool, s[1]) == 0);
  CHECK(sl_pool_release(&pool, s[1]) == 0);
  /* At expiry: the idle one goes (EXPIRED first), the borrowed one counts. */
  RUN_UNTIL(counts[SL_POOL_EXPIRED] == 1 && count(E_DESTROY) == 1);
  CHECK(has_emit(SL_POOL_EV_EXPIRED, s[1]) && last(E_DESTROY)->a == s[1]);
  CHECK(!has_emit(SL_POOL_EV_EXPIRED, s[0]));
  CHECK(sl_pool_release(&pool, s[0]) == 0);
  CHECK(last(E_DESTROY)->a == s[0] && counts[SL_POOL_EXPIRED] == 0 && counts[SL_POOL_SIZE] == 0);
  close_pool();
}

int main(void) {
  CHECK(uv_loop_init(&loop) == 0);
  CHECK(uv_timer_init(&loop, &keepalive) == 0);
  test_basic();
  test_priority_and_fifo();
  test_limits();
  test_drain();
  test_timeout();
  test_create_backoff();
  test_eviction();
  test_uses_leak_destroy_timeout();
  test_validate();
  test_close_with_waiters();
  test_many_waiters();
  test_fresh_clock();
  test_oom_open();
  test_oom_grow();
  test_oom_retry();
  test_pg_bind_and_pulse();
  test_pg_drain();
  test_pg_create_timeout();
  test_pg_idle_and_expire();
  uv_close((uv_handle_t*) &keepalive, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  printf("pool_test: ok\n");
  return 0;
}
