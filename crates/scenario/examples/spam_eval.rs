//! Spam-filter evaluation on real review texts (issue 15): prints the
//! per-shape table of `earshot_scenario::spam_eval` summed over seeds.
//!
//! Usage: `spam_eval TEXTS.tsv [SEEDS]` (SEEDS comma-separated, default
//! 1,2,3); TEXTS.tsv comes from `scripts/fetch-spam-eval-data.py`, and
//! `scripts/spam-eval.sh` does both steps.

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
    let cfg = DetectConfig::default();
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
    print!("{}", format_report(&total, seeds.len()));
    ExitCode::SUCCESS
}
