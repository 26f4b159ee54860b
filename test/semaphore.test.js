'use strict'
// The Semaphore API: every behaviour, bad input, AbortSignal, timeouts,
// async context, a long queue, and the raw binding fed garbage.
const { test, describe, beforeEach, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const { AsyncLocalStorage } = require('node:async_hooks')
const { getEventListeners } = require('node:events')
const path = require('node:path')
const { Semaphore, TimeoutError } = require('../lib/index.js')
const { binding } = require('../lib/binding.js')

const LIB = path.join(__dirname, '..', 'lib', 'index.js')
const BINDING = path.join(__dirname, '..', 'lib', 'binding.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// Two turns of the loop: microtasks drained, and the close callbacks of any
// uv handle closed during the previous turn have run.
const turn = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)))

// Follows a promise without awaiting it.
function track(promise) {
  const t = { state: 'pending', value: undefined, error: undefined }
  promise.then(
    (v) => {
      t.state = 'resolved'
      t.value = v
    },
    (e) => {
      t.state = 'rejected'
      t.error = e
    }
  )
  return t
}

// Every test leaves no native waiter and no open timer behind (compared to
// before it ran, so that one failure does not fail every later test).
let before
beforeEach(() => {
  before = binding.debugCounts()
})
afterEach(async () => {
  await turn()
  const c = binding.debugCounts()
  assert.equal(c.waiters, before.waiters, 'the test left native waiters behind')
  assert.equal(c.uvHandles, before.uvHandles, 'the test left uv handles open')
})

function runChild(source, args = []) {
  return spawnSync(process.execPath, [...args, '-e', source], { encoding: 'utf8', timeout: 20000 })
}

describe('constructor', () => {
  test('wrong types are TypeErrors naming `permits`', () => {
    for (const bad of [undefined, null, '1', 'x', {}, [], 1n, true, Symbol('s'), () => 1]) {
      assert.throws(
        () => new Semaphore(bad),
        { name: 'TypeError', message: /`permits`/ },
        String(typeof bad)
      )
    }
  })

  test('negative, fractional and NaN are RangeErrors naming `permits`', () => {
    for (const bad of [-1, -0.5, 1.5, NaN, -Infinity, Number.MIN_VALUE, -(2 ** 53)]) {
      assert.throws(
        () => new Semaphore(bad),
        { name: 'RangeError', message: /`permits`/ },
        String(bad)
      )
    }
  })

  test('0, Infinity and large integers are accepted', () => {
    const zero = new Semaphore(0)
    assert.equal(zero.permits, 0)
    assert.equal(zero.available, 0)
    assert.equal(zero.pending, 0)
    assert.equal(zero.tryAcquire(), false)

    const inf = new Semaphore(Infinity)
    assert.equal(inf.permits, Infinity)
    assert.equal(inf.available, Infinity)
    assert.equal(inf.tryAcquire(0xffffffff), true)
    assert.equal(inf.available, Infinity)
    inf.release(0xffffffff)

    const big = new Semaphore(2 ** 40)
    assert.equal(big.permits, 2 ** 40)
    assert.equal(big.tryAcquire(0xffffffff), true)
    assert.equal(big.available, 2 ** 40 - 0xffffffff)
    big.release(0xffffffff)

    const five = new Semaphore(5)
    assert.equal(five.permits, 5)
    assert.equal(five.available, 5)
    assert.equal(five.pending, 0)
  })

  test('options must be an object', () => {
    for (const bad of [null, 'x', 5, true]) {
      assert.throws(() => new Semaphore(1, bad), { name: 'TypeError', message: /`options`/ })
    }
    assert.throws(() => new Semaphore(1, { name: 5 }), {
      name: 'TypeError',
      message: /`options.name`/
    })
    assert.equal(new Semaphore(2, {}).permits, 2)
  })
})

