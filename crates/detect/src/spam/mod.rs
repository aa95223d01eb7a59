//! The fake-wave filter: coordinated near-duplicate bursts, one author
//! posting many, and rating/text contradictions.
//!
//! Near-duplicate fingerprints: texts are normalised (lower case, letters
//! only, whitespace collapsed), cut into character 3-shingles (works for
//! every script) and summarised by a 32-value MinHash; 8 bands of 4 rows
//! index candidate groups within a scope (the `spam.scope` rollup).
//!
//! Sameness is not spam by itself: real customers repeat stock phrases,
//! paste the same complaint ("my order never arrived") and retweet. So
//! * texts with fewer than `min_shingles` 3-shingles are never judged as
//!   near-duplicates (an account pasting one short phrase is still caught
//!   by the author rule);
//! * a group of `burst_min` near-duplicates within `window` is a wave only
//!   with evidence of coordination among its members that carry an author
//!   id: few accounts (`dup_items_per_author` items each on average), or a
//!   template varied into `dup_variants` different texts. Identical texts
//!   from many authors, and items without author ids, are counted as what
//!   they are: complaints;
//! * an author is suspect with `author_max` items in one scope within
//!   `author_window`, or `author_max_spread` over all scopes (a regular
//!   reviewing several products a day is not);
//! * each contradiction is kept out of the statistics, but a wave of them
//!   needs `contradiction_min` within `window` that are also
//!   `contradiction_share` of the scope's items.
//!
//! `SpamFilter` flags suspects (kept out of every crisis statistic) and
//! raises one `ReviewBombing` signal per scope and wave. When a burst or an
//! author is recognised, the members seen before are taken back out of the
//! statistics: the `Ledger` remembers what each accepted event added, for as
//! long as a retraction can still reach it. State is bounded by the
//! windows: groups, authors and per-scope minute counts are swept hourly.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use earshot_core::hash::fnv1a;
use earshot_core::types::{EventTime, Quote, ScoredEvent, Signal, SignalKey};

use crate::explain::spam_signal;
use crate::terms::TermStats;
use crate::window::Span;
use crate::{Counters, SpamConfig, Suspect};

mod minhash;

use minhash::signature_of;
pub use minhash::{bands, normalise, shingles, signature, similarity, Signature, BANDS, MINHASH};

/// What one accepted event added to the statistics, so it can be taken
/// back out.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub(crate) t: EventTime,
    pub(crate) neg: bool,
    pub(crate) keys: Vec<AppliedTo>,
}

/// A key an event was counted into, and the cluster it joined there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppliedTo {
    pub(crate) key_id: u64,
    pub(crate) cluster: Option<u64>,
}

/// Accepted events by sequence number, until they are too old to retract.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    entries: BTreeMap<u64, Applied>,
}

/// Entries kept at most, whatever their age.
const LEDGER_CAP: usize = 2_000_000;

impl Ledger {
    pub(crate) fn record(&mut self, seq: u64, applied: Applied) {
        self.entries.insert(seq, applied);
    }

    /// Removes and returns the entry of `seq` (`None`: unknown, trimmed or
    /// already retracted).
    pub(crate) fn take(&mut self, seq: u64) -> Option<Applied> {
        self.entries.remove(&seq)
    }

    /// Records that `seq` moved to `cluster` in the key `key_id` (see
    /// [`crate::cluster::Clusters::adopt`]), so a retraction takes it out
    /// of the cluster that counts it now.
    pub(crate) fn rehome(&mut self, seq: u64, key_id: u64, cluster: u64) {
        if let Some(a) = self.entries.get_mut(&seq) {
            for to in a.keys.iter_mut().filter(|to| to.key_id == key_id) {
                to.cluster = Some(cluster);
            }
        }
    }

    /// Drops entries of events before `cut`, and the oldest beyond the cap.
    pub(crate) fn trim(&mut self, cut: EventTime) {
        while let Some((&s, a)) = self.entries.iter().next() {
            if a.t < cut || self.entries.len() > LEDGER_CAP {
                self.entries.remove(&s);
            } else {
                break;
            }
        }
    }
}

/// A near-duplicate group within a scope: its leader's signature, the band
/// slots it owns, its members inside the spam window and how many of them
/// each author and each exact text account for.
#[derive(Debug, Clone)]
struct Group {
    leader: Signature,
    band_keys: Vec<BandKey>,
    members: VecDeque<DupMember>,
    /// Members per author (hash of the id), of those with one.
    authors: HashMap<u64, u32>,
    /// Members with an author id per exact normalised text (hash).
    texts: HashMap<u64, u32>,
    with_author: u32,
    quotes: Vec<Quote>,
    flagged: bool,
    scope: SignalKey,
    last: EventTime,
}

