//! Incidents: alerts that are about the same thing, correlated so that one
//! complaint wave pages once. Pure functions of signals; the state machine
//! that opens, updates and resolves incidents is in [`crate::lifecycle`].
//!
//! A new alert joins an open incident of its family (crisis or spam) when
//! * enough of its events are already part of the incident: the signals of
//!   one wave on the product, its regions, its channels and the brand are
//!   computed over the same reviews (`Explanation::members`), whatever rule
//!   fired on each key; or
//! * its key is an ancestor or a descendant of a member's key (brand ⊃
//!   brand × product ⊃ brand × product × category) and it shares some events
//!   or some top terms with the incident.
//!
//! Member events are compared as FNV-1a hashes of the event ids, so the
//! correlation is the same in a replay and across restarts.

use std::collections::{BTreeMap, BTreeSet};

use earshot_core::types::{topic_similarity, Dim, Signal, SignalKey};

/// Events remembered per incident for correlation.
pub(crate) const MAX_IDS: usize = 8192;

/// Counts below this in a signal's breakdown do not make a region, channel
/// or language "affected" (one stray review is not a spread).
const MIN_AFFECTED: u32 = 2;

/// How alerts are correlated into incidents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrelateConfig {
    /// Off: every alert is an incident of its own (one page per rule and key).
    pub enabled: bool,
    /// Share of a new alert's events already in the incident that makes it
    /// part of the incident (with at least `min_shared` events).
    pub min_overlap: f64,
    pub min_shared: usize,
    /// Cosine of two signals' topics (centred sentence embeddings of the
    /// clusters that grew) from which they are about the same thing, when
    /// their keys do not contradict each other (no dimension with two
    /// different values).
    pub min_topic_similarity: f64,
    /// Event time between two update notifications of one incident.
    pub update_interval: i64,
    /// How long a resolved incident is remembered: a new alert about it
    /// whose window began before it resolved (a long window still holding
    /// the wave) is an echo and notifies no one.
    pub echo_window: i64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_overlap: 0.2,
            min_shared: 2,
            min_topic_similarity: 0.6,
            update_interval: 30 * 60_000,
            echo_window: 24 * 3_600_000,
        }
    }
}

/// What an incident knows of its members, for correlation and reporting.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Footprint {
    pub ids: BTreeSet<u64>,
    pub terms: BTreeSet<String>,
    pub keys: BTreeSet<SignalKey>,
    /// Every member signal's key and topic.
    pub topics: Vec<(SignalKey, Vec<i8>)>,
    pub rules: BTreeSet<&'static str>,
    pub regions: BTreeSet<String>,
    pub channels: BTreeSet<String>,
    pub languages: BTreeSet<String>,
}

impl Footprint {
    /// Adds a signal; true when the incident spread (a new key, rule,
    /// region, channel or language).
    pub fn add(&mut self, s: &Signal) -> bool {
        for id in &s.explanation.members {
            if self.ids.len() >= MAX_IDS {
                break;
            }
            self.ids.insert(*id);
        }
        for (t, _) in s.explanation.top_terms.iter().take(5) {
            self.terms.insert(t.clone());
        }
        if !s.explanation.topic.is_empty() && self.topics.len() < 256 {
            self.topics.push((s.key.clone(), s.explanation.topic.clone()));
        }
        let mut grew = self.keys.insert(s.key.clone());
        grew |= self.rules.insert(s.kind.as_str());
        let from_key = |d: Dim| s.key.get(d).map(str::to_string);
        let affected = |v: &[(String, u32)]| -> Vec<String> {
            v.iter()
                .filter(|(_, n)| *n >= MIN_AFFECTED)
                .map(|(x, _)| x.clone())
                .collect()
        };
        for r in from_key(Dim::Region)
            .into_iter()
            .chain(affected(&s.explanation.regions))
        {
            grew |= self.regions.insert(r);
        }
        for c in from_key(Dim::Channel)
            .into_iter()
            .chain(affected(&s.explanation.channels))
        {
            grew |= self.channels.insert(c);
        }
        for l in from_key(Dim::Language)
            .into_iter()
            .chain(affected(&s.explanation.languages))
        {
            grew |= self.languages.insert(l);
        }
        grew
    }