describe('acquire', () => {
  test('resolves with undefined; counts change synchronously', async () => {
    const sem = new Semaphore(2)
    const p = sem.acquire()
    assert.ok(p instanceof Promise)
    assert.equal(sem.available, 1)
    assert.equal(sem.pending, 0)
    assert.equal(await p, undefined)
    await sem.acquire(undefined) // n defaults to 1
    assert.equal(sem.available, 0)
    const q = sem.acquire()
    assert.ok(q instanceof Promise)
    assert.equal(sem.pending, 1)
    assert.equal(sem.available, 0)
    const t = track(q)
    await turn()
    assert.equal(t.state, 'pending')
    sem.release()
    // Granted inside release(): the counts already say so.
    assert.equal(sem.pending, 0)
    assert.equal(sem.available, 0)
    assert.equal(await q, undefined)
    sem.release(2)
    assert.equal(sem.available, 2)
  })

  test('FIFO within a priority', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    const order = []
    const all = []
    for (let i = 0; i < 20; i++) {
      all.push(
        sem.acquire().then(() => {
          order.push(i)
          sem.release()
        })
      )
    }
    assert.equal(sem.pending, 20)
    sem.release()
    await Promise.all(all)
    assert.deepEqual(
      order,
      Array.from({ length: 20 }, (_, i) => i)
    )
    assert.equal(sem.available, 1)
  })

  test('higher priority first, FIFO within each', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    const order = []
    const spec = [
      ['a', 0],
      ['b', 5],
      ['c', -1],
      ['d', 5],
      ['e', 10],
      ['f', 0],
      ['g', -(2 ** 31)],
      ['h', 2 ** 31 - 1]
    ]
    const all = spec.map(([id, priority]) =>
      sem.acquire(1, { priority }).then(() => {
        order.push(id)
        sem.release()
      })
    )
    assert.equal(sem.pending, spec.length)
    sem.release()
    await Promise.all(all)
    assert.deepEqual(order, ['h', 'e', 'b', 'd', 'a', 'f', 'c', 'g'])
  })

  test('a later higher-priority acquire overtakes queued lower ones', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    const order = []
    const low = sem.acquire(1, { priority: 0 }).then(() => {
      order.push('low')
      sem.release()
    })
    const high = sem.acquire(1, { priority: 1 }).then(() => {
      order.push('high')
      sem.release()
    })
    sem.release()
    await Promise.all([low, high])
    assert.deepEqual(order, ['high', 'low'])
  })

  test('weighted acquires and head-of-line blocking', async () => {
    const sem = new Semaphore(5)
    await sem.acquire(3)
    assert.equal(sem.available, 2)
    const order = []
    const big = track(sem.acquire(3).then(() => order.push('big')))
    const small = track(sem.acquire(1).then(() => order.push('small')))
    assert.equal(sem.pending, 2)
    // 2 free, but the big head (3) blocks the small one behind it.
    assert.equal(sem.available, 2)
    assert.equal(sem.tryAcquire(1), false)
    await turn()
    assert.equal(big.state, 'pending')
    assert.equal(small.state, 'pending')
    sem.release(1) // 3 free: the head fits and is granted at once
    assert.equal(sem.pending, 1)
    assert.equal(sem.available, 0)
    await turn()
    assert.equal(big.state, 'resolved')
    assert.equal(small.state, 'pending')
    sem.release(3)
    assert.equal(sem.pending, 0)
    assert.equal(sem.available, 2)
    await turn()
    assert.deepEqual(order, ['big', 'small'])
    sem.release(3)
    assert.equal(sem.available, 5)
  })

  test('a small higher-priority acquire is not blocked by a big lower-priority head', async () => {
    const sem = new Semaphore(3)
    await sem.acquire(2)
    const big = track(sem.acquire(3))
    await sem.acquire(1, { priority: 1 }) // fits, and it is the head now
    assert.equal(sem.pending, 1)
    assert.equal(sem.available, 0)
    sem.release(3)
    await turn()
    assert.equal(big.state, 'resolved')
    sem.release(3)
  })

  test('a request for more than the capacity is a RangeError that names both numbers', async () => {
    const sem = new Semaphore(2)
    await assert.rejects(sem.acquire(5), (err) => {
      assert.ok(err instanceof RangeError)
      assert.match(err.message, /Cannot acquire 5 permits: the gate has only 2/)
      return true
    })
    assert.equal(sem.pending, 0)
    assert.equal(sem.available, 2)
    // A gate of 0 permits is paused, not too small: acquires wait for a raise.
    const paused = new Semaphore(0)
    const t = track(paused.acquire(5))
    assert.equal(paused.pending, 1)
    paused.permits = 5
    await turn()
    assert.equal(t.state, 'resolved')
    paused.release(5)
  })
})

describe('tryAcquire', () => {
  test('takes free permits now, or returns false', () => {
    const sem = new Semaphore(3)
    assert.equal(sem.tryAcquire(), true)
    assert.equal(sem.available, 2)
    assert.equal(sem.tryAcquire(2), true)
    assert.equal(sem.available, 0)
    assert.equal(sem.tryAcquire(), false)
    assert.equal(sem.available, 0)
    sem.release(3)
    assert.equal(sem.tryAcquire(4), false)
    assert.equal(sem.available, 3)
    assert.equal(sem.tryAcquire(3), true)
    sem.release(3)
  })

  test('false when others are queued, even if permits are free', async () => {
    const sem = new Semaphore(3)
    sem.tryAcquire(2)
    const head = track(sem.acquire(2)) // waits: 1 free
    assert.equal(sem.available, 1)
    assert.equal(sem.tryAcquire(1), false)
    assert.equal(sem.available, 1)
    sem.release(2)
    await turn()
    assert.equal(head.state, 'resolved')
    assert.equal(sem.tryAcquire(1), true)
    sem.release(3)
    assert.equal(sem.available, 3)
  })
})

describe('release', () => {
  test('grants waiters in order, synchronously', async () => {
    const sem = new Semaphore(2)
    await sem.acquire(2)
    const a = track(sem.acquire())
    const b = track(sem.acquire())
    const c = track(sem.acquire())
    sem.release(2)
    assert.equal(sem.pending, 1)
    await turn()
    assert.deepEqual([a.state, b.state, c.state], ['resolved', 'resolved', 'pending'])
    sem.release()
    await turn()
    assert.equal(c.state, 'resolved')
    sem.release(2)
    assert.equal(sem.available, 2)
  })

  test('releasing more than was acquired is a RangeError and never raises capacity (async-sema #36)', async () => {
    const sem = new Semaphore(2)
    assert.throws(() => sem.release(), { name: 'RangeError', message: /release/ })
    assert.equal(sem.permits, 2)
    assert.equal(sem.available, 2)
    assert.equal(sem.tryAcquire(3), false)

    await sem.acquire()
    assert.throws(() => sem.release(2), RangeError)
    assert.equal(sem.permits, 2)
    assert.equal(sem.available, 1)
    sem.release()
    assert.throws(() => sem.release(), RangeError)
    assert.equal(sem.available, 2)
    assert.equal(sem.tryAcquire(3), false)

    await sem.acquire(2)
    sem.release()
    sem.release()
    assert.throws(() => sem.release(), RangeError)
    assert.equal(sem.available, 2)
    assert.equal(sem.permits, 2)
  })

  test('a semaphore cannot release permits held through another one', async () => {
    const a = new Semaphore(1)
    const b = new Semaphore(1)
    await a.acquire()
    assert.throws(() => b.release(), RangeError)
    assert.equal(a.available, 0)
    assert.equal(b.available, 1)
    a.release()
  })
})

