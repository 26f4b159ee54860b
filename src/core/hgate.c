/* sluice: the host gate. See hgate.h for the model, the repair rules and
 * the locking rules. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* F_OFD_*, syscall() */
#endif

#include "hgate.h"

#include "alloc.h"

#include <errno.h>
#include <string.h>

#if defined(__linux__)

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Symbol versions. Linked against glibc 2.34 or later, the robust-mutex
 * calls would need its GLIBC_2.34 versions (libpthread moved into libc) and
 * the addon would not load on older systems; the functions themselves are
 * older (2.12 on x86-64, the first version of aarch64's ABI there). fcntl
 * (fcntl64 from 2.28) and fstat (a function from 2.33) are reached through
 * syscall() for the same reason. */
#if defined(__GLIBC__) && defined(__x86_64__)
__asm__(".symver pthread_mutexattr_setrobust,pthread_mutexattr_setrobust@GLIBC_2.12");
__asm__(".symver pthread_mutex_consistent,pthread_mutex_consistent@GLIBC_2.12");
__asm__(".symver pthread_mutexattr_setpshared,pthread_mutexattr_setpshared@GLIBC_2.2.5");
__asm__(".symver pthread_mutexattr_init,pthread_mutexattr_init@GLIBC_2.2.5");
__asm__(".symver pthread_mutexattr_destroy,pthread_mutexattr_destroy@GLIBC_2.2.5");
#elif defined(__GLIBC__) && defined(__aarch64__)
__asm__(".symver pthread_mutexattr_setrobust,pthread_mutexattr_setrobust@GLIBC_2.17");
__asm__(".symver pthread_mutex_consistent,pthread_mutex_consistent@GLIBC_2.17");
__asm__(".symver pthread_mutexattr_setpshared,pthread_mutexattr_setpshared@GLIBC_2.17");
__asm__(".symver pthread_mutexattr_init,pthread_mutexattr_init@GLIBC_2.17");
__asm__(".symver pthread_mutexattr_destroy,pthread_mutexattr_destroy@GLIBC_2.17");
#endif

/* The futex operations and OFD lock commands, for C libraries (musl) or
 * kernel headers that lack them: the values are the kernel's ABI. */
#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#endif
#ifndef FUTEX_WAKE
#define FUTEX_WAKE 1
#endif
#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#endif
#ifndef F_OFD_SETLK
#define F_OFD_SETLK 37
#endif

#define SL_NIL UINT32_MAX
#define SL__ERR(e) (-(e)) /* libuv's error codes are negated errnos on Unix */
/* OFD locks of liveness live past the end of the file (allowed), one byte
 * per slot, so they never touch the mapped data. */
#define SL_LOCK_BASE ((off_t) 1 << 40)

enum { SL_SLOT_FREE = 0, SL_SLOT_LIVE = 0x4c495645 /* "LIVE" */ };
enum {
  SL_ENTRY_FREE = 0,
  SL_ENTRY_QUEUED = 0x51554555,  /* in the queue */
  SL_ENTRY_GRANTED = 0x4752414e, /* permits booked on it, in its owner's ready list */
  SL_ENTRY_REFUSED = 0x52454655  /* can never fit, in its owner's ready list */
};

/* ---- the shared layout (SL_HGATE_LAYOUT) ---- */

typedef struct sl_hg_slot_s {
  uint32_t state;    /* SL_SLOT_*: primary */
  uint32_t pid;      /* for people reading the segment; liveness is the lock */
  int64_t held;      /* permits the process took and holds: primary */
  uint32_t bell;     /* futex word: bumped when the ready list grows (atomic) */
  uint32_t sleeping; /* its helper is in FUTEX_WAIT or about to be (atomic) */
  uint32_t rhead;    /* ready list (GRANTED/REFUSED entries): derived */
  uint32_t rtail;
} sl_hg_slot_t;

typedef struct sl_hg_entry_s {
  uint32_t state; /* SL_ENTRY_*: primary */
  uint32_t owner; /* slot: primary */
  uint32_t n;     /* permits wanted: primary */
  int32_t priority;
  uint64_t ticket; /* FIFO order within a priority: primary */
  uint32_t next;   /* queue, ready or free list: derived */
  uint32_t prev;   /* queue: derived */
} sl_hg_entry_t;

typedef struct sl_hg_hdr_s {
  /* Constants, written once by the creator before the file is linked into
   * place, checked with pread before mapping. */
  char magic[8];
  uint32_t layout;
  uint32_t hdr_size;
  uint32_t slot_size;
  uint32_t entry_size;
  uint32_t mutex_size;
  uint32_t nslots;
  uint32_t nentries;
  uint32_t uid;
  uint64_t total_size;
  /* Under the mutex from here on. */
  pthread_mutex_t lock;
  uint32_t unlinked; /* the file was unlinked: openers start over */
  uint32_t nlive;    /* derived: LIVE slots */
  int64_t permits;   /* primary */
  int64_t in_use;    /* derived: sum of held + GRANTED entries' n */
  uint32_t npending; /* derived: QUEUED entries */
  uint32_t qhead;    /* derived: the queue, highest priority first, FIFO */
  uint32_t qtail;
  uint32_t free_head; /* derived: free entries below hwm */
  uint32_t hwm;       /* entries at or above it were never used */
  uint32_t pad;
  uint64_t next_ticket;
} sl_hg_hdr_t;

static const char sl__magic[8] = {'s', 'l', 'u', 'i', 'c', 'e', 'H', 'G'};

#define SL_ALIGN(x) (((x) + 63) & ~(size_t) 63)
#define SL_SLOTS_OFF SL_ALIGN(sizeof(sl_hg_hdr_t))
#define SL_ENTRIES_OFF (SL_SLOTS_OFF + SL_ALIGN(SL_HGATE_SLOTS * sizeof(sl_hg_slot_t)))
#define SL_TOTAL_SIZE (SL_ENTRIES_OFF + SL_HGATE_ENTRIES * sizeof(sl_hg_entry_t))

/* ---- this process's view ---- */

struct sl_hgate_s {
  sl_hgate_t* next; /* the process's list of open host gates */
  uint64_t refs;    /* stakes open (under sl__reg_lock) */
  int fd;
  uint32_t slot;
  sl_hg_hdr_t* hdr;
  sl_hg_slot_t* slots;
  sl_hg_entry_t* entries;
  /* Under the segment's mutex: */
  sl_party_t* parties; /* one per ctx with a stake open */
  sl_waiter_t** wmap;  /* our entries -> our waiters */
  uint32_t wmap_cap;
  uint32_t nlocal; /* our entries not free: changed under the mutex, read by
                    * the helper before it sleeps as a hint (atomic) */
  /* The helper thread. */
  uv_thread_t helper;
  uint32_t stop; /* atomic */
  uint64_t last_check;
  int gone; /* under the mutex: detached at exit (sl__atexit) */
  /* Under the mutex: slots whose bell was bumped by this operation and
   * whose helper must be woken once the mutex is dropped (waking it under
   * the mutex would only make it block on the mutex we hold). */
  uint64_t wake[SL_HGATE_SLOTS / 64];
  size_t plen; /* strlen(path) */
  char path[]; /* NUL-terminated */
};

static uv_once_t sl__reg_once = UV_ONCE_INIT;
static uv_mutex_t sl__reg_lock; /* guards sl__open list and refs */
static sl_hgate_t* sl__open;
static uint64_t sl__repairs;    /* atomic */
static uint64_t sl__owner_dead; /* atomic */

static void sl__atexit(void);

static void sl__reg_init(void) {
  if (uv_mutex_init(&sl__reg_lock) != 0)
    abort(); /* cannot happen with pthreads short of memory exhaustion */
  /* process.exit() ends the process without Node's cleanup hooks, so the
   * stakes are never closed: detach there (see sl__atexit). */
  atexit(sl__atexit);
}

uint64_t sl_hgate_repairs(void) {
  return __atomic_load_n(&sl__repairs, __ATOMIC_RELAXED);
}

uint64_t sl_hgate_owner_dead(void) {
  return __atomic_load_n(&sl__owner_dead, __ATOMIC_RELAXED);
}

/* ---- system calls ---- */

static void sl__futex_wait(uint32_t* addr, uint32_t val, int ms) {
  struct timespec ts, *tp = NULL;
  if (ms >= 0) {
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000L;
    tp = &ts;
  }
  /* Not FUTEX_PRIVATE: the word is shared with other processes. EAGAIN
   * (the word changed), EINTR and ETIMEDOUT all mean "look again". */
  (void) syscall(SYS_futex, addr, FUTEX_WAIT, val, tp, NULL, 0);
}

static void sl__futex_wake(uint32_t* addr) {
  (void) syscall(SYS_futex, addr, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static int sl__ofd_lock(int fd, uint32_t slot, int cmd, short type, short* out) {
  struct flock fl;
  memset(&fl, 0, sizeof(fl));
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = SL_LOCK_BASE + slot;
  fl.l_len = 1;
  if (syscall(SYS_fcntl, fd, cmd, &fl) != 0)
    return SL__ERR(errno);
  if (out != NULL)
    *out = fl.l_type;
  return 0;
}

/* Whether the process in `slot` is alive: it holds its lock byte. When the
 * kernel cannot tell us, it is taken as alive (never reap on doubt). */
static int sl__alive(sl_hgate_t* hg, uint32_t slot) {
  short type = F_UNLCK;
  if (sl__ofd_lock(hg->fd, slot, F_OFD_GETLK, F_WRLCK, &type) != 0)
    return 1;
  return type != F_UNLCK;
}

/* Rings a slot's bell. seq_cst pairs with the helper's store of `sleeping`
 * then load of `bell` (sl__helper): either it sees the new bell value and
 * does not sleep, or we see `sleeping` and wake it. */
static void sl__bell(sl_hg_slot_t* slot) {
  __atomic_fetch_add(&slot->bell, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&slot->sleeping, __ATOMIC_SEQ_CST))
    sl__futex_wake(&slot->bell);
}

/* The mutex is held: bumps the bell of `slot` now (the helper that wakes
 * for another reason sees it) and wakes its helper after the unlock
 * (sl__unlock_wake). */
static void sl__bell_later(sl_hgate_t* hg, uint32_t slot) {
  __atomic_fetch_add(&hg->slots[slot].bell, 1, __ATOMIC_SEQ_CST);
  hg->wake[slot / 64] |= (uint64_t) 1 << (slot % 64);
}

/* Drops the mutex, then wakes the helpers of the slots rung meanwhile. The
 * slots stay mapped (we are attached), and a slot freed and reused since
 * gets a spurious wake-up, which a helper takes as "look again". */
static void sl__unlock_wake(sl_hgate_t* hg) {
  uint64_t wake[SL_HGATE_SLOTS / 64];
  uint32_t i;
  memcpy(wake, hg->wake, sizeof(wake));
  memset(hg->wake, 0, sizeof(hg->wake));
  pthread_mutex_unlock(&hg->hdr->lock);
  for (i = 0; i < SL_HGATE_SLOTS; i++)
    if (wake[i / 64] & ((uint64_t) 1 << (i % 64)) &&
        __atomic_load_n(&hg->slots[i].sleeping, __ATOMIC_SEQ_CST))
      sl__futex_wake(&hg->slots[i].bell);
}

/* ---- the queue and lists (the mutex is held) ---- */

static sl_hg_entry_t* sl__e(sl_hgate_t* hg, uint32_t i) {
  return &hg->entries[i];
}

/* Whether entry a runs before entry b: higher priority, then older. */
static int sl__before(const sl_hg_entry_t* a, const sl_hg_entry_t* b) {
  return a->priority > b->priority || (a->priority == b->priority && a->ticket < b->ticket);
}

static void sl__q_insert(sl_hgate_t* hg, uint32_t i) {
  sl_hg_hdr_t* h = hg->hdr;
  sl_hg_entry_t* e = sl__e(hg, i);
  uint32_t at = h->qtail; /* insert after `at` */
  /* From the tail: a new waiter usually goes last (one priority). */
  while (at != SL_NIL && sl__before(e, sl__e(hg, at)))
    at = sl__e(hg, at)->prev;
  e->prev = at;
  if (at == SL_NIL) {
    e->next = h->qhead;
    h->qhead = i;
  } else {
    e->next = sl__e(hg, at)->next;
    sl__e(hg, at)->next = i;
  }
  if (e->next == SL_NIL)
    h->qtail = i;
  else
    sl__e(hg, e->next)->prev = i;
  h->npending++;
}

static void sl__q_unlink(sl_hgate_t* hg, uint32_t i) {
  sl_hg_hdr_t* h = hg->hdr;
  sl_hg_entry_t* e = sl__e(hg, i);
  if (e->prev == SL_NIL)
    h->qhead = e->next;
  else
    sl__e(hg, e->prev)->next = e->next;
  if (e->next == SL_NIL)
    h->qtail = e->prev;
  else
    sl__e(hg, e->next)->prev = e->prev;
  e->next = e->prev = SL_NIL;
  h->npending--;
}

static void sl__ready_push(sl_hgate_t* hg, uint32_t slot, uint32_t i) {
  sl_hg_slot_t* s = &hg->slots[slot];
  sl__e(hg, i)->next = SL_NIL;
  if (s->rtail == SL_NIL)
    s->rhead = i;
  else
    sl__e(hg, s->rtail)->next = i;
  s->rtail = i;
}

static uint32_t sl__entry_alloc(sl_hgate_t* hg) {
  sl_hg_hdr_t* h = hg->hdr;
  uint32_t i = h->free_head;
  if (i != SL_NIL) {
    h->free_head = sl__e(hg, i)->next;
    return i;
  }
  if (h->hwm < SL_HGATE_ENTRIES)
    return h->hwm++;
  return SL_NIL;
}

static void sl__entry_free(sl_hgate_t* hg, uint32_t i) {
  sl_hg_entry_t* e = sl__e(hg, i);
  e->state = SL_ENTRY_FREE;
  e->prev = SL_NIL;
  e->next = hg->hdr->free_head;
  hg->hdr->free_head = i;
}

/* ---- stakes and parties (the mutex is held) ---- */

static void sl__book(sl_stake_t* s, int64_t held, int64_t waiting) {
  s->held += held;
  s->waiting += waiting;
  s->party->held += held;
  s->party->waiting += waiting;
}

/* Whether someone else (another process, or another thread of ours) could
 * let party p's waiters in: see "Keeping threads alive" in gate.h. */
static int sl__others_could_grant(sl_hgate_t* hg, const sl_party_t* p) {
  sl_hg_hdr_t* h = hg->hdr;
  uint32_t head = h->qhead;
  if (h->in_use > p->held)
    return 1;
  if (head == SL_NIL || h->permits == 0)
    return 0;
  if (sl__e(hg, head)->owner != hg->slot || hg->wmap[head] == NULL)
    return 1;
  return hg->wmap[head]->stake->party != p;
}

static void sl__keep_sync(sl_hgate_t* hg, sl_ring_t* ring) {
  sl_party_t* p;
  for (p = hg->parties; p != NULL; p = p->next) {
    int want = p->waiting > 0 && sl__others_could_grant(hg, p);
    if (want != p->keep) {
      p->keep = want;
      sl_ctx_keep_add(p->ctx, want ? 1 : -1, ring);
    }
  }
}

/* ---- hand-offs (the mutex is held) ---- */

/* Takes one of our entries that left the queue (GRANTED or REFUSED) and
 * hands its waiter to its thread: `out` when it is `self`, else its ready
 * queue. */
static void sl__take_entry(sl_hgate_t* hg, uint32_t i, sl_ctx_t* self, sl_wlist_t* out,
                           sl_ring_t* ring) {
  sl_hg_entry_t* e = sl__e(hg, i);
  sl_waiter_t* w = hg->wmap[i];
  int granted = e->state == SL_ENTRY_GRANTED;
  hg->wmap[i] = NULL;
  __atomic_fetch_sub(&hg->nlocal, 1, __ATOMIC_RELAXED);
  /* The permits move from the entry to the slot: in_use is unchanged. The
   * entry is freed first so that a crash between the two stores (it would
   * be ours, and our records die with us) cannot count them twice. */
  sl__entry_free(hg, i);
  if (w == NULL)
    return; /* cannot happen: our entries always have a waiter */
  if (granted) {
    hg->slots[hg->slot].held += w->n;
    sl__book(w->stake, w->n, -1);
    w->state = SL_WAITER_GRANTED;
  } else {
    sl__book(w->stake, 0, -1);
    w->state = SL_WAITER_REFUSED;
  }
  if (w->stake->ctx == self)
    sl_wlist_push(out, w);
  else
    sl_ctx_push_ready(w->stake->ctx, w, ring);
}

/* An entry left the queue as GRANTED or REFUSED: ours is taken now, another
 * process's goes to its ready list and its bell rings. */
static void sl__deliver(sl_hgate_t* hg, uint32_t i, sl_ctx_t* self, sl_wlist_t* out,
                        sl_ring_t* ring) {
  uint32_t owner = sl__e(hg, i)->owner;
  if (owner == hg->slot) {
    sl__take_entry(hg, i, self, out, ring);
  } else {
    sl__ready_push(hg, owner, i);
    sl__bell_later(hg, owner);
  }
}

/* Takes every entry other processes granted or refused to us. */
static void sl__take_ready(sl_hgate_t* hg, sl_ctx_t* self, sl_wlist_t* out, sl_ring_t* ring) {
  sl_hg_slot_t* me;
  if (hg->slot == SL_NIL)
    return; /* attaching: nothing of ours yet */
  me = &hg->slots[hg->slot];
  while (me->rhead != SL_NIL) {
    uint32_t i = me->rhead;
    me->rhead = sl__e(hg, i)->next;
    if (me->rhead == SL_NIL)
      me->rtail = SL_NIL;
    sl__take_entry(hg, i, self, out, ring);
  }
}

static int sl__fits(const sl_hg_hdr_t* h, uint32_t n) {
  if (h->permits == SL_INFINITE)
    return 1;
  return h->in_use <= h->permits && (int64_t) n <= h->permits - h->in_use;
}

static int sl__doomed(int64_t permits, uint32_t n) {
  return permits != SL_INFINITE && permits > 0 && (int64_t) n > permits;
}

static void sl__grant_head(sl_hgate_t* hg, sl_ctx_t* self, sl_wlist_t* out, sl_ring_t* ring) {
  uint32_t i = hg->hdr->qhead;
  sl_hg_entry_t* e = sl__e(hg, i);
  sl__q_unlink(hg, i);
  hg->hdr->in_use += e->n;
  /* The one store that changes another process's record. */
  e->state = SL_ENTRY_GRANTED;
  sl__deliver(hg, i, self, out, ring);
}

static void sl__dispatch_locked(sl_hgate_t* hg, uint32_t max, sl_ctx_t* self, sl_wlist_t* out,
                                sl_ring_t* ring) {
  uint32_t k = 0;
  while (hg->hdr->qhead != SL_NIL && sl__fits(hg->hdr, sl__e(hg, hg->hdr->qhead)->n)) {
    sl__grant_head(hg, self, out, ring);
    if (++k == max)
      break;
  }
}

/* ---- repair (the mutex is held) ---- */

/* Sorts entry indices by ticket: a heapsort, in place, O(n log n) with no
 * allocation and no qsort_r (which older musl lacks). Only rebuilds sort. */
static void sl__sift(sl_hgate_t* hg, uint32_t* a, uint32_t root, uint32_t n) {
  for (;;) {
    uint32_t child = 2 * root + 1, top = root;
    if (child < n && sl__e(hg, a[child])->ticket > sl__e(hg, a[top])->ticket)
      top = child;
    if (child + 1 < n && sl__e(hg, a[child + 1])->ticket > sl__e(hg, a[top])->ticket)
      top = child + 1;
    if (top == root)
      return;
    uint32_t t = a[root];
    a[root] = a[top];
    a[top] = t;
    root = top;
  }
}

static void sl__sort_tickets(sl_hgate_t* hg, uint32_t* a, uint32_t n) {
  uint32_t i;
  for (i = n / 2; i-- > 0;)
    sl__sift(hg, a, i, n);
  for (i = n; i-- > 1;) {
    uint32_t t = a[0];
    a[0] = a[i];
    a[i] = t;
    sl__sift(hg, a, 0, i);
  }
}

static int sl__header_ok(const sl_hg_hdr_t* h) {
  return memcmp(h->magic, sl__magic, sizeof(sl__magic)) == 0 && h->layout == SL_HGATE_LAYOUT &&
         h->hdr_size == sizeof(sl_hg_hdr_t) && h->slot_size == sizeof(sl_hg_slot_t) &&
         h->entry_size == sizeof(sl_hg_entry_t) && h->mutex_size == sizeof(pthread_mutex_t) &&
         h->nslots == SL_HGATE_SLOTS && h->nentries == SL_HGATE_ENTRIES &&
         h->total_size == SL_TOTAL_SIZE;
}

/* Rebuilds every derived field from the primary records, after dropping
 * the slots of dead processes and every record that is not valid. Then
 * grants what fits and rings every process with something ready. Returns
 * 0, or UV_EPROTO when the header's constants were overwritten (nothing to
 * rebuild from). */
static int sl__rebuild(sl_hgate_t* hg, sl_ring_t* ring) {
  sl_hg_hdr_t* h = hg->hdr;
  uint32_t i, n = 0, *order = NULL;
  uint64_t max_ticket = 0;
  sl_wlist_t none;

  if (!sl__header_ok(h))
    return UV_EPROTO;
  __atomic_fetch_add(&sl__repairs, 1, __ATOMIC_RELAXED);
  if (h->hwm > SL_HGATE_ENTRIES)
    h->hwm = SL_HGATE_ENTRIES;
  h->nlive = 0;
  h->in_use = 0;
  if (h->permits < 0)
    h->permits = 0;
  for (i = 0; i < SL_HGATE_SLOTS; i++) {
    sl_hg_slot_t* s = &hg->slots[i];
    if (s->state == SL_SLOT_LIVE && i != hg->slot && !sl__alive(hg, i))
      s->state = SL_SLOT_FREE;
    if (s->state != SL_SLOT_LIVE) {
      s->state = SL_SLOT_FREE;
      s->held = 0;
    }
    if (s->held < 0)
      s->held = 0;
    s->rhead = s->rtail = SL_NIL;
    if (s->state == SL_SLOT_LIVE) {
      h->nlive++;
      h->in_use += s->held;
    }
  }
  /* Keep the valid records: a live owner, a known state, n >= 1, and for our
   * own entries a waiter of ours. */
  h->free_head = SL_NIL;
  h->qhead = h->qtail = SL_NIL;
  h->npending = 0;
  order = sl_malloc((h->hwm ? h->hwm : 1) * sizeof(*order));
  for (i = h->hwm; i-- > 0;) {
    sl_hg_entry_t* e = sl__e(hg, i);
    int valid = (e->state == SL_ENTRY_QUEUED || e->state == SL_ENTRY_GRANTED ||
                 e->state == SL_ENTRY_REFUSED) &&
                e->owner < SL_HGATE_SLOTS && hg->slots[e->owner].state == SL_SLOT_LIVE && e->n >= 1;
    if (valid && e->owner == hg->slot)
      valid = i < hg->wmap_cap && hg->wmap[i] != NULL;
    if (!valid) {
      if (e->owner == hg->slot && i < hg->wmap_cap && hg->wmap[i] != NULL) {
        /* Ours, overwritten by someone else: nothing can grant it now. It
         * is requeued with a new ticket below rather than lost. */
        e->state = SL_ENTRY_QUEUED;
        e->n = hg->wmap[i]->n;
        e->priority = hg->wmap[i]->priority;
        e->ticket = UINT64_MAX;
      } else {
        sl__entry_free(hg, i);
        continue;
      }
    }
    if (e->ticket != UINT64_MAX && e->ticket > max_ticket)
      max_ticket = e->ticket;
    if (order != NULL)
      order[n++] = i;
  }
  if (h->next_ticket <= max_ticket)
    h->next_ticket = max_ticket + 1;
  /* In ticket order: the queue by insertion (each goes after the ones of
   * its priority already there), the ready lists by append. */
  if (order != NULL)
    sl__sort_tickets(hg, order, n);
  for (i = 0; i < n; i++) {
    sl_hg_entry_t* e = sl__e(hg, order[i]);
    if (e->ticket == UINT64_MAX)
      e->ticket = h->next_ticket++;
    if (e->state == SL_ENTRY_QUEUED) {
      e->next = e->prev = SL_NIL;
      sl__q_insert(hg, order[i]);
    } else {
      if (e->state == SL_ENTRY_GRANTED)
        h->in_use += e->n;
      sl__ready_push(hg, e->owner, order[i]);
    }
  }
  sl_free(order);
  if (order == NULL && h->hwm > 0) {
    /* Out of memory: the queue cannot be sorted. Refuse every queued
     * waiter rather than trust a half-written list; their owners see a
     * refusal, never a hang. */
    for (i = 0; i < h->hwm; i++) {
      sl_hg_entry_t* e = sl__e(hg, i);
      if (e->state == SL_ENTRY_FREE)
        continue;
      if (e->state == SL_ENTRY_QUEUED)
        e->state = SL_ENTRY_REFUSED;
      if (e->state == SL_ENTRY_GRANTED)
        h->in_use += e->n;
      sl__ready_push(hg, e->owner, i);
    }
  }
  sl_wlist_init(&none);
  sl__dispatch_locked(hg, 0, NULL, &none, ring);
  sl__take_ready(hg, NULL, &none, ring);
  for (i = 0; i < SL_HGATE_SLOTS; i++)
    if (i != hg->slot && hg->slots[i].state == SL_SLOT_LIVE && hg->slots[i].rhead != SL_NIL)
      sl__bell_later(hg, i);
  return 0;
}

/* Locks the segment. A dead owner (EOWNERDEAD) left the derived state
 * half-written: it is rebuilt before anything reads it, then the mutex is
 * marked consistent. Returns 0, or UV_EIO when the segment cannot be used
 * (its mutex is unrecoverable or its header overwritten). */
static int sl__lock(sl_hgate_t* hg, sl_ring_t* ring) {
  int r = pthread_mutex_lock(&hg->hdr->lock);
  if (r == 0 && hg->gone) {
    /* Detached at exit: the slot is not ours any more. */
    pthread_mutex_unlock(&hg->hdr->lock);
    return UV_EIO;
  }
  if (r == 0)
    return 0;
  if (r == EOWNERDEAD) {
    __atomic_fetch_add(&sl__owner_dead, 1, __ATOMIC_RELAXED);
    if (sl__rebuild(hg, ring) == 0 && pthread_mutex_consistent(&hg->hdr->lock) == 0) {
      if (!hg->gone)
        return 0;
      /* Repaired for the others; we are detached (sl__atexit). */
      sl__unlock_wake(hg);
      return UV_EIO;
    }
    /* Unlocking without consistent makes the mutex unrecoverable: every
     * later locker gets ENOTRECOVERABLE and refuses, as it must. */
    pthread_mutex_unlock(&hg->hdr->lock);
  }
  return UV_EIO;
}

static void sl__unlock(sl_hgate_t* hg, sl_ring_t* ring) {
  sl__keep_sync(hg, ring);
  sl__unlock_wake(hg);
  sl_ring(ring);
}

/* Looks for dead processes; rebuilds if one is found. The mutex is held. */
static void sl__reap_locked(sl_hgate_t* hg, sl_ring_t* ring) {
  uint32_t i;
  for (i = 0; i < SL_HGATE_SLOTS; i++) {
    if (i != hg->slot && hg->slots[i].state == SL_SLOT_LIVE && !sl__alive(hg, i)) {
      (void) sl__rebuild(hg, ring); /* the header was checked by sl__lock's caller */
      return;
    }
  }
}

/* ---- the helper thread ---- */

static void sl__helper(void* arg) {
  sl_hgate_t* hg = arg;
  sl_hg_slot_t* me = &hg->slots[hg->slot];
  uint32_t seen = __atomic_load_n(&me->bell, __ATOMIC_SEQ_CST);

  for (;;) {
    sl_ring_t ring = {.n = 0};
    sl_wlist_t none;
    uint32_t bell;
    /* A hint: a thread of ours that queues the first waiter rings our own
     * bell, so a sleep without a timeout never outlasts it. */
    int waiting = __atomic_load_n(&hg->nlocal, __ATOMIC_RELAXED) > 0;
    if (__atomic_load_n(&hg->stop, __ATOMIC_ACQUIRE))
      break;
    __atomic_store_n(&me->sleeping, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&me->bell, __ATOMIC_SEQ_CST) == seen)
      sl__futex_wait(&me->bell, seen, waiting ? SL_HGATE_CHECK_MS : -1);
    __atomic_store_n(&me->sleeping, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&hg->stop, __ATOMIC_ACQUIRE))
      break;
    bell = __atomic_load_n(&me->bell, __ATOMIC_SEQ_CST);
    if (sl__lock(hg, &ring) != 0) {
      /* Unusable segment: nothing to wait for; operations report it. */
      sl_ring(&ring);
      seen = bell;
      continue;
    }
    sl_wlist_init(&none);
    sl__take_ready(hg, NULL, &none, &ring);
    if (__atomic_load_n(&hg->nlocal, __ATOMIC_RELAXED) > 0) {
      uint64_t now = uv_hrtime();
      if (now - hg->last_check >= (uint64_t) SL_HGATE_CHECK_MS * 1000000u) {
        hg->last_check = now;
        sl__reap_locked(hg, &ring);
      }
    }
    sl__unlock(hg, &ring);
    seen = bell;
  }
}

