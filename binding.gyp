{
  # SLUICE_SANITIZE=1 in the environment builds with AddressSanitizer and
  # UBSan, for scripts/sanitize.js only (-O1 in cflags_c comes after
  # node-gyp's -O3, for exact stack traces).
  # SLUICE_WERROR=1 (.ci/run sets it) makes every compiler warning an error:
  # CI builds that way; users' builds do not (a newer compiler's new warning
  # must not break an install).
  # Plain environment variables read by gyp at configure time, not npm
  # config: npm warns that unknown npm_config_* settings will stop working.
  "variables": {
    "sluice_sanitize%": "<!(node -p \"process.env.SLUICE_SANITIZE === '1'\")",
    "sluice_werror%": "<!(node -p \"process.env.SLUICE_WERROR === '1'\")"
  },
  "targets": [
    {
      "target_name": "sluice",
      "sources": [
        "src/core/alloc.c",
        "src/core/gate.c",
        "src/core/hgate.c",
        "src/core/pool.c",
        "src/core/registry.c",
        "src/napi/util.c",
        "src/napi/env.c",
        "src/napi/gate.c",
        "src/napi/pool.c",
        "src/napi/module.c"
      ],
      "include_dirs": ["src"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"]
      },
      "configurations": {
        "Release": {
          "defines": ["NDEBUG"]
        }
      },
      "conditions": [
        ["sluice_werror=='true'", {
          "cflags_c": ["-Werror"],
          "xcode_settings": { "GCC_TREAT_WARNINGS_AS_ERRORS": "YES" }
        }],
        ["sluice_sanitize=='true'", {
          "cflags": ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"],
          "cflags_c": ["-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
