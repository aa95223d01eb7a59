//! Real bursty count series through the detector (issue 15).
//!
//! Each series is a list of 5-minute counts (`epoch_ms,count` per line, as
//! `scripts/fetch-bursty-data.py` writes them) with labelled anomaly windows
//! (`NAME,start_ms,end_ms` per line in `labels.csv`). Every count becomes
//! that many events spread evenly over its 5 minutes, keyed by the series
//! name as the brand, every event negative, one identical text, no author,
//! no rating, no embedding: the shape of a raw mention stream where every
//! mention is a complaint. All series are merged in event-time order into
//! one detector.
//!
//! Scoring: a labelled window is hit when a crisis signal of its key is
//! emitted inside it; crisis signals become pages the way the alert
//! lifecycle deduplicates them (a signal of a rule and key opens a page
//! unless the same rule and key signalled within the last two hours); a
//! page opened outside every labelled window of its key is false.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io;
use std::path::Path;

use earshot_core::types::{
    Category, Event, EventTime, KeyDims, Scored, ScoredEvent, Sentiment, SentimentProbs, SignalKind,
};
use earshot_detect::{DetectConfig, DetectError, Detector};

use crate::{DAY, HOUR, MINUTE};

/// The text every event carries.
pub const TEXT: &str = "worst service ever, never buying from them again";

/// Spacing of the counts.
pub const SLOT: i64 = 5 * MINUTE;

/// Two signals of one rule and key closer than this are one page.
pub const PAGE_GAP: i64 = 2 * HOUR;

/// Average month, for the page rate.
const MONTH: f64 = 30.4375 * DAY as f64;

/// One count series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// `(slot start, count)`, in time order.
    pub counts: Vec<(EventTime, u32)>,
}

impl Series {
    pub fn events(&self) -> u64 {
        self.counts.iter().map(|&(_, c)| c as u64).sum()
    }

    /// Time the series covers (first slot start to last slot end).
    pub fn span(&self) -> i64 {
        match (self.counts.first(), self.counts.last()) {
            (Some(a), Some(b)) => b.0 + SLOT - a.0,
            _ => 0,
        }
    }
}

/// A labelled anomaly window `[start, end]` of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    pub start: EventTime,
    pub end: EventTime,
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn parse_i64(s: &str, at: &str) -> io::Result<i64> {
    s.trim()
        .parse()
        .map_err(|_| bad(format!("{at}: not an integer: {s:?}")))
}

/// Reads `labels.csv` and every series it names (`NAME.csv`) from `dir`.
pub fn load(dir: &Path) -> io::Result<(Vec<Series>, Vec<Label>)> {
    let text = std::fs::read_to_string(dir.join("labels.csv"))?;
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = format!("labels.csv:{}", i + 1);
        let f: Vec<&str> = line.split(',').collect();
        let [name, start, end] = f[..] else {
            return Err(bad(format!("{at}: expected NAME,start_ms,end_ms")));
        };
        labels.push(Label {
            name: name.to_string(),
            start: parse_i64(start, &at)?,
            end: parse_i64(end, &at)?,
        });
    }
    let mut names: Vec<String> = labels.iter().map(|l| l.name.clone()).collect();
    names.sort();
    names.dedup();
    let mut series = Vec::new();
    for name in names {
        let file = format!("{name}.csv");
        let text = std::fs::read_to_string(dir.join(&file))?;
        let mut counts = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = format!("{file}:{}", i + 1);
            let (t, c) = line
                .split_once(',')
                .ok_or_else(|| bad(format!("{at}: expected epoch_ms,count")))?;
            let c = u32::try_from(parse_i64(c, &at)?).map_err(|_| bad(format!("{at}: bad count")))?;
            counts.push((parse_i64(t, &at)?, c));
        }
        counts.sort_by_key(|&(t, _)| t);
        series.push(Series { name, counts });
    }
    Ok((series, labels))
}

/// The event for item `i` of series `name` at `t`.
pub fn event(name: &str, i: u64, t: EventTime) -> ScoredEvent {
    ScoredEvent {
        event: Event {
            id: format!("{name}-{i}"),
            key: KeyDims {
                brand: Some(name.to_string()),
                ..KeyDims::default()
            },
            text: TEXT.to_string(),
            lang: Some("en".into()),
            rating: None,
            author: None,
            event_time: t,
            replied_at: None,
            reply_to: None,
            pos: None,
        },
        scored: Scored {
            sentiment: Sentiment::Negative,
            probs: SentimentProbs {
                negative: 1.0,
                neutral: 0.0,
                positive: 0.0,
            },
            category: Category::Other,
            category_score: 1.0,
            lang: "en".into(),
            tokens: 12,
            truncated: false,
            embedding: Vec::new(),
        },
    }
}

/// Time of item `j` of `c` items in the slot starting at `t`.
fn spread(t: EventTime, j: u32, c: u32) -> EventTime {
    t + SLOT * j as i64 / c.max(1) as i64
}

