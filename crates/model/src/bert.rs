//! A BERT encoder (the multilingual-e5-small architecture) with two
//! implementations behind one [`Encoder`]:
//! - `int8` ([`super::cpu`]): unpadded sequences and Q4_0 x Q8_0 integer
//!   products with AVX-512 VNNI; the CPU default.
//! - `f32` / `q4` on candle: padded batches; linear weights dequantised once
//!   to dense f32 matrices or kept Q4_0 in candle's quantized matmul. This is
//!   the CUDA path (and the CPU reference the int8 path is tested against).
//!
//! Weights come from an E5S1 file ([`super::e5s1`]) or are drawn at random
//! from a seed (the small test encoder: same code, other numbers); both
//! implementations draw the same random weights for the same seed.
//! Output: mean pooling over the real tokens, L2-normalised.

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use std::borrow::Cow;
use std::sync::Arc;

use super::adapter::{AdaptedWeights, Adapter};
use super::e5s1::E5s1;
use super::ModelError;

/// Architecture numbers of the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderConfig {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f64,
}

impl EncoderConfig {
    /// Rough multiply-accumulates per token for the dense part (used for bench notes).
    pub fn macs_per_token(&self) -> usize {
        self.layers * (4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate)
    }
}

/// How linear layers compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulMode {
    /// `int8` on the CPU, `f32` on CUDA.
    #[default]
    Auto,
    /// CPU only: unpadded sequences, Q4_0 weights x Q8_0 activations in
    /// integer dot products (AVX-512 VNNI where the CPU has it).
    Int8,
    /// candle: keep Q4_0 weights; activations are quantised to Q8_0 per matmul.
    Q4,
    /// candle: dequantise weights to f32 once at load; dense GEMM.
    F32,
}

impl MatmulMode {
    /// The concrete mode used on `device`.
    pub fn resolve(self, device: &Device) -> Self {
        match self {
            Self::Auto if device.is_cpu() => Self::Int8,
            Self::Auto => Self::F32,
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Int8 => "int8",
            Self::Q4 => "q4",
            Self::F32 => "f32",
        }
    }
}

impl std::str::FromStr for MatmulMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "int8" => Ok(Self::Int8),
            "q4" => Ok(Self::Q4),
            "f32" => Ok(Self::F32),
            other => Err(format!(
                "unknown matmul mode `{other}`: use `auto`, `int8`, `q4` or `f32`"
            )),
        }
    }
}

struct Linear {
    weight: QMatMul,
    bias: Tensor,
}

impl Linear {
    /// `[.., in] -> [.., out]`. Leading dimensions are folded into one so the
    /// dense path is a single large GEMM rather than one per batch row.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        let (rows, inner) = (dims[..dims.len() - 1].iter().product::<usize>(), dims[dims.len() - 1]);
        let y = self.weight.forward(&x.reshape((rows, inner))?)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank >= 1") = y.dim(1)?;
        y.broadcast_add(&self.bias)?.reshape(out_dims)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: LayerNorm,
}

/// The encoder: token sequences in, unit-length sentence embeddings out.
pub struct Encoder {
    cfg: EncoderConfig,
    device: Device,
    mode: MatmulMode,
    imp: Imp,
}

enum Imp {
    Candle(CandleBert),
    Cpu(super::cpu::CpuEncoder),
}

/// The candle implementation (padded batches).
struct CandleBert {
    cfg: EncoderConfig,
    device: Device,
    word: Arc<QTensor>,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

/// A linear layer's weight as a source hands it over.
pub(super) enum Matrix<'a> {
    /// Raw Q4_0 blocks, row-major (as stored in the file).
    Q4(Cow<'a, [u8]>),
    /// Dense row-major f32 values: the file's weight merged with an adapter
    /// update ([`super::adapter`]); backends keep these at 8 bits or more.
    F32(Vec<f32>),
}

/// Where weights come from.
pub(super) trait Weights {
    /// The device candle tensors are built on.
    fn device(&self) -> &Device;
    /// Raw Q4_0 blocks of a `[rows, cols]` matrix (row-major).
    fn q4_raw(&mut self, name: &str, rows: usize, cols: usize) -> Result<Cow<'_, [u8]>, ModelError>;
    /// Q4_0 matrix `[rows, cols]` as a candle tensor on [`Self::device`].
    fn q4(&mut self, name: &str, rows: usize, cols: usize) -> Result<QTensor, ModelError> {
        let device = self.device().clone();
        let raw = self.q4_raw(name, rows, cols)?;
        let storage = QStorage::from_data(raw, &device, GgmlDType::Q4_0)?;
        Ok(QTensor::new(storage, (rows, cols))?)
    }
    /// The weight of linear layer `name` (`[rows, cols]`): Q4_0 blocks
    /// unless an adapter changed it.
    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'_>, ModelError> {
        Ok(Matrix::Q4(self.q4_raw(name, rows, cols)?))
    }
    /// Raw Q4_0 blocks as a handle that may share the source's memory.
    fn q4_shared(&mut self, name: &str, rows: usize, cols: usize) -> Result<super::e5s1::SharedBytes, ModelError> {
        Ok(self.q4_raw(name, rows, cols)?.into_owned().into())
    }
    /// f32 values (`n` of them).
    fn f32(&mut self, name: &str, n: usize) -> Result<Vec<f32>, ModelError>;
    /// LayerNorm gain (ones for random weights).
    fn gain(&mut self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        self.f32(name, n)
    }
}

