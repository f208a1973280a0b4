//! A small PostgreSQL connection pool. Each connection has its `search_path` pinned to the
//! store's schema and keeps its own prepared statements, so a commit pays for execution only.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::pg_err;
use super::unit::UnitStatements;
use crate::error::StoreError;

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) stmts: Stmts,
}

/// Prepared statements by SQL text. Preparing costs a round trip; a unit of work runs the same
/// handful of statements every time.
#[derive(Default)]
pub(crate) struct Stmts(HashMap<&'static str, Statement>, Option<UnitStatements>);

impl Stmts {
    /// The unit-of-work statements, prepared on first use.
    pub(crate) async fn unit(&mut self, client: &Client) -> Result<UnitStatements, StoreError> {
        if let Some(unit) = &self.1 {
            return Ok(unit.clone());
        }
        let unit = UnitStatements::prepare(client).await?;
        self.1 = Some(unit.clone());
        Ok(unit)
    }

    pub(crate) async fn get(
        &mut self,
        client: &impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, StoreError> {
        if let Some(stmt) = self.0.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = client
            .prepare(sql)
            .await
            .map_err(|e| pg_err("prepare statement", e))?;
        self.0.insert(sql, stmt.clone());
        Ok(stmt)
    }
}

pub(crate) struct Pool {
    config: Config,
    schema: String,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    pub(crate) fn new(config: Config, schema: String, size: usize) -> Arc<Self> {
        Arc::new(Self {
            config,
            schema,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
        })
    }

    /// A connection, waiting for a free slot when `size` are in use.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<PooledConn, StoreError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::unavailable("postgres: pool closed"))?;
        loop {
            let idle = self.idle.lock().pop();
            match idle {
                // A connection the server closed while idle is dropped, not handed out.
                Some(conn) if conn.client.is_closed() => continue,
                Some(conn) => {
                    return Ok(PooledConn {
                        conn: Some(conn),
                        pool: Arc::clone(self),
                        _permit: permit,
                    });
                }
                None => break,
            }
        }
        let conn = self.connect().await?;
        Ok(PooledConn {
            conn: Some(conn),
            pool: Arc::clone(self),
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| pg_err("connect", e))?;
        tokio::spawn(async move {
            // The connection future ends when the client is dropped or the server goes away;
            // the client then reports `is_closed` and the pool discards it.
            let _ = connection.await;
        });
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.schema))
            .await
            .map_err(|e| pg_err("set search_path", e))?;
        Ok(Conn {
            client,
            stmts: Stmts::default(),
        })
    }
}

/// A connection borrowed from the pool; returned on drop unless it broke.
pub(crate) struct PooledConn {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Deref for PooledConn {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Only `drop` takes the connection out.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("connection taken before drop"))
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("connection taken before drop"))
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
        {
            self.pool.idle.lock().push(conn);
        }
    }
}
