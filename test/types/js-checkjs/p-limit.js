// @ts-check
// The README's p-limit examples in CommonJS JavaScript. p-limit itself is
// ESM only, so this file is checked against sluice alone.
'use strict'
const pLimit = require('sluice/p-limit') // the function itself
const { limitFunction } = require('sluice/p-limit')

async function main() {
  // README, "Migrating from p-limit".
  const limit = pLimit(8)
  const results = await Promise.all(urls.map((url) => limit(fetchJson, url)))

  /** @type {import('sluice/p-limit').Options} */
  const options = { concurrency: 1, rejectOnClear: true }
  /** @type {import('sluice/p-limit').LimitFunction} */
  const serial = pLimit.default(options)
  /** @type {number} */
  const sum = await serial(async (/** @type {number} */ a, /** @type {number} */ b) => a + b, 1, 2)
  /** @type {number[]} */
  const lengths = await limit.map(['a', 'bb'], async (s, i) => s.length + i)
  limit.concurrency = 4
  limit.clearQueue()
  const limited = limitFunction(async (/** @type {string} */ s) => s.length, { concurrency: 2 })
  /** @type {number} */
  const length = await limited('abc')
  limited.clearQueue()
  const same = pLimit.pLimit === pLimit && pLimit.limitFunction === limitFunction

  // @ts-expect-error: concurrency is a number or an options object
  pLimit('8')
  // @ts-expect-error: activeCount is read-only
  limit.activeCount = 1
  // @ts-expect-error: the arguments must fit fn's parameters
  limit(async (/** @type {number} */ a) => a, 'x')

  return { results, sum, lengths, length, same }
}

module.exports = main