/// A near-duplicate group member: when, which event, by whom (0: no id),
/// which exact text.
#[derive(Debug, Clone, Copy)]
struct DupMember {
    t: EventTime,
    seq: u64,
    author: u64,
    text: u64,
}

fn dec(m: &mut HashMap<u64, u32>, k: u64) {
    if let std::collections::hash_map::Entry::Occupied(mut e) = m.entry(k) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

impl Group {
    fn add(&mut self, m: DupMember) {
        if m.author != 0 {
            self.with_author += 1;
            *self.authors.entry(m.author).or_insert(0) += 1;
            *self.texts.entry(m.text).or_insert(0) += 1;
        }
        self.members.push_back(m);
    }

    fn expire(&mut self, from: EventTime) {
        while let Some(m) = self.members.front().copied().filter(|f| f.t < from) {
            self.members.pop_front();
            if m.author != 0 {
                self.with_author -= 1;
                dec(&mut self.authors, m.author);
                dec(&mut self.texts, m.text);
            }
        }
    }

    /// Whether the burst shows coordination: few accounts posting it
    /// (`dup_items_per_author` items each on average, over at least
    /// `burst_min` items with an author id) or a template varied into
    /// `dup_variants` texts by accounts with ids. Identical texts from many
    /// authors, or without ids, are not evidence by themselves.
    fn coordinated(&self, sc: &SpamConfig) -> bool {
        let few_accounts = self.with_author >= sc.burst_min
            && !self.authors.is_empty()
            && f64::from(self.with_author) >= sc.dup_items_per_author * self.authors.len() as f64;
        let variants = self.texts.len() as u32 >= sc.dup_variants;
        few_accounts || variants
    }
}

/// One LSH band value within one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BandKey {
    scope_hash: u64,
    band: usize,
    hash: u64,
}

/// An event by time and sequence number (for retraction).
#[derive(Debug, Clone, Copy)]
struct Member {
    t: EventTime,
    seq: u64,
}

/// The members within `window` of `t`, either side. Members are kept in
/// arrival order and pruned from the front, so a late member sits among
/// newer ones: a burst counts only the members of its own stretch of event
/// time (in a stream without late events, every member kept).
fn around<M: Timed>(members: &VecDeque<M>, t: EventTime, window: i64) -> impl Iterator<Item = &M> + '_ {
    let (lo, hi) = (t.saturating_sub(window), t.saturating_add(window));
    members.iter().filter(move |m| m.time() >= lo && m.time() <= hi)
}

/// Something with an event time (the members of groups and runs).
trait Timed {
    fn time(&self) -> EventTime;
}

impl Timed for Member {
    fn time(&self) -> EventTime {
        self.t
    }
}

impl Timed for DupMember {
    fn time(&self) -> EventTime {
        self.t
    }
}

/// An author's items around `t` (within `window` either side): on the
/// scope `scope_hash`, and on every scope.
fn author_counts(items: &VecDeque<(Member, u64)>, t: EventTime, window: i64, scope_hash: u64) -> (u32, u32) {
    let (lo, hi) = (t.saturating_sub(window), t.saturating_add(window));
    let mut here = 0;
    let mut all = 0;
    for (m, s) in items.iter().filter(|(m, _)| m.t >= lo && m.t <= hi) {
        all += 1;
        here += u32::from(*s == scope_hash && m.t >= lo);
    }
    (here, all)
}

#[derive(Debug, Clone, Default)]
struct Author {
    /// Items with the hash of their scope.
    items: VecDeque<(Member, u64)>,
    /// Items per scope hash.
    per_scope: HashMap<u64, u32>,
    flagged: bool,
}

#[derive(Debug, Clone, Default)]
struct Contradictions {
    times: VecDeque<EventTime>,
    quotes: VecDeque<Quote>,
    active_until: EventTime,
}

/// Items of one scope per minute within the spam window (the denominator of
/// the contradiction share; at most window / 1 min entries).
#[derive(Debug, Clone, Default)]
struct ScopeVolume {
    minutes: VecDeque<(i64, u32)>,
    total: u64,
}

