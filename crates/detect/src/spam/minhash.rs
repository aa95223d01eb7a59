//! Near-duplicate fingerprints: normalised texts, character 3-shingles,
//! a 32-value MinHash and 8 LSH bands of 4 rows.

use earshot_core::hash::fnv1a;

/// MinHash values per signature.
pub const MINHASH: usize = 32;
/// LSH bands (rows per band = MINHASH / BANDS).
pub const BANDS: usize = 8;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lower case, letters only (digits and punctuation dropped), single spaces.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphabetic() {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    out.trim_end().to_string()
}

/// MinHash signature of a text's 3-shingles.
pub type Signature = [u64; MINHASH];

/// Character 3-shingles of the normalised text (its evidence weight: a
/// short stock phrase has few).
pub fn shingles(norm: &str) -> usize {
    norm.chars().count().saturating_sub(2)
}

pub fn signature(text: &str) -> Signature {
    signature_of(&normalise(text))
}

/// MinHash signature of an already normalised text.
pub(super) fn signature_of(norm: &str) -> Signature {
    let norm: Vec<char> = norm.chars().collect();
    let mut sig = [u64::MAX; MINHASH];
    let mut add = |h: u64| {
        for (i, s) in sig.iter_mut().enumerate() {
            let v = mix(h ^ mix(i as u64 + 1));
            if v < *s {
                *s = v;
            }
        }
    };
    if norm.len() < 3 {
        add(fnv1a(norm.iter().collect::<String>().as_bytes()));
    } else {
        for w in norm.windows(3) {
            let mut buf = [0u8; 12];
            let mut len = 0;
            for c in w {
                len += c.encode_utf8(&mut buf[len..]).len();
            }
            add(fnv1a(&buf[..len]));
        }
    }
    sig
}

/// Estimated Jaccard similarity of two signatures.
pub fn similarity(a: &Signature, b: &Signature) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / MINHASH as f64
}

/// Hashes of the signature's bands.
pub fn bands(sig: &Signature) -> [u64; BANDS] {
    let rows = MINHASH / BANDS;
    let mut out = [0u64; BANDS];
    for (b, o) in out.iter_mut().enumerate() {
        let mut h = b as u64;
        for v in &sig[b * rows..(b + 1) * rows] {
            h = mix(h ^ v);
        }
        *o = h;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_duplicates_are_similar_and_others_not() {
        let a = signature("Worst product ever!!! Do NOT buy, total scam. 0 stars");
        let b = signature("worst product ever. do not buy, total scam!!! 1 star");
        let c = signature("The left earbud stopped charging after two weeks.");
        assert!(similarity(&a, &b) >= 0.75, "{}", similarity(&a, &b));
        assert!(similarity(&a, &c) < 0.2);
        let sa = bands(&a);
        let sb = bands(&b);
        assert!(sa.iter().zip(&sb).any(|(x, y)| x == y));
    }

    #[test]
    fn normalise_drops_digits_and_punctuation() {
        assert_eq!(normalise("  Hello,   WORLD 123!! "), "hello world");
        assert_eq!(normalise("充电宝，很烫！"), "充电宝 很烫");
    }
}
