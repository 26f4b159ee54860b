// @ts-check
// The README's Semaphore and named-gate examples in CommonJS JavaScript.
'use strict'
const { Semaphore, TimeoutError, createPool } = require('sluice')
const pLimit = require('sluice/p-limit')

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
  const gpu = new Semaphore(4, { name: 'gpu' })
  const attached = new Semaphore(undefined, { name: 'gpu' })

  /** @type {(e: unknown) => boolean} */
  const isTimeout = (e) => e instanceof TimeoutError
  const pool = createPool({ create: connect, destroy: (c) => c.close() }, { maxUses: 10 })
  /** @type {number} */
  const creating = pool.stats().creating
  pool.on('leak', (conn) => conn.close())

  // @ts-expect-error: permits is a number
  new Semaphore('4')
  // @ts-expect-error: a priority is a number
  sem.acquire(1, { priority: 'high' })

  return { value, gpu, attached, isTimeout, creating }
}

module.exports = main
