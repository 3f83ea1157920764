"""The torch backend's model path on tiny synthetic Qwen3 and Gemma3 models (random weights, built
here): attention, pooling and the Dense layers against a computation by hand.

Needs torch and transformers (the torch image's pins), so it runs apart from tests/ (whose fake
backend needs neither): test.sh runs it with the project's convert venv (<repo>/.venv), which has
the same torch and transformers, or TORCH_TEST_PYTHON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embbench_server.backends.torch_backend import TorchBackend, pool  # noqa: E402
from embbench_server.config import ConfigError, Settings, load_model_spec  # noqa: E402
from embbench_server.text_tokenizer import TokenBatch  # noqa: E402

HIDDEN = 16
VOCAB = 64
#: the window as configured; transformers serves (WINDOW // 2) + 1 when bidirectional
WINDOW = 6


def gemma3_config(bidirectional: bool = True):
    return transformers.Gemma3TextConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, sliding_window=WINDOW,
        layer_types=["sliding_attention", "full_attention"], use_bidirectional_attention=bidirectional,
        pad_token_id=0,
    )


def qwen3_config():
    return transformers.Qwen3Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, pad_token_id=0,
    )


def write_config(config, pytorch: Path) -> None:
    """config.json with the window as configured: save_pretrained would write the rewritten one."""
    config.save_pretrained(str(pytorch))
    path = pytorch / "config.json"
    saved = json.loads(path.read_text())
    if "sliding_window" in saved and getattr(config, "use_bidirectional_attention", False):
        saved["sliding_window"] = WINDOW
    path.write_text(json.dumps(saved))


def make_model_dir(root: Path, architecture: str, *, dense: list[tuple[int, int, bool]] = (),
                   bidirectional: bool = True, spec: dict | None = None) -> Path:
    torch.manual_seed(0)
    config = gemma3_config(bidirectional) if architecture == "gemma3" else qwen3_config()
    model_class = transformers.Gemma3TextModel if architecture == "gemma3" else transformers.Qwen3Model
    model = model_class(config)
    # Random norms and biases too, so no layer is an identity by accident.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    pytorch = root / "pytorch"
    model.save_pretrained(str(pytorch), safe_serialization=True)
    write_config(config, pytorch)
    layers = []
    from safetensors.torch import save_file

    for i, (n_in, n_out, bias) in enumerate(dense):
        folder = pytorch / f"{i + 2}_Dense"
        folder.mkdir()
        tensors = {"linear.weight": torch.randn(n_out, n_in) * 0.3}
        if bias:
            tensors["linear.bias"] = torch.randn(n_out) * 0.3
        save_file(tensors, str(folder / "model.safetensors"))
        layers.append({"in": n_in, "out": n_out, "bias": bias, "activation": "identity",
                       "path": f"pytorch/{i + 2}_Dense"})
    fields = {
        "name": f"synthetic-{architecture}", "architecture": architecture,
        "attention": "bidirectional" if architecture == "gemma3" else "causal",
        "pooling": "mean" if architecture == "gemma3" else "last_token", "normalize": True,
        "max_seq_length": 32, "embedding_dim": dense[-1][1] if dense else HIDDEN,
        "dense": layers, "prompts": {}, "dimensions": {"min": 4, "max": dense[-1][1] if dense else HIDDEN},
        **(spec or {}),
    }
    (root / "embbench_model.json").write_text(json.dumps(fields))
    return root


def load_backend(model_dir: Path) -> TorchBackend:
    settings = Settings(model_dir=model_dir, host="127.0.0.1", port=0, num_threads=1, max_batch=8, max_inflight=1,
                        max_body_bytes=1 << 20, load_delay_ms=0)
    backend = TorchBackend(load_model_spec(model_dir), settings)
    backend.load()  # init_runtime() is the process's once-only thread setting: not here
    return backend


def right_padded(rows: list[list[int]]) -> TokenBatch:
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return TokenBatch(ids, mask, (False,) * len(rows))


ROWS = [[2, 17, 33, 5, 41, 9, 12, 50, 3, 1], [2, 8, 3], [2, 60, 22, 31, 14, 3]]


def masks_by_hand(mask: np.ndarray, rule: str, window: int | None) -> dict[str, torch.Tensor]:
    """Additive [batch, 1, seq, seq] masks per layer type, written out element by element: key k is
    visible from query q when k is a real token and (causal) k <= q, (bidirectional) always; sliding
    layers further need |q - k| < window (bidirectional) or q - k < window (causal)."""
    batch, seq = mask.shape
    low = torch.finfo(torch.float32).min
    out = {}
    for layer_type in ("full_attention", "sliding_attention"):
        m = torch.full((batch, 1, seq, seq), low)
        for b in range(batch):
            for q in range(seq):
                for k in range(seq):
                    visible = mask[b, k] == 1 and (rule == "bidirectional" or k <= q)
                    if layer_type == "sliding_attention" and window is not None:
                        visible = visible and (abs(q - k) < window if rule == "bidirectional" else 0 <= q - k < window)
                    if visible:
                        m[b, 0, q, k] = 0.0
        out[layer_type] = m
    return out


def by_hand(backend: TorchBackend, batch: TokenBatch, rule: str, window: int | None, pooling: str,
            dense: bool = True) -> np.ndarray:
    """The model's own layers under hand-made masks, then pooling, Dense and L2 norm in numpy."""
    ids = torch.from_numpy(batch.input_ids)
    positions = torch.arange(ids.shape[1]).unsqueeze(0).expand_as(ids)
    with torch.inference_mode():
        hidden = backend.model(input_ids=ids, attention_mask=masks_by_hand(batch.attention_mask, rule, window),
                               position_ids=positions, use_cache=False).last_hidden_state.double().numpy()
    mask = batch.attention_mask
    if pooling == "mean":
        pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    else:
        pooled = hidden[np.arange(len(mask)), mask.sum(1) - 1]
    if dense:
        for weight, bias in backend.dense:
            pooled = pooled @ weight.double().numpy().T + (0 if bias is None else bias.double().numpy())
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def run(backend: TorchBackend, batch: TokenBatch) -> np.ndarray:
    with torch.inference_mode():
        return backend.embed(batch)


