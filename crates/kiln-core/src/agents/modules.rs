//! Module skills (`skills/<name>.js`) checked before they are stored: each is
//! required in a fresh sandbox context, under a time limit of its own, so a
//! syntax error becomes a fatal issue at its line, a top level that throws
//! or loops forever is refused at sync rather than in a user's turn, and the
//! exports found describe the skill to the model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::agents::config::{ModuleSkill, SkillExport};
use crate::agents::source::{issue, warning};
use crate::issues::{IssueCode, SourceIssue};
use crate::sandbox::{ModuleError, Sandbox, SandboxError, SandboxLimits, SandboxModule};

/// The longest a module's top level may run when it is checked: it should
/// only define functions and constants, and `kiln dev` waits for it.
pub const MODULE_CHECK_TIME: Duration = Duration::from_secs(2);

/// Checks module skills in the sandbox.
pub struct ModuleChecker {
    sandbox: Arc<dyn Sandbox>,
    limits: SandboxLimits,
    /// The sandbox's own globals (the runtime's primitives, `console`,
    /// `require`), which a skill should not be named after.
    reserved: Vec<String>,
}

impl ModuleChecker {
    /// `limits` are the sandbox's for blocks; the check's time is at most
    /// [`MODULE_CHECK_TIME`].
    pub fn new(sandbox: Arc<dyn Sandbox>, limits: SandboxLimits, reserved: Vec<String>) -> ModuleChecker {
        ModuleChecker {
            sandbox,
            reserved,
            limits: SandboxLimits {
                time: limits.time.min(MODULE_CHECK_TIME),
                ..limits
            },
        }
    }

    /// The module skills among an agent's `files` (by path in the agent
    /// folder), in name order, and their issues; `file_prefix` goes before
    /// each issue's path (`<local id>/`).
    pub async fn check(
        &self,
        file_prefix: &str,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> (Vec<ModuleSkill>, Vec<SourceIssue>) {
        let mut issues = Vec::new();
        let mut sources = Vec::new();
        for (path, bytes) in files {
            let Some(name) = module_name(path) else {
                continue;
            };
            let file = Some(format!("{file_prefix}{path}"));
            match String::from_utf8(bytes.clone()) {
                Ok(source) => sources.push((name.to_owned(), source)),
                Err(_) => issues.push(issue(
                    file,
                    IssueCode::SkillSyntax,
                    "the skill module is not UTF-8 text".into(),
                    Some("save the file as UTF-8"),
                )),
            }
        }
        let modules: Vec<SandboxModule> = sources
            .iter()
            .map(|(name, source)| SandboxModule::source(name, &format!("skills/{name}.js"), source))
            .collect();
        let mut skills = Vec::new();
        for (module, (_, source)) in modules.iter().zip(&sources) {
            let file = Some(format!("{file_prefix}{}", module.file));
            if self.reserved.contains(&module.name) {
                issues.push(warning(
                    file.clone(),
                    IssueCode::ReservedName,
                    format!("`{}` is a name the sandbox already uses", module.name),
                    Some("rename the file: `require` still finds it, but the model may confuse it with the global"),
                ));
            }
            match self
                .sandbox
                .inspect_module(&modules, &module.name, self.limits)
                .await
            {
                Ok(exports) => skills.push(ModuleSkill {
                    name: module.name.clone(),
                    description: first_comment(source),
                    source: source.clone(),
                    exports: exports
                        .into_iter()
                        .map(|e| SkillExport {
                            name: e.name,
                            params: e.params,
                        })
                        .collect(),
                }),
                Err(error) => issues.push(self.issue_of(file, error)),
            }
        }
        (skills, issues)
    }

    fn issue_of(&self, file: Option<String>, failure: ModuleError) -> SourceIssue {
        let (code, message, hint) = match &failure.error {
            SandboxError::Syntax(message) => (
                IssueCode::SkillSyntax,
                format!("SyntaxError: {message}"),
                "a skill module is an ES module: `export function name(args) { … }`, `export const NAME = …`",
            ),
            SandboxError::Timeout => (
                IssueCode::SkillTimeout,
                format!(
                    "the module's top level ran past {} ms",
                    self.limits.time.as_millis()
                ),
                "the top level runs each time a block requires the module: define functions and constants there, and do the work inside the exported functions",
            ),
            other => (
                IssueCode::SkillError,
                format!("the module's top level failed: {other}"),
                "the top level runs each time a block requires the module; it cannot call sandbox primitives (call them inside exported functions)",
            ),
        };
        SourceIssue {
            line: failure.line,
            column: failure.column,
            ..issue(file, code, message, Some(hint))
        }
    }
}

/// `skills/<name>.js` → `name`.
pub fn module_name(path: &str) -> Option<&str> {
    path.strip_prefix("skills/")?
        .strip_suffix(".js")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// The first line of a leading comment (`//` or `/* … */`, JSDoc stars
/// removed), or "".
pub(crate) fn first_comment(source: &str) -> String {
    let text = source.trim_start();
    let comment = if let Some(rest) = text.strip_prefix("//") {
        rest.lines().next().unwrap_or("")
    } else if let Some(rest) = text.strip_prefix("/*") {
        let body = rest.split("*/").next().unwrap_or("");
        body.lines()
            .map(|l| l.trim().trim_start_matches('*').trim())
            .find(|l| !l.is_empty())
            .unwrap_or("")
    } else {
        ""
    };
    comment.trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_come_from_the_leading_comment() {
        assert_eq!(
            first_comment("// Prices orders.\nexport const a = 1"),
            "Prices orders."
        );
        assert_eq!(
            first_comment("/**\n * Looks up orders.\n * More.\n */\nexport function f() {}"),
            "Looks up orders."
        );
        assert_eq!(first_comment("export const a = 1 // no"), "");
        assert_eq!(module_name("skills/pricing.js"), Some("pricing"));
        assert_eq!(module_name("skills/a/b.js"), None);
        assert_eq!(module_name("skills/tone.md"), None);
    }
}