/// Calls `f` with every event of every series in event-time order (ties:
/// series order, then item order).
pub fn for_each_event(
    series: &[Series],
    mut f: impl FnMut(usize, ScoredEvent) -> Result<(), DetectError>,
) -> Result<(), DetectError> {
    // Per series: (row, item within the row, items so far).
    let mut pos: Vec<(usize, u32, u64)> = vec![(0, 0, 0); series.len()];
    let mut heap = BinaryHeap::new();
    let next = |s: &Series, p: &mut (usize, u32, u64)| -> Option<EventTime> {
        while let Some(&(t, c)) = s.counts.get(p.0) {
            if p.1 < c {
                return Some(spread(t, p.1, c));
            }
            p.0 += 1;
            p.1 = 0;
        }
        None
    };
    for (i, s) in series.iter().enumerate() {
        if let Some(t) = next(s, &mut pos[i]) {
            heap.push(Reverse((t, i)));
        }
    }
    while let Some(Reverse((t, i))) = heap.pop() {
        let p = &mut pos[i];
        f(i, event(&series[i].name, p.2, t))?;
        p.1 += 1;
        p.2 += 1;
        if let Some(t) = next(&series[i], p) {
            heap.push(Reverse((t, i)));
        }
    }
    Ok(())
}

/// A signal of one series and the event time it was emitted at.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub at: EventTime,
    pub kind: SignalKind,
    /// Index into the series.
    pub series: usize,
    /// The signal's window, observed and expected negatives.
    pub window: (EventTime, EventTime),
    pub observed: u32,
    pub expected: f64,
}

/// Every signal of a run: those of a series key, and how many of each kind
/// named no series (a spam scope the events lack, e.g. `brand, product`
/// when only the brand is set).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    pub emitted: Vec<Emitted>,
    pub unkeyed: BTreeMap<SignalKind, u32>,
}

/// Runs all series through one detector.
pub fn run(series: &[Series], cfg: &DetectConfig) -> Result<Run, DetectError> {
    let mut det = Detector::new(cfg.clone());
    let index: BTreeMap<&str, usize> = series.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let mut out = Run::default();
    let mut max_seen = i64::MIN;
    let keep = |at: EventTime, s: earshot_core::types::Signal, out: &mut Run| {
        let brand = s.key.get(earshot_core::types::Dim::Brand);
        let Some(&i) = brand.and_then(|b| index.get(b)) else {
            *out.unkeyed.entry(s.kind).or_insert(0) += 1;
            return;
        };
        out.emitted.push(Emitted {
            at,
            kind: s.kind,
            series: i,
            window: (s.window_start, s.window_end),
            observed: s.observed,
            expected: s.expected,
        });
    };
    for_each_event(series, |_, ev| {
        max_seen = max_seen.max(ev.event.event_time);
        for s in det.push(&ev)?.signals {
            keep(max_seen, s, &mut out);
        }
        Ok(())
    })?;
    let end = series
        .iter()
        .filter_map(|s| s.counts.last())
        .map(|&(t, _)| t + SLOT)
        .max();
    if let Some(end) = end {
        for s in det.advance_watermark(end + HOUR) {
            keep(end + HOUR, s, &mut out);
        }
    }
    Ok(out)
}

/// Scores of one series (or of all, summed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesReport {
    pub name: String,
    pub events: u64,
    pub days: f64,
    pub signals: BTreeMap<SignalKind, u32>,
    pub labelled: u32,
    pub hit: u32,
    pub pages: u32,
    pub false_pages: u32,
}

impl SeriesReport {
    /// False pages per key per month (`days` is summed over the keys).
    pub fn false_per_key_month(&self) -> f64 {
        let months = self.days * DAY as f64 / MONTH;
        if months > 0.0 {
            self.false_pages as f64 / months
        } else {
            0.0
        }
    }
}

/// Pages of one key: `(page start, kind)`; `signals` must be in time order.
pub fn pages(signals: &[(EventTime, SignalKind)]) -> Vec<(EventTime, SignalKind)> {
    let mut last: BTreeMap<SignalKind, EventTime> = BTreeMap::new();
    let mut out = Vec::new();
    for &(t, kind) in signals.iter().filter(|(_, k)| k.is_crisis()) {
        if last.get(&kind).is_none_or(|&l| t.saturating_sub(l) >= PAGE_GAP) {
            out.push((t, kind));
        }
        last.insert(kind, t);
    }
    out
}

