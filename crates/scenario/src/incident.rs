//! Scenario parameters and the injected truth: which incident is injected,
//! when, on which keys, and what the detector is expected to say about it.

use earshot_core::types::EventTime;

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
    /// A busy product (about 16 negatives per hour at the time) gets a
    /// battery-overheating wave that ramps up linearly over 30 min to its
    /// usual negative rate again (its negatives double), then stays 3.5 h.
    BusyWaveDouble,
    /// The same busy product, +40 battery complaints per hour after a
    /// 30-min linear ramp, for 3.5 h at full rate.
    BusyWavePlus40,
}

impl Incident {
    pub const ALL: [Incident; 11] = [
        Incident::None,
        Incident::BatteryWave,
        Incident::LogisticsDrift,
        Incident::AfterSalesWave,
        Incident::QualityWave,
        Incident::SpamWave,
        Incident::PositiveViral,
        Incident::HolidaySurge,
        Incident::MaskedWave,
        Incident::BusyWaveDouble,
        Incident::BusyWavePlus40,
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
            Incident::BusyWaveDouble => "busy_wave_double",
            Incident::BusyWavePlus40 => "busy_wave_plus40",
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
    pub(crate) fn is_crisis(self) -> bool {
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
    /// When a ramped incident reaches its full rate (`None` for a sudden one).
    pub full_at: Option<EventTime>,
}

/// Late delivery: shares of events handed to the detector later than their
/// event time (on top of the arrival jitter), as behind a lagging
/// partition, a retried upstream batch or a re-import.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LateDelivery {
    /// Share of events delivered 1–30 minutes late.
    pub minutes_share: f64,
    /// Share of events delivered 1–6 hours late.
    pub hours_share: f64,
}

impl LateDelivery {
    /// Everything on time (but for the jitter).
    pub const NONE: LateDelivery = LateDelivery {
        minutes_share: 0.0,
        hours_share: 0.0,
    };
    /// The mix of a user's stream (issue 15): 3.5 % of events 1–30 minutes
    /// late and 0.5 % 1–6 hours late.
    pub const OBSERVED: LateDelivery = LateDelivery {
        minutes_share: 0.035,
        hours_share: 0.005,
    };
}

impl Truth {
    /// A crisis is expected (alone or with spam).
    pub fn expect_crisis(&self) -> bool {
        self.expect.is_crisis()
    }
}

/// Scenario parameters.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub days: i64,
    pub incident: Incident,
    /// Incident start, days after the stream start (plus `incident_hour`).
    pub incident_day: i64,
    pub incident_hour: i64,
    /// Events delivered late (none by default). Drawn from their own random
    /// stream: the events are the same with and without, only their order
    /// of arrival differs.
    pub late: LateDelivery,
}

impl Scenario {
    pub fn new(seed: u64, incident: Incident) -> Self {
        // The busy waves start at the busy product's evening peak (about 16
        // negatives per hour then); the others at 10:00 UTC.
        let incident_hour = match incident {
            Incident::BusyWaveDouble | Incident::BusyWavePlus40 => 19,
            _ => 10,
        };
        Self {
            seed,
            days: 12,
            incident,
            incident_day: 9,
            incident_hour,
            late: LateDelivery::NONE,
        }
    }
}
