//! Multilingual term extraction for explanations: lower-cased words (three
//! characters or more, minus a small stop list) for space-separated scripts;
//! character bigrams for Chinese and Japanese runs (no dictionary needed).
//! Terms are ranked against a bounded global document-frequency table.

use std::collections::{BTreeMap, HashMap};

const STOP: &[&str] = &[
    // en
    "the", "and", "for", "was", "but", "this", "that", "with", "not", "have", "has", "had", "are", "you", "all", "its",
    "it's", "they", "them", "from", "one", "after", "just", "very", "too", "out", "get", "got", "what", "when", "will",
    "would", "can", "could", "been", "than", "then", "there", "their", "our", "your", "any", "only", "still", "also",
    "about", "my", // de
    "und", "der", "die", "das", "ist", "nicht", "ein", "eine", "mit", "für", "auf", "den", "dem", "des", "sich",
    "nach", "auch", "noch", "aber", "wird", "war", "bei", "von", "zu", "ich", "sie", "hat", "habe", "nur", "schon",
    "sehr", "wie", "kein", "keine", // fr
    "les", "des", "une", "est", "pas", "que", "qui", "pour", "dans", "sur", "avec", "mais", "plus", "par", "très",
    "elle", "ils", "son", "ses", "été", "mon", "même", "tout", "sans", // es / it / pt
    "los", "las", "una", "por", "con", "para", "que", "del", "muy", "pero", "más", "sin", "como", "este", "esta",
    "fue", "mis", "non", "che", "per", "gli", "della", "sono", "não", "com", "uma", "mais", "para", "ainda",
];

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // hiragana, katakana
        | 0x3400..=0x4DBF // CJK ext A
        | 0x4E00..=0x9FFF // CJK unified
        | 0xF900..=0xFAFF)
}

fn is_hiragana(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x309F)
}

/// Distinct terms of one text, in first-seen order.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |t: String, out: &mut Vec<String>| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_cjk(c) {
            let start = i;
            while i < chars.len() && is_cjk(chars[i]) {
                i += 1;
            }
            let run = &chars[start..i];
            for w in run.windows(2) {
                if (is_hiragana(w[0]) && is_hiragana(w[1])) || w.contains(&'的') || w.contains(&'了') {
                    continue;
                }
                push(w.iter().collect(), &mut out);
            }
        } else if c.is_alphanumeric() {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '\'') && !is_cjk(chars[i]) {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            let w = w.trim_matches('\'').to_string();
            if w.chars().count() >= 3 && !w.chars().all(|c| c.is_numeric()) && !STOP.contains(&w.as_str()) {
                push(w, &mut out);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Global document frequencies, bounded: when the table outgrows its cap the
/// rarest terms are dropped (the result does not depend on map order).
#[derive(Debug, Clone)]
pub struct TermStats {
    df: HashMap<String, u32>,
    docs: u64,
    cap: usize,
}

impl TermStats {
    pub fn new(cap: usize) -> Self {
        Self {
            df: HashMap::new(),
            docs: 0,
            cap: cap.max(16),
        }
    }

    pub fn add(&mut self, terms: &[String]) {
        self.docs += 1;
        for t in terms {
            *self.df.entry(t.clone()).or_insert(0) += 1;
        }
        if self.df.len() > self.cap {
            let mut floor = 1;
            while self.df.len() > self.cap * 3 / 4 {
                self.df.retain(|_, c| *c > floor);
                floor += 1;
            }
        }
    }

    /// The `n` most distinctive terms of a set of documents: count in the
    /// set times inverse global document frequency; ties by term.
    pub fn top<'a>(&self, docs: impl IntoIterator<Item = &'a [String]>, n: usize) -> Vec<(String, u32)> {
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for d in docs {
            for t in d {
                *counts.entry(t.as_str()).or_insert(0) += 1;
            }
        }
        let total = self.docs as f64 + 1.0;
        let mut scored: Vec<(f64, &str, u32)> = counts
            .into_iter()
            .filter(|&(_, c)| c >= 2)
            .map(|(t, c)| {
                let df = self.df.get(t).copied().unwrap_or(0) as f64;
                (c as f64 * (total / (df + 1.0)).ln().max(0.05), t, c)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        scored.into_iter().take(n).map(|(_, t, c)| (t.to_string(), c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_cjk_bigrams() {
        let t = terms("The battery gets HOT, the battery swells!");
        assert_eq!(t, vec!["battery", "gets", "hot", "swells"]);
        let z = terms("充电宝很烫");
        assert!(
            z.contains(&"充电".to_string()) && z.contains(&"很烫".to_string()),
            "{z:?}"
        );
        let j = terms("バッテリーが熱くなりました");
        assert!(
            j.contains(&"バッ".to_string()) && !j.contains(&"した".to_string()),
            "{j:?}"
        );
    }

    #[test]
    fn distinctive_terms_beat_common_ones() {
        let mut s = TermStats::new(1000);
        for _ in 0..100 {
            s.add(&terms("great product arrived"));
        }
        let docs: Vec<Vec<String>> = (0..5).map(|_| terms("product overheating battery")).collect();
        for d in &docs {
            s.add(d);
        }
        let top = s.top(docs.iter().map(|d| d.as_slice()), 2);
        assert_eq!(top[0].0, "battery");
        assert!(top.iter().all(|(t, _)| t != "product"));
    }
}
