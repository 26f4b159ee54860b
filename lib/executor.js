'use strict'
// A promise's resolving functions without a closure per promise:
// `new P(executor)` leaves them in `captured`, and the caller takes them and
// clears it at once (so that nothing keeps them alive by accident).
const captured = { resolve: undefined, reject: undefined }

function executor(resolve, reject) {
  captured.resolve = resolve
  captured.reject = reject
}

module.exports = { executor, captured }
