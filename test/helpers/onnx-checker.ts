// Runs the official ONNX checker (full check, strict type and shape inference) of Python's `onnx`
// package on exported graphs. Debian: apt-get install python3-onnx; tests skip without it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PY = '/usr/bin/python3';
export const HAVE_ONNX_CHECKER = spawnSync(PY, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0;

const CHECK = `
import sys, onnx
from onnx import checker, shape_inference
for p in sys.argv[1:]:
    m = onnx.load(p)
    checker.check_model(m, full_check=True)
    inf = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    outs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in inf.graph.output]
    print(p.rsplit('/', 1)[-1], outs)
`;

/** Checks each graph (file name -> bytes); returns the checker's status, stdout (name + inferred output shapes) and stderr. */
export function checkOnnxGraphs(graphs: Record<string, Uint8Array>): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'onnx-check-'));
  try {
    const paths = Object.entries(graphs).map(([name, bytes]) => {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      return p;
    });
    const r = spawnSync(PY, ['-c', CHECK, ...paths], { encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
