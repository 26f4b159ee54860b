// Types for `sluice/generic-pool`: the surface of generic-pool 3's own types
// (createPool, Pool, Factory, Options), plus sluice's additions (marked
// "sluice addition"). This file holds the declarations; generic-pool.d.mts
// re-exports them. lib/generic-pool.js exports { createPool, Pool,
// TimeoutError }.
import { EventEmitter } from 'node:events'

/** Rejected when an acquire waits longer than `acquireTimeoutMillis` (message `ResourceRequest timed out`). */
export declare class TimeoutError extends Error {
  name: 'TimeoutError'
}

export interface Factory<T> {
  /** A value or a promise of one. A rejection, a throw or `null`/`undefined` is a failed create (`factoryCreateError`). */
  create(): Promise<T> | T
  destroy(client: T): Promise<unknown> | unknown
  /** Only `false` means invalid; a rejection or a throw counts as invalid too (sluice: `factoryValidateError`). */
  validate?(client: T): Promise<boolean> | boolean
}

export interface Options {
  /** Default 1. Parsed with parseInt; NaN (including Infinity) becomes 1. */
  max?: number
  /** Default 0. Parsed with parseInt, clamped to max. */
  min?: number
  maxWaitingClients?: number
  testOnBorrow?: boolean
  /** Accepted and ignored, as in generic-pool. */
  testOnReturn?: boolean
  acquireTimeoutMillis?: number
  destroyTimeoutMillis?: number
  fifo?: boolean
  priorityRange?: number
  autostart?: boolean
  evictionRunIntervalMillis?: number
  numTestsPerEvictionRun?: number
  softIdleTimeoutMillis?: number
  idleTimeoutMillis?: number
  /** The Promise class of the pool's promises (default: the global one). */
  Promise?: PromiseConstructorLike & {
    resolve: (...args: any[]) => any
    reject: (...args: any[]) => any
    all: (...args: any[]) => any
  }
  /** sluice addition: reject the first waiter with the error of a failed create (default false: retry with backoff). */
  propagateCreateError?: boolean
  /** sluice addition: destroy a resource when it is released after this many acquires. */
  maxUses?: number
  /** sluice addition: never hand out a resource older than this (ms since its creation). */
  maxLifetimeMillis?: number
  /** sluice addition: emit 'leak' for a resource borrowed longer than this (ms). */
  leakDetectionMillis?: number
}

/** sluice addition: the options of `acquire()` and `use()`. */
export interface AcquireOptions {
  /** Aborting removes the waiter; the acquire rejects with `signal.reason`. */
  signal?: AbortSignal
}

/** sluice addition: `pool.stats()`. */
export interface PoolStats {
  size: number
  available: number
  borrowed: number
  pending: number
  spareResourceCapacity: number
  creating: number
  validating: number
  destroying: number
  max: number
  min: number
}

export declare class Pool<T> extends EventEmitter {
  /** generic-pool's signature (the three classes are ignored), or `new Pool(factory, options)`. */
  constructor(
    Evictor: unknown,
    Deque: unknown,
    PriorityQueue: unknown,
    factory: Factory<T>,
    options?: Options
  )
  constructor(factory: Factory<T>, options?: Options)

  readonly spareResourceCapacity: number
  readonly size: number
  readonly available: number
  readonly borrowed: number
  readonly pending: number
  readonly max: number
  readonly min: number

  start(): void
  /** 0 is the highest priority (generic-pool's). */
  acquire(priority?: number, options?: AcquireOptions): Promise<T>
  release(resource: T): Promise<void>
  destroy(resource: T): Promise<void>
  drain(): Promise<void>
  clear(): Promise<void>
  /** Acquires, calls `cb`, then releases the resource (or destroys it if `cb` throws or rejects). */
  use<U>(
    cb: (resource: T) => U | PromiseLike<U>,
    priority?: number,
    options?: AcquireOptions
  ): Promise<U>
  isBorrowedResource(resource: T): boolean
  ready(): Promise<void>
  /** sluice addition: a snapshot of the counts. */
  stats(): PoolStats

  on(event: 'factoryCreateError' | 'factoryDestroyError', listener: (err: Error) => void): this
  /** sluice addition: a validate() that rejected or threw (the resource was destroyed). */
  on(event: 'factoryValidateError', listener: (err: unknown) => void): this
  /** sluice addition: a resource borrowed longer than `leakDetectionMillis`. */
  on(event: 'leak', listener: (resource: T) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export declare function createPool<T>(factory: Factory<T>, opts?: Options): Pool<T>
