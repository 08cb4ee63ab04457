//! Platform administration routes.
//!
//! - `POST /api/v1/admin/backup` (`super_admin` only: 401 without a token, 403 for any other
//!   role): the whole store as a backup file (`crate::backup::format`), streamed (chunked) from
//!   ONE read transaction taken when the request arrives. Ingest goes on meanwhile: a read
//!   transaction takes no write lock, and what is committed after it is not in the backup.
//!   Memory stays bounded: the snapshot is written in chunks through a short queue, so a slow
//!   client slows the scan, nothing piles up. `X-Aquatwin-Backup-Records` announces the count.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aquatwin::auth::http::{role_names, ApiError, Caller, ErrorBody};
use aquatwin::auth::Role;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use tokio::sync::{mpsc, oneshot};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::AppState;
use crate::backup::SnapshotExport;

/// Bytes per chunk of the streamed body.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks queued between the scan and the connection.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Header announcing how many records the backup holds.
const RECORDS_HEADER: &str = "x-aquatwin-backup-records";

/// The administration routes.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(backup))
}

/// A consistent backup of the whole store, streamed (see `aquatwin restore`).
#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "administration",
    responses(
        (status = 200, description = "The backup file; `X-Aquatwin-Backup-Records` counts its \
            records", content_type = "application/octet-stream", body = String),
        (status = 500, description = "The snapshot could not be taken (logged)", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(&[Role::SuperAdmin])))))]
async fn backup(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.allow(&[Role::SuperAdmin], None)?;
    let store = state.store.clone();
    let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (taken, snapshot_taken) = oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let export = match SnapshotExport::take(store.as_ref(), crate::fleet::unix_ms()) {
            Ok(export) => export,
            Err(err) => {
                let _ = taken.send(Err(err));
                return;
            }
        };
        if taken.send(Ok(export.header().records)).is_err() {
            return;
        }
        let mut out = ChunkWriter {
            buffer: Vec::with_capacity(CHUNK_BYTES),
            chunks: sender.clone(),
        };
        // `finish` flushes the last chunk.
        if let Err(err) = export.write_to(&mut out, &mut |_, _| {}) {
            tracing::warn!("backup stream ended early: {err}");
            // The body ends with an error: the client sees an aborted transfer, never a
            // complete-looking file.
            let _ = sender.blocking_send(Err(io::Error::other(err)));
        }
    });
    let records = snapshot_taken
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    tracing::info!(
        "backup for {}: streaming {records} records",
        caller.0.subject
    );
    let mut response = Body::new(ChunkBody(chunks)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"aquatwin.backup\""),
    );
    headers.insert(RECORDS_HEADER, HeaderValue::from(records));
    Ok(response)
}

/// A blocking [`Write`] that sends full chunks to the response body; a closed body (client
/// gone) is an error, which stops the scan.
struct ChunkWriter {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<io::Result<Bytes>>,
}

impl ChunkWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        self.chunks
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

/// The response body: the chunks of [`ChunkWriter`], in order.
struct ChunkBody(mpsc::Receiver<io::Result<Bytes>>);

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}
