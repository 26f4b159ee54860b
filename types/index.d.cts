// Types for `sluice`: the limiter, the semaphore and the pool. This file
// holds the Semaphore's declarations and re-exports the rest from
// p-limit.d.cts and generic-pool.d.cts; index.d.mts re-exports it.
// lib/index.js exports { pLimit, limitFunction, Semaphore, TimeoutError,
// createPool, Pool }.
export {
  default as pLimit,
  limitFunction,
  type LimitFunction,
  type Options as LimitOptions,
  type AttachOptions as LimitAttachOptions
} from './p-limit.cjs'
export {
  createPool,
  Pool,
  TimeoutError,
  type Factory,
  type Options as PoolOptions,
  type AcquireOptions as PoolAcquireOptions,
  type PoolStats
} from './generic-pool.cjs'

/** The options of a semaphore's `acquire()` and `use()`. */
export type AcquireOptions = {
  /** Higher runs first; FIFO within a priority. Default 0. A 32-bit integer. */
  priority?: number
  /** Aborting it removes the waiter and rejects with `signal.reason`. */
  signal?: AbortSignal
  /** Milliseconds to wait before rejecting with a `TimeoutError`; 0 (the default) waits forever. */
  timeout?: number
}

/** A counting semaphore whose counts, queue and timers live in native code. */
export declare class Semaphore {
  /**
   * @param permits 0 and up, or Infinity.
   * @param options `name` shares the semaphore with every thread of the
   *   process that opens the same name; with `scope: 'host'`, with every
   *   process of the user on this machine (Linux).
   */
  constructor(permits: number, options?: { name?: string; scope?: 'process' | 'host' })
  /** Attaches to the shared semaphore of this name that another opener made. */
  constructor(permits: undefined, options: { name: string; scope?: 'process' | 'host' })
  /** Waits for `n` permits (default 1). More than `permits` rejects with a RangeError. */
  acquire(n?: number, options?: AcquireOptions): Promise<void>
  /** Takes `n` permits now if they are free and no one is waiting. */
  tryAcquire(n?: number): boolean
  /** Returns `n` permits (default 1). Releasing more than are held throws a RangeError. */
  release(n?: number): void
  /** Acquires one permit, runs `fn`, and releases the permit however `fn` ends. */
  use<T>(fn: () => T | PromiseLike<T>, options?: AcquireOptions): Promise<T>
  /** The number of permits; setting it grants the waiters that now fit (of a shared semaphore: in every thread). */
  permits: number
  /** Permits free now (negative after `permits` was lowered below the number in use). */
  readonly available: number
  /** Acquires waiting. */
  readonly pending: number
}
