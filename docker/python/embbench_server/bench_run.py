"""In-process engine timing: `python -m embbench_server.bench_run --backend onnxruntime
--payload /model/payloads/seq128_b1.json --runs 200` (MODEL_DIR, NUM_THREADS and the backend's own
variables from the environment, as the server reads them).

Loads the backend exactly as the server does (the same settings, native thread variables, backend
class, init_runtime() and load(), in a thread prepared like the server's inference thread), tokenizes
the payload's texts once, runs one warm-up call and `--warmup` more, then times `--runs` calls of
backend.embed() on that batch. Prints one JSON object on stdout:
{"backend", "payload", "rows", "seq_len", "runs", "median_ms", "p10_ms", "p90_ms", "mean_ms", "min_ms",
"max_ms", "threads", "cpus", "session": <the backend's /info build facts>}. The gap between this and
the server's inference phase, or the client's latency, is what HTTP, queueing and Python add.

Exit codes: 0, 1 when the model fails to load or run, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def read_payload_body(path: Path) -> tuple[list[str], str | None]:
    """The texts and prompt_name of a payload file: one /embed body (.json), or the first line of a
    .jsonl. The prompt's bodies (seq<L>_b<B>_<prompt>.jsonl) carry "prompt_name"."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{path} cannot be read: {e}") from None
    if path.suffix == ".jsonl":
        text = text.split("\n", 1)[0]
    try:
        body = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not a JSON /embed body: {e}") from None
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise ValueError(f"{path}: 'inputs' must be a string or a non-empty list of strings")
    prompt_name = body.get("prompt_name")
    if prompt_name is not None and not isinstance(prompt_name, str):
        raise ValueError(f"{path}: 'prompt_name' must be a string: got {prompt_name!r}")
    return inputs, prompt_name


def read_payload(path: Path) -> list[str]:
    return read_payload_body(path)[0]


def with_prompt(texts: list[str], prompt_name: str | None, prompts: dict[str, str], path: Path) -> list[str]:
    """The texts as the server tokenizes them: the payload's prompt prepended."""
    if prompt_name is None:
        return texts
    if prompt_name not in prompts:
        known = ", ".join(prompts) or "none"
        raise ValueError(f"{path}: prompt_name {prompt_name!r} is not one of the model's prompts ({known})")
    return [prompts[prompt_name] + t for t in texts]


def summarize(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    ms = [s * 1000 for s in ordered]
    return {
        "median_ms": round(percentile(ms, 0.5), 4),
        "p10_ms": round(percentile(ms, 0.1), 4),
        "p90_ms": round(percentile(ms, 0.9), 4),
        "mean_ms": round(sum(ms) / len(ms), 4),
        "min_ms": round(ms[0], 4),
        "max_ms": round(ms[-1], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embbench_server.bench_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default=os.environ.get("EMBBENCH_BACKEND", ""),
                        help="torch, onnxruntime or openvino (default: $EMBBENCH_BACKEND)")
    parser.add_argument("--payload", required=True, type=Path, help="an /embed body: payloads/seq<L>_b<B>.json")
    parser.add_argument("--runs", type=int, default=200, help="timed calls (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls after the first (default 10)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    # stdout carries the JSON alone: logs, and anything a library prints, go to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="bench_run: %(message)s")

    from .config import ConfigError, load_model_spec, settings_from_env
    from .options import check_backend_name, check_options, set_native_thread_env

    try:
        settings = settings_from_env()
        framework = check_backend_name(args.backend)
        check_options(framework)
        set_native_thread_env(framework, settings.num_threads)
        spec = load_model_spec(settings.model_dir)
        texts, prompt_name = read_payload_body(args.payload)
        texts = with_prompt(texts, prompt_name, spec.prompts, args.payload)
        from .text_tokenizer import TextTokenizer

        tokenizer = TextTokenizer(settings.model_dir / "pytorch", spec.max_seq_length)
    except (ConfigError, ValueError) as e:
        print(f"bench_run: {e}", file=sys.stderr)
        return 2

    from .backends import backend_class
    from .cpus import affinity_cpuset

    result: dict[str, Any] = {}

    def run() -> None:
        # The server loads in one thread and runs inference in another, prepared by the backend: so here.
        backend = backend_class(framework)(spec, settings)
        backend.init_runtime()
        backend.load()
        holder: dict[str, Any] = {}

        def infer() -> None:
            try:
                backend.prepare_inference_thread(0)
                batch = tokenizer.encode(texts)
                backend.embed(batch)
                for _ in range(args.warmup):
                    backend.embed(batch)
                seconds = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    backend.embed(batch)
                    seconds.append(time.perf_counter() - started)
                holder.update(batch=batch, seconds=seconds)
            except BaseException as e:  # noqa: BLE001 -- reported by the caller
                holder["error"] = e

        thread = threading.Thread(target=infer, name="infer")
        thread.start()
        thread.join()
        if "error" in holder:
            raise holder["error"]
        batch = holder["batch"]
        result.update(
            backend=framework,
            payload=str(args.payload),
            rows=int(batch.input_ids.shape[0]),
            seq_len=int(batch.input_ids.shape[1]),
            runs=args.runs,
            **summarize(holder["seconds"]),
            threads=settings.num_threads,
            cpus=affinity_cpuset(),
            session=backend.build_info(),
        )

    from .gemm_peak import stdout_to_stderr

    try:
        with stdout_to_stderr():
            run()
    except ConfigError as e:
        print(f"bench_run: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 -- a load or inference failure, said plainly
        print(f"bench_run: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
