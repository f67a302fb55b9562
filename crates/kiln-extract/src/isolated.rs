//! Extraction in a child process, so a file that defeats a format reader
//! (a decompression bomb the scan in `inflate.rs` missed, a reader that
//! aborts on a huge allocation, an endless loop) ends that process and
//! never the server.
//!
//! [`IsolatedExtractor`] starts the worker program (the server passes its
//! own binary with a hidden subcommand that calls [`run_worker`]), sets its
//! limits before it reads anything (`prlimit`: data segment, so heap and
//! anonymous maps, and CPU seconds), writes the file to its stdin and reads
//! the result from its stdout. The worker runs niced (10) and asks to be
//! killed with its parent. PDF, DOCX and HTML go through it; Markdown, text and CSV are
//! decoded in process (no compression, no nesting). A worker costs a
//! process start per document (a few milliseconds) against ingestion that
//! takes tens.
//!
//! The wire, stdout: `ok <pages or ->\n` and the Markdown, or `error\n`
//! and the message.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use kiln_core::rag::{DocumentKind, Extracted, TextExtractor};

use crate::Extractor;

/// What one extraction process may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    /// Heap and anonymous mappings (`RLIMIT_DATA`).
    pub memory_bytes: u64,
    /// CPU time (`RLIMIT_CPU`); the process is killed past it.
    pub cpu_seconds: u64,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            memory_bytes: 1024 * 1024 * 1024,
            cpu_seconds: 100,
        }
    }
}

/// Runs PDF, DOCX and HTML extraction in a child process: `program` with
/// `args` and the kind's name, which must call [`run_worker`].
#[derive(Debug, Clone)]
pub struct IsolatedExtractor {
    program: PathBuf,
    args: Vec<String>,
    limits: WorkerLimits,
}

impl IsolatedExtractor {
    pub fn new(program: impl Into<PathBuf>, args: &[&str], limits: WorkerLimits) -> IsolatedExtractor {
        IsolatedExtractor {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            limits,
        }
    }

    fn run_child(&self, kind: DocumentKind, bytes: &[u8]) -> Result<Extracted, String> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(kind_name(kind))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                tracing::error!(program = %self.program.display(), error = %e, "cannot start the extraction worker");
                "the server could not start its text extractor; try again later".to_owned()
            })?;
        // Limits before the file goes in: the worker reads it all first.
        if let Err(e) = limit(child.id(), self.limits) {
            let _ = child.kill();
            let _ = child.wait();
            tracing::error!(error = %e, "cannot limit the extraction worker");
            return Err("the server could not limit its text extractor; try again later".to_owned());
        }
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let (output, written) = std::thread::scope(|scope| {
            // The worker may die before reading everything; then the write
            // fails and the exit status says why.
            let writer = scope.spawn(move || stdin.write_all(bytes));
            let mut output = Vec::new();
            let read = (&mut stdout)
                .take(crate::MAX_MARKDOWN_BYTES as u64 + 4096)
                .read_to_end(&mut output);
            let written = writer.join().unwrap_or(Ok(()));
            (read.map(|_| output), written)
        });
        let status = child
            .wait()
            .map_err(|e| format!("the text extractor was lost: {e}"))?;
        if !status.success() {
            return Err(died(kind, status, self.limits));
        }
        let output = output.map_err(|e| format!("the text extractor's answer was lost: {e}"))?;
        if let Err(e) = written {
            return Err(format!("the text extractor did not take the file: {e}"));
        }
        decode(&output)
    }
}

impl TextExtractor for IsolatedExtractor {
    fn extract(&self, kind: DocumentKind, bytes: &[u8]) -> Result<Extracted, String> {
        match kind {
            DocumentKind::Pdf | DocumentKind::Docx | DocumentKind::Html => self.run_child(kind, bytes),
            _ => Extractor.extract(kind, bytes),
        }
    }
}

