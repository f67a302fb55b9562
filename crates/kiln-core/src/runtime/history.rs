//! The model's view of a session, rebuilt from its event log: the log is the
//! only record, so the live loop and a later turn see the same history.
//!
//! Each model reply starts a new assistant message; its first event carries
//! the call's `tokens` (an `llm` sandbox event, a call, or the response), so
//! calls made in one reply group under one assistant message, with their
//! results after it, as function-calling APIs require.
//!
//! [`History`] is built one event at a time, so a turn adds its events as it
//! writes them and the runtime keeps a session's history between turns
//! (reading only the events written since): a turn's cost does not grow
//! with the session's length. What it keeps is bounded: at each turn's end
//! messages older than twice the character budget are dropped.

use crate::ids::SessionId;
use crate::llm::{Message, Role, ToolCall};
use crate::runtime::event::{EventBody, MAX_EVENT_CONTENT_BYTES, truncate_text};

/// How a code block's outcome is told to the model in fenced mode.
const FENCED_RESULT_PREFIX: &str = "Result of your code:\n";

/// The messages of `events` (in log order), trimmed from the oldest to
/// `max_chars` and starting with a user message.
#[cfg(test)]
pub(crate) fn messages<'a>(
    events: impl IntoIterator<Item = &'a EventBody>,
    max_chars: usize,
) -> Vec<Message> {
    let mut history = History::default();
    for event in events {
        history.push(event);
    }
    history.messages(max_chars)
}

/// A session's messages so far, built event by event.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    out: Vec<Message>,
    /// The assistant message of the reply being read.
    reply: Option<usize>,
    pending_text: String,
    /// Tool-call ids without their result yet, oldest first (`None`: fenced
    /// code, answered in text). Calls run one after another, so results
    /// come in this order.
    open: std::collections::VecDeque<Option<String>>,
}

impl History {
    /// Adds one event of the log, in log order.
    pub(crate) fn push(&mut self, event: &EventBody) {
        let History {
            out,
            reply,
            pending_text,
            open,
        } = self;
        match event {
            EventBody::UserMessage { content } => {
                close_unanswered(out, open);
                *reply = None;
                out.push(Message::new(Role::User, content.clone()));
            }
            EventBody::SandboxEvent {
                kind,
                content,
                tokens,
                ..
            } if kind == "llm" => {
                if tokens.is_some() {
                    *reply = None;
                }
                *pending_text = content.clone();
            }
            EventBody::ExecuteJs {
                code,
                tokens,
                call_id,
                ..
            } => {
                let starts_reply = tokens.is_some() || reply.is_none();
                let text = std::mem::take(pending_text);
                match call_id {
                    Some(id) => {
                        let call = ToolCall {
                            id: id.clone(),
                            name: super::prompt::EXECUTE_JS.to_owned(),
                            arguments: serde_json::json!({ "code": code }).to_string(),
                        };
                        push_call(out, reply, starts_reply, text, call);
                    }
                    None => {
                        let content = if text.is_empty() {
                            format!("```js\n{code}\n```")
                        } else {
                            format!("{text}\n\n```js\n{code}\n```")
                        };
                        out.push(Message::new(Role::Assistant, content));
                        *reply = Some(out.len() - 1);
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
                let text = std::mem::take(pending_text);
                let starts_reply = reply.is_none();
                push_call(out, reply, starts_reply, text, call);
                open.push_back(Some(id));
            }
            EventBody::ToolResult { content, .. } => {
                if let Some(Some(id)) = open.pop_front() {
                    out.push(tool_message(id, truncate_text(content, MAX_EVENT_CONTENT_BYTES)));
                }
            }
            EventBody::Response { content, .. } => {
                close_unanswered(out, open);
                out.push(Message::new(Role::Assistant, content.clone()));
                *reply = None;
                pending_text.clear();
            }
            EventBody::Error { .. } | EventBody::Done { .. } => {
                close_unanswered(out, open);
                *reply = None;
                pending_text.clear();
            }
            EventBody::SandboxEvent { .. }
            | EventBody::DataUpdate { .. }
            | EventBody::InputRequest { .. } => {}
        }
    }

    /// The messages, trimmed from the oldest to `max_chars` and starting
    /// with a user message; only what is sent is copied.
    pub(crate) fn messages(&self, max_chars: usize) -> Vec<Message> {
        self.out[start_within(&self.out, max_chars)..].to_vec()
    }

    /// At a turn's end: forgets messages no request will send again (those
    /// before the last `2 × max_chars`).
    pub(crate) fn compact(&mut self, max_chars: usize) {
        if self.reply.is_some() || !self.open.is_empty() {
            return;
        }
        let start = start_within(&self.out, max_chars.saturating_mul(2));
        self.out.drain(..start);
    }
}

/// Sessions whose history is kept between turns, at most; past it the
/// least recently kept goes (its next turn rebuilds it from the log).
const KEPT_HISTORIES: usize = 512;

/// A kept history: when it was kept (a counter), the history, its last
/// event.
type Kept = (u64, History, i64);

/// Histories kept between turns, by session, with the last event in each.
#[derive(Default)]
pub(crate) struct HistoryCache {
    kept: std::sync::Mutex<(u64, std::collections::HashMap<SessionId, Kept>)>,
}

impl HistoryCache {
    /// Takes the session's history out (a turn owns it while it runs).
    pub(crate) fn take(&self, id: &SessionId) -> Option<(History, i64)> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.1.remove(id).map(|(_, history, seq)| (history, seq))
    }

    /// Keeps the history a turn ended with.
    pub(crate) fn keep(&self, id: &SessionId, (history, seq): (History, i64)) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.0 += 1;
        let at = kept.0;
        if kept.1.len() >= KEPT_HISTORIES && !kept.1.contains_key(id) {
            let oldest = kept
                .1
                .iter()
                .min_by_key(|(_, (used, ..))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                kept.1.remove(&oldest);
            }
        }
        kept.1.insert(id.clone(), (at, history, seq));
    }

