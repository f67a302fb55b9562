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
//! with the session's length.
//!
//! What is sent is bounded by the model's budget (in bytes, from its token
//! budget). When the history outgrows it, the oldest messages are cut down
//! to half the budget at once, not one turn at a time: requests then start
//! the same way for many calls in a row, which providers' prompt caches
//! and the per-message encoding memo ([`Message::encoded`]) both rely on.
//! The first message sent after a cut tells the model that earlier ones
//! are left out. What is cut is dropped at the turn's end.

use crate::ids::SessionId;
use std::sync::Arc;

use crate::llm::{EncodedRun, Message, Role, SharedMessages, ToolCall};
use crate::runtime::event::{EventBody, MAX_EVENT_CONTENT_BYTES, truncate_text};

/// How a code block's outcome is told to the model in fenced mode.
const FENCED_RESULT_PREFIX: &str = "Result of your code:\n";

/// Put before the first message sent once older ones are left out.
pub(crate) const ELIDED_NOTE: &str = "[Earlier messages of this session are left out here to keep \
     within the model's context budget; they remain in the session's event log, and what they \
     established may be in the session's data.]";

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
    history.sent(max_chars)
}

/// A session's messages so far, built event by event.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    /// Shared with the requests that send it (see [`SharedMessages`]);
    /// changed in place once they are done with it.
    out: Arc<Vec<Message>>,
    /// The assistant message of the reply being read.
    reply: Option<usize>,
    pending_text: String,
    /// Tool-call ids without their result yet, oldest first (`None`: fenced
    /// code, answered in text). Calls run one after another, so results
    /// come in this order.
    open: std::collections::VecDeque<Option<String>>,
    /// Where the messages sent start; moved on only by a cut.
    first: usize,
    /// The size of `out[first..]` (see [`size`]), kept as messages come.
    bytes: usize,
    /// Messages before the ones sent exist (cut, or not read at a
    /// rebuild): the first one sent carries [`ELIDED_NOTE`].
    elided: bool,
    /// That first message with its note.
    noted: Option<Message>,
    /// The encoding of what is sent, kept with it (a new one after
    /// `compact` moves the messages).
    encoded: Arc<std::sync::Mutex<EncodedRun>>,
}

impl History {
    /// A history rebuilt from the log's later events only: the model is
    /// told that earlier messages are left out.
    pub(crate) fn after_earlier_events() -> History {
        History {
            elided: true,
            ..History::default()
        }
    }

