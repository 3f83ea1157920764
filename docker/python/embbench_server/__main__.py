"""Entry point: `python -m embbench_server --backend NAME` (or EMBBENCH_BACKEND=NAME).

Exit codes: 0 after a clean shutdown, 1 when the model failed to load, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


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
        from .options import check_backend_name, check_options, set_native_thread_env

        framework = check_backend_name(args.backend)
        check_options(framework)
        # Before any framework (or numpy's BLAS) is loaded: they size and bind their pools once.
        set_native_thread_env(framework, settings.num_threads)
        from .backends import backend_class
        from .text_tokenizer import TextTokenizer

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
        "%s on %s:%d, model %s, NUM_THREADS=%d MAX_BATCH=%d MAX_INFLIGHT=%d WARMUP=%d SERVING=%s%s",
        framework, settings.host, settings.port, settings.model_dir,
        settings.num_threads, settings.max_batch, settings.max_inflight, settings.warmup, settings.serving,
        f" MAX_BATCH_TOKENS={settings.max_batch_tokens} MAX_WAIT_US={settings.max_wait_us}"
        if settings.serving == "batched" else "",
    )
    server.run(sockets=[sock])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
