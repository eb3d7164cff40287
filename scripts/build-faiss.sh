#!/usr/bin/env bash
# Builds faiss-node's native addon (the optional faiss backend of lib/retrieval/faiss.ts) against
# Debian's faiss, without running faiss-node's own install script (which downloads from GitHub).
#
#   needs: npm ci done (faiss-node is an optional dependency, its install script denied), and
#          apt-get install -y libfaiss-dev libopenblas-dev   (Debian 12: faiss 1.7.3)
#   makes: node_modules/faiss-node/build/Release/faiss-node.node, where faiss-node's loader
#          (the `bindings` package) looks for it.
#
# faiss-node 0.5.1 expects faiss >= 1.7.4, whose namespace-level `faiss::idx_t` Debian's 1.7.3
# lacks (it has faiss::Index::idx_t); a one-line compat header, force-included, supplies it.
# Exits non-zero with a message saying what is missing; nothing else in tokenrec needs faiss.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() {
  echo "build-faiss: $*" >&2
  exit 1
}

pkg="$root/node_modules/faiss-node"
[ -f "$pkg/package.json" ] || die "node_modules/faiss-node is not installed (run \`npm ci\` first; it is an optional dependency)"
version=$(node -p "require('$pkg/package.json').version")
[ "$version" = "0.5.1" ] || echo "build-faiss: warning: faiss-node $version found; this script was written for 0.5.1" >&2
[ -f "$pkg/src/faiss.cc" ] || die "$pkg/src/faiss.cc is missing"

faiss_cfg=""
for d in /usr/lib/x86_64-linux-gnu/cmake/faiss /usr/lib/aarch64-linux-gnu/cmake/faiss /usr/lib/cmake/faiss /usr/local/lib/cmake/faiss; do
  if [ -f "$d/faiss-config.cmake" ]; then faiss_cfg=$d; break; fi
done
[ -n "$faiss_cfg" ] && [ -f /usr/include/faiss/IndexFlat.h ] ||
  die "Debian's faiss is not installed: run \`sudo apt-get install -y libfaiss-dev libopenblas-dev\` and retry"

# node-addon-api: faiss-node's own copy (it was written against 6.x), else the project's.
napi_inc=""
for d in "$pkg/node_modules/node-addon-api" "$root/node_modules/node-addon-api"; do
  if [ -f "$d/napi.h" ]; then napi_inc=$d; break; fi
done
[ -n "$napi_inc" ] || die "node-addon-api headers not found (run \`npm ci\`)"

# Our own small CMake project next to faiss-node's sources (faiss-node's CMakeLists.txt builds
# faiss from a GitHub checkout, which we do not have).
proj="$pkg/tokenrec-build"
mkdir -p "$proj"
cat > "$proj/faiss_compat.h" <<'EOF'
// Force-included when compiling faiss-node against faiss 1.7.3 (Debian 12), which lacks the
// namespace-level idx_t that faiss >= 1.7.4 declares.
#pragma once
#include <cstdint>
namespace faiss { using idx_t = int64_t; }
EOF
cat > "$proj/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.17)
project(faiss_node_system LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE Release)
endif()
find_package(faiss REQUIRED CONFIG PATHS "$faiss_cfg" NO_DEFAULT_PATH)
find_package(OpenMP REQUIRED)
add_library(faiss_node SHARED "$pkg/src/faiss.cc" \${CMAKE_JS_SRC})
set_target_properties(faiss_node PROPERTIES PREFIX "" SUFFIX ".node" OUTPUT_NAME "faiss-node")
target_include_directories(faiss_node PRIVATE \${CMAKE_JS_INC} "$napi_inc")
target_compile_definitions(faiss_node PRIVATE NAPI_VERSION=8 NAPI_CPP_EXCEPTIONS)
target_compile_options(faiss_node PRIVATE -include "$proj/faiss_compat.h" -O2)
target_link_libraries(faiss_node PRIVATE faiss OpenMP::OpenMP_CXX \${CMAKE_JS_LIB})
EOF

echo "build-faiss: compiling faiss-node $version against the system faiss ($faiss_cfg)"
npx --no-install cmake-js compile --directory "$proj" --out "$pkg/build" -G Ninja >"$proj/build.log" 2>&1 ||
  { tail -40 "$proj/build.log" >&2; die "compilation failed (full log: $proj/build.log)"; }
out="$pkg/build/Release/faiss-node.node"
[ -f "$out" ] || die "the build finished but $out is missing (log: $proj/build.log)"

# Smoke test: load it through faiss-node's own entry point and search a 2-vector index.
node -e "
const f = require('$pkg');
const ix = new f.IndexFlatIP(2);
ix.add([1, 0, 0, 1]);
const r = ix.search([0.2, 0.9], 1);
if (r.labels[0] !== 1) { console.error('build-faiss: smoke test failed', r); process.exit(1); }
" || die "the addon was built but does not work"
echo "build-faiss: ok ($out)"
