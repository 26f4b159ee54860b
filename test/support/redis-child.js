'use strict'
// A process of the fleet, for the multi-process Redis tests. Reads its
// arguments from SLUICE_CHILD_ARGS (JSON), prints one JSON event per line,
// and takes commands as JSON lines on stdin.
//
// args: { kind, url, name, permits, leaseMillis, mode, id, ... }
// modes:
//   'loop'   on any line on stdin, runs `tasks` tasks through the gate, each INCR/DECR of
//            `counter` (the measured concurrency) around `holdMs` of work,
//            and records the largest INCR result it saw; prints
//            { ev: 'done', max, tasks }
//   'hold'   acquires `n` permits, prints { ev: 'held', token }, then holds
//            them until killed or told { op: 'release' }
//   'wait'   on { op: 'acquire', tag }: acquires one permit, prints
//            { ev: 'granted', tag, token, at } (at: Redis TIME, µs), holds it until
//            { op: 'release' }
// Every mode prints { ev: 'ready' } once the gate is open.
const { Semaphore } = require('../../lib/index.js')
const { connect, disconnect, raw } = require('./redis.js')

const args = JSON.parse(process.env.SLUICE_CHILD_ARGS)
const out = (e) => process.stdout.write(JSON.stringify({ id: args.id, ...e }) + '\n')

async function main() {
  const c = await connect(args.kind, args.url)
  const sem = new Semaphore(args.permits, {
    name: args.name,
    redis: c,
    leaseMillis: args.leaseMillis || 10000
  })
  sem.on('leaseLost', (info) => out({ ev: 'leaseLost', ...info }))
  await sem.ready
  out({ ev: 'ready' })
  if (args.mode === 'loop') {
    // Starts when told (every process at once), so that they overlap.
    await new Promise((resolve) => process.stdin.once('data', resolve))
    process.stdin.destroy() // nothing more to read; it must not keep the process alive
    let max = 0
    for (let i = 0; i < args.tasks; i++) {
      await sem.acquire()
      try {
        const now = Number(await raw(c, 'INCR', args.counter))
        if (now > max) max = now
        await new Promise((r) => setTimeout(r, args.holdMs))
        await raw(c, 'DECR', args.counter)
      } finally {
        sem.release()
      }
    }
    out({ ev: 'done', max, tasks: args.tasks })
    await sem.close()
    await disconnect(c)
    return
  }
  if (args.mode === 'hold') {
    const token = await sem.acquire(args.n || 1)
    out({ ev: 'held', token })
  }
  let buf = ''
  process.stdin.setEncoding('utf8').on('data', async (s) => {
    buf += s
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const cmd = JSON.parse(buf.slice(0, i))
      buf = buf.slice(i + 1)
      if (cmd.op === 'acquire') {
        sem.acquire(1, { timeout: cmd.timeout || 0 }).then(
          async (token) => {
            const [s1, us] = await raw(c, 'TIME')
            out({ ev: 'granted', tag: cmd.tag, token, at: Number(s1) * 1e6 + Number(us) })
            if (cmd.holdMs !== undefined) {
              setTimeout(() => {
                sem.release()
                out({ ev: 'released', tag: cmd.tag })
              }, cmd.holdMs)
            }
          },
          (err) => out({ ev: 'rejected', tag: cmd.tag, name: err.name, message: err.message })
        )
        // Tells the parent the request has been sent (not that Redis queued it).
        out({ ev: 'asked', tag: cmd.tag })
      } else if (cmd.op === 'release') {
        sem.release(cmd.n || 1)
        out({ ev: 'released' })
      } else if (cmd.op === 'exit') {
        await sem.close()
        await disconnect(c)
        out({ ev: 'closed' })
        process.exit(0)
      }
    }
  })
}

main().catch((err) => {
  out({ ev: 'error', message: err.message })
  process.exit(1)
})
