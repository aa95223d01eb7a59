//! The replay report: one self-contained HTML file (inline CSS and SVG made
//! with plotters; no scripts, fonts or other files) for people: run summary,
//! the incidents first (a cross-key timeline of which keys lit up when, then
//! one section per incident: title key, spread, member alerts, quotes, terms
//! and the title key's volume and negative share), detection quality against
//! incident windows when given, every notification, overall top terms,
//! language and category mix, and unreadable input with line numbers.

use std::collections::BTreeMap;
use std::fmt::Write;

use plotters::prelude::*;

use super::{AlertView, Incident, IncidentScore, Outcome};
use crate::types::EventTime;

/// Facts about the run that the outcome does not hold.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub inputs: Vec<String>,
    pub elapsed_s: f64,
    pub config: String,
}

pub use earshot_core::time::rfc3339;

fn short(t: EventTime) -> String {
    let secs = t.div_euclid(1000);
    let (_, m, d) = earshot_core::time::civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!("{m:02}-{d:02} {:02}:{:02}", r / 3600, r % 3600 / 60)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1180px;color:#1d2330;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #e4e7ee;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 4px}.muted{color:#667085}.grid{display:grid;grid-template-columns:repeat(4,1fr);gap:10px}
.card{background:#f5f7fb;border-radius:8px;padding:10px 14px}.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff4;vertical-align:top}
th{background:#f5f7fb}.sev-critical{color:#fff;background:#c0392b;border-radius:4px;padding:1px 6px}
.sev-warning{color:#fff;background:#e67e22;border-radius:4px;padding:1px 6px}.sev-info{background:#dfe6f0;border-radius:4px;padding:1px 6px}
.bar{display:inline-block;height:10px;background:#5b8def;border-radius:2px}.neg{background:#d9534f}
blockquote{margin:4px 0;padding:4px 10px;border-left:3px solid #d0d5dd;color:#344054;font-size:13px}
.key{background:#fff8e6;border:1px solid #f0d68a;border-radius:8px;padding:8px 14px;margin:10px 0}";

/// Renders the report.
pub fn html(out: &Outcome, info: &RunInfo, incidents: Option<(&[Incident], &IncidentScore)>) -> String {
    let obs = &out.observer;
    let views: Vec<AlertView> = out.alerts.iter().map(AlertView::of).collect();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>earshot replay report</title><style>{CSS}</style></head><body>"
    );
    let range = match (obs.first, obs.last) {
        (Some(a), Some(b)) => format!("{} → {}", rfc3339(a), rfc3339(b)),
        _ => "no events".into(),
    };
    let _ = write!(
        h,
        "<h1>earshot replay report</h1><div class=\"muted\">inputs: {} · config: {} · event time {}</div>",
        esc(&info.inputs.join(", ")),
        esc(&info.config),
        range
    );
    let rate = out.received as f64 / info.elapsed_s.max(1e-9);
    let incs = super::incidents::incidents(&out.alerts);
    let _ = write!(
        h,
        "<h2>Run</h2><div class=\"grid\"><div class=\"card\">events read<b>{}</b></div><div class=\"card\">scored<b>{}</b></div>\
         <div class=\"card\">unreadable / dead<b>{}</b></div><div class=\"card\">too late for statistics<b>{}</b></div>\
         <div class=\"card\">incidents (crisis) / notifications<b>{} ({}) / {}</b></div><div class=\"card\">duration<b>{:.1} s</b></div>\
         <div class=\"card\">throughput<b>{:.0} events/s</b></div><div class=\"card\">keys tracked (top level)<b>{}</b></div></div>",
        out.received,
        out.scored,
        out.dead.len(),
        obs.too_late,
        incs.len(),
        incs.iter().filter(|i| i.crisis).count(),
        views.len(),
        info.elapsed_s,
        rate,
        obs.top_keys().len()
    );

    incident_sections(&mut h, &incs, obs);

    if let Some((incs, score)) = incidents {
        let pct = |x: Option<f64>| x.map_or("–".into(), |v| format!("{:.0} %", v * 100.0));
        let _ = write!(
            h,
            "<h2>Detection quality (incident file)</h2><p>precision <b>{}</b> ({} of {} crisis notifications match an incident) · recall <b>{}</b> ({} of {} incidents detected)</p>\
             <table><tr><th>incident key</th><th>start</th><th>end</th><th>detected</th><th>delay</th></tr>",
            pct(score.precision),
            score.true_alerts,
            score.crisis_alerts,
            pct(score.recall),
            score.delays.iter().filter(|d| d.is_some()).count(),
            incs.len()
        );
        for (inc, d) in incs.iter().zip(&score.delays) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&inc.label),
                rfc3339(inc.start),
                rfc3339(inc.end),
                if d.is_some() { "yes" } else { "<b>missed</b>" },
                d.map_or("–".into(), |d| format!("{:.0} min", d as f64 / 60_000.0))
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>All notifications</h2>");
    if views.is_empty() {
        h.push_str("<p>No alerts were raised.</p>");
    } else {
        h.push_str("<table><tr><th>time (event)</th><th>severity</th><th>rule</th><th>key</th><th>status</th><th>summary</th></tr>");
        // Crisis alerts first; the full list is in alerts.jsonl.
        let mut rows: Vec<&AlertView> = views.iter().collect();
        rows.sort_by_key(|a| !a.crisis);
        for a in rows.iter().take(100) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><span class=\"sev-{}\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rfc3339(a.at),
                esc(&a.severity),
                esc(&a.severity),
                esc(&a.rule),
                esc(&a.key),
                esc(&a.status),
                esc(&a.summary)
            );
        }
        if views.len() > 100 {
            let _ = write!(
                h,
                "<tr><td colspan=6>… {} more in alerts.jsonl</td></tr>",
                views.len() - 100
            );
        }
        h.push_str("</table>");
    }

    // Overall top terms from the explanations.
    let mut terms: BTreeMap<String, u64> = BTreeMap::new();
    for a in &out.alerts {
        for t in a.payload["signal"]["explanation"]["top_terms"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(s), Some(n)) = (t[0].as_str(), t[1].as_u64()) {
                *terms.entry(s.to_string()).or_default() += n;
            }
        }
    }
    let mut terms: Vec<(String, u64)> = terms.into_iter().collect();
    terms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if !terms.is_empty() {
        h.push_str("<h2>Top complaint terms (all alerts)</h2><table><tr><th>term</th><th>count</th><th></th></tr>");
        let max = terms[0].1.max(1);
        for (t, n) in terms.iter().take(15) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{n}</td><td><span class=\"bar neg\" style=\"width:{}px\"></span></td></tr>",
                esc(t),
                n * 400 / max
            );
        }
        h.push_str("</table>");
    }

    mix_table(&mut h, "Language mix", &obs.langs);
    mix_table(&mut h, "Category mix", &obs.categories);

    if !out.dead.is_empty() {
        let mut codes: BTreeMap<&str, u64> = BTreeMap::new();
        for d in &out.dead {
            *codes.entry(d.code).or_default() += 1;
        }
        let _ = write!(
            h,
            "<h2>Unreadable input ({})</h2><p>{}</p><table><tr><th>source</th><th>line / offset</th><th>reason</th><th>message</th></tr>",
            out.dead.len(),
            codes.iter().map(|(c, n)| format!("{c}: {n}")).collect::<Vec<_>>().join(" · ")
        );
        for d in out.dead.iter().take(50) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.pos.source),
                d.pos.offset,
                d.code,
                esc(&d.message)
            );
        }
        if out.dead.len() > 50 {
            let _ = write!(h, "<tr><td colspan=4>… {} more</td></tr>", out.dead.len() - 50);
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The incidents first: the cross-key timeline, then one section per
/// incident (title key, how it spread, its alerts, quotes and terms, the
/// title key's volume).
fn incident_sections(h: &mut String, incs: &[super::incidents::IncidentView], obs: &super::Observer) {
    if incs.is_empty() {
        h.push_str("<h2>Incidents</h2><p>No incidents.</p>");
        return;
    }
    let (first, last) = (obs.first.unwrap_or(0), obs.last.unwrap_or(0));
    let _ = write!(
        h,
        "<h2>Incidents ({} crisis, {} spam)</h2><p class=\"muted\">Which keys lit up when: one row per alert (rule · key), a bar from its first window to its latest signal, one colour per incident (numbered as below). Each incident paged once; updates followed as it spread.</p>",
        incs.iter().filter(|i| i.crisis).count(),
        incs.iter().filter(|i| !i.crisis).count()
    );
    // Zoomed to the incidents (an hour either side), within the run.
    let from = incs
        .iter()
        .map(|i| i.start)
        .min()
        .unwrap_or(first)
        .saturating_sub(3_600_000)
        .max(first);
    let to = incs
        .iter()
        .map(|i| i.end.unwrap_or(last))
        .max()
        .unwrap_or(last)
        .saturating_add(3_600_000)
        .min(last);
    let (from, to) = if to > from { (from, to) } else { (first, last) };
    let _ = write!(h, "<p class=\"muted\">{} → {}</p>", rfc3339(from), rfc3339(to));
    h.push_str(&super::incidents::timeline_svg(incs, from, to, 80));
    for (n, inc) in incs.iter().enumerate().take(30) {
        let p = &inc.last;
        let list = |f: &str| -> String {
            let v: Vec<&str> = p["incident"][f]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            if v.is_empty() {
                "–".into()
            } else {
                v.join(", ")
            }
        };
        let _ = write!(
            h,
            "<div class=\"key\"><h3>#{} {} <span class=\"sev-{}\">{}</span></h3><p>{} → {} · {} notification(s): 1 page, {} update(s) · rules: {} · regions: {} · channels: {} · languages: {}</p><p>{}</p>",
            n + 1,
            esc(&inc.title),
            esc(&inc.severity),
            esc(&inc.severity),
            rfc3339(inc.start),
            inc.end.map_or("still firing".into(), rfc3339),
            inc.notifications,
            inc.updates,
            esc(&list("rules")),
            esc(&list("regions")),
            esc(&list("channels")),
            esc(&list("languages")),
            esc(p["summary"].as_str().unwrap_or_default()),
        );
        h.push_str("<table><tr><th>rule</th><th>key</th><th>from</th><th>latest signal</th><th>state</th></tr>");
        for m in &inc.members {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                m.rule.as_str(),
                esc(&m.key.to_string()),
                rfc3339(m.starts_at),
                rfc3339(m.last_signal),
                if m.firing { "firing" } else { "resolved" }
            );
        }
        h.push_str("</table>");
        let ex = &p["signal"]["explanation"];
        let terms: Vec<String> = ex["top_terms"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| Some(format!("{} ({})", t[0].as_str()?, t[1])))
                    .take(10)
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            h,
            "<p><b>top terms:</b> {}</p>",
            esc(&if terms.is_empty() {
                "–".into()
            } else {
                terms.join(", ")
            })
        );
        if let Some(r) = p["signal"]["reason"].as_str() {
            let _ = write!(h, "<p><b>reason:</b> {}</p>", esc(r));
        }
        for q in ex["quotes"].as_array().into_iter().flatten().take(4) {
            let _ = write!(
                h,
                "<blockquote>[{}] {}</blockquote>",
                esc(q["lang"].as_str().unwrap_or("")),
                esc(q["text"].as_str().unwrap_or(""))
            );
        }
        if let Some(series) = obs.series.get(inc.title.as_str()) {
            h.push_str(&timeline_svg(series, obs.step, &[(inc.start, inc.crisis)], first, last));
        }
        h.push_str("</div>");
    }
    if incs.len() > 30 {
        let _ = write!(h, "<p>… {} more incidents in alerts.jsonl</p>", incs.len() - 30);
    }
}

