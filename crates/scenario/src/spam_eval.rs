//! Spam-filter evaluation on real review texts (issue 15).
//!
//! A six-day stream over 100 products (80 written in Chinese, 20 in
//! English) whose texts are real corpus lines drawn with the corpus's own
//! repetition, plus a share of short stock phrases drawn by Zipf rank (real
//! shops are full of "性价比高" and "物超所值"). Genuine authors have their own
//! ids or none; a few regulars review several products a day. Sentiment is
//! the corpus label with a probability (the classifier errs sometimes), the
//! rating follows the label, embeddings are empty.
//!
//! On top: injected fake waves of several shapes (copy-paste 1-star bombs
//! from few accounts, paraphrased templates from many new accounts, bought
//! 5-star praise, rating/text contradictions) and genuine bursts (many
//! customers posting the same short complaint, a retweet-like identical text
//! without author ids, a key whose every item is one identical text).
//! [`run_spam_eval`] streams it through the detector and measures per shape:
//! `review_bombing` signals and whether a fake wave was caught, items kept
//! out of (suspected) or taken back out of (retracted) the statistics, and
//! whether a genuine wave still raised its crisis signal.
//!
//! Pure and seeded, like the rest of the crate; the corpus is read by the
//! caller (`scripts/spam-eval.sh`).

use std::collections::{BTreeMap, HashMap};

use earshot_core::rng::Rng;
use earshot_core::types::{
    Category, Dim, Event, EventTime, KeyDims, Scored, ScoredEvent, Sentiment, SentimentProbs, Signal, SignalKind,
};
use earshot_detect::{DetectConfig, DetectError, Detector, Suspect};

use crate::{DAY, HOUR, MINUTE, T0};

/// A corpus label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Neg,
    Neu,
    Pos,
}

/// One corpus line.
#[derive(Debug, Clone)]
pub struct CorpusText {
    pub label: Label,
    pub lang: String,
    pub text: String,
}

/// Corpus lines in corpus order, repeats kept.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub texts: Vec<CorpusText>,
}

impl Corpus {
    /// Parses `label\tlang\tsubset\ttext` lines (the output of
    /// `scripts/fetch-spam-eval-data.py`); malformed lines are skipped.
    pub fn parse_tsv(data: &str) -> Corpus {
        let texts = data
            .lines()
            .filter_map(|line| {
                let mut it = line.splitn(4, '\t');
                let label = match it.next()? {
                    "neg" => Label::Neg,
                    "neu" => Label::Neu,
                    "pos" => Label::Pos,
                    _ => return None,
                };
                let lang = it.next()?.to_string();
                let _subset = it.next()?;
                let text = it.next()?.trim().to_string();
                (!text.is_empty()).then_some(CorpusText { label, lang, text })
            })
            .collect();
        Corpus { texts }
    }
}

/// Normalised characters at most for a "short stock phrase".
const SHORT_CHARS: usize = 8;
/// Share of background items that are short stock phrases.
const SHORT_SHARE: f64 = 0.2;

/// Texts of one (language, label): every line (repeats kept), and the short
/// ones by Zipf rank of their corpus frequency.
#[derive(Debug, Default)]
struct Pool {
    all: Vec<String>,
    short: Vec<String>,
    /// Cumulative Zipf weights of `short`.
    short_cum: Vec<f64>,
}

impl Pool {
    fn build(lines: Vec<String>) -> Pool {
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for l in &lines {
            if earshot_detect::spam::normalise(l).chars().count() <= SHORT_CHARS {
                *counts.entry(l.as_str()).or_insert(0) += 1;
            }
        }
        let mut short: Vec<(&str, u32)> = counts.into_iter().collect();
        short.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let short: Vec<String> = short.into_iter().map(|(t, _)| t.to_string()).collect();
        let mut acc = 0.0;
        let short_cum = (0..short.len())
            .map(|r| {
                acc += 1.0 / (r as f64 + 1.0);
                acc
            })
            .collect();
        Pool {
            all: lines,
            short,
            short_cum,
        }
    }

