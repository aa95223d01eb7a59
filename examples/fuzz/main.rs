//! Fuzz/property harness for everything that reads outside input (issue 14).
//!
//! Stable Rust, no libFuzzer: each target is driven by a seeded, reproducible
//! mix of structured generation (plausible messages, configs and model files
//! with hostile values) and byte-level mutation of a corpus (the seed corpus in
//! `fuzz/corpus/<target>/`, the built-in seeds, and every input that produced
//! an outcome not seen before, e.g. a new dead-letter code). Coverage is not
//! measured; the outcome classes stand in for it.
//!
//! Every input runs under `catch_unwind` (a panic is counted, its input saved
//! to `<work>/crashes/<target>/`) and a time bound (`--timeout-ms`, 1 s): an
//! input over it is timed again three times alone (a shared machine can stall
//! a process for a second) and is a hang if the fastest re-run is still over
//! (saved as `hang-*`, counted, exit 1); a watchdog thread ends the run (exit
//! 3) if one input runs past 10x the bound. The slowest input of a run (its
//! re-run time when it was re-run) is reported and saved to
//! `<work>/slowest/<target>`.
//!
//! ```text
//! cargo run --release --example fuzz -- [--execs N] [--target NAME]... [--seed S]
//!     [--timeout-ms T] [--work DIR]
//! ```
//! `--replay FILE` runs one saved input with the default panic hook
//! (message, backtrace); `--hostile` prints the hostile-input table.
//! `scripts/fuzz.sh` runs every target. Exit status: 0 clean, 1 panics or
//! hangs, 3 stuck.

mod gen;
mod hostile;
mod targets;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use earshot_core::rng::Rng;

pub use targets::{Target, TARGETS};

/// Figures of one target's run.
#[derive(Debug, Default)]
pub struct Report {
    pub execs: u64,
    pub panics: u64,
    pub secs: f64,
    pub slowest: Duration,
    /// Inputs over the time bound that were re-run (the machine may have
    /// been busy) and met it on the re-run.
    pub reruns: u64,
    /// Inputs over the time bound on the re-run too.
    pub hangs: u64,
    pub outcomes: usize,
    pub corpus: usize,
}

/// The last panic's message and place (from any thread: the encoder's pool
/// panics on its own threads).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn save(dir: &Path, name: &str, data: &[u8]) {
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(name), data);
}

/// Runs `target` for `execs` inputs. `work` (when given) receives new corpus
/// entries, crashes and the slowest input.
pub fn fuzz(target: &Target, execs: u64, seed: u64, timeout: Duration, work: Option<&Path>, quiet: bool) -> Report {
    let mut rng = Rng::new(seed ^ fnv(target.name.as_bytes()));
    let mut corpus: Vec<Vec<u8>> = (target.seeds)();
    // Read at run time first: a shared target dir can hold a binary built in
    // another checkout.
    let seed_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("fuzz/corpus")
        .join(target.name);
    let work_corpus = work.map(|w| w.join("corpus").join(target.name));
    for dir in [Some(seed_dir), work_corpus.clone()].into_iter().flatten() {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            corpus.extend(files.iter().filter_map(|p| std::fs::read(p).ok()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut rep = Report::default();

    // Watchdog: the input being run and when it started (0 = idle).
    let current = Arc::new(Mutex::new(Vec::<u8>::new()));
    let started = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let dog = {
        let (current, started, done) = (current.clone(), started.clone(), done.clone());
        let name = target.name;
        let hang_dir = work.map(|w| w.join("crashes").join(name));
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(20).min(timeout / 4).max(Duration::from_millis(1)));
            if done.load(Ordering::Relaxed) == 1 {
                return;
            }
            let s = started.load(Ordering::Relaxed);
            if s != 0 && epoch.elapsed().as_nanos() as u64 > s + 10 * timeout.as_nanos() as u64 {
                let input = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                eprintln!(
                    "HANG: target {name}: an input ({} bytes) ran over {:?}; stopping",
                    input.len(),
                    10 * timeout
                );
                if let Some(d) = &hang_dir {
                    let f = format!("hang-{:016x}", fnv(&input));
                    save(d, &f, &input);
                    eprintln!("  saved to {}", d.join(f).display());
                }
                std::process::exit(3);
            }
        })
    };

    let prev_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = format!("{msg} at {loc}");
    }));

    let mut panic_msgs = std::collections::HashSet::new();
    let t0 = Instant::now();
    let mut slowest_input = Vec::new();
    for i in 0..execs {
        // Seeds first, then a quarter generated, the rest mutated.
        let input = if (i as usize) < corpus.len() {
            corpus[i as usize].clone()
        } else if rng.below(4) == 0 || corpus.is_empty() {
            (target.generate)(&mut rng)
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())];
            gen::mutate(&mut rng, base, other, target.dict, target.max_len)
        };
        {
            let mut c = current.lock().unwrap_or_else(|e| e.into_inner());
            c.clear();
            c.extend_from_slice(&input);
        }
        let s = Instant::now();
        started.store((s - epoch).as_nanos() as u64 + 1, Ordering::Relaxed);
        let r = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        let mut took = s.elapsed();
        started.store(0, Ordering::Relaxed);
        rep.execs += 1;
        if took > timeout && r.is_ok() {
            // Over the bound: time it again, alone, three times (on a busy
            // shared machine one wall-clock measurement is not enough).
            took = (0..3)
                .map(|_| {
                    let s = Instant::now();
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
                    s.elapsed()
                })
                .min()
                .unwrap_or(took);
            if took > timeout {
                rep.hangs += 1;
                eprintln!(
                    "HANG: target {}: an input ({} bytes) took {took:?}",
                    target.name,
                    input.len()
                );
                if let Some(w) = work {
                    save(
                        &w.join("crashes").join(target.name),
                        &format!("hang-{:016x}", fnv(&input)),
                        &input,
                    );
                }
            } else {
                rep.reruns += 1;
            }
        }
        if took > rep.slowest {
            rep.slowest = took;
            slowest_input.clone_from(&input);
        }
        match r {
            Ok(outcome) => {
                if seen.insert(outcome.clone()) && i as usize >= corpus.len() {
                    if corpus.len() < 4096 {
                        corpus.push(input.clone());
                    }
                    if let (Some(d), true) = (&work_corpus, input.len() <= 64 * 1024) {
                        save(d, &format!("{:016x}", fnv(&input)), &input);
                    }
                }
            }
            Err(_) => {
                rep.panics += 1;
                let msg = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let f = format!("panic-{:016x}", fnv(&input));
                if let Some(w) = work {
                    save(&w.join("crashes").join(target.name), &f, &input);
                }
                if panic_msgs.insert(msg.clone()) {
                    eprintln!(
                        "PANIC: target {}: {msg} (input {f}, {} bytes)",
                        target.name,
                        input.len()
                    );
                }
            }
        }
        if !quiet && i > 0 && i % 1_000_000 == 0 {
            eprintln!(
                "  {}: {i} execs, {:.0}/s, {} panics, {} outcomes",
                target.name,
                i as f64 / t0.elapsed().as_secs_f64(),
                rep.panics,
                seen.len()
            );
        }
    }
    rep.secs = t0.elapsed().as_secs_f64();
    rep.outcomes = seen.len();
    rep.corpus = corpus.len();
    done.store(1, Ordering::Relaxed);
    let _ = dog.join();
    panic::set_hook(prev_hook);
    if let Some(w) = work {
        save(&w.join("slowest"), target.name, &slowest_input);
    }
    rep
}

