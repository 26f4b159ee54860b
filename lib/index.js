'use strict'
const pLimit = require('./p-limit.js')
const { Semaphore } = require('./semaphore.js')
const { TimeoutError } = require('./errors.js')
const { createPool, Pool } = require('./generic-pool.js')

module.exports = {
  pLimit,
  limitFunction: pLimit.limitFunction,
  Semaphore,
  TimeoutError,
  createPool,
  Pool,
  RedisUnreachableError: require('./redis/errors.js').RedisUnreachableError
}
