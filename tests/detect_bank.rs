//! Text bank for the detector's scenario harness (shared by `tests/detect.rs`
//! and `benches/detect.rs`).
//!
//! Texts: `tests/fixtures/dev_reviews.jsonl` (positive / negative, six
//! languages), `tests/fixtures/category_eval.jsonl` (complaints; its
//! logistics, after-sales and product-quality ones also feed the incidents
//! of those kinds), `examples/reviews.jsonl`
//! (neutral 3-star texts and the X2 overheating reviews), plus generated
//! variants: battery-overheating complaints (opener × symptom × consequence
//! per language, so a real wave has similar but not identical texts) and
//! near-duplicate spam.
//!
//! Scores: every unique text is embedded once with the REAL encoder
//! (multilingual-e5-small from `models/`); the category comes from the real
//! prototype category head. Sentiment comes from the default head
//! `models/heads/sentiment.json` (with the encoder adapter it names merged,
//! as the engine loads it) when it exists; otherwise from the texts'
//! labels (documented fallback: the head is trained by `earshot train-head`
//! in another issue). The result is cached as JSON under `.cache/` keyed by
//! a hash of the texts, the encoder files' sizes and the heads' and
//! adapter's contents.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use earshot::model::{self, BatchLimits, CategoryHead, SentimentHead, Tokenizer, PAD_ID};
use earshot::types::{Scored, SentimentProbs};
use earshot_scenario::{Bank, BankText, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    // The checkout the tests run in (cargo sets this at run time too); the
    // compile-time path is only a fallback, because a target dir shared
    // between clones can reuse a binary built in another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

#[derive(Deserialize)]
struct Row {
    text: String,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    rating: Option<f32>,
    #[serde(default)]
    id: Option<String>,
}

fn rows(path: &Path) -> Vec<Row> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture row"))
        .collect()
}

fn battery_variants() -> Vec<(String, String)> {
    type Parts = (&'static str, [&'static str; 4], [&'static str; 5], [&'static str; 4]);
    let langs: [Parts; 6] = [
        (
            "en",
            [
                "My X2 power bank",
                "The X2 battery pack I bought",
                "Our new X2 charger",
                "This X2 unit",
            ],
            [
                "got dangerously hot while charging",
                "overheated and started to swell",
                "became too hot to touch after ten minutes",
                "smelled like burning plastic when plugged in",
                "heated up so much the case warped",
            ],
            [
                "I am scared it will catch fire.",
                "Please recall it before someone gets hurt.",
                "I unplugged it and threw it outside.",
                "This is a real safety hazard.",
            ],
        ),
        (
            "de",
            [
                "Meine X2 Powerbank",
                "Der X2 Akku",
                "Das neue X2 Ladegerät",
                "Dieses X2 Gerät",
            ],
            [
                "wurde beim Laden gefährlich heiß",
                "hat sich überhitzt und ist aufgebläht",
                "war nach zehn Minuten zu heiß zum Anfassen",
                "roch beim Laden nach verbranntem Plastik",
                "wurde so heiß, dass sich das Gehäuse verformt hat",
            ],
            [
                "Ich habe Angst, dass sie brennt.",
                "Bitte zurückrufen, bevor jemand verletzt wird.",
                "Ich habe sie sofort ausgesteckt.",
                "Das ist ein echtes Sicherheitsrisiko.",
            ],
        ),
        (
            "fr",
            [
                "Ma batterie X2",
                "La batterie externe X2",
                "Le nouveau chargeur X2",
                "Cet appareil X2",
            ],
            [
                "a chauffé dangereusement pendant la charge",
                "a surchauffé et a gonflé",
                "était trop chaude pour la tenir après dix minutes",
                "sentait le plastique brûlé en charge",
                "a tellement chauffé que le boîtier s'est déformé",
            ],
            [
                "J'ai peur qu'elle prenne feu.",
                "Rappelez ce produit avant un accident.",
                "Je l'ai débranchée tout de suite.",
                "C'est un vrai danger.",
            ],
        ),
        (
            "es",
            [
                "Mi batería X2",
                "La batería externa X2",
                "El nuevo cargador X2",
                "Esta unidad X2",
            ],
            [
                "se calentó peligrosamente al cargar",
                "se sobrecalentó y se hinchó",
                "quemaba al tocarla a los diez minutos",
                "olía a plástico quemado al enchufarla",
                "se calentó tanto que la carcasa se deformó",
            ],
            [
                "Tengo miedo de que se incendie.",
                "Retírenla antes de que alguien se lastime.",
                "La desenchufé enseguida.",
                "Es un peligro real.",
            ],
        ),
        (
            "zh",
            ["我的X2充电宝", "买的X2移动电源", "新的X2充电器", "这个X2"],
            [
                "充电时烫得吓人",
                "过热而且鼓包了",
                "充了十分钟就烫手",
                "充电时有烧焦塑料味",
                "热到外壳都变形了",
            ],
            ["担心会起火。", "请尽快召回。", "我马上拔掉了。", "太危险了。"],
        ),
        (
            "ja",
            [
                "私のX2モバイルバッテリー",
                "購入したX2バッテリー",
                "新しいX2充電器",
                "このX2",
            ],
            [
                "が充電中に異常に熱くなった",
                "が過熱して膨らんだ",
                "が十分で触れないほど熱くなった",
                "から充電中に焦げた臭いがした",
                "が熱で変形した",
            ],
            [
                "火事にならないか怖いです。",
                "早くリコールしてください。",
                "すぐにコンセントを抜きました。",
                "本当に危険です。",
            ],
        ),
    ];
    let mut out = Vec::new();
    for (lang, a, b, c) in langs {
        for (i, x) in a.iter().enumerate() {
            for (j, y) in b.iter().enumerate() {
                for (k, z) in c.iter().enumerate() {
                    // 40 of the 80 combinations per language.
                    if (i + j + k) % 2 == 0 {
                        let sep = if matches!(lang, "zh" | "ja") { "" } else { " " };
                        let body = if lang == "ja" {
                            format!("{x}{y}。")
                        } else {
                            format!("{x}{sep}{y}.")
                        };
                        let body = if lang == "zh" { format!("{x}{y}，") } else { body };
                        out.push((lang.to_string(), format!("{body}{sep}{z}")));
                    }
                }
            }
        }
    }
    out
}

