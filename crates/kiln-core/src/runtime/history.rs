//! The model's view of a session, rebuilt from its event log: the log is the
//! only record, so the live loop and a later turn see the same history.
//!
//! Each model reply starts a new assistant message; its first event carries
//! the call's `tokens` (an `llm` sandbox event, a call, or the response), so
//! calls made in one reply group under one assistant message, with their
//! results after it, as function-calling APIs require.

use crate::llm::{Message, Role, ToolCall};
use crate::runtime::event::{EventBody, MAX_EVENT_CONTENT_BYTES, truncate_text};

/// How a code block's outcome is told to the model in fenced mode.
const FENCED_RESULT_PREFIX: &str = "Result of your code:\n";

/// The messages of `events` (in log order), trimmed from the oldest to
/// `max_chars` and starting with a user message.
pub(crate) fn messages<'a>(
    events: impl IntoIterator<Item = &'a EventBody>,
    max_chars: usize,
) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    // The assistant message of the reply being read, and whether its calls
    // are tool calls (else the code came fenced).
    let mut reply: Option<usize> = None;
    let mut pending_text = String::new();
    // Tool-call ids without their result yet, oldest first (`None`: fenced
    // code, answered in text). Calls run one after another, so results
    // come in this order.
    let mut open: std::collections::VecDeque<Option<String>> = Default::default();
    for event in events {
        match event {
            EventBody::UserMessage { content } => {
                close_unanswered(&mut out, &mut open);
                reply = None;
                out.push(Message::new(Role::User, content.clone()));
            }
            EventBody::SandboxEvent {
                kind,
                content,
                tokens,
                ..
            } if kind == "llm" => {
                if tokens.is_some() {
                    reply = None;
                }
                pending_text = content.clone();
            }
            EventBody::ExecuteJs {
                code,
                tokens,
                call_id,
                ..
            } => {
                let starts_reply = tokens.is_some() || reply.is_none();
                let text = std::mem::take(&mut pending_text);
                match call_id {
                    Some(id) => {
                        let call = ToolCall {
                            id: id.clone(),
                            name: super::prompt::EXECUTE_JS.to_owned(),
                            arguments: serde_json::json!({ "code": code }).to_string(),
                        };
                        push_call(&mut out, &mut reply, starts_reply, text, call);
                    }
                    None => {
                        let content = if text.is_empty() {
                            format!("```js\n{code}\n```")
                        } else {
                            format!("{text}\n\n```js\n{code}\n```")
                        };
                        out.push(Message::new(Role::Assistant, content));
                        reply = Some(out.len() - 1);
                    }
                }
                open.push_back(call_id.clone());
            }
            EventBody::ExecuteJsResult { content, .. } => {
                let content = truncate_text(content, MAX_EVENT_CONTENT_BYTES);
                match open.pop_front() {
                    Some(Some(id)) => out.push(tool_message(id, content)),
                    _ => out.push(Message::new(
                        Role::User,
                        format!("{FENCED_RESULT_PREFIX}{content}"),
                    )),
                }
            }
            EventBody::ToolCall {
                tool, args, call_id, ..
            } => {
                let id = call_id.clone().unwrap_or_else(|| format!("call_{tool}"));
                let call = ToolCall {
                    id: id.clone(),
                    name: tool.clone(),
                    arguments: serde_json::Value::Object(args.clone()).to_string(),
                };
                let text = std::mem::take(&mut pending_text);
                let starts_reply = reply.is_none();
                push_call(&mut out, &mut reply, starts_reply, text, call);
                open.push_back(Some(id));
            }
            EventBody::ToolResult { content, .. } => {
                if let Some(Some(id)) = open.pop_front() {
                    out.push(tool_message(id, truncate_text(content, MAX_EVENT_CONTENT_BYTES)));
                }
            }
            EventBody::Response { content, .. } => {
                close_unanswered(&mut out, &mut open);
                out.push(Message::new(Role::Assistant, content.clone()));
                reply = None;
                pending_text.clear();
            }
            EventBody::Error { .. } | EventBody::Done { .. } => {
                close_unanswered(&mut out, &mut open);
                reply = None;
                pending_text.clear();
            }
            EventBody::SandboxEvent { .. }
            | EventBody::DataUpdate { .. }
            | EventBody::InputRequest { .. } => {}
        }
    }
    trim(out, max_chars)
}

/// Answers the calls a turn ended without answering (cancelled, timed out),
/// as function-calling APIs refuse a call without its result.
fn close_unanswered(out: &mut Vec<Message>, open: &mut std::collections::VecDeque<Option<String>>) {
    for id in open.drain(..).flatten() {
        out.push(tool_message(
            id,
            "The turn ended before this call finished.".to_owned(),
        ));
    }
}

