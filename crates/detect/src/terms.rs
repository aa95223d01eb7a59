//! Multilingual term extraction for explanations. Every term is a substring
//! of the lower-cased text that lies inside one word or one script run, never
//! across a word boundary; stop words (function words, per language, in
//! [`STOP_WORDS`]) are dropped. Terms are ranked against a bounded global
//! document-frequency table ([`TermStats`]).
//!
//! - **Space-separated scripts** (Latin, Cyrillic, Greek, Hangul, ...):
//!   lower-cased words of three characters or more, not all digits.
//! - **Chinese** (a text with Han characters and no kana): each Han run is cut
//!   into dictionary words by jieba-rs, with its dictionary embedded in the
//!   crate (plus [`ZH_EXTRA_WORDS`]) and its HMM for unknown words off.
//!   The segmenter is built once, lazily, on the first Chinese text: +33 MB
//!   RSS and ~0.4 s (release); a process that never sees Chinese never builds
//!   it; the dictionary adds ~2.1 MB (zstd) to the binary. Then ~30 µs per
//!   60-character review (1.0–1.4× the character bigrams it replaces).
//!   Single-character words are kept ("烫", "差") unless they are stop words.
//! - **Japanese** (a text with any hiragana or katakana): fallback without a
//!   dictionary, since the Japanese dictionaries on crates.io download their
//!   data from elsewhere at build time (lindera-ipadic). Runs are segmented by
//!   script: kanji runs ("充電", "熱"), katakana runs with the long-vowel mark
//!   ("バッテリー"), Latin/digit runs as words; hiragana runs (particles,
//!   okurigana, auxiliaries) are dropped, and so are stop words (mostly
//!   single kanji). "バッテリーが熱くなって怖い" gives "バッテリー", "熱",
//!   "怖". Kanji words not separated by kana stay one term ("充電中",
//!   "片方聞"). On the 98 Japanese fixture reviews, TinySegmenter (crates.io)
//!   split no better (it cut "化粧水", "初期不良"), so it was not added.
//!
//! Pure and deterministic: no I/O, clocks, threads or randomness; the only
//! state is the static dictionary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

/// Function words per language: a word (or, for Chinese and Japanese, a
/// segment) found in any list is never a term. Latin-script lists need only
/// words of three characters or more (shorter ones are never terms).
pub const STOP_WORDS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "the", "and", "for", "was", "but", "this", "that", "with", "not", "have", "has", "had", "are", "you",
            "all", "its", "it's", "they", "them", "from", "one", "after", "just", "very", "too", "out", "get", "got",
            "what", "when", "will", "would", "can", "could", "been", "than", "then", "there", "their", "our", "your",
            "any", "only", "still", "also", "about", "were", "which", "into", "because", "some", "does", "did",
            "don't", "i'm", "i've", "these", "those", "who", "how", "being", "here",
        ],
    ),
    (
        "de",
        &[
            "und", "der", "die", "das", "ist", "nicht", "ein", "eine", "einen", "einem", "einer", "mit", "für", "auf",
            "den", "dem", "des", "sich", "nach", "auch", "noch", "aber", "wird", "war", "bei", "von", "ich", "sie",
            "hat", "habe", "nur", "schon", "sehr", "wie", "kein", "keine", "wir", "ihr", "mir", "mich", "uns", "sind",
            "waren", "wurde", "werden", "kann", "dass", "wenn", "oder", "als", "aus", "über", "man", "dann", "nichts",
        ],
    ),
    (
        "fr",
        &[
            "les", "des", "une", "est", "pas", "que", "qui", "pour", "dans", "sur", "avec", "mais", "plus", "par",
            "très", "elle", "ils", "son", "ses", "été", "mon", "même", "tout", "sans", "aux", "ces", "cette", "nous",
            "vous", "leur", "ont", "avait", "était", "suis", "fait", "comme", "j'ai", "c'est", "n'est", "qu'il",
        ],
    ),
    (
        "es",
        &[
            "los", "las", "una", "uno", "unos", "unas", "por", "con", "para", "que", "del", "muy", "pero", "más",
            "sin", "como", "este", "esta", "fue", "mis", "les", "está", "están", "era", "son", "hay", "todo", "nos",
            "sus", "cuando", "también", "solo",
        ],
    ),
    (
        "it",
        &[
            "non", "che", "per", "gli", "una", "con", "del", "dei", "della", "delle", "sono", "questo", "questa",
            "molto", "anche", "come", "era", "stato", "dopo", "nel", "nella", "alla", "più",
        ],
    ),
    (
        "pt",
        &[
            "não", "com", "uma", "mais", "para", "ainda", "que", "por", "das", "mas", "muito", "foi", "como", "este",
            "esta", "isso", "são", "tem", "nos", "pelo", "pela",
        ],
    ),
    (
        "nl",
        &[
            "het", "een", "van", "dat", "die", "niet", "ook", "maar", "met", "voor", "zijn", "naar", "heb", "heeft",
            "was", "wel", "nog", "dan", "bij", "als", "wat", "deze", "kan", "werd", "ben",
        ],
    ),
    (
        "zh",
        &[
            "的", "了", "是", "我", "也", "很", "都", "就", "还", "和", "在", "有", "不", "这", "那", "个", "吗", "吧",
            "呢", "你", "他", "她", "它", "们", "我们", "他们", "啊", "呀", "着", "过", "被", "把", "给", "又", "才",
            "与", "而", "但", "但是", "因为", "所以", "如果", "这个", "那个", "一个", "什么", "就是", "还是", "没有",
            "可以", "自己", "已经", "会", "要", "能", "说", "到", "对", "让", "从", "太", "一", "没", "只", "便", "再",
            "却", "得", "去", "来", "上", "中", "比", "地", "之", "其", "以", "为", "后", "下", "时", "当", "点",
            "有点", "比较", "而且", "不过",
        ],
    ),
    (
        "ja",
        &[
            // Particles and auxiliaries; hiragana runs are dropped anyway, listed
            // so the list says what Japanese treats as function words.
            "の", "に", "は", "を", "が", "で", "と", "も", "た", "て", "し", "です", "ます",
            // Kanji that survive the hiragana rule but explain nothing.
            "私", "僕", "自分", "事", "物", "方", "何", "今", "今回", "時", "度", "回", "個", "様", "等", "他", "本当",
            "月", "日", "年", "分", "件", "週",
        ],
    ),
];