    fn draw(&self, rng: &mut Rng) -> Option<&str> {
        if !self.short.is_empty() && rng.uniform() < SHORT_SHARE {
            let total = *self.short_cum.last()?;
            let x = rng.uniform() * total;
            let i = self.short_cum.partition_point(|&c| c <= x).min(self.short.len() - 1);
            return Some(&self.short[i]);
        }
        if self.all.is_empty() {
            None
        } else {
            Some(&self.all[rng.below(self.all.len())])
        }
    }
}

/// What an item is: background, or part of one injected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    Background,
    /// One 1-star text pasted by 6 accounts, 40 items in 45 min (Chinese).
    CopyPasteBomb,
    /// The same in English, 30 items from 5 accounts.
    CopyPasteBombEn,
    /// A 1-star template with one or two phrases swapped per item, 40 items
    /// in an hour, each from a new account.
    ParaphrasedTemplate,
    /// A 5-star template lightly varied, 30 items in 2 h from 10 accounts.
    BoughtPraise,
    /// 1-star ratings on glowing texts, 20 items in 45 min, new accounts.
    Contradictions,
    /// Genuine: 60 customers in 2 h posting short complaints ("不好吃",
    /// "太差了"...), half with ids, half without.
    ShortComplaintBurst,
    /// Genuine: 80 copies of one complaint in 2 h, no author ids (retweets).
    RetweetBurst,
    /// Genuine: a key whose every item is one identical complaint without
    /// author ids, 6 per hour, five times that for 3 h on day 5.
    TweetVolumeKey,
}

impl Shape {
    pub const ALL: [Shape; 9] = [
        Shape::Background,
        Shape::CopyPasteBomb,
        Shape::CopyPasteBombEn,
        Shape::ParaphrasedTemplate,
        Shape::BoughtPraise,
        Shape::Contradictions,
        Shape::ShortComplaintBurst,
        Shape::RetweetBurst,
        Shape::TweetVolumeKey,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Background => "background",
            Shape::CopyPasteBomb => "fake: copy-paste 1-star (zh, 6 accts)",
            Shape::CopyPasteBombEn => "fake: copy-paste 1-star (en, 5 accts)",
            Shape::ParaphrasedTemplate => "fake: paraphrased template, new accts",
            Shape::BoughtPraise => "fake: bought 5-star praise (10 accts)",
            Shape::Contradictions => "fake: 1-star on praise text",
            Shape::ShortComplaintBurst => "genuine: short complaints burst",
            Shape::RetweetBurst => "genuine: identical text, no ids",
            Shape::TweetVolumeKey => "genuine: one-text key, volume spike",
        }
    }

    pub fn is_fake(self) -> bool {
        matches!(
            self,
            Shape::CopyPasteBomb
                | Shape::CopyPasteBombEn
                | Shape::ParaphrasedTemplate
                | Shape::BoughtPraise
                | Shape::Contradictions
        )
    }

    /// Whether the wave should raise a crisis signal on its product.
    fn expects_crisis(self) -> bool {
        matches!(
            self,
            Shape::ShortComplaintBurst | Shape::RetweetBurst | Shape::TweetVolumeKey
        )
    }
}

/// Where and when one shape was injected.
#[derive(Debug, Clone)]
struct Wave {
    shape: Shape,
    brand: String,
    product: String,
    start: EventTime,
    end: EventTime,
}

/// One row of the report: a shape over all its items (and waves).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapeRow {
    pub items: u64,
    /// Items kept out of the statistics when they arrived.
    pub suspected: u64,
    /// ... of which as contradictions (each on its own, without a wave).
    pub contradictions: u64,
    /// Items taken back out later.
    pub retracted: u64,
    pub waves: u32,
    /// Waves with a `review_bombing` signal on their product during the
    /// wave (or within an hour after).
    pub flagged: u32,
    /// Waves with a crisis signal on their product during the wave (or within
    /// two hours after).
    pub crisis: u32,
    /// `review_bombing` signals on the wave's product in that time.
    pub rb_signals: u32,
}

