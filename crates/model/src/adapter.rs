//! Low-rank (LoRA) adapters for the encoder's linear layers, and their merge
//! into the weights at load.
//!
//! An adapter holds, per adapted linear layer `W` (`[rows, cols]`), two small
//! matrices `A` (`[rank, cols]`) and `B` (`[rows, rank]`); the adapted layer is
//! `W + (alpha / rank) · B·A`. At load the update is added to the
//! dequantised Q4_0 weight once and the sum is handed to the backends as a
//! dense matrix ([`super::bert::Matrix::F32`]): the int8 CPU encoder keeps it
//! at 8 bits per weight (a Q4_0 step is coarser than a typical update), the
//! candle paths as f32 or Q8_0. Inference runs the same kernels as without an
//! adapter, so it costs no extra time.
//!
//! File: safetensors with `<layer>.lora_a` / `<layer>.lora_b` f32 tensors
//! (layer names as in the E5S1 file, e.g. `l11.fi`) and metadata `format`
//! (`earshot-lora/1`), `rank`, `alpha` and `provenance` (JSON).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::bert::{Matrix, Weights};
use super::qgemm::{Q4_0_BLOCK_BYTES, QK};
use super::ModelError;

pub const ADAPTER_FORMAT: &str = "earshot-lora/1";

/// One adapted linear layer: `W += scale · B·A`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraPair {
    pub rows: usize,
    pub cols: usize,
    /// `[rank, cols]`, row-major.
    pub a: Vec<f32>,
    /// `[rows, rank]`, row-major.
    pub b: Vec<f32>,
}

/// A set of low-rank updates for named linear layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Adapter {
    pub rank: usize,
    pub alpha: f32,
    /// Layer name (`l11.q`, `l11.fi`, ...) to its update.
    pub layers: BTreeMap<String, LoraPair>,
    pub provenance: serde_json::Value,
    /// sha256 of the file it was read from (empty when built in memory).
    pub sha256: String,
}

fn head_err(path: &Path, msg: impl Into<String>) -> ModelError {
    ModelError::Head {
        path: path.display().to_string(),
        source: msg.into().into(),
    }
}

impl Adapter {
    /// `alpha / rank`.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank.max(1) as f32
    }

    /// The dense update `scale · B·A` of layer `name` (`[rows, cols]`), if adapted.
    pub fn delta(&self, name: &str) -> Option<Vec<f32>> {
        let p = self.layers.get(name)?;
        let r = self.rank;
        let s = self.scale();
        let mut out = vec![0f32; p.rows * p.cols];
        for (i, row) in out.chunks_exact_mut(p.cols).enumerate() {
            for k in 0..r {
                let bk = p.b[i * r + k] * s;
                if bk == 0.0 {
                    continue;
                }
                for (o, a) in row.iter_mut().zip(&p.a[k * p.cols..(k + 1) * p.cols]) {
                    *o += bk * a;
                }
            }
        }
        Some(out)
    }

    /// Reads an adapter file and checks its shapes.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| head_err(path, format!("not a safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k).ok_or_else(|| {
                head_err(
                    path,
                    format!("metadata `{k}` missing; re-create it with `earshot train-adapter`"),
                )
            })
        };
        if get("format")? != ADAPTER_FORMAT {
            return Err(head_err(path, format!("expected format `{ADAPTER_FORMAT}`")));
        }
        let rank: usize = get("rank")?
            .parse()
            .map_err(|_| head_err(path, "metadata `rank` is not a number"))?;
        let alpha: f32 = get("alpha")?
            .parse()
            .map_err(|_| head_err(path, "metadata `alpha` is not a number"))?;
        let provenance = meta
            .get("provenance")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(serde_json::Value::Null);
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| head_err(path, format!("not a safetensors file: {e}")))?;
        let mut layers = BTreeMap::new();
        for name in st.names() {
            let Some(layer) = name.strip_suffix(".lora_a") else {
                continue;
            };
            let read = |n: &str| -> Result<(Vec<usize>, Vec<f32>), ModelError> {
                let t = st.tensor(n).map_err(|e| head_err(path, format!("tensor `{n}`: {e}")))?;
                if t.dtype() != safetensors::Dtype::F32 {
                    return Err(head_err(path, format!("tensor `{n}` must be f32")));
                }
                let vals = t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok((t.shape().to_vec(), vals))
            };
            let (sa, a) = read(name)?;
            let (sb, b) = read(&format!("{layer}.lora_b"))?;
            if sa.len() != 2 || sb.len() != 2 || sa[0] != rank || sb[1] != rank {
                return Err(head_err(
                    path,
                    format!("layer `{layer}`: shapes {sa:?} / {sb:?} do not fit rank {rank}"),
                ));
            }
            layers.insert(
                layer.to_string(),
                LoraPair {
                    rows: sb[0],
                    cols: sa[1],
                    a,
                    b,
                },
            );
        }
        if layers.is_empty() {
            return Err(head_err(path, "no `<layer>.lora_a` tensors"));
        }
        Ok(Self {
            rank,
            alpha,
            layers,
            provenance,
            sha256,
        })
    }

    /// Writes the adapter as safetensors with its metadata.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let bytes_of = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, p) in &self.layers {
            owned.push((format!("{name}.lora_a"), vec![self.rank, p.cols], bytes_of(&p.a)));
            owned.push((format!("{name}.lora_b"), vec![p.rows, self.rank], bytes_of(&p.b)));
        }
        let views = owned
            .iter()
            .map(|(n, shape, data)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .map(|v| (n.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| head_err(path, e.to_string()))?;
        let meta: HashMap<String, String> = [
            ("format".to_string(), ADAPTER_FORMAT.to_string()),
            ("rank".to_string(), self.rank.to_string()),
            ("alpha".to_string(), self.alpha.to_string()),
            ("provenance".to_string(), self.provenance.to_string()),
        ]
        .into_iter()
        .collect();
        safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| head_err(path, e.to_string()))
    }
}

