//! Test fixtures: small real PDF and DOCX files, for Kiln's own tests
//! (behind the `fixtures` feature; never in the server binary).

use std::io::{Cursor, Write};

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

/// Writes `size` spaces into `writer`, a megabyte at a time.
fn spaces(writer: &mut impl Write, size: u64) {
    let chunk = vec![b' '; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        writer.write_all(&chunk[..n]).expect("writes into memory");
        left -= n as u64;
    }
}

/// A ZIP bomb shaped like a DOCX: a real DOCX's parts, except that
/// `word/document.xml` inflates to `inflated` bytes (of spaces).
pub fn zip_bomb(inflated: u64) -> Vec<u8> {
    let real = docx(&[("", "Small.")]);
    let mut parts = zip::ZipArchive::new(Cursor::new(real)).expect("the fixture DOCX opens");
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..parts.len() {
        let part = parts.by_index_raw(i).expect("a part");
        if part.name() != "word/document.xml" {
            zip.raw_copy_file(part).expect("copies a part");
        }
    }
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .large_file(inflated >= u64::from(u32::MAX));
    zip.start_file("word/document.xml", options)
        .expect("starts an entry");
    spaces(&mut zip, inflated);
    zip.finish().expect("the archive ends").into_inner()
}

/// A small DOCX whose `word/document.xml` declares `declared` bytes (in
/// its local and central headers) while holding a few: readers that size
/// a buffer from the declaration allocate that much.
pub fn zip_declaring(declared: u32) -> Vec<u8> {
    let mut bytes = docx(&[("", "Small.")]);
    let name = b"word/document.xml";
    // Local headers (PK\x03\x04): the size at 22; central (PK\x01\x02): at 24.
    for (signature, size_at, name_at) in [(b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)] {
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(4).position(|w| w == signature) {
            let header = at + found;
            if bytes[header + name_at..].starts_with(name) {
                bytes[header + size_at..header + size_at + 4].copy_from_slice(&declared.to_le_bytes());
            }
            at = header + 4;
        }
    }
    bytes
}

/// A PDF bomb: one page whose content stream (`FlateDecode`) inflates to
/// `inflated` bytes (of spaces, which draw nothing), beside a page of text.
pub fn pdf_bomb(inflated: u64) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    spaces(&mut encoder, inflated);
    let compressed = encoder.finish().expect("compresses into memory");
    let text = pdf(&[&["Nothing to see."]]);
    let mut doc = Document::load_mem(&text).expect("the fixture PDF loads");
    let mut bomb = Stream::new(dictionary! { "Filter" => "FlateDecode" }, compressed);
    bomb.allows_compression = false;
    let bomb_id = doc.add_object(bomb);
    let first_page = *doc.get_pages().values().next().expect("a page");
    let pages_id = doc
        .get_object(first_page)
        .and_then(Object::as_dict)
        .and_then(|page| page.get(b"Parent"))
        .and_then(Object::as_reference)
        .expect("the page has a parent");
    let page_id = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "Contents" => bomb_id,
    });
    let pages = doc
        .get_object_mut(pages_id)
        .and_then(Object::as_dict_mut)
        .expect("the page tree");
    if let Ok(Object::Array(kids)) = pages.get_mut(b"Kids") {
        kids.push(page_id.into());
    }
    pages.set("Count", 2);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("a PDF saves into memory");
    bytes
}
