//! The exemplars' vectors: int8 rows, or 4-bit codes of each row's
//! difference from the pool's mean, and their JSON form.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Row-major quantised vectors: row `i` is `offset + scales[i] · data[i]`.
/// Either int8 with no offset, each row divided by its largest magnitude
/// over 127 ([`Int8Rows::quantize`]), or 4-bit codes (−8..=7) of each row's
/// difference from the rows' mean, the offset
/// ([`Int8Rows::quantize_centred4`]). Serialised as `{rows, dim, scales,
/// int8}` or `{rows, dim, scales_f16, mean, int4}` (two codes a byte, low
/// nibble first, each plus 8), the bytes base64.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Int8Rows {
    pub dim: usize,
    pub scales: Vec<f32>,
    pub data: Vec<i8>,
    /// Added to every row; empty for int8 rows, the mean for 4-bit ones.
    pub offset: Vec<f32>,
}

impl Int8Rows {
    pub fn quantize(rows: &[Vec<f32>]) -> Self {
        let dim = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * dim);
        let mut scales = Vec::with_capacity(rows.len());
        for row in rows {
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales.push(scale);
            data.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
        }
        Self {
            dim,
            scales,
            data,
            offset: Vec::new(),
        }
    }

    /// 4-bit codes of each row minus the rows' mean, half the size of
    /// [`Int8Rows::quantize`]. Each row's scale is the one of a few clipping
    /// levels (the largest magnitude down to half of it) with the least
    /// squared error, refitted to its codes by least squares.
    pub fn quantize_centred4(rows: &[Vec<f32>]) -> Self {
        let dim = rows.first().map_or(0, Vec::len);
        let mut mean = vec![0.0f32; dim];
        for row in rows {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= rows.len().max(1) as f32);
        let mut data = Vec::with_capacity(rows.len() * dim);
        let mut scales = Vec::with_capacity(rows.len());
        for row in rows {
            let r: Vec<f32> = row.iter().zip(&mean).map(|(v, m)| v - m).collect();
            let (scale, codes) = best_4bit(&r);
            // Written as f16 (see `Packed`): keep what a reload will see.
            scales.push(half::f16::from_f32(scale).to_f32());
            data.extend(codes);
        }
        Self {
            dim,
            scales,
            data,
            offset: mean,
        }
    }

    pub fn rows(&self) -> usize {
        self.scales.len()
    }

    /// Row `i`, dequantised.
    pub fn row(&self, i: usize) -> Vec<f32> {
        let s = self.scales[i];
        let codes = &self.data[i * self.dim..(i + 1) * self.dim];
        let at = |d: usize| self.offset.get(d).copied().unwrap_or(0.0);
        codes
            .iter()
            .enumerate()
            .map(|(d, &q)| at(d) + f32::from(q) * s)
            .collect()
    }
}

/// A scale and 4-bit codes for `r`: the clipping level with the least
/// squared error, its scale refitted to the codes.
fn best_4bit(r: &[f32]) -> (f32, Vec<i8>) {
    let max = r.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        return (1.0, vec![0; r.len()]);
    }
    let mut best: Option<(f32, f32, Vec<i8>)> = None;
    for step in 0..=10 {
        let clip = 1.0 - 0.05 * step as f32;
        let s = clip * max / 7.0;
        let codes: Vec<i8> = r.iter().map(|v| (v / s).round().clamp(-8.0, 7.0) as i8).collect();
        let (num, den) = r.iter().zip(&codes).fold((0.0f32, 0.0f32), |(n, d), (v, &q)| {
            let q = f32::from(q);
            (n + v * q, d + q * q)
        });
        let s = if den > 0.0 { num / den } else { s };
        let err: f32 = r.iter().zip(&codes).map(|(v, &q)| (v - f32::from(q) * s).powi(2)).sum();
        if best.as_ref().is_none_or(|b| err < b.0) {
            best = Some((err, s, codes));
        }
    }
    let (_, s, codes) = best.expect("eleven levels tried");
    (s, codes)
}

/// The on-disk form. Scales are JSON numbers (`scales`, int8 rows) or
/// base64 little-endian f16 (`scales_f16`, 4-bit rows: a fifth of the
/// text); either is read for either kind of row.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Packed {
    rows: usize,
    dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scales: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scales_f16: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mean: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int8: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int4: Option<String>,
}

impl Serialize for Int8Rows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut p = Packed {
            rows: self.rows(),
            dim: self.dim,
            scales: None,
            scales_f16: None,
            mean: None,
            int8: None,
            int4: None,
        };
        if self.offset.is_empty() {
            p.scales = Some(self.scales.clone());
            p.int8 = Some(b64(self.data.iter().map(|&q| q as u8).collect()));
        } else {
            p.scales_f16 = Some(b64(self
                .scales
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect()));
            if self.data.iter().any(|q| !(-8..=7).contains(q)) {
                return Err(S::Error::custom("4-bit exemplar rows hold a code outside -8..=7"));
            }
            let nibble = |q: Option<&i8>| q.map_or(0, |&q| (q + 8) as u8);
            p.int4 = Some(b64(self
                .data
                .chunks(2)
                .map(|c| nibble(c.first()) | (nibble(c.get(1)) << 4))
                .collect()));
            p.mean = Some(self.offset.clone());
        }
        p.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Int8Rows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let p = Packed::deserialize(d)?;
        let decode = |field: &str, text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| D::Error::custom(format!("`exemplars.vectors.{field}` is not base64: {e}")))
        };
        let scales = match (p.scales, &p.scales_f16) {
            (Some(v), None) => v,
            (None, Some(text)) => {
                let bytes = decode("scales_f16", text)?;
                if bytes.len() % 2 != 0 {
                    return Err(D::Error::custom(
                        "`exemplars.vectors.scales_f16` holds an odd number of bytes (two per f16 scale)",
                    ));
                }
                let v: Vec<f32> = bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect();
                if v.iter().any(|s| !s.is_finite()) {
                    return Err(D::Error::custom(
                        "`exemplars.vectors.scales_f16` holds a scale that is not finite",
                    ));
                }
                v
            }
            _ => {
                return Err(D::Error::custom(
                    "`exemplars.vectors` needs exactly one of `scales` (numbers) and `scales_f16` (base64)",
                ))
            }
        };
        let want = p.rows * p.dim;
        let (bytes, offset, per_byte) = match (&p.int8, &p.int4, p.mean) {
            (Some(text), None, None) => (decode("int8", text)?, Vec::new(), 1),
            (None, Some(text), Some(mean)) if mean.len() == p.dim => (decode("int4", text)?, mean, 2),
            _ => {
                return Err(D::Error::custom(
                    "`exemplars.vectors` needs either `int8`, or `int4` with a `mean` of `dim` values",
                ))
            }
        };
        if scales.len() != p.rows || bytes.len() != want.div_ceil(per_byte) {
            return Err(D::Error::custom(format!(
                "`exemplars.vectors` declares {} rows of {} but holds {} scales and {} bytes",
                p.rows,
                p.dim,
                scales.len(),
                bytes.len()
            )));
        }
        let data: Vec<i8> = if per_byte == 1 {
            bytes.into_iter().map(|b| b as i8).collect()
        } else {
            let codes = bytes.into_iter().flat_map(|b| [(b & 15) as i8 - 8, (b >> 4) as i8 - 8]);
            codes.take(want).collect()
        };
        Ok(Self {
            dim: p.dim,
            scales,
            data,
            offset,
        })
    }
}
