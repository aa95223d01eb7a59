//! The CPU encoder: the same BERT as [`super::bert`], computed without padding
//! and without a tensor library.
//!
//! A batch is a list of token sequences laid end to end (`[tokens, hidden]`),
//! so linear layers see only real tokens and attention runs per sequence and
//! head with that sequence's own length (no padded score matrices). Linear
//! layers are Q4_0 x Q8_0 integer products ([`super::qgemm`]); Q, K and V are
//! one fused product. Weights stay 4-bit in the file's scale layout (the
//! 250k-row word table is dequantised one row per token, never as a whole).
//! Work is spread over a rayon pool owned by the encoder, sized by the caller.

use rayon::prelude::*;

use super::bert::{EncoderConfig, Matrix, Weights};
use super::qgemm::{self, PackedQ4, QuantActs, Q4_0_BLOCK_BYTES, QK};
use super::{simd, ModelError};

struct Norm {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

struct Dense {
    w: PackedQ4,
    b: Vec<f32>,
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    ffn_in: Dense,
    ffn_out: Dense,
    out_norm: Norm,
}

/// Unpadded integer encoder for CPUs.
pub struct CpuEncoder {
    cfg: EncoderConfig,
    /// Q4_0 rows of the word table, `[vocab][hidden / 32]` blocks (in the
    /// file image when loaded from a file: shared, not copied).
    word: super::e5s1::SharedBytes,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    eps: f32,
    pool: rayon::ThreadPool,
}

/// Scratch buffers of one forward pass.
#[derive(Default)]
struct Scratch {
    acts: QuantActs,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    proj: Vec<f32>,
    mid: Vec<f32>,
}

/// Raw pointer that may cross threads; each user writes a disjoint region.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only to hand disjoint (sequence, head) regions to pool threads.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer `offset` floats in. A method, so closures capture the
    /// whole (Send) wrapper rather than its raw-pointer field.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

impl CpuEncoder {
    /// Builds the encoder from a weight source; `threads` sizes its pool (0: one per core).
    pub(super) fn build(cfg: EncoderConfig, w: &mut dyn Weights, threads: usize) -> Result<Self, ModelError> {
        let (hd, ff) = (cfg.hidden, cfg.intermediate);
        let dense = |w: &mut dyn Weights, name: &str, rows: usize, cols: usize| -> Result<Dense, ModelError> {
            let packed = match w.matrix(&format!("{name}.w"), rows, cols)? {
                Matrix::Q4(raw) => PackedQ4::from_q4_0(&raw, rows, cols),
                Matrix::F32(values) => PackedQ4::from_f32_q8(&values, rows, cols),
            }
            .map_err(|e| ModelError::Config(format!("{name}: {e}")))?;
            Ok(Dense {
                w: packed,
                b: w.f32(&format!("{name}.b"), rows)?,
            })
        };
        let norm = |w: &mut dyn Weights, name: &str| -> Result<Norm, ModelError> {
            Ok(Norm {
                gain: w.gain(&format!("{name}.w"), hd)?,
                bias: w.f32(&format!("{name}.b"), hd)?,
            })
        };
        let word = w.q4_shared("emb.word", cfg.vocab, hd)?;
        let position = w.f32("emb.pos", cfg.max_positions * hd)?;
        let token_type = w.f32("emb.type", cfg.type_vocab * hd)?[..hd].to_vec();
        let embed_norm = norm(w, "emb.ln")?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("l{l}");
            let q = dense(w, &format!("{p}.q"), hd, hd)?;
            let k = dense(w, &format!("{p}.k"), hd, hd)?;
            let v = dense(w, &format!("{p}.v"), hd, hd)?;
            let qkv = Dense {
                b: [q.b, k.b, v.b].concat(),
                w: PackedQ4::concat_rows(&[q.w, k.w, v.w]),
            };
            layers.push(Layer {
                qkv,
                attn_out: dense(w, &format!("{p}.ao"), hd, hd)?,
                attn_norm: norm(w, &format!("{p}.aln"))?,
                ffn_in: dense(w, &format!("{p}.fi"), ff, hd)?,
                ffn_out: dense(w, &format!("{p}.fo"), hd, ff)?,
                out_norm: norm(w, &format!("{p}.oln"))?,
            });
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("earshot-encode-{i}"))
            .build()
            .map_err(|e| ModelError::Config(format!("cannot start {threads} encoder threads: {e}")))?;
        Ok(Self {
            eps: cfg.layer_norm_eps as f32,
            cfg,
            word,
            position,
            token_type,
            embed_norm,
            layers,
            pool,
        })
    }