    /// Adds one event of the log, in log order.
    pub(crate) fn push(&mut self, event: &EventBody) {
        if self.elided && self.out.is_empty() && !matches!(event, EventBody::UserMessage { .. }) {
            // A rebuild from mid-turn: the rest of that turn is left out.
            return;
        }
        let History {
            out,
            reply,
            pending_text,
            open,
            bytes,
            ..
        } = self;
        let out = Arc::make_mut(out);
        match event {
            EventBody::UserMessage { content } => {
                close_unanswered(out, bytes, open);
                *reply = None;
                add(out, bytes, Message::new(Role::User, content.clone()));
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
                        push_call(out, bytes, reply, starts_reply, text, call);
                    }
                    None => {
                        let content = if text.is_empty() {
                            format!("```js\n{code}\n```")
                        } else {
                            format!("{text}\n\n```js\n{code}\n```")
                        };
                        add(out, bytes, Message::new(Role::Assistant, content));
                        *reply = Some(out.len() - 1);
                    }
                }
                open.push_back(call_id.clone());
            }
            EventBody::ExecuteJsResult { content, .. } => {
                let content = truncate_text(content, MAX_EVENT_CONTENT_BYTES);
                match open.pop_front() {
                    Some(Some(id)) => add(out, bytes, tool_message(id, content)),
                    _ => add(
                        out,
                        bytes,
                        Message::new(Role::User, format!("{FENCED_RESULT_PREFIX}{content}")),
                    ),
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
                push_call(out, bytes, reply, starts_reply, text, call);
                open.push_back(Some(id));
            }
            EventBody::ToolResult { content, .. } => {
                if let Some(Some(id)) = open.pop_front() {
                    add(
                        out,
                        bytes,
                        tool_message(id, truncate_text(content, MAX_EVENT_CONTENT_BYTES)),
                    );
                }
            }
            EventBody::Response { content, .. } => {
                close_unanswered(out, bytes, open);
                add(out, bytes, Message::new(Role::Assistant, content.clone()));
                *reply = None;
                pending_text.clear();
            }
            EventBody::Error { .. } | EventBody::Done { .. } => {
                close_unanswered(out, bytes, open);
                *reply = None;
                pending_text.clear();
            }
            EventBody::SandboxEvent { .. }
            | EventBody::DataUpdate { .. }
            | EventBody::InputRequest { .. } => {}
        }
    }

    /// The messages to send within `max_bytes`, starting with a user
    /// message: the note when earlier ones are left out (alone, or on the
    /// first message sent), then the rest, shared.
    pub(crate) fn messages(&mut self, max_bytes: usize) -> (Option<Message>, SharedMessages) {
        self.cut(max_bytes);
        let Some(first) = self.out.get(self.first) else {
            return (None, SharedMessages::default());
        };
        // The reply being read may gain calls; what is before it is final.
        let sealed = self.reply.unwrap_or(self.out.len());
        let shared = |from| SharedMessages::new(self.out.clone(), from, sealed, self.encoded.clone());
        if !self.elided {
            return (None, shared(self.first));
        }
        let noted = self.noted.get_or_insert_with(|| match first.role {
            Role::User => Message::new(Role::User, format!("{ELIDED_NOTE}\n\n{}", first.content)),
            _ => Message::new(Role::User, ELIDED_NOTE),
        });
        let note = noted.clone();
        (
            Some(note),
            shared(self.first + usize::from(first.role == Role::User)),
        )
    }

    /// [`History::messages`] in one list.
    #[cfg(test)]
    pub(crate) fn sent(&mut self, max_bytes: usize) -> Vec<Message> {
        let (note, rest) = self.messages(max_bytes);
        note.into_iter().chain(rest.as_slice().iter().cloned()).collect()
    }

    /// Moves the start of what is sent: on to a user message (a rebuild
    /// may start mid-turn, and a tool result without its call is refused
    /// by APIs), and, when what is sent outgrows `max_bytes`, to where
    /// the newest messages within half of it start.
    fn cut(&mut self, max_bytes: usize) {
        let from = self.first;
        if self.bytes > max_bytes {
            self.first = from + start_within(&self.out[from..], max_bytes / 2);
        }
        while self.first + 1 < self.out.len() && self.out[self.first].role != Role::User {
            self.first += 1;
        }
        if self.first != from {
            self.bytes = self.out[self.first..].iter().map(size).sum();
            self.elided |= self.first > 0;
            self.noted = None;
        }
    }

    /// At a turn's end: forgets the messages no request will send again.
    pub(crate) fn compact(&mut self, max_bytes: usize) {
        if self.reply.is_some() || !self.open.is_empty() {
            return;
        }
        self.cut(max_bytes);
        if self.first > 0 {
            Arc::make_mut(&mut self.out).drain(..self.first);
            self.first = 0;
            self.encoded = Arc::default();
        }
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

/// What a message costs of the budget: its text and calls, and about four
/// tokens of framing, as providers count (a long run of short messages
/// costs more than their text).
fn size(m: &Message) -> usize {
    MESSAGE_FRAMING_BYTES
        + m.content.len()
        + m.tool_calls
            .iter()
            .map(|c| c.arguments.len() + c.name.len() + c.id.len())
            .sum::<usize>()
}

/// Four tokens, at the budget's three bytes a token.
const MESSAGE_FRAMING_BYTES: usize = 12;

/// Adds a message to the history, counting its size.
fn add(out: &mut Vec<Message>, bytes: &mut usize, message: Message) {
    *bytes += size(&message);
    out.push(message);
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
fn close_unanswered(
    out: &mut Vec<Message>,
    bytes: &mut usize,
    open: &mut std::collections::VecDeque<Option<String>>,
) {
    for id in open.drain(..).flatten() {
        add(
            out,
            bytes,
            tool_message(id, "The turn ended before this call finished.".to_owned()),
        );
    }
}

fn tool_message(id: String, content: String) -> Message {
    Message {
        tool_call_id: Some(id),
        ..Message::new(Role::Tool, content)
    }
}

/// Adds `call` to the current reply's assistant message, or starts one.
fn push_call(
    out: &mut Vec<Message>,
    bytes: &mut usize,
    reply: &mut Option<usize>,
    starts_reply: bool,
    text: String,
    call: ToolCall,
) {
    match (*reply).filter(|_| !starts_reply) {
        Some(at) if !out[at].tool_calls.is_empty() => {
            *bytes += call.arguments.len() + call.name.len() + call.id.len();
            out[at].tool_calls.push(call);
        }
        _ => {
            let mut message = Message::new(Role::Assistant, text);
            message.tool_calls.push(call);
            add(out, bytes, message);
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
        // Over the budget, it is cut to half of it, at a user message,
        // which tells the model.
        let trimmed = messages(&events, 150);
        assert_eq!(trimmed.len(), 3);
        assert_eq!(trimmed[0].content, format!("{ELIDED_NOTE}\n\nq2"));
        assert_eq!(trimmed[1..], all[3..]);
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

    /// Kept and compacted turn after turn, the history sends the newest
    /// messages of the log within the budget, is cut in steps (so what a
    /// request starts with stays the same for several turns), and holds a
    /// bounded number of messages however long the session gets.
    #[test]
    fn a_kept_history_is_cut_in_steps_and_stays_bounded() {
        let budget = 1200;
        let mut kept = History::default();
        let mut log = Vec::new();
        let mut starts = Vec::new();
        for n in 0..300 {
            for event in turn(n) {
                kept.push(&event);
                log.push(event);
            }
            let sent = kept.sent(budget);
            let everything = messages(&log, usize::MAX);
            assert_eq!(
                sent[1..],
                everything[everything.len() + 1 - sent.len()..],
                "turn {n}"
            );
            assert_eq!(sent[0].role, Role::User);
            let bytes: usize = sent.iter().map(size).sum();
            if sent.len() < everything.len() {
                assert!(sent[0].content.starts_with(ELIDED_NOTE), "turn {n}");
                assert!(bytes - ELIDED_NOTE.len() - 2 <= budget, "turn {n}: {bytes} bytes");
            } else {
                assert!(bytes <= budget, "turn {n}: {bytes} bytes");
            }
            starts.push(sent[0].content.clone());
            assert_eq!(kept.bytes, kept.out[kept.first..].iter().map(size).sum::<usize>());
            kept.compact(budget);
        }
        // A turn is about 110 bytes with its framing: cut to 600, the
        // history grows for about five turns before the next cut.
        let cuts = starts.windows(2).filter(|w| w[0] != w[1]).count();
        assert!((30..=75).contains(&cuts), "{cuts} cuts in 300 turns");
        assert!(kept.out.len() < 60, "{} messages kept", kept.out.len());
        assert_eq!(kept.sent(budget).last().unwrap().content, "answer 299");
    }

    /// Rebuilt from the log's later events only, possibly mid-turn: the
    /// history starts at a user message and says that earlier ones exist.
    #[test]
    fn a_history_rebuilt_from_later_events_starts_at_a_user_message_with_the_note() {
        let mut history = History::after_earlier_events();
        for event in turn(1).into_iter().skip(2).chain(turn(2)) {
            history.push(&event);
        }
        let sent = history.sent(usize::MAX);
        assert_eq!(sent[0].content, format!("{ELIDED_NOTE}\n\nquestion 2"));
        assert_eq!(sent.len(), 4, "{sent:#?}");
        let mut fresh = History::default();
        for event in turn(1) {
            fresh.push(&event);
        }
        assert_eq!(fresh.sent(usize::MAX)[0].content, "question 1");
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
