'use strict'

/**
 * Raised when a wait times out: a semaphore acquire with `timeout`, a pool
 * acquire past `acquireTimeoutMillis`. Like generic-pool's, it is recognised
 * by `err.name === 'TimeoutError'`; it is also exported for `instanceof`.
 */
class TimeoutError extends Error {
  constructor(message) {
    super(message)
    this.name = 'TimeoutError'
  }
}

module.exports = { TimeoutError }
