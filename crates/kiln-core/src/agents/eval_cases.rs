//! Eval cases as code: `evals/*.json` in an agent folder holds one case
//! object or an array of them (the field names of CONTRACT §2.12
//! `EvalCase`). They are checked at sync (an unknown field warns, a missing
//! `prompt` is fatal, each kind's `config` must be usable) and kept in the
//! draft's spec, so every version carries the cases it was deployed with.
//!
//! Cases and suites are not rows of their own: a case's id is derived from
//! its agent and its content (the same case keeps its id across syncs and
//! versions, a changed case gets a new one), and each agent's suite is
//! derived from the agent (its id from the agent's id, its versions from
//! the agent's versions). That keeps "deploy freezes a suite version" true
//! by construction: the version holds its cases.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::crypto::sha256_hex;
use crate::ids::AgentId;
use crate::issues::{IssueCode, Severity, SourceIssue};

/// A case passes when its score reaches this (0–10), unless it sets one.
pub const DEFAULT_PASS_THRESHOLD: i64 = 7;
/// A suite passes when this share of its cases passed, unless it sets one.
pub const DEFAULT_SUITE_THRESHOLD: f64 = 0.8;
/// The fields a case may have.
pub const CASE_FIELDS: [&str; 10] = [
    "name",
    "description",
    "set_name",
    "type",
    "config",
    "prompt",
    "criteria",
    "system_prompt",
    "tools",
    "pass_threshold",
];

/// How a case is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// A model judges the answer against `criteria`: 0–10.
    #[default]
    LlmJudge,
    /// The answer contains `config.value` (`config.ignore_case`): 10 or 0.
    Contains,
    /// The answer matches `config.pattern`: 10 or 0.
    Regex,
    /// The answer is JSON valid against `config.schema`: 10 or 0.
    JsonSchema,
    /// Every name in `tools` was called: 10 or 0.
    ToolUse,
}

impl CaseKind {
    pub const ALL: [CaseKind; 5] = [
        CaseKind::LlmJudge,
        CaseKind::Contains,
        CaseKind::Regex,
        CaseKind::JsonSchema,
        CaseKind::ToolUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::LlmJudge => "llm_judge",
            CaseKind::Contains => "contains",
            CaseKind::Regex => "regex",
            CaseKind::JsonSchema => "json_schema",
            CaseKind::ToolUse => "tool_use",
        }
    }

    pub fn parse(s: &str) -> Option<CaseKind> {
        CaseKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One case as authored.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvalCaseSpec {
    pub name: String,
    pub description: String,
    pub set_name: String,
    pub kind: CaseKind,
    pub config: Value,
    pub prompt: String,
    pub criteria: String,
    /// Replaces the agent's system prompt when not empty.
    pub system_prompt: String,
    pub tools: Vec<String>,
    pub pass_threshold: i64,
    /// The file it came from, relative to the agent folder.
    pub file: String,
}

impl EvalCaseSpec {
    /// The case's id: the same case of the same agent always has it.
    pub fn id(&self, agent: &AgentId) -> String {
        let content = serde_json::json!([
            self.name,
            self.description,
            self.set_name,
            self.kind,
            self.config,
            self.prompt,
            self.criteria,
            self.system_prompt,
            self.tools,
            self.pass_threshold,
        ]);
        derived_id(&format!("case\0{agent}\0{content}"))
    }
}

/// `agent.jsonc → evalSuite`: the suite's name, or an object with its
/// settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SuiteSettings {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// 0–1: the share of cases that must pass.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `provider/model` of the judge.
    #[serde(default)]
    pub judge_model: Option<String>,
}

/// An agent's suite's id.
pub fn suite_id(agent: &AgentId) -> String {
    derived_id(&format!("suite\0{agent}"))
}

