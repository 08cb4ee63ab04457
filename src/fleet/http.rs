//! An HTTP/1.1 keep-alive publisher for `POST /api/v1/ingest`: one request in flight per
//! connection, timed from its write to its response. A load generator needs only this much of
//! HTTP; a full client library would cost more build time than the whole fleet.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::source::{readings_json, ReadingSource};
use super::Pacing;

/// Largest response head we accept.
const MAX_HEAD: usize = 16 * 1024;

/// Publishes `source`'s readings to `target` as device `device_id` with `key`, `batch`
/// readings (across the device's sensors) per request.
pub async fn publish(
    target: SocketAddr,
    device_id: &str,
    key: Option<&str>,
    mut source: ReadingSource,
    batch: usize,
    pacing: Pacing,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("cannot connect to {target}"))?;
    stream.set_nodelay(true)?;
    let shared = source.shared().clone();
    let mut pacer = pacing.pacer(batch.max(1));
    let mut buffer = Vec::with_capacity(4096);
    loop {
        if let Some(wait) = pacer.wait() {
            tokio::time::sleep(wait).await;
        }
        let samples = source.across_sensors(batch.max(1), false);
        if samples.is_empty() {
            break;
        }
        let body = readings_json(&samples, Some(&shared.sensor_ids));
        let mut request = format!(
            "POST /api/v1/ingest HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
             X-Device-Id: {device_id}\r\nContent-Length: {}\r\n",
            body.len()
        )
        .into_bytes();
        if let Some(key) = key {
            request.extend_from_slice(format!("Authorization: Bearer {key}\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(&body);
        let sent = Instant::now();
        shared.sent(samples.len());
        let status = exchange(&mut stream, &request, &mut buffer).await?;
        if (200..300).contains(&status) {
            shared.acknowledged(&samples, sent);
        } else {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("device {device_id}: HTTP {status}");
        }
    }
    Ok(())
}

/// Sends `request`, reads the response; returns its status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    stream
        .write_all(request)
        .await
        .context("the server closed the connection")?;
    buffer.clear();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            bail!("response head over {MAX_HEAD} bytes");
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).context("response head is not UTF-8")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status in the response")?;
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    let mut remaining = (head_end + length).saturating_sub(buffer.len());
    let mut chunk = [0u8; 4096];
    while remaining > 0 {
        let read = stream.read(&mut chunk[..remaining.min(4096)]).await?;
        if read == 0 {
            bail!("the server closed the connection mid-response");
        }
        remaining -= read;
    }
    Ok(status)
}
