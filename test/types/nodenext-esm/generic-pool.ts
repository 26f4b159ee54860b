// The README's generic-pool example as an ES module, and what generic-pool
// 3's own types accept and refuse. Shared surface: also type-checked against
// generic-pool itself, with 'sluice/generic-pool' replaced by 'generic-pool'.
import genericPool from 'sluice/generic-pool'
import * as namespace from 'sluice/generic-pool'
import { createPool, Pool, type Factory, type Options } from 'sluice/generic-pool'

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

// README, "Native handles, worker threads and shutdown".
await pool.drain() // serve queued acquires, refuse new ones, wait for loans
await pool.clear() // destroy every idle resource through factory.destroy

// The rest of the pool API.
const factory: Factory<Conn> = {
  create: connect,
  destroy: async (c) => {
    await c.close()
  },
  validate: async () => true
}
const options: Options = {
  max: 4,
  min: 1,
  maxWaitingClients: 100,
  testOnBorrow: true,
  testOnReturn: false,
  acquireTimeoutMillis: 500,
  fifo: false,
  priorityRange: 3,
  autostart: false,
  evictionRunIntervalMillis: 1000,
  numTestsPerEvictionRun: 3,
  softIdleTimeoutMillis: 10000,
  idleTimeoutMillis: 30000
}
const typed: Pool<Conn> = createPool(factory, options)
const viaDefault: genericPool.Pool<Conn> = typed
const viaNamespace: namespace.Pool<Conn> = namespace.createPool(factory)
typed.start()
await typed.ready()
const answer: Promise<unknown> = typed.use((c) => c.query('select 42'))
const borrowed = await typed.acquire(1)
const isBorrowed: boolean = typed.isBorrowedResource(borrowed)
await typed.destroy(borrowed)
const counts: number =
  typed.size +
  typed.available +
  typed.borrowed +
  typed.pending +
  typed.spareResourceCapacity +
  typed.max +
  typed.min
typed.on('factoryCreateError', (err) => console.error(err))
typed.on('factoryDestroyError', (err) => console.error(err))

// @ts-expect-error: a factory needs destroy
createPool({ create: connect })
// @ts-expect-error: max is a number
createPool(factory, { max: '10' })
// @ts-expect-error: the priority is a number
typed.acquire('high')
// @ts-expect-error: the pool hands out Conns
const wrong: Promise<string> = typed.acquire()

export { viaDefault, viaNamespace, answer, isBorrowed, counts, wrong }
