//! Classification heads on top of the pooled embedding.
//!
//! * Sentiment: a linear score `s = w·x + b` fitted by logistic regression on
//!   positive/negative reviews, divided by a temperature fitted on a held-out
//!   split (calibration), then read as an ordinal logit with a neutral band of
//!   half-width `delta`: `P(neg) = σ(-δ - s)`, `P(pos) = σ(s - δ)`,
//!   `P(neu) = 1 - P(neg) - P(pos)`. Texts the model cannot place on either
//!   side land in the band and come out neutral.
//! * Category: cosine similarity to per-category prototype centroids (mean
//!   embeddings of short multilingual complaint descriptions), softmax with a
//!   scale, optionally blended with a k-nearest-neighbour vote over labelled
//!   complaint embeddings kept in the head (see [`Exemplars`]). Heads are
//!   JSON files with their provenance.

use earshot_core::types::{Category, SentimentProbs};
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::ModelError;
pub use crate::exemplars::Exemplars;

pub const SENTIMENT_FORMAT: &str = "earshot-sentiment-head/1";
/// Three-class head (trained with an encoder adapter): softmax of `W·x + b`.
pub const SENTIMENT_FORMAT_3: &str = "earshot-sentiment-head/2";
pub const CATEGORY_FORMAT: &str = "earshot-category-head/1";

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Linear sentiment head with calibration and a neutral band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentHead {
    pub format: String,
    /// Which encoder the weights belong to (checked against the loaded one by `dim`).
    pub encoder: String,
    pub dim: usize,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// Calibration temperature (score is divided by it).
    pub temperature: f32,
    /// Half-width of the neutral band in calibrated logit units (format 1).
    #[serde(default)]
    pub neutral_delta: f32,
    /// Format 2: rows of `[neg, neu, pos]` logit weights and their biases;
    /// probabilities are `softmax((W·x + b) / temperature)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ThreeClass>,
    /// sha256 of the encoder adapter the head was trained on (format 2):
    /// loading checks that `model.adapter` is that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_sha256: Option<String>,
    /// Free-form provenance: data sources, command, metrics.
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Labelled training embeddings whose nearest neighbours vote with the
    /// head (`earshot train-exemplars`); classes in `[neg, neu, pos]` order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemplars: Option<Exemplars>,
}

impl SentimentHead {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let head: Self = read_json(path)?;
        let three_ok = head.format == SENTIMENT_FORMAT_3
            && head.classes.as_ref().is_some_and(|c| {
                c.weights.len() == 3 && c.bias.len() == 3 && c.weights.iter().all(|w| w.len() == head.dim)
            });
        let one_ok = head.format == SENTIMENT_FORMAT && head.weights.len() == head.dim;
        if let Some(ex) = &head.exemplars {
            ex.validate(head.dim, 3).map_err(|e| ModelError::Head {
                path: path.display().to_string(),
                source: format!("{e}; re-create it with `earshot train-exemplars`").into(),
            })?;
        }
        if !(three_ok || one_ok) {
            return Err(ModelError::Head {
                path: path.display().to_string(),
                source: format!(
                    "expected format `{SENTIMENT_FORMAT}` with `dim` weights or `{SENTIMENT_FORMAT_3}` with 3 x `dim` class weights; re-create it with `earshot train-adapter`"
                )
                .into(),
            });
        }
        Ok(head)
    }

    /// Calibrated score: positive means positive sentiment (format 2: the
    /// positive minus the negative logit).
    pub fn score(&self, embedding: &[f32]) -> f32 {
        match &self.classes {
            Some(c) => {
                let l = c.logits(embedding);
                (l[2] - l[0]) / self.temperature.max(1e-6)
            }
            None => (dot(&self.weights, embedding) + self.bias) / self.temperature.max(1e-6),
        }
    }

    /// Calibrated probabilities, blended with the exemplars' vote when the
    /// head has them.
    pub fn probs(&self, embedding: &[f32]) -> SentimentProbs {
        self.probs_batch(&[embedding])[0]
    }

    /// [`Self::probs`] for a batch (the exemplars' cosines in one pass).
    pub fn probs_batch(&self, embeddings: &[&[f32]]) -> Vec<SentimentProbs> {
        let mut probs: Vec<Vec<f32>> = embeddings
            .iter()
            .map(|e| {
                let p = self.head_probs(e);
                vec![p.negative, p.neutral, p.positive]
            })
            .collect();
        if let Some(ex) = &self.exemplars {
            ex.blend_batch(embeddings, &mut probs);
        }
        probs
            .into_iter()
            .map(|p| SentimentProbs {
                negative: p[0],
                neutral: p[1],
                positive: p[2],
            })
            .collect()
    }

    /// The linear head's calibrated probabilities alone (no exemplars).
    pub fn head_probs(&self, embedding: &[f32]) -> SentimentProbs {
        match &self.classes {
            Some(c) => {
                let t = self.temperature.max(1e-6);
                let l = c.logits(embedding).map(|v| v / t);
                let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let e = l.map(|v| (v - m).exp());
                let z: f32 = e.iter().sum();
                SentimentProbs {
                    negative: e[0] / z,
                    neutral: e[1] / z,
                    positive: e[2] / z,
                }
            }
            None => probs_from_score(self.score(embedding), self.neutral_delta),
        }
    }

    /// A seeded random head for the random test encoder: meaningless labels,
    /// real code path.
    pub fn random(dim: usize, seed: u64) -> Self {
        let mut state = seed | 1;
        let weights = (0..dim)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0 / (dim as f32).sqrt()
            })
            .collect();
        Self {
            format: SENTIMENT_FORMAT.into(),
            encoder: "random".into(),
            dim,
            weights,
            bias: 0.0,
            temperature: 1.0,
            neutral_delta: 0.5,
            classes: None,
            adapter_sha256: None,
            provenance: serde_json::Value::Null,
            exemplars: None,
        }
    }
}

