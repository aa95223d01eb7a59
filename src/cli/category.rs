//! `earshot train-category`: refine the complaint-category head on labelled
//! complaints. The prototype centroids (embedded with the loaded encoder,
//! as `train-adapter` / `train-head` write them) are the starting point and
//! the prior: a softmax regression on the
//! embeddings of the prototypes plus the labelled items, shrunk towards the
//! centroids, so a few hundred real complaints correct them without
//! replacing them. The same embeddings are kept in the head as exemplars
//! whose k nearest neighbours vote with the centroids (`--knn-*`), for
//! classes such as `other` that are many small topics. Uses the loaded model
//! (adapter included).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use earshot::model::{self, train, BatchLimits, PAD_ID};
use earshot::types::Category;
use serde_json::json;

use super::data::read_categorised;
use super::train::write_json;
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
    /// Weigh each (language, category) cell of the labelled rows the same
    /// within its category, counting a cell of fewer rows as this many (so a
    /// cell of 2 does not outweigh one of 60). 0 (default): every row of a
    /// category weighs the same, whatever its language.
    #[arg(long, default_value_t = 0)]
    cell_floor: usize,
    /// Keep the prototypes' and labelled rows' embeddings in the head; this
    /// many nearest ones vote with the centroids at inference. 0: no
    /// exemplars (centroids only, the head of earlier releases).
    #[arg(long, default_value_t = 20)]
    knn_k: usize,
    /// Sharpness of the neighbours' vote: `exp(T · (cos − best cos))`.
    #[arg(long, default_value_t = 50.0)]
    knn_temperature: f32,
    /// Share of the neighbours' vote in the blended probabilities (0–1).
    #[arg(long, default_value_t = 0.6)]
    knn_weight: f32,
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
    if args.knn_k > 0 {
        let knobs = model::heads::Exemplars::new(
            args.knn_k,
            args.knn_temperature,
            args.knn_weight,
            Vec::new(),
            Default::default(),
        );
        knobs
            .validate(base.dim, base.categories.len())
            .map_err(|e| anyhow::anyhow!("{e} (set by --knn-k, --knn-temperature, --knn-weight)"))?;
    }
    let mut texts: Vec<String> = Vec::new();
    let mut labels: Vec<usize> = Vec::new();
    let mut cells: Vec<String> = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let index = |c: Category| base.categories.iter().position(|k| *k == c);
    for (c, s) in model::category_prototypes()? {
        if let Some(i) = index(c) {
            texts.push(s);
            labels.push(i);
            cells.push("prototypes".to_string());
        }
    }
    let prototypes = texts.len();
    for (item, cat) in read_categorised(&args.data, &args.split, "--data")? {
        *counts.entry(format!("{}/{}", item.lang, cat.as_str())).or_default() += 1;
        cells.push(item.lang.clone());
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
    let weights = class_weights(&labels, &cells, base.categories.len(), args.cell_floor);
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
    if args.knn_k > 0 {
        head.exemplars = Some(model::heads::Exemplars::new(
            args.knn_k,
            args.knn_temperature,
            args.knn_weight,
            labels,
            model::exemplars::Int8Rows::quantize(&embs),
        ));
    }
    head.provenance = json!({
        "base": base.provenance,
        "refined_on": args.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "split": args.split,
        "items": counts,
        "prototypes": prototypes,
        "l2": args.l2,
        "iterations": args.iterations,
        "cell_floor": args.cell_floor,
        "knn": if args.knn_k > 0 {
            json!({"k": args.knn_k, "temperature": args.knn_temperature, "weight": args.knn_weight, "exemplars": texts.len()})
        } else {
            serde_json::Value::Null
        },
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    write_json(&args.out, &head)?;
    tracing::info!(out = %args.out.display(), "category head written");
    Ok(ExitCode::SUCCESS)
}

/// Loss weights: each class weighs the same in total. With `cell_floor > 0`
/// the rows of a class are first weighed by `1 / max(rows in their cell,
/// cell_floor)`, a cell being the row's class and `cells[i]` (its language),
/// so within a class every well-filled cell counts the same.
fn class_weights(labels: &[usize], cells: &[String], classes: usize, cell_floor: usize) -> Vec<f32> {
    let mut in_cell: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for (&l, c) in labels.iter().zip(cells) {
        *in_cell.entry((l, c.as_str())).or_default() += 1;
    }
    let raw: Vec<f32> = labels
        .iter()
        .zip(cells)
        .map(|(&l, c)| match cell_floor {
            0 => 1.0,
            floor => 1.0 / in_cell[&(l, c.as_str())].max(floor) as f32,
        })
        .collect();
    let mut total = vec![0f32; classes];
    labels.iter().zip(&raw).for_each(|(&l, w)| total[l] += w);
    labels
        .iter()
        .zip(raw)
        .map(|(&l, w)| w / total[l].max(f32::MIN_POSITIVE))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::class_weights;

    #[test]
    fn classes_weigh_the_same_and_cells_too_when_asked() {
        // Class 0: 6 en rows and 2 zh rows; class 1: 4 en rows.
        let labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1];
        let cells: Vec<String> = ["en"; 6]
            .iter()
            .chain(["zh"; 2].iter())
            .chain(["en"; 4].iter())
            .map(|s| s.to_string())
            .collect();
        let sum = |w: &[f32], class: usize| -> f32 {
            labels.iter().zip(w).filter(|(&l, _)| l == class).map(|(_, w)| w).sum()
        };
        let plain = class_weights(&labels, &cells, 2, 0);
        assert!((sum(&plain, 0) - 1.0).abs() < 1e-6 && (sum(&plain, 1) - 1.0).abs() < 1e-6);
        assert!(
            (plain[0] - plain[7]).abs() < 1e-6,
            "rows of a class weigh the same: {plain:?}"
        );
        // Cells: en and zh of class 0 weigh half each.
        let cell = class_weights(&labels, &cells, 2, 1);
        let zh: f32 = cell[6..8].iter().sum();
        assert!((zh - 0.5).abs() < 1e-6, "{cell:?}");
        assert!((sum(&cell, 0) - 1.0).abs() < 1e-6 && (sum(&cell, 1) - 1.0).abs() < 1e-6);
        // A floor of 4: the zh cell counts as 4 rows, so it weighs 2/4 against en's 6/6.
        let floored = class_weights(&labels, &cells, 2, 4);
        let zh: f32 = floored[6..8].iter().sum();
        assert!((zh - 0.5 / 1.5).abs() < 1e-6, "{floored:?}");
    }
}
