//! Input generation: byte mutations and pools of hostile values.

use earshot_core::rng::Rng;

/// Numbers that break parsers and time arithmetic: huge, tiny, negative,
/// epochs in s/ms/us/ns of years 1, 1970, 2300, 9999, integer limits.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-0.0",
    "1",
    "-1",
    "0.5",
    "4.5",
    "5",
    "6",
    "1e300",
    "-1e300",
    "1e308",
    "-1.7976931348623157e308",
    "1e-320",
    "1e400",
    "123456789012345678901234567890",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "2147483647",
    "-2147483649",
    "65535",
    "-62135596800",        // 0001-01-01 in s
    "-62135596800000",     // 0001-01-01 in ms
    "0",                   // 1970 in s/ms
    "1700000000",          // 2023 in s
    "1700000000000",       // 2023 in ms
    "1700000000000000",    // 2023 in us
    "1700000000000000000", // 2023 in ns
    "10413792000",         // 2300 in s
    "10413792000000",      // 2300 in ms
    "253402300799",        // 9999-12-31 in s
    "253402300799999",     // 9999-12-31 in ms
    "253402300800000000",  // 10000 in us
    "99999999999",
    "100000000000",
    "99999999999999",
    "100000000000000",
    "1.7e12",
    "1700000000.999",
    "-1700000000000",
];

/// Time strings, valid and not.
pub const TIMES: &[&str] = &[
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2300-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999-23:59",
    "0000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-02-29T23:59:60Z",
    "2024-06-01T12:00:00+25:00",
    "2024-06-01T12:00:00.123456789123456789Z",
    "2024-06-01 12:00:00",
    "2024-06-01T12:00:00",
    "2024-06-01",
    "2023-11-14T22:13:20Z",
    "2023-11-14T22:13:20+14:00",
    "T",
    "",
    " ",
    "1700000000",
    "1700000000000",
    "1e300",
    "NaN",
    "inf",
    "-inf",
    "now",
];

/// Strings: empty, whitespace, control, multilingual, JSON-ish, paths.
pub const STRINGS: &[&str] = &[
    "",
    " ",
    "\t\n",
    "ok",
    "the battery died after two days",
    "die Lieferung kam kaputt an",
    "配送が遅い",
    "خدمة سيئة",
    "😡😡😡",
    "\u{0}",
    "\u{feff}",
    "\u{202e}reversed",
    "a\\\"b",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e300",
    "null",
    "r1",
    "r2",
    "unknown-id",
    "../../etc/passwd",
    "%s%n",
    "${HOME}",
];

pub const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, 0xc0, 0xc3, 0xed, 0xf4, 0xf5, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'\n',
    b'\r', b'\t', b' ', b'.', b'-', b'+', b'e', b'E', b'0', b'9', b'=', b'#', b'\'',
];

pub fn pick<'a, T: ?Sized>(rng: &mut Rng, xs: &'a [&'a T]) -> &'a T {
    xs[rng.below(xs.len())]
}

/// JSON string literal.
pub fn jstr(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A random JSON value, biased towards hostile ones; `depth` limits nesting.
pub fn json_value(rng: &mut Rng, depth: u32) -> String {
    match rng.below(if depth == 0 { 6 } else { 9 }) {
        0 | 1 => pick(rng, NUMBERS).to_string(),
        2 => jstr(pick(rng, TIMES)),
        3 | 4 => jstr(pick(rng, STRINGS)),
        5 => ["null", "true", "false", "NaN", "Infinity", "-Infinity", "[]", "{}"][rng.below(8)].to_string(),
        6 => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n).map(|_| json_value(rng, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        7 => {
            let n = 1 + rng.below(3);
            let items: Vec<String> = (0..n)
                .map(|_| format!("{}:{}", jstr(pick(rng, KEYS)), json_value(rng, depth - 1)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        _ => {
            // Deep nesting (serde_json's recursion limit is 128).
            let d = [10, 127, 128, 129, 1000, 5000][rng.below(6)];
            let (o, c) = if rng.below(2) == 0 {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            format!("{}1{}", o.repeat(d), c.repeat(d))
        }
    }
}

pub const KEYS: &[&str] = &[
    "id",
    "text",
    "brand",
    "product",
    "sku",
    "region",
    "channel",
    "rating",
    "lang",
    "author",
    "event_time",
    "replied_at",
    "reply_to",
    "review",
    "body",
    "0",
    "items",
    "",
    "a",
];

/// One byte-level mutation round (1-4 operations) of `base`; `other` is
/// another corpus entry for splicing; `dict` holds target tokens.
pub fn mutate(rng: &mut Rng, base: &[u8], other: &[u8], dict: &[&[u8]], max_len: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        let at = rng.below(len + 1);
        match rng.below(13) {
            0 if len > 0 => v[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => v[at.min(len - 1)] = BYTES[rng.below(BYTES.len())],
            2 if len > 0 => v[at.min(len - 1)] = rng.next_u64() as u8,
            3 | 4 if !dict.is_empty() => {
                let t = dict[rng.below(dict.len())];
                v.splice(at..at, t.iter().copied());
            }
            5 if len > 0 => {
                // Replace a short range with a dictionary token or a number.
                let end = (at + 1 + rng.below(8)).min(len);
                let t: Vec<u8> = if rng.below(2) == 0 && !dict.is_empty() {
                    dict[rng.below(dict.len())].to_vec()
                } else {
                    pick(rng, NUMBERS).as_bytes().to_vec()
                };
                v.splice(at.min(end)..end, t);
            }
            6 if len > 0 => {
                let end = (at + 1 + rng.below(32)).min(len);
                v.drain(at.min(end)..end);
            }
            7 if len > 0 => {
                // Repeat a short range (nesting, long runs).
                let start = at.min(len - 1);
                let end = (start + 1 + rng.below(8)).min(len);
                let chunk = v[start..end].to_vec();
                let times = [2, 16, 200, 2000][rng.below(4)];
                let rep: Vec<u8> = chunk.iter().copied().cycle().take(chunk.len() * times).collect();
                v.splice(end..end, rep);
            }
            8 if !other.is_empty() => {
                let s = rng.below(other.len());
                let e = (s + 1 + rng.below(64)).min(other.len());
                v.splice(at..at, other[s..e].iter().copied());
            }
            9 if len > 0 => v.truncate(rng.below(len)),
            10 if len >= 8 => {
                // Overwrite an integer field in place (binary formats lie about sizes).
                let vals: [u64; 10] = [
                    0,
                    1,
                    u64::MAX,
                    i32::MAX as u64,
                    (i32::MAX as u64) + 1,
                    u32::MAX as u64,
                    i64::MAX as u64,
                    32,
                    (1 << 31) | 7,
                    rng.next_u64(),
                ];
                let x = vals[rng.below(vals.len())].to_le_bytes();
                let w = [1, 2, 4, 8][rng.below(4)];
                let p = rng.below(len - w + 1);
                v[p..p + w].copy_from_slice(&x[..w]);
            }
            11 => {
                let t = pick(rng, NUMBERS).as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            _ => {
                let t = jstr(pick(rng, TIMES));
                v.splice(at..at, t.bytes());
            }
        }
        v.truncate(max_len);
    }
    v
}
