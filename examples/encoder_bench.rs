//! Encoder throughput and latency on a file of texts, the way the engine sees
//! them: in arrival order through a bounded queue. Each time the queue is
//! full, its texts are sorted by length and cut into token-budget batches
//! (the engine's `batch::plan`), classified (encoder + heads), and the queue
//! refills. Then `--single N` texts run one at a time (batch-1 latency).
//!
//! Tokenisation is timed apart (it runs on other threads in the engine).
//! Used by `scripts/bench-gpu.sh` (CUDA build) and `scripts/bench-encoder.sh`:
//!
//! ```text
//! cargo run --release --example encoder_bench -- --texts texts.txt --json
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use earshot::config::Config;
use earshot::model::{self, batch, BatchLimits, Classifier, EncodedBatch, MatmulMode, PAD_ID};

#[derive(Parser)]
struct Args {
    /// One text per line.
    #[arg(long)]
    texts: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Pipeline config; default: the built-in one reading ./models.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    matmul: Option<MatmulMode>,
    /// Encoder threads (int8 path; 0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Texts that wait in the queue before a batch plan is made.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Padded tokens per batch.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Texts per batch.
    #[arg(long)]
    max_batch: Option<usize>,
    /// Texts run one at a time afterwards (batch-1 latency).
    #[arg(long, default_value_t = 50)]
    single: usize,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    json: bool,
    /// Write the token count of every text here (one per line), for peers.
    #[arg(long)]
    lengths_out: Option<PathBuf>,
    /// Write the embeddings here: little-endian f32, `texts x dim`.
    #[arg(long)]
    embeddings_out: Option<PathBuf>,
    /// Compare the embeddings with a file written by `--embeddings-out`
    /// (e.g. on another device) and report the lowest cosine.
    #[arg(long)]
    compare: Option<PathBuf>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cwd = std::env::current_dir()?;
    let mut cfg = match &args.config {
        Some(p) => Config::from_file(p).with_context(|| format!("failed to load {}", p.display()))?,
        None => Config::default_in(&cwd),
    };
    if let Some(m) = args.matmul {
        cfg.model.matmul = m;
    }
    cfg.model.threads = args.threads;
    let limits = BatchLimits {
        max_tokens: args.max_tokens.unwrap_or(cfg.batch.max_tokens),
        max_batch: args.max_batch.unwrap_or(cfg.batch.max_batch),
    };
    let device = model::parse_device(&args.device)?;
    let mut loaded = model::load(&cfg.model, &device).context("failed to load the model")?;
    let mode = loaded.classifier.encoder().mode();
    let texts: Vec<String> = std::fs::read_to_string(&args.texts)
        .with_context(|| format!("failed to read {}", args.texts.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!texts.is_empty(), "{} holds no texts", args.texts.display());

    let t0 = Instant::now();
    let encoded: Vec<_> = texts
        .iter()
        .map(|t| loaded.tokenizer.encode(t))
        .collect::<Result<_, _>>()?;
    let tokenize_s = t0.elapsed().as_secs_f64();
    let tokens: usize = encoded.iter().map(|e| e.len()).sum();
    if let Some(p) = &args.lengths_out {
        let body: String = encoded.iter().map(|e| format!("{}\n", e.len())).collect();
        std::fs::write(p, body)?;
    }

    // Warm-up, untimed: a batch of the first texts and one as large as the
    // largest the plan can cut (the longest text repeated up to the budget),
    // so kernel loading and allocator growth are not in the timed run.
    let longest = encoded.iter().max_by_key(|e| e.len()).expect("non-empty");
    let fill = (limits.max_tokens / longest.len().max(1)).clamp(1, limits.max_batch.max(1));
    for warm in [
        EncodedBatch::pack(encoded.iter().take(8), PAD_ID),
        EncodedBatch::pack(std::iter::repeat_n(longest, fill), PAD_ID),
    ] {
        loaded.classifier.classify(&warm)?;
    }
    device.synchronize()?;

    let mut embeddings = vec![Vec::new(); texts.len()];
    let mut batch_times = Vec::new();
    let mut padded = 0usize;
    let start = Instant::now();
    for (q, window) in encoded.chunks(args.queue.max(1)).enumerate() {
        let lengths: Vec<usize> = window.iter().map(|e| e.len()).collect();
        for group in batch::plan(&lengths, limits) {
            let b = EncodedBatch::pack(group.iter().map(|&i| &window[i]), PAD_ID);
            padded += b.padded_tokens();
            let bt = Instant::now();
            let out = loaded.classifier.classify(&b)?;
            device.synchronize()?;
            batch_times.push(bt.elapsed());
            for (&i, inf) in group.iter().zip(out) {
                embeddings[q * args.queue.max(1) + i] = inf.embedding;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();

    let mut single = Vec::new();
    for e in encoded.iter().take(args.single) {
        let b = EncodedBatch::pack([e], PAD_ID);
        let st = Instant::now();
        loaded.classifier.classify(&b)?;
        device.synchronize()?;
        single.push(st.elapsed());
    }
    batch_times.sort();
    single.sort();

    let dim = embeddings[0].len();
    if let Some(p) = &args.embeddings_out {
        let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
        for e in &embeddings {
            for v in e {
                f.write_all(&v.to_le_bytes())?;
            }
        }
    }
    let worst_cosine = match &args.compare {
        Some(p) => {
            let raw = std::fs::read(p).with_context(|| format!("failed to read {}", p.display()))?;
            anyhow::ensure!(
                raw.len() == texts.len() * dim * 4,
                "{} is not {} x {dim} f32",
                p.display(),
                texts.len()
            );
            let other: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let worst = embeddings
                .iter()
                .zip(other.chunks_exact(dim))
                .map(|(a, b)| {
                    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
                    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
                    dot / (na * nb).max(1e-12)
                })
                .fold(1.0f32, f32::min);
            Some(worst)
        }
        None => None,
    };

    let report = serde_json::json!({
        "impl": "earshot",
        "device": args.device,
        "matmul": mode.as_str(),
        "threads": args.threads,
        "texts": texts.len(),
        "tokens": tokens,
        "mean_tokens": tokens as f64 / texts.len() as f64,
        "queue": args.queue,
        "max_tokens": limits.max_tokens,
        "max_batch": limits.max_batch,
        "batches": batch_times.len(),
        "seconds": seconds,
        "reviews_per_s": texts.len() as f64 / seconds,
        "tokens_per_s": tokens as f64 / seconds,
        "padding_ratio": padded as f64 / tokens as f64,
        "batch_p50_ms": percentile(&batch_times, 0.5),
        "batch_p99_ms": percentile(&batch_times, 0.99),
        "single_p50_ms": percentile(&single, 0.5),
        "single_p99_ms": percentile(&single, 0.99),
        "tokenize_s": tokenize_s,
        "worst_cosine_vs_compare": worst_cosine,
    });
    if args.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
