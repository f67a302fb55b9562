//! A source manifest, checked: paths, sizes, the two content encodings,
//! `agent.jsonc` (JSONC, known keys, value shapes), the layout of the agent
//! folder. Everything here is pure; what needs the database (do the named
//! indexes exist?) is [`super::AgentConfigs`]'s.
//!
//! Issues are a compiler's: the file, the line and column when there is
//! one, a stable [`IssueCode`], a message and a hint. A fatal issue blocks
//! sync and deploy; a warning does not.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use serde_json::Value;

use crate::agents::config::McpServerSpec;
use crate::crypto::sha256_hex;
use crate::llm::ModelRef;
use crate::mcp::McpTransport;

/// The largest file of an agent folder.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// The largest manifest, all files together.
pub const MAX_MANIFEST_BYTES: usize = 20 * 1024 * 1024;
/// Every agent folder has one.
pub const AGENT_FILE: &str = "agent.jsonc";
/// The persona, the agent's system prompt.
pub const PERSONA_FILE: &str = "persona.md";
/// The keys `agent.jsonc` knows (CONTRACT §4.3 #24).
pub const AGENT_KEYS: [&str; 11] = [
    "id",
    "name",
    "description",
    "model",
    "indexes",
    "tools",
    "mcp",
    "deploy",
    "evalSuite",
    "capabilities",
    "$schema",
];
/// The function-call tools an agent (or an ad-hoc session) may add beside
/// the sandbox (CONTRACT §4.1.10); the runtime offers exactly these.
pub const TOOL_NAMES: [&str; 3] = ["search", "fetch", "list_stores"];

pub use crate::issues::{IssueCode, Severity, SourceIssue};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManifestFile {
    pub path: String,
    pub hash: String,
    pub size: i64,
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManifestAgent {
    pub id: String,
    pub source_hash: String,
    pub files: Vec<ManifestFile>,
}

/// `SourceSyncManifest`, decoded from the wire.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manifest {
    pub project: String,
    pub environment: Option<String>,
    pub source_hash: String,
    pub agents: Vec<ManifestAgent>,
}

/// What `agent.jsonc` says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentSpec {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `provider/model`.
    pub model: Option<String>,
    /// Index names or ids.
    pub indexes: Vec<String>,
    pub tools: Vec<String>,
    pub mcp: Vec<Value>,
    /// `mcp`, read: no tools yet.
    pub mcp_servers: Vec<McpServerSpec>,
    pub run_evals: Option<bool>,
    pub eval_suite: Option<String>,
    /// `evalSuite` as an object.
    pub eval_settings: super::eval_cases::SuiteSettings,
    pub capabilities: Vec<String>,
}

/// One agent of a manifest, its files decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSource {
    pub local_id: String,
    pub source_hash: String,
    /// By path, relative to the agent folder.
    pub files: BTreeMap<String, Vec<u8>>,
    /// `None` when `agent.jsonc` is missing or unreadable.
    pub spec: Option<AgentSpec>,
}

/// The manifest entry of files already decoded (a stored draft), so they
/// can be checked again.
pub fn manifest_agent(local_id: &str, source_hash: &str, files: &BTreeMap<String, Vec<u8>>) -> ManifestAgent {
    ManifestAgent {
        id: local_id.to_owned(),
        source_hash: source_hash.to_owned(),
        files: files
            .iter()
            .map(|(path, bytes)| ManifestFile {
                path: path.clone(),
                hash: format!("sha256:{}", sha256_hex(bytes)),
                size: bytes.len() as i64,
                content: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            })
            .collect(),
    }
}

