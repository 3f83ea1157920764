"""GEMM calibration: the fp32 square matrix multiply throughput of every library in this image.

usage: python -m embbench_server.gemm_peak --threads N [--seconds S] [--sizes 1024,2048]

For each library that can be imported (numpy, ONNX Runtime, torch, OpenVINO) and each size n, it
multiplies two n x n float32 matrices a few times to warm up, then repeatedly for about S seconds,
and reports GFLOP/s = 2 n^3 iterations / elapsed. Every thread pool gets N threads: OpenMP, MKL and
OpenBLAS through the environment before any library loads, torch by set_num_threads, ONNX Runtime
by intra_op_num_threads, OpenVINO by INFERENCE_NUM_THREADS. The multiplies run one library after
the other in this one process.

stdout holds one JSON object and nothing else (library output is sent to stderr while measuring):
{"threads": N, "cpus": "<affinity cpuset>", "results": [{"library", "version", "size", "gflops",
"iterations"}, ...]}; numpy and torch results also name their BLAS. A library that is not installed
is left out; one that fails to import or to multiply gets results with "gflops": null and "error".

ONNX Runtime and OpenVINO hold the right-hand matrix as a constant of the graph, as a model holds its
weights (both may repack it once for their kernels); numpy and torch multiply two plain arrays.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import struct
import sys
import time
from typing import Any, Callable, Iterator

LIBRARIES = ("numpy", "onnxruntime", "torch", "openvino")
DEFAULT_SIZES = (1024, 2048)
# Pause between libraries so one library's spinning worker threads (OpenBLAS, OpenMP, TBB spin a
# while after a call) have gone to sleep before the next library is measured.
SETTLE_SECONDS = 0.3

log = logging.getLogger("gemm_peak")

Runner = Callable[[], Any]


# ----- arithmetic and timing


def gflops(size: int, iterations: int, elapsed: float) -> float:
    """A square n x n product is n^2 dot products of length n: n^3 multiplies and n^3 adds."""
    return 2 * size**3 * iterations / elapsed / 1e9


def time_multiplies(
    run: Runner, seconds: float, clock: Callable[[], float] = time.perf_counter
) -> tuple[int, float]:
    """Warms up (two calls, then until a fifth of `seconds`), then calls `run` until `seconds` have
    passed: (iterations, elapsed). At least one timed call, however slow."""
    warm_until = clock() + seconds / 5
    for i in range(1_000_000):
        run()
        if i >= 1 and clock() >= warm_until:
            break
    iterations = 0
    start = clock()
    while True:
        run()
        iterations += 1
        elapsed = clock() - start
        if elapsed >= seconds:
            return iterations, elapsed


# ----- libraries: each setup imports its library and returns (version, extra facts, make_runner)
# where make_runner(n) builds the operands of size n and returns the function that multiplies once.


def _matrices(n: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32))


def numpy_blas() -> str | None:
    """numpy's BLAS as its build reports it, e.g. "scipy-openblas 0.3.29", or None if it cannot tell."""
    import numpy as np

    try:
        with contextlib.redirect_stdout(sys.stderr):
            config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return " ".join(str(blas[key]) for key in ("name", "version") if blas.get(key)) or None
    except Exception:  # noqa: BLE001 -- older numpy or an unexpected layout: say nothing rather than guess
        return None


def setup_numpy(threads: int) -> tuple[str, dict[str, Any], Callable[[int], Runner]]:
    import numpy as np

    def make(n: int) -> Runner:
        a, b = _matrices(n, 1)
        out = np.empty((n, n), dtype=np.float32)
        return lambda: np.matmul(a, b, out=out)

    # OPENBLAS_NUM_THREADS (set before numpy loaded) sizes its pool: threads is already in force.
    return np.__version__, {"blas": numpy_blas()}, make


def setup_torch(threads: int) -> tuple[str, dict[str, Any], Callable[[int], Runner]]:
    import re

    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    blas = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())

    def make(n: int) -> Runner:
        a, b = (torch.from_numpy(m) for m in _matrices(n, 2))
        out = torch.empty((n, n), dtype=torch.float32)

        def run() -> None:
            with torch.inference_mode():
                torch.mm(a, b, out=out)

        return run

    return torch.__version__, {"blas": blas.group(1) if blas else None}, make


def setup_onnxruntime(threads: int) -> tuple[str, dict[str, Any], Callable[[int], Runner]]:
    import onnxruntime as ort

    def make(n: int) -> Runner:
        a, b = _matrices(n, 3)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(matmul_model(b), options, providers=["CPUExecutionProvider"])
        feeds = {"a": a}
        return lambda: session.run(None, feeds)

    return ort.__version__, {}, make


def setup_openvino(threads: int) -> tuple[str, dict[str, Any], Callable[[int], Runner]]:
    import openvino as ov
    import openvino.opset13 as ops

    core = ov.Core()

    def make(n: int) -> Runner:
        a, b = _matrices(n, 4)
        x = ops.parameter([n, n], ov.Type.f32, name="a")
        model = ov.Model([ops.matmul(x, ops.constant(b), False, False)], [x], "gemm")
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            # f32, not the bf16 the CPU plugin would pick on CPUs that have it.
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        })
        request = compiled.create_infer_request()
        return lambda: request.infer({0: a}, share_inputs=True, share_outputs=True)

    return ov.get_version(), {}, make


