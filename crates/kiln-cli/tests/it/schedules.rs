//! CONTRACT §2.11: scheduled runs. CRUD with every rule (five fields in
//! UTC or a macro, seconds refused, an empty message refused, a session of
//! the project), `next_run_at` as PATCH recomputes it, firings as headless
//! turns (the scheduler's pass is driven with a chosen "now", far from the
//! real clock), one firing after downtime, a busy session, a deleted
//! session, and on PostgreSQL two servers that fire each slot once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::api::{CreateScheduledRun, CreateSession, UpdateScheduledRun};

use crate::agents::fake_options;
use crate::harness::{Backend, TestApp, api_err};

/// Waits until the session's turns have ended, `turns` user messages in.
///
/// `GET /agents/:id` reads the session before its steps, so one answer can
/// show a new turn's message beside the status from before it: the status
/// is read again once the message is seen.
async fn turns_done(app: &TestApp, session: &str, turns: usize) {
    for _ in 0..200 {
        let detail = app.client.get_session(session).await.unwrap();
        let asked = detail
            .steps
            .iter()
            .filter(|s| s.step_type == "user_message")
            .count();
        if asked >= turns && app.client.get_session(session).await.unwrap().session.status != "running" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the session's turn did not end");
}

/// Waits for the firing's outcome to be recorded.
async fn recorded(
    app: &TestApp,
    id: &str,
    check: impl Fn(&kiln_sdk::api::ScheduledRun) -> bool,
) -> kiln_sdk::api::ScheduledRun {
    for _ in 0..200 {
        let schedule = app.client.get_scheduled_run(id).await.unwrap();
        if check(&schedule) {
            return schedule;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the firing was not recorded");
}

fn yearly(session: &str) -> CreateScheduledRun {
    CreateScheduledRun {
        agent_session_id: session.to_owned(),
        name: Some("new year".into()),
        // Far from the real clock: only the test's passes fire it.
        cron_expression: "0 0 1 1 *".into(),
        message: "Happy new year: summarise last year.".into(),
    }
}

fn year_start(year: i32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap()
}

async fn schedules_fire_headless_turns(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let session = c.create_session(&CreateSession::default()).await.unwrap();

    // Every rule of the create.
    for (bad, field) in [
        (
            CreateScheduledRun {
                agent_session_id: String::new(),
                ..yearly("")
            },
            "agent_session_id",
        ),
        (
            CreateScheduledRun {
                cron_expression: "*/10 * * * * *".into(),
                ..yearly(&session.id)
            },
            "cron_expression",
        ),
        (
            CreateScheduledRun {
                cron_expression: "every day".into(),
                ..yearly(&session.id)
            },
            "cron_expression",
        ),
        (
            CreateScheduledRun {
                cron_expression: "61 * * * *".into(),
                ..yearly(&session.id)
            },
            "cron_expression",
        ),
        (
            CreateScheduledRun {
                message: "  ".into(),
                ..yearly(&session.id)
            },
            "message",
        ),
    ] {
        let err = api_err(c.create_scheduled_run(&bad).await, 400, "validation_failed");
        assert_eq!(err.details["field"], field, "{err:?}");
    }
    api_err(c.create_scheduled_run(&yearly("nope")).await, 404, "NOT_FOUND");

    let created = c.create_scheduled_run(&yearly(&session.id)).await.unwrap();
    assert!(created.enabled);
    assert_eq!((created.run_count, created.last_error.as_str()), (0, ""));
    let first = created.next_run_at.expect("computed");
    assert_eq!(first, year_start(first.format("%Y").to_string().parse().unwrap()));
    assert!(first > Utc::now());
    assert_eq!(c.list_scheduled_runs().await.unwrap(), vec![created.clone()]);

    // PATCH: disabling clears next_run_at, enabling computes it again, a
    // name leaves it, a new expression recomputes it.
    let off = c
        .update_scheduled_run(
            &created.id,
            &UpdateScheduledRun {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((off.enabled, off.next_run_at), (false, None));
    let on = c
        .update_scheduled_run(
            &created.id,
            &UpdateScheduledRun {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(on.next_run_at, Some(first));
    let renamed = c
        .update_scheduled_run(
            &created.id,
            &UpdateScheduledRun {
                name: Some("yearly".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.next_run_at),
        ("yearly", Some(first))
    );
    let monthly = c
        .update_scheduled_run(
            &created.id,
            &UpdateScheduledRun {
                cron_expression: Some("@monthly".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(monthly.next_run_at.unwrap() <= first);
    api_err(
        c.update_scheduled_run(
            &created.id,
            &UpdateScheduledRun {
                cron_expression: Some("0 0 0 1 1 *".into()),
                ..Default::default()
            },
        )
        .await,
        400,
        "validation_failed",
    );
    let back = c
        .update_scheduled_run(
            &created.id,
            &UpdateScheduledRun {
                cron_expression: Some("0 0 1 1 *".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(back.next_run_at, Some(first));

    // A firing: a headless turn with the message; the next slot follows.
    let schedules = &app.server.schedules;
    let at = first + chrono::Duration::seconds(1);
    assert_eq!(
        schedules
            .fire_due(at - chrono::Duration::seconds(2))
            .await
            .unwrap(),
        0
    );
    fake.push(Reply::text("Last year went well."));
    assert_eq!(schedules.fire_due(at).await.unwrap(), 1);
    turns_done(app, &session.id, 1).await;
    let fired = recorded(app, &created.id, |s| s.run_count == 1).await;
    assert_eq!(fired.last_run_at, Some(at));
    let next_year: i32 = first.format("%Y").to_string().parse::<i32>().unwrap() + 1;
    assert_eq!(fired.next_run_at, Some(year_start(next_year)));
    assert_eq!(fired.last_error, "");
    let steps = c.get_session(&session.id).await.unwrap().steps;
    assert_eq!(steps[0].content, "Happy new year: summarise last year.");
    assert!(
        steps.iter().any(|s| s.content == "Last year went well."),
        "{steps:#?}"
    );
    // The same slot does not fire twice.
    assert_eq!(schedules.fire_due(at).await.unwrap(), 0);

    // After "downtime" of five years it fires once, and the next slot is
    // after the pass, not after the last one.
    fake.push(Reply::text("Catching up."));
    let late = year_start(next_year + 5) + chrono::Duration::hours(3);
    assert_eq!(schedules.fire_due(late).await.unwrap(), 1);
    assert_eq!(schedules.fire_due(late).await.unwrap(), 0);
    turns_done(app, &session.id, 2).await;
    let caught_up = recorded(app, &created.id, |s| s.run_count == 2).await;
    assert_eq!(caught_up.next_run_at, Some(year_start(next_year + 6)));

    // A busy session: the firing is skipped and says why.
    fake.push(Reply::text("slow").delay(Duration::from_millis(600)));
    let running = c.run_agent(&session.id, "a long question").await.unwrap();
    let busy_at = year_start(next_year + 6) + chrono::Duration::seconds(1);
    assert_eq!(schedules.fire_due(busy_at).await.unwrap(), 1);
    let skipped = recorded(app, &created.id, |s| !s.last_error.is_empty()).await;
    assert!(skipped.last_error.contains("busy"), "{}", skipped.last_error);
    running.collect_turn().await.unwrap();

    // The session is deleted: the next firing disables the schedule.
    c.delete_session(&session.id).await.unwrap();
    assert_eq!(schedules.fire_due(year_start(next_year + 7)).await.unwrap(), 1);
    let disabled = recorded(app, &created.id, |s| !s.enabled).await;
    assert_eq!(disabled.next_run_at, None);
    assert!(disabled.last_error.contains("deleted"), "{}", disabled.last_error);

    c.delete_scheduled_run(&created.id).await.unwrap();
    api_err(c.get_scheduled_run(&created.id).await, 404, "NOT_FOUND");
    api_err(c.delete_scheduled_run(&created.id).await, 404, "NOT_FOUND");
}

/// Two servers on one PostgreSQL database run the same pass at once: the
/// slot fires once.
async fn each_firing_happens_once_across_servers(app: &TestApp, fake: &FakeProvider) {
    let c = &app.client;
    let (replica, _client, _dir) = app
        .replica_with(crate::harness::TestOptions {
            ingest_workers: 0,
            ..fake_options(fake)
        })
        .await;
    let session = c.create_session(&CreateSession::default()).await.unwrap();
    let created = c.create_scheduled_run(&yearly(&session.id)).await.unwrap();
    let at = created.next_run_at.unwrap() + chrono::Duration::seconds(1);
    fake.push(Reply::text("Once."));
    for _ in 0..5 {
        let (here, there) = tokio::join!(app.server.schedules.fire_due(at), replica.schedules.fire_due(at));
        assert!(here.unwrap() + there.unwrap() <= 1);
    }
    turns_done(app, &session.id, 1).await;
    let fired = recorded(app, &created.id, |s| s.run_count >= 1).await;
    assert_eq!(fired.run_count, 1);
    let asked = c
        .get_session(&session.id)
        .await
        .unwrap()
        .steps
        .iter()
        .filter(|s| s.step_type == "user_message")
        .count();
    assert_eq!(asked, 1);
    replica.shutdown().await.unwrap();
}

macro_rules! schedule_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run(crate::harness::Backend::Sqlite, |app, fake| Box::pin(super::$name(app, fake))).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::run(crate::harness::Backend::Postgres, |app, fake| Box::pin(super::$name(app, fake))).await;
            }
        }
    )*};
}

schedule_tests!(schedules_fire_headless_turns);

/// Several servers on one database: PostgreSQL only (no SQLite test that
/// would pass without running).
mod each_firing_happens_once_across_servers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::run(crate::harness::Backend::Postgres, |app, fake| {
            Box::pin(super::each_firing_happens_once_across_servers(app, fake))
        })
        .await;
    }
}

type TestFn = for<'a> fn(&'a TestApp, &'a FakeProvider) -> futures::future::BoxFuture<'a, ()>;

async fn run(backend: Backend, test: TestFn) {
    let fake = FakeProvider::start().await;
    let Some(app) = TestApp::start_with(backend, fake_options(&fake)).await else {
        return;
    };
    test(&app, &fake).await;
    app.stop().await;
}
