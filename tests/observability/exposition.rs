//! A small parser of the Prometheus text exposition format (0.0.4), the
//! check of a scrape against the declarations in `earshot::metrics`, and
//! `promtool check metrics` (the exposition linter of Prometheus itself).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;

use earshot::metrics::{self as m, Kind};

pub const PROMTOOL: &str = "/usr/bin/promtool";

#[derive(Debug, Default)]
pub struct Family {
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('='), "label {name} without =");
        assert_eq!(chars.next(), Some('"'), "label {name} value not quoted");
        let mut v = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '\\' => match chars.next().expect("dangling escape") {
                    'n' => v.push('\n'),
                    c @ ('\\' | '"') => v.push(c),
                    c => panic!("invalid escape \\{c}"),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        assert!(
            out.insert(name.trim().to_string(), v).is_none(),
            "duplicate label in {s}"
        );
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => panic!("unexpected {c:?} after a label value in {s}"),
        }
    }
    out
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad sample value {v:?}")),
    }
}

/// Families by name; panics on anything that is not valid text format.
pub fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            fams.entry(name.into()).or_default().help = help.into();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line without a type");
            let f = fams.entry(name.into()).or_default();
            assert!(
                f.kind.is_empty() && f.samples.is_empty(),
                "TYPE of {name} repeated or late"
            );
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{kind}"
            );
            f.kind = kind.into();
            current = Some(name.into());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("sample without a value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("unclosed {"))),
            None => (series, BTreeMap::new()),
        };
        let fam = current.clone().expect("sample before any TYPE line");
        let base = [
            name,
            name.trim_end_matches("_bucket"),
            name.trim_end_matches("_sum"),
            name.trim_end_matches("_count"),
        ];
        assert!(base.contains(&fam.as_str()), "sample {name} outside its family {fam}");
        fams.get_mut(&fam).unwrap().samples.push(Sample {
            name: name.into(),
            labels,
            value: parse_value(value),
        });
    }
    fams
}

/// Every family is declared in `earshot::metrics` with this type and these
/// labels; histograms are cumulative and end in `+Inf` = `_count`.
pub fn check_against_declarations(fams: &BTreeMap<String, Family>) {
    for (name, f) in fams {
        let def = m::def(name).unwrap_or_else(|| panic!("{name} is exported but not declared in earshot::metrics"));
        assert_eq!(f.kind, def.kind.as_str(), "{name}");
        assert_eq!(f.help, def.help, "{name}");
        assert!(!f.samples.is_empty(), "{name} has no samples");
        let want: BTreeSet<&str> = def.labels.iter().copied().collect();
        for s in &f.samples {
            let mut got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
            if s.name.ends_with("_bucket") && def.kind == Kind::Histogram {
                assert!(got.remove("le"), "{} without le", s.name);
            }
            assert_eq!(got, want, "labels of {}", s.name);
            assert!(!s.value.is_nan(), "{} is NaN", s.name);
        }
        if def.kind == Kind::Histogram {
            let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
            for s in &f.samples {
                let key: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                series.entry(key).or_default().push(s);
            }
            for (key, ss) in series {
                let buckets: Vec<f64> = ss
                    .iter()
                    .filter(|s| s.name.ends_with("_bucket"))
                    .map(|s| s.value)
                    .collect();
                assert_eq!(buckets.len(), def.buckets.len() + 1, "{name} {key:?}");
                assert!(
                    buckets.windows(2).all(|w| w[0] <= w[1]),
                    "{name} {key:?} not cumulative"
                );
                let inf = ss
                    .iter()
                    .find(|s| s.labels.get("le").map(String::as_str) == Some("+Inf"))
                    .expect("+Inf bucket");
                let count = ss.iter().find(|s| s.name.ends_with("_count")).expect("_count");
                assert_eq!(inf.value, count.value, "{name} {key:?}");
                assert!(ss.iter().any(|s| s.name.ends_with("_sum")), "{name} {key:?} _sum");
            }
        }
    }
}

/// `promtool check metrics` on a scrape: no output and exit 0, or a panic
/// with what it found. Returns false (after saying why) when promtool is
/// not installed.
pub fn promtool_check_metrics(text: &str) -> bool {
    if !Path::new(PROMTOOL).exists() {
        eprintln!("SKIPPED promtool check metrics: {PROMTOOL} is missing (Debian package `prometheus`)");
        return false;
    }
    let mut child = std::process::Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}",
        out.status
    );
    true
}