describe('use', () => {
  test('holds a permit while fn runs and returns its value', async () => {
    const sem = new Semaphore(2)
    const value = await sem.use(async () => {
      assert.equal(sem.available, 1)
      await sleep(1)
      return 42
    })
    assert.equal(value, 42)
    assert.equal(sem.available, 2)
    assert.equal(await sem.use(() => 'sync'), 'sync')
    assert.equal(sem.available, 2)
  })

  test('releases on reject and on a synchronous throw, with the same error', async () => {
    const sem = new Semaphore(1)
    const boom = new Error('boom')
    await assert.rejects(
      sem.use(async () => {
        throw boom
      }),
      (err) => err === boom
    )
    assert.equal(sem.available, 1)
    const sync = new Error('sync')
    await assert.rejects(
      sem.use(() => {
        throw sync
      }),
      (err) => err === sync
    )
    assert.equal(sem.available, 1)
    await assert.rejects(
      sem.use(() => Promise.reject(boom)),
      (err) => err === boom
    )
    assert.equal(sem.available, 1)
  })

  test('the permit goes to the next waiter when fn ends', async () => {
    const sem = new Semaphore(1)
    const order = []
    const runs = [1, 2, 3].map((i) =>
      sem.use(async () => {
        order.push(`start ${i}`)
        assert.equal(sem.available, 0)
        await sleep(2)
        order.push(`end ${i}`)
        if (i === 2) throw new Error('two')
        return i
      })
    )
    const results = await Promise.allSettled(runs)
    assert.deepEqual(order, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3'])
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled']
    )
    assert.equal(sem.available, 1)
  })

  test('rejects with a TypeError for a non-function, taking nothing', async () => {
    const sem = new Semaphore(1)
    for (const bad of [undefined, null, 1, 'fn', {}, Promise.resolve()]) {
      const p = sem.use(bad)
      assert.ok(p instanceof Promise)
      await assert.rejects(p, { name: 'TypeError', message: /`fn`/ })
    }
    assert.equal(sem.available, 1)
    assert.equal(sem.pending, 0)
  })

  test('passes options: priority, timeout, signal', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    let called = false
    await assert.rejects(
      sem.use(
        () => {
          called = true
        },
        { timeout: 10 }
      ),
      TimeoutError
    )
    const reason = new Error('stop')
    await assert.rejects(
      sem.use(
        () => {
          called = true
        },
        { signal: AbortSignal.abort(reason) }
      ),
      (err) => err === reason
    )
    assert.equal(called, false)
    await assert.rejects(
      sem.use(() => {}, { priority: 'x' }),
      { name: 'TypeError', message: /priority/ }
    )
    const order = []
    const low = sem.use(() => order.push('low'))
    const high = sem.use(() => order.push('high'), { priority: 3 })
    sem.release()
    await Promise.all([low, high])
    assert.deepEqual(order, ['high', 'low'])
    assert.equal(sem.available, 1)
  })
})

describe('permits, available, pending', () => {
  test('raising permits grants waiters at once, in order', async () => {
    const sem = new Semaphore(0)
    const order = []
    const all = [1, 2, 3, 4].map((i) => sem.acquire(i === 3 ? 2 : 1).then(() => order.push(i)))
    assert.equal(sem.pending, 4)
    sem.permits = 2
    assert.equal(sem.permits, 2)
    assert.equal(sem.pending, 2)
    assert.equal(sem.available, 0)
    sem.permits = 10
    assert.equal(sem.pending, 0)
    assert.equal(sem.available, 5)
    await Promise.all(all)
    assert.deepEqual(order, [1, 2, 3, 4])
    sem.release(5)
  })

  test('lowering never preempts: available goes negative', async () => {
    const sem = new Semaphore(4)
    await sem.acquire(4)
    sem.permits = 1
    assert.equal(sem.permits, 1)
    assert.equal(sem.available, -3)
    const w = track(sem.acquire())
    assert.equal(sem.pending, 1)
    sem.release(2)
    assert.equal(sem.available, -1)
    await turn()
    assert.equal(w.state, 'pending')
    sem.release(1)
    assert.equal(sem.available, 0)
    await turn()
    assert.equal(w.state, 'pending')
    sem.release(1)
    await turn()
    assert.equal(w.state, 'resolved')
    assert.equal(sem.available, 0)
    sem.release()
    assert.equal(sem.available, 1)
  })

  test('Infinity and back', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    sem.permits = 0 // paused: a big request waits
    const w = track(sem.acquire(1000))
    sem.permits = Infinity
    assert.equal(sem.available, Infinity)
    assert.equal(sem.pending, 0)
    await turn()
    assert.equal(w.state, 'resolved')
    sem.permits = 1000
    assert.equal(sem.available, -1)
    sem.release(1001)
    assert.equal(sem.available, 1000)
    sem.permits = 0
    assert.equal(sem.available, 0)
    assert.equal(sem.tryAcquire(), false)
  })

  test('the setter validates', () => {
    const sem = new Semaphore(1)
    for (const bad of [undefined, null, '2', {}, 2n]) {
      assert.throws(
        () => {
          sem.permits = bad
        },
        { name: 'TypeError', message: /`permits`/ }
      )
    }
    for (const bad of [-1, 1.5, NaN, -Infinity]) {
      assert.throws(
        () => {
          sem.permits = bad
        },
        { name: 'RangeError', message: /`permits`/ }
      )
    }
    assert.equal(sem.permits, 1)
    assert.equal(sem.available, 1)
  })

  test('available and pending are read-only', () => {
    const sem = new Semaphore(1)
    assert.throws(() => {
      sem.available = 5
    }, TypeError)
    assert.throws(() => {
      sem.pending = 5
    }, TypeError)
    assert.equal(sem.available, 1)
    assert.equal(sem.pending, 0)
  })
})

