//! Scoring one case: the deterministic checks (10 or 0, no model) and the
//! LLM judge's prompt and answer. The judge's answer is read as JSON from
//! its message: the whole text, a fenced block, or the outermost `{…}`.

use serde_json::{Value, json};

use crate::agents::eval_cases::{CaseKind, EvalCaseSpec};
use crate::llm::{Message, Role};

/// A score and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// 0–10.
    pub score: i64,
    pub reason: String,
}

/// Scores a case that needs no model; `None` for `llm_judge`.
pub fn check(case: &EvalCaseSpec, response: &str, tools_called: &[String]) -> Option<Judgement> {
    let config = case.config.as_object();
    let text = |key: &str| {
        config
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let verdict = |ok: bool, yes: String, no: String| Judgement {
        score: if ok { 10 } else { 0 },
        reason: if ok { yes } else { no },
    };
    Some(match case.kind {
        CaseKind::LlmJudge => return None,
        CaseKind::Contains => {
            let value = text("value");
            let ignore_case = config
                .and_then(|c| c.get("ignore_case"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let found = if ignore_case {
                response.to_lowercase().contains(&value.to_lowercase())
            } else {
                response.contains(value)
            };
            verdict(
                found,
                format!("the response contains {value:?}"),
                format!("the response does not contain {value:?}"),
            )
        }
        CaseKind::Regex => {
            let pattern = text("pattern");
            match regex::Regex::new(pattern) {
                Ok(re) => verdict(
                    re.is_match(response),
                    format!("the response matches /{pattern}/"),
                    format!("the response does not match /{pattern}/"),
                ),
                Err(e) => verdict(false, String::new(), format!("the pattern is invalid: {e}")),
            }
        }
        CaseKind::JsonSchema => {
            let schema = config
                .and_then(|c| c.get("schema"))
                .cloned()
                .unwrap_or(Value::Null);
            match (json_in(response), jsonschema::validator_for(&schema)) {
                (None, _) => verdict(false, String::new(), "the response is not JSON".into()),
                (_, Err(e)) => verdict(false, String::new(), format!("the schema is invalid: {e}")),
                (Some(answer), Ok(validator)) => {
                    let errors: Vec<String> = validator
                        .iter_errors(&answer)
                        .take(3)
                        .map(|e| format!("{} at `{}`", e, e.instance_path()))
                        .collect();
                    verdict(
                        errors.is_empty(),
                        "the response is JSON valid against the schema".into(),
                        format!("the response does not match the schema: {}", errors.join("; ")),
                    )
                }
            }
        }
        CaseKind::ToolUse => {
            let missing: Vec<&str> = case
                .tools
                .iter()
                .filter(|want| !tools_called.iter().any(|called| called == *want))
                .map(String::as_str)
                .collect();
            verdict(
                missing.is_empty(),
                format!("called {}", case.tools.join(", ")),
                format!(
                    "did not call {} (called: {})",
                    missing.join(", "),
                    if tools_called.is_empty() {
                        "nothing".to_owned()
                    } else {
                        tools_called.join(", ")
                    }
                ),
            )
        }
    })
}

/// The JSON Schema of the judge's answer (for providers that take one).
pub fn judgement_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": { "type": "integer", "minimum": 0, "maximum": 10 },
            "reason": { "type": "string" }
        },
        "required": ["score", "reason"],
        "additionalProperties": false
    })
}

/// The judge's conversation for one case.
pub fn judge_messages(case: &EvalCaseSpec, response: &str, tools_called: &[String]) -> Vec<Message> {
    let system = "You grade an AI assistant's answer. Score how well the response meets the criteria as an integer \
                  from 0 (not at all) to 10 (fully). Answer with only a JSON object, no other text: \
                  {\"score\": <integer 0-10>, \"reason\": \"<one or two sentences>\"}";
    let tools = if tools_called.is_empty() {
        "none".to_owned()
    } else {
        tools_called.join(", ")
    };
    let user = format!(
        "## The message the assistant was given\n{}\n\n## Criteria\n{}\n\n## The assistant's response\n{}\n\n## Tools the assistant called\n{tools}",
        case.prompt, case.criteria, response
    );
    vec![Message::new(Role::System, system), Message::new(Role::User, user)]
}

