//! Inference: tokenizer, encoder, heads, the `Classifier` trait and the
//! thread that owns a classifier.
//!
//! Contract: everything here is synchronous and free of I/O frameworks (no
//! tokio, Kafka, HTTP or metrics). Callers get durations and counts back and
//! record them themselves. A classifier is built once and then owned by one
//! [`worker::ClassifierThread`]; tokenisation happens on callers' threads.

pub mod adapter;
pub mod batch;
pub mod bert;
pub mod cpu;
pub mod e5s1;
pub mod exemplars;
pub mod heads;
pub mod lang;
pub mod lora;
pub mod qgemm;
mod simd;
pub mod tokenize;
pub mod train;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Device;

pub use batch::{BatchLimits, EncodedBatch};
pub use bert::{Encoder, EncoderConfig, MatmulMode};
use earshot_core::types::{Category, Scored, SentimentProbs};
pub use heads::{CategoryHead, Exemplars, SentimentHead};
pub use tokenize::{Encoded, Tokenizer};

/// Errors from loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Format(#[from] e5s1::E5s1Error),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot load tokenizer {path}: {source}")]
    Tokenizer {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("tokenisation failed: {0}")]
    Tokenize(String),
    #[error("cannot load head {path}: {source}")]
    Head {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("text is empty (nothing but whitespace); send a non-empty `text`")]
    EmptyText,
    #[error("batch of {tokens} tokens per text exceeds the model window of {max}")]
    TooLong { tokens: usize, max: usize },
    #[error("invalid device `{0}`: use `cpu`, `cuda` or `cuda:N`")]
    BadDevice(String),
    #[error("this build has no CUDA support; rebuild with `--features cuda` or use `--device cpu`")]
    NoCuda,
    #[error("model configuration: {0}")]
    Config(String),
    #[error("the inference thread has stopped")]
    WorkerGone,
}

/// Parses `cpu`, `cuda` or `cuda:N` into a candle device.
pub fn parse_device(spec: &str) -> Result<Device, ModelError> {
    let spec = spec.trim();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match spec.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ModelError::BadDevice(spec.to_string()))?,
        None => return Err(ModelError::BadDevice(spec.to_string())),
    };
    if !cfg!(feature = "cuda") {
        return Err(ModelError::NoCuda);
    }
    Ok(Device::new_cuda(ordinal)?)
}

/// What the classifier says about one text (before event metadata is added).
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    pub probs: SentimentProbs,
    pub category: Category,
    pub category_score: f32,
    pub embedding: Vec<f32>,
}

/// Synchronous batch classifier. Implementations own their model and are
/// driven by exactly one thread.
pub trait Classifier: Send {
    /// Classifies a padded batch; one result per text (not per window row), in order.
    fn classify(&mut self, batch: &EncodedBatch) -> Result<Vec<Inference>, ModelError>;
    /// Length of the embeddings returned.
    fn embedding_dim(&self) -> usize;
    /// Short description for logs and the `_info` metric.
    fn describe(&self) -> String;
}

/// Which encoder to build.
#[derive(Debug, Clone, PartialEq)]
pub enum EncoderSpec {
    /// The real multilingual-e5-small weights from an E5S1 file.
    E5s1 { weights: PathBuf },
    /// Random weights of the same architecture, smaller (tests, volume runs).
    Random { cfg: EncoderConfig, seed: u64 },
}

/// Everything needed to build the tokenizer and a classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub encoder: EncoderSpec,
    pub tokenizer: PathBuf,
    /// Sentiment head file; required for the real encoder.
    pub sentiment_head: Option<PathBuf>,
    /// Category head file; when absent the centroids are built at load time
    /// from the built-in prototype sentences.
    pub category_head: Option<PathBuf>,
    /// Encoder adapter file, merged into the weights when the sentiment head
    /// was trained with it (the head records its sha256).
    pub adapter: Option<PathBuf>,
    /// Most tokens read of one text (special tokens and prefix counted once).
    pub max_tokens: usize,
    /// Most tokens per encoder window; longer texts are read in several
    /// windows whose embeddings are averaged.
    pub window_tokens: usize,
    pub matmul: MatmulMode,
    /// Threads of the int8 encoder (0: one per core).
    pub threads: usize,
}

/// Encoder + heads.
pub struct E5Classifier {
    encoder: Encoder,
    sentiment: SentimentHead,
    category: CategoryHead,
    name: String,
}