/// The outcome of one evaluation run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpamEvalReport {
    pub rows: BTreeMap<Shape, ShapeRow>,
    /// `review_bombing` signals, and those whose quotes are mostly injected
    /// fakes, by rule (`near_duplicates`, `author`, `contradictions`).
    pub rb_by_reason: BTreeMap<String, (u32, u32)>,
    pub events: u64,
}

impl SpamEvalReport {
    /// All review-bombing signals and the true ones.
    pub fn rb_totals(&self) -> (u32, u32) {
        self.rb_by_reason.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, other: &SpamEvalReport) {
        for (s, r) in &other.rows {
            let row = self.rows.entry(*s).or_default();
            row.items += r.items;
            row.suspected += r.suspected;
            row.contradictions += r.contradictions;
            row.retracted += r.retracted;
            row.waves += r.waves;
            row.flagged += r.flagged;
            row.crisis += r.crisis;
            row.rb_signals += r.rb_signals;
        }
        for (k, (a, b)) in &other.rb_by_reason {
            let e = self.rb_by_reason.entry(k.clone()).or_default();
            e.0 += a;
            e.1 += b;
        }
        self.events += other.events;
    }
}

fn daily(local_hour: f64) -> f64 {
    let x = (local_hour - 20.0) / 24.0 * std::f64::consts::TAU;
    (1.0 + 0.7 * x.cos()).max(0.15)
}

struct Item {
    t: EventTime,
    ev: ScoredEvent,
    shape: Shape,
}

struct Gen {
    rng: Rng,
    items: Vec<Item>,
    n: u64,
}

/// The classifier's view of a text of `label`: right with probability 0.85,
/// neutral 0.10, the opposite 0.05; confidence 0.55–0.98.
fn classify(rng: &mut Rng, label: Label) -> (Sentiment, f32) {
    let u = rng.uniform();
    let s = match label {
        Label::Neu if u < 0.85 => Sentiment::Neutral,
        Label::Neu if u < 0.925 => Sentiment::Negative,
        Label::Neu => Sentiment::Positive,
        Label::Neg if u < 0.85 => Sentiment::Negative,
        Label::Pos if u < 0.85 => Sentiment::Positive,
        _ if u < 0.95 => Sentiment::Neutral,
        Label::Neg => Sentiment::Positive,
        Label::Pos => Sentiment::Negative,
    };
    (s, 0.55 + 0.43 * rng.uniform() as f32)
}

fn scored(rng: &mut Rng, sentiment: Sentiment, conf: f32, lang: &str) -> Scored {
    let rest = (1.0 - conf) / 2.0;
    let probs = match sentiment {
        Sentiment::Negative => SentimentProbs {
            negative: conf,
            neutral: rest,
            positive: rest,
        },
        Sentiment::Neutral => SentimentProbs {
            negative: rest,
            neutral: conf,
            positive: rest,
        },
        Sentiment::Positive => SentimentProbs {
            negative: rest,
            neutral: rest,
            positive: conf,
        },
    };
    Scored {
        sentiment,
        probs,
        category: Category::ALL[rng.below(Category::ALL.len())],
        category_score: 0.8,
        lang: lang.to_string(),
        tokens: 32,
        truncated: false,
        embedding: Vec::new(),
    }
}

/// A star rating for a text of `label` (present 9 times in 10).
fn rating_for(rng: &mut Rng, label: Label) -> Option<f32> {
    if rng.uniform() >= 0.9 {
        return None;
    }
    let u = rng.uniform();
    Some(match label {
        Label::Neg if u < 0.6 => 1.0,
        Label::Neg if u < 0.9 => 2.0,
        Label::Pos if u < 0.6 => 5.0,
        Label::Pos if u < 0.95 => 4.0,
        _ => 3.0,
    })
}

