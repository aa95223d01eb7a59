//! Tokenisation with the model's own `tokenizer.json` (XLM-R SentencePiece
//! Unigram), the E5 `query: ` prefix, and truncation to the model window.
//!
//! Runs on any thread (the pipeline gives it a pool); never on the inference thread.

use super::ModelError;
use std::path::Path;

/// The E5 models expect this prefix on symmetric tasks such as classification.
pub const QUERY_PREFIX: &str = "query: ";

/// Bytes of text looked at before tokenisation. A 512-token window never
/// needs more (the longest piece is 16 UTF-8 bytes); the rest is cut and the
/// text is marked truncated. Bounds the work an oversize input can cause.
pub const MAX_TEXT_BYTES: usize = 512 * 16;

/// One tokenised text: `<s> ... </s>` ids, ready for batching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// True when tokens (or bytes) beyond the window were dropped.
    pub truncated: bool,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Wrapper around a `tokenizers::Tokenizer` with E5 conventions.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_tokens: usize,
    eos: u32,
}

impl Tokenizer {
    /// Loads `tokenizer.json`; `max_tokens` counts the special tokens.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self, ModelError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let eos = inner.token_to_id("</s>").ok_or_else(|| ModelError::Tokenizer {
            path: path.display().to_string(),
            message: "vocabulary has no `</s>` token; is this an XLM-R tokenizer?".into(),
        })?;
        if max_tokens < 3 {
            return Err(ModelError::Config(format!(
                "max_tokens = {max_tokens} is too small: it must leave room for <s>, </s> and one token"
            )));
        }
        Ok(Self { inner, max_tokens, eos })
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenises one text. Empty or whitespace-only text is an error the caller
    /// reports per item; it never reaches the model.
    pub fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        if text.trim().is_empty() {
            return Err(ModelError::EmptyText);
        }
        let (head, cut_bytes) = if text.len() > MAX_TEXT_BYTES {
            let mut end = MAX_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (&text[..end], true)
        } else {
            (text, false)
        };
        let input = format!("{QUERY_PREFIX}{head}");
        let enc = self
            .inner
            .encode(input.as_str(), true)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        let mut truncated = cut_bytes;
        if ids.len() > self.max_tokens {
            ids.truncate(self.max_tokens - 1);
            ids.push(self.eos);
            truncated = true;
        }
        Ok(Encoded { ids, truncated })
    }
}
