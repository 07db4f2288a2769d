//! How text is cut into terms, the same way for what is indexed and what
//! is asked: words of letters and digits, lower-cased, folded to ASCII
//! (Vietnamese tones and `đ` included: "áo thun" and "ao thun" are the
//! same terms), combining marks dropped first (text typed in decomposed
//! form folds like composed text).

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TokenStream,
};

/// The analyzer's name in the index's tokenizer manager.
pub const FOLDED: &str = "surge_folded";
/// Longest term kept (longer words are dropped, as noise).
pub const MAX_TERM: usize = 40;
/// Prefixes indexed for suggestions are at most this long.
pub const MAX_PREFIX: usize = 20;

pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TERM))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// `s` without combining marks (U+0300–U+036F).
fn without_marks(s: &str) -> String {
    s.chars()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .collect()
}

/// Text as it is given to the index (combining marks dropped).
pub fn clean(s: &str) -> String {
    without_marks(s)
}

/// The terms of `s`, as the index has them.
pub fn terms(s: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let text = without_marks(s);
    let mut stream = analyzer.token_stream(&text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// Every prefix (1 to `MAX_PREFIX` characters) of every term of `s`, space
/// separated: what a suggestion matches the word being typed against.
pub fn prefixes(s: &str) -> String {
    let mut out = Vec::new();
    for t in terms(s) {
        let chars: Vec<char> = t.chars().collect();
        for n in 1..=chars.len().min(MAX_PREFIX) {
            out.push(chars[..n].iter().collect::<String>());
        }
    }
    out.sort();
    out.dedup();
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_with_or_without_tones_gives_the_same_terms() {
        assert_eq!(terms("Áo thun ĐẸP"), ["ao", "thun", "dep"]);
        assert_eq!(terms("ao thun dep"), ["ao", "thun", "dep"]);
        // Decomposed: a + U+0301 (acute), e + U+0323 + U+0302.
        assert_eq!(
            terms("A\u{301}o thun đe\u{323}\u{302}p"),
            ["ao", "thun", "dep"]
        );
        assert_eq!(terms("Yoga-mat, 6mm!"), ["yoga", "mat", "6mm"]);
    }

    #[test]
    fn prefixes_cover_each_word() {
        assert_eq!(prefixes("Áo Yo"), "a ao y yo");
        assert_eq!(prefixes(&"x".repeat(30)).split(' ').count(), MAX_PREFIX);
    }
}
