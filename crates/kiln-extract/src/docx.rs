//! DOCX to Markdown with `docx-rs`: the body's paragraphs in order, Word's
//! heading styles as `#` headings, list paragraphs as `-` items, and each
//! table row as one `cell | cell` line. Headers, footers, footnotes and
//! comments are left out; tracked deletions are left out, insertions kept.

use std::collections::HashMap;

use docx_rs::{
    DocumentChild, InsertChild, MoveToChild, Paragraph, ParagraphChild, ReadDocxOptions, ReaderError, Run,
    RunChild, StructuredDataTag, StructuredDataTagChild, Table, TableCellContent, TableChild, TableRowChild,
};

use crate::text::collapse_blank_lines;

pub(crate) fn to_markdown(bytes: &[u8]) -> Result<String, String> {
    // Image previews are decoded pictures; text extraction needs none.
    let options = ReadDocxOptions::default().with_image_previews(false);
    let docx = docx_rs::read_docx_with_options(bytes, options)
        .map_err(|e| format!("could not read the DOCX: {}", reader_reason(&e)))?;
    let mut writer = Writer {
        heading_levels: docx.styles.create_heading_style_map(),
        ..Writer::default()
    };
    for child in &docx.document.children {
        writer.document_child(child);
    }
    Ok(collapse_blank_lines(&writer.markdown))
}

fn reader_reason(error: &ReaderError) -> String {
    match error {
        ReaderError::ZipError(e) => format!("it is not a valid ZIP archive ({e})"),
        ReaderError::DocumentNotFoundError => "it has no document part (word/document.xml)".to_owned(),
        ReaderError::XMLReadError => "its XML is malformed".to_owned(),
        other => other.to_string().trim_end_matches('.').to_owned(),
    }
}

/// Appends Markdown blocks; consecutive list items stay on adjacent lines,
/// every other block is its own paragraph.
#[derive(Default)]
struct Writer {
    /// Style id → heading level, from the style names (`heading 1`), which
    /// stay English when Word localises the ids.
    heading_levels: HashMap<String, usize>,
    markdown: String,
    last_was_list_item: bool,
}

impl Writer {
    fn document_child(&mut self, child: &DocumentChild) {
        match child {
            DocumentChild::Paragraph(paragraph) => self.paragraph(paragraph),
            DocumentChild::Table(table) => self.table(table),
            DocumentChild::StructuredDataTag(tag) => self.structured_data_tag(tag),
            // A table of contents repeats the headings; the rest holds no text.
            _ => {}
        }
    }

    fn paragraph(&mut self, paragraph: &Paragraph) {
        let text = paragraph_text(paragraph);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(level) = self.heading_level(paragraph) {
            self.push_block(&format!("{} {text}", "#".repeat(level)), false);
        } else if let Some(depth) = list_depth(paragraph) {
            self.push_block(&format!("{}- {text}", "  ".repeat(depth)), true);
        } else {
            self.push_block(text, false);
        }
    }

    fn table(&mut self, table: &Table) {
        let rows = table_rows(table);
        if !rows.is_empty() {
            self.push_block(&rows.join("\n"), false);
        }
    }

    fn structured_data_tag(&mut self, tag: &StructuredDataTag) {
        for child in &tag.children {
            match child {
                StructuredDataTagChild::Paragraph(paragraph) => self.paragraph(paragraph),
                StructuredDataTagChild::Table(table) => self.table(table),
                StructuredDataTagChild::StructuredDataTag(inner) => self.structured_data_tag(inner),
                StructuredDataTagChild::Run(run) => {
                    let mut text = String::new();
                    push_run(run, &mut text);
                    if !text.trim().is_empty() {
                        self.push_block(text.trim(), false);
                    }
                }
                _ => {}
            }
        }
    }

    fn push_block(&mut self, block: &str, list_item: bool) {
        if !self.markdown.is_empty() {
            self.markdown.push_str(if list_item && self.last_was_list_item {
                "\n"
            } else {
                "\n\n"
            });
        }
        self.markdown.push_str(block);
        self.last_was_list_item = list_item;
    }

