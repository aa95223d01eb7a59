//! Domain types shared by every stage: what flows from a source to a sink.
//!
//! This module depends on nothing else in the crate. Event time is carried as
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<SourcePos>,
}

/// An event with what the classifier said about it: the detector's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredEvent {
    pub event: Event,
    pub scored: Scored,
}
