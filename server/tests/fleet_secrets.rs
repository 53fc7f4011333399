//! Instances of one deployment on the shared stack accept each other's
//! tokens and admin token without being given any: the first instance
//! creates the fleet's in PostgreSQL, the others read it.

use reqwest::StatusCode;
use serde_json::json;
use testkit::{real_stack, start, Backend, TestServer};

/// The fleet's stored setting, read behind the server's back.
async fn stored(namespace: &str, postgres_url: &str, name: &str) -> String {
    let (db, conn) = tokio_postgres::connect(postgres_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.query_one(
        &format!("SELECT value FROM \"{namespace}\".fleet_settings WHERE name = $1"),
        &[&name],
    )
    .await
    .unwrap()
    .get(0)
}

/// Enters a user on `issuer` and asks `checker` for that token's status.
async fn token_checked_elsewhere(issuer: &TestServer, checker: &TestServer) -> StatusCode {
    let entered = issuer.enter("fleet", "u1").await;
    let token = entered["token"].as_str().unwrap();
    checker.status(token).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_without_secrets_share_the_fleets() {
    let Some(stack) = real_stack() else { return };
    let (ns, pg) = (stack.namespace.clone(), stack.postgres_url.clone());
    let backend = Backend::Real(stack);
    // Empty values count as not configured.
    let unset = ["--token-secret", "", "--admin-token", ""];
    let mut a = start(&backend, &unset).await;
    let mut b = start(&backend, &unset).await;
    let admin = stored(&ns, &pg, "admin_token").await;
    assert_eq!(admin.len(), 32, "a fresh random token");
    a.admin_token = admin.clone();
    b.admin_token = admin;
    // Both take the fleet's admin token...
    a.event("fleet", 10, json!({})).await;
    assert_eq!(b.get("/api/v1/events/fleet").await.0, StatusCode::OK);
    let (status, _) = b
        .admin_post(
            "/api/v1/admin/events",
            json!({"eventId": "fleet2", "stock": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // ... and one token secret.
    assert_eq!(token_checked_elsewhere(&a, &b).await, StatusCode::OK);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// The control: with different secrets the same check is refused, so the
/// test above would fail if each instance drew its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_with_different_secrets_refuse_each_others_tokens() {
    let Some(stack) = real_stack() else { return };
    let backend = Backend::Real(stack);
    let a = start(&backend, &["--token-secret", "one"]).await;
    let b = start(&backend, &["--token-secret", "two"]).await;
    a.event("fleet", 10, json!({})).await;
    assert_eq!(
        token_checked_elsewhere(&a, &b).await,
        StatusCode::UNAUTHORIZED
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
