//! The evaluation stream: background from the corpus (with its repeats and
//! short stock phrases), genuine authors and regulars, and the injected
//! fake and genuine waves.

use super::*;

fn daily(local_hour: f64) -> f64 {
    let x = (local_hour - 20.0) / 24.0 * std::f64::consts::TAU;
    (1.0 + 0.7 * x.cos()).max(0.15)
}

pub(super) struct Item {
    t: EventTime,
    pub(super) ev: ScoredEvent,
    pub(super) shape: Shape,
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
pub(super) fn generate(corpus: &Corpus, seed: u64, days: i64) -> (Vec<Item>, Vec<Wave>) {
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
