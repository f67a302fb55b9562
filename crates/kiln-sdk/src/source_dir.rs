//! Agents as code on disk, shared by `kiln` and the tests: a project folder
//! (`kiln.jsonc` naming the project, one folder per agent under
//! `kiln/agents/<id>/`) read into a source manifest, and a `source-export`
//! written back into such a folder.
//!
//! Paths in the manifest are relative to the agent folder, with `/`. A file
//! that is UTF-8 text is sent as text, anything else as base64 (the server
//! tells them apart by hash and size). Hidden files and folders (`.git`,
//! `.DS_Store`) are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use kiln_api::{SourceAgent, SourceExport, SourceFile, SourceSyncManifest};
use sha2::{Digest, Sha256};

/// The project file at the root of a project folder.
pub const PROJECT_FILE: &str = "kiln.jsonc";
/// Where the agent folders live, relative to the root.
pub const AGENTS_DIR: &str = "kiln/agents";

/// What went wrong reading or writing a project folder.
#[derive(Debug, thiserror::Error)]
pub enum SourceDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    ProjectFile { path: PathBuf, message: String },
    #[error("{path}: the server sent content that is not base64")]
    Content { path: PathBuf },
    #[error("refusing to write `{0}` outside the project folder")]
    UnsafePath(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SourceDirError + '_ {
    move |source| SourceDirError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `project` of `ROOT/kiln.jsonc`.
pub fn project_name(root: &Path) -> Result<String, SourceDirError> {
    let path = root.join(PROJECT_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let value: serde_json::Value =
        jsonc_parser::parse_to_serde_value(&text, &Default::default()).map_err(|e| {
            SourceDirError::ProjectFile {
                path: path.clone(),
                message: format!("not JSONC: {e}"),
            }
        })?;
    value
        .get("project")
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SourceDirError::ProjectFile {
            path,
            message: "needs a \"project\" name, like { \"project\": \"support-app\" }".into(),
        })
}

/// Every file under `dir`, by path relative to it (with `/`), hidden
/// entries skipped.
fn files_under(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, SourceDirError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![(dir.to_owned(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let entry = entry.map_err(io(&folder))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let relative = format!("{prefix}{name}");
            if entry.file_type().map_err(io(&path))?.is_dir() {
                pending.push((path, format!("{relative}/")));
            } else {
                files.insert(relative, std::fs::read(&path).map_err(io(&path))?);
            }
        }
    }
    Ok(files)
}

/// A file as the manifest carries it.
pub fn source_file(path: &str, bytes: &[u8]) -> SourceFile {
    let content = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
    };
    SourceFile {
        path: path.to_owned(),
        hash: format!("sha256:{}", sha256_hex(bytes)),
        size: bytes.len() as i64,
        content: Some(content),
    }
}

/// A hash over (path, bytes) pairs in path order.
fn tree_hash<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut hasher = Sha256::new();
    for (path, bytes) in entries {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(sha256_hex(bytes).as_bytes());
        hasher.update([0]);
    }
    format!(
        "sha256:{}",
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The manifest of the project folder at `root`: every agent folder of
/// `kiln/agents/` (or only `only`), in name order.
pub fn manifest_from_dir(
    root: &Path,
    environment: Option<&str>,
    only: Option<&str>,
) -> Result<SourceSyncManifest, SourceDirError> {
    let project = project_name(root)?;
    let agents_dir = root.join(AGENTS_DIR);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&agents_dir).map_err(io(&agents_dir))? {
        let entry = entry.map_err(io(&agents_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.file_type().map_err(io(&agents_dir))?.is_dir() {
            names.push(name);
        }
    }
    names.sort();
    let mut agents = Vec::new();
    let mut all = BTreeMap::new();
    for name in names.into_iter().filter(|n| only.is_none_or(|o| o == n)) {
        let files = files_under(&agents_dir.join(&name))?;
        let source_hash = tree_hash(files.iter().map(|(p, b)| (p.as_str(), b.as_slice())));
        for (path, bytes) in &files {
            all.insert(format!("{name}/{path}"), bytes.clone());
        }
        agents.push(SourceAgent {
            id: name,
            source_hash,
            files: files
                .iter()
                .map(|(path, bytes)| source_file(path, bytes))
                .collect(),
        });
    }
    Ok(SourceSyncManifest {
        project,
        environment: environment.map(str::to_owned),
        source_hash: tree_hash(all.iter().map(|(p, b)| (p.as_str(), b.as_slice()))),
        agents,
        generated_at: None,
    })
}

/// Writes an export under `root/kiln/agents/<id>/`, replacing files of the
/// same paths (others are left alone). Returns the files written.
pub fn write_export(root: &Path, export: &SourceExport) -> Result<Vec<PathBuf>, SourceDirError> {
    let safe = |p: &str| {
        !p.is_empty()
            && !p.starts_with('/')
            && !p.contains('\\')
            && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
    };
    let mut written = Vec::new();
    for agent in &export.agents {
        if !safe(&agent.id) || agent.id.contains('/') {
            return Err(SourceDirError::UnsafePath(agent.id.clone()));
        }
        for file in &agent.files {
            if !safe(&file.path) {
                return Err(SourceDirError::UnsafePath(file.path.clone()));
            }
            let path = root.join(AGENTS_DIR).join(&agent.id).join(&file.path);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(file.content.as_deref().unwrap_or(""))
                .map_err(|_| SourceDirError::Content { path: path.clone() })?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, bytes).map_err(io(&path))?;
            written.push(path);
        }
    }
    Ok(written)
}