# ----- Gemma3: bidirectional, sliding window, Dense


def test_gemma3_is_bidirectional_with_the_window_around_each_token_then_dense(tmp_path):
    backend = load_backend(make_model_dir(tmp_path, "gemma3", dense=[(HIDDEN, 32, False), (32, 8, False)]))
    # transformers rewrites the configured window when bidirectional: distance < WINDOW // 2 + 1.
    window = backend.model.config.sliding_window
    assert window == WINDOW // 2 + 1 and window < len(ROWS[0]) - 1
    batch = right_padded(ROWS)
    served = run(backend, batch)
    assert served.shape == (3, 8) and served.dtype == np.float32
    expected = by_hand(backend, batch, "bidirectional", window, "mean")
    assert np.abs(served - expected).max() < 1e-5
    # Each mistake the contract names gives other rows, so the comparison above can tell them apart.
    for name, wrong in {
        "causal": by_hand(backend, batch, "causal", window, "mean"),
        "no window": by_hand(backend, batch, "bidirectional", None, "mean"),
        "the configured window": by_hand(backend, batch, "bidirectional", WINDOW, "mean"),
        "dense skipped": by_hand(backend, batch, "bidirectional", window, "mean", dense=False)[:, :8],
        "last token": by_hand(backend, batch, "bidirectional", window, "last_token"),
    }.items():
        assert np.abs(served[0] - wrong[0]).max() > 1e-3, name


def test_gemma3_rows_do_not_depend_on_padding(tmp_path):
    backend = load_backend(make_model_dir(tmp_path, "gemma3", dense=[(HIDDEN, 32, True), (32, HIDDEN, False)]))
    together = run(backend, right_padded(ROWS))
    for i, row in enumerate(ROWS):
        assert np.abs(run(backend, right_padded([row]))[0] - together[i]).max() < 1e-5


# ----- Qwen3: causal, last real token


def test_qwen3_is_causal_and_pools_the_last_real_token(tmp_path):
    backend = load_backend(make_model_dir(tmp_path, "qwen3"))
    batch = right_padded(ROWS)
    served = run(backend, batch)
    assert np.abs(served - by_hand(backend, batch, "causal", None, "last_token")).max() < 1e-5
    assert np.abs(served[1] - by_hand(backend, batch, "bidirectional", None, "last_token")[1]).max() > 1e-3
    # The last real token, not the last position: row 1 alone equals row 1 padded to 10.
    alone = run(backend, right_padded([ROWS[1]]))
    assert np.abs(alone[0] - served[1]).max() < 1e-5
    # Mean pooling would give other rows.
    assert np.abs(served[0] - by_hand(backend, batch, "causal", None, "mean")[0]).max() > 1e-3


