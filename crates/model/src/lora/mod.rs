//! Adapter training: LoRA updates on the top layers of the encoder plus a
//! three-class sentiment head, trained with candle's autograd on the CPU.
//!
//! The lower layers stay frozen, so their output is computed once per text
//! by the int8 encoder ([`super::Encoder::hidden_after`]) and kept; each
//! training step runs only the top layers (f32, dequantised weights, the
//! low-rank path `x·Aᵀ·Bᵀ·(alpha/rank)` beside every adapted projection),
//! mean pooling, L2 normalisation and the head. The result is an
//! [`Adapter`] merged into the weights at load (so inference runs the
//! unchanged kernels) and head weights. Pure and synchronous; the CLI does
//! the I/O.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};

use super::adapter::{dequantize_q4_0, Adapter, LoraPair};
use super::bert::{EncoderConfig, Matrix, Weights};
use super::e5s1::E5s1;
use super::ModelError;

mod fit;

pub use fit::{embed, train, Example, Progress, TrainOptions, CATEGORY_CLASSES};

/// Projections of a layer that can carry an update (E5S1 names).
pub const PROJECTIONS: [&str; 6] = ["q", "k", "v", "ao", "fi", "fo"];

struct TLinear {
    w: Tensor,
    b: Tensor,
    lora: Option<(Var, Var)>,
}

struct TNorm {
    g: Tensor,
    b: Tensor,
}

struct TLayer {
    index: usize,
    q: TLinear,
    k: TLinear,
    v: TLinear,
    ao: TLinear,
    aln: TNorm,
    fi: TLinear,
    fo: TLinear,
    oln: TNorm,
}

/// The adapted top of the encoder.
pub struct TopLayers {
    cfg: EncoderConfig,
    first: usize,
    rank: usize,
    alpha: f32,
    layers: Vec<TLayer>,
}

/// Which layers and projections to adapt, and how.
#[derive(Debug, Clone)]
pub struct LoraShape {
    /// Layers `first..` are adapted (the ones below stay frozen).
    pub first: usize,
    pub rank: usize,
    pub alpha: f32,
    /// Subset of [`PROJECTIONS`].
    pub targets: Vec<String>,
    pub seed: u64,
}

