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
    pub fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32], sum8: &mut [i32]) {
        for (((xb, qb), db), sb) in x.chunks_exact(32).zip(q.chunks_exact_mut(32)).zip(d.iter_mut()).zip(sum8.iter_mut()) {
            let mut amax = [0f32; 32];
            for i in 0..32 {
                amax[i] = xb[i].abs();
            }
            let m = amax.iter().fold(0f32, |a, &b| a.max(b));
            let scale = m / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut s = 0i32;
            for i in 0..32 {
                let v = (xb[i] * inv).round_ties_even().clamp(-128.0, 127.0) as i32;
                qb[i] = v as i8;
                s += v;
            }
            *db = scale;
            *sb = 8 * s;
        }
    }
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
    pub fn gelu(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

simd_fn! {
    /// Scaled dot-product attention of one head of one sequence. `q`, `k`, `v`
    /// are row-strided views (`stride` floats between tokens, `dim` used);
    /// `ctx` receives `len` rows of `dim`, `out_stride` apart. `scores` is scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn attend(q: &[f32], k: &[f32], v: &[f32], ctx: &mut [f32], len: usize, dim: usize, stride: usize, out_stride: usize, scale: f32, scores: &mut Vec<f32>) {
        scores.resize(len, 0.0);
        let mut acc = vec![0f32; dim];
        for i in 0..len {
            let qi = &q[i * stride..][..dim];
            let mut mx = f32::NEG_INFINITY;
            for (j, s) in scores.iter_mut().enumerate() {
                let kj = &k[j * stride..][..dim];
                let mut d = [0f32; L];
                for (qc, kc) in qi.chunks_exact(L).zip(kj.chunks_exact(L)) {
                    for l in 0..L {
                        d[l] += qc[l] * kc[l];
                    }
                }
                *s = d.iter().sum::<f32>() * scale;
                mx = mx.max(*s);
            }
            let mut total = 0.0;
            for s in scores.iter_mut() {
                *s = exp(*s - mx);
                total += *s;
            }
            let inv = 1.0 / total;
            acc.iter_mut().for_each(|a| *a = 0.0);
            for (j, &p) in scores.iter().enumerate() {
                let vj = &v[j * stride..][..dim];
                for (a, &b) in acc.iter_mut().zip(vj) {
                    *a += p * b;
                }
            }
            for (c, a) in ctx[i * out_stride..][..dim].iter_mut().zip(&acc) {
                *c = a * inv;
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
    fn attention_rows_are_convex_combinations_of_values() {
        let (len, dim, stride) = (5, 32, 64);
        let q: Vec<f32> = (0..len * stride).map(|i| (i % 11) as f32 * 0.1).collect();
        let k: Vec<f32> = (0..len * stride).map(|i| (i % 5) as f32 * 0.2).collect();
        let v: Vec<f32> = (0..len * stride).map(|i| (i / stride) as f32).collect();
        let mut ctx = vec![9.0f32; len * stride];
        let mut scratch = Vec::new();
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
