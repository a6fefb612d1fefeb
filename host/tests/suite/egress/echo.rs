//! A tiny HTTP/1.1 server for the egress tests, on any loopback address
//! (127.0.0.1, 127.0.0.2, …). It records each request head and answers by
//! path: `/echo` returns the request head it received (so a test sees
//! exactly which headers the host sent), `/redirect?to=URL` answers 302,
//! `/big?n=N` sends N bytes, `/slow` waits 5 s, `/fat-headers?n=N` sends a
//! header of N bytes, `/trailers` answers chunked with a trailer echoing
//! the request's `authorization`, anything else answers `hello`.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct EchoServer {
    pub port: u16,
    pub ip: &'static str,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    pub async fn start(ip: &'static str) -> EchoServer {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind echo server");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, seen.clone()));
            }
        });
        EchoServer {
            port,
            ip,
            requests,
            task,
        }
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    /// The request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    seen.lock().expect("requests").push(head.clone());
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_string()
    };
    if path == "/trailers" {
        let authorization = head
            .lines()
            .find_map(|l| l.strip_prefix("authorization: "))
            .unwrap_or("none")
            .to_string();
        let body = "the body ends here: END";
        let response = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-echo\r\nconnection: close\r\n\r\n\
             {:x}\r\n{body}\r\n0\r\nx-echo: {authorization}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    let (status, extra, body): (&str, String, Vec<u8>) = match path {
        "/echo" => ("200 OK", String::new(), head.into_bytes()),
        "/redirect" => ("302 Found", format!("location: {}\r\n", param("to")), Vec::new()),
        "/big" => ("200 OK", String::new(), vec![b'x'; param("n").parse().unwrap_or(0)]),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            ("200 OK", String::new(), b"late".to_vec())
        }
        "/fat-headers" => (
            "200 OK",
            format!("x-fat: {}\r\n", "f".repeat(param("n").parse().unwrap_or(0))),
            b"ok".to_vec(),
        ),
        _ => ("200 OK", String::new(), b"hello".to_vec()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}