/* ---- open and detach ---- */

int sl_hgate_path(const char* dir, const char* name, size_t len, char* buf, size_t size) {
  int n;
  if (len == 0 || len > SL_HGATE_NAME_MAX || memchr(name, '/', len) != NULL ||
      memchr(name, '\0', len) != NULL)
    return UV_EINVAL;
  n = snprintf(buf, size, "%s/sluice-%u-%.*s", dir != NULL ? dir : "/dev/shm", (unsigned) geteuid(),
               (int) len, name);
  return n < 0 || (size_t) n >= size ? UV_ENOBUFS : 0;
}

/* Creates a complete segment under a temporary name and links it at
 * `path`. Returns 0, UV_EEXIST if someone else linked one first, or an
 * error. */
static int sl__create(const char* path, int64_t permits) {
  char tmp[PATH_MAX + 64];
  pthread_mutexattr_t attr;
  sl_hg_hdr_t* h;
  sl_hg_slot_t* slots;
  uint32_t i;
  int fd, r = 0;

  int anonymous = 0;

  /* An anonymous file (O_TMPFILE) first: a process killed before it is
   * linked leaves nothing behind. Where the kernel or the file system has
   * no O_TMPFILE, or /proc is missing for the link, a temporary name. */
#ifdef O_TMPFILE
  {
    const char* slash = strrchr(path, '/');
    size_t dlen = slash != NULL ? (size_t) (slash - path) : 0;
    if (slash != NULL && dlen + 1 < sizeof(tmp)) {
      memcpy(tmp, path, dlen);
      tmp[dlen ? dlen : 1] = '\0';
      if (dlen == 0)
        tmp[0] = '/';
      fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (fd >= 0) {
        snprintf(tmp, sizeof(tmp), "/proc/self/fd/%d", fd);
        /* linkat needs /proc to name it: without /proc (a sandbox, a
         * chroot), the temporary name below. */
        if (access(tmp, F_OK) == 0)
          anonymous = 1;
        else
          close(fd);
      }
    }
  }
#endif
  if (!anonymous) {
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d-%llu", path, (int) getpid(),
             (unsigned long long) uv_hrtime());
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
      return SL__ERR(errno);
  }
  /* The umask may have taken bits away: the owner needs read and write. */
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t) SL_TOTAL_SIZE) != 0) {
    r = SL__ERR(errno);
    goto out;
  }
  h = mmap(NULL, SL_TOTAL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (h == MAP_FAILED) {
    r = SL__ERR(errno);
    goto out;
  }
  memcpy(h->magic, sl__magic, sizeof(sl__magic));
  h->layout = SL_HGATE_LAYOUT;
  h->hdr_size = sizeof(sl_hg_hdr_t);
  h->slot_size = sizeof(sl_hg_slot_t);
  h->entry_size = sizeof(sl_hg_entry_t);
  h->mutex_size = sizeof(pthread_mutex_t);
  h->nslots = SL_HGATE_SLOTS;
  h->nentries = SL_HGATE_ENTRIES;
  h->uid = (uint32_t) geteuid();
  h->total_size = SL_TOTAL_SIZE;
  h->permits = permits;
  h->qhead = h->qtail = h->free_head = SL_NIL;
  h->next_ticket = 1;
  slots = (sl_hg_slot_t*) ((char*) h + SL_SLOTS_OFF);
  for (i = 0; i < SL_HGATE_SLOTS; i++)
    slots[i].rhead = slots[i].rtail = SL_NIL;
  /* Robust: a process that dies holding it does not wedge the gate (the
   * next locker gets EOWNERDEAD). Process-shared: it lives in the file.
   * PTHREAD_MUTEX_ROBUST is an enum in glibc: no #ifdef around it. */
  if ((r = pthread_mutexattr_init(&attr)) == 0) {
    if ((r = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) == 0 &&
        (r = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) == 0)
      r = pthread_mutex_init(&h->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    r = r != 0 ? SL__ERR(r) : 0;
  } else {
    r = SL__ERR(r);
  }
  munmap(h, SL_TOTAL_SIZE);
  /* linkat with AT_SYMLINK_FOLLOW links the file /proc/self/fd/N names. */
  if (r == 0 && linkat(AT_FDCWD, tmp, AT_FDCWD, path, anonymous ? AT_SYMLINK_FOLLOW : 0) != 0)
    r = SL__ERR(errno);
out:
  if (!anonymous)
    unlink(tmp);
  close(fd);
  return r;
}

/* Opens the file at `path` and maps it if it is a segment we can trust.
 * Returns the fd, or a negative error (UV_ENOENT when there is none). */
static int sl__map(const char* path, sl_hg_hdr_t** out) {
  struct stat st;
  sl_hg_hdr_t h;
  void* p;
  int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ELOOP ? UV_EACCES : SL__ERR(errno);
  /* Ours alone, or refused: a file another user planted (/dev/shm is
   * world-writable) must not be trusted, nor one others can write. */
  if (syscall(SYS_fstat, fd, &st) != 0) {
    int r = SL__ERR(errno);
    close(fd);
    return r;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    close(fd);
    return UV_EACCES;
  }
  /* Read before mapping: an incompatible layout is never mapped. */
  if ((size_t) st.st_size != SL_TOTAL_SIZE || pread(fd, &h, sizeof(h), 0) != (ssize_t) sizeof(h) ||
      !sl__header_ok(&h) || h.uid != (uint32_t) geteuid()) {
    close(fd);
    return UV_EPROTO;
  }
  p = mmap(NULL, SL_TOTAL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int r = SL__ERR(errno);
    close(fd);
    return r;
  }
  *out = p;
  return fd;
}

static void sl__unmap(sl_hgate_t* hg) {
  munmap(hg->hdr, SL_TOTAL_SIZE);
  close(hg->fd); /* drops our liveness lock */
  hg->fd = -1;
}

/* Attaches this process to the gate at hg->path: a slot, its lock, the
 * helper. Returns 0 or an error (hg is unmapped then). */
static int sl__attach(sl_hgate_t* hg, int64_t permits, int64_t* existing) {
  sl_ring_t ring = {.n = 0};
  int tries, r = UV_EBUSY;
  uint32_t i;

  for (tries = 0; tries < 16; tries++) {
    sl_hg_hdr_t* h = NULL;
    int fd = sl__map(hg->path, &h);
    if (fd == UV_ENOENT) {
      if (permits < 0)
        return UV_ENOENT;
      r = sl__create(hg->path, permits);
      if (r != 0 && r != UV_EEXIST)
        return r;
      continue; /* open what is there now: ours or the winner's */
    }
    if (fd < 0)
      return fd;
    hg->fd = fd;
    hg->hdr = h;
    hg->slots = (sl_hg_slot_t*) ((char*) h + SL_SLOTS_OFF);
    hg->entries = (sl_hg_entry_t*) ((char*) h + SL_ENTRIES_OFF);
    hg->slot = SL_NIL;
    if ((r = sl__lock(hg, &ring)) != 0) {
      sl_ring(&ring);
      sl__unmap(hg);
      return r;
    }
    if (h->unlinked) {
      /* Its last process detached between our open and our lock, or was
       * killed between marking it and unlinking it: then the file is still
       * at the name, and nobody can ever attach to it again. We unlink it
       * for them if the name still holds this file. Under this file's
       * mutex: every unlink of it happens under it, so the name cannot
       * change to a new file between our stat and our unlink. */
      struct stat a, b;
      int at = open(hg->path, O_PATH | O_NOFOLLOW | O_CLOEXEC); /* no stat(): GLIBC_2.33 */
      if (at >= 0) {
        if (syscall(SYS_fstat, fd, &a) == 0 && syscall(SYS_fstat, at, &b) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
          (void) unlink(hg->path);
        close(at);
      }
      sl__unlock_wake(hg);
      sl_ring(&ring);
      sl__unmap(hg);
      continue;
    }
    /* Recover what dead processes left, then decide. */
    sl__reap_locked(hg, &ring);
    if (permits >= 0 && h->permits != permits) {
      if (h->nlive > 0) {
        *existing = h->permits;
        sl__unlock_wake(hg);
        sl_ring(&ring);
        sl__unmap(hg);
        return UV_EEXIST;
      }
      h->permits = permits; /* nobody left: a fresh start */
    }
    r = UV_EBUSY;
    for (i = 0; i < SL_HGATE_SLOTS; i++) {
      sl_hg_slot_t* s = &hg->slots[i];
      if (s->state != SL_SLOT_FREE)
        continue;
      /* Our lock first, then LIVE: nobody can see the slot LIVE without
       * the lock that says we are alive. */
      if (sl__ofd_lock(fd, i, F_OFD_SETLK, F_WRLCK, NULL) != 0)
        continue; /* cannot happen for a free slot; try the next */
      s->pid = (uint32_t) getpid();
      s->held = 0;
      s->rhead = s->rtail = SL_NIL;
      s->sleeping = 0;
      s->state = SL_SLOT_LIVE;
      h->nlive++;
      hg->slot = i;
      r = 0;
      break;
    }
    sl__unlock_wake(hg);
    sl_ring(&ring);
    if (r != 0) {
      sl__unmap(hg);
      return r;
    }
    r = uv_thread_create(&hg->helper, sl__helper, hg);
    if (r != 0) {
      /* Give the slot back. */
      if (sl__lock(hg, &ring) == 0) {
        hg->slots[hg->slot].state = SL_SLOT_FREE;
        h->nlive--;
        sl__unlock_wake(hg);
      }
      sl_ring(&ring);
      sl__unmap(hg);
      return r;
    }
    return 0;
  }
  return UV_EBUSY; /* files keep vanishing under us */
}

/* Detaches with the last stake: stops the helper, frees the slot, unlinks
 * the file with the last process. */
static void sl__detach(sl_hgate_t* hg) {
  sl_ring_t ring = {.n = 0};
  sl_hg_slot_t* me = &hg->slots[hg->slot];

  __atomic_store_n(&hg->stop, 1, __ATOMIC_RELEASE);
  __atomic_fetch_add(&me->bell, 1, __ATOMIC_SEQ_CST);
  sl__futex_wake(&me->bell);
  uv_thread_join(&hg->helper);
  if (sl__lock(hg, &ring) == 0) {
    sl_hg_hdr_t* h = hg->hdr;
    sl__reap_locked(hg, &ring); /* the last live one unlinks the file */
    /* Every stake is closed, so we hold nothing and queue nothing; a
     * rebuild would drop anything left anyway. */
    h->in_use -= me->held;
    me->held = 0;
    me->state = SL_SLOT_FREE;
    h->nlive--;
    if (h->nlive == 0) {
      h->unlinked = 1;
      (void) unlink(hg->path);
    }
    sl__unlock_wake(hg);
  }
  sl_ring(&ring);
  sl__unmap(hg);
}

int sl_hgate_open(const char* dir, const char* name, size_t len, int64_t permits, sl_ctx_t* ctx,
                  sl_stake_t* s, int64_t* existing) {
  char path[PATH_MAX];
  sl_ring_t ring = {.n = 0};
  sl_hgate_t* hg;
  sl_party_t* p;
  size_t plen;
  int r, created = 0;

  if ((r = sl_hgate_path(dir, name, len, path, sizeof(path))) != 0)
    return r;
  uv_once(&sl__reg_once, sl__reg_init);
  uv_mutex_lock(&sl__reg_lock);
  /* Compared with lengths, as the registry's names (sl_hgate_path has
   * refused a NUL in the name, so the path's length is the whole of it). */
  plen = strlen(path);
  for (hg = sl__open; hg != NULL; hg = hg->next)
    if (hg->plen == plen && memcmp(hg->path, path, plen) == 0)
      break;
  if (hg == NULL) {
    hg = sl_calloc(1, sizeof(*hg) + plen + 1);
    if (hg == NULL) {
      uv_mutex_unlock(&sl__reg_lock);
      return UV_ENOMEM;
    }
    memcpy(hg->path, path, plen + 1);
    hg->plen = plen;
    hg->fd = -1;
    if ((r = sl__attach(hg, permits, existing)) != 0) {
      uv_mutex_unlock(&sl__reg_lock);
      sl_free(hg);
      return r;
    }
    created = 1;
    hg->next = sl__open;
    sl__open = hg;
  }
  /* The stake and its party, under the segment's mutex (which guards our
   * view); the permits are checked there too when we did not just attach
   * (another process may have changed them). */
  if ((r = sl__lock(hg, &ring)) == 0) {
    if (!created && permits >= 0 && hg->hdr->permits != permits) {
      *existing = hg->hdr->permits;
      r = UV_EEXIST;
    } else {
      for (p = hg->parties; p != NULL && p->ctx != ctx; p = p->next)
        ;
      if (p == NULL && (p = sl_calloc(1, sizeof(*p))) != NULL) {
        p->ctx = ctx;
        p->next = hg->parties;
        hg->parties = p;
      }
      if (p == NULL) {
        r = UV_ENOMEM;
      } else {
        memset(s, 0, sizeof(*s));
        s->ctx = ctx;
        s->host = hg;
        s->party = p;
        p->nstakes++;
        hg->refs++;
      }
    }
    sl__unlock(hg, &ring);
  }
  if (r != 0 && hg->refs == 0) {
    sl_hgate_t** pp;
    for (pp = &sl__open; *pp != hg; pp = &(*pp)->next)
      ;
    *pp = hg->next;
    sl__detach(hg);
    sl_free(hg);
  }
  uv_mutex_unlock(&sl__reg_lock);
  return r;
}

/* At exit() (process.exit(), or a natural exit after the cleanup hooks,
 * when nothing is left open): every gate this process still has open is
 * left as if the process had died, at once, instead of when another
 * process notices: our slot is freed and the state rebuilt without it (our
 * permits return, our waiters leave, others are granted), and the last
 * process unlinks the file. From then on every operation of this process
 * fails (`gone`), so a thread still running cannot touch a slot that is
 * no longer ours. The helper threads and mappings die with the process.
 * Node stops worker threads before it calls exit(); a lock still held
 * elsewhere is not waited for (trylock): the others reap us anyway. */
static void sl__atexit(void) {
  sl_hgate_t* hg;
  if (uv_mutex_trylock(&sl__reg_lock) != 0)
    return;
  for (hg = sl__open; hg != NULL; hg = hg->next) {
    sl_ring_t ring = {.n = 0};
    if (sl__lock(hg, &ring) != 0)
      continue;
    hg->slots[hg->slot].state = SL_SLOT_FREE;
    /* Our waiters are dropped by the rebuild: they are no longer ours. */
    if (hg->wmap != NULL)
      memset(hg->wmap, 0, hg->wmap_cap * sizeof(*hg->wmap));
    hg->parties = NULL; /* their ctxs may be gone; nothing to keep alive */
    hg->slot = SL_NIL;
    (void) sl__rebuild(hg, &ring);
    if (hg->hdr->nlive == 0) {
      hg->hdr->unlinked = 1;
      (void) unlink(hg->path);
    }
    /* Under the mutex: no thread of ours gets in after this. */
    hg->gone = 1;
    sl__unlock_wake(hg);
  }
  uv_mutex_unlock(&sl__reg_lock);
}

/* ---- the backend ---- */

static int sl__try_take(sl_stake_t* s, uint32_t n) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  int r;
  if ((r = sl__lock(hg, &ring)) != 0) {
    sl_ring(&ring);
    return r;
  }
  r = UV_EBUSY;
  if (hg->hdr->npending == 0 && !sl__fits(hg->hdr, n)) {
    /* Full: perhaps a dead process holds permits. Look, at most once per
     * SL_HGATE_CHECK_MS (a failing tryAcquire in a loop must not turn into
     * a storm of fcntl calls). */
    uint64_t now = uv_hrtime();
    if (now - hg->last_check >= (uint64_t) SL_HGATE_CHECK_MS * 1000000u) {
      hg->last_check = now;
      sl__reap_locked(hg, &ring);
    }
  }
  if (hg->hdr->npending == 0 && sl__fits(hg->hdr, n)) {
    hg->slots[hg->slot].held += n;
    hg->hdr->in_use += n;
    sl__book(s, n, 0);
    r = 0;
  }
  sl__unlock(hg, &ring);
  return r;
}

/* Makes room in the entry -> waiter map for entry i. */
static int sl__wmap_reserve(sl_hgate_t* hg, uint32_t i) {
  uint32_t cap;
  sl_waiter_t** m;
  if (i < hg->wmap_cap)
    return 0;
  cap = hg->wmap_cap ? hg->wmap_cap : 64;
  while (cap <= i)
    cap *= 2;
  if (cap > SL_HGATE_ENTRIES)
    cap = SL_HGATE_ENTRIES;
  m = sl_realloc(hg->wmap, cap * sizeof(*m));
  if (m == NULL)
    return UV_ENOMEM;
  memset(&m[hg->wmap_cap], 0, (cap - hg->wmap_cap) * sizeof(*m));
  hg->wmap = m;
  hg->wmap_cap = cap;
  return 0;
}

static int sl__acquire(sl_stake_t* s, sl_waiter_t* w, uint32_t n, int32_t priority, int* queued,
                       sl_wlist_t* out) {
  sl_hgate_t* hg = s->host;
  sl_hg_hdr_t* h = hg->hdr;
  sl_ring_t ring = {.n = 0};
  uint32_t i;
  int r = 0;

  *queued = 0;
  if ((r = sl__lock(hg, &ring)) != 0) {
    sl_ring(&ring);
    return r;
  }
  if (sl__doomed(h->permits, n)) {
    r = UV_ERANGE;
  } else if (h->npending == 0 && sl__fits(h, n)) {
    hg->slots[hg->slot].held += n;
    h->in_use += n;
    sl__book(s, n, 0);
  } else if ((i = sl__entry_alloc(hg)) == SL_NIL) {
    r = UV_ENOSPC;
  } else if (sl__wmap_reserve(hg, i) != 0) {
    sl__entry_free(hg, i);
    r = UV_ENOMEM;
  } else {
    sl_hg_entry_t* e = sl__e(hg, i);
    e->owner = hg->slot;
    e->n = n;
    e->priority = priority;
    e->ticket = h->next_ticket++;
    e->state = SL_ENTRY_QUEUED;
    sl__q_insert(hg, i);
    hg->wmap[i] = w;
    w->hentry = i;
    w->n = n;
    w->priority = priority;
    w->stake = s;
    w->state = SL_WAITER_QUEUED;
    sl__book(s, 0, 1);
    /* Our first waiter: wake our helper out of its untimed sleep, so it
     * starts checking that the others are alive. */
    if (__atomic_fetch_add(&hg->nlocal, 1, __ATOMIC_RELAXED) == 0)
      sl__bell(&hg->slots[hg->slot]);
    *queued = 1;
    if (sl__fits(h, sl__e(hg, h->qhead)->n))
      sl__grant_head(hg, s->ctx, out, &ring);
  }
  sl__unlock(hg, &ring);
  return r;
}

static int sl__release(sl_stake_t* s, int64_t n, uint32_t max_grants, sl_wlist_t* out) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  int r;
  if ((r = sl__lock(hg, &ring)) != 0) {
    sl_ring(&ring);
    return r;
  }
  if (n < 0 || n > s->held) {
    sl__unlock(hg, &ring);
    return UV_ERANGE;
  }
  hg->slots[hg->slot].held -= n;
  hg->hdr->in_use -= n;
  sl__book(s, -n, 0);
  sl__dispatch_locked(hg, max_grants, s->ctx, out, &ring);
  sl__unlock(hg, &ring);
  return 0;
}