/// Dequantises row-major Q4_0 blocks to f32.
pub fn dequantize_q4_0(raw: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for (blk, vals) in raw.chunks_exact(Q4_0_BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        for i in 0..16 {
            vals[i] = ((blk[2 + i] & 0x0F) as f32 - 8.0) * d;
            vals[i + 16] = ((blk[2 + i] >> 4) as f32 - 8.0) * d;
        }
    }
    out
}

/// A weight source with an adapter's updates merged into its linear layers.
pub(super) struct AdaptedWeights<'a> {
    pub inner: &'a mut dyn Weights,
    pub adapter: &'a Adapter,
}

impl Weights for AdaptedWeights<'_> {
    fn device(&self) -> &candle_core::Device {
        self.inner.device()
    }
    fn q4_raw(&mut self, name: &str, rows: usize, cols: usize) -> Result<Cow<'_, [u8]>, ModelError> {
        self.inner.q4_raw(name, rows, cols)
    }
    fn q4_shared(&mut self, name: &str, rows: usize, cols: usize) -> Result<super::e5s1::SharedBytes, ModelError> {
        self.inner.q4_shared(name, rows, cols)
    }
    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'_>, ModelError> {
        let layer = name.strip_suffix(".w").unwrap_or(name);
        let Some(p) = self.adapter.layers.get(layer) else {
            return self.inner.matrix(name, rows, cols);
        };
        if (p.rows, p.cols) != (rows, cols) {
            return Err(ModelError::Config(format!(
                "adapter layer `{layer}` is [{}, {}] but the encoder's is [{rows}, {cols}]; the adapter belongs to another model",
                p.rows, p.cols
            )));
        }
        let mut w = match self.inner.matrix(name, rows, cols)? {
            Matrix::Q4(raw) => dequantize_q4_0(&raw, rows, cols),
            Matrix::F32(v) => v,
        };
        let delta = self.adapter.delta(layer).expect("layer present");
        w.iter_mut().zip(&delta).for_each(|(w, d)| *w += d);
        Ok(Matrix::F32(w))
    }
    fn f32(&mut self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        self.inner.f32(name, n)
    }
    fn gain(&mut self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        self.inner.gain(name, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Adapter {
        let mut layers = BTreeMap::new();
        layers.insert(
            "l0.q".to_string(),
            LoraPair {
                rows: 3,
                cols: 2,
                a: vec![1.0, 2.0, 3.0, 4.0],
                b: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            },
        );
        Adapter {
            rank: 2,
            alpha: 4.0,
            layers,
            provenance: serde_json::json!({"note": "test"}),
            sha256: String::new(),
        }
    }

    #[test]
    fn delta_is_scaled_b_times_a() {
        let d = tiny().delta("l0.q").unwrap();
        // scale 2; B·A = [[1,2],[3,4],[4,6]]
        assert_eq!(d, vec![2.0, 4.0, 6.0, 8.0, 8.0, 12.0]);
        assert!(tiny().delta("l0.k").is_none());
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        let a = tiny();
        a.save(&path).unwrap();
        let b = Adapter::load(&path).unwrap();
        assert_eq!(b.layers, a.layers);
        assert_eq!((b.rank, b.alpha), (2, 4.0));
        assert_eq!(b.provenance, a.provenance);
        assert_eq!(b.sha256.len(), 64);
    }

    #[test]
    fn a_file_that_is_not_an_adapter_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, b"hello").unwrap();
        let e = Adapter::load(&path).unwrap_err().to_string();
        assert!(e.contains("x.safetensors") && e.contains("safetensors"), "{e}");
    }
}
