//! `earshot train-head` and `earshot eval`: fit the sentiment head on frozen
//! embeddings of labelled data, build the category head from the prototypes,
//! and report accuracy per language.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use earshot::model::train::{self, Split};
use earshot::model::{self, heads, BatchLimits, Classifier, EncodedBatch, SentimentHead, PAD_ID};
use earshot::types::Category;
use serde_json::json;

use super::data::{choose, read_labelled, Groups, Labelled};
use super::ModelArgs;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled JSONL (`text`, `label` neg|pos|neu, `lang`, `source`), as written
    /// by scripts/fetch-train-data.py.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the sentiment head (the default model is the adapted
    /// one, written by `earshot train-adapter`; this head on the published
    /// weights is the opt-out, `examples/sentiment-frozen.toml`).
    #[arg(long, default_value = "models/heads/sentiment-frozen.json")]
    out: PathBuf,
    /// Where to write the category head (prototype centroids; the shipped
    /// `category.json` refines them with `earshot train-category`).
    #[arg(long, default_value = "models/heads/category-prototypes.json")]
    category_out: PathBuf,
    /// At most this many items per (language, label) go into training, chosen
    /// by a stable hash; bounds the embedding time on CPU.
    #[arg(long, default_value_t = 1500)]
    max_per_group: usize,
    /// At most this many held-out items per (language, label) are scored.
    #[arg(long, default_value_t = 300)]
    max_heldout_per_group: usize,
    /// Texts are cut to this many characters before embedding (long movie
    /// reviews carry their polarity early; bounds CPU time).
    #[arg(long, default_value_t = 1000)]
    max_chars: usize,
    /// Skip items whose `source/subset` contains this string (repeatable).
    #[arg(long)]
    skip: Vec<String>,
    /// Embedding cache file (reused when texts and model are unchanged).
    #[arg(long, default_value = ".cache/train-embeddings.bin")]
    cache: PathBuf,
    /// Dev set(s) to report on after training.
    #[arg(long)]
    dev: Vec<PathBuf>,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled JSONL files (`text`, `lang`, `label` neg|neu|pos, optional
    /// `category`, scored on `neg` rows only: a category is a complaint's).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write one JSONL row per item (`text`, `p_neg`, `p_neu`, `p_pos`,
    /// `category`, `category_score`), in input order, files after one
    /// another: the input of scripts/sentiment_report.py.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Only rows whose `split` is this value (rows without `split` are kept),
    /// e.g. `eval` for tests/fixtures/category_real.jsonl.
    #[arg(long)]
    split: Option<String>,
}

fn limits() -> BatchLimits {
    BatchLimits {
        max_tokens: 8192,
        max_batch: 128,
    }
}