    /// Embeds sequences of token ids (each `<s> .. </s>`, at most the model
    /// window): one unit-length mean-pooled vector per sequence, in order.
    pub fn embed(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.check(seqs)?;
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| {
            let (x, offsets) = self.forward(seqs, self.layers.len());
            Ok(pool_mean(&x, &offsets, self.cfg.hidden))
        })
    }

    /// Hidden states after the first `n` layers, all sequences end to end
    /// (`[tokens, hidden]`, sequence `i` at rows `offsets[i]..offsets[i + 1]`):
    /// the frozen part of the encoder when its top layers are adapted.
    pub fn hidden_after(&self, seqs: &[&[u32]], n: usize) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        self.check(seqs)?;
        if seqs.is_empty() {
            return Ok((Vec::new(), vec![0]));
        }
        Ok(self.pool.install(|| self.forward(seqs, n.min(self.layers.len()))))
    }

    fn check(&self, seqs: &[&[u32]]) -> Result<(), ModelError> {
        for s in seqs {
            if s.len() > self.cfg.max_positions {
                return Err(ModelError::TooLong {
                    tokens: s.len(),
                    max: self.cfg.max_positions,
                });
            }
            if let Some(&bad) = s.iter().find(|&&id| id as usize >= self.cfg.vocab) {
                return Err(ModelError::Config(format!(
                    "token id {bad} is outside the vocabulary of {}",
                    self.cfg.vocab
                )));
            }
        }
        Ok(())
    }

    fn forward(&self, seqs: &[&[u32]], upto: usize) -> (Vec<f32>, Vec<usize>) {
        let hd = self.cfg.hidden;
        let ff = self.cfg.intermediate;
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0usize);
        for s in seqs {
            offsets.push(offsets.last().unwrap() + s.len());
        }
        let tokens = *offsets.last().unwrap();
        let mut x = vec![0f32; tokens * hd];
        self.embed_tokens(seqs, &offsets, &mut x);

        let mut s = Scratch::default();
        for layer in &self.layers[..upto] {
            s.acts.quantize(&x, tokens, hd);
            s.qkv.resize(tokens * 3 * hd, 0.0);
            qgemm::gemm(&s.acts, &layer.qkv.w, &layer.qkv.b, &mut s.qkv);
            s.ctx.resize(tokens * hd, 0.0);
            self.attention(&s.qkv, &mut s.ctx, &offsets);
            s.acts.quantize(&s.ctx, tokens, hd);
            s.proj.resize(tokens * hd, 0.0);
            qgemm::gemm(&s.acts, &layer.attn_out.w, &layer.attn_out.b, &mut s.proj);
            rows_par(&mut x, &s.proj, hd, |xr, pr| {
                simd::add_layer_norm(xr, pr, &layer.attn_norm.gain, &layer.attn_norm.bias, self.eps)
            });
            s.acts.quantize(&x, tokens, hd);
            s.mid.resize(tokens * ff, 0.0);
            qgemm::gemm(&s.acts, &layer.ffn_in.w, &layer.ffn_in.b, &mut s.mid);
            let chunk = qgemm::chunk_rows(tokens, 1) * ff;
            s.mid.par_chunks_mut(chunk).for_each(simd::gelu);
            s.acts.quantize(&s.mid, tokens, ff);
            qgemm::gemm(&s.acts, &layer.ffn_out.w, &layer.ffn_out.b, &mut s.proj);
            rows_par(&mut x, &s.proj, hd, |xr, pr| {
                simd::add_layer_norm(xr, pr, &layer.out_norm.gain, &layer.out_norm.bias, self.eps)
            });
        }

        (x, offsets)
    }

    /// Word row (dequantised) + position + token type 0, then LayerNorm.
    fn embed_tokens(&self, seqs: &[&[u32]], offsets: &[usize], x: &mut [f32]) {
        let hd = self.cfg.hidden;
        let row_bytes = hd / QK * Q4_0_BLOCK_BYTES;
        x.par_chunks_mut(hd).enumerate().for_each(|(t, row)| {
            let s = offsets.partition_point(|&o| o <= t) - 1;
            let pos = t - offsets[s];
            let id = seqs[s][pos] as usize;
            let blocks = &self.word[id * row_bytes..][..row_bytes];
            for (b, blk) in blocks.chunks_exact(Q4_0_BLOCK_BYTES).enumerate() {
                let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                for i in 0..16 {
                    row[b * QK + i] = ((blk[2 + i] & 0x0F) as f32 - 8.0) * d;
                    row[b * QK + i + 16] = ((blk[2 + i] >> 4) as f32 - 8.0) * d;
                }
            }
            let p = &self.position[pos * hd..][..hd];
            for ((r, p), t) in row.iter_mut().zip(p).zip(&self.token_type) {
                *r += p + t;
            }
            simd::add_layer_norm(row, &[], &self.embed_norm.gain, &self.embed_norm.bias, self.eps);
        });
    }

    /// Attention per (sequence, head), each over its own tokens only.
    fn attention(&self, qkv: &[f32], ctx: &mut [f32], offsets: &[usize]) {
        let hd = self.cfg.hidden;
        let heads = self.cfg.heads;
        let dim = hd / heads;
        let scale = 1.0 / (dim as f32).sqrt();
        let stride = 3 * hd;
        let out = SharedMut(ctx.as_mut_ptr());
        let ctx_len = ctx.len();
        let jobs: Vec<(usize, usize)> = (0..offsets.len() - 1)
            .flat_map(|s| (0..heads).map(move |h| (s, h)))
            .collect();
        jobs.par_iter()
            .for_each_init(simd::AttendScratch::default, |scratch, &(s, h)| {
                let (start, end) = (offsets[s], offsets[s + 1]);
                let len = end - start;
                let q = &qkv[start * stride + h * dim..];
                let k = &qkv[start * stride + hd + h * dim..];
                let v = &qkv[start * stride + 2 * hd + h * dim..];
                // SAFETY: rows start..end, columns h*dim..(h+1)*dim belong to this
                // job alone; the view ends inside `ctx`.
                let view = unsafe {
                    let first = start * hd + h * dim;
                    let span = (len - 1) * hd + dim;
                    debug_assert!(first + span <= ctx_len);
                    std::slice::from_raw_parts_mut(out.at(first), span)
                };
                simd::attend(q, k, v, view, len, dim, stride, hd, scale, scratch);
            });
    }
}

/// Mean pooling per sequence, then L2 normalisation.
fn pool_mean(x: &[f32], offsets: &[usize], hd: usize) -> Vec<Vec<f32>> {
    offsets
        .windows(2)
        .map(|w| {
            let mut mean = vec![0f32; hd];
            for row in x[w[0] * hd..w[1] * hd].chunks_exact(hd) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            let n = (w[1] - w[0]).max(1) as f32;
            mean.iter_mut().for_each(|m| *m /= n);
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            mean
        })
        .collect()
}

/// Applies `f(x_row, add_row)` to matching rows in parallel.
fn rows_par(x: &mut [f32], add: &[f32], width: usize, f: impl Fn(&mut [f32], &[f32]) + Sync) {
    let per = qgemm::chunk_rows(x.len() / width, 1) * width;
    x.par_chunks_mut(per)
        .zip(add.par_chunks(per))
        .for_each(|(xc, ac)| f(xc, ac));
}
