//! Integer matrix multiply for the CPU encoder: Q4_0 weights times Q8_0
//! activations, the numerics of the reference C engine (per-32 blocks, an f16
//! scale per weight block, an f32 scale per activation block), computed with
//! integer dot products.
//!
//! Weights are repacked once at load into tiles of 16 output rows: per
//! 32-wide input block, eight 64-byte vectors hold four consecutive nibbles
//! (as `u8` 0..=15) of each of the 16 rows, the layout `vpdpbusd` consumes
//! with one broadcast activation word. The `-8` nibble offset is folded in
//! through the activation block sums. With AVX-512 VNNI the kernel keeps a
//! 4-token x 48-row tile in registers; elsewhere a portable loop computes the
//! same numbers (both are checked against each other in the tests).
//!
//! Memory: one byte per weight plus one f32 per 32 weights (about 2x the Q4_0
//! file size), never an f32 copy of the matrix.

use rayon::prelude::*;

/// Weights per quantisation block.
pub const QK: usize = 32;
/// Output rows per packed tile.
const TILE: usize = 16;
/// Bytes of nibbles per (tile, block).
const TILE_BLOCK_BYTES: usize = TILE * QK;
/// Bytes of one Q4_0 block in the file: f16 scale and 16 bytes of nibbles.
pub const Q4_0_BLOCK_BYTES: usize = 18;

/// A `[rows, cols]` Q4_0 matrix repacked for the kernel, or an 8-bit one
/// (weights merged with an adapter at load, see [`PackedQ4::from_f32_q8`]):
/// both store one unsigned byte per weight, `q + offset`, so one kernel
/// serves both; only the offset folded in through the activation sums differs.
pub struct PackedQ4 {
    rows: usize,
    cols: usize,
    /// `[tiles][blocks][8][16][4]` weight values `q + offset` (0..=15 for Q4, 0..=255 for Q8).
    qs: Vec<u8>,
    /// `[tiles][blocks][16]` block scales.
    d: Vec<f32>,
    /// `offset / 8`: 1 for Q4 (offset 8), 16 for Q8 (offset 128).
    offset_mult: i32,
}

/// `offset / 8` of 8-bit packed weights (offset 128).
const Q8_OFFSET_MULT: i32 = 16;

/// Errors in shapes handed to the kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("matrix [{rows}, {cols}] cannot be packed: rows must be a multiple of 16 and cols of 32")]
    Unpackable { rows: usize, cols: usize },
    #[error("Q4_0 data holds {got} bytes, [{rows}, {cols}] needs {want}")]
    Bytes {
        rows: usize,
        cols: usize,
        got: usize,
        want: usize,
    },
}

/// Rows must fill whole tiles and columns whole blocks.
fn check_packable(rows: usize, cols: usize) -> Result<(), ShapeError> {
    if !rows.is_multiple_of(TILE) || !cols.is_multiple_of(QK) || rows == 0 || cols == 0 {
        return Err(ShapeError::Unpackable { rows, cols });
    }
    Ok(())
}

impl PackedQ4 {
    /// Repacks raw Q4_0 blocks (row-major, blocks along `cols`).
    pub fn from_q4_0(raw: &[u8], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        check_packable(rows, cols)?;
        let blocks = cols / QK;
        let want = rows * blocks * Q4_0_BLOCK_BYTES;
        if raw.len() != want {
            return Err(ShapeError::Bytes {
                rows,
                cols,
                got: raw.len(),
                want,
            });
        }
        Ok(Self::pack(rows, cols, 1, |row, b, q| {
            let blk = &raw[(row * blocks + b) * Q4_0_BLOCK_BYTES..][..Q4_0_BLOCK_BYTES];
            for (i, v) in q.iter_mut().enumerate() {
                let byte = blk[2 + (i % 16)];
                *v = if i < 16 { byte & 0x0F } else { byte >> 4 };
            }
            half::f16::from_le_bytes([blk[0], blk[1]]).to_f32()
        }))
    }

