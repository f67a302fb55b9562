//! Problems found in authored source (a manifest of agent files), as a
//! compiler reports them. A module of their own, below `error`, so a
//! refused sync can carry them in its error.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Blocks sync and deploy.
    Fatal,
    Warn,
}

/// What an issue is about. The wire spelling of each is in
/// `kiln_api::source_issue_codes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueCode {
    InvalidProject,
    InvalidAgentId,
    DuplicateAgent,
    InvalidPath,
    DuplicateFile,
    FileTooLarge,
    HashMismatch,
    MissingContent,
    MissingAgentFile,
    InvalidJsonc,
    InvalidJson,
    UnknownKey,
    InvalidValue,
    IdMismatch,
    InvalidModel,
    UnknownTool,
    MissingIndex,
    MissingPersona,
    UnknownFile,
    SkillSyntax,
    SkillError,
    SkillTimeout,
    ReservedName,
    McpUnreachable,
    MissingSecret,
    UnknownMcpServer,
    MissingField,
}

impl IssueCode {
    pub const ALL: [IssueCode; 27] = [
        IssueCode::InvalidProject,
        IssueCode::InvalidAgentId,
        IssueCode::DuplicateAgent,
        IssueCode::InvalidPath,
        IssueCode::DuplicateFile,
        IssueCode::FileTooLarge,
        IssueCode::HashMismatch,
        IssueCode::MissingContent,
        IssueCode::MissingAgentFile,
        IssueCode::InvalidJsonc,
        IssueCode::InvalidJson,
        IssueCode::UnknownKey,
        IssueCode::InvalidValue,
        IssueCode::IdMismatch,
        IssueCode::InvalidModel,
        IssueCode::UnknownTool,
        IssueCode::MissingIndex,
        IssueCode::MissingPersona,
        IssueCode::UnknownFile,
        IssueCode::SkillSyntax,
        IssueCode::SkillError,
        IssueCode::SkillTimeout,
        IssueCode::ReservedName,
        IssueCode::McpUnreachable,
        IssueCode::MissingSecret,
        IssueCode::UnknownMcpServer,
        IssueCode::MissingField,
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceIssue {
    /// `<local id>/<path>`, or `None` for the manifest itself.
    pub file: Option<String>,
    /// 1-based.
    pub line: Option<u32>,
    /// 1-based, in characters.
    pub column: Option<u32>,
    pub code: IssueCode,
    pub message: String,
    pub hint: Option<String>,
    pub severity: Severity,
}

/// The message of a source refused for its fatal issues: how many, and the
/// first.
pub fn refusal_message(issues: &[SourceIssue]) -> String {
    let fatal: Vec<&SourceIssue> = issues.iter().filter(|i| i.severity == Severity::Fatal).collect();
    match fatal.first() {
        Some(first) => format!(
            "the source has {} fatal issue(s); nothing was written. First: {}{}",
            fatal.len(),
            first
                .file
                .as_deref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            first.message
        ),
        None => "the source has fatal issues; nothing was written".into(),
    }
}
