/* sluice: the protocol between lib/ and the bindings, written once.
 *
 * Each table is an X-macro list: the C enums below are made from it, and
 * module.c exports the same lists to JS at init (binding.protocol), which
 * lib/ reads. Nothing here is copied by hand into JS.
 */
#ifndef SLUICE_NAPI_PROTOCOL_H
#define SLUICE_NAPI_PROTOCOL_H

#include "../core/gate.h"
#include "../core/pool.h"
#include "../core/registry.h"

/* A gate's ctl(op, ...) operations. */
#define SL_GATE_OPS(X)                                                                             \
  X(ACTIVE, 0)                                                                                     \
  X(PENDING, 1)                                                                                    \
  X(PERMITS, 2)                                                                                    \
  X(SET_PERMITS, 3)                                                                                \
  X(DISPATCH, 4)                                                                                   \
  X(CLEAR, 5)                                                                                      \
  X(TRY_TAKE, 6)                                                                                   \
  X(CANCEL, 7)                                                                                     \
  X(AVAILABLE, 8)                                                                                  \
  X(GRANT_TO, 9)                                                                                   \
  X(LEAD, 10)                                                                                      \
  X(STAKES, 11)                                                                                    \
  X(STAKE_ID, 12)                                                                                  \
  X(EPOCH, 13)

/* What the pool core asks of JS, as events in the shared window. */
#define SL_POOL_EVENTS(X)                                                                          \
  X(CREATE, 1)                                                                                     \
  X(DESTROY, 2)                                                                                    \
  X(VALIDATE, 3)                                                                                   \
  X(RESOLVE, 4)                                                                                    \
  X(REJECT_TIMEOUT, 5)                                                                             \
  X(REJECT_CREATE, 6)                                                                              \
  X(CREATE_ERROR, 7)                                                                               \
  X(DESTROY_TIMEOUT, 8)                                                                            \
  X(LEAK, 9)                                                                                       \
  X(REJECT_CREATE_TIMEOUT, 10)                                                                     \
  X(REJECT_DRAINING, 11)                                                                           \
  X(CREATE_TIMEOUT, 12)                                                                            \
  X(EXPIRED, 13)

/* A pool's ctl(op, a, b) operations. */
#define SL_POOL_CTLS(X)                                                                            \
  X(DESTROY, 0)                                                                                    \
  X(CREATED, 1)                                                                                    \
  X(CREATE_FAILED, 2)                                                                              \
  X(DESTROYED, 3)                                                                                  \
  X(VALIDATED, 4)                                                                                  \
  X(CANCEL, 5)                                                                                     \
  X(DRAIN, 6)                                                                                      \
  X(CLEAR_IDLE, 7)                                                                                 \
  X(HOLD, 8)                                                                                       \
  X(STATE, 9)                                                                                      \
  X(START, 10)                                                                                     \
  X(STARTED, 11)                                                                                   \
  X(REFILL, 12)                                                                                    \
  X(DISPENSE, 13)                                                                                  \
  X(TAIL, 14)                                                                                      \
  X(CHECK, 15)                                                                                     \
  X(REMOVE, 16)

/* What a pool's acquire(priority, token) returns when it is not a slot
 * (>= 0), and what ctl(CHECK) returns (0: an acquire would be accepted). */
#define SL_POOL_ACQUIRE(X)                                                                         \
  X(QUEUED, -1)                                                                                    \
  X(DRAINING, -2)                                                                                  \
  X(FULL, -3)

/* The pool's counts (Float64Array at the start of its shared buffer), in
 * the core's order (enum sl_pool_count). */
#define SL_POOL_COUNTS(X)                                                                          \
  X(SIZE, SL_POOL_SIZE)                                                                            \
  X(AVAILABLE, SL_POOL_AVAILABLE)                                                                  \
  X(BORROWED, SL_POOL_BORROWED)                                                                    \
  X(PENDING, SL_POOL_PENDING)                                                                      \
  X(SPARE, SL_POOL_SPARE)                                                                          \
  X(CREATING, SL_POOL_CREATING)                                                                    \
  X(VALIDATING, SL_POOL_VALIDATING)                                                                \
  X(DESTROYING, SL_POOL_DESTROYING)                                                                \
  X(EXPIRED, SL_POOL_EXPIRED)                                                                      \
  X(NCOUNTS, SL_POOL_NCOUNTS)

/* The event window's header (Int32Array after the counts). */
#define SL_POOL_HEADER(X)                                                                          \
  X(LEN, 0)                                                                                        \
  X(POS, 1)                                                                                        \
  X(MORE, 2)                                                                                       \
  X(WAITER, 3)                                                                                     \
  X(SIZE, 4)