SETUPS: dict[str, Callable[[int], tuple[str, dict[str, Any], Callable[[int], Runner]]]] = {
    "numpy": setup_numpy,
    "onnxruntime": setup_onnxruntime,
    "torch": setup_torch,
    "openvino": setup_openvino,
}


# ----- a one-node ONNX model written by hand: the image has onnxruntime but not the onnx package.
# Protocol buffers wire format: each field is a key varint (field number << 3 | wire type) then a
# varint (type 0) or a length-prefixed payload (type 2). Field numbers are onnx.proto's.


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varints are not needed here")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(data)) + data


FLOAT = 1  # TensorProto.DataType.FLOAT


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)  # TensorShapeProto.dim { dim_value }
    tensor_type = _int(1, FLOAT) + _bytes(2, dims)  # TypeProto.Tensor { elem_type, shape }
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))  # ValueInfoProto { name, type { tensor_type } }


def matmul_model(b: Any, ir_version: int = 8, opset: int = 17) -> bytes:
    """ModelProto bytes of y = MatMul(a, B): `a` a float32 input of shape [m, k], B (float32 [k, n])
    a constant initializer, `y` the float32 [m, n] output."""
    import numpy as np

    b = np.ascontiguousarray(b, dtype="<f4")
    k, n = b.shape
    m = k
    node = _bytes(1, "a") + _bytes(1, "b") + _bytes(2, "y") + _bytes(3, "matmul") + _bytes(4, "MatMul")
    initializer = (
        b"".join(_int(1, d) for d in b.shape)  # dims
        + _int(2, FLOAT)  # data_type
        + _bytes(8, "b")  # name
        + _bytes(9, b.tobytes())  # raw_data, little-endian
    )
    graph = (
        _bytes(1, node)
        + _bytes(2, "gemm")
        + _bytes(5, initializer)
        + _bytes(11, _value_info("a", (m, k)))
        + _bytes(12, _value_info("y", (m, n)))
    )
    opset_import = _bytes(1, "") + _int(2, opset)
    return _int(1, ir_version) + _bytes(2, "embbench-gemm-peak") + _bytes(7, graph) + _bytes(8, opset_import)


# ----- driver


def _version_of(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001
        return None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def measure_library(name: str, threads: int, seconds: float, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """The results of one library, one per size; [] when it is not installed."""
    if importlib.util.find_spec(name) is None:
        log.info("%s is not installed: skipped", name)
        return []
    try:
        version, extra, make = SETUPS[name](threads)
    except Exception as e:  # noqa: BLE001 -- a library that fails to load is a result, not a crash
        log.warning("%s failed to load: %s", name, _error(e))
        return [
            {"library": name, "version": _version_of(name), "size": n, "gflops": None, "error": _error(e)}
            for n in sizes
        ]
    results = []
    for n in sizes:
        result: dict[str, Any] = {"library": name, "version": version, "size": n}
        try:
            iterations, elapsed = time_multiplies(make(n), seconds)
            result.update(gflops=round(gflops(n, iterations, elapsed), 2), iterations=iterations)
            log.info("%s %s n=%d: %.1f GFLOP/s (%d in %.2f s)", name, version, n, result["gflops"], iterations, elapsed)
        except Exception as e:  # noqa: BLE001
            log.warning("%s n=%d failed: %s", name, n, _error(e))
            result.update(gflops=None, error=_error(e))
        result.update(extra)
        results.append(result)
    return results


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers: got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1: got {text!r}")
    return sizes


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a {kind.__name__}: got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0: got {text!r}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m embbench_server.gemm_peak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=_positive(int), required=True,
                        help="thread pool size of every library (never taken from the host)")
    parser.add_argument("--seconds", type=_positive(float), default=2.0,
                        help="timed multiplies per library and size (default 2)")
    parser.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES,
                        help="comma-separated square sizes (default 1024,2048)")
    parser.add_argument("--libraries", type=lambda s: tuple(s.split(",")), default=LIBRARIES,
                        help=f"comma-separated subset of {','.join(LIBRARIES)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.libraries if name not in LIBRARIES]
    if unknown:
        parser.error(f"unknown libraries {','.join(unknown)}: choose from {','.join(LIBRARIES)}")
    return args


def limit_native_threads(threads: int) -> None:
    """Before any library loads: OpenMP, MKL and OpenBLAS size their pools from these once.
    Set, not defaulted: --threads is an explicit request."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Sends anything written to fd 1 (a library's C code included) to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="gemm_peak: %(message)s")
    limit_native_threads(args.threads)
    from .cpus import affinity_cpuset

    results: list[dict[str, Any]] = []
    with stdout_to_stderr():
        for i, name in enumerate(args.libraries):
            found = measure_library(name, args.threads, args.seconds, args.sizes)
            results.extend(found)
            if found and i + 1 < len(args.libraries):
                time.sleep(SETTLE_SECONDS)
    print(json.dumps({"threads": args.threads, "cpus": affinity_cpuset(), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
