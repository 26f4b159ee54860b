// The README's pg-pool example in CommonJS TypeScript.
import Pool = require('sluice/pg-pool')

async function main() {
  const pool = new Pool({ max: 20, idleTimeoutMillis: 30000, connectionTimeoutMillis: 2000 })
  const res = await pool.query('SELECT * FROM users WHERE id = $1', [42])
  res.rows.length.toFixed()
  const client: Pool.PoolClient = await pool.connect()
  client.release(new Error('broken'))
  // @ts-expect-error: release takes an error or true
  client.release('x')
  pool.end(() => {})
}
main()
