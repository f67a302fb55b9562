//! Extraction through the public port, one module per format, each from a
//! real file (PDF and DOCX files are written by the test with the same
//! libraries' writers).

mod csv;
mod docx;
mod html;
mod pdf;
mod text;

use kiln_core::rag::{DocumentKind, Extracted, TextExtractor};
use kiln_extract::Extractor;

/// What the ingestion worker would get for `bytes` of `kind`.
fn extract(kind: DocumentKind, bytes: &[u8]) -> Result<Extracted, String> {
    Extractor.extract(kind, bytes)
}

/// The Markdown of an upload that must extract.
fn markdown(kind: DocumentKind, bytes: &[u8]) -> String {
    match extract(kind, bytes) {
        Ok(extracted) => extracted.markdown,
        Err(message) => panic!("extracting {kind:?} failed: {message}"),
    }
}

/// The error message of an upload that must not extract.
fn error(kind: DocumentKind, bytes: &[u8]) -> String {
    match extract(kind, bytes) {
        Ok(extracted) => panic!("extracting {kind:?} succeeded: {:?}", extracted.markdown),
        Err(message) => message,
    }
}