describe('AbortSignal', () => {
  test('pre-aborted: rejects with signal.reason, takes nothing', async () => {
    const sem = new Semaphore(1) // permits free: still rejected
    const reason = new Error('already')
    const p = sem.acquire(1, { signal: AbortSignal.abort(reason) })
    assert.equal(sem.available, 1)
    assert.equal(sem.pending, 0)
    await assert.rejects(p, (err) => err === reason)
    const plain = AbortSignal.abort()
    await assert.rejects(
      sem.acquire(1, { signal: plain }),
      (err) => err === plain.reason && err.name === 'AbortError'
    )
    assert.equal(sem.available, 1)
  })

  test('abort while waiting rejects with the reason and removes the waiter', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    const ac = new AbortController()
    const order = []
    const a = sem.acquire().then(() => {
      order.push('a')
      sem.release()
    })
    const b = sem.acquire(1, { signal: ac.signal })
    const bt = track(b)
    const c = sem.acquire().then(() => {
      order.push('c')
      sem.release()
    })
    assert.equal(sem.pending, 3)
    const reason = new Error('cancelled')
    ac.abort(reason)
    assert.equal(sem.pending, 2) // removed synchronously
    await turn()
    assert.equal(bt.state, 'rejected')
    assert.equal(bt.error, reason)
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0)
    sem.release()
    await Promise.all([a, c])
    assert.deepEqual(order, ['a', 'c'])
    assert.equal(sem.available, 1)
  })

  test('a cancelled head lets smaller waiters behind it through', async () => {
    const sem = new Semaphore(3)
    await sem.acquire(2)
    const ac = new AbortController()
    const big = sem.acquire(3, { signal: ac.signal })
    const small = track(sem.acquire(1))
    assert.equal(sem.pending, 2)
    await turn()
    assert.equal(small.state, 'pending')
    ac.abort('no')
    assert.equal(sem.pending, 0)
    assert.equal(sem.available, 0)
    await assert.rejects(big, (err) => err === 'no')
    assert.equal(small.state, 'resolved')
    sem.release(3)
  })

  test('abort after the grant does nothing', async () => {
    const sem = new Semaphore(1)
    const ac = new AbortController()
    await sem.acquire(1, { signal: ac.signal }) // granted at once
    ac.abort()
    assert.equal(sem.available, 0)

    const ac2 = new AbortController()
    const p = sem.acquire(1, { signal: ac2.signal }) // queued
    sem.release() // granted
    ac2.abort(new Error('late')) // before the grant is observed
    await p
    assert.equal(sem.available, 0)
    assert.equal(sem.pending, 0)
    assert.equal(getEventListeners(ac2.signal, 'abort').length, 0)
    sem.release()
    assert.equal(sem.available, 1)
  })

  test('custom reasons of any type', async () => {
    const sem = new Semaphore(0)
    for (const reason of ['a string', 42, null, { why: 1 }, new TypeError('t'), Symbol.for('s')]) {
      const ac = new AbortController()
      const p = sem.acquire(1, { signal: ac.signal })
      ac.abort(reason)
      await assert.rejects(p, (err) => Object.is(err, reason))
    }
    const ac = new AbortController()
    const p = sem.acquire(1, { signal: ac.signal })
    ac.abort() // undefined: a DOMException AbortError
    await assert.rejects(p, { name: 'AbortError' })
    assert.equal(sem.pending, 0)
  })

  test('one signal for many waiters, and AbortSignal.timeout', async () => {
    const sem = new Semaphore(0)
    const ac = new AbortController()
    const ps = [1, 2, 3].map(() => sem.acquire(1, { signal: ac.signal }))
    assert.equal(sem.pending, 3)
    ac.abort('all')
    assert.equal(sem.pending, 0)
    for (const p of ps) await assert.rejects(p, (err) => err === 'all')
    // AbortSignal.timeout's timer is unref'd: keep the loop alive meanwhile.
    const keep = setTimeout(() => {}, 10000)
    await assert.rejects(sem.acquire(1, { signal: AbortSignal.timeout(10) }), {
      name: 'TimeoutError'
    })
    clearTimeout(keep)
    assert.equal(sem.pending, 0)
  })

  test('signal and timeout together: whichever comes first', async () => {
    const sem = new Semaphore(0)
    const ac = new AbortController()
    const p = sem.acquire(1, { signal: ac.signal, timeout: 10000 })
    ac.abort('first')
    await assert.rejects(p, (err) => err === 'first')
    const ac2 = new AbortController()
    await assert.rejects(sem.acquire(1, { signal: ac2.signal, timeout: 10 }), TimeoutError)
    assert.equal(getEventListeners(ac2.signal, 'abort').length, 0)
    ac2.abort() // nothing to cancel any more
    assert.equal(sem.pending, 0)
  })
})