fn xorshift(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

impl TopLayers {
    /// Builds the top from a weight file.
    pub fn from_e5s1(file: &E5s1, shape: &LoraShape) -> Result<Self, ModelError> {
        let cfg = super::Encoder::config_of(file);
        let mut w = super::bert::FileWeights {
            file,
            device: &Device::Cpu,
        };
        Self::build(cfg, &mut w, shape)
    }

    /// Builds the top of the random encoder `Encoder::random(cfg, seed)`.
    pub fn random(cfg: EncoderConfig, seed: u64, shape: &LoraShape) -> Result<Self, ModelError> {
        let mut w = super::bert::random_weights(seed, &Device::Cpu);
        Self::build(cfg, &mut w, shape)
    }

    /// Reads every weight in the encoder's load order (the random source is
    /// a stream) and keeps the top layers.
    fn build(cfg: EncoderConfig, w: &mut dyn Weights, shape: &LoraShape) -> Result<Self, ModelError> {
        if shape.first >= cfg.layers || shape.rank == 0 {
            return Err(ModelError::Config(format!(
                "adapt layers {}.. of {} with rank {}: need first < layers and rank ≥ 1",
                shape.first, cfg.layers, shape.rank
            )));
        }
        if let Some(bad) = shape.targets.iter().find(|t| !PROJECTIONS.contains(&t.as_str())) {
            return Err(ModelError::Config(format!(
                "unknown projection `{bad}`: use some of {}",
                PROJECTIONS.join(", ")
            )));
        }
        let dev = Device::Cpu;
        let (hd, ff) = (cfg.hidden, cfg.intermediate);
        w.q4_raw("emb.word", cfg.vocab, hd)?;
        w.f32("emb.pos", cfg.max_positions * hd)?;
        w.f32("emb.type", cfg.type_vocab * hd)?;
        w.gain("emb.ln.w", hd)?;
        w.f32("emb.ln.b", hd)?;
        let mut rng = shape.seed | 1;
        let mut layers = Vec::new();
        for l in 0..cfg.layers {
            let keep = l >= shape.first;
            let mut lin = |w: &mut dyn Weights, p: &str, rows: usize, cols: usize| -> Result<TLinear, ModelError> {
                let name = format!("l{l}.{p}");
                let values = match w.matrix(&format!("{name}.w"), rows, cols)? {
                    Matrix::Q4(raw) => dequantize_q4_0(&raw, rows, cols),
                    Matrix::F32(v) => v,
                };
                let bias = w.f32(&format!("{name}.b"), rows)?;
                let lora = if keep && shape.targets.iter().any(|t| t == p) {
                    let bound = (1.0 / cols as f32).sqrt();
                    let a: Vec<f32> = (0..shape.rank * cols).map(|_| xorshift(&mut rng) * bound).collect();
                    let a = Var::from_tensor(&Tensor::from_vec(a, (shape.rank, cols), &dev)?)?;
                    let b = Var::zeros((rows, shape.rank), DType::F32, &dev)?;
                    Some((a, b))
                } else {
                    None
                };
                Ok(TLinear {
                    w: Tensor::from_vec(values, (rows, cols), &dev)?,
                    b: Tensor::from_vec(bias, rows, &dev)?,
                    lora,
                })
            };
            let norm = |w: &mut dyn Weights, p: &str| -> Result<TNorm, ModelError> {
                Ok(TNorm {
                    g: Tensor::from_vec(w.gain(&format!("l{l}.{p}.w"), hd)?, hd, &dev)?,
                    b: Tensor::from_vec(w.f32(&format!("l{l}.{p}.b"), hd)?, hd, &dev)?,
                })
            };
            let layer = TLayer {
                index: l,
                q: lin(w, "q", hd, hd)?,
                k: lin(w, "k", hd, hd)?,
                v: lin(w, "v", hd, hd)?,
                ao: lin(w, "ao", hd, hd)?,
                aln: norm(w, "aln")?,
                fi: lin(w, "fi", ff, hd)?,
                fo: lin(w, "fo", hd, ff)?,
                oln: norm(w, "oln")?,
            };
            if keep {
                layers.push(layer);
            }
        }
        Ok(Self {
            cfg,
            first: shape.first,
            rank: shape.rank,
            alpha: shape.alpha,
            layers,
        })
    }

    /// First adapted layer (its input is the frozen encoder's output after `first` layers).
    pub fn first(&self) -> usize {
        self.first
    }

    /// The trainable tensors.
    pub fn vars(&self) -> Vec<Var> {
        self.linears()
            .filter_map(|(_, l)| l.lora.as_ref())
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect()
    }

    fn linears(&self) -> impl Iterator<Item = (String, &TLinear)> {
        self.layers.iter().flat_map(|l| {
            [
                ("q", &l.q),
                ("k", &l.k),
                ("v", &l.v),
                ("ao", &l.ao),
                ("fi", &l.fi),
                ("fo", &l.fo),
            ]
            .into_iter()
            .map(move |(p, lin)| (format!("l{}.{p}", l.index), lin))
        })
    }

    /// `[batch, seq, hidden]` hidden states of the frozen layers and a
    /// `[batch, seq]` mask (1 real, 0 padding) in; `[batch, hidden]` unit
    /// vectors out (mean pooling over real tokens, as at inference).
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq, hd) = x.dims3()?;
        let nh = self.cfg.heads;
        let dim = hd / nh;
        let eps = self.cfg.layer_norm_eps;
        let scale = (self.alpha / self.rank as f32) as f64;
        let bias = ((mask - 1.0)? * 1e9)?.reshape((batch, 1, 1, seq))?;
        let linear = |l: &TLinear, x: &Tensor| -> candle_core::Result<Tensor> {
            let (b, s, i) = x.dims3()?;
            let flat = x.reshape((b * s, i))?;
            let mut y = flat.matmul(&l.w.t()?)?.broadcast_add(&l.b)?;
            if let Some((a, bm)) = &l.lora {
                let low = flat.matmul(&a.as_tensor().t()?)?.matmul(&bm.as_tensor().t()?)?;
                y = (y + (low * scale)?)?;
            }
            let o = y.dim(1)?;
            y.reshape((b, s, o))
        };
        let norm = |n: &TNorm, x: &Tensor| -> candle_core::Result<Tensor> {
            let mean = x.mean_keepdim(D::Minus1)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            xc.broadcast_div(&(var + eps)?.sqrt()?)?
                .broadcast_mul(&n.g)?
                .broadcast_add(&n.b)
        };
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, nh, dim))?.transpose(1, 2)?.contiguous()
        };
        let mut x = x.clone();
        for l in &self.layers {
            let q = split(linear(&l.q, &x)?)?;
            let k = split(linear(&l.k, &x)?)?;
            let v = split(linear(&l.v, &x)?)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (dim as f64).sqrt()))?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, seq, hd))?;
            x = norm(&l.aln, &(x + linear(&l.ao, &ctx)?)?)?;
            let mid = linear(&l.fi, &x)?.gelu_erf()?;
            x = norm(&l.oln, &(&x + linear(&l.fo, &mid)?)?)?;
        }
        let m = mask.unsqueeze(2)?;
        let mean = x
            .broadcast_mul(&m)?
            .sum(1)?
            .broadcast_div(&m.sum(1)?.clamp(1.0, f64::MAX)?)?;
        let n = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&n)
    }

    /// The updates as an adapter file's content.
    pub fn to_adapter(&self, provenance: serde_json::Value) -> Result<Adapter, ModelError> {
        let mut layers = BTreeMap::new();
        for (name, l) in self.linears() {
            if let Some((a, b)) = &l.lora {
                let (rows, cols) = l.w.dims2()?;
                layers.insert(
                    name,
                    LoraPair {
                        rows,
                        cols,
                        a: a.as_tensor().flatten_all()?.to_vec1()?,
                        b: b.as_tensor().flatten_all()?.to_vec1()?,
                    },
                );
            }
        }
        Ok(Adapter {
            rank: self.rank,
            alpha: self.alpha,
            layers,
            provenance,
            sha256: String::new(),
        })
    }
}

