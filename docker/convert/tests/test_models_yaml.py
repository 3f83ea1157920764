"""models.yaml's pipeline fields (attention, dense, prompts, dimensions) and the sentence-transformers
modules they must agree with: each wrong value is a ConfigError naming the field."""

import copy
import json

import pytest
import yaml

from conftest import MODELS_FILE
from embbench_convert.config import load_entry
from embbench_convert.errors import ConfigError
from embbench_convert.modules import check_pipeline, read_pipeline, write_layout


def entry_with(tmp_path, model, **changes):
    doc = yaml.safe_load(MODELS_FILE.read_text())
    raw = copy.deepcopy(doc["models"][model])
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    doc["models"][model] = raw
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return load_entry(path, model)


def test_every_text_model_of_models_yaml_loads():
    for model in ("bge-m3", "embeddinggemma-300m", "qwen3-embedding-0.6b", "tiny-xlmr", "minilm", "tiny-qwen3",
                  "tiny-gemma3"):
        entry = load_entry(MODELS_FILE, model)
        assert entry.dimensions["max"] == entry.embedding_dim


@pytest.mark.parametrize(
    "model, changes, message",
    [
        ("tiny-gemma3", {"attention": "sideways"},
         ".attention is 'sideways': expected one of bidirectional, causal"),
        ("tiny-qwen3", {"attention": "bidirectional"},
         ".attention is 'bidirectional': architecture qwen3 runs causal attention"),
        ("tiny-gemma3", {"dense": None}, "models.tiny-gemma3.dense is missing"),
        ("tiny-gemma3", {"dense": [{"in": 64, "out": 256, "bias": False, "activation": "tanh"}]},
         "models.tiny-gemma3.dense[0].activation is 'tanh': expected one of identity"),
        ("tiny-gemma3", {"dense": [{"in": 64, "out": 256, "bias": False, "activation": "identity"},
                                   {"in": 128, "out": 64, "bias": False, "activation": "identity"}]},
         "models.tiny-gemma3.dense[1].in is 128 but dense[0].out is 256"),
        ("tiny-gemma3", {"dense": [{"in": 64, "out": 256, "bias": False, "activation": "identity"}]},
         "dense[0].out is 256: the last Dense layer must give embedding_dim 64"),
        ("tiny-gemma3", {"dense": [{"in": 64, "out": 64, "bias": "no", "activation": "identity"}]},
         "dense[0].bias must be true or false, found 'no'"),
        ("tiny-gemma3", {"dimensions": [16, 32]}, "dimensions is [16, 32]: its largest size must be embedding_dim 64"),
        ("tiny-qwen3", {"dimensions": {"min": 0}}, "dimensions.min must be an integer from 1 to embedding_dim 64"),
        ("tiny-qwen3", {"dimensions": {"low": 8}}, "dimensions must be a list of sizes or {min: N}"),
        ("tiny-gemma3", {"prompts": {"query": 3}}, "prompts.query must be a string"),
        ("tiny-gemma3", {"prompts": {"my query": "q: "}}, "has the prompt name 'my query'"),
        ("tiny-gemma3", {"prompts": None}, "models.tiny-gemma3.prompts is missing"),
    ],
)
def test_wrong_pipeline_fields_name_the_field(tmp_path, model, changes, message):
    with pytest.raises(ConfigError) as e:
        entry_with(tmp_path, model, **changes)
    assert message in str(e.value)


def test_models_yaml_must_agree_with_the_sentence_transformers_modules(tmp_path):
    gemma = load_entry(MODELS_FILE, "tiny-gemma3")
    folder = tmp_path / "pytorch"
    write_layout(gemma, folder, 64, seed=1)
    pipeline = read_pipeline(folder)
    assert pipeline.pooling == "mean" and pipeline.normalize and [d.path for d in pipeline.dense] == ["2_Dense", "3_Dense"]
    check_pipeline(gemma, pipeline, "the folder")
    qwen = load_entry(MODELS_FILE, "tiny-qwen3")
    with pytest.raises(ConfigError, match="pooling is 'last_token' but the Pooling module in the folder says 'mean'"):
        check_pipeline(qwen, pipeline, "the folder")
    with pytest.raises(ConfigError, match="has no modules.json"):
        check_pipeline(gemma, None, "the folder")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 9, "name": "9", "path": "9_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match="has type 'sentence_transformers.models.LayerNorm'"):
        read_pipeline(folder)
