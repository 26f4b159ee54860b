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
export interface Semaphore {
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

/** The Semaphore constructor; with `options.redis` it makes a {@link RedisSemaphore}. */
export declare const Semaphore: {
  /**
   * A semaphore in Redis, one for every process that opens `options.name`
   * there (see the README, "One limit for a fleet: Redis").
   */
  new (permits: number | undefined, options: RedisOptions): RedisSemaphore
  /**
   * @param permits 0 and up, or Infinity.
   * @param options `name` shares the semaphore with every thread of the
   *   process that opens the same name; with `scope: 'host'`, with every
   *   process of the user on this machine (Linux).
   */
  new (permits: number, options?: { name?: string; scope?: 'process' | 'host' }): Semaphore
  /** Attaches to the shared semaphore of this name that another opener made. */
  new (permits: undefined, options: { name: string; scope?: 'process' | 'host' }): Semaphore
  readonly prototype: Semaphore
}

/** An ioredis client, or a node-redis (v4 or later) client: recognised by shape. */
export type RedisClient = object

/** The options of a gate that lives in Redis. */
export type RedisOptions = {
  /** The gate's name; its keys are `sluice:{name}:*` (one Cluster slot). */
  name: string
  /** An ioredis or node-redis (v4+) client, connected. sluice duplicates it once per process for its subscriber. */
  redis: RedisClient
  /** How long a process's lease lasts without renewal (renewed every third of it). Default 10000. */
  leaseMillis?: number
}

/** What a `'leaseLost'` event reports. */
export type LeaseLost = {
  /** Permits this process held, now given to others (their `release()` is a no-op). */
  permits: number
  /** Acquires of this process still waiting; they were queued again, at the back. */
  waiting: number
}

/** Raised when an acquire times out while Redis cannot be reached. */
export declare class RedisUnreachableError extends Error {
  name: 'RedisUnreachableError'
}

/** A semaphore whose permits live in Redis, shared by every process that opens its name. */
export interface RedisSemaphore {
  /** Resolves once the gate is open in Redis; rejects with a RangeError if its permits differ or it does not exist and no permits were given. */
  readonly ready: Promise<void>
  /** Waits for `n` permits of the fleet; resolves with the grant's fencing token (increases for every grant of this gate). */
  acquire(n?: number, options?: AcquireOptions): Promise<number>
  /** Takes `n` permits if they are free and no one in the fleet waits: the fencing token, or false. */
  tryAcquire(n?: number): Promise<number | false>
  /** Returns `n` permits; for permits a lapsed lease already gave back, a no-op. */
  release(n?: number): void
  use<T>(fn: () => T | PromiseLike<T>, options?: AcquireOptions): Promise<T>
  /** The fleet's permits as Redis last said; setting it changes them for the fleet. */
  permits: number
  /** Sets the fleet's permits; resolves once Redis has them. */
  setPermits(permits: number): Promise<void>
  /** Reads the counts from Redis now (the getters show the last reply). */
  refresh(): Promise<void>
  /** Permits free in the fleet, as of the last reply from Redis. */
  readonly available: number
  /** Acquires waiting in the fleet, as of the last reply from Redis. */
  readonly pending: number
  /** Permits this process holds. */
  readonly held: number
  on(event: 'leaseLost', listener: (info: LeaseLost) => void): RedisSemaphore
  once(event: 'leaseLost', listener: (info: LeaseLost) => void): RedisSemaphore
  off(event: 'leaseLost', listener: (info: LeaseLost) => void): RedisSemaphore
  /** Releases what it holds, withdraws its waiters (they reject), stops its timers. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}