    /// Whether a new alert's signal belongs to this incident (see the
    /// module docs).
    pub fn relates(&self, s: &Signal, cfg: &CorrelateConfig) -> bool {
        let members = &s.explanation.members;
        let shared = members.iter().filter(|id| self.ids.contains(id)).count();
        if shared >= cfg.min_shared && shared as f64 >= cfg.min_overlap * members.len() as f64 {
            return true;
        }
        let same_topic = self.topics.iter().any(|(k, t)| {
            compatible(k, &s.key) && topic_similarity(t, &s.explanation.topic) >= cfg.min_topic_similarity
        });
        if same_topic {
            return true;
        }
        let nested = self.keys.iter().any(|k| nests(k, &s.key));
        if !nested {
            return false;
        }
        let terms_shared = s
            .explanation
            .top_terms
            .iter()
            .take(5)
            .any(|(t, _)| self.terms.contains(t));
        shared > 0 || terms_shared || members.is_empty() || self.ids.is_empty()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": self.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "rules": self.rules,
            "regions": self.regions,
            "channels": self.channels,
            "languages": self.languages,
            "events": self.ids.len(),
        })
    }
}

/// No dimension has two different values in the two keys (`region=de` and
/// `brand=V/product=X2` are compatible, `product=X2` and `product=X3` not).
pub(crate) fn compatible(a: &SignalKey, b: &SignalKey) -> bool {
    a.0.iter().all(|(d, v)| b.get(*d).is_none_or(|w| w == v))
}

/// One key is the other plus more dimensions (or equal).
pub(crate) fn nests(a: &SignalKey, b: &SignalKey) -> bool {
    let within = |x: &SignalKey, y: &SignalKey| x.0.iter().all(|p| y.0.contains(p));
    within(a, b) || within(b, a)
}

/// The member whose key says most precisely where the incident is: the most
/// dimensions, then the earliest to fire, then the fingerprint.
pub(crate) fn title<'a, I>(members: I) -> Option<&'a str>
where
    I: IntoIterator<Item = (&'a str, &'a Signal, i64)>,
{
    members
        .into_iter()
        .max_by(|a, b| {
            a.1.key
                .0
                .len()
                .cmp(&b.1.key.0.len())
                .then(b.2.cmp(&a.2))
                .then(b.0.cmp(a.0))
        })
        .map(|(fp, _, _)| fp)
}