static STOP: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| STOP_WORDS.iter().flat_map(|(_, words)| words.iter().copied()).collect());

fn is_stop(word: &str) -> bool {
    STOP.contains(word)
}

/// Review words missing from jieba's dictionary (each cut in two without
/// them), added so they stay one term.
pub const ZH_EXTRA_WORDS: &[&str] = &[
    "充电宝",
    "差评",
    "中评",
    "掉漆",
    "卡顿",
    "闪退",
    "漏液",
    "发烫",
    "蓝屏",
    "没电",
    "刷机",
];

/// jieba-rs with its embedded dictionary, built on the first Chinese text.
static JIEBA: LazyLock<jieba_rs::Jieba> = LazyLock::new(|| {
    let mut jieba = jieba_rs::Jieba::new();
    for word in ZH_EXTRA_WORDS {
        jieba.add_word(word, None, None);
    }
    jieba
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Script {
    Han,
    Hiragana,
    Katakana,
    /// Any other letter or digit: space-separated words.
    Word,
    Other,
}

fn script(c: char) -> Script {
    match c as u32 {
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3005 | 0x3006 => Script::Han,
        0x3041..=0x309F => Script::Hiragana,
        // Katakana with the long-vowel mark ー (0x30FC), not the middle dot
        // ・ (0x30FB); phonetic extensions; half-width katakana.
        0x30A1..=0x30FA | 0x30FC..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Script::Katakana,
        _ if c.is_alphanumeric() => Script::Word,
        _ => Script::Other,
    }
}

fn is_cjk(s: Script) -> bool {
    matches!(s, Script::Han | Script::Hiragana | Script::Katakana)
}

/// Distinct terms of one text, in first-seen order.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        if !is_stop(t) && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    };
    let lower = text.to_lowercase();
    let japanese = lower
        .chars()
        .any(|c| matches!(script(c), Script::Hiragana | Script::Katakana));
    let mut rest = lower.as_str();
    while let Some(c) = rest.chars().next() {
        let s = script(c);
        if is_cjk(s) {
            let end = run_end(rest, |c| is_cjk(script(c)));
            let run = &rest[..end];
            if japanese {
                japanese_terms(run, &mut push);
            } else {
                chinese_terms(run, &mut push);
            }
            rest = &rest[end..];
        } else if s == Script::Word {
            let end = run_end(rest, |c| script(c) == Script::Word || c == '\'');
            let w = rest[..end].trim_matches('\'');
            if w.chars().count() >= 3 && !w.chars().all(char::is_numeric) {
                push(w);
            }
            rest = &rest[end..];
        } else {
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Byte length of the longest prefix of `s` whose characters satisfy `keep`.
fn run_end(s: &str, keep: impl Fn(char) -> bool) -> usize {
    s.char_indices().find(|&(_, c)| !keep(c)).map_or(s.len(), |(i, _)| i)
}

/// A Han run of a Chinese text, cut into dictionary words by jieba. The HMM
/// for unknown words is off: it glues leftover characters into non-words
/// across word boundaries ("充电宝用了" gave "宝用").
fn chinese_terms(run: &str, push: &mut impl FnMut(&str)) {
    for token in JIEBA.cut(run, false) {
        push(token.word);
    }
}

/// A kanji/kana run of a Japanese text, segmented by script: kanji and
/// katakana runs are terms, hiragana runs are dropped.
fn japanese_terms(run: &str, push: &mut impl FnMut(&str)) {
    let mut rest = run;
    while let Some(c) = rest.chars().next() {
        let s = script(c);
        let end = run_end(rest, |c| script(c) == s);
        let part = &rest[..end];
        let keep = match s {
            Script::Han => true,
            Script::Katakana => part.chars().filter(|&c| c != 'ー').count() >= 2,
            _ => false,
        };
        if keep {
            push(part);
        }
        rest = &rest[end..];
    }
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

    fn has(t: &[String], w: &str) -> bool {
        t.iter().any(|x| x == w)
    }

    #[test]
    fn english_words() {
        let t = terms("The battery gets HOT, the battery swells! It's 100% broken, 2024.");
        assert_eq!(t, vec!["battery", "gets", "hot", "swells", "broken"]);
    }

    #[test]
    fn stop_words_are_dropped_per_language() {
        assert_eq!(
            terms("Der Akku ist nicht gut und wird heiß"),
            vec!["akku", "gut", "heiß"]
        );
        assert_eq!(
            terms("La batterie est morte, très déçu"),
            vec!["batterie", "morte", "déçu"]
        );
        assert_eq!(terms("De batterij is niet goed"), vec!["batterij", "goed"]);
        assert_eq!(terms("这个东西我也不喜欢"), vec!["东西", "喜欢"]);
    }

    #[test]
    fn chinese_words_not_bigrams() {
        let z = terms("这个充电宝用了两天电池鼓包了");
        for w in ["充电宝", "鼓包", "电池"] {
            assert!(has(&z, w), "{w} missing from {z:?}");
        }
        // No term crosses a word boundary, and function words are gone.
        for w in ["宝用", "充电", "池鼓", "包了", "了", "这个"] {
            assert!(!has(&z, w), "{w} in {z:?}");
        }
        assert_eq!(terms("充电宝很烫"), vec!["充电宝", "烫"]);
        assert_eq!(
            terms("iPhone充电宝的battery很烫!"),
            vec!["iphone", "充电宝", "battery", "烫"]
        );
    }

    #[test]
    fn word_lists_are_usable() {
        for (lang, words) in STOP_WORDS {
            for w in *words {
                assert_eq!(w.to_lowercase(), *w, "{lang}: {w} never matches lower-cased text");
                if !matches!(*lang, "zh" | "ja") {
                    assert!(w.chars().count() >= 3, "{lang}: {w} is never a term anyway");
                }
            }
        }
        for w in ZH_EXTRA_WORDS {
            assert_eq!(terms(w), vec![w.to_string()]);
        }
    }

    #[test]
    fn japanese_by_script_runs() {
        let j = terms("バッテリーが熱くなって怖い");
        assert_eq!(j, vec!["バッテリー", "熱", "怖"]);
        let j = terms("充電中に本体が熱くなり、iPhoneのケースも溶けました。");
        assert_eq!(j, vec!["充電中", "本体", "熱", "iphone", "ケース", "溶"]);
        // Cross-script bigrams of the old extractor never come back.
        for t in terms("イヤホンが2週間で片方聞こえなくなりました。最悪です。") {
            let scripts: HashSet<Script> = t.chars().map(script).collect();
            assert_eq!(scripts.len(), 1, "{t} mixes scripts");
            assert!(!scripts.contains(&Script::Hiragana), "{t}");
        }
    }

    proptest::proptest! {
        #[test]
        fn terms_are_substrings_within_one_script(text in "[a-zA-Z0-9 的了充电宝鼓包电池很烫あがでくなっバッテリーケース熱怖溶。、！]{0,40}") {
            let lower = text.to_lowercase();
            for t in terms(&text) {
                proptest::prop_assert!(lower.contains(&t), "{} not in {}", t, lower);
                proptest::prop_assert!(!is_stop(&t));
                let scripts: HashSet<Script> = t.chars().filter(|&c| c != '\'').map(script).collect();
                proptest::prop_assert_eq!(scripts.len(), 1, "{} mixes scripts", t);
            }
        }
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
