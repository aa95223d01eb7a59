//! Labelled embeddings kept in a head, voting by their k nearest neighbours.
//! A linear head draws each class as one direction; texts of a class that sit
//! in pockets of their own (a catch-all complaint category, short posts in a
//! language the head saw little of) are recognised by the labelled texts
//! nearest to them. The neighbours' vote is blended into the head's
//! probabilities (`earshot train-category --knn-*`, `earshot
//! train-exemplars`).
//!
//! The vectors are int8 with one scale per row, or 4-bit codes of each
//! row's difference from the pool's mean (half the size: embeddings of one
//! encoder share a large common direction, so the differences carry what
//! tells them apart), on disk base64 in the head's JSON. On first use they
//! are packed like an 8-bit encoder weight (rows padded to 16, dims to 32),
//! so a batch's cosines are one integer matrix product on the encoder's
//! kernel ([`crate::qgemm::gemm`]).

use std::sync::OnceLock;

use crate::qgemm::{gemm, PackedQ4, QuantActs, QK};
use serde::{Deserialize, Serialize};

mod rows;
pub use rows::Int8Rows;

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
    /// Share of the vote in the blended probabilities (0: the head only, 1:
    /// neighbours only).
    pub weight: f32,
    /// The blend is raised to this power and renormalised (calibration; 1:
    /// unchanged).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub sharpen: f32,
    /// Index into the head's classes, one per exemplar.
    pub labels: Vec<usize>,
    /// Unit-length embeddings, one per label.
    pub vectors: Int8Rows,
    /// `vectors` packed for [`crate::qgemm::gemm`], built on first use.
    #[serde(skip)]
    packed: PackCache,
}

/// The packed matrix: a cache, so clones start empty and it takes no part
/// in equality.
#[derive(Default)]
struct PackCache(OnceLock<PackedQ4>);

impl Clone for PackCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for PackCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PackCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "packed" } else { "not packed" })
    }
}

/// Dims are padded to whole quantisation blocks, rows to whole tiles.
fn padded(n: usize, to: usize) -> usize {
    n.div_ceil(to).max(1) * to
}

fn one() -> f32 {
    1.0
}

fn is_one(v: &f32) -> bool {
    *v == 1.0
}

impl Exemplars {
    pub fn new(k: usize, temperature: f32, weight: f32, labels: Vec<usize>, vectors: Int8Rows) -> Self {
        Self {
            k,
            temperature,
            weight,
            sharpen: 1.0,
            labels,
            vectors,
            packed: PackCache::default(),
        }
    }

