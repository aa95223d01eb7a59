//! `earshot train-adapter` end to end on the small random encoder: the real
//! binary trains an adapter and a three-class head, the files load through
//! the config (adapter merged at load), and a mismatched adapter is refused
//! with the field to fix.

use std::io::Write;
use std::process::Command;

use crate::util;

fn earshot(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_earshot"))
        .args(args)
        .current_dir(util::root())
        .env("EARSHOT_LOG", "warn")
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join(format!("earshot-{}.toml", extra.len()));
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "[model]\nencoder = \"random\"\ndir = \"{}\"\n{extra}",
        util::root().join("models").display()
    )
    .unwrap();
    path
}

#[test]
fn trained_adapter_and_head_load_merged_and_mismatches_are_refused() {
    util::require_models();
    let dir = tempfile::tempdir().unwrap();
    // Three classes the random encoder can tell apart by their words.
    let mut data = String::new();
    for i in 0..90 {
        let (label, text) = match i % 3 {
            0 => ("neg", format!("broken refund late awful {i}")),
            1 => ("neu", format!("order number {i} arrives tuesday")),
            _ => ("pos", format!("great lovely perfect thanks {i}")),
        };
        data.push_str(&serde_json::json!({"text": text, "label": label, "lang": "en", "source": "t"}).to_string());
        data.push('\n');
    }
    let data_path = dir.path().join("data.jsonl");
    std::fs::write(&data_path, data).unwrap();
    let base_cfg = config(dir.path(), "");
    let (adapter, head, cat) = (
        dir.path().join("a.safetensors"),
        dir.path().join("s.json"),
        dir.path().join("c.json"),
    );
    let train = |extra: &[&str]| {
        let (base, data) = (base_cfg.to_str().unwrap(), data_path.to_str().unwrap());
        let mut args = vec!["train-adapter", "--config", base, "--data", data];
        args.extend_from_slice(extra);
        earshot(&args)
    };
    let (_, err, ok) = train(&[
        "--top-layers",
        "1",
        "--rank",
        "4",
        "--epochs",
        "3",
        "--out-adapter",
        adapter.to_str().unwrap(),
        "--out",
        head.to_str().unwrap(),
        "--category-out",
        cat.to_str().unwrap(),
        "--class-bias",
        "--anchor",
        "0.5",
        "--cap",
        "t/-/en/neu=5",
    ]);
    assert!(ok, "{err}");
    let head_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&head).unwrap()).unwrap();
    assert_eq!(head_json["format"], "earshot-sentiment-head/2");
    // --class-bias: offsets fitted after the temperature (neutral fixed),
    // never raising the calibration log-loss.
    let cal = &head_json["provenance"]["calibration"];
    let offsets: Vec<f64> = cal["class_bias"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!((offsets.len(), offsets[1]), (3, 0.0), "{cal}");
    assert!(
        cal["log_loss_with_class_bias"].as_f64().unwrap() <= cal["log_loss"].as_f64().unwrap() + 1e-9,
        "{cal}"
    );
    assert_eq!(head_json["classes"]["weights"].as_array().unwrap().len(), 3);
    // --cap: the neutral group is cut to 5, the others keep theirs.
    let sel = &head_json["provenance"]["selection"];
    assert_eq!(sel["t/-/en/neu/train"]["used"], 5, "{sel}");
    assert!(sel["t/-/en/neu/train"]["available"].as_u64().unwrap() > 5, "{sel}");
    assert_eq!(
        sel["t/-/en/neg/train"]["used"], sel["t/-/en/neg/train"]["available"],
        "{sel}"
    );
    assert_eq!(
        head_json["provenance"]["training"]["options"]["caps"],
        serde_json::json!(["t/-/en/neu=5"])
    );
    // The recipe, anchor included, is recorded with the head.
    assert_eq!(
        head_json["provenance"]["training"]["options"]["anchor"], 0.5,
        "{}",
        head_json["provenance"]
    );
    let sha = head_json["adapter_sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    let loaded_adapter = earshot::model::adapter::Adapter::load(&adapter).unwrap();
    assert_eq!(loaded_adapter.sha256, sha);
    assert_eq!(loaded_adapter.layers.len(), 6, "one layer, six projections");
    assert!(
        loaded_adapter.layers.values().any(|p| p.b.iter().any(|&v| v != 0.0)),
        "training moved B"
    );

    let extra = format!(
        "sentiment_head = \"{}\"\ncategory_head = \"{}\"\nadapter = \"{}\"",
        head.display(),
        cat.display(),
        adapter.display()
    );
    let cfg = config(dir.path(), &extra);
    let (out, err, ok) = earshot(&[
        "classify",
        "--config",
        cfg.to_str().unwrap(),
        "great lovely perfect thanks",
        "order number 7 arrives tuesday",
    ]);
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 2, "{out}");
    for r in &recs {
        let p = &r["probs"];
        let sum: f64 = ["negative", "neutral", "positive"]
            .iter()
            .map(|k| p[k].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-3, "{r}");
    }

    // A different adapter than the head was trained with: refused at load.
    let mut other = loaded_adapter.clone();
    other.alpha *= 2.0;
    let other_path = dir.path().join("other.safetensors");
    other.save(&other_path).unwrap();
    let bad = config(
        dir.path(),
        &format!(
            "sentiment_head = \"{}\"\ncategory_head = \"{}\"\nadapter = \"{}\"\n# other",
            head.display(),
            cat.display(),
            other_path.display()
        ),
    );
    let (_, err, ok) = earshot(&["classify", "--config", bad.to_str().unwrap(), "hello"]);
    assert!(!ok);
    assert!(err.contains("model.adapter") && err.contains(&sha), "{err}");

    // A weight that is not a finite number ≥ 0 is refused, naming the flag.
    let never = dir.path().join("never.safetensors");
    let (_, err, ok) = train(&["--anchor", "nan", "--out-adapter", never.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("--anchor"), "{err}");

    // A category head trains alongside on labelled complaints (plus the
    // prototypes); what it used is recorded, and bad settings are refused.
    let (cat_head, cat_adapter, cat_centroids) = (
        dir.path().join("cat-s.json"),
        dir.path().join("cat-a.safetensors"),
        dir.path().join("cat-c.json"),
    );
    let real = util::root().join("tests/fixtures/category_real.jsonl");
    let with_category = |extra: &[&str]| {
        let mut args = vec![
            "--top-layers",
            "1",
            "--epochs",
            "1",
            "--out-adapter",
            cat_adapter.to_str().unwrap(),
            "--out",
            cat_head.to_str().unwrap(),
            "--category-out",
            cat_centroids.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        train(&args)
    };
    let (_, err, ok) = with_category(&["--category-data", real.to_str().unwrap(), "--category-weight", "2"]);
    assert!(ok, "{err}");
    let h: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cat_head).unwrap()).unwrap();
    let training = &h["provenance"]["training"];
    assert_eq!(training["options"]["category_weight"], 2.0, "{training}");
    let adapt_rows = std::fs::read_to_string(&real)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""split": "adapt""#) && l.contains(r#""lang": "zh""#) && l.contains("logistics"))
        .count();
    assert!(adapt_rows > 20);
    assert_eq!(training["category_items"]["zh/logistics"], adapt_rows, "{training}");
    assert!(
        training["category_items"]["prototypes"].as_u64().unwrap() >= 150,
        "{training}"
    );
    let bad_rows = dir.path().join("bad-cat.jsonl");
    std::fs::write(
        &bad_rows,
        "{\"text\": \"late\", \"label\": \"neg\", \"lang\": \"en\", \"category\": \"shipping\"}\n",
    )
    .unwrap();
    let (_, err, ok) = with_category(&["--category-data", bad_rows.to_str().unwrap()]);
    assert!(!ok && err.contains("category") && err.contains("logistics"), "{err}");
    let (_, err, ok) = with_category(&["--category-data", real.to_str().unwrap(), "--category-weight", "0"]);
    assert!(!ok && err.contains("--category-weight"), "{err}");

    // Long texts read in windows, as inference reads them: trains, records
    // the window, and a window the cut cannot hold is refused by name.
    let long = dir.path().join("long.jsonl");
    let mut rows = std::fs::read_to_string(&data_path).unwrap();
    for i in 0..12 {
        let (label, words) = if i % 2 == 0 {
            ("neg", "broken refund late awful ")
        } else {
            ("pos", "great lovely perfect thanks ")
        };
        let text = format!("{} {i}", words.repeat(12));
        rows.push_str(&serde_json::json!({"text": text, "label": label, "lang": "en", "source": "long"}).to_string());
        rows.push('\n');
    }
    std::fs::write(&long, rows).unwrap();
    let (windowed, never) = (dir.path().join("w.json"), dir.path().join("w.safetensors"));
    let windowed_args = |window: &str| -> (String, String, bool) {
        earshot(&[
            "train-adapter",
            "--config",
            base_cfg.to_str().unwrap(),
            "--data",
            long.to_str().unwrap(),
            "--top-layers",
            "1",
            "--epochs",
            "1",
            "--train-tokens",
            "64",
            "--train-window",
            window,
            "--out-adapter",
            never.to_str().unwrap(),
            "--out",
            windowed.to_str().unwrap(),
            "--category-out",
            dir.path().join("wc.json").to_str().unwrap(),
        ])
    };
    let (_, err, ok) = windowed_args("16");
    assert!(ok, "{err}");
    let w: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&windowed).unwrap()).unwrap();
    assert_eq!(
        w["provenance"]["training"]["options"]["train_window"], 16,
        "{}",
        w["provenance"]
    );
    let (_, err, ok) = windowed_args("65");
    assert!(!ok);
    assert!(
        err.contains("--train-window 65") && err.contains("--train-tokens 64"),
        "{err}"
    );
}
