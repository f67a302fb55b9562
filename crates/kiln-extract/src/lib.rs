//! Kiln's [`TextExtractor`]: turns an indexable upload into Markdown, the one
//! shape the RAG chunker reads.
//!
//! Why Markdown: the chunker splits on Markdown structure (headings, then
//! blank-line paragraphs, then lines), so every format is mapped onto that
//! structure, keeping what a reader would see as one unit in one paragraph:
//!
//! * Markdown and text pass through after UTF-8 decoding (plain text is
//!   Markdown enough).
//! * CSV: each data row becomes one paragraph, `Header: value; Header: value`,
//!   so a chunk never holds half a row and every value keeps its column name.
//! * HTML: converted by `htmd` (headings, lists, links, emphasis, GFM
//!   tables), without scripts, styles and `noscript`; the `<title>` becomes
//!   the `#` heading when the page has no `<h1>`.
//! * PDF: the text of each page (`pdf-extract`), pages separated by a blank
//!   line. There is no OCR, so a scanned PDF is an error, not an empty
//!   document.
//! * DOCX: paragraphs, with Word's heading styles as `#` headings, list
//!   paragraphs as `-` items and each table row as one `cell | cell` line.
//!
//! Error messages are shown to the user as the document's `error_message`,
//! so they describe the file, not the code. The PDF and DOCX readers can
//! panic on malformed files; a panic is caught here and becomes an error.
//!
//! Hostile files: a PDF's or DOCX's compressed parts are inflated into
//! nothing first, and the file is refused past
//! [`inflate::MAX_INFLATED_BYTES`] (`inflate.rs`); and the server runs every
//! extraction in a child process with its own memory and CPU limits
//! ([`IsolatedExtractor`], `isolated.rs`), so what the check misses can end
//! only that process.

mod csv_rows;
mod docx;
#[cfg(feature = "fixtures")]
pub mod fixtures;
mod html;
pub mod inflate;
pub mod isolated;
mod pdf;
mod text;

pub use isolated::{IsolatedExtractor, WorkerLimits};

use std::panic::{self, AssertUnwindSafe};

use kiln_core::rag::{DocumentKind, Extracted, TextExtractor};

/// The largest Markdown an upload may produce, in bytes (20 MiB).
pub const MAX_MARKDOWN_BYTES: usize = 20 * 1024 * 1024;

/// Extracts Markdown from Markdown, text, CSV, HTML, PDF and DOCX uploads.
/// Stateless and cheap to clone; the work is CPU-bound and blocking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extractor;

impl TextExtractor for Extractor {
    fn extract(&self, kind: DocumentKind, bytes: &[u8]) -> Result<Extracted, String> {
        let extracted = catch_panic(kind, || match kind {
            DocumentKind::Markdown | DocumentKind::Text => Ok(unpaged(text::decode(bytes)?)),
            DocumentKind::Csv => Ok(unpaged(csv_rows::to_markdown(&text::decode(bytes)?)?)),
            DocumentKind::Html => Ok(unpaged(html::to_markdown(&text::decode(bytes)?)?)),
            DocumentKind::Pdf => {
                inflate::check_pdf(bytes, inflate::MAX_INFLATED_BYTES)?;
                pdf::to_markdown(bytes)
            }
            DocumentKind::Docx => {
                inflate::check_zip(bytes, inflate::MAX_INFLATED_BYTES)?;
                Ok(unpaged(docx::to_markdown(bytes)?))
            }
            DocumentKind::Opaque => Err("not an indexable type".to_owned()),
        })?;
        if extracted.markdown.len() > MAX_MARKDOWN_BYTES {
            return Err("extracted text is larger than 20 MiB".to_owned());
        }
        Ok(extracted)
    }
}

fn unpaged(markdown: String) -> Extracted {
    Extracted {
        markdown,
        page_count: None,
    }
}

/// Runs one extraction, turning a panic in a format library into an error
/// that names the format.
fn catch_panic(
    kind: DocumentKind,
    extract: impl FnOnce() -> Result<Extracted, String>,
) -> Result<Extracted, String> {
    // The closure only reads `bytes` and builds fresh values, so nothing
    // half-updated outlives a panic.
    panic::catch_unwind(AssertUnwindSafe(extract)).unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".to_owned());
        Err(format!(
            "could not read the {}: the file is malformed or uses a feature the reader does not support ({reason})",
            format_name(kind)
        ))
    })
}

fn format_name(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Markdown => "Markdown file",
        DocumentKind::Text => "text file",
        DocumentKind::Csv => "CSV",
        DocumentKind::Html => "HTML",
        DocumentKind::Pdf => "PDF",
        DocumentKind::Docx => "DOCX",
        DocumentKind::Opaque => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_naming_the_format() {
        let result = catch_panic(DocumentKind::Pdf, || panic!("bad xref"));
        let message = result.unwrap_err();
        assert!(message.starts_with("could not read the PDF: "), "{message}");
        assert!(message.ends_with("(bad xref)"), "{message}");
    }

    #[test]
    fn output_over_the_limit_is_refused() {
        let big = vec![b'a'; MAX_MARKDOWN_BYTES + 1];
        let result = Extractor.extract(DocumentKind::Text, &big);
        assert_eq!(result.unwrap_err(), "extracted text is larger than 20 MiB");

        let at_limit = vec![b'a'; MAX_MARKDOWN_BYTES];
        let extracted = Extractor.extract(DocumentKind::Text, &at_limit).unwrap();
        assert_eq!(extracted.markdown.len(), MAX_MARKDOWN_BYTES);
    }

    #[test]
    fn opaque_uploads_are_refused() {
        let result = Extractor.extract(DocumentKind::Opaque, b"{}");
        assert_eq!(result.unwrap_err(), "not an indexable type");
    }
}
