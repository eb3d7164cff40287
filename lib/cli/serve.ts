// `tokenrec serve <dir>`: the HTTP JSON service (lib/serve/http.ts) with the backbone in a worker
// thread. SIGINT/SIGTERM: stop accepting, finish the requests in flight, free the model, exit 0.
import type { Command } from 'commander';
import { Recommender } from '../serve/recommender.js';
import { createService } from '../serve/http.js';
import { addRecommenderOptions, positiveInt, recommenderOptions, type ServeCliOptions } from './serve-options.js';

interface ServeOptions extends ServeCliOptions {
  port: number;
  host: string;
  bodyLimit: number;
  maxBatch: number;
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve <dir>')
    .description('HTTP JSON service: POST /recommend, POST /recommend/batch, GET /health, GET /metrics')
    .option('--port <n>', 'port (0: any free port)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--port must be an integer in [0, 65535], got '${v}'`);
      return n;
    }, 8080)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--body-limit <bytes>', 'largest request body', positiveInt('--body-limit'), 1 << 20)
    .option('--max-batch <n>', 'most concurrent requests grouped into one run', positiveInt('--max-batch'), 64);
  addRecommenderOptions(cmd).action(async (dir: string, o: ServeOptions) => {
    const rec = await Recommender.load(dir, recommenderOptions(o, true));
    const { app } = createService(rec, { bodyLimit: o.bodyLimit, maxBatch: o.maxBatch });
    let closing = false;
    const shutdown = async (signal: string) => {
      if (closing) return;
      closing = true;
      console.error(`tokenrec serve: ${signal}, closing`);
      try {
        await app.close();
        await rec.dispose();
        process.exit(0);
      } catch (e) {
        console.error(`tokenrec serve: ${(e as Error).message}`);
        process.exit(1);
      }
    };
    process.on('SIGINT', () => void shutdown('SIGINT'));
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    const address = await app.listen({ port: o.port, host: o.host });
    const info = rec.info();
    // One line a supervisor (or a test) can wait for.
    console.log(`tokenrec serve: listening on ${address} (${info.dataset}, ${info.users} users, ${info.items} items, ${info.scoring} scoring, ONNX ${info.onnx.provider} in a worker, top-K ${info.topkBackend})`);
    console.log(`tokenrec serve: ONNX Runtime ${info.onnx.version}, ${info.onnx.why}`);
  });
}
