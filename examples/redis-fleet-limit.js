'use strict'
// One limit for a fleet: four processes share a limit of 3 concurrent calls
// to a downstream service, through Redis. Each process stands for a machine
// of the fleet; the limit is one for all of them, granted in the order Redis
// saw the requests, and a process that dies gives its permits back after its
// lease.
//
//   REDIS_URL=redis://127.0.0.1:6379 node examples/redis-fleet-limit.js
//
// Needs ioredis (or node-redis: see `connect` below) and a Redis 6.2+ server.
const { fork } = require('node:child_process')
const pLimit = require('../lib/p-limit.js') // in an app: require('sluice/p-limit')

const URL = process.env.REDIS_URL || process.env.SLUICE_REDIS_URL || 'redis://127.0.0.1:6379'
const NAME = process.env.GATE_NAME || `example-downstream-${process.pid}`
const PROCESSES = 4
const CALLS = 10

function connect() {
  const Redis = require('ioredis')
  return new Redis(URL)
  // node-redis: const c = require('redis').createClient({ url: URL }); await c.connect()
}

// A downstream call: counts how many run at once, on Redis itself, so the
// count covers the whole fleet.
async function callDownstream(redis) {
  const now = await redis.incr(`${NAME}:in-flight`)
  await redis.zadd(`${NAME}:max`, 'GT', now, 'max') // keeps the largest
  await new Promise((resolve) => setTimeout(resolve, 20))
  await redis.decr(`${NAME}:in-flight`)
}

async function worker() {
  const redis = connect()
  const limit = pLimit({ concurrency: 3, name: NAME, redis })
  limit.on('leaseLost', (info) => console.error('lease lost:', info))
  await Promise.all(Array.from({ length: CALLS }, () => limit(callDownstream, redis)))
  await limit.close() // releases what it holds, stops its timers and subscriber
  redis.disconnect()
}

async function main() {
  const redis = connect()
  await redis.del(`${NAME}:max`, `${NAME}:in-flight`)
  const children = Array.from({ length: PROCESSES }, () =>
    fork(__filename, ['worker'], { env: { ...process.env, GATE_NAME: NAME } })
  )
  const codes = await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r))))
  const max = Number(await redis.zscore(`${NAME}:max`, 'max'))
  console.log(`${PROCESSES} processes, ${PROCESSES * CALLS} calls`)
  console.log(`max concurrent calls across the fleet: ${max} (limit 3)`)
  // Tidy up: the example's keys and the gate's.
  const keys = await redis.keys(`*${NAME}*`)
  if (keys.length) await redis.del(...keys)
  redis.disconnect()
  process.exitCode = codes.every((c) => c === 0) && max <= 3 ? 0 : 1
}

;(process.argv[2] === 'worker' ? worker() : main()).catch((err) => {
  console.error(err)
  process.exit(1)
})
