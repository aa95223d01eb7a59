//! Tokenize + forward throughput of the real encoder in each matmul mode
//! (int8: unpadded integer kernels; f32/q4: candle) and of the random test
//! encoder, at batch sizes 1, 8 and 32 on realistic review texts (the
//! multilingual dev set: 6 languages, 4 to ~60 tokens). Reports elements/s,
//! i.e. reviews per second. Names are prefixed with the device.
//!
//! Run: `bash scripts/setup.sh && cargo bench --bench model`
//! (set EARSHOT_BENCH_DEVICE=cuda with a `--features cuda` build).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use earshot::config::Config;
use earshot::model::{self, Classifier, EncodedBatch, MatmulMode, PAD_ID};

fn texts() -> Vec<String> {
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    std::fs::read_to_string(root.join("tests/fixtures/dev_reviews.jsonl"))
        .expect("dev set")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

fn bench_config(c: &mut Criterion, name: &str, toml: &str) {
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let device_name = std::env::var("EARSHOT_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = model::parse_device(&device_name).expect("device");
    let cfg = Config::from_toml(toml, "bench", &root).expect("config");
    let mut loaded = match model::load(&cfg.model, &device) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping {name}: {e} (run scripts/setup.sh)");
            return;
        }
    };
    let texts = texts();
    let mut group = c.benchmark_group(format!("{device_name}/{name}"));
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for batch in [1usize, 8, 32] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("tokenize+forward", batch), &batch, |b, &batch| {
            let mut offset = 0;
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    // Consecutive slices of the corpus: realistic mixed lengths.
                    let chunk: Vec<&str> = (0..batch).map(|k| texts[(offset + k) % texts.len()].as_str()).collect();
                    offset += batch;
                    let enc: Vec<_> = chunk.iter().map(|t| loaded.tokenizer.encode(t).unwrap()).collect();
                    let b = EncodedBatch::pack(enc.iter(), PAD_ID);
                    let out = loaded.classifier.classify(&b).unwrap();
                    assert_eq!(out.len(), batch);
                }
                device.synchronize().unwrap();
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// The heads alone, on batches of 32 pooled embeddings as the classifier
/// hands them over: each shipped head with and without its exemplars'
/// neighbour vote (queries: the head's own exemplars, nudged).
fn bench_heads(c: &mut Criterion) {
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let queries = |ex: &model::heads::Exemplars| -> Vec<Vec<f32>> {
        (0..32)
            .map(|i| {
                let v: Vec<f32> = ex
                    .vectors
                    .row((i * 37) % ex.len())
                    .iter()
                    .enumerate()
                    .map(|(d, x)| x + if (d + i) % 7 == 0 { 0.02 } else { -0.01 })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    };
    let mut group = c.benchmark_group("cpu/heads");
    group.throughput(Throughput::Elements(32));
    match model::CategoryHead::load(&root.join("models/heads/category.json")) {
        Ok(head) if head.exemplars.is_some() => {
            let q = queries(head.exemplars.as_ref().expect("checked"));
            let refs: Vec<&[f32]> = q.iter().map(Vec::as_slice).collect();
            let mut plain = head.clone();
            plain.exemplars = None;
            let name = format!("category+{}-exemplars", head.exemplars.as_ref().map_or(0, |e| e.len()));
            for (label, h) in [("category", &plain), (name.as_str(), &head)] {
                group.bench_function(label, |b| b.iter(|| h.predict_batch(&refs).len()));
            }
        }
        _ => eprintln!("skipping the category head: models/heads/category.json has no exemplars"),
    }
    match model::SentimentHead::load(&root.join("models/heads/sentiment.json")) {
        Ok(head) if head.exemplars.is_some() => {
            let q = queries(head.exemplars.as_ref().expect("checked"));
            let refs: Vec<&[f32]> = q.iter().map(Vec::as_slice).collect();
            let mut plain = head.clone();
            plain.exemplars = None;
            let name = format!("sentiment+{}-exemplars", head.exemplars.as_ref().map_or(0, |e| e.len()));
            for (label, h) in [("sentiment", &plain), (name.as_str(), &head)] {
                group.bench_function(label, |b| b.iter(|| h.probs_batch(&refs).len()));
            }
        }
        _ => eprintln!("skipping the sentiment head: models/heads/sentiment.json has no exemplars"),
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_heads(c);
    for mode in [MatmulMode::Int8, MatmulMode::F32, MatmulMode::Q4] {
        let m = mode.as_str();
        bench_config(c, &format!("e5-small-{m}"), &format!("[model]\nmatmul = \"{m}\"\n"));
    }
    bench_config(c, "random-64x2", "[model]\nencoder = \"random\"\n");
}

criterion_group!(model_benches, benches);
criterion_main!(model_benches);
