"""chunkc on a GPU: CuPy and PyTorch-CUDA code, measured (issue 17).

A GPU machine is lent for a few minutes at a time, with its own Python (PyTorch 2.11 +
CUDA, CuPy, no network) and a copy of this repository.  So the work is split:

1. Here (any machine with the project's environment)::

       python -m benchmarks.gpu.prepare

   imports the models with torch.export, plans them at each budget and saves the graphs,
   plans and inputs' description under ``benchmarks/gpu/data/`` (committed; a few MiB).

2. On the GPU, from the repository root, in one command of under 8 minutes::

       python -m benchmarks.gpu.run --out "$OUT"

   loads the saved graphs and plans (no torch.export there), compiles them for CuPy and
   for PyTorch on CUDA, checks the chunked results against the unchunked ones, measures
   each program's peak (``chunkc.measure_peak``) against the GPU estimate
   (``estimate_memory(..., device="cuda")``), times chunked against unchunked (interleaved,
   CUDA-synchronized) and writes ``gpu_results.json`` and the GPU section of
   docs/benchmarks.md (also copied to ``$OUT``), result by result, within a time budget.

3. Back here: ``python -m benchmarks.gpu.report <gpu_results.json>`` rewrites the GPU
   section of docs/benchmarks.md from the results the GPU run wrote.

``python -m benchmarks.gpu.run --dry-run`` runs step 2 on the CPU (NumPy in place of CuPy,
PyTorch on the CPU in place of CUDA) at small sizes: ``tests/test_gpu_benchmark.py`` does, so
that the script cannot rot between GPU sessions.
"""