/// Embeds texts, reusing a cache keyed by the texts' hashes and the model.
fn embed_cached(
    tokenizer: &model::Tokenizer,
    encoder: &model::Encoder,
    texts: &[&str],
    cache: &Path,
    model_key: &str,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut key = train::text_hash(model_key);
    for t in texts {
        key = key.rotate_left(5) ^ train::text_hash(t);
    }
    let dim = encoder.config().hidden;
    if let Ok(bytes) = std::fs::read(cache) {
        if bytes.len() == 16 + texts.len() * dim * 4
            && u64::from_le_bytes(bytes[..8].try_into()?) == key
            && u64::from_le_bytes(bytes[8..16].try_into()?) == texts.len() as u64
        {
            tracing::info!(path = %cache.display(), "reusing cached embeddings");
            let floats: Vec<f32> = bytes[16..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            return Ok(floats.chunks(dim).map(<[f32]>::to_vec).collect());
        }
    }
    let start = Instant::now();
    let mut last = Instant::now();
    let total = texts.len();
    let embs = model::embed_texts(tokenizer, encoder, texts, limits(), PAD_ID, |done| {
        if last.elapsed().as_secs() >= 10 {
            let rate = done as f64 / start.elapsed().as_secs_f64();
            tracing::info!(
                done,
                total,
                per_sec = format!("{rate:.1}"),
                eta_s = ((total - done) as f64 / rate) as u64,
                "embedding training texts"
            );
            last = Instant::now();
        }
    })?;
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let mut bytes = Vec::with_capacity(16 + total * dim * 4);
    bytes.extend_from_slice(&key.to_le_bytes());
    bytes.extend_from_slice(&(total as u64).to_le_bytes());
    for e in &embs {
        for v in e {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(cache, bytes).with_context(|| format!("failed to write {}", cache.display()))?;
    Ok(embs)
}

pub fn run_train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    let cfg = args.model.load_config()?;
    super::require_model_files(&cfg)?;
    let device = model::parse_device(&args.model.device).context("invalid --device")?;
    let tokenizer = model::load_tokenizer(&cfg.model)?;
    let encoder = model::load_encoder(&cfg.model, &device).context("failed to load the encoder")?;
    let name = "multilingual-e5-small".to_string();
    let data = read_labelled(&args.data)?;
    tracing::info!(items = data.len(), "read labelled data");

    // Choose items: a cap per (source/subset, lang, label, split), stable order;
    // long-text subsets get a quarter of the cap (they cost ~10x the compute).
    let mut groups: Groups = BTreeMap::new();
    for item in &data {
        let origin = item.origin();
        if args.skip.iter().any(|s| origin.contains(s.as_str())) {
            continue;
        }
        let s = match train::split_of(&item.text) {
            // Neutral items only calibrate the band; training is binary.
            Split::Train if item.label == "neu" => continue,
            Split::Train => 0,
            Split::Calibrate => 1,
            Split::HeldOut => 2,
        };
        groups
            .entry((origin, item.lang.clone(), item.label.clone(), s))
            .or_default()
            .push(item);
    }
    let (chosen, counts) = choose(
        groups,
        |s, base| match s {
            0 => base,
            1 => base / 8,
            _ => args.max_heldout_per_group,
        },
        &super::data::GroupCaps::uniform(args.max_per_group),
    );
    let cut: Vec<String> = chosen
        .iter()
        .map(|(i, _)| i.text.chars().take(args.max_chars).collect())
        .collect();
    let texts: Vec<&str> = cut.iter().map(String::as_str).collect();
    tracing::info!(texts = texts.len(), "embedding selected items");
    let model_key = format!("{:?}", cfg.model.encoder);
    let embs = embed_cached(&tokenizer, &encoder, &texts, &args.cache, &model_key)?;

    // Binary training set: neg/pos of the train split, balanced per (lang, label).
    let mut group_size: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (item, split) in &chosen {
        if *split == Split::Train && item.label != "neu" {
            *group_size.entry((&item.lang, &item.label)).or_default() += 1;
        }
    }
    let (mut x, mut y, mut w) = (Vec::new(), Vec::new(), Vec::new());
    for ((item, split), e) in chosen.iter().zip(&embs) {
        if *split == Split::Train && item.label != "neu" {
            x.push(e.clone());
            y.push(item.label == "pos");
            w.push(1.0 / group_size[&(item.lang.as_str(), item.label.as_str())] as f32);
        }
    }
    let start = Instant::now();
    let (weights, bias) = train::fit_logistic(&x, &y, &w, train::LrOptions::default());
    tracing::info!(
        samples = x.len(),
        seconds = start.elapsed().as_secs(),
        "fitted logistic regression"
    );
    let raw = |e: &[f32]| -> f32 { weights.iter().zip(e).map(|(a, b)| a * b).sum::<f32>() + bias };

    let collect = |want: Split, neutral: bool| -> (Vec<f32>, Vec<bool>, Vec<&str>) {
        let mut s = Vec::new();
        let mut yy = Vec::new();
        let mut langs = Vec::new();
        for ((item, split), e) in chosen.iter().zip(&embs) {
            if *split == want && ((item.label == "neu") == neutral) {
                s.push(raw(e));
                yy.push(item.label == "pos");
                langs.push(item.lang.as_str());
            }
        }
        (s, yy, langs)
    };
    let (cal_s, cal_y, _) = collect(Split::Calibrate, false);
    let temperature = train::fit_temperature(&cal_s, &cal_y);
    let (neu_s, _, _) = collect(Split::Calibrate, true);
    let neutral_delta = fit_neutral_delta(&cal_s, &cal_y, &neu_s, temperature);
    tracing::info!(temperature, neutral_delta, neutral_examples = neu_s.len(), "calibrated");

    // Held-out metrics.
    let (ho_s, ho_y, ho_langs) = collect(Split::HeldOut, false);
    let ho_cal: Vec<f32> = ho_s.iter().map(|s| s / temperature).collect();
    let probs: Vec<f32> = ho_cal.iter().map(|s| 1.0 / (1.0 + (-s).exp())).collect();
    let mut per_lang = BTreeMap::new();
    for lang in ho_langs.iter().copied().collect::<std::collections::BTreeSet<_>>() {
        let idx: Vec<usize> = (0..ho_langs.len()).filter(|&i| ho_langs[i] == lang).collect();
        let s: Vec<f32> = idx.iter().map(|&i| ho_cal[i]).collect();
        let yy: Vec<bool> = idx.iter().map(|&i| ho_y[i]).collect();
        per_lang.insert(
            lang.to_string(),
            json!({ "n": idx.len(), "accuracy": round4(train::accuracy(&s, &yy)) }),
        );
    }
    let heldout = json!({
        "n": ho_s.len(),
        "accuracy": round4(train::accuracy(&ho_cal, &ho_y)),
        "log_loss": round4(train::log_loss(&ho_cal, &ho_y, 1.0)),
        "log_loss_uncalibrated": round4(train::log_loss(&ho_s, &ho_y, 1.0)),
        "ece": round4(train::expected_calibration_error(&probs, &ho_y)),
        "per_language": per_lang,
    });
    println!("held-out: {}", serde_json::to_string_pretty(&heldout)?);

    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for item in &data {
        *sources
            .entry(item.source.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
    }
    let mut head = SentimentHead {
        format: heads::SENTIMENT_FORMAT.into(),
        encoder: name.clone(),
        dim: weights.len(),
        weights,
        bias,
        temperature,
        neutral_delta,
        classes: None,
        adapter_sha256: None,
        exemplars: None,
        provenance: json!({
            "data": args.data.display().to_string(),
            "items_by_source": sources,
            "selection": counts,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "heldout": heldout,
        }),
    };

    // Category head from the built-in prototypes.
    let category = model::build_category_head(&tokenizer, &encoder, &name)?;

    // Dev-set report with the new heads.
    let mut dev_reports = serde_json::Map::new();
    let mut classifier = model::E5Classifier::new(encoder, head.clone(), category.clone(), name);
    for dev in &args.dev {
        let items = read_labelled(dev)?;
        let (report, _) = evaluate(&tokenizer, &mut classifier, &items)?;
        print_report(&dev.display().to_string(), &report, &mut std::io::stdout())?;
        dev_reports.insert(dev.display().to_string(), report);
    }
    if !dev_reports.is_empty() {
        head.provenance["dev"] = serde_json::Value::Object(dev_reports);
    }

    write_json(&args.out, &head)?;
    write_json(&args.category_out, &category)?;
    tracing::info!(sentiment = %args.out.display(), category = %args.category_out.display(), "heads written");
    Ok(ExitCode::SUCCESS)
}

/// Neutral band half-width: maximises 3-class likelihood when neutral examples
/// exist; otherwise 1.0 (documented default: a text whose calibrated score is
/// within ±1 logit is called neutral when the band wins the argmax).
fn fit_neutral_delta(pol_s: &[f32], pol_y: &[bool], neu_s: &[f32], t: f32) -> f32 {
    if neu_s.len() < 20 {
        return 1.0;
    }
    let mut best = (1.0f32, f64::NEG_INFINITY);
    for k in 0..=60 {
        let delta = k as f32 * 0.1;
        let mut ll = 0.0f64;
        for (&s, &y) in pol_s.iter().zip(pol_y) {
            let p = heads::probs_from_score(s / t, delta);
            ll += (if y { p.positive } else { p.negative }).max(1e-7).ln() as f64;
        }
        // Neutral texts weigh a quarter of the polar ones together: a prior
        // that most reviews take a side, so clear reviews are not called neutral.
        let w = 0.25 * pol_s.len() as f64 / neu_s.len() as f64;
        for &s in neu_s {
            ll += w * (heads::probs_from_score(s / t, delta).neutral.max(1e-7).ln() as f64);
        }
        if ll > best.1 {
            best = (delta, ll);
        }
    }
    best.0
}

fn round4(x: f64) -> f64 {
    (x * 10000.0).round() / 10000.0
}

pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let text = serde_json::to_string(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("failed to write {}", path.display()))
}

/// Binary accuracy per language (neg vs pos by the sign of the calibrated
/// score, i.e. P(pos) > P(neg)), neutral rate, and category accuracy on
/// negatives that carry a `category`.
pub fn evaluate(
    tokenizer: &model::Tokenizer,
    classifier: &mut dyn Classifier,
    items: &[Labelled],
) -> anyhow::Result<(serde_json::Value, Vec<serde_json::Value>)> {
    let mut preds = vec![serde_json::Value::Null; items.len()];
    let mut done = 0;
    let started = Instant::now();
    let mut per_lang: BTreeMap<String, [usize; 5]> = BTreeMap::new(); // n, correct, neutral, cat_n, cat_ok
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    // (true category, language) -> [items, correct]
    let mut per_cat: BTreeMap<(String, String), [usize; 2]> = BTreeMap::new();
    let encoded: Vec<model::Encoded> = items
        .iter()
        .map(|i| tokenizer.encode(&i.text))
        .collect::<Result<_, _>>()?;
    let lengths: Vec<usize> = encoded.iter().map(|e| e.len()).collect();
    for group in model::batch::plan(&lengths, limits()) {
        let b = EncodedBatch::pack(group.iter().map(|&i| &encoded[i]), PAD_ID);
        for (&i, inf) in group.iter().zip(classifier.classify(&b)?) {
            let item = &items[i];
            preds[i] = json!({
                "text": item.text, "p_neg": inf.probs.negative, "p_neu": inf.probs.neutral,
                "p_pos": inf.probs.positive, "category": inf.category.as_str(), "category_score": inf.category_score,
            });
            let e = per_lang.entry(item.lang.clone()).or_default();
            if item.label != "neu" {
                e[0] += 1;
                let said_pos = inf.probs.positive > inf.probs.negative;
                e[1] += (said_pos == (item.label == "pos")) as usize;
                e[2] += (inf.probs.label() == earshot::types::Sentiment::Neutral) as usize;
            }
            if let (Some(cat), "neg") = (&item.category, item.label.as_str()) {
                if Category::parse(cat).is_some() {
                    e[3] += 1;
                    e[4] += (inf.category.as_str() == cat) as usize;
                    *confusion
                        .entry((cat.clone(), inf.category.as_str().to_string()))
                        .or_default() += 1;
                    let c = per_cat.entry((cat.clone(), item.lang.clone())).or_default();
                    c[0] += 1;
                    c[1] += (inf.category.as_str() == cat) as usize;
                }
            }
        }
        done += group.len();
        if items.len() >= 1000 && done * 10 / items.len() != (done - group.len()) * 10 / items.len() {
            tracing::info!(done, of = items.len(), secs = started.elapsed().as_secs(), "evaluating");
        }
    }
    let mut langs = serde_json::Map::new();
    let mut tot = [0usize; 5];
    for (lang, c) in &per_lang {
        for k in 0..5 {
            tot[k] += c[k];
        }
        langs.insert(lang.clone(), stats_json(c));
    }
    let per_category = category_stats(&per_cat, &confusion);
    let confusion: Vec<_> = confusion
        .into_iter()
        .map(|((t, p), n)| json!({"true": t, "predicted": p, "n": n}))
        .collect();
    Ok((
        json!({
            "overall": stats_json(&tot), "per_language": langs,
            "per_category": per_category, "category_confusion": confusion,
        }),
        preds,
    ))
}

/// Per true category: items, accuracy (recall), precision (of the items the
/// head put in it, how many belong there), and accuracy per language.
fn category_stats(
    per_cat: &BTreeMap<(String, String), [usize; 2]>,
    confusion: &BTreeMap<(String, String), usize>,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for cat in Category::ALL.map(Category::as_str) {
        let rows: Vec<_> = per_cat.iter().filter(|((c, _), _)| c == cat).collect();
        let (n, ok) = rows.iter().fold((0, 0), |(n, ok), (_, v)| (n + v[0], ok + v[1]));
        let said: usize = confusion.iter().filter(|((_, p), _)| p == cat).map(|(_, n)| n).sum();
        if n == 0 && said == 0 {
            continue;
        }
        let langs: serde_json::Map<_, _> = rows
            .iter()
            .map(|((_, lang), v)| (lang.clone(), json!({"n": v[0], "accuracy": ratio(v[1], v[0])})))
            .collect();
        out.insert(
            cat.to_string(),
            json!({
                "n": n, "accuracy": ratio(ok, n), "accuracy_ci95": wilson_json(ok, n),
                "precision": ratio(ok, said), "per_language": langs,
            }),
        );
    }
    serde_json::Value::Object(out)
}

fn ratio(a: usize, b: usize) -> serde_json::Value {
    if b == 0 {
        serde_json::Value::Null
    } else {
        json!(round4(a as f64 / b as f64))
    }
}

/// 95 % Wilson score interval of `k` successes in `n` trials.
fn wilson(k: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    const Z: f64 = 1.959964;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let den = 1.0 + Z * Z / n;
    let mid = (p + Z * Z / (2.0 * n)) / den;
    let half = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt() / den;
    Some(((mid - half).max(0.0), (mid + half).min(1.0)))
}

fn wilson_json(k: usize, n: usize) -> serde_json::Value {
    wilson(k, n).map_or(serde_json::Value::Null, |(lo, hi)| json!([round4(lo), round4(hi)]))
}

fn stats_json(c: &[usize; 5]) -> serde_json::Value {
    let frac = ratio;
    json!({
        "n": c[0],
        "binary_accuracy": frac(c[1], c[0]),
        "binary_accuracy_ci95": wilson_json(c[1], c[0]),
        "neutral_rate": frac(c[2], c[0]),
        "category_n": c[3],
        "category_accuracy": frac(c[4], c[3]),
        "category_accuracy_ci95": wilson_json(c[4], c[3]),
    })
}

/// `0.812–0.857`, or `-` where there were no items.
fn interval(v: &serde_json::Value) -> String {
    match (v[0].as_f64(), v[1].as_f64()) {
        (Some(lo), Some(hi)) => format!("{lo:.3}–{hi:.3}"),
        _ => "-".to_string(),
    }
}

fn print_report(name: &str, report: &serde_json::Value, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "{name}")?;
    writeln!(
        out,
        "  {:<8} {:>5} {:>9} {:>8} {:>6} {:>8}",
        "lang", "n", "accuracy", "neutral", "cat_n", "cat_acc"
    )?;
    let row = |lang: &str, v: &serde_json::Value, out: &mut dyn Write| -> std::io::Result<()> {
        let f = |k: &str| v[k].as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
        writeln!(
            out,
            "  {:<8} {:>5} {:>9} {:>8} {:>6} {:>8}",
            lang,
            v["n"],
            f("binary_accuracy"),
            f("neutral_rate"),
            v["category_n"],
            f("category_accuracy")
        )
    };
    if let Some(m) = report["per_language"].as_object() {
        for (lang, v) in m {
            row(lang, v, out)?;
        }
    }
    let all = &report["overall"];
    row("all", all, out)?;
    writeln!(
        out,
        "  95 % intervals (Wilson), all: accuracy {}, category {}",
        interval(&all["binary_accuracy_ci95"]),
        interval(&all["category_accuracy_ci95"])
    )?;
    print_categories(report, out)
}

/// The per-category table (accuracy per language in brackets with its
/// items), printed when the file has category labels.
fn print_categories(report: &serde_json::Value, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(cats) = report["per_category"].as_object().filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
    writeln!(
        out,
        "  {:<16} {:>5} {:>9} {:>13} {:>9}  per language",
        "category", "n", "accuracy", "95 % interval", "precision"
    )?;
    for (cat, v) in cats {
        let langs: Vec<String> = v["per_language"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(l, s)| format!("{l} {} ({})", f(&s["accuracy"]), s["n"]))
            .collect();
        writeln!(
            out,
            "  {:<16} {:>5} {:>9} {:>13} {:>9}  {}",
            cat,
            v["n"],
            f(&v["accuracy"]),
            interval(&v["accuracy_ci95"]),
            f(&v["precision"]),
            langs.join(", ")
        )?;
    }
    Ok(())
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    let cfg = args.model.load_config()?;
    let mut loaded = super::load_model(&args.model, &cfg)?;
    let mut all = serde_json::Map::new();
    let mut rows = Vec::new();
    for f in &args.files {
        let mut items = read_labelled(f)?;
        if let Some(want) = &args.split {
            items.retain(|i| i.split.as_deref().is_none_or(|s| s == want));
        }
        let (report, preds) = evaluate(&loaded.tokenizer, &mut loaded.classifier, &items)?;
        rows.extend(preds);
        if !args.json {
            print_report(&f.display().to_string(), &report, &mut std::io::stdout())?;
        }
        all.insert(f.display().to_string(), report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    if let Some(path) = &args.predictions {
        let mut out = String::new();
        for r in rows {
            out.push_str(&r.to_string());
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_match_the_closed_form() {
        let (lo, hi) = wilson(8, 10).unwrap();
        assert!((lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4, "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
        // All right or all wrong stays inside [0, 1] and is one-sided.
        let (lo, hi) = wilson(20, 20).unwrap();
        assert!(lo > 0.8 && hi == 1.0);
        let (lo, hi) = wilson(0, 20).unwrap();
        assert!(lo == 0.0 && hi < 0.2);
        assert_eq!(interval(&wilson_json(8, 10)), "0.490–0.943");
        assert_eq!(interval(&wilson_json(0, 0)), "-");
    }
}
