//! Tokenisation with the model's own `tokenizer.json` (XLM-R SentencePiece
//! Unigram), the E5 `query: ` prefix, truncation to `max_tokens`, and the cut
//! of a long text into encoder windows.
//!
//! Windows: a text longer than the window (`with_window`) is read as several
//! well-formed sequences, `<s> query: piece.. </s>` each, cut at piece
//! boundaries; the encoder embeds each and averages them (weighted by
//! tokens) into the text's one embedding. The sentiment adapter is trained on
//! texts cut to 128 tokens, and a full review read in one 512-token window is
//! far from anything it saw: on held-out full movie reviews 256-token windows
//! raise binary accuracy from 0.705 to 0.849 (models/README.md).
//!
//! The normaliser and pre-tokeniser are the `tokenizers` crate's own, built
//! from the file; the Unigram model is ours: the same Viterbi search
//! (SentencePiece's optimised encoder, scores in f64, ties kept by the first
//! candidate, unknown characters fused into one `<unk>`), over a sorted piece
//! table instead of the crate's node-per-byte hash trie. That trie held about
//! 290 MB for the 250k-piece vocabulary; this table holds about 10 MB. The
//! tests check ids against the crate's full tokenizer on every fixture text.
//!
//! Runs on any thread (the pipeline gives it a pool); never on the inference
//! thread. Cloning is cheap (shared tables).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

use super::ModelError;

/// The E5 models expect this prefix on symmetric tasks such as classification.
pub const QUERY_PREFIX: &str = "query: ";

/// Bytes of text looked at per token of `max_tokens` before tokenisation:
/// `max_tokens` pieces never need more (the longest piece is 16 UTF-8 bytes);
/// the rest is cut and the text is marked truncated. Bounds the work an
/// oversize input can cause.
pub const BYTES_PER_TOKEN: usize = 16;

/// One tokenised text: one or more windows, `<s> ... </s>` each, end to end,
/// ready for batching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The windows' ids, end to end.
    pub ids: Vec<u32>,
    /// True when tokens (or bytes) beyond `max_tokens` were dropped.
    pub truncated: bool,
    /// Length of each window in `ids`, in order (one entry for a text that
    /// fits in one window); they sum to `ids.len()`.
    pub windows: Vec<usize>,
}

impl Encoded {
    /// One window holding all of `ids`.
    pub fn single(ids: Vec<u32>, truncated: bool) -> Self {
        let windows = vec![ids.len()];
        Self {
            ids,
            truncated,
            windows,
        }
    }

    /// Tokens over all windows.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The windows' ids, in order.
    pub fn window_ids(&self) -> impl Iterator<Item = &[u32]> {
        self.windows.iter().scan(0usize, |at, &n| {
            let w = &self.ids[*at..*at + n];
            *at += n;
            Some(w)
        })
    }
}

/// E5-conventions tokenizer: special-token split, normalise, pre-tokenise,
/// Unigram Viterbi, `<s> .. </s>`, truncation.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
    max_tokens: usize,
    window: usize,
    /// Piece ids of [`QUERY_PREFIX`], repeated at the start of every window.
    prefix: Vec<u32>,
}

struct Inner {
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    /// Added tokens matched verbatim in the raw text, longest first.
    specials: Vec<(String, u32)>,
    pieces: Pieces,
    bos: u32,
    eos: u32,
    vocab_size: usize,
}

/// The parts of `tokenizer.json` we read.
#[derive(Deserialize)]
struct FileJson {
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    #[serde(default)]
    added_tokens: Vec<AddedJson>,
    model: ModelJson,
}

#[derive(Deserialize)]
struct AddedJson {
    id: u32,
    content: String,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    unk_id: Option<u32>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

/// Unigram pieces: one byte buffer, offsets, scores, and ids sorted by bytes
/// (a prefix search narrows a range of that order one byte at a time).
struct Pieces {
    bytes: Vec<u8>,
    starts: Vec<u32>,
    scores: Vec<f64>,
    sorted: Vec<u32>,
    unk: u32,
    unk_score: f64,
}

/// Score below the lowest piece given to an unknown character (SentencePiece's value).
const UNK_PENALTY: f64 = 10.0;

impl Pieces {
    fn new(vocab: Vec<(String, f64)>, unk: u32) -> Self {
        let mut bytes = Vec::with_capacity(vocab.iter().map(|(p, _)| p.len()).sum());
        let mut starts = Vec::with_capacity(vocab.len() + 1);
        let mut scores = Vec::with_capacity(vocab.len());
        starts.push(0);
        for (piece, score) in &vocab {
            bytes.extend_from_slice(piece.as_bytes());
            starts.push(bytes.len() as u32);
            scores.push(*score);
        }
        let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let mut p = Self {
            bytes,
            starts,
            scores,
            sorted: (0..vocab.len() as u32).collect(),
            unk,
            unk_score: min - UNK_PENALTY,
        };
        let mut sorted = std::mem::take(&mut p.sorted);
        sorted.sort_by(|&a, &b| p.piece(a).cmp(p.piece(b)));
        p.sorted = sorted;
        p
    }

