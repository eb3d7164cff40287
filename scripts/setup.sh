#!/usr/bin/env bash
# One-time setup after cloning: npm packages (no download scripts run: everything needed ships
# in the npm packages), the native addon, the TypeScript build, and the optional faiss-node
# backend when Debian's faiss is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
npm run build
if [ -f scripts/build-faiss.sh ]; then bash scripts/build-faiss.sh || echo "tokenrec: faiss-node could not be built; the faiss backend stays off"; fi