static void sl__dispatch(sl_stake_t* s, sl_wlist_t* out) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    return;
  }
  sl__dispatch_locked(hg, 0, s->ctx, out, &ring);
  sl__unlock(hg, &ring);
}

static void sl__set_permits(sl_stake_t* s, int64_t permits, sl_wlist_t* out) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  uint32_t i;
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    return;
  }
  hg->hdr->permits = permits;
  for (i = hg->hdr->qhead; i != SL_NIL;) {
    sl_hg_entry_t* e = sl__e(hg, i);
    uint32_t next = e->next;
    if (sl__doomed(permits, e->n)) {
      sl__q_unlink(hg, i);
      e->state = SL_ENTRY_REFUSED;
      sl__deliver(hg, i, s->ctx, out, &ring);
    }
    i = next;
  }
  sl__unlock(hg, &ring);
}

static int sl__cancel(sl_waiter_t* w, sl_wlist_t* out) {
  sl_stake_t* s = w->stake;
  sl_hgate_t* hg;
  sl_ring_t ring = {.n = 0};
  uint32_t i;
  if (s == NULL)
    return UV_ENOENT;
  hg = s->host;
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    return UV_ENOENT;
  }
  i = w->hentry;
  /* Granted by another process and on its way (our ready list), or taken
   * already: not ours to cancel; the grant arrives through the doorbell. */
  if (w->state != SL_WAITER_QUEUED || i >= hg->wmap_cap || hg->wmap[i] != w ||
      sl__e(hg, i)->state != SL_ENTRY_QUEUED) {
    sl__unlock(hg, &ring);
    return UV_ENOENT;
  }
  sl__q_unlink(hg, i);
  hg->wmap[i] = NULL;
  __atomic_fetch_sub(&hg->nlocal, 1, __ATOMIC_RELAXED);
  sl__entry_free(hg, i);
  sl__book(s, 0, -1);
  w->state = SL_WAITER_NEW;
  sl__dispatch_locked(hg, 0, s->ctx, out, &ring);
  sl__unlock(hg, &ring);
  return 0;
}

