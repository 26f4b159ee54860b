// The README's pg-pool example as ES module TypeScript.
import Pool, { type PoolClient, type PoolOptions } from 'sluice/pg-pool'

async function main() {
  // README, "Migrating from pg".
  const pool = new Pool({ max: 20, idleTimeoutMillis: 30000, connectionTimeoutMillis: 2000 })
  const { rows } = await pool.query<{ rows: unknown[] }>('SELECT * FROM users WHERE id = $1', [42])
  rows.length.toFixed()

  const client: PoolClient = await pool.connect()
  try {
    await client.query('SELECT 1')
  } finally {
    client.release()
  }
  pool.connect((err, c, done) => {
    if (err || !c) return
    done(true)
  })
  pool.on('error', (err, c) => {
    err.message.toUpperCase()
    c.release()
  })
  pool.on('release', (err) => err?.message)
  const opts: PoolOptions = { min: 2, prefill: true, host: '127.0.0.1' }
  new Pool(opts)
  const n: number = pool.totalCount + pool.idleCount + pool.waitingCount + pool.expiredCount
  n.toFixed()
  // @ts-expect-error: max is a number
  new Pool({ max: 'ten', prefill: 1 })
  await pool.end()
}
main()