/// `[A-Za-z0-9._-]+`, not `.` or `..`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks a manifest: its agents decoded (those whose local id is usable),
/// and every issue found.
pub fn check_manifest(manifest: &Manifest) -> (Vec<AgentSource>, Vec<SourceIssue>) {
    let mut issues = Vec::new();
    if !is_plain_name(&manifest.project) {
        issues.push(issue(
            None,
            IssueCode::InvalidProject,
            format!("project `{}` is not a plain name", manifest.project),
            Some("name the project in kiln.jsonc with letters, digits, `.`, `_` and `-`"),
        ));
    }
    let total: usize = manifest
        .agents
        .iter()
        .flat_map(|a| &a.files)
        .map(|f| f.content.as_ref().map_or(0, String::len))
        .sum();
    if total > MAX_MANIFEST_BYTES {
        issues.push(issue(
            None,
            IssueCode::FileTooLarge,
            format!("the manifest holds {total} bytes of files, over the limit of {MAX_MANIFEST_BYTES}"),
            Some("move large data out of the agent folders (upload documents to an index instead)"),
        ));
        return (Vec::new(), issues);
    }
    let mut seen = HashSet::new();
    let mut agents = Vec::new();
    for agent in &manifest.agents {
        if !is_plain_name(&agent.id) {
            issues.push(issue(
                None,
                IssueCode::InvalidAgentId,
                format!("agent id `{}` is not a plain name", agent.id),
                Some("use letters, digits, `.`, `_` and `-` for the agent folder and its `id`"),
            ));
            continue;
        }
        if !seen.insert(agent.id.as_str()) {
            issues.push(issue(
                None,
                IssueCode::DuplicateAgent,
                format!("agent `{}` appears twice in the manifest", agent.id),
                None,
            ));
            continue;
        }
        agents.push(check_agent(agent, &mut issues));
    }
    (agents, issues)
}

pub(crate) fn issue(
    file: Option<String>,
    code: IssueCode,
    message: String,
    hint: Option<&str>,
) -> SourceIssue {
    SourceIssue {
        file,
        line: None,
        column: None,
        code,
        message,
        hint: hint.map(str::to_owned),
        severity: Severity::Fatal,
    }
}

pub(crate) fn warning(
    file: Option<String>,
    code: IssueCode,
    message: String,
    hint: Option<&str>,
) -> SourceIssue {
    SourceIssue {
        severity: Severity::Warn,
        ..issue(file, code, message, hint)
    }
}

/// One `mcp` entry: `{name, url, transport?, auth?: {type: "bearer",
/// tokenRef}}`, or `{name}` alone for a stdio server of the operator's.
/// `Err` says what is wrong with it.
fn mcp_server(server: &Value) -> Result<McpServerSpec, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match server.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("has a `{key}` that is not a string")),
        }
    };
    let name = text("name")?.ok_or("has no `name`")?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("has the name `{name}`: use letters, digits, `_` and `-`"));
    }
    let url = text("url")?;
    let transport = match (text("transport")?.as_deref(), &url) {
        (_, None) => McpTransport::Stdio,
        (None | Some("streamable_http"), Some(_)) => McpTransport::StreamableHttp,
        (Some("sse"), Some(_)) => McpTransport::Sse,
        (Some(other), Some(_)) => {
            return Err(format!(
                "has the transport `{other}`: use `streamable_http` or `sse`"
            ));
        }
    };
    if let Some(url) = &url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(format!(
            "has the url `{url}`: it must start with https:// (or http://)"
        ));
    }
    let token_ref = match server.get("auth") {
        None | Some(Value::Null) => None,
        Some(Value::Object(auth)) => {
            if auth
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "bearer")
            {
                return Err("has an `auth.type` other than `bearer`".into());
            }
            match auth.get("tokenRef") {
                Some(Value::String(token_ref)) if !token_ref.is_empty() => Some(token_ref.clone()),
                _ => {
                    return Err(
                        "has an `auth` without a `tokenRef` (the vault secret holding the token)".into(),
                    );
                }
            }
        }
        Some(_) => return Err("has an `auth` that is not an object".into()),
    };
    if url.is_none() && token_ref.is_some() {
        return Err("has an `auth` but no `url` (a stdio server is configured by the operator)".into());
    }
    Ok(McpServerSpec {
        name,
        transport,
        url,
        token_ref,
        tools: Vec::new(),
    })
}

/// The path relative to the agent folder: a leading `kiln/agents/<id>/`
/// (or `tavora/agents/<id>/`) is stripped; `None` for a path that could
/// leave the folder.
pub fn agent_path(local_id: &str, path: &str) -> Option<String> {
    if path.is_empty() || path.contains('\0') || path.contains('\\') || path.starts_with('/') {
        return None;
    }
    let mut relative = path;
    for root in ["kiln/agents/", "tavora/agents/"] {
        if let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix(local_id)) {
            relative = rest.strip_prefix('/')?;
        }
    }
    let segments: Vec<&str> = relative.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return None;
    }
    // A drive letter (`C:x`) is as absolute as a leading slash.
    if segments[0].len() >= 2 && segments[0].as_bytes()[1] == b':' {
        return None;
    }
    Some(relative.to_owned())
}

