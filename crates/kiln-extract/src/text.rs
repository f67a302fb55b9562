//! Decoding uploaded bytes as text, shared by the text-based formats, and the
//! blank-line tidying shared by the converted ones.

/// Above this share of undecodable characters the file is taken to be
/// binary or in another encoding, rather than UTF-8 with a few bad bytes.
const MAX_REPLACEMENT_SHARE: f64 = 0.10;

const NOT_UTF8: &str = "the file is not UTF-8 text";

/// The bytes as text: UTF-8 without its BOM (or UTF-16 with a BOM, as
/// Windows tools save "Unicode" text), line endings normalised to `\n`.
/// Invalid UTF-8 is replaced with U+FFFD, unless so much of it is that the
/// file is not text at all.
pub(crate) fn decode(bytes: &[u8]) -> Result<String, String> {
    let text = match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8_lossy(rest)?,
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes)?,
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes)?,
        _ => utf8_lossy(bytes)?,
    };
    if text.contains('\r') {
        Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Ok(text)
    }
}

fn utf8_lossy(bytes: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => Ok(text.to_owned()),
        _ => mostly_text(String::from_utf8_lossy(bytes).into_owned()),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, String> {
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    let text = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    mostly_text(text)
}

/// Refuses text where more than [`MAX_REPLACEMENT_SHARE`] of the characters
/// are replacement characters or NULs (which valid UTF-8 allows, but only
/// binary files contain).
fn mostly_text(text: String) -> Result<String, String> {
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in text.chars() {
        total += 1;
        if c == char::REPLACEMENT_CHARACTER || c == '\0' {
            bad += 1;
        }
    }
    if bad as f64 > total as f64 * MAX_REPLACEMENT_SHARE {
        return Err(NOT_UTF8.to_owned());
    }
    Ok(text)
}

/// Trims trailing whitespace from every line, keeps at most one blank line
/// in a row, and trims the whole; converters leave runs of empty lines
/// where skipped elements were.
pub(crate) fn collapse_blank_lines(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut blank_run = 0usize;
    for line in markdown.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_is_stripped_and_line_endings_normalised() {
        assert_eq!(
            decode(b"\xEF\xBB\xBF# Title\r\n\r\nBody\r").unwrap(),
            "# Title\n\nBody\n"
        );
    }

    #[test]
    fn utf16_with_a_bom_is_decoded() {
        let mut le = vec![0xFF, 0xFE];
        le.extend("Grüße".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&le).unwrap(), "Grüße");

        let mut be = vec![0xFE, 0xFF];
        be.extend("Grüße".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(decode(&be).unwrap(), "Grüße");
    }

    #[test]
    fn a_few_bad_bytes_are_replaced() {
        // One Latin-1 `é` in otherwise ASCII text.
        assert_eq!(
            decode(b"caf\xE9 au lait, s'il vous plait").unwrap(),
            "caf\u{FFFD} au lait, s'il vous plait"
        );
    }

    #[test]
    fn binary_is_not_text() {
        assert_eq!(
            decode(&[0x89, b'P', b'N', b'G', 0xFF, 0xFE, 0x00, 0x9C, 0xA0]).unwrap_err(),
            NOT_UTF8
        );
        assert_eq!(decode(b"a\0b\0c\0d\0").unwrap_err(), NOT_UTF8);
    }

    #[test]
    fn blank_line_runs_collapse_to_one() {
        assert_eq!(
            collapse_blank_lines("\n\n# A  \n\n\n\n  \nText\n\n\n- x\n- y\n\n"),
            "# A\n\nText\n\n- x\n- y"
        );
    }
}
