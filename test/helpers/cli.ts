import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../../lib/native/addon.js';

export const ROOT = packageRoot();
/** ../shared/data beside the checkout (the paper's datasets), when present. */
export const SHARED_DATA = resolve(ROOT, '..', 'shared', 'data');
export const HAVE_SHARED_DATA = existsSync(SHARED_DATA);

/** Runs the built CLI (dist/) and returns its status and output. */
export function runCli(args: string[], env: Record<string, string> = {}) {
  const main = join(ROOT, 'dist', 'lib', 'cli', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const r = spawnSync(process.execPath, ['--no-warnings', main, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
