//! Scheduled runs (CONTRACT §2.11): a fixed message sent into an agent
//! session on a cron schedule, each firing a headless turn.
//!
//! Expressions have five fields (minute, hour, day of month, month, day of
//! week), in UTC, or a macro (`@hourly`, `@daily`, `@midnight`, `@weekly`,
//! `@monthly`, `@yearly`, `@annually`); a seconds field is refused, so a
//! schedule fires at most once a minute.
//!
//! Exactly once: every server's scheduler looks for due schedules each
//! second and claims a firing by moving the row's `next_run_at` from the
//! value it read to the next occurrence after *now* (a compare-and-set), so
//! of several servers on one database exactly one wins each firing, and a
//! schedule that was due many times while every server was down fires once.
//! A firing into a busy session (a turn running or waiting for input) is
//! skipped and says so in `last_error`; a firing whose session was deleted
//! disables the schedule (`enabled: false`, `next_run_at: null`,
//! `last_error`). The turn's own failure is recorded in `last_error` when it
//! ends; a turn that ends well clears it.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use futures_util::StreamExt;

use crate::audit::{Actor, NewAudit, actions};
use crate::auth::AuthContext;
use crate::control::ControlPlane;
use crate::error::{EntityKind, Error, Refusal, Result};
use crate::ids::{ApiKeyId, ProjectId, ScheduleId, SessionId};
use crate::runtime::{AgentRuntime, EventBody, FollowItem};
use crate::time::{Timestamp, now};
use store::{ScheduleStore, ScheduleUpdate};

/// The longest message a schedule sends.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Due schedules one scheduler pass claims at most.
const BATCH: i64 = 100;

/// One schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRun {
    pub id: ScheduleId,
    pub project_id: ProjectId,
    /// The key that created it: firings act as it (revoking the key stops
    /// them, with `last_error` saying so).
    pub created_by: ApiKeyId,
    pub session_id: SessionId,
    pub name: String,
    pub cron_expression: String,
    pub message: String,
    pub enabled: bool,
    pub last_run_at: Option<Timestamp>,
    /// `None` while disabled.
    pub next_run_at: Option<Timestamp>,
    pub run_count: i64,
    pub last_error: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `POST /scheduled-runs`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewSchedule {
    pub session_id: String,
    pub name: Option<String>,
    pub cron_expression: String,
    pub message: String,
}

/// `PATCH /scheduled-runs/:id`: `None` leaves a field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleChanges {
    pub name: Option<String>,
    pub cron_expression: Option<String>,
    pub message: Option<String>,
    pub enabled: Option<bool>,
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct CronSchedule(Cron);

impl CronSchedule {
    /// Five fields or a macro; a seconds (or year) field, `@reboot` and
    /// anything croner refuses are 400s with its reason.
    pub fn parse(expression: &str) -> Result<CronSchedule> {
        let trimmed = expression.trim();
        let invalid = |why: String| Error::validation(why, Some("cron_expression"));
        if trimmed.is_empty() {
            return Err(invalid("cron_expression is required".into()));
        }
        let pattern = match trimmed.to_ascii_lowercase().as_str() {
            "@midnight" => "0 0 * * *".to_owned(),
            "@reboot" => {
                return Err(invalid(
                    "`@reboot` has no time to fire at; use a cron expression".into(),
                ));
            }
            _ => trimmed.to_owned(),
        };
        if !pattern.starts_with('@') && pattern.split_whitespace().count() != 5 {
            return Err(invalid(format!(
                "`{trimmed}` has {} fields; a schedule has five (minute hour day-of-month month day-of-week, UTC), \
                 or is a macro such as @hourly; seconds are not supported",
                pattern.split_whitespace().count()
            )));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        parser
            .parse(&pattern)
            .map(CronSchedule)
            .map_err(|e| invalid(format!("`{trimmed}` is not a valid cron expression: {e}")))
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.0.find_next_occurrence(&after, false).ok()
    }
}

/// The schedules service. It holds the runtime that plays the firings and
/// the control plane that says whom a firing acts as.
pub struct Schedules {
    store: Arc<dyn ScheduleStore>,
    runtime: Arc<AgentRuntime>,
    control: Arc<ControlPlane>,
}

impl Schedules {
    pub fn new(
        store: Arc<dyn ScheduleStore>,
        runtime: Arc<AgentRuntime>,
        control: Arc<ControlPlane>,
    ) -> Schedules {
        Schedules {
            store,
            runtime,
            control,
        }
    }

