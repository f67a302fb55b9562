//! Decompression bombs: a 2 MB DOCX (a ZIP archive) or PDF (Flate
//! streams) can inflate to gigabytes, and the format readers inflate
//! without a bound (`docx-rs` even sizes its buffer from the size the
//! archive declares, so a huge declaration aborts the process). Before a
//! reader sees the file, its compressed parts are inflated here into
//! nothing, counting, and the file is refused once they pass
//! [`MAX_INFLATED_BYTES`] together. Nothing is kept, so the check costs
//! time (bounded by the same figure), never memory.
//!
//! The PDF check reads every `stream … endstream` body that starts like a
//! zlib stream (what `FlateDecode` holds), without parsing the document: a
//! crafted file can hide a stream from a scan like this one (behind a
//! broken `endstream`, say), which is why extraction also runs in a child
//! process with its own memory and CPU limits (`crate::isolated`).

use std::io::{self, Read};

/// The most a document's compressed parts may inflate to, together.
pub const MAX_INFLATED_BYTES: u64 = 256 * 1024 * 1024;

/// Refuses a DOCX whose entries declare or inflate past `limit` together.
pub(crate) fn check_zip(bytes: &[u8], limit: u64) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes))
        .map_err(|e| format!("could not read the DOCX: it is not a valid ZIP archive ({e})"))?;
    let declared: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|entry| entry.size()))
        .fold(0u64, u64::saturating_add);
    if declared > limit {
        return Err(too_large("DOCX", limit));
    }
    let mut total = 0u64;
    for i in 0..archive.len() {
        let Ok(entry) = archive.by_index(i) else {
            // An entry the reader cannot open; the DOCX reader says why.
            continue;
        };
        total += count(entry, limit - total).map_err(|_| too_large("DOCX", limit))?;
    }
    Ok(())
}

/// Refuses a PDF whose zlib streams inflate past `limit` together.
pub(crate) fn check_pdf(bytes: &[u8], limit: u64) -> Result<(), String> {
    let mut total = 0u64;
    let mut rest = bytes;
    while let Some(start) = find(rest, b"stream") {
        let after = &rest[start + b"stream".len()..];
        // `endstream` contains `stream`: skip it.
        let is_end = start >= 3 && &rest[start - 3..start] == b"end";
        let body = after
            .strip_prefix(b"\r\n")
            .or_else(|| after.strip_prefix(b"\n"))
            .or_else(|| after.strip_prefix(b"\r"));
        match body {
            Some(body) if !is_end && looks_like_zlib(body) => {
                let end = find(body, b"endstream").unwrap_or(body.len());
                let decoder = flate2::read::ZlibDecoder::new(&body[..end]);
                total += count(decoder, limit - total).map_err(|_| too_large("PDF", limit))?;
                rest = &body[end..];
            }
            _ => rest = after,
        }
    }
    Ok(())
}

/// Reads `reader` to its end or its first error, counting bytes; `Err` once
/// it passes `room`. A stream that fails midway counts what it gave: the
/// reader that follows fails on it anyway.
fn count(reader: impl Read, room: u64) -> Result<u64, ()> {
    let mut bounded = reader.take(room.saturating_add(1));
    let mut buffer = [0u8; 64 * 1024];
    let mut read = 0u64;
    loop {
        match bounded.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n as u64,
        }
    }
    if read > room { Err(()) } else { Ok(read) }
}

/// A zlib header: deflate with a window of at most 32 KiB, and a check
/// value that makes the two bytes a multiple of 31.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn too_large(format: &str, limit: u64) -> String {
    format!(
        "could not read the {format}: its compressed parts unpack to more than {} MiB \
         (a decompression bomb, or a file too large to index)",
        limit / (1024 * 1024)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_zip_bomb_is_refused_and_a_real_docx_passes() {
        let real = fixtures::docx(&[("", "Hello.")]);
        assert_eq!(check_zip(&real, MIB), Ok(()));
        let bomb = fixtures::zip_bomb(4 * MIB);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let error = check_zip(&bomb, MIB).unwrap_err();
        assert!(error.contains("unpack to more than 1 MiB"), "{error}");
        assert_eq!(check_zip(&bomb, 8 * MIB), Ok(()));
        let declaring = fixtures::zip_declaring(u32::MAX);
        let error = check_zip(&declaring, MIB).unwrap_err();
        assert!(error.contains("unpack to more than 1 MiB"), "{error}");
    }

    #[test]
    fn a_flate_bomb_is_refused_and_a_real_pdf_passes() {
        let real = fixtures::pdf(&[&["Quarterly turbine inspection."]]);
        assert_eq!(check_pdf(&real, MIB), Ok(()));
        let bomb = fixtures::pdf_bomb(4 * MIB);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let error = check_pdf(&bomb, MIB).unwrap_err();
        assert!(error.contains("PDF") && error.contains("1 MiB"), "{error}");
        assert_eq!(check_pdf(&bomb, 8 * MIB), Ok(()));
    }

    #[test]
    fn zlib_headers_are_told_apart() {
        assert!(looks_like_zlib(&[0x78, 0x9c]));
        assert!(looks_like_zlib(&[0x78, 0x01]));
        assert!(looks_like_zlib(&[0x78, 0xda]));
        assert!(!looks_like_zlib(b"BT /F1"));
        assert!(!looks_like_zlib(&[0xff, 0xd8]));
    }
}