    /// Lays out a matrix for the kernel: `block(row, b, q)` fills the 32
    /// stored values of block `b` of `row` (`q + offset`) and returns its scale.
    fn pack(
        rows: usize,
        cols: usize,
        offset_mult: i32,
        mut block: impl FnMut(usize, usize, &mut [u8; QK]) -> f32,
    ) -> Self {
        let blocks = cols / QK;
        let tiles = rows / TILE;
        let mut qs = vec![0u8; tiles * blocks * TILE_BLOCK_BYTES];
        let mut d = vec![0f32; tiles * blocks * TILE];
        let mut vals = [0u8; QK];
        for row in 0..rows {
            let (t, lane) = (row / TILE, row % TILE);
            for b in 0..blocks {
                d[(t * blocks + b) * TILE + lane] = block(row, b, &mut vals);
                let base = (t * blocks + b) * TILE_BLOCK_BYTES;
                for (i, &v) in vals.iter().enumerate() {
                    // element i of the block -> word i/4, byte i%4 of this lane
                    qs[base + (i / 4) * 64 + lane * 4 + (i % 4)] = v;
                }
            }
        }
        Self {
            rows,
            cols,
            qs,
            d,
            offset_mult,
        }
    }

    /// Quantises a dense row-major `[rows, cols]` f32 matrix to 8 bits per
    /// weight (per-32 blocks, scale `max|w| / 127`): 16x finer steps than
    /// Q4_0, so a small merged adapter update survives quantisation.
    pub fn from_f32_q8(w: &[f32], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        check_packable(rows, cols)?;
        if w.len() != rows * cols {
            return Err(ShapeError::Bytes {
                rows,
                cols,
                got: w.len() * 4,
                want: rows * cols * 4,
            });
        }
        Ok(Self::pack(rows, cols, Q8_OFFSET_MULT, |row, b, q| {
            let vals = &w[row * cols + b * QK..][..QK];
            let amax = vals.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (o, v) in q.iter_mut().zip(vals) {
                *o = ((v * inv).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
            }
            scale
        }))
    }

    /// An 8-bit `[rows, cols]` matrix from int8 rows of `dim` with one scale
    /// per row (`data.len() / dim` of them), zero-padded up to `rows` and
    /// `cols`: every value `q · scale` kept exactly, no f32 copy.
    pub fn from_i8_rows(data: &[i8], scales: &[f32], dim: usize, rows: usize, cols: usize) -> Result<Self, ShapeError> {
        check_packable(rows, cols)?;
        let n = scales.len();
        if dim > cols || n > rows || data.len() != n * dim {
            return Err(ShapeError::Bytes {
                rows,
                cols,
                got: data.len(),
                want: n * dim,
            });
        }
        Ok(Self::pack(rows, cols, Q8_OFFSET_MULT, |row, b, q| {
            for (i, o) in q.iter_mut().enumerate() {
                let col = b * QK + i;
                let v = if row < n && col < dim {
                    i32::from(data[row * dim + col])
                } else {
                    0
                };
                *o = (v + 128) as u8;
            }
            scales.get(row).copied().unwrap_or(0.0)
        }))
    }

    /// The same matrix in the 8-bit layout, exactly (`16 (n - 8)` at a
    /// sixteenth of the scale), so it can be fused with 8-bit matrices.
    fn to_q8(&self) -> Self {
        if self.offset_mult == Q8_OFFSET_MULT {
            return Self {
                rows: self.rows,
                cols: self.cols,
                qs: self.qs.clone(),
                d: self.d.clone(),
                offset_mult: self.offset_mult,
            };
        }
        Self {
            rows: self.rows,
            cols: self.cols,
            qs: self.qs.iter().map(|&n| n * 16).collect(),
            d: self.d.iter().map(|&d| d / 16.0).collect(),
            offset_mult: Q8_OFFSET_MULT,
        }
    }

    /// Output features (matrix rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features (matrix columns).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Dequantised weight (row, col); for tests and diagnostics.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        let blocks = self.cols / QK;
        let (t, lane, b, i) = (row / TILE, row % TILE, col / QK, col % QK);
        let nib = self.qs[(t * blocks + b) * TILE_BLOCK_BYTES + (i / 4) * 64 + lane * 4 + (i % 4)];
        (nib as f32 - 8.0 * self.offset_mult as f32) * self.d[(t * blocks + b) * TILE + lane]
    }

