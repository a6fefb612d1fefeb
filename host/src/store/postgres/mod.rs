//! The PostgreSQL store: the state that many `boram serve` replicas share
//! (`[store] url = "postgres://…"` or `BORAM_DATABASE_URL`).
//!
//! It holds sessions with their transcripts, the queue of agent runs with
//! their events ([`runs`]), schedules ([`schedules`]), memory notes
//! ([`notes`]) and remembered approvals ([`approvals`]); each write of a run's journal is
//! fenced by the run's lease ([`crate::store::appender`]), so a replica that lost a run
//! can never write into it again. The driver is `tokio-postgres` with the
//! `deadpool-postgres` pool; the schema is the SQL files under
//! `host/migrations/postgres`, applied once per database ([`migrations`]).

pub mod approvals;
pub mod logs;
pub mod migrations;
pub mod notes;
pub mod runs;
pub mod schedules;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Timeouts};
use std::time::Duration;

/// How long a request waits for a connection before the store counts as
/// unreachable (the service answers 503 instead of hanging).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections per replica.
const POOL_SIZE: usize = 16;

pub use crate::store::StoreError;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // An error with an SQLSTATE came from the server; anything else
        // (closed connection, I/O, timeout) means it could not be reached.
        match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                StoreError::Conflict(db.message().to_string())
            }
            Some(db) => StoreError::Refused(format!("{} ({})", db.message(), db.code().code())),
            None => StoreError::Unavailable(format!("{e}; check that PostgreSQL is running and [store] url")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(format!("{other}; check that PostgreSQL is running and [store] url")),
        }
    }
}

/// A pool of connections to one database, its schema up to date.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (a libpq URL or key=value string) and applies the
    /// migrations this build has that the database lacks.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Refused(format!("the store URL is not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("boram");
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(CONNECT_TIMEOUT),
                create: Some(CONNECT_TIMEOUT),
                recycle: Some(CONNECT_TIMEOUT),
            })
            .build()
            .map_err(|e| StoreError::Refused(format!("cannot set up the connection pool: {e}")))?;
        let store = Self { pool };
        migrations::apply(&store).await?;
        Ok(store)
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }
}

/// One user's part of the shared store (cluster mode): where their notes
/// and remembered approvals live and where copies of their usage lines go.
#[derive(Clone)]
pub struct SharedUser {
    pub store: PgStore,
    pub log: logs::SharedLog,
    pub user: String,
}

impl SharedUser {
    pub fn notes(&self) -> crate::memory::Notes {
        crate::memory::Notes::Shared {
            store: self.store.clone(),
            user: self.user.clone(),
        }
    }

    pub fn approvals(&self) -> crate::store::approvals::ApprovalBook {
        crate::store::approvals::ApprovalBook::Shared {
            store: self.store.clone(),
            user: self.user.clone(),
        }
    }

    pub fn usage_copy(&self) -> logs::LineCopy {
        self.log.copy_as(logs::LogKind::Usage, &self.user)
    }
}

/// The store URL from `[store] url` or `BORAM_DATABASE_URL` (the
/// environment wins, so a secret URL need not sit in the config file).
pub fn configured_url(config: Option<&str>) -> Option<String> {
    std::env::var("BORAM_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| config.map(str::to_string))
}
