//! `earshot train-exemplars`: keep a sample of the labelled training texts'
//! embeddings in the sentiment head, so their nearest neighbours vote with
//! it at inference (`crates/model/src/exemplars.rs`). The exemplars are the
//! training split of `--data` (capped per source, language and label, as
//! `train-adapter` caps), the vote's weight and the blend's sharpening are
//! fitted on the calibration split (log-loss), and the held-out split and
//! `--exclude` texts are never read. Uses the loaded model (adapter
//! included); the head's linear part is unchanged.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::builder::TypedValueParser as _;
use clap::Args;
use earshot::model::exemplars::Int8Rows;
use earshot::model::heads::Exemplars;
use earshot::model::train::Split;
use earshot::model::{self, BatchLimits, Classifier, EncodedBatch, PAD_ID};
use serde_json::json;

use super::data::{read_labelled, select_train_calibrate, GroupCaps, Labelled};
use super::train::write_json;
use super::ModelArgs;

const LABELS: [&str; 3] = ["neg", "neu", "pos"];

#[derive(Args)]
pub struct ExemplarArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled JSONL (`text`, `label` neg|pos|neu, `lang`, `source`,
    /// `subset`), as for `train-adapter` (repeatable).
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Rows that carry a `split` field (e.g. tests/fixtures/category_real*.jsonl)
    /// are read only when it is this value; rows without one are read.
    #[arg(long, default_value = "adapt")]
    split: String,
    /// Evaluation files whose texts must never become exemplars (repeatable).
    #[arg(long)]
    exclude: Vec<PathBuf>,
    /// Skip items whose `source/subset` contains this string (repeatable).
    #[arg(long)]
    skip: Vec<String>,
    /// At most this many exemplars per (source/subset, language, label)
    /// (a quarter of it for long-text subsets; calibration items: a quarter
    /// of that). Each exemplar is 192 bytes in the head file (384 with
    /// `--bits 8`), plus a third for base64.
    #[arg(long, default_value_t = 200)]
    max_per_group: usize,
    /// `PATTERN=N`: groups whose `origin/lang/label` (as in the head's
    /// `provenance.exemplars.selection`) contains PATTERN take N instead of
    /// `--max-per-group` (repeatable; the first match wins). E.g.
    /// `--cap 'neg.txt/-=1000'` keeps every hand-labelled zh complaint.
    #[arg(long, value_parser = super::data::parse_cap)]
    cap: Vec<(String, usize)>,
    /// Nearest exemplars that vote. Default: chosen on the calibration
    /// split by log-loss among 10, 20, 40 and 80.
    #[arg(long)]
    k: Option<usize>,
    /// Sharpness of the vote: `exp(T · (cos − best cos))`. Default: chosen
    /// on the calibration split among 25, 50, 100 and 200.
    #[arg(long)]
    temperature: Option<f32>,
    /// How each exemplar is stored: 4 (codes of its difference from the
    /// pool's mean, 192 bytes each) or 8 (int8, 384 bytes each).
    #[arg(long, default_value_t = 4, value_parser = clap::builder::PossibleValuesParser::new(["4", "8"]).map(|s| s.parse::<u8>().expect("4 or 8")))]
    bits: u8,
    /// Share of the vote in the blend (0–1). Default: chosen on the
    /// calibration split by log-loss among 0, 0.1, …, 0.8 (with k and T).
    #[arg(long)]
    weight: Option<f32>,
    /// Where to write the head (the loaded sentiment head plus exemplars).
    #[arg(long, default_value = "models/heads/sentiment.json")]
    out: PathBuf,
}