    /// `Heading1`..`Heading9` (by style name or id) and `Title`, capped at
    /// Markdown's six levels.
    fn heading_level(&self, paragraph: &Paragraph) -> Option<usize> {
        let style = paragraph.property.style.as_ref()?.val.as_str();
        let level = self.heading_levels.get(style).copied().or_else(|| {
            if style.eq_ignore_ascii_case("title") {
                return Some(1);
            }
            let (prefix, number) = style.split_at_checked("heading".len())?;
            prefix
                .eq_ignore_ascii_case("heading")
                .then(|| number.trim().parse().ok())
                .flatten()
        })?;
        (level >= 1).then(|| level.min(6))
    }
}

/// The nesting depth when the paragraph is numbered (`numId` 0 means
/// numbering switched off) or styled as a list paragraph.
fn list_depth(paragraph: &Paragraph) -> Option<usize> {
    let property = &paragraph.property;
    if let Some(numbering) = &property.numbering_property
        && numbering.id.as_ref().is_some_and(|id| id.id != 0)
    {
        return Some(numbering.level.as_ref().map_or(0, |level| level.val));
    }
    let style = property.style.as_ref().map(|style| style.val.as_str());
    (style == Some("ListParagraph")).then_some(0)
}

/// Each non-empty row as `cell | cell`, `|` inside a cell escaped.
fn table_rows(table: &Table) -> Vec<String> {
    let mut rows = Vec::new();
    for TableChild::TableRow(row) in &table.rows {
        let cells: Vec<String> = row
            .cells
            .iter()
            .map(|TableRowChild::TableCell(cell)| {
                let parts: Vec<String> = cell.children.iter().map(cell_content_text).collect();
                one_line(&parts.join(" ")).replace('|', "\\|")
            })
            .collect();
        if cells.iter().any(|cell| !cell.is_empty()) {
            rows.push(cells.join(" | ").trim().to_owned());
        }
    }
    rows
}

fn cell_content_text(content: &TableCellContent) -> String {
    match content {
        TableCellContent::Paragraph(paragraph) => paragraph_text(paragraph),
        TableCellContent::Table(table) => table_rows(table).join("; "),
        TableCellContent::StructuredDataTag(tag) => tag_text(tag),
        TableCellContent::TableOfContents(_) => String::new(),
    }
}

fn tag_text(tag: &StructuredDataTag) -> String {
    let mut parts = Vec::new();
    for child in &tag.children {
        match child {
            StructuredDataTagChild::Run(run) => {
                let mut text = String::new();
                push_run(run, &mut text);
                parts.push(text);
            }
            StructuredDataTagChild::Paragraph(paragraph) => parts.push(paragraph_text(paragraph)),
            StructuredDataTagChild::Table(table) => parts.push(table_rows(table).join("; ")),
            StructuredDataTagChild::StructuredDataTag(inner) => parts.push(tag_text(inner)),
            _ => {}
        }
    }
    parts.join(" ")
}

fn paragraph_text(paragraph: &Paragraph) -> String {
    let mut text = String::new();
    for child in &paragraph.children {
        push_paragraph_child(child, &mut text);
    }
    text
}

fn push_paragraph_child(child: &ParagraphChild, text: &mut String) {
    match child {
        ParagraphChild::Run(run) => push_run(run, text),
        ParagraphChild::Hyperlink(link) => link.children.iter().for_each(|c| push_paragraph_child(c, text)),
        ParagraphChild::Insert(insert) => {
            for child in &insert.children {
                if let InsertChild::Run(run) = child {
                    push_run(run, text);
                }
            }
        }
        ParagraphChild::MoveTo(moved) => {
            for child in &moved.children {
                if let MoveToChild::Run(run) = child {
                    push_run(run, text);
                }
            }
        }
        ParagraphChild::StructuredDataTag(tag) => text.push_str(&tag_text(tag)),
        // Deleted and moved-away text, bookmarks, comments, page fields.
        _ => {}
    }
}

fn push_run(run: &Run, text: &mut String) {
    for child in &run.children {
        match child {
            RunChild::Text(t) => text.push_str(&t.text),
            // A tab as a space: a leading tab would make a Markdown code block.
            RunChild::Tab(_) | RunChild::PTab(_) => text.push(' '),
            RunChild::Break(_) | RunChild::CarriageReturn(_) => text.push('\n'),
            _ => {}
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
