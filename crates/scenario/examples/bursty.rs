//! Real bursty count series through the detector (issue 15): per series and
//! overall, signals by kind, labelled anomaly windows hit and false pages
//! per key per month, once with the spam filter as configured and once with
//! its near-duplicate bursts off.
//!
//! `cargo run --release -p earshot-scenario --example bursty -- DIR [on|off|both]`
//! where DIR holds what `scripts/fetch-bursty-data.py` writes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use earshot_detect::DetectConfig;
use earshot_scenario::bursty;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bursty DIR [on|off|both]");
        return ExitCode::from(2);
    };
    let modes: &[bool] = match args.next().as_deref() {
        None | Some("both") => &[true, false],
        Some("on") => &[true],
        Some("off") => &[false],
        Some(m) => {
            eprintln!("error: spam mode {m:?}: expected on, off or both");
            return ExitCode::from(2);
        }
    };
    let (series, labels) = match bursty::load(&dir) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: reading {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    for &spam in modes {
        let mut cfg = DetectConfig::default();
        if !spam {
            cfg.spam.burst_min = u32::MAX;
        }
        let t0 = Instant::now();
        let bursty::Run { emitted, unkeyed } = match bursty::run(&series, &cfg) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let reports = bursty::score(&series, &labels, &emitted);
        println!(
            "\nspam filter {} (default DetectConfig{}), {:.1} s\n",
            if spam { "on" } else { "off" },
            if spam { "" } else { ", spam.burst_min = u32::MAX" },
            t0.elapsed().as_secs_f64()
        );
        print!("{}", bursty::table(&reports));
        if !unkeyed.is_empty() {
            let kinds: Vec<String> = unkeyed.iter().map(|(k, n)| format!("{} {n}", k.as_str())).collect();
            println!("\nsignals on no series key: {}", kinds.join(", "));
        }
        if std::env::var_os("BURSTY_VERBOSE").is_some() {
            for e in &emitted {
                let s = &series[e.series];
                let inside = labels
                    .iter()
                    .any(|l| l.name == s.name && l.start <= e.at && e.at <= l.end);
                println!(
                    "{} {} {:>15} at {} window {:>5} min observed {:>6} expected {:>9.1} {}",
                    s.name,
                    if inside { "in " } else { "out" },
                    e.kind.as_str(),
                    e.at,
                    (e.window.1 - e.window.0) / 60_000,
                    e.observed,
                    e.expected,
                    (e.at - s.counts.first().map_or(0, |c| c.0)) / 3_600_000,
                );
            }
        }
    }
    ExitCode::SUCCESS
}
