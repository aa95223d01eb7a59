//! Element-wise kernels of the CPU encoder: activation quantisation, residual
//! + LayerNorm, GELU (erf), softmax and the small dot products of attention.
//!
//! Each is written once as plain Rust over fixed-width lanes that the compiler
//! vectorises, and compiled twice: for the baseline target and, chosen at run
//! time, for AVX-512 (`simd_fn!`). No fast-math: reductions keep 16 partial
//! sums explicitly so the vector code is the written code.

/// Lanes of the explicit partial sums (one AVX-512 register of f32).
const L: usize = 16;

/// Defines `pub fn $name(..)` that runs an AVX-512 build of the body when the
/// CPU has it and the baseline build otherwise.
macro_rules! simd_fn {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if avx512() {
                    // SAFETY: the CPU has the features `fast` is compiled for.
                    return unsafe { fast($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
    })
}

simd_fn! {
    /// Q8_0 per 32-block: `q = round(x / d)`, `d = max|x| / 127`; `sum8 = 8 * Σq`.
    pub fn quantize_blocks_generic(x: &[f32], q: &mut [i8], d: &mut [f32], sum8: &mut [i32]) {
        for (((xb, qb), db), sb) in x.chunks_exact(32).zip(q.chunks_exact_mut(32)).zip(d.iter_mut()).zip(sum8.iter_mut()) {
            let mut m = [0f32; L];
            for i in 0..L {
                let (a, b) = (xb[i].abs(), xb[i + L].abs());
                m[i] = if a > b { a } else { b };
            }
            let amax = max_lanes(m);
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut qi = [0i32; 32];
            for i in 0..32 {
                // |x * inv| <= 127 by construction: the cast never saturates.
                qi[i] = (xb[i] * inv).round_ties_even() as i32;
            }
            let mut s = 0i32;
            for i in 0..32 {
                qb[i] = qi[i] as i8;
                s += qi[i];
            }
            *db = scale;
            *sb = 8 * s;
        }
    }
}

#[inline(always)]
fn max_lanes(m: [f32; L]) -> f32 {
    let mut best = m[0];
    for &v in &m[1..] {
        best = if v > best { v } else { best };
    }
    best
}

simd_fn! {
    /// `x = LayerNorm(x + add)` row by row (`add` empty: no residual).
    pub fn add_layer_norm(x: &mut [f32], add: &[f32], gain: &[f32], bias: &[f32], eps: f32) {
        let h = gain.len();
        for (r, row) in x.chunks_exact_mut(h).enumerate() {
            if !add.is_empty() {
                for (a, b) in row.iter_mut().zip(&add[r * h..(r + 1) * h]) {
                    *a += *b;
                }
            }
            let mean = sum(row) / h as f32;
            let mut var = [0f32; L];
            for c in row.chunks_exact(L) {
                for i in 0..L {
                    let d = c[i] - mean;
                    var[i] += d * d;
                }
            }
            let mut v = var.iter().sum::<f32>();
            for &t in row.chunks_exact(L).remainder() {
                v += (t - mean) * (t - mean);
            }
            let inv = 1.0 / (v / h as f32 + eps).sqrt();
            for ((a, g), b) in row.iter_mut().zip(gain).zip(bias) {
                *a = (*a - mean) * inv * *g + *b;
            }
        }
    }
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; L];
    let chunks = x.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..L {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// `e^x` for f32 without a libm call: 2^n by exponent bits times a degree-6
/// polynomial on the reduced range; relative error below 2e-7 on [-87, 88].
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // Cody-Waite: ln 2 split in a part exact in f32 and the rest.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// erf(x), Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

simd_fn! {
    /// GELU with the exact (erf) form, in place.
    pub fn gelu_generic(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Scratch of [`attend`]: the head's keys transposed, its values packed, scores.
#[derive(Default)]
pub struct AttendScratch {
    kt: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
}

simd_fn! {
    /// Scaled dot-product attention of one head of one sequence. `q`, `k`, `v`
    /// are row-strided views (`stride` floats between tokens, `dim` used);
    /// `ctx` receives `len` rows of `dim`, `out_stride` apart.
    ///
    /// Keys are transposed first so that a query's scores are `dim` axpys
    /// over contiguous memory, and values packed so each output row is a sum
    /// of contiguous rows: no horizontal sums in the inner loops.
    #[allow(clippy::too_many_arguments)]
    pub fn attend_generic(q: &[f32], k: &[f32], v: &[f32], ctx: &mut [f32], len: usize, dim: usize, stride: usize, out_stride: usize, scale: f32, scratch: &mut AttendScratch) {
        let AttendScratch { kt, v: vp, scores } = scratch;
        kt.resize(dim * len, 0.0);
        vp.resize(len * dim, 0.0);
        scores.resize(len, 0.0);
        for j in 0..len {
            let kj = &k[j * stride..][..dim];
            for (d, &kv) in kj.iter().enumerate() {
                kt[d * len + j] = kv * scale;
            }
            vp[j * dim..][..dim].copy_from_slice(&v[j * stride..][..dim]);
        }
        for i in 0..len {
            let qi = &q[i * stride..][..dim];
            scores.iter_mut().for_each(|s| *s = 0.0);
            for (d, &qd) in qi.iter().enumerate() {
                for (s, &kv) in scores.iter_mut().zip(&kt[d * len..(d + 1) * len]) {
                    *s += qd * kv;
                }
            }
            let mut m = [f32::NEG_INFINITY; L];
            let chunks = scores.chunks_exact(L);
            let mut mx = chunks.remainder().iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
            for c in chunks {
                for l in 0..L {
                    m[l] = if c[l] > m[l] { c[l] } else { m[l] };
                }
            }
            let lane_max = max_lanes(m);
            mx = if lane_max > mx { lane_max } else { mx };
            for s in scores.iter_mut() {
                *s = exp(*s - mx);
            }
            let inv = 1.0 / sum(scores);
            let out = &mut ctx[i * out_stride..][..dim];
            out.iter_mut().for_each(|c| *c = 0.0);
            for (j, &p) in scores.iter().enumerate() {
                for (c, &b) in out.iter_mut().zip(&vp[j * dim..(j + 1) * dim]) {
                    *c += p * b;
                }
            }
            out.iter_mut().for_each(|c| *c *= inv);
        }
    }
}

/// Q8_0 per 32-block: `q = round(x / d)`, `d = max|x| / 127`; `sum8 = 8 * Σq`.
pub fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32], sum8: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        assert!(x.len() == q.len() && x.len() == d.len() * 32 && d.len() == sum8.len());
        // SAFETY: features checked; lengths asserted.
        return unsafe { x86::quantize_blocks(x, q, d, sum8) };
    }
    quantize_blocks_generic(x, q, d, sum8)
}

/// GELU with the exact (erf) form, in place.
pub fn gelu(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: features checked.
        return unsafe { x86::gelu(x) };
    }
    gelu_generic(x)
}