pub fn run(args: ExemplarArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    if let Some(w) = args.weight {
        anyhow::ensure!((0.0..=1.0).contains(&w), "--weight {w} is outside 0..=1");
    }
    anyhow::ensure!(args.k != Some(0), "--k must be at least 1");
    anyhow::ensure!(
        args.temperature.is_none_or(|t| t.is_finite() && t > 0.0),
        "--temperature must be a positive number"
    );
    let cfg = args.model.load_config()?;
    let mut loaded = super::load_model(&args.model, &cfg)?;
    let mut head = loaded.classifier.sentiment_head().clone();
    // A head that already votes was written by this command: its provenance
    // is `{head, exemplars}`, and only the linear head's part carries over.
    let had_exemplars = head.exemplars.take().is_some();

    let mut data: Vec<Labelled> = Vec::new();
    for f in &args.data {
        data.extend(read_labelled(f)?);
    }
    let mut excluded = HashSet::new();
    for f in &args.exclude {
        excluded.extend(read_labelled(f)?.into_iter().map(|i| i.text));
    }
    let caps = GroupCaps {
        default: args.max_per_group,
        overrides: args.cap.clone(),
    };
    let (chosen, counts) = select_train_calibrate(&data, &args.skip, &excluded, &caps, |item| {
        item.split.as_deref().is_none_or(|s| s == args.split)
    })?;
    let (train_items, cal_items): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|(_, s)| *s == Split::Train);
    anyhow::ensure!(
        !train_items.is_empty() && !cal_items.is_empty(),
        "--data needs labelled rows in both the training and the calibration split (by text hash) after --exclude and --skip"
    );
    tracing::info!(
        exemplars = train_items.len(),
        calibration = cal_items.len(),
        "embedding"
    );
    let texts: Vec<&str> = train_items
        .iter()
        .chain(&cal_items)
        .map(|(i, _)| i.text.as_str())
        .collect();
    let embs = embed(&loaded.tokenizer, &mut loaded.classifier, &texts)?;
    let (train_embs, cal_embs) = embs.split_at(train_items.len());
    let label = |i: &Labelled| LABELS.iter().position(|l| *l == i.label).unwrap_or(1);
    let train_labels: Vec<usize> = train_items.iter().map(|(i, _)| label(i)).collect();
    let cal_labels: Vec<usize> = cal_items.iter().map(|(i, _)| label(i)).collect();

    // The vote does not depend on the weight: compute it once per (k, T),
    // blend per weight.
    let rows = if args.bits == 4 {
        Int8Rows::quantize_centred4(train_embs)
    } else {
        Int8Rows::quantize(train_embs)
    };
    let mut ex = Exemplars::new(1, 1.0, 1.0, train_labels, rows);
    let refs: Vec<&[f32]> = cal_embs.iter().map(Vec::as_slice).collect();
    let head_probs: Vec<[f32; 3]> = refs
        .iter()
        .map(|e| {
            let p = head.head_probs(e);
            [p.negative, p.neutral, p.positive]
        })
        .collect();
    let ks = args.k.map_or_else(|| vec![10, 20, 40, 80], |k| vec![k]);
    let temperatures = args
        .temperature
        .map_or_else(|| vec![25.0, 50.0, 100.0, 200.0], |t| vec![t]);
    let weights: Vec<f32> = match args.weight {
        Some(w) => vec![w],
        None => (0..=8).map(|i| i as f32 / 10.0).collect(),
    };
    let mut table = Vec::new();
    // (log-loss, k, temperature, weight, sharpen)
    let mut best: Option<(f32, usize, f32, f32, f32)> = None;
    for (&k, &t) in ks.iter().flat_map(|k| temperatures.iter().map(move |t| (k, t))) {
        (ex.k, ex.temperature) = (k, t);
        let votes: Vec<Option<Vec<f32>>> = refs.chunks(256).flat_map(|c| ex.vote_batch(c, 3)).collect();
        for &w in &weights {
            let blended: Vec<[f32; 3]> = head_probs
                .iter()
                .zip(&votes)
                .map(|(h, v)| match v {
                    Some(v) => [0, 1, 2].map(|c| (1.0 - w) * h[c] + w * v[c]),
                    None => *h,
                })
                .collect();
            let (sharpen, loss) = fit_sharpen(&blended, &cal_labels);
            let acc = binary_accuracy(&blended, &cal_labels);
            tracing::info!(
                k,
                temperature = t,
                weight = w,
                sharpen,
                log_loss = loss,
                binary_accuracy = acc,
                "calibration split"
            );
            table.push(json!({"k": k, "temperature": t, "weight": w, "sharpen": sharpen, "log_loss": loss, "binary_accuracy": acc}));
            if best.is_none_or(|b| loss < b.0) {
                best = Some((loss, k, t, w, sharpen));
            }
        }
    }
    let (loss, k, temperature, weight, sharpen) = best.context("no weight to try")?;
    (ex.k, ex.temperature) = (k, temperature);
    ex.weight = weight;
    ex.sharpen = sharpen;
    let n = ex.len();
    head.exemplars = Some(ex);
    let mut base = std::mem::take(&mut head.provenance);
    if had_exemplars {
        if let Some(linear) = base.get_mut("head") {
            base = linear.take();
        }
    }
    head.provenance = json!({
        "head": base,
        "exemplars": {
            "data": args.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "exclude": args.exclude.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "split": args.split,
            "skip": args.skip,
            "max_per_group": args.max_per_group,
            "caps": args.cap.iter().map(|(p, n)| json!({"pattern": p, "max": n})).collect::<Vec<_>>(),
            "bits": args.bits,
            "exemplars": n,
            "calibration_items": cal_labels.len(),
            "k": k,
            "temperature": temperature,
            "weight": weight,
            "sharpen": sharpen,
            "calibration_log_loss": loss,
            "weights_tried": table,
            "selection": counts,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
        }
    });
    write_json(&args.out, &head)?;
    tracing::info!(out = %args.out.display(), exemplars = n, k, temperature, weight, sharpen, "sentiment head with exemplars written");
    Ok(ExitCode::SUCCESS)
}