/// Reads the judge's answer: `{score: 0–10 integer, reason: string}`.
pub fn parse_judgement(text: &str) -> Result<Judgement, String> {
    let value = json_in(text).ok_or_else(|| format!("not a JSON object: {}", preview(text)))?;
    let score = match value.get("score") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
    .filter(|s| (0..=10).contains(s))
    .ok_or_else(|| format!("`score` is not an integer from 0 to 10: {}", preview(text)))?;
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`reason` is missing: {}", preview(text)))?
        .to_owned();
    Ok(Judgement { score, reason })
}

/// The JSON value in a model's message: the whole text, a fenced block, or
/// the outermost braces.
pub fn json_in(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return Some(value);
    }
    if let Some(start) = text.find("```") {
        let rest = &text[start + 3..];
        let rest = rest.strip_prefix("json").unwrap_or(rest);
        if let Some(end) = rest.find("```")
            && let Ok(value) = serde_json::from_str::<Value>(rest[..end].trim())
        {
            return Some(value);
        }
    }
    let (start, end) = (text.find('{')?, text.rfind('}')?);
    (start < end)
        .then(|| serde_json::from_str::<Value>(&text[start..=end]).ok())
        .flatten()
}

fn preview(text: &str) -> String {
    let short: String = text.chars().take(120).collect();
    if short.len() < text.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(kind: CaseKind, config: Value, tools: &[&str]) -> EvalCaseSpec {
        EvalCaseSpec {
            kind,
            config,
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            ..EvalCaseSpec::default()
        }
    }

    #[test]
    fn deterministic_checks_score_ten_or_zero() {
        let contains = case(
            CaseKind::Contains,
            json!({"value": "Refund", "ignore_case": true}),
            &[],
        );
        assert_eq!(check(&contains, "refunds take 30 days", &[]).unwrap().score, 10);
        let exact = case(CaseKind::Contains, json!({"value": "Refund"}), &[]);
        assert_eq!(check(&exact, "refunds take 30 days", &[]).unwrap().score, 0);
        let regex = case(CaseKind::Regex, json!({"pattern": "^\\d+ days$"}), &[]);
        assert_eq!(check(&regex, "30 days", &[]).unwrap().score, 10);
        assert_eq!(check(&regex, "thirty days", &[]).unwrap().score, 0);
        let schema = case(
            CaseKind::JsonSchema,
            json!({"schema": {"type": "object", "required": ["days"], "properties": {"days": {"type": "integer"}}}}),
            &[],
        );
        assert_eq!(
            check(&schema, "```json\n{\"days\": 30}\n```", &[]).unwrap().score,
            10
        );
        let wrong = check(&schema, "{\"days\": \"thirty\"}", &[]).unwrap();
        assert_eq!(wrong.score, 0);
        assert!(wrong.reason.contains("/days"), "{}", wrong.reason);
        assert_eq!(
            check(&schema, "thirty", &[]).unwrap().reason,
            "the response is not JSON"
        );
        let tools = case(CaseKind::ToolUse, Value::Null, &["search", "orders.lookup_order"]);
        let called = ["execute_js".to_owned(), "search".to_owned()];
        let missed = check(&tools, "", &called).unwrap();
        assert_eq!(
            (missed.score, missed.reason.contains("orders.lookup_order")),
            (0, true)
        );
        let all = [called[1].clone(), "orders.lookup_order".to_owned()];
        assert_eq!(check(&tools, "", &all).unwrap().score, 10);
        assert!(check(&case(CaseKind::LlmJudge, Value::Null, &[]), "", &[]).is_none());
    }

    #[test]
    fn the_judges_answer_is_read_from_its_text() {
        assert_eq!(
            parse_judgement("{\"score\": 8, \"reason\": \"close\"}").unwrap(),
            Judgement {
                score: 8,
                reason: "close".into()
            }
        );
        let chatty = "Sure! Here it is:\n```json\n{\"score\": 3.0, \"reason\": \"vague\"}\n```";
        assert_eq!(parse_judgement(chatty).unwrap().score, 3);
        assert!(parse_judgement("{\"score\": 11, \"reason\": \"x\"}").is_err());
        assert!(parse_judgement("{\"score\": 7.5, \"reason\": \"x\"}").is_err());
        assert!(parse_judgement("{\"score\": 7}").is_err());
        assert!(parse_judgement("great answer, 9/10").is_err());
    }
}