def test_pool_last_token_reads_each_rows_last_real_position():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert pool(hidden, mask, "last_token").tolist() == [[2.0, 3.0], [14.0, 15.0]]
    assert pool(hidden, mask, "mean").tolist() == [[1.0, 2.0], [11.0, 12.0]]
    assert pool(hidden, mask, "cls").tolist() == [[0.0, 1.0], [8.0, 9.0]]


# ----- refusals


def test_attention_disagreeing_with_config_json_is_refused(tmp_path):
    model_dir = make_model_dir(tmp_path / "a", "gemma3", bidirectional=False)
    with pytest.raises(ConfigError, match="use_bidirectional_attention is false .causal attention. but "
                                          "embbench_model.json's attention is 'bidirectional'"):
        load_backend(model_dir)
    model_dir = make_model_dir(tmp_path / "b", "qwen3", spec={"attention": "bidirectional"})
    with pytest.raises(ConfigError, match="transformers' Qwen3 is causal only"):
        load_backend(model_dir)


def test_dense_weights_must_match_embbench_model_json(tmp_path):
    from safetensors.torch import save_file

    model_dir = make_model_dir(tmp_path, "gemma3", dense=[(HIDDEN, 32, False), (32, 8, False)])
    weights = model_dir / "pytorch" / "3_Dense" / "model.safetensors"
    save_file({"linear.weight": torch.zeros(8, 16)}, str(weights))
    with pytest.raises(ConfigError, match=r"3_Dense/model.safetensors holds linear.weight of shape \[8, 16\]: "
                                          r"expected \[8, 32\]"):
        load_backend(model_dir)
    save_file({"linear.weight": torch.zeros(8, 32), "linear.bias": torch.zeros(8)}, str(weights))
    with pytest.raises(ConfigError, match=r"holds linear.bias: embbench_model.json's dense\[1\].bias is false"):
        load_backend(model_dir)
    weights.unlink()
    with pytest.raises(ConfigError, match=r"model.safetensors is missing: embbench_model.json's dense\[1\] names"):
        load_backend(model_dir)


def test_the_first_dense_layer_must_take_the_hidden_size(tmp_path):
    model_dir = make_model_dir(tmp_path, "gemma3", dense=[(HIDDEN, 32, False), (32, 8, False)])
    spec = json.loads((model_dir / "embbench_model.json").read_text())
    spec["dense"][0]["in"] = 12
    spec["dense"][0]["out"] = 32
    (model_dir / "embbench_model.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match=r"hidden_size is 16: expected 12, embbench_model.json's dense\[0\].in"):
        load_backend(model_dir)


# ----- the converted twins (when `embbench convert tiny-qwen3 tiny-gemma3` has written them)

MODELS = Path(__file__).resolve().parents[3] / "models"


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-gemma3"])
def test_converted_twin_matches_its_reference_with_every_prompt_and_size(name):
    from embbench_server.text_tokenizer import TextTokenizer

    model_dir = MODELS / name
    reference = model_dir / "reference" / "embeddings.json"
    if not reference.is_file():
        pytest.skip(f"models/{name} not converted")
    ref = json.loads(reference.read_text())
    backend = load_backend(model_dir)
    spec = backend.spec
    tokenizer = TextTokenizer(model_dir / "pytorch", spec.max_seq_length)

    def embed(texts, prompt_name=None, dimensions=None):
        prompt = spec.prompts[prompt_name] if prompt_name else ""
        rows = run(backend, tokenizer.encode([prompt + t for t in texts]))
        if dimensions:
            rows = rows[:, :dimensions] / np.linalg.norm(rows[:, :dimensions], axis=1, keepdims=True)
        return rows

    assert np.abs(embed(ref["texts"]) - np.array(ref["embeddings"])).max() < 1e-4
    assert ref.get("cases"), "the reference has no prompt or dimension cases"
    for case in ref["cases"]:
        rows = embed(case["texts"], case["prompt_name"], case["dimensions"])
        assert np.abs(rows - np.array(case["embeddings"])).max() < 1e-4, case["prompt_name"] or case["dimensions"]