/// Fake reviews: stock phrases with small variations (every other one in
/// capitals, a different tail each).
fn variants(base: &[&str], tails: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for b in base {
        for (i, t) in tails.iter().enumerate() {
            let s = if i % 2 == 0 { b.to_string() } else { b.to_uppercase() };
            out.push(format!("{s}{t}"));
        }
    }
    out
}

fn spam_variants() -> Vec<String> {
    variants(
        &[
            "Worst sneakers ever, do not buy, total scam",
            "Terrible shoes fell apart, do not buy, total scam",
        ],
        &["!!!", "!!", ".", " 0/10", " 1 star", "!!! 😡", " - avoid", "!!!!"],
    )
}

/// Bought 5-star reviews.
fn praise_variants() -> Vec<String> {
    variants(
        &[
            "Best power bank I have ever owned, five stars, highly recommend",
            "Amazing power bank, charges super fast, five stars, highly recommend",
        ],
        &["!!!", "!", ".", " 10/10", " 5 stars", "!!! 😍", " - must buy", "!!!!"],
    )
}

/// (role, lang, text, label) of every bank text, deduplicated, stable order.
pub fn bank_texts() -> Vec<(Role, String, String, &'static str)> {
    let mut out: Vec<(Role, String, String, &'static str)> = Vec::new();
    for r in rows(&root().join("tests/fixtures/dev_reviews.jsonl")) {
        let lang = r.lang.clone().unwrap_or_default();
        match r.label.as_deref() {
            Some("pos") => out.push((Role::Positive, lang, r.text, "pos")),
            _ => {
                if r.category.as_deref() == Some("logistics") {
                    out.push((Role::Logistics, lang.clone(), r.text.clone(), "neg"));
                }
                out.push((Role::Negative, lang, r.text, "neg"));
            }
        }
    }
    for r in rows(&root().join("tests/fixtures/category_eval.jsonl")) {
        let lang = r.lang.clone().unwrap_or_default();
        let role = match r.category.as_deref() {
            Some("logistics") => Some(Role::Logistics),
            Some("after_sales") => Some(Role::AfterSales),
            Some("product_quality") => Some(Role::Quality),
            _ => None,
        };
        if let Some(role) = role {
            out.push((role, lang.clone(), r.text.clone(), "neg"));
        }
        out.push((Role::Negative, lang, r.text, "neg"));
    }
    for r in rows(&root().join("examples/reviews.jsonl")) {
        let id: u32 =
            r.id.as_deref()
                .and_then(|s| s.trim_start_matches('r').parse().ok())
                .unwrap_or(0);
        let lang = earshot::model::lang::detect(&r.text);
        if (1..=8).contains(&id) {
            out.push((Role::Battery, lang, r.text, "neg"));
        } else if r.rating == Some(3.0) {
            out.push((Role::Neutral, lang, r.text, "neu"));
        }
    }
    for (lang, text) in battery_variants() {
        out.push((Role::Battery, lang, text, "neg"));
    }
    for text in spam_variants() {
        out.push((Role::Spam, "en".into(), text, "neg"));
    }
    for text in praise_variants() {
        out.push((Role::FakePraise, "en".into(), text, "pos"));
    }
    out
}

#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    scored: Vec<Scored>,
}