/// One item as the generator hands it over.
struct Spec<'a> {
    t: EventTime,
    brand: &'a str,
    product: &'a str,
    lang: &'a str,
    text: String,
    author: Option<String>,
    rating: Option<f32>,
    sentiment: Sentiment,
    conf: f32,
    shape: Shape,
}

impl Gen {
    fn push(&mut self, s: Spec<'_>) {
        self.n += 1;
        let region = if s.lang == "zh" { "cn" } else { "us" };
        let scored = scored(&mut self.rng, s.sentiment, s.conf, s.lang);
        let ev = ScoredEvent {
            event: Event {
                id: format!("e{:07}", self.n),
                key: KeyDims {
                    brand: Some(s.brand.into()),
                    product: Some(s.product.into()),
                    sku: None,
                    region: Some(region.into()),
                    channel: None,
                },
                text: s.text,
                lang: Some(s.lang.into()),
                rating: s.rating,
                author: s.author,
                event_time: s.t,
                replied_at: Some(s.t + HOUR),
                reply_to: None,
                pos: None,
            },
            scored,
        };
        self.items.push(Item {
            t: s.t,
            ev,
            shape: s.shape,
        });
    }

    fn fresh_author(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.rng.next_u64() % 1_000_000_000)
    }
}

/// Genuine short complaints of the burst (the words of the report).
const SHORT_COMPLAINTS: [&str; 6] = [
    "不好吃",
    "太难吃了",
    "太差了",
    "不好吃，不会再买了",
    "难吃",
    "差评，太差了",
];
/// The retweeted complaint.
const RETWEET: &str = "下单一个星期了还没收到货，物流信息一直不更新，客服电话也打不通，怎么回事？";
/// The one text of the tweet-volume key.
const TWEET: &str = "我的订单一直没有送到，到底什么时候能到？";

/// Paraphrase slots: (default, alternatives).
const PARAPHRASE: [&[&str]; 5] = [
    &[
        "这个充电宝质量太差了",
        "这款充电宝质量太差了",
        "这个充电宝的质量真的太差了",
    ],
    &["用了两天就坏了", "才用了两天就坏了", "用了没两天就坏了"],
    &["充电特别慢还发烫", "充电非常慢而且发烫", "充电特别慢还很烫"],
    &["客服根本不理人", "找客服根本没人理", "客服根本不管"],
    &["大家千万别买", "大家千万不要买", "劝大家千万别买"],
];
const PRAISE: [&[&str]; 5] = [
    &["宝贝收到了非常满意", "宝贝已经收到非常满意", "东西收到了非常满意"],
    &["做工精细质量很好", "做工很精细质量非常好", "做工精细质量超好"],
    &["物流速度超级快", "物流速度非常快", "快递速度超级快"],
    &["客服态度也很好", "客服服务态度也很好", "卖家态度也很好"],
    &["强烈推荐大家购买", "强烈推荐大家来买", "推荐大家购买"],
];

/// The template with one or two slots swapped for an alternative.
fn paraphrase(rng: &mut Rng, slots: &[&[&str]]) -> String {
    let a = rng.below(slots.len());
    let b = if rng.uniform() < 0.5 { rng.below(slots.len()) } else { a };
    let parts: Vec<&str> = slots
        .iter()
        .enumerate()
        .map(|(i, opts)| {
            if i == a || i == b {
                opts[rng.below(opts.len())]
            } else {
                opts[0]
            }
        })
        .collect();
    format!("{}！", parts.join("，"))
}

/// Suffixes a copy-paster adds (or not).
const SUFFIXES: [&str; 4] = ["", "！！", "。。。", "!!!"];

