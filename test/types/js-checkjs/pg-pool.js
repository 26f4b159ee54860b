// @ts-check
// The README's pg-pool example in JavaScript, checked with checkJs.
const Pool = require('sluice/pg-pool')

async function main() {
  const pool = new Pool({ max: 20, idleTimeoutMillis: 30000, connectionTimeoutMillis: 2000 })
  const { rows } = await pool.query('SELECT * FROM users WHERE id = $1', [42])
  console.log(rows)
  const client = await pool.connect()
  client.release()
  // @ts-expect-error: waitingCount is a number
  pool.waitingCount.toUpperCase()
  await pool.end()
}
main()
