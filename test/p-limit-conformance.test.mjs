// Conformance suite: every case runs against every implementation in `impls`,
// so it shows that sluice/p-limit matches the real p-limit 7.3.3 in observable behaviour.
// Reference: /work/shared/ANCHORS-LIMITERS.md section 1, and node_modules/p-limit/index.js.
//
// Run: node --test test/p-limit-conformance.test.mjs
//
// Rules kept here: only small delays (setTimeout <= 50 ms), assertions are on counts,
// order and values, never on wall-clock speed. Every hard-coded log below was recorded
// from the real p-limit 7.3.3 on Node 20.

import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import process from 'node:process'
import { AsyncLocalStorage } from 'node:async_hooks'
import { setTimeout as delay } from 'node:timers/promises'

const impls = [
  ['p-limit', await import('p-limit')],
  ['sluice', await import('../lib/p-limit.mjs')]
]

const reference = impls[0][1]

const CONCURRENCY_MESSAGE = 'Expected `concurrency` to be a number from 1 and up'
const REJECT_ON_CLEAR_MESSAGE = 'Expected `rejectOnClear` to be a boolean'

// Values that pLimit(value) must reject with CONCURRENCY_MESSAGE (anchors 1.2, plus a few more).
const BAD_CONCURRENCY = [
  ['0', 0],
  ['-1', -1],
  ['1.5', 1.5],
  ['1.2', 1.2],
  ['2.5', 2.5],
  ["'2'", '2'],
  ['NaN', Number.NaN],
  ['undefined', undefined],
  ['true', true],
  ['{}', {}],
  ['{concurrency: 0}', { concurrency: 0 }],
  ["{concurrency: '2'}", { concurrency: '2' }],
  ['{concurrency: 1.5}', { concurrency: 1.5 }],
  ['1n', 1n],
  ['new Number(2)', new Number(2)], // eslint-disable-line no-new-wrappers, unicorn/new-for-builtins
  ['-Infinity', Number.NEGATIVE_INFINITY],
  ['[]', []],
  ['a function', () => 2],
  ['a symbol', Symbol('2')]
]

const BAD_REJECT_ON_CLEAR = [
  ['null', null],
  ['0', 0],
  ['1', 1],
  ["'true'", 'true'],
  ['{}', {}],
  ['new Boolean(true)', new Boolean(true)] // eslint-disable-line no-new-wrappers, unicorn/new-for-builtins
]

// ---------- helpers ----------

const gate = () => {
  let resolve
  let reject
  const promise = new Promise((resolve_, reject_) => {
    resolve = resolve_
    reject = reject_
  })
  return { promise, resolve, reject }
}

const microtasks = async (n) => {
  for (let i = 0; i < n; i++) {
    await null // eslint-disable-line no-await-in-loop
  }
}

const PENDING = Symbol('pending')
const stateOf = async (promise, ms = 20) => {
  const result = await Promise.race([
    promise.then(
      (value) => ({ status: 'fulfilled', value }),
      (reason) => ({ status: 'rejected', reason })
    ),
    delay(ms, PENDING)
  ])
  return result === PENDING ? 'pending' : result.status
}

// Collect unhandled rejections while `body` runs (plus a couple of macrotasks after it).
const collectUnhandled = async (body) => {
  const seen = []
  const onUnhandled = (reason) => {
    seen.push(reason)
  }

  process.on('unhandledRejection', onUnhandled)
  try {
    await body()
    await delay(10)
    await delay(10)
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }

  return seen
}

// ---------- deterministic scenario scripts (microtask-only, no timers) ----------
// Each takes a module ({default, limitFunction}) and returns an event log string.
// They are used twice: against hard-coded logs recorded from real p-limit, and in the
// cross-implementation probes that run the same script on two modules.

const makeTask = (kind, index, log) => {
  switch (kind) {
    case 'sync': {
      return () => {
        log.push(`run${index}`)
        return index
      }
    }

    case 'async': {
      return async () => {
        log.push(`run${index}`)
        await null
        log.push(`end${index}`)
        return index
      }
    }

    case 'throw': {
      return () => {
        log.push(`run${index}`)
        throw new Error(`e${index}`)
      }
    }

    case 'reject': {
      return async () => {
        log.push(`run${index}`)
        throw new Error(`e${index}`)
      }
    }

    case 'thenable': {
      return () => {
        log.push(`run${index}`)
        return {
          then(resolve) {
            log.push(`then${index}`)
            resolve(index)
          }
        }
      }
    }

    default: {
      throw new Error(`unknown kind ${kind}`)
    }
  }
}

const orderScenario =
  (kind, concurrency, n = 3) =>
  async (mod) => {
    const limit = mod.default(concurrency)
    const log = []
    const promises = []
    for (let i = 1; i <= n; i++) {
      promises.push(
        limit(makeTask(kind, i, log)).then(
          () => log.push(`settled${i}`),
          () => log.push(`rejected${i}`)
        )
      )
    }

    await Promise.all(promises)
    return log.join(' ')
  }

// Same as orderScenario but with a self-rescheduling queueMicrotask ticker, so the log
// pins down exactly how many microtasks each step takes.
const tickScenario =
  (kind, concurrency, n = 3) =>
  async (mod) => {
    const limit = mod.default(concurrency)
    const log = []
    let ticks = 0
    let stop = false
    const tick = () => {
      log.push(`t${++ticks}`)
      if (!stop && ticks < 40) {
        queueMicrotask(tick)
      }
    }

    const promises = []
    for (let i = 1; i <= n; i++) {
      promises.push(
        limit(makeTask(kind, i, log)).then(
          () => log.push(`settled${i}`),
          () => log.push(`rejected${i}`)
        )
      )
    }

    queueMicrotask(tick)
    await Promise.all(promises)
    stop = true
    return log.join(' ')
  }

const limitFunctionTickScenario = async (mod) => {
  const log = []
  let ticks = 0
  let stop = false
  const tick = () => {
    log.push(`t${++ticks}`)
    if (!stop && ticks < 40) {
      queueMicrotask(tick)
    }
  }

  const limited = mod.limitFunction(
    (i) => {
      log.push(`run${i}`)
      return i
    },
    { concurrency: 1 }
  )
  const promises = []
  for (let i = 1; i <= 3; i++) {
    promises.push(limited(i).then(() => log.push(`settled${i}`)))
  }

  queueMicrotask(tick)
  await Promise.all(promises)
  stop = true
  return log.join(' ')
}

const mapTickScenario = async (mod) => {
  const log = []
  let ticks = 0
  let stop = false
  const tick = () => {
    log.push(`t${++ticks}`)
    if (!stop && ticks < 40) {
      queueMicrotask(tick)
    }
  }

  const limit = mod.default(2)
  const promise = limit
    .map(['a', 'b', 'c'], (value, index) => {
      log.push(`run${value}${index}`)
      return value
    })
    .then((result) => log.push(`map:${result.join('')}`))
  queueMicrotask(tick)
  await promise
  stop = true
  return log.join(' ')
}