    fn audit(ctx: &AuthContext, action: &'static str, id: &ScheduleId) -> NewAudit {
        NewAudit::new(
            &ctx.project.id,
            &Actor::api_key(ctx.key_id.clone()),
            action,
            id.as_str(),
        )
    }

    fn check_message(message: &str) -> Result<()> {
        if message.trim().is_empty() {
            return Err(Error::validation(
                "message is required and must not be empty",
                Some("message"),
            ));
        }
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(Error::validation(
                format!("message is longer than {MAX_MESSAGE_BYTES} bytes"),
                Some("message"),
            ));
        }
        Ok(())
    }

    /// `POST /scheduled-runs`: 400 for a bad expression or message, 404 for
    /// a session not in the project.
    pub async fn create(&self, ctx: &AuthContext, input: NewSchedule) -> Result<ScheduledRun> {
        if input.session_id.trim().is_empty() {
            return Err(Error::validation(
                "agent_session_id is required",
                Some("agent_session_id"),
            ));
        }
        let cron = CronSchedule::parse(&input.cron_expression)?;
        Self::check_message(&input.message)?;
        let session_id = SessionId::from_string(input.session_id);
        self.runtime.get_session(ctx, &session_id).await?;
        let at = now();
        let schedule = ScheduledRun {
            id: ScheduleId::generate(),
            project_id: ctx.project.id.clone(),
            created_by: ctx.key_id.clone(),
            session_id,
            name: input.name.unwrap_or_default(),
            cron_expression: input.cron_expression.trim().to_owned(),
            message: input.message,
            enabled: true,
            last_run_at: None,
            next_run_at: cron.next_after(at),
            run_count: 0,
            last_error: String::new(),
            created_at: at,
            updated_at: at,
        };
        let audit = Self::audit(ctx, actions::SCHEDULE_CREATE, &schedule.id)
            .meta("agent_session_id", schedule.session_id.as_str())
            .meta("cron_expression", schedule.cron_expression.clone());
        self.store.insert_schedule(&schedule, &audit).await?;
        Ok(schedule)
    }

    /// `GET /scheduled-runs`: oldest first.
    pub async fn list(&self, ctx: &AuthContext) -> Result<Vec<ScheduledRun>> {
        Ok(self.store.list_schedules(&ctx.project.id).await?)
    }

