//! Domain types shared by every stage: what flows from a source to a sink.
//!
//! This module depends on nothing else in the workspace. Event time is carried as
//! milliseconds since the Unix epoch so that detection never needs a wall clock.

use serde::{Deserialize, Serialize};

/// Sentiment class of one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Negative,
    Neutral,
    Positive,
}

impl Sentiment {
    pub const ALL: [Sentiment; 3] = [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive];

    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Negative => "negative",
            Sentiment::Neutral => "neutral",
            Sentiment::Positive => "positive",
        }
    }
}

/// Complaint category of one text (what a negative review is about).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    ProductQuality,
    Logistics,
    AfterSales,
    Price,
    Other,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::ProductQuality,
        Category::Logistics,
        Category::AfterSales,
        Category::Price,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::ProductQuality => "product_quality",
            Category::Logistics => "logistics",
            Category::AfterSales => "after_sales",
            Category::Price => "price",
            Category::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Probabilities over [`Sentiment`] classes; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentProbs {
    pub negative: f32,
    pub neutral: f32,
    pub positive: f32,
}

impl SentimentProbs {
    /// The class with the highest probability (ties go to the more negative class).
    pub fn label(&self) -> Sentiment {
        let mut best = (Sentiment::Negative, self.negative);
        for (s, p) in [(Sentiment::Neutral, self.neutral), (Sentiment::Positive, self.positive)] {
            if p > best.1 {
                best = (s, p);
            }
        }
        best.0
    }
}

/// Everything the classifier says about one text. Computed once per event and
/// reused downstream (the detector clusters on `embedding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub sentiment: Sentiment,
    pub probs: SentimentProbs,
    pub category: Category,
    /// Softmax probability of the chosen category.
    pub category_score: f32,
    /// ISO 639-1 code where one exists (e.g. `en`, `zh`), else ISO 639-3; `und` if unknown.
    pub lang: String,
    /// Tokens fed to the model, special tokens included.
    pub tokens: usize,
    /// True when the text was longer than the model's window and was cut.
    pub truncated: bool,
    /// L2-normalised pooled sentence embedding.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub embedding: Vec<f32>,
}

impl Scored {
    /// The empty scores a reply message carries: it is never classified.
    pub fn unscored() -> Self {
        Self {
            sentiment: Sentiment::Neutral,
            probs: SentimentProbs {
                negative: 0.0,
                neutral: 0.0,
                positive: 0.0,
            },
            category: Category::Other,
            category_score: 0.0,
            lang: "und".into(),
            tokens: 0,
            truncated: false,
            embedding: Vec::new(),
        }
    }
}

/// Event time: milliseconds since the Unix epoch (UTC).
pub type EventTime = i64;

/// The dimensions an event can be keyed by. Producers should key Kafka
/// messages by the detector's top-level key (brand/product) so one partition
/// sees all of a key's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyDims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// Where an event came from, so it can be acknowledged (offset stored) once
/// its effects are durable, and named in dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourcePos {
    pub source: String,
    pub partition: i32,
    pub offset: i64,
}

/// One customer text (review, post, support message) as ingested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub key: KeyDims,
    pub text: String,
    /// Language given by the source, if any (detected otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Star rating if the source has one (1..=5 on most shops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub event_time: EventTime,
    /// When the brand replied, if it did (response-SLA tracking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replied_at: Option<EventTime>,
    /// Set when this message is not a review but the brand's reply to the
    /// review with this id: it has no text, is not classified, and only
    /// closes that review's response-SLA entry (at `replied_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<SourcePos>,
}

/// An event with what the classifier said about it: the detector's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredEvent {
    pub event: Event,
    pub scored: Scored,
}

/// A dimension an event can be keyed by in the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dim {
    Brand,
    Product,
    Sku,
    Region,
    Channel,
    Category,
    Language,
}