const clearTickScenario = async (mod) => {
  const log = []
  let ticks = 0
  let stop = false
  const tick = () => {
    log.push(`t${++ticks}`)
    if (!stop && ticks < 40) {
      queueMicrotask(tick)
    }
  }

  const limit = mod.default({ concurrency: 1, rejectOnClear: true })
  const promises = [1, 2, 3].map((i) =>
    limit(() => {
      log.push(`run${i}`)
      return i
    }).then(
      () => log.push(`ok${i}`),
      () => log.push(`abort${i}`)
    )
  )
  queueMicrotask(tick)
  limit.clearQueue()
  log.push('cleared')
  await Promise.all(promises)
  stop = true
  return log.join(' ')
}

// Sync / async / throwing tasks mixed, with a concurrency raise in the middle.
const mixedScenario = async (mod) => {
  const limit = mod.default(2)
  const log = []
  const make = (i, kind) => {
    if (kind === 's') {
      return () => {
        log.push(`r${i}`)
        return i
      }
    }

    if (kind === 't') {
      return () => {
        log.push(`r${i}`)
        throw new Error(`x${i}`)
      }
    }

    return async () => {
      log.push(`r${i}`)
      await null
      await null
      log.push(`e${i}`)
      return i
    }
  }

  const promises = [...'sataststsa'].map((kind, i) =>
    limit(make(i, kind)).then(
      () => log.push(`ok${i}`),
      () => log.push(`err${i}`)
    )
  )
  await null
  limit.concurrency = 3
  log.push('c3')
  await Promise.all(promises)
  return log.join(' ')
}

// Counts read synchronously after each call, then after one `await null`.
const syncCountsScenario = async (mod) => {
  const limit = mod.default(2)
  let calls = 0
  const counts = []
  for (let i = 0; i < 5; i++) {
    limit(() => {
      calls++
      return new Promise(() => {})
    })
    counts.push(`${limit.activeCount}/${limit.pendingCount}/${calls}`)
  }

  await null
  counts.push(`${limit.activeCount}/${limit.pendingCount}/${calls}`)
  return counts.join(' ')
}

// Concurrency raised 1 -> 3 with 5 gated tasks.
const raiseScenario = async (mod) => {
  const limit = mod.default(1)
  const started = []
  const gates = []
  const log = []
  const promises = [1, 2, 3, 4, 5].map((i) => {
    const g = gate()
    gates.push(g)
    return limit(() => {
      started.push(i)
      return g.promise
    })
  })
  const snap = (label) =>
    log.push(`${label}:${limit.activeCount}/${limit.pendingCount}/${started.join('')}`)
  snap('sync')
  limit.concurrency = 3
  snap('set')
  await null
  snap('await1')
  await null
  snap('await2')
  for (const g of gates) {
    g.resolve()
  }

  await Promise.all(promises)
  snap('done')
  return log.join(' ')
}

// Concurrency lowered 3 -> 1 with 5 gated tasks, released one by one.
const lowerScenario = async (mod) => {
  const limit = mod.default(3)
  const started = []
  const gates = []
  const log = []
  const promises = [1, 2, 3, 4, 5].map((i) => {
    const g = gate()
    gates.push(g)
    return limit(() => {
      started.push(i)
      return g.promise
    })
  })
  await null
  await null
  const snap = () => log.push(`${limit.activeCount}/${limit.pendingCount}/${started.join('')}`)
  snap()
  limit.concurrency = 1
  for (let k = 0; k < 5; k++) {
    gates[k].resolve()
    await promises[k] // eslint-disable-line no-await-in-loop
    snap()
  }

  return log.join(' ')
}

// AsyncLocalStorage: tasks queued in different stores, released from yet another store.
const alsScenario = async (mod) => {
  const store = new AsyncLocalStorage()
  const limit = mod.default(1)
  const log = []
  const first = gate()
  const promises = []
  promises.push(
    store.run('A', () =>
      limit(async () => {
        log.push(`A:${store.getStore()}`)
        await first.promise
        log.push(`A2:${store.getStore()}`)
      })
    )
  )
  for (const id of ['B', 'C', 'D']) {
    promises.push(
      store.run(id, () =>
        limit(async () => {
          log.push(`${id}:${store.getStore()}`)
          await null
          log.push(`${id}2:${store.getStore()}`)
        })
      )
    )
  }

  await microtasks(3)
  store.run('X', () => first.resolve())
  await Promise.all(promises)
  log.push(`outside:${store.getStore()}`)
  return log.join(' ')
}

// Observable shape of the limit function and of limitFunction()'s result.
const describeShape = (object) =>
  Object.fromEntries(
    Object.getOwnPropertyNames(object)
      .filter((key) => key !== 'name' && key !== 'length')
      .sort()
      .map((key) => {
        const d = Object.getOwnPropertyDescriptor(object, key)
        return [
          key,
          {
            get: typeof d.get,
            set: typeof d.set,
            value: typeof d.value,
            writable: d.writable,
            enumerable: d.enumerable,
            configurable: d.configurable
          }
        ]
      })
  )

const shapeScenario = async (mod) =>
  JSON.stringify({
    limit: describeShape(mod.default(2)),
    limitFunction: describeShape(mod.limitFunction(async () => {}, { concurrency: 2 })),
    keys: [Object.keys(mod.default(2)), Object.keys(mod.limitFunction(async () => {}, 1))]
  })

// Hard-coded logs, as observed from real p-limit 7.3.3 on Node 20.
const EXPECTED_ORDER = {
  'sync/1': 'run1 run2 settled1 run3 settled2 settled3',
  'sync/2': 'run1 run2 run3 settled1 settled2 settled3',
  'async/1': 'run1 end1 run2 settled1 end2 run3 settled2 end3 settled3',
  'async/2': 'run1 run2 end1 end2 run3 settled1 settled2 end3 settled3',
  'throw/1': 'run1 run2 rejected1 run3 rejected2 rejected3',
  'throw/2': 'run1 run2 run3 rejected1 rejected2 rejected3',
  'reject/1': 'run1 run2 rejected1 run3 rejected2 rejected3',
  'reject/2': 'run1 run2 run3 rejected1 rejected2 rejected3',
  'thenable/1': 'run1 then1 run2 settled1 then2 run3 settled2 then3 settled3',
  'thenable/2': 'run1 run2 then1 then2 run3 settled1 settled2 then3 settled3',
  'throw/3/5': 'run1 run2 run3 run4 run5 rejected1 rejected2 rejected3 rejected4 rejected5',
  'sync/3/5': 'run1 run2 run3 run4 run5 settled1 settled2 settled3 settled4 settled5'
}