fn tool_message(id: String, content: String) -> Message {
    Message {
        role: Role::Tool,
        content,
        tool_calls: Vec::new(),
        tool_call_id: Some(id),
    }
}

/// Adds `call` to the current reply's assistant message, or starts one.
fn push_call(
    out: &mut Vec<Message>,
    reply: &mut Option<usize>,
    starts_reply: bool,
    text: String,
    call: ToolCall,
) {
    match (*reply).filter(|_| !starts_reply) {
        Some(at) if !out[at].tool_calls.is_empty() => out[at].tool_calls.push(call),
        _ => {
            let mut message = Message::new(Role::Assistant, text);
            message.tool_calls.push(call);
            out.push(message);
            *reply = Some(out.len() - 1);
        }
    }
}

/// Drops the oldest messages until the rest fit, then anything before the
/// first user message (a tool result without its call is refused by APIs).
fn trim(mut messages: Vec<Message>, max_chars: usize) -> Vec<Message> {
    let size = |m: &Message| m.content.len() + m.tool_calls.iter().map(|c| c.arguments.len()).sum::<usize>();
    let mut total: usize = messages.iter().map(size).sum();
    let mut drop = 0;
    while total > max_chars && drop + 1 < messages.len() {
        total -= size(&messages[drop]);
        drop += 1;
    }
    while drop < messages.len() - 1 && messages[drop].role != Role::User {
        drop += 1;
    }
    messages.drain(..drop);
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;

    fn tokens() -> Option<Usage> {
        Some(Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
        })
    }

    #[test]
    fn calls_of_one_reply_share_an_assistant_message() {
        let events = vec![
            EventBody::UserMessage { content: "q".into() },
            EventBody::SandboxEvent {
                kind: "llm".into(),
                summary: "thinking".into(),
                content: "thinking".into(),
                tokens: None,
            },
            EventBody::ExecuteJs {
                code: "1".into(),
                tokens: tokens(),
                call_id: Some("a".into()),
            },
            EventBody::ExecuteJsResult {
                content: "1".into(),
                result: 1.into(),
                error: None,
            },
            EventBody::ExecuteJs {
                code: "2".into(),
                tokens: None,
                call_id: Some("b".into()),
            },
            EventBody::ExecuteJsResult {
                content: "2".into(),
                result: 2.into(),
                error: None,
            },
            EventBody::Response {
                content: "done".into(),
                tokens: tokens(),
            },
        ];
        let m = messages(&events, usize::MAX);
        assert_eq!(m.len(), 5, "{m:#?}");
        assert_eq!(m[1].role, Role::Assistant);
        assert_eq!(m[1].content, "thinking");
        assert_eq!(
            m[1].tool_calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(m[2].tool_call_id.as_deref(), Some("a"));
        assert_eq!(m[3].tool_call_id.as_deref(), Some("b"));
        assert_eq!(m[4].content, "done");
    }

    #[test]
    fn a_call_the_turn_ended_without_answering_gets_an_answer() {
        let events = vec![
            EventBody::UserMessage { content: "q".into() },
            EventBody::ExecuteJs {
                code: "while (true) {}".into(),
                tokens: tokens(),
                call_id: Some("a".into()),
            },
            EventBody::Error {
                message: "the turn was cancelled".into(),
                code: crate::runtime::TurnErrorCode::Cancelled,
            },
            EventBody::UserMessage { content: "q2".into() },
        ];
        let m = messages(&events, usize::MAX);
        let roles: Vec<Role> = m.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::User]);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("a"));
        assert!(m[2].content.contains("ended before"));
    }

    #[test]
    fn fenced_code_comes_back_as_text_and_old_turns_drop_first() {
        let events = vec![
            EventBody::UserMessage {
                content: "x".repeat(100),
            },
            EventBody::Response {
                content: "y".repeat(100),
                tokens: tokens(),
            },
            EventBody::UserMessage { content: "q2".into() },
            EventBody::ExecuteJs {
                code: "1 + 1".into(),
                tokens: tokens(),
                call_id: None,
            },
            EventBody::ExecuteJsResult {
                content: "2".into(),
                result: 2.into(),
                error: None,
            },
        ];
        let all = messages(&events, usize::MAX);
        assert_eq!(all.len(), 5);
        assert_eq!(all[3].content, "```js\n1 + 1\n```");
        assert_eq!(all[4].content, "Result of your code:\n2");
        let trimmed = messages(&events, 150);
        assert_eq!(trimmed[0].content, "q2");
        assert_eq!(trimmed.len(), 3);
    }
}
