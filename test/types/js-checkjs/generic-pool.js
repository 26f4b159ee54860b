// @ts-check
// The README's generic-pool example in CommonJS JavaScript. Shared surface:
// also type-checked against generic-pool itself, with 'sluice/generic-pool'
// replaced by 'generic-pool'.
'use strict'
const genericPool = require('sluice/generic-pool')

async function main() {
  // README, "Migrating from generic-pool".
  const pool = genericPool.createPool(
    {
      create: () => connect(),
      destroy: (conn) => conn.close()
    },
    { max: 10, min: 2, acquireTimeoutMillis: 1000 }
  )

  const conn = await pool.acquire()
  try {
    await conn.query('select 1')
  } finally {
    await pool.release(conn)
  }

  await pool.drain()
  await pool.clear()

  /** @type {import('sluice/generic-pool').Options} */
  const options = { max: 4, min: 1, testOnBorrow: true }
  /** @type {import('sluice/generic-pool').Factory<Conn>} */
  const factory = { create: connect, destroy: (c) => c.close(), validate: async () => true }
  /** @type {import('sluice/generic-pool').Pool<Conn>} */
  const typed = genericPool.createPool(factory, options)
  /** @type {number} */
  const counts = typed.size + typed.available + typed.borrowed + typed.pending
  const isPool = typed instanceof genericPool.Pool

  // @ts-expect-error: a factory needs destroy
  genericPool.createPool({ create: connect })
  // @ts-expect-error: the priority is a number
  typed.acquire('high')

  return { counts, isPool }
}

module.exports = main
