// Types for `sluice/pg-pool`: the Pool of pg-pool 3 (the Pool inside `pg`),
// plus sluice's addition (`prefill`). This file holds the declarations;
// pg-pool.d.mts re-exports them. lib/pg-pool.js exports the class itself
// (`module.exports = Pool`), as pg-pool does.
//
// The client type is a parameter: with `pg`'s own types installed, write
// `new Pool<pg.Client>(options)` (or pass the Client class) to get them on
// `connect()` and in the events; by default a client is `Pool.ClientLike`.
import { EventEmitter } from 'node:events'

declare namespace Pool {
  /** What the pool needs of a client (pg.Client and pg-native's Client have it). */
  interface ClientLike {
    connect(callback: (err?: Error) => void): unknown
    query(...args: any[]): any
    end(callback?: () => void): unknown
    on(event: string, listener: (...args: any[]) => void): unknown
  }

  /** A checked-out client: `release()` returns it, `release(err | true)` removes it. */
  type PoolClient<C extends ClientLike = ClientLike> = C & {
    release(err?: Error | boolean): void
  }

  type Done = (err?: Error | boolean) => void

  interface PoolOptions<C extends ClientLike = ClientLike> {
    /** Default 10 (also read from `poolSize`); 0 means the default. */
    max?: number
    poolSize?: number
    /** Default 0: idle clients are not removed at or below it. Nothing is opened for it unless `prefill`. */
    min?: number
    /** sluice addition: open `min` clients at once and replace lost ones. Default false. */
    prefill?: boolean
    /** Default 10000; 0 disables the idle timer. */
    idleTimeoutMillis?: number
    /** Default 0 (none): the wait for a client, queued or connecting. */
    connectionTimeoutMillis?: number
    /** Default Infinity: a client used that many times is removed on release. */
    maxUses?: number
    /** Default 0 (none). */
    maxLifetimeSeconds?: number
    allowExitOnIdle?: boolean
    log?: (...messages: unknown[]) => void
    Promise?: PromiseConstructorLike
    Client?: new (options?: any) => C
    /** Runs once per new client before it is handed out; a throw or rejection fails the caller. */
    onConnect?: (client: C) => unknown
    verify?: (client: C, done: (err?: Error) => void) => void
    /** Every other option is passed to the client (host, port, user, ...). */
    [option: string]: unknown
  }
}

declare class Pool<C extends Pool.ClientLike = Pool.ClientLike> extends EventEmitter {
  constructor(options?: Pool.PoolOptions<C>, Client?: new (options?: any) => C)
  options: Pool.PoolOptions<C> & { max: number; min: number; maxUses: number }
  Client: new (options?: any) => C
  readonly totalCount: number
  readonly idleCount: number
  readonly waitingCount: number
  readonly expiredCount: number
  ending: boolean
  ended: boolean

  connect(): Promise<Pool.PoolClient<C>>
  connect(
    callback: (
      err: Error | undefined,
      client: Pool.PoolClient<C> | undefined,
      done: Pool.Done
    ) => void
  ): void

  query<R = any>(text: string | object, values?: unknown[]): Promise<R>
  query<R = any>(text: string | object, callback: (err: Error | undefined, result: R) => void): void
  query<R = any>(
    text: string | object,
    values: unknown[] | undefined,
    callback: (err: Error | undefined, result: R) => void
  ): void

  end(): Promise<void>
  end(callback: (err?: Error) => void): void

  on(event: 'connect' | 'acquire' | 'remove', listener: (client: Pool.PoolClient<C>) => void): this
  on(event: 'release', listener: (err: Error | undefined, client: Pool.PoolClient<C>) => void): this
  on(event: 'error', listener: (err: Error, client: Pool.PoolClient<C>) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export = Pool
