"""reference/embeddings.json: the authors' own embeddings, the prompt and Matryoshka cases, and the mistakes.

The reference comes from the authors' own library: sentence-transformers when the model folder ships
its modules (modules.json), otherwise transformers plus the documented pooling (and L2 norm).

"cases" embed a few short texts with each prompt (`encode(prompt_name=...)`) and at the smallest and
one middle Matryoshka size (`encode(truncate_dim=..., normalize_embeddings=True)`: cut, then
normalised again). "mistakes" are the reference texts as a wrongly served model gives them, so
`verify` can name the likely cause of a mismatch; only mistakes that apply to the model and change
its rows are kept.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .config import POOLINGS, ModelEntry
from .errors import ConvertError
from .progress import log

# The reference texts the cases use: the short multilingual ones and the 40-token corpus text
# (corpus.parity_texts' first eight). The empty string is left out of prompt cases:
# sentence-transformers strips each text after the prompt is prepended, so "prompt + ''" would lose
# the prompt's trailing space there but not in a server.
CASE_TEXTS = 8
# A mistake whose rows all lie this close to the reference is no mistake for this model.
DISTINCT_COSINE = 0.9999


@dataclasses.dataclass
class Batch:
    """The parity batch as every server tokenizes it (right padding)."""

    texts: list[str]
    ids: np.ndarray
    mask: np.ndarray


def case_texts(texts: list[str], with_prompt: bool) -> list[str]:
    chosen = texts[:CASE_TEXTS]
    return [t for t in chosen if t] if with_prompt else chosen


def middle_and_smallest(dimensions: dict) -> list[int]:
    """The Matryoshka sizes the cases cover: the smallest and one in the middle (never the full size)."""
    low, high = dimensions["min"], dimensions["max"]
    if low >= high:
        return []
    sizes = dimensions.get("sizes") or []
    middle = sizes[(len(sizes) - 1) // 2] if sizes else (low + high) // 2
    return sorted({low, middle} - {high})


def _rows(array) -> list[list[float]]:
    return [[float(x) for x in row] for row in np.asarray(array, dtype=np.float32)]


class SentenceTransformersReference:
    """sentence-transformers' own encode on the model folder (modules.json, prompts, Dense, Normalize)."""

    name = "sentence-transformers"

    def __init__(self, pytorch_dir: Path, entry: ModelEntry):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(pytorch_dir), device="cpu", local_files_only=True)
        self.model.max_seq_length = entry.max_seq_length
        self.normalize = entry.normalize

    def check_tokens(self, batch: Batch) -> None:
        """sentence-transformers must see the ids a server sees (tokenizer.json, its special tokens, truncation)."""
        features = self.model.tokenize(batch.texts)
        st_ids, st_mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        for i, text in enumerate(batch.texts):
            ours = batch.ids[i][batch.mask[i] == 1].tolist()
            theirs = st_ids[i][st_mask[i] == 1].tolist()
            if ours != theirs:
                raise ConvertError(
                    f"sentence-transformers tokenizes reference text {i} ({text[:40]!r}) differently from "
                    f"tokenizer.json: {theirs[:8]}...{theirs[-4:]} ({len(theirs)} tokens) against "
                    f"{ours[:8]}...{ours[-4:]} ({len(ours)} tokens)"
                )

    def encode(self, texts: list[str], prompt_name: str | None = None, dimensions: int | None = None) -> np.ndarray:
        return self.model.encode(
            texts, prompt_name=prompt_name, truncate_dim=dimensions, batch_size=max(1, len(texts)),
            normalize_embeddings=self.normalize, convert_to_numpy=True, show_progress_bar=False,
        )


class TransformersReference:
    """transformers' model forward plus the documented pooling and L2 norm (no sentence-transformers modules)."""

    name = "transformers"

    def __init__(self, pytorch_dir: Path, entry: ModelEntry, tokenize):
        from . import export

        self.model = export.load_hf_model(pytorch_dir, "sdpa")
        self.entry = entry
        self.tokenize = tokenize

    def check_tokens(self, batch: Batch) -> None:
        return None  # it tokenizes with tokenizer.json itself

    def encode(self, texts: list[str], prompt_name: str | None = None, dimensions: int | None = None) -> np.ndarray:
        from .parity import torch_reference

        prompt = self.entry.prompts[prompt_name] if prompt_name is not None else ""
        ids, mask = self.tokenize([prompt + t for t in texts])
        rows = torch_reference(self.model, self.entry.pooling, ids, mask)
        if dimensions is not None:
            rows = rows[:, :dimensions]
            rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return rows