impl E5Classifier {
    pub fn new(encoder: Encoder, sentiment: SentimentHead, category: CategoryHead, name: String) -> Self {
        Self {
            encoder,
            sentiment,
            category,
            name,
        }
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn sentiment_head(&self) -> &SentimentHead {
        &self.sentiment
    }

    pub fn category_head(&self) -> &CategoryHead {
        &self.category
    }

    /// How many labelled exemplars vote in the sentiment and the category
    /// head (0: the head alone), for the start-up log.
    pub fn exemplar_counts(&self) -> (usize, usize) {
        (
            self.sentiment.exemplars.as_ref().map_or(0, Exemplars::len),
            self.category.exemplars.as_ref().map_or(0, Exemplars::len),
        )
    }
}

/// Runs the encoder on a batch and returns one embedding per text, in order
/// (a text's windows pooled into one; see [`EncodedBatch::pool_texts`]).
pub fn embed(encoder: &Encoder, batch: &EncodedBatch) -> Result<Vec<Vec<f32>>, ModelError> {
    Ok(batch.pool_texts(encoder.embed_batch(batch)?))
}

impl Classifier for E5Classifier {
    fn classify(&mut self, batch: &EncodedBatch) -> Result<Vec<Inference>, ModelError> {
        let rows = embed(&self.encoder, batch)?;
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let probs = self.sentiment.probs_batch(&refs);
        let categories = self.category.predict_batch(&refs);
        Ok(rows
            .into_iter()
            .zip(probs)
            .zip(categories)
            .map(|((embedding, probs), (category, category_score))| Inference {
                probs,
                category,
                category_score,
                embedding,
            })
            .collect())
    }

