//! CONTRACT §2.15: the audit log, paged and exported (JSON or CSV).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use kiln_api::{AuditEntry, AuditLogPage, AuditLogQuery, ErrorBody};
use kiln_core::audit::AuditFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Authed};
use crate::{AppState, convert};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_log))
        .routes(routes!(export_audit_log))
}

fn parse_time(value: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::validation(
                    format!("`{field}` must be an RFC 3339 timestamp, got `{v}`"),
                    Some(field),
                )
            }),
    }
}

fn filter_of(q: &AuditLogQuery) -> Result<AuditFilter, ApiError> {
    Ok(AuditFilter {
        action: q.action.clone().filter(|v| !v.is_empty()),
        actor_user_id: q.actor_user_id.clone().filter(|v| !v.is_empty()),
        subject_type: q.subject_type.clone().filter(|v| !v.is_empty()),
        from: parse_time(q.from.as_deref(), "from")?,
        to: parse_time(q.to.as_deref(), "to")?,
    })
}

/// Newest first; `limit` defaults to 100 and is clamped to 500.
#[utoipa::path(get, path = "/api/sdk/audit-log", tag = "audit-log", params(AuditLogQuery),
    responses((status = 200, body = AuditLogPage), (status = 400, body = ErrorBody)))]
async fn list_audit_log(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(query): ApiQuery<AuditLogQuery>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let filter = filter_of(&query)?;
    let (entries, total, page) = state
        .control
        .list_audit(&ctx, &filter, query.limit, query.offset)
        .await?;
    Ok(Json(AuditLogPage {
        entries: entries.into_iter().map(convert::audit_entry).collect(),
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Every matching entry, as a bare JSON array or as CSV (RFC 4180).
#[utoipa::path(get, path = "/api/sdk/audit-log/export", tag = "audit-log", params(AuditLogQuery),
    responses(
        (status = 200, description = "JSON array of entries (format=json) or CSV (format=csv)", body = Vec<AuditEntry>),
        (status = 400, body = ErrorBody)))]
async fn export_audit_log(
    State(state): State<AppState>,
    Authed(ctx): Authed,
    ApiQuery(query): ApiQuery<AuditLogQuery>,
) -> Result<Response, ApiError> {
    let format = query
        .format
        .as_deref()
        .filter(|f| !f.is_empty())
        .unwrap_or("json");
    if format != "json" && format != "csv" {
        return Err(ApiError::validation(
            format!("`format` must be `json` or `csv`, got `{format}`"),
            Some("format"),
        ));
    }
    let filter = filter_of(&query)?;
    let csv = format == "csv";
    let (content_type, disposition) = if csv {
        (
            "text/csv; charset=utf-8",
            "attachment; filename=\"audit-log.csv\"",
        )
    } else {
        ("application/json", "attachment; filename=\"audit-log.json\"")
    };
    // Rows are read in keyset pages and written as they come, so an export
    // of any size holds one page in memory. The first page is read before
    // answering, so a failure there is an error response; a failure after
    // it aborts the body (the client sees a broken transfer, never a
    // shorter file that looks complete) and is logged.
    type Cursor = (chrono::DateTime<Utc>, kiln_core::ids::AuditId);
    let fetch = move |cursor: Option<Cursor>| {
        let (control, ctx, filter) = (state.control.clone(), ctx.clone(), filter.clone());
        async move {
            control
                .export_audit_page(&ctx, &filter, cursor.as_ref(), EXPORT_PAGE)
                .await
        }
    };
    let first = fetch(None).await?;
    let body = export_body(csv, first, fetch);
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Rows per page of a streamed export.
const EXPORT_PAGE: i64 = 500;

/// The export's body: `first`, then the pages `fetch` reads after each
/// page's last entry, as JSON array text or CSV; an `Err` item (which
/// aborts the response) if a later page cannot be read.
fn export_body<F, Fut>(
    csv: bool,
    first: Vec<kiln_core::audit::AuditEntry>,
    fetch: F,
) -> impl futures::Stream<Item = Result<String, std::io::Error>>
where
    F: Fn(Option<(chrono::DateTime<Utc>, kiln_core::ids::AuditId)>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<kiln_core::audit::AuditEntry>, kiln_core::Error>>,
{
    use futures::future::{Either, ready};
    let start = (Some(first), None, false, true);
    futures::stream::unfold(start, move |(pending, cursor, finished, first_page)| {
        let page = match (pending, finished) {
            (_, true) => None,
            (Some(page), false) => Some(Either::Left(ready(Ok(page)))),
            (None, false) => Some(Either::Right(fetch(cursor))),
        };
        async move {
            let page = match page?.await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed mid-way");
                    let error = std::io::Error::other(format!("the audit export failed mid-way: {e}"));
                    return Some((Err(error), (None, None, true, false)));
                }
            };
            let mut out = String::new();
            if first_page {
                out.push_str(if csv { CSV_HEADER } else { "[" });
            }
            let cursor = page.last().map(|last| (last.created_at, last.id.clone()));
            let last_page = (page.len() as i64) < EXPORT_PAGE;
            for (i, entry) in page.into_iter().enumerate() {
                let entry = convert::audit_entry(entry);
                if csv {
                    out.push_str(&csv_row(&entry));
                } else {
                    if !(first_page && i == 0) {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(&entry).unwrap_or_else(|_| "null".into()));
                }
            }
            if last_page && !csv {
                out.push(']');
            }
            Some((Ok(out), (None, cursor, last_page, false)))
        }
    })
}

/// RFC 4180 quoting: quote a cell holding a comma, quote or line break, and
/// double the quotes inside.
fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

const CSV_HEADER: &str = "id,project_id,actor_user_id,actor_api_key_id,action,subject_type,subject_id,\
agent_version_id,session_id,metadata,created_at\r\n";

fn csv_row(e: &AuditEntry) -> String {
    let metadata = serde_json::Value::Object(e.metadata.clone()).to_string();
    let created_at = e.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let cells = [
        e.id.as_str(),
        e.project_id.as_str(),
        e.actor_user_id.as_deref().unwrap_or(""),
        e.actor_api_key_id.as_deref().unwrap_or(""),
        e.action.as_str(),
        e.subject_type.as_str(),
        e.subject_id.as_str(),
        e.agent_version_id.as_deref().unwrap_or(""),
        e.session_id.as_deref().unwrap_or(""),
        metadata.as_str(),
        created_at.as_str(),
    ];
    let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    format!("{}\r\n", row.join(","))
}

#[cfg(test)]
mod tests {
    use super::{EXPORT_PAGE, csv_cell, export_body};
    use futures::StreamExt;
    use kiln_core::audit::AuditEntry;
    use kiln_core::ids::{AuditId, ProjectId};

    fn entries(n: usize) -> Vec<AuditEntry> {
        (0..n)
            .map(|i| AuditEntry {
                id: AuditId::generate(),
                project_id: ProjectId::from_string("p"),
                actor_user_id: None,
                actor_api_key_id: None,
                action: format!("index.create.{i}"),
                subject_type: "index".into(),
                subject_id: format!("i{i}"),
                agent_version_id: None,
                session_id: None,
                metadata: Default::default(),
                created_at: chrono::Utc::now(),
            })
            .collect()
    }

    /// An export whose second page fails ends in an error (which aborts the
    /// response), never in a shorter body that looks complete.
    #[tokio::test]
    async fn an_export_failing_mid_way_ends_in_an_error() {
        let full = EXPORT_PAGE as usize;
        let failing = |_| async {
            Err(kiln_core::Error::Store(kiln_core::StoreError::Database(
                "the database went away".into(),
            )))
        };
        let items: Vec<_> = export_body(false, entries(full), failing).collect().await;
        assert_eq!(items.len(), 2);
        let first = items[0].as_ref().unwrap();
        assert!(first.starts_with('[') && !first.ends_with(']'));
        assert!(
            items[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("failed mid-way")
        );

        // A complete export is one valid array (pages joined), or CSV.
        let pages = std::sync::Mutex::new(vec![entries(3)]);
        let rest = |_| {
            let page = pages.lock().unwrap().pop().unwrap_or_default();
            async move { Ok(page) }
        };
        let body: Vec<String> = export_body(false, entries(full), rest)
            .map(|item| item.unwrap())
            .collect()
            .await;
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&body.concat()).unwrap();
        assert_eq!(parsed.len(), full + 3);
        let csv: Vec<String> = export_body(true, entries(2), |_| async { Ok(Vec::new()) })
            .map(|item| item.unwrap())
            .collect()
            .await;
        assert_eq!(csv.concat().lines().count(), 3);
    }

    #[test]
    fn csv_cells_quote_per_rfc_4180() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell(r#"{"a":"b,c"}"#), r#""{""a"":""b,c""}""#);
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }
}