/// Scores the signals of each series against its labels.
pub fn score(series: &[Series], labels: &[Label], emitted: &[Emitted]) -> Vec<SeriesReport> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let windows: Vec<&Label> = labels.iter().filter(|l| l.name == s.name).collect();
            let inside = |t: EventTime| windows.iter().any(|l| l.start <= t && t <= l.end);
            let mut mine: Vec<(EventTime, SignalKind)> = emitted
                .iter()
                .filter(|e| e.series == i)
                .map(|e| (e.at, e.kind))
                .collect();
            mine.sort_by_key(|&(t, k)| (t, k));
            let mut signals = BTreeMap::new();
            for &(_, k) in &mine {
                *signals.entry(k).or_insert(0) += 1;
            }
            let hit = windows
                .iter()
                .filter(|l| mine.iter().any(|&(t, k)| k.is_crisis() && l.start <= t && t <= l.end))
                .count() as u32;
            let pages = pages(&mine);
            SeriesReport {
                name: s.name.clone(),
                events: s.events(),
                days: s.span() as f64 / DAY as f64,
                signals,
                labelled: windows.len() as u32,
                hit,
                pages: pages.len() as u32,
                false_pages: pages.iter().filter(|&&(t, _)| !inside(t)).count() as u32,
            }
        })
        .collect()
}

/// The sum of all series' reports.
pub fn total(reports: &[SeriesReport]) -> SeriesReport {
    let mut t = SeriesReport {
        name: "all".into(),
        ..SeriesReport::default()
    };
    for r in reports {
        t.events += r.events;
        t.days += r.days;
        for (k, n) in &r.signals {
            *t.signals.entry(*k).or_insert(0) += n;
        }
        t.labelled += r.labelled;
        t.hit += r.hit;
        t.pages += r.pages;
        t.false_pages += r.false_pages;
    }
    t
}

/// A markdown table of the reports and their total.
pub fn table(reports: &[SeriesReport]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let kinds = SignalKind::ALL;
    let _ = write!(
        s,
        "| series | events | days | hit / labelled | pages | false pages | false / key / month |"
    );
    for k in kinds {
        let _ = write!(s, " {} |", k.as_str());
    }
    s.push('\n');
    s.push_str(&"|---".repeat(7 + kinds.len()));
    s.push_str("|\n");
    let all = total(reports);
    for r in reports.iter().chain([&all]) {
        let _ = write!(
            s,
            "| {} | {} | {:.1} | {} / {} | {} | {} | {:.2} |",
            r.name,
            r.events,
            r.days,
            r.hit,
            r.labelled,
            r.pages,
            r.false_pages,
            r.false_per_key_month()
        );
        for k in kinds {
            let _ = write!(s, " {} |", r.signals.get(&k).copied().unwrap_or(0));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_of_one_rule_within_two_hours_are_one_page() {
        use SignalKind::*;
        let s = [
            (0, VolumeSpike),
            (HOUR, VolumeSpike),
            (HOUR, SlowDrift),
            (2 * HOUR + MINUTE, VolumeSpike),
            (5 * HOUR, VolumeSpike),
            (5 * HOUR, ReviewBombing),
        ];
        // The chain 0, 1 h, 2 h 1 min is one page (each within 2 h of the last).
        assert_eq!(
            pages(&s),
            vec![(0, VolumeSpike), (HOUR, SlowDrift), (5 * HOUR, VolumeSpike)]
        );
    }

    #[test]
    fn events_are_merged_in_time_order_and_spread_over_the_slot() {
        let a = Series {
            name: "A".into(),
            counts: vec![(0, 2), (SLOT, 0), (2 * SLOT, 1)],
        };
        let b = Series {
            name: "B".into(),
            counts: vec![(MINUTE, 3)],
        };
        let mut seen = Vec::new();
        for_each_event(&[a, b], |i, ev| {
            seen.push((i, ev.event.event_time, ev.event.id));
            Ok(())
        })
        .unwrap();
        let times: Vec<i64> = seen.iter().map(|s| s.1).collect();
        assert_eq!(
            times,
            vec![0, MINUTE, SLOT / 2, MINUTE + SLOT / 3, MINUTE + 2 * SLOT / 3, 2 * SLOT]
        );
        assert_eq!(seen[5].2, "A-2");
        assert_eq!(seen.iter().filter(|s| s.0 == 1).count(), 3);
    }

    #[test]
    fn a_page_outside_every_label_is_false() {
        let s = Series {
            name: "A".into(),
            counts: vec![(0, 1), (30 * DAY, 1)],
        };
        let labels = [Label {
            name: "A".into(),
            start: DAY,
            end: 2 * DAY,
        }];
        let em = |at, kind| Emitted {
            at,
            kind,
            series: 0,
            window: (at - HOUR, at),
            observed: 0,
            expected: 0.0,
        };
        let e = [
            em(DAY + HOUR, SignalKind::VolumeSpike),
            em(5 * DAY, SignalKind::SlowDrift),
            em(6 * DAY, SignalKind::ReviewBombing),
        ];
        let r = &score(&[s], &labels, &e)[0];
        assert_eq!((r.hit, r.labelled, r.pages, r.false_pages), (1, 1, 2, 1));
        assert_eq!(r.signals.get(&SignalKind::ReviewBombing), Some(&1));
    }
}
