#!/usr/bin/env node
// The `tokenrec` command line. Each command lives in its own file under lib/cli/ and is added
// here; errors print one clear line (no stack trace) and exit with status 1.
import { Command } from 'commander';
import { registerBaseline } from './baseline.js';
import { registerDemo } from './demo.js';

import { registerBench } from './bench.js';
import { registerEval } from './eval.js';
import { registerInfo } from './info.js';
import { registerStats } from './stats.js';
import { registerSplit } from './split.js';
import { registerTrain } from './train.js';
import { registerTokenize } from './tokenize.js';
import { registerRecommend } from './recommend.js';
import { registerScore } from './score.js';
import { registerServe } from './serve.js';

const program = new Command('tokenrec')
  .description('TokenRec: ID tokenization for LLM-based generative recommendation')
  .showHelpAfterError();

registerInfo(program);
registerStats(program);
registerSplit(program);
registerBaseline(program);
registerTrain(program);
registerDemo(program);
registerEval(program);
registerBench(program);
registerTokenize(program);
registerRecommend(program);
registerScore(program);
registerServe(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as Error;
  console.error(`tokenrec: ${err?.message ?? String(e)}`);
  if (process.env.TOKENREC_DEBUG) console.error(err?.stack);
  process.exit(1);
});
