//! DOCX files become Markdown with headings, paragraphs, lists and tables.

use std::io::Cursor;

use docx_rs::{
    AbstractNumbering, Docx, IndentLevel, Numbering, NumberingId, Paragraph, Run, Table, TableCell, TableRow,
};
use kiln_core::rag::DocumentKind;

use crate::{error, extract};

fn docx(document: Docx) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    document.build().pack(&mut bytes).unwrap();
    bytes.into_inner()
}

fn paragraph(text: &str) -> Paragraph {
    Paragraph::new().add_run(Run::new().add_text(text))
}

fn cell(text: &str) -> TableCell {
    TableCell::new().add_paragraph(paragraph(text))
}

#[test]
fn headings_paragraphs_lists_and_tables_become_markdown() {
    let bytes = docx(
        Docx::new()
            .add_abstract_numbering(AbstractNumbering::new(1))
            .add_numbering(Numbering::new(1, 1))
            .add_paragraph(paragraph("Kiln Handbook").style("Title"))
            .add_paragraph(paragraph("Getting started").style("Heading1"))
            .add_paragraph(
                Paragraph::new()
                    .add_run(Run::new().add_text("Kiln runs "))
                    .add_run(Run::new().add_text("agents").bold())
                    .add_run(Run::new().add_text(" close to your data.")),
            )
            .add_paragraph(paragraph(""))
            .add_paragraph(paragraph("Ports").style("Heading2"))
            .add_paragraph(paragraph("HTTP").numbering(NumberingId::new(1), IndentLevel::new(0)))
            .add_paragraph(paragraph("gRPC").numbering(NumberingId::new(1), IndentLevel::new(1)))
            .add_table(Table::new(vec![
                TableRow::new(vec![cell("Setting"), cell("Default")]),
                TableRow::new(vec![cell("port"), cell("8080 | 8443")]),
            ])),
    );

    let extracted = extract(DocumentKind::Docx, &bytes).unwrap();

    assert_eq!(extracted.page_count, None);
    assert_eq!(
        extracted.markdown,
        concat!(
            "# Kiln Handbook\n",
            "\n",
            "# Getting started\n",
            "\n",
            "Kiln runs agents close to your data.\n",
            "\n",
            "## Ports\n",
            "\n",
            "- HTTP\n",
            "  - gRPC\n",
            "\n",
            "Setting | Default\n",
            "port | 8080 \\| 8443",
        )
    );
}

#[test]
fn corrupt_docx_files_are_errors() {
    let message = error(DocumentKind::Docx, b"PK\x03\x04 this is not really a zip archive");
    assert!(
        message.starts_with("could not read the DOCX: it is not a valid ZIP archive"),
        "{message}"
    );

    let whole = docx(Docx::new().add_paragraph(paragraph("cut off")));
    let message = error(DocumentKind::Docx, &whole[..whole.len() / 2]);
    assert!(message.starts_with("could not read the DOCX: "), "{message}");
}
