//! Tokenization as the contract fixes it: the model's tokenizer.json, special tokens added, truncation
//! at `max_seq_length` (special tokens included), right padding to the batch's longest row.

use crate::error::ApiError;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// A padded batch of token ids, row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
}

impl TokenBatch {
    /// Real (unpadded) token count of each row.
    pub fn lengths(&self) -> Vec<usize> {
        self.attention_mask.chunks(self.seq.max(1)).map(|row| row.iter().filter(|&&m| m != 0).count()).collect()
    }

    /// Real tokens in the batch: special tokens included, padding excluded.
    pub fn token_count(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m != 0).count()
    }
}

/// The model's tokenizer, set up for serving.
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_seq_length: usize,
    pad_id: u32,
}

impl TextTokenizer {
    /// Loads `pytorch/tokenizer.json` from a model folder.
    pub fn load(model_dir: &Path, max_seq_length: usize) -> Result<Self> {
        let dir = model_dir.join("pytorch");
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| anyhow!("cannot load {}: {e}", path.display()))?;
        let pad_id = find_pad_id(&tokenizer, &dir)?;
        Self::new(tokenizer, max_seq_length, pad_id)
    }

    /// Wraps a tokenizer; padding and truncation settings of its own are replaced by the contract's.
    pub fn new(mut tokenizer: Tokenizer, max_seq_length: usize, pad_id: u32) -> Result<Self> {
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| anyhow!("cannot truncate at max_seq_length={max_seq_length}: {e}"))?;
        Ok(Self { tokenizer, max_seq_length, pad_id })
    }

    /// Tokenizes one request's texts and pads them to the longest. With `truncate` false a text over
    /// `max_seq_length` tokens is a validation error naming it.
    pub fn encode(&self, texts: &[String], truncate: bool) -> Result<TokenBatch, ApiError> {
        self.encode_with_prompt(texts, "", truncate)
    }

    /// [`Self::encode`] with `prompt` prepended to every text.
    pub fn encode_with_prompt(&self, texts: &[String], prompt: &str, truncate: bool) -> Result<TokenBatch, ApiError> {
        let rows = self.encode_rows(texts, prompt, truncate)?;
        Ok(self.pad(&rows.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }

    /// Tokenizes one request's texts, unpadded: the token ids of each text with `prompt` prepended as
    /// a plain string (empty: none), special tokens included, truncated at `max_seq_length` (or, with
    /// `truncate` false, rejected when longer): the prompt's tokens count toward the limit.
    pub fn encode_rows(&self, texts: &[String], prompt: &str, truncate: bool) -> Result<Vec<Vec<u32>>, ApiError> {
        // One text at a time: the batch call would fan out on rayon's pool, competing with inference.
        let mut rows = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let prompted;
            let text = if prompt.is_empty() {
                text.as_str()
            } else {
                prompted = format!("{prompt}{text}");
                prompted.as_str()
            };
            let encoding = self
                .tokenizer
                .encode_fast(text, true)
                .map_err(|e| ApiError::validation(format!("\"inputs\"[{i}] cannot be tokenized: {e}")))?;
            if !truncate && !encoding.get_overflowing().is_empty() {
                let total = encoding.get_ids().len()
                    + encoding.get_overflowing().iter().map(|o| o.get_ids().len()).sum::<usize>();
                return Err(ApiError::validation(format!(
                    "\"inputs\"[{i}] is longer than max_seq_length={} tokens (about {total} tokens) and \"truncate\" is false",
                    self.max_seq_length
                )));
            }
            rows.push(encoding.get_ids().to_vec());
        }
        Ok(rows)
    }

    /// Pads rows (of one request or of a whole batch) on the right to the longest, with the model's pad id.
    pub fn pad(&self, rows: &[&[u32]]) -> TokenBatch {
        pad_right(rows, self.pad_id)
    }

    /// The id padding positions get.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}

/// Pads rows on the right to the longest with `pad_id`.
pub fn pad_right(rows: &[&[u32]], pad_id: u32) -> TokenBatch {
    let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut input_ids = Vec::with_capacity(rows.len() * seq);
    let mut attention_mask = Vec::with_capacity(rows.len() * seq);
    for &row in rows {
        input_ids.extend_from_slice(row);
        input_ids.extend(std::iter::repeat_n(pad_id, seq - row.len()));
        attention_mask.extend(std::iter::repeat_n(1, row.len()));
        attention_mask.extend(std::iter::repeat_n(0, seq - row.len()));
    }
    TokenBatch { batch: rows.len(), seq, input_ids, attention_mask }
}

/// The pad id the Python servers use: the tokenizer's own padding setting, else `pad_token` from
/// tokenizer_config.json, else `pad_token_id` from config.json.
fn find_pad_id(tokenizer: &Tokenizer, dir: &Path) -> Result<u32> {
    if let Some(padding) = tokenizer.get_padding() {
        return Ok(padding.pad_id);
    }
    let read_json = |name: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    if let Some(config) = read_json("tokenizer_config.json") {
        let token = match &config["pad_token"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_owned),
            _ => None,
        };
        if let Some(token) = token {
            return tokenizer.token_to_id(&token).with_context(|| {
                format!("tokenizer_config.json names pad_token \"{token}\", which tokenizer.json lacks")
            });
        }
    }
    if let Some(id) = read_json("config.json").and_then(|c| c["pad_token_id"].as_u64()) {
        return Ok(u32::try_from(id)?);
    }
    bail!("{}: no pad token: tokenizer.json has no padding, tokenizer_config.json no pad_token, config.json no pad_token_id", dir.display())
}