impl ScopeVolume {
    fn add(&mut self, t: EventTime, window: i64) {
        let m = t.div_euclid(60_000);
        match self.minutes.back_mut() {
            Some((last, c)) if *last == m => *c += 1,
            // Late events count into the newest minute (the share is an
            // estimate; order within the window does not matter).
            Some((last, c)) if *last > m => *c += 1,
            _ => self.minutes.push_back((m, 1)),
        }
        self.total += 1;
        let from = t.saturating_sub(window).div_euclid(60_000);
        while self.minutes.front().is_some_and(|&(f, _)| f < from) {
            if let Some((_, c)) = self.minutes.pop_front() {
                self.total -= u64::from(c);
            }
        }
    }
}

/// A check's outcome: whether the event is suspect, and the signal when a
/// wave is recognised with it.
struct Noted {
    suspect: bool,
    signal: Option<Signal>,
}

/// The filter's verdict on one event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Screened {
    pub(crate) suspect: Option<Suspect>,
    /// Review-bombing signals raised now (one per scope and wave).
    pub(crate) signals: Vec<Signal>,
    /// Earlier events to take back out of the statistics, in order.
    pub(crate) retract: Vec<u64>,
}

/// State of the fake-wave filter (capped and swept hourly).
#[derive(Debug, Clone, Default)]
pub(crate) struct SpamFilter {
    groups: BTreeMap<u64, Group>,
    /// Groups that have had two members or more (most texts have no
    /// near-duplicate: the undecided groups are found among these).
    repeated: BTreeSet<u64>,
    bands: HashMap<BandKey, u64>,
    next_group: u64,
    authors: HashMap<String, Author>,
    contradictions: BTreeMap<SignalKey, Contradictions>,
    /// Items per scope in the spam window (for the contradiction share).
    volume: BTreeMap<SignalKey, ScopeVolume>,
    /// Last review-bombing signal per scope (one signal per wave).
    last_signal: BTreeMap<SignalKey, EventTime>,
    pub(crate) ledger: Ledger,
}

impl SpamFilter {
    /// Runs every check on one accepted event (at `seq`, in `scope`).
    pub(crate) fn screen(
        &mut self,
        ev: &ScoredEvent,
        scope: &SignalKey,
        seq: u64,
        quote: Quote,
        ctx: Context<'_>,
    ) -> Screened {
        let e = &ev.event;
        let t = e.event_time;
        let mut out = Screened::default();
        self.volume.entry(scope.clone()).or_default().add(t, ctx.cfg.window);
        if is_contradiction(ev, ctx.cfg.contradiction_prob) {
            ctx.counters.contradictions += 1;
            out.suspect = Some(Suspect::Contradiction);
            if let Some(s) = self.note_contradiction(scope, t, quote.clone(), ctx.cfg, ctx.terms) {
                out.signals.push(s);
            }
        }
        let author = e.author.as_deref().filter(|a| !a.is_empty());
        // 0 stands for "no author id" (a real id hashing to 0 is counted as none).
        let author_hash = author.map_or(0, |a| fnv1a(a.as_bytes()));
        let dup = self.note_near_duplicate(
            scope,
            &e.text,
            Member { t, seq },
            author_hash,
            quote.clone(),
            &ctx,
            &mut out.retract,
        );
        out.signals.extend(dup.signal);
        if dup.suspect && out.suspect.is_none() {
            ctx.counters.spam_near_duplicate += 1;
            out.suspect = Some(Suspect::NearDuplicate);
        }
        if let Some(author) = author {
            let by = self.note_author(author, scope, Member { t, seq }, quote, &ctx, &mut out.retract);
            out.signals.extend(by.signal);
            if by.suspect && out.suspect.is_none() {
                ctx.counters.spam_author += 1;
                out.suspect = Some(Suspect::Author);
            }
        }
        // One review-bombing signal per scope and wave: later recognitions
        // within the spam window extend the wave silently.
        let window = ctx.cfg.window;
        out.signals.retain(|s| {
            let last = self.last_signal.insert(s.key.clone(), s.window_end);
            last.is_none_or(|l| s.window_end.saturating_sub(l) >= window)
        });
        out
    }

