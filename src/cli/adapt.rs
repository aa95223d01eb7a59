//! `earshot train-adapter`: adapt the encoder's top layers (LoRA) and train a
//! three-class sentiment head on labelled data, calibrate it, and write the
//! adapter, the sentiment head and the category centroids embedded with the
//! adapted encoder. Hours on two cores for the full data; see models/README.md.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use earshot::model::lora::{self, Example, LinearHead, LoraShape, TopLayers, TrainOptions, CATEGORY_CLASSES};
use earshot::model::train::{self, Split};
use earshot::model::{self, heads, EncoderSpec, SentimentHead};
use earshot::types::Category;
use serde_json::json;

use super::data::{read_categorised, read_labelled, Labelled};
use super::train::write_json;
use super::ModelArgs;

#[derive(Args)]
pub struct AdaptArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled JSONL (`text`, `label` neg|neu|pos, `lang`, `source`, `subset`),
    /// as written by scripts/fetch-train-data.py (repeatable: files are concatenated).
    #[arg(long, required = true)]
    data: Vec<PathBuf>,
    /// Evaluation files whose texts must never be trained on (repeatable);
    /// the held-out split of `--data` is always left out.
    #[arg(long)]
    exclude: Vec<PathBuf>,
    /// Where to write the adapter.
    #[arg(long, default_value = "models/adapters/sentiment-lora.safetensors")]
    out_adapter: PathBuf,
    /// Where to write the three-class sentiment head (the default config
    /// reads it from here, and the adapter it names).
    #[arg(long, default_value = "models/heads/sentiment.json")]
    out: PathBuf,
    /// Where to write the category centroids (embedded with the adapted
    /// encoder; `earshot train-category` refines them on real complaints).
    #[arg(long, default_value = "models/heads/category.json")]
    category_out: PathBuf,
    /// Adapt this many top layers (the ones below stay frozen).
    #[arg(long, default_value_t = 4)]
    top_layers: usize,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    alpha: f32,
    /// Projections to adapt: q, k, v, ao (attention output), fi, fo (feed-forward).
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,ao,fi,fo")]
    targets: Vec<String>,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// At most this many training items per (source/subset, language, label),
    /// chosen by a stable hash (a quarter of it for long-text subsets).
    #[arg(long, default_value_t = 1500)]
    max_per_group: usize,
    /// `PATTERN=N`: groups whose `origin/lang/label` (as in the provenance's
    /// selection counts) contains PATTERN take N instead of `--max-per-group`
    /// (repeatable; the first match wins), as for `train-exemplars`.
    #[arg(long, value_parser = super::data::parse_cap)]
    cap: Vec<(String, usize)>,
    /// Texts are cut to this many tokens for training (inference reads up
    /// to `model.max_tokens` in windows).
    #[arg(long, default_value_t = 128)]
    train_tokens: usize,
    /// Read training texts the way inference does: up to `--train-tokens`
    /// tokens, cut into windows of at most this many, the windows' embeddings
    /// averaged by their tokens. 0 (default) reads one window of
    /// `--train-tokens`. Texts that fit one window train as before.
    /// `--max-chars` still cuts first (about 4 characters per token): raise
    /// it with this, e.g. `--train-tokens 512 --train-window 128 --max-chars 2400`.
    #[arg(long, default_value_t = 0)]
    train_window: usize,
    /// Texts are cut to this many characters before tokenising.
    #[arg(long, default_value_t = 1000)]
    max_chars: usize,
    /// Learning rate of the adapter (AdamW, linear decay to a tenth).
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Learning rate of the head.
    #[arg(long, default_value_t = 1e-2)]
    head_lr: f64,
    /// Padded tokens per training step.
    #[arg(long, default_value_t = 2048)]
    batch_tokens: usize,
    /// Skip items whose `source/subset` contains this string (repeatable).
    #[arg(long)]
    skip: Vec<String>,
    /// `PATTERN=W`: multiply the loss weight of training items whose
    /// `source/subset` or `domain:<domain>` contains PATTERN by W (repeatable;
    /// every matching rule applies), e.g. `--weight domain:review=2 --weight imdb=0.5`.
    #[arg(long, value_parser = parse_weight)]
    weight: Vec<(String, f32)>,
    /// After the temperature, also fit one offset per class (neutral fixed) on
    /// the calibration split and fold it into the head's bias: corrects a
    /// training mix whose class balance differs from real traffic
    /// (models/README.md measures it). Off by default: the shipped head was
    /// trained without it.
    #[arg(long)]
    class_bias: bool,
    /// Weight of a term keeping each training text's embedding near the
    /// published encoder's (`W · mean(1 − cos)`): trades some fit on the
    /// training corpora for the geometry other languages and the category
    /// centroids rely on. 0 (default) turns it off; models/README.md says what it did.
    #[arg(long, default_value_t = 0.0)]
    anchor: f64,
    /// Labelled complaints to train a complaint-category head alongside
    /// (JSONL with `text`, `category`, optional `split`, like
    /// tests/fixtures/category_real.jsonl; repeatable). They and the category
    /// prototypes train the category only, so the adapted encoder keeps
    /// categories apart; that head is not written: `earshot train-category`
    /// refits the centroids on the adapted encoder afterwards.
    #[arg(long)]
    category_data: Vec<PathBuf>,
    /// Use only `--category-data` rows whose `split` is this value (rows
    /// without `split` are used).
    #[arg(long, default_value = "adapt")]
    category_split: String,
    /// Loss weight of one category item relative to an average sentiment
    /// item (the classes are balanced among themselves).
    #[arg(long, default_value_t = 4.0)]
    category_weight: f32,
    #[arg(long, default_value_t = 17)]
    seed: u64,
}

