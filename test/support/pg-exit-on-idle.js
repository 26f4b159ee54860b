'use strict'
// Child process of test/pg-pool-faults.test.js: runs a query and leaves the
// pool open with an idle client. With allowExitOnIdle (argv[2] === 'allow')
// the process exits by itself; without it, the idle client keeps it alive.
const Pool = require('../../lib/pg-pool.js')

const pool = new Pool({ allowExitOnIdle: process.argv[2] === 'allow', idleTimeoutMillis: 60000 })
pool.query('SELECT 1 AS x').then((r) => {
  console.log(`queried ${r.rows[0].x}, idle ${pool.idleCount}`)
})