    pub async fn get(&self, ctx: &AuthContext, id: &ScheduleId) -> Result<ScheduledRun> {
        self.store
            .get_schedule(&ctx.project.id, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Schedule, id))
    }

    /// `PATCH /scheduled-runs/:id`: `next_run_at` is recomputed from now
    /// when the expression changes or a schedule is enabled again; a
    /// disabled schedule has none.
    pub async fn update(
        &self,
        ctx: &AuthContext,
        id: &ScheduleId,
        changes: ScheduleChanges,
    ) -> Result<ScheduledRun> {
        let current = self.get(ctx, id).await?;
        let cron = match &changes.cron_expression {
            Some(expression) => Some(CronSchedule::parse(expression)?),
            None => None,
        };
        if let Some(message) = &changes.message {
            Self::check_message(message)?;
        }
        let enabled = changes.enabled.unwrap_or(current.enabled);
        let at = now();
        let next_run_at = if !enabled {
            None
        } else if let Some(cron) = &cron {
            cron.next_after(at)
        } else if !current.enabled || current.next_run_at.is_none_or(|next| next < at) {
            CronSchedule::parse(&current.cron_expression)?.next_after(at)
        } else {
            current.next_run_at
        };
        let update = ScheduleUpdate {
            name: changes.name.unwrap_or(current.name),
            cron_expression: changes
                .cron_expression
                .map(|c| c.trim().to_owned())
                .unwrap_or(current.cron_expression),
            message: changes.message.unwrap_or(current.message),
            enabled,
            next_run_at,
            updated_at: at,
        };
        let audit = Self::audit(ctx, actions::SCHEDULE_UPDATE, id).meta("enabled", enabled);
        self.store
            .update_schedule(&ctx.project.id, id, &update, &audit)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Schedule, id))
    }

    /// `DELETE /scheduled-runs/:id`.
    pub async fn delete(&self, ctx: &AuthContext, id: &ScheduleId) -> Result<()> {
        let audit = Self::audit(ctx, actions::SCHEDULE_DELETE, id);
        if self.store.delete_schedule(&ctx.project.id, id, &audit).await? {
            Ok(())
        } else {
            Err(Error::not_found(EntityKind::Schedule, id))
        }
    }

    /// Fires every schedule due at `at` that this server wins; returns how
    /// many it fired.
    pub async fn fire_due(self: &Arc<Self>, at: Timestamp) -> Result<usize> {
        let due = self.store.due_schedules(at, BATCH).await?;
        let mut fired = 0;
        for schedule in due {
            let Some(due_at) = schedule.next_run_at else {
                continue;
            };
            let next = CronSchedule::parse(&schedule.cron_expression)
                .ok()
                .and_then(|cron| cron.next_after(at));
            // The compare-and-set: only one server moves `next_run_at` on.
            if !self.store.claim_firing(&schedule.id, due_at, next, at).await? {
                continue;
            }
            fired += 1;
            let schedules = self.clone();
            tokio::spawn(async move { schedules.fire(schedule).await });
        }
        Ok(fired)
    }

    /// Plays one firing as a headless turn and records how it went.
    async fn fire(&self, schedule: ScheduledRun) {
        let ctx = match self.control.context_of_key(&schedule.created_by).await {
            Ok(ctx) => ctx,
            Err(error) => {
                let why = format!("the firing could not act as the key that created the schedule: {error}");
                if let Err(error) = self.store.record_firing(&schedule.id, &why).await {
                    tracing::warn!(schedule = %schedule.id, %error, "recording a scheduled firing failed");
                }
                return;
            }
        };
        let outcome = match self
            .runtime
            .run_turn(&ctx, &schedule.session_id, &schedule.message)
            .await
        {
            Ok((_, mut events)) => {
                let mut error = String::new();
                while let Some(item) = events.next().await {
                    let FollowItem::Event(event) = item else { continue };
                    match &event.body {
                        EventBody::Error { message, .. } => {
                            error = format!("the turn failed: {message}");
                            break;
                        }
                        EventBody::InputRequest { message, .. } => {
                            error = format!("the turn is waiting for input nobody will give: {message}");
                            break;
                        }
                        EventBody::Done { .. } => break,
                        _ => {}
                    }
                }
                Ok(error)
            }
            Err(Error::NotFound { .. }) => Err(true),
            Err(Error::Refused {
                refusal: Refusal::RunInProgress,
                ..
            }) => Ok(
                "the session was busy (a turn was running or waiting for input); this firing was skipped"
                    .into(),
            ),
            Err(error) => Ok(format!("the turn could not start: {error}")),
        };
        let result = match outcome {
            Ok(error) => self.store.record_firing(&schedule.id, &error).await,
            Err(_) => {
                self.store
                    .disable_schedule(
                        &schedule.id,
                        "its session was deleted; the schedule is disabled",
                        now(),
                    )
                    .await
            }
        };
        if let Err(error) = result {
            tracing::warn!(schedule = %schedule.id, %error, "recording a scheduled firing failed");
        }
    }

    /// Every second, fires what is due, until `shutdown`.
    pub async fn run_scheduler(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {
                    if let Err(error) = self.fire_due(now()).await {
                        tracing::warn!(%error, "the scheduler's pass failed; the next one retries");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(s: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn five_fields_and_macros_in_utc() {
        let every_five = CronSchedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            every_five.next_after(at("2026-12-03T10:02:30Z")),
            Some(at("2026-12-03T10:05:00Z"))
        );
        assert_eq!(
            every_five.next_after(at("2026-12-03T10:05:00Z")),
            Some(at("2026-12-03T10:10:00Z"))
        );
        let hourly = CronSchedule::parse("@hourly").unwrap();
        assert_eq!(
            hourly.next_after(at("2026-12-03T10:02:00Z")),
            Some(at("2026-12-03T11:00:00Z"))
        );
        let midnight = CronSchedule::parse("@midnight").unwrap();
        assert_eq!(
            midnight.next_after(at("2026-12-03T10:02:00Z")),
            Some(chrono::Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap())
        );
        assert!(CronSchedule::parse("0 9 * * MON-FRI").is_ok());
    }

    #[test]
    fn seconds_and_nonsense_are_refused() {
        for bad in [
            "*/10 * * * * *",
            "* * * *",
            "61 * * * *",
            "@reboot",
            "",
            "every day",
        ] {
            let error = CronSchedule::parse(bad).unwrap_err();
            assert!(matches!(error, Error::Validation { .. }), "{bad}: {error:?}");
        }
    }
}
