//! Labelled complaint embeddings kept in the category head, voting by their
//! k nearest neighbours. A catch-all class such as `other` is many small
//! topics, which one centroid per class cannot draw; the neighbours' vote is
//! blended into the centroid softmax (`earshot train-category --knn-*`).
//!
//! On disk the vectors are int8 with one scale per row, base64 in the head's
//! JSON (a few hundred KB for a thousand rows); they are decoded to `f32`
//! once, at load.

use std::sync::OnceLock;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Neighbour vote over labelled embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemplars {
    /// How many nearest exemplars vote.
    pub k: usize,
    /// A neighbour's vote is `exp(temperature · (cos − best cos))`, divided by
    /// the square root of its class's exemplar count (so a class with many
    /// rows does not win by numbers alone).
    pub temperature: f32,
    /// Share of the vote in the blended probabilities (0: centroids only, 1:
    /// neighbours only).
    pub weight: f32,
    /// Index into the head's `categories`, one per exemplar.
    pub labels: Vec<usize>,
    /// Unit-length embeddings, one per label.
    #[serde(with = "int8_rows")]
    pub vectors: Vec<Vec<f32>>,
    /// `vectors` transposed, built on first use (`dim` runs of one value per
    /// exemplar), so a query's cosines are axpys ([`crate::simd::mat_t_vec`]).
    #[serde(skip)]
    transposed: OnceLock<Vec<f32>>,
}

impl Exemplars {
    pub fn new(k: usize, temperature: f32, weight: f32, labels: Vec<usize>, vectors: Vec<Vec<f32>>) -> Self {
        Self {
            k,
            temperature,
            weight,
            labels,
            vectors,
            transposed: OnceLock::new(),
        }
    }

    /// Checks the shape against the head; `Err` names what is wrong.
    pub fn validate(&self, dim: usize, classes: usize) -> Result<(), String> {
        if self.k == 0 {
            return Err("`exemplars.k` must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(format!("`exemplars.weight` {} is outside 0..=1", self.weight));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "`exemplars.temperature` {} must be a positive number",
                self.temperature
            ));
        }
        if self.labels.len() != self.vectors.len() {
            return Err(format!(
                "`exemplars` has {} labels for {} vectors",
                self.labels.len(),
                self.vectors.len()
            ));
        }
        if let Some(l) = self.labels.iter().find(|l| **l >= classes) {
            return Err(format!(
                "`exemplars.labels` has {l} but the head has {classes} categories"
            ));
        }
        if let Some(v) = self.vectors.iter().find(|v| v.len() != dim) {
            return Err(format!("an exemplar has dim {} but the head has {dim}", v.len()));
        }
        Ok(())
    }

    /// The neighbours' vote per class (sums to 1), or `None` without exemplars.
    pub fn vote(&self, embedding: &[f32], classes: usize) -> Option<Vec<f32>> {
        if self.vectors.is_empty() {
            return None;
        }
        let n = self.vectors.len();
        let cols = self.transposed.get_or_init(|| {
            let dim = self.vectors[0].len();
            let mut t = vec![0.0f32; dim * n];
            for (j, v) in self.vectors.iter().enumerate() {
                v.iter().enumerate().for_each(|(d, &x)| t[d * n + j] = x);
            }
            t
        });
        if cols.len() != embedding.len() * n {
            return None;
        }
        let mut cos = vec![0.0f32; n];
        crate::simd::mat_t_vec(cols, embedding, &mut cos);
        let mut sims: Vec<(f32, usize)> = cos.into_iter().zip(self.labels.iter().copied()).collect();
        let k = self.k.min(sims.len());
        if k < sims.len() {
            sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            sims.truncate(k);
        }
        let best = sims.iter().map(|s| s.0).fold(f32::NEG_INFINITY, f32::max);
        let mut count = vec![0usize; classes];
        self.labels.iter().for_each(|&l| count[l] += 1);
        let mut vote = vec![0.0f32; classes];
        for (s, l) in sims {
            vote[l] += (self.temperature * (s - best)).exp() / (count[l] as f32).sqrt();
        }
        let total: f32 = vote.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return None;
        }
        vote.iter_mut().for_each(|v| *v /= total);
        Some(vote)
    }
}

