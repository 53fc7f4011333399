//! The server under test: any base URL, or by default the reference server
//! started in this process on the embedded backend.

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::RunError;

pub struct Target {
    /// The first (or only) base URL: set-up and checker reads go here.
    pub base: String,
    /// Every base URL; buyers are spread over them.
    pub bases: Vec<String>,
    pub admin_token: String,
    /// How the verdict names the target.
    pub label: String,
    embedded: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

impl Target {
    /// An external server at `base`.
    pub fn external(base: &str, admin_token: Option<&str>) -> Result<Self, RunError> {
        Self::external_many(&[base.to_owned()], admin_token)
    }

    /// External instances of one deployment (they share their state).
    pub fn external_many(bases: &[String], admin_token: Option<&str>) -> Result<Self, RunError> {
        let admin_token = admin_token.ok_or_else(|| {
            RunError::Usage("--admin-token (or ADMIN_TOKEN) is required with --target".into())
        })?;
        let bases: Vec<String> = bases
            .iter()
            .map(|b| b.trim_end_matches('/').to_owned())
            .collect();
        let first = bases
            .first()
            .cloned()
            .ok_or_else(|| RunError::Usage("--target is empty".into()))?;
        Ok(Target {
            base: first,
            label: bases.join(", "),
            bases,
            admin_token: admin_token.to_owned(),
            embedded: None,
        })
    }

    /// The reference server in process, on 127.0.0.1 and a free port, with
    /// extra `ticket-server` flags (tests pass the unsafe modes here);
    /// `--hold-ttl` defaults to check 6's default TTL, the request rate
    /// limits to off. `--admin-token` and `--token-secret` among the flags are used as
    /// given (instances sharing a stack need the same), else made up.
    pub async fn embedded(extra_flags: &[&str]) -> Result<Self, RunError> {
        let given = |flag: &str| {
            extra_flags
                .iter()
                .position(|f| *f == flag)
                .and_then(|i| extra_flags.get(i + 1))
                .map(|v| (*v).to_owned())
        };
        let random = || format!("{:032x}", rand::random::<u128>());
        let admin_token = given("--admin-token").unwrap_or_else(random);
        let secret = given("--token-secret").unwrap_or_else(random);
        let mut args = vec!["ticket-server", "--listen", "127.0.0.1:0"];
        if given("--admin-token").is_none() {
            args.extend(["--admin-token", &admin_token]);
        }
        if given("--token-secret").is_none() {
            args.extend(["--token-secret", &secret]);
        }
        // Check 6 waits for holds to lapse: unless told, the embedded server
        // uses the TTL the check expects by default.
        let ttl = format!("{}ms", crate::DEFAULT_HOLD_TTL_MS);
        if !extra_flags.contains(&"--hold-ttl") {
            args.extend(["--hold-ttl", &ttl]);
        }
        // The checks drive hundreds of buyers from 127.0.0.1: the server's
        // request rate limits (on by default) are off unless told.
        for limit in ["--rate-limit-rps", "--user-rate-limit-rps"] {
            if given(limit).is_none() {
                args.extend([limit, "0"]);
            }
        }
        args.extend_from_slice(extra_flags);
        let config = ticket_server::Config::try_parse_from(args)
            .map_err(|e| RunError::Usage(format!("embedded server flags: {e}")))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| RunError::Other(format!("cannot bind 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| RunError::Other(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(ticket_server::run(config, listener, async {
            let _ = stopped.await;
        }));
        let mut label = format!("in-process reference server (embedded backend) at http://{addr}");
        if !extra_flags.is_empty() {
            label.push_str(&format!(" with {}", extra_flags.join(" ")));
        }
        Ok(Target {
            base: format!("http://{addr}"),
            bases: vec![format!("http://{addr}")],
            admin_token,
            label,
            embedded: Some((stop, handle)),
        })
    }

    /// Stops an embedded server (no-op for an external one).
    pub async fn stop(self) {
        if let Some((stop, handle)) = self.embedded {
            let _ = stop.send(());
            let _ = handle.await;
        }
    }
}
