//! PostgreSQL, the system of record: schema migrations (idempotent, applied
//! at start under an advisory lock), the persistence step (reservations and
//! the consumer's offsets in one transaction), and partition leases.

use std::collections::BTreeMap;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::error::StackError;
use super::messages::ReservedEvent;

/// Migrations, in order. Each runs once per namespace, in a transaction.
const MIGRATIONS: &[&str] = &[
    // 1: events, the stock ledger, reservations, consumer offsets, instances.
    r#"
    CREATE TABLE events (
        event_id text PRIMARY KEY,
        name text,
        stock bigint NOT NULL CHECK (stock >= 0),
        per_user_limit int NOT NULL CHECK (per_user_limit >= 1),
        active_capacity int NOT NULL CHECK (active_capacity >= 1),
        active_ttl_seconds int NOT NULL CHECK (active_ttl_seconds >= 1),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    -- The last line of defence: persisted sales can never exceed the stock.
    CREATE TABLE event_stock (
        event_id text PRIMARY KEY REFERENCES events,
        remaining bigint NOT NULL CHECK (remaining >= 0)
    );
    CREATE TABLE reservations (
        reservation_id text PRIMARY KEY,
        event_id text NOT NULL REFERENCES events,
        user_id text NOT NULL,
        quantity int NOT NULL CHECK (quantity >= 1),
        created_at timestamptz NOT NULL,
        confirmed_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX reservations_event ON reservations (event_id);
    CREATE TABLE consumer_offsets (
        consumer text NOT NULL,
        topic text NOT NULL,
        partition int NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (consumer, topic, partition)
    );
    CREATE TABLE instances (
        consumer text NOT NULL,
        instance_id text NOT NULL,
        seen_at timestamptz NOT NULL,
        PRIMARY KEY (consumer, instance_id)
    );
    "#,
    // 2: the concert seat map: concerts, schedules, seats,
    // holds (seat_reservations), points and payments.
    r#"
    CREATE TABLE concerts (
        concert_id text PRIMARY KEY,
        name text,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE schedules (
        concert_id text NOT NULL REFERENCES concerts,
        schedule_id text NOT NULL,
        date date NOT NULL,
        seat_count int NOT NULL CHECK (seat_count >= 1),
        price bigint NOT NULL CHECK (price >= 0),
        PRIMARY KEY (concert_id, schedule_id)
    );
    CREATE TABLE seats (
        concert_id text NOT NULL,
        schedule_id text NOT NULL,
        seat_number int NOT NULL CHECK (seat_number >= 1),
        status text NOT NULL DEFAULT 'AVAILABLE'
            CHECK (status IN ('AVAILABLE', 'HELD', 'CONFIRMED')),
        reservation_id text,
        hold_expires_at timestamptz,
        PRIMARY KEY (concert_id, schedule_id, seat_number),
        FOREIGN KEY (concert_id, schedule_id) REFERENCES schedules
    );
    CREATE TABLE seat_reservations (
        reservation_id text PRIMARY KEY,
        concert_id text NOT NULL,
        schedule_id text NOT NULL,
        seat_number int NOT NULL,
        user_id text NOT NULL,
        price bigint NOT NULL CHECK (price >= 0),
        status text NOT NULL CHECK (status IN ('HELD', 'CONFIRMED', 'EXPIRED')),
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        FOREIGN KEY (concert_id, schedule_id, seat_number) REFERENCES seats
    );
    -- The last line of defence: one active (HELD or CONFIRMED) hold per seat.
    CREATE UNIQUE INDEX seat_reservations_one_active
        ON seat_reservations (concert_id, schedule_id, seat_number)
        WHERE status IN ('HELD', 'CONFIRMED');
    CREATE INDEX seat_reservations_lapsing ON seat_reservations (expires_at)
        WHERE status = 'HELD';
    CREATE TABLE points (
        user_id text PRIMARY KEY,
        balance bigint NOT NULL CHECK (balance >= 0) CHECK (balance <= 1000000000000)
    );
    CREATE TABLE payments (
        payment_id text PRIMARY KEY,
        reservation_id text NOT NULL UNIQUE REFERENCES seat_reservations,
        user_id text NOT NULL,
        amount bigint NOT NULL CHECK (amount >= 0),
        balance_after bigint NOT NULL CHECK (balance_after >= 0),
        idempotency_key text UNIQUE,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    "#,
    // 3: settings every instance of a deployment shares, created once by
    // the first instance that needs them (the token secret, the admin token).
    r#"
    CREATE TABLE fleet_settings (
        name text PRIMARY KEY,
        value text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    "#,
    // 4: the seat-event outbox (see `outbox`): one row per seat-map event,
    // written with the change it reports, marked sent once on the topic.
    r#"
    CREATE TABLE seat_outbox (
        event_id text PRIMARY KEY,
        topic text NOT NULL,
        concert_id text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        sent_at timestamptz
    );
    -- The relay's scan: only unsent rows, oldest first.
    CREATE INDEX seat_outbox_unsent ON seat_outbox (created_at) WHERE sent_at IS NULL;
    "#,
];

/// A pool whose connections use `schema` (created if missing) as search_path.
pub fn connect(url: &str, schema: &str, size: usize) -> Result<Pool, StackError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StackError::PoolConfig(format!("bad --postgres-url: {e}")))?;
    config.options(format!("-c search_path={schema}"));
    config.connect_timeout(std::time::Duration::from_secs(3));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(3)))
        .create_timeout(Some(std::time::Duration::from_secs(3)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StackError::PoolConfig(e.to_string()))
}

/// Creates the schema and applies the migrations not yet applied. Safe to
/// run from any number of instances at once.
pub async fn migrate(pool: &Pool, schema: &str) -> Result<(), StackError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ticketbench:migrate:' || $1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".schema_migrations (
             version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
    ))
    .await?;
    let applied: i32 = tx
        .query_one(
            &format!("SELECT COALESCE(max(version), 0) FROM \"{schema}\".schema_migrations"),
            &[],
        )
        .await?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(&format!("SET LOCAL search_path = \"{schema}\"; {sql}"))
            .await
            .map_err(|source| StackError::Migration {
                version: i + 1,
                source,
            })?;
        tx.execute(
            &format!("INSERT INTO \"{schema}\".schema_migrations (version) VALUES ($1)"),
            &[&(i as i32 + 1)],
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

/// Writes a batch of reservations and the consumer's next offsets in one
/// transaction. Reservations already present are skipped (keyed by id), so
/// a redelivered batch changes nothing: exactly once in effect. Returns the
/// ids newly written.
pub async fn persist(
    pool: &Pool,
    consumer: &str,
    topic: &str,
    batch: &[ReservedEvent],
    next_offsets: &BTreeMap<i32, i64>,
) -> Result<Vec<String>, StackError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let ids: Vec<&str> = batch.iter().map(|r| r.reservation_id.as_str()).collect();
    let events: Vec<&str> = batch.iter().map(|r| r.event_id.as_str()).collect();
    let users: Vec<&str> = batch.iter().map(|r| r.user_id.as_str()).collect();
    let quantities: Vec<i32> = batch.iter().map(|r| r.quantity as i32).collect();
    let created: Vec<i64> = batch.iter().map(|r| r.created_ms).collect();
    let inserted = tx
        .query(
            "INSERT INTO reservations (reservation_id, event_id, user_id, quantity, created_at)
             SELECT id, ev, u, q, to_timestamp(ms / 1000.0)
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[]) AS t(id, ev, u, q, ms)
             ON CONFLICT (reservation_id) DO NOTHING
             RETURNING reservation_id, event_id, quantity",
            &[&ids, &events, &users, &quantities, &created],
        )
        .await?;
    let mut per_event: BTreeMap<String, i64> = BTreeMap::new();
    let mut new_ids = Vec::with_capacity(inserted.len());
    for row in &inserted {
        new_ids.push(row.get::<_, String>(0));
        *per_event.entry(row.get(1)).or_default() += i64::from(row.get::<_, i32>(2));
    }
    for (event, quantity) in &per_event {
        // CHECK (remaining >= 0) refuses the whole batch if Redis ever
        // accepted more than the stock.
        tx.execute(
            "UPDATE event_stock SET remaining = remaining - $2 WHERE event_id = $1",
            &[event, quantity],
        )
        .await?;
    }
    store_offsets(&tx, consumer, topic, next_offsets).await?;
    tx.commit().await?;
    Ok(new_ids)
}

