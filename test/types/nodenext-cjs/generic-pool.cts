// The README's generic-pool example in CommonJS TypeScript. Shared surface:
// also type-checked against generic-pool itself, with 'sluice/generic-pool'
// replaced by 'generic-pool'.
import genericPool = require('sluice/generic-pool')
import { createPool, type Factory, type Options, type Pool } from 'sluice/generic-pool'

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

  const factory: genericPool.Factory<Conn> = {
    create: connect,
    destroy: async (c) => {
      await c.close()
    },
    validate: async () => true
  }
  const sameFactory: Factory<Conn> = factory
  const options: Options = { max: 4, min: 1, testOnBorrow: true, idleTimeoutMillis: 30000 }
  const typed: genericPool.Pool<Conn> = createPool(sameFactory, options)
  const samePool: Pool<Conn> = typed
  const isPool: boolean = typed instanceof genericPool.Pool
  const answer: unknown = await typed.use((c) => c.query('select 42'))
  const counts: number = typed.size + typed.available + typed.borrowed + typed.pending
  typed.on('factoryCreateError', (err) => console.error(err))

  // @ts-expect-error: a factory needs destroy
  createPool({ create: connect })
  // @ts-expect-error: the priority is a number
  typed.acquire('high')

  return [samePool, isPool, answer, counts]
}

export = main