const EXPECTED_TICKS = {
  'sync/1': 'run1 t1 t2 run2 t3 settled1 t4 run3 t5 settled2 t6 t7 settled3 t8 t9',
  'sync/2': 'run1 run2 t1 t2 run3 t3 settled1 settled2 t4 t5 settled3 t6 t7',
  'async/1':
    'run1 t1 end1 t2 t3 t4 run2 settled1 t5 end2 t6 t7 t8 run3 settled2 t9 end3 t10 t11 t12 settled3 t13 t14',
  'async/2':
    'run1 run2 t1 end1 end2 t2 t3 t4 run3 settled1 settled2 t5 end3 t6 t7 t8 settled3 t9 t10'
}

const EXPECTED_LIMIT_FUNCTION_TICKS =
  'run1 t1 t2 run2 t3 settled1 t4 run3 t5 settled2 t6 t7 settled3 t8 t9'
const EXPECTED_MAP_TICKS = 'runa0 runb1 t1 t2 runc2 t3 t4 t5 t6 t7 map:abc t8'
const EXPECTED_CLEAR_TICKS = 'cleared run1 t1 abort2 abort3 t2 t3 ok1 t4 t5'
const EXPECTED_MIXED =
  'r0 r1 c3 r2 e1 r3 ok0 r4 e3 err2 r5 ok1 r6 ok4 r7 r8 ok3 r9 err5 ok6 e9 err7 ok8 ok9'
const EXPECTED_SYNC_COUNTS = '1/0/0 2/0/0 2/1/0 2/2/0 2/3/0 2/3/2'
const EXPECTED_RAISE = 'sync:1/4/ set:1/4/ await1:3/2/1 await2:3/2/123 done:0/0/12345'
const EXPECTED_LOWER = '3/2/123 2/2/123 1/2/123 1/1/1234 1/0/12345 0/0/12345'
const EXPECTED_ALS = 'A:A A2:A B:B B2:B C:C C2:C D:D D2:D outside:undefined'

// ---------- the per-implementation suite ----------

