'use strict'
// Child process of test/pg-pool-faults.test.js: an idle client's backend is
// killed while nobody listens for the pool's 'error' event. pg-pool 3.14
// crashes the process; sluice/pg-pool removes the client and warns.
const { Client } = require('pg')
const Impl = process.argv[2] === 'pg-pool' ? require('pg-pool') : require('../../lib/pg-pool.js')

async function main() {
  const pool = new Impl({ max: 1 }, Client)
  const c = await pool.connect()
  const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid
  c.release()
  const admin = new Client()
  await admin.connect()
  await admin.query('SELECT pg_terminate_backend($1)', [pid])
  await admin.end()
  for (let i = 0; i < 500 && pool.totalCount > 0; i++) await new Promise((r) => setTimeout(r, 10))
  console.log(`survived: total=${pool.totalCount}`)
  await pool.end()
}
main()