    fn piece(&self, id: u32) -> &[u8] {
        &self.bytes[self.starts[id as usize] as usize..self.starts[id as usize + 1] as usize]
    }

    /// Calls `found(len, id)` for every piece that is a prefix of `s`, shortest first.
    fn prefixes(&self, s: &[u8], mut found: impl FnMut(usize, u32)) {
        let (mut lo, mut hi) = (0, self.sorted.len());
        for (d, &b) in s.iter().enumerate() {
            // [lo, hi) share s[..d]; the piece equal to s[..d] (if any) sorts first.
            let range = &self.sorted[lo..hi];
            let first = range.partition_point(|&id| {
                let p = self.piece(id);
                p.len() <= d || p[d] < b
            });
            let count = range[first..].partition_point(|&id| self.piece(id)[d] <= b);
            lo += first;
            hi = lo + count;
            if lo == hi {
                return;
            }
            let id = self.sorted[lo];
            if self.piece(id).len() == d + 1 {
                found(d + 1, id);
            }
        }
    }

    /// Best segmentation of one pre-token (Viterbi over the piece lattice).
    fn encode(&self, word: &str, out: &mut Vec<u32>) {
        #[derive(Clone, Copy)]
        struct Best {
            id: u32,
            score: f64,
            from: Option<usize>,
        }
        let s = word.as_bytes();
        let mut best = vec![
            Best {
                id: 0,
                score: 0.0,
                from: None
            };
            s.len() + 1
        ];
        let mut at = 0;
        while at < s.len() {
            let here = best[at].score;
            let char_len = word[at..].chars().next().map_or(1, char::len_utf8);
            let mut single = false;
            self.prefixes(&s[at..], |len, id| {
                let cand = self.scores[id as usize] + here;
                let node = &mut best[at + len];
                if node.from.is_none() || cand > node.score {
                    *node = Best {
                        id,
                        score: cand,
                        from: Some(at),
                    };
                }
                single |= len == char_len;
            });
            if !single {
                let cand = self.unk_score + here;
                let node = &mut best[at + char_len];
                if node.from.is_none() || cand > node.score {
                    *node = Best {
                        id: self.unk,
                        score: cand,
                        from: Some(at),
                    };
                }
            }
            at += char_len;
        }
        let first = out.len();
        let mut end = s.len();
        while end > 0 {
            let node = best[end];
            // Consecutive unknown characters become one `<unk>`.
            if !(node.id == self.unk && out.len() > first && out.last() == Some(&self.unk)) {
                out.push(node.id);
            }
            end = node.from.expect("every position is reachable");
        }
        out[first..].reverse();
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`; `max_tokens` counts the special tokens and is
    /// also the window (one window per text; see [`Tokenizer::with_window`]).
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<Self, ModelError> {
        let err = |source: String| ModelError::Tokenizer {
            path: path.display().to_string(),
            source: source.into(),
        };
        if max_tokens < 3 {
            return Err(ModelError::Config(format!(
                "max_tokens = {max_tokens} is too small: it must leave room for <s>, </s> and one token"
            )));
        }
        let file = std::fs::File::open(path).map_err(|e| ModelError::Tokenizer {
            path: path.display().to_string(),
            source: e.into(),
        })?;
        let json: FileJson = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| err(format!("not a tokenizer.json this build understands: {e}")))?;
        if json.model.kind != "Unigram" || json.model.byte_fallback {
            return Err(err(format!(
                "model type `{}`{} is not supported: earshot reads XLM-R SentencePiece Unigram tokenizers",
                json.model.kind,
                if json.model.byte_fallback {
                    " with byte fallback"
                } else {
                    ""
                }
            )));
        }
        let find = |name: &str| -> Result<u32, ModelError> {
            json.added_tokens
                .iter()
                .find(|t| t.content == name)
                .map(|t| t.id)
                .or_else(|| json.model.vocab.iter().position(|(p, _)| p == name).map(|i| i as u32))
                .ok_or_else(|| err(format!("vocabulary has no `{name}` token; is this an XLM-R tokenizer?")))
        };
        let (bos, eos) = (find("<s>")?, find("</s>")?);
        let unk = json
            .model
            .unk_id
            .ok_or_else(|| err("the Unigram model has no `unk_id`".into()))?;
        let vocab_size = json
            .model
            .vocab
            .len()
            .max(json.added_tokens.iter().map(|t| t.id as usize + 1).max().unwrap_or(0));
        let mut specials: Vec<(String, u32)> = json.added_tokens.into_iter().map(|t| (t.content, t.id)).collect();
        specials.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        let mut tok = Self {
            inner: Arc::new(Inner {
                normalizer: json.normalizer,
                pre_tokenizer: json.pre_tokenizer,
                specials,
                pieces: Pieces::new(json.model.vocab, unk),
                bos,
                eos,
                vocab_size,
            }),
            max_tokens,
            window: max_tokens,
            prefix: Vec::new(),
        };
        let mut prefix = Vec::new();
        tok.pieces_of(QUERY_PREFIX.trim_end(), &mut prefix)?;
        tok.prefix = prefix;
        Ok(tok)
    }

    /// Cuts texts longer than `window` tokens (special tokens and the prefix
    /// included) into several windows of at most that length; `max_tokens`
    /// still bounds what is read of a text. A window must leave room for
    /// `<s>`, the prefix, one piece and `</s>`.
    pub fn with_window(mut self, window: usize) -> Result<Self, ModelError> {
        let least = self.prefix.len() + 3;
        if window < least {
            return Err(ModelError::Config(format!(
                "window_tokens = {window} is too small: a window needs {least} (<s>, `{QUERY_PREFIX}`, one piece, </s>)"
            )));
        }
        self.window = window;
        Ok(self)
    }

    /// Most tokens read of one text (special tokens and prefix counted once).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Most tokens in one encoder window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    /// Tokenises one text. Empty or whitespace-only text is an error the caller
    /// reports per item; it never reaches the model.
    pub fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        if text.trim().is_empty() {
            return Err(ModelError::EmptyText);
        }
        let max_bytes = self.max_tokens * BYTES_PER_TOKEN;
        let (head, cut_bytes) = if text.len() > max_bytes {
            let mut end = max_bytes;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (&text[..end], true)
        } else {
            (text, false)
        };
        let input = format!("{QUERY_PREFIX}{head}");
        let mut ids = vec![self.inner.bos];
        self.pieces_of(&input, &mut ids)?;
        ids.push(self.inner.eos);
        let mut truncated = cut_bytes;
        if ids.len() > self.max_tokens {
            ids.truncate(self.max_tokens - 1);
            ids.push(self.inner.eos);
            truncated = true;
        }
        Ok(self.cut_windows(ids, truncated))
    }

    /// Cuts `<s> prefix pieces </s>` into the fewest windows of at most
    /// `self.window` tokens, each `<s> prefix part </s>`, parts of even length. Texts that fit (or whose ids do
    /// not start with the prefix, which the E5 prefix always yields) stay whole.
    fn cut_windows(&self, ids: Vec<u32>, truncated: bool) -> Encoded {
        let p = self.prefix.len();
        if ids.len() <= self.window || ids.len() < p + 2 || ids[1..1 + p] != self.prefix[..] {
            return Encoded::single(ids, truncated);
        }
        let body = &ids[1 + p..ids.len() - 1];
        // As few windows as fit, of even length (no short last window).
        let n = body.len().div_ceil(self.window - p - 2);
        let mut out = Vec::with_capacity(ids.len() + n * (p + 2));
        let mut windows = Vec::with_capacity(n);
        for part in body.chunks(body.len().div_ceil(n)) {
            out.push(self.inner.bos);
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(part);
            out.push(self.inner.eos);
            windows.push(part.len() + p + 2);
        }
        Encoded {
            ids: out,
            truncated,
            windows,
        }
    }

    /// Appends the piece ids of `text` (no `<s>`/`</s>`): added tokens found
    /// verbatim keep their ids; the text between them is normalised,
    /// pre-tokenised and segmented.
    fn pieces_of(&self, text: &str, out: &mut Vec<u32>) -> Result<(), ModelError> {
        let mut rest = text;
        while !rest.is_empty() {
            let next = self
                .inner
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by_key(|&(at, len, _)| (at, std::cmp::Reverse(len)));
            let (plain, special) = match next {
                Some((at, len, id)) => (&rest[..at], Some((len, id, at))),
                None => (rest, None),
            };
            if !plain.is_empty() {
                self.segment(plain, out)?;
            }
            match special {
                Some((len, id, at)) => {
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => break,
            }
        }
        Ok(())
    }

    fn segment(&self, text: &str, out: &mut Vec<u32>) -> Result<(), ModelError> {
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| ModelError::Tokenize(e.to_string());
        let mut normalized = NormalizedString::from(text);
        if let Some(n) = &self.inner.normalizer {
            n.normalize(&mut normalized).map_err(fail)?;
        }
        let mut pre = PreTokenizedString::from(normalized);
        if let Some(p) = &self.inner.pre_tokenizer {
            p.pre_tokenize(&mut pre).map_err(fail)?;
        }
        for (word, _, _) in pre.get_splits(OffsetReferential::Normalized, OffsetType::Byte) {
            if !word.is_empty() {
                self.inner.pieces.encode(word, out);
            }
        }
        Ok(())
    }
}
