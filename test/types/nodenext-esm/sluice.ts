// The README's Semaphore and named-gate examples as ES modules, and
// sluice's additions (no counterpart in p-limit or generic-pool).
import {
  pLimit as rootPLimit,
  limitFunction as rootLimitFunction,
  Semaphore,
  TimeoutError,
  createPool,
  Pool,
  type AcquireOptions,
  type Factory,
  type LimitAttachOptions,
  type LimitFunction,
  type LimitOptions,
  type PoolAcquireOptions,
  type PoolOptions,
  type PoolStats
} from 'sluice'
import pLimit, { limitFunction, type AttachOptions } from 'sluice/p-limit'
import { TimeoutError as PoolTimeoutError, type PoolStats as Stats } from 'sluice/generic-pool'

// README, "Semaphore".
const sem = new Semaphore(4)
await sem.acquire() // one permit
try {
  await work()
} finally {
  sem.release()
}

await sem.acquire(2, { priority: 1, timeout: 500, signal })
sem.release(2)

const value = await sem.use(() => work(), { timeout: 1000 })

// README, "One limit for the whole process".
{
  const limit = pLimit({ concurrency: 10, name: 'upstream-api' })
  await limit(() => fetch(url))

  const sem = new Semaphore(4, { name: 'gpu' })
  const attachedSem = new Semaphore(undefined, { name: 'gpu' })
  const attach: AttachOptions & LimitAttachOptions = { name: 'upstream-api' }
  const attached = pLimit(attach)
  const total: number = sem.permits + attachedSem.available + attached.concurrency
}

// The rest of the Semaphore API.
const acquireOptions: AcquireOptions = { priority: -1, signal: AbortSignal.timeout(5), timeout: 0 }
const taken: boolean = sem.tryAcquire(2)
sem.permits = 8
const counts: number = sem.permits + sem.available + sem.pending
const isTimeout = (e: unknown): boolean =>
  (e instanceof TimeoutError || e instanceof PoolTimeoutError) && e.name === 'TimeoutError'
const unlimited = new Semaphore(Infinity)

// The root re-exports the same functions and classes.
const sameLimit: typeof pLimit = rootPLimit
const sameLimitFunction: typeof limitFunction = rootLimitFunction
const limitOptions: LimitOptions = { concurrency: 2, name: 'db' }
const limit: LimitFunction = rootPLimit(limitOptions)

// The pool's additions.
const factory: Factory<Conn> = { create: connect, destroy: (c) => c.close() }
const poolOptions: PoolOptions = {
  max: 4,
  destroyTimeoutMillis: 1000,
  propagateCreateError: true,
  maxUses: 100,
  maxLifetimeMillis: 60000,
  leakDetectionMillis: 5000
}
const pool = createPool(factory, poolOptions)
const byClass: Pool<Conn> = new Pool(factory, { max: 2 })
const acquireWith: PoolAcquireOptions = { signal }
const conn: Promise<Conn> = pool.acquire(0, acquireWith)
const used: Promise<unknown> = pool.use((c) => c.query('select 1'), 0, { signal })
const stats: PoolStats & Stats = pool.stats()
const busy: number = stats.creating + stats.validating + stats.destroying + stats.borrowed
pool.on('leak', (resource) => resource.close())
pool.on('factoryValidateError', (err) => console.error(err))

// @ts-expect-error: permits is a number
new Semaphore('4')
// @ts-expect-error: only a shared (named) semaphore may omit its permits
new Semaphore(undefined, {})
// @ts-expect-error: a priority is a number
sem.acquire(1, { priority: 'high' })
// @ts-expect-error: available is read-only
sem.available = 3
// @ts-expect-error: a name is a string
pLimit({ concurrency: 1, name: 1 })
// @ts-expect-error: maxUses is a number
createPool(factory, { maxUses: '5' })
// @ts-expect-error: an acquire's signal is an AbortSignal
pool.acquire(0, { signal: 'abort' })

export { value, acquireOptions, taken, counts, isTimeout, unlimited, sameLimit, sameLimitFunction }
export { limit, byClass, conn, used, busy }

// README, "One limit for a fleet: Redis" (the client is only a type here).
import type { RedisSemaphore, LeaseLost } from 'sluice'
declare const redis: object
export async function fleet(): Promise<number> {
  const fleetSem: RedisSemaphore = new Semaphore(200, { name: 'db', redis, leaseMillis: 10000 })
  fleetSem.on('leaseLost', (info: LeaseLost) => info.permits + info.waiting)
  const token: number = await fleetSem.acquire(1, { timeout: 1000 })
  const maybe: number | false = await fleetSem.tryAcquire()
  fleetSem.release()
  await fleetSem.close()
  const fleetLimit = pLimit({ concurrency: 50, name: 'payments-api', redis })
  const n: number = fleetLimit.localActiveCount + fleetLimit.activeCount
  await fleetLimit.close()
  // @ts-expect-error: a Redis gate needs a name
  new Semaphore(1, { redis })
  return token + (maybe || 0) + n
}