    /// Concatenates matrices with the same `cols` along the rows (fused Q/K/V).
    /// When the parts mix 4- and 8-bit layouts, all become 8-bit (exactly).
    pub fn concat_rows(parts: &[PackedQ4]) -> Self {
        let cols = parts[0].cols;
        assert!(parts.iter().all(|p| p.cols == cols), "concat_rows: cols differ");
        let offset_mult = parts.iter().map(|p| p.offset_mult).max().unwrap_or(1);
        let converted: Vec<PackedQ4>;
        let parts = if parts.iter().all(|p| p.offset_mult == offset_mult) {
            parts
        } else {
            converted = parts.iter().map(PackedQ4::to_q8).collect();
            &converted
        };
        Self {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols,
            qs: parts.iter().flat_map(|p| p.qs.iter().copied()).collect(),
            d: parts.iter().flat_map(|p| p.d.iter().copied()).collect(),
            offset_mult,
        }
    }
}

/// Activations `[rows, cols]` quantised per 32-block to i8 (Q8_0).
#[derive(Default)]
pub struct QuantActs {
    rows: usize,
    cols: usize,
    q: Vec<i8>,
    /// `[rows][blocks]` scales.
    d: Vec<f32>,
    /// `[rows][blocks]` 8 x the block's sum of quantised values (the nibble offset).
    sum8: Vec<i32>,
}

impl QuantActs {
    /// Quantises `x` (`rows * cols` values, row-major) into `self`, reusing its buffers.
    pub fn quantize(&mut self, x: &[f32], rows: usize, cols: usize) {
        assert_eq!(x.len(), rows * cols, "quantize: shape");
        assert_eq!(cols % QK, 0, "quantize: cols must be a multiple of 32");
        let blocks = cols / QK;
        self.rows = rows;
        self.cols = cols;
        self.q.resize(rows * cols, 0);
        self.d.resize(rows * blocks, 0.0);
        self.sum8.resize(rows * blocks, 0);
        let n = rows * blocks;
        // Blocks are independent; a few chunks per thread (see `gemm`).
        let chunk = chunk_rows(n, 1).max(64);
        self.q
            .par_chunks_mut(chunk * QK)
            .zip(self.d.par_chunks_mut(chunk))
            .zip(self.sum8.par_chunks_mut(chunk))
            .enumerate()
            .for_each(|(c, ((q, d), s))| {
                let first = c * chunk;
                super::simd::quantize_blocks(&x[first * QK..][..q.len()], q, d, s);
            });
    }
}

/// `out[rows, w.rows] = acts · wᵀ + bias`, parallel over row chunks on the
/// current rayon pool.
pub fn gemm(a: &QuantActs, w: &PackedQ4, bias: &[f32], out: &mut [f32]) {
    assert_eq!(a.cols, w.cols, "gemm: inner dimensions differ");
    assert_eq!(bias.len(), w.rows, "gemm: bias length");
    assert_eq!(out.len(), a.rows * w.rows, "gemm: output shape");
    if a.rows == 0 {
        return;
    }
    // Row chunks that are a multiple of the kernel's 4-row tile, about four
    // per thread: when another thread of the process (tokenizer, detector)
    // preempts one pool thread, the others steal its chunks instead of
    // waiting for it at the end of the product.
    let per = chunk_rows(a.rows, 4);
    let vnni = vnni_available();
    out.par_chunks_mut(per * w.rows).enumerate().for_each(|(c, o)| {
        let r0 = c * per;
        let nrows = o.len() / w.rows;
        if vnni {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports the features (checked at run time) and
            // all indices stay inside the slices (asserted above).
            unsafe {
                x86::gemm_rows(a, w, bias, r0, nrows, o)
            }
        } else {
            portable_rows(a, w, bias, r0, nrows, o);
        }
    });
}

/// Rows per parallel chunk: about four chunks per pool thread, at least 16
/// rows, a multiple of `multiple`.
pub(crate) fn chunk_rows(rows: usize, multiple: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    rows.div_ceil(4 * threads).max(16).div_ceil(multiple) * multiple
}