PROBE_TEXTS = ["", "Hi", "Embeddings map text to vectors.", "今天早上的地铁特别挤。", "  two  spaces  "]


def align_tokenizer_json(pytorch_dir: Path) -> str | None:
    """Makes tokenizer.json add the special tokens the authors' tokenizer adds; returns what changed, or None.

    Servers tokenize with tokenizer.json alone. transformers' tokenizer classes may rebuild the
    post-processor from tokenizer_config.json (GemmaTokenizerFast's add_bos_token / add_eos_token), so
    the authors' library can add other special tokens than the file says. Then the file's
    post-processor is replaced by the one the authors' tokenizer runs.
    """
    if not (pytorch_dir / "modules.json").is_file():
        return None
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(pytorch_dir / "tokenizer.json"))
    authors = AutoTokenizer.from_pretrained(str(pytorch_dir), local_files_only=True)
    theirs = [authors(t)["input_ids"] for t in PROBE_TEXTS]
    if [raw.encode(t).ids for t in PROBE_TEXTS] == theirs:
        return None
    data = json.loads((pytorch_dir / "tokenizer.json").read_text(encoding="utf-8"))
    before = data.get("post_processor")
    data["post_processor"] = json.loads(authors.backend_tokenizer.to_str()).get("post_processor")
    fixed = Tokenizer.from_str(json.dumps(data))
    if [fixed.encode(t).ids for t in PROBE_TEXTS] != theirs:
        raise ConvertError(
            f"'{pytorch_dir / 'tokenizer.json'}' tokenizes differently from the model's own tokenizer "
            f"({type(authors).__name__}), and not only in its special tokens: '' gives "
            f"{raw.encode('').ids} against {theirs[0]}"
        )
    (pytorch_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return (f"tokenizer.json's post-processor ({json.dumps(before)[:120]}) differed from the one "
            f"{type(authors).__name__} runs; replaced by it so servers add the same special tokens")


def make_reference(pytorch_dir: Path, entry: ModelEntry, tokenize):
    if (pytorch_dir / "modules.json").is_file():
        return SentenceTransformersReference(pytorch_dir, entry)
    if entry.dense:
        raise ConvertError(f"{entry.id}: Dense layers need the sentence-transformers modules (pytorch/modules.json)")
    return TransformersReference(pytorch_dir, entry, tokenize)


def build_cases(ref, entry: ModelEntry, texts: list[str]) -> list[dict]:
    cases = []
    for name in entry.prompts:
        chosen = case_texts(texts, with_prompt=True)
        cases.append({"prompt_name": name, "dimensions": None, "texts": chosen,
                      "embeddings": _rows(ref.encode(chosen, prompt_name=name))})
    for size in middle_and_smallest(entry.dimensions):
        chosen = case_texts(texts, with_prompt=False)
        cases.append({"prompt_name": None, "dimensions": size, "texts": chosen,
                      "embeddings": _rows(ref.encode(chosen, dimensions=size))})
    return cases


@dataclasses.dataclass
class Mistake:
    name: str
    cause: str
    rows: np.ndarray
    prompt_name: str | None = None

    def as_json(self) -> dict:
        out = {"name": self.name, "cause": self.cause}
        if self.prompt_name is not None:
            out["prompt_name"] = self.prompt_name
        out["embeddings"] = _rows(self.rows)
        return out


def _hidden(model, batch: Batch):
    """A transformers model's last hidden states on the padded batch."""
    import torch

    with torch.no_grad():
        ids, mask = torch.from_numpy(batch.ids), torch.from_numpy(batch.mask)
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def _pooled(hidden, batch: Batch, pooling: str, dense) -> np.ndarray:
    """`pooling`, the Dense layers and the L2 norm on hidden states of `batch`."""
    import torch

    from .export import pool

    with torch.no_grad():
        return pool(hidden, torch.from_numpy(batch.mask), pooling, dense).float().numpy()


def _forward(model, batch: Batch, pooling: str, dense) -> np.ndarray:
    """A transformers model's forward on the padded batch, then `pooling`, the Dense layers and the L2 norm."""
    return _pooled(_hidden(model, batch), batch, pooling, dense)


def _wrapped(model, entry: ModelEntry, batch: Batch, dense, attention: str) -> np.ndarray:
    """The export wrapper with another attention mode (transformers has no switch for Qwen3's)."""
    import torch

    from .export import make_wrapper

    wrapper = make_wrapper(model, entry.architecture, entry.pooling, dense, attention=attention)
    with torch.no_grad():
        return wrapper(torch.from_numpy(batch.ids), torch.from_numpy(batch.mask)).float().numpy()


def appended_special_tokens(tokenizer_json: Path) -> list[str]:
    """The special tokens tokenizer.json's post-processor appends after the text, when it adds none before it."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    plain = tok.encode("a b", add_special_tokens=False).ids
    full = tok.encode("a b", add_special_tokens=True)
    if not plain or full.ids[: len(plain)] != plain or len(full.ids) == len(plain):
        return []
    return full.tokens[len(plain):]


def build_mistakes(entry: ModelEntry, pytorch_dir: Path, batch: Batch, reference: np.ndarray, dense,
                   cases: list[dict], ref, tokenize) -> list[Mistake]:
    """The reference texts as wrongly served models give them; each kept only when it changes the rows."""
    from . import export

    found: list[Mistake] = []
    base = export.load_hf_model(pytorch_dir, "sdpa")
    hidden = _hidden(base, batch)  # one forward for the mistakes after the transformer
    if entry.dense and int(base.config.hidden_size) == entry.embedding_dim:
        found.append(Mistake(
            "dense layers skipped",
            "the server does not apply embbench_model.json's dense layers (the sentence-transformers Dense "
            "modules) between pooling and the L2 norm",
            _pooled(hidden, batch, entry.pooling, ())))
    for other in POOLINGS:
        if other != entry.pooling:
            found.append(Mistake(
                f"{other} pooling instead of {entry.pooling}",
                f"the server pools with '{other}' instead of embbench_model.json's pooling '{entry.pooling}'",
                _pooled(hidden, batch, other, dense)))
    del hidden
    if entry.architecture == "gemma3" and entry.attention == "bidirectional":
        found += _gemma3_attention_mistakes(entry, pytorch_dir, batch, dense)
    if entry.architecture == "qwen3" and entry.attention == "causal":
        found.append(Mistake(
            "bidirectional attention instead of causal",
            "the server runs Qwen3 without its causal mask (every token sees the later ones too)",
            _wrapped(export.load_hf_model(pytorch_dir, "eager"), entry, batch, dense, "bidirectional")))
    appended = appended_special_tokens(pytorch_dir / "tokenizer.json")
    if appended and entry.pooling == "last_token":
        found.append(Mistake(
            f"{' '.join(appended)} not appended",
            f"the server does not apply tokenizer.json's post-processor, which appends {' '.join(appended)} "
            f"(the token last-token pooling reads)",
            _without_special_tokens(base, entry, batch, reference, dense, tokenize)))
    for case in cases:
        name = case["prompt_name"]
        if name is not None and entry.prompts[name]:
            found.append(Mistake(
                f"prompt '{name}' not applied",
                f"the server ignores prompt_name and does not prepend the '{name}' prompt to each text",
                ref.encode(case["texts"]), prompt_name=name))
    kept = []
    for m in found:
        target = reference if m.prompt_name is None else np.array(
            next(c["embeddings"] for c in cases if c["prompt_name"] == m.prompt_name and c["dimensions"] is None))
        cos = _min_cosine(target, m.rows)
        if cos < DISTINCT_COSINE:
            kept.append(m)
            log("mistakes", f"'{m.name}': worst cosine {cos:.4f} to the reference")
        else:
            log("mistakes", f"'{m.name}' left out: its rows equal the reference's (worst cosine {cos:.6f})")
    return kept


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    return float(cos.min())


def _gemma3_attention_mistakes(entry: ModelEntry, pytorch_dir: Path, batch: Batch, dense) -> list[Mistake]:
    """EmbeddingGemma's attention served wrongly: causal (the Gemma3 language model's), the sliding window
    ignored, or the window taken from config.json without transformers' bidirectional rewrite."""
    raw_window = json.loads((pytorch_dir / "config.json").read_text(encoding="utf-8")).get("sliding_window")

    def load(**overrides):
        return load_with_config_changes(pytorch_dir, **overrides)

    out = [Mistake(
        "causal attention instead of bidirectional",
        "the server runs Gemma3 with the causal mask of the Gemma3 language model instead of EmbeddingGemma's "
        "bidirectional attention (config.json use_bidirectional_attention)",
        _forward(load(use_bidirectional_attention=False), batch, entry.pooling, dense))]
    if raw_window:
        out.append(Mistake(
            "sliding window ignored",
            "the server lets Gemma3's sliding-attention layers see every token instead of only those within "
            "the window",
            _forward(load(sliding_window=4 * entry.max_seq_length + 2), batch, entry.pooling, dense)))
        # transformers loads a bidirectional config's window w as w // 2 + 1 (|i - j| < w // 2 + 1); a
        # server that takes config.json's number as is sees twice as far.
        out.append(Mistake(
            "sliding window not halved",
            f"the server uses config.json's sliding_window {raw_window} as the bidirectional window; transformers "
            f"runs it as |i - j| < {raw_window // 2 + 1} (sliding_window // 2 + 1)",
            _forward(load(sliding_window=2 * (raw_window - 1)), batch, entry.pooling, dense)))
    return out