describe('timeout', () => {
  test('rejects with a TimeoutError and removes the waiter', async () => {
    const sem = new Semaphore(0)
    const start = Date.now()
    const err = await sem.acquire(1, { timeout: 20 }).then(
      () => null,
      (e) => e
    )
    assert.ok(err instanceof TimeoutError)
    assert.ok(err instanceof Error)
    assert.equal(err.name, 'TimeoutError')
    assert.match(err.message, /Timed out waiting for 1 permit/)
    // libuv timers count from the loop's cached time, which may lag a few ms.
    assert.ok(Date.now() - start >= 10, `timed out after ${Date.now() - start} ms`)
    assert.equal(sem.pending, 0)
    const err3 = await sem.acquire(3, { timeout: 10 }).then(
      () => null,
      (e) => e
    )
    assert.match(err3.message, /3 permits/)
  })

  test('timeouts fire in order, around other timers', async () => {
    const sem = new Semaphore(0)
    const events = []
    const a = sem.acquire(1, { timeout: 10 }).catch((e) => events.push(`a ${e.name}`))
    const b = sem.acquire(1, { timeout: 50 }).catch((e) => events.push(`b ${e.name}`))
    assert.equal(sem.pending, 2)
    await sleep(30)
    events.push(`pending ${sem.pending}`)
    await Promise.all([a, b])
    assert.deepEqual(events, ['a TimeoutError', 'pending 1', 'b TimeoutError'])
    assert.equal(sem.pending, 0)
  })

  test('a timed-out head lets smaller waiters behind it through; later waiters are served', async () => {
    const sem = new Semaphore(2)
    await sem.acquire(1)
    const events = []
    const big = sem.acquire(2, { timeout: 15 }).then(
      () => events.push('big'),
      (e) => events.push(`big ${e.name}`)
    )
    const small = sem.acquire(1).then(() => events.push('small'))
    const after = sem.acquire(1).then(() => events.push('after'))
    assert.equal(sem.pending, 3)
    await Promise.all([big, small])
    // Both settled from the timer's callback (a timed acquire settles one
    // microtask after a plain one: their relative order is not the point).
    assert.deepEqual(events.slice().sort(), ['big TimeoutError', 'small'])
    assert.equal(sem.pending, 1)
    sem.release()
    await after
    assert.equal(events[2], 'after')
    sem.release(2)
    assert.equal(sem.available, 2)
  })

  test('a waiter granted before its timeout is not rejected', async () => {
    const sem = new Semaphore(1)
    await sem.acquire()
    const t = track(sem.acquire(1, { timeout: 20 }))
    assert.equal(binding.debugCounts().uvHandles, 1)
    sem.release()
    await sleep(50)
    assert.equal(t.state, 'resolved')
    assert.equal(sem.available, 0)
    assert.equal(binding.debugCounts().uvHandles, 0) // the timer closed at the grant
    sem.release()
  })

  test('timeout 0 means no timeout', async () => {
    const sem = new Semaphore(0)
    const t = track(sem.acquire(1, { timeout: 0 }))
    assert.equal(binding.debugCounts().uvHandles, 0)
    await sleep(20)
    assert.equal(t.state, 'pending')
    sem.permits = 1
    await turn()
    assert.equal(t.state, 'resolved')
    sem.release()
  })

  test('an unreferenced semaphore still times out (it is not collected with its timer)', () => {
    const r = runChild(
      `
      const { Semaphore } = require(${JSON.stringify(LIB)})
      ;(async () => {
        try { await new Semaphore(0).acquire(1, { timeout: 300 }); console.log('granted') }
        catch (e) { console.log('caught ' + e.name) }
      })()
      setInterval(() => { globalThis.gc() }, 5).unref()
      process.on('exit', () => console.log('exit'))
    `,
      ['--expose-gc']
    )
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, 'caught TimeoutError\nexit\n')
  })

  test('timed-out and aborted acquires nobody handles are unhandled rejections', () => {
    const r = runChild(`
      const { Semaphore } = require(${JSON.stringify(LIB)})
      const seen = []
      process.on('unhandledRejection', e => seen.push(e === 'stop' ? 'stop' : e.name))
      const sem = new Semaphore(0)
      sem.acquire(1, { timeout: 10 })
      const ac = new AbortController()
      sem.acquire(1, { signal: ac.signal })
      ac.abort('stop')
      sem.acquire(1, { signal: AbortSignal.abort('stop') })
      setTimeout(() => console.log(seen.sort().join(',')), 50)
    `)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, 'TimeoutError,stop,stop\n')
  })

  test('timeouts do not keep the process alive once settled', () => {
    const r = runChild(`
      const { Semaphore } = require(${JSON.stringify(LIB)})
      const sem = new Semaphore(1)
      sem.tryAcquire()
      const start = Date.now()
      sem.acquire(1, { timeout: 20 }).then(
        () => console.log('granted'),
        e => console.log('caught ' + e.name + ' ' + (e instanceof require(${JSON.stringify(LIB)}).TimeoutError)))
      // Granted, and aborted, long before their (long) timeouts.
      const other = new Semaphore(1)
      other.tryAcquire()
      other.acquire(1, { timeout: 60000 }).then(() => console.log('granted early'))
      other.release()
      const ac = new AbortController()
      other.acquire(1, { timeout: 60000, signal: ac.signal }).catch(e => console.log('aborted ' + e))
      ac.abort('now')
      process.on('exit', () => console.log('exit after ' + (Date.now() - start < 10000 ? 'a moment' : 'too long')))
    `)
    assert.equal(r.signal, null, 'the child had to be killed: a timer kept it alive')
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(r.stdout.trim().split('\n').sort(), [
      'aborted now',
      'caught TimeoutError true',
      'exit after a moment',
      'granted early'
    ])
  })
})

describe('async context', () => {
  test('AsyncLocalStorage is kept across await sem.acquire()', async () => {
    const als = new AsyncLocalStorage()
    const sem = new Semaphore(1)
    await sem.acquire()
    const seen = []
    const waiters = [1, 2, 3].map((id) =>
      als.run({ id }, async () => {
        await sem.acquire()
        seen.push([id, als.getStore().id])
        await sleep(1)
        seen.push([id, als.getStore().id])
        als.run({ id: `releaser of ${id}` }, () => sem.release())
      })
    )
    // Rejected from the timer's callback and from the abort, on a semaphore
    // that never grants.
    const stuck = new Semaphore(0)
    const timedOut = als.run({ id: 'timeout' }, async () => {
      try {
        await stuck.acquire(1, { timeout: 5 })
      } catch {
        return als.getStore().id
      }
    })
    const ac = new AbortController()
    const aborted = als.run({ id: 'abort' }, async () => {
      try {
        await stuck.acquire(1, { signal: ac.signal })
      } catch {
        return als.getStore().id
      }
    })
    const used = als.run({ id: 'use' }, () => sem.use(() => als.getStore().id))
    als.run({ id: 'main' }, () => {
      ac.abort()
      sem.release()
    })
    await Promise.all(waiters)
    assert.deepEqual(seen, [
      [1, 1],
      [1, 1],
      [2, 2],
      [2, 2],
      [3, 3],
      [3, 3]
    ])
    assert.equal(await timedOut, 'timeout')
    assert.equal(await aborted, 'abort')
    assert.equal(await used, 'use')
    assert.equal(sem.available, 1)
  })
})

