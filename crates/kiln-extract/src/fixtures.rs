//! Test fixtures: small real PDF and DOCX files, for Kiln's own tests
//! (behind the `fixtures` feature; never in the server binary).

use std::io::Cursor;

use docx_rs::{Docx, Paragraph, Run};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

/// A PDF with one A4 page per entry, each line of it set in 12 pt Helvetica
/// with 14 pt leading (an empty line leaves a gap, as between paragraphs).
pub fn pdf(pages: &[&[&str]]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for lines in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 770.into()]),
        ];
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                operations.push(Operation::new("Td", vec![0.into(), (-14).into()]));
            }
            if !line.is_empty() {
                operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            }
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode().expect("PDF content encodes");
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(Object::from(page_id));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("a PDF saves into memory");
    bytes
}

/// A DOCX holding one paragraph per `(style, text)`; the style is a Word
/// style id such as `Heading1`, or `""` for body text.
pub fn docx(paragraphs: &[(&str, &str)]) -> Vec<u8> {
    let mut doc = Docx::new();
    for (style, text) in paragraphs {
        let mut p = Paragraph::new().add_run(Run::new().add_text(*text));
        if !style.is_empty() {
            p = p.style(style);
        }
        doc = doc.add_paragraph(p);
    }
    let mut bytes = Cursor::new(Vec::new());
    doc.build().pack(&mut bytes).expect("a DOCX packs into memory");
    bytes.into_inner()
}