const LABELS: [&str; 3] = ["neg", "neu", "pos"];

fn parse_weight(s: &str) -> Result<(String, f32), String> {
    let (pattern, w) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("`{s}`: expected PATTERN=WEIGHT, e.g. domain:review=2"))?;
    let w: f32 = w
        .parse()
        .map_err(|_| format!("`{s}`: the weight `{w}` is not a number"))?;
    if pattern.is_empty() || !(w.is_finite() && w > 0.0) {
        return Err(format!("`{s}`: needs a non-empty pattern and a positive weight"));
    }
    Ok((pattern.to_string(), w))
}

/// The product of the `--weight` rules matching an item.
fn origin_weight(item: &Labelled, rules: &[(String, f32)]) -> f32 {
    let origin = item.origin();
    let domain = format!("domain:{}", item.domain.as_deref().unwrap_or("-"));
    rules
        .iter()
        .filter(|(p, _)| origin.contains(p.as_str()) || domain.contains(p.as_str()))
        .map(|(_, w)| w)
        .product()
}

fn label_index(l: &str) -> usize {
    LABELS.iter().position(|x| *x == l).unwrap_or(1)
}

/// Training and calibration items: capped per (origin, lang, label) by a
/// stable hash; held-out items and excluded texts never chosen.
fn select<'a>(
    data: &'a [Labelled],
    args: &AdaptArgs,
    excluded: &HashSet<String>,
) -> anyhow::Result<super::data::Selection<'a>> {
    let caps = super::data::GroupCaps {
        default: args.max_per_group,
        overrides: args.cap.clone(),
    };
    super::data::select_train_calibrate(data, &args.skip, excluded, &caps, |_| true)
}

/// candle allocates a fresh buffer for every tensor a training step
/// computes and frees it at once. glibc serves large buffers with mmap (its
/// threshold starts at 128 KiB and adapts) and unmaps them on free, so steps
/// page-faulted their activations in again: about a third of the training's
/// CPU time went to the kernel.
/// Serving them from the heap (up to 32 MiB, glibc's ceiling) and trimming
/// only above 1 GiB free keeps the pages: 0.74x the wall time of a small
/// training run (models/README.md), peak memory +1 %.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_buffers() {
    // SAFETY: mallopt only changes the allocator's parameters (under its
    // own lock); a refused value leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_buffers() {}