describe('bad input', () => {
  const sem = new Semaphore(2)
  const counts = () => [sem.permits, sem.available, sem.pending]

  test('acquire: n', () => {
    for (const bad of [null, '1', {}, 1n, true]) {
      assert.throws(() => sem.acquire(bad), { name: 'TypeError', message: /`n`/ })
    }
    for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 32, 1e300]) {
      assert.throws(() => sem.acquire(bad), { name: 'RangeError', message: /`n`/ })
    }
    assert.deepEqual(counts(), [2, 2, 0])
  })

  test('acquire: options', () => {
    for (const bad of [null, 'x', 5, true]) {
      assert.throws(() => sem.acquire(1, bad), { name: 'TypeError', message: /`options`/ })
    }
    for (const bad of ['1', null, {}, true]) {
      assert.throws(() => sem.acquire(1, { priority: bad }), {
        name: 'TypeError',
        message: /`options.priority`/
      })
    }
    for (const bad of [1.5, NaN, Infinity, 2 ** 31, -(2 ** 31) - 1]) {
      assert.throws(() => sem.acquire(1, { priority: bad }), {
        name: 'RangeError',
        message: /`options.priority`/
      })
    }
    for (const bad of [null, {}, 'signal', new EventTarget(), { aborted: true, reason: 1 }]) {
      assert.throws(() => sem.acquire(1, { signal: bad }), {
        name: 'TypeError',
        message: /`options.signal`/
      })
    }
    for (const bad of ['10', null, {}]) {
      assert.throws(() => sem.acquire(1, { timeout: bad }), {
        name: 'TypeError',
        message: /`options.timeout`/
      })
    }
    for (const bad of [-1, NaN, Infinity, 2 ** 32]) {
      assert.throws(() => sem.acquire(1, { timeout: bad }), {
        name: 'RangeError',
        message: /`options.timeout`/
      })
    }
    // Validation comes before a pre-aborted signal is looked at.
    assert.throws(() => sem.acquire(0, { signal: AbortSignal.abort() }), RangeError)
    assert.deepEqual(counts(), [2, 2, 0])
  })

  test('acquire: the edges of the ranges are accepted', async () => {
    await sem.acquire(1, { priority: 2 ** 31 - 1, timeout: 2 ** 32 - 1 })
    await sem.acquire(1, { priority: -(2 ** 31), timeout: 0, signal: undefined })
    sem.release(2)
    await sem.acquire(1, {})
    sem.release()
    assert.deepEqual(counts(), [2, 2, 0])
  })

  test('tryAcquire and release: n', () => {
    for (const fn of [(n) => sem.tryAcquire(n), (n) => sem.release(n)]) {
      for (const bad of [null, '1', {}, 1n]) {
        assert.throws(() => fn(bad), { name: 'TypeError', message: /`n`/ })
      }
      for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 32]) {
        assert.throws(() => fn(bad), { name: 'RangeError', message: /`n`/ })
      }
    }
    assert.deepEqual(counts(), [2, 2, 0])
  })

  test('use: fn and options reject', async () => {
    await assert.rejects(sem.use(42), { name: 'TypeError', message: /`fn`/ })
    await assert.rejects(
      sem.use(() => {}, 'x'),
      { name: 'TypeError', message: /`options`/ }
    )
    await assert.rejects(
      sem.use(() => {}, { timeout: -1 }),
      { name: 'RangeError', message: /`options.timeout`/ }
    )
    assert.deepEqual(counts(), [2, 2, 0])
  })
})

test('100,000 queued acquires are all granted, in order', async () => {
  const N = 100000
  const sem = new Semaphore(1)
  await sem.acquire()
  let next = 0
  let outOfOrder = 0
  const all = new Array(N)
  for (let i = 0; i < N; i++) {
    all[i] = sem.acquire().then(() => {
      if (i !== next) outOfOrder++
      next++
      sem.release()
    })
  }
  assert.equal(sem.pending, N)
  sem.release()
  await Promise.all(all)
  assert.equal(next, N)
  assert.equal(outOfOrder, 0)
  assert.equal(sem.pending, 0)
  assert.equal(sem.available, 1)
})

test('100,000 queued acquires over several priorities and weights', async () => {
  const N = 100000
  const sem = new Semaphore(4)
  await sem.acquire(4)
  const got = []
  const all = new Array(N)
  for (let i = 0; i < N; i++) {
    const priority = i % 3
    const n = 1 + (i % 4)
    all[i] = sem.acquire(n, { priority }).then(() => {
      got.push(i)
      sem.release(n)
    })
  }
  assert.equal(sem.pending, N)
  sem.release(4)
  await Promise.all(all)
  // Priority 2 first, then 1, then 0; FIFO within each.
  const expected = [2, 1, 0].flatMap((p) =>
    Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === p)
  )
  assert.equal(got.length, N)
  assert.deepEqual(got, expected)
  assert.equal(sem.available, 4)
})

test('native counts return to their baseline after 10,000 timeouts and aborts', async () => {
  const base = binding.debugCounts()
  assert.equal(base.waiters, 0)
  assert.equal(base.uvHandles, 0)
  const sem = new Semaphore(1)
  await sem.acquire()
  const controllers = []
  const all = []
  const settle = (p) =>
    p.then(
      () => ({ status: 'fulfilled' }),
      (reason) => ({ status: 'rejected', reason })
    )
  for (let i = 0; i < 10000; i++) {
    const kind = i % 4
    if (kind === 0) {
      all.push(settle(sem.acquire(1, { timeout: 5 + (i % 20) })))
    } else if (kind === 1) {
      const ac = new AbortController()
      controllers.push(ac)
      all.push(settle(sem.acquire(1, { signal: ac.signal })))
    } else if (kind === 2) {
      const ac = new AbortController()
      controllers.push(ac)
      all.push(settle(sem.acquire(1, { signal: ac.signal, timeout: 60000 })))
    } else {
      all.push(settle(sem.acquire(1, { timeout: 60000 }).then(() => sem.release())))
    }
  }
  const mid = binding.debugCounts()
  assert.equal(mid.waiters, 10000)
  assert.equal(mid.uvHandles, 7500)
  assert.equal(sem.pending, 10000)
  await sleep(30) // the short timeouts fire
  assert.equal(sem.pending, 7500)
  for (const ac of controllers) ac.abort()
  assert.equal(sem.pending, 2500)
  sem.release() // the rest are granted one after another
  const results = await Promise.all(all)
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2500)
  assert.equal(
    results.filter((r) => r.status === 'rejected' && r.reason instanceof TimeoutError).length,
    2500
  )
  assert.equal(
    results.filter((r) => r.status === 'rejected' && r.reason.name === 'AbortError').length,
    5000
  )
  assert.equal(sem.available, 1)
  await turn()
  const after = binding.debugCounts()
  assert.equal(after.waiters, base.waiters)
  assert.equal(after.uvHandles, base.uvHandles)
})

