'use strict'
// Loads the addon (a prebuild, or build/Release) and wires the per-env state.
const path = require('node:path')
const { TimeoutError } = require('./errors.js')

// SLUICE_ADDON_PATH, when set, names the .node file to load instead: the
// robustness checks point it at an ASan/UBSan build (scripts/sanitize.js).
const binding = process.env.SLUICE_ADDON_PATH
  ? require(path.resolve(process.env.SLUICE_ADDON_PATH))
  : require('node-gyp-build')(path.join(__dirname, '..'))

/** Out-values of native calls (a waiter's cancel token), one per thread. */
const scratch = binding.setup(TimeoutError)

// Operations of a gate's `ctl` (src/binding.c).
const OP = Object.freeze({
  ACTIVE: 0,
  PENDING: 1,
  PERMITS: 2,
  SET_PERMITS: 3,
  DISPATCH: 4,
  CLEAR: 5,
  TRY_TAKE: 6,
  CANCEL: 7,
  AVAILABLE: 8,
  HELD: 9
})

module.exports = { binding, scratch, OP }
