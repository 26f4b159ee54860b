{
  "targets": [
    {
      "target_name": "sluice",
      "sources": [
        "src/gate.c",
        "src/registry.c",
        "src/binding.c",
        "src/pool.c",
        "src/binding_pool.c"
      ],
      "include_dirs": ["src"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
      },
      "configurations": {
        "Release": {
          "defines": ["NDEBUG"]
        },
        "Debug": {
          "defines": ["SLUICE_DEBUG"]
        }
      },
      "conditions": [
        ["OS=='linux'", { "libraries": ["-ldl"] }]
      ]
    }
  ]
}