test('the raw binding answers garbage with TypeError/RangeError and never crashes', () => {
  const r = runChild(
    `
    const assert = require('node:assert/strict')
    const { binding, scratch } = require(${JSON.stringify(BINDING)})
    const JUNK = ['x', '', {}, [], null, true, NaN, -1, 0.5, 1.5, 2 ** 32, 2 ** 53, 1e300, Infinity,
      -Infinity, -0, Symbol('s'), 1n, () => 1, new Date(0)]
    let thrown = 0
    const attempt = (label, fn) => {
      try { fn() } catch (e) {
        if (!(e instanceof TypeError || e instanceof RangeError)) {
          console.error(label + ': ' + (e && e.constructor && e.constructor.name) + ': ' + (e && e.message))
          process.exit(2)
        }
        thrown++
        return
      }
      return 'returned'
    }
    const mustThrow = (label, fn) => {
      if (attempt(label, fn) === 'returned') { console.error(label + ': did not throw'); process.exit(3) }
    }

    // binding.gate
    for (const v of ['x', -1, NaN, 1.5, -Infinity, {}, null, undefined, true, Symbol('s'), 1n]) mustThrow('gate(' + String(v) + ')', () => binding.gate(v))
    mustThrow('gate()', () => binding.gate())
    mustThrow('gate(1, 5)', () => binding.gate(1, 5))
    mustThrow('gate(1, "")', () => binding.gate(1, ''))
    mustThrow('gate(1, long)', () => binding.gate(1, 'x'.repeat(5000)))
    mustThrow('setup("x")', () => binding.setup('x'))

    const [take, release, ctl] = binding.gate(2)
    const [take2, , ctl2] = binding.gate(0)

    // take(value, n, priority, timeout): value may be anything (it is what
    // the promise resolves with when it is a number).
    const [takeV, , ctlV] = binding.gate(0)
    for (const v of JUNK) takeV(v).catch(() => {})
    assert.equal(ctlV(1), JUNK.length)
    ctlV(5, 'cleared')
    for (const v of JUNK) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffffffff) continue
      mustThrow('take n ' + String(v), () => take(undefined, v))
    }
    for (const v of JUNK) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) continue
      mustThrow('take priority ' + String(v), () => take2(undefined, 1, v))
    }
    for (const v of ['x', {}, null, true, NaN, -1, 2 ** 53, 1e300, Infinity, -Infinity, Symbol('s'), 1n]) {
      mustThrow('take timeout ' + String(v), () => take2(undefined, 1, 0, v))
    }

    // release(n, maxGrants)
    for (const v of JUNK) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 2) continue
      mustThrow('release n ' + String(v), () => release(v))
    }
    for (const v of JUNK) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffffffff) continue
      mustThrow('release maxGrants ' + String(v), () => release(1, v))
    }
    mustThrow('release more than held', () => release(3))

    // ctl(op, a, b)
    mustThrow('ctl()', () => ctl())
    for (const v of [...JUNK, undefined, 10, 99, 2 ** 31, 2 ** 32 + 1]) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 8) continue
      mustThrow('ctl op ' + String(v), () => ctl(v))
    }
    // SET_PERMITS (3), TRY_TAKE (6), CANCEL (7) with bad operands
    for (const v of [undefined, 'x', {}, null, NaN, -1, 1.5, -Infinity, Symbol('s'), 1n]) {
      mustThrow('set permits ' + String(v), () => ctl(3, v))
    }
    mustThrow('set permits, missing', () => ctl(3))
    for (const v of ['x', {}, null, NaN, 0, -1, 1.5, 2 ** 32, Infinity]) mustThrow('tryTake ' + String(v), () => ctl(6, v))
    mustThrow('cancel, missing', () => ctl(7))
    mustThrow('cancel, no seq', () => ctl(7, 0))
    mustThrow('cancel, no reason', () => ctl(7, 0, 1))
    for (const v of ['x', {}, null, undefined, NaN, -1, 0.5, 2 ** 32, 2 ** 53, 1e300, Infinity, Symbol('s'), 1n]) {
      mustThrow('cancel index ' + String(v), () => ctl(7, v, 1, 'reason'))
    }
    for (const v of ['x', {}, null, undefined, NaN, -1, 0, 0.5, 2 ** 53, 1e300, Infinity, Symbol('s'), 1n]) {
      mustThrow('cancel seq ' + String(v), () => ctl(7, 0, v, 'reason'))
    }

    // Stale and foreign tokens are not errors: they cancel nothing.
    const p = take2(7, 1, 0, 0)
    const [index, seq] = [scratch[0], scratch[1]]
    p.then(v => { console.error('the cancelled waiter resolved with ' + v); process.exit(4) }, () => {})
    assert.equal(ctl2(1), 1) // pending
    assert.equal(ctl2(7, index, seq + 1, 'wrong sequence'), false)
    assert.equal(ctl2(7, index, seq - 1, 'older sequence'), false)
    assert.equal(ctl2(7, index + 1, seq, 'unknown index'), false)
    assert.equal(ctl2(7, 2 ** 32 - 1, 2 ** 53 - 1, 'huge'), false)
    assert.equal(ctl(7, index, seq, 'other gate'), false)
    assert.equal(ctl2(1), 1)
    assert.equal(ctl2(7, index, seq, 'right'), true)
    assert.equal(ctl2(7, index, seq, 'again'), false)
    assert.equal(ctl2(1), 0)

    // The gates still work.
    ctl(3, 5)
    assert.equal(ctl(2), 5)
    assert.equal(ctl(6, 1), true)
    release(1)

    // Gates dropped with waiters queued are cleaned up (a waiter with a
    // timer keeps its gate until the timer has rejected it: see
    // test/gate-regressions.test.js).
    for (let i = 0; i < 100; i++) {
      const [t] = binding.gate(0)
      t(undefined, 1, 0, 0)
    }
    setTimeout(() => {
      if (globalThis.gc) { globalThis.gc(); globalThis.gc() }
      setTimeout(() => {
        const c = binding.debugCounts()
        console.log(thrown > 100 ? 'threw ' + (thrown > 100) : 'threw too few: ' + thrown)
        console.log('gates ' + (c.gates < 50) + ', waiters ' + c.waiters + ', handles ' + c.uvHandles)
        console.log('ok')
      }, 20)
    }, 10)
  `,
    ['--expose-gc']
  )
  assert.equal(r.signal, null, r.stderr)
  assert.equal(r.status, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.equal(lines.at(-1), 'ok', r.stdout + r.stderr)
  assert.deepEqual(lines, ['threw true', 'gates true, waiters 0, handles 0', 'ok'])
})

test('raw binding: fleet gates answer garbage with TypeError/RangeError, keep 0 permits, and grant only by GRANT_TO', () => {
  const r = runChild(`
    const assert = require('node:assert/strict')
    const { binding, scratch, OP } = require(${JSON.stringify(BINDING)})
    const JUNK = ['x', '', {}, [], null, true, NaN, -1, 0.5, 1.5, 2 ** 53, 1e300, Infinity,
      -Infinity, Symbol('s'), 1n, () => 1]
    const mustThrow = (label, fn) => {
      try { fn() } catch (e) {
        if (e instanceof TypeError || e instanceof RangeError) return
        console.error(label + ': ' + (e && e.constructor && e.constructor.name) + ': ' + (e && e.message))
        process.exit(2)
      }
      console.error(label + ': did not throw')
      process.exit(3)
    }
    mustThrow('gate(1, name, fleet)', () => binding.gate(1, 'f', 'fleet'))
    mustThrow('gate(0, undefined, fleet)', () => binding.gate(0, undefined, 'fleet'))
    mustThrow('gate(0, "", fleet)', () => binding.gate(0, '', 'fleet'))
    mustThrow('gate(0, name, "fleets")', () => binding.gate(0, 'f', 'fleets'))
    mustThrow('gate(0, name, "flee")', () => binding.gate(0, 'f', 'flee'))
    const [take, release, ctl] = binding.gate(0, 'f', 'fleet')
    const [, , other] = binding.gate(1)
    for (const op of [OP.GRANT_TO, OP.LEAD, OP.STAKES, OP.STAKE_ID, OP.EPOCH]) {
      mustThrow('not a fleet gate: ' + op, () => other(op, 1, 1, 1))
    }
    for (const v of JUNK) {
      if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < 2 ** 53)) {
        mustThrow('grantTo stakeId ' + String(v), () => ctl(OP.GRANT_TO, v, 1, 1))
        mustThrow('grantTo seq ' + String(v), () => ctl(OP.GRANT_TO, 1, v, 1))
      }
      if (!(typeof v === 'number' && Number.isFinite(v))) {
        mustThrow('grantTo value ' + String(v), () => ctl(OP.GRANT_TO, 1, 1, v))
      }
      if (typeof v !== 'boolean') {
        mustThrow('lead ' + String(v), () => ctl(OP.LEAD, v))
        mustThrow('epoch ' + String(v), () => ctl(OP.EPOCH, v))
      }
    }
    // Its permits are Redis's: none can be set or taken here.
    mustThrow('set permits', () => ctl(OP.SET_PERMITS, 5))
    mustThrow('try take', () => ctl(OP.TRY_TAKE, 1))
    mustThrow('release more than held', () => release(1))
    assert.equal(ctl(OP.PERMITS), 0)
    // A waiter queues, and is granted by its stake and sequence number only.
    const id = ctl(OP.STAKE_ID)
    let got
    const p = take(undefined, 2, 0, 0).then((v) => (got = v))
    const seq = scratch[1]
    assert.equal(ctl(OP.PENDING), 1)
    assert.equal(ctl(OP.GRANT_TO, id + 1, seq, 7), false)
    assert.equal(ctl(OP.GRANT_TO, id, seq + 1, 7), false)
    assert.equal(ctl(OP.GRANT_TO, id, seq, 7), true)
    assert.equal(ctl(OP.GRANT_TO, id, seq, 8), false)
    p.then(() => {
      assert.equal(got, 7)
      assert.equal(ctl(OP.ACTIVE), 2)
      release(2)
      assert.equal(ctl(OP.ACTIVE), 0)
      const e = ctl(OP.EPOCH)
      assert.equal(ctl(OP.EPOCH, true), e + 1)
      assert.equal(ctl(OP.LEAD, true), true)
      assert.equal(ctl(OP.LEAD, false), false)
      console.log('ok')
    })
  `)
  assert.equal(r.signal, null, r.stderr)
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'ok', r.stdout + r.stderr)
})

test('raw binding: a timeout still rejects when TimeoutError cannot be built; release(n, undefined) grants without limit', () => {
  const { spawnSync } = require('node:child_process')
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      `
    const { binding } = require(${JSON.stringify(require.resolve('../lib/binding.js'))})
    const [take, release] = binding.gate(2)
    take(); take()
    const waiting = [take(), take()]
    release(2, undefined) // maxGrants undefined: no limit, both granted
    Promise.all(waiting).then(() => {
      const [t] = binding.gate(0)
      binding.setup(() => { throw new Error('not a constructor') })
      return t(undefined, 1, 0, 10)
    }).then(() => console.log('resolved'), e => console.log('rejected', e.name, e.message))
  `
    ],
    { encoding: 'utf8', timeout: 10000 }
  )
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'rejected Error Timed out waiting for 1 permit')
})
