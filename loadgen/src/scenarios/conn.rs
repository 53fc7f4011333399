//! A goose user's own HTTP/1 connection to its host, through hyper (what
//! oha is built on). reqwest, the client goose holds, costs some 30 µs more
//! per request at the P50 (reports/loadgen-vs-oha.md), which a
//! sub-millisecond answer shows. Opened on first use, and again when the
//! server has closed it (an idle timeout, a restart).

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take, as goose's client allows by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Conn {
    /// `host:port`, for connecting and the `Host` header.
    authority: String,
    /// The host URL's path, without its trailing `/`, put before every
    /// request's path (as goose joins them).
    base_path: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection (opened on first use) to `base_url`: plain HTTP only.
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let uri: Uri = base_url
            .parse()
            .with_context(|| format!("host {base_url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("host {base_url:?}: loadgen speaks plain http:// only");
        }
        let Some(authority) = uri.authority() else {
            bail!("host {base_url:?} names no host");
        };
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{}:80", authority.host()),
        };
        Ok(Conn {
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            sender: None,
        })
    }

    /// Sends one request; its status and whole body. On an error the
    /// connection is dropped, so the next request opens a fresh one.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        json: Option<Vec<u8>>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(HOST, &self.authority);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if json.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(json.unwrap_or_default())))?;
        let sender = self.ready().await?;
        let outcome = async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        }
        .await;
        if outcome.is_err() {
            self.sender = None;
        }
        outcome
    }

    /// The open connection, ready for a request: the one kept when it is
    /// still open, else a new one.
    async fn ready(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let open = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !open {
            let stream = TcpStream::connect(&self.authority)
                .await
                .with_context(|| format!("connecting to {}", self.authority))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            // The connection's I/O runs beside the user's requests; it ends
            // when the sender is dropped or the server closes.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("opened above"))
    }
}

#[cfg(test)]
mod tests {
    use super::Conn;

    #[test]
    fn hosts_are_plain_http_urls_with_an_optional_base_path() {
        let c = Conn::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (c.authority.as_str(), c.base_path.as_str()),
            ("127.0.0.1:8080", "")
        );
        let c = Conn::new("http://svc/prefix/").unwrap();
        assert_eq!(
            (c.authority.as_str(), c.base_path.as_str()),
            ("svc:80", "/prefix")
        );
        assert!(Conn::new("https://127.0.0.1:8443").is_err());
        assert!(Conn::new("not a url").is_err());
    }
}