/* Removes one of our entries of stake s (queued, or granted or refused and
 * on its way to us) as if it had never been queued. */
static void sl__clear_entry(sl_hgate_t* hg, uint32_t i, sl_wlist_t* out) {
  sl_waiter_t* w = hg->wmap[i];
  if (sl__e(hg, i)->state == SL_ENTRY_GRANTED)
    hg->hdr->in_use -= w->n; /* given back: its owner never had it */
  hg->wmap[i] = NULL;
  __atomic_fetch_sub(&hg->nlocal, 1, __ATOMIC_RELAXED);
  sl__entry_free(hg, i);
  sl__book(w->stake, 0, -1);
  w->state = SL_WAITER_NEW;
  sl_wlist_push(out, w);
}

static void sl__clear(sl_stake_t* s, sl_wlist_t* out) {
  sl_hgate_t* hg = s->host;
  sl_hg_slot_t* me;
  sl_ring_t ring = {.n = 0};
  uint32_t i, prev;
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    return;
  }
  me = &hg->slots[hg->slot];
  /* First those on their way to us (they left the queue first), then the
   * queued ones in queue order: the order they would have run. */
  for (prev = SL_NIL, i = me->rhead; i != SL_NIL && s->waiting > 0;) {
    uint32_t next = sl__e(hg, i)->next;
    if (hg->wmap[i] != NULL && hg->wmap[i]->stake == s) {
      if (prev == SL_NIL)
        me->rhead = next;
      else
        sl__e(hg, prev)->next = next;
      if (me->rtail == i)
        me->rtail = prev;
      sl__clear_entry(hg, i, out);
    } else {
      prev = i;
    }
    i = next;
  }
  for (i = hg->hdr->qhead; i != SL_NIL && s->waiting > 0;) {
    uint32_t next = sl__e(hg, i)->next;
    if (sl__e(hg, i)->owner == hg->slot && hg->wmap[i] != NULL && hg->wmap[i]->stake == s) {
      sl__q_unlink(hg, i);
      sl__clear_entry(hg, i, out);
    }
    i = next;
  }
  sl__unlock(hg, &ring);
}