/// The worker: reads the file from stdin, extracts `kind` and writes the
/// result to stdout. Returns the process's exit code.
pub fn run_worker(kind: &str) -> i32 {
    // Die with the server rather than finish work nobody reads.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let Some(kind) = parse_kind(kind) else {
        eprintln!("unknown document kind `{kind}`");
        return 2;
    };
    let mut bytes = Vec::new();
    if let Err(e) = io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("reading the file: {e}");
        return 1;
    }
    let mut out = io::stdout().lock();
    let written = match Extractor.extract(kind, &bytes) {
        Ok(extracted) => {
            let pages = extracted
                .page_count
                .map_or_else(|| "-".to_owned(), |n| n.to_string());
            write!(out, "ok {pages}\n{}", extracted.markdown)
        }
        Err(message) => write!(out, "error\n{message}"),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn limit(pid: u32, limits: WorkerLimits) -> io::Result<()> {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::other("no such process id"))?;
    for (resource, value) in [
        (Resource::Data, limits.memory_bytes),
        (Resource::Cpu, limits.cpu_seconds),
    ] {
        let bound = Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        prlimit(Some(pid), resource, bound)?;
    }
    // Behind the server's own threads when they compete for a core.
    rustix::process::setpriority_process(Some(pid), 10)?;
    Ok(())
}

/// Why the worker ended without an answer, for the document's error.
fn died(kind: DocumentKind, status: std::process::ExitStatus, limits: WorkerLimits) -> String {
    use std::os::unix::process::ExitStatusExt;
    let format = crate::format_name(kind);
    let how = match status.signal() {
        // SIGXCPU, or SIGKILL past the hard limit.
        Some(24 | 9) => format!("it ran past its {} s of CPU", limits.cpu_seconds),
        // An allocation past the data limit aborts (SIGABRT) or faults.
        Some(6 | 11 | 7) => format!(
            "it ran out of memory ({} MiB)",
            limits.memory_bytes / (1024 * 1024)
        ),
        Some(signal) => format!("it was stopped by signal {signal}"),
        None => format!("it exited with {status}"),
    };
    format!(
        "could not read the {format}: the reader gave up on it ({how}); the file is malformed, \
         far larger unpacked than packed, or crafted to exhaust the server"
    )
}

fn decode(output: &[u8]) -> Result<Extracted, String> {
    let text = String::from_utf8_lossy(output);
    let (head, body) = text.split_once('\n').unwrap_or((&text, ""));
    if head == "error" {
        return Err(body.to_owned());
    }
    let pages = head
        .strip_prefix("ok ")
        .ok_or("the text extractor's answer is garbled")?;
    let page_count = match pages {
        "-" => None,
        n => Some(n.parse().map_err(|_| "the text extractor's answer is garbled")?),
    };
    Ok(Extracted {
        markdown: body.to_owned(),
        page_count,
    })
}

fn kind_name(kind: DocumentKind) -> &'static str {
    match kind {
        DocumentKind::Markdown => "markdown",
        DocumentKind::Text => "text",
        DocumentKind::Csv => "csv",
        DocumentKind::Html => "html",
        DocumentKind::Pdf => "pdf",
        DocumentKind::Docx => "docx",
        DocumentKind::Opaque => "opaque",
    }
}

fn parse_kind(name: &str) -> Option<DocumentKind> {
    [
        DocumentKind::Markdown,
        DocumentKind::Text,
        DocumentKind::Csv,
        DocumentKind::Html,
        DocumentKind::Pdf,
        DocumentKind::Docx,
    ]
    .into_iter()
    .find(|kind| kind_name(*kind) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_decode() {
        assert_eq!(
            decode(b"ok 3\n# Title\n\nBody"),
            Ok(Extracted {
                markdown: "# Title\n\nBody".into(),
                page_count: Some(3)
            })
        );
        assert_eq!(decode(b"ok -\n").map(|e| e.page_count), Ok(None));
        assert_eq!(decode(b"error\nnot a PDF").unwrap_err(), "not a PDF");
        assert!(decode(b"").is_err());
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [DocumentKind::Pdf, DocumentKind::Docx, DocumentKind::Html] {
            assert_eq!(parse_kind(kind_name(kind)), Some(kind));
        }
        assert_eq!(parse_kind("opaque"), None);
    }
}
