#!/usr/bin/env bash
# The project's test command (README: `npm test`): the C++ tests (ctest) and the TypeScript tests
# (vitest), then one closing line "N passed, N failed[, N skipped]" counting both together.
# Exits non-zero when anything failed. Expects `npm run build` to have run.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ ! -f build/Release/tokenrec.node ]; then
  echo "tokenrec: build/Release/tokenrec.node is missing: run \`npm run build\` first" >&2
  exit 2
fi

echo "== C++ tests (ctest) =="
(cd build && ctest --output-on-failure --output-junit "$out/ctest.xml")
ctest_rc=$?

echo "== TypeScript tests (vitest) =="
npx vitest run --reporter=default --reporter=json --outputFile.json="$out/vitest.json" "$@"
vitest_rc=$?

node scripts/summarize-tests.mjs "$out/ctest.xml" "$out/vitest.json"
sum_rc=$?
if [ $ctest_rc -ne 0 ] || [ $vitest_rc -ne 0 ] || [ $sum_rc -ne 0 ]; then exit 1; fi
exit 0
