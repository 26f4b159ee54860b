// The README's Semaphore and named-gate examples in CommonJS TypeScript.
import sluice = require('sluice')
import { Semaphore, TimeoutError, type AcquireOptions } from 'sluice'
import pLimit = require('sluice/p-limit')
import genericPool = require('sluice/generic-pool')

async function main() {
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
  const limit = pLimit({ concurrency: 10, name: 'upstream-api' })
  await limit(() => fetch(url))
  const gpu = new sluice.Semaphore(4, { name: 'gpu' })

  const options: AcquireOptions = { timeout: 10 }
  const sameLimit: typeof pLimit = sluice.pLimit
  const sameLimitFunction: typeof pLimit.limitFunction = sluice.limitFunction
  const sameCreatePool: typeof genericPool.createPool = sluice.createPool
  const isTimeout = (e: unknown) => e instanceof TimeoutError || e instanceof sluice.TimeoutError
  const pool = sluice.createPool({ create: connect, destroy: (c) => c.close() }, { maxUses: 10 })
  const stats: genericPool.PoolStats = pool.stats()
  pool.on('leak', (conn) => conn.close())

  // @ts-expect-error: permits is a number
  new sluice.Semaphore('4')
  // @ts-expect-error: a priority is a number
  sem.acquire(1, { priority: 'high' })

  return [value, gpu, options, sameLimit, sameLimitFunction, sameCreatePool, isTimeout, stats]
}

export = main
