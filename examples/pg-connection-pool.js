'use strict'
// The pool walk-through on a real PostgreSQL, with sluice/pg-pool (pg's
// Pool on the native pool core).
//
//   PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres node examples/pg-connection-pool.js
//
// The server comes from libpq's PG* environment variables, as with pg. A pool
// of max 2: two requests check out a connection each, a third waits, the
// first is released, and the third gets that same connection: the same
// backend process (pg_backend_pid()). At each step it prints how many
// connections are available (idle) and used, and who waits.
const Pool = require('../lib/pg-pool.js') // require('sluice/pg-pool')

const pool = new Pool({ max: 2, idleTimeoutMillis: 1000 })
pool.on('error', (err) => console.error('idle client error:', err.message))

function state(what) {
  const used = pool.totalCount - pool.idleCount
  console.log(
    `${what.padEnd(44)} available ${pool.idleCount}, used ${used}, waiting ${pool.waitingCount}`
  )
}

const backend = async (client) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid

async function main() {
  state('a pool with max: 2')
  const first = await pool.connect()
  const firstPid = await backend(first)
  state(`request 1 got backend ${firstPid}`)
  const second = await pool.connect()
  state(`request 2 got backend ${await backend(second)}`)

  const third = pool.connect()
  state('request 3 waits')

  first.release()
  const client = await third
  const thirdPid = await backend(client)
  state(`request 1 released; request 3 got ${thirdPid}`)
  console.log(
    `the third request got the first connection back: ${client === first && thirdPid === firstPid ? 'yes' : 'no'}`
  )

  client.release()
  second.release()
  state('all released')
  await pool.end()
  state('pool ended')
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
  pool.end().catch(() => {})
})