/// Whether the AVX-512 VNNI kernel runs on this CPU (`EARSHOT_NO_VNNI=1` forces the portable one).
pub fn vnni_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("EARSHOT_NO_VNNI").is_some_and(|v| v == "1") {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The portable kernel: same packed layout, same integer sums.
fn portable_rows(a: &QuantActs, w: &PackedQ4, bias: &[f32], r0: usize, nrows: usize, out: &mut [f32]) {
    let blocks = a.cols / QK;
    let n = w.rows;
    for m in 0..nrows {
        let row = r0 + m;
        let aq = &a.q[row * a.cols..][..a.cols];
        for t in 0..n / TILE {
            let mut acc = [0f32; TILE];
            for b in 0..blocks {
                let wq = &w.qs[(t * blocks + b) * TILE_BLOCK_BYTES..][..TILE_BLOCK_BYTES];
                let ab = &aq[b * QK..][..QK];
                let mut isum = [0i32; TILE];
                for (i, &av) in ab.iter().enumerate() {
                    let base = (i / 4) * 64 + (i % 4);
                    for (lane, s) in isum.iter_mut().enumerate() {
                        *s += wq[base + lane * 4] as i32 * av as i32;
                    }
                }
                let da = a.d[row * blocks + b];
                let corr = a.sum8[row * blocks + b] * w.offset_mult;
                let wd = &w.d[(t * blocks + b) * TILE..][..TILE];
                for lane in 0..TILE {
                    acc[lane] += (isum[lane] - corr) as f32 * (wd[lane] * da);
                }
            }
            for lane in 0..TILE {
                out[m * n + t * TILE + lane] = acc[lane] + bias[t * TILE + lane];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedQ4, QuantActs, QK, TILE, TILE_BLOCK_BYTES};
    use std::arch::x86_64::*;

    /// Rows `r0..r0 + nrows` of the product into `out` (`nrows * w.rows`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gemm_rows(
        a: &QuantActs,
        w: &PackedQ4,
        bias: &[f32],
        r0: usize,
        nrows: usize,
        out: &mut [f32],
    ) {
        let tiles = w.rows / TILE;
        let mut t = 0;
        while t < tiles {
            let nr = (tiles - t).min(3);
            let mut m = 0;
            while m < nrows {
                let mr = (nrows - m).min(4);
                let args = Tile {
                    a,
                    w,
                    bias,
                    row: r0 + m,
                    tile: t,
                    out: out.as_mut_ptr().add(m * w.rows + t * TILE),
                    out_stride: w.rows,
                };
                match (mr, nr) {
                    (4, 3) => tile::<4, 3>(&args),
                    (4, 2) => tile::<4, 2>(&args),
                    (4, 1) => tile::<4, 1>(&args),
                    (3, 3) => tile::<3, 3>(&args),
                    (3, 2) => tile::<3, 2>(&args),
                    (3, 1) => tile::<3, 1>(&args),
                    (2, 3) => tile::<2, 3>(&args),
                    (2, 2) => tile::<2, 2>(&args),
                    (2, 1) => tile::<2, 1>(&args),
                    (1, 3) => tile::<1, 3>(&args),
                    (1, 2) => tile::<1, 2>(&args),
                    _ => tile::<1, 1>(&args),
                }
                m += mr;
            }
            t += nr;
        }
    }

    struct Tile<'a> {
        a: &'a QuantActs,
        w: &'a PackedQ4,
        bias: &'a [f32],
        row: usize,
        tile: usize,
        out: *mut f32,
        out_stride: usize,
    }

    /// One MR-token x (NR*16)-output tile over the whole inner dimension.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile<const MR: usize, const NR: usize>(p: &Tile<'_>) {
        let k = p.a.cols;
        let blocks = k / QK;
        let tile_bytes = blocks * TILE_BLOCK_BYTES;
        let aq = p.a.q.as_ptr().add(p.row * k);
        let ad = p.a.d.as_ptr().add(p.row * blocks);
        let asum = p.a.sum8.as_ptr().add(p.row * blocks);
        let wq = p.w.qs.as_ptr().add(p.tile * tile_bytes);
        let wd = p.w.d.as_ptr().add(p.tile * blocks * TILE);
        let mut facc = [[_mm512_setzero_ps(); NR]; MR];
        for b in 0..blocks {
            let mut iacc = [[_mm512_setzero_si512(); NR]; MR];
            for j in 0..8 {
                let mut wv = [_mm512_setzero_si512(); NR];
                for (r, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(wq.add(r * tile_bytes + b * TILE_BLOCK_BYTES + j * 64) as *const _);
                }
                for (mi, accs) in iacc.iter_mut().enumerate() {
                    let word = (aq.add(mi * k + b * QK + j * 4) as *const i32).read_unaligned();
                    let av = _mm512_set1_epi32(word);
                    for (acc, v) in accs.iter_mut().zip(&wv) {
                        *acc = _mm512_dpbusd_epi32(*acc, *v, av);
                    }
                }
            }
            let mut wdv = [_mm512_setzero_ps(); NR];
            for (r, v) in wdv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(wd.add(r * blocks * TILE + b * TILE));
            }
            for mi in 0..MR {
                let corr = _mm512_set1_epi32(*asum.add(mi * blocks + b) * p.w.offset_mult);
                let da = _mm512_set1_ps(*ad.add(mi * blocks + b));
                for r in 0..NR {
                    let s = _mm512_cvtepi32_ps(_mm512_sub_epi32(iacc[mi][r], corr));
                    facc[mi][r] = _mm512_fmadd_ps(s, _mm512_mul_ps(wdv[r], da), facc[mi][r]);
                }
            }
        }
        for r in 0..NR {
            let bv = _mm512_loadu_ps(p.bias.as_ptr().add((p.tile + r) * TILE));
            for (mi, accs) in facc.iter().enumerate() {
                _mm512_storeu_ps(p.out.add(mi * p.out_stride + r * TILE), _mm512_add_ps(accs[r], bv));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random Q4_0 bytes with sane f16 scales.
    fn random_q4(rows: usize, cols: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut raw = Vec::with_capacity(rows * cols / QK * Q4_0_BLOCK_BYTES);
        for _ in 0..rows * cols / QK {
            let scale = 0.01 + (next() % 1000) as f32 / 20000.0;
            raw.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
            for _ in 0..16 {
                raw.push((next() & 0xFF) as u8);
            }
        }
        raw
    }

    /// The exact product in f64, and per output the bound on the error that
    /// Q8 rounding may add: Σ over blocks of (max|x| / 254) · Σ|w|.
    fn reference(x: &[f32], rows: usize, w: &PackedQ4, bias: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (n, k) = (w.rows(), w.cols());
        let mut out = vec![0f32; rows * n];
        let mut bound = vec![0f32; rows * n];
        for m in 0..rows {
            for o in 0..n {
                let mut acc = bias[o] as f64;
                let mut err = 0f64;
                for b in 0..k / QK {
                    let xs = &x[m * k + b * QK..][..QK];
                    let amax = xs.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
                    let mut wabs = 0f64;
                    for (j, &xv) in xs.iter().enumerate() {
                        let wv = w.get(o, b * QK + j) as f64;
                        acc += xv as f64 * wv;
                        wabs += wv.abs();
                    }
                    err += amax / 254.0 * wabs;
                }
                out[m * n + o] = acc as f32;
                bound[m * n + o] = err as f32;
            }
        }
        (out, bound)
    }

    #[test]
    fn int8_rows_pack_exactly_with_padding() {
        let data: Vec<i8> = (0..3 * 40).map(|i: i32| ((i * 37) % 255 - 127) as i8).collect();
        let scales = [0.5, 0.25, 2.0];
        let p = PackedQ4::from_i8_rows(&data, &scales, 40, 16, 64).unwrap();
        for r in 0..16 {
            for c in 0..64 {
                let want = if r < 3 && c < 40 {
                    f32::from(data[r * 40 + c]) * scales[r]
                } else {
                    0.0
                };
                assert_eq!(p.get(r, c), want, "({r}, {c})");
            }
        }
        assert!(
            PackedQ4::from_i8_rows(&data, &scales, 40, 16, 32).is_err(),
            "dim wider than cols"
        );
    }

    #[test]
    fn packing_keeps_every_weight() {
        let raw = random_q4(32, 64, 7);
        let p = PackedQ4::from_q4_0(&raw, 32, 64).unwrap();
        // Row 17, column 40: block 1, element 8 -> low nibble of byte 8.
        let blk = &raw[(17 * 2 + 1) * 18..][..18];
        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        assert_eq!(p.get(17, 40), ((blk[2 + 8] & 0x0F) as f32 - 8.0) * d);
        // Column 56: element 24 -> high nibble of byte 8.
        assert_eq!(p.get(17, 56), ((blk[2 + 8] >> 4) as f32 - 8.0) * d);
        assert!(matches!(
            PackedQ4::from_q4_0(&raw, 24, 64),
            Err(ShapeError::Unpackable { .. })
        ));
        assert!(matches!(
            PackedQ4::from_q4_0(&raw[1..], 32, 64),
            Err(ShapeError::Bytes { .. })
        ));
    }

    #[test]
    fn kernels_match_a_float_reference_on_every_tile_shape() {
        // 7 rows (4 + 3 remainders), 80 outputs (3 + 2 tiles), 96 inputs.
        for (rows, n, k) in [(7, 80, 96), (1, 16, 32), (13, 48, 384), (4, 112, 64)] {
            let w = PackedQ4::from_q4_0(&random_q4(n, k, (rows * n + k) as u64), n, k).unwrap();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.3).collect();
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * if i % 97 == 0 { 8.0 } else { 1.0 })
                .collect();
            let mut a = QuantActs::default();
            a.quantize(&x, rows, k);
            let (exact, bound) = reference(&x, rows, &w, &bias);
            let mut fast = vec![0f32; rows * n];
            gemm(&a, &w, &bias, &mut fast);
            let mut port = vec![0f32; rows * n];
            portable_rows(&a, &w, &bias, 0, rows, &mut port);
            let scale = exact.iter().fold(0f32, |m, v| m.max(v.abs()));
            for i in 0..rows * n {
                // Same integer sums: the two kernels agree to rounding.
                assert!(
                    (fast[i] - port[i]).abs() <= 1e-5 * scale,
                    "{i}: {} vs {}",
                    fast[i],
                    port[i]
                );
                // Q8 activations: within the rounding bound of the exact product.
                assert!(
                    (fast[i] - exact[i]).abs() <= bound[i] * 1.001 + 1e-5 * scale,
                    "{i}: {} vs {} (bound {})",
                    fast[i],
                    exact[i],
                    bound[i]
                );
            }
        }
    }

    #[test]
    fn eight_bit_weights_match_their_floats_and_the_reference() {
        let (rows, n, k) = (7, 48, 96);
        let wf: Vec<f32> = (0..n * k)
            .map(|i| ((i * 2654435761usize % 2001) as f32 / 1000.0 - 1.0) * 0.05)
            .collect();
        let w = PackedQ4::from_f32_q8(&wf, n, k).unwrap();
        for (i, &v) in wf.iter().enumerate() {
            let got = w.get(i / k, i % k);
            assert!((got - v).abs() <= 0.05 / 127.0 * 0.51 + 1e-7, "{i}: {got} vs {v}");
        }
        let bias = vec![0.1f32; n];
        let x: Vec<f32> = (0..rows * k).map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0).collect();
        let mut a = QuantActs::default();
        a.quantize(&x, rows, k);
        let (exact, bound) = reference(&x, rows, &w, &bias);
        let (mut fast, mut port) = (vec![0f32; rows * n], vec![0f32; rows * n]);
        gemm(&a, &w, &bias, &mut fast);
        portable_rows(&a, &w, &bias, 0, rows, &mut port);
        for i in 0..rows * n {
            assert!((fast[i] - port[i]).abs() <= 1e-4, "{i}: {} vs {}", fast[i], port[i]);
            assert!((fast[i] - exact[i]).abs() <= bound[i] * 1.001 + 1e-5, "{i}");
        }
    }

    #[test]
    fn mixing_layouts_in_a_fusion_keeps_every_weight() {
        let q4 = PackedQ4::from_q4_0(&random_q4(16, 64, 5), 16, 64).unwrap();
        let wf: Vec<f32> = (0..16 * 64).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
        let q8 = PackedQ4::from_f32_q8(&wf, 16, 64).unwrap();
        let fused = PackedQ4::concat_rows(&[q4, q8]);
        let q4 = PackedQ4::from_q4_0(&random_q4(16, 64, 5), 16, 64).unwrap();
        let q8 = PackedQ4::from_f32_q8(&wf, 16, 64).unwrap();
        for r in 0..16 {
            for c in 0..64 {
                assert_eq!(fused.get(r, c), q4.get(r, c));
                assert_eq!(fused.get(16 + r, c), q8.get(r, c));
            }
        }
    }

    #[test]
    fn concat_rows_stacks_matrices() {
        let a = PackedQ4::from_q4_0(&random_q4(16, 32, 1), 16, 32).unwrap();
        let b = PackedQ4::from_q4_0(&random_q4(32, 32, 2), 32, 32).unwrap();
        let c = PackedQ4::concat_rows(&[a, b]);
        let b2 = PackedQ4::from_q4_0(&random_q4(32, 32, 2), 32, 32).unwrap();
        assert_eq!(c.rows(), 48);
        assert_eq!(c.get(20, 5), b2.get(4, 5));
    }
}
