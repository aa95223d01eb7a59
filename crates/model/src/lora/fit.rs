//! The training loop of the adapter: examples, batching by token budget,
//! the loss (weighted cross-entropy plus the optional anchor term) and the
//! pooled embeddings of the adapted top layers.

use candle_core::{Device, Tensor, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use earshot_core::types::Category;

use super::{xorshift, LinearHead, TopLayers};
use crate::ModelError;

/// One training text: the frozen layers' output for its tokens, in one
/// window or several (a long text read the way inference reads it).
pub struct Example {
    /// `[tokens, hidden]` in f16 (halves the memory of the cache): the
    /// windows' rows end to end.
    pub hidden: Vec<half::f16>,
    /// Tokens of each window, in order; they sum to the rows of `hidden`.
    /// A text of several windows trains on the token-weighted mean of its
    /// windows' embeddings, as `EncodedBatch::pool_texts` pools at inference.
    pub windows: Vec<usize>,
    /// 0 neg, 1 neu, 2 pos.
    pub label: usize,
    /// Weight of the sentiment loss (0: the text trains the category only).
    pub weight: f32,
    /// The text's complaint category (`Category::ALL` order) and the weight
    /// of its category loss, when it has one.
    pub category: Option<(usize, f32)>,
}

/// Classes of the category head trained alongside, in `Category::ALL` order.
pub const CATEGORY_CLASSES: usize = Category::ALL.len();

impl Example {
    /// One text from the frozen layers' output as `Encoder::hidden_after`
    /// returns it: `hidden` holds rows of `hd` values end to end, `offsets`
    /// the first row of each of the text's windows followed by its end.
    pub fn from_frozen(hidden: &[f32], offsets: &[usize], hd: usize, label: usize) -> Self {
        let (first, end) = (offsets[0], offsets[offsets.len() - 1]);
        Self {
            hidden: hidden[first * hd..end * hd]
                .iter()
                .map(|&v| half::f16::from_f32(v))
                .collect(),
            windows: offsets.windows(2).map(|w| w[1] - w[0]).collect(),
            label,
            weight: 1.0,
            category: None,
        }
    }

    /// The longest window: the padded length of a batch holding it.
    fn longest(&self) -> usize {
        self.windows.iter().copied().max().unwrap_or(0)
    }
}

/// Optimiser settings.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: usize,
    /// Padded tokens per step (batch rows x longest row).
    pub batch_tokens: usize,
    pub max_batch: usize,
    pub lr: f64,
    pub head_lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Weight of the anchor term `anchor · mean(1 − cos(e, e₀))`, where `e₀`
    /// is the example's embedding before training (the published encoder:
    /// every update starts at zero). Keeps the adapted encoder near the
    /// published one, whose geometry the category centroids and the other
    /// languages rely on. 0 turns it off.
    pub anchor: f64,
}

/// Progress of [`train`], reported after every step.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
    /// Steps planned: the first epoch's batches times the epochs. Each epoch
    /// shuffles before cutting by the token budget, so a later one can cut a
    /// batch or two more and `step` can end slightly past this.
    pub steps: usize,
    /// Total loss of the step (cross-entropy plus the anchor term).
    pub loss: f32,
    /// Mean `1 − cos(e, e₀)` of the step's examples (0 when the anchor is off).
    pub drift: f32,
}

/// Batches of example indices: sorted by length so padding stays small,
/// cut by the token budget, in a seeded shuffled order.
fn batches(examples: &[Example], opts: &TrainOptions, epoch: usize) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..examples.len()).collect();
    let mut rng = opts.seed.wrapping_add(epoch as u64 * 0x9E37_79B9) | 1;
    // Shuffle, then a stable sort by length: equal lengths stay shuffled.
    for i in (1..idx.len()).rev() {
        let j = ((xorshift(&mut rng) + 1.0) * 0.5 * (i + 1) as f32) as usize % (i + 1);
        idx.swap(i, j);
    }
    idx.sort_by_key(|&i| examples[i].longest());
    let mut out = cut_by_budget(examples, &idx, opts.batch_tokens, opts.max_batch);
    for i in (1..out.len()).rev() {
        let j = ((xorshift(&mut rng) + 1.0) * 0.5 * (i + 1) as f32) as usize % (i + 1);
        out.swap(i, j);
    }
    out
}