for (const [name, mod] of impls) {
  describe(name, () => {
    const pLimit = mod.default
    const { limitFunction } = mod

    test('module shape: default export pLimit and named limitFunction', () => {
      assert.equal(typeof pLimit, 'function')
      assert.equal(typeof limitFunction, 'function')
    })

    // ===== Port of p-limit's own test.js =====
    describe('upstream test.js', () => {
      test('concurrency: 1', async () => {
        const input = [
          [10, 30],
          [20, 20],
          [30, 10]
        ]
        const limit = pLimit(1)
        let running = 0
        let maxRunning = 0
        const started = []
        const mapper = ([value, ms]) =>
          limit(async () => {
            started.push(value)
            running++
            maxRunning = Math.max(maxRunning, running)
            await delay(ms)
            running--
            return value
          })

        assert.deepEqual(await Promise.all(input.map((x) => mapper(x))), [10, 20, 30])
        assert.equal(maxRunning, 1)
        assert.deepEqual(started, [10, 20, 30])
      })

      test('concurrency: 4 (5 with 100 tasks, random delays)', async () => {
        const concurrency = 5
        let running = 0
        let maxRunning = 0
        let violations = 0
        const limit = pLimit(concurrency)
        const input = Array.from({ length: 100 }, () =>
          limit(async () => {
            running++
            if (running > concurrency) {
              violations++
            }

            maxRunning = Math.max(maxRunning, running)
            await delay(1 + Math.floor(Math.random() * 15))
            running--
          })
        )

        await Promise.all(input)
        assert.equal(violations, 0)
        assert.equal(maxRunning, concurrency)
        assert.equal(running, 0)
      })

      test('propagates async execution context properly', async () => {
        const limit = pLimit(2)
        const store = new AsyncLocalStorage()
        const mismatches = []
        const checkId = async (id) => {
          await Promise.resolve()
          if (store.getStore()?.id !== id) {
            mismatches.push([id, store.getStore()?.id])
          }
        }

        const startContext = async (id) => store.run({ id }, () => limit(checkId, id))
        await Promise.all(Array.from({ length: 100 }, (_, id) => startContext(id)))
        assert.deepEqual(mismatches, [])
      })

      test('non-promise returning function', async () => {
        const limit = pLimit(1)
        assert.equal(await limit(() => null), null)
        assert.equal(await limit(() => 42), 42)
        assert.equal(await limit(() => {}), undefined)
      })

      test('continues after sync throw', async () => {
        const limit = pLimit(1)
        let ran = false
        const promises = [
          limit(() => {
            throw new Error('err')
          }),
          limit(() => {
            ran = true
          })
        ]
        await assert.rejects(Promise.all(promises), { message: 'err' })
        assert.equal(ran, true)
        await promises[1]
        assert.equal(limit.activeCount, 0)
      })

      test('accepts additional arguments', async () => {
        const limit = pLimit(1)
        const symbol = Symbol('test')
        let got
        await limit((a) => {
          got = a
        }, symbol)
        assert.equal(got, symbol)
        assert.deepEqual(await limit((...a) => a, 1, 'two', null, undefined), [
          1,
          'two',
          null,
          undefined
        ])
      })

      test('shared context with a limited provider helper', async () => {
        const limit = pLimit(1)
        const sharedContext = { values: [] }
        const runWithContext = (function_, ...arguments_) =>
          limit(function_, sharedContext, ...arguments_)
        const addValue = async (context, value) => {
          context.values.push(value)
          await delay(10)
          return context.values.length
        }

        const firstPromise = runWithContext(addValue, 'first')
        const secondPromise = runWithContext(addValue, 'second')
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 1)
        assert.deepEqual(await Promise.all([firstPromise, secondPromise]), [1, 2])
        assert.deepEqual(sharedContext.values, ['first', 'second'])
      })

      test('does not ignore errors', async () => {
        const limit = pLimit(1)
        const error = new Error('🦄')
        const promises = [
          limit(async () => {
            await delay(15)
          }),
          limit(async () => {
            await delay(40)
            throw error
          }),
          limit(async () => {
            await delay(25)
          })
        ]
        await assert.rejects(Promise.all(promises), (caught) => caught === error)
        await assert.rejects(promises[1], (caught) => caught === error)
        await promises[2]
      })

      test('runs all tasks asynchronously', async () => {
        const limit = pLimit(3)
        let value = 1
        const one = limit(() => 1)
        const two = limit(() => value)
        assert.equal(limit.activeCount, 2)
        value = 2
        assert.deepEqual(await Promise.all([one, two]), [1, 2])
      })

      test('activeCount and pendingCount properties', async () => {
        const limit = pLimit(5)
        assert.equal(limit.activeCount, 0)
        assert.equal(limit.pendingCount, 0)

        const runningPromise1 = limit(() => delay(40))
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 0)

        await runningPromise1
        assert.equal(limit.activeCount, 0)
        assert.equal(limit.pendingCount, 0)

        const immediatePromises = Array.from({ length: 5 }, () => limit(() => delay(40)))
        const delayedPromises = Array.from({ length: 3 }, () => limit(() => delay(40)))
        assert.equal(limit.activeCount, 5)
        assert.equal(limit.pendingCount, 3)

        await Promise.all(immediatePromises)
        assert.equal(limit.activeCount, 3)
        assert.equal(limit.pendingCount, 0)

        await Promise.all(delayedPromises)
        assert.equal(limit.activeCount, 0)
        assert.equal(limit.pendingCount, 0)
      })

      test('clearQueue', async () => {
        const limit = pLimit(1)
        const blocker = gate()
        limit(() => blocker.promise)
        Array.from({ length: 3 }, () => limit(() => delay(1)))
        await Promise.resolve()
        assert.equal(limit.pendingCount, 3)
        limit.clearQueue()
        assert.equal(limit.pendingCount, 0)
        assert.equal(limit.activeCount, 1)
        blocker.resolve()
      })

      test('clearQueue rejects pending promises when enabled', async () => {
        const limit = pLimit({ concurrency: 1, rejectOnClear: true })
        const runningPromise = limit(() => delay(30))
        const pendingPromiseOne = limit(() => delay(10))
        const pendingPromiseTwo = limit(() => delay(10))
        await Promise.resolve()
        assert.equal(limit.pendingCount, 2)
        // Observe the rejections right away (they happen inside clearQueue()).
        const rejectedOne = assert.rejects(pendingPromiseOne, { name: 'AbortError' })
        const rejectedTwo = assert.rejects(pendingPromiseTwo, { name: 'AbortError' })
        limit.clearQueue()
        assert.equal(limit.pendingCount, 0)
        await runningPromise
        await rejectedOne
        await rejectedTwo
      })

      test('clearQueue rejects pending map tasks with AbortError and counts converge', async () => {
        const limit = pLimit({ concurrency: 1, rejectOnClear: true })
        let firstStarted = false
        let firstCompleted = false
        const mapPromise = limit.map([1, 2, 3], async (value) => {
          if (value === 1) {
            firstStarted = true
            await delay(40)
            firstCompleted = true
            return value
          }

          await delay(5)
          return value
        })

        await delay(0)
        assert.equal(firstStarted, true)
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 2)

        limit.clearQueue()
        assert.equal(limit.pendingCount, 0)
        assert.equal(limit.activeCount, 1)
        assert.equal(firstCompleted, false)

        await assert.rejects(mapPromise, { name: 'AbortError' })
        await delay(50)
        assert.equal(firstCompleted, true)
        assert.equal(limit.activeCount, 0)
        assert.equal(limit.pendingCount, 0)
      })

      test('throws on invalid concurrency argument', () => {
        for (const value of [0, -1, 1.2, undefined, true, {}, { concurrency: 0 }]) {
          assert.throws(() => pLimit(value), TypeError)
        }
      })

      test('accepts options object', async () => {
        const limit = pLimit({ concurrency: 1 })
        const input = [
          limit(async () => {
            await delay(10)
            return 1
          }),
          limit(async () => {
            await delay(10)
            return 2
          })
        ]
        assert.deepEqual(await Promise.all(input), [1, 2])
        assert.equal(limit.concurrency, 1)
      })

      test('change concurrency to smaller value', async () => {
        const limit = pLimit(4)
        let running = 0
        const log = []
        const promises = Array.from({ length: 10 }).map(() =>
          limit(async () => {
            ++running
            log.push(running)
            await delay(20)
            --running
          })
        )
        await delay(0)
        assert.equal(running, 4)
        limit.concurrency = 2
        await Promise.all(promises)
        assert.deepEqual(log, [1, 2, 3, 4, 2, 2, 2, 2, 2, 2])
      })

      test('change concurrency to bigger value', async () => {
        const limit = pLimit(2)
        let running = 0
        const log = []
        const promises = Array.from({ length: 10 }).map(() =>
          limit(async () => {
            ++running
            log.push(running)
            await delay(20)
            --running
          })
        )
        await delay(0)
        assert.equal(running, 2)
        limit.concurrency = 4
        await Promise.all(promises)
        assert.deepEqual(log, [1, 2, 3, 4, 4, 4, 4, 4, 4, 4])
      })

      test('map', async () => {
        const limit = pLimit(1)
        assert.deepEqual(
          await limit.map([1, 2, 3, 4, 5, 6, 7], (input) => input + 1),
          [2, 3, 4, 5, 6, 7, 8]
        )
      })

      test('map works when detached from the limit', async () => {
        const limit = pLimit(1)
        const { map } = limit
        let running = 0
        let maxRunning = 0
        const mapper = async (input) => {
          running++
          maxRunning = Math.max(maxRunning, running)
          await delay(5)
          running--
          return input * 2
        }

        const directResult = limit(mapper, 1)
        const mapResult = map([2, 3], mapper)
        assert.deepEqual(await Promise.all([directResult, mapResult]), [2, [4, 6]])
        assert.equal(maxRunning, 1)
      })

      test('map passes index and preserves order with concurrency', async () => {
        const limit = pLimit(3)
        const inputs = [10, 10, 10, 10, 10]
        const results = await limit.map(inputs, async (value, index) => {
          await delay((inputs.length - index) * 5)
          return value + index
        })
        assert.deepEqual(results, [10, 11, 12, 13, 14])
      })

      test('map accepts an iterable (set)', async () => {
        const limit = pLimit(2)
        assert.deepEqual(await limit.map(new Set([1, 2, 3, 4]), (input) => input * 2), [2, 4, 6, 8])
      })

      test('map accepts an iterable (array iterator)', async () => {
        const limit = pLimit(2)
        assert.deepEqual(await limit.map([1, 2, 3, 4].values(), (input) => input * 2), [2, 4, 6, 8])
      })

      test('map accepts an iterable (generator)', async () => {
        const limit = pLimit(2)
        function* source() {
          yield* [1, 2, 3]
        }

        assert.deepEqual(await limit.map(source(), (input, index) => `${index}:${input}`), [
          '0:1',
          '1:2',
          '2:3'
        ])
      })

      test('map: iterator throwing rejects map, scheduled mappers keep running, no unhandled rejection', async () => {
        const iteratorError = new Error('iterator boom')
        const ran = []
        let mapPromise
        const unhandled = await collectUnhandled(async () => {
          const limit = pLimit(1)
          function* source() {
            yield 1
            yield 2
            throw iteratorError
          }

          mapPromise = limit.map(source(), async (value) => {
            ran.push(value)
            throw new Error(`mapper ${value}`)
          })
          assert.ok(mapPromise instanceof Promise)
          await assert.rejects(mapPromise, (caught) => caught === iteratorError)
          await delay(5)
        })
        assert.deepEqual(unhandled, [])
        assert.deepEqual(ran, [1, 2])
      })

      test('map: first rejection wins, later items still run', async () => {
        const limit = pLimit(1)
        const ran = []
        const error = new Error('item 1')
        const promise = limit.map([0, 1, 2, 3], async (value) => {
          ran.push(value)
          if (value === 1) {
            throw error
          }

          if (value === 2) {
            throw new Error('item 2')
          }

          return value
        })
        await assert.rejects(promise, (caught) => caught === error)
        await delay(5)
        assert.deepEqual(ran, [0, 1, 2, 3])
        assert.equal(limit.activeCount, 0)
      })

      test('limitFunction()', async () => {
        const concurrency = 5
        let running = 0
        let maxRunning = 0
        let violations = 0
        const limitedFunction = limitFunction(
          async () => {
            running++
            if (running > concurrency) {
              violations++
            }

            maxRunning = Math.max(maxRunning, running)
            await delay(1 + Math.floor(Math.random() * 15))
            running--
          },
          { concurrency }
        )
        await Promise.all(Array.from({ length: 100 }, limitedFunction))
        assert.equal(violations, 0)
        assert.equal(maxRunning, concurrency)
      })

      test('limitFunction() clearQueue discards pending calls but keeps the active one', async () => {
        let calls = 0
        const blocker = gate()
        const limitedFunction = limitFunction(
          () => {
            calls++
            return blocker.promise
          },
          { concurrency: 1 }
        )
        const first = limitedFunction()
        const second = limitedFunction()
        const third = limitedFunction()
        await Promise.resolve()
        assert.equal(calls, 1)
        assert.equal(limitedFunction.clearQueue(), undefined)
        blocker.resolve('done')
        assert.equal(await first, 'done')
        await delay(5)
        assert.equal(calls, 1)
        assert.equal(await stateOf(second, 5), 'pending')
        assert.equal(await stateOf(third, 5), 'pending')
        // Still usable afterwards.
        assert.equal(await limitedFunction(), 'done')
        assert.equal(calls, 2)
      })

      test('limitFunction() clearQueue rejects pending calls when rejectOnClear is enabled', async () => {
        let calls = 0
        const limitedFunction = limitFunction(
          () => {
            calls++
            return delay(20)
          },
          { concurrency: 1, rejectOnClear: true }
        )
        const runningPromise = limitedFunction()
        const pendingPromiseOne = limitedFunction()
        const pendingPromiseTwo = limitedFunction()
        const settled = Promise.all(
          [pendingPromiseOne, pendingPromiseTwo].map((p) =>
            p.then(
              () => 'resolved',
              (error) => error
            )
          )
        )
        await Promise.resolve()
        limitedFunction.clearQueue()
        await runningPromise
        const errors = await settled
        assert.equal(errors[0].name, 'AbortError')
        assert.equal(errors[0], errors[1])
        assert.equal(calls, 1)
      })

      test('limitFunction() preserves FIFO execution order', async () => {
        const started = []
        const limitedFunction = limitFunction(
          async (value) => {
            started.push(value)
            await delay(5)
            return value
          },
          { concurrency: 1 }
        )
        assert.deepEqual(
          await Promise.all([1, 2, 3, 4].map((value) => limitedFunction(value))),
          [1, 2, 3, 4]
        )
        assert.deepEqual(started, [1, 2, 3, 4])
      })

      test('limitFunction() forwards arguments and does not forward this', async () => {
        const calls = []
        const context = { id: 'ctx' }
        const limitedFunction = limitFunction(
          function (...arguments_) {
            calls.push({ arguments_, self: this })
          },
          { concurrency: 1 }
        )
        await limitedFunction.call(context, 1, 2, 3)
        assert.deepEqual(calls[0].arguments_, [1, 2, 3])
        assert.notEqual(calls[0].self, context)
        assert.equal(calls[0].self, undefined)
      })
    })

    // ===== Validation (anchors 1.2) =====
    describe('validation', () => {
      for (const [label, value] of BAD_CONCURRENCY) {
        test(`pLimit(${label}) throws the concurrency TypeError`, () => {
          assert.throws(() => pLimit(value), { name: 'TypeError', message: CONCURRENCY_MESSAGE })
          assert.throws(() => pLimit(value), TypeError)
        })
      }

      test('pLimit(null) throws a TypeError (engine destructuring error)', () => {
        assert.throws(() => pLimit(null), TypeError)
      })

      test('pLimit() with no argument throws the concurrency TypeError', () => {
        assert.throws(() => pLimit(), { name: 'TypeError', message: CONCURRENCY_MESSAGE })
      })

      for (const [label, value] of BAD_REJECT_ON_CLEAR) {
        test(`rejectOnClear ${label} throws the rejectOnClear TypeError`, () => {
          assert.throws(() => pLimit({ concurrency: 1, rejectOnClear: value }), {
            name: 'TypeError',
            message: REJECT_ON_CLEAR_MESSAGE
          })
          assert.throws(
            () => limitFunction(async () => {}, { concurrency: 1, rejectOnClear: value }),
            { name: 'TypeError', message: REJECT_ON_CLEAR_MESSAGE }
          )
        })
      }

      test('concurrency is validated before rejectOnClear', () => {
        assert.throws(() => pLimit({ concurrency: 0, rejectOnClear: 'x' }), {
          name: 'TypeError',
          message: CONCURRENCY_MESSAGE
        })
      })

      test('accepted values', () => {
        // The getter returns the exact value given, also for huge integers.
        for (const value of [
          1,
          2,
          1000,
          2 ** 31,
          2 ** 32,
          2 ** 53,
          2 ** 53 + 2,
          2 ** 63,
          2 ** 64,
          1e20,
          5e300,
          Number.MAX_VALUE,
          Number.POSITIVE_INFINITY,
          Number.MAX_SAFE_INTEGER
        ]) {
          assert.equal(pLimit(value).concurrency, value)
          assert.equal(pLimit({ concurrency: value }).concurrency, value)
        }

        assert.equal(pLimit({ concurrency: 2, rejectOnClear: undefined }).concurrency, 2)
        assert.equal(pLimit({ concurrency: 2, rejectOnClear: false }).concurrency, 2)
        assert.equal(pLimit({ concurrency: 2, rejectOnClear: true }).concurrency, 2)
        // Options are read with destructuring, so inherited properties count.
        assert.equal(pLimit(Object.create({ concurrency: 3 })).concurrency, 3)
      })

      for (const [label, value] of [...BAD_CONCURRENCY, ['null', null]]) {
        test(`setter: concurrency = ${label} throws the concurrency TypeError and keeps the old value`, () => {
          const limit = pLimit(3)
          assert.throws(
            () => {
              limit.concurrency = value
            },
            { name: 'TypeError', message: CONCURRENCY_MESSAGE }
          )
          assert.equal(limit.concurrency, 3)
        })
      }

      test('setter accepts Infinity and huge integers, and the getter returns them exactly', () => {
        const limit = pLimit(1)
        for (const value of [Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 64, 1e300, 7]) {
          limit.concurrency = value
          assert.equal(limit.concurrency, value)
        }
      })

      test('limitFunction(fn) without options throws the concurrency TypeError', () => {
        assert.throws(() => limitFunction(async () => {}), {
          name: 'TypeError',
          message: CONCURRENCY_MESSAGE
        })
        assert.throws(() => limitFunction(async () => {}, {}), {
          name: 'TypeError',
          message: CONCURRENCY_MESSAGE
        })
        assert.throws(() => limitFunction(async () => {}, 0), {
          name: 'TypeError',
          message: CONCURRENCY_MESSAGE
        })
      })

      test('limitFunction(fn, 3) with a bare number works', async () => {
        const limited = limitFunction(async (x) => x * 2, 3)
        assert.deepEqual(await Promise.all([1, 2, 3, 4].map((x) => limited(x))), [2, 4, 6, 8])
      })

      test('limit(42) returns a promise rejecting with a TypeError and frees its slot', async () => {
        const limit = pLimit(1)
        const bad = limit(42)
        assert.ok(bad instanceof Promise)
        const after = limit(() => 'after')
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 1)
        await assert.rejects(
          bad,
          (error) => error instanceof TypeError && /not a function/.test(error.message)
        )
        assert.equal(await after, 'after')
        assert.equal(limit.activeCount, 0)
        assert.equal(limit.pendingCount, 0)
      })

      test('limitFunction(42, 1) does not throw; calling it rejects with a TypeError', async () => {
        const limited = limitFunction(42, 1)
        assert.equal(typeof limited, 'function')
        await assert.rejects(limited(), TypeError)
      })
    })

    // ===== Microtask order and semantics (anchors 1.3 to 1.6) =====
    describe('microtask order and semantics', () => {
      for (const [key, expected] of Object.entries(EXPECTED_ORDER)) {
        const [kind, concurrency, n = 3] = key.split('/')
        test(`event log: ${n} ${kind} fns with pLimit(${concurrency})`, async () => {
          assert.equal(await orderScenario(kind, Number(concurrency), Number(n))(mod), expected)
        })
      }

      test('rejectOnClear: cleared promises reject inside clearQueue(), before the running task settles', async () => {
        const limit = pLimit({ concurrency: 1, rejectOnClear: true })
        const log = []
        const promises = [1, 2].map((i) =>
          limit(() => i).then(
            () => log.push(`ok${i}`),
            () => log.push(`abort${i}`)
          )
        )
        limit.clearQueue()
        await Promise.all(promises)
        assert.equal(log.join(' '), 'abort2 ok1')

        const limit2 = pLimit({ concurrency: 1, rejectOnClear: true })
        const log2 = []
        limit2(() => new Promise(() => {}))
        const cleared = limit2(() => 2).catch(() => log2.push('abort2'))
        limit2.clearQueue()
        await null
        log2.push('tick1')
        await null
        log2.push('tick2')
        await cleared
        assert.equal(log2.join(' '), 'abort2 tick1 tick2')
      })

      for (const [key, expected] of Object.entries(EXPECTED_TICKS)) {
        const [kind, concurrency] = key.split('/')
        test(`microtask-exact timeline: ${kind} fns with pLimit(${concurrency})`, async () => {
          assert.equal(await tickScenario(kind, Number(concurrency))(mod), expected)
        })
      }

      test('microtask-exact timeline: limitFunction', async () => {
        assert.equal(await limitFunctionTickScenario(mod), EXPECTED_LIMIT_FUNCTION_TICKS)
      })

      test('microtask-exact timeline: map', async () => {
        assert.equal(await mapTickScenario(mod), EXPECTED_MAP_TICKS)
      })

      test('microtask-exact timeline: clearQueue with rejectOnClear', async () => {
        assert.equal(await clearTickScenario(mod), EXPECTED_CLEAR_TICKS)
      })

      test('event log: mixed sync/async/throwing tasks with a concurrency raise', async () => {
        assert.equal(await mixedScenario(mod), EXPECTED_MIXED)
      })

      test('counts are updated synchronously by limit(); fn is not called synchronously', async () => {
        assert.equal(await syncCountsScenario(mod), EXPECTED_SYNC_COUNTS)
      })

      test('fn is not called synchronously even with a free slot, but is after one microtask', async () => {
        const limit = pLimit(Number.POSITIVE_INFINITY)
        let called = 0
        const promise = limit(() => {
          called++
        })
        assert.equal(called, 0)
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 0)
        await null
        assert.equal(called, 1)
        await promise
      })

      test('raising concurrency applies after one microtask (1/4 then 3/2)', async () => {
        assert.equal(await raiseScenario(mod), EXPECTED_RAISE)
      })

      test('lowering concurrency never preempts running tasks', async () => {
        assert.equal(await lowerScenario(mod), EXPECTED_LOWER)
      })

      test('setting the same concurrency does not start extra tasks', async () => {
        const limit = pLimit(2)
        const gates = [gate(), gate(), gate()]
        let started = 0
        const promises = gates.map((g) =>
          limit(() => {
            started++
            return g.promise
          })
        )
        limit.concurrency = 2
        await microtasks(3)
        assert.equal(started, 2)
        assert.equal(limit.activeCount, 2)
        assert.equal(limit.pendingCount, 1)
        for (const g of gates) {
          g.resolve()
        }

        await Promise.all(promises)
      })

      test('raise then lower before the microtask: no extra task starts', async () => {
        const limit = pLimit(1)
        const gates = [gate(), gate(), gate()]
        const promises = gates.map((g) => limit(() => g.promise))
        limit.concurrency = 3
        limit.concurrency = 1
        await microtasks(3)
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 2)
        for (const g of gates) {
          g.resolve()
        }

        await Promise.all(promises)
      })

      test('strict FIFO start order (concurrency 2)', async () => {
        const limit = pLimit(2)
        const started = []
        await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            limit(async () => {
              started.push(i)
              await delay(((6 - i) % 3) * 3)
            })
          )
        )
        assert.deepEqual(started, [0, 1, 2, 3, 4, 5])
      })

      test('properties are non-enumerable; Object.keys(limit) is []', () => {
        const limit = pLimit(2)
        assert.deepEqual(Object.keys(limit), [])
        for (const key of ['activeCount', 'pendingCount', 'concurrency', 'clearQueue', 'map']) {
          const descriptor = Object.getOwnPropertyDescriptor(limit, key)
          assert.ok(descriptor, `${key} is an own property`)
          assert.equal(descriptor.enumerable, false, `${key} is non-enumerable`)
          assert.equal(descriptor.configurable, false, `${key} is non-configurable`)
        }

        // eslint-disable-next-line guard-for-in, no-unreachable-loop
        for (const key in limit) {
          assert.fail(`enumerable key ${key}`)
        }
      })

      test('activeCount/pendingCount are getter-only (assignment throws in strict mode)', () => {
        const limit = pLimit(2)
        for (const key of ['activeCount', 'pendingCount']) {
          const descriptor = Object.getOwnPropertyDescriptor(limit, key)
          assert.equal(typeof descriptor.get, 'function')
          assert.equal(descriptor.set, undefined)
          assert.throws(() => {
            limit[key] = 5
          }, TypeError)
          assert.equal(limit[key], 0)
        }

        const concurrency = Object.getOwnPropertyDescriptor(limit, 'concurrency')
        assert.equal(typeof concurrency.get, 'function')
        assert.equal(typeof concurrency.set, 'function')
        for (const key of ['clearQueue', 'map']) {
          const descriptor = Object.getOwnPropertyDescriptor(limit, key)
          assert.equal(typeof descriptor.value, 'function')
          assert.equal(descriptor.writable, false)
          assert.throws(() => {
            limit[key] = () => {}
          }, TypeError)
        }

        assert.throws(() => {
          delete limit.activeCount
        }, TypeError)
      })

      test('limit is an arrow-like function: no own prototype, not a constructor', () => {
        const limit = pLimit(1)
        assert.equal(Object.hasOwn(limit, 'prototype'), false)
        assert.throws(() => new limit(() => 1), TypeError) // eslint-disable-line new-cap
        const limited = limitFunction(async () => {}, 1)
        assert.equal(Object.hasOwn(limited, 'prototype'), false)
        assert.throws(() => new limited(), TypeError) // eslint-disable-line new-cap
      })

      test('limitFunction result: only a non-enumerable clearQueue, no counts/concurrency/map', () => {
        const limited = limitFunction(async () => {}, { concurrency: 2 })
        assert.deepEqual(Object.keys(limited), [])
        const descriptor = Object.getOwnPropertyDescriptor(limited, 'clearQueue')
        assert.equal(typeof descriptor.value, 'function')
        assert.equal(descriptor.enumerable, false)
        for (const key of ['activeCount', 'pendingCount', 'concurrency', 'map']) {
          assert.equal(key in limited, false, `limitFunction result has no ${key}`)
        }
      })

      test("limit() returns a new native Promise, not fn's promise", async () => {
        const limit = pLimit(2)
        const inner = Promise.resolve('inner')
        const outer = limit(() => inner)
        assert.notEqual(outer, inner)
        assert.equal(Object.getPrototypeOf(outer), Promise.prototype)
        assert.equal(await outer, 'inner')
        const mapped = limit.map([1], (x) => x)
        assert.equal(Object.getPrototypeOf(mapped), Promise.prototype)
        await mapped
      })

      test('sync throw rejects with the identical error object and releases the slot', async () => {
        const limit = pLimit(1)
        const error = new Error('sync')
        const thrown = limit(() => {
          throw error
        })
        const next = limit(() => 'next')
        await assert.rejects(thrown, (caught) => caught === error)
        assert.equal(await next, 'next')
        assert.equal(limit.activeCount, 0)
        // Non-Error throw values pass through unchanged.
        await assert.rejects(
          limit(() => {
            throw 'plain' // eslint-disable-line no-throw-literal
          }),
          (caught) => caught === 'plain'
        )
      })

      test('thenables are adopted (fulfil, reject, throwing then) and hold the slot until settled', async () => {
        const limit = pLimit(1)
        assert.equal(await limit(() => ({ then: (resolve) => resolve('fulfilled') })), 'fulfilled')
        const error = new Error('thenable reject')
        await assert.rejects(
          limit(() => ({ then: (_, reject) => reject(error) })),
          (caught) => caught === error
        )
        const thenError = new Error('then throws')
        await assert.rejects(
          limit(() => ({
            then() {
              throw thenError
            }
          })),
          (caught) => caught === thenError
        )

        let release
        const slow = limit(() => ({
          then(resolve) {
            release = resolve
          }
        }))
        let secondStarted = false
        const second = limit(() => {
          secondStarted = true
        })
        await delay(5)
        assert.equal(typeof release, 'function')
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 1)
        assert.equal(secondStarted, false)
        release('late')
        assert.equal(await slow, 'late')
        await second
        assert.equal(secondStarted, true)
      })

      test('fn receives exactly the given arguments and an undefined receiver', async () => {
        const limit = pLimit(1)
        assert.equal(await limit((...a) => a.length), 0)
        assert.equal(await limit((...a) => a.length, undefined), 1)
        assert.equal(await limit((...a) => a.length, 1, 2, 3, 4, 5), 5)
        // A sloppy-mode function called with an undefined receiver sees globalThis.
        const sloppy = new Function('return this') // eslint-disable-line no-new-func
        assert.equal(await limit(sloppy), globalThis)
        assert.equal(
          await limit(function () {
            return this
          }),
          undefined
        )
      })

      test('a never-settling fn holds its slot forever', async () => {
        const limit = pLimit(1)
        limit(() => new Promise(() => {}))
        let ran = false
        const queued = limit(() => {
          ran = true
        })
        await delay(10)
        assert.equal(ran, false)
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 1)
        assert.equal(await stateOf(queued, 5), 'pending')
      })

      test('nesting the same limiter deadlocks (inner waits for outer)', async () => {
        const limit = pLimit(1)
        let innerRan = false
        const outer = limit(async () =>
          limit(() => {
            innerRan = true
          })
        )
        await delay(10)
        assert.equal(innerRan, false)
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 1)
        assert.equal(await stateOf(outer, 5), 'pending')
        limit.clearQueue()
      })

      test('clearQueue (default): cleared promises never settle, fns never run, running task untouched, limiter reusable', async () => {
        const limit = pLimit(1)
        const blocker = gate()
        let clearedRan = 0
        const running = limit(() => blocker.promise)
        const cleared = [limit(() => clearedRan++), limit(() => clearedRan++)]
        assert.equal(limit.pendingCount, 2)
        assert.equal(limit.clearQueue(), undefined)
        assert.equal(limit.pendingCount, 0)
        assert.equal(limit.activeCount, 1)
        blocker.resolve('ran')
        assert.equal(await running, 'ran')
        await delay(10)
        assert.equal(clearedRan, 0)
        for (const promise of cleared) {
          assert.equal(await stateOf(promise, 5), 'pending') // eslint-disable-line no-await-in-loop
        }

        assert.equal(await limit(() => 'again'), 'again')
        assert.equal(limit.activeCount, 0)
        limit.clearQueue() // No-op on an empty queue.
      })

      test('rejectOnClear: one shared AbortError (DOMException, name, message, code 20, identical object)', async () => {
        const limit = pLimit({ concurrency: 1, rejectOnClear: true })
        const blocker = gate()
        let clearedRan = 0
        const running = limit(() => blocker.promise)
        const cleared = [1, 2, 3].map(() => limit(() => clearedRan++))
        const mapped = limit.map([1, 2], () => clearedRan++)
        assert.equal(limit.pendingCount, 5)
        assert.equal(limit.clearQueue(), undefined)
        assert.equal(limit.pendingCount, 0)
        assert.equal(limit.activeCount, 1)
        const errors = await Promise.all(
          [...cleared, mapped].map((p) =>
            p.then(
              () => 'resolved',
              (error) => error
            )
          )
        )
        const [first] = errors
        assert.ok(first instanceof DOMException)
        assert.ok(first instanceof Error)
        assert.equal(first.name, 'AbortError')
        assert.equal(first.message, 'This operation was aborted')
        assert.equal(first.code, 20)
        assert.equal(Object.prototype.toString.call(first), '[object DOMException]')
        for (const error of errors) {
          assert.equal(error, first, 'every cleared promise gets the identical object')
        }

        blocker.resolve('kept')
        assert.equal(await running, 'kept')
        assert.equal(clearedRan, 0)

        // A later clearQueue() call creates a fresh AbortError.
        const blocker2 = gate()
        limit(() => blocker2.promise)
        const later = limit(() => {}).then(
          () => 'resolved',
          (error) => error
        )
        limit.clearQueue()
        const secondError = await later
        assert.equal(secondError.name, 'AbortError')
        assert.notEqual(secondError, first)
        blocker2.resolve()
        // Still usable.
        assert.equal(await limit(() => 'after'), 'after')
      })

      test('map: array-like objects, Array.from(42) semantics, null rejects asynchronously', async () => {
        const limit = pLimit(2)
        assert.deepEqual(await limit.map({ length: 2, 0: 'a', 1: 'b' }, (x, i) => x + i), [
          'a0',
          'b1'
        ])
        assert.deepEqual(await limit.map(42, (x) => x), [])
        let promise
        assert.doesNotThrow(() => {
          promise = limit.map(null, (x) => x)
        })
        await assert.rejects(promise, TypeError)
        assert.deepEqual(await limit.map([], () => assert.fail('not called')), [])
      })

      test('map: mapper receives exactly (value, index); results in input order', async () => {
        const limit = pLimit(2)
        const seen = []
        const result = await limit.map(['x', 'y', 'z'], (...a) => {
          seen.push(a)
          return a[1]
        })
        assert.deepEqual(seen, [
          ['x', 0],
          ['y', 1],
          ['z', 2]
        ])
        assert.deepEqual(result, [0, 1, 2])
      })

      test('map: all items are enqueued synchronously inside map()', () => {
        const limit = pLimit(1)
        const blocker = gate()
        limit(() => blocker.promise)
        limit.map([1, 2, 3], (x) => x)
        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, 3)
        limit.clearQueue()
        blocker.resolve()
      })

      test("ALS: queued tasks keep the caller's store even when released from another context", async () => {
        assert.equal(await alsScenario(mod), EXPECTED_ALS)
      })

      test("ALS: map and limitFunction propagate the caller's store", async () => {
        const store = new AsyncLocalStorage()
        const limit = pLimit(1)
        const seen = await store.run('map-ctx', () =>
          limit.map([1, 2, 3], async () => {
            await null
            return store.getStore()
          })
        )
        assert.deepEqual(seen, ['map-ctx', 'map-ctx', 'map-ctx'])

        const limited = limitFunction(async (tag) => {
          await delay(1)
          return `${tag}:${store.getStore()}`
        }, 1)
        const results = await Promise.all(
          ['a', 'b', 'c'].map((tag) => store.run(`ctx-${tag}`, () => limited(tag)))
        )
        assert.deepEqual(results, ['a:ctx-a', 'b:ctx-b', 'c:ctx-c'])
      })

      test('rejections the caller handles cause no unhandled rejection', async () => {
        const unhandled = await collectUnhandled(async () => {
          const limit = pLimit(1)
          const promises = [1, 2, 3].map((i) =>
            limit(async () => {
              throw new Error(`e${i}`)
            })
          )
          const results = await Promise.allSettled(promises)
          assert.deepEqual(
            results.map((r) => r.status),
            ['rejected', 'rejected', 'rejected']
          )
        })
        assert.deepEqual(unhandled, [])
      })

      // A million queued tasks, in a fresh process (node:test's own async hook
      // makes every promise several times more expensive): scripts/stress.js.
      test('100k queued tasks complete (in-process)', { timeout: 60_000 }, async () => {
        const n = 100_000
        const limit = pLimit(1)
        let count = 0
        const fn = () => ++count
        const promises = Array.from({ length: n })
        for (let i = 0; i < n; i++) {
          promises[i] = limit(fn)
        }

        assert.equal(limit.activeCount, 1)
        assert.equal(limit.pendingCount, n - 1)
        assert.equal(count, 0)
        const results = await Promise.all(promises)
        assert.equal(count, n)
        assert.equal(results[0], 1)
        assert.equal(results[n - 1], n)
        assert.equal(limit.activeCount, 0)
        assert.equal(limit.pendingCount, 0)
      })
    })
  })
}

