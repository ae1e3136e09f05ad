//! A fresh PostgreSQL database per test, on the machine's server (`FULFILLMENT_TEST_POSTGRES`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`). `scripts/test.sh` starts the server
//! when it is down and drops the databases of earlier runs.

use fulfillment_read_model::PostgresOptions;
use sqlx::Connection;
use std::time::Duration;

/// Administrative connection URL (a database the test user may `CREATE DATABASE` from).
pub fn admin_url() -> String {
    std::env::var("FULFILLMENT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database named `fulfillment_test_<random>` and returns options for it.
pub async fn fresh_database() -> PostgresOptions {
    let admin = admin_url();
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test (scripts/test.sh starts it): {e}"));
    let name = format!("fulfillment_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await.expect("create database");
    connection.close().await.ok();
    let (base, _) = admin.rsplit_once('/').expect("admin url names a database");
    PostgresOptions { url: format!("{base}/{name}"), max_connections: 5, acquire_timeout: Duration::from_secs(10) }
}
