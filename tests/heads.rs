//! The real model's heads on labelled data, the inference thread, and encoder
//! invariants that hold for any weights (checked on the random encoder).

use earshot::model::{self, worker::ClassifierThread, BatchLimits, Classifier, EncodedBatch, MatmulMode, PAD_ID};
use earshot::types::{Category, Sentiment};
use serde::Deserialize;

use crate::util;

#[derive(Deserialize)]
struct Labelled {
    text: String,
    lang: String,
    label: String,
    category: Option<String>,
}

fn read(name: &str) -> Vec<Labelled> {
    util::read_lines(&util::fixture(name))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn limits() -> BatchLimits {
    BatchLimits {
        max_tokens: 8192,
        max_batch: 64,
    }
}

/// Classifies labelled items with the shared real model.
fn classify_all(items: &[Labelled]) -> Vec<Result<earshot::types::Scored, model::ModelError>> {
    let mut m = util::real_model().lock().unwrap();
    let m = &mut *m;
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    model::classify_texts(&m.tokenizer, &mut m.classifier, &texts, limits(), false).unwrap()
}

#[test]
fn dev_set_binary_accuracy_is_at_least_90_percent_per_language() {
    let items = read("dev_reviews.jsonl");
    let out = classify_all(&items);
    let mut per_lang: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (item, s) in items.iter().zip(out) {
        let s = s.unwrap();
        let said_pos = s.probs.positive > s.probs.negative;
        let e = per_lang.entry(item.lang.as_str()).or_default();
        e.0 += 1;
        e.1 += (said_pos == (item.label == "pos")) as usize;
    }
    eprintln!("{per_lang:?}");
    for lang in ["en", "zh", "es", "de", "fr", "ja"] {
        let (n, ok) = per_lang[lang];
        assert!(n >= 40, "{lang}: only {n} items");
        let acc = ok as f64 / n as f64;
        assert!(acc >= 0.90, "{lang}: binary accuracy {acc:.3} < 0.90");
    }
}

#[test]
fn clear_reviews_get_the_right_label_in_six_languages() {
    let cases = [
        (
            "Absolutely terrible, it broke on day one and nobody answers my emails.",
            Sentiment::Negative,
        ),
        (
            "Fantastic quality, works perfectly, I would buy it again!",
            Sentiment::Positive,
        ),
        ("质量太差了，用一次就坏，非常失望。", Sentiment::Negative),
        ("非常好用，质量很棒，物流也快，强烈推荐！", Sentiment::Positive),
        (
            "Una estafa, llegó roto y no me devuelven el dinero.",
            Sentiment::Negative,
        ),
        (
            "Me encanta, funciona de maravilla y llegó rapidísimo.",
            Sentiment::Positive,
        ),
        (
            "Totaler Schrott, nach einer Woche kaputt. Nie wieder!",
            Sentiment::Negative,
        ),
        (
            "Super Qualität, schnelle Lieferung, absolut empfehlenswert.",
            Sentiment::Positive,
        ),
        (
            "Nul, cassé au bout de deux jours et le SAV ne répond pas.",
            Sentiment::Negative,
        ),
        (
            "Excellent produit, très bonne qualité, je recommande !",
            Sentiment::Positive,
        ),
        ("最悪です。すぐに壊れて、返金もしてもらえません。", Sentiment::Negative),
        ("とても良い商品です。品質も良く、大満足です。", Sentiment::Positive),
    ];
    let mut m = util::real_model().lock().unwrap();
    let m = &mut *m;
    let texts: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let out = model::classify_texts(&m.tokenizer, &mut m.classifier, &texts, limits(), false).unwrap();
    for ((text, want), got) in cases.iter().zip(out) {
        let got = got.unwrap();
        assert_eq!(got.sentiment, *want, "{text}: {:?}", got.probs);
        let p = got.probs;
        assert!((p.negative + p.neutral + p.positive - 1.0).abs() < 1e-4);
        assert!(!got.truncated);
    }
}

/// Statements that take no side (order status, questions, plain facts):
/// the default (adapted) three-class model must keep them out of the negative share. Written
/// for this test, in eight languages; a few may go astray, most must not.
#[test]
fn factual_statements_are_called_neutral_not_negative() {
    let texts = [
        "Got the set yesterday, still in the box.",
        "Does it come in blue as well?",
        "Ordered on Monday, the tracking says it arrives on Thursday.",
        "昨天收到货，还没拆封。",
        "请问这款有蓝色的吗？",
        "Pedí la talla M, llega el jueves.",
        "Gestern bestellt, Lieferung ist für Freitag angekündigt.",
        "Commandé lundi, livraison prévue jeudi.",
        "昨日届きました。まだ開封していません。",
        "Ho ordinato la versione da 128 GB per mio padre.",
        "Comprei para a minha mãe, chega na sexta.",
        "मैंने कल ऑर्डर किया था, शुक्रवार को आएगा।",
    ];
    // The default (adapted) three-class model; the frozen head of
    // examples/sentiment-frozen.toml has only a narrow neutral band.
    let cfg = util::real_config();
    let mut m = model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let out = model::classify_texts(&m.tokenizer, &mut m.classifier, &texts, limits(), false).unwrap();
    let mut neutral = 0;
    for (text, got) in texts.iter().zip(out) {
        let got = got.unwrap();
        eprintln!("{text}: {:?} {:?}", got.sentiment, got.probs);
        assert_ne!(got.sentiment, Sentiment::Negative, "{text}: {:?}", got.probs);
        neutral += (got.sentiment == Sentiment::Neutral) as usize;
    }
    assert!(neutral >= 9, "only {neutral}/12 factual statements called neutral");
}

/// The default config loads the adapted model (the adapter its head names,
/// merged), and `examples/sentiment-frozen.toml` the published weights with
/// no adapter: the embeddings differ, but stay close (the adapter was
/// trained with an anchor to the published encoder's embeddings).
#[test]
fn the_default_merges_the_adapter_and_the_frozen_opt_out_does_not() {
    let texts = [
        "The strap broke after a week and support never answered.",
        "送货很快，包装完好。",
    ];
    let adapter =
        model::adapter::Adapter::load(&util::root().join("models/adapters/sentiment-lora.safetensors")).unwrap();
    let frozen_cfg = earshot::config::Config::from_file(&util::root().join("examples/sentiment-frozen.toml")).unwrap();
    let mut frozen = model::load(&frozen_cfg.model, &candle_core::Device::Cpu).unwrap();
    assert_eq!(frozen.classifier.sentiment_head().adapter_sha256, None);
    let a = model::classify_texts(&frozen.tokenizer, &mut frozen.classifier, &texts, limits(), true).unwrap();
    let mut m = util::real_model().lock().unwrap();
    let m = &mut *m;
    assert_eq!(
        m.classifier.sentiment_head().adapter_sha256.as_deref(),
        Some(adapter.sha256.as_str())
    );
    let b = model::classify_texts(&m.tokenizer, &mut m.classifier, &texts, limits(), true).unwrap();
    for ((text, a), b) in texts.iter().zip(a).zip(b) {
        let (a, b) = (a.unwrap(), b.unwrap());
        let c: f32 = a.embedding.iter().zip(&b.embedding).map(|(x, y)| x * y).sum();
        assert!(
            c < 0.9999 && c > 0.8,
            "{text}: cosine {c} between the adapted and published embeddings"
        );
        assert_eq!(a.sentiment, b.sentiment, "{text}: {:?} vs {:?}", a.probs, b.probs);
    }
}

/// The default sentiment head carries exemplars whose vote reaches the
/// output: on the dev set the blended probabilities differ from the linear
/// head's, and
/// the blend is still a distribution that keeps the head's label on most
/// texts (the vote corrects, it does not replace).
#[test]
fn the_default_sentiment_head_votes_with_its_exemplars() {
    let items = read("dev_reviews.jsonl");
    let m = util::real_model().lock().unwrap();
    let head = m.classifier.sentiment_head();
    let ex = head
        .exemplars
        .as_ref()
        .expect("models/heads/sentiment.json has exemplars");
    assert!(
        ex.len() > 10_000 && ex.weight > 0.0 && ex.weight < 1.0,
        "{} exemplars, weight {}",
        ex.len(),
        ex.weight
    );
    drop(m);
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let mut m = util::real_model().lock().unwrap();
    let m = &mut *m;
    let scored = model::classify_texts(&m.tokenizer, &mut m.classifier, &texts, limits(), true).unwrap();
    let head = m.classifier.sentiment_head();
    let (mut moved, mut same_label) = (0, 0);
    for s in scored {
        let s = s.unwrap();
        let alone = head.head_probs(&s.embedding);
        let p = s.probs;
        assert!((p.negative + p.neutral + p.positive - 1.0).abs() < 1e-4);
        moved += ((p.negative - alone.negative).abs() > 1e-3) as usize;
        same_label += (p.label() == alone.label()) as usize;
    }
    assert!(
        moved * 2 > items.len(),
        "the vote moved only {moved} of {}",
        items.len()
    );
    assert!(
        same_label * 10 >= items.len() * 9,
        "labels kept on {same_label} of {}",
        items.len()
    );
}

#[test]
fn complaint_categories_are_mostly_right_in_every_language() {
    let items = read("category_eval.jsonl");
    let out = classify_all(&items);
    let mut per_lang: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (item, s) in items.iter().zip(out) {
        let want = Category::parse(item.category.as_deref().unwrap()).unwrap();
        let e = per_lang.entry(item.lang.as_str()).or_default();
        e.0 += 1;
        e.1 += (s.unwrap().category == want) as usize;
    }
    eprintln!("{per_lang:?}");
    let (n, ok) = per_lang.values().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    // Five classes: chance is 0.2.
    assert!(ok as f64 / n as f64 >= 0.70, "overall category accuracy {}/{}", ok, n);
    for (lang, (n, ok)) in &per_lang {
        assert!(*ok as f64 / *n as f64 >= 0.55, "{lang}: category accuracy {ok}/{n}");
    }
}

#[test]
fn long_text_is_read_in_windows_up_to_max_tokens_and_says_so() {
    let m = util::real_model().lock().unwrap();
    let spec = util::real_config().model;
    let (window, max) = (m.tokenizer.window(), m.tokenizer.max_tokens());
    assert_eq!((window, max), (spec.window_tokens, spec.max_tokens));
    assert!(window < max, "defaults read long texts in several windows");
    let whole = model::Tokenizer::from_file(&spec.tokenizer, max).unwrap();
    let prefix_len = 4; // <s> + the pieces of `query:` (▁que, ry, :)
                        // What a window holds besides the text's own pieces: <s>, the prefix, </s>.
    let pieces = |e: &model::Encoded| -> Vec<u32> {
        e.window_ids()
            .flat_map(|w| w[prefix_len..w.len() - 1].to_vec())
            .collect()
    };
    for (text, cut) in [
        // ~400 tokens: two windows, nothing cut.
        ("The charger overheated and melted the cable. ".repeat(40), false),
        // far over max_tokens: cut, flagged.
        ("The charger overheated and melted the cable. ".repeat(400), true),
    ] {
        let enc = m.tokenizer.encode(&text).unwrap();
        let one = whole.encode(&text).unwrap();
        assert_eq!(one.windows.len(), 1);
        assert_eq!((enc.truncated, one.truncated), (cut, cut));
        assert!(enc.windows.len() >= 2, "{} tokens in one window", enc.len());
        assert_eq!(enc.windows.iter().sum::<usize>(), enc.len());
        let (lo, hi) = (enc.windows.iter().min().unwrap(), enc.windows.iter().max().unwrap());
        assert!(*hi <= window && hi - lo <= 1, "uneven windows {:?}", enc.windows);
        for w in enc.window_ids() {
            assert_eq!(
                &w[..prefix_len],
                &one.ids[..prefix_len],
                "each window starts <s> query:"
            );
            assert_eq!(*w.last().unwrap(), 2, "each window ends with </s>");
        }
        // The windows hold exactly the pieces one long window reads, in order.
        assert_eq!(pieces(&enc), pieces(&one));
        assert!(pieces(&enc).len() < max - prefix_len);
    }
    // A text that fits one window is encoded as before.
    let short = "Got the set yesterday, still in the box.";
    assert_eq!(m.tokenizer.encode(short).unwrap(), whole.encode(short).unwrap());
    // Multi-megabyte input is cut before tokenisation, still flagged.
    let huge = "巨".repeat(1_000_000);
    let enc = m.tokenizer.encode(&huge).unwrap();
    assert!(enc.truncated && enc.len() <= max + (enc.windows.len() - 1) * (prefix_len + 1));
    assert!(matches!(
        m.tokenizer.encode(" \n\t "),
        Err(model::ModelError::EmptyText)
    ));
}

/// A long text's embedding is its windows' embeddings averaged by tokens:
/// windows attend only to themselves, batched with other texts or not.
#[test]
fn a_long_text_embeds_as_the_token_weighted_mean_of_its_windows() {
    let m = util::real_model().lock().unwrap();
    let enc = m.classifier.encoder();
    let long = m
        .tokenizer
        .encode(&"Arrived two weeks late, the box was crushed and support never answered. ".repeat(30))
        .unwrap();
    let short = m.tokenizer.encode("Great value, works fine.").unwrap();
    assert!(long.windows.len() >= 2);
    let pooled = model::embed(enc, &EncodedBatch::pack([&short, &long, &short], PAD_ID)).unwrap();
    assert_eq!(pooled.len(), 3);
    let mut mean = vec![0f32; pooled[1].len()];
    for w in long.window_ids() {
        let alone = model::Encoded::single(w.to_vec(), false);
        let e = model::embed(enc, &EncodedBatch::pack([&alone], PAD_ID)).unwrap();
        mean.iter_mut().zip(&e[0]).for_each(|(m, x)| *m += x * w.len() as f32);
    }
    let c = util::cosine(&mean, &pooled[1]);
    assert!(c > 0.9999, "cosine {c}");
    let alone = model::embed(enc, &EncodedBatch::pack([&short], PAD_ID)).unwrap();
    assert!(util::cosine(&alone[0], &pooled[0]) > 0.9999 && util::cosine(&alone[0], &pooled[2]) > 0.9999);
}

/// Padding must not change a text's embedding: batch it with longer texts and
/// compare with running it alone. Any weights will do.
#[test]
fn padding_and_batch_composition_do_not_change_embeddings() {
    let cfg = util::random_config();
    let cpu = candle_core::Device::Cpu;
    for mode in [MatmulMode::F32, MatmulMode::Q4, MatmulMode::Int8] {
        let mut spec = cfg.model.clone();
        spec.matmul = mode;
        let tok = model::Tokenizer::from_file(&spec.tokenizer, 512).unwrap();
        let enc = model::load_encoder(&spec, &cpu).unwrap();
        let short = tok.encode("ok").unwrap();
        let long = tok
            .encode(&"Delivery took forever and the box was wet. ".repeat(8))
            .unwrap();
        let alone = model::embed(&enc, &EncodedBatch::pack([&short], PAD_ID)).unwrap();
        let mixed = model::embed(&enc, &EncodedBatch::pack([&long, &short, &long], PAD_ID)).unwrap();
        let c = util::cosine(&alone[0], &mixed[1]);
        assert!(c > 0.9999, "{mode:?}: cosine {c}");
        let norm: f32 = mixed[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        // Same seed, same weights.
        let again = model::load_encoder(&spec, &cpu).unwrap();
        assert_eq!(
            model::embed(&again, &EncodedBatch::pack([&short], PAD_ID)).unwrap(),
            alone
        );
    }
}

/// The int8 encoder (unpadded, integer kernels) draws the same random
/// weights as the candle one and computes the same function: every text of a
/// mixed-length batch agrees with candle's f32 path, and `auto` is int8 on
/// the CPU.
#[test]
fn int8_encoder_matches_the_candle_encoder_on_the_same_weights() {
    let cfg = util::random_config();
    let cpu = candle_core::Device::Cpu;
    let tok = model::Tokenizer::from_file(&cfg.model.tokenizer, 512).unwrap();
    let texts = [
        "ok",
        "Akku wird beim Laden sehr heiß, nach zwei Wochen kaputt.",
        "配送が遅すぎる。箱も潰れていた。",
        &"Delivery took forever and the box was wet. ".repeat(12),
    ];
    let encoded: Vec<_> = texts.iter().map(|t| tok.encode(t).unwrap()).collect();
    let batch = EncodedBatch::pack(encoded.iter(), PAD_ID);
    let run = |mode: MatmulMode, threads: usize| {
        let mut spec = cfg.model.clone();
        spec.matmul = mode;
        spec.threads = threads;
        let enc = model::load_encoder(&spec, &cpu).unwrap();
        (enc.mode(), model::embed(&enc, &batch).unwrap())
    };
    let (_, f32s) = run(MatmulMode::F32, 0);
    let (auto_mode, int8) = run(MatmulMode::Auto, 0);
    assert_eq!(auto_mode, MatmulMode::Int8);
    for (i, (a, b)) in int8.iter().zip(&f32s).enumerate() {
        let c = util::cosine(a, b);
        assert!(c > 0.999, "text {i}: int8 vs f32 cosine {c}");
    }
    // One thread or two: the same numbers (rows never depend on the split).
    let (_, one) = run(MatmulMode::Int8, 1);
    assert_eq!(one, int8);
}

#[test]
fn inference_thread_answers_batches_like_a_direct_call() {
    let cfg = util::random_config();
    let mut loaded = model::load(&cfg.model, &candle_core::Device::Cpu).unwrap();
    let texts = ["battery overheats", "arrived late", "great value", "客服不回复"];
    let enc: Vec<_> = texts.iter().map(|t| loaded.tokenizer.encode(t).unwrap()).collect();
    let batch = EncodedBatch::pack(enc.iter(), PAD_ID);
    let direct = loaded.classifier.classify(&batch).unwrap();
    let thread = ClassifierThread::spawn(Box::new(loaded.classifier), 2);
    assert_eq!(thread.embedding_dim(), 64);
    let out = thread.classify(batch.clone()).unwrap();
    assert_eq!(out.batch, 4);
    assert_eq!(out.real_tokens, enc.iter().map(|e| e.len()).sum::<usize>());
    assert_eq!(out.results, direct);
    // Several queued batches all come back, in any order, each once.
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..5 {
        let tx = tx.clone();
        thread
            .submit(
                batch.clone(),
                Box::new(move |r| tx.send((i, r.unwrap().results.len())).unwrap()),
            )
            .unwrap();
    }
    drop(tx);
    let mut got: Vec<_> = rx.iter().collect();
    got.sort();
    assert_eq!(got, (0..5).map(|i| (i, 4)).collect::<Vec<_>>());
}

/// Our Unigram segmentation gives the same ids as the `tokenizers` crate's
/// full tokenizer (its hash trie needs ~290 MB) on every fixture text in six
/// languages, review-length joins of them, and awkward inputs.
#[test]
fn tokenizer_ids_match_the_reference_tokenizers_crate() {
    let cfg = util::real_config();
    let ours = model::Tokenizer::from_file(&cfg.model.tokenizer, 512).unwrap();
    let reference = tokenizers::Tokenizer::from_file(&cfg.model.tokenizer).unwrap();
    let mut texts: Vec<String> = Vec::new();
    for name in ["dev_reviews.jsonl", "category_eval.jsonl"] {
        for line in util::read_lines(&util::fixture(name)) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            texts.push(v["text"].as_str().unwrap().to_string());
        }
    }
    texts.extend(util::read_lines(&util::fixture("golden_sentences.txt")));
    let joined: Vec<String> = texts.chunks(4).map(|c| c.join("  ")).collect();
    texts.extend(joined);
    for hostile in [
        "ǂǂǂ 𓀀𓀁 unknown glyphs ꙮ",
        "   leading and    inner   spaces\tand\ttabs\n\nnewlines  ",
        "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ｶﾀｶﾅ",
        "e\u{301}te\u{301} compose\u{301}",
        "emoji 👍🏽👨‍👩‍👧 🔋🔥 !!!",
        "मेरा ऑर्डर अभी तक नहीं आया, बहुत खराब सेवा",
        "الطلب وصل متأخرا جدا والمنتج مكسور",
        "zero\u{200b}width\u{feff}chars\u{0007}bell",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "<s> literal special tokens </s> and <mask> inside",
        "x",
    ] {
        texts.push(hostile.to_string());
    }
    let mut checked = 0;
    for t in &texts {
        let got = ours.encode(t).unwrap().ids;
        let want = reference
            .encode(format!("{}{t}", model::tokenize::QUERY_PREFIX), true)
            .unwrap()
            .get_ids()
            .to_vec();
        let want = if want.len() > 512 {
            let mut w = want[..511].to_vec();
            w.push(2);
            w
        } else {
            want
        };
        assert_eq!(got, want, "ids differ for {t:?}");
        checked += 1;
    }
    assert!(checked >= 700, "{checked}");
}