/* The pool's config Float64Array. */
#define SL_POOL_CONFIG(X)                                                                          \
  X(MAX, 0)                                                                                        \
  X(MIN, 1)                                                                                        \
  X(MAX_WAITING, 2)                                                                                \
  X(FIFO, 3)                                                                                       \
  X(TEST_ON_BORROW, 4)                                                                             \
  X(PROPAGATE, 5)                                                                                  \
  X(PRIORITY_RANGE, 6)                                                                             \
  X(ACQUIRE_TIMEOUT, 7)                                                                            \
  X(DESTROY_TIMEOUT, 8)                                                                            \
  X(EVICTION_INTERVAL, 9)                                                                          \
  X(NUM_TESTS, 10)                                                                                 \
  X(SOFT_IDLE, 11)                                                                                 \
  X(IDLE, 12)                                                                                      \
  X(MAX_USES, 13)                                                                                  \
  X(MAX_LIFETIME, 14)                                                                              \
  X(LEAK, 15)                                                                                      \
  X(BACKOFF_MIN, 16)                                                                               \
  X(BACKOFF_MAX, 17)                                                                               \
  X(BIND_CREATES, 18)                                                                              \
  X(NO_FILL, 19)                                                                                   \
  X(UNREF_TIMEOUTS, 20)                                                                            \
  X(CREATE_TIMEOUT, 21)                                                                            \
  X(IDLE_TIMEOUT, 22)                                                                              \
  X(EXPIRE, 23)                                                                                    \
  X(COUNT, 24)

/* Slot states (enum sl_pool_slot_state), as ctl(STATE) reports them. */
#define SL_POOL_SLOTS(X)                                                                           \
  X(FREE, SL_SLOT_FREE)                                                                            \
  X(CREATING, SL_SLOT_CREATING)                                                                    \
  X(IDLE, SL_SLOT_IDLE)                                                                            \
  X(BORROWED, SL_SLOT_BORROWED)                                                                    \
  X(VALIDATING, SL_SLOT_VALIDATING)                                                                \
  X(DESTROYING, SL_SLOT_DESTROYING)

/* Limits and defaults both sides need. */
#define SL_POOL_EVENT_WINDOW 256
#define SL_TIMEOUT_MAX 4294967295.0 /* a gate waiter's timeout, ms */
#define SL_PRIORITY_RANGE_MAX SL_POOL_MAX_RANGE
#define SL_BACKOFF_MIN 10   /* first create retry after a failure, ms */
#define SL_BACKOFF_MAX 1000 /* cap of the doubling retry delay, ms */
#define SL_LIMITS(X)                                                                               \
  X(COUNT_MAX, 4294967295.0)                                                                       \
  X(PRIORITY_MIN, -2147483648.0)                                                                   \
  X(PRIORITY_MAX, 2147483647.0)                                                                    \
  X(TIMEOUT_MAX, SL_TIMEOUT_MAX)                                                                   \
  X(NAME_MAX, SL_NAME_MAX)                                                                         \
  X(PRIORITY_RANGE_MAX, SL_PRIORITY_RANGE_MAX)                                                     \
  X(BACKOFF_MIN, SL_BACKOFF_MIN)                                                                   \
  X(BACKOFF_MAX, SL_BACKOFF_MAX)                                                                   \
  X(EVENT_WINDOW, SL_POOL_EVENT_WINDOW)

#define SL__ENUM(prefix, name, value) prefix##name = (value),
#define SL__GATE_OP(name, value) SL__ENUM(SL_OP_, name, value)
#define SL__POOL_EV(name, value) SL__ENUM(SL_EV_, name, value)
#define SL__POOL_CTL(name, value) SL__ENUM(SL_PCTL_, name, value)
#define SL__POOL_ACQ(name, value) SL__ENUM(SL_ACQ_, name, value)
#define SL__POOL_HDR(name, value) SL__ENUM(SL_HDR_, name, value)
#define SL__POOL_CFG(name, value) SL__ENUM(SL_CFG_, name, value)
enum { SL_GATE_OPS(SL__GATE_OP) SL_OP_COUNT_ };
enum { SL_POOL_EVENTS(SL__POOL_EV) SL_EV_COUNT_ };
enum { SL_POOL_CTLS(SL__POOL_CTL) SL_PCTL_COUNT_ };
enum { SL_POOL_ACQUIRE(SL__POOL_ACQ) };
enum { SL_POOL_HEADER(SL__POOL_HDR) };
enum { SL_POOL_CONFIG(SL__POOL_CFG) };

#endif /* SLUICE_NAPI_PROTOCOL_H */