impl Dim {
    pub const ALL: [Dim; 7] = [
        Dim::Brand,
        Dim::Product,
        Dim::Sku,
        Dim::Region,
        Dim::Channel,
        Dim::Category,
        Dim::Language,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dim::Brand => "brand",
            Dim::Product => "product",
            Dim::Sku => "sku",
            Dim::Region => "region",
            Dim::Channel => "channel",
            Dim::Category => "category",
            Dim::Language => "language",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A detector key: the values of one rollup's dimensions, in rollup order
/// (e.g. `brand=Voltra/product=X2`). The empty key is the global total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SignalKey(pub Vec<(Dim, String)>);

impl SignalKey {
    /// The value of one dimension, if the key has it.
    pub fn get(&self, dim: Dim) -> Option<&str> {
        self.0.iter().find(|(d, _)| *d == dim).map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for SignalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("*");
        }
        for (i, (d, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            write!(f, "{}={}", d.as_str(), v)?;
        }
        Ok(())
    }
}

/// What kind of trouble a [`Signal`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// Negative items well above the seasonal expectation, with total volume up.
    VolumeSpike,
    /// The negative share jumped while total volume stayed flat.
    SentimentShift,
    /// A semantic complaint cluster grows abnormally fast.
    EmergingIssue,
    /// Negatives creep up over hours: their share (binomial CUSUM) or their
    /// volume against the traffic-adjusted seasonal expectation (negative
    /// binomial CUSUM; Poisson on Poisson-like traffic).
    SlowDrift,
    /// Suspected fake wave: near-duplicates, one author posting many, or
    /// rating/text contradictions. Never counted as a crisis.
    ReviewBombing,
}

impl SignalKind {
    pub const ALL: [SignalKind; 5] = [
        SignalKind::VolumeSpike,
        SignalKind::SentimentShift,
        SignalKind::EmergingIssue,
        SignalKind::SlowDrift,
        SignalKind::ReviewBombing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::VolumeSpike => "volume_spike",
            SignalKind::SentimentShift => "sentiment_shift",
            SignalKind::EmergingIssue => "emerging_issue",
            SignalKind::SlowDrift => "slow_drift",
            SignalKind::ReviewBombing => "review_bombing",
        }
    }

    /// True for the kinds that report a customer crisis (not spam).
    pub fn is_crisis(self) -> bool {
        !matches!(self, SignalKind::ReviewBombing)
    }
}

/// One representative quote, in its original language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub id: String,
    pub text: String,
    pub lang: String,
    pub event_time: EventTime,
}

/// Why a signal fired, in words a person can check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// 3–5 representative texts (fewer only when fewer exist).
    pub quotes: Vec<Quote>,
    /// Most distinctive terms of the window's items (words; jieba words for
    /// Chinese, kanji and katakana runs for Japanese; stop words dropped),
    /// best first, with counts.
    pub top_terms: Vec<(String, u32)>,
    /// Language of the window's items, most frequent first.
    pub languages: Vec<(String, u32)>,
    /// Complaint category of the window's items, most frequent first.
    pub categories: Vec<(Category, u32)>,
    /// Region of the window's items, most frequent first (items without one
    /// are not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<(String, u32)>,
    /// Channel of the window's items, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<(String, u32)>,
    /// The events behind the signal (FNV-1a 64 of their ids, at most the
    /// key's recent negatives), sorted: signals on different keys or rules
    /// that share members are about the same thing (the alert stage
    /// correlates them into one incident).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<u64>,
    /// What the signal is about, language-independently: the direction of
    /// the semantic clusters that grew in the window (centred embeddings,
    /// weighted by their excess), quantised to i8. Empty without embeddings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topic: Vec<i8>,
}

/// Cosine similarity of two quantised topic vectors (0 when either is empty
/// or they differ in length).
pub fn topic_similarity(a: &[i8], b: &[i8]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let (mut ab, mut aa, mut bb) = (0i64, 0i64, 0i64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (i64::from(x), i64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0 || bb == 0 {
        return 0.0;
    }
    ab as f64 / ((aa as f64).sqrt() * (bb as f64).sqrt())
}

/// A detector finding: the input of the alert stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub kind: SignalKind,
    pub key: SignalKey,
    /// Event-time window the statistic was computed on, `[start, end)`.
    pub window_start: EventTime,
    pub window_end: EventTime,
    /// Observed count (negatives, cluster members or suspect items).
    pub observed: u32,
    /// Expected count under the baseline (0 where there is no baseline).
    pub expected: f64,
    /// Items of the population the count is taken from (all items for a
    /// share, the key's negatives for a cluster).
    pub population: u32,
    /// Baseline share (negative share, or the cluster's share of negatives).
    pub baseline_share: f64,
    /// Tail probability of the observation under the baseline (lower is
    /// stronger); for CUSUM the statistic's excess is mapped to `exp(-S)`.
    pub p_value: f64,
    /// Cluster id (per key) for emerging issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<u64>,
    /// For review bombing: which rule fired (`near_duplicates`, `author`, `contradictions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub explanation: Explanation,
}