    /// How many exemplars vote.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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
        if !(self.sharpen.is_finite() && self.sharpen > 0.0) {
            return Err(format!(
                "`exemplars.sharpen` {} must be a positive number",
                self.sharpen
            ));
        }
        if self.labels.len() != self.vectors.rows() {
            return Err(format!(
                "`exemplars` has {} labels for {} vectors",
                self.labels.len(),
                self.vectors.rows()
            ));
        }
        if let Some(l) = self.labels.iter().find(|l| **l >= classes) {
            return Err(format!("`exemplars.labels` has {l} but the head has {classes} classes"));
        }
        if !self.labels.is_empty() && self.vectors.dim != dim {
            return Err(format!(
                "the exemplars have dim {} but the head has {dim}",
                self.vectors.dim
            ));
        }
        Ok(())
    }

    /// Blends each query's neighbour vote into its head probabilities, in
    /// place: `(1 − weight) · head + weight · vote`, raised to `sharpen` and
    /// renormalised. Queries of the wrong length keep the head's.
    pub fn blend_batch(&self, queries: &[&[f32]], probs: &mut [Vec<f32>]) {
        let votes = self.vote_batch(queries, probs_len(probs));
        for (p, vote) in probs.iter_mut().zip(votes) {
            let Some(vote) = vote else { continue };
            let w = self.weight;
            p.iter_mut()
                .zip(vote)
                .for_each(|(p, v)| *p = ((1.0 - w) * *p + w * v).powf(self.sharpen));
            let total: f32 = p.iter().sum();
            if total > 0.0 && total.is_finite() {
                p.iter_mut().for_each(|v| *v /= total);
            }
        }
    }

    /// Each query's neighbour vote per class (sums to 1), `None` for a query
    /// whose length is not the exemplars' dim or without exemplars.
    pub fn vote_batch(&self, queries: &[&[f32]], classes: usize) -> Vec<Option<Vec<f32>>> {
        let (n, dim) = (self.vectors.rows(), self.vectors.dim);
        if n == 0 || queries.is_empty() {
            return vec![None; queries.len()];
        }
        let (dim_p, n_p) = (padded(dim, QK), padded(n, 16));
        // The vote depends on cosine differences only (the k largest, each
        // weighed by `cos − best`), and a query's dot product with the
        // rows' common offset is the same for every row: the product leaves
        // it out.
        let w = self.packed.0.get_or_init(|| {
            let v = &self.vectors;
            PackedQ4::from_i8_rows(&v.data, &v.scales, dim, n_p, dim_p).expect("padded to whole tiles and blocks")
        });
        let ok: Vec<usize> = (0..queries.len()).filter(|&i| queries[i].len() == dim).collect();
        let mut count = vec![0usize; classes];
        self.labels.iter().for_each(|&l| count[l] += 1);
        let mut out = vec![None; queries.len()];
        let (mut acts, bias) = (QuantActs::default(), vec![0.0f32; n_p]);
        // 32 queries at a time: the cosines of a whole batch against tens of
        // thousands of exemplars would be megabytes.
        for chunk in ok.chunks(32) {
            let mut xs = vec![0.0f32; chunk.len() * dim_p];
            for (row, &i) in xs.chunks_exact_mut(dim_p).zip(chunk) {
                row[..dim].copy_from_slice(queries[i]);
            }
            acts.quantize(&xs, chunk.len(), dim_p);
            let mut cos = vec![0.0f32; chunk.len() * n_p];
            gemm(&acts, w, &bias, &mut cos);
            for (row, &i) in cos.chunks_exact(n_p).zip(chunk) {
                out[i] = self.vote_row(&row[..n], &count);
            }
        }
        out
    }

    fn vote_row(&self, cos: &[f32], count: &[usize]) -> Option<Vec<f32>> {
        // The k largest in one pass: candidates above a floor collect in a
        // buffer of 2k; when it fills, it is cut to its k largest and the
        // floor rises to the smallest of them. Most cosines fail the one
        // comparison with the floor, and the cuts cost O(k) each.
        let k = self.k.min(cos.len());
        if k == 0 {
            return None;
        }
        let desc = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0);
        let mut top: Vec<(f32, usize)> = Vec::with_capacity(2 * k);
        let mut floor = f32::NEG_INFINITY;
        for (j, &c) in cos.iter().enumerate() {
            if c > floor {
                top.push((c, j));
                if top.len() == 2 * k {
                    top.select_nth_unstable_by(k - 1, desc);
                    top.truncate(k);
                    floor = top[k - 1].0;
                }
            }
        }
        if top.len() > k {
            top.select_nth_unstable_by(k - 1, desc);
            top.truncate(k);
        }
        let best = top.iter().map(|s| s.0).fold(f32::NEG_INFINITY, f32::max);
        let mut vote = vec![0.0f32; count.len()];
        for (s, j) in top {
            let l = self.labels[j];
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

fn probs_len(probs: &[Vec<f32>]) -> usize {
    probs.first().map_or(0, Vec::len)
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
        let vectors = vec![
            unit(&[0.3, -0.9, 0.1]),
            unit(&[0.0, 0.2, 0.98]),
            unit(&[-0.5, 0.5, 0.7]),
        ];
        let ex = Exemplars::new(2, 50.0, 0.5, vec![0, 1, 1], Int8Rows::quantize(&vectors));
        let json = serde_json::to_string(&ex).unwrap();
        assert!(json.contains("\"int8\"") && !json.contains("sharpen"), "{json}");
        let back: Exemplars = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ex);
        for (i, a) in vectors.iter().enumerate() {
            for (x, y) in a.iter().zip(back.vectors.row(i)) {
                assert!((x - y).abs() < 0.01, "{a:?} vs {:?}", back.vectors.row(i));
            }
        }
        back.validate(3, 2).unwrap();
        assert!(back.validate(4, 2).unwrap_err().contains("dim"));
        assert!(back.validate(3, 1).unwrap_err().contains("labels"));
    }

    /// `n` unit vectors of `dim` around a shared direction, as an encoder's
    /// embeddings are.
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        (0..n)
            .map(|_| {
                unit(
                    &(0..dim)
                        .map(|d| next() + if d == 0 { 3.0 } else { 0.0 })
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    #[test]
    fn four_bit_rows_keep_the_differences_and_halve_the_file() {
        let vectors = clustered(301, 64, 11);
        let labels: Vec<usize> = (0..vectors.len()).map(|i| i % 2).collect();
        let ex8 = Exemplars::new(5, 40.0, 0.5, labels.clone(), Int8Rows::quantize(&vectors));
        let ex4 = Exemplars::new(5, 40.0, 0.5, labels, Int8Rows::quantize_centred4(&vectors));
        // Rows come back near the originals, mean included.
        for (i, v) in vectors.iter().enumerate() {
            let err: f32 = v.iter().zip(ex4.vectors.row(i)).map(|(a, b)| (a - b).powi(2)).sum();
            assert!(err.sqrt() < 0.06, "row {i}: {}", err.sqrt());
        }
        let (j8, j4) = (
            serde_json::to_string(&ex8).unwrap(),
            serde_json::to_string(&ex4).unwrap(),
        );
        assert!(j4.contains("\"int4\"") && j4.contains("\"mean\"") && !j4.contains("\"int8\""));
        assert!(
            j4.contains("\"scales_f16\"") && !j4.contains("\"scales\""),
            "4-bit rows write f16 scales"
        );
        assert!(
            j8.contains("\"scales\"") && !j8.contains("\"scales_f16\""),
            "int8 rows keep f32 scales"
        );
        assert!(j4.len() < j8.len() * 7 / 10, "{} vs {}", j4.len(), j8.len());
        let back: Exemplars = serde_json::from_str(&j4).unwrap();
        assert_eq!(back, ex4, "an odd number of codes survives the nibble packing");
        back.validate(64, 2).unwrap();
        // The product leaves the mean out; the vote equals one from exact
        // cosines with the dequantised rows (mean included).
        let queries = clustered(6, 64, 99);
        let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
        let count = [151, 150];
        for (q, got) in refs.iter().zip(back.vote_batch(&refs, 2)) {
            let cos: Vec<f32> = (0..vectors.len())
                .map(|j| back.vectors.row(j).iter().zip(*q).map(|(a, b)| a * b).sum())
                .collect();
            let exact = back.vote_row(&cos, &count).unwrap();
            for (a, b) in exact.iter().zip(got.as_ref().unwrap()) {
                assert!((a - b).abs() < 0.03, "{exact:?} vs {got:?}");
            }
        }
    }

    #[test]
    fn malformed_vectors_are_refused() {
        let head =
            |vectors: &str| format!(r#"{{"k":1,"temperature":10.0,"weight":0.5,"labels":[0],"vectors":{vectors}}}"#);
        let err = |vectors: &str| {
            serde_json::from_str::<Exemplars>(&head(vectors))
                .unwrap_err()
                .to_string()
        };
        let e = err(r#"{"rows":1,"dim":4,"scales":[0.01],"int8":"AAE="}"#);
        assert!(e.contains("holds 1 scales and 2 bytes"), "{e}");
        let e = err(r#"{"rows":1,"dim":3,"scales":[0.01],"int4":"iIg="}"#);
        assert!(e.contains("`int4` with a `mean`"), "{e}");
        let e = err(r#"{"rows":1,"dim":3,"scales":[0.01],"mean":[0,0,0],"int4":"iA=="}"#);
        assert!(e.contains("holds 1 scales and 1 bytes"), "{e}");
        let e = err(r#"{"rows":1,"dim":3,"scales":[0.01],"scales_f16":"HyE=","mean":[0,0,0],"int4":"iIg="}"#);
        assert!(e.contains("exactly one of `scales`"), "{e}");
        let e = err(r#"{"rows":1,"dim":3,"scales_f16":"HyEf","mean":[0,0,0],"int4":"iIg="}"#);
        assert!(e.contains("odd number of bytes"), "{e}");
        let e = err(r#"{"rows":1,"dim":3,"scales_f16":"AHw=","mean":[0,0,0],"int4":"iIg="}"#);
        assert!(e.contains("not finite"), "{e}");
        let e = err(r#"{"rows":1,"dim":3,"scales_f16":"HyEfIQ==","mean":[0,0,0],"int4":"iIg="}"#);
        assert!(e.contains("holds 2 scales"), "{e}");
        // Both spellings of the scales load (heads written before f16 scales).
        for scales in [r#""scales":[0.01]"#, r#""scales_f16":"HyE=""#] {
            let ok = head(&format!(
                r#"{{"rows":1,"dim":3,{scales},"mean":[0,0,0],"int4":"iIg="}}"#
            ));
            let ex: Exemplars = serde_json::from_str(&ok).unwrap();
            assert_eq!(ex.vectors.data, vec![0, 0, 0]);
            assert!((ex.vectors.scales[0] - 0.01).abs() < 1e-5, "{:?}", ex.vectors.scales);
        }
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
        let ex = Exemplars::new(5, 20.0, 1.0, labels, Int8Rows::quantize(&vectors));
        let near = unit(&[1.0, 0.0, 0.0]);
        let crowd = unit(&[0.2, 1.0, 0.05]);
        let votes = ex.vote_batch(&[&near, &[0.0; 4], &crowd], 2);
        let v0 = votes[0].as_ref().unwrap();
        assert!((v0.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(v0[0] > 0.9, "{v0:?}");
        assert!(votes[1].is_none(), "a query of the wrong length gets no vote");
        // Near the crowd, the crowd wins.
        assert!(votes[2].as_ref().unwrap()[1] > 0.9, "{votes:?}");
    }

    #[test]
    fn the_vote_takes_exactly_the_k_largest_cosines() {
        let n = 300;
        let cos: Vec<f32> = (0..n).map(|j| ((j * 7919) % 1000) as f32 / 1000.0).collect();
        let labels: Vec<usize> = (0..n).map(|j| (j * 31) % 3).collect();
        let vectors = vec![vec![1.0f32, 0.0]; n];
        let ex = Exemplars::new(9, 20.0, 1.0, labels.clone(), Int8Rows::quantize(&vectors));
        let count = [100, 100, 100];
        let got = ex.vote_row(&cos, &count).unwrap();
        // Brute force: sort, take nine, weigh.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| cos[b].total_cmp(&cos[a]));
        let best = cos[order[0]];
        let mut want = [0.0f32; 3];
        for &j in &order[..9] {
            want[labels[j]] += (20.0 * (cos[j] - best)).exp() / 10.0;
        }
        let total: f32 = want.iter().sum();
        for (g, w) in got.iter().zip(want) {
            assert!((g - w / total).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn a_batch_votes_as_its_queries_one_by_one() {
        // More exemplars than one kernel block, so the blocking is exercised.
        let mut state = 7u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let dim = 16;
        let vectors: Vec<Vec<f32>> = (0..1100)
            .map(|_| unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let labels = (0..vectors.len()).map(|i| i % 3).collect();
        let ex = Exemplars::new(7, 30.0, 0.5, labels, Int8Rows::quantize(&vectors));
        let queries: Vec<Vec<f32>> = (0..5)
            .map(|_| unit(&(0..dim).map(|_| next()).collect::<Vec<_>>()))
            .collect();
        let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();
        let batch = ex.vote_batch(&refs, 3);
        for (q, b) in refs.iter().zip(&batch) {
            let one = ex.vote_batch(&[q], 3);
            assert_eq!(one[0], *b);
        }
        // And a vote equals one computed from exact dot products with the
        // dequantised rows, to quantisation error.
        let mut cos: Vec<f32> = (0..vectors.len())
            .map(|j| ex.vectors.row(j).iter().zip(refs[0]).map(|(a, b)| a * b).sum())
            .collect();
        let count = [367, 367, 366];
        let exact = ex.vote_row(&cos, &count).unwrap();
        for (a, b) in exact.iter().zip(batch[0].as_ref().unwrap()) {
            assert!((a - b).abs() < 0.02, "{exact:?} vs {:?}", batch[0]);
        }
        cos.iter_mut().for_each(|c| *c = -*c);
        assert_ne!(ex.vote_row(&cos, &count).unwrap(), exact, "the check can fail");
        // Blending keeps a distribution and moves it towards the vote.
        let mut probs = vec![vec![1.0, 0.0, 0.0]; 5];
        ex.blend_batch(&refs, &mut probs);
        for (p, v) in probs.iter().zip(&batch) {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let v = v.as_ref().unwrap();
            assert!((p[1] - 0.5 * v[1]).abs() < 1e-5, "{p:?} {v:?}");
        }
    }
}
