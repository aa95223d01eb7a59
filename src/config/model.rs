//! `[model]`, `[model.batch]` and `[model.random]`: which encoder runs, where its
//! files are (relative paths are taken from the config file's directory) and how
//! texts are batched. Validates into a [`ModelSpec`] and [`BatchLimits`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::model::{BatchLimits, EncoderConfig, EncoderSpec, MatmulMode, ModelSpec};

/// Vocabulary of the XLM-R tokenizer (the random encoder must cover it).
const XLMR_VOCAB: usize = 250_037;

/// `[model]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawModel {
    /// `e5-small` (the real weights) or `random` (small random encoder).
    pub encoder: String,
    /// Directory holding the files fetched by `scripts/setup.sh`.
    pub dir: PathBuf,
    pub weights: Option<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    pub sentiment_head: Option<PathBuf>,
    pub category_head: Option<PathBuf>,
    /// Encoder adapter (LoRA) the sentiment head was trained with; merged
    /// into the weights at load. Default `<dir>/adapters/sentiment-lora.safetensors`.
    pub adapter: Option<PathBuf>,
    /// Most tokens read of one text, special tokens included; the rest is
    /// cut and the text marked truncated.
    pub max_tokens: usize,
    /// Most tokens per encoder window: a longer text is read in several
    /// windows whose embeddings are averaged (the adapter is trained on
    /// texts cut to 128 tokens; one 512-token window reads long reviews worse).
    pub window_tokens: usize,
    /// `auto` (int8 on the CPU, f32 on CUDA), `int8` (unpadded Q4 x Q8
    /// integer kernels, CPU), `f32` (candle, dequantised dense GEMM) or `q4`
    /// (candle quantised matmul).
    pub matmul: MatmulMode,
    pub batch: RawBatch,
    pub random: RawRandom,
}

impl Default for RawModel {
    fn default() -> Self {
        Self {
            encoder: "e5-small".into(),
            dir: PathBuf::from("models"),
            weights: None,
            tokenizer: None,
            sentiment_head: None,
            category_head: None,
            adapter: None,
            max_tokens: 2048,
            window_tokens: 256,
            matmul: MatmulMode::default(),
            batch: RawBatch::default(),
            random: RawRandom::default(),
        }
    }
}

/// `[model.batch]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawBatch {
    /// Padded tokens per batch.
    pub max_tokens: usize,
    /// Texts per batch.
    pub max_batch: usize,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self {
            max_tokens: 4096,
            max_batch: 64,
        }
    }
}

/// `[model.random]`: the small random encoder used by volume tests.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRandom {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub seed: u64,
}

impl Default for RawRandom {
    fn default() -> Self {
        Self {
            hidden: 64,
            layers: 2,
            heads: 4,
            intermediate: 128,
            seed: 7,
        }
    }
}

/// Upper bound of `model.max_tokens`: 16 windows of 512, 128 KiB of text.
pub const MAX_TOKENS_CAP: usize = 8192;

impl RawModel {
    /// Checks the section and resolves its paths against `base`. Pure: reads no files.
    pub fn validate(self, base: &Path) -> Result<(ModelSpec, BatchLimits), ConfigError> {
        let m = self;
        let dir = if m.dir.is_absolute() {
            m.dir.clone()
        } else {
            base.join(&m.dir)
        };
        let in_dir = |p: Option<PathBuf>, name: &str| -> PathBuf {
            match p {
                Some(p) if p.is_absolute() => p,
                Some(p) => base.join(p),
                None => dir.join(name),
            }
        };
        if !(8..=512).contains(&m.window_tokens) {
            return Err(ConfigError::Invalid {
                field: "model.window_tokens",
                message: format!(
                    "{} is outside 8..=512 (the encoder has 512 positions; a window needs <s>, the prefix, text and </s>)",
                    m.window_tokens
                ),
            });
        }
        if !(3..=MAX_TOKENS_CAP).contains(&m.max_tokens) {
            return Err(ConfigError::Invalid {
                field: "model.max_tokens",
                message: format!(
                    "{} is outside 3..={MAX_TOKENS_CAP} (tokens read of one text, read in windows of model.window_tokens)",
                    m.max_tokens
                ),
            });
        }
        if m.batch.max_batch == 0 {
            return Err(ConfigError::Invalid {
                field: "model.batch.max_batch",
                message: "must be at least 1".into(),
            });
        }
        if m.batch.max_tokens < m.window_tokens {
            return Err(ConfigError::Invalid {
                field: "model.batch.max_tokens",
                message: format!(
                    "{} is below model.window_tokens = {}; a full window must fit in one batch",
                    m.batch.max_tokens, m.window_tokens
                ),
            });
        }
        let (encoder, sentiment_head) = match m.encoder.as_str() {
            "e5-small" => (
                EncoderSpec::E5s1 {
                    weights: in_dir(m.weights, "e5-small-q4.bin"),
                },
                Some(in_dir(m.sentiment_head, "heads/sentiment.json")),
            ),
            "random" => {
                let r = m.random;
                if r.hidden == 0 || r.heads == 0 || !r.hidden.is_multiple_of(r.heads) || !r.hidden.is_multiple_of(32) {
                    return Err(ConfigError::Invalid {
                        field: "model.random.hidden",
                        message: format!(
                            "hidden = {} must be a positive multiple of 32 and of heads = {}",
                            r.hidden, r.heads
                        ),
                    });
                }
                if r.intermediate == 0 || !r.intermediate.is_multiple_of(32) {
                    return Err(ConfigError::Invalid {
                        field: "model.random.intermediate",
                        message: format!("{} must be a positive multiple of 32", r.intermediate),
                    });
                }
                let cfg = EncoderConfig {
                    hidden: r.hidden,
                    layers: r.layers,
                    heads: r.heads,
                    intermediate: r.intermediate,
                    vocab: XLMR_VOCAB,
                    max_positions: 512,
                    type_vocab: 1,
                    layer_norm_eps: 1e-12,
                };
                (
                    EncoderSpec::Random { cfg, seed: r.seed },
                    m.sentiment_head.map(|p| in_dir(Some(p), "")),
                )
            }
            other => {
                return Err(ConfigError::Invalid {
                    field: "model.encoder",
                    message: format!("unknown encoder `{other}`: use `e5-small` or `random`"),
                })
            }
        };
        let category_head = match (&encoder, m.category_head) {
            (_, Some(p)) => Some(in_dir(Some(p), "")),
            (EncoderSpec::E5s1 { .. }, None) => Some(dir.join("heads/category.json")),
            (EncoderSpec::Random { .. }, None) => None,
        };
        Ok((
            ModelSpec {
                encoder,
                tokenizer: in_dir(m.tokenizer, "tokenizer.json"),
                sentiment_head,
                category_head,
                adapter: Some(in_dir(m.adapter, "adapters/sentiment-lora.safetensors")),
                max_tokens: m.max_tokens,
                window_tokens: m.window_tokens,
                matmul: m.matmul,
                threads: 0,
            },
            BatchLimits {
                max_tokens: m.batch.max_tokens,
                max_batch: m.batch.max_batch,
            },
        ))
    }
}
