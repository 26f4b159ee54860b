// Compiled by test/types.test.js with `tsc --noEmit --strict`: what a
// TypeScript user writes must type-check against index.d.ts & co.
import pLimit, { limitFunction, type LimitFunction } from '../../p-limit.js'
import { Semaphore, TimeoutError, createPool, Pool, type PoolOptions } from '../../index.js'
import * as genericPool from '../../generic-pool.js'

const limit: LimitFunction = pLimit(4)
const shared = pLimit({ concurrency: 2, name: 'api', rejectOnClear: true })
const attached = pLimit({ name: 'api' })
const n: number = limit.activeCount + limit.pendingCount + shared.concurrency + attached.concurrency
limit.concurrency = 8
const p: Promise<string> = limit(async (a: number, b: string) => `${a}${b}`, 1, 'x')
const m: Promise<number[]> = limit.map([1, 2, 3], async (v, i) => v + i)
const f = limitFunction(async (s: string) => s.length, { concurrency: 1 })
const fl: Promise<number> = f('abc')
f.clearQueue()
limit.clearQueue()

const sem = new Semaphore(2)
const sharedSem = new Semaphore(undefined, { name: 'gpu' })
const acquired: Promise<void> = sem.acquire(1, {
  priority: 1,
  timeout: 10,
  signal: AbortSignal.timeout(5)
})
const ok: boolean = sem.tryAcquire(2)
sem.release(1)
const used: Promise<number> = sem.use(async () => 42, { timeout: 5 })
const counts: number = sem.available + sem.pending + sem.permits + sharedSem.permits
const isTimeout = (e: unknown): boolean => e instanceof TimeoutError && e.name === 'TimeoutError'

type Conn = { id: number }
const opts: PoolOptions = { max: 10, min: 2, acquireTimeoutMillis: 100 }
const pool: Pool<Conn> = createPool<Conn>(
  { create: async () => ({ id: 1 }), destroy: async () => {} },
  opts
)
const conn: Promise<Conn> = pool.acquire()
const viaModule: genericPool.Pool<Conn> = genericPool.createPool<Conn>({
  create: async () => ({ id: 2 }),
  destroy: async () => {}
})
const total: number =
  pool.size + pool.available + pool.borrowed + pool.pending + pool.max + pool.min + viaModule.size
const r: Promise<number> = pool.use(async (c) => c.id)

export { n, p, m, fl, acquired, ok, used, counts, isTimeout, conn, total, r }