// ---------- direct cross-implementation probes ----------
// The same scenario script is run against the reference p-limit and each other
// implementation in one test, and the two logs must be deep-equal.

const crossScenarios = {
  'order log sync pLimit(1)': orderScenario('sync', 1),
  'order log async pLimit(2), 6 tasks': orderScenario('async', 2, 6),
  'order log throw pLimit(3), 5 tasks': orderScenario('throw', 3, 5),
  'order log thenable pLimit(1), 4 tasks': orderScenario('thenable', 1, 4),
  'tick timeline sync pLimit(1), 5 tasks': tickScenario('sync', 1, 5),
  'tick timeline async pLimit(3), 6 tasks': tickScenario('async', 3, 6),
  'tick timeline reject pLimit(2), 4 tasks': tickScenario('reject', 2, 4),
  'tick timeline limitFunction': limitFunctionTickScenario,
  'tick timeline map': mapTickScenario,
  'mixed kinds + concurrency raise': mixedScenario,
  'sync counts': syncCountsScenario,
  'concurrency raise': raiseScenario,
  'concurrency lower': lowerScenario,
  'AsyncLocalStorage across contexts': alsScenario,
  'property shape of limit and limitFunction': shapeScenario,
  async 'validation error messages'(mod) {
    const out = []
    for (const [label, value] of [...BAD_CONCURRENCY, ['null', null]]) {
      try {
        mod.default(value)
        out.push(`${label}: ok`)
      } catch (error) {
        out.push(
          `${label}: ${error.constructor.name}${label === 'null' ? '' : `: ${error.message}`}`
        )
      }
    }

    for (const [label, value] of BAD_REJECT_ON_CLEAR) {
      try {
        mod.default({ concurrency: 1, rejectOnClear: value })
        out.push(`roc ${label}: ok`)
      } catch (error) {
        out.push(`roc ${label}: ${error.constructor.name}: ${error.message}`)
      }
    }

    return out.join('\n')
  }
}

describe('cross-implementation probes (same script, deepStrictEqual logs)', () => {
  const others = impls.slice(1)
  assert.ok(others.length > 0, 'sluice/p-limit is loaded (a failed import fails the file above)')
  for (const [name, mod] of others) {
    for (const [scenario, run] of Object.entries(crossScenarios)) {
      test(`${name} vs p-limit: ${scenario}`, async () => {
        const expected = await run(reference)
        const actual = await run(mod)
        assert.deepStrictEqual(actual, expected)
      })
    }
  }
})
