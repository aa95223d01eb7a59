//! Training and evaluation of the sentiment head: weighted L2 logistic
//! regression on frozen embeddings (full-batch Adam), temperature scaling on a
//! calibration split, the neutral band, and the metrics reported in
//! `models/README.md`. Pure functions; the CLI does the I/O.

use rayon::prelude::*;

/// Which split a labelled item belongs to. Decided by a stable hash of the
/// text so that the held-out split never changes between runs or machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    /// Used only to fit the temperature and the neutral band.
    Calibrate,
    /// Never seen by training or calibration.
    HeldOut,
}

/// FNV-1a 64 of the text: stable across platforms and Rust versions.
pub fn text_hash(text: &str) -> u64 {
    earshot_core::hash::fnv1a(text.as_bytes())
}

/// 80 % train, 10 % calibrate, 10 % held out.
pub fn split_of(text: &str) -> Split {
    match text_hash(text) % 10 {
        0 => Split::HeldOut,
        1 => Split::Calibrate,
        _ => Split::Train,
    }
}

/// Hyper-parameters of the logistic regression.
#[derive(Debug, Clone, Copy)]
pub struct LrOptions {
    pub l2: f32,
    pub iterations: usize,
    pub learning_rate: f32,
}

impl Default for LrOptions {
    fn default() -> Self {
        Self {
            l2: 1e-4,
            iterations: 400,
            learning_rate: 0.05,
        }
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Fits `P(y=1|x) = σ(w·x + b)` minimising weighted log-loss plus `l2·|w|²/2`.
/// `weights` are per-sample (they are normalised to sum to 1).
pub fn fit_logistic(x: &[Vec<f32>], y: &[bool], weights: &[f32], opt: LrOptions) -> (Vec<f32>, f32) {
    assert_eq!(x.len(), y.len());
    assert_eq!(x.len(), weights.len());
    let dim = x.first().map_or(0, Vec::len);
    let total: f32 = weights.iter().sum::<f32>().max(1e-12);
    let sw: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let mut w = vec![0.0f32; dim];
    let mut b = 0.0f32;
    // Adam state.
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut m = vec![0.0f32; dim + 1];
    let mut v = vec![0.0f32; dim + 1];
    for t in 1..=opt.iterations {
        let grad = x
            .par_iter()
            .zip(y.par_iter())
            .zip(sw.par_iter())
            .fold(
                || vec![0.0f32; dim + 1],
                |mut g, ((xi, &yi), &wi)| {
                    let p = sigmoid(dot(&w, xi) + b);
                    let r = wi * (p - if yi { 1.0 } else { 0.0 });
                    for (gj, xj) in g.iter_mut().zip(xi) {
                        *gj += r * xj;
                    }
                    g[dim] += r;
                    g
                },
            )
            .reduce(
                || vec![0.0f32; dim + 1],
                |mut a, bb| {
                    a.iter_mut().zip(bb).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let lr_t = opt.learning_rate * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
        for j in 0..=dim {
            let g = grad[j] + if j < dim { opt.l2 * w[j] } else { 0.0 };
            m[j] = b1 * m[j] + (1.0 - b1) * g;
            v[j] = b2 * v[j] + (1.0 - b2) * g * g;
            let step = lr_t * m[j] / (v[j].sqrt() + eps);
            if j < dim {
                w[j] -= step;
            } else {
                b -= step;
            }
        }
    }
    (w, b)
}

/// Fits a multinomial logistic regression `softmax(W·x + b)` over `classes`
/// classes, minimising weighted log-loss plus `l2·|W - W0|²/2` (full-batch
/// Adam), starting from and shrinking towards `init` (rows of `W0`; e.g. the
/// prototype centroids, so few examples refine them rather than replace them).
pub fn fit_softmax(
    x: &[Vec<f32>],
    y: &[usize],
    weights: &[f32],
    init: &[Vec<f32>],
    opt: LrOptions,
) -> (Vec<Vec<f32>>, Vec<f32>) {
    let k = init.len();
    let dim = init.first().map_or(0, Vec::len);
    let total: f32 = weights.iter().sum::<f32>().max(1e-12);
    let mut w: Vec<Vec<f32>> = init.to_vec();
    let mut b = vec![0.0f32; k];
    let n = k * (dim + 1);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    for t in 1..=opt.iterations {
        let grad = x
            .par_iter()
            .zip(y.par_iter())
            .zip(weights.par_iter())
            .fold(
                || vec![0.0f32; n],
                |mut g, ((xi, &yi), &wi)| {
                    let logits: Vec<f32> = (0..k).map(|c| dot(&w[c], xi) + b[c]).collect();
                    let mx = logits.iter().fold(f32::NEG_INFINITY, |a, &l| a.max(l));
                    let e: Vec<f32> = logits.iter().map(|l| (l - mx).exp()).collect();
                    let z: f32 = e.iter().sum();
                    for c in 0..k {
                        let r = wi / total * (e[c] / z - if c == yi { 1.0 } else { 0.0 });
                        let row = &mut g[c * (dim + 1)..(c + 1) * (dim + 1)];
                        for (gj, xj) in row.iter_mut().zip(xi) {
                            *gj += r * xj;
                        }
                        row[dim] += r;
                    }
                    g
                },
            )
            .reduce(
                || vec![0.0f32; n],
                |mut a, bb| {
                    a.iter_mut().zip(bb).for_each(|(x, y)| *x += y);
                    a
                },
            );
        let lr_t = opt.learning_rate * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
        for c in 0..k {
            for j in 0..=dim {
                let idx = c * (dim + 1) + j;
                let g = grad[idx] + if j < dim { opt.l2 * (w[c][j] - init[c][j]) } else { 0.0 };
                m[idx] = b1 * m[idx] + (1.0 - b1) * g;
                v[idx] = b2 * v[idx] + (1.0 - b2) * g * g;
                let step = lr_t * m[idx] / (v[idx].sqrt() + eps);
                if j < dim {
                    w[c][j] -= step;
                } else {
                    b[c] -= step;
                }
            }
        }
    }
    (w, b)
}

/// Mean binary log-loss of `σ(s / t)`.
pub fn log_loss(scores: &[f32], y: &[bool], t: f32) -> f64 {
    let n = scores.len().max(1) as f64;
    scores
        .iter()
        .zip(y)
        .map(|(&s, &yi)| {
            let p = sigmoid(s / t).clamp(1e-7, 1.0 - 1e-7) as f64;
            if yi {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / n
}

/// Temperature minimising log-loss on a calibration split (grid then refine).
pub fn fit_temperature(scores: &[f32], y: &[bool]) -> f32 {
    let mut best = (1.0f32, f64::INFINITY);
    let mut t = 0.05f32;
    while t <= 20.0 {
        let l = log_loss(scores, y, t);
        if l < best.1 {
            best = (t, l);
        }
        t *= 1.05;
    }
    best.0
}

/// Per-class offsets `b` (neutral fixed at 0) minimising the three-class
/// log-loss of `softmax(logits / t + b)` on a calibration split: a prior
/// correction after the temperature, for a training mix whose class balance
/// differs from the data the model will see. Convex; plain gradient descent.
/// Returns `b` and the log-loss with it.
pub fn fit_class_bias(logits: &[[f32; 3]], labels: &[usize], t: f32) -> ([f32; 3], f64) {
    let n = logits.len().max(1) as f64;
    let mut b = [0f64; 3];
    let pass = |b: &[f64; 3]| -> (f64, [f64; 3]) {
        let (mut loss, mut grad) = (0f64, [0f64; 3]);
        for (l, &y) in logits.iter().zip(labels) {
            let z = [0, 1, 2].map(|i| f64::from(l[i] / t) + b[i]);
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e = z.map(|v| (v - m).exp());
            let sum: f64 = e.iter().sum();
            loss += m + sum.ln() - z[y];
            for i in 0..3 {
                grad[i] += e[i] / sum - f64::from(u8::from(i == y));
            }
        }
        (loss / n, grad.map(|g| g / n))
    };
    // The log-loss's curvature in b is at most 1/2, so a step of 1 descends.
    for _ in 0..500 {
        let (_, g) = pass(&b);
        if g[0].abs().max(g[2].abs()) < 1e-7 {
            break;
        }
        b[0] -= g[0];
        b[2] -= g[2];
    }
    (b.map(|v| v as f32), pass(&b).0)
}

/// Temperature minimising the three-class log-loss of `logits / t` (grid
/// from 0.1 to 10, steps of 3 %); returns it with that log-loss.
pub fn fit_temperature_multiclass(logits: &[[f32; 3]], labels: &[usize]) -> (f32, f64) {
    let nll = |t: f32| -> f64 {
        logits
            .iter()
            .zip(labels)
            .map(|(l, &y)| {
                let z = l.map(|v| v / t);
                let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
                (lse - z[y]) as f64
            })
            .sum::<f64>()
            / logits.len().max(1) as f64
    };
    let mut best = (1.0f32, nll(1.0));
    let mut t = 0.1f32;
    while t <= 10.0 {
        let l = nll(t);
        if l < best.1 {
            best = (t, l);
        }
        t *= 1.03;
    }
    best
}

/// Expected calibration error over 10 equal-width bins of `P(pos)`.
pub fn expected_calibration_error(probs: &[f32], y: &[bool]) -> f64 {
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (&p, &yi) in probs.iter().zip(y) {
        let k = ((p * 10.0) as usize).min(9);
        bins[k].0 += p as f64;
        bins[k].1 += if yi { 1.0 } else { 0.0 };
        bins[k].2 += 1;
    }
    let n = probs.len().max(1) as f64;
    bins.iter()
        .filter(|b| b.2 > 0)
        .map(|(ps, ys, _)| (ps - ys).abs() / n)
        .sum()
}

/// Accuracy of `score > 0` against labels.
pub fn accuracy(scores: &[f32], y: &[bool]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().zip(y).filter(|(&s, &yi)| (s > 0.0) == yi).count() as f64 / scores.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_regression_separates_and_recovers_direction() {
        // Two Gaussian-ish blobs along the first axis.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut s: u64 = 12345;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for i in 0..2000 {
            let pos = i % 2 == 0;
            let c = if pos { 1.0 } else { -1.0 };
            x.push(vec![c + rnd(), rnd(), rnd()]);
            y.push(pos);
        }
        let w = vec![1.0; x.len()];
        let (wt, _) = fit_logistic(&x, &y, &w, LrOptions::default());
        assert!(wt[0] > 5.0 * wt[1].abs() && wt[0] > 5.0 * wt[2].abs(), "{wt:?}");
        let scores: Vec<f32> = x.iter().map(|xi| dot(&wt, xi)).collect();
        assert!(accuracy(&scores, &y) > 0.97);
    }

    #[test]
    fn temperature_undoes_overconfidence() {
        // True model is σ(s); scores inflated 3x should get t ≈ 3.
        let mut scores = Vec::new();
        let mut y = Vec::new();
        let mut s: u64 = 99;
        for i in 0..20000 {
            let z = (i as f32 / 20000.0 - 0.5) * 8.0;
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            y.push(u < sigmoid(z));
            scores.push(3.0 * z);
        }
        let t = fit_temperature(&scores, &y);
        assert!((t - 3.0).abs() < 0.4, "t = {t}");
        let probs: Vec<f32> = scores.iter().map(|s| sigmoid(s / t)).collect();
        assert!(expected_calibration_error(&probs, &y) < 0.03);
    }

    #[test]
    fn softmax_regression_learns_three_classes_from_a_poor_start() {
        let mut s: u64 = 7;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..1500 {
            let c = i % 3;
            let mut v = vec![rnd(), rnd(), rnd()];
            v[c] += 1.5;
            x.push(v);
            y.push(c);
        }
        let w = vec![1.0; x.len()];
        // Start from the wrong centroids (rotated classes).
        let init = vec![vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]];
        let opt = LrOptions {
            l2: 1e-4,
            iterations: 300,
            learning_rate: 0.05,
        };
        let (wt, b) = fit_softmax(&x, &y, &w, &init, opt);
        let correct = x
            .iter()
            .zip(&y)
            .filter(|(xi, &yi)| {
                let l: Vec<f32> = (0..3).map(|c| dot(&wt[c], xi) + b[c]).collect();
                (0..3).max_by(|&a, &c| l[a].total_cmp(&l[c])) == Some(yi)
            })
            .count();
        assert!(correct > 1400, "{correct}/1500");
    }

    /// `n` draws: uniform z in [-2, 2)³, a label from softmax(z + shift),
    /// and the model's logits z · scale.
    fn draws(seed: u64, n: usize, shift: [f32; 3], scale: f32) -> (Vec<[f32; 3]>, Vec<usize>) {
        let mut s = seed;
        let mut u = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let z = [u() * 4.0 - 2.0, u() * 4.0 - 2.0, u() * 4.0 - 2.0];
            let e = [0, 1, 2].map(|i| (z[i] + shift[i]).exp());
            let r = u() * e.iter().sum::<f32>();
            labels.push(if r < e[0] {
                0
            } else if r < e[0] + e[1] {
                1
            } else {
                2
            });
            logits.push(z.map(|v| v * scale));
        }
        (logits, labels)
    }

    #[test]
    fn multiclass_temperature_undoes_overconfidence() {
        // True model softmax(z); logits inflated 2.5x should get t ≈ 2.5.
        let (logits, labels) = draws(5, 20000, [0.0; 3], 2.5);
        let (t, _) = fit_temperature_multiclass(&logits, &labels);
        assert!((t - 2.5).abs() < 0.3, "t = {t}");
    }

    #[test]
    fn class_bias_recovers_a_shifted_prior_and_never_raises_the_loss() {
        // Labels drawn from softmax(z + shift); the model's logits are z * 1.5.
        let (logits, labels) = draws(11, 30000, [0.6, 0.0, -0.4], 1.5);
        let (b, with) = fit_class_bias(&logits, &labels, 1.5);
        assert_eq!(b[1], 0.0);
        assert!((b[0] - 0.6).abs() < 0.08 && (b[2] + 0.4).abs() < 0.08, "b = {b:?}");
        let (_, without) = fit_class_bias(&logits[..0], &labels[..0], 1.5);
        assert_eq!(without, 0.0, "no items: zero loss, zero bias");
        // Same data, temperature only: the fitted bias lowers the loss further.
        let plain = fit_temperature_multiclass(&logits, &labels);
        assert!(with < plain.1, "{with} vs {}", plain.1);
    }

    #[test]
    fn split_is_stable_and_proportionate() {
        assert_eq!(split_of("hello"), split_of("hello"));
        let held = (0..10000)
            .filter(|i| split_of(&format!("review {i}")) == Split::HeldOut)
            .count();
        assert!((800..1200).contains(&held), "{held}");
    }
}
