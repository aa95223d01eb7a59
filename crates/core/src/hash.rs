//! Stable hashes for identifiers that must not change between runs,
//! machines or versions (alert fingerprints, idempotency keys, data splits):
//! FNV-1a 64 from the `fnv` crate, whose output is fixed by its definition.

use std::hash::Hasher;

use fnv::FnvHasher;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = FnvHasher::default();
    h.write(bytes);
    h.finish()
}

/// FNV-1a 64 of `parts` joined by `|`, without building the joined string.
pub fn fnv1a_joined(parts: &[&str]) -> u64 {
    let mut h = FnvHasher::default();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.write(b"|");
        }
        h.write(p.as_bytes());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_vectors() {
        // Test vectors of the FNV reference (Fowler, Noll, Vo).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_joined(&["foo", "bar"]), fnv1a(b"foo|bar"));
    }
}
