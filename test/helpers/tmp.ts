import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** A temporary folder removed after the test file; `file(name, body)` writes into it. */
export function tempDir(prefix = 'tokenrec-test-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    file(name: string, body: string | Uint8Array): string {
      const p = join(dir, name);
      writeFileSync(p, body);
      return p;
    },
  };
}
