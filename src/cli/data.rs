//! Labelled data for the training subcommands: reading JSONL rows (with a
//! clear error naming the file and line), and choosing training /
//! calibration items per (origin, language, label) in a stable hashed order.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use earshot::model::train::{self, Split};
use earshot::types::Category;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub text: String,
    pub label: String,
    #[serde(default = "und")]
    pub lang: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub subset: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// Which part of an evaluation file a row belongs to (e.g. `adapt` / `eval`).
    #[serde(default)]
    pub split: Option<String>,
    /// `review`, `post` or `other`, as written by scripts/fetch-train-data.py.
    #[serde(default)]
    pub domain: Option<String>,
}

impl Labelled {
    pub fn origin(&self) -> String {
        format!(
            "{}/{}",
            self.source.as_deref().unwrap_or("unknown"),
            self.subset.as_deref().unwrap_or("-")
        )
    }
}

fn und() -> String {
    "und".into()
}

pub fn read_labelled(path: &Path) -> anyhow::Result<Vec<Labelled>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: Labelled = serde_json::from_str(line).with_context(|| {
            format!(
                "{}:{}: expected {{\"text\", \"label\", \"lang\"}}",
                path.display(),
                n + 1
            )
        })?;
        if !matches!(item.label.as_str(), "neg" | "pos" | "neu") {
            anyhow::bail!(
                "{}:{}: label must be neg, pos or neu, found `{}`",
                path.display(),
                n + 1,
                item.label
            );
        }
        // A misspelt category would silently drop the row from every
        // category count and fit.
        if let Some(cat) = item.category.as_deref().filter(|c| Category::parse(c).is_none()) {
            anyhow::bail!(
                "{}:{}: category must be one of product_quality, logistics, after_sales, price, other, found `{cat}`",
                path.display(),
                n + 1
            );
        }
        out.push(item);
    }
    Ok(out)
}

/// The complaints of `files` for a category head: rows whose `split` is
/// `split` (rows without one too), each with its parsed category. A row
/// without a valid `category` is an error naming the file and `flag`.
pub fn read_categorised(files: &[PathBuf], split: &str, flag: &str) -> anyhow::Result<Vec<(Labelled, Category)>> {
    let mut out = Vec::new();
    for f in files {
        for item in read_labelled(f)? {
            if item.split.as_deref().is_some_and(|s| s != split) {
                continue;
            }
            let Some(cat) = item.category.as_deref().and_then(Category::parse) else {
                anyhow::bail!(
                    "{}: {flag} row without a valid `category` ({:?}); use one of product_quality, logistics, after_sales, price, other",
                    f.display(),
                    item.category
                );
            };
            out.push((item, cat));
        }
    }
    Ok(out)
}

/// Chosen items with their split, and the used/available counts per
/// `origin/lang/label/split`.
pub type Selection<'a> = (Vec<(&'a Labelled, Split)>, BTreeMap<String, serde_json::Value>);

/// How many items a group may give: `default`, unless the group's
/// `origin/lang/label` contains one of `overrides`' patterns (the first that
/// matches wins).
#[derive(Debug, Clone)]
pub struct GroupCaps {
    pub default: usize,
    pub overrides: Vec<(String, usize)>,
}

impl GroupCaps {
    pub fn uniform(default: usize) -> Self {
        Self {
            default,
            overrides: Vec::new(),
        }
    }

    /// The cap of the group `origin/lang/label`.
    pub fn of(&self, group: &str) -> usize {
        self.overrides
            .iter()
            .find(|(pattern, _)| group.contains(pattern.as_str()))
            .map_or(self.default, |&(_, n)| n)
    }
}

