//! Online leader clustering of one key's negative items.
//!
//! Embeddings are centred on a slowly moving global mean (sentence encoders
//! put unrelated texts at high raw cosine) and normalised. An item joins the
//! most similar cluster at or above the threshold, else founds one; at the
//! cap the lightest cluster (decayed weight, then lowest id) is replaced.
//! Each cluster counts members per step and learns its usual share of the
//! key's negatives, so growth is judged against its own history. A young
//! cluster (a new topic) also keeps a [`Run`] of a Poisson CUSUM of its
//! members per step, which the evaluation advances; its share is not learned
//! while that run is half way to an alarm.
//!
//! A leader clustering decides on arrival, so the first items of a new topic
//! join whatever broad cluster clears the threshold before the topic has a
//! cluster of its own. Members that joined an existing cluster stay "loose"
//! for a short while ([`ClusterParams::rehome`]); a cluster founded within
//! that time takes over those closer to it than they were to their own
//! cluster when they joined ([`Clusters::adopt`]).

use std::collections::VecDeque;
use std::sync::Arc;

use super::window::{bucket_of, Buckets};
use earshot_core::types::EventTime;

/// Loose members a key keeps at most (the most recent).
pub const LOOSE_CAP: usize = 8;

#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: u64,
    centroid: Vec<f32>,
    norm: f32,
    weight: f64,
    last: EventTime,
    /// Event time of the founding member.
    pub founded: EventTime,
    pub counts: Buckets<u32>,
    /// Baseline share of the key's negatives that falls in this cluster.
    pub share: f64,
    /// Negatives the share estimate rests on.
    pub evidence: f64,
    /// Sequential test of the cluster's members per step against its usual
    /// rate (see [`Cluster::step`]).
    pub run: Run,
}

/// The current run of a cluster's Poisson CUSUM: the log-likelihood ratio
/// of "members arrive at `ratio` times the usual rate" against "at the usual
/// rate", summed over steps and floored at 0; `from` is the start of the
/// step where it last left 0, `observed` / `expected` its members since.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Run {
    pub cusum: f64,
    pub from: EventTime,
    pub observed: u32,
    pub expected: f64,
}

impl Run {
    /// The run after one step `[start, start + step)` with `k` members
    /// where `mu` were expected, for a CUSUM tuned to `ratio` times the
    /// usual rate. The statistic is capped at `cap`, so that it falls back
    /// below the decision interval soon after a wave ends.
    pub fn advance(self, k: u32, mu: f64, ratio: f64, cap: f64, start: EventTime) -> Run {
        let r = ratio.max(1.0 + 1e-9);
        let mu = mu.max(0.0);
        let mut run = if self.cusum > 0.0 {
            self
        } else {
            Run {
                from: start,
                ..Run::default()
            }
        };
        let next = run.cusum + k as f64 * r.ln() - (r - 1.0) * mu;
        if next <= 0.0 {
            return Run::default();
        }
        run.cusum = next.min(cap.max(0.0));
        run.observed = run.observed.saturating_add(k);
        run.expected += mu;
        run
    }
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
    /// The item founded the cluster.
    pub founded: bool,
    /// Cosine to the cluster's centroid before the item joined (1 for a founder).
    pub joined: f32,
}

/// A member that joined an existing cluster, kept for
/// [`ClusterParams::rehome`] so that a cluster founded soon after can take
/// it over. The centred embedding is shared by every key the item counts in.
#[derive(Debug, Clone)]
pub struct Loose {
    pub seq: u64,
    pub t: EventTime,
    pub cluster: u64,
    /// Cosine to its cluster's centroid when it joined.
    pub joined: f32,
    pub x: Arc<[f32]>,
}

/// A member [`Clusters::adopt`] moved: its sequence number, event time and
/// cosine to the new cluster's centroid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adopted {
    pub seq: u64,
    pub t: EventTime,
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
    /// How long (event time, either side) a member that joined an existing
    /// cluster may still move to a cluster founded after it (0: never).
    pub rehome: i64,
    /// Clusters founded at most this long ago are young (a topic of their
    /// own, watched by the CUSUM): they keep their members.
    pub youth: i64,
}

impl Clusters {
    /// The (unnormalised) centroid of a live cluster.
    pub fn centroid(&self, id: u64) -> Option<&[f32]> {
        self.items
            .iter()
            .find(|c| c.id == id && c.norm > 0.0)
            .map(|c| c.centroid.as_slice())
    }

