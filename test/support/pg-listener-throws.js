'use strict'
// Run by test/pg-pool-faults.test.js in a child process: a pool listener
// ('connect', 'acquire', 'release' or 'remove': argv[2]) throws once. The
// error reaches the application (thrown out of release(), else uncaught), and
// the pool goes on: the next connect() is served and end() finishes. Prints
// one line of results.
const { EventEmitter } = require('node:events')
const Pool = require('../../lib/pg-pool.js')

class LoopClient extends EventEmitter {
  _queryable = true
  connect(cb) {
    setImmediate(cb)
  }
  end(cb) {
    if (cb) setImmediate(cb)
  }
}

const seen = []
process.on('uncaughtException', (err) => seen.push(`uncaught ${err.message}`))

async function main() {
  const event = process.argv[2]
  const pool = new Pool({ max: 1 }, LoopClient)
  let thrown = false
  pool.on(event, () => {
    if (thrown) return
    thrown = true
    throw new Error(`${event} listener`)
  })
  const a = await pool.connect()
  try {
    a.release(event === 'remove' ? true : undefined)
  } catch (err) {
    seen.push(`release threw ${err.message}`)
  }
  const timer = setTimeout(() => {
    console.log(`hang: ${seen} total=${pool.totalCount} waiting=${pool.waitingCount}`)
    process.exit(1)
  }, 5000)
  const b = await pool.connect()
  b.release()
  await pool.end()
  clearTimeout(timer)
  await new Promise((resolve) => setImmediate(resolve))
  console.log(`served, ended=${pool.ended}; ${seen.join(', ')}`)
}

main()
