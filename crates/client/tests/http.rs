//! The HTTP client against a one-shot server on loopback: answers are typed, errors carry the
//! status and the stable code, a dead address and a garbled answer are clear client errors.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use x0t_client::{ApiClient, ClientError};

/// Serves one request with `status` and `body`; answers the base URL and what it was sent.
async fn serve_once(
    status: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = vec![0u8; 8192];
        let n = socket.read(&mut request).await.unwrap();
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    (base, task)
}

#[tokio::test]
async fn errors_carry_the_status_and_the_stable_code() {
    let (base, server) = serve_once(
        "409 Conflict",
        r#"{"error":{"code":"version_mismatch","message":"mesh m is at version 2, not 1"}}"#,
    )
    .await;
    let client = ApiClient::new(&base, Some("x0tadm_k_s\n".into())).unwrap();
    let err = client.mesh("m", false).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(
        err,
        ClientError::Api {
            status: 409,
            message: "mesh m is at version 2, not 1 (version_mismatch)".into()
        }
    );
    let request = server.await.unwrap();
    assert!(request.starts_with("GET /api/v1/meshes/m"), "{request}");
    assert!(
        request.contains("authorization: Bearer x0tadm_k_s\r\n"),
        "the key is sent trimmed: {request}"
    );
}

#[tokio::test]
async fn a_garbled_answer_and_a_dead_address_are_client_errors() {
    let (base, server) = serve_once("200 OK", r#"{"not":"a mesh"}"#).await;
    let err = ApiClient::new(&base, None)
        .unwrap()
        .mesh("m", true)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Client(m) if m.starts_with("bad answer")),
        "{err}"
    );
    assert!(server.await.unwrap().contains("stale=true"));
    // Nothing listens there any more.
    let err = ApiClient::new(&base, None)
        .unwrap()
        .cluster()
        .await
        .unwrap_err();
    assert_eq!(err.status(), None, "{err}");
}
