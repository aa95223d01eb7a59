//! `earshot classify`: texts as arguments or JSONL on stdin → JSONL (or a
//! table for people) on stdout. Bad lines become error records; they never
//! stop the run.

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use earshot::ingest::mapping::kind;
use earshot::model::{classify_texts, ModelError};
use earshot::types::Scored;
use serde_json::{json, Value};

use super::ModelArgs;

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Texts to classify. Without any, JSONL is read from stdin: one object per
    /// line with a `text` field (an `id` field, if present, is echoed back).
    texts: Vec<String>,
    /// Read stdin as plain text, one text per line, instead of JSONL.
    #[arg(long)]
    lines: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Include the 384-dim embedding in JSONL output.
    #[arg(long)]
    embedding: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Jsonl,
    Table,
}

/// One input item: its text or the reason it cannot be classified.
struct Item {
    line: Option<usize>,
    id: Option<Value>,
    text: Result<String, String>,
}

fn parse_stdin(bytes: &[u8], lines: bool) -> Vec<Item> {
    let mut items = Vec::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = Some(n + 1);
        let s = match std::str::from_utf8(raw) {
            Ok(s) => s,
            Err(e) => {
                items.push(Item {
                    line,
                    id: None,
                    text: Err(format!(
                        "invalid UTF-8 at byte {} of the line; re-encode the input as UTF-8",
                        e.valid_up_to()
                    )),
                });
                continue;
            }
        };
        if lines {
            items.push(Item {
                line,
                id: None,
                text: Ok(s.to_string()),
            });
            continue;
        }
        let item = match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(mut obj)) => {
                let id = obj.remove("id");
                let text = match obj.remove("text") {
                    Some(Value::String(t)) => Ok(t),
                    Some(other) => Err(format!("field `text` must be a string, found {}", kind(&other))),
                    None => Err("field `text` is missing; each line must look like {\"text\": \"...\"}".into()),
                };
                Item { line, id, text }
            }
            Ok(other) => Item {
                line,
                id: None,
                text: Err(format!(
                    "line is JSON {} but must be an object like {{\"text\": \"...\"}} (use --lines for plain text)",
                    kind(&other)
                )),
            },
            Err(e) => Item {
                line,
                id: None,
                text: Err(format!(
                    "not valid JSON ({e}); send one {{\"text\": \"...\"}} object per line or use --lines"
                )),
            },
        };
        items.push(item);
    }
    items
}

pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    args.model.init_logging();
    let items: Vec<Item> = if args.texts.is_empty() {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            tracing::info!("reading JSONL from stdin (Ctrl-D to finish; or pass texts as arguments)");
        }
        let mut buf = Vec::new();
        stdin.lock().read_to_end(&mut buf).context("failed to read stdin")?;
        parse_stdin(&buf, args.lines)
    } else {
        args.texts
            .iter()
            .map(|t| Item {
                line: None,
                id: None,
                text: Ok(t.clone()),
            })
            .collect()
    };
    let cfg = args.model.load_config()?;
    let mut loaded = super::load_model(&args.model, &cfg)?;

    let start = Instant::now();
    let mut results: Vec<Option<Result<Scored, ModelError>>> = (0..items.len()).map(|_| None).collect();
    let valid: Vec<usize> = (0..items.len()).filter(|&i| items[i].text.is_ok()).collect();
    let mut last_log = Instant::now();
    for chunk in valid.chunks(512) {
        let texts: Vec<&str> = chunk.iter().map(|&i| items[i].text.as_deref().unwrap_or("")).collect();
        let out = classify_texts(
            &loaded.tokenizer,
            &mut loaded.classifier,
            &texts,
            cfg.batch,
            args.embedding,
        )
        .context("inference failed")?;
        for (&i, r) in chunk.iter().zip(out) {
            results[i] = Some(r);
        }
        if last_log.elapsed().as_secs() >= 5 {
            let done = results.iter().filter(|r| r.is_some()).count();
            tracing::info!(
                done,
                total = valid.len(),
                per_sec = format!("{:.1}", done as f64 / start.elapsed().as_secs_f64()),
                "classifying"
            );
            last_log = Instant::now();
        }
    }
    let elapsed = start.elapsed();

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut ok, mut failed, mut truncated) = (0usize, 0usize, 0usize);
    if args.format == Format::Table {
        writeln!(
            out,
            "{:<8} {:<4} {:<9} {:>6} {:<16} text",
            "id", "lang", "sentiment", "p(neg)", "category"
        )?;
    }
    for (index, (item, result)) in items.iter().zip(results).enumerate() {
        let id_str = item.id.as_ref().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let outcome: Result<Scored, String> = match (&item.text, result) {
            (Err(e), _) => Err(e.clone()),
            (Ok(_), Some(Ok(s))) => Ok(s),
            (Ok(_), Some(Err(e))) => Err(e.to_string()),
            (Ok(_), None) => Err("not classified".into()),
        };
        match (&outcome, args.format) {
            (Ok(s), Format::Jsonl) => {
                let mut v = serde_json::to_value(s)?;
                let obj = v.as_object_mut().expect("Scored serialises to an object");
                obj.insert("index".into(), json!(index));
                if let Some(id) = &item.id {
                    obj.insert("id".into(), id.clone());
                }
                if let Some(l) = item.line {
                    obj.insert("line".into(), json!(l));
                }
                if s.truncated {
                    obj.insert(
                        "note".into(),
                        json!(format!(
                            "text truncated to model.max_tokens = {} tokens",
                            cfg.model.max_tokens
                        )),
                    );
                }
                serde_json::to_writer(&mut out, &v)?;
                writeln!(out)?;
            }
            (Err(e), Format::Jsonl) => {
                let mut v = json!({ "index": index, "error": e });
                if let Some(id) = &item.id {
                    v["id"] = id.clone();
                }
                if let Some(l) = item.line {
                    v["line"] = json!(l);
                }
                serde_json::to_writer(&mut out, &v)?;
                writeln!(out)?;
            }
            (Ok(s), Format::Table) => {
                let text = item.text.as_deref().unwrap_or("");
                let mut shown: String = text.chars().take(60).collect();
                if shown.len() < text.len() {
                    shown.push('…');
                }
                let id = id_str.unwrap_or_else(|| index.to_string());
                let mark = if s.truncated { " [truncated]" } else { "" };
                writeln!(
                    out,
                    "{:<8} {:<4} {:<9} {:>6.2} {:<16} {}{}",
                    id,
                    s.lang,
                    s.sentiment.as_str(),
                    s.probs.negative,
                    s.category.as_str(),
                    shown.replace('\n', " "),
                    mark
                )?;
            }
            (Err(e), Format::Table) => {
                let id = id_str.unwrap_or_else(|| index.to_string());
                let at = item.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                writeln!(out, "{id:<8} error: {at}{e}")?;
            }
        }
        match &outcome {
            Ok(s) => {
                ok += 1;
                truncated += s.truncated as usize;
            }
            Err(_) => failed += 1,
        }
    }
    out.flush()?;
    tracing::info!(
        classified = ok,
        rejected = failed,
        truncated,
        seconds = format!("{:.2}", elapsed.as_secs_f64()),
        per_sec = format!("{:.1}", ok as f64 / elapsed.as_secs_f64().max(1e-9)),
        "done"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_lines_are_parsed_with_clear_errors() {
        let input = b"{\"id\":\"a\",\"text\":\"hi\"}\n\n{\"text\":5}\nnot json\n[1]\n{\"x\":1}\n\xff\xfe\n";
        let items = parse_stdin(input, false);
        assert_eq!(items.len(), 6);
        assert_eq!(items[0].text.as_deref(), Ok("hi"));
        assert_eq!(items[0].id, Some(json!("a")));
        assert!(items[1].text.as_ref().unwrap_err().contains("must be a string"));
        assert_eq!(items[1].line, Some(3));
        assert!(items[2].text.as_ref().unwrap_err().contains("not valid JSON"));
        assert!(items[3].text.as_ref().unwrap_err().contains("must be an object"));
        assert!(items[4].text.as_ref().unwrap_err().contains("`text` is missing"));
        assert!(items[5].text.as_ref().unwrap_err().contains("invalid UTF-8"));
        let plain = parse_stdin(b"one\ntwo\n", true);
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[1].text.as_deref(), Ok("two"));
    }
}
