//! Studio analyze (CONTRACT §2.14): one LLM call over a session's trace
//! that proposes a fix for a failed run: prompt changes, an optional
//! regression eval case, and why. The answer is read as JSON from the
//! model's message (the schema asked for where the provider takes one);
//! a failed call or a malformed answer is the upstream's fault (502).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::AuthContext;
use crate::error::{Error, Result};
use crate::evals::score::json_in;
use crate::gateway::LlmGateway;
use crate::ids::SessionId;
use crate::llm::{ChatRequest, LlmError, Message, Role};
use crate::runtime::AgentRuntime;
use crate::runtime::event::truncate_text;
use crate::usage::CallSource;

/// How much of each step the analyst reads.
const STEP_CHARS: usize = 2_000;
/// How much of the system prompt it reads.
const PROMPT_CHARS: usize = 12_000;

/// A regression case the analyst proposes.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedCase {
    pub name: String,
    pub prompt: String,
    pub criteria: String,
}

/// `StudioFixSuggestion`.
#[derive(Debug, Clone, PartialEq)]
pub struct FixSuggestion {
    pub prompt_changes: String,
    pub eval_case: Option<SuggestedCase>,
    pub reasoning: String,
}

/// The studio's analyst.
pub struct Studio {
    runtime: Arc<AgentRuntime>,
    gateway: Arc<LlmGateway>,
}

fn suggestion_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "prompt_changes": { "type": "string" },
            "eval_case": {
                "type": ["object", "null"],
                "properties": {
                    "name": { "type": "string" },
                    "prompt": { "type": "string" },
                    "criteria": { "type": "string" }
                },
                "required": ["name", "prompt", "criteria"],
                "additionalProperties": false
            },
            "reasoning": { "type": "string" }
        },
        "required": ["prompt_changes", "eval_case", "reasoning"],
        "additionalProperties": false
    })
}

/// Reads the analyst's answer.
pub fn parse_suggestion(text: &str) -> std::result::Result<FixSuggestion, String> {
    let value = json_in(text).ok_or("the answer is not a JSON object")?;
    let text_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let prompt_changes = text_of(&value, "prompt_changes").ok_or("`prompt_changes` is missing")?;
    let reasoning = text_of(&value, "reasoning").ok_or("`reasoning` is missing")?;
    let eval_case = match value.get("eval_case") {
        None | Some(Value::Null) => None,
        Some(case) => Some(SuggestedCase {
            name: text_of(case, "name").ok_or("`eval_case.name` is missing")?,
            prompt: text_of(case, "prompt").ok_or("`eval_case.prompt` is missing")?,
            criteria: text_of(case, "criteria").ok_or("`eval_case.criteria` is missing")?,
        }),
    };
    Ok(FixSuggestion {
        prompt_changes,
        eval_case,
        reasoning,
    })
}

impl Studio {
    pub fn new(runtime: Arc<AgentRuntime>, gateway: Arc<LlmGateway>) -> Studio {
        Studio { runtime, gateway }
    }

    /// `POST /studio/:id/analyze` with the session's own model.
    pub async fn analyze(
        &self,
        ctx: &AuthContext,
        id: &SessionId,
        failed_steps: &[i64],
        expected_outcome: &str,
    ) -> Result<FixSuggestion> {
        let trace = self.runtime.trace(ctx, id).await?;
        let mut steps = String::new();
        for step in &trace.steps {
            let marker = if failed_steps.contains(&step.step_index) {
                " (FAILED)"
            } else {
                ""
            };
            let tool = if step.tool_name.is_empty() {
                String::new()
            } else {
                format!(" [{}]", step.tool_name)
            };
            steps.push_str(&format!(
                "### Step {}{marker}: {}{tool}\n{}\n\n",
                step.step_index,
                step.step_type.storage_name(),
                truncate_text(&step.content, STEP_CHARS)
            ));
        }
        let system = "You review a failed run of an AI agent and propose how to fix its system prompt. \
                      Answer with only a JSON object: {\"prompt_changes\": \"<the edits to make to the system prompt>\", \
                      \"eval_case\": {\"name\": \"<short-id>\", \"prompt\": \"<a user message that reproduces the failure>\", \
                      \"criteria\": \"<what a correct answer does>\"} or null, \"reasoning\": \"<why the run failed and why the changes fix it>\"}";
        let user = format!(
            "## Expected outcome\n{}\n\n## The agent's system prompt\n{}\n\n## Tools\n{}\n\n## The run's steps\n{steps}",
            if expected_outcome.trim().is_empty() {
                "(not given)"
            } else {
                expected_outcome
            },
            truncate_text(&trace.system_prompt, PROMPT_CHARS),
            trace.tools.join(", "),
        );
        let model = Some(trace.session.model.as_str()).filter(|m| !m.is_empty());
        let request = ChatRequest {
            messages: vec![Message::new(Role::System, system), Message::new(Role::User, user)],
            temperature: Some(0.2),
            ..Default::default()
        };
        let (model_ref, answer) = self
            .gateway
            .complete_structured(
                ctx,
                model,
                request,
                "fix_suggestion",
                suggestion_schema(),
                CallSource::Studio,
            )
            .await?;
        parse_suggestion(&answer.content).map_err(|why| {
            if model_ref.provider == crate::llm::ProviderKind::Offline {
                // Not an upstream fault: the built-in model cannot do this.
                return Error::validation(
                    "the built-in offline model cannot analyze a run (it does not answer in JSON); \
                     run the session on a provider's model, or configure one as the default",
                    Some("model"),
                );
            }
            Error::Upstream(LlmError::InvalidResponse {
                provider: model_ref.provider.name().to_owned(),
                message: format!("the analysis is not the JSON asked for: {why}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_suggestion;

    #[test]
    fn suggestions_are_read_from_the_text() {
        let s = parse_suggestion(
            "Here:\n```json\n{\"prompt_changes\": \"Say the window.\", \"eval_case\": {\"name\": \"refund\", \"prompt\": \"Refund?\", \"criteria\": \"30 days\"}, \"reasoning\": \"It forgot.\"}\n```",
        )
        .unwrap();
        assert_eq!(s.eval_case.unwrap().criteria, "30 days");
        assert_eq!(
            parse_suggestion("{\"prompt_changes\": \"x\", \"eval_case\": null, \"reasoning\": \"y\"}")
                .unwrap()
                .eval_case,
            None
        );
        assert!(parse_suggestion("{\"prompt_changes\": \"x\"}").is_err());
        assert!(parse_suggestion("no idea").is_err());
    }
}