static void sl__counts(sl_stake_t* s, sl_gate_counts_t* out) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  memset(out, 0, sizeof(*out));
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    return;
  }
  out->permits = hg->hdr->permits;
  out->in_use = hg->hdr->in_use;
  out->npending = hg->hdr->npending;
  sl__unlock(hg, &ring);
}

static int64_t sl__held(sl_stake_t* s) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  int64_t held = 0;
  /* Under the mutex: our helper thread books grants on it. */
  if (sl__lock(hg, &ring) == 0) {
    held = s->held;
    sl__unlock(hg, &ring);
  } else {
    sl_ring(&ring);
  }
  return held;
}

static void sl__close(sl_stake_t* s) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  sl_wlist_t none;
  sl_party_t* p = s->party;

  sl_wlist_init(&none);
  uv_mutex_lock(&sl__reg_lock);
  if (sl__lock(hg, &ring) == 0) {
    /* What the holder never released goes back; grants go through ready
     * queues (self = NULL), since this may run in a finalizer. */
    hg->slots[hg->slot].held -= s->held;
    hg->hdr->in_use -= s->held;
    sl__book(s, -s->held, 0);
    if (--p->nstakes == 0) {
      sl_party_t** pp;
      if (p->keep)
        sl_ctx_keep_add(p->ctx, -1, &ring);
      for (pp = &hg->parties; *pp != p; pp = &(*pp)->next)
        ;
      *pp = p->next;
      sl_free(p);
    }
    s->party = NULL;
    sl__dispatch_locked(hg, 0, NULL, &none, &ring);
    sl__unlock(hg, &ring);
  } else {
    sl_ring(&ring);
  }
  s->host = NULL;
  if (--hg->refs == 0) {
    sl_hgate_t** pp;
    for (pp = &sl__open; *pp != hg; pp = &(*pp)->next)
      ;
    *pp = hg->next;
    sl__detach(hg);
    sl_free(hg->wmap);
    /* Parties were freed with their last stakes. */
    sl_free(hg);
  }
  uv_mutex_unlock(&sl__reg_lock);
}

