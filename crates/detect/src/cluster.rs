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
    /// Assigns a centred, normalised embedding; returns `(cluster id, cosine)`.
    pub fn assign(&mut self, x: &[f32], t: EventTime, p: &ClusterParams) -> (u64, f32) {
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
            let dt = (t - from).max(0) as f64;
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
        (c.id, sim)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Cluster> {
        self.items.iter_mut().find(|c| c.id == id)
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
        let (a, _) = c.assign(&[1.0, 0.0, 0.0], 0, &p);
        let (b, s) = c.assign(&[0.99, 0.14, 0.0], 1, &p);
        assert_eq!(a, b);
        assert!(s > 0.9);
        let (d, _) = c.assign(&[0.0, 1.0, 0.0], 2, &p);
        assert_ne!(d, a);
        let (e, _) = c.assign(&[0.0, 0.0, 1.0], 3, &p);
        assert_eq!(c.items.len(), 2);
        // The lighter cluster (d, one member) was replaced.
        assert!(c.items.iter().any(|x| x.id == a) && c.items.iter().any(|x| x.id == e));
    }
}
