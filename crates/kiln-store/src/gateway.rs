//! `impl GatewayStore for SqlStore` (stored conversations) and
//! `impl UsageStore for SqlStore` (the LLM usage log).

use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};

use kiln_core::StoreResult;
use kiln_core::audit::NewAudit;
use kiln_core::gateway::chat::{Conversation, ConversationMessage};
use kiln_core::gateway::store::GatewayStore;
use kiln_core::ids::{ConversationId, ProjectId};
use kiln_core::page::Page;
use kiln_core::usage::{LlmCall, UsageStore};

use crate::connect::SqlStore;
use crate::db::{Db, db_err};
use crate::rows::{ConversationRow, MessageRow};

const CONVERSATION_COLUMNS: &str = "id, project_id, title, system_prompt, model, metadata, prompt_tokens, \
     completion_tokens, llm_calls, created_at, updated_at";

#[async_trait]
impl UsageStore for SqlStore {
    async fn record_llm_calls(&self, calls: &[LlmCall]) -> StoreResult<()> {
        write_tx!(self, |tx| {
            for call in calls {
                insert_call!(tx, call);
            }
            tx.commit().await.map_err(db_err)
        })
    }
}

#[async_trait]
impl GatewayStore for SqlStore {
    async fn create_conversation(&self, c: &Conversation, audit: &NewAudit) -> StoreResult<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO conversations (id, project_id, title, system_prompt, model, metadata, prompt_tokens, \
                 completion_tokens, llm_calls, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, $7, $8)",
            )
            .bind(c.id.as_str())
            .bind(c.project_id.as_str())
            .bind(&c.title)
            .bind(&c.system_prompt)
            .bind(&c.model)
            .bind(Json(&c.metadata))
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            commit_audited!(tx, audit)
        })
    }

    async fn list_conversations(&self, project_id: &ProjectId, page: Page) -> StoreResult<Vec<Conversation>> {
        let sql = format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE project_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows: Vec<ConversationRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await
            .map_err(db_err)?);
        Ok(rows.into_iter().map(Conversation::from).collect())
    }

    async fn get_conversation(
        &self,
        project_id: &ProjectId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        let sql =
            format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE project_id = $1 AND id = $2");
        let row: Option<ConversationRow> = read!(self, |pool| sqlx::query_as(AssertSqlSafe(sql))
            .bind(project_id.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?);
        Ok(row.map(Conversation::from))
    }

    async fn conversation_messages(
        &self,
        project_id: &ProjectId,
        id: &ConversationId,
    ) -> StoreResult<Vec<ConversationMessage>> {
        let rows: Vec<MessageRow> = read!(self, |pool| sqlx::query_as(
            "SELECT id, conversation_id, role, content, created_at FROM conversation_messages \
             WHERE project_id = $1 AND conversation_id = $2 ORDER BY created_at, id",
        )
        .bind(project_id.as_str())
        .bind(id.as_str())
        .fetch_all(pool)
        .await
        .map_err(db_err)?);
        rows.into_iter().map(ConversationMessage::try_from).collect()
    }

    async fn delete_conversation(
        &self,
        project_id: &ProjectId,
        id: &ConversationId,
        audit: &NewAudit,
    ) -> StoreResult<bool> {
        write_tx!(self, |tx| {
            sqlx::query("DELETE FROM conversation_messages WHERE project_id = $1 AND conversation_id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let done = sqlx::query("DELETE FROM conversations WHERE project_id = $1 AND id = $2")
                .bind(project_id.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            commit_audited!(tx, audit)?;
            Ok(true)
        })
    }

    async fn append_exchange(
        &self,
        project_id: &ProjectId,
        expected_messages: i64,
        user: &ConversationMessage,
        reply: &ConversationMessage,
        call: &LlmCall,
        audit: &NewAudit,
    ) -> StoreResult<Option<bool>> {
        // The UPDATE comes first: on PostgreSQL it locks the conversation
        // row, so a concurrent exchange waits and then sees our messages.
        write_tx!(self, |tx| {
            let updated = sqlx::query(
                "UPDATE conversations SET prompt_tokens = prompt_tokens + $1, \
                 completion_tokens = completion_tokens + $2, llm_calls = llm_calls + 1, updated_at = $3 \
                 WHERE project_id = $4 AND id = $5",
            )
            .bind(i64::from(call.usage.prompt_tokens))
            .bind(i64::from(call.usage.completion_tokens))
            .bind(reply.created_at)
            .bind(project_id.as_str())
            .bind(user.conversation_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if updated.rows_affected() == 0 {
                return Ok(None);
            }
            let count: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM conversation_messages WHERE project_id = $1 AND conversation_id = $2",
            )
            .bind(project_id.as_str())
            .bind(user.conversation_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .try_get("n")
            .map_err(db_err)?;
            if count != expected_messages {
                return Ok(Some(false));
            }
            for m in [user, reply] {
                sqlx::query(
                    "INSERT INTO conversation_messages (id, project_id, conversation_id, role, content, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(m.id.as_str())
                .bind(project_id.as_str())
                .bind(m.conversation_id.as_str())
                .bind(m.role.as_str())
                .bind(&m.content)
                .bind(m.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            insert_call!(tx, call);
            commit_audited!(tx, audit)?;
            Ok(Some(true))
        })
    }
}
