#!/usr/bin/env bash
# One entry point that does all the setup on a fresh machine, then runs a job.
#   ./run.sh demo   compile a real model under a memory budget and show the result
#   ./run.sh test   run the whole test suite
#   ./run.sh bench  run the benchmarks and rewrite docs/benchmarks.md
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
    # torch first and pinned: an unpinned torch (or a package that wants a newer one)
    # pulls several GB of CUDA wheels; 2.13.0 is a CPU build.
    if ! "$PY" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
        "$PY" -m pip install -q torch==2.13.0
    fi
    if ! "$PY" -c 'import chunkc, frontends, onnx, onnxruntime, transformers, diffusers, hypothesis, xdist' 2>/dev/null; then
        "$PY" -m pip install -q -e '.[torch,onnx,models,dev]'
    fi
    # (read the whole output first: grep -q closing the pipe early fails under pipefail)
    torch_info=$("$PY" -m pip show torch 2>/dev/null || true)
    case "$torch_info" in
        *"Version: 2.13.0"*) ;;
        *) echo "torch is not 2.13.0: see README" >&2; exit 1 ;;
    esac
    if ! command -v dot >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq graphviz) >/dev/null 2>&1 \
            || echo "note: could not install graphviz; .dot files are still written" >&2
    fi
}

case "${1:-}" in
    demo)  setup; shift; exec "$PY" -m chunkc.demo "$@" ;;
    test)  setup; shift; exec "$PY" -m pytest -n 2 "$@" ;;
    bench) setup; shift; exec "$PY" -m benchmarks "$@" ;;
    *) echo "usage: $0 demo|test|bench [args]" >&2; exit 2 ;;
esac