fn main() -> std::process::ExitCode {
    let mut execs: u64 = 100_000;
    let mut seed: u64 = 1;
    let mut timeout_ms: u64 = 1000;
    let mut work: Option<PathBuf> = None;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--execs" => execs = val().replace('_', "").parse().expect("--execs N"),
            "--seed" => seed = val().parse().expect("--seed S"),
            "--timeout-ms" => timeout_ms = val().parse().expect("--timeout-ms T"),
            "--work" => work = Some(PathBuf::from(val())),
            "--target" => only.push(val()),
            "--replay" => {
                // One input, default panic hook (message and backtrace).
                let input = std::fs::read(val()).expect("--replay FILE");
                let Some(t) = TARGETS.iter().find(|t| only.iter().any(|o| o == t.name)) else {
                    eprintln!("--replay needs --target NAME first");
                    return std::process::ExitCode::from(2);
                };
                println!("{}", (t.run)(&input));
                return std::process::ExitCode::SUCCESS;
            }
            "--hostile" => {
                print!("{}", hostile::table());
                return std::process::ExitCode::SUCCESS;
            }
            "--list" => {
                for t in TARGETS {
                    println!("{}", t.name);
                }
                return std::process::ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}; see examples/fuzz/main.rs");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let mut failed = false;
    println!(
        "{:<10} {:>12} {:>10} {:>7} {:>6} {:>12} {:>7} {:>9}",
        "target", "executions", "exec/s", "panics", "hangs", "slowest_ms", "reruns", "outcomes"
    );
    for t in TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t.name))
    {
        let r = fuzz(
            t,
            execs,
            seed,
            Duration::from_millis(timeout_ms),
            work.as_deref(),
            false,
        );
        println!(
            "{:<10} {:>12} {:>10.0} {:>7} {:>6} {:>12.3} {:>7} {:>9}",
            t.name,
            r.execs,
            r.execs as f64 / r.secs.max(1e-9),
            r.panics,
            r.hangs,
            r.slowest.as_secs_f64() * 1e3,
            r.reruns,
            r.outcomes
        );
        failed |= r.panics > 0 || r.hangs > 0;
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    /// A quick run of every target in the normal test suite.
    #[test]
    fn every_target_survives_a_quick_run() {
        for t in super::TARGETS {
            let r = super::fuzz(t, t.quick, 7, std::time::Duration::from_secs(20), None, true);
            assert_eq!((r.panics, r.hangs), (0, 0), "target {} panicked or hung", t.name);
        }
    }

    /// Every hostile input is handled (no panic), and the key ones the way
    /// the README table says.
    #[test]
    fn hostile_inputs() {
        let cases = super::hostile::cases();
        let find = |input: &str| {
            cases
                .iter()
                .find(|c| c.1 == input)
                .map(|c| c.2.clone())
                .unwrap_or_else(|| panic!("no case {input}"))
        };
        assert!(find("10 MB text field").starts_with("dead letter `oversize`"));
        assert!(find("invalid UTF-8 (`\\xff` in the text)").starts_with("dead letter `invalid_utf8`"));
        assert!(find("JSON nested 100,000 deep").starts_with("dead letter `invalid_json`"));
        assert!(find("event_time in µs (`1700000000000000`)").starts_with("dead letter `bad_time`"));
        assert!(find("event_time in ns (`1700000000000000000`)").starts_with("dead letter `bad_time`"));
        assert!(find("event_time in s (control)").starts_with("accepted"));
        assert!(find("header: layers = 2^31-1").starts_with("error"));
    }
}