/// Linear three-class logits (neg, neu, pos).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreeClass {
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

impl ThreeClass {
    /// Raw (uncalibrated) logits.
    pub fn logits(&self, x: &[f32]) -> [f32; 3] {
        [0, 1, 2].map(|c| dot(&self.weights[c], x) + self.bias[c])
    }
}

/// Ordinal-logit probabilities for a calibrated score and neutral half-width.
pub fn probs_from_score(s: f32, delta: f32) -> SentimentProbs {
    let negative = sigmoid(-delta - s);
    let positive = sigmoid(s - delta);
    let neutral = (1.0 - negative - positive).max(0.0);
    SentimentProbs {
        negative,
        neutral,
        positive,
    }
}

/// Nearest-prototype complaint category head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryHead {
    pub format: String,
    pub encoder: String,
    pub dim: usize,
    /// One unit-length centroid per category, in `categories` order.
    pub categories: Vec<Category>,
    pub centroids: Vec<Vec<f32>>,
    /// Softmax scale applied to cosine similarities.
    pub scale: f32,
    /// Per-category logit offsets (empty: none). Set when the centroids were
    /// refined on labelled complaints (`earshot train-category`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bias: Vec<f32>,
    /// sha256 of the encoder adapter the centroids were embedded with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_sha256: Option<String>,
    #[serde(default)]
    pub provenance: serde_json::Value,
    /// Labelled embeddings whose nearest neighbours vote with the centroids
    /// (embedded with the same encoder and adapter as the centroids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemplars: Option<Exemplars>,
}

