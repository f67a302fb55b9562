//! Captured files: what an agent's code writes with `files.write(path,
//! content)`, kept with the session (`files.read`, `files.list`) and read by
//! clients through `GET /agents/:id/files` (the tree) and
//! `GET /agents/:id/files/<path>` (one file: raw text, or base64 when it is
//! not UTF-8).
//!
//! Paths are confined to the session: relative, `/`-separated, no empty,
//! `.` or `..` segment, no backslash or control character, at most 256
//! bytes. Quotas per session: 1 MiB a file, 10 MiB and 200 files in all,
//! checked in the writing transaction.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::AgentRuntime;
use super::turn::Turn;
use crate::auth::AuthContext;
use crate::error::{EntityKind, Error, Result};
use crate::ids::SessionId;
use crate::time::{Timestamp, now};

/// The largest file.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// All of a session's files together.
pub const MAX_SESSION_FILE_BYTES: i64 = 10 * 1024 * 1024;
/// Files per session.
pub const MAX_SESSION_FILES: i64 = 200;
/// The longest path.
pub const MAX_PATH_BYTES: usize = 256;

/// A file's entry in the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub size: i64,
    pub updated_at: Timestamp,
}

/// A file with its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFile {
    pub path: String,
    pub content: Vec<u8>,
    pub updated_at: Timestamp,
}

impl SessionFile {
    /// `("raw", text)` when the bytes are UTF-8, else `("base64", …)`.
    pub fn encoded(&self) -> (&'static str, String) {
        match std::str::from_utf8(&self.content) {
            Ok(text) => ("raw", text.to_owned()),
            Err(_) => ("base64", STANDARD.encode(&self.content)),
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteFile {
    Written,
    /// Over a quota: the message says which.
    Refused(String),
    SessionGone,
}

/// Checks a path as code or a client gives it.
pub fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(format!("a file path takes 1 to {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') || path.contains('\\') || path.chars().any(char::is_control) {
        return Err(format!(
            "file path `{}` must be relative, with `/` between parts and no control characters",
            super::event::first_chars(path, 80)
        ));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "file path `{}` has an empty, `.` or `..` part: files stay inside the session",
            super::event::first_chars(path, 80)
        ));
    }
    Ok(())
}

impl AgentRuntime {
    /// `GET /agents/:id/files`: the session's files, by path.
    pub async fn list_files(&self, ctx: &AuthContext, id: &SessionId) -> Result<Vec<FileEntry>> {
        self.get_session(ctx, id).await?;
        Ok(self.store.list_session_files(&ctx.project.id, id).await?)
    }

    /// `GET /agents/:id/files/<path>`: 400 for a path outside the session,
    /// 404 for a missing file.
    pub async fn read_file(&self, ctx: &AuthContext, id: &SessionId, path: &str) -> Result<SessionFile> {
        self.get_session(ctx, id).await?;
        check_path(path).map_err(|e| Error::validation(e, Some("path")))?;
        self.store
            .read_session_file(&ctx.project.id, id, path)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::File, path))
    }
}

impl Turn {
    /// `files.write(path, content, { encoding: "base64" }?)`.
    pub(crate) async fn files_write(
        &self,
        path: Value,
        content: Value,
        options: Value,
    ) -> std::result::Result<(Value, String), String> {
        let path = path_arg(&path, "files.write")?;
        let base64 = options.get("encoding").and_then(Value::as_str) == Some("base64");
        let bytes = match content {
            Value::String(text) if base64 => STANDARD
                .decode(text.as_bytes())
                .map_err(|_| "files.write: the content is not valid base64".to_owned())?,
            Value::String(text) => text.into_bytes(),
            Value::Null => return Err("files.write takes (path, content)".to_owned()),
            other => other.to_string().into_bytes(),
        };
        if bytes.len() > MAX_FILE_BYTES {
            return Err(format!(
                "files.write: a file takes at most {MAX_FILE_BYTES} bytes; this one has {}",
                bytes.len()
            ));
        }
        let size = bytes.len();
        let written = self
            .runtime
            .store
            .write_session_file(&self.ctx.project.id, &self.session.id, &path, &bytes, now())
            .await
            .map_err(|e| e.to_string())?;
        match written {
            WriteFile::Written => Ok((
                json!({ "path": path, "size": size }),
                format!("write {path} ({size} bytes)"),
            )),
            WriteFile::Refused(why) => Err(format!("files.write: {why}")),
            WriteFile::SessionGone => Err("the session was deleted".to_owned()),
        }
    }

    /// `files.read(path, { encoding: "base64" }?)`: the text, or base64
    /// when asked (a file that is not UTF-8 must be read so).
    pub(crate) async fn files_read(
        &self,
        path: Value,
        options: Value,
    ) -> std::result::Result<(Value, String), String> {
        let path = path_arg(&path, "files.read")?;
        let file = self
            .runtime
            .store
            .read_session_file(&self.ctx.project.id, &self.session.id, &path)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("files.read: no file `{path}`"))?;
        let summary = format!("read {path} ({} bytes)", file.content.len());
        if options.get("encoding").and_then(Value::as_str) == Some("base64") {
            return Ok((Value::String(STANDARD.encode(&file.content)), summary));
        }
        match String::from_utf8(file.content) {
            Ok(text) => Ok((Value::String(text), summary)),
            Err(_) => Err(format!(
                "files.read: `{path}` is not text; read it with files.read(path, {{ encoding: \"base64\" }})"
            )),
        }
    }

    /// `files.list()` → `[{ path, size, updated_at }]`.
    pub(crate) async fn files_list(&self) -> std::result::Result<(Value, String), String> {
        let files = self
            .runtime
            .store
            .list_session_files(&self.ctx.project.id, &self.session.id)
            .await
            .map_err(|e| e.to_string())?;
        let summary = format!("list ({} files)", files.len());
        let list = files
            .into_iter()
            .map(|f| json!({ "path": f.path, "size": f.size, "updated_at": f.updated_at }))
            .collect();
        Ok((Value::Array(list), summary))
    }
}

fn path_arg(path: &Value, function: &str) -> std::result::Result<String, String> {
    let path = path
        .as_str()
        .ok_or_else(|| format!("{function} takes a path string first"))?;
    check_path(path).map_err(|e| format!("{function}: {e}"))?;
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_session() {
        for good in ["report.md", "out/data.csv", "a/b/c.txt", "naïve.txt"] {
            assert_eq!(check_path(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\\\b",
            "a\nb",
            &"x".repeat(257),
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
    }
}
