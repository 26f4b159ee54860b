// Types for `sluice/p-limit`: the surface of p-limit 7.3, plus the `name`
// option. This file holds the declarations; p-limit.d.mts re-exports them.
//
// Under `require` (`import pLimit = require('sluice/p-limit')`, or
// `require()` in JavaScript), lib/p-limit.js exports the function itself,
// with `.default`, `.pLimit` and `.limitFunction` on it: `export =` of the
// function merged with a namespace says exactly that.

/**
 * Run multiple promise-returning & async functions with limited concurrency.
 *
 * @param concurrency - Concurrency limit. Minimum: `1`. A number or an
 *   options object with a `concurrency` property (or a shared limit's `name`).
 * @returns A `limit` function.
 *
 * @example
 * ```
 * import pLimit from 'sluice/p-limit'
 *
 * const limit = pLimit(8)
 * const results = await Promise.all(urls.map((url) => limit(fetchJson, url)))
 * ```
 */
declare function pLimit(
  concurrency: number | pLimit.Options | pLimit.AttachOptions
): pLimit.LimitFunction
/** sluice's addition: one limit for every process that opens `name` in Redis. */
declare function pLimit(options: pLimit.RedisOptions): pLimit.RedisLimitFunction

declare namespace pLimit {
  export type LimitFunction = {
    /** The number of promises that are currently running (of a shared limit: in every thread). */
    readonly activeCount: number

    /** The number of promises that are waiting to run (i.e. their internal `fn` was not called yet). */
    readonly pendingCount: number

    /** Get or set the concurrency limit (of a shared limit: for every thread). */
    concurrency: number

    /**
     * Discard pending promises that are waiting to run.
     *
     * This might be useful if you want to tear down the queue at the end of
     * your program's lifecycle or discard any function calls referencing an
     * intermediary state of your app.
     *
     * Note: This does not cancel promises that are already running. When
     * `rejectOnClear` is enabled, pending promises are rejected with an
     * `AbortError`.
     */
    clearQueue: () => void

    /**
     * Process an iterable of inputs with limited concurrency.
     *
     * The mapper function receives the item value and its index.
     *
     * @param iterable - An iterable containing an argument for the given function.
     * @param mapperFunction - Promise-returning/async function.
     * @returns A promise equivalent to `Promise.all(Array.from(iterable, (item, index) => limit(mapperFunction, item, index)))`.
     */
    map: <Input, ReturnType>(
      iterable: Iterable<Input>,
      mapperFunction: (input: Input, index: number) => PromiseLike<ReturnType> | ReturnType
    ) => Promise<ReturnType[]>

    /**
     * @param fn - Promise-returning/async function.
     * @param arguments - Any arguments to pass through to `fn`. Support for
     *   passing arguments on to the `fn` is provided in order to be able to
     *   avoid creating unnecessary closures.
     * @returns The promise returned by calling `fn(...arguments)`.
     */
    <Arguments extends unknown[], ReturnType>(
      function_: (...arguments_: Arguments) => PromiseLike<ReturnType> | ReturnType,
      ...arguments_: Arguments
    ): Promise<ReturnType>
  }

  /** p-limit's options, and sluice's `name`. */
  export type Options = {
    /** Concurrency limit. Minimum: `1`. */
    readonly concurrency: number
    /**
     * Reject pending promises with an `AbortError` when `clearQueue()` is called.
     * @default false
     */
    readonly rejectOnClear?: boolean
    /**
     * sluice's addition: share this limit with every worker thread of the
     * process that opens the same name. The first opener sets `concurrency`;
     * later openers pass the same number, or none (`AttachOptions`).
     */
    readonly name?: string
    /**
     * sluice's addition: `'host'` shares the named limit with every process
     * of the user on this machine (Linux); `'process'` (the default) with the
     * worker threads of this process.
     */
    readonly scope?: 'process' | 'host'
  }

  /** sluice's addition: attach to the shared limit of this name that another opener made. */
  export type AttachOptions = {
    readonly concurrency?: number
    readonly rejectOnClear?: boolean
    readonly name: string
    readonly scope?: 'process' | 'host'
  }

  /** sluice's addition: a limit kept in Redis, shared by a fleet of processes. */
  export type RedisOptions = {
    /** The fleet's limit; the first opener sets it, later ones pass the same or none. */
    readonly concurrency?: number
    readonly rejectOnClear?: boolean
    /** The gate's name; its keys are `sluice:{name}:*`. */
    readonly name: string
    /** An ioredis or node-redis (v4+) client, connected. */
    readonly redis: object
    /** How long a process's lease lasts without renewal. Default 10000. */
    readonly leaseMillis?: number
  }

  /** A limit kept in Redis. Counts are the fleet's, as of the last reply from Redis. */
  export type RedisLimitFunction = LimitFunction & {
    /** Tasks of this process running now. */
    readonly localActiveCount: number
    /** Tasks of this process waiting for a permit. */
    readonly localPendingCount: number
    /** Resolves once the gate is open in Redis. */
    readonly ready: Promise<void>
    on(
      event: 'leaseLost',
      listener: (info: { permits: number; waiting: number }) => void
    ): RedisLimitFunction
    off(
      event: 'leaseLost',
      listener: (info: { permits: number; waiting: number }) => void
    ): RedisLimitFunction
    /** Releases what it holds, withdraws its waiting tasks, stops its timers. */
    close(): Promise<void>
    [Symbol.asyncDispose](): Promise<void>
  }

  /**
   * Returns a function with limited concurrency.
   *
   * The returned function manages its own concurrent executions, allowing you
   * to call it multiple times without exceeding the specified concurrency
   * limit.
   *
   * @param function_ - Promise-returning/async function.
   * @param options - The concurrency limit, or the options of `pLimit`.
   * @returns Function with limited concurrency.
   */
  export function limitFunction<Arguments extends unknown[], ReturnType>(
    function_: (...arguments_: Arguments) => PromiseLike<ReturnType>,
    options: number | Options | AttachOptions
  ): ((...arguments_: Arguments) => Promise<ReturnType>) & Pick<LimitFunction, 'clearQueue'>

  // `require('sluice/p-limit').default` and `.pLimit` are the function itself.
  export { pLimit as default, pLimit }
}

export = pLimit