pub(super) struct FileWeights<'a> {
    pub(super) file: &'a E5s1,
    pub(super) device: &'a Device,
}

impl Weights for FileWeights<'_> {
    fn device(&self) -> &Device {
        self.device
    }
    fn q4_raw(&mut self, name: &str, rows: usize, cols: usize) -> Result<Cow<'_, [u8]>, ModelError> {
        Ok(Cow::Borrowed(self.file.q4_0(name, rows, cols)?))
    }
    fn q4_shared(&mut self, name: &str, rows: usize, cols: usize) -> Result<super::e5s1::SharedBytes, ModelError> {
        Ok(self.file.q4_0_shared(name, rows, cols)?)
    }
    fn f32(&mut self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(self.file.f32s(name, n)?)
    }
}

/// The random weights `Encoder::random` draws for `seed`.
pub(super) fn random_weights(seed: u64, device: &Device) -> RandomWeights<'_> {
    RandomWeights {
        state: seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        device,
    }
}

/// Deterministic pseudo-random weights (xorshift64*), BERT-like scale.
pub(super) struct RandomWeights<'a> {
    state: u64,
    device: &'a Device,
}

impl RandomWeights<'_> {
    fn next_unit(&mut self) -> f32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // uniform in [-1, 1)
        ((r >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_unit() * scale).collect()
    }
}

impl Weights for RandomWeights<'_> {
    fn q4_raw(&mut self, _name: &str, rows: usize, cols: usize) -> Result<Cow<'_, [u8]>, ModelError> {
        let scale = (3.0 / cols as f32).sqrt();
        let t = Tensor::from_vec(self.values(rows * cols, scale), (rows, cols), &Device::Cpu)?;
        let q = QTensor::quantize(&t, GgmlDType::Q4_0)?;
        Ok(Cow::Owned(q.data()?.into_owned()))
    }
    fn device(&self) -> &Device {
        self.device
    }
    fn f32(&mut self, _name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(self.values(n, 0.02))
    }
    fn gain(&mut self, _name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(vec![1.0; n])
    }
}

impl Encoder {
    /// Loads the encoder from a parsed E5S1 image. `threads` sizes the int8
    /// encoder's pool (0: one per core).
    pub fn from_e5s1(file: &E5s1, device: &Device, mode: MatmulMode, threads: usize) -> Result<Self, ModelError> {
        Self::from_e5s1_adapted(file, None, device, mode, threads)
    }

    /// [`Self::from_e5s1`] with an adapter's updates merged into the weights.
    pub fn from_e5s1_adapted(
        file: &E5s1,
        adapter: Option<&Adapter>,
        device: &Device,
        mode: MatmulMode,
        threads: usize,
    ) -> Result<Self, ModelError> {
        let mut w = FileWeights { file, device };
        Self::build_adapted(Self::config_of(file), &mut w, adapter, device, mode, threads)
    }

    /// The architecture numbers stored in an E5S1 file.
    pub fn config_of(file: &E5s1) -> EncoderConfig {
        let h = file.header;
        EncoderConfig {
            hidden: h.hidden,
            layers: h.layers,
            heads: h.heads,
            intermediate: h.intermediate,
            vocab: h.vocab,
            max_positions: h.max_positions,
            type_vocab: h.type_vocab,
            layer_norm_eps: h.layer_norm_eps,
        }
    }

