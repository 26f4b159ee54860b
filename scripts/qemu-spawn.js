'use strict'
// Preloaded (--require) into an arm64 Node running under qemu-user by
// scripts/check-prebuilds.js. Without binfmt_misc (a container has none), the
// kernel cannot exec an arm64 binary, so a test that spawns process.execPath
// would fail; run such children through qemu too. qemu-user passes execve
// through to the host, where qemu-aarch64 itself is a native binary.
// NODE_OPTIONS carries this preload into those children.
const cp = require('node:child_process')

const qemu = process.env.SLUICE_QEMU
const sysroot = process.env.SLUICE_QEMU_SYSROOT

if (qemu) {
  for (const name of ['spawn', 'spawnSync', 'execFile', 'execFileSync']) {
    const original = cp[name]
    cp[name] = function (file, args, ...rest) {
      if (file !== process.execPath) return original.call(this, file, args, ...rest)
      if (!Array.isArray(args)) {
        if (args !== undefined) rest.unshift(args)
        args = []
      }
      return original.call(this, qemu, ['-L', sysroot, file, ...args], ...rest)
    }
  }
}
