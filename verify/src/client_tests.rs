//! Tests of the verifier's HTTP client.

use super::*;

/// A frozen instance: the kernel accepts the connection, nothing
/// answers. Opening a stream must give up within the request timeout.
#[tokio::test]
async fn a_stream_whose_head_never_comes_gives_up_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = Client::new(&[base], "t", Duration::from_millis(300), History::new());
    let started = std::time::Instant::now();
    let opened = client.stream("p0", "token", None).await;
    assert!(
        matches!(&opened, Err(Reply::Transport(why)) if why == "timeout"),
        "{:?}",
        opened.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}
