//! Deterministic scenario generator and scorer for evaluating the detector.
//!
//! Pure and seeded: given a [`Bank`] of scored texts (built by the caller,
//! with the real model or otherwise) and a [`Scenario`], [`generate`]
//! returns the same event stream every time. The background has several
//! brands, products and regions (each region writes in its language), a
//! daily rhythm in local time, per-product negative shares, occasional
//! neutral texts, replies, and small arrival jitter (out-of-order events).
//! Incidents are injected on top; [`score`] compares the detector's signals
//! with the injected truth.

use earshot_core::rng::Rng;
use earshot_core::types::{Event, EventTime, KeyDims, Scored, ScoredEvent, Signal, SignalKind};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// What a bank text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Positive,
    Neutral,
    Negative,
    /// Coherent complaint wave: battery overheating.
    Battery,
    /// Delivery / logistics complaints.
    Logistics,
    /// Refund, return and customer-service complaints.
    AfterSales,
    /// Product-quality complaints of every kind (not one coherent defect).
    Quality,
    /// Near-duplicate fake reviews.
    Spam,
    /// Near-duplicate bought 5-star praise.
    FakePraise,
}

/// One text with what the classifier says about it.
#[derive(Debug, Clone)]
pub struct BankText {
    pub role: Role,
    pub lang: String,
    pub text: String,
    pub scored: Scored,
}

/// Texts by role and language.
#[derive(Debug, Clone, Default)]
pub struct Bank {
    pub texts: Vec<BankText>,
}

impl Bank {
    fn pick(&self, rng: &mut Rng, role: Role, lang: &str) -> Option<&BankText> {
        let same: Vec<&BankText> = self.texts.iter().filter(|t| t.role == role && t.lang == lang).collect();
        let pool = if same.is_empty() {
            self.texts.iter().filter(|t| t.role == role).collect()
        } else {
            same
        };
        if pool.is_empty() {
            None
        } else {
            Some(pool[rng.below(pool.len())])
        }
    }
}

/// An injected incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incident {
    /// Background only.
    None,
    /// 40 battery-overheating complaints per hour on one product for 4 h.
    BatteryWave,
    /// Logistics complaints in one region ramp up over 24 h, then stay 24 h.
    LogisticsDrift,
    /// One brand's customer service breaks down in one small market: 20
    /// after-sales complaints per hour for 3 h (a low-count key).
    AfterSalesWave,
    /// One product fails in every market at once: 30 quality complaints per
    /// hour for 4 h, spread over the regions and their languages, with no
    /// single coherent wording.
    QualityWave,
    /// 60 near-duplicate 1-star fakes on one product in 45 min, few accounts.
    SpamWave,
    /// Ten times the usual positive reviews on one product for 6 h.
    PositiveViral,
    /// Three times the traffic everywhere for 24 h, same share.
    HolidaySurge,
    /// The battery wave, buried under 60 bought 5-star reviews per hour
    /// (near-duplicates from 10 accounts) on the same product: the fakes
    /// must be reported and must not mask the crisis.
    MaskedWave,
}

impl Incident {
    pub const ALL: [Incident; 9] = [
        Incident::None,
        Incident::BatteryWave,
        Incident::LogisticsDrift,
        Incident::AfterSalesWave,
        Incident::QualityWave,
        Incident::SpamWave,
        Incident::PositiveViral,
        Incident::HolidaySurge,
        Incident::MaskedWave,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Incident::None => "background",
            Incident::BatteryWave => "battery_wave",
            Incident::LogisticsDrift => "logistics_drift",
            Incident::AfterSalesWave => "after_sales_wave",
            Incident::QualityWave => "quality_wave",
            Incident::SpamWave => "spam_wave",
            Incident::PositiveViral => "positive_viral",
            Incident::HolidaySurge => "holiday_surge",
            Incident::MaskedWave => "masked_wave",
        }
    }
}

/// What a scenario expects the detector to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A crisis signal on a matching key.
    Crisis,
    /// A review-bombing signal, and no crisis.
    Spam,
    /// A crisis signal on a matching key and a review-bombing signal.
    CrisisAndSpam,
    /// No crisis signal on matching keys.
    Quiet,
}

impl Expect {
    fn is_crisis(self) -> bool {
        matches!(self, Expect::Crisis | Expect::CrisisAndSpam)
    }
}

/// The injected truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub expect: Expect,
    pub start: EventTime,
    pub end: EventTime,
    pub brand: Option<String>,
    pub product: Option<String>,
    pub region: Option<String>,
    /// Event time of the `EVIDENCE_ITEMS`-th injected item: before it, no
    /// detector with the minimum-evidence floor can fire, whatever its
    /// statistics. For a ramp this is far later than `start`.
    pub evidence_at: Option<EventTime>,
}

/// Injected items the detector needs before it may fire (the balanced
/// preset's `min_count`).
pub const EVIDENCE_ITEMS: usize = 5;

/// Scenario parameters.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub days: i64,
    pub incident: Incident,
    /// Incident start, days after the stream start (plus `incident_hour`).
    pub incident_day: i64,
    pub incident_hour: i64,
}

impl Scenario {
    pub fn new(seed: u64, incident: Incident) -> Self {
        Self {
            seed,
            days: 12,
            incident,
            incident_day: 9,
            incident_hour: 10,
        }
    }
}

/// Stream start: Monday 2024-01-01 00:00 UTC.
pub const T0: EventTime = 1_704_067_200_000;

const PRODUCTS: [(&str, &str, f64, f64); 8] = [
    ("Voltra", "X2 Power Bank", 5.0, 0.18),
    ("Voltra", "Pulse Earbuds", 6.0, 0.15),
    ("Voltra", "Nova Watch", 3.0, 0.20),
    ("Pinecrest", "Cedar Cookware Set", 4.0, 0.12),
    ("Pinecrest", "Alder Desk Lamp", 2.0, 0.22),
    ("Pinecrest", "Birch Throw Blanket", 2.5, 0.10),
    ("Kumo", "Drift Rain Jacket", 3.5, 0.17),
    ("Kumo", "Cloudstep Sneakers", 5.0, 0.20),
];

/// (region, language, weight, UTC offset in hours).
const REGIONS: [(&str, &str, f64, i64); 6] = [
    ("us", "en", 0.30, -5),
    ("de", "de", 0.18, 1),
    ("fr", "fr", 0.14, 1),
    ("es", "es", 0.12, 1),
    ("cn", "zh", 0.14, 8),
    ("jp", "ja", 0.12, 9),
];

/// Relative activity by local hour (peaks in the evening, quiet at night).
fn daily(local_hour: f64) -> f64 {
    let x = (local_hour - 20.0) / 24.0 * std::f64::consts::TAU;
    (1.0 + 0.7 * x.cos()).max(0.15)
}

struct Gen<'a> {
    bank: &'a Bank,
    rng: Rng,
    out: Vec<(EventTime, ScoredEvent)>,
    n: u64,
    /// Texts used per (product, text) in the last hour (fakes excepted). Real
    /// customers do not post the same words again and again; the bank is
    /// small, so without this a traffic spike would repeat texts verbatim
    /// and look like a fake wave.
    recent: std::collections::HashMap<(String, String), std::collections::VecDeque<EventTime>>,
}

/// Times a text may appear on one product within an hour.
const MAX_REPEATS_PER_HOUR: usize = 2;

impl Gen<'_> {
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        t: EventTime,
        brand: &str,
        product: &str,
        region: &str,
        lang: &str,
        role: Role,
        author: Option<String>,
        rating: Option<f32>,
    ) {
        let Some(mut bt) = self.bank.pick(&mut self.rng, role, lang) else {
            return;
        };
        // Real customers do not post the same words again and again (only
        // the fake waves do, on purpose).
        if !matches!(role, Role::Spam | Role::FakePraise) {
            for _ in 0..16 {
                let uses = self.recent.entry((product.to_string(), bt.text.clone())).or_default();
                while uses.front().is_some_and(|&u| u <= t - HOUR) {
                    uses.pop_front();
                }
                if uses.len() < MAX_REPEATS_PER_HOUR {
                    break;
                }
                match self.bank.pick(&mut self.rng, role, lang) {
                    Some(other) => bt = other,
                    None => return,
                }
            }
            self.recent
                .entry((product.to_string(), bt.text.clone()))
                .or_default()
                .push_back(t);
        }
        self.n += 1;
        let id = format!("e{:07}", self.n);
        let neg = !matches!(role, Role::Positive | Role::Neutral | Role::FakePraise);
        let rating = rating.or_else(|| {
            Some(match role {
                Role::Positive => 4.0 + self.rng.below(2) as f32,
                Role::Neutral => 3.0,
                _ => 1.0 + self.rng.below(2) as f32,
            })
        });
        let replied_at =
            (neg && self.rng.uniform() < 0.7).then(|| t + HOUR + (self.rng.uniform() * 30.0 * HOUR as f64) as i64);
        let author = author.or_else(|| Some(format!("u{}", self.rng.next_u64() % 10_000_000)));
        let channel = if self.rng.uniform() < 0.7 { "shop" } else { "app" };
        // Arrival jitter: up to 45 s late.
        let arrival = t + (self.rng.uniform() * 45_000.0) as i64;
        self.out.push((
            arrival,
            ScoredEvent {
                event: Event {
                    id,
                    key: KeyDims {
                        brand: Some(brand.into()),
                        product: Some(product.into()),
                        sku: None,
                        region: Some(region.into()),
                        channel: Some(channel.into()),
                    },
                    text: bt.text.clone(),
                    lang: None,
                    rating,
                    author,
                    event_time: t,
                    replied_at,
                    reply_to: None,
                    pos: None,
                },
                scored: bt.scored.clone(),
            },
        ));
    }
}

/// Generates the event stream (in arrival order) and the injected truth.
pub fn generate(sc: &Scenario, bank: &Bank) -> (Vec<ScoredEvent>, Option<Truth>) {
    let mut g = Gen {
        bank,
        rng: Rng::new(sc.seed),
        out: Vec::new(),
        n: 0,
        recent: Default::default(),
    };
    let start = T0 + sc.incident_day * DAY + sc.incident_hour * HOUR;
    let step = 5 * MINUTE;
    let slots = sc.days * DAY / step;
    let holiday = |t: EventTime| sc.incident == Incident::HolidaySurge && t >= start && t < start + DAY;
    let mut injected: Vec<EventTime> = Vec::new();
    for s in 0..slots {
        let t0 = T0 + s * step;
        for &(brand, product, rate, neg_share) in &PRODUCTS {
            for &(region, lang, w, tz) in &REGIONS {
                let local = ((t0 / MINUTE) as f64 / 60.0 + tz as f64).rem_euclid(24.0);
                let mut mu = rate * w * daily(local) * (step as f64 / HOUR as f64);
                if holiday(t0) {
                    mu *= 3.0;
                }
                for _ in 0..g.rng.poisson(mu) {
                    let t = t0 + (g.rng.uniform() * step as f64) as i64;
                    let u = g.rng.uniform();
                    let role = if u < neg_share {
                        Role::Negative
                    } else if u < neg_share + 0.05 {
                        Role::Neutral
                    } else {
                        Role::Positive
                    };
                    g.emit(t, brand, product, region, lang, role, None, None);
                }
                // Incident traffic in this slot.
                let extra = match sc.incident {
                    Incident::BatteryWave | Incident::MaskedWave
                        if product == "X2 Power Bank" && t0 >= start && t0 < start + 4 * HOUR =>
                    {
                        Some((Role::Battery, 40.0 * w))
                    }
                    Incident::LogisticsDrift if region == "de" && t0 >= start && t0 < start + 48 * HOUR => {
                        let ramp = ((t0 - start) as f64 / DAY as f64).min(1.0);
                        Some((Role::Logistics, rate * w * daily(local) * 0.6 * ramp))
                    }
                    Incident::AfterSalesWave
                        if brand == "Pinecrest" && region == "fr" && t0 >= start && t0 < start + 3 * HOUR =>
                    {
                        // 20 per hour over the brand's three products.
                        Some((Role::AfterSales, 20.0 / 3.0))
                    }
                    Incident::QualityWave if product == "Nova Watch" && t0 >= start && t0 < start + 4 * HOUR => {
                        Some((Role::Quality, 30.0 * w))
                    }
                    Incident::PositiveViral if product == "Pulse Earbuds" && t0 >= start && t0 < start + 6 * HOUR => {
                        Some((Role::Positive, 10.0 * rate * w))
                    }
                    _ => None,
                };
                if let Some((role, per_hour)) = extra {
                    for _ in 0..g.rng.poisson(per_hour * step as f64 / HOUR as f64) {
                        let t = t0 + (g.rng.uniform() * step as f64) as i64;
                        g.emit(t, brand, product, region, lang, role, None, None);
                        injected.push(t);
                    }
                }
            }
        }
        if sc.incident == Incident::MaskedWave && t0 >= start && t0 < start + 4 * HOUR {
            // 60 bought 5-star reviews per hour from 10 accounts.
            for _ in 0..g.rng.poisson(60.0 / 12.0) {
                let t = t0 + (g.rng.uniform() * step as f64) as i64;
                let author = format!("promo{}", g.rng.below(10));
                let (region, lang, ..) = REGIONS[g.rng.below(REGIONS.len())];
                g.emit(
                    t,
                    "Voltra",
                    "X2 Power Bank",
                    region,
                    lang,
                    Role::FakePraise,
                    Some(author),
                    Some(5.0),
                );
            }
        }
        if sc.incident == Incident::SpamWave && t0 >= start && t0 < start + 45 * MINUTE {
            // 60 fakes in 45 minutes from 8 accounts, all 1 star, English.
            for _ in 0..g.rng.poisson(60.0 / 9.0) {
                let t = t0 + (g.rng.uniform() * step as f64) as i64;
                let author = format!("bot{}", g.rng.below(8));
                let region = REGIONS[g.rng.below(REGIONS.len())].0;
                g.emit(
                    t,
                    "Kumo",
                    "Cloudstep Sneakers",
                    region,
                    "en",
                    Role::Spam,
                    Some(author),
                    Some(1.0),
                );
                injected.push(t);
            }
        }
    }
    g.out
        .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.event.id.cmp(&b.1.event.id)));
    let events = g.out.into_iter().map(|(_, e)| e).collect();
    injected.sort_unstable();
    let evidence_at = injected.get(EVIDENCE_ITEMS - 1).copied();
    let truth = match sc.incident {
        Incident::None => None,
        Incident::BatteryWave | Incident::MaskedWave => Some(Truth {
            expect: if sc.incident == Incident::MaskedWave {
                Expect::CrisisAndSpam
            } else {
                Expect::Crisis
            },
            start,
            end: start + 4 * HOUR,
            brand: Some("Voltra".into()),
            product: Some("X2 Power Bank".into()),
            region: None,
            evidence_at,
        }),
        Incident::LogisticsDrift => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 48 * HOUR,
            brand: None,
            product: None,
            region: Some("de".into()),
            evidence_at,
        }),
        Incident::AfterSalesWave => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 3 * HOUR,
            brand: Some("Pinecrest".into()),
            product: None,
            region: Some("fr".into()),
            evidence_at,
        }),
        Incident::QualityWave => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 4 * HOUR,
            brand: Some("Voltra".into()),
            product: Some("Nova Watch".into()),
            region: None,
            evidence_at,
        }),
        Incident::SpamWave => Some(Truth {
            expect: Expect::Spam,
            start,
            end: start + 45 * MINUTE,
            brand: Some("Kumo".into()),
            product: Some("Cloudstep Sneakers".into()),
            region: None,
            evidence_at,
        }),
        Incident::PositiveViral => Some(Truth {
            expect: Expect::Quiet,
            start,
            end: start + 6 * HOUR,
            brand: Some("Voltra".into()),
            product: Some("Pulse Earbuds".into()),
            region: None,
            evidence_at,
        }),
        Incident::HolidaySurge => Some(Truth {
            expect: Expect::Quiet,
            start,
            end: start + DAY,
            brand: None,
            product: None,
            region: None,
            evidence_at,
        }),
    };
    (events, truth)
}

/// A signal with the event time at which it was emitted (max event time seen).
#[derive(Debug, Clone)]
pub struct Emitted {
    pub at: EventTime,
    pub signal: Signal,
}

/// Scored outcome of one scenario run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub scenario: &'static str,
    pub expect: &'static str,
    /// Expected signal seen (crisis or spam); for quiet scenarios: no crisis on matching keys.
    pub passed: bool,
    /// Detection delay in event time (crisis or spam scenarios).
    pub delay_min: Option<f64>,
    /// Detection time after the `EVIDENCE_ITEMS`-th injected item.
    pub evidence_delay_min: Option<f64>,
    /// Crisis signals on keys and times the incident does not explain.
    pub false_alerts: u32,
    /// Keys that could alert and days after warm-up (for the rate).
    pub keys: usize,
    pub eval_days: f64,
    pub crisis_on_incident: u32,
    pub spam_signals: u32,
}

impl Report {
    pub fn false_per_key_week(&self) -> f64 {
        self.false_alerts as f64 / (self.keys.max(1) as f64 * self.eval_days / 7.0)
    }
}

fn matches(truth: &Truth, s: &Signal) -> bool {
    use earshot_core::types::Dim;
    let ok = |d: Dim, want: &Option<String>| match (s.key.get(d), want) {
        (Some(v), Some(w)) => v == w,
        _ => true,
    };
    ok(Dim::Brand, &truth.brand) && ok(Dim::Product, &truth.product) && ok(Dim::Region, &truth.region)
}

/// Scores the emitted signals against the truth. Crisis signals before
/// `warmup_days` are ignored (keys cannot alert before their history is
/// long enough anyway).
pub fn score(
    incident: Incident,
    truth: Option<&Truth>,
    emitted: &[Emitted],
    keys: usize,
    days: i64,
    warmup_days: i64,
) -> Report {
    let eval_from = T0 + warmup_days * DAY;
    let mut first: Option<EventTime> = None;
    let mut false_alerts = 0;
    let mut crisis_on_incident = 0;
    let mut spam_signals = 0;
    for e in emitted {
        let s = &e.signal;
        if s.kind == SignalKind::ReviewBombing {
            spam_signals += 1;
        }
        let explained = truth.is_some_and(|t| matches(t, s) && e.at >= t.start && s.window_start < t.end + 2 * HOUR);
        if let Some(t) = truth {
            let wanted = match t.expect {
                Expect::Crisis | Expect::CrisisAndSpam => s.kind.is_crisis(),
                Expect::Spam => s.kind == SignalKind::ReviewBombing,
                Expect::Quiet => false,
            };
            if explained && wanted && first.is_none() {
                first = Some(e.at);
            }
            if explained && s.kind.is_crisis() {
                crisis_on_incident += 1;
            }
        }
        let is_false =
            s.kind.is_crisis() && e.at >= eval_from && !(explained && truth.is_some_and(|t| t.expect.is_crisis()));
        if is_false && !(explained && truth.is_some_and(|t| !t.expect.is_crisis())) {
            false_alerts += 1;
        }
    }
    let (passed, delay) = match truth {
        None => (true, None),
        Some(t) => match t.expect {
            Expect::Crisis => (first.is_some(), first.map(|f| (f - t.start) as f64 / MINUTE as f64)),
            Expect::CrisisAndSpam => (
                first.is_some() && spam_signals > 0,
                first.map(|f| (f - t.start) as f64 / MINUTE as f64),
            ),
            Expect::Spam => (
                first.is_some() && crisis_on_incident == 0,
                first.map(|f| (f - t.start) as f64 / MINUTE as f64),
            ),
            Expect::Quiet => (crisis_on_incident == 0, None),
        },
    };
    Report {
        scenario: incident.name(),
        expect: match truth.map(|t| t.expect) {
            None => "no alert",
            Some(Expect::Crisis) => "crisis",
            Some(Expect::CrisisAndSpam) => "crisis + spam",
            Some(Expect::Spam) => "spam only",
            Some(Expect::Quiet) => "no crisis",
        },
        passed,
        delay_min: delay,
        evidence_delay_min: truth
            .and_then(|t| t.evidence_at)
            .zip(first)
            .map(|(e, f)| (f - e) as f64 / MINUTE as f64),
        false_alerts,
        keys,
        eval_days: (days - warmup_days) as f64,
        crisis_on_incident,
        spam_signals,
    }
}

/// Runs the detector over a scenario and scores it.
pub fn run(
    sc: &Scenario,
    bank: &Bank,
    cfg: &earshot_detect::DetectConfig,
) -> Result<(Report, Vec<Emitted>, earshot_detect::Counters), earshot_detect::DetectError> {
    let (events, truth) = generate(sc, bank);
    let mut det = earshot_detect::Detector::new(cfg.clone());
    let mut emitted = Vec::new();
    let mut max_seen = i64::MIN;
    let mut keys = std::collections::BTreeSet::new();
    for ev in &events {
        max_seen = max_seen.max(ev.event.event_time);
        let p = det.push(ev)?;
        for s in p.signals {
            emitted.push(Emitted {
                at: max_seen,
                signal: s,
            });
        }
        if keys.len() < 100_000 {
            for r in &cfg.rollups {
                if let Some(k) = earshot_detect::key_for(ev, r) {
                    keys.insert(k);
                }
            }
        }
    }
    let end = T0 + sc.days * DAY;
    for s in det.advance_watermark(end) {
        emitted.push(Emitted { at: end, signal: s });
    }
    let report = score(sc.incident, truth.as_ref(), &emitted, keys.len(), sc.days, 2);
    Ok((report, emitted, det.counters()))
}
