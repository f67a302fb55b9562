//! The agent verbs: `kiln run` (one turn of an agent session, its events
//! rendered as they arrive) and `kiln sessions list|show|delete`. Remote
//! verbs: they talk to a running server through `kiln-sdk`.
//!
//! `kiln run` writes the turn's transcript to stdout (one event per line or
//! block; with `--json`, each event's JSON on one line) and its status to
//! stderr: the new session's id, the closing summary, errors.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use futures::StreamExt;
use kiln_sdk::api::{AgentSession, CreateSession, EventSummary};
use kiln_sdk::{AgentEventStream, Client, InputRequest, InputType, TurnEvent, TurnEventKind};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::docs::{resolve_index, snippet};
use crate::{RemoteArgs, print_table, short_time};

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The message for the agent (several words are joined with spaces).
    #[arg(required = true, value_name = "MESSAGE")]
    message: Vec<String>,
    /// Continue this session (by id) instead of creating a new one.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// System prompt for a new session (default: the platform's agent prompt).
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Model as `provider/model` for a new session (default: the project's default).
    #[arg(long, value_name = "M")]
    model: Option<String>,
    /// Let a new session's search() read this index (name or id); repeat for several.
    /// Default: every index of the project.
    #[arg(long = "index", value_name = "NAME_OR_ID")]
    indexes: Vec<String>,
    /// Give a new session no search at all (sends `index_ids: []`).
    #[arg(long, conflicts_with = "indexes")]
    no_search: bool,
    /// An extra function-call tool for a new session (`search`, `fetch`, `list_stores`);
    /// repeat for several. The JavaScript sandbox is always available.
    #[arg(long = "tool", value_name = "NAME")]
    tools: Vec<String>,
    /// Title of a new session (default: the start of the message).
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,
    /// Run a new session on this agent (local id or id): its live version,
    /// or its draft with --draft.
    #[arg(long, value_name = "ID", conflicts_with = "session")]
    agent: Option<String>,
    /// With --agent: run the agent's draft (the last sync) instead.
    #[arg(long, requires = "agent")]
    draft: bool,
    /// With --session: queue the message if a turn is running (POST
    /// /agents/:id/messages) and follow it once it starts, instead of
    /// failing with `run_in_progress`.
    #[arg(long, requires = "session")]
    queue: bool,
    /// Print each event's JSON on one line instead of rendering it.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

impl RunArgs {
    /// Whether any flag that only shapes a new session was given.
    fn shapes_a_new_session(&self) -> bool {
        self.system.is_some()
            || self.model.is_some()
            || !self.indexes.is_empty()
            || self.no_search
            || !self.tools.is_empty()
            || self.title.is_some()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// List agent sessions, newest first.
    List {
        /// How many sessions to show (the server caps it at 200).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// How many of the newest sessions to skip.
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Print the sessions as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show a session: its settings, usage and steps.
    Show {
        /// The session's id.
        id: String,
        /// Print the session and its steps as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete a session and its steps.
    Delete {
        /// The session's id.
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// A session title from a message: its first line, at most 60 characters.
fn default_title(message: &str) -> String {
    snippet(message.lines().next().unwrap_or_default(), 60)
}

async fn create_input(client: &Client, args: &RunArgs, message: &str) -> anyhow::Result<CreateSession> {
    let index_ids = if args.no_search {
        Some(Vec::new())
    } else if args.indexes.is_empty() {
        None
    } else {
        let mut ids = Vec::new();
        for name in &args.indexes {
            ids.push(resolve_index(client, name).await?.id);
        }
        Some(ids)
    };
    let agent_id = match &args.agent {
        Some(name) => Some(crate::code::find_agent(client, name).await?.id),
        None => None,
    };
    Ok(CreateSession {
        agent_id,
        target: args.draft.then(|| "draft".to_owned()),
        title: Some(args.title.clone().unwrap_or_else(|| default_title(message))),
        system_prompt: args.system.clone(),
        model: args.model.clone(),
        tools: (!args.tools.is_empty()).then(|| args.tools.clone()),
        index_ids,
        ..Default::default()
    })
}

/// How a turn ended, as far as this process saw it.
enum Outcome {
    Done(EventSummary),
    Failed {
        message: String,
        code: Option<String>,
    },
    /// Ctrl-C.
    Interrupted,
    /// Standard input closed while the agent waited for an answer.
    NoAnswer,
}

pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let message = args.message.join(" ");
    anyhow::ensure!(!message.trim().is_empty(), "the message is empty");
    let (session_id, fresh) = match &args.session {
        Some(id) => {
            if args.shapes_a_new_session() {
                eprintln!(
                    "note: --system, --model, --index, --no-search, --tool and --title apply to new \
                     sessions; continuing {id} as it is"
                );
            }
            (id.clone(), false)
        }
        None => {
            let input = create_input(&client, &args, &message).await?;
            let session = client.create_session(&input).await?;
            eprintln!("session {}", session.id);
            (session.id, true)
        }
    };
    let render = Render::new(args.json);
    let outcome = if args.queue {
        queued_turn(&client, &session_id, &message, &render).await?
    } else {
        turn(&client, &session_id, &message, fresh, &render).await?
    };
    finish(&client, &session_id, outcome).await
}

/// How often `kiln run --queue` looks at the queue while its turn waits.
const QUEUE_POLL: Duration = Duration::from_millis(300);

/// `kiln run --queue`: enqueues the message, reports its place while it
/// waits (Ctrl-C takes it off the queue), then plays its turn. The turn's
/// events are found in the session's log by counting: every turn ends with
/// exactly one `done` or `error`, so the turn of the n-th user message
/// starts after the (n-1)-th terminal event. (Each earlier turn costs one
/// short replay; a session hundreds of turns long takes a moment.)
async fn queued_turn(
    client: &Client,
    session_id: &str,
    message: &str,
    render: &Render,
) -> anyhow::Result<Outcome> {
    let earlier = user_messages(client, session_id).await?.len();
    let enqueued = client.enqueue_message(session_id, message).await?;
    let mut position = enqueued.queue_position;
    if enqueued.status == "queued" {
        eprintln!("queued at position {position} (Ctrl-C takes it off the queue)");
    }
    while position > 0 {
        tokio::select! {
            () = tokio::time::sleep(QUEUE_POLL) => {}
            () = ctrl_c() => {
                match client.cancel_queued(session_id, &enqueued.id).await {
                    Ok(()) => eprintln!("took the message off the queue"),
                    // It started meanwhile: `finish` cancels the turn.
                    Err(e) if e.api().is_some_and(|a| a.status == 404) => return Ok(Outcome::Interrupted),
                    Err(e) => eprintln!("could not take the message off the queue: {e}"),
                }
                let _ = std::io::stdout().flush();
                std::process::exit(130);
            }
        }
        let queue = client.list_queue(session_id).await?;
        match queue.iter().find(|q| q.id == enqueued.id) {
            Some(q) if q.queue_position != position => {
                position = q.queue_position;
                eprintln!("queue position {position}");
            }
            Some(_) => {}
            None => position = 0,
        }
    }
    let turns = user_messages(client, session_id).await?;
    let Some(index) = turns
        .iter()
        .skip(earlier)
        .position(|m| m == message)
        .map(|i| i + earlier)
    else {
        anyhow::bail!("the queued message was taken off the queue before it ran");
    };
    // A resumed stream ends with its turn: skip the earlier turns one
    // stream each.
    let mut cursor = 0;
    for _ in 0..index {
        let mut earlier = resume(client, session_id, cursor).await?;
        loop {
            match earlier.next().await {
                Some(Ok(event)) if event.is_terminal() => {
                    cursor = event.seq.unwrap_or(cursor);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("the session's log ended before the queued turn"),
            }
        }
    }
    let stream = resume(client, session_id, cursor).await?;
    play(client, session_id, stream, false, render).await
}

/// The session's user messages, oldest first (one per turn that started).
async fn user_messages(client: &Client, session_id: &str) -> anyhow::Result<Vec<String>> {
    let detail = client.get_session(session_id).await?;
    Ok(detail
        .steps
        .into_iter()
        .filter(|s| s.step_type == kiln_sdk::api::event_types::USER_MESSAGE)
        .map(|s| s.content)
        .collect())
}

/// Reports how a turn ended (stderr) and the exit status.
async fn finish(client: &Client, session_id: &str, outcome: Outcome) -> anyhow::Result<()> {
    let hint = format!("session {session_id}: continue with `kiln run --session {session_id} MESSAGE`");
    match outcome {
        Outcome::Done(summary) => {
            let t = summary.tokens;
            eprintln!(
                "done: {} step{}, {} tokens ({} prompt + {} completion)",
                summary.steps,
                if summary.steps == 1 { "" } else { "s" },
                t.prompt + t.completion,
                t.prompt,
                t.completion
            );
            eprintln!("{hint}");
            Ok(())
        }
        Outcome::Failed { message, code } => {
            eprintln!("{hint}");
            match code {
                Some(code) if !code.is_empty() => anyhow::bail!("the turn failed: {message} (code: {code})"),
                _ => anyhow::bail!("the turn failed: {message}"),
            }
        }
        Outcome::Interrupted => {
            eprintln!("interrupted: cancelling the turn");
            cancel(client, session_id).await;
            let _ = std::io::stdout().flush();
            std::process::exit(130);
        }
        Outcome::NoAnswer => {
            cancel(client, session_id).await;
            anyhow::bail!(
                "standard input closed before the agent's question was answered; the turn was cancelled"
            )
        }
    }
}

/// Cancels the session's turn, briefly; a second Ctrl-C stops waiting.
async fn cancel(client: &Client, session_id: &str) {
    let request = tokio::time::timeout(Duration::from_secs(10), client.cancel_session(session_id));
    tokio::select! {
        result = request => match result {
            Ok(Ok(_)) => eprintln!("cancelled the turn of session {session_id}"),
            Ok(Err(e)) if e.api().is_some_and(|a| a.code == "not_running") => {}
            Ok(Err(e)) => eprintln!("could not cancel the turn: {e}"),
            Err(_) => eprintln!("could not cancel the turn: the server did not answer"),
        },
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Ctrl-C, or never if the handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Lines of standard input, read on a thread of their own (a blocked read
/// then never holds up the exit).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn next_line(lines: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match lines {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

enum Step {
    Interrupt,
    Item(Option<Result<Box<TurnEvent>, kiln_sdk::Error>>),
    Answer(Option<String>),
}

/// Runs one turn: renders its events, answers its questions from stdin,
/// resumes once if the stream is cut.
async fn turn(
    client: &Client,
    session_id: &str,
    message: &str,
    fresh: bool,
    render: &Render,
) -> anyhow::Result<Outcome> {
    let started = tokio::select! {
        started = client.run_agent(session_id, message) => started?,
        () = ctrl_c() => return Ok(Outcome::Interrupted),
    };
    play(client, session_id, started, fresh, render).await
}

/// Plays a started turn's stream: renders its events, answers its
/// questions from stdin, resumes once if the stream is cut.
async fn play(
    client: &Client,
    session_id: &str,
    mut stream: AgentEventStream,
    fresh: bool,
    render: &Render,
) -> anyhow::Result<Outcome> {
    let interrupt = ctrl_c();
    tokio::pin!(interrupt);
    let mut resumed = false;
    let mut pending: Option<InputRequest> = None;
    let mut lines: Option<mpsc::Receiver<String>> = None;
    loop {
        let step = tokio::select! {
            () = &mut interrupt => Step::Interrupt,
            item = stream.next() => Step::Item(item.map(|r| r.map(Box::new))),
            line = next_line(&mut lines), if pending.is_some() => Step::Answer(line),
        };
        match step {
            Step::Interrupt => return Ok(Outcome::Interrupted),
            Step::Item(Some(Ok(event))) => {
                let event = *event;
                // The turn moved on: whatever was asked is settled.
                pending = None;
                render.event(&event);
                match event.kind {
                    TurnEventKind::Done(summary) => return Ok(Outcome::Done(summary)),
                    TurnEventKind::Error { message, code } => return Ok(Outcome::Failed { message, code }),
                    TurnEventKind::InputRequest(request) => {
                        render.ask(&request);
                        lines.get_or_insert_with(stdin_lines);
                        pending = Some(request);
                    }
                    _ => {}
                }
            }
            Step::Item(Some(Err(e))) => {
                let Some(cut) = e.as_stream_cut() else {
                    return Err(e.into());
                };
                let why = cut
                    .cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                let see = format!("the turn may still be running: see `kiln sessions show {session_id}`");
                if resumed {
                    anyhow::bail!("the event stream was cut again{why}; {see}");
                }
                // A new session's log starts at 1, so before any event the
                // cursor is 0; an older session's is unknown then.
                let Some(after) = cut.last_seq.or(fresh.then_some(0)) else {
                    anyhow::bail!("the event stream was cut before any event arrived{why}; {see}");
                };
                eprintln!("the event stream was cut{why}; resuming after event {after}");
                resumed = true;
                stream = tokio::select! {
                    stream = resume(client, session_id, after) => stream?,
                    () = &mut interrupt => return Ok(Outcome::Interrupted),
                };
            }
            Step::Item(None) => anyhow::bail!("the event stream ended before the turn finished"),
            Step::Answer(None) => return Ok(Outcome::NoAnswer),
            Step::Answer(Some(line)) => {
                let Some(request) = pending.as_ref() else {
                    continue;
                };
                if !std::io::stdin().is_terminal() {
                    // Echo piped answers, so the prompt's line ends.
                    eprintln!("{line}");
                }
                match parse_answer(request, &line) {
                    Ok(value) => {
                        let request_id = request.request_id.clone();
                        pending = None;
                        if let Err(e) = client.respond_to_input(session_id, &request_id, value).await {
                            eprintln!("could not send the answer: {e}");
                        }
                    }
                    Err(hint) => {
                        eprintln!("{hint}");
                        render.prompt(request);
                    }
                }
            }
        }
    }
}

/// `resume_events`, retrying the connection for a few seconds (the server
/// may be restarting).
async fn resume(client: &Client, session_id: &str, after: i64) -> anyhow::Result<AgentEventStream> {
    let mut pause = Duration::from_millis(500);
    for _ in 0..5 {
        match client.resume_events(session_id, after).await {
            Err(kiln_sdk::Error::Transport(_)) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => return Ok(other?),
        }
    }
    Ok(client.resume_events(session_id, after).await?)
}

/// The JSON value answering `request`, or a hint on what to type.
fn parse_answer(request: &InputRequest, line: &str) -> Result<Value, String> {
    let line = line.trim_end_matches('\r');
    let word = line.trim();
    match &request.input_type {
        InputType::Confirm => match word.to_lowercase().as_str() {
            "y" | "yes" | "true" => Ok(Value::Bool(true)),
            "n" | "no" | "false" => Ok(Value::Bool(false)),
            _ => Err("answer y or n".to_owned()),
        },
        InputType::Choice if !request.options.is_empty() => {
            let options = &request.options;
            if let Ok(n) = word.parse::<usize>()
                && (1..=options.len()).contains(&n)
            {
                return Ok(Value::String(options[n - 1].clone()));
            }
            options
                .iter()
                .find(|o| o.as_str() == word)
                .or_else(|| options.iter().find(|o| o.to_lowercase() == word.to_lowercase()))
                .map(|o| Value::String(o.clone()))
                .ok_or_else(|| {
                    format!(
                        "answer a number from 1 to {} or one of the options",
                        options.len()
                    )
                })
        }
        _ => Ok(Value::String(line.to_owned())),
    }
}

/// How events are shown.
struct Render {
    json: bool,
    color: bool,
}

impl Render {
    fn new(json: bool) -> Self {
        Render {
            json,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn dim(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn out(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    /// One event on stdout. Terminal events are reported by the caller.
    fn event(&self, event: &TurnEvent) {
        if self.json {
            self.out(&serde_json::to_string(&event.raw).unwrap_or_default());
            return;
        }
        match &event.kind {
            TurnEventKind::SandboxEvent {
                kind,
                summary,
                content,
                ..
            } => {
                let kind = if kind.is_empty() { "sandbox" } else { kind };
                let text = if summary.is_empty() {
                    content.lines().next().unwrap_or_default()
                } else {
                    summary
                };
                self.out(&self.dim(&format!("[{kind}] {text}")));
            }
            TurnEventKind::ExecuteJs { code, .. } => {
                self.out(&format!("```js\n{}\n```", code.trim_end()));
            }
            TurnEventKind::ExecuteJsResult {
                content,
                result,
                error,
                ..
            } => {
                let text = if !content.is_empty() {
                    content.clone()
                } else if let Some(error) = error {
                    error.clone()
                } else {
                    result.as_ref().map(compact).unwrap_or_default()
                };
                let marker = if error.is_some() { "error: " } else { "" };
                self.out(&format!("→ {marker}{}", indent(&text)));
            }
            TurnEventKind::ToolCall { tool, args, .. } => {
                self.out(&format!(
                    "[tool] {tool} {}",
                    compact(&Value::Object(args.clone()))
                ));
            }
            TurnEventKind::ToolResult {
                tool,
                result,
                content,
            } => {
                let text = match content {
                    Some(c) if !c.is_empty() => c.clone(),
                    _ => result.as_ref().map(compact).unwrap_or_default(),
                };
                self.out(&format!("→ {tool}: {}", indent(&text)));
            }
            TurnEventKind::DataUpdate { changes } => {
                for (key, value) in changes {
                    self.out(&format!("[data] {key} = {}", compact(value)));
                }
            }
            TurnEventKind::Response { content, .. } => self.out(content),
            TurnEventKind::ReplayStarted {
                session_id,
                source_session_id,
                from_step,
            } => eprintln!("replay of {source_session_id} from step {from_step}: session {session_id}"),
            // Shown by `ask`; terminal events by the caller.
            TurnEventKind::InputRequest(_) | TurnEventKind::Error { .. } | TurnEventKind::Done(_) => {}
            TurnEventKind::Other => {
                let content = event.raw.content.as_deref().unwrap_or_default();
                self.out(&self.dim(format!("[{}] {content}", event.raw.kind).trim_end()));
            }
        }
    }

    /// The agent's question (on stdout, or stderr under `--json`), then the
    /// prompt.
    fn ask(&self, request: &InputRequest) {
        let mut lines = vec![format!("[input] {}", request.message)];
        if request.input_type == InputType::Choice {
            for (i, option) in request.options.iter().enumerate() {
                lines.push(format!("  {}) {option}", i + 1));
            }
        }
        for line in lines {
            if self.json {
                eprintln!("{line}");
            } else {
                self.out(&line);
            }
        }
        self.prompt(request);
    }

    /// What to type, on stderr.
    fn prompt(&self, request: &InputRequest) {
        let cue = match &request.input_type {
            InputType::Confirm => "answer [y/n]: ".to_owned(),
            InputType::Choice if !request.options.is_empty() => {
                format!("answer [1-{}]: ", request.options.len())
            }
            _ if !request.placeholder.is_empty() => format!("answer ({}): ", request.placeholder),
            _ => "answer: ".to_owned(),
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{cue}");
        let _ = stderr.flush();
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Continuation lines indented under a `→ ` prefix.
fn indent(text: &str) -> String {
    text.trim_end().replace('\n', "\n  ")
}

pub(crate) async fn sessions(command: SessionsCommand) -> anyhow::Result<()> {
    match command {
        SessionsCommand::List {
            limit,
            offset,
            json,
            remote,
        } => {
            let sessions = remote.client()?.list_sessions(Some(limit), Some(offset)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sessions)?);
                return Ok(());
            }
            let mut table = vec![
                ["ID", "STATUS", "TITLE", "MODEL", "STEPS", "TOKENS", "UPDATED"]
                    .map(String::from)
                    .to_vec(),
            ];
            for s in &sessions {
                table.push(vec![
                    s.id.clone(),
                    s.status.clone(),
                    snippet(&s.title, 40),
                    s.model.clone(),
                    s.step_count.to_string(),
                    (s.prompt_tokens + s.completion_tokens).to_string(),
                    short_time(&s.updated_at),
                ]);
            }
            print_table(&table);
            if limit > 0 && sessions.len() as i64 >= limit {
                eprintln!("next page: --offset {}", offset + limit);
            }
        }
        SessionsCommand::Show { id, json, remote } => {
            let detail = remote.client()?.get_session(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
                return Ok(());
            }
            print_table(&session_fields(&detail.session));
            println!();
            let mut table = vec![
                ["STEP", "TYPE", "TOOL", "TOKENS", "CONTENT"]
                    .map(String::from)
                    .to_vec(),
            ];
            for step in &detail.steps {
                let content = if step.content.is_empty() && !is_empty_json(&step.tool_args) {
                    compact(&step.tool_args)
                } else {
                    step.content.clone()
                };
                table.push(vec![
                    step.step_index.to_string(),
                    step.step_type.clone(),
                    step.tool_name.clone(),
                    (step.prompt_tokens + step.completion_tokens).to_string(),
                    snippet(&content, 80),
                ]);
            }
            print_table(&table);
        }
        SessionsCommand::Delete { id, remote } => {
            remote.client()?.delete_session(&id).await?;
            eprintln!("deleted session {id}");
        }
    }
    Ok(())
}

fn is_empty_json(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// `kiln sessions show`'s `name  value` rows.
fn session_fields(s: &AgentSession) -> Vec<Vec<String>> {
    let indexes = match &s.index_ids {
        None => "all".to_owned(),
        Some(ids) if ids.is_empty() => "none".to_owned(),
        Some(ids) => ids.join(", "),
    };
    let tools = match s.tools_config.get("tools").and_then(Value::as_array) {
        Some(tools) if tools.is_empty() => "none".to_owned(),
        Some(tools) => tools
            .iter()
            .map(|t| t.as_str().map_or_else(|| compact(t), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        None if is_empty_json(&s.tools_config) => "none".to_owned(),
        None => compact(&s.tools_config),
    };
    let mut rows = vec![
        ("id", s.id.clone()),
        ("title", s.title.clone()),
        ("status", s.status.clone()),
        ("model", s.model.clone()),
        ("indexes", indexes),
        ("tools", tools),
        ("steps", s.step_count.to_string()),
        (
            "tokens",
            format!(
                "{} ({} prompt + {} completion)",
                s.prompt_tokens + s.completion_tokens,
                s.prompt_tokens,
                s.completion_tokens
            ),
        ),
        ("duration", format!("{} ms", s.duration_ms)),
        ("created", short_time(&s.created_at)),
        ("updated", short_time(&s.updated_at)),
    ];
    if let Some(finished) = &s.finished_at {
        rows.push(("finished", short_time(finished)));
    }
    if !is_empty_json(&s.metadata) {
        rows.push(("metadata", compact(&s.metadata)));
    }
    rows.push(("system", snippet(&s.system_prompt, 100)));
    rows.into_iter()
        .map(|(name, value)| vec![format!("{name}:"), value])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(input_type: InputType, options: &[&str]) -> InputRequest {
        InputRequest {
            request_id: "r".into(),
            input_type,
            message: "?".into(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            placeholder: String::new(),
        }
    }

    #[test]
    fn answers_are_typed_by_the_request() {
        let confirm = request(InputType::Confirm, &[]);
        assert_eq!(parse_answer(&confirm, "Y"), Ok(Value::Bool(true)));
        assert_eq!(parse_answer(&confirm, " no\r"), Ok(Value::Bool(false)));
        assert!(parse_answer(&confirm, "maybe").is_err());

        let choice = request(InputType::Choice, &["red", "Green"]);
        assert_eq!(parse_answer(&choice, "2"), Ok(Value::String("Green".into())));
        assert_eq!(parse_answer(&choice, "red"), Ok(Value::String("red".into())));
        assert_eq!(parse_answer(&choice, "green"), Ok(Value::String("Green".into())));
        assert!(parse_answer(&choice, "3").is_err());
        assert!(parse_answer(&choice, "blue").is_err());

        let text = request(InputType::Text, &[]);
        assert_eq!(
            parse_answer(&text, " as typed \r"),
            Ok(Value::String(" as typed ".into()))
        );
    }

    #[test]
    fn titles_are_the_first_line_cut_short() {
        assert_eq!(default_title("hello\nworld"), "hello");
        assert_eq!(default_title(&"x".repeat(100)).chars().count(), 60);
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct TraceArgs {
    /// The session's id.
    session: String,
    /// Print the complete system prompt the session's turns see.
    #[arg(long)]
    prompt: bool,
    /// Print the trace as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// `kiln trace SESSION`: every step of a session, in full, with its time
/// and tokens (from the studio's trace).
pub(crate) async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let trace = args.remote.client()?.get_studio_trace(&args.session).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&trace)?);
        return Ok(());
    }
    let s = &trace.session;
    let t = s.prompt_tokens + s.completion_tokens;
    println!(
        "session {}  {}  model {}  {} steps  {} tokens  {} ms",
        s.id, s.status, s.model, s.step_count, t, s.duration_ms
    );
    println!("tools: {}", trace.tools.join(", "));
    if args.prompt {
        println!("--- system prompt ---\n{}\n---", trace.system_prompt.trim_end());
    } else {
        println!(
            "system prompt: {} characters (--prompt prints it)",
            trace.system_prompt.chars().count()
        );
    }
    for step in &trace.steps {
        let tokens = step.prompt_tokens + step.completion_tokens;
        let tool = if step.tool_name.is_empty() {
            String::new()
        } else {
            format!(" {}", step.tool_name)
        };
        let tokens = if tokens > 0 {
            format!("  {tokens} tokens")
        } else {
            String::new()
        };
        println!(
            "\n#{} {}{tool}  +{} ms{tokens}",
            step.step_index, step.step_type, step.duration_ms
        );
        let content = if step.content.is_empty() && !is_empty_json(&step.tool_args) {
            compact(&step.tool_args)
        } else {
            step.content.clone()
        };
        match step.step_type.as_str() {
            "user_message" => println!("> {}", indent(&content)),
            "execute_js" => println!("```js\n{}\n```", content.trim_end()),
            "execute_js_result" | "tool_result" => println!("→ {}", indent(&content)),
            "input_request" => println!("[input] {}", indent(&content)),
            _ => println!("{}", content.trim_end()),
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The session to replay.
    session: String,
    /// The step to replay from (`kiln trace` numbers them): the turns before
    /// its turn are copied into a new session, and its turn runs again.
    #[arg(long = "from", value_name = "N")]
    from_step: i64,
    /// Another message for the replayed turn.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,
    /// Another system prompt for the new session.
    #[arg(long = "system", value_name = "TEXT")]
    system_prompt: Option<String>,
    /// Print each event as a JSON line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// `kiln replay SESSION --from N`: streams the replay like `kiln run`.
pub(crate) async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let request = kiln_sdk::api::ReplayRequest {
        from_step: Some(args.from_step),
        system_prompt: args.system_prompt,
        message: args.message,
    };
    let mut stream = client.replay_session(&args.session, &request).await?;
    let render = Render::new(args.json);
    let first = stream
        .next()
        .await
        .context("the replay's stream ended before it started")??;
    render.event(&first);
    let TurnEventKind::ReplayStarted { session_id, .. } = &first.kind else {
        anyhow::bail!(
            "the server did not start a replay (its first event was `{}`)",
            first.raw.kind
        );
    };
    let session_id = session_id.clone();
    let outcome = play(&client, &session_id, stream, true, &render).await?;
    finish(&client, &session_id, outcome).await
}