/// Scaled dot-product attention of one head of one sequence; see [`attend_generic`].
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    len: usize,
    dim: usize,
    stride: usize,
    out_stride: usize,
    scale: f32,
    scratch: &mut AttendScratch,
) {
    #[cfg(target_arch = "x86_64")]
    if avx512() && dim.is_multiple_of(16) && dim <= 64 && len > 0 {
        assert!(q.len() >= (len - 1) * stride + dim && k.len() >= (len - 1) * stride + dim);
        assert!(v.len() >= (len - 1) * stride + dim && ctx.len() >= (len - 1) * out_stride + dim);
        // SAFETY: features checked; every row read or written is inside the
        // slices (asserted above).
        unsafe {
            match dim / 16 {
                1 => x86::attend::<1>(q, k, v, ctx, len, stride, out_stride, scale, scratch),
                2 => x86::attend::<2>(q, k, v, ctx, len, stride, out_stride, scale, scratch),
                3 => x86::attend::<3>(q, k, v, ctx, len, stride, out_stride, scale, scratch),
                _ => x86::attend::<4>(q, k, v, ctx, len, stride, out_stride, scale, scratch),
            }
        }
        return;
    }
    attend_generic(q, k, v, ctx, len, dim, stride, out_stride, scale, scratch)
}

