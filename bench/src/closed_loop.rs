//! A closed-loop HTTP/1.1 load generator for saturation runs: a number of keep-alive
//! connections, each sending its next request as soon as the previous answer arrived (what wrk
//! does). It writes prepared request bytes on raw TCP and reads only the status line and
//! `content-length`, so the generator, which shares the cores with the bot, takes as little of
//! them as it can: the same generator measures the `/healthz` ceiling and the durable intake,
//! and their ratio is what it reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::latency::Summary;

/// Builds the bytes of the next request (an `update_id` of its own, or the same `GET`).
pub type Requests = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// What one closed-loop run saw.
#[derive(Clone, Debug)]
pub struct Saturation {
    pub connections: usize,
    pub duration: Duration,
    /// Answers with status 200.
    pub ok: usize,
    /// Other statuses, broken connections.
    pub errors: usize,
    /// 200s per second over the run.
    pub per_sec: f64,
    /// Time from writing a request to its complete answer, of the 200s.
    pub latency: Summary,
}

/// A `GET` of `path` on `addr`.
pub fn get(addr: SocketAddr, path: &str) -> Requests {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes();
    Arc::new(move || request.clone())
}

/// A `POST` of `body` (JSON) to `path` on `addr` with `headers` (`name: value` lines).
pub fn post_json(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// Runs `connections` connections to `addr` for `duration`, each sending `requests()` back to
/// back.
pub async fn run(
    addr: SocketAddr,
    requests: Requests,
    connections: usize,
    duration: Duration,
) -> Saturation {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let requests = requests.clone();
        tasks.spawn(async move { connection(addr, requests, deadline).await });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(tally) => {
                latencies.extend(tally.latencies);
                errors += tally.errors;
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed();
    Saturation {
        connections,
        duration: elapsed,
        ok: latencies.len(),
        errors,
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        latency: Summary::of(latencies),
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
}

/// One connection's loop; a broken connection is counted and opened again.
async fn connection(addr: SocketAddr, requests: Requests, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut buffer = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tally.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        while Instant::now() < deadline {
            let request = requests();
            let sent = Instant::now();
            let answer = exchange(&mut stream, &request, &mut buffer).await;
            match answer {
                Ok(200) => tally.latencies.push(sent.elapsed()),
                Ok(_) => tally.errors += 1,
                Err(_) => {
                    tally.errors += 1;
                    break;
                }
            }
        }
    }
    tally
}

/// Writes one request and reads its answer; the status code.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    buffer.clear();
    loop {
        if let Some(head_len) = find(buffer, b"\r\n\r\n").map(|at| at + 4) {
            let (status, body_len) = parse_head(&buffer[..head_len])?;
            while buffer.len() < head_len + body_len {
                read_more(stream, buffer).await?;
            }
            return Ok(status);
        }
        read_more(stream, buffer).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The status code and `content-length` (0 when absent) of a response head.
fn parse_head(head: &[u8]) -> std::io::Result<(u16, usize)> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let text = std::str::from_utf8(head).map_err(|_| invalid())?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let body_len = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse().map_err(|_| invalid()))
        .transpose()?
        .unwrap_or(0);
    Ok((status, body_len))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_length() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_head(head).unwrap(), (200, 2));
        assert_eq!(
            parse_head(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").unwrap(),
            (500, 0)
        );
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
