# Opt-in CPU-only build with node-gyp (`npm run build:gyp`), for machines without CMake.
# The supported build is cmake-js (`npm run build:native`: CUDA when nvcc is found, OpenBLAS when
# present, C++ tests). package.json has "gypfile": false, so npm never runs node-gyp on its own.
# Output: build/Release/tokenrec.node, where lib/native/addon.ts loads it from.
{
  "targets": [
    {
      "target_name": "tokenrec",
      "sources": [
        "<!@(node -p \"['native/src','native/src/cpu','native/binding'].flatMap(d=>require('fs').readdirSync(d).filter(f=>f.endsWith('.cc')).map(f=>d+'/'+f)).join(' ')\")"
      ],
      "include_dirs": [
        "native/include",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++1y", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=native"],
      "libraries": ["-lpthread"]
    }
  ]
}
