//! What an upload is, decided from its filename (CONTRACT §1.11: the Go SDK
//! always sends `application/octet-stream`, so the part's type is a
//! fallback only when it is specific).

/// How a document is ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// Chunked directly.
    Markdown,
    /// Chunked directly.
    Text,
    /// Chunked directly (rows become lines of text).
    Csv,
    /// Converted to a Markdown sibling that is chunked.
    Html,
    /// Converted to a Markdown sibling that is chunked.
    Pdf,
    /// Converted to a Markdown sibling that is chunked.
    Docx,
    /// Stored as is and never searchable (JSON, source code, binaries).
    Opaque,
}

impl DocumentKind {
    /// Whether the upload goes through the pipeline at all.
    pub fn is_indexable(self) -> bool {
        !matches!(self, DocumentKind::Opaque)
    }

    /// Whether extraction produces a Markdown sibling that carries the
    /// chunks (the original ends `stored`).
    pub fn has_sibling(self) -> bool {
        matches!(self, DocumentKind::Html | DocumentKind::Pdf | DocumentKind::Docx)
    }

    /// The kind a stored content type is ingested as.
    pub fn from_content_type(content_type: &str) -> DocumentKind {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/markdown" | "text/x-markdown" => DocumentKind::Markdown,
            "text/plain" => DocumentKind::Text,
            "text/csv" => DocumentKind::Csv,
            "text/html" | "application/xhtml+xml" => DocumentKind::Html,
            "application/pdf" => DocumentKind::Pdf,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => DocumentKind::Docx,
            _ => DocumentKind::Opaque,
        }
    }
}

const BY_EXTENSION: &[(&str, &str)] = &[
    ("md", "text/markdown"),
    ("markdown", "text/markdown"),
    ("mdx", "text/markdown"),
    ("txt", "text/plain"),
    ("text", "text/plain"),
    ("log", "text/plain"),
    ("csv", "text/csv"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("xhtml", "application/xhtml+xml"),
    ("pdf", "application/pdf"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("json", "application/json"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("xml", "application/xml"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("ts", "text/x-typescript"),
    ("py", "text/x-python"),
    ("rs", "text/x-rust"),
    ("go", "text/x-go"),
    ("java", "text/x-java"),
    ("c", "text/x-c"),
    ("h", "text/x-c"),
    ("cpp", "text/x-c++"),
    ("sh", "application/x-sh"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
];

/// The stored content type: from the filename's extension, else the
/// part's type when it is specific, else `application/octet-stream`.
pub fn content_type_for(filename: &str, part_type: Option<&str>) -> String {
    let extension = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    if let Some(ext) = extension
        && let Some((_, ct)) = BY_EXTENSION.iter().find(|(e, _)| *e == ext)
    {
        return (*ct).to_owned();
    }
    match part_type.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if !t.eq_ignore_ascii_case("application/octet-stream") => t.to_ascii_lowercase(),
        _ => "application/octet-stream".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_decides_over_a_generic_part_type() {
        assert_eq!(
            content_type_for("guide.MD", Some("application/octet-stream")),
            "text/markdown"
        );
        assert_eq!(content_type_for("a.pdf", None), "application/pdf");
        assert_eq!(content_type_for("blob", Some("text/plain")), "text/plain");
        assert_eq!(
            content_type_for("blob", Some("application/octet-stream")),
            "application/octet-stream"
        );
        assert_eq!(content_type_for("blob", None), "application/octet-stream");
    }

    #[test]
    fn kinds_follow_the_contract_boundary() {
        assert_eq!(
            DocumentKind::from_content_type("text/markdown"),
            DocumentKind::Markdown
        );
        assert!(DocumentKind::from_content_type("application/pdf").has_sibling());
        assert!(DocumentKind::from_content_type("text/html; charset=utf-8").has_sibling());
        assert!(!DocumentKind::from_content_type("text/csv").has_sibling());
        assert!(!DocumentKind::from_content_type("application/json").is_indexable());
        assert!(!DocumentKind::from_content_type("text/x-rust").is_indexable());
    }
}