/// A UUID-shaped id derived from `seed`.
fn derived_id(seed: &str) -> String {
    let hex = sha256_hex(seed.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `evalSuite` as an object: `{name?, description?, threshold?, judgeModel?}`.
pub(crate) fn suite_settings(map: &Map<String, Value>) -> Result<SuiteSettings, String> {
    let mut settings = SuiteSettings::default();
    for (key, value) in map {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("name", Value::String(s)) => settings.name = Some(s.clone()),
            ("description", Value::String(s)) => settings.description = Some(s.clone()),
            ("threshold", Value::Number(n)) => match n.as_f64() {
                Some(t) if (0.0..=1.0).contains(&t) => settings.threshold = Some(t),
                _ => return Err("an object whose `threshold` is between 0 and 1".into()),
            },
            ("judgeModel", Value::String(s)) if s.contains('/') => settings.judge_model = Some(s.clone()),
            ("judgeModel", _) => return Err("an object whose `judgeModel` is `provider/model`".into()),
            (other, _) => {
                return Err(format!(
                    "an object of name, description, threshold and judgeModel (`{other}` is not one, or has the wrong type)"
                ));
            }
        }
    }
    Ok(settings)
}

/// Reads every `evals/*.json` of an agent folder (`files` by path) into
/// cases, with the issues found.
pub fn parse_cases<'a>(
    local_id: &str,
    files: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)>,
) -> (Vec<EvalCaseSpec>, Vec<SourceIssue>) {
    let mut cases: Vec<EvalCaseSpec> = Vec::new();
    let mut issues = Vec::new();
    for (path, bytes) in files {
        let Some(stem) = path
            .strip_prefix("evals/")
            .and_then(|name| name.strip_suffix(".json"))
            .filter(|name| !name.contains('/'))
        else {
            continue;
        };
        // Not JSON at all is the layout check's issue.
        let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        let file = format!("{local_id}/{path}");
        let objects = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        let many = objects.len() > 1;
        for (i, object) in objects.into_iter().enumerate() {
            let default_name = if many {
                format!("{stem}-{}", i + 1)
            } else {
                stem.to_owned()
            };
            let at = if many {
                format!("case {} of `{path}`", i + 1)
            } else {
                format!("`{path}`")
            };
            match parse_case(&object, &default_name, &at, &file, &mut issues) {
                Some(mut case) => {
                    case.file = path.clone();
                    if cases.iter().any(|c| c.name == case.name) {
                        issues.push(fatal(
                            &file,
                            IssueCode::InvalidValue,
                            format!("{at}: another case is already named `{}`", case.name),
                            "case names are unique within an agent",
                        ));
                    } else {
                        cases.push(case);
                    }
                }
                None => continue,
            }
        }
    }
    (cases, issues)
}

fn fatal(file: &str, code: IssueCode, message: String, hint: &str) -> SourceIssue {
    SourceIssue {
        file: Some(file.to_owned()),
        line: None,
        column: None,
        code,
        message,
        hint: Some(hint.to_owned()),
        severity: Severity::Fatal,
    }
}

