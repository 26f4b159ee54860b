'use strict'
// The JS side of the native pool's window (src/napi/pool.c), shared by
// sluice/generic-pool and sluice/pg-pool: opening a pool with its views on
// the shared buffer, and reading the events the core leaves there. What an
// event means is each pool's own (its #onEvent's switch).
const { binding, protocol } = require('./binding.js')

const { poolCtls: CTL, poolCounts: C, poolHeader: H } = protocol

// setTimeout's range: both pools' timers take any delay outside it as 1 ms.
const TIMEOUT_MAX = 2 ** 31 - 1

// A delay as setTimeout reads it: anything not in [1, 2^31-1] is 1 ms.
function nodeDelay(ms) {
  ms = Number(ms)
  return ms >= 1 && ms <= TIMEOUT_MAX ? ms : 1
}

// A native pool of the config (a Float64Array, poolConfig), calling `pump`
// from its timers: [acquire, release, ctl, counts, hdr, win], its three
// functions and its views on the buffer shared with C: the counts
// (poolCounts), the window's header (poolHeader) and the window itself
// (events of three int32: the type, then two arguments).
function openPool(config, pump) {
  const [acquire, release, ctl, buffer] = binding.pool(config, pump)
  const counts = new Float64Array(buffer, 0, C.NCOUNTS)
  const hdr = new Int32Array(buffer, C.NCOUNTS * 8, H.SIZE)
  const win = new Int32Array(buffer, C.NCOUNTS * 8 + H.SIZE * 4)
  return [acquire, release, ctl, counts, hdr, win]
}

// Whether the core has events not read yet (in the window, or more to come
// once it is refilled).
function hasEvents(hdr) {
  return hdr[H.LEN] !== hdr[H.POS] || hdr[H.MORE] !== 0
}

// Hands the core's events to `handle(type, a, b)` in order, asking the core
// (`ctl`, the pool's control function) to refill the window when it is used
// up and more are to come. The cursor lives in shared memory and moves past
// an event before it is handled, so a handler that re-enters the pool and
// reads again continues from the same place. A handler that throws ends
// the reading there (the events after its own wait for the next reading):
// both pools' handlers catch the errors of user code themselves.
function readEvents(hdr, win, ctl, handle) {
  for (;;) {
    const i = hdr[H.POS]
    if (i === hdr[H.LEN]) {
      if (hdr[H.MORE] === 0) return
      ctl(CTL.REFILL)
      continue
    }
    hdr[H.POS] = i + 1
    const o = 3 * i
    handle(win[o], win[o + 1], win[o + 2])
  }
}

// An error of user code that no caller can be handed, thrown out of a tick
// of its own (an uncaught exception), like an error in a promise reaction:
// the pool's own bookkeeping goes on.
function rethrowAsync(err) {
  process.nextTick(() => {
    throw err
  })
}

module.exports = { nodeDelay, openPool, hasEvents, readEvents, rethrowAsync }
