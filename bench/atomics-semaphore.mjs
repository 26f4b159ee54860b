// The pure-JS baseline for bench/shared.mjs: a counting semaphore shared by
// worker_threads through a SharedArrayBuffer, built on Atomics only.
//
//   const sem = new AtomicsSemaphore(4)            // the first thread
//   worker = new Worker(file, { workerData: sem.buffer })
//   const sem = new AtomicsSemaphore(workerData)   // any other thread
//   await sem.acquire(); try { ... } finally { sem.release() }
//
// Layout: Int32Array [count, waiters]. `count` is the number of free permits;
// `waiters` the number of acquires (in any thread) between a failed CAS and
// their success, so release() can skip Atomics.notify when nobody waits.
//
// acquire() is a CAS loop on `count`; with no permit free it waits with
// Atomics.waitAsync(count, 0), which never blocks the thread: the promise is
// resolved by a task posted to this thread's event loop when another thread
// calls Atomics.notify. release() adds to `count` and notifies.
//
// Lost wake-ups cannot happen:
// - waitAsync(count, observed) compares and enqueues atomically with respect
//   to notify: if a release changed `count` after we observed it, waitAsync
//   returns "not-equal" at once and we retry the CAS.
// - The waiter increments `waiters` before waitAsync reads `count`; release
//   adds to `count` before it reads `waiters`. All of these are sequentially
//   consistent, so either release sees waiters > 0 (and notifies) or our
//   waitAsync sees the new count (and does not sleep).
// - A woken waiter may lose the CAS to a thread that acquires in between
//   (barging: this semaphore is not FIFO). It then waits again; the thread
//   that took the permit will notify when it releases it.
//
// A pending Atomics.waitAsync does not keep its thread's event loop alive (on
// Node 20 a worker whose only work is such a wait exits, code 13 for a
// top-level await). So while this thread has waiters, a ref'd interval that
// never fires keeps the loop alive; it is unref'd when the last one is done.
//
// Permits are taken one at a time (acquire(n) for n > 1 is not supported: a
// notify cannot target a waiter that wants n).

const COUNT = 0
const WAITERS = 1
const RESOLVED = Promise.resolve()

// Per thread (module state is per thread): how many acquires of this thread
// wait, and the timer that keeps the loop alive meanwhile.
let localWaiters = 0
let keepAlive = null
const noop = () => {}

export class AtomicsSemaphore {
  #s

  /** @param {number | SharedArrayBuffer} permitsOrBuffer */
  constructor(permitsOrBuffer) {
    if (permitsOrBuffer instanceof SharedArrayBuffer) {
      this.#s = new Int32Array(permitsOrBuffer)
    } else {
      if (
        !Number.isInteger(permitsOrBuffer) ||
        permitsOrBuffer < 0 ||
        permitsOrBuffer > 0x7fffffff
      ) {
        throw new RangeError('Expected `permits` to be an integer from 0 to 2147483647')
      }
      this.#s = new Int32Array(new SharedArrayBuffer(8))
      this.#s[COUNT] = permitsOrBuffer
    }
  }

  /** Pass this to other threads (workerData, postMessage). */
  get buffer() {
    return this.#s.buffer
  }

  /** Takes a permit now if one is free. */
  tryAcquire() {
    const s = this.#s
    let c = Atomics.load(s, COUNT)
    while (c > 0) {
      const seen = Atomics.compareExchange(s, COUNT, c, c - 1)
      if (seen === c) return true
      c = seen
    }
    return false
  }

  /** @returns {Promise<void>} resolved when this thread holds a permit */
  acquire() {
    return this.tryAcquire() ? RESOLVED : this.#wait()
  }

  async #wait() {
    const s = this.#s
    if (localWaiters++ === 0) {
      if (keepAlive === null) keepAlive = setInterval(noop, 0x7fffffff)
      else keepAlive.ref()
    }
    Atomics.add(s, WAITERS, 1)
    try {
      for (;;) {
        let c = Atomics.load(s, COUNT)
        while (c > 0) {
          const seen = Atomics.compareExchange(s, COUNT, c, c - 1)
          if (seen === c) return
          c = seen
        }
        // c <= 0: sleep until `count` is no longer c (or return at once if it
        // changed since the load).
        const r = Atomics.waitAsync(s, COUNT, c)
        if (r.async) await r.value
      }
    } finally {
      Atomics.sub(s, WAITERS, 1)
      if (--localWaiters === 0) keepAlive.unref()
    }
  }

  release(n = 1) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError('Expected `n` to be a positive integer')
    const s = this.#s
    Atomics.add(s, COUNT, n)
    if (Atomics.load(s, WAITERS) > 0) Atomics.notify(s, COUNT, n)
  }

  /** Free permits now. */
  get available() {
    return Atomics.load(this.#s, COUNT)
  }

  /** Acquires waiting (in every thread). */
  get pending() {
    return Atomics.load(this.#s, WAITERS)
  }
}