    /// Forgets a deleted session.
    pub(crate) fn forget(&self, id: &SessionId) {
        self.take(id);
    }
}

fn size(m: &Message) -> usize {
    m.content.len() + m.tool_calls.iter().map(|c| c.arguments.len()).sum::<usize>()
}

/// Where the newest messages that fit `max_chars` start (the newest one
/// always counts), moved on to a user message (a tool result without its
/// call is refused by APIs).
fn start_within(messages: &[Message], max_chars: usize) -> usize {
    let mut total = 0;
    let mut start = messages.len();
    while start > 0 {
        let next = total + size(&messages[start - 1]);
        if next > max_chars && start < messages.len() {
            break;
        }
        total = next;
        start -= 1;
    }
    while start + 1 < messages.len() && messages[start].role != Role::User {
        start += 1;
    }
    start
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

    /// A turn of a long session: a message, a code call with its result,
    /// the answer and the end.
    fn turn(n: usize) -> Vec<EventBody> {
        vec![
            EventBody::UserMessage {
                content: format!("question {n}"),
            },
            EventBody::ExecuteJs {
                code: format!("{n} + 1"),
                tokens: tokens(),
                call_id: Some(format!("call_{n}")),
            },
            EventBody::ExecuteJsResult {
                content: format!("{}", n + 1),
                result: (n + 1).into(),
                error: None,
            },
            EventBody::Response {
                content: format!("answer {n}"),
                tokens: tokens(),
            },
            EventBody::Done {
                steps: 3,
                tokens: Default::default(),
            },
        ]
    }

    /// Kept and compacted turn after turn, the history sends exactly what
    /// a rebuild from the whole log would, and holds a bounded number of
    /// messages however long the session gets.
    #[test]
    fn a_kept_history_sends_what_a_rebuild_would_and_stays_bounded() {
        let budget = 400;
        let mut kept = History::default();
        let mut log = Vec::new();
        for n in 0..300 {
            for event in turn(n) {
                kept.push(&event);
                log.push(event);
            }
            kept.compact(budget);
            assert_eq!(kept.messages(budget), messages(&log, budget), "after turn {n}");
        }
        // Twice the budget at most (less what the cut to a user message
        // drops): 300 turns in, about the last 18.
        let chars: usize = kept.out.iter().map(size).sum();
        assert!(chars <= 2 * budget, "{chars} characters kept");
        assert!(kept.out.len() < 80, "{} messages kept", kept.out.len());
        let sent = kept.messages(budget);
        assert_eq!(sent[0].role, Role::User);
        assert_eq!(sent.last().unwrap().content, "answer 299");
    }

    #[test]
    fn the_cache_keeps_a_bounded_number_of_sessions_least_recent_out() {
        let cache = HistoryCache::default();
        let id = |n: usize| SessionId::from_string(format!("s{n}"));
        for n in 0..=KEPT_HISTORIES {
            cache.keep(&id(n), (History::default(), n as i64));
        }
        assert!(cache.take(&id(0)).is_none(), "the least recent went");
        assert_eq!(cache.take(&id(1)).map(|(_, seq)| seq), Some(1));
        // Taken, it is gone until kept again.
        assert!(cache.take(&id(1)).is_none());
        cache.forget(&id(2));
        assert!(cache.take(&id(2)).is_none());
        assert!(cache.take(&id(KEPT_HISTORIES)).is_some());
    }
}