/// A linear head on the pooled embedding: three classes (neg, neu, pos)
/// for sentiment, five for the complaint category trained alongside.
pub struct LinearHead {
    pub w: Var,
    pub b: Var,
}

/// Logits are `scale · (W·e) + b`: the embedding is unit length, so a fixed
/// gain lets the head reach confident logits with weights of order one.
pub const HEAD_GAIN: f64 = 20.0;

impl LinearHead {
    pub fn new(dim: usize, classes: usize, seed: u64) -> Result<Self, ModelError> {
        let mut rng = seed | 1;
        let w: Vec<f32> = (0..classes * dim).map(|_| xorshift(&mut rng) * 0.01).collect();
        Ok(Self {
            w: Var::from_tensor(&Tensor::from_vec(w, (classes, dim), &Device::Cpu)?)?,
            b: Var::zeros(classes, DType::F32, &Device::Cpu)?,
        })
    }

    pub fn forward(&self, e: &Tensor) -> candle_core::Result<Tensor> {
        (e.matmul(&self.w.as_tensor().t()?)? * HEAD_GAIN)?.broadcast_add(self.b.as_tensor())
    }

    /// Weights as plain rows (`gain` folded in) and biases.
    pub fn export(&self) -> Result<(Vec<Vec<f32>>, Vec<f32>), ModelError> {
        let w: Vec<Vec<f32>> = (self.w.as_tensor() * HEAD_GAIN)?.to_vec2()?;
        Ok((w, self.b.as_tensor().to_vec1()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EncodedBatch, Encoder, MatmulMode};

    fn cfg() -> EncoderConfig {
        EncoderConfig {
            hidden: 64,
            layers: 3,
            heads: 4,
            intermediate: 128,
            vocab: 500,
            max_positions: 64,
            type_vocab: 2,
            layer_norm_eps: 1e-12,
        }
    }

    fn shape() -> LoraShape {
        LoraShape {
            first: 1,
            rank: 4,
            alpha: 8.0,
            targets: PROJECTIONS.iter().map(|s| s.to_string()).collect(),
            seed: 7,
        }
    }

    fn pack_ids(seqs: &[&[u32]]) -> EncodedBatch {
        let encoded: Vec<crate::Encoded> = seqs.iter().map(|s| crate::Encoded::single(s.to_vec(), false)).collect();
        EncodedBatch::pack(encoded.iter(), 1)
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
    }

    /// Random top layers with non-zero updates (training starts with B = 0).
    fn updated_top() -> TopLayers {
        let top = TopLayers::random(cfg(), 3, &shape()).unwrap();
        let mut rng = 99u64;
        for v in top.vars() {
            let n = v.as_tensor().elem_count();
            let vals: Vec<f32> = (0..n).map(|_| xorshift(&mut rng) * 0.3).collect();
            v.set(&Tensor::from_vec(vals, v.as_tensor().shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
        top
    }

    /// Training computes `W·x + s·B·A·x` unmerged in f32 from the frozen
    /// layers' int8 output; inference merges `W + s·B·A` once at load. Both
    /// must give the same embeddings.
    #[test]
    fn merged_adapter_reproduces_the_training_forward() {
        let top = updated_top();
        let adapter = top.to_adapter(serde_json::Value::Null).unwrap();
        assert_eq!(adapter.layers.len(), 2 * 6);

        let seqs: Vec<Vec<u32>> = vec![
            vec![0, 5, 17, 99, 2],
            vec![0, 7, 2],
            (0..40).map(|i| (i * 13 % 500) as u32).collect(),
        ];
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let base = Encoder::random(cfg(), 3, &Device::Cpu, MatmulMode::Int8, 1).unwrap();
        let (hidden, offsets) = base.hidden_after(&refs, 1).unwrap();
        let examples: Vec<Example> = offsets
            .windows(2)
            .map(|w| Example::from_frozen(&hidden, w, 64, 0))
            .collect();
        let trained = embed(&top, &examples, 4096).unwrap();
        let unadapted = base.embed_batch(&pack_ids(&refs)).unwrap();

        for mode in [MatmulMode::Int8, MatmulMode::F32, MatmulMode::Q4] {
            let enc = Encoder::random_adapted(cfg(), 3, Some(&adapter), &Device::Cpu, mode, 1).unwrap();
            let merged = enc.embed_batch(&pack_ids(&refs)).unwrap();
            for i in 0..seqs.len() {
                let c = cosine(&trained[i], &merged[i]);
                assert!(c > 0.995, "{mode:?} text {i}: cosine {c}");
                // The update matters: the adapted embedding moved.
                assert!(
                    cosine(&unadapted[i], &merged[i]) < 0.99,
                    "{mode:?} text {i}: adapter had no effect"
                );
            }
        }
    }

    /// A long training text read in windows trains on what inference
    /// embeds for it: the merged adapter's window rows pooled by
    /// `EncodedBatch::pool_texts`. Its windows' frozen rows travel together,
    /// whatever else shares the batch.
    #[test]
    fn a_text_in_windows_trains_on_the_pooled_embedding_inference_computes() {
        let top = updated_top();
        let adapter = top.to_adapter(serde_json::Value::Null).unwrap();
        // A short text, a text of three windows (11 + 11 + 6 tokens), a short one.
        let window = |first: u32, n: u32| -> Vec<u32> {
            std::iter::once(0)
                .chain((0..n - 2).map(|i| first + i * 7 % 300))
                .chain([2])
                .collect()
        };
        let texts = [
            crate::Encoded::single(window(5, 6), false),
            {
                let parts = [window(40, 11), window(90, 11), window(140, 6)];
                crate::Encoded {
                    ids: parts.concat(),
                    truncated: false,
                    windows: parts.iter().map(Vec::len).collect(),
                }
            },
            crate::Encoded::single(window(200, 9), false),
        ];
        let base = Encoder::random(cfg(), 3, &Device::Cpu, MatmulMode::Int8, 1).unwrap();
        let examples: Vec<Example> = texts
            .iter()
            .map(|t| {
                let rows: Vec<&[u32]> = t.window_ids().collect();
                let (hidden, offsets) = base.hidden_after(&rows, 1).unwrap();
                Example::from_frozen(&hidden, &offsets, 64, 1)
            })
            .collect();
        assert_eq!(examples[1].windows, vec![11, 11, 6]);
        assert_eq!(examples[1].hidden.len(), 28 * 64);
        // Budgets that batch all three texts together, and one text per batch.
        let together = embed(&top, &examples, 4096).unwrap();
        let alone = embed(&top, &examples, 1).unwrap();
        let enc = Encoder::random_adapted(cfg(), 3, Some(&adapter), &Device::Cpu, MatmulMode::F32, 1).unwrap();
        let batch = EncodedBatch::pack(texts.iter(), 1);
        let inference = batch.pool_texts(enc.embed_batch(&batch).unwrap());
        for i in 0..texts.len() {
            let c = cosine(&together[i], &inference[i]);
            assert!(c > 0.995, "text {i}: cosine {c} to inference");
            let same = cosine(&together[i], &alone[i]);
            assert!(same > 0.9999, "text {i}: batching changed it ({same})");
        }
        // Pooling is not a no-op: the long text differs from its first window.
        let first = base
            .embed_batch(&pack_ids(&[texts[1].window_ids().next().unwrap()]))
            .unwrap();
        assert!(cosine(&together[1], &first[0]) < 0.999);

        // Gradients flow through the pooling: training on the windowed text
        // moves it toward its label.
        let head = LinearHead::new(64, 3, 1).unwrap();
        let mut losses = Vec::new();
        let opts = TrainOptions {
            epochs: 20,
            ..toy_options(0.5)
        };
        train(&top, &head, None, &examples[1..2], &opts, |p| losses.push(p.loss)).unwrap();
        assert!(losses[losses.len() - 1] < 0.5 * losses[0], "{losses:?}");
    }

    /// Sixty toy texts whose label is which of three token ids they start
    /// with, as the first layer's output of a random encoder.
    fn toy_examples() -> Vec<Example> {
        let base = Encoder::random(cfg(), 3, &Device::Cpu, MatmulMode::Int8, 1).unwrap();
        let seqs: Vec<Vec<u32>> = (0..60u32)
            .map(|i| vec![0, 10 + (i % 3) * 100, 3 + i, 4 + (i * 7) % 300, 2])
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let (hidden, offsets) = base.hidden_after(&refs, 1).unwrap();
        offsets
            .windows(2)
            .enumerate()
            .map(|(i, w)| Example::from_frozen(&hidden, w, 64, i % 3))
            .collect()
    }

    fn toy_options(anchor: f64) -> TrainOptions {
        TrainOptions {
            epochs: 30,
            batch_tokens: 200,
            max_batch: 16,
            lr: 5e-3,
            head_lr: 2e-2,
            weight_decay: 0.0,
            seed: 1,
            anchor,
        }
    }

    /// Accuracy of a head's argmax on embeddings.
    fn head_accuracy(head: &LinearHead, embs: &[Vec<f32>], labels: &[usize]) -> f32 {
        let (w, b) = head.export().unwrap();
        let correct = embs
            .iter()
            .zip(labels)
            .filter(|(e, &y)| {
                let logits: Vec<f32> = w.iter().zip(&b).map(|(w, b)| dot(w, e) + b).collect();
                (0..logits.len()).max_by(|&x, &z| logits[x].total_cmp(&logits[z])) == Some(y)
            })
            .count();
        correct as f32 / labels.len() as f32
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn a_category_head_trains_alongside_the_sentiment_head() {
        // The sixty sentiment texts plus forty category-only texts (no
        // sentiment weight) whose category is which of five token ids they
        // carry second.
        let base = Encoder::random(cfg(), 3, &Device::Cpu, MatmulMode::Int8, 1).unwrap();
        let seqs: Vec<Vec<u32>> = (0..40u32)
            .map(|i| vec![0, 400 + (i % 5) * 20, 7 + i, 9 + (i * 11) % 300, 2])
            .collect();
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let (hidden, offsets) = base.hidden_after(&refs, 1).unwrap();
        let mut examples = toy_examples();
        for (i, w) in offsets.windows(2).enumerate() {
            let mut ex = Example::from_frozen(&hidden, w, 64, 0);
            ex.weight = 0.0;
            ex.category = Some((i % 5, 1.0));
            examples.push(ex);
        }
        let cat_labels: Vec<usize> = (0..40).map(|i| i % 5).collect();
        let mut accuracy = Vec::new();
        for with_category in [false, true] {
            let top = TopLayers::random(cfg(), 3, &shape()).unwrap();
            let head = LinearHead::new(64, 3, 1).unwrap();
            let category = LinearHead::new(64, CATEGORY_CLASSES, 2).unwrap();
            let cat = with_category.then_some(&category);
            train(&top, &head, cat, &examples, &toy_options(0.0), |p| {
                assert!(p.loss.is_finite(), "{p:?}")
            })
            .unwrap();
            let embs = embed(&top, &examples, 4096).unwrap();
            let sentiment: Vec<usize> = examples[..60].iter().map(|e| e.label).collect();
            accuracy.push((
                head_accuracy(&head, &embs[..60], &sentiment),
                head_accuracy(&category, &embs[60..], &cat_labels),
            ));
        }
        let ((sent_alone, cat_untrained), (sent_joint, cat_joint)) = (accuracy[0], accuracy[1]);
        assert!(
            cat_joint >= 0.9,
            "category accuracy {cat_joint} (untrained {cat_untrained})"
        );
        assert!(cat_untrained < 0.6, "an untrained category head scored {cat_untrained}");
        // The category-only texts carry no sentiment weight: the sentiment
        // task is learnt as well as without them.
        assert!(sent_alone >= 0.9 && sent_joint >= 0.9, "{accuracy:?}");
    }

    /// Mean `1 − cos` between two lists of embeddings.
    fn mean_drift(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().zip(b).map(|(x, y)| 1.0 - cosine(x, y)).sum::<f32>() / a.len() as f32
    }

    #[test]
    fn training_fits_a_separable_toy_task() {
        let top = TopLayers::random(cfg(), 3, &shape()).unwrap();
        let head = LinearHead::new(64, 3, 1).unwrap();
        let examples = toy_examples();
        let mut losses = Vec::new();
        train(&top, &head, None, &examples, &toy_options(0.0), |p| {
            assert_eq!(p.drift, 0.0, "the anchor is off");
            losses.push(p.loss)
        })
        .unwrap();
        let first: f32 = losses[..4].iter().sum::<f32>() / 4.0;
        let last: f32 = losses[losses.len() - 4..].iter().sum::<f32>() / 4.0;
        assert!(last < 0.5 * first, "loss {first} -> {last}");
        let embs = embed(&top, &examples, 4096).unwrap();
        let (w, b) = head.export().unwrap();
        let correct = embs
            .iter()
            .zip(&examples)
            .filter(|(e, ex)| {
                let logits: Vec<f32> = (0..3).map(|c| cosine(&w[c], e) + b[c]).collect();
                let arg = (0..3).max_by(|&x, &y| logits[x].total_cmp(&logits[y])).unwrap();
                arg == ex.label
            })
            .count();
        assert!(correct >= 54, "{correct}/60");
    }

    #[test]
    fn the_anchor_keeps_embeddings_near_the_published_encoder() {
        let examples = toy_examples();
        let before = embed(&TopLayers::random(cfg(), 3, &shape()).unwrap(), &examples, 4096).unwrap();
        let mut drift = Vec::new();
        let mut reported = Vec::new();
        for anchor in [0.0, 20.0] {
            // Same seeds: the two runs start from the same updates and head.
            let top = TopLayers::random(cfg(), 3, &shape()).unwrap();
            let head = LinearHead::new(64, 3, 1).unwrap();
            let mut last = 0.0;
            train(&top, &head, None, &examples, &toy_options(anchor), |p| last = p.drift).unwrap();
            let after = embed(&top, &examples, 4096).unwrap();
            drift.push(mean_drift(&before, &after));
            reported.push(last);
        }
        assert!(drift[0] > 1e-3, "unanchored training moved nothing: {drift:?}");
        assert!(
            drift[1] < 0.5 * drift[0],
            "anchored drift {} vs free {}",
            drift[1],
            drift[0]
        );
        // The step's reported drift is the measured one (the last step's
        // examples are a subset, so only roughly).
        assert!(
            reported[1] > 0.0 && reported[1] < 4.0 * drift[1] + 1e-3,
            "{reported:?} vs {drift:?}"
        );
    }
}