/// Generates the stream for `seed` (sorted by event time) and the waves.
fn generate(corpus: &Corpus, seed: u64, days: i64) -> (Vec<Item>, Vec<Wave>) {
    let mut by: BTreeMap<(String, Label), Vec<String>> = BTreeMap::new();
    for c in &corpus.texts {
        by.entry((c.lang.clone(), c.label)).or_default().push(c.text.clone());
    }
    let pools: BTreeMap<(String, Label), Pool> = by.into_iter().map(|(k, v)| (k, Pool::build(v))).collect();
    let mut g = Gen {
        rng: Rng::new(seed),
        items: Vec::new(),
        n: 0,
    };
    // 4 Chinese brands and 1 English one, 20 products each.
    let mut products: Vec<(String, String, &str, f64, f64)> = Vec::new();
    for (b, lang) in [
        ("Hema", "zh"),
        ("Lanshan", "zh"),
        ("Jinhe", "zh"),
        ("Qiaomu", "zh"),
        ("Northwind", "en"),
    ] {
        for p in 0..20 {
            let rate = (30f64.ln() * g.rng.uniform()).exp();
            let neg = 0.1 + 0.2 * g.rng.uniform();
            products.push((b.to_string(), format!("P{p:02}"), lang, rate, neg));
        }
    }
    // Products of the waves: distinct, at least 3 items/h, chosen by seed.
    let mut zh: Vec<usize> = (0..80).filter(|&i| products[i].3 >= 3.0).collect();
    let mut en: Vec<usize> = (80..100).filter(|&i| products[i].3 >= 3.0).collect();
    for v in [&mut zh, &mut en] {
        for i in (1..v.len()).rev() {
            let j = g.rng.below(i + 1);
            v.swap(i, j);
        }
    }
    let at = |day: i64, hour: i64| T0 + day * DAY + hour * HOUR;
    let plan = [
        (Shape::CopyPasteBomb, zh[0], at(3, 10), 45 * MINUTE),
        (Shape::ParaphrasedTemplate, zh[1], at(3, 16), HOUR),
        (Shape::BoughtPraise, zh[2], at(4, 2), 2 * HOUR),
        (Shape::Contradictions, zh[3], at(4, 8), 45 * MINUTE),
        (Shape::CopyPasteBombEn, en[0], at(4, 14), 45 * MINUTE),
        (Shape::ShortComplaintBurst, zh[4], at(4, 20), 2 * HOUR),
        (Shape::RetweetBurst, zh[5], at(5, 4), 2 * HOUR),
    ];
    let mut waves: Vec<Wave> = plan
        .iter()
        .map(|&(shape, p, start, len)| Wave {
            shape,
            brand: products[p].0.clone(),
            product: products[p].1.clone(),
            start,
            end: start + len,
        })
        .collect();
    let spike = (at(5, 12), at(5, 15));
    waves.push(Wave {
        shape: Shape::TweetVolumeKey,
        brand: "Weibo".into(),
        product: "mentions".into(),
        start: spike.0,
        end: spike.1,
    });
    let regulars = 300;
    let step = 5 * MINUTE;
    for s in 0..days * DAY / step {
        let t0 = T0 + s * step;
        for (brand, product, lang, rate, neg_share) in &products {
            let tz = if *lang == "zh" { 8.0 } else { -5.0 };
            let local = ((t0 / MINUTE) as f64 / 60.0 + tz).rem_euclid(24.0);
            let mu = rate * daily(local) * step as f64 / HOUR as f64;
            for _ in 0..g.rng.poisson(mu) {
                let t = t0 + (g.rng.uniform() * step as f64) as i64;
                let u = g.rng.uniform();
                let label = if u < *neg_share {
                    Label::Neg
                } else if *lang == "en" && u < neg_share + 0.1 {
                    Label::Neu
                } else {
                    Label::Pos
                };
                let Some(text) = pools.get(&(lang.to_string(), label)).and_then(|p| p.draw(&mut g.rng)) else {
                    continue;
                };
                let text = text.to_string();
                let u = g.rng.uniform();
                let author = if u < 0.01 {
                    Some(format!("r{}", g.rng.below(regulars)))
                } else if u < 0.5 {
                    Some(g.fresh_author("g"))
                } else {
                    None
                };
                let rating = rating_for(&mut g.rng, label);
                let (sentiment, conf) = classify(&mut g.rng, label);
                g.push(Spec {
                    t,
                    brand,
                    product,
                    lang,
                    text,
                    author,
                    rating,
                    sentiment,
                    conf,
                    shape: Shape::Background,
                });
            }
        }
        // The tweet-volume key: one text, no ids, every item a complaint.
        let local = ((t0 / MINUTE) as f64 / 60.0 + 8.0).rem_euclid(24.0);
        let boost = if (spike.0..spike.1).contains(&t0) { 5.0 } else { 1.0 };
        for _ in 0..g.rng.poisson(6.0 * boost * daily(local) * step as f64 / HOUR as f64) {
            let t = t0 + (g.rng.uniform() * step as f64) as i64;
            g.push(Spec {
                t,
                brand: "Weibo",
                product: "mentions",
                lang: "zh",
                text: TWEET.into(),
                author: None,
                rating: None,
                sentiment: Sentiment::Negative,
                conf: 0.9,
                shape: if boost > 1.0 {
                    Shape::TweetVolumeKey
                } else {
                    Shape::Background
                },
            });
        }
    }
    inject(&mut g, &waves[..plan.len()], &pools);
    g.items
        .sort_by(|a, b| a.t.cmp(&b.t).then(a.ev.event.id.cmp(&b.ev.event.id)));
    (g.items, waves)
}

