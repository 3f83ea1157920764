"""tiny-xlmr's tokenizer: libsentencepiece ids with the fairseq offset equal tokenizer.json ids.

The C++ server tokenizes with libsentencepiece and relies on exactly this mapping.
"""

import sentencepiece as spm
from tokenizers import Tokenizer

from conftest import CORPUS_DIR
from embbench_convert.corpus import load_sentences

EDGE_CASES = ["", " ", "Hi", "  double  spaces  ", "ﬁ ① ｶﾀｶﾅ Å", "tab\there", "unseen 𝔘𝔫 ☃ ✈︎", "ÄÖÜ ß", "x" * 300]


def fairseq_ids(sp, text):
    return [0] + [3 if i == sp.unk_id() else i + 1 for i in sp.encode(text)] + [2]


def test_tokenizer_json_matches_sentencepiece_with_fairseq_offset(tiny_xlmr):
    tok = Tokenizer.from_file(str(tiny_xlmr / "pytorch" / "tokenizer.json"))
    sp = spm.SentencePieceProcessor(model_file=str(tiny_xlmr / "pytorch" / "sentencepiece.bpe.model"))
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert [tok.token_to_id(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert tok.token_to_id("<mask>") == sp.get_piece_size() + 1
    assert 2000 <= sp.get_piece_size() <= 4000
    for text in load_sentences(CORPUS_DIR) + EDGE_CASES:
        assert tok.encode(text).ids == fairseq_ids(sp, text), repr(text)


def test_tokenizer_json_has_no_baked_truncation_or_padding(tiny_xlmr, minilm):
    import json

    for model in (tiny_xlmr, minilm):
        data = json.loads((model / "pytorch" / "tokenizer.json").read_text(encoding="utf-8"))
        assert data["truncation"] is None and data["padding"] is None, model.name
