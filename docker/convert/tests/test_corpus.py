"""The project corpus: size, languages, scripts."""

import unicodedata

from conftest import CORPUS_DIR

from embbench_convert.corpus import corpus_files, load_sentences


def test_corpus_has_300_sentences_in_8_languages():
    files = corpus_files(CORPUS_DIR)
    assert len(files) >= 8, [f.name for f in files]
    sentences = load_sentences(CORPUS_DIR)
    assert len(sentences) >= 300
    assert len(set(sentences)) == len(sentences), "duplicate sentences in the corpus"
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines()
        assert all(line.strip() == line and line for line in lines), f"{f.name}: blank or padded line"


def test_corpus_covers_cjk_cyrillic_arabic_and_emoji():
    text = "".join(load_sentences(CORPUS_DIR))
    names = {unicodedata.name(c, "").split(" ")[0] for c in text}
    for script in ("CJK", "HIRAGANA", "HANGUL", "CYRILLIC", "ARABIC", "DEVANAGARI"):
        assert script in names, f"no {script} characters"
    assert any(0x1F300 <= ord(c) <= 0x1FAFF for c in text), "no emoji"