/// Test fixtures shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    use tokenizers::processors::template::TemplateProcessing;

    /// A word-level tokenizer with BERT-style special tokens: [CLS] text [SEP].
    pub(crate) fn tiny_tokenizer(max_seq_length: usize) -> TextTokenizer {
        TextTokenizer::new(tiny_raw_tokenizer(), max_seq_length, 0).unwrap()
    }

    /// The tokenizer of [`tiny_tokenizer`], as tokenizer.json would hold it.
    pub(crate) fn tiny_raw_tokenizer() -> Tokenizer {
        let vocab = [("[PAD]", 0), ("[UNK]", 1), ("[CLS]", 2), ("[SEP]", 3), ("a", 4), ("b", 5), ("c", 6)]
            .into_iter()
            .map(|(t, i)| (t.to_string(), i))
            .collect();
        let model = WordLevel::builder().vocab(vocab).unk_token("[UNK]".into()).build().unwrap();
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        tokenizer.with_post_processor(Some(
            TemplateProcessing::builder()
                .try_single("[CLS] $A [SEP]")
                .unwrap()
                .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
                .build()
                .unwrap(),
        ));
        tokenizer
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::tiny_tokenizer;

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pads_right_to_the_longest_row() {
        let b = tiny_tokenizer(16).encode(&texts(&["a b c", "a", ""]), true).unwrap();
        assert_eq!((b.batch, b.seq), (3, 5));
        assert_eq!(b.input_ids, vec![2, 4, 5, 6, 3, 2, 4, 3, 0, 0, 2, 3, 0, 0, 0]);
        assert_eq!(b.attention_mask, vec![1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(b.lengths(), vec![5, 3, 2]);
        assert_eq!(b.token_count(), 10);
    }

    #[test]
    fn rows_are_unpadded_and_pad_to_the_same_batch() {
        let t = tiny_tokenizer(16);
        let rows = t.encode_rows(&texts(&["a b c", "a", ""]), "", true).unwrap();
        assert_eq!(rows, vec![vec![2, 4, 5, 6, 3], vec![2, 4, 3], vec![2, 3]]);
        let slices: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        assert_eq!(t.pad(&slices), t.encode(&texts(&["a b c", "a", ""]), true).unwrap());
        assert_eq!(t.pad_id(), 0);
    }

    #[test]
    fn a_prompt_is_prepended_before_tokenization_and_counts_toward_the_limit() {
        let t = tiny_tokenizer(5);
        let rows = t.encode_rows(&texts(&["a", ""]), "c ", true).unwrap();
        assert_eq!(rows, vec![vec![2, 6, 4, 3], vec![2, 6, 3]]);
        // "c " + "a b c": 6 tokens with [CLS] and [SEP], one over the limit.
        assert_eq!(t.encode_rows(&texts(&["a b c"]), "c ", true).unwrap(), vec![vec![2, 6, 4, 5, 3]]);
        let e = t.encode_rows(&texts(&["a b c"]), "c ", false).unwrap_err();
        assert!(e.message.contains("max_seq_length=5"), "{}", e.message);
        assert!(t.encode_rows(&texts(&["a b c"]), "", false).is_ok(), "5 tokens without the prompt");
        assert_eq!(t.encode_with_prompt(&texts(&["a"]), "c ", true).unwrap().input_ids, vec![2, 6, 4, 3]);
    }

    #[test]
    fn truncates_to_max_seq_length_special_tokens_included() {
        let b = tiny_tokenizer(4).encode(&texts(&["a b c a b c"]), true).unwrap();
        assert_eq!(b.input_ids, vec![2, 4, 5, 3]);
    }

    #[test]
    fn a_text_of_exactly_max_seq_length_passes_without_truncation() {
        let b = tiny_tokenizer(5).encode(&texts(&["a b c"]), false).unwrap();
        assert_eq!(b.seq, 5);
    }

    #[test]
    fn over_long_text_is_rejected_when_truncate_is_false() {
        let e = tiny_tokenizer(4).encode(&texts(&["a", "a b c"]), false).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Validation);
        assert!(e.message.contains("\"inputs\"[1]") && e.message.contains("max_seq_length=4"), "{}", e.message);
    }
}