    /// A randomly initialised encoder of the same architecture (for volume tests
    /// and benches that must not depend on the real weights' speed).
    pub fn random(
        cfg: EncoderConfig,
        seed: u64,
        device: &Device,
        mode: MatmulMode,
        threads: usize,
    ) -> Result<Self, ModelError> {
        Self::random_adapted(cfg, seed, None, device, mode, threads)
    }

    /// [`Self::random`] with an adapter merged (tests of the merge).
    pub fn random_adapted(
        cfg: EncoderConfig,
        seed: u64,
        adapter: Option<&Adapter>,
        device: &Device,
        mode: MatmulMode,
        threads: usize,
    ) -> Result<Self, ModelError> {
        Self::build_adapted(cfg, &mut random_weights(seed, device), adapter, device, mode, threads)
    }

    /// Builds from `w`, with `adapter`'s updates merged when there is one.
    fn build_adapted(
        cfg: EncoderConfig,
        w: &mut dyn Weights,
        adapter: Option<&Adapter>,
        device: &Device,
        mode: MatmulMode,
        threads: usize,
    ) -> Result<Self, ModelError> {
        match adapter {
            Some(adapter) => Self::build(cfg, &mut AdaptedWeights { inner: w, adapter }, device, mode, threads),
            None => Self::build(cfg, w, device, mode, threads),
        }
    }