/// Pooled embeddings exactly as inference computes them (windows and all),
/// with progress every 10 s.
fn embed(
    tokenizer: &model::Tokenizer,
    classifier: &mut dyn Classifier,
    texts: &[&str],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let encoded: Vec<model::Encoded> = texts.iter().map(|t| tokenizer.encode(t)).collect::<Result<_, _>>()?;
    let lengths: Vec<usize> = encoded.iter().map(|e| e.len()).collect();
    let limits = BatchLimits {
        max_tokens: 8192,
        max_batch: 128,
    };
    let mut out = vec![Vec::new(); texts.len()];
    let (start, mut last, mut done) = (Instant::now(), Instant::now(), 0);
    for group in model::batch::plan(&lengths, limits) {
        let b = EncodedBatch::pack(group.iter().map(|&i| &encoded[i]), PAD_ID);
        for (&i, inf) in group.iter().zip(classifier.classify(&b)?) {
            out[i] = inf.embedding;
        }
        done += group.len();
        if last.elapsed().as_secs() >= 10 {
            let rate = done as f64 / start.elapsed().as_secs_f64();
            tracing::info!(done, total = texts.len(), per_sec = format!("{rate:.1}"), "embedding");
            last = Instant::now();
        }
    }
    Ok(out)
}

/// The exponent `a` (0.5–3, steps of 0.05) minimising the log-loss of
/// `p^a / Σ p^a`; returns it and that log-loss.
fn fit_sharpen(probs: &[[f32; 3]], labels: &[usize]) -> (f32, f32) {
    let loss = |a: f32| {
        let total: f64 = probs
            .iter()
            .zip(labels)
            .map(|(p, &y)| {
                let q = p.map(|v| v.max(1e-9).powf(a));
                -f64::from((q[y] / q.iter().sum::<f32>()).max(1e-9)).ln()
            })
            .sum();
        (total / probs.len().max(1) as f64) as f32
    };
    (10..=60)
        .map(|i| i as f32 * 0.05)
        .map(|a| (a, loss(a)))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or((1.0, f32::NAN))
}

/// Accuracy on the polar items (P(pos) > P(neg) read as positive).
fn binary_accuracy(probs: &[[f32; 3]], labels: &[usize]) -> f32 {
    let (n, ok) = probs
        .iter()
        .zip(labels)
        .filter(|(_, &y)| y != 1)
        .fold((0usize, 0usize), |(n, ok), (p, &y)| {
            (n + 1, ok + ((p[2] > p[0]) == (y == 2)) as usize)
        });
    ok as f32 / n.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharpening_fixes_an_underconfident_blend() {
        // Always right, but only 60 % sure: a sharper blend has lower log-loss.
        let probs = vec![[0.6, 0.2, 0.2], [0.2, 0.2, 0.6], [0.2, 0.6, 0.2]];
        let labels = [0, 2, 1];
        let (a, loss) = fit_sharpen(&probs, &labels);
        assert!(a > 2.5, "{a}");
        assert!(loss < -(0.6f32).ln(), "{loss}");
        // Overconfident and half wrong: flattened.
        let probs = vec![[0.9, 0.05, 0.05], [0.9, 0.05, 0.05]];
        let (a, _) = fit_sharpen(&probs, &[0, 2]);
        assert!(a < 1.0, "{a}");
        assert_eq!(binary_accuracy(&probs, &[0, 2]), 0.5);
    }
}