/// Labels of a key (`brand`, `product`, ...), for routing.
pub(crate) fn key_labels(key: &SignalKey) -> BTreeMap<String, String> {
    key.0.iter().map(|(d, v)| (d.as_str().to_string(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot_core::types::{Explanation, SignalKind};

    fn sig(key: SignalKey, members: Vec<u64>, terms: &[&str]) -> Signal {
        Signal {
            kind: SignalKind::VolumeSpike,
            key,
            window_start: 0,
            window_end: 1,
            observed: 1,
            expected: 1.0,
            population: 1,
            baseline_share: 0.0,
            p_value: 1.0,
            cluster: None,
            reason: None,
            explanation: Explanation {
                top_terms: terms.iter().map(|t| (t.to_string(), 1)).collect(),
                members,
                ..Default::default()
            },
        }
    }

    fn k(pairs: &[(Dim, &str)]) -> SignalKey {
        SignalKey(pairs.iter().map(|(d, v)| (*d, v.to_string())).collect())
    }

    #[test]
    fn shared_events_relate_unrelated_looking_keys() {
        let cfg = CorrelateConfig::default();
        let mut f = Footprint::default();
        f.add(&sig(k(&[(Dim::Product, "X2")]), (0..40).collect(), &["battery"]));
        // The region's signal counts the same reviews plus its background.
        assert!(f.relates(&sig(k(&[(Dim::Region, "DE")]), (20..80).collect(), &["akku"]), &cfg));
        // Another region's complaints: none shared, keys not nested.
        assert!(!f.relates(
            &sig(k(&[(Dim::Region, "FR")]), (100..160).collect(), &["battery"]),
            &cfg
        ));
        // One shared review among 60 is not enough.
        assert!(!f.relates(&sig(k(&[(Dim::Region, "ES")]), (39..99).collect(), &["x"]), &cfg));
    }

    #[test]
    fn nested_keys_relate_only_with_common_content() {
        let cfg = CorrelateConfig::default();
        let mut f = Footprint::default();
        f.add(&sig(
            k(&[(Dim::Brand, "V"), (Dim::Product, "X2")]),
            (0..40).collect(),
            &["battery", "hot"],
        ));
        let brand = k(&[(Dim::Brand, "V")]);
        assert!(f.relates(&sig(brand.clone(), (500..600).collect(), &["hot"]), &cfg));
        assert!(f.relates(&sig(brand.clone(), (39..600).collect(), &["screen"]), &cfg));
        assert!(!f.relates(&sig(brand, (500..600).collect(), &["screen"]), &cfg));
        // A sibling product is not nested.
        let sibling = k(&[(Dim::Brand, "V"), (Dim::Product, "X3")]);
        assert!(!f.relates(&sig(sibling, (500..600).collect(), &["hot"]), &cfg));
    }

    #[test]
    fn the_same_topic_relates_compatible_keys_in_any_language() {
        let cfg = CorrelateConfig::default();
        let mut f = Footprint::default();
        let topic = |v: &[i8]| v.to_vec();
        let mut de = sig(
            k(&[(Dim::Brand, "V"), (Dim::Region, "de")]),
            (0..10).collect(),
            &["akku"],
        );
        de.explanation.topic = topic(&[100, 20, -5, 0]);
        f.add(&de);
        // Only region=de so far: region=jp contradicts it.
        let mut jp = sig(k(&[(Dim::Region, "jp")]), (50..60).collect(), &["熱"]);
        jp.explanation.topic = topic(&[90, 30, 0, 10]);
        assert!(!f.relates(&jp, &cfg));
        let mut product = sig(
            k(&[(Dim::Brand, "V"), (Dim::Product, "X2")]),
            (0..10).collect(),
            &["akku"],
        );
        product.explanation.topic = topic(&[100, 20, -5, 0]);
        f.add(&product);
        // Japanese complaints about the same thing, no shared reviews or terms.
        assert!(f.relates(&jp, &cfg));
        // Another topic is not.
        jp.explanation.topic = topic(&[0, -10, 100, 40]);
        assert!(!f.relates(&jp, &cfg));
        // The same topic on another brand: keys contradict.
        let mut other = sig(k(&[(Dim::Brand, "W")]), (70..80).collect(), &["x"]);
        other.explanation.topic = topic(&[100, 20, -5, 0]);
        assert!(!f.relates(&other, &cfg));
        assert!(compatible(
            &k(&[(Dim::Region, "jp")]),
            &k(&[(Dim::Brand, "V"), (Dim::Product, "X2")])
        ));
    }

    #[test]
    fn the_title_is_the_most_specific_key() {
        let a = sig(k(&[(Dim::Brand, "V")]), vec![], &[]);
        let b = sig(k(&[(Dim::Brand, "V"), (Dim::Product, "X2")]), vec![], &[]);
        let c = sig(k(&[(Dim::Region, "DE"), (Dim::Brand, "V")]), vec![], &[]);
        assert_eq!(title([("a", &a, 0), ("b", &b, 5), ("c", &c, 9)]), Some("b"));
        assert_eq!(title([("a", &a, 0), ("c", &c, 9), ("b", &b, 5)]), Some("b"));
    }

    #[test]
    fn spread_is_reported_once_per_new_place() {
        let mut f = Footprint::default();
        let mut s = sig(k(&[(Dim::Product, "X2")]), vec![1, 2], &[]);
        s.explanation.regions = vec![("DE".into(), 5), ("FR".into(), 1)];
        assert!(f.add(&s));
        assert!(!f.add(&s), "nothing new");
        assert!(!f.regions.contains("FR"), "one stray review is not a spread");
        s.explanation.regions.push(("IT".into(), 3));
        assert!(f.add(&s));
        assert_eq!(f.regions.iter().collect::<Vec<_>>(), ["DE", "IT"]);
    }
}