/// Refuses a `--cap` pattern that no selected group's `origin/lang/label`
/// contains (a typo would otherwise leave every cap as it was), naming a
/// few of the groups there are. `counts` is what the selection returned.
fn check_caps_matched(caps: &GroupCaps, counts: &BTreeMap<String, serde_json::Value>) -> anyhow::Result<()> {
    let groups: Vec<&str> = counts
        .keys()
        .map(|k| k.rsplit_once('/').map_or(k.as_str(), |(group, _split)| group))
        .collect();
    for (pattern, n) in &caps.overrides {
        if !groups.iter().any(|g| g.contains(pattern.as_str())) {
            let mut some: Vec<&str> = groups.clone();
            some.dedup();
            some.truncate(5);
            anyhow::bail!(
                "--cap {pattern}={n} matches no group; groups are named origin/lang/label, e.g. {}",
                some.join(", ")
            );
        }
    }
    Ok(())
}

/// Parses `--cap PATTERN=N` (the last `=` splits).
pub fn parse_cap(s: &str) -> Result<(String, usize), String> {
    let (pattern, n) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("`{s}` is not PATTERN=N (e.g. dantestocks=400)"))?;
    if pattern.is_empty() {
        return Err(format!(
            "`{s}` has an empty PATTERN (a part of a group's origin/lang/label)"
        ));
    }
    let n = n
        .parse()
        .map_err(|_| format!("`{s}`: N must be a whole number of items, got `{n}`"))?;
    Ok((pattern.to_string(), n))
}

/// Training and calibration items of `data` (by text hash), capped per
/// (origin, lang, label) in a stable hashed order: the group's cap for
/// training, a quarter of it for calibration. Held-out items, texts of
/// `excluded`, origins containing a `skip` string and rows `keep` refuses
/// are never chosen. A `caps` pattern that matches no group is an error.
pub fn select_train_calibrate<'a>(
    data: &'a [Labelled],
    skip: &[String],
    excluded: &HashSet<String>,
    caps: &GroupCaps,
    keep: impl Fn(&Labelled) -> bool,
) -> anyhow::Result<Selection<'a>> {
    let mut groups: Groups = BTreeMap::new();
    for item in data {
        let origin = item.origin();
        if !keep(item) || skip.iter().any(|s| origin.contains(s.as_str())) || excluded.contains(&item.text) {
            continue;
        }
        let s = match train::split_of(&item.text) {
            Split::Train => 0,
            Split::Calibrate => 1,
            Split::HeldOut => continue,
        };
        groups
            .entry((origin, item.lang.clone(), item.label.clone(), s))
            .or_default()
            .push(item);
    }
    let (chosen, counts) = choose(groups, |s, base| if s == 0 { base } else { base / 4 }, caps);
    check_caps_matched(caps, &counts)?;
    Ok((chosen, counts))
}

/// Stable rank of an item within its group (lower = chosen first).
fn pick_key(text: &str) -> u64 {
    train::text_hash(text).rotate_left(17)
}

/// Items grouped by (origin, lang, label, split index 0 train / 1 calibrate /
/// 2 held out).
pub type Groups<'a> = BTreeMap<(String, String, String, u8), Vec<&'a Labelled>>;

