//! Language identification of review text (whatlang), for labels and metrics.

/// Best-guess language code: ISO 639-1 where one exists (`en`, `zh`, `ja`...),
/// otherwise the ISO 639-3 code whatlang uses, and `und` when the text is too
/// short or mixed to tell.
pub fn detect(text: &str) -> String {
    let Some(info) = whatlang::detect(text) else {
        return "und".to_string();
    };
    // Han-only text is Chinese for whatlang; kana means Japanese.
    let code = info.lang().code();
    if !info.is_reliable() && info.confidence() < 0.15 {
        return "und".to_string();
    }
    iso639_1(code).unwrap_or(code).to_string()
}

fn iso639_1(code3: &str) -> Option<&'static str> {
    Some(match code3 {
        "eng" => "en",
        "cmn" => "zh",
        "spa" => "es",
        "deu" => "de",
        "fra" => "fr",
        "jpn" => "ja",
        "por" => "pt",
        "ita" => "it",
        "kor" => "ko",
        "rus" => "ru",
        "nld" => "nl",
        "pol" => "pl",
        "tur" => "tr",
        "ara" => "ar",
        "hin" => "hi",
        "vie" => "vi",
        "tha" => "th",
        "ind" => "id",
        "swe" => "sv",
        "dan" => "da",
        "fin" => "fi",
        "nob" => "nb",
        "ukr" => "uk",
        "ces" => "cs",
        "ell" => "el",
        "heb" => "he",
        "hun" => "hu",
        "ron" => "ro",
        "bul" => "bg",
        "pes" => "fa",
        "ben" => "bn",
        "urd" => "ur",
        "msa" | "zlm" => "ms",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::detect;

    #[test]
    fn detects_common_review_languages() {
        assert_eq!(
            detect("The battery died after two days and support never answered."),
            "en"
        );
        assert_eq!(detect("电池用了两天就坏了，客服一直不回复，太失望了。"), "zh");
        assert_eq!(
            detect("バッテリーが二日で壊れました。サポートも返事がありません。"),
            "ja"
        );
        assert_eq!(detect("La batería se murió a los dos días y nadie responde."), "es");
        assert_eq!(
            detect("Der Akku war nach zwei Tagen kaputt und niemand antwortet."),
            "de"
        );
        assert_eq!(
            detect("La batterie est morte après deux jours et personne ne répond."),
            "fr"
        );
        assert_eq!(detect(""), "und");
    }
}
