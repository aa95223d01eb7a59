//! The fuzz targets: each reads one kind of outside input the way earshot
//! does, and returns an outcome class (a dead-letter code, an error variant,
//! `ok`) that guides corpus growth.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use earshot::alert::api::Silence;
use earshot::alert::silence::Silences;
use earshot::config::{Config, RawConfig};
use earshot::ingest::mapping::Mapping;
use earshot::model::bert::{Encoder, MatmulMode};
use earshot::model::e5s1::E5s1;
use earshot::model::EncodedBatch;
use earshot::types::SourcePos;
use earshot_core::rng::Rng;

use crate::gen::{json_value, jstr, pick, KEYS, NUMBERS, STRINGS, TIMES};

pub struct Target {
    pub name: &'static str,
    /// Reads one input; the returned string classifies what happened.
    pub run: fn(&[u8]) -> String,
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub generate: fn(&mut Rng) -> Vec<u8>,
    pub dict: &'static [&'static [u8]],
    pub max_len: usize,
    /// Executions in the normal test suite.
    pub quick: u64,
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "mapping",
        run: run_mapping,
        seeds: seeds_mapping,
        generate: gen_mapping,
        dict: JSON_DICT,
        max_len: 256 * 1024,
        quick: 3000,
    },
    Target {
        name: "file",
        run: run_file,
        seeds: seeds_file,
        generate: gen_file,
        dict: FILE_DICT,
        max_len: 256 * 1024,
        quick: 1500,
    },
    Target {
        name: "config",
        run: run_config,
        seeds: seeds_config,
        generate: gen_config,
        dict: TOML_DICT,
        max_len: 64 * 1024,
        quick: 1500,
    },
    Target {
        name: "e5s1",
        run: run_e5s1,
        seeds: seeds_e5s1,
        generate: gen_e5s1,
        dict: &[b"E5S1", b"\x20\0\0\0", b"emb.word", b"\xff\xff\xff\x7f"],
        max_len: 64 * 1024,
        quick: 500,
    },
    Target {
        name: "alert_api",
        run: run_alert_api,
        seeds: seeds_alert_api,
        generate: gen_alert_api,
        dict: JSON_DICT,
        max_len: 64 * 1024,
        quick: 3000,
    },
];

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"NaN",
    b"Infinity",
    b"\\u0000",
    b"\\ud800",
    b"\\uDFFF",
    b"\"text\":",
    b"\"event_time\":",
    b"\"rating\":",
    b"\"reply_to\":",
    b"\"replied_at\":",
    b"\"id\":",
    b"\"matchers\":{\"brand\":\"x\"}",
    b"\"ends_at\":",
    b"\"starts_at\":",
    b"\xff",
    b"\xed\xa0\x80",
    b"\xc3",
];

const FILE_DICT: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b",",
    b"\"",
    b"\"\"",
    b"text",
    b"rating",
    b"event_time",
    b"replied_at",
    b"{",
    b"}",
    b"\xff",
    b"\0",
];

const TOML_DICT: &[&[u8]] = &[
    b"\n[mapping]\n",
    b"\n[detect]\n",
    b"\n[alert]\n",
    b"\n[[alert.sinks]]\n",
    b"\n[[alert.silences]]\n",
    b"\n[kafka]\n",
    b"\n[pipeline]\n",
    b"\n[model]\n",
    b" = ",
    b"\"\"",
    b"nan",
    b"inf",
    b"-inf",
    b"1e300",
    b"-1e300",
    b"0001-01-01T00:00:00Z",
    b"9999-12-31T23:59:59Z",
    b"1979-05-27",
    b"[[",
    b"]]",
    b"{ }",
    b"'''",
    b"\"\"\"",
    b"\\u0000",
    b"\xff",
];

const NOW: i64 = 1_700_000_000_000;

fn pos() -> SourcePos {
    SourcePos {
        source: "fuzz".into(),
        partition: 0,
        offset: 1,
    }
}

/// The mappings a message is read with: the default, nested paths, tight limits.
fn mappings() -> &'static [Mapping] {
    static M: OnceLock<Vec<Mapping>> = OnceLock::new();
    M.get_or_init(|| {
        let d = Mapping::default();
        vec![
            d.clone(),
            Mapping {
                text: "review.body".into(),
                id: "items.0.id".into(),
                event_time: "meta.ts".into(),
                rating: "items.0".into(),
                ..d.clone()
            },
            Mapping {
                max_text_bytes: 0,
                max_skew_secs: 0,
                max_age_hours: 1,
                ..d.clone()
            },
            Mapping {
                max_text_bytes: usize::MAX,
                max_skew_secs: u64::MAX,
                max_age_hours: u64::MAX,
                min_event_time: i64::MIN,
                ..d
            },
        ]
    })
}

