//! Word splitting, the stopword list and a light English stemmer, shared by
//! the hashing embedder and the lexical index so both agree on what a word is.
//!
//! Why hand-written rather than tantivy's Snowball stemmer: the embedder's
//! output is stored next to every chunk and compared with query vectors made
//! later, possibly by a newer build. Its features must therefore never change
//! for a given model name, so everything that shapes them lives here, frozen,
//! instead of in a dependency that may change its rules on upgrade. (The
//! lexical index is a rebuildable cache, so it uses tantivy's stemmer; only
//! the stopword list is shared with it.)

/// Words longer than this many bytes (hashes, base64, minified code) are
/// skipped by both the embedder and the lexical index.
pub(crate) const MAX_WORD_BYTES: usize = 40;

macro_rules! stopwords {
    ($($word:literal),* $(,)?) => {
        /// Common English function words: they carry no topic, so neither
        /// the embedder nor the lexical index keeps them.
        pub(crate) const STOPWORDS: &[&str] = &[$($word),*];

        /// Whether a lowercased word is in [`STOPWORDS`].
        pub(crate) fn is_stopword(word: &str) -> bool {
            matches!(word, $($word)|*)
        }
    };
}

// Frozen: changing this list changes `kiln/hash-384` vectors.
stopwords!(
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "before", "being", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "my", "no",
    "not", "of", "on", "or", "our", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "too", "up", "us", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your",
);

/// Calls `on_word` with each word of `text` lowercased into `word`. A word is
/// a maximal run of Unicode alphanumeric characters.
pub(crate) fn for_each_word(text: &str, word: &mut String, mut on_word: impl FnMut(&mut String)) {
    word.clear();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            if b.is_ascii_alphanumeric() {
                word.push(b.to_ascii_lowercase() as char);
            } else if !word.is_empty() {
                on_word(word);
                word.clear();
            }
            i += 1;
        } else {
            // A multi-byte character: decode it (`i` is always on a boundary).
            let c = text[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
            if c.is_alphanumeric() {
                word.extend(c.to_lowercase());
            } else if !word.is_empty() {
                on_word(word);
                word.clear();
            }
            i += c.len_utf8();
        }
    }
    if !word.is_empty() {
        on_word(word);
        word.clear();
    }
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Strips common English inflections in place, so that `resetting`,
/// `resets` and `reset` (or `uses`, `used`, `using` and `use`) share a stem.
/// Stems need not be words (`update` → `updat`); they only need to agree.
///
/// Rules, first match wins: `-ies` → `-y`; `-s` (not `-ss`, `-us`, `-is`);
/// `-ing` and `-ed` when a vowel stays (then `tt` → `t` and the like); `-ly`
/// on long words. Then a final `-e` goes. Suffixes are ASCII, so cutting
/// bytes keeps the word valid UTF-8.
pub(crate) fn stem(word: &mut String) {
    let len = word.len();
    let b = word.as_bytes();
    let has_vowel = |stem: &[u8]| stem.iter().any(|&c| is_vowel(c));
    if len >= 5 && word.ends_with("ies") {
        word.truncate(len - 3);
        word.push('y');
        return;
    }
    if len >= 4 && b[len - 1] == b's' && !matches!(b[len - 2], b's' | b'u' | b'i') {
        word.truncate(len - 1);
    } else if len >= 5 && word.ends_with("ing") && has_vowel(&b[..len - 3]) {
        word.truncate(len - 3);
        undouble(word);
    } else if len >= 4 && word.ends_with("ed") && b[len - 3] != b'e' && has_vowel(&b[..len - 2]) {
        word.truncate(len - 2);
        undouble(word);
    } else if len >= 7 && word.ends_with("ly") {
        word.truncate(len - 2);
    }
    let len = word.len();
    if len >= 3 && word.ends_with('e') {
        word.truncate(len - 1);
    }
}

/// `resett` → `reset`, `runn` → `run`; but `install`, `pass` and short stems
/// like `add` keep their double letter.
fn undouble(word: &mut String) {
    let b = word.as_bytes();
    let len = b.len();
    if len >= 4
        && b[len - 1] == b[len - 2]
        && !is_vowel(b[len - 1])
        && !matches!(b[len - 1], b'l' | b's' | b'z')
    {
        word.truncate(len - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_word(text, &mut String::new(), |w| out.push(w.clone()));
        out
    }

    fn stemmed(word: &str) -> String {
        let mut word = word.to_owned();
        stem(&mut word);
        word
    }

    #[test]
    fn splits_on_non_alphanumeric_and_lowercases() {
        assert_eq!(
            words("How do I reset my PASSWORD?"),
            ["how", "do", "i", "reset", "my", "password"]
        );
        assert_eq!(words("Größe: 42€, naïve—café"), ["größe", "42", "naïve", "café"]);
        assert_eq!(words("  ..  "), Vec::<String>::new());
    }

    #[test]
    fn inflections_share_a_stem() {
        let groups: &[&[&str]] = &[
            &["reset", "resets", "resetting"],
            &["password", "passwords"],
            &["use", "uses", "used", "using"],
            &["update", "updates", "updated", "updating"],
            &["index", "indexes", "indexed", "indexing"],
            &["policy", "policies"],
            &["pass", "passes", "passed", "passing"],
            &["install", "installed", "installing"],
            &["add", "adding", "added"],
            &["invoice", "invoices", "invoiced"],
        ];
        for group in groups {
            let first = stemmed(group[0]);
            for word in &group[1..] {
                assert_eq!(stemmed(word), first, "{word} vs {}", group[0]);
            }
        }
        // Words that merely look inflected keep their ending.
        for word in ["status", "analysis", "class", "speed", "thing", "string", "red"] {
            assert_eq!(stemmed(word), word);
        }
    }

    #[test]
    fn stopwords_are_lowercase_and_matched() {
        for word in STOPWORDS {
            assert_eq!(word.to_lowercase(), *word);
            assert!(is_stopword(word));
        }
        assert!(!is_stopword("password"));
    }
}
