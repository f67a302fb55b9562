//! The RAG verbs: `kiln upload`, `kiln docs list|delete`, `kiln search`.
//! Remote verbs: they talk to a running server through `kiln-sdk`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use kiln_sdk::api::{Document, Index, SearchRequest};
use kiln_sdk::{Client, DocumentQuery, UploadOptions};

use crate::{RemoteArgs, print_table, short_time};

#[derive(Debug, clap::Args)]
pub(crate) struct UploadArgs {
    /// Files, directories (uploaded recursively) or quoted glob patterns (`"docs/**/*.md"`).
    #[arg(required = true)]
    paths: Vec<String>,
    /// The index (name or id).
    #[arg(long)]
    index: String,
    /// Upload without a logical name. By default each file's path (as given) is its name, so
    /// uploading the same path again creates a new version instead of a duplicate.
    #[arg(long)]
    no_name: bool,
    /// Provenance metadata as a JSON object, e.g. '{"source":"wiki"}'.
    #[arg(long)]
    metadata: Option<String>,
    /// Return once uploaded, without waiting for ingestion to finish.
    #[arg(long)]
    no_wait: bool,
    /// Give up waiting for ingestion after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DocsCommand {
    /// List the latest version of each document, newest first.
    List {
        /// Only this index (name or id).
        #[arg(long)]
        index: Option<String>,
        /// Filename contains (case-insensitive).
        #[arg(long)]
        q: Option<String>,
        /// Only documents whose metadata.source is this.
        #[arg(long)]
        source: Option<String>,
        /// Include soft-deleted documents.
        #[arg(long)]
        include_deleted: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a document (and its extracted sibling).
    Delete {
        id: String,
        /// Remove the row and its bytes instead of marking it deleted.
        #[arg(long)]
        hard: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct SearchArgs {
    /// What to look for.
    #[arg(required = true)]
    query: Vec<String>,
    /// Only this index (name or id); default: every index of the project.
    #[arg(long)]
    index: Option<String>,
    /// One row per document (its best passage) instead of one per chunk.
    #[arg(long)]
    documents: bool,
    #[arg(long, default_value_t = 10)]
    top_k: i64,
    /// Drop results scoring below this (0..1).
    #[arg(long)]
    min_score: Option<f64>,
    /// `hybrid` (default), `bm25` or `vector`.
    #[arg(long)]
    mode: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// The index with this name or id.
pub(crate) async fn resolve_index(client: &Client, name_or_id: &str) -> anyhow::Result<Index> {
    let indexes = client.list_indexes().await?;
    indexes
        .into_iter()
        .find(|i| i.id == name_or_id || i.name == name_or_id)
        .with_context(|| format!("no index named or with id `{name_or_id}` (see `kiln index list`)"))
}

fn parse_metadata(text: Option<&str>) -> anyhow::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    match text {
        None => Ok(None),
        Some(text) => match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
            _ => anyhow::bail!("--metadata must be a JSON object"),
        },
    }
}

/// Files named by the arguments: files as they are, directories walked,
/// patterns expanded; sorted and without repeats.
fn expand(paths: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.is_file() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for arg in paths {
        let path = Path::new(arg);
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.to_path_buf());
        } else {
            let matches: Vec<PathBuf> = glob::glob(arg)
                .with_context(|| format!("`{arg}` is not a file, a directory or a valid pattern"))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            anyhow::ensure!(!matches.is_empty(), "`{arg}` matches no file");
            files.extend(matches);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The logical name of an uploaded path: as given, with `/` separators and
/// no leading `./`.
fn logical_name(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    text.trim_start_matches("./").to_owned()
}

/// One line of progress on a terminal, rewritten in place; plain lines
/// otherwise.
struct Progress {
    total: usize,
    tty: bool,
}

impl Progress {
    fn show(&self, done: usize, what: &str) {
        if !self.tty {
            return;
        }
        let width = 24;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
        let what: String = what.chars().take(48).collect();
        eprint!("\r\x1b[2K[{bar}] {done}/{} {what}", self.total);
        let _ = std::io::stderr().flush();
    }

    fn line(&self, text: &str) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("{text}");
    }
}

fn describe(doc: &Document) -> String {
    match doc.status.as_str() {
        "ready" => format!(
            "{} chunk{}",
            doc.chunk_count,
            if doc.chunk_count == 1 { "" } else { "s" }
        ),
        "stored" if doc.page_count.is_some() => {
            format!(
                "stored; {} page(s) extracted to a Markdown sibling",
                doc.page_count.unwrap_or(0)
            )
        }
        "stored" => "stored (not an indexable type)".to_owned(),
        "error" => doc.error_message.clone().unwrap_or_default(),
        other => other.to_owned(),
    }
}

pub(crate) async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let index = resolve_index(&client, &args.index).await?;
    let files = expand(&args.paths)?;
    let metadata = parse_metadata(args.metadata.as_deref())?;
    let progress = Progress {
        total: files.len(),
        tty: std::io::stderr().is_terminal(),
    };
    let mut uploaded: Vec<(PathBuf, Document)> = Vec::new();
    let mut failures = 0;
    for (i, path) in files.iter().enumerate() {
        progress.show(i, &format!("uploading {}", path.display()));
        let options = UploadOptions {
            name: (!args.no_name).then(|| logical_name(path)),
            metadata: metadata.clone(),
            ..Default::default()
        };
        match client.upload_document(&index.id, path, &options).await {
            Ok(doc) => {
                if args.no_wait || doc.status != "pending" {
                    progress.line(&format!("{:<8} {}  {}", doc.status, path.display(), doc.id));
                }
                uploaded.push((path.clone(), doc));
            }
            Err(e) => {
                failures += 1;
                progress.line(&format!("{:<8} {}  {e}", "failed", path.display()));
            }
        }
    }
    if !args.no_wait {
        let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
        let waiting: Vec<&(PathBuf, Document)> =
            uploaded.iter().filter(|(_, d)| d.status == "pending").collect();
        for (i, (path, doc)) in waiting.iter().enumerate() {
            progress.show(i, &format!("ingesting {}", path.display()));
            let left = deadline.saturating_duration_since(Instant::now());
            match client.wait_for_document(&doc.id, left).await {
                Ok(done) => {
                    if done.status == "error" {
                        failures += 1;
                    }
                    progress.line(&format!(
                        "{:<8} {}  {}",
                        done.status,
                        path.display(),
                        describe(&done)
                    ));
                }
                Err(e) => {
                    failures += 1;
                    progress.line(&format!("{:<8} {}  {e}", "waiting", path.display()));
                }
            }
        }
    }
    progress.line(&format!(
        "{} file(s) into index `{}`: {} ok, {failures} failed",
        files.len(),
        index.name,
        files.len() - failures
    ));
    anyhow::ensure!(failures == 0, "{failures} file(s) failed");
    Ok(())
}

pub(crate) async fn docs(command: DocsCommand) -> anyhow::Result<()> {
    match command {
        DocsCommand::List {
            index,
            q,
            source,
            include_deleted,
            limit,
            offset,
            json,
            remote,
        } => {
            let client = remote.client()?;
            let query = DocumentQuery {
                limit: Some(limit),
                offset: Some(offset),
                q,
                source,
                include_deleted,
                ..Default::default()
            };
            let list = match index {
                Some(name) => {
                    let index = resolve_index(&client, &name).await?;
                    client.list_index_documents(&index.id, &query).await?
                }
                None => client.list_documents(&query).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let mut table = vec![
                ["ID", "NAME", "STATUS", "CHUNKS", "VERSION", "BYTES", "CREATED"]
                    .map(String::from)
                    .to_vec(),
            ];
            for d in &list.data {
                table.push(vec![
                    d.id.clone(),
                    d.name.clone().unwrap_or_else(|| d.filename.clone()),
                    if d.deleted_at.is_some() {
                        "deleted".into()
                    } else {
                        d.status.clone()
                    },
                    d.chunk_count.to_string(),
                    d.version.to_string(),
                    d.file_size.to_string(),
                    short_time(&d.created_at),
                ]);
            }
            print_table(&table);
            if list.has_more {
                eprintln!(
                    "{} of {} shown; next page: --offset {}",
                    list.data.len(),
                    list.total,
                    offset + limit
                );
            }
        }
        DocsCommand::Delete { id, hard, remote } => {
            remote.client()?.delete_document(&id, hard).await?;
            eprintln!("deleted document {id}{}", if hard { " (hard)" } else { "" });
        }
    }
    Ok(())
}

/// One line of a chunk's text, at most `n` characters.
pub(crate) fn snippet(text: &str, n: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= n {
        return flat;
    }
    let mut cut: String = flat.chars().take(n.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(crate) async fn search(args: SearchArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let index_id = match &args.index {
        Some(name) => Some(resolve_index(&client, name).await?.id),
        None => None,
    };
    let request = SearchRequest {
        query: args.query.join(" "),
        top_k: Some(args.top_k),
        min_score: args.min_score,
        index_id,
        mode: args.mode.clone(),
        ..Default::default()
    };
    if args.documents {
        let results = client.search_documents(&request).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
            return Ok(());
        }
        let mut table = vec![["SCORE", "DOCUMENT", "BEST PASSAGE"].map(String::from).to_vec()];
        for r in &results {
            table.push(vec![
                format!("{:.3}", r.score),
                r.document_name.clone().unwrap_or_else(|| r.filename.clone()),
                snippet(&r.best_chunk.preview, 90),
            ]);
        }
        print_table(&table);
    } else {
        let results = client.search(&request).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
            return Ok(());
        }
        let mut table = vec![["SCORE", "DOCUMENT", "CHUNK", "TEXT"].map(String::from).to_vec()];
        for r in &results {
            table.push(vec![
                format!("{:.3}", r.score),
                r.document_name.clone().unwrap_or_else(|| r.filename.clone()),
                r.chunk_index.to_string(),
                snippet(&r.content, 90),
            ]);
        }
        print_table(&table);
    }
    Ok(())
}