pub async fn store_offsets(
    client: &impl deadpool_postgres::GenericClient,
    consumer: &str,
    topic: &str,
    next_offsets: &BTreeMap<i32, i64>,
) -> Result<(), tokio_postgres::Error> {
    for (partition, next) in next_offsets {
        client
            .execute(
                "INSERT INTO consumer_offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (consumer, topic, partition)
                 DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset)",
                &[&consumer, &topic, partition, next],
            )
            .await?;
    }
    Ok(())
}

/// Forgets a partition's stored offset (its log was recreated).
pub async fn reset_offset(
    pool: &Pool,
    consumer: &str,
    topic: &str,
    partition: i32,
) -> Result<(), StackError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND partition = $3",
            &[&consumer, &topic, &partition],
        )
        .await?;
    Ok(())
}

pub async fn load_offsets(
    pool: &Pool,
    consumer: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, StackError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2",
            &[&consumer, &topic],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Reservation ids among `ids` that PostgreSQL holds.
pub async fn present(pool: &Pool, ids: &[String]) -> Result<Vec<String>, StackError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT reservation_id FROM reservations WHERE reservation_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Records that `instance` is alive and returns how many instances of
/// `consumer` are.
pub async fn heartbeat(pool: &Pool, consumer: &str, instance: &str) -> Result<i64, StackError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO instances (consumer, instance_id, seen_at) VALUES ($1, $2, clock_timestamp())
             ON CONFLICT (consumer, instance_id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
            &[&consumer, &instance],
        )
        .await?;
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM instances WHERE consumer = $1 AND seen_at > clock_timestamp() - interval '5 seconds'",
            &[&consumer],
        )
        .await?
        .get(0);
    Ok(live.max(1))
}

pub async fn leave(pool: &Pool, consumer: &str, instance: &str) {
    if let Ok(client) = pool.get().await {
        let _ = client
            .execute(
                "DELETE FROM instances WHERE consumer = $1 AND instance_id = $2",
                &[&consumer, &instance],
            )
            .await;
    }
}

/// The deployment's shared setting `name`: `candidate` if this call created
/// it (true), else the value the first instance stored (false). One
/// INSERT ... ON CONFLICT DO NOTHING decides, so concurrent first starts
/// agree.
pub async fn fleet_setting(
    pool: &Pool,
    name: &str,
    candidate: &str,
) -> Result<(String, bool), StackError> {
    let client = pool.get().await?;
    let created = client
        .execute(
            "INSERT INTO fleet_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &candidate],
        )
        .await?;
    if created == 1 {
        return Ok((candidate.to_owned(), true));
    }
    let row = client
        .query_one("SELECT value FROM fleet_settings WHERE name = $1", &[&name])
        .await?;
    Ok((row.get(0), false))
}
