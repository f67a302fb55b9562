//! SQLite connections the store holds between uses, instead of handing each
//! back to sqlx's pool after every query or transaction. sqlx pings a
//! connection on its way back to its pool, and a SQLite ping is a round
//! trip to the connection's worker thread that costs about what the query
//! did: an agent turn uses a connection about a dozen times, so those pings
//! were a third of its hand-offs to SQLite. A held connection goes back to
//! sqlx's pool (pinged there, and replaced if its worker died) once it has
//! been held for [`RECYCLE_AFTER`].

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection is held before sqlx's pool checks it again.
const RECYCLE_AFTER: Duration = Duration::from_secs(60);

/// A SQLite pool whose connections are held between uses.
#[derive(Clone)]
pub(crate) struct HeldPool(Arc<Held>);

struct Held {
    pool: SqlitePool,
    /// The runtime the pool was opened on. A `PoolConnection` dropped
    /// spawns its way back to sqlx's pool, so connections are dropped
    /// inside it: the last holder of a store can be a sandbox thread.
    runtime: tokio::runtime::Handle,
    idle: Mutex<Idle>,
    /// One per connection the pool may open: a use waits for one, so held
    /// connections never starve a use that would wait on the pool.
    permits: Arc<Semaphore>,
}

/// Connections not in use, with when each was taken from the pool.
struct Idle {
    connections: Vec<(PoolConnection<Sqlite>, Instant)>,
    /// After `close`, a connection dropped goes back to the closing pool.
    closed: bool,
}

/// A connection in use; back among the held ones when dropped.
pub(crate) struct HeldConnection {
    conn: Option<PoolConnection<Sqlite>>,
    taken: Instant,
    from: Arc<Held>,
    _permit: OwnedSemaphorePermit,
}

impl HeldPool {
    pub(crate) fn new(pool: SqlitePool) -> HeldPool {
        let size = pool.options().get_max_connections() as usize;
        HeldPool(Arc::new(Held {
            pool,
            runtime: tokio::runtime::Handle::current(),
            idle: Mutex::new(Idle {
                connections: Vec::with_capacity(size),
                closed: false,
            }),
            permits: Arc::new(Semaphore::new(size)),
        }))
    }

    /// sqlx's pool underneath (migrations, closing).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.0.pool
    }

    pub(crate) async fn acquire(&self) -> Result<HeldConnection, sqlx::Error> {
        let permit = Arc::clone(&self.0.permits)
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let held = self.0.idle().connections.pop();
        let (conn, taken) = match held {
            Some((conn, taken)) if taken.elapsed() < RECYCLE_AFTER => (conn, taken),
            stale => {
                // Back to sqlx's pool, which pings it; then take one anew.
                drop(stale);
                (self.0.pool.acquire().await?, Instant::now())
            }
        };
        Ok(HeldConnection {
            conn: Some(conn),
            taken,
            from: Arc::clone(&self.0),
            _permit: permit,
        })
    }

    /// Closes the pool once every connection is back (as sqlx's `close`).
    pub(crate) async fn close(&self) {
        self.0.permits.close();
        let held = {
            let mut idle = self.0.idle();
            idle.closed = true;
            std::mem::take(&mut idle.connections)
        };
        drop(held);
        self.0.pool.close().await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let connections = std::mem::take(&mut self.idle().connections);
        let _inside = self.runtime.enter();
        drop(connections);
    }
}

impl Held {
    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Deref for HeldConnection {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("a connection is held until dropped")
    }
}

impl DerefMut for HeldConnection {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("a connection is held until dropped")
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.from.idle();
            if idle.closed {
                drop(idle);
                let _inside = self.from.runtime.enter();
                drop(conn);
            } else {
                idle.connections.push((conn, self.taken));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one_connection() -> HeldPool {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        HeldPool::new(pool)
    }

    #[tokio::test]
    async fn a_held_connection_is_reused_and_a_second_use_waits_for_it() {
        let held = one_connection().await;
        let mut first = held.acquire().await.unwrap();
        // State that lives on the connection: the same one comes back.
        sqlx::query("CREATE TEMP TABLE t (n INTEGER)")
            .execute(&mut *first)
            .await
            .unwrap();
        let waiting = tokio::spawn({
            let held = held.clone();
            async move {
                let mut second = held.acquire().await.unwrap();
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
                    .fetch_one(&mut *second)
                    .await
                    .unwrap()
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a second use got a connection the pool does not have"
        );
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *first)
            .await
            .unwrap();
        drop(first);
        assert_eq!(waiting.await.unwrap(), 1);
        // Nothing went back to sqlx's pool meanwhile.
        assert_eq!(held.pool().num_idle(), 0);
    }

    #[tokio::test]
    async fn the_last_holder_may_be_a_thread_outside_the_runtime() {
        let held = one_connection().await;
        drop(held.acquire().await.unwrap());
        // A connection is held idle; the pool goes away on a plain thread.
        std::thread::spawn(move || drop(held))
            .join()
            .expect("dropped without a runtime");
    }

    #[tokio::test]
    async fn close_ends_once_a_connection_in_use_comes_back() {
        let held = one_connection().await;
        let in_use = held.acquire().await.unwrap();
        let closing = tokio::spawn({
            let held = held.clone();
            async move { held.close().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            held.acquire().await.is_err(),
            "a closed pool handed out a connection"
        );
        drop(in_use);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("close waits only for connections in use")
            .unwrap();
        assert!(held.pool().is_closed());
    }
}