def load_with_config_changes(pytorch_dir: Path, **changes):
    """The transformers model with config.json's values changed before the config is built.

    Passing them to from_pretrained instead would set them after the config's __init__, which skips
    what __init__ derives from them (Gemma3's bidirectional window rewrite).
    """
    import torch
    from transformers import AutoConfig, AutoModel

    raw = json.loads((pytorch_dir / "config.json").read_text(encoding="utf-8"))
    raw.update(changes)
    config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    return AutoModel.from_pretrained(str(pytorch_dir), config=config, attn_implementation="sdpa",
                                     dtype=torch.float32).eval()


def _without_special_tokens(model, entry: ModelEntry, batch: Batch, reference: np.ndarray, dense, tokenize) -> np.ndarray:
    """The rows with no special tokens added; a text with no tokens at all keeps the reference's row."""
    ids, mask = tokenize(batch.texts, add_special_tokens=False)
    empty = mask.sum(axis=1) == 0
    mask[empty, 0] = 1  # placeholder rows, replaced below
    rows = _forward(model, Batch(batch.texts, ids, mask), entry.pooling, dense)
    rows[empty] = reference[empty]
    return rows


def write_reference(entry: ModelEntry, root: Path, batch: Batch, token_counts: list[int], truncated: list[bool],
                    dense, tokenize) -> np.ndarray:
    """Writes reference/embeddings.json and returns its embeddings (the parity gate's reference)."""
    pytorch_dir = root / "pytorch"
    ref = make_reference(pytorch_dir, entry, tokenize)
    log("reference", f"{ref.name} on {len(batch.texts)} texts")
    ref.check_tokens(batch)
    embeddings = np.asarray(ref.encode(batch.texts), dtype=np.float32)
    cases = build_cases(ref, entry, batch.texts)
    log("reference", f"{len(cases)} cases: " + (", ".join(
        f"prompt {c['prompt_name']}" if c["prompt_name"] else f"dimensions {c['dimensions']}" for c in cases) or "none"))
    mistakes = build_mistakes(entry, pytorch_dir, batch, embeddings, dense, cases, ref, tokenize)
    from .manifest import write_json

    (root / "reference").mkdir(exist_ok=True)
    write_json(root / "reference" / "embeddings.json", {
        "model": entry.id,
        "library": ref.name,
        "max_seq_length": entry.max_seq_length,
        "texts": batch.texts,
        "token_counts": token_counts,
        "truncated": truncated,
        "embeddings": _rows(embeddings),
        "cases": cases,
        "mistakes": [m.as_json() for m in mistakes],
    })
    return embeddings