fn inject(g: &mut Gen, waves: &[Wave], pools: &BTreeMap<(String, Label), Pool>) {
    let long = |lang: &str, label: Label, min: usize, k: usize| -> String {
        let all = pools.get(&(lang.to_string(), label)).map(|p| &p.all[..]).unwrap_or(&[]);
        let cands: Vec<&String> = all.iter().filter(|t| t.chars().count() >= min).collect();
        cands
            .get(k % cands.len().max(1))
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    for w in waves {
        let len = w.end - w.start;
        let when = |g: &mut Gen| w.start + (g.rng.uniform() * len as f64) as i64;
        let pick = g.rng.below(1_000_000);
        match w.shape {
            Shape::CopyPasteBomb | Shape::CopyPasteBombEn => {
                let (lang, n, accts) = if w.shape == Shape::CopyPasteBomb {
                    ("zh", 40, 6)
                } else {
                    ("en", 30, 5)
                };
                let base = long(lang, Label::Neg, 40, pick);
                for _ in 0..n {
                    let t = when(g);
                    let text = format!("{base}{}", SUFFIXES[g.rng.below(SUFFIXES.len())]);
                    let author = Some(format!("bomb{}", g.rng.below(accts)));
                    g.push(Spec {
                        t,
                        brand: &w.brand,
                        product: &w.product,
                        lang,
                        text,
                        author,
                        rating: Some(1.0),
                        sentiment: Sentiment::Negative,
                        conf: 0.92,
                        shape: w.shape,
                    });
                }
            }
            Shape::ParaphrasedTemplate | Shape::BoughtPraise => {
                let para = w.shape == Shape::ParaphrasedTemplate;
                let n = if para { 40 } else { 30 };
                for _ in 0..n {
                    let t = when(g);
                    let text = paraphrase(&mut g.rng, if para { &PARAPHRASE } else { &PRAISE });
                    let author = if para {
                        Some(g.fresh_author("new"))
                    } else {
                        Some(format!("promo{}", g.rng.below(10)))
                    };
                    let (rating, sentiment) = if para {
                        (1.0, Sentiment::Negative)
                    } else {
                        (5.0, Sentiment::Positive)
                    };
                    g.push(Spec {
                        t,
                        brand: &w.brand,
                        product: &w.product,
                        lang: "zh",
                        text,
                        author,
                        rating: Some(rating),
                        sentiment,
                        conf: 0.93,
                        shape: w.shape,
                    });
                }
            }
            Shape::Contradictions => {
                for i in 0..20 {
                    let t = when(g);
                    let text = long("zh", Label::Pos, 12, pick + 7 * i);
                    let author = Some(g.fresh_author("cx"));
                    g.push(Spec {
                        t,
                        brand: &w.brand,
                        product: &w.product,
                        lang: "zh",
                        text,
                        author,
                        rating: Some(1.0),
                        sentiment: Sentiment::Positive,
                        conf: 0.92,
                        shape: w.shape,
                    });
                }
            }
            Shape::ShortComplaintBurst => {
                for _ in 0..60 {
                    let t = when(g);
                    let text = SHORT_COMPLAINTS[g.rng.below(SHORT_COMPLAINTS.len())].to_string();
                    let author = (g.rng.uniform() < 0.5).then(|| g.fresh_author("g"));
                    let rating = Some(if g.rng.uniform() < 0.7 { 1.0 } else { 2.0 });
                    g.push(Spec {
                        t,
                        brand: &w.brand,
                        product: &w.product,
                        lang: "zh",
                        text,
                        author,
                        rating,
                        sentiment: Sentiment::Negative,
                        conf: 0.9,
                        shape: w.shape,
                    });
                }
            }
            Shape::RetweetBurst => {
                for _ in 0..80 {
                    let t = when(g);
                    g.push(Spec {
                        t,
                        brand: &w.brand,
                        product: &w.product,
                        lang: "zh",
                        text: RETWEET.into(),
                        author: None,
                        rating: None,
                        sentiment: Sentiment::Negative,
                        conf: 0.9,
                        shape: w.shape,
                    });
                }
            }
            Shape::Background | Shape::TweetVolumeKey => {}
        }
    }
}

fn on_product(s: &Signal, w: &Wave) -> bool {
    s.key.get(Dim::Brand) == Some(w.brand.as_str()) && s.key.get(Dim::Product) == Some(w.product.as_str())
}

/// Streams one seeded run through a detector with `cfg` and scores it.
pub fn run_spam_eval(corpus: &Corpus, seed: u64, cfg: &DetectConfig) -> Result<SpamEvalReport, DetectError> {
    let days = 6;
    let (items, waves) = generate(corpus, seed, days);
    let shape_of: HashMap<&str, Shape> = items.iter().map(|i| (i.ev.event.id.as_str(), i.shape)).collect();
    let mut det = Detector::new(cfg.clone());
    let mut seq_item: HashMap<u64, usize> = HashMap::new();
    let mut report = SpamEvalReport::default();
    let mut signals: Vec<Signal> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let p = det.push(&it.ev)?;
        let row = report.rows.entry(it.shape).or_default();
        row.items += 1;
        if p.suspect.is_some() {
            row.suspected += 1;
        }
        if p.suspect == Some(Suspect::Contradiction) {
            row.contradictions += 1;
        }
        if p.seq != 0 {
            seq_item.insert(p.seq, i);
        }
        for s in &p.retracted {
            if let Some(&j) = seq_item.get(s) {
                report.rows.entry(items[j].shape).or_default().retracted += 1;
            }
        }
        signals.extend(p.signals);
    }
    signals.extend(det.advance_watermark(T0 + days * DAY + DAY));
    report.events = items.len() as u64;
    for s in Shape::ALL {
        report.rows.entry(s).or_default();
    }
    for s in signals.iter().filter(|s| s.kind == SignalKind::ReviewBombing) {
        let quotes = &s.explanation.quotes;
        let fakes = quotes
            .iter()
            .filter(|q| shape_of.get(q.id.as_str()).is_some_and(|sh| sh.is_fake()))
            .count();
        let e = report
            .rb_by_reason
            .entry(s.reason.clone().unwrap_or_default())
            .or_default();
        e.0 += 1;
        if fakes * 2 > quotes.len() {
            e.1 += 1;
        }
    }
    for w in &waves {
        let row = report.rows.entry(w.shape).or_default();
        row.waves += 1;
        let rb = signals
            .iter()
            .filter(|s| {
                s.kind == SignalKind::ReviewBombing
                    && on_product(s, w)
                    && s.window_end >= w.start
                    && s.window_end <= w.end + HOUR
            })
            .count() as u32;
        row.rb_signals += rb;
        if rb > 0 {
            row.flagged += 1;
        }
        let crisis = signals.iter().any(|s| {
            s.kind.is_crisis() && on_product(s, w) && s.window_end > w.start && s.window_end <= w.end + 2 * HOUR
        });
        if crisis {
            row.crisis += 1;
        }
    }
    Ok(report)
}

