'use strict'

/** An acquire timed out while Redis could not be reached (its `cause`: the client's last error). */
class RedisUnreachableError extends Error {
  constructor(message, cause) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'RedisUnreachableError'
  }
}

module.exports = { RedisUnreachableError }