    /// The live cluster closest to `x` (index, cosine to its centroid).
    fn nearest(&self, x: &[f32]) -> Option<(usize, f32)> {
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
        best
    }

    /// Assigns a centred, normalised embedding to a cluster.
    pub fn assign(&mut self, x: &[f32], t: EventTime, p: &ClusterParams) -> Assignment {
        let best = self.nearest(x);
        self.place(x, t, best, p)
    }

    /// Assigns `x` like [`Clusters::assign`], except that it founds a
    /// cluster of its own when the cluster it would join is not young and
    /// a loose member of that cluster within `p.rehome` is closer to it (at
    /// or above the threshold) than either of them is to that cluster: two
    /// items of a new topic pair up rather than both sinking into a broad
    /// cluster. The caller then lets the new cluster [`Clusters::adopt`]
    /// the loose members closer to it.
    pub fn assign_or_pair(
        &mut self,
        x: &[f32],
        t: EventTime,
        loose: &VecDeque<Loose>,
        p: &ClusterParams,
    ) -> Assignment {
        let best = self.nearest(x);
        let paired = p.rehome > 0
            && best.is_some_and(|(i, s)| {
                let c = &self.items[i];
                s >= p.threshold
                    && !c.young(t, p.youth)
                    && loose.iter().any(|m| {
                        let d = dot(x, &m.x);
                        m.cluster == c.id
                            && t.abs_diff(m.t) <= p.rehome.unsigned_abs()
                            && d >= p.threshold
                            && d > s
                            && d > m.joined
                    })
            });
        self.place(x, t, if paired { None } else { best }, p)
    }

