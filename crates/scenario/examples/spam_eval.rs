//! Spam-filter evaluation on real review texts (issue 15): prints the
//! per-shape table of `earshot_scenario::spam_eval` summed over seeds.
//!
//! Usage: `spam_eval TEXTS.tsv [SEEDS] [VARIANTS]` (SEEDS comma-separated,
//! default 1,2,3; VARIANTS comma-separated, default `default`); TEXTS.tsv
//! comes from `scripts/fetch-spam-eval-data.py`, and `scripts/spam-eval.sh`
//! does both steps.
//!
//! Variants (settings of `SpamConfig`, to measure each rule on its own):
//! `default`; `old` (the rules before issue 15: every near-duplicate burst,
//! any 4 items by one author, any 5 contradictions); `old+short`,
//! `old+coord`, `old+author`, `old+share` (old with one new rule).

use std::process::ExitCode;

use earshot_detect::DetectConfig;
use earshot_scenario::spam_eval::{format_report, run_spam_eval, Corpus, SpamEvalReport};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: spam_eval TEXTS.tsv [SEEDS]");
        return ExitCode::from(2);
    };
    let seeds: Vec<u64> = args
        .next()
        .unwrap_or_else(|| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let data = match std::fs::read_to_string(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let corpus = Corpus::parse_tsv(&data);
    println!("corpus: {} lines from {path}", corpus.texts.len());
    let variants = args.next().unwrap_or_else(|| "default".into());
    for name in variants.split(',') {
        let Some(cfg) = variant(name.trim()) else {
            eprintln!("error: unknown variant {name:?}");
            return ExitCode::from(2);
        };
        let mut total = SpamEvalReport::default();
        for &seed in &seeds {
            match run_spam_eval(&corpus, seed, &cfg) {
                Ok(r) => total.merge(&r),
                Err(e) => {
                    eprintln!("error: seed {seed}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        println!("\n== variant {name} (seeds {seeds:?})");
        print!("{}", format_report(&total, seeds.len()));
    }
    ExitCode::SUCCESS
}

fn variant(name: &str) -> Option<DetectConfig> {
    let mut cfg = DetectConfig::default();
    let new = cfg.spam.clone();
    let sp = &mut cfg.spam;
    if name == "default" {
        return Some(cfg);
    }
    let rest = name.strip_prefix("old")?;
    sp.min_shingles = 0;
    sp.dup_variants = 0;
    sp.author_max_spread = sp.author_max;
    sp.contradiction_share = 0.0;
    match rest {
        "" => {}
        "+short" => sp.min_shingles = new.min_shingles,
        "+coord" => sp.dup_variants = new.dup_variants,
        "+author" => sp.author_max_spread = new.author_max_spread,
        "+share" => sp.contradiction_share = new.contradiction_share,
        _ => return None,
    }
    Some(cfg)
}