/// Cuts `order` (sorted by longest window) into consecutive groups whose
/// padded rows (`windows × longest`) stay within `budget` tokens and whose
/// texts stay within `max_texts`; a text over the budget gets a group of its own.
fn cut_by_budget(examples: &[Example], order: &[usize], budget: usize, max_texts: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut rows = 0;
    for &i in order {
        let (n, len) = (examples[i].windows.len(), examples[i].longest().max(1));
        if !cur.is_empty() && ((rows + n) * len > budget || cur.len() >= max_texts) {
            out.push(std::mem::take(&mut cur));
            rows = 0;
        }
        cur.push(i);
        rows += n;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A batch ready for [`TopLayers::forward`]: every window of its texts as a
/// padded row, and how to pool rows back into texts.
struct Packed {
    /// `[rows, seq, hidden]`.
    x: Tensor,
    /// `[rows, seq]`, 1 real, 0 padding.
    mask: Tensor,
    /// `[texts, rows]` token weights, or `None` when every text is one window.
    pool: Option<Tensor>,
}

/// Pads a batch's windows into rows.
fn pack(examples: &[Example], group: &[usize], hd: usize) -> candle_core::Result<Packed> {
    let seq = group.iter().map(|&i| examples[i].longest()).max().unwrap_or(1).max(1);
    let rows: usize = group.iter().map(|&i| examples[i].windows.len()).sum();
    let mut x = vec![0f32; rows * seq * hd];
    let mut m = vec![0f32; rows * seq];
    let mut pool = vec![0f32; group.len() * rows];
    let mut r = 0;
    for (t, &i) in group.iter().enumerate() {
        let e = &examples[i];
        let mut at = 0;
        for &len in &e.windows {
            let src = &e.hidden[at * hd..(at + len) * hd];
            for (dst, v) in x[r * seq * hd..][..len * hd].iter_mut().zip(src) {
                *dst = v.to_f32();
            }
            m[r * seq..][..len].iter_mut().for_each(|v| *v = 1.0);
            pool[t * rows + r] = len as f32;
            at += len;
            r += 1;
        }
    }
    let pool = if rows == group.len() {
        None
    } else {
        Some(Tensor::from_vec(pool, (group.len(), rows), &Device::Cpu)?)
    };
    Ok(Packed {
        x: Tensor::from_vec(x, (rows, seq, hd), &Device::Cpu)?,
        mask: Tensor::from_vec(m, (rows, seq), &Device::Cpu)?,
        pool,
    })
}

/// `[texts, hidden]` unit vectors of a packed batch: the rows' embeddings,
/// a text's windows averaged by their tokens and normalised again.
fn forward_texts(top: &TopLayers, p: &Packed) -> candle_core::Result<Tensor> {
    let rows = top.forward(&p.x, &p.mask)?;
    match &p.pool {
        None => Ok(rows),
        Some(pool) => {
            let mean = pool.matmul(&rows)?;
            let n = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&n)
        }
    }
}

/// Weighted sum (not mean) of the cross-entropy of logits `[b, classes]`
/// against labels.
fn cross_entropy_sum(logits: &Tensor, labels: &[usize], weights: &[f32]) -> candle_core::Result<Tensor> {
    let (b, classes) = logits.dims2()?;
    let mut onehot = vec![0f32; b * classes];
    for (r, &l) in labels.iter().enumerate() {
        onehot[r * classes + l] = weights[r];
    }
    let onehot = Tensor::from_vec(onehot, (b, classes), &Device::Cpu)?;
    let lsm = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    (lsm * onehot)?.sum_all()?.neg()
}

/// The step's loss before the anchor term: the weighted sentiment
/// cross-entropy plus, for texts with a category, the weighted category
/// cross-entropy, both divided by the step's sentiment weight (a category
/// item of weight `w` counts as much as a sentiment item of weight `w`); a
/// step of category items only is divided by their own weight.
fn loss(
    e: &Tensor,
    sentiment: &LinearHead,
    category: Option<&LinearHead>,
    examples: &[Example],
    group: &[usize],
) -> candle_core::Result<Tensor> {
    let labels: Vec<usize> = group.iter().map(|&i| examples[i].label).collect();
    let weights: Vec<f32> = group.iter().map(|&i| examples[i].weight).collect();
    let mut total = weights.iter().sum::<f32>();
    let mut sum = cross_entropy_sum(&sentiment.forward(e)?, &labels, &weights)?;
    if let Some(head) = category {
        let (rows, cats): (Vec<u32>, Vec<(usize, f32)>) = group
            .iter()
            .enumerate()
            .filter_map(|(r, &i)| examples[i].category.map(|c| (r as u32, c)))
            .unzip();
        if !rows.is_empty() {
            let n = rows.len();
            let picked = e.index_select(&Tensor::from_vec(rows, n, &Device::Cpu)?, 0)?;
            let (labels, weights): (Vec<usize>, Vec<f32>) = cats.into_iter().unzip();
            if total <= 0.0 {
                total = weights.iter().sum();
            }
            sum = (sum + cross_entropy_sum(&head.forward(&picked)?, &labels, &weights)?)?;
        }
    }
    sum / total.max(1e-12) as f64
}

/// Trains the adapter's updates and the sentiment head together, and the
/// category head with them when one is given (texts with a `category`
/// train it; without a head those labels are ignored).
pub fn train(
    top: &TopLayers,
    head: &LinearHead,
    category: Option<&LinearHead>,
    examples: &[Example],
    opts: &TrainOptions,
    mut progress: impl FnMut(Progress),
) -> Result<(), ModelError> {
    let hd = top.cfg.hidden;
    let mut lora_opt = AdamW::new(
        top.vars(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let mut head_vars = vec![head.w.clone(), head.b.clone()];
    if let Some(c) = category {
        head_vars.extend([c.w.clone(), c.b.clone()]);
    }
    let mut head_opt = AdamW::new(
        head_vars,
        ParamsAdamW {
            lr: opts.head_lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    // Embeddings before any update: the updates start at zero, so these are
    // the published encoder's.
    let anchors = if opts.anchor > 0.0 {
        embed(top, examples, opts.batch_tokens)?
    } else {
        Vec::new()
    };
    let total_steps = opts.epochs * batches(examples, opts, 0).len();
    let mut step = 0;
    for epoch in 0..opts.epochs {
        for group in batches(examples, opts, epoch) {
            // Linear decay to a tenth over the run.
            let frac = step as f64 / total_steps.max(1) as f64;
            lora_opt.set_learning_rate(opts.lr * (1.0 - 0.9 * frac));
            head_opt.set_learning_rate(opts.head_lr * (1.0 - 0.9 * frac));
            let e = forward_texts(top, &pack(examples, &group, hd)?)?;
            let mut l = loss(&e, head, category, examples, &group)?;
            let mut drift = 0.0;
            if !anchors.is_empty() {
                let a: Vec<f32> = group.iter().flat_map(|&i| anchors[i].iter().copied()).collect();
                let a = Tensor::from_vec(a, (group.len(), hd), &Device::Cpu)?;
                let d = (1.0 - (&e * &a)?.sum(1)?)?.mean_all()?;
                drift = d.to_scalar::<f32>()?;
                l = (l + (d * opts.anchor)?)?;
            }
            let grads = l.backward()?;
            lora_opt.step(&grads)?;
            head_opt.step(&grads)?;
            step += 1;
            progress(Progress {
                epoch,
                step,
                steps: total_steps,
                loss: l.to_scalar::<f32>()?,
                drift,
            });
        }
    }
    Ok(())
}

/// Pooled adapted embeddings of examples, in order (no gradients kept).
pub fn embed(top: &TopLayers, examples: &[Example], batch_tokens: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let hd = top.cfg.hidden;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].longest());
    let mut out = vec![Vec::new(); examples.len()];
    for group in cut_by_budget(examples, &order, batch_tokens, usize::MAX) {
        let e = forward_texts(top, &pack(examples, &group, hd)?)?
            .detach()
            .to_vec2::<f32>()?;
        for (&i, row) in group.iter().zip(e) {
            out[i] = row;
        }
    }
    Ok(out)
}