/// One case object; `None` when it has a fatal issue (pushed to `issues`).
fn parse_case(
    object: &Value,
    default_name: &str,
    at: &str,
    file: &str,
    issues: &mut Vec<SourceIssue>,
) -> Option<EvalCaseSpec> {
    const HINT: &str = "a case is {\"name\", \"prompt\", \"type\", \"criteria\" | \"config\", ...}: see the README's evals section";
    let Value::Object(map) = object else {
        issues.push(fatal(
            file,
            IssueCode::InvalidValue,
            format!("{at} is not a JSON object"),
            HINT,
        ));
        return None;
    };
    let before = issues.len();
    let mut bad = |field: &str, expected: &str| {
        issues.push(fatal(
            file,
            IssueCode::InvalidValue,
            format!("{at}: `{field}` must be {expected}"),
            HINT,
        ));
    };
    let text = |field: &str, bad: &mut dyn FnMut(&str, &str)| match map.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            bad(field, "a string");
            String::new()
        }
    };
    let name = Some(text("name", &mut bad))
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| default_name.to_owned());
    let description = text("description", &mut bad);
    let set_name = Some(text("set_name", &mut bad))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let prompt = text("prompt", &mut bad);
    let criteria = text("criteria", &mut bad);
    let system_prompt = text("system_prompt", &mut bad);
    let kind_name = text("type", &mut bad);
    let kind = if kind_name.is_empty() {
        CaseKind::LlmJudge
    } else {
        match CaseKind::parse(&kind_name) {
            Some(kind) => kind,
            None => {
                bad("type", "one of llm_judge, contains, regex, json_schema, tool_use");
                CaseKind::LlmJudge
            }
        }
    };
    let tools = match map.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            bad("tools", "an array of tool names");
            Vec::new()
        }
    };
    let pass_threshold = match map.get("pass_threshold") {
        None | Some(Value::Null) => DEFAULT_PASS_THRESHOLD,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|t| (0..=10).contains(&t)) => {
            n.as_i64().unwrap_or(DEFAULT_PASS_THRESHOLD)
        }
        Some(_) => {
            bad("pass_threshold", "an integer from 0 to 10");
            DEFAULT_PASS_THRESHOLD
        }
    };
    let config = map.get("config").cloned().unwrap_or(Value::Null);
    let config_map = config.as_object();
    let config_text = |key: &str| config_map.and_then(|c| c.get(key)).and_then(Value::as_str);
    match kind {
        CaseKind::LlmJudge if criteria.trim().is_empty() => {
            bad("criteria", "what the judge checks (llm_judge cases)")
        }
        CaseKind::Contains if config_text("value").is_none_or(str::is_empty) => {
            bad(
                "config",
                "an object with the text to find: { \"value\": \"...\" }",
            );
        }
        CaseKind::Contains
            if config_map
                .and_then(|c| c.get("ignore_case"))
                .is_some_and(|v| !v.is_boolean()) =>
        {
            bad("config.ignore_case", "true or false");
        }
        CaseKind::Regex => match config_text("pattern") {
            None => bad(
                "config",
                "an object with a pattern: { \"pattern\": \"^\\\\d+$\" }",
            ),
            Some(pattern) => {
                if let Err(e) = regex::Regex::new(pattern) {
                    bad("config.pattern", &format!("a valid regular expression ({e})"));
                }
            }
        },
        CaseKind::JsonSchema => match config_map.and_then(|c| c.get("schema")) {
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
                if let Err(e) = jsonschema::validator_for(schema) {
                    bad("config.schema", &format!("a valid JSON Schema ({e})"));
                }
            }
            _ => bad("config", "an object with a JSON Schema: { \"schema\": {...} }"),
        },
        CaseKind::ToolUse if tools.is_empty() => {
            bad("tools", "the names that must be called (tool_use cases)")
        }
        _ => {}
    }
    if prompt.trim().is_empty() {
        issues.push(fatal(
            file,
            IssueCode::MissingField,
            format!("{at} has no `prompt`"),
            "`prompt` is the message the case sends to the agent",
        ));
    }
    for key in map.keys() {
        if !CASE_FIELDS.contains(&key.as_str()) {
            issues.push(SourceIssue {
                severity: Severity::Warn,
                ..fatal(
                    file,
                    IssueCode::UnknownKey,
                    format!("{at}: `{key}` is not a case field; it is ignored"),
                    "case fields: name, description, set_name, type, config, prompt, criteria, system_prompt, tools, pass_threshold",
                )
            });
        }
    }
    if issues[before..].iter().any(|i| i.severity == Severity::Fatal) {
        return None;
    }
    Some(EvalCaseSpec {
        name,
        description,
        set_name,
        kind,
        config,
        prompt,
        criteria,
        system_prompt,
        tools,
        pass_threshold,
        file: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn parse(files: &[(&str, &str)]) -> (Vec<EvalCaseSpec>, Vec<SourceIssue>) {
        let files: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(p, c)| ((*p).to_owned(), c.as_bytes().to_vec()))
            .collect();
        parse_cases("support", &files)
    }

    #[test]
    fn cases_come_one_per_file_or_as_arrays_with_defaults() {
        let (cases, issues) = parse(&[
            (
                "evals/refund.json",
                r#"{"prompt": "Can I get a refund?", "criteria": "mentions 30 days"}"#,
            ),
            (
                "evals/smoke.json",
                r#"[{"prompt": "hi", "type": "contains", "config": {"value": "hello", "ignore_case": true}},
                    {"name": "digits", "prompt": "a number", "type": "regex", "config": {"pattern": "^\\d+$"}, "pass_threshold": 10}]"#,
            ),
        ]);
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["refund", "smoke-1", "digits"]);
        assert_eq!(cases[0].kind, CaseKind::LlmJudge);
        assert_eq!(cases[0].pass_threshold, DEFAULT_PASS_THRESHOLD);
        assert_eq!(cases[0].set_name, "default");
        assert_eq!(cases[1].file, "evals/smoke.json");
        assert_eq!(cases[2].pass_threshold, 10);
        // Ids follow the content, per agent.
        let agent = AgentId::from_string("a1");
        assert_eq!(cases[0].id(&agent), cases[0].clone().id(&agent));
        assert_ne!(cases[0].id(&agent), cases[0].id(&AgentId::from_string("a2")));
        let mut changed = cases[0].clone();
        changed.prompt.push('!');
        assert_ne!(changed.id(&agent), cases[0].id(&agent));
    }

    #[test]
    fn a_missing_prompt_is_fatal_and_an_unknown_field_warns() {
        let (cases, issues) = parse(&[(
            "evals/a.json",
            r#"[{"name": "x", "criteria": "c"}, {"prompt": "p", "criteria": "c", "expected": 1}]"#,
        )]);
        assert_eq!(cases.len(), 1);
        let found: Vec<(IssueCode, Severity)> = issues.iter().map(|i| (i.code, i.severity)).collect();
        assert_eq!(
            found,
            [
                (IssueCode::MissingField, Severity::Fatal),
                (IssueCode::UnknownKey, Severity::Warn)
            ]
        );
        assert_eq!(issues[0].file.as_deref(), Some("support/evals/a.json"));
    }

    #[test]
    fn each_kind_needs_a_usable_config() {
        for (case, what) in [
            (r#"{"prompt": "p"}"#, "`criteria`"),
            (r#"{"prompt": "p", "type": "contains"}"#, "`config`"),
            (
                r#"{"prompt": "p", "type": "regex", "config": {"pattern": "("}}"#,
                "valid regular expression",
            ),
            (
                r#"{"prompt": "p", "type": "json_schema", "config": {"schema": {"type": 7}}}"#,
                "valid JSON Schema",
            ),
            (r#"{"prompt": "p", "type": "tool_use"}"#, "`tools`"),
            (r#"{"prompt": "p", "type": "vibes"}"#, "one of llm_judge"),
            (
                r#"{"prompt": "p", "criteria": "c", "pass_threshold": 11}"#,
                "0 to 10",
            ),
            (
                r#"[{"name": "a", "prompt": "p", "criteria": "c"}, {"name": "a", "prompt": "q", "criteria": "c"}]"#,
                "already named",
            ),
        ] {
            let (_, issues) = parse(&[("evals/x.json", case)]);
            assert!(
                issues
                    .iter()
                    .any(|i| i.severity == Severity::Fatal && i.message.contains(what)),
                "{case}: {issues:?}"
            );
        }
    }

    #[test]
    fn suite_settings_are_checked() {
        let settings = suite_settings(
            serde_json::json!({"threshold": 0.5, "judgeModel": "openai/gpt-4o-mini"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(settings.threshold, Some(0.5));
        assert!(suite_settings(serde_json::json!({"threshold": 2}).as_object().unwrap()).is_err());
        assert!(suite_settings(serde_json::json!({"judge": "x"}).as_object().unwrap()).is_err());
        assert_eq!(suite_id(&AgentId::from_string("a")).len(), 36);
    }
}