/// `Vec<Vec<f32>>` as `{rows, dim, scales, int8}`: each row divided by its
/// largest magnitude over 127, rounded to i8, the bytes base64.
mod int8_rows {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Packed {
        rows: usize,
        dim: usize,
        scales: Vec<f32>,
        int8: String,
    }

    pub fn serialize<S: Serializer>(rows: &[Vec<f32>], s: S) -> Result<S::Ok, S::Error> {
        let dim = rows.first().map_or(0, Vec::len);
        let mut bytes = Vec::with_capacity(rows.len() * dim);
        let mut scales = Vec::with_capacity(rows.len());
        for row in rows {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales.push(scale);
            bytes.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8 as u8));
        }
        Packed {
            rows: rows.len(),
            dim,
            scales,
            int8: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
        use serde::de::Error;
        let p = Packed::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p.int8.as_bytes())
            .map_err(|e| D::Error::custom(format!("`exemplars.vectors.int8` is not base64: {e}")))?;
        if p.scales.len() != p.rows || bytes.len() != p.rows * p.dim {
            return Err(D::Error::custom(format!(
                "`exemplars.vectors` declares {} rows of {} but holds {} scales and {} bytes",
                p.rows,
                p.dim,
                p.scales.len(),
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks(p.dim.max(1))
            .zip(&p.scales)
            .map(|(row, s)| row.iter().map(|&b| f32::from(b as i8) * s).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn int8_round_trip_keeps_cosines() {
        let ex = Exemplars::new(
            2,
            50.0,
            0.5,
            vec![0, 1, 1],
            vec![
                unit(&[0.3, -0.9, 0.1]),
                unit(&[0.0, 0.2, 0.98]),
                unit(&[-0.5, 0.5, 0.7]),
            ],
        );
        let json = serde_json::to_string(&ex).unwrap();
        assert!(json.contains("\"int8\""), "{json}");
        let back: Exemplars = serde_json::from_str(&json).unwrap();
        assert_eq!(back.labels, ex.labels);
        for (a, b) in ex.vectors.iter().zip(&back.vectors) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 0.01, "{a:?} vs {b:?}");
            }
        }
        back.validate(3, 2).unwrap();
        assert!(back.validate(4, 2).unwrap_err().contains("dim"));
        assert!(back.validate(3, 1).unwrap_err().contains("labels"));
    }

    #[test]
    fn truncated_vectors_are_refused() {
        let json = r#"{"k":1,"temperature":10.0,"weight":0.5,"labels":[0],
            "vectors":{"rows":1,"dim":4,"scales":[0.01],"int8":"AAE="}}"#;
        let err = serde_json::from_str::<Exemplars>(json).unwrap_err().to_string();
        assert!(err.contains("holds 1 scales and 2 bytes"), "{err}");
    }

    #[test]
    fn nearest_neighbours_outvote_a_crowd_further_away() {
        // Class 1 has many rows far away; two class-0 rows sit right by the query.
        let mut vectors = vec![unit(&[1.0, 0.05, 0.0]), unit(&[1.0, -0.05, 0.0])];
        let mut labels = vec![0, 0];
        for i in 0..20 {
            vectors.push(unit(&[0.2, 1.0, i as f32 * 0.01]));
            labels.push(1);
        }
        let ex = Exemplars::new(5, 20.0, 1.0, labels, vectors);
        let vote = ex.vote(&unit(&[1.0, 0.0, 0.0]), 2).unwrap();
        assert!((vote.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(vote[0] > 0.9, "{vote:?}");
        // Near the crowd, the crowd wins.
        let vote = ex.vote(&unit(&[0.2, 1.0, 0.05]), 2).unwrap();
        assert!(vote[1] > 0.9, "{vote:?}");
    }
}