fn mix_table(h: &mut String, title: &str, mix: &BTreeMap<String, super::Cell>) {
    let total: u64 = mix.values().map(|c| u64::from(c.total)).sum();
    if total == 0 {
        return;
    }
    let mut rows: Vec<(&String, &super::Cell)> = mix.iter().collect();
    rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
    let _ = write!(
        h,
        "<h2>{title}</h2><table><tr><th></th><th>events</th><th>share</th><th>negative share</th><th></th></tr>"
    );
    for (k, c) in rows.iter().take(15) {
        let share = f64::from(c.total) / total as f64;
        let neg = f64::from(c.negative) / f64::from(c.total.max(1));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.1} %</td><td>{:.1} %</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span> <span class=\"bar neg\" style=\"width:{:.0}px\"></span></td></tr>",
            esc(k),
            c.total,
            share * 100.0,
            neg * 100.0,
            share * 300.0,
            neg * 150.0
        );
    }
    h.push_str("</table>");
}

/// Hourly volume bars and negative share of one key, with alert markers.
fn timeline_svg(
    series: &BTreeMap<EventTime, super::Cell>,
    step: i64,
    marks: &[(EventTime, bool)],
    first: EventTime,
    last: EventTime,
) -> String {
    const HOUR: i64 = 3_600_000;
    let bucket = step.max(HOUR);
    let mut hourly: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (&t, c) in series {
        let e = hourly.entry(t.div_euclid(bucket) * bucket).or_default();
        e.0 += u64::from(c.total);
        e.1 += u64::from(c.negative);
    }
    let x0 = first.div_euclid(bucket) * bucket;
    let x1 = (last.div_euclid(bucket) + 1) * bucket;
    let ymax = hourly.values().map(|v| v.0).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1120, 260)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .right_y_label_area_size(48)
            .build_cartesian_2d(x0..x1, 0f64..ymax);
        let Ok(chart) = chart else { return String::new() };
        let mut chart = chart.set_secondary_coord(x0..x1, 0f64..1f64);
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(10)
            .x_label_formatter(&|t| short(*t))
            .y_desc("events / hour")
            .draw();
        let _ = chart
            .configure_secondary_axes()
            .y_desc("negative share")
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw();
        let blue = RGBColor(91, 141, 239);
        let _ =
            chart.draw_series(hourly.iter().map(|(&t, &(n, _))| {
                Rectangle::new([(t, 0.0), (t + bucket * 9 / 10, n as f64)], blue.mix(0.6).filled())
            }));
        let red = RGBColor(217, 83, 79);
        // The share of hours with at least 3 items, as separate runs: an hour
        // without enough data breaks the line instead of being bridged.
        let mut runs: Vec<Vec<(i64, f64)>> = Vec::new();
        let mut prev: Option<i64> = None;
        for (&t, &(n, neg)) in hourly.iter().filter(|(_, v)| v.0 >= 3) {
            if prev != Some(t - bucket) || runs.is_empty() {
                runs.push(Vec::new());
            }
            if let Some(run) = runs.last_mut() {
                run.push((t + bucket / 2, neg as f64 / n as f64));
            }
            prev = Some(t);
        }
        for run in runs {
            if run.len() == 1 {
                let _ = chart.draw_secondary_series(run.into_iter().map(|p| Circle::new(p, 3, red.filled())));
            } else {
                let _ = chart.draw_secondary_series(LineSeries::new(run, red.stroke_width(2)));
            }
        }
        for &(t, crisis) in marks {
            let c = if crisis {
                RGBColor(140, 20, 20)
            } else {
                RGBColor(150, 150, 150)
            };
            let _ = chart.draw_secondary_series(LineSeries::new([(t, 0.0), (t, 1.0)], c.stroke_width(2)));
            let _ = chart.draw_secondary_series(std::iter::once(TriangleMarker::new((t, 0.97), 6, c.filled())));
        }
        let _ = root.present();
    }
    svg
}