int sl_hgate_check(sl_stake_t* s, char* why, size_t size) {
  sl_hgate_t* hg = s->host;
  sl_hg_hdr_t* h = hg->hdr;
  sl_ring_t ring = {.n = 0};
  int64_t in_use = 0;
  uint32_t i, queued = 0, nlive = 0, prev = SL_NIL;
  const char* bad = NULL;
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    snprintf(why, size, "cannot lock");
    return UV_EPROTO;
  }
  for (i = 0; i < SL_HGATE_SLOTS; i++) {
    if (hg->slots[i].state == SL_SLOT_LIVE) {
      nlive++;
      in_use += hg->slots[i].held;
    }
  }
  for (i = 0; i < h->hwm; i++) {
    sl_hg_entry_t* e = sl__e(hg, i);
    if (e->state == SL_ENTRY_GRANTED)
      in_use += e->n;
    if (e->state == SL_ENTRY_QUEUED)
      queued++;
    if (e->state != SL_ENTRY_FREE &&
        (e->owner >= SL_HGATE_SLOTS || hg->slots[e->owner].state != SL_SLOT_LIVE))
      bad = "an entry of a free slot";
  }
  for (i = h->qhead; i != SL_NIL && bad == NULL; prev = i, i = sl__e(hg, i)->next) {
    if (sl__e(hg, i)->state != SL_ENTRY_QUEUED || sl__e(hg, i)->prev != prev)
      bad = "the queue list";
    else if (prev != SL_NIL && sl__before(sl__e(hg, i), sl__e(hg, prev)))
      bad = "the queue order";
  }
  if (bad == NULL && in_use != h->in_use)
    bad = "in_use is not the sum of held and granted permits";
  if (bad == NULL && queued != h->npending)
    bad = "npending is not the number of queued entries";
  if (bad == NULL && nlive != h->nlive)
    bad = "nlive";
  sl__unlock(hg, &ring);
  if (bad != NULL)
    snprintf(why, size, "%s", bad);
  return bad == NULL ? 0 : UV_EPROTO;
}