/// The frozen layers' output for each text, cut to `--max-chars` and
/// tokenised as training reads it (`None` for a text that does not
/// tokenise). Labels are left at 0 for the caller to set.
fn frozen(
    base: &model::Encoder,
    tokenizer: &model::Tokenizer,
    texts: &[&str],
    args: &AdaptArgs,
    first: usize,
) -> anyhow::Result<Vec<Option<Example>>> {
    let start = Instant::now();
    let hd = base.config().hidden;
    let mut encoded = Vec::with_capacity(texts.len());
    for text in texts {
        let cut: String = text.chars().take(args.max_chars).collect();
        match tokenizer.encode(&cut) {
            Ok(e) => encoded.push(Some(e)),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an item that does not tokenise");
                encoded.push(None);
            }
        }
    }
    let mut order: Vec<usize> = (0..encoded.len()).filter(|&i| encoded[i].is_some()).collect();
    order.sort_by_key(|&i| encoded[i].as_ref().map_or(0, |e| e.len()));
    let mut slots: Vec<Option<Example>> = (0..encoded.len()).map(|_| None).collect();
    let mut done = 0;
    for chunk in order.chunks(64) {
        // Every window is a sequence of its own, as at inference.
        let enc = |i: usize| encoded[i].as_ref().expect("only encoded texts are ordered");
        let seqs: Vec<&[u32]> = chunk.iter().flat_map(|&i| enc(i).window_ids()).collect();
        let (hidden, offsets) = base.hidden_after(&seqs, first)?;
        let mut row = 0;
        for &i in chunk {
            let n = enc(i).windows.len();
            slots[i] = Some(Example::from_frozen(&hidden, &offsets[row..=row + n], hd, 0));
            row += n;
        }
        done += chunk.len();
        if done % 2048 < 64 {
            tracing::info!(
                done,
                of = order.len(),
                secs = start.elapsed().as_secs(),
                "frozen layers"
            );
        }
    }
    Ok(slots)
}

/// Category-only training texts: the built-in prototypes plus the
/// `--category-split` rows of `--category-data` (texts of `--exclude` left
/// out), classes balanced, each item weighing `--category-weight` on average.
/// Empty without `--category-data`. Also returns the counts per
/// language/category for the provenance.
fn category_examples(
    args: &AdaptArgs,
    excluded: &HashSet<String>,
    base: &model::Encoder,
    tokenizer: &model::Tokenizer,
    first: usize,
) -> anyhow::Result<(Vec<Example>, BTreeMap<String, usize>)> {
    let mut counts = BTreeMap::new();
    if args.category_data.is_empty() {
        return Ok((Vec::new(), counts));
    }
    anyhow::ensure!(
        args.category_weight.is_finite() && args.category_weight > 0.0,
        "--category-weight {} must be a positive number (leave out --category-data to train no category)",
        args.category_weight
    );
    let index = |c: Category| {
        Category::ALL
            .iter()
            .position(|k| *k == c)
            .expect("ALL lists every category")
    };
    let mut items: Vec<(String, usize)> = model::category_prototypes()?
        .into_iter()
        .map(|(c, s)| (s, index(c)))
        .collect();
    *counts.entry("prototypes".to_string()).or_default() += items.len();
    for (item, cat) in read_categorised(&args.category_data, &args.category_split, "--category-data")? {
        if excluded.contains(&item.text) {
            *counts.entry("excluded".to_string()).or_default() += 1;
            continue;
        }
        *counts.entry(format!("{}/{}", item.lang, cat.as_str())).or_default() += 1;
        items.push((item.text, index(cat)));
    }
    let mut per_class = [0usize; CATEGORY_CLASSES];
    items.iter().for_each(|(_, c)| per_class[*c] += 1);
    let texts: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
    let mut out = Vec::with_capacity(items.len());
    for ((_, c), ex) in items.iter().zip(frozen(base, tokenizer, &texts, args, first)?) {
        if let Some(mut ex) = ex {
            // Sums to `category_weight` per item over the whole set.
            let w = args.category_weight * items.len() as f32 / (CATEGORY_CLASSES * per_class[*c]) as f32;
            ex.weight = 0.0;
            ex.category = Some((*c, w));
            out.push(ex);
        }
    }
    tracing::info!(
        items = out.len(),
        weight = args.category_weight,
        "category items train alongside"
    );
    Ok((out, counts))
}

