"""Entry point: `python -m embbench_server --backend NAME` (or EMBBENCH_BACKEND=NAME).

Exit codes: 0 after a clean shutdown, 1 when the model failed to load, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _limit_native_threads(num_threads: int) -> None:
    """OpenMP, MKL and OpenBLAS size their pools when first loaded, from the host unless told:
    give them NUM_THREADS before any framework is imported. Tokenization runs one thread per
    request (no rayon pool sized from the host), like the compiled servers."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(num_threads))
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="embbench_server", description=__doc__)
    parser.add_argument("--backend", default=os.environ.get("EMBBENCH_BACKEND", ""),
                        help="torch, onnxruntime or openvino (default: $EMBBENCH_BACKEND)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="embbench_server: %(message)s")
    log = logging.getLogger("embbench_server")

    from .config import ConfigError, load_model_spec, settings_from_env

    try:
        settings = settings_from_env()
        _limit_native_threads(settings.num_threads)
        from .backends import backend_class, check_backend_name
        from .text_tokenizer import TextTokenizer

        framework = check_backend_name(args.backend)
        spec = load_model_spec(settings.model_dir)
        tokenizer = TextTokenizer(settings.model_dir / "pytorch", spec.max_seq_length)
    except ConfigError as e:
        print(f"embbench_server: {e}", file=sys.stderr)
        return 2

    import uvicorn

    from .app import EmbedServer

    failures: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_load_failure(error: BaseException) -> None:
        failures.append(error)
        if server is not None:
            server.should_exit = True

    app = EmbedServer(
        settings, spec, tokenizer, framework, lambda: backend_class(framework)(spec, settings), on_load_failure
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        date_header=False,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    # Bound and listening before the app starts loading, so the startup stamp runtime_ready (taken
    # in the loading thread) comes after the bind, and connections made meanwhile wait in the backlog.
    sock = config.bind_socket()
    sock.listen(config.backlog)
    log.info(
        "%s on %s:%d, model %s, NUM_THREADS=%d MAX_BATCH=%d MAX_INFLIGHT=%d WARMUP=%d",
        framework, settings.host, settings.port, settings.model_dir,
        settings.num_threads, settings.max_batch, settings.max_inflight, settings.warmup,
    )
    server.run(sockets=[sock])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