    fn note_contradiction(
        &mut self,
        scope: &SignalKey,
        t: EventTime,
        q: Quote,
        sc: &SpamConfig,
        terms: &TermStats,
    ) -> Option<Signal> {
        let c = self.contradictions.entry(scope.clone()).or_default();
        c.times.push_back(t);
        c.quotes.push_back(q);
        let from = t.saturating_sub(sc.window);
        while c.times.front().is_some_and(|&f| f < from) {
            c.times.pop_front();
        }
        while c.quotes.len() > 5 {
            c.quotes.pop_front();
        }
        let hi = t.saturating_add(sc.window);
        let n = c.times.iter().filter(|&&x| x >= from && x <= hi).count() as u32;
        let items = self.volume.get(scope).map_or(0, |v| v.total).max(1);
        let share = f64::from(n) / items as f64;
        if n >= sc.contradiction_min && share >= sc.contradiction_share && t >= c.active_until {
            c.active_until = t.saturating_add(sc.window);
            let quotes: Vec<Quote> = c.quotes.iter().cloned().collect();
            let span = Span { start: from, end: t };
            return Some(spam_signal(scope.clone(), span, n, quotes, "contradictions", terms));
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn note_near_duplicate(
        &mut self,
        scope: &SignalKey,
        text: &str,
        m: Member,
        author: u64,
        q: Quote,
        ctx: &Context<'_>,
        retract: &mut Vec<u64>,
    ) -> Noted {
        let sc = ctx.cfg;
        let norm = normalise(text);
        // A short text carries too little evidence to be judged (and is not
        // kept: the state stays with texts that can be).
        if (shingles(&norm) as u64) < u64::from(sc.min_shingles) {
            return Noted {
                suspect: false,
                signal: None,
            };
        }
        let text_hash = fnv1a(norm.as_bytes());
        let sig = signature_of(&norm);
        let scope_hash = fnv1a(scope.to_string().as_bytes());
        let bands = bands(&sig);
        let band_key = |band: usize, hash: u64| BandKey { scope_hash, band, hash };
        let mut found = None;
        for (b, h) in bands.iter().enumerate() {
            if let Some(&g) = self.bands.get(&band_key(b, *h)) {
                if let Some(grp) = self.groups.get(&g) {
                    if similarity(&grp.leader, &sig) >= sc.near_dup_similarity {
                        found = Some(g);
                        break;
                    }
                }
            }
        }
        let gid = match found {
            Some(g) => g,
            None => {
                let g = self.next_group;
                self.next_group += 1;
                let mut band_keys = Vec::new();
                for (b, h) in bands.iter().enumerate() {
                    let k = band_key(b, *h);
                    if let std::collections::hash_map::Entry::Vacant(v) = self.bands.entry(k) {
                        v.insert(g);
                        band_keys.push(k);
                    }
                }
                self.groups.insert(
                    g,
                    Group {
                        leader: sig,
                        band_keys,
                        members: VecDeque::new(),
                        authors: HashMap::new(),
                        texts: HashMap::new(),
                        with_author: 0,
                        quotes: Vec::new(),
                        flagged: false,
                        scope: scope.clone(),
                        last: m.t,
                    },
                );
                g
            }
        };
        let Some(grp) = self.groups.get_mut(&gid) else {
            return Noted {
                suspect: false,
                signal: None,
            };
        };
        let t = m.t;
        grp.add(DupMember {
            t,
            seq: m.seq,
            author,
            text: text_hash,
        });
        grp.last = grp.last.max(t);
        grp.expire(t.saturating_sub(sc.window));
        if grp.members.len() >= 2 {
            self.repeated.insert(gid);
        }
        if grp.quotes.len() < 5 {
            grp.quotes.push(q);
        }
        if grp.flagged {
            return Noted {
                suspect: true,
                signal: None,
            };
        }
        let n = around(&grp.members, t, sc.window).count() as u32;
        if n >= sc.burst_min && grp.coordinated(sc) {
            grp.flagged = true;
            retract.extend(around(&grp.members, t, sc.window).map(|m| m.seq));
            let start = around(&grp.members, t, sc.window).next().map_or(t, |f| f.t);
            let span = Span { start, end: t };
            let signal = spam_signal(
                grp.scope.clone(),
                span,
                n,
                grp.quotes.clone(),
                "near_duplicates",
                ctx.terms,
            );
            return Noted {
                suspect: true,
                signal: Some(signal),
            };
        }
        Noted {
            suspect: false,
            signal: None,
        }
    }

    fn note_author(
        &mut self,
        author: &str,
        scope: &SignalKey,
        m: Member,
        q: Quote,
        ctx: &Context<'_>,
        retract: &mut Vec<u64>,
    ) -> Noted {
        let sc = ctx.cfg;
        let t = m.t;
        let scope_hash = fnv1a(scope.to_string().as_bytes());
        let a = self.authors.entry(author.to_string()).or_default();
        a.items.push_back((m, scope_hash));
        *a.per_scope.entry(scope_hash).or_insert(0) += 1;
        let from = t.saturating_sub(sc.author_window);
        while let Some((_, s)) = a.items.front().copied().filter(|(f, _)| f.t < from) {
            a.items.pop_front();
            dec(&mut a.per_scope, s);
        }
        // Counted around the item's own time: a late item sits among newer
        // ones and joins only the run of its own stretch of event time.
        let window = sc.author_window;
        let (here, all) = author_counts(&a.items, t, window, scope_hash);
        if here >= sc.author_max || all >= sc.author_max_spread {
            if a.flagged {
                return Noted {
                    suspect: true,
                    signal: None,
                };
            }
            a.flagged = true;
            let near = || {
                a.items
                    .iter()
                    .map(|(m, _)| m)
                    .filter(|m| m.t >= t.saturating_sub(window) && m.t <= t.saturating_add(window))
            };
            retract.extend(near().map(|m| m.seq));
            let start = near().map(|m| m.t).min().unwrap_or(t);
            let n = all;
            let span = Span { start, end: t };
            let signal = spam_signal(scope.clone(), span, n, vec![q], "author", ctx.terms);
            return Noted {
                suspect: true,
                signal: Some(signal),
            };
        }
        // The flag ends once the author's recent items are below the limit;
        // a late item with few others around it says nothing about now.
        let newest = a.items.iter().map(|(m, _)| m.t).max().unwrap_or(t);
        let (here_now, all_now) = author_counts(&a.items, newest, window, scope_hash);
        if newest <= t || (here_now < sc.author_max && all_now < sc.author_max_spread) {
            a.flagged = false;
        }
        Noted {
            suspect: false,
            signal: None,
        }
    }

    /// Members with an author id (sequence number to group) of the
    /// near-duplicate groups the filter has not judged yet at `end`:
    /// unflagged, with at least two such members within `window` before
    /// `end`, from fewer than `2 * burst_min` accounts (a group posted by
    /// that many accounts without coordination is taken for what it looks
    /// like: customers repeating a complaint). Members without an author id
    /// are never evidence of coordination, so never undecided.
    /// The window tests hold such a group to one item until it is decided
    /// (see `evaluate`), as the early tests do with every near-duplicate.
    pub(crate) fn undecided(&self, end: EventTime, sc: &SpamConfig) -> HashMap<u64, u64> {
        let from = end.saturating_sub(sc.window);
        let mut out = HashMap::new();
        let mut accounts = Vec::new();
        let groups = self
            .repeated
            .iter()
            .filter_map(|id| self.groups.get(id).map(|g| (*id, g)));
        for (id, g) in groups.filter(|(_, g)| !g.flagged && g.last >= from) {
            let authored = || g.members.iter().filter(|m| m.author != 0 && m.t >= from && m.t <= end);
            accounts.clear();
            accounts.extend(authored().map(|m| m.author));
            let n = accounts.len();
            accounts.sort_unstable();
            accounts.dedup();
            if n >= 2 && (accounts.len() as u32) < 2 * sc.burst_min {
                out.extend(authored().map(|m| (m.seq, id)));
            }
        }
        out
    }

    /// Hourly clean-up: groups, authors, contradiction bursts and wave
    /// markers that fell out of their windows before `end`.
    pub(crate) fn sweep(&mut self, end: EventTime, sc: &SpamConfig) {
        let from = end.saturating_sub(sc.window);
        let stale: Vec<u64> = self
            .groups
            .iter()
            .filter(|(_, g)| g.last < from)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.repeated.remove(&id);
            if let Some(g) = self.groups.remove(&id) {
                for k in g.band_keys {
                    if self.bands.get(&k) == Some(&id) {
                        self.bands.remove(&k);
                    }
                }
            }
        }
        let author_from = end.saturating_sub(sc.author_window);
        self.authors
            .retain(|_, a| a.items.iter().any(|(m, _)| m.t >= author_from));
        self.volume
            .retain(|_, v| v.minutes.back().is_some_and(|&(m, _)| m >= from.div_euclid(60_000)));
        self.last_signal.retain(|_, t| *t >= from);
        self.contradictions.retain(|_, c| c.times.iter().any(|&t| t >= from));
    }
}

/// What the checks read besides the event: settings, term statistics (for
/// explanations) and the counters they bump.
pub(crate) struct Context<'a> {
    pub(crate) cfg: &'a SpamConfig,
    pub(crate) terms: &'a TermStats,
    pub(crate) counters: &'a mut Counters,
}

/// A rating contradicted by the text: 4+ stars with the negative
/// probability at least `prob`, or 2 stars or fewer with the positive one.
fn is_contradiction(ev: &ScoredEvent, prob: f32) -> bool {
    let Some(r) = ev.event.rating.filter(|r| r.is_finite()) else {
        return false;
    };
    let p = &ev.scored.probs;
    (r >= 4.0 && p.negative >= prob) || (r <= 2.0 && p.positive >= prob)
}
