//! Online leader clustering of one key's negative items.
//!
//! Embeddings are centred on a slowly moving global mean (sentence encoders
//! put unrelated texts at high raw cosine) and normalised. An item joins the
//! most similar cluster at or above the threshold, else founds one; at the
//! cap the lightest cluster (decayed weight, then lowest id) is replaced.
//! Each cluster counts members per step and learns its usual share of the
//! key's negatives, so growth is judged against its own history.

use super::window::{bucket_of, Buckets};
use earshot_core::types::EventTime;

#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: u64,
    centroid: Vec<f32>,
    norm: f32,
    weight: f64,
    last: EventTime,
    pub counts: Buckets<u32>,
    /// Baseline share of the key's negatives that falls in this cluster.
    pub share: f64,
    /// Negatives the share estimate rests on.
    pub evidence: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Clusters {
    pub items: Vec<Cluster>,
    next_id: u64,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The cluster an item joined (or founded) and its cosine to the updated centroid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    pub cluster: u64,
    pub similarity: f32,
}

/// Parameters of [`Clusters::assign`].
#[derive(Debug, Clone, Copy)]
pub struct ClusterParams {
    pub threshold: f32,
    pub max_clusters: usize,
    /// Weight half-life in milliseconds.
    pub half_life: i64,
    pub prior_share: f64,
    pub step: i64,
}

impl Clusters {
    /// The (unnormalised) centroid of a live cluster.
    pub fn centroid(&self, id: u64) -> Option<&[f32]> {
        self.items
            .iter()
            .find(|c| c.id == id && c.norm > 0.0)
            .map(|c| c.centroid.as_slice())
    }

    /// Assigns a centred, normalised embedding to a cluster.
    pub fn assign(&mut self, x: &[f32], t: EventTime, p: &ClusterParams) -> Assignment {
        let mut best: Option<(usize, f32)> = None;
        for (i, c) in self.items.iter().enumerate() {
            let s = if c.norm > 0.0 {
                dot(&c.centroid, x) / c.norm
            } else {
                0.0
            };
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        let decay = |w: f64, from: EventTime| {
            let dt = t.saturating_sub(from).max(0) as f64;
            w * (0.5f64).powf(dt / p.half_life.max(1) as f64)
        };
        let idx = match best {
            Some((i, s)) if s >= p.threshold => {
                let c = &mut self.items[i];
                let w = decay(c.weight, c.last);
                // Running mean of members (decayed), kept unnormalised.
                let keep = (w / (w + 1.0)) as f32;
                for (ci, xi) in c.centroid.iter_mut().zip(x) {
                    *ci = *ci * keep + xi * (1.0 - keep);
                }
                c.norm = dot(&c.centroid, &c.centroid).sqrt();
                c.weight = w + 1.0;
                c.last = c.last.max(t);
                let _ = s;
                i
            }
            _ => {
                let fresh = Cluster {
                    id: self.next_id,
                    centroid: x.to_vec(),
                    norm: dot(x, x).sqrt(),
                    weight: 1.0,
                    last: t,
                    counts: Buckets::default(),
                    share: p.prior_share,
                    evidence: 0.0,
                };
                self.next_id += 1;
                if self.items.len() < p.max_clusters.max(1) {
                    self.items.push(fresh);
                    self.items.len() - 1
                } else {
                    let mut victim = 0;
                    let mut lightest = f64::INFINITY;
                    for (i, c) in self.items.iter().enumerate() {
                        let w = decay(c.weight, c.last);
                        if w < lightest {
                            lightest = w;
                            victim = i;
                        }
                    }
                    self.items[victim] = fresh;
                    victim
                }
            }
        };
        let c = &mut self.items[idx];
        if let Some(n) = c.counts.get_mut(bucket_of(t, p.step)) {
            *n += 1;
        }
        let sim = if c.norm > 0.0 {
            dot(&c.centroid, x) / c.norm
        } else {
            0.0
        };
        Assignment {
            cluster: c.id,
            similarity: sim,
        }
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Cluster> {
        self.items.iter_mut().find(|c| c.id == id)
    }
}

/// The running mean of all embeddings, to centre them on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Centring {
    mean: Vec<f32>,
    n: u64,
}

impl Centring {
    /// Dimensions of the embeddings seen so far (`None` before the first).
    pub(crate) fn dim(&self) -> Option<usize> {
        (!self.mean.is_empty()).then_some(self.mean.len())
    }

    /// Centres an embedding on the running mean of all embeddings (plain
    /// mean for the first 2000, then an EWMA) and normalises it.
    pub(crate) fn centre(&mut self, emb: &[f32]) -> Option<Vec<f32>> {
        if emb.is_empty() {
            return None;
        }
        if self.mean.is_empty() {
            self.mean = vec![0.0; emb.len()];
        }
        self.n += 1;
        let a = (1.0 / self.n as f32).max(1.0 / 2000.0);
        for (m, x) in self.mean.iter_mut().zip(emb) {
            *m += a * (x - *m);
        }
        if self.n < 50 {
            // Too few items for a meaningful mean: use the raw direction.
            let n: f32 = emb.iter().map(|x| x * x).sum::<f32>().sqrt();
            return (n > 0.0).then(|| emb.iter().map(|x| x / n).collect());
        }
        centre(emb, &self.mean)
    }
}

/// Centres `x` on `mean` and normalises; returns `None` for a zero vector.
pub fn centre(x: &[f32], mean: &[f32]) -> Option<Vec<f32>> {
    let v: Vec<f32> = x.iter().zip(mean).map(|(a, m)| a - m).collect();
    let n = dot(&v, &v).sqrt();
    if n.is_finite() && n > 0.0 {
        Some(v.into_iter().map(|a| a / n).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ClusterParams {
        ClusterParams {
            threshold: 0.8,
            max_clusters: 2,
            half_life: 3_600_000,
            prior_share: 0.05,
            step: 300_000,
        }
    }

    #[test]
    fn similar_items_share_a_cluster_and_the_cap_holds() {
        let mut c = Clusters::default();
        let p = params();
        let a = c.assign(&[1.0, 0.0, 0.0], 0, &p).cluster;
        let b = c.assign(&[0.99, 0.14, 0.0], 1, &p);
        assert_eq!(a, b.cluster);
        assert!(b.similarity > 0.9);
        let d = c.assign(&[0.0, 1.0, 0.0], 2, &p).cluster;
        assert_ne!(d, a);
        let e = c.assign(&[0.0, 0.0, 1.0], 3, &p).cluster;
        assert_eq!(c.items.len(), 2);
        // The lighter cluster (d, one member) was replaced.
        assert!(c.items.iter().any(|x| x.id == a) && c.items.iter().any(|x| x.id == e));
    }
}
