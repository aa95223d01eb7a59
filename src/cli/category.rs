//! `earshot train-category`: refine the complaint-category head on labelled
//! complaints. The prototype centroids (embedded with the loaded encoder,
//! as `train-adapter` / `train-head` write them) are the starting point and
//! the prior: a softmax regression on the
//! embeddings of the prototypes plus the labelled items, shrunk towards the
//! centroids, so a few hundred real complaints correct them without
//! replacing them. Uses the loaded model (adapter included).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use earshot::model::{self, train, BatchLimits, PAD_ID};
use earshot::types::Category;
use serde_json::json;

use super::train::{read_categorised, write_json};
use super::ModelArgs;

#[derive(Args)]
pub struct CategoryArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled complaints (JSONL with `text`, `category`, optional `split`).
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Use only rows whose `split` is this value (rows without `split` are used).
    #[arg(long, default_value = "adapt")]
    split: String,
    /// Where to write the category head.
    #[arg(long, default_value = "models/heads/category.json")]
    out: PathBuf,
    /// Pull towards the prototype centroids (L2 on the difference).
    #[arg(long, default_value_t = 1e-4)]
    l2: f32,
    #[arg(long, default_value_t = 300)]
    iterations: usize,
}

pub fn run(args: CategoryArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    let cfg = args.model.load_config()?;
    let loaded = super::load_model(&args.model, &cfg)?;
    let encoder = loaded.classifier.encoder();
    // The prototype centroids embedded with this encoder (adapter included):
    // the start and the prior, whatever head the config names.
    let name = earshot::model::Classifier::describe(&loaded.classifier);
    let mut base = model::build_category_head(&loaded.tokenizer, encoder, &name)?;
    base.adapter_sha256 = loaded.classifier.sentiment_head().adapter_sha256.clone();
    let mut texts: Vec<String> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let index = |c: Category| base.categories.iter().position(|k| *k == c);
    for (c, s) in model::category_prototypes()? {
        if let Some(i) = index(c) {
            texts.push(s);
            labels.push(i);
        }
    }
    let prototypes = texts.len();
    for (item, cat) in read_categorised(&args.data, &args.split, "--data")? {
        *counts.entry(format!("{}/{}", item.lang, cat.as_str())).or_default() += 1;
        texts.push(item.text);
        labels.push(index(cat).context("category missing from the head")?);
    }
    tracing::info!(prototypes, labelled = texts.len() - prototypes, "embedding");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let limits = BatchLimits {
        max_tokens: 8192,
        max_batch: 64,
    };
    let embs = model::embed_texts(&loaded.tokenizer, encoder, &refs, limits, PAD_ID, |_| {})?;
    // Each class weighs the same in total.
    let mut per_class = vec![0usize; base.categories.len()];
    labels.iter().for_each(|&l| per_class[l] += 1);
    let weights: Vec<f32> = labels.iter().map(|&l| 1.0 / per_class[l].max(1) as f32).collect();
    let init: Vec<Vec<f32>> = base
        .centroids
        .iter()
        .map(|c| c.iter().map(|v| v * base.scale).collect())
        .collect();
    let opt = train::LrOptions {
        l2: args.l2,
        iterations: args.iterations,
        learning_rate: 0.05,
    };
    let (w, b) = train::fit_softmax(&embs, &labels, &weights, &init, opt);
    let mut head = base.clone();
    head.centroids = w.iter().map(|r| r.iter().map(|v| v / base.scale).collect()).collect();
    head.bias = b;
    head.provenance = json!({
        "base": base.provenance,
        "refined_on": args.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "split": args.split,
        "items": counts,
        "prototypes": prototypes,
        "l2": args.l2,
        "iterations": args.iterations,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    write_json(&args.out, &head)?;
    tracing::info!(out = %args.out.display(), "category head written");
    Ok(ExitCode::SUCCESS)
}