/// Message timestamps and wall clocks tried: normal, 0, the extremes.
const TIMESTAMPS: [Option<i64>; 6] = [
    None,
    Some(NOW),
    Some(0),
    Some(i64::MIN),
    Some(i64::MAX),
    Some(-62_135_596_800_000),
];
const NOWS: [i64; 4] = [NOW, 0, i64::MAX, i64::MIN];

/// First byte: mapping, message timestamp and clock; the rest is the payload.
pub fn run_mapping(input: &[u8]) -> String {
    let (sel, payload) = input.split_first().map_or((0, input), |(s, p)| (*s as usize, p));
    let m = &mappings()[sel % 4];
    let ts = TIMESTAMPS[(sel / 4) % 6];
    let now = NOWS[(sel / 24) % 4];
    match m.decode(Some(payload), ts, now, pos()) {
        Ok(e) if e.reply_to.is_some() => "reply".into(),
        Ok(e) => format!(
            "ok{}",
            e.rating
                .map_or("", |r| if r.is_finite() { " rating" } else { " rating-inf" })
        ),
        Err(d) => d.code().to_string(),
    }
}

fn mapping_object(rng: &mut Rng) -> String {
    let n = rng.below(7);
    let mut fields: Vec<String> = Vec::new();
    if rng.below(4) != 0 {
        fields.push(format!("\"text\":{}", jstr(pick(rng, STRINGS))));
    }
    if rng.below(3) != 0 {
        let t = if rng.below(2) == 0 {
            pick(rng, NUMBERS).to_string()
        } else {
            jstr(pick(rng, TIMES))
        };
        fields.push(format!("\"event_time\":{t}"));
    }
    for _ in 0..n {
        fields.push(format!("{}:{}", jstr(pick(rng, KEYS)), json_value(rng, 2)));
    }
    format!("{{{}}}", fields.join(","))
}

fn gen_mapping(rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![rng.next_u64() as u8];
    v.extend_from_slice(mapping_object(rng).as_bytes());
    v
}

fn seeds_mapping() -> Vec<Vec<u8>> {
    [
        r#"{"id":"r1","text":"battery died","rating":1,"event_time":"2023-11-14T22:13:20Z","brand":"Voltra"}"#,
        r#"{"id":"r2","reply_to":"r1","replied_at":1700000000000}"#,
        r#"{"review":{"body":"nested"},"items":[{"id":"x"}],"meta":{"ts":1700000000}}"#,
    ]
    .iter()
    .map(|s| [&[0u8][..], s.as_bytes()].concat())
    .collect()
}

/// First byte: CSV (odd) or JSONL (even); the rest is the file. Every
/// message is then decoded as `replay` does (no message timestamp).
pub fn run_file(input: &[u8]) -> String {
    let (sel, data) = input.split_first().map_or((0, input), |(s, p)| (*s, p));
    let csv = sel & 1 == 1;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 20);
    let r = earshot::ingest::file::stream_reader(data, "fuzz", csv, &tx, &AtomicU64::new(0));
    drop(tx);
    let mut codes = std::collections::BTreeSet::new();
    let m = &mappings()[0];
    while let Ok(msg) = rx.try_recv() {
        let code = match m.decode(msg.payload.as_deref(), msg.timestamp, NOW, msg.pos) {
            Ok(_) => "ok",
            Err(d) => d.code(),
        };
        codes.insert(code);
    }
    match r {
        Ok(_) => format!("{}:{codes:?}", if csv { "csv" } else { "jsonl" }),
        Err(_) => "io_error".into(),
    }
}

