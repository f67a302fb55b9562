//! Markdown and plain text pass through, decoded.

use kiln_core::rag::DocumentKind;

use crate::{error, extract, markdown};

#[test]
fn markdown_with_a_bom_passes_through_without_it() {
    let source = "# Kiln\n\nA *forge* for agents.\n\n- one\n- two\n";
    let bytes = [b"\xEF\xBB\xBF".as_slice(), source.as_bytes()].concat();

    let extracted = extract(DocumentKind::Markdown, &bytes).unwrap();

    assert_eq!(extracted.markdown, source);
    assert_eq!(extracted.page_count, None);
}

#[test]
fn text_passes_through_with_unix_line_endings() {
    assert_eq!(
        markdown(DocumentKind::Text, b"line one\r\nline two\r\n"),
        "line one\nline two\n"
    );
}

#[test]
fn binary_is_not_text() {
    let png_header = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0\0\0\x01\0\x08\x06\0\0\0\xd8\xff\xfe\x9c";
    assert_eq!(
        error(DocumentKind::Text, png_header),
        "the file is not UTF-8 text"
    );
}