/// The file's bytes: `content` as UTF-8 if that matches `hash` and `size`,
/// else `content` base64-decoded if that does (CONTRACT §2.9).
fn decode_content(file: &ManifestFile) -> Result<Vec<u8>, IssueCode> {
    let Some(content) = &file.content else {
        return if file.size == 0 {
            Ok(Vec::new())
        } else {
            Err(IssueCode::MissingContent)
        };
    };
    let want = file
        .hash
        .strip_prefix("sha256:")
        .unwrap_or(&file.hash)
        .to_ascii_lowercase();
    let matches = |bytes: &[u8]| bytes.len() as i64 == file.size && sha256_hex(bytes) == want;
    if matches(content.as_bytes()) {
        return Ok(content.as_bytes().to_vec());
    }
    match base64::engine::general_purpose::STANDARD.decode(content.trim()) {
        Ok(bytes) if matches(&bytes) => Ok(bytes),
        _ => Err(IssueCode::HashMismatch),
    }
}

fn check_agent(agent: &ManifestAgent, issues: &mut Vec<SourceIssue>) -> AgentSource {
    let id = agent.id.as_str();
    let at = |path: &str| Some(format!("{id}/{path}"));
    let mut files = BTreeMap::new();
    for file in &agent.files {
        let Some(path) = agent_path(id, &file.path) else {
            issues.push(issue(
                Some(format!("{id}/{}", file.path.replace('\0', "\\0"))),
                IssueCode::InvalidPath,
                format!(
                    "path `{}` is not a relative path inside the agent folder",
                    file.path.replace('\0', "\\0")
                ),
                Some("paths are relative to the agent folder, with `/` and no `..`"),
            ));
            continue;
        };
        if file.size > MAX_FILE_BYTES as i64
            || file
                .content
                .as_ref()
                .is_some_and(|c| c.len() > MAX_FILE_BYTES * 4 / 3 + 4)
        {
            issues.push(issue(
                at(&path),
                IssueCode::FileTooLarge,
                format!(
                    "the file has {} bytes, over the limit of {MAX_FILE_BYTES}",
                    file.size
                ),
                Some("keep agent files small; put large data in an index"),
            ));
            continue;
        }
        let bytes = match decode_content(file) {
            Ok(bytes) => bytes,
            Err(code) => {
                let message = match code {
                    IssueCode::MissingContent => "the file has no content but its size is not 0".to_owned(),
                    _ => "the content matches neither the hash nor the size, as text or as base64".to_owned(),
                };
                issues.push(issue(
                    at(&path),
                    code,
                    message,
                    Some("send the file's bytes again"),
                ));
                continue;
            }
        };
        if files.insert(path.clone(), bytes).is_some() {
            issues.push(issue(
                at(&path),
                IssueCode::DuplicateFile,
                "the path appears twice".into(),
                None,
            ));
        }
    }
    let spec = match files.get(AGENT_FILE) {
        None => {
            issues.push(issue(
                at(AGENT_FILE),
                IssueCode::MissingAgentFile,
                format!("agent `{id}` has no {AGENT_FILE}"),
                Some("every agent folder needs an agent.jsonc with at least its `id`"),
            ));
            None
        }
        Some(bytes) => parse_agent_file(id, bytes, issues),
    };
    if !files.contains_key(PERSONA_FILE) {
        issues.push(warning(
            at(PERSONA_FILE),
            IssueCode::MissingPersona,
            format!("agent `{id}` has no {PERSONA_FILE}; its persona is empty"),
            Some("write the agent's instructions in persona.md"),
        ));
    }
    for (path, bytes) in &files {
        check_layout(id, path, bytes, issues);
    }
    AgentSource {
        local_id: id.to_owned(),
        source_hash: agent.source_hash.clone(),
        files,
        spec,
    }
}

/// Known places: `agent.jsonc`, `persona.md`, `skills/*.js|md`,
/// `evals/*.json` (which must be JSON).
fn check_layout(id: &str, path: &str, bytes: &[u8], issues: &mut Vec<SourceIssue>) {
    let file = Some(format!("{id}/{path}"));
    let in_folder = |folder: &str, exts: &[&str]| {
        path.strip_prefix(folder)
            .is_some_and(|name| !name.contains('/') && exts.iter().any(|e| name.ends_with(e)))
    };
    if path == AGENT_FILE || path == PERSONA_FILE || in_folder("skills/", &[".js", ".md"]) {
        return;
    }
    if in_folder("evals/", &[".json"]) {
        if let Err(e) = serde_json::from_slice::<Value>(bytes) {
            issues.push(SourceIssue {
                line: Some(e.line() as u32),
                column: Some(e.column() as u32),
                ..issue(
                    file,
                    IssueCode::InvalidJson,
                    format!("not JSON: {e}"),
                    Some("an eval file holds one case object or an array of them"),
                )
            });
        }
        return;
    }
    issues.push(warning(
        file,
        IssueCode::UnknownFile,
        format!("`{path}` is not part of an agent folder's layout; it is kept but not used"),
        Some("agent folders hold agent.jsonc, persona.md, skills/*.js, skills/*.md and evals/*.json"),
    ));
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u32, column as u32)
}