/// Takes the first `cap(split, base)` items of each group in a stable hashed
/// order, where `base` is the group's cap in `caps` (a quarter of it for long-text
/// subsets, median over 800 characters: they cost ~10x the compute); returns
/// them with their split and the used/available counts per group.
pub fn choose<'a>(groups: Groups<'a>, cap: impl Fn(u8, usize) -> usize, caps: &GroupCaps) -> Selection<'a> {
    let mut chosen = Vec::new();
    let mut counts = BTreeMap::new();
    for ((origin, lang, label, s), mut items) in groups {
        items.sort_by_key(|i| pick_key(&i.text));
        let mut lens: Vec<usize> = items.iter().map(|i| i.text.chars().count()).collect();
        lens.sort_unstable();
        let long = lens.get(lens.len() / 2).copied().unwrap_or(0) > 800;
        let max = caps.of(&format!("{origin}/{lang}/{label}"));
        let base = if long { max / 4 } else { max };
        let available = items.len();
        items.truncate(cap(s, base).max(1));
        let split = [Split::Train, Split::Calibrate, Split::HeldOut][s as usize];
        let name = ["train", "calibrate", "heldout"][s as usize];
        counts.insert(
            format!("{origin}/{lang}/{label}/{name}"),
            json!({ "used": items.len(), "available": available }),
        );
        chosen.extend(items.into_iter().map(|i| (i, split)));
    }
    (chosen, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str, source: &str, label: &str) -> Labelled {
        serde_json::from_value(json!({"text": text, "label": label, "lang": "zh", "source": source})).unwrap()
    }

    #[test]
    fn a_misspelt_label_or_category_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let ok = r#"{"text": "late", "label": "neg", "lang": "en", "category": "logistics"}"#;
        std::fs::write(
            &path,
            format!(
                "{ok}\n{}\n",
                r#"{"text": "x", "label": "neg", "lang": "en", "category": "shipping"}"#
            ),
        )
        .unwrap();
        let e = read_labelled(&path).unwrap_err().to_string();
        assert!(
            e.contains(":2:") && e.contains("`shipping`") && e.contains("logistics, after_sales"),
            "{e}"
        );
        std::fs::write(
            &path,
            format!("{ok}\n{}\n", r#"{"text": "x", "label": "negative", "lang": "en"}"#),
        )
        .unwrap();
        let e = read_labelled(&path).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("`negative`"), "{e}");
        // Rows without a category, or with a valid one, are read.
        std::fs::write(
            &path,
            format!("{ok}\n{}\n", r#"{"text": "y", "label": "pos", "lang": "en"}"#),
        )
        .unwrap();
        assert_eq!(read_labelled(&path).unwrap().len(), 2);
    }

    #[test]
    fn a_cap_pattern_overrides_the_default_for_its_groups_only() {
        let data: Vec<Labelled> = (0..400)
            .flat_map(|i| {
                [
                    item(&format!("corpus text {i}"), "corpus", "neg"),
                    item(&format!("hand-labelled text {i}"), "hand", "neg"),
                ]
            })
            .collect();
        let caps = GroupCaps {
            default: 20,
            overrides: vec![("hand/-/zh".into(), 1000), ("hand".into(), 1)],
        };
        let (chosen, counts) = select_train_calibrate(&data, &[], &HashSet::new(), &caps, |_| true).unwrap();
        let used = |key: &str| counts[key]["used"].as_u64().unwrap();
        let available = |key: &str| counts[key]["available"].as_u64().unwrap();
        assert_eq!(used("corpus/-/zh/neg/train"), 20);
        assert_eq!(used("corpus/-/zh/neg/calibrate"), 5);
        // The first matching pattern wins: every hand-labelled row is kept.
        assert_eq!(used("hand/-/zh/neg/train"), available("hand/-/zh/neg/train"));
        assert_eq!(used("hand/-/zh/neg/calibrate"), available("hand/-/zh/neg/calibrate"));
        assert!(available("hand/-/zh/neg/train") > 200);
        assert_eq!(
            chosen.len() as u64,
            counts.values().map(|c| c["used"].as_u64().unwrap()).sum::<u64>()
        );
        // A pattern that names no group (a typo, or the split) is refused by
        // the selection itself.
        for typo in ["hand/-/zh/pos", "neg/train"] {
            let caps = GroupCaps {
                default: 20,
                overrides: vec![(typo.into(), 5)],
            };
            let e = select_train_calibrate(&data, &[], &HashSet::new(), &caps, |_| true)
                .unwrap_err()
                .to_string();
            assert!(e.contains(typo) && e.contains("corpus/-/zh/neg"), "{e}");
        }
    }

    #[test]
    fn cap_flags_parse_or_say_what_is_wrong() {
        assert_eq!(parse_cap("a=b=30"), Ok(("a=b".to_string(), 30)));
        assert!(parse_cap("dantestocks").unwrap_err().contains("PATTERN=N"));
        assert!(parse_cap("=3").unwrap_err().contains("empty PATTERN"));
        assert!(parse_cap("x=lots").unwrap_err().contains("whole number"));
    }
}