void sl_hgate_reap(sl_stake_t* s) {
  sl_hgate_t* hg = s->host;
  sl_ring_t ring = {.n = 0};
  if (sl__lock(hg, &ring) != 0) {
    sl_ring(&ring);
    return;
  }
  sl__reap_locked(hg, &ring);
  sl__unlock(hg, &ring);
}

void sl_hgate_test_stall(sl_stake_t* s, int at, int fd) {
  sl_hgate_t* hg = s->host;
  sl_hg_hdr_t* h = hg->hdr;
  sl_ring_t ring = {.n = 0};
  if (sl__lock(hg, &ring) != 0)
    abort();
  if (at == 1 && h->qhead != SL_NIL) {
    /* The head is out of the queue and counted, not yet marked GRANTED nor
     * delivered. */
    uint32_t i = h->qhead;
    sl__q_unlink(hg, i);
    h->in_use += sl__e(hg, i)->n;
  } else if (at == 2) {
    /* Our permits are half given back: in_use is lowered, our slot is not. */
    h->in_use -= hg->slots[hg->slot].held;
  } else if (at == 3) {
    /* A queue link is garbage and the counts are wrong. */
    if (h->qhead != SL_NIL)
      sl__e(hg, h->qhead)->next = 12345;
    h->npending += 7;
    h->free_head = 999999;
  }
  /* Tell the test, then hold the lock until it kills us. */
  if (write(fd, "x", 1) != 1)
    abort();
  for (;;)
    pause();
}

