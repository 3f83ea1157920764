"""Command line: `convert` and `payloads`. Exit 0 ok, 1 conversion or parity failure, 2 usage or config error."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .corpus import DEFAULT_CORPUS_DIR
from .errors import ConfigError, ConvertError
from .progress import elapsed, log


def _default_corpus() -> Path:
    return Path(os.environ.get("EMBBENCH_CORPUS_DIR", DEFAULT_CORPUS_DIR))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m embbench_convert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert one models.yaml entry into a model folder")
    c.add_argument("--model", required=True, help="the model id in models.yaml")
    c.add_argument("--models-file", required=True, type=Path)
    c.add_argument("--out", required=True, type=Path, help="the model folder to write (models/<id>)")
    c.add_argument("--fp16", action="store_true", help="also write openvino_fp16/ (fp16-compressed weights)")
    c.add_argument("--force", action="store_true", help="convert even when the folder is up to date")
    c.add_argument("--corpus-dir", type=Path, default=None)
    c.add_argument("--bodies", default=None, help="distinct request bodies per payloads/*.jsonl file (default 64)")

    q = sub.add_parser("payloads", help="write request bodies of exact token lengths into <model-dir>/payloads")
    q.add_argument("--model-dir", required=True, type=Path)
    q.add_argument("--seq-lens", default="32,128,512")
    q.add_argument("--batch-sizes", default="1,8")
    q.add_argument("--corpus-dir", type=Path, default=None)
    q.add_argument("--bodies", default=None, help="distinct request bodies per .jsonl file (default 64)")
    return p


def _convert(args) -> dict:
    from .config import load_entry
    from .convert import convert

    from .payloads import DEFAULT_BODIES, parse_bodies

    bodies = DEFAULT_BODIES if args.bodies is None else parse_bodies(args.bodies)
    entry = load_entry(args.models_file, args.model)
    return convert(entry, args.out, args.corpus_dir or _default_corpus(), fp16=args.fp16, force=args.force,
                   bodies=bodies)


def _payloads(args) -> dict:
    from .convert import record_payload_hashes
    from .manifest import MODEL_JSON, staged
    from .payloads import DEFAULT_BODIES, parse_bodies, parse_int_list, write_payloads

    seq_lens = parse_int_list(args.seq_lens, "--seq-lens")
    batch_sizes = parse_int_list(args.batch_sizes, "--batch-sizes")
    bodies = DEFAULT_BODIES if args.bodies is None else parse_bodies(args.bodies)
    model_dir: Path = args.model_dir
    try:
        facts = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as e:
        raise ConfigError(f"'{model_dir / MODEL_JSON}' is missing or unreadable ({e}): run convert first") from None
    target = model_dir / "payloads"
    with staged(target) as tmp:
        index = write_payloads(
            facts["name"], model_dir, tmp, args.corpus_dir or _default_corpus(), seq_lens, batch_sizes,
            facts["max_seq_length"], bodies, facts.get("prompts") or {},
        )
    record_payload_hashes(model_dir)
    log("payloads", f"wrote {len(index['payloads'])} payloads of {bodies} bodies each into '{target}'")
    return {"status": "ok", "model_dir": str(model_dir), "payloads": [e["file"] for e in index["payloads"]],
            "lines": [e["lines"] for e in index["payloads"]], "bodies": bodies, "seconds": round(elapsed(), 2)}


def main(argv: list[str] | None = None) -> int:
    # The tokenizers library warns on fork (OpenVINO and ONNX Runtime start helpers) once it used threads.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    try:
        summary = _convert(args) if args.command == "convert" else _payloads(args)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        print(json.dumps({"status": "error", "exit_code": e.exit_code, "error": str(e)}, ensure_ascii=False))
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(summary, ensure_ascii=False))
    return 0
