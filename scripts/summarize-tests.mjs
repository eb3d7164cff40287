// Prints the closing line "N passed, N failed, N skipped" for ctest (JUnit XML) and vitest
// (JSON reporter) together. Exits 1 when a result file is missing or anything failed.
import { existsSync, readFileSync } from 'node:fs';

const [ctestXml, vitestJson] = process.argv.slice(2);
let passed = 0, failed = 0, skipped = 0, problems = [];

if (existsSync(ctestXml)) {
  const xml = readFileSync(ctestXml, 'utf8');
  for (const m of xml.matchAll(/<testcase\b[^>]*\bstatus="([^"]*)"/g)) {
    if (m[1] === 'run') passed++;
    else if (m[1] === 'fail') failed++;
    else skipped++; // "notrun" / "disabled": GPU tests on a machine without a GPU
  }
} else problems.push('ctest wrote no results');

if (existsSync(vitestJson)) {
  const v = JSON.parse(readFileSync(vitestJson, 'utf8'));
  passed += v.numPassedTests ?? 0;
  failed += (v.numFailedTests ?? 0);
  skipped += (v.numPendingTests ?? 0) + (v.numTodoTests ?? 0);
  // A test file that failed to load has no tests but fails the run.
  failed += (v.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).length === 0).length;
} else problems.push('vitest wrote no results');

for (const p of problems) console.log(`tokenrec: ${p}`);
console.log(`${passed} passed, ${failed + problems.length} failed, ${skipped} skipped`);
process.exit(failed + problems.length > 0 ? 1 : 0);