fn csv_cell(rng: &mut Rng) -> String {
    let s = match rng.below(3) {
        0 => pick(rng, NUMBERS).to_string(),
        1 => pick(rng, TIMES).to_string(),
        _ => pick(rng, STRINGS).to_string(),
    };
    if rng.below(3) == 0 {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn gen_file(rng: &mut Rng) -> Vec<u8> {
    let csv = rng.below(2) == 0;
    let nl = if rng.below(4) == 0 { "\r\n" } else { "\n" };
    let mut out = String::new();
    if csv {
        let cols = 1 + rng.below(5);
        let header: Vec<&str> = (0..cols).map(|_| pick(rng, KEYS)).collect();
        out.push_str(&header.join(","));
        for _ in 0..rng.below(6) {
            out.push_str(nl);
            let n = if rng.below(5) == 0 { rng.below(7) } else { cols };
            let row: Vec<String> = (0..n).map(|_| csv_cell(rng)).collect();
            out.push_str(&row.join(","));
        }
    } else {
        for _ in 0..rng.below(6) {
            out.push_str(&mapping_object(rng));
            out.push_str(nl);
        }
    }
    let mut v = vec![if csv { 1 } else { 0 }];
    v.extend_from_slice(out.as_bytes());
    v
}

fn seeds_file() -> Vec<Vec<u8>> {
    vec![
        b"\x01id,text,rating,event_time\nr1,\"late, broken\",1,1700000000\nr2,fine,5,2023-11-14T22:13:20Z\n".to_vec(),
        b"\x00{\"id\":\"r1\",\"text\":\"ok\",\"event_time\":1700000000}\r\n\n{\"reply_to\":\"r1\",\"event_time\":1700000000}\n"
            .to_vec(),
    ]
}

fn config_example() -> &'static str {
    include_str!("../earshot.toml")
}

/// The whole input is the TOML text. Texts naming a `*_file` secret are only
/// parsed and validated (resolving would read arbitrary local files).
pub fn run_config(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let base = Path::new("/nonexistent/earshot-fuzz");
    let variant = |dbg: String| dbg.chars().take_while(|c| c.is_alphanumeric()).collect::<String>();
    if text.contains("_file") {
        return match RawConfig::parse(&text, "fuzz.toml").and_then(|r| r.validate(base)) {
            Ok(_) => "unresolved".into(),
            Err(e) => variant(format!("{e:?}")),
        };
    }
    let env = |name: &str| {
        name.len()
            .is_multiple_of(2)
            .then(|| "https://example.invalid/hook".to_string())
    };
    match Config::from_toml_with_env(&text, "fuzz.toml", base, env) {
        Ok(_) => "ok".into(),
        Err(e) => variant(format!("{e:?}")),
    }
}

/// The example config with a few values replaced by hostile ones.
fn gen_config(rng: &mut Rng) -> Vec<u8> {
    let lines: Vec<&str> = config_example().lines().collect();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(out.len());
        let line = lines[i];
        if let Some((k, _)) = line.split_once(" = ") {
            let v = match rng.below(5) {
                0 => pick(rng, NUMBERS).to_string(),
                1 => jstr(pick(rng, TIMES)),
                2 => jstr(pick(rng, STRINGS)),
                3 => ["nan", "inf", "-inf", "[]", "{}", "true", "-0.0", "1e300", "-1e300"][rng.below(9)].to_string(),
                _ => format!("[{}]", jstr(pick(rng, STRINGS))),
            };
            out[i] = format!("{k} = {v}");
        } else if rng.below(2) == 0 {
            out[i] = format!("{} = 1", pick(rng, KEYS));
        }
    }
    out.join("\n").into_bytes()
}

fn seeds_config() -> Vec<Vec<u8>> {
    vec![config_example().as_bytes().to_vec(), Vec::new()]
}

/// Dimensions of a generated model file.
#[derive(Clone, Copy)]
pub struct Dims {
    pub hidden: i32,
    pub layers: i32,
    pub heads: i32,
    pub intermediate: i32,
    pub vocab: i32,
    pub max_positions: i32,
    pub type_vocab: i32,
    pub pieces: i32,
}

impl Default for Dims {
    fn default() -> Self {
        Self {
            hidden: 32,
            layers: 1,
            heads: 2,
            intermediate: 64,
            vocab: 16,
            max_positions: 8,
            type_vocab: 2,
            pieces: 3,
        }
    }
}

