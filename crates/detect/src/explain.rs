//! Signals with their explanations: the numbers behind a firing test
//! ([`Evidence`]) and, from the key's recent negatives in the window, up to
//! five quotes (dominant clusters first, one per language first, distinct
//! texts), the distinctive terms, and the language and category mix.

use std::collections::BTreeMap;

use earshot_core::types::{Category, Explanation, Quote, Signal, SignalKey, SignalKind};

use crate::key::{KeyState, Recent};
use crate::terms::{self, TermStats};
use crate::window::Span;

/// The statistics a signal reports: `observed` items against `expected`,
/// out of a `population`, with the baseline share and the test's p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Items counted (negatives, or cluster members).
    pub observed: u32,
    /// Items expected under the baseline (traffic-adjusted).
    pub expected: f64,
    /// Items the observed ones are drawn from (all items, or all negatives).
    pub population: u32,
    /// Baseline share of `observed` in `population`.
    pub baseline_share: f64,
    pub p_value: f64,
}

/// Builds a signal with its explanation from the key's recent negatives in
/// the window (restricted to one cluster for emerging issues).
pub(crate) fn build_signal(
    kind: SignalKind,
    key: &SignalKey,
    st: &KeyState,
    window: Span,
    evidence: Evidence,
    cluster: Option<u64>,
    terms: &TermStats,
) -> Signal {
    let Span { start, end } = window;
    let items: Vec<&Recent> = st
        .recent
        .iter()
        .filter(|r| !r.retracted && r.t >= start && r.t < end)
        .filter(|r| cluster.is_none() || r.cluster == cluster)
        .collect();
    let ranked = rank_for_quotes(st, &items, start);
    // One quote per language first, then fill up to five; distinct texts.
    let mut quotes: Vec<&Recent> = Vec::new();
    for pass in 0..2 {
        for r in &ranked {
            if quotes.len() >= 5 {
                break;
            }
            if quotes.iter().any(|q| q.text == r.text || q.seq == r.seq) {
                continue;
            }
            if pass == 0 && quotes.iter().any(|q| q.lang == r.lang) {
                continue;
            }
            quotes.push(r);
        }
    }
    let mut languages: BTreeMap<String, u32> = BTreeMap::new();
    let mut categories: BTreeMap<Category, u32> = BTreeMap::new();
    let mut regions: BTreeMap<String, u32> = BTreeMap::new();
    let mut channels: BTreeMap<String, u32> = BTreeMap::new();
    for r in &items {
        *languages.entry(r.lang.to_string()).or_insert(0) += 1;
        *categories.entry(r.category).or_insert(0) += 1;
        if let Some(x) = &r.region {
            *regions.entry(x.to_string()).or_insert(0) += 1;
        }
        if let Some(x) = &r.channel {
            *channels.entry(x.to_string()).or_insert(0) += 1;
        }
    }
    let members = member_hashes(items.iter().map(|r| &*r.id));
    Signal {
        kind,
        key: key.clone(),
        window_start: start,
        window_end: end,
        observed: evidence.observed,
        expected: evidence.expected,
        population: evidence.population,
        baseline_share: evidence.baseline_share,
        p_value: evidence.p_value,
        cluster,
        reason: None,
        explanation: Explanation {
            quotes: quotes
                .into_iter()
                .map(|r| Quote {
                    id: r.id.to_string(),
                    text: r.text.to_string(),
                    lang: r.lang.to_string(),
                    event_time: r.t,
                })
                .collect(),
            top_terms: terms.top(items.iter().map(|r| &r.terms[..]), 8),
            languages: sorted_counts(languages),
            categories: sorted_counts(categories),
            regions: sorted_counts(regions),
            channels: sorted_counts(channels),
            members,
        },
    }
}

/// The window's items in quoting order: the clusters that grew most against
/// their share among the key's earlier recent negatives first (the wave's
/// texts, not the key's usual complaints), then the most typical members,
/// newest first.
fn rank_for_quotes<'a>(st: &KeyState, items: &[&'a Recent], start: i64) -> Vec<&'a Recent> {
    let mut in_window: BTreeMap<Option<u64>, f64> = BTreeMap::new();
    for r in items {
        *in_window.entry(r.cluster).or_insert(0.0) += 1.0;
    }
    let mut before: BTreeMap<Option<u64>, f64> = BTreeMap::new();
    let mut n_before = 0.0;
    for r in st.recent.iter().filter(|r| !r.retracted && r.t < start) {
        *before.entry(r.cluster).or_insert(0.0) += 1.0;
        n_before += 1.0;
    }
    let n_window = items.len() as f64;
    let groups = (in_window.len() + before.len()).max(1) as f64;
    // Excess over the count the earlier share predicts (add-one smoothed).
    let excess = |c: &Option<u64>| {
        let w = in_window.get(c).copied().unwrap_or(0.0);
        let b = before.get(c).copied().unwrap_or(0.0);
        w - n_window * (b + 1.0) / (n_before + groups)
    };
    let mut ranked = items.to_vec();
    ranked.sort_by(|a, b| {
        excess(&b.cluster)
            .total_cmp(&excess(&a.cluster))
            .then(b.sim.total_cmp(&a.sim))
            .then(b.t.cmp(&a.t))
            .then(b.seq.cmp(&a.seq))
    });
    ranked
}

/// Sorted, distinct FNV-1a hashes of event ids (the signal's members).
fn member_hashes<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<u64> {
    let mut v: Vec<u64> = ids.map(|id| earshot_core::hash::fnv1a(id.as_bytes())).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A review-bombing signal: `n` suspect items in `window` of scope `key`,
/// explained by the given quotes.
pub(crate) fn spam_signal(
    key: SignalKey,
    window: Span,
    n: u32,
    quotes: Vec<Quote>,
    reason: &str,
    terms: &TermStats,
) -> Signal {
    let mut languages: BTreeMap<String, u32> = BTreeMap::new();
    for q in &quotes {
        *languages.entry(q.lang.clone()).or_insert(0) += 1;
    }
    let docs: Vec<Vec<String>> = quotes.iter().map(|q| terms::terms(&q.text)).collect();
    let quotes_ids: Vec<String> = quotes.iter().map(|q| q.id.clone()).collect();
    Signal {
        kind: SignalKind::ReviewBombing,
        key,
        window_start: window.start,
        window_end: window.end,
        observed: n,
        expected: 0.0,
        population: n,
        baseline_share: 0.0,
        p_value: 0.0,
        cluster: None,
        reason: Some(reason.to_string()),
        explanation: Explanation {
            quotes,
            top_terms: terms.top(docs.iter().map(|d| d.as_slice()), 8),
            languages: sorted_counts(languages),
            categories: Vec::new(),
            members: member_hashes(quotes_ids.iter().map(String::as_str)),
            ..Default::default()
        },
    }
}

fn sorted_counts<K: Ord + Clone>(m: BTreeMap<K, u32>) -> Vec<(K, u32)> {
    let mut v: Vec<(K, u32)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}