pub fn run(args: AdaptArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    keep_freed_buffers();
    anyhow::ensure!(
        args.anchor.is_finite() && args.anchor >= 0.0,
        "--anchor {} must be a finite weight ≥ 0 (0 turns the anchor off)",
        args.anchor
    );
    let mut cfg = args.model.load_config()?;
    cfg.model.matmul = model::MatmulMode::Int8;
    super::require_model_files(&cfg)?;
    let device = candle_core::Device::Cpu;
    let base = model::load_encoder(&cfg.model, &device).context("failed to load the encoder")?;
    let layers = base.config().layers;
    let positions = base.config().max_positions;
    let tokenizer = if args.train_window == 0 {
        model::Tokenizer::from_file(&cfg.model.tokenizer, args.train_tokens.clamp(3, positions))?
    } else {
        anyhow::ensure!(
            args.train_window <= positions && args.train_window <= args.train_tokens,
            "--train-window {} must be at most the encoder's {positions} positions and at most --train-tokens {}",
            args.train_window,
            args.train_tokens
        );
        model::Tokenizer::from_file(&cfg.model.tokenizer, args.train_tokens)?
            .with_window(args.train_window)
            .context("--train-window")?
    };
    anyhow::ensure!(
        (1..=layers).contains(&args.top_layers),
        "--top-layers {} must be between 1 and the encoder's {layers} layers",
        args.top_layers
    );
    let shape = LoraShape {
        first: layers - args.top_layers,
        rank: args.rank,
        alpha: args.alpha,
        targets: args.targets.clone(),
        seed: args.seed,
    };
    let (top, base_name) = match &cfg.model.encoder {
        EncoderSpec::E5s1 { weights } => {
            let bytes = std::fs::read(weights).with_context(|| format!("failed to read {}", weights.display()))?;
            let file = model::e5s1::E5s1::parse(bytes)?;
            (TopLayers::from_e5s1(&file, &shape)?, "multilingual-e5-small")
        }
        EncoderSpec::Random { cfg: rc, seed } => (TopLayers::random(*rc, *seed, &shape)?, "random"),
    };

    let mut data = Vec::new();
    for f in &args.data {
        data.extend(read_labelled(f)?);
    }
    let mut excluded = HashSet::new();
    for f in &args.exclude {
        excluded.extend(read_labelled(f)?.into_iter().map(|i| i.text));
    }
    let (chosen, counts) = select(&data, &args, &excluded)?;
    tracing::info!(
        items = data.len(),
        chosen = chosen.len(),
        excluded = excluded.len(),
        "selected training and calibration items"
    );

    // Frozen layers once per text.
    let start = Instant::now();
    let hd = base.config().hidden;
    let texts: Vec<&str> = chosen.iter().map(|(item, _)| item.text.as_str()).collect();
    let mut examples: Vec<(Example, Split, &str, f32)> = Vec::with_capacity(chosen.len());
    for ((item, split), ex) in chosen
        .iter()
        .zip(frozen(&base, &tokenizer, &texts, &args, shape.first)?)
    {
        if let Some(mut ex) = ex {
            ex.label = label_index(&item.label);
            examples.push((ex, *split, item.lang.as_str(), origin_weight(item, &args.weight)));
        }
    }
    tracing::info!(
        texts = examples.len(),
        secs = start.elapsed().as_secs(),
        "frozen layers computed"
    );

    // Weights: each (language, label) group carries weight ∝ sqrt(size), so
    // small languages count more than their share without a few items
    // dominating; `--weight` rules then scale chosen origins or domains.
    let mut group_size: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for (ex, split, lang, _) in &examples {
        if *split == Split::Train {
            *group_size.entry((lang.to_string(), ex.label)).or_default() += 1;
        }
    }
    let (mut train_set, mut cal_set) = (Vec::new(), Vec::new());
    for (mut ex, split, lang, w) in examples {
        if split == Split::Train {
            ex.weight = w / (group_size[&(lang.to_string(), ex.label)] as f32).sqrt();
            train_set.push(ex);
        } else {
            cal_set.push(ex);
        }
    }
    anyhow::ensure!(
        !train_set.is_empty() && !cal_set.is_empty(),
        "{} training and {} calibration items after selection: --data needs labelled rows (`text`, `label`) whose texts are not all held out, excluded or skipped",
        train_set.len(),
        cal_set.len()
    );
    let mean_w = train_set.iter().map(|e| e.weight).sum::<f32>() / train_set.len().max(1) as f32;
    train_set.iter_mut().for_each(|e| e.weight /= mean_w.max(1e-12));
    let (category_items, category_counts) = category_examples(&args, &excluded, &base, &tokenizer, shape.first)?;
    train_set.extend(category_items);

    let head = LinearHead::new(hd, 3, args.seed)?;
    let category_head = LinearHead::new(hd, CATEGORY_CLASSES, args.seed.wrapping_add(1))?;
    let category_head = (!args.category_data.is_empty()).then_some(&category_head);
    let opts = TrainOptions {
        epochs: args.epochs,
        batch_tokens: args.batch_tokens,
        max_batch: 64,
        lr: args.lr,
        head_lr: args.head_lr,
        weight_decay: 0.01,
        seed: args.seed,
        anchor: args.anchor,
    };
    if args.anchor > 0.0 {
        // lora::train embeds every training text once before the first step
        // (no progress lines meanwhile: a few minutes on two cores).
        tracing::info!(
            texts = train_set.len(),
            "anchor: embedding the training texts with the published encoder first"
        );
    }
    let start = Instant::now();
    let mut ema = None::<(f32, f32)>;
    // The remaining time is paced by the steps alone: the anchor pass
    // before the first step would inflate it several-fold.
    let mut first_step = None::<Instant>;
    lora::train(&top, &head, category_head, &train_set, &opts, |p| {
        let (loss, drift) = ema.map_or((p.loss, p.drift), |(l, d)| {
            (0.98 * l + 0.02 * p.loss, 0.98 * d + 0.02 * p.drift)
        });
        ema = Some((loss, drift));
        let paced = *first_step.get_or_insert_with(Instant::now);
        if p.step % 25 == 0 || p.step == p.steps {
            let secs = start.elapsed().as_secs_f64();
            let per_step = paced.elapsed().as_secs_f64() / (p.step - 1).max(1) as f64;
            // `steps` is counted on the first epoch's batches; a later epoch
            // can cut one or two more, so the last steps may pass it.
            let eta = per_step * p.steps.saturating_sub(p.step) as f64;
            tracing::info!(
                epoch = p.epoch + 1,
                step = p.step,
                steps = p.steps,
                loss,
                drift,
                secs = secs as u64,
                eta_min = (eta / 60.0).round() as u64,
                "training"
            );
        }
    })?;
    let train_secs = start.elapsed().as_secs();

    // Calibration: one temperature on the calibration split.
    let (weights, bias) = head.export()?;
    let mut classes = heads::ThreeClass { weights, bias };
    let cal_logits: Vec<[f32; 3]> = lora::embed(&top, &cal_set, 8192)?
        .iter()
        .map(|e| classes.logits(e))
        .collect();
    let cal_labels: Vec<usize> = cal_set.iter().map(|e| e.label).collect();
    let (temperature, cal_nll) = train::fit_temperature_multiclass(&cal_logits, &cal_labels);
    let cal_acc = cal_logits
        .iter()
        .zip(&cal_labels)
        .filter(|(l, &y)| (0..3).max_by(|&a, &c| l[a].total_cmp(&l[c])) == Some(y))
        .count() as f64
        / cal_labels.len().max(1) as f64;
    tracing::info!(temperature, cal_nll, cal_acc, "calibrated");
    let mut calibration = json!({ "temperature": temperature, "log_loss": cal_nll, "accuracy": cal_acc });
    if args.class_bias {
        // softmax(z/T + b) = softmax((z + b·T)/T): folded into the bias.
        let (b, nll) = train::fit_class_bias(&cal_logits, &cal_labels, temperature);
        for (bias, off) in classes.bias.iter_mut().zip(b) {
            *bias += off * temperature;
        }
        tracing::info!(neg = b[0], pos = b[2], cal_nll = nll, "class offsets fitted");
        calibration["class_bias"] = json!(b);
        calibration["log_loss_with_class_bias"] = json!(nll);
    }

    let options = json!({
        "top_layers": args.top_layers, "rank": args.rank, "alpha": args.alpha, "targets": args.targets,
        "epochs": args.epochs, "max_per_group": args.max_per_group, "train_tokens": args.train_tokens,
        "caps": args.cap.iter().map(|(p, n)| format!("{p}={n}")).collect::<Vec<_>>(),
        "train_window": args.train_window,
        "lr": args.lr, "head_lr": args.head_lr, "batch_tokens": args.batch_tokens, "seed": args.seed,
        "skip": args.skip, "exclude": args.exclude, "class_bias": args.class_bias, "anchor": args.anchor,
        "weight": args.weight.iter().map(|(p, w)| format!("{p}={w}")).collect::<Vec<_>>(),
        "category_data": args.category_data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "category_split": args.category_split, "category_weight": args.category_weight,
    });
    let provenance = json!({
        "base": base_name,
        "data": args.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "options": options,
        "train_items": train_set.len(),
        "category_items": category_counts,
        "calibration_items": cal_set.len(),
        "train_seconds": train_secs,
    });
    if let Some(dir) = args.out_adapter.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    top.to_adapter(provenance.clone())?
        .save(&args.out_adapter)
        .with_context(|| format!("failed to write {}", args.out_adapter.display()))?;
    let adapter = model::adapter::Adapter::load(&args.out_adapter)?;

    let name = format!("{base_name}+lora{}", &adapter.sha256[..8]);
    let head = SentimentHead {
        format: heads::SENTIMENT_FORMAT_3.into(),
        encoder: name.clone(),
        dim: hd,
        weights: Vec::new(),
        bias: 0.0,
        temperature,
        neutral_delta: 0.0,
        classes: Some(classes),
        adapter_sha256: Some(adapter.sha256.clone()),
        exemplars: None,
        provenance: json!({
            "adapter": args.out_adapter.display().to_string(),
            "training": provenance,
            "selection": counts,
            "calibration": calibration,
        }),
    };
    write_json(&args.out, &head)?;

    let mut full = cfg.model.clone();
    full.matmul = model::MatmulMode::Int8;
    let encoder = model::load_encoder_adapted(&full, Some(&adapter), &device)?;
    let full_tok = model::load_tokenizer(&cfg.model)?;
    let mut category = model::build_category_head(&full_tok, &encoder, &name)?;
    category.adapter_sha256 = Some(adapter.sha256.clone());
    category.provenance["adapter"] = json!(args.out_adapter.display().to_string());
    write_json(&args.category_out, &category)?;
    tracing::info!(
        adapter = %args.out_adapter.display(),
        sentiment = %args.out.display(),
        category = %args.category_out.display(),
        "adapter and heads written"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(source: &str, domain: Option<&str>) -> Labelled {
        serde_json::from_value(json!({
            "text": "t", "label": "neg", "source": source, "subset": "s", "domain": domain,
        }))
        .unwrap()
    }

    #[test]
    fn weight_rules_multiply_over_origin_and_domain() {
        let rules = vec![
            parse_weight("domain:review=2").unwrap(),
            parse_weight("imdb=0.5").unwrap(),
            parse_weight("a=b=3").unwrap(),
        ];
        assert_eq!(rules[2], ("a=b".to_string(), 3.0));
        assert_eq!(origin_weight(&item("mhlabs/imdb", Some("review")), &rules), 1.0);
        assert_eq!(origin_weight(&item("amazon", Some("review")), &rules), 2.0);
        assert_eq!(origin_weight(&item("tweets", Some("post")), &rules), 1.0);
        assert_eq!(origin_weight(&item("tweets", None), &rules), 1.0);
        for bad in ["imdb", "=2", "imdb=x", "imdb=0", "imdb=-1"] {
            assert!(parse_weight(bad).is_err(), "{bad}");
        }
    }
}