    fn place(&mut self, x: &[f32], t: EventTime, best: Option<(usize, f32)>, p: &ClusterParams) -> Assignment {
        let decay = |w: f64, from: EventTime| {
            let dt = t.saturating_sub(from).max(0) as f64;
            w * (0.5f64).powf(dt / p.half_life.max(1) as f64)
        };
        let founded = !matches!(best, Some((_, s)) if s >= p.threshold);
        let mut joined = 1.0;
        let idx = match best {
            Some((i, s)) if s >= p.threshold => {
                joined = s;
                let c = &mut self.items[i];
                let w = decay(c.weight, c.last);
                c.take_in(x, w);
                c.last = c.last.max(t);
                i
            }
            _ => {
                let fresh = Cluster {
                    id: self.next_id,
                    centroid: x.to_vec(),
                    norm: dot(x, x).sqrt(),
                    weight: 1.0,
                    last: t,
                    founded: t,
                    counts: Buckets::default(),
                    share: p.prior_share,
                    evidence: 0.0,
                    run: Run::default(),
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
            founded,
            joined,
        }
    }

    /// Moves into cluster `id` (just founded at `t`) the loose members
    /// within `p.rehome` of `t` whose cluster is not young, that are at
    /// least as close to its centroid as the threshold and closer than they
    /// were to their own cluster when they joined: each one's count moves
    /// to the new cluster's bucket and the new centroid takes it in (the old
    /// centroid keeps the member's small pull: a decayed running mean cannot
    /// forget one member exactly). Moved members leave `loose`; members of
    /// clusters no longer live are dropped from it. Returns the moved
    /// members in arrival order.
    pub fn adopt(&mut self, id: u64, t: EventTime, loose: &mut VecDeque<Loose>, p: &ClusterParams) -> Vec<Adopted> {
        let mut moved = Vec::new();
        if p.rehome <= 0 {
            return moved;
        }
        let Some(to) = self.items.iter().position(|c| c.id == id) else {
            return moved;
        };
        loose.retain(|m| {
            if m.cluster == id || t.abs_diff(m.t) > p.rehome.unsigned_abs() {
                return true;
            }
            let Some(from) = self.items.iter().position(|c| c.id == m.cluster) else {
                return false;
            };
            if self.items[from].young(t, p.youth) {
                return true;
            }
            let c = &self.items[to];
            let s = if c.norm > 0.0 {
                dot(&c.centroid, &m.x) / c.norm
            } else {
                0.0
            };
            if s < p.threshold || s <= m.joined {
                return true;
            }
            let b = bucket_of(m.t, p.step);
            match self.items[from].counts.get_mut(b).filter(|n| **n > 0) {
                Some(n) => *n -= 1,
                None => return true,
            }
            let c = &mut self.items[to];
            if let Some(n) = c.counts.get_mut(b) {
                *n += 1;
            }
            c.take_in(&m.x, c.weight);
            moved.push(Adopted {
                seq: m.seq,
                t: m.t,
                similarity: s,
            });
            false
        });
        moved
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Cluster> {
        self.items.iter_mut().find(|c| c.id == id)
    }
}

impl Cluster {
    /// Takes a member into the centroid, a running mean of the members
    /// (their weight `w`, decayed by the caller; kept unnormalised).
    fn take_in(&mut self, x: &[f32], w: f64) {
        let keep = (w / (w + 1.0)) as f32;
        for (ci, xi) in self.centroid.iter_mut().zip(x) {
            *ci = *ci * keep + xi * (1.0 - keep);
        }
        self.norm = dot(&self.centroid, &self.centroid).sqrt();
        self.weight = w + 1.0;
    }

    /// Founded at most `youth` before `now`.
    pub fn young(&self, now: EventTime, youth: i64) -> bool {
        now.saturating_sub(self.founded) <= youth
    }

    /// Whether the CUSUM watches this cluster at `now`: it was founded at
    /// most `youth` ago (a new topic), or a run that began then goes on.
    pub fn watched(&self, now: EventTime, youth: i64) -> bool {
        self.run.cusum > 0.0 || self.young(now, youth)
    }

    /// The usual share of the key's negatives to test this cluster against:
    /// its learned share, floored, at its upper bound of `z` standard
    /// errors. The prior share a cluster starts with counts as
    /// `prior_items` negatives of evidence: a cluster is founded by an item
    /// unlike every live cluster, so its topic was rare in this key until
    /// now, and a fresh cluster must not be judged as if its share could be
    /// anything (that hides every new topic in a busy key).
    pub fn usual_share(&self, prior_items: f64, z: f64) -> f64 {
        let n = self.evidence + prior_items.max(0.0);
        (self.share.max(0.01) + z * (self.share * (1.0 - self.share) / (n + 1.0)).sqrt()).min(0.999)
    }

    /// One step of the cluster's Poisson CUSUM (see [`Run::advance`]).
    pub fn step(&mut self, k: u32, mu: f64, ratio: f64, cap: f64, start: EventTime) -> Run {
        self.run = self.run.advance(k, mu, ratio, cap, start);
        self.run
    }

    /// Learns the cluster's usual share from one closed hour (`kc` of the
    /// key's `k` negatives, the hour ending at `end`), unless a run of its
    /// CUSUM is above `hold` and began less than `max_hold` before `end`: a
    /// wave in progress is not learned as usual, but a cluster whose share
    /// was simply wrong learns it after `max_hold`.
    pub fn learn_share(&mut self, kc: u32, k: u32, end: EventTime, hold: f64, max_hold: i64) {
        let held = self.run.cusum > hold && end.saturating_sub(self.run.from) < max_hold;
        if k == 0 || held {
            return;
        }
        let a = (1.0 / 48.0f64).max(1.0 / (self.evidence / k as f64 + 2.0));
        self.share += a * (kc as f64 / k as f64 - self.share);
        self.evidence = (self.evidence + k as f64).min(2000.0);
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
            rehome: 900_000,
            youth: 3_600_000,
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

    #[test]
    fn cusum_run_grows_with_members_falls_back_to_zero_and_is_capped() {
        let (r, cap) = (10.0, 14.0);
        // Nothing where 0.1 were expected: stays at 0, no run.
        let quiet = Run::default().advance(0, 0.1, r, cap, 0);
        assert_eq!(quiet, Run::default());
        // Two members in a step where 0.1 were expected: 2 ln 10 - 0.9.
        let run = Run::default().advance(2, 0.1, r, cap, 300);
        assert!((run.cusum - (2.0 * 10f64.ln() - 0.9)).abs() < 1e-9);
        assert_eq!((run.from, run.observed), (300, 2));
        // The run keeps its start while it lasts.
        let run = run.advance(1, 0.1, r, cap, 600);
        assert_eq!((run.from, run.observed), (300, 3));
        assert!((run.expected - 0.2).abs() < 1e-9);
        // Capped, so that it clears soon after a wave ends.
        let mut big = run;
        for i in 0..10 {
            big = big.advance(5, 0.1, r, cap, 900 + i * 300);
        }
        assert_eq!(big.cusum, cap);
        // Quiet steps bring it back to 0 and end the run.
        let mut after = big;
        for i in 0..20 {
            after = after.advance(0, 0.2, r, cap, 4000 + i * 300);
        }
        assert_eq!(after, Run::default());
    }

    #[test]
    fn a_new_cluster_counts_its_prior_as_evidence() {
        let mut c = Clusters::default();
        let p = params();
        let id = c.assign(&[1.0, 0.0, 0.0], 0, &p).cluster;
        let cl = c.get_mut(id).expect("cluster");
        // No evidence: the prior share is all there is, at 20 items' worth
        // it is bounded well below the 0.38 of an unweighted prior.
        let q = cl.usual_share(20.0, 1.5);
        assert!(q > 0.05 && q < 0.13, "{q}");
        assert!(cl.usual_share(0.0, 1.5) > 0.3);
        // Learning is held while a young run is half way to an alarm.
        cl.run.cusum = 5.0;
        cl.learn_share(4, 10, 3_600_000, 3.5, 6 * 3_600_000);
        assert_eq!(cl.evidence, 0.0);
        cl.run = Run::default();
        cl.learn_share(4, 10, 3_600_000, 3.5, 6 * 3_600_000);
        assert!(cl.evidence > 0.0 && cl.share > 0.05);
    }

    fn unit(v: [f32; 3]) -> Vec<f32> {
        let n = dot(&v, &v).sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// A broad cluster founded at 0 (old by `t`), then two items of a new
    /// topic that each clear the threshold against it but are much closer
    /// to each other, the first one `gap` before the second.
    fn broad_then_pair(t: EventTime, gap: i64, p: &ClusterParams) -> (Clusters, u64, Assignment, Assignment) {
        let mut c = Clusters::default();
        let broad = c.assign(&[1.0, 0.0, 0.0], 0, p).cluster;
        let mut loose = VecDeque::new();
        let x1 = unit([0.85, 0.5, 0.15]);
        let a1 = c.assign_or_pair(&x1, t - gap, &loose, p);
        loose.push_back(Loose {
            seq: 1,
            t: t - gap,
            cluster: a1.cluster,
            joined: a1.joined,
            x: x1.into(),
        });
        let x2 = unit([0.85, 0.5, 0.2]);
        let a2 = c.assign_or_pair(&x2, t, &loose, p);
        if a2.founded {
            let moved = c.adopt(a2.cluster, t, &mut loose, p);
            assert_eq!(moved.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1]);
            assert!(loose.is_empty());
        }
        (c, broad, a1, a2)
    }

    #[test]
    fn two_items_of_a_new_topic_pair_up_and_take_their_count_along() {
        let p = ClusterParams {
            max_clusters: 8,
            ..params()
        };
        let t = 2 * 3_600_000;
        let (c, broad, a1, a2) = broad_then_pair(t, 60_000, &p);
        assert_eq!(a1.cluster, broad, "the first one joins the broad cluster");
        assert!(a1.joined >= 0.8 && a1.joined < 0.9, "{}", a1.joined);
        assert!(a2.founded, "the second founds its own cluster");
        let count = |id: u64| -> u32 {
            c.items
                .iter()
                .find(|x| x.id == id)
                .unwrap()
                .counts
                .range(0, i64::MAX)
                .map(|(_, n)| *n)
                .sum()
        };
        assert_eq!(count(a2.cluster), 2, "the first moved in");
        assert_eq!(count(broad), 1, "and left the broad cluster");
    }

    #[test]
    fn young_clusters_keep_their_members_and_old_members_stay_put() {
        let p = ClusterParams {
            max_clusters: 8,
            ..params()
        };
        // The broad cluster is still young (founded within `youth`): it may
        // be the new topic itself, so nothing pairs out of it.
        let (_, broad, _, a2) = broad_then_pair(p.youth / 2, 60_000, &p);
        assert_eq!(a2.cluster, broad);
        assert!(!a2.founded);
        // The first item came longer than `rehome` before the second.
        let (_, broad, _, a2) = broad_then_pair(2 * 3_600_000, p.rehome + 1, &p);
        assert_eq!(a2.cluster, broad);
        // Re-homing off.
        let off = ClusterParams { rehome: 0, ..p };
        let (_, broad, _, a2) = broad_then_pair(2 * 3_600_000, 60_000, &off);
        assert_eq!(a2.cluster, broad);
    }
}
