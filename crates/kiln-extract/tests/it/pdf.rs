//! PDFs become their pages' text; broken PDFs are errors, never panics.

use kiln_core::rag::DocumentKind;
use kiln_extract::fixtures::pdf;
use lopdf::Document;

use crate::{error, extract};

#[test]
fn each_page_becomes_text_with_a_blank_line_between_pages() {
    let bytes = pdf(&[
        &[
            "Kiln ingests documents.",
            "Second line of page one.",
            "",
            "A paragraph after a gap.",
        ],
        &["Page two talks about retrieval."],
    ]);

    let extracted = extract(DocumentKind::Pdf, &bytes).unwrap();

    assert_eq!(extracted.page_count, Some(2));
    assert_eq!(
        extracted.markdown,
        "Kiln ingests documents.\nSecond line of page one.\n\nA paragraph after a gap.\n\nPage two talks about retrieval."
    );
}

#[test]
fn a_pdf_without_text_needs_ocr() {
    let bytes = pdf(&[&[], &[]]);
    assert_eq!(
        error(DocumentKind::Pdf, &bytes),
        "the PDF has no extractable text (scanned pages need OCR, which Kiln does not do)"
    );
}

#[test]
fn a_file_without_the_pdf_header_is_not_a_pdf() {
    assert_eq!(
        error(DocumentKind::Pdf, b"<html>not a pdf</html>"),
        "not a PDF: the file does not start with %PDF-"
    );
}

#[test]
fn corrupt_pdfs_are_errors() {
    let garbage = b"%PDF-1.4\n\x00\x13garbage 1 0 obj << /Type /Catalog >> trailer %%EOF".as_slice();
    assert_eq!(
        error(DocumentKind::Pdf, garbage),
        "could not read the PDF: failed parsing cross reference table: invalid start value"
    );

    let whole = pdf(&[&["Some text that will be cut off."]]);
    let truncated = &whole[..whole.len() / 2];
    let message = error(DocumentKind::Pdf, truncated);
    assert!(message.starts_with("could not read the PDF: "), "{message}");
}

#[test]
fn a_panic_in_the_pdf_reader_is_an_error() {
    // pdf-extract `expect`s a MediaBox on every page.
    let mut doc = Document::load_mem(&pdf(&[&["Text on a page without a size."]])).unwrap();
    let pages_id = doc
        .catalog()
        .unwrap()
        .get(b"Pages")
        .unwrap()
        .as_reference()
        .unwrap();
    doc.get_dictionary_mut(pages_id).unwrap().remove(b"MediaBox");
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();

    let message = error(DocumentKind::Pdf, &bytes);

    assert_eq!(
        message,
        "could not read the PDF: the file is malformed or uses a feature the reader does not support (MediaBox)"
    );
}