/// The AVX-512 versions: explicit intrinsics where the compiler's vectoriser
/// chose gathers or left horizontal sums in inner loops.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::AttendScratch;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32], sum8: &mut [i32]) {
        let sign = _mm512_set1_epi32(0x7FFF_FFFF);
        for b in 0..d.len() {
            let x0 = _mm512_loadu_ps(x.as_ptr().add(b * 32));
            let x1 = _mm512_loadu_ps(x.as_ptr().add(b * 32 + 16));
            let a0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x0), sign));
            let a1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x1), sign));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
            let scale = amax / 127.0;
            let inv = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
            // Default MXCSR rounding: to nearest, ties to even.
            let q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, inv));
            let q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, inv));
            _mm_storeu_si128(q.as_mut_ptr().add(b * 32) as *mut __m128i, _mm512_cvtsepi32_epi8(q0));
            _mm_storeu_si128(
                q.as_mut_ptr().add(b * 32 + 16) as *mut __m128i,
                _mm512_cvtsepi32_epi8(q1),
            );
            d[b] = scale;
            sum8[b] = 8 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        }
    }

    /// e^x on 16 lanes: 2^n by `vscalefps`, degree-6 polynomial on the reduced range.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn exp16(x: __m512) -> __m512 {
        let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0)), _mm512_set1_ps(88.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            x,
            _mm512_set1_ps(std::f32::consts::LOG2_E),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn gelu16(x: __m512) -> __m512 {
        let sign_mask = _mm512_set1_epi32(i32::MIN);
        let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let zi = _mm512_castps_si512(z);
        let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign_mask, zi));
        let t = _mm512_div_ps(
            _mm512_set1_ps(1.0),
            _mm512_fmadd_ps(a, _mm512_set1_ps(0.327_591_1), _mm512_set1_ps(1.0)),
        );
        let mut p = _mm512_set1_ps(1.061_405_4);
        for c in [-1.453_152_1, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
            p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
        }
        p = _mm512_mul_ps(p, t);
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a)));
        let erf_abs = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0));
        let erf = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(erf_abs),
            _mm512_and_si512(zi, sign_mask),
        ));
        _mm512_mul_ps(
            _mm512_mul_ps(_mm512_set1_ps(0.5), x),
            _mm512_add_ps(_mm512_set1_ps(1.0), erf),
        )
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gelu(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(16);
        for c in &mut chunks {
            _mm512_storeu_ps(c.as_mut_ptr(), gelu16(_mm512_loadu_ps(c.as_ptr())));
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let m: __mmask16 = (1u32 << rest.len()).wrapping_sub(1) as u16;
            let v = _mm512_maskz_loadu_ps(m, rest.as_ptr());
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), m, gelu16(v));
        }
    }

    /// Attention for a head of `16 * DV` dims.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn attend<const DV: usize>(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        ctx: &mut [f32],
        len: usize,
        stride: usize,
        out_stride: usize,
        scale: f32,
        scratch: &mut AttendScratch,
    ) {
        let dim = 16 * DV;
        let lp = len.div_ceil(16) * 16;
        let AttendScratch { kt, v: vp, scores } = scratch;
        kt.clear();
        kt.resize(dim * lp, 0.0);
        vp.clear();
        vp.resize(len * dim, 0.0);
        scores.clear();
        scores.resize(lp, 0.0);
        for j in 0..len {
            let kj = &k[j * stride..][..dim];
            for (dd, &kv) in kj.iter().enumerate() {
                *kt.get_unchecked_mut(dd * lp + j) = kv * scale;
            }
            vp[j * dim..][..dim].copy_from_slice(&v[j * stride..][..dim]);
        }
        let kp = kt.as_ptr();
        let sp = scores.as_mut_ptr();
        for i in 0..len {
            let qi = q.as_ptr().add(i * stride);
            // Scores, four key blocks at a time (independent FMA chains).
            let mut jb = 0;
            while jb + 64 <= lp {
                let mut acc = [_mm512_setzero_ps(); 4];
                for dd in 0..dim {
                    let qd = _mm512_set1_ps(*qi.add(dd));
                    for (u, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kp.add(dd * lp + jb + 16 * u)), *a);
                    }
                }
                for (u, a) in acc.iter().enumerate() {
                    _mm512_storeu_ps(sp.add(jb + 16 * u), *a);
                }
                jb += 64;
            }
            while jb < lp {
                let mut acc = _mm512_setzero_ps();
                for dd in 0..dim {
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(*qi.add(dd)), _mm512_loadu_ps(kp.add(dd * lp + jb)), acc);
                }
                _mm512_storeu_ps(sp.add(jb), acc);
                jb += 16;
            }
            // Padding columns out of the max and the sum.
            for s in &mut scores[len..lp] {
                *s = f32::NEG_INFINITY;
            }
            let mut mx = _mm512_set1_ps(f32::NEG_INFINITY);
            for c in (0..lp).step_by(16) {
                mx = _mm512_max_ps(mx, _mm512_loadu_ps(sp.add(c)));
            }
            let mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
            let mut total = _mm512_setzero_ps();
            for c in (0..lp).step_by(16) {
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(sp.add(c)), mx));
                let keep: __mmask16 = if c + 16 <= len {
                    0xFFFF
                } else {
                    ((1u32 << (len - c)) - 1) as u16
                };
                let e = _mm512_maskz_mov_ps(keep, e);
                _mm512_storeu_ps(sp.add(c), e);
                total = _mm512_add_ps(total, e);
            }
            let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(total));
            // Context: Σ p_j v_j, two rows at a time.
            let mut acc = [[_mm512_setzero_ps(); DV]; 2];
            let vptr = vp.as_ptr();
            let mut j = 0;
            while j < len {
                let (pair, step) = if j + 1 < len { (2, 2) } else { (1, 1) };
                for (u, a) in acc.iter_mut().enumerate().take(pair) {
                    let p = _mm512_set1_ps(*sp.add(j + u));
                    for (w, av) in a.iter_mut().enumerate() {
                        *av = _mm512_fmadd_ps(p, _mm512_loadu_ps(vptr.add((j + u) * dim + 16 * w)), *av);
                    }
                }
                j += step;
            }
            let out = ctx.as_mut_ptr().add(i * out_stride);
            for (w, (a0, a1)) in acc[0].iter().zip(&acc[1]).enumerate() {
                _mm512_storeu_ps(out.add(16 * w), _mm512_mul_ps(_mm512_add_ps(*a0, *a1), inv));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let (e, want) = (exp(x), (x as f64).exp());
            assert!(((e as f64 - want) / want).abs() < 3e-7, "exp({x}) = {e}, want {want}");
        }
        // erf(0.5) = 0.5204998778, erf(1.5) = 0.9661051465, erf(-2) = -0.9953222650
        for (x, want) in [
            (0.5f32, 0.520_499_9f32),
            (1.5, 0.966_105_1),
            (-2.0, -0.995_322_3),
            (0.0, 0.0),
        ] {
            assert!((erf(x) - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn gelu_and_layer_norm_match_the_definitions() {
        let mut x: Vec<f32> = (-40..40).map(|i| i as f32 / 10.0).collect();
        let orig = x.clone();
        gelu(&mut x);
        for (g, v) in x.iter().zip(&orig) {
            // Φ via the tail: 0.5 * erfc(-v/√2), erfc computed in f64 by series-free identity.
            let want = 0.5 * *v as f64 * (1.0 + erf64(*v as f64 / std::f64::consts::SQRT_2));
            assert!((*g as f64 - want).abs() < 1e-6, "gelu({v}) = {g}, want {want}");
        }
        let mut rows: Vec<f32> = (0..2 * 48).map(|i| (i % 7) as f32 - 3.0 + i as f32 * 0.01).collect();
        let add = vec![0.5f32; 96];
        let gain = vec![2.0f32; 48];
        let bias = vec![1.0f32; 48];
        add_layer_norm(&mut rows, &add, &gain, &bias, 1e-12);
        for r in rows.chunks(48) {
            let mean = r.iter().map(|v| (v - 1.0) / 2.0).sum::<f32>() / 48.0;
            let var = r.iter().map(|v| ((v - 1.0) / 2.0 - mean).powi(2)).sum::<f32>() / 48.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "mean {mean} var {var}");
        }
    }

    /// erf in f64 by its Taylor series (|x| ≤ 4 here), for the test only.
    fn erf64(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            total += term / (2 * n + 1) as f64;
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn vector_kernels_match_the_generic_ones() {
        let x: Vec<f32> = (0..32 * 37)
            .map(|i| ((i * 7919 % 2001) as f32 / 1000.0 - 1.0) * 3.0)
            .collect();
        let (mut q1, mut d1, mut s1) = (vec![0i8; x.len()], vec![0f32; 37], vec![0i32; 37]);
        let (mut q2, mut d2, mut s2) = (q1.clone(), d1.clone(), s1.clone());
        quantize_blocks(&x, &mut q1, &mut d1, &mut s1);
        quantize_blocks_generic(&x, &mut q2, &mut d2, &mut s2);
        assert_eq!((q1, d1, s1), (q2, d2, s2));
        let (mut g1, mut g2) = (x[..1001].to_vec(), x[..1001].to_vec());
        gelu(&mut g1);
        gelu_generic(&mut g2);
        for (a, b) in g1.iter().zip(&g2) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        for (len, dim) in [(1, 32), (5, 16), (17, 32), (70, 64), (130, 32)] {
            let stride = 3 * dim + 8;
            let q: Vec<f32> = (0..len * stride).map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5).collect();
            let k: Vec<f32> = (0..len * stride).map(|i| ((i * 17 % 89) as f32 / 89.0) - 0.5).collect();
            let v: Vec<f32> = (0..len * stride).map(|i| ((i * 13 % 83) as f32 / 83.0) - 0.5).collect();
            let (mut c1, mut c2) = (vec![0f32; len * stride], vec![0f32; len * stride]);
            let mut sc = AttendScratch::default();
            attend(&q, &k, &v, &mut c1, len, dim, stride, stride, 0.7, &mut sc);
            attend_generic(&q, &k, &v, &mut c2, len, dim, stride, stride, 0.7, &mut sc);
            for (a, b) in c1.iter().zip(&c2) {
                assert!((a - b).abs() < 1e-5, "len {len} dim {dim}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn attention_rows_are_convex_combinations_of_values() {
        let (len, dim, stride) = (5, 32, 64);
        let q: Vec<f32> = (0..len * stride).map(|i| (i % 11) as f32 * 0.1).collect();
        let k: Vec<f32> = (0..len * stride).map(|i| (i % 5) as f32 * 0.2).collect();
        let v: Vec<f32> = (0..len * stride).map(|i| (i / stride) as f32).collect();
        let mut ctx = vec![9.0f32; len * stride];
        let mut scratch = AttendScratch::default();
        attend(&q, &k, &v, &mut ctx, len, dim, stride, stride, 0.17, &mut scratch);
        for i in 0..len {
            // v's row j is the constant j, so each output lies in [0, len-1]
            // and all of a row's entries are equal.
            let row = &ctx[i * stride..][..dim];
            assert!(row
                .iter()
                .all(|&c| (c - row[0]).abs() < 1e-5 && (0.0..=4.0).contains(&c)));
            // untouched columns beyond `dim` keep their value
            assert_eq!(ctx[i * stride + dim], 9.0);
        }
    }
}
