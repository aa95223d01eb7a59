//! The replay report's incident view: the notifications of a run folded back
//! into incidents (one per incident id, with its member alerts), and the
//! cross-key timeline chart (hand-written SVG: one row per member alert, a
//! bar from its window start to its latest signal, coloured per incident).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::alert::lifecycle::{IncidentState, MemberState};
use crate::alert::AlertOut;
use crate::types::EventTime;

/// One incident as the run's notifications describe it.
#[derive(Debug, Clone)]
pub struct IncidentView {
    pub id: String,
    /// Its title key (the most specific member key) at the last notification.
    pub title: String,
    pub rule: String,
    pub severity: String,
    pub crisis: bool,
    pub start: EventTime,
    /// When it resolved (None: still firing at the end of the run).
    pub end: Option<EventTime>,
    /// Notifications sent for it: the page, updates, repeats, the resolve.
    pub notifications: usize,
    pub updates: u32,
    pub members: Vec<MemberState>,
    /// The last notification (summary, quotes, terms, spread lists).
    pub last: serde_json::Value,
}

/// The incidents of a run, in order of opening.
pub fn incidents(alerts: &[AlertOut]) -> Vec<IncidentView> {
    let mut by_id: BTreeMap<&str, IncidentView> = BTreeMap::new();
    for a in alerts {
        let state: Option<IncidentState> = serde_json::from_value(a.payload["incident"].clone()).ok();
        let v = by_id.entry(a.fingerprint.as_str()).or_insert_with(|| IncidentView {
            id: a.fingerprint.clone(),
            title: String::new(),
            rule: a.payload["rule"].as_str().unwrap_or_default().to_string(),
            severity: a.payload["severity"].as_str().unwrap_or_default().to_string(),
            crisis: a.payload["severity"] != "info",
            start: state.as_ref().map_or(a.at, |s| s.starts_at),
            end: None,
            notifications: 0,
            updates: 0,
            members: Vec::new(),
            last: serde_json::Value::Null,
        });
        v.notifications += 1;
        v.title = a.payload["key"].as_str().unwrap_or_default().to_string();
        if let Some(s) = state {
            v.updates = s.updates;
            v.members = s.members;
        }
        v.end = (a.status == crate::alert::Status::Resolved).then_some(a.at);
        v.last = a.payload.clone();
    }
    let mut v: Vec<IncidentView> = by_id.into_values().collect();
    v.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    v
}

const COLOURS: [&str; 8] = [
    "#c0392b", "#2e86de", "#27ae60", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d", "#d35400",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Which keys lit up when, per incident: one row per member alert (rule and
/// key), a bar from its first window's start to its latest signal (to the
/// incident's end while it was firing), incidents in order and coloured.
/// At most `max_rows` rows.
pub fn timeline_svg(incs: &[IncidentView], first: EventTime, last: EventTime, max_rows: usize) -> String {
    let rows: Vec<(usize, &IncidentView, &MemberState)> = incs
        .iter()
        .enumerate()
        .flat_map(|(i, inc)| inc.members.iter().map(move |m| (i, inc, m)))
        .take(max_rows)
        .collect();
    if rows.is_empty() || last <= first {
        return String::new();
    }
    let (label_w, chart_w, row_h, top) = (420.0, 700.0, 18.0, 24.0);
    let height = top + rows.len() as f64 * row_h + 8.0;
    let span = (last - first) as f64;
    let x = |t: EventTime| label_w + (t.clamp(first, last) - first) as f64 / span * chart_w;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">",
        label_w + chart_w + 10.0
    );
    // Ticks: days, or hours over a span of two days or less.
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let (tick, label): (i64, std::ops::Range<usize>) = if last - first <= 2 * DAY {
        (HOUR * ((last - first) / (12 * HOUR)).max(1), 11..16)
    } else {
        (DAY, 5..10)
    };
    let mut d = (first.div_euclid(tick) + 1) * tick;
    while d < last {
        let _ = write!(
            s,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{top}\" y2=\"{height}\" stroke=\"#e4e7ee\"/><text x=\"{0:.1}\" y=\"14\" fill=\"#667085\">{1}</text>",
            x(d),
            &earshot_core::time::rfc3339(d)[label.clone()]
        );
        d += tick;
    }
    for (row, (i, inc, m)) in rows.iter().enumerate() {
        let y = top + row as f64 * row_h;
        let colour = COLOURS[i % COLOURS.len()];
        let end = if m.firing {
            inc.end.unwrap_or(last)
        } else {
            m.last_signal
        };
        let (x0, x1) = (x(m.starts_at), x(end.max(m.starts_at)));
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{:.1}\" fill=\"{colour}\">#{} {} · {}</text><rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" rx=\"2\"><title>{} {} {} → {}</title></rect>",
            y + 12.0,
            i + 1,
            esc(m.rule.as_str()),
            esc(&clip(&m.key.to_string(), 56)),
            y + 3.0,
            (x1 - x0).max(2.0),
            row_h - 6.0,
            esc(m.rule.as_str()),
            esc(&m.key.to_string()),
            earshot_core::time::rfc3339(m.starts_at),
            earshot_core::time::rfc3339(end),
        );
    }
    s.push_str("</svg>");
    s
}

fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::lifecycle::{Lifecycle, LifecycleConfig};
    use crate::alert::silence::Silences;
    use crate::types::{Dim, Explanation, Signal, SignalKey, SignalKind};

    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_000_000_000;

    fn sig(kind: SignalKind, key: SignalKey, end: i64, members: std::ops::Range<u64>) -> Signal {
        Signal {
            kind,
            key,
            window_start: end - 15 * MIN,
            window_end: end,
            observed: 30,
            expected: 3.0,
            population: 40,
            baseline_share: 0.1,
            p_value: 1e-9,
            cluster: None,
            reason: None,
            explanation: Explanation {
                members: members.collect(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn notifications_fold_back_into_incidents_with_their_members() {
        let mut lc = Lifecycle::new(
            LifecycleConfig {
                grafana_url: "http://g".into(),
                resolve_after: 60 * MIN,
                repeat_interval: 0,
                group_by: vec![Dim::Brand],
                correlate: Default::default(),
            },
            Silences::default(),
        );
        let p = SignalKey(vec![(Dim::Brand, "V".into()), (Dim::Product, "X2".into())]);
        let r = SignalKey(vec![(Dim::Region, "DE".into())]);
        let mut out = lc.step(&[sig(SignalKind::VolumeSpike, p.clone(), T0, 0..20)], &[], Some(T0));
        out.extend(lc.step(
            &[sig(SignalKind::EmergingIssue, r, T0 + 5 * MIN, 5..30)],
            &[],
            Some(T0 + 40 * MIN),
        ));
        out.extend(lc.step(&[], &[], Some(T0 + 200 * MIN)));
        let incs = incidents(&out);
        assert_eq!(incs.len(), 1);
        let i = &incs[0];
        assert_eq!(i.members.len(), 2);
        assert_eq!(i.updates, 1);
        // Open, update; the volume alert never clears here (no detector).
        assert_eq!(i.notifications, 2);
        assert_eq!(i.end, None);
        let svg = timeline_svg(&incs, T0 - 60 * MIN, T0 + 300 * MIN, 50);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("region=DE"), "{svg}");
    }
}