/// Writes a small, valid E5S1 file (the layout `crates/model/src/e5s1.rs`
/// reads), tensors named as the int8 encoder loads them.
pub fn e5s1_file(d: Dims, rng: &mut Rng) -> Vec<u8> {
    let (hd, ff) = (d.hidden.max(0) as usize, d.intermediate.max(0) as usize);
    let mut tensors: Vec<(String, u8, usize, usize)> = Vec::new(); // name, dtype, elements, bytes
    let q4 = |rows: usize, cols: usize| rows * (cols / 32) * 18;
    let f = |t: &mut Vec<_>, name: &str, n: usize| t.push((name.to_string(), 0u8, n, n * 4));
    tensors.push((
        "emb.word".into(),
        1,
        d.vocab.max(0) as usize * hd,
        q4(d.vocab.max(0) as usize, hd),
    ));
    f(&mut tensors, "emb.pos", d.max_positions.max(0) as usize * hd);
    f(&mut tensors, "emb.type", d.type_vocab.max(0) as usize * hd);
    f(&mut tensors, "emb.ln.w", hd);
    f(&mut tensors, "emb.ln.b", hd);
    for l in 0..d.layers.max(0) {
        for (n, rows, cols) in [
            ("q", hd, hd),
            ("k", hd, hd),
            ("v", hd, hd),
            ("ao", hd, hd),
            ("fi", ff, hd),
            ("fo", hd, ff),
        ] {
            tensors.push((format!("l{l}.{n}.w"), 1, rows * cols, q4(rows, cols)));
            f(&mut tensors, &format!("l{l}.{n}.b"), rows);
        }
        for n in ["aln", "oln"] {
            f(&mut tensors, &format!("l{l}.{n}.w"), hd);
            f(&mut tensors, &format!("l{l}.{n}.b"), hd);
        }
    }
    let mut h = Vec::new();
    h.extend_from_slice(b"E5S1");
    h.extend_from_slice(&1u32.to_le_bytes());
    for x in [
        d.hidden,
        d.layers,
        d.heads,
        d.intermediate,
        d.vocab,
        d.max_positions,
        d.type_vocab,
    ] {
        h.extend_from_slice(&x.to_le_bytes());
    }
    h.extend_from_slice(&1e-12f32.to_le_bytes());
    h.extend_from_slice(&32i32.to_le_bytes());
    let pieces = d.pieces.max(0) as usize;
    h.extend_from_slice(&d.pieces.to_le_bytes());
    for x in [0i32, 2, 1, 3] {
        h.extend_from_slice(&x.to_le_bytes());
    }
    let blob = b"abc";
    h.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    for i in 0..=pieces {
        h.extend_from_slice(&(i.min(3) as u32).to_le_bytes());
    }
    for _ in 0..pieces {
        h.extend_from_slice(&(-1.0f32).to_le_bytes());
    }
    h.extend_from_slice(blob);
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as i32).to_le_bytes());
    let dir_len: usize = tensors.iter().map(|(n, ..)| 2 + n.len() + 1 + 4 + 8 + 8).sum();
    let mut offset = h.len() + dir_len;
    let mut data = Vec::new();
    for (name, dtype, elements, bytes) in &tensors {
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.push(*dtype);
        h.extend_from_slice(&(*elements as u32).to_le_bytes());
        h.extend_from_slice(&(offset as u64).to_le_bytes());
        h.extend_from_slice(&(*bytes as u64).to_le_bytes());
        offset += bytes;
        if *dtype == 1 {
            for _ in 0..bytes / 18 {
                data.extend_from_slice(&0x2c00u16.to_le_bytes()); // f16 0.0625
                data.extend((0..16).map(|_| rng.next_u64() as u8));
            }
        } else {
            for _ in 0..*elements {
                data.extend_from_slice(&((rng.uniform() as f32 - 0.5) * 0.2 + 1.0).to_le_bytes());
            }
        }
    }
    h.extend_from_slice(&data);
    h
}

/// Parses the file, loads the int8 encoder from it and embeds one short
/// sequence (token ids that a real tokenizer could give: 0..20).
pub fn run_e5s1(input: &[u8]) -> String {
    let file = match E5s1::parse(input.to_vec()) {
        Ok(f) => f,
        Err(e) => return format!("{e:?}").chars().take_while(|c| c.is_alphanumeric()).collect(),
    };
    let _ = file.names();
    let h = file.header;
    // Building allocates what the header says (positions x hidden floats,
    // checked against the file first); keep the check of absurd headers cheap.
    let enc = match Encoder::from_e5s1(&file, &candle_core::Device::Cpu, MatmulMode::Int8, 1) {
        Ok(e) => e,
        Err(e) => {
            return format!(
                "load:{}",
                format!("{e:?}")
                    .chars()
                    .take_while(|c| c.is_alphanumeric())
                    .collect::<String>()
            )
        }
    };
    let ids: Vec<u32> = [0u32, 5, 19, h.pad_id].to_vec();
    let batch = EncodedBatch::pack([&earshot::model::Encoded::single(ids, false)], h.pad_id);
    match enc.embed_batch(&batch) {
        Ok(v) if v.iter().flatten().all(|x| x.is_finite()) => "embedded".into(),
        Ok(_) => "embedded-nonfinite".into(),
        Err(_) => "embed_error".into(),
    }
}

