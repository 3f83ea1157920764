"""Model folders laid out exactly like the hub snapshots of EmbeddingGemma and Qwen3-Embedding, with
small random weights, in an HF cache (HF_HOME/hub/models--<org>--<name>/snapshots/<commit>/, refs/main),
so `convert` runs its real hub path (snapshot_download with HF_HUB_OFFLINE=1) without network.

What is the real models': the file names and module layout (modules.json, 1_Pooling, 2_Dense, 3_Dense,
a Normalize module without a folder), the configs' keys (Gemma3 with use_bidirectional_attention and
config.json's sliding_window 512, Qwen3), the widths models.yaml checks (EmbeddingGemma 768 with Dense
768 -> 3072 -> 768, Qwen3-Embedding 1024), the prompts (EmbeddingGemma's fourteen task prompts) and
the tokenizers' kinds and conventions (the twins' own: Qwen3-Embedding's byte-level BPE with <|endoftext|>
appended and left padding in tokenizer_config.json, EmbeddingGemma's BPE with byte fallback, <bos> ... <eos>).
What is not: the depth, the head counts, the vocabulary (trained on the project corpus, a few thousand).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"

EMBEDDINGGEMMA_PROMPTS = {
    "query": "task: search result | query: ",
    "document": "title: none | text: ",
    "BitextMining": "task: search result | query: ",
    "Clustering": "task: clustering | query: ",
    "Classification": "task: classification | query: ",
    "InstructionRetrieval": "task: code retrieval | query: ",
    "MultilabelClassification": "task: classification | query: ",
    "PairClassification": "task: sentence similarity | query: ",
    "Reranking": "task: search result | query: ",
    "Retrieval": "task: search result | query: ",
    "Retrieval-query": "task: search result | query: ",
    "Retrieval-document": "title: none | text: ",
    "STS": "task: sentence similarity | query: ",
    "Summarization": "task: summarization | query: ",
}
QWEN3_PROMPTS = {
    "query": "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:",
    "document": "",
}


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def snapshot_dir(hf_home: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` at revision main in the HF cache under `hf_home`."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tokenizer(folder: Path, corpus_dir: Path, max_seq_length: int, qwen3: bool):
    from embbench_convert import tiny

    if qwen3:  # left padding, as Qwen3-Embedding's tokenizer_config.json
        return tiny.write_qwen3_tokenizer(corpus_dir, folder, max_seq_length, padding_side="left")
    return tiny.write_gemma3_tokenizer(corpus_dir, folder, max_seq_length)


def _dense(folder: Path, path: str, n_in: int, n_out: int, seed: int) -> None:
    import torch
    from safetensors.torch import save_file

    _write(folder / path / "config.json", {"in_features": n_in, "out_features": n_out, "bias": False,
                                           "activation_function": "torch.nn.modules.linear.Identity"})
    gen = torch.Generator().manual_seed(seed)
    save_file({"linear.weight": torch.randn(n_out, n_in, generator=gen) / n_in ** 0.5},
              str(folder / path / "model.safetensors"))


def _modules(folder: Path, names: list[tuple[str, str]]) -> None:
    _write(folder / "modules.json", [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(names)
    ])


def _pooling(folder: Path, hidden: int, mode: str) -> None:
    _write(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": mode == "lasttoken",
        "include_prompt": True,
    })


def _st_config(folder: Path, prompts: dict) -> None:
    _write(folder / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "__version__": {"sentence_transformers": "5.1.0", "transformers": "4.57.0.dev0", "pytorch": "2.8.0"},
        "prompts": prompts,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def embeddinggemma(hf_home: Path, corpus_dir: Path, dense_out: int = 3072, prompts: dict | None = None) -> Path:
    """google/embeddinggemma-300m's layout: Gemma3 (bidirectional), mean pooling, Dense 768->3072->768, Normalize."""
    import torch
    from transformers import Gemma3TextConfig, Gemma3TextModel

    folder = snapshot_dir(hf_home, "google/embeddinggemma-300m")
    fast = _tokenizer(folder, corpus_dir, 2048, qwen3=False)
    torch.manual_seed(7)
    cfg = Gemma3TextConfig(
        vocab_size=len(fast), hidden_size=768, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=64, intermediate_size=256, max_position_embeddings=2048, sliding_window=512,
        layer_types=["sliding_attention", "full_attention"], use_bidirectional_attention=True,
        pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
        initializer_range=0.2,
    )
    Gemma3TextModel(cfg).eval().save_pretrained(str(folder), safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    config["sliding_window"] = 512  # the hub's number; transformers halved it on construction
    _write(folder / "config.json", config)
    _modules(folder, [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Dense", "Dense"),
                      ("4_Normalize", "Normalize")])
    _write(folder / "sentence_bert_config.json", {"max_seq_length": 2048, "do_lower_case": False})
    _pooling(folder, 768, "mean")
    _dense(folder, "2_Dense", 768, dense_out, seed=11)
    _dense(folder, "3_Dense", dense_out, 768, seed=12)
    _st_config(folder, EMBEDDINGGEMMA_PROMPTS if prompts is None else prompts)
    return folder


def qwen3_embedding(hf_home: Path, corpus_dir: Path) -> Path:
    """Qwen/Qwen3-Embedding-0.6B's layout: causal Qwen3, last-token pooling, Normalize; <|endoftext|> appended."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    folder = snapshot_dir(hf_home, "Qwen/Qwen3-Embedding-0.6B")
    fast = _tokenizer(folder, corpus_dir, 8192, qwen3=True)
    torch.manual_seed(8)
    cfg = Qwen3Config(
        vocab_size=len(fast), hidden_size=1024, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=64, intermediate_size=256, max_position_embeddings=32768, tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id, initializer_range=0.2,
    )
    Qwen3Model(cfg).eval().save_pretrained(str(folder), safe_serialization=True)
    _modules(folder, [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")])
    _write(folder / "sentence_bert_config.json", {"max_seq_length": 8192, "do_lower_case": False})
    _pooling(folder, 1024, "lasttoken")
    _st_config(folder, QWEN3_PROMPTS)
    return folder


def copy_cache(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest
