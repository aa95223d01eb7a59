//! The event stream of a scenario: background traffic over several brands,
//! products and regions (each region writes in its language) with a daily
//! rhythm in local time, per-product negative shares, occasional neutral
//! texts, replies and arrival jitter, plus the injected incident's traffic;
//! optionally a share of events arrives minutes to hours late.
//! One busy product (a brand of its own, [`BUSY`]) is drawn from a random
//! stream of its own, so adding it left every other product's events as
//! they were. Seeded: the same scenario and bank give the same stream every
//! time.

use earshot_core::rng::Rng;
use earshot_core::types::{Event, EventTime, KeyDims, ScoredEvent};

use crate::{Bank, Expect, Incident, Role, Scenario, Truth, DAY, EVIDENCE_ITEMS, HOUR, MINUTE, T0};

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

/// The busy product (brand, product, items per hour, negative share): about
/// 16 negatives per hour at its evening peak (19:00-21:00 UTC), 13 on
/// average, where the products above see one or two.
pub const BUSY: (&str, &str, f64, f64) = ("Helio", "Max Power Bank", 30.0, 0.42);

/// Salt of the busy product's random stream.
const BUSY_STREAM: u64 = 0xb05e_0000_0000_0001;

/// Ramp of the busy waves to their full rate.
const BUSY_RAMP: i64 = 30 * MINUTE;

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
    /// Event id prefix (one per random stream, so ids stay unique).
    prefix: &'static str,
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
        let id = format!("{}{:07}", self.prefix, self.n);
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

/// Delays the arrival of a share of events (`sc.late`), with a random
/// stream of its own so the events themselves do not change.
fn delay(out: &mut [(EventTime, ScoredEvent)], sc: &Scenario) {
    let late = sc.late;
    if late.minutes_share <= 0.0 && late.hours_share <= 0.0 {
        return;
    }
    let mut rng = Rng::new(sc.seed ^ 0x6c61_7465_6e65_7373);
    for (arrival, _) in out.iter_mut() {
        let u = rng.uniform();
        let by = if u < late.minutes_share {
            MINUTE + (rng.uniform() * (29 * MINUTE) as f64) as i64
        } else if u < late.minutes_share + late.hours_share {
            HOUR + (rng.uniform() * (5 * HOUR) as f64) as i64
        } else {
            continue;
        };
        *arrival += by;
    }
}

impl Gen<'_> {
    /// Background items of one product in one region and slot: `mu` items
    /// expected, each negative with probability `neg_share`, neutral with 5 %.
    #[allow(clippy::too_many_arguments)]
    fn background(
        &mut self,
        t0: EventTime,
        step: i64,
        mu: f64,
        neg_share: f64,
        brand: &str,
        product: &str,
        region: &str,
        lang: &str,
    ) {
        for _ in 0..self.rng.poisson(mu) {
            let t = t0 + (self.rng.uniform() * step as f64) as i64;
            let u = self.rng.uniform();
            let role = if u < neg_share {
                Role::Negative
            } else if u < neg_share + 0.05 {
                Role::Neutral
            } else {
                Role::Positive
            };
            self.emit(t, brand, product, region, lang, role, None, None);
        }
    }

    /// Incident items of one product in one region and slot, at `per_hour`;
    /// their times go to `injected`.
    #[allow(clippy::too_many_arguments)]
    fn inject(
        &mut self,
        t0: EventTime,
        step: i64,
        (role, per_hour): (Role, f64),
        brand: &str,
        product: &str,
        region: &str,
        lang: &str,
        injected: &mut Vec<EventTime>,
    ) {
        for _ in 0..self.rng.poisson(per_hour * step as f64 / HOUR as f64) {
            let t = t0 + (self.rng.uniform() * step as f64) as i64;
            self.emit(t, brand, product, region, lang, role, None, None);
            injected.push(t);
        }
    }
}

/// A generated scenario stream.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The events in arrival order.
    pub events: Vec<ScoredEvent>,
    /// What was injected (None for the background-only scenario).
    pub truth: Option<Truth>,
}

/// Generates the event stream (in arrival order) and the injected truth.
pub fn generate(sc: &Scenario, bank: &Bank) -> Generated {
    let mut g = Gen {
        bank,
        rng: Rng::new(sc.seed),
        out: Vec::new(),
        n: 0,
        prefix: "e",
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
                g.background(t0, step, mu, neg_share, brand, product, region, lang);
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
                if let Some(extra) = extra {
                    g.inject(t0, step, extra, brand, product, region, lang, &mut injected);
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

    // The busy product, from its own random stream.
    let mut b = Gen {
        bank,
        rng: Rng::new(sc.seed ^ BUSY_STREAM),
        out: Vec::new(),
        n: 0,
        prefix: "b",
        recent: Default::default(),
    };
    let (brand, product, rate, neg_share) = BUSY;
    for s in 0..slots {
        let t0 = T0 + s * step;
        let ramp = ((t0 + step / 2 - start) as f64 / BUSY_RAMP as f64).clamp(0.0, 1.0);
        let wave = t0 >= start && t0 < start + 4 * HOUR;
        for &(region, lang, w, tz) in &REGIONS {
            let local = ((t0 / MINUTE) as f64 / 60.0 + tz as f64).rem_euclid(24.0);
            let usual = rate * w * daily(local);
            let mut mu = usual * (step as f64 / HOUR as f64);
            if holiday(t0) {
                mu *= 3.0;
            }
            b.background(t0, step, mu, neg_share, brand, product, region, lang);
            let extra = match sc.incident {
                // The drift hits every product of the region alike.
                Incident::LogisticsDrift if region == "de" && t0 >= start && t0 < start + 48 * HOUR => {
                    let ramp = ((t0 - start) as f64 / DAY as f64).min(1.0);
                    Some((Role::Logistics, usual * 0.6 * ramp))
                }
                Incident::BusyWaveDouble if wave => Some((Role::Battery, usual * neg_share * ramp)),
                Incident::BusyWavePlus40 if wave => Some((Role::Battery, 40.0 * w * ramp)),
                _ => None,
            };
            if let Some(extra) = extra {
                b.inject(t0, step, extra, brand, product, region, lang, &mut injected);
            }
        }
    }
    g.out.extend(b.out);
    delay(&mut g.out, sc);
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
            full_at: None,
        }),
        Incident::LogisticsDrift => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 48 * HOUR,
            brand: None,
            product: None,
            region: Some("de".into()),
            evidence_at,
            full_at: None,
        }),
        Incident::AfterSalesWave => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 3 * HOUR,
            brand: Some("Pinecrest".into()),
            product: None,
            region: Some("fr".into()),
            evidence_at,
            full_at: None,
        }),
        Incident::QualityWave => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 4 * HOUR,
            brand: Some("Voltra".into()),
            product: Some("Nova Watch".into()),
            region: None,
            evidence_at,
            full_at: None,
        }),
        Incident::SpamWave => Some(Truth {
            expect: Expect::Spam,
            start,
            end: start + 45 * MINUTE,
            brand: Some("Kumo".into()),
            product: Some("Cloudstep Sneakers".into()),
            region: None,
            evidence_at,
            full_at: None,
        }),
        Incident::PositiveViral => Some(Truth {
            expect: Expect::Quiet,
            start,
            end: start + 6 * HOUR,
            brand: Some("Voltra".into()),
            product: Some("Pulse Earbuds".into()),
            region: None,
            evidence_at,
            full_at: None,
        }),
        Incident::BusyWaveDouble | Incident::BusyWavePlus40 => Some(Truth {
            expect: Expect::Crisis,
            start,
            end: start + 4 * HOUR,
            brand: Some(BUSY.0.into()),
            product: Some(BUSY.1.into()),
            region: None,
            evidence_at,
            full_at: Some(start + BUSY_RAMP),
        }),
        Incident::HolidaySurge => Some(Truth {
            expect: Expect::Quiet,
            start,
            end: start + DAY,
            brand: None,
            product: None,
            region: None,
            evidence_at,
            full_at: None,
        }),
    };
    Generated { events, truth }
}
