// The README's p-limit example as an ES module, and what p-limit 7.3's own
// types accept and refuse. Shared surface: also type-checked against p-limit
// itself, with 'sluice/p-limit' replaced by 'p-limit'.
import pLimit, { limitFunction, type LimitFunction, type Options } from 'sluice/p-limit'

// README, "Migrating from p-limit".
const limit = pLimit(8)
const results = await Promise.all(urls.map((url) => limit(fetchJson, url)))

// The rest of the limiter API.
const options: Options = { concurrency: 1, rejectOnClear: true }
const serial: LimitFunction = pLimit(options)
const concurrencyOf = (o: Options): number => o.concurrency
const sum: Promise<number> = serial(async (a: number, b: number) => a + b, 1, 2)
const plain: Promise<string> = serial(() => 'not a promise')
const lengths: Promise<number[]> = limit.map(['a', 'bb'], async (s, i) => s.length + i)
const counts: number = limit.activeCount + limit.pendingCount + limit.concurrency
limit.concurrency = 4
limit.clearQueue()
const limited = limitFunction(async (s: string) => s.length, { concurrency: 2 })
const length: Promise<number> = limited('abc')
limited.clearQueue()

// @ts-expect-error: concurrency is a number or an options object
pLimit('8')
// @ts-expect-error: an options object without a concurrency
pLimit({ rejectOnClear: true })
// @ts-expect-error: activeCount is read-only
limit.activeCount = 1
// @ts-expect-error: the arguments must fit fn's parameters
limit(async (a: number) => a, 'x')
// @ts-expect-error: limitFunction needs its options
limitFunction(async () => 1)

export { results, sum, plain, lengths, counts, length, concurrencyOf }