fn gen_e5s1(rng: &mut Rng) -> Vec<u8> {
    let dims = [0, 1, 2, 3, 4, 8, 16, 32, 64, -1];
    let mut d = Dims {
        hidden: [32, 64, 32][rng.below(3)],
        layers: [0, 1, 2][rng.below(3)],
        heads: [1, 2, 4, 3][rng.below(4)],
        intermediate: [32, 64][rng.below(2)],
        vocab: [1, 4, 16, 32][rng.below(4)],
        max_positions: [1, 2, 4, 8][rng.below(4)],
        type_vocab: [1, 2][rng.below(2)],
        pieces: [0, 1, 3][rng.below(3)],
    };
    if rng.below(4) == 0 {
        let v = dims[rng.below(dims.len())];
        match rng.below(8) {
            0 => d.hidden = v,
            1 => d.layers = v,
            2 => d.heads = v,
            3 => d.intermediate = v,
            4 => d.vocab = v,
            5 => d.max_positions = v,
            6 => d.type_vocab = v,
            _ => d.pieces = v,
        }
    }
    let mut f = e5s1_file(d, rng);
    if rng.below(3) == 0 {
        // Lie about one header or directory number.
        let p = 8 + rng.below(f.len().saturating_sub(16).max(1));
        let vals = [0u32, u32::MAX, i32::MAX as u32, 1 << 31, 1 << 20];
        let x = vals[rng.below(vals.len())].to_le_bytes();
        let end = (p + 4).min(f.len());
        f[p..end].copy_from_slice(&x[..end - p]);
    }
    if rng.below(4) == 0 {
        let n = rng.below(f.len() + 1);
        f.truncate(n);
    }
    f
}

fn seeds_e5s1() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(5);
    vec![
        e5s1_file(Dims::default(), &mut rng),
        e5s1_file(
            Dims {
                layers: 0,
                vocab: 1,
                max_positions: 1,
                ..Dims::default()
            },
            &mut rng,
        ),
        b"E5S1".to_vec(),
    ]
}

/// A `POST /api/v1/silences` body, then what the alert stage does with it:
/// add (twice: duplicate ids), load as config, match, expire.
pub fn run_alert_api(input: &[u8]) -> String {
    let s: Silence = match serde_json::from_slice(input) {
        Ok(s) => s,
        Err(_) => return "bad_request".into(),
    };
    let set = Silences::default();
    let now = NOWS[input.len() % 4];
    let first = set.add(s.clone(), now);
    let second = set.add(s.clone(), now);
    let cfg = Silences::from_config(std::slice::from_ref(&s));
    let mut hit = false;
    for at in [i64::MIN, -62_135_596_800_000, 0, NOW, i64::MAX] {
        hit |= set.is_silenced(&s.matchers, at) | cfg.is_silenced(&s.matchers, at);
    }
    let expired = first.as_ref().is_ok_and(|a| set.expire(&a.id));
    let unknown = set.expire("no-such-silence-id");
    format!(
        "{}{}{}{}{}",
        if first.is_ok() { "created" } else { "rejected" },
        if second.is_ok() {
            "+dup_created"
        } else {
            "+dup_rejected"
        },
        if hit { "+hit" } else { "" },
        if expired { "+expired" } else { "" },
        if unknown { "+unknown_expired" } else { "" },
    )
}

fn gen_alert_api(rng: &mut Rng) -> Vec<u8> {
    let mut fields = Vec::new();
    if rng.below(5) != 0 {
        let n = rng.below(3);
        let m: Vec<String> = (0..n)
            .map(|_| format!("{}:{}", jstr(pick(rng, KEYS)), jstr(pick(rng, STRINGS))))
            .collect();
        fields.push(format!("\"matchers\":{{{}}}", m.join(",")));
    }
    for k in ["starts_at", "ends_at", "id", "comment", "created_by"] {
        if rng.below(3) != 0 {
            let v = match rng.below(4) {
                0 | 1 if k.ends_with("_at") => jstr(pick(rng, TIMES)),
                2 => json_value(rng, 1),
                _ => jstr(pick(rng, STRINGS)),
            };
            fields.push(format!("\"{k}\":{v}"));
        }
    }
    if rng.below(10) == 0 {
        fields.push("\"unknown\":1".into());
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

fn seeds_alert_api() -> Vec<Vec<u8>> {
    vec![
        br#"{"matchers":{"brand":"Voltra"},"ends_at":"2030-01-01T00:00:00Z","comment":"deploy"}"#.to_vec(),
        br#"{"id":"s1","matchers":{"rule":"spike"},"starts_at":"2024-01-01T00:00:00Z","ends_at":"2024-01-02T00:00:00Z"}"#
            .to_vec(),
    ]
}
