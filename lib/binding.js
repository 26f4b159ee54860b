'use strict'
// Loads the addon (a prebuild, or build/Release) and wires the per-env state.
const path = require('node:path')
const { TimeoutError } = require('./errors.js')

// SLUICE_ADDON_PATH, when set, names the .node file to load instead: the
// robustness checks point it at an ASan/UBSan build (scripts/sanitize.js).
const file = process.env.SLUICE_ADDON_PATH
  ? path.resolve(process.env.SLUICE_ADDON_PATH)
  : require('node-gyp-build').path(path.join(__dirname, '..'))
const binding = require(file)

/** Out-values of native calls (a waiter's cancel token), one per thread.
 * Giving the addon its own path lets it pin itself in memory, so named
 * gates outlive the workers that load and unload it. */
const scratch = binding.setup(TimeoutError, file)

// The protocol with the bindings (op codes, event codes, offsets, limits),
// exported by the addon from src/napi/protocol.h: written once, in C.
const { protocol } = binding

module.exports = { binding, scratch, protocol, OP: protocol.gateOps }
