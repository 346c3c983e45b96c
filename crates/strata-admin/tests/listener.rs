//! `strata_admin::serve` against raw TCP clients: the connection limit, the idle, header and
//! body timeouts, the body limit, and a graceful stop. Short timeouts keep the tests quick;
//! every wait for the server to act is bounded by [`GUARD`], which only a broken server hits.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use strata::config::Config;
use strata::Store;
use strata_admin::Admin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longer than any timeout the tests configure, by far.
const GUARD: Duration = Duration::from_secs(10);

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
}

/// `strata_admin::serve` of an open admin API (no token) with `[admin]` set to `admin`.
async fn start(admin: &str) -> Running {
    let toml = format!("[namespaces.user]\n[admin]\n{admin}\n");
    let config = Config::from_sources(Some(&toml), []).unwrap();
    let store = Store::from_config(&config).unwrap();
    let router = Admin::new(store).router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        strata_admin::serve(listener, router, &config.admin, shutdown).await;
    });
    Running {
        addr,
        stop: Some(stop),
        served,
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: strata\r\n\r\n")
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: strata\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one response: its status and its body as JSON (or as a string if it is not).
/// `None` if the server closed the connection (or reset it) first.
async fn response(stream: &mut TcpStream) -> Option<(u16, Value)> {
    let mut bytes = Vec::new();
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(GUARD, stream.read(&mut chunk)).await {
            Err(_) => panic!("no response within {GUARD:?}"),
            Ok(Ok(0) | Err(_)) => return None,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = bytes[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(GUARD, stream.read(&mut chunk))
            .await
            .expect("the body within the guard")
            .unwrap();
        assert!(n > 0, "closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    Some((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A request on a new connection, and its response.
async fn request(addr: SocketAddr, request: &str) -> (TcpStream, Option<(u16, Value)>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = response(&mut stream).await;
    (stream, answer)
}

/// Waits until the server closes `stream` (a read gives end of file or a reset).
async fn closed(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    let ended = tokio::time::timeout(GUARD, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server kept the connection past {GUARD:?}"
    );
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once_and_the_rest_served() {
    let server = start("max_connections = 2").await;
    // Two kept-alive connections hold both slots.
    let (first, ok) = request(server.addr, &get("/health")).await;
    assert_eq!(ok.unwrap().0, 200);
    let (_second, ok) = request(server.addr, &get("/health")).await;
    assert_eq!(ok.unwrap().0, 200);

    // A third is accepted and closed, not served and not left waiting.
    let (mut third, answer) = request(server.addr, &get("/health")).await;
    assert_eq!(answer, None, "refused");
    closed(&mut third).await;

    // Once a slot is free, new connections are served again.
    drop(first);
    let served = tokio::time::timeout(GUARD, async {
        loop {
            if let (_, Some((200, _))) = request(server.addr, &get("/health")).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "a freed slot is used again");
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout() {
    // Once, a head dripping a byte a second held its connection for as long as it dripped.
    let server = start("header_timeout = \"300ms\"\nidle_timeout = \"1h\"").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // 20 ms a byte: the head takes GUARD to send.
    let head = format!("GET /health HTTP/1.1\r\nX-Slow: {}", "a".repeat(480));
    let (mut reader, mut writer) = stream.split();
    let drip = async {
        for byte in head.as_bytes() {
            if writer.write_all(&[*byte]).await.is_err() {
                return; // closed by the server
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the whole head was sent without the server closing");
    };
    let mut sink = [0u8; 1024];
    let ended = async {
        loop {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = ended => {}
        () = drip => {}
    }
}

#[tokio::test]
async fn a_connection_waiting_past_the_idle_timeout_is_closed() {
    let server = start("idle_timeout = \"300ms\"\nheader_timeout = \"1h\"").await;
    // Connected and silent.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed(&mut silent).await;
    // Kept alive after a request, then silent.
    let (mut kept, ok) = request(server.addr, &get("/health")).await;
    assert_eq!(ok.unwrap().0, 200);
    closed(&mut kept).await;
}

#[tokio::test]
async fn an_idle_connection_is_not_cut_by_the_header_timeout() {
    // hyper's own header timeout counts the wait for a request as header time; this one
    // starts at the request's first byte.
    let server = start("idle_timeout = \"1h\"\nheader_timeout = \"200ms\"").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(get("/health").as_bytes()).await.unwrap();
    assert_eq!(response(&mut stream).await.unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(get("/health").as_bytes()).await.unwrap();
    assert_eq!(
        response(&mut stream).await.unwrap().0,
        200,
        "kept alive too"
    );
}

#[tokio::test]
async fn a_body_past_max_body_gets_413_on_every_route() {
    let server = start("max_body = \"1KiB\"").await;
    let big = format!("{{\"key\": \"{}\"}}", "k".repeat(2000));
    for path in [
        "/invalidate",
        "/clear",
        "/warm",
        "/namespaces/user/clear",
        "/stats",
    ] {
        let (_, answer) = request(server.addr, &post(path, &big)).await;
        let (status, body) = answer.unwrap();
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["error"], "payload_too_large", "{path}");
        assert!(body["detail"].as_str().unwrap().contains("1024"), "{body}");
    }

    // 100 MB announced: refused before a byte of it is sent (once: read, then 400).
    let announced = "POST /invalidate HTTP/1.1\r\nHost: strata\r\n\
                     content-type: application/json\r\ncontent-length: 100000000\r\n\r\n";
    let (_, answer) = request(server.addr, announced).await;
    assert_eq!(answer.unwrap().0, 413);

    // Chunked, with no length announced: counted as it comes.
    let half = "k".repeat(600);
    let chunked = format!(
        "POST /invalidate HTTP/1.1\r\nHost: strata\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n{half}\r\n{:x}\r\n{half}\r\n0\r\n\r\n",
        half.len(),
        half.len()
    );
    let (_, answer) = request(server.addr, &chunked).await;
    let (status, body) = answer.unwrap();
    assert_eq!((status, &body["error"]), (413, &json!("payload_too_large")));

    // A body within the bound is read and handled.
    let (_, answer) = request(server.addr, &post("/invalidate", r#"{"key": "k"}"#)).await;
    assert_eq!(answer.unwrap().0, 200);
}

#[tokio::test]
async fn a_body_slower_than_body_timeout_gets_408() {
    let server = start("body_timeout = \"300ms\"").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /invalidate HTTP/1.1\r\nHost: strata\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n{\"key\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = response(&mut stream).await.unwrap();
    assert_eq!((status, &body["error"]), (408, &json!("request_timeout")));
    closed(&mut stream).await;
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_hand_and_closes_idle_connections() {
    let mut server = start("body_timeout = \"1h\"").await;
    let (mut idle, ok) = request(server.addr, &get("/health")).await;
    assert_eq!(ok.unwrap().0, 200);

    // A request in hand: hyper says 100 Continue once the router reads the body.
    let body = r#"{"key": "k"}"#;
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /invalidate HTTP/1.1\r\nHost: strata\r\ncontent-type: application/json\r\n\
         expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).await.unwrap();
    let mut continued = [0u8; 25];
    tokio::time::timeout(GUARD, busy.read_exact(&mut continued))
        .await
        .expect("100 Continue within the guard")
        .unwrap();
    assert!(continued.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));

    let _ = server.stop.take().unwrap().send(());
    closed(&mut idle).await;
    busy.write_all(body.as_bytes()).await.unwrap();
    let (status, answer) = response(&mut busy).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    closed(&mut busy).await;
    tokio::time::timeout(GUARD, server.served)
        .await
        .expect("serve returns")
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "nothing listens any more"
    );
}