impl CategoryHead {
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let head: Self = read_json(path)?;
        if head.format != CATEGORY_FORMAT
            || head.categories.len() != head.centroids.len()
            || head.centroids.iter().any(|c| c.len() != head.dim)
            || !(head.bias.is_empty() || head.bias.len() == head.categories.len())
        {
            return Err(ModelError::Head {
                path: path.display().to_string(),
                source: format!(
                    "expected format `{CATEGORY_FORMAT}` with one `dim`-long centroid (and at most one bias) per category; re-create it with `earshot train-adapter` or `earshot train-category`"
                )
                .into(),
            });
        }
        if let Some(ex) = &head.exemplars {
            ex.validate(head.dim, head.categories.len())
                .map_err(|e| ModelError::Head {
                    path: path.display().to_string(),
                    source: format!("{e}; re-create it with `earshot train-category`").into(),
                })?;
        }
        Ok(head)
    }

    /// Builds centroids from labelled prototype embeddings (unit vectors).
    pub fn from_prototypes(encoder: &str, dim: usize, examples: &[(Category, Vec<f32>)], scale: f32) -> Self {
        let mut categories = Vec::new();
        let mut centroids = Vec::new();
        for cat in Category::ALL {
            let mut c = vec![0.0f32; dim];
            let mut n = 0;
            for (_, e) in examples.iter().filter(|(k, _)| *k == cat) {
                c.iter_mut().zip(e).for_each(|(a, b)| *a += b);
                n += 1;
            }
            if n == 0 {
                continue;
            }
            let norm = dot(&c, &c).sqrt().max(1e-12);
            c.iter_mut().for_each(|v| *v /= norm);
            categories.push(cat);
            centroids.push(c);
        }
        Self {
            format: CATEGORY_FORMAT.into(),
            encoder: encoder.into(),
            dim,
            categories,
            centroids,
            scale,
            bias: Vec::new(),
            adapter_sha256: None,
            provenance: serde_json::Value::Null,
            exemplars: None,
        }
    }

    /// Best category and its probability: the centroid softmax, blended
    /// with the exemplars' vote when the head has them.
    pub fn predict(&self, embedding: &[f32]) -> (Category, f32) {
        self.predict_batch(&[embedding])[0]
    }

    /// [`Self::predict`] for a batch (the exemplars' cosines in one pass).
    pub fn predict_batch(&self, embeddings: &[&[f32]]) -> Vec<(Category, f32)> {
        let mut probs: Vec<Vec<f32>> = embeddings.iter().map(|e| self.centroid_probs(e)).collect();
        if let Some(ex) = &self.exemplars {
            ex.blend_batch(embeddings, &mut probs);
        }
        probs
            .iter()
            .map(|p| {
                let (best, p) = p
                    .iter()
                    .copied()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or((0, 0.0));
                (self.categories.get(best).copied().unwrap_or(Category::Other), p)
            })
            .collect()
    }

    fn centroid_probs(&self, embedding: &[f32]) -> Vec<f32> {
        let sims: Vec<f32> = self
            .centroids
            .iter()
            .enumerate()
            .map(|(i, c)| dot(c, embedding) * self.scale + self.bias.get(i).copied().unwrap_or(0.0))
            .collect();
        let max = sims.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<f32> = sims.iter().map(|s| (s - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        probs
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Head {
        path: path.display().to_string(),
        source: e.into(),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Head {
        path: path.display().to_string(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_probs_sum_to_one_and_order() {
        for s in [-6.0, -1.0, 0.0, 0.3, 4.0] {
            let p = probs_from_score(s, 0.8);
            let sum = p.negative + p.neutral + p.positive;
            assert!((sum - 1.0).abs() < 1e-5, "{s}: {p:?}");
        }
        use earshot_core::types::Sentiment::*;
        assert_eq!(probs_from_score(-4.0, 0.8).label(), Negative);
        assert_eq!(probs_from_score(0.0, 0.8).label(), Neutral);
        assert_eq!(probs_from_score(4.0, 0.8).label(), Positive);
        // No band: neutral probability vanishes.
        assert!(probs_from_score(0.1, 0.0).neutral < 1e-6);
    }

    #[test]
    fn category_prototypes_pick_nearest() {
        let ex = vec![
            (Category::Logistics, vec![1.0, 0.0, 0.0]),
            (Category::Price, vec![0.0, 1.0, 0.0]),
            (Category::Price, vec![0.0, 0.8, 0.6]),
        ];
        let head = CategoryHead::from_prototypes("t", 3, &ex, 10.0);
        assert_eq!(head.categories, vec![Category::Logistics, Category::Price]);
        let (c, p) = head.predict(&[0.1, 0.9, 0.2]);
        assert_eq!(c, Category::Price);
        assert!(p > 0.5);
    }

    #[test]
    fn exemplars_correct_a_class_one_centroid_cannot_draw() {
        // `other` is two topics at right angles; its centroid sits between
        // them, nearer to a logistics text's direction than either topic.
        let ex = vec![
            (Category::Logistics, vec![0.8, 0.6, 0.0]),
            (Category::Other, vec![1.0, 0.0, 0.0]),
            (Category::Other, vec![0.0, 0.0, 1.0]),
        ];
        let mut head = CategoryHead::from_prototypes("t", 3, &ex, 10.0);
        let query = [0.97, 0.2, 0.1];
        assert_eq!(head.predict(&query).0, Category::Logistics);
        let unit = |v: [f32; 3]| {
            let n = dot(&v, &v).sqrt();
            v.map(|x| x / n).to_vec()
        };
        let other = head.categories.iter().position(|c| *c == Category::Other).unwrap();
        let logistics = 1 - other;
        head.exemplars = Some(Exemplars::new(
            3,
            50.0,
            0.6,
            vec![other, other, logistics],
            crate::exemplars::Int8Rows::quantize(&[
                unit([1.0, 0.1, 0.1]),
                unit([0.0, 0.1, 1.0]),
                unit([0.8, 0.6, 0.0]),
            ]),
        ));
        let (c, p) = head.predict(&query);
        assert_eq!(c, Category::Other);
        assert!(p > 0.5 && p <= 1.0, "{p}");
        // A head file with broken exemplars is refused at load, naming the fix.
        head.exemplars.as_mut().unwrap().labels.pop();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("category.json");
        std::fs::write(&path, serde_json::to_string(&head).unwrap()).unwrap();
        let err = CategoryHead::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("2 labels for 3 vectors") && err.contains("train-category"),
            "{err}"
        );
    }
}
