//! `backup --url`: asks a running `serve` for a snapshot over HTTP/1.1 and checks the stream
//! while it is written to the file.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use hyper::{header, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::format::{BackupReader, Header};
use super::{write_atomically, Progress, PROGRESS_EVERY};
use crate::BadInput;

/// The route that streams a snapshot.
pub const BACKUP_ROUTE: &str = "/api/v1/admin/backup";
/// Chunks of the body in flight between the network and the file.
const CHUNKS_IN_FLIGHT: usize = 16;
/// Largest error body read.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Where to ask: host, port and the route's full URI.
struct Endpoint {
    host: String,
    port: u16,
    uri: Uri,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, BadInput> {
        let bad = |why: &str| BadInput(format!("--url {url}: {why} (expected http://HOST:PORT)"));
        let base: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if base.scheme_str() != Some("http") {
            return Err(bad("the scheme must be http"));
        }
        let host = base
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = base.port_u16().unwrap_or(80);
        let authority = base.authority().ok_or_else(|| bad("no host"))?;
        let uri = format!(
            "http://{authority}{}{BACKUP_ROUTE}",
            base.path().trim_end_matches('/')
        )
        .parse()
        .map_err(|_| bad("not a URL"))?;
        Ok(Self { host, port, uri })
    }
}

/// Downloads a backup from the server at `url` into `out` (atomically), checking it as it
/// arrives; returns its header.
pub fn download(url: &str, token: &str, out: &Path) -> anyhow::Result<Header> {
    let endpoint = Endpoint::parse(url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let response = runtime.block_on(request(&endpoint, token))?;
    let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    runtime.spawn(pump(response.into_body(), sender));
    let input = ChunkReader {
        chunks,
        current: Bytes::new(),
    };
    write_atomically(out, |file| {
        let mut reader = BackupReader::new(Tee { input, copy: file }, None)
            .map_err(|err| anyhow::anyhow!("the server's backup stream is not valid: {err}"))?;
        let mut progress = Progress::new("backup", reader.header().records);
        while reader
            .next_record()
            .map_err(|err| anyhow::anyhow!("the server's backup stream is not valid: {err}"))?
            .is_some()
        {
            if reader.records_read().is_multiple_of(PROGRESS_EVERY) {
                progress.update(reader.records_read(), reader.bytes_read());
            }
        }
        Ok(reader.header())
    })
}

/// Sends the request; returns the response once its status is 200.
async fn request(endpoint: &Endpoint, token: &str) -> anyhow::Result<Response<Incoming>> {
    let stream = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .with_context(|| format!("cannot connect to {}:{}", endpoint.host, endpoint.port))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!("backup connection ended: {err}");
        }
    });
    let authority = endpoint
        .uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let request = Request::post(endpoint.uri.clone())
        .header(header::HOST, authority)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::USER_AGENT, "aquatwin-backup")
        .body(Empty::<Bytes>::new())
        .context("cannot build the request")?;
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("no answer from {}", endpoint.uri))?;
    let status = response.status();
    if status == StatusCode::OK {
        return Ok(response);
    }
    let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json["detail"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    let refusal = format!("the server refused the backup: {status}: {detail}");
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        Err(BadInput(refusal).into())
    } else {
        Err(anyhow::anyhow!(refusal))
    }
}

/// Forwards the body's data to the reader; a failure ends the stream with an error.
async fn pump(mut body: Incoming, chunks: mpsc::Sender<io::Result<Bytes>>) {
    loop {
        let item = match body.frame().await {
            None => return,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_) => continue,
            },
            Some(Err(err)) => Err(io::Error::other(format!("the download failed: {err}"))),
        };
        let failed = item.is_err();
        if chunks.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// A blocking [`Read`] over the chunks [`pump`] forwards.
struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A [`Read`] that writes a copy of everything read.
struct Tee<R, W> {
    input: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
