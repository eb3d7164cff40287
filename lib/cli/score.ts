// `tokenrec score <dir> --out results.jsonl`: top-k for every user of the model, one JSON line per
// user ({ user, items: [{ id, index, score }] }), streamed with bounded memory into a temporary
// file that replaces --out only when complete (a killed run leaves no half-written output).
import { createWriteStream, fsyncSync, mkdirSync, openSync, closeSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { once } from 'node:events';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { Recommender } from '../serve/recommender.js';
import { addRecommenderOptions, positiveInt, recommenderOptions, type ServeCliOptions } from './serve-options.js';

interface ScoreCliOptions extends ServeCliOptions {
  out: string;
  k: number;
  progress: boolean;
  json?: boolean;
}

/** Writes every user's recommendations as JSON lines to `out` atomically; returns the count and rate. */
export async function scoreToFile(rec: Recommender, out: string, o: { k: number; batchSize?: number; onProgress?: (done: number) => void; signal?: AbortSignal }): Promise<{ users: number; seconds: number }> {
  const dir = dirname(out);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(out)}.${process.pid}.tmp`);
  const stream = createWriteStream(tmp, { encoding: 'utf8' });
  const t0 = performance.now();
  let n = 0;
  try {
    for await (const r of rec.scoreAll(undefined, { k: o.k, batchSize: o.batchSize })) {
      if (o.signal?.aborted) throw new Error('interrupted; the output file was not written');
      if (!stream.write(JSON.stringify(r) + '\n')) await once(stream, 'drain');
      n++;
      if (n % 256 === 0) o.onProgress?.(n);
    }
    o.onProgress?.(n);
    stream.end();
    await once(stream, 'finish');
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, out);
  } catch (e) {
    stream.destroy();
    rmSync(tmp, { force: true });
    throw e;
  }
  return { users: n, seconds: (performance.now() - t0) / 1000 };
}

export function registerScore(program: Command): void {
  const cmd = program
    .command('score <dir>')
    .description('top-k items for every user of the model directory, as JSON lines')
    .requiredOption('--out <file>', 'output file (JSON lines; written atomically)')
    .option('-k, --k <n>', 'items per user', positiveInt('-k'), 20)
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print a JSON summary');
  addRecommenderOptions(cmd).action(async (dir: string, o: ScoreCliOptions) => {
    const rec = await Recommender.load(dir, recommenderOptions(o, false));
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once('SIGINT', onSigint);
    const bar = o.progress && !o.json && process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'score |{bar}| {value}/{total} users  {eta_formatted} left', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic) : undefined;
    bar?.start(rec.numUsers, 0);
    try {
      const r = await scoreToFile(rec, o.out, { k: o.k, batchSize: o.batchSize, signal: ac.signal, onProgress: (d) => bar?.update(d) });
      bar?.stop();
      const info = rec.info();
      const summary = { out: o.out, users: r.users, seconds: r.seconds, usersPerSecond: r.users / r.seconds, scoring: info.scoring, onnx: info.onnx.provider, topk: info.topkBackend };
      if (o.json) console.log(JSON.stringify(summary));
      else console.log(`${r.users} users scored in ${r.seconds.toFixed(1)} s (${summary.usersPerSecond.toFixed(0)} users/s, ${info.scoring} scoring, ONNX ${info.onnx.provider}, top-K ${info.topkBackend}) -> ${o.out}`);
    } finally {
      bar?.stop();
      process.removeListener('SIGINT', onSigint);
      await rec.dispose();
    }
  });
}
