"""``chatbot bench``: how fast indexing, retrieval and generation are on this machine.

Writes ``results.json`` (every figure, machine-readable), ``results.md`` (the same as tables,
rendered from ``templates/report.md.j2``, also printed) and ``latency.png`` (where the time of one
answer goes) into the output folder. ``runner.run_bench`` is the entry point; one module per
stage (``index_stage``, ``retrieval``, ``scaling``, ``generation``, ``llama``), the fresh-process
harness in ``child``, the statistics in ``stats``, the targets in ``targets``, the outputs in
``report`` and ``plot``.

Rules the numbers follow, so that two runs can be compared:
- every timing is the median (and p95 where it says so) of repeated runs; the few runs that
  cannot be repeated cheaply (a cold start converts the model) say so in ``notes``;
- nothing in the repository is touched: the corpus is copied and indexed in a temporary folder,
  caches live there too (the converted model cache is only read);
- the machine is shared, so absolute timings are noisy: llama.cpp runs in the same benchmark on
  the same prompts, and the ratios against it are the figures to compare across runs. The load
  average before and after each section is recorded to show how busy the machine was;
- nothing is installed while it runs: a backend whose package is missing is reported as such.

This file imports nothing, so that ``python -m chatbot.bench.child`` (the fresh process that
measures a warm start) loads only what it measures.
"""
