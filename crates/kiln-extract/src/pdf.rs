//! PDF to text with `pdf-extract`, page by page, pages separated by a blank
//! line. PDFs carry positioned glyphs, not paragraphs: `pdf-extract` starts a
//! new line when the baseline moves and leaves a blank line at larger
//! vertical gaps, which is the only structure there is to keep.

use kiln_core::rag::Extracted;
use pdf_extract::{Document, PlainTextOutput};

use crate::text::collapse_blank_lines;

const NO_TEXT: &str = "the PDF has no extractable text (scanned pages need OCR, which Kiln does not do)";

/// Extracts every page's text. A page the reader fails on fails the whole
/// document: indexing the rest would silently leave part of it unsearchable.
pub(crate) fn to_markdown(bytes: &[u8]) -> Result<Extracted, String> {
    if !bytes.starts_with(b"%PDF-") {
        return Err("not a PDF: the file does not start with %PDF-".to_owned());
    }
    let mut document = Document::load_mem(bytes).map_err(|e| format!("could not read the PDF: {e}"))?;
    if document.is_encrypted() && document.decrypt("").is_err() {
        return Err("could not read the PDF: it is protected by a password".to_owned());
    }

    let page_numbers: Vec<u32> = document.get_pages().into_keys().collect();
    let page_count = u32::try_from(page_numbers.len()).unwrap_or(u32::MAX);
    let mut pages = Vec::with_capacity(page_numbers.len());
    for page_number in page_numbers {
        let mut text = String::new();
        pdf_extract::output_doc_page(&document, &mut PlainTextOutput::new(&mut text), page_number)
            .map_err(|e| format!("could not read the PDF: page {page_number}: {e}"))?;
        let text = collapse_blank_lines(&text);
        if !text.is_empty() {
            pages.push(text);
        }
    }
    if pages.is_empty() {
        return Err(NO_TEXT.to_owned());
    }
    Ok(Extracted {
        markdown: pages.join("\n\n"),
        page_count: Some(page_count),
    })
}