    fn build(
        cfg: EncoderConfig,
        w: &mut dyn Weights,
        device: &Device,
        mode: MatmulMode,
        threads: usize,
    ) -> Result<Self, ModelError> {
        let mode = mode.resolve(device);
        let imp = match mode {
            MatmulMode::Int8 if !device.is_cpu() => {
                return Err(ModelError::Config(
                    "matmul = \"int8\" runs on the CPU only; use `auto` or `f32` with a CUDA device".into(),
                ))
            }
            MatmulMode::Int8 => Imp::Cpu(super::cpu::CpuEncoder::build(cfg, w, threads)?),
            _ => Imp::Candle(CandleBert::build(cfg, w, device, mode)?),
        };
        Ok(Self {
            cfg,
            device: device.clone(),
            mode,
            imp,
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The concrete matmul mode (never `auto`).
    pub fn mode(&self) -> MatmulMode {
        self.mode
    }

    /// Hidden states after the first `n` layers for unpadded sequences, end
    /// to end (`[tokens, hidden]`) with each sequence's start offset: the
    /// frozen input of adapter training. The int8 CPU encoder only.
    pub fn hidden_after(&self, seqs: &[&[u32]], n: usize) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        match &self.imp {
            Imp::Cpu(cpu) => cpu.hidden_after(seqs, n),
            Imp::Candle(_) => Err(ModelError::Config(
                "hidden states of lower layers come from the int8 CPU encoder; use --matmul int8".into(),
            )),
        }
    }

    /// Embeds a padded batch: one unit vector per row, in order. The int8
    /// path strips the padding (rows are `<s> .. </s>` then pads, as packed).
    pub fn embed_batch(&self, batch: &super::EncodedBatch) -> Result<Vec<Vec<f32>>, ModelError> {
        if batch.batch == 0 {
            return Ok(Vec::new());
        }
        match &self.imp {
            Imp::Cpu(cpu) => {
                let seqs: Vec<&[u32]> = (0..batch.batch)
                    .map(|r| {
                        let mask = &batch.mask[r * batch.seq..(r + 1) * batch.seq];
                        let len = mask.iter().take_while(|&&m| m > 0.0).count();
                        &batch.ids[r * batch.seq..r * batch.seq + len]
                    })
                    .collect();
                cpu.embed(&seqs)
            }
            Imp::Candle(bert) => {
                let out = bert.forward(&batch.ids, &batch.mask, batch.batch, batch.seq)?;
                Ok(out.to_device(&Device::Cpu)?.to_vec2::<f32>()?)
            }
        }
    }
}

impl CandleBert {
    fn build(cfg: EncoderConfig, w: &mut dyn Weights, device: &Device, mode: MatmulMode) -> Result<Self, ModelError> {
        let (hd, ff) = (cfg.hidden, cfg.intermediate);
        let eps = cfg.layer_norm_eps as f32;
        let linear = |w: &mut dyn Weights, name: &str, rows: usize, cols: usize| -> Result<Linear, ModelError> {
            let weight = match w.matrix(&format!("{name}.w"), rows, cols)? {
                Matrix::Q4(raw) => {
                    let q = QTensor::new(QStorage::from_data(raw, device, GgmlDType::Q4_0)?, (rows, cols))?;
                    match mode {
                        MatmulMode::Q4 => QMatMul::QTensor(Arc::new(q)),
                        _ => QMatMul::Tensor(q.dequantize(device)?),
                    }
                }
                Matrix::F32(values) => {
                    let t = Tensor::from_vec(values, (rows, cols), device)?;
                    match mode {
                        MatmulMode::Q4 => QMatMul::QTensor(Arc::new(QTensor::quantize(&t, GgmlDType::Q8_0)?)),
                        _ => QMatMul::Tensor(t),
                    }
                }
            };
            let bias = Tensor::from_vec(w.f32(&format!("{name}.b"), rows)?, rows, device)?;
            Ok(Linear { weight, bias })
        };
        let norm = |w: &mut dyn Weights, name: &str| -> Result<LayerNorm, ModelError> {
            Ok(LayerNorm {
                weight: Tensor::from_vec(w.gain(&format!("{name}.w"), hd)?, hd, device)?,
                bias: Tensor::from_vec(w.f32(&format!("{name}.b"), hd)?, hd, device)?,
                eps,
            })
        };
        let word = Arc::new(w.q4("emb.word", cfg.vocab, hd)?);
        let position = Tensor::from_vec(
            w.f32("emb.pos", cfg.max_positions * hd)?,
            (cfg.max_positions, hd),
            device,
        )?;
        // Token type 0 only (single-segment inputs); the file holds `type_vocab` rows.
        let types = w.f32("emb.type", cfg.type_vocab * hd)?;
        let token_type = Tensor::from_vec(types[..hd].to_vec(), hd, device)?;
        let embed_norm = norm(w, "emb.ln")?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let p = format!("l{l}");
            layers.push(Layer {
                query: linear(w, &format!("{p}.q"), hd, hd)?,
                key: linear(w, &format!("{p}.k"), hd, hd)?,
                value: linear(w, &format!("{p}.v"), hd, hd)?,
                attn_out: linear(w, &format!("{p}.ao"), hd, hd)?,
                attn_norm: norm(w, &format!("{p}.aln"))?,
                ffn_in: linear(w, &format!("{p}.fi"), ff, hd)?,
                ffn_out: linear(w, &format!("{p}.fo"), hd, ff)?,
                out_norm: norm(w, &format!("{p}.oln"))?,
            });
        }
        Ok(Self {
            cfg,
            device: device.clone(),
            word,
            position,
            token_type,
            embed_norm,
            layers,
        })
    }

    /// Runs a padded batch. `ids` is row-major `[batch, seq]`, `mask` holds 1
    /// for real tokens and 0 for padding. Returns `[batch, hidden]` unit vectors.
    fn forward(&self, ids: &[u32], mask: &[f32], batch: usize, seq: usize) -> Result<Tensor, ModelError> {
        if seq > self.cfg.max_positions {
            return Err(ModelError::TooLong {
                tokens: seq,
                max: self.cfg.max_positions,
            });
        }
        let dev = &self.device;
        let (hd, nh) = (self.cfg.hidden, self.cfg.heads);
        let head_dim = hd / nh;
        let ids = Tensor::from_slice(ids, (batch, seq), dev)?;
        let mask = Tensor::from_slice(mask, (batch, seq), dev)?;

        let mut x = self.word.embedding(&ids)?;
        let pos = self.position.narrow(0, 0, seq)?;
        x = x.broadcast_add(&pos)?.broadcast_add(&self.token_type)?;
        x = self.embed_norm.forward(&x)?;

        // 0 for real tokens, a large negative number for padding: [b, 1, 1, s].
        let attn_bias = ((&mask - 1.0)? * 1e9)?.reshape((batch, 1, 1, seq))?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, nh, head_dim))?.transpose(1, 2)?.contiguous()
        };
        for layer in &self.layers {
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&attn_bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch, seq, hd))?;
            let attn = layer.attn_out.forward(&ctx)?;
            x = layer.attn_norm.forward(&(x + attn)?)?;
            let mid = layer.ffn_in.forward(&x)?.gelu_erf()?;
            let out = layer.ffn_out.forward(&mid)?;
            x = layer.out_norm.forward(&(x + out)?)?;
        }

        // Mean pooling over real tokens, then L2 normalisation.
        let m = mask.unsqueeze(2)?.to_dtype(DType::F32)?;
        let summed = x.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1.0, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?)
    }
}
