// Types for `sluice`.
import pLimit, {
  limitFunction,
  type LimitFunction,
  type Options as LimitOptions
} from './p-limit.js'

export { pLimit, limitFunction, type LimitFunction, type LimitOptions }
export {
  createPool,
  Pool,
  type Factory,
  type Options as PoolOptions,
  type AcquireOptions as PoolAcquireOptions,
  type PoolStats
} from './generic-pool.js'

/** Rejected when a wait times out. Recognised by `name === 'TimeoutError'` as well as `instanceof`. */
export class TimeoutError extends Error {
  name: 'TimeoutError'
}

export type AcquireOptions = {
  /** Higher runs first; FIFO within a priority. Default 0. A 32-bit integer. */
  priority?: number
  /** Aborting it removes the waiter and rejects with `signal.reason`. */
  signal?: AbortSignal
  /** Milliseconds to wait before rejecting with a `TimeoutError`; 0 (the default) waits forever. */
  timeout?: number
}

/** A counting semaphore whose counts, queue and timers live in native code. */
export class Semaphore {
  /**
   * @param permits 0 and up, or Infinity. May be omitted to attach to an existing shared semaphore.
   * @param options `name` shares the semaphore with every thread of the process that opens the same name.
   */
  constructor(permits?: number, options?: { name?: string })
  /** Waits for `n` permits (default 1). */
  acquire(n?: number, options?: AcquireOptions): Promise<void>
  /** Takes `n` permits now if they are free and no one is waiting. */
  tryAcquire(n?: number): boolean
  /** Returns `n` permits (default 1). Releasing more than are held throws a RangeError. */
  release(n?: number): void
  /** Acquires one permit, runs `fn`, and releases the permit however `fn` ends. */
  use<T>(fn: () => T | PromiseLike<T>, options?: AcquireOptions): Promise<T>
  /** The number of permits; setting it grants the waiters that now fit. */
  permits: number
  /** Permits free now (negative after `permits` was lowered below the number in use). */
  readonly available: number
  /** Acquires waiting. */
  readonly pending: number
}