fn label_probs(label: &str) -> SentimentProbs {
    match label {
        "pos" => SentimentProbs {
            negative: 0.03,
            neutral: 0.07,
            positive: 0.90,
        },
        "neu" => SentimentProbs {
            negative: 0.10,
            neutral: 0.80,
            positive: 0.10,
        },
        _ => SentimentProbs {
            negative: 0.90,
            neutral: 0.07,
            positive: 0.03,
        },
    }
}

/// Where the sentiment came from, for the report.
pub fn sentiment_source() -> &'static str {
    if root().join("models/heads/sentiment.json").exists() {
        "real sentiment head (models/heads/sentiment.json)"
    } else {
        "fixture labels (models/heads/sentiment.json not trained yet)"
    }
}

/// The bank scored with the real model (cached on disk after the first run).
pub fn real_bank() -> Bank {
    let texts = bank_texts();
    let models = root().join("models");
    let weights = models.join("e5-small-q4.bin");
    let tok_path = models.join("tokenizer.json");
    let head_path = models.join("heads/sentiment.json");
    assert!(
        weights.exists() && tok_path.exists(),
        "models/ is missing: run `bash scripts/setup.sh`"
    );
    let mut h = Sha256::new();
    for (role, lang, text, label) in &texts {
        h.update(format!("{role:?}\t{lang}\t{text}\t{label}\n"));
    }
    let adapter_path = models.join("adapters/sentiment-lora.safetensors");
    let cat_path = models.join("heads/category.json");
    // Sizes of the big files; contents of the small ones (a retrained
    // adapter has the same size as the one it replaces).
    for p in [&weights, &tok_path] {
        h.update(format!("{}", std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    }
    for p in [&head_path, &adapter_path, &cat_path] {
        h.update(std::fs::read(p).unwrap_or_default());
    }
    let key = format!("{:x}", h.finalize());
    let cache = root().join(".cache").join(format!("detect-bank-{}.json", &key[..16]));
    let scored: Vec<Scored> = match std::fs::read(&cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cached>(&b).ok())
    {
        Some(c) if c.key == key => c.scored,
        _ => {
            let cfg = earshot::config::Config::default_in(&root());
            let tokenizer = Tokenizer::from_file(&tok_path, 512).expect("tokenizer");
            let head = head_path
                .exists()
                .then(|| SentimentHead::load(&head_path).expect("sentiment head"));
            // The encoder the head was trained on (its adapter merged, if any).
            let adapter = head
                .as_ref()
                .and_then(|h| model::head_adapter(&cfg.model, h, &head_path).expect("adapter"));
            let encoder =
                model::load_encoder_adapted(&cfg.model, adapter.as_ref(), &candle_core::Device::Cpu).expect("encoder");
            // The shipped category head when it belongs to this encoder (as the
            // engine loads it), else centroids of the built-in prototypes.
            let category = match CategoryHead::load(&cat_path) {
                Ok(h) if h.adapter_sha256 == adapter.as_ref().map(|a| a.sha256.clone()) => h,
                _ => model::build_category_head(&tokenizer, &encoder, "multilingual-e5-small").expect("category head"),
            };
            let refs: Vec<&str> = texts.iter().map(|t| t.2.as_str()).collect();
            let limits = BatchLimits {
                max_tokens: 4096,
                max_batch: 64,
            };
            let embs = model::embed_texts(&tokenizer, &encoder, &refs, limits, PAD_ID, |_| {}).expect("embed");
            let scored: Vec<Scored> = texts
                .iter()
                .zip(embs)
                .map(|((_, lang, text, label), emb)| {
                    let probs = head.as_ref().map_or_else(|| label_probs(label), |h| h.probs(&emb));
                    let (cat, cs) = category.predict(&emb);
                    Scored {
                        sentiment: probs.label(),
                        probs,
                        category: cat,
                        category_score: cs,
                        lang: if lang.is_empty() {
                            model::lang::detect(text)
                        } else {
                            lang.clone()
                        },
                        tokens: tokenizer.encode(text).map(|e| e.len()).unwrap_or(0),
                        truncated: false,
                        embedding: emb,
                    }
                })
                .collect();
            if let Some(dir) = cache.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let _ = std::fs::write(
                &cache,
                serde_json::to_vec(&Cached {
                    key,
                    scored: scored.clone(),
                })
                .unwrap_or_default(),
            );
            scored
        }
    };
    Bank {
        texts: texts
            .into_iter()
            .zip(scored)
            .map(|((role, lang, text, _), scored)| BankText {
                role,
                lang,
                text,
                scored,
            })
            .collect(),
    }
}
