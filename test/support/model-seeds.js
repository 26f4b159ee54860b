'use strict'
// Seeds of the model-based tests (model-gate, model-pool).
//
// `npm test`, and so CI, runs fixed seeds only: a run is reproducible, and
// CI fails because of a change, never because a fresh random seed met an old
// bug. Exploring is a separate, deliberate run: SLUICE_MODEL_SEED adds one
// seed, a number (to replay a failure) or `random`; `npm run test:explore`
// runs both model tests over many random seeds and prints any that fail.

/**
 * @param {number[]} fixed
 * @returns {{ seeds: number[], extra: number | undefined }}
 */
function modelSeeds(fixed) {
  const env = process.env.SLUICE_MODEL_SEED
  let extra
  if (env === 'random') {
    extra = (Date.now() ^ (Math.random() * 0x7fffffff)) | 0
  } else if (env !== undefined && env !== '') {
    extra = Number(env)
    if (!Number.isInteger(extra))
      throw new RangeError(`SLUICE_MODEL_SEED must be an integer or "random", got ${env}`)
  }
  return { seeds: extra === undefined ? [...fixed] : [...fixed, extra], extra }
}

module.exports = { modelSeeds }