const sl_gate_backend_t sl_hgate_backend = {
    sl__try_take, sl__acquire,     sl__release, sl__cancel, sl__clear,
    sl__dispatch, sl__set_permits, sl__counts,  sl__held,   sl__close,
};

#else /* !__linux__ */

/* Not yet: see README "scope: 'host'" for what macOS and Windows need. */

int sl_hgate_path(const char* dir, const char* name, size_t len, char* buf, size_t size) {
  (void) dir;
  (void) name;
  (void) len;
  (void) buf;
  (void) size;
  return UV_ENOTSUP;
}

int sl_hgate_open(const char* dir, const char* name, size_t len, int64_t permits, sl_ctx_t* ctx,
                  sl_stake_t* s, int64_t* existing) {
  (void) dir;
  (void) name;
  (void) len;
  (void) permits;
  (void) ctx;
  (void) s;
  (void) existing;
  return UV_ENOTSUP;
}

uint64_t sl_hgate_repairs(void) {
  return 0;
}

uint64_t sl_hgate_owner_dead(void) {
  return 0;
}

void sl_hgate_test_stall(sl_stake_t* s, int at, int fd) {
  (void) s;
  (void) at;
  (void) fd;
}

int sl_hgate_check(sl_stake_t* s, char* why, size_t size) {
  (void) s;
  (void) why;
  (void) size;
  return UV_ENOTSUP;
}

void sl_hgate_reap(sl_stake_t* s) {
  (void) s;
}

/* Never reached: no stake of a host gate can be opened here. */
static int sl__nosup_int(void) {
  return UV_ENOTSUP;
}

static int sl__try_take(sl_stake_t* s, uint32_t n) {
  (void) s;
  (void) n;
  return sl__nosup_int();
}
static int sl__acquire(sl_stake_t* s, sl_waiter_t* w, uint32_t n, int32_t priority, int* queued,
                       sl_wlist_t* out) {
  (void) s;
  (void) w;
  (void) n;
  (void) priority;
  (void) out;
  *queued = 0;
  return UV_ENOTSUP;
}
static int sl__release(sl_stake_t* s, int64_t n, uint32_t max_grants, sl_wlist_t* out) {
  (void) s;
  (void) n;
  (void) max_grants;
  (void) out;
  return UV_ENOTSUP;
}
static int sl__cancel(sl_waiter_t* w, sl_wlist_t* out) {
  (void) w;
  (void) out;
  return UV_ENOENT;
}
static void sl__clear(sl_stake_t* s, sl_wlist_t* out) {
  (void) s;
  (void) out;
}
static void sl__set_permits(sl_stake_t* s, int64_t permits, sl_wlist_t* out) {
  (void) s;
  (void) permits;
  (void) out;
}
static void sl__counts(sl_stake_t* s, sl_gate_counts_t* out) {
  (void) s;
  memset(out, 0, sizeof(*out));
}
static int64_t sl__held(sl_stake_t* s) {
  (void) s;
  return 0;
}
static void sl__close(sl_stake_t* s) {
  (void) s;
}

const sl_gate_backend_t sl_hgate_backend = {
    sl__try_take, sl__acquire,     sl__release, sl__cancel, sl__clear,
    sl__clear,    sl__set_permits, sl__counts,  sl__held,   sl__close,
};

#endif