/// The report as a text table (rows per shape, then precision by rule).
pub fn format_report(r: &SpamEvalReport, runs: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<40} {:>6} {:>6} {:>6} {:>7} {:>8} {:>8} {:>8}\n",
        "shape", "waves", "rb", "caught", "crisis", "suspect", "(contra)", "retract"
    ));
    for (s, row) in &r.rows {
        let crisis = if s.is_fake() || s.expects_crisis() {
            format!("{}/{}", row.crisis, row.waves)
        } else {
            "-".into()
        };
        let caught = if s.is_fake() {
            format!("{}/{}", row.flagged, row.waves)
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<40} {:>6} {:>6} {:>6} {:>7} {:>8} {:>8} {:>8}   of {} items\n",
            s.name(),
            row.waves,
            row.rb_signals,
            caught,
            crisis,
            row.suspected,
            row.contradictions,
            row.retracted,
            row.items
        ));
    }
    let (all, good) = r.rb_totals();
    out.push_str(&format!(
        "review_bombing signals: {all}, mostly injected fakes: {good}, precision {:.3} ({runs} runs, {} events)\n",
        if all == 0 { 1.0 } else { good as f64 / all as f64 },
        r.events
    ));
    for (k, (a, b)) in &r.rb_by_reason {
        out.push_str(&format!("  {k:<16} {a:>5} signals, {b:>5} true\n"));
    }
    let fake_rows = r.rows.iter().filter(|(s, _)| s.is_fake());
    let (waves, caught) = fake_rows.fold((0, 0), |(a, b), (_, row)| (a + row.waves, b + row.flagged));
    let genuine = r.rows.iter().filter(|(s, _)| !s.is_fake()).map(|(_, row)| row);
    let (items, retracted, suspected, contra) = genuine.fold((0, 0, 0, 0), |acc, row| {
        (
            acc.0 + row.items,
            acc.1 + row.retracted,
            acc.2 + row.suspected - row.contradictions,
            acc.3 + row.contradictions,
        )
    });
    out.push_str(&format!(
        "fake waves caught: {caught}/{waves}; genuine items: {items}, retracted {retracted}, \
         suspect as near-duplicate or author {suspected}, as single contradictions {contra}\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tsv_and_draws_short_phrases_by_rank() {
        let c = Corpus::parse_tsv("neg\tzh\tneg\t太差了\npos\tzh\tpos\t很好\nbad line\npos\tzh\tpos\t很好\n");
        assert_eq!(c.texts.len(), 3);
        let pool = Pool::build(vec!["很好".into(), "很好".into(), "不错".into()]);
        assert_eq!(pool.short, vec!["很好".to_string(), "不错".to_string()]);
        let mut rng = Rng::new(1);
        assert!(pool.draw(&mut rng).is_some());
    }
}
