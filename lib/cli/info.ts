import type { Command } from 'commander';
import { backendInfo } from '../native/addon.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('what the native core was compiled with and what it runs on')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => {
      const info = backendInfo();
      if (opts.json) {
        console.log(JSON.stringify(info));
        return;
      }
      console.log(`compiled backends: ${info.compiled.join(', ')}`);
      console.log(`cuda: ${info.cuda.available ? `${info.cuda.device} (sm ${info.cuda.computeCapability})` : `not usable (${info.cuda.reason})`}`);
      console.log(`cpu: ${info.cpuIsa}, ${info.threads} threads, gemm ${info.gemm}`);
    });
}
