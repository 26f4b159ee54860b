/* sluice: the host gate, one gate for every process of a user on the host.
 *
 * No Node-API in here: plain C on libuv and Linux primitives, tested on its
 * own (test/c/hgate_test.c) under ASan/UBSan and valgrind, including
 * processes killed with SIGKILL at random points, in and out of the lock.
 *
 * The segment. A host gate is a file in /dev/shm, "sluice-<uid>-<name>",
 * mode 0600, mapped shared by every process that opens it. It holds:
 *   - a header: a magic and a layout version (checked with pread before the
 *     file is mapped: an incompatible layout is refused, never trusted), the
 *     sizes of its parts, the owner's uid, the permits, the derived counts;
 *   - a process-shared ROBUST mutex guarding everything below;
 *   - a table of process slots: per attached process its pid, the permits
 *     it holds, a futex word (its bell) and the list of its entries that
 *     were granted or refused and not yet taken by it;
 *   - a table of entries, one per queued waiter of any process: owner slot,
 *     permits wanted, priority, ticket (FIFO order), state. QUEUED entries
 *     form one list ordered by priority, then ticket: the head is the
 *     longest-waiting waiter of the highest priority, whichever process
 *     it is in.
 *
 * Truth and repair. The primary records are the permits, each slot's state
 * and held permits, and each entry's state, owner, n, priority and ticket.
 * A process changes another process's primary records only by single
 * stores (an entry becomes GRANTED or REFUSED), so a process that dies in
 * the middle of an operation leaves every other process's records whole.
 * Everything else (in_use, npending, the queue and ready lists, the free
 * list) is derived, and rebuilt from the primary records whenever the mutex
 * reports a dead owner (EOWNERDEAD, then pthread_mutex_consistent), or a
 * dead process is found: its slot and its entries are freed, its permits
 * return, and waiters that now fit are granted. The rebuild checks the
 * records it reads (states, owners, ranges) and drops what is not valid.
 *
 * Liveness. Each attached process holds an open-file-description lock
 * (F_OFD_SETLK) on one byte of the segment file, at an offset per slot.
 * The kernel drops it when the process dies, however it dies, so a pid
 * reused by another process cannot look alive (LMDB's reader check uses
 * the same idea with per-process fcntl locks). F_OFD_GETLK tests it.
 *
 * Waiting. No JS thread ever blocks: one helper thread per process and
 * gate sleeps in FUTEX_WAIT on its slot's bell. A process that grants or
 * refuses another's entry moves it to that process's ready list, bumps the
 * bell and wakes it (FUTEX_WAKE only when the helper sleeps). The helper
 * takes the entries, books them on their stakes and hands the waiters to
 * their threads' ready queues, ringing their doorbells (uv_async_send):
 * the binding settles them there, as grants by other threads of the
 * process. While its process has no waiter queued, the helper sleeps
 * without a timeout: an idle process makes no system call for the gate.
 * While it has one, it wakes every SL_HGATE_CHECK_MS to look for dead
 * processes (one fcntl per attached process), so a dead holder's permits
 * reach a waiter within that time, without the dead process's help.
 *
 * Lifetime. The creator builds the file under a temporary name and links
 * it into place, so a file at the gate's name is always complete. The last
 * process to detach marks the header `unlinked` and unlinks the file under
 * the mutex; an opener that finds the mark after locking starts over. A
 * file left by processes that all died is reaped by the next opener.
 *
 * Security. The file is created 0600 with O_EXCL and O_NOFOLLOW. A file at
 * the name that another user owns, or whose mode lets others in, is refused
 * (UV_EACCES): a process of another user can neither open ours (the kernel
 * refuses: mode 0600) nor plant one for us to trust.
 *
 * Locking: the segment's mutex guards the segment and this process's view
 * of it (sl_hgate_t: stakes, parties, the entry -> waiter map); then a
 * ctx's lock, inside it. Nothing calls into JS under either; doorbells are
 * rung after both are dropped.
 *
 * Linux only for now: elsewhere sl_hgate_open returns UV_ENOTSUP.
 */
#ifndef SLUICE_CORE_HGATE_H
#define SLUICE_CORE_HGATE_H

#include "gate.h"

#include <stddef.h>
#include <stdint.h>

/* Host gate names: 1 to SL_HGATE_NAME_MAX bytes, no '/' and no NUL (they
 * are part of a file name). */
#define SL_HGATE_NAME_MAX 200
/* Processes attached to one gate at once, and waiters queued at once. */
#define SL_HGATE_SLOTS 128
#define SL_HGATE_ENTRIES 16384
/* How often a process with waiters checks that the others are alive. */
#define SL_HGATE_CHECK_MS 200
/* The layout version: bump it whenever the segment's layout changes. */
#define SL_HGATE_LAYOUT 1

/* Opens a stake of `ctx` in the host gate `name`, creating the gate with
 * `permits` if it does not exist; permits < 0 means "attach only".
 * `dir` is where the segment lives (NULL: /dev/shm; tests use their own).
 * Returns 0, or:
 *   UV_EINVAL   a bad name;
 *   UV_ENOENT   no such gate and permits < 0;
 *   UV_EEXIST   the gate exists with other permits (*existing says which);
 *   UV_EACCES   the file at the name belongs to another user, or its mode
 *               lets others read or write it;
 *   UV_EPROTO   the file is not a sluice host gate of this layout version
 *               (or of this architecture);
 *   UV_EBUSY    every process slot is taken;
 *   UV_ENOTSUP  not on this platform;
 *   UV_ENOMEM, or an error of open/mmap. */
int sl_hgate_open(const char* dir, const char* name, size_t len, int64_t permits, sl_ctx_t* ctx,
                  sl_stake_t* s, int64_t* existing);

/* The segment's path for `name` (for error messages and tests). Returns 0
 * or UV_EINVAL (bad name) or UV_ENOBUFS. */
int sl_hgate_path(const char* dir, const char* name, size_t len, char* buf, size_t size);

/* The host gate. Every operation behaves as the in-process gate's (gate.h)
 * with the whole host as the gate: sl_gate_acquire returns UV_ENOSPC when
 * SL_HGATE_ENTRIES waiters are queued already, and any operation may
 * return UV_EIO when the segment cannot be repaired (a mutex made
 * unrecoverable by a foreign writer). `close` gives the stake's permits
 * back and detaches the process with its last stake. */
extern const sl_gate_backend_t sl_hgate_backend;

/* Tests: how many times this process repaired a segment (EOWNERDEAD or a
 * dead process found), and checks of the segment's invariants (0 or
 * UV_EPROTO with the first violation in `why`). */
uint64_t sl_hgate_repairs(void);
int sl_hgate_check(sl_stake_t* s, char* why, size_t size);
/* Tests: runs the liveness check now (as a waiting helper does). */
void sl_hgate_reap(sl_stake_t* s);
/* Tests: how many times a lock found its owner dead (EOWNERDEAD). */
uint64_t sl_hgate_owner_dead(void);
/* Tests: locks the segment, leaves it half-written (at = 1: the head taken
 * out of the queue and counted but not granted; 2: our permits half given
 * back; 3: garbage links and counts), writes a byte to `fd` and waits,
 * holding the lock, to be killed. Never returns. */
void sl_hgate_test_stall(sl_stake_t* s, int at, int fd);

#endif /* SLUICE_CORE_HGATE_H */