/// Where `"key"` is written as a key in `text` (the first time), for
/// issues about a key.
fn key_position(text: &str, key: &str) -> Option<(u32, u32)> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(found) = text[from..].find(&quoted) {
        let at = from + found;
        let after = text[at + quoted.len()..].trim_start();
        if after.starts_with(':') {
            return Some(line_column(text, at));
        }
        from = at + quoted.len();
    }
    None
}

fn parse_agent_file(id: &str, bytes: &[u8], issues: &mut Vec<SourceIssue>) -> Option<AgentSpec> {
    let file = Some(format!("{id}/{AGENT_FILE}"));
    let Ok(text) = std::str::from_utf8(bytes) else {
        issues.push(issue(
            file,
            IssueCode::InvalidJsonc,
            "agent.jsonc is not UTF-8 text".into(),
            None,
        ));
        return None;
    };
    let value: Value = match jsonc_parser::parse_to_serde_value(text, &Default::default()) {
        Ok(value) => value,
        Err(e) => {
            let (line, column) = line_column(text, e.range().start);
            issues.push(SourceIssue {
                line: Some(line),
                column: Some(column),
                ..issue(
                    file,
                    IssueCode::InvalidJsonc,
                    format!("agent.jsonc does not parse: {}", e.kind()),
                    Some("JSON with comments and trailing commas is fine; check brackets, quotes and commas"),
                )
            });
            return None;
        }
    };
    let Value::Object(map) = value else {
        issues.push(issue(
            file,
            IssueCode::InvalidJsonc,
            "agent.jsonc must hold one object".into(),
            Some("{ \"id\": \"support\", \"model\": \"openai/gpt-4o-mini\" }"),
        ));
        return None;
    };
    let positioned = |code: IssueCode, key: &str, message: String, hint: Option<&str>, severity: Severity| {
        let (line, column) = key_position(text, key).unzip();
        SourceIssue {
            file: file.clone(),
            line,
            column,
            code,
            message,
            hint: hint.map(str::to_owned),
            severity,
        }
    };
    for key in map.keys().filter(|k| !AGENT_KEYS.contains(&k.as_str())) {
        issues.push(positioned(
            IssueCode::UnknownKey,
            key,
            format!("unknown key `{key}` (ignored)"),
            Some("known keys: id, name, description, model, indexes, tools, mcp, deploy, evalSuite, capabilities"),
            Severity::Warn,
        ));
    }
    let mut spec = AgentSpec {
        id: id.to_owned(),
        ..Default::default()
    };
    let mut bad = |key: &str, what: &str| {
        issues.push(positioned(
            IssueCode::InvalidValue,
            key,
            format!("`{key}` must be {what}"),
            None,
            Severity::Fatal,
        ))
    };
    let string = |key: &str, bad: &mut dyn FnMut(&str, &str)| match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            bad(key, "a string");
            None
        }
    };
    let strings = |key: &str, bad: &mut dyn FnMut(&str, &str)| match map.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            bad(key, "an array of strings");
            Vec::new()
        }
    };
    let file_id = string("id", &mut bad);
    spec.name = string("name", &mut bad);
    spec.description = string("description", &mut bad);
    spec.model = string("model", &mut bad);
    spec.indexes = strings("indexes", &mut bad);
    spec.tools = strings("tools", &mut bad);
    spec.capabilities = strings("capabilities", &mut bad);
    match map.get("evalSuite") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => spec.eval_suite = Some(name.clone()),
        Some(Value::Object(settings)) => match super::eval_cases::suite_settings(settings) {
            Ok(settings) => {
                spec.eval_suite = settings.name.clone();
                spec.eval_settings = settings;
            }
            Err(expected) => bad("evalSuite", &expected),
        },
        Some(_) => bad(
            "evalSuite",
            "the suite's name, or an object like { \"threshold\": 0.8, \"judgeModel\": \"openai/gpt-4o-mini\" }",
        ),
    }
    match map.get("mcp") {
        None | Some(Value::Null) => {}
        Some(Value::Array(servers)) if servers.iter().all(Value::is_object) => {
            spec.mcp = servers.clone();
            for (i, server) in servers.iter().enumerate() {
                match mcp_server(server) {
                    Ok(parsed) if spec.mcp_servers.iter().any(|s| s.name == parsed.name) => bad(
                        "mcp",
                        &format!(
                            "an array of servers with distinct names (`{}` is there twice)",
                            parsed.name
                        ),
                    ),
                    Ok(parsed) => spec.mcp_servers.push(parsed),
                    Err(what) => bad("mcp", &format!("an array of servers; server {} {what}", i + 1)),
                }
            }
        }
        Some(_) => bad("mcp", "an array of server objects"),
    }
    match map.get("deploy") {
        None | Some(Value::Null) => {}
        Some(Value::Object(deploy)) => match deploy.get("runEvals") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => spec.run_evals = Some(*b),
            Some(_) => bad("deploy", "an object whose `runEvals` is true or false"),
        },
        Some(_) => bad("deploy", "an object like { \"runEvals\": true }"),
    }
    if let Some(file_id) = &file_id
        && file_id != id
    {
        issues.push(positioned(
            IssueCode::IdMismatch,
            "id",
            format!("`id` is `{file_id}` but the agent folder is `{id}`"),
            Some("rename with `kiln rename OLD NEW` so the server's agent follows, or make them equal"),
            Severity::Fatal,
        ));
    }
    if let Some(model) = &spec.model
        && ModelRef::parse(model).is_none()
    {
        issues.push(positioned(
            IssueCode::InvalidModel,
            "model",
            format!("model `{model}` is not `provider/model` with a known provider"),
            Some("for example openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, kiln/offline"),
            Severity::Fatal,
        ));
    }
    for tool in &spec.tools {
        if !TOOL_NAMES.contains(&tool.as_str()) {
            issues.push(positioned(
                IssueCode::UnknownTool,
                "tools",
                format!("unknown tool `{tool}`"),
                Some(&format!("known tools: {}", TOOL_NAMES.join(", "))),
                Severity::Fatal,
            ));
        }
    }
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_file(path: &str, content: &str) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            hash: format!("sha256:{}", sha256_hex(content.as_bytes())),
            size: content.len() as i64,
            content: Some(content.into()),
        }
    }

    fn manifest(files: Vec<ManifestFile>) -> Manifest {
        Manifest {
            project: "acme".into(),
            agents: vec![ManifestAgent {
                id: "support".into(),
                source_hash: "h".into(),
                files,
            }],
            ..Default::default()
        }
    }

    fn codes(issues: &[SourceIssue]) -> Vec<(IssueCode, Severity)> {
        issues.iter().map(|i| (i.code, i.severity)).collect()
    }

    const AGENT: &str = "{\n  // the support agent\n  \"id\": \"support\",\n  \"model\": \"openai/gpt-4o-mini\",\n  \"tools\": [\"search\"],\n}\n";

    #[test]
    fn a_good_agent_has_no_issues_and_both_encodings_decode() {
        let persona = "You help customers.";
        let mut go_style = text_file("persona.md", persona);
        go_style.content = Some(base64::engine::general_purpose::STANDARD.encode(persona));
        let (agents, issues) = check_manifest(&manifest(vec![
            text_file("kiln/agents/support/agent.jsonc", AGENT),
            go_style,
            text_file("skills/lookup.js", "export function lookup() {}"),
            text_file("evals/basic.json", "{\"name\": \"x\", \"prompt\": \"hi\"}"),
        ]));
        assert_eq!(issues, Vec::new());
        let agent = &agents[0];
        assert_eq!(agent.files["persona.md"], persona.as_bytes());
        assert!(
            agent.files.contains_key("agent.jsonc"),
            "the folder prefix is stripped"
        );
        let spec = agent.spec.as_ref().unwrap();
        assert_eq!(spec.model.as_deref(), Some("openai/gpt-4o-mini"));
        assert_eq!(spec.tools, ["search"]);
    }

    #[test]
    fn paths_that_leave_the_folder_are_fatal() {
        for path in [
            "../x",
            "/etc/passwd",
            "skills\\x.js",
            "a/./b",
            "a//b",
            "nul\0.md",
            "C:x",
            "",
        ] {
            assert_eq!(agent_path("support", path), None, "{path:?}");
        }
        assert_eq!(
            agent_path("support", "tavora/agents/support/persona.md").as_deref(),
            Some("persona.md")
        );
        let (_, issues) = check_manifest(&manifest(vec![
            text_file("../secret", "x"),
            text_file("agent.jsonc", AGENT),
            text_file("persona.md", "p"),
        ]));
        assert_eq!(codes(&issues), [(IssueCode::InvalidPath, Severity::Fatal)]);
    }

    #[test]
    fn content_must_match_its_hash_and_size() {
        let mut wrong = text_file("persona.md", "hello");
        wrong.content = Some("goodbye".into());
        let mut missing = text_file("skills/a.md", "x");
        missing.content = None;
        let mut empty = text_file("skills/b.md", "");
        empty.content = None;
        let (agents, issues) = check_manifest(&manifest(vec![
            text_file("agent.jsonc", AGENT),
            wrong,
            missing,
            empty,
        ]));
        assert_eq!(
            codes(&issues),
            [
                (IssueCode::HashMismatch, Severity::Fatal),
                (IssueCode::MissingContent, Severity::Fatal),
                (IssueCode::MissingPersona, Severity::Warn),
            ]
        );
        assert_eq!(
            agents[0].files["skills/b.md"], b"",
            "an empty file may leave out its content"
        );
    }

    #[test]
    fn agent_file_problems_point_at_their_line_and_column() {
        let (_, issues) = check_manifest(&manifest(vec![
            text_file("agent.jsonc", "{\n  \"id\": \"support\",\n  \"model\": openai\n}"),
            text_file("persona.md", "p"),
        ]));
        assert_eq!(issues[0].code, IssueCode::InvalidJsonc);
        assert_eq!(
            (issues[0].line, issues[0].file.as_deref()),
            (Some(3), Some("support/agent.jsonc"))
        );

        let text = "{\n  \"id\": \"other\",\n  \"model\": \"nowhere/x\",\n  \"tools\": [\"shell\"],\n  \"colour\": 1\n}";
        let (_, issues) = check_manifest(&manifest(vec![
            text_file("agent.jsonc", text),
            text_file("persona.md", "p"),
        ]));
        let found: Vec<_> = issues
            .iter()
            .map(|i| (i.code, i.severity, i.line, i.column))
            .collect();
        assert_eq!(
            found,
            [
                (IssueCode::UnknownKey, Severity::Warn, Some(5), Some(3)),
                (IssueCode::IdMismatch, Severity::Fatal, Some(2), Some(3)),
                (IssueCode::InvalidModel, Severity::Fatal, Some(3), Some(3)),
                (IssueCode::UnknownTool, Severity::Fatal, Some(4), Some(3)),
            ]
        );
        assert!(
            issues
                .iter()
                .all(|i| i.hint.is_some() || i.code == IssueCode::UnknownKey)
        );
    }

    #[test]
    fn layout_limits_and_identity_are_checked() {
        let big = "x".repeat(MAX_FILE_BYTES + 1);
        let (_, issues) = check_manifest(&manifest(vec![
            text_file("persona.md", &big),
            text_file("notes.txt", "n"),
            text_file("evals/bad.json", "{nope"),
        ]));
        assert_eq!(
            codes(&issues),
            [
                (IssueCode::FileTooLarge, Severity::Fatal),
                (IssueCode::MissingAgentFile, Severity::Fatal),
                (IssueCode::MissingPersona, Severity::Warn),
                (IssueCode::InvalidJson, Severity::Fatal),
                (IssueCode::UnknownFile, Severity::Warn),
            ]
        );
        let mut twice = manifest(vec![text_file("agent.jsonc", AGENT)]);
        twice.project = "has space".into();
        twice.agents.push(twice.agents[0].clone());
        twice.agents.push(ManifestAgent {
            id: "../up".into(),
            ..Default::default()
        });
        let (agents, issues) = check_manifest(&twice);
        assert_eq!(agents.len(), 1);
        let fatal: Vec<_> = issues
            .iter()
            .filter(|i| i.severity == Severity::Fatal)
            .map(|i| i.code)
            .collect();
        assert_eq!(
            fatal,
            [
                IssueCode::InvalidProject,
                IssueCode::DuplicateAgent,
                IssueCode::InvalidAgentId
            ]
        );
    }
}
