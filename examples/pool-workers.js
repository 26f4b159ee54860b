'use strict'
// A pool of worker_threads Workers with sluice/generic-pool.
//
//   node examples/pool-workers.js
//
// Each Worker hashes the strings it is sent. The pool keeps 2 to 4 Workers,
// checks a Worker is still alive before lending it (testOnBorrow), retires a
// Worker after 50 jobs (maxUses), and evicts Workers idle for 2 s. Shutdown
// is drain() (stop new work, let queued and running jobs finish) followed by
// clear() (terminate the idle Workers); after that nothing keeps the process
// alive: the pool's own timers never do.
const { Worker } = require('node:worker_threads')
const { createPool } = require('../lib/generic-pool.js') // require('sluice/generic-pool')

const WORKER_SOURCE = `
  const { parentPort } = require('node:worker_threads')
  const { createHash } = require('node:crypto')
  parentPort.on('message', ({ id, text }) => {
    let h = text
    for (let i = 0; i < 500; i++) h = createHash('sha256').update(h).digest('hex')
    parentPort.postMessage({ id, hash: h })
  })
`

let nextJob = 0

const factory = {
  create() {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_SOURCE, { eval: true })
      worker.alive = true
      worker.once('online', () => resolve(worker))
      worker.once('error', (err) => {
        worker.alive = false
        reject(err)
      })
      worker.once('exit', () => {
        worker.alive = false
      })
    })
  },
  async destroy(worker) {
    await worker.terminate()
  },
  validate(worker) {
    return worker.alive
  }
}

const pool = createPool(factory, {
  min: 2,
  max: 4,
  testOnBorrow: true,
  maxUses: 50,
  acquireTimeoutMillis: 30000,
  evictionRunIntervalMillis: 1000,
  idleTimeoutMillis: 2000
})
pool.on('factoryCreateError', (err) => console.error('could not start a worker:', err.message))
pool.on('factoryDestroyError', (err) => console.error('could not stop a worker:', err.message))

// Runs one job on a pooled Worker. `use` releases the Worker when the job
// settles, and destroys it if the job fails.
function hash(text) {
  return pool.use(
    (worker) =>
      new Promise((resolve, reject) => {
        const id = nextJob++
        const onMessage = (msg) => {
          if (msg.id !== id) return
          worker.off('message', onMessage)
          worker.off('exit', onExit)
          resolve(msg.hash)
        }
        const onExit = () => {
          worker.off('message', onMessage)
          reject(new Error('worker exited during a job'))
        }
        worker.on('message', onMessage)
        worker.once('exit', onExit)
        worker.postMessage({ id, text })
      })
  )
}

async function main() {
  await pool.ready()
  console.log(`ready: ${pool.size} workers`)

  const inputs = Array.from({ length: 200 }, (_, i) => `job ${i}`)
  const t0 = Date.now()
  const hashes = await Promise.all(inputs.map(hash))
  console.log(`${hashes.length} jobs in ${Date.now() - t0} ms on at most ${pool.max} workers`)
  console.log('first hash:', hashes[0].slice(0, 16) + '...')
  console.log('stats:', pool.stats())
}

// Clean shutdown, also after an error: no new acquires, wait for every loan
// to come back, then terminate the idle Workers. Nothing is left then: the
// process exits by itself.
async function shutdown() {
  await pool.drain()
  await pool.clear()
  console.log('after drain + clear:', { size: pool.size, available: pool.available })
}

main()
  .catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
  .finally(shutdown)
