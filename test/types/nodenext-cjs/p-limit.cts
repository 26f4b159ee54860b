// The README's p-limit examples in CommonJS TypeScript. p-limit itself is
// ESM only (its require() gives a namespace, not the function), so this file
// is checked against sluice alone.
import pLimit = require('sluice/p-limit') // the function itself
import { limitFunction } from 'sluice/p-limit'
import interopDefault from 'sluice/p-limit' // esModuleInterop: module.exports
import type { LimitFunction, Options } from 'sluice/p-limit'

async function main() {
  // README, "Migrating from p-limit".
  const limit = pLimit(8)
  const results = await Promise.all(urls.map((url) => limit(fetchJson, url)))

  // What lib/p-limit.js puts on the function.
  const sameDefault: typeof pLimit = pLimit.default
  const sameNamed: typeof pLimit = pLimit.pLimit
  const sameInterop: typeof pLimit = interopDefault
  const sameLimitFunction: typeof limitFunction = pLimit.limitFunction

  const options: Options = { concurrency: 1, rejectOnClear: true }
  const serial: LimitFunction = pLimit(options)
  const viaNamespace: pLimit.LimitFunction = interopDefault(2)
  const sum: number = await serial(async (a: number, b: number) => a + b, 1, 2)
  const lengths: number[] = await limit.map(['a', 'bb'], async (s, i) => s.length + i)
  const counts: number = limit.activeCount + limit.pendingCount + limit.concurrency
  limit.concurrency = 4
  limit.clearQueue()
  const limited = limitFunction(async (s: string) => s.length, { concurrency: 2 })
  const length: number = await limited('abc')
  limited.clearQueue()

  // @ts-expect-error: concurrency is a number or an options object
  pLimit('8')
  // @ts-expect-error: activeCount is read-only
  limit.activeCount = 1
  // @ts-expect-error: the arguments must fit fn's parameters
  limit(async (a: number) => a, 'x')

  return [
    results,
    sameDefault,
    sameNamed,
    sameInterop,
    sameLimitFunction,
    viaNamespace,
    sum,
    lengths,
    counts,
    length
  ]
}

export = main