    fn embedding_dim(&self) -> usize {
        self.encoder.config().hidden
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Prototype sentences per category and language, compiled into the binary.
pub const CATEGORY_PROTOTYPES: &str = include_str!("category_prototypes.toml");

/// Parses [`CATEGORY_PROTOTYPES`] into `(category, sentence)` pairs.
pub fn category_prototypes() -> Result<Vec<(Category, String)>, ModelError> {
    let table: toml::Table = CATEGORY_PROTOTYPES
        .parse()
        .map_err(|e| ModelError::Config(format!("category_prototypes.toml: {e}")))?;
    let mut out = Vec::new();
    for (cat_name, langs) in &table {
        let cat = Category::parse(cat_name)
            .ok_or_else(|| ModelError::Config(format!("category_prototypes.toml: unknown category `{cat_name}`")))?;
        for sentences in langs.as_table().into_iter().flat_map(|t| t.values()) {
            for s in sentences.as_array().into_iter().flatten() {
                if let Some(s) = s.as_str() {
                    out.push((cat, s.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// Embeds texts with an encoder in token-budget batches, preserving order.
pub fn embed_texts(
    tokenizer: &Tokenizer,
    encoder: &Encoder,
    texts: &[&str],
    limits: BatchLimits,
    pad_id: u32,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>, ModelError> {
    let encoded: Vec<Encoded> = texts.iter().map(|t| tokenizer.encode(t)).collect::<Result<_, _>>()?;
    let lengths: Vec<usize> = encoded.iter().map(Encoded::len).collect();
    let mut out = vec![Vec::new(); texts.len()];
    let mut done = 0;
    for group in batch::plan(&lengths, limits) {
        let b = EncodedBatch::pack(group.iter().map(|&i| &encoded[i]), pad_id);
        for (i, row) in group.iter().zip(embed(encoder, &b)?) {
            out[*i] = row;
        }
        done += group.len();
        progress(done);
    }
    Ok(out)
}

/// Pad token id of the XLM-R vocabulary.
pub const PAD_ID: u32 = 1;

/// A loaded model: tokenizer plus classifier, with the sizes callers need.
pub struct Loaded {
    pub tokenizer: Tokenizer,
    pub classifier: E5Classifier,
    pub load_time: Duration,
}

/// Loads the encoder described by `spec`, without an adapter (the
/// published weights).
pub fn load_encoder(spec: &ModelSpec, device: &Device) -> Result<Encoder, ModelError> {
    load_encoder_adapted(spec, None, device)
}

/// Loads the encoder described by `spec` with `adapter` merged into it.
pub fn load_encoder_adapted(
    spec: &ModelSpec,
    adapter: Option<&adapter::Adapter>,
    device: &Device,
) -> Result<Encoder, ModelError> {
    match &spec.encoder {
        EncoderSpec::E5s1 { weights } => {
            let data = std::fs::read(weights).map_err(|source| ModelError::Io {
                path: weights.display().to_string(),
                source,
            })?;
            let file = e5s1::E5s1::parse(data)?;
            Encoder::from_e5s1_adapted(&file, adapter, device, spec.matmul, spec.threads)
        }
        EncoderSpec::Random { cfg, seed } => {
            Encoder::random_adapted(*cfg, *seed, adapter, device, spec.matmul, spec.threads)
        }
    }
}

/// The adapter a sentiment head was trained with, read from `spec.adapter`
/// and checked against the sha256 the head records; `None` for heads
/// trained on the published weights.
pub fn head_adapter(
    spec: &ModelSpec,
    head: &SentimentHead,
    head_path: &Path,
) -> Result<Option<adapter::Adapter>, ModelError> {
    let Some(want) = &head.adapter_sha256 else {
        return Ok(None);
    };
    let Some(path) = &spec.adapter else {
        return Err(ModelError::Config(format!(
            "{} was trained with an encoder adapter (sha256 {want}); set `model.adapter` to that file",
            head_path.display()
        )));
    };
    let adapter = adapter::Adapter::load(path)?;
    if &adapter.sha256 != want {
        return Err(ModelError::Config(format!(
            "{} was trained with the encoder adapter of sha256 {want}, but `model.adapter` = {} has sha256 {}; use the adapter and head written together by `earshot train-adapter`",
            head_path.display(),
            path.display(),
            adapter.sha256
        )));
    }
    Ok(Some(adapter))
}

/// The tokenizer of `spec`, cutting texts into its windows.
pub fn load_tokenizer(spec: &ModelSpec) -> Result<Tokenizer, ModelError> {
    Tokenizer::from_file(&spec.tokenizer, spec.max_tokens)?.with_window(spec.window_tokens)
}

/// Loads tokenizer, encoder and heads. Category centroids are computed from
/// the prototypes when no head file is given.
pub fn load(spec: &ModelSpec, device: &Device) -> Result<Loaded, ModelError> {
    let start = Instant::now();
    let tokenizer = load_tokenizer(spec)?;
    let head = match &spec.sentiment_head {
        Some(path) => Some((SentimentHead::load(path)?, path)),
        None => None,
    };
    let adapter = match &head {
        Some((h, path)) => head_adapter(spec, h, path)?,
        None => None,
    };
    let encoder = load_encoder_adapted(spec, adapter.as_ref(), device)?;
    let dim = encoder.config().hidden;
    if tokenizer.vocab_size() > encoder.config().vocab {
        return Err(ModelError::Config(format!(
            "tokenizer has {} tokens but the encoder's vocabulary is {}; tokenizer and weights do not belong together",
            tokenizer.vocab_size(),
            encoder.config().vocab
        )));
    }
    if tokenizer.window() > encoder.config().max_positions {
        return Err(ModelError::Config(format!(
            "a window of {} tokens exceeds the encoder's {} positions; lower model.window_tokens",
            tokenizer.window(),
            encoder.config().max_positions
        )));
    }
    let (sentiment, name) =
        match (&spec.encoder, head) {
            (_, Some((head, path))) => {
                check_dim(path, head.dim, dim)?;
                let name = match &adapter {
                    Some(a) => format!("multilingual-e5-small+lora{}", &a.sha256[..8]),
                    None => "multilingual-e5-small".to_string(),
                };
                (head, name)
            }
            (EncoderSpec::Random { seed, .. }, None) => (
                SentimentHead::random(dim, *seed),
                format!("random-encoder-{dim}x{}", encoder.config().layers),
            ),
            (EncoderSpec::E5s1 { .. }, None) => return Err(ModelError::Config(
                "`model.sentiment_head` is required with the e5-small encoder; point it at models/heads/sentiment.json"
                    .into(),
            )),
        };
    let category = match &spec.category_head {
        Some(path) => {
            let head = CategoryHead::load(path)?;
            check_dim(path, head.dim, dim)?;
            let have = adapter.as_ref().map(|a| a.sha256.as_str());
            if head.adapter_sha256.as_deref() != have {
                return Err(ModelError::Head {
                    path: path.display().to_string(),
                    source: format!(
                        "its centroids were built for encoder adapter {:?} but the sentiment head uses {:?}; rebuild both with `earshot train-adapter`",
                        head.adapter_sha256, have
                    )
                    .into(),
                });
            }
            head
        }
        None => build_category_head(&tokenizer, &encoder, &name)?,
    };
    Ok(Loaded {
        tokenizer,
        classifier: E5Classifier::new(encoder, sentiment, category, name),
        load_time: start.elapsed(),
    })
}

/// Softmax scale for category similarities (cosines differ by a few hundredths).
pub const CATEGORY_SCALE: f32 = 50.0;

/// Embeds the built-in prototype sentences and averages them per category.
pub fn build_category_head(tokenizer: &Tokenizer, encoder: &Encoder, name: &str) -> Result<CategoryHead, ModelError> {
    let protos = category_prototypes()?;
    let texts: Vec<&str> = protos.iter().map(|(_, s)| s.as_str()).collect();
    let limits = BatchLimits {
        max_tokens: 4096,
        max_batch: 64,
    };
    let embs = embed_texts(tokenizer, encoder, &texts, limits, PAD_ID, |_| {})?;
    let examples: Vec<(Category, Vec<f32>)> = protos.iter().map(|(c, _)| *c).zip(embs).collect();
    let mut head = CategoryHead::from_prototypes(name, encoder.config().hidden, &examples, CATEGORY_SCALE);
    head.provenance = serde_json::json!({
        "prototypes": "crates/model/src/category_prototypes.toml",
        "sentences": protos.len(),
        "scale": CATEGORY_SCALE,
    });
    Ok(head)
}

fn check_dim(path: &Path, head: usize, encoder: usize) -> Result<(), ModelError> {
    if head != encoder {
        return Err(ModelError::Head {
            path: path.display().to_string(),
            source: format!(
                "head has dim {head} but the encoder produces {encoder}; use the head trained for this encoder"
            )
            .into(),
        });
    }
    Ok(())
}

/// A classification result with the text's metadata: what every caller
/// (CLI, `/classify`, the pipeline) turns an [`Inference`] into.
pub fn scored(inf: Inference, lang: String, encoded: &Encoded, with_embedding: bool) -> Scored {
    Scored {
        sentiment: inf.probs.label(),
        probs: inf.probs,
        category: inf.category,
        category_score: inf.category_score,
        lang,
        tokens: encoded.len(),
        truncated: encoded.truncated,
        embedding: if with_embedding { inf.embedding } else { Vec::new() },
    }
}

/// Tokenises, batches and classifies texts on the calling thread with a
/// [`Classifier`] it owns (offline tools and tests). See [`classify_texts_with`].
pub fn classify_texts(
    tokenizer: &Tokenizer,
    classifier: &mut dyn Classifier,
    texts: &[&str],
    limits: BatchLimits,
    with_embedding: bool,
) -> Result<Vec<Result<Scored, ModelError>>, ModelError> {
    classify_texts_with(tokenizer, texts, limits, with_embedding, |b| classifier.classify(&b))
}

/// The one request/response classify path (the CLI and `/classify`; the
/// streaming pipeline cuts its batches with the same [`batch::plan`] and
/// [`EncodedBatch::pack`]): tokenise on the rayon pool, plan length-sorted
/// token-budget batches, run each through `run` (a classifier or the
/// inference thread), and return one result per input, in order.
/// Per-text problems (empty text) are per-item errors; a failed batch fails
/// the call.
pub fn classify_texts_with(
    tokenizer: &Tokenizer,
    texts: &[&str],
    limits: BatchLimits,
    with_embedding: bool,
    mut run: impl FnMut(EncodedBatch) -> Result<Vec<Inference>, ModelError>,
) -> Result<Vec<Result<Scored, ModelError>>, ModelError> {
    use rayon::prelude::*;
    let encoded: Vec<Result<Encoded, ModelError>> = texts.par_iter().map(|t| tokenizer.encode(t)).collect();
    let ok: Vec<usize> = (0..texts.len()).filter(|&i| encoded[i].is_ok()).collect();
    let lengths: Vec<usize> = ok
        .iter()
        .map(|&i| encoded[i].as_ref().map_or(0, Encoded::len))
        .collect();
    let mut inferred: Vec<Option<Inference>> = vec![None; texts.len()];
    for group in batch::plan(&lengths, limits) {
        let rows: Vec<&Encoded> = group.iter().filter_map(|&g| encoded[ok[g]].as_ref().ok()).collect();
        let results = run(EncodedBatch::pack(rows, PAD_ID))?;
        if results.len() != group.len() {
            return Err(ModelError::WorkerGone);
        }
        for (g, inf) in group.iter().zip(results) {
            inferred[ok[*g]] = Some(inf);
        }
    }
    Ok(encoded
        .into_iter()
        .zip(inferred)
        .zip(texts)
        .map(|((enc, inf), text)| {
            let enc = enc?;
            let inf = inf.ok_or(ModelError::WorkerGone)?;
            Ok(scored(inf, lang::detect(text), &enc, with_embedding))
        })
        .collect())
}
