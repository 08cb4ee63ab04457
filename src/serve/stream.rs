//! `GET /api/v1/stream?municipality=M`: the live twin over a WebSocket, for the 3D viewer and
//! dashboards.
//!
//! Authentication and tenancy are checked before the upgrade, so refusals are plain HTTP
//! answers with the usual JSON error body: an access token in `Authorization: Bearer` or, for
//! clients that cannot set headers on a WebSocket, in the query (`access_token=`); any reader
//! role; another municipality is 404. Query `sensors=S1,S2` and `topics=state,alerts,readings`
//! choose what is sent (default `state,alerts`, plus `readings` when `sensors` is given;
//! `readings` without `sensors` means every sensor). The client may change that at any time
//! with `{"subscribe": {"topics": [...], "sensors": [...]}}` (the same defaults); a malformed
//! request is answered `{"type":"error","detail":"..."}` naming the field, and the stream goes
//! on.
//!
//! Server messages (JSON text; the viewer parses them):
//! - first `{"type":"hello","municipality","node_ids","link_ids","units"}`;
//! - `{"type":"state","municipality",...}` every period, the fields of `GET .../state` (its
//!   arrays follow the ids of `hello`);
//! - `{"type":"reading","sensor_id","ts","value","flags"}` once a reading is durably stored;
//! - `{"type":"alert","alert":{...}}` for every new or changed alert;
//! - `{"type":"closing","reason"}` before the server closes the stream: a slow consumer or
//!   access withdrawn (close code 1008 with the same reason), or the server stopping (1001).
//!
//! The token a stream opened with is checked again every few seconds
//! ([`ACCESS_RECHECK`]), as a request's would be but for its age: once its session has ended
//! (logout) or its user was deactivated or lost the municipality, the stream is closed (1008,
//! `access withdrawn: ...` and why). An open stream outlives its short-lived access token (a
//! control room watches for hours), never its session.
//!
//! Each stream has a bounded send queue (bytes and messages). A client that does not keep up,
//! so that its queue stays full or it misses broadcast messages, is told and closed: memory
//! never grows with a slow client, and the others are not held up. The server pings every 20 s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actors::messages::Alert;
use actors::runtime::{QueryError, StoredReadings, TwinRuntime};
use aquatwin::auth::http::{bearer_token, role_names, unix_now, ApiError, Caller, ErrorBody};
use aquatwin::auth::users::{Accounts, AuthError};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use twin::live::PeriodState;
use twin::NetworkUnits;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::http::{period_fields, query_error, AppState, READERS};

/// How often a stream checks that its token still gives access: the longest a stream outlives
/// its session, its token or its user's access. Each check reads two small records (the
/// user, the session) from the store, so the most streams open at once ([`MAX_STREAMS`])
/// cost about a thousand small reads a second.
const ACCESS_RECHECK: Duration = Duration::from_secs(2);

/// The longest reason a close frame carries (125 bytes of payload less the code's two).
const CLOSE_REASON_MAX: usize = 123;

/// How often the server pings each client.
const PING_INTERVAL: Duration = Duration::from_secs(20);

/// Bytes of messages a stream may have waiting for its client.
const QUEUE_BYTES: usize = 4 << 20;

/// Messages a stream may have waiting for its client.
const QUEUE_MESSAGES: usize = 1024;

/// How long a message may wait for room in a full queue before the client counts as slow.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);

/// How long the last words (`closing` and the close frame) may take to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Streams open at once; more are refused (503).
const MAX_STREAMS: usize = 1024;

/// Largest message a client may send (subscription requests are small).
const MAX_CLIENT_MESSAGE: usize = 64 << 10;

/// The stream route.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// The open streams of a server: each one watches `closing` and ends when it turns true.
pub struct Streams {
    closing: watch::Sender<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            closing: watch::Sender::new(false),
        }
    }
}

impl Streams {
    /// Tells every stream to close (1001, "server shutting down") and waits until all have
    /// ended, at most `limit`; whether they all did. Streams opened from now on close at once.
    pub async fn close_all(&self, limit: Duration) -> bool {
        self.closing.send_replace(true);
        tokio::time::timeout(limit, self.closing.closed())
            .await
            .is_ok()
    }

    /// Streams open now.
    fn open(&self) -> usize {
        self.closing.receiver_count()
    }
}

/// What a stream sends: its topics and, for readings, its sensors.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subscription {
    state: bool,
    alerts: bool,
    readings: bool,
    /// Sensors whose readings are sent; empty: every sensor.
    sensors: HashSet<String>,
}

/// The topics a client may ask for.
const TOPICS: &str = "state, alerts, readings";

impl Subscription {
    /// `topics` (default `state` and `alerts`, plus `readings` when `sensors` is not empty)
    /// for `sensors`; an unknown topic is named in the error.
    fn new<'t>(
        topics: Option<impl IntoIterator<Item = &'t str>>,
        sensors: HashSet<String>,
    ) -> Result<Self, String> {
        let mut subscription = Self {
            state: true,
            alerts: true,
            readings: !sensors.is_empty(),
            sensors,
        };
        if let Some(topics) = topics {
            subscription.state = false;
            subscription.alerts = false;
            subscription.readings = false;
            for topic in topics {
                match topic {
                    "state" => subscription.state = true,
                    "alerts" => subscription.alerts = true,
                    "readings" => subscription.readings = true,
                    other => return Err(format!("unknown topic {other:?} ({TOPICS})")),
                }
            }
        }
        Ok(subscription)
    }

    /// The subscription of the query's comma-separated `topics` and `sensors`.
    fn from_query(topics: Option<&str>, sensors: Option<&str>) -> Result<Self, String> {
        let sensors = sensors
            .into_iter()
            .flat_map(|list| list.split(','))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect();
        let topics = topics.map(|list| list.split(',').map(str::trim));
        Self::new(topics, sensors).map_err(|err| format!("topics: {err}"))
    }

    /// The subscription a client's `{"subscribe": {"topics": [...], "sensors": [...]}}` asks
    /// for; the error names the field at fault.
    fn from_message(text: &str) -> Result<Self, String> {
        const SHAPE: &str = r#"{"subscribe": {"topics": [...], "sensors": [...]}}"#;
        let message: Value =
            serde_json::from_str(text).map_err(|err| format!("not JSON ({err}); send {SHAPE}"))?;
        let request = message
            .as_object()
            .and_then(|message| message.get("subscribe"))
            .ok_or_else(|| format!("subscribe: missing; send {SHAPE}"))?
            .as_object()
            .ok_or("subscribe: must be an object with topics and sensors")?;
        if let Some(unknown) = request
            .keys()
            .find(|key| *key != "topics" && *key != "sensors")
        {
            return Err(format!(
                "subscribe.{unknown}: unknown field (topics, sensors)"
            ));
        }
        let strings = |field: &str| -> Result<Option<Vec<&str>>, String> {
            match request.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        item.as_str()
                            .ok_or_else(|| format!("subscribe.{field}[{index}]: must be a string"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err(format!("subscribe.{field}: must be an array of strings")),
            }
        };
        let sensors = strings("sensors")?
            .unwrap_or_default()
            .into_iter()
            .map(str::to_string)
            .collect();
        Self::new(strings("topics")?, sensors).map_err(|err| format!("subscribe.topics: {err}"))
    }

    fn wants_sensor(&self, sensor: &str) -> bool {
        self.sensors.is_empty() || self.sensors.contains(sensor)
    }
}

/// The broadcasts a stream listens to: one per subscribed topic.
#[derive(Default)]
struct Feeds {
    states: Option<broadcast::Receiver<Arc<PeriodState>>>,
    alerts: Option<broadcast::Receiver<Alert>>,
    readings: Option<broadcast::Receiver<Arc<StoredReadings>>>,
}

impl Feeds {
    /// Listens to what `subscription` asks for: keeps the feeds it still wants, subscribes to
    /// new ones (from now on) and drops the others, so an unwanted topic never lags.
    fn follow(
        &mut self,
        runtime: &TwinRuntime,
        municipality: &str,
        subscription: &Subscription,
    ) -> Result<(), QueryError> {
        fn keep<T: Clone>(
            wanted: bool,
            feed: &mut Option<broadcast::Receiver<T>>,
            subscribe: impl FnOnce() -> Result<broadcast::Receiver<T>, QueryError>,
        ) -> Result<(), QueryError> {
            match (wanted, feed.is_some()) {
                (false, _) => *feed = None,
                (true, false) => *feed = Some(subscribe()?),
                (true, true) => {}
            }
            Ok(())
        }
        keep(subscription.state, &mut self.states, || {
            runtime.subscribe_state(municipality)
        })?;
        keep(subscription.alerts, &mut self.alerts, || {
            runtime.subscribe_alerts(municipality)
        })?;
        keep(subscription.readings, &mut self.readings, || {
            runtime.subscribe_readings(municipality)
        })
    }
}

/// The next message of `feed`, or never when the topic is not subscribed.
async fn next<T: Clone>(feed: &mut Option<broadcast::Receiver<T>>) -> Result<T, RecvError> {
    match feed {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// The query of a stream.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// The municipality to stream (required).
    municipality: Option<String>,
    /// The access token, for clients that cannot set `Authorization` on a WebSocket.
    access_token: Option<String>,
    /// Comma-separated topics: `state`, `alerts`, `readings` (default `state,alerts`, plus
    /// `readings` when `sensors` is given).
    topics: Option<String>,
    /// Comma-separated sensor ids whose readings are sent.
    sensors: Option<String>,
}

fn malformed(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed", detail)
}

/// The live twin over a WebSocket (see the module documentation for the messages).
#[utoipa::path(get, path = "/api/v1/stream", tag = "twin",
    params(StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 404, description = "No such municipality, or the caller's is another",
            body = ErrorBody),
        (status = 422, description = "A malformed query (the parameter named)", body = ErrorBody),
        (status = 503, description = "Too many streams open: retry later", body = ErrorBody),
    ),
    extensions(("x-roles" = json!(role_names(READERS)))))]
async fn stream(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _body) = request.into_parts();
    let query: Result<Query<StreamQuery>, QueryRejection> =
        Query::from_request_parts(&mut parts, &state).await;
    let Query(query) = query.map_err(|e| malformed(e.body_text()))?;
    // Browsers cannot set headers on a WebSocket: the token may come in the query, and then
    // it is checked exactly as a header's would be.
    if let (None, Some(token)) = (
        parts.headers.get(header::AUTHORIZATION),
        &query.access_token,
    ) {
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ApiError::unauthenticated("access_token: not a token"))?;
        parts.headers.insert(header::AUTHORIZATION, bearer);
    }
    let caller = Caller::from_request_parts(&mut parts, &state).await?;
    // The extractor found this token, so it is there; kept for the checks while streaming.
    let token = bearer_token(&parts.headers)
        .map(str::to_string)
        .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
    let municipality = query
        .municipality
        .ok_or_else(|| malformed("municipality: required (the municipality to stream)"))?;
    caller.allow(READERS, Some(&municipality))?;
    let subscription = Subscription::from_query(query.topics.as_deref(), query.sensors.as_deref())
        .map_err(malformed)?;
    let mut feeds = Feeds::default();
    feeds
        .follow(&state.runtime, &municipality, &subscription)
        .map_err(query_error)?;
    let hello = hello(&state, &municipality)?;
    if state.streams.open() >= MAX_STREAMS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{MAX_STREAMS} streams are open; retry later"),
        ));
    }
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .map_err(|rejection| {
            ApiError::new(rejection.status(), "not_websocket", rejection.body_text())
        })?;
    let session = Session {
        closing: state.streams.closing.subscribe(),
        state,
        token,
        opened_at: unix_now(),
        municipality,
        subscription,
        feeds,
    };
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session.run(socket, hello)))
}

/// The `hello` message of `municipality`: its element ids and units.
fn hello(state: &AppState, municipality: &str) -> Result<String, ApiError> {
    let not_found = || ApiError::not_found(format!("no municipality {municipality}"));
    let ids = state.element_ids.get(municipality).ok_or_else(not_found)?;
    let network = state.networks.get(municipality).ok_or_else(not_found)?;
    let units = NetworkUnits::new(&network.options);
    let head = if units.factors.si { "m" } else { "ft" };
    Ok(json!({
        "type": "hello",
        "municipality": municipality,
        "node_ids": ids.nodes,
        "link_ids": ids.links,
        "units": {
            "flow": units.flow_units.name(),
            "pressure": units.pressure_unit.name(),
            "head": head,
        },
    })
    .to_string())
}

/// A message with the room it holds in its stream's queue (given back once sent).
struct Queued {
    message: Message,
    _room: OwnedSemaphorePermit,
}

/// How a stream ends.
#[derive(Debug)]
enum Ending {
    /// The connection broke or the client went away without a close frame: nothing to send.
    Gone,
    /// The client closed: answer its close frame.
    ClientClosed,
    /// The server closes: say why (`closing`), then the close frame.
    Close { code: u16, reason: String },
}

impl Ending {
    fn slow(reason: String) -> Self {
        Self::Close {
            code: close_code::POLICY,
            reason: format!("slow consumer: {reason}"),
        }
    }
}

/// The bounded queue of one stream's messages to its writer.
struct Outbox {
    messages: mpsc::Sender<Queued>,
    room: Arc<Semaphore>,
}

impl Outbox {
    /// Queues `message`, waiting at most [`QUEUE_PATIENCE`] for room: a client that does not
    /// make room by then is slow.
    async fn push(&self, message: Message) -> Result<(), Ending> {
        let size = match &message {
            Message::Text(text) => text.len(),
            _ => 0,
        };
        // A message larger than the whole queue waits for an empty queue.
        let bytes = u32::try_from(size.clamp(1, QUEUE_BYTES)).unwrap_or(u32::MAX);
        let queued = tokio::time::timeout(QUEUE_PATIENCE, async {
            let room = self.room.clone().acquire_many_owned(bytes).await.ok()?;
            self.messages
                .send(Queued {
                    message,
                    _room: room,
                })
                .await
                .ok()
        })
        .await;
        match queued {
            Ok(Some(())) => Ok(()),
            // The writer ended: the connection is gone.
            Ok(None) => Err(Ending::Gone),
            Err(_) => Err(Ending::slow(format!(
                "send queue full for {} s",
                QUEUE_PATIENCE.as_secs()
            ))),
        }
    }

    async fn text(&self, text: String) -> Result<(), Ending> {
        self.push(Message::Text(text.into())).await
    }
}

/// One accepted stream, before and while it runs.
struct Session {
    state: Arc<AppState>,
    /// The access token the stream opened with, checked again every [`ACCESS_RECHECK`].
    token: String,
    /// When the stream opened (Unix seconds): the token's age is judged at this time.
    opened_at: i64,
    municipality: String,
    subscription: Subscription,
    feeds: Feeds,
    closing: watch::Receiver<bool>,
}

/// What woke a stream up.
enum Event {
    Client(Option<Result<Message, axum::Error>>),
    State(Result<Arc<PeriodState>, RecvError>),
    Alert(Result<Alert, RecvError>),
    Readings(Result<Arc<StoredReadings>, RecvError>),
    Ping,
    AccessCheck,
    ServerClosing,
}

impl Session {
    /// Runs the stream on `socket` until the client leaves, falls behind or the server stops.
    async fn run(mut self, socket: WebSocket, hello: String) {
        let (sink, mut incoming) = socket.split();
        let (messages, queue) = mpsc::channel(QUEUE_MESSAGES);
        let outbox = Outbox {
            messages,
            room: Arc::new(Semaphore::new(QUEUE_BYTES)),
        };
        let (last_words, last_words_due) = oneshot::channel();
        let writer = tokio::spawn(write(sink, queue, last_words_due));
        let ending = match outbox.text(hello).await {
            Ok(()) => self.forward(&mut incoming, &outbox).await,
            Err(ending) => ending,
        };
        let last = match ending {
            Ending::Gone => None,
            // Closing the sink answers the client's close frame.
            Ending::ClientClosed => Some(Vec::new()),
            Ending::Close { code, reason } => {
                tracing::info!(municipality = %self.municipality, code, "closing a stream: {reason}");
                Some(vec![
                    Message::Text(
                        json!({"type": "closing", "reason": reason})
                            .to_string()
                            .into(),
                    ),
                    Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })),
                ])
            }
        };
        if let Some(last) = last {
            let _ = last_words.send(last);
        } else {
            drop(last_words);
        }
        drop(outbox);
        if let Err(err) = writer.await {
            tracing::error!("a stream's writer ended abnormally: {err}");
        }
    }

    /// Forwards what the client subscribed to until the stream ends.
    async fn forward(&mut self, incoming: &mut SplitStream<WebSocket>, outbox: &Outbox) -> Ending {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let mut access_check = tokio::time::interval(ACCESS_RECHECK);
        access_check.tick().await;
        loop {
            let event = tokio::select! {
                message = incoming.next() => Event::Client(message),
                state = next(&mut self.feeds.states) => Event::State(state),
                alert = next(&mut self.feeds.alerts) => Event::Alert(alert),
                readings = next(&mut self.feeds.readings) => Event::Readings(readings),
                _ = ping.tick() => Event::Ping,
                _ = access_check.tick() => Event::AccessCheck,
                _ = self.closing.wait_for(|closing| *closing) => Event::ServerClosing,
            };
            if let Err(ending) = self.handle(event, outbox).await {
                return ending;
            }
        }
    }

    async fn handle(&mut self, event: Event, outbox: &Outbox) -> Result<(), Ending> {
        match event {
            Event::Client(None | Some(Err(_))) => Err(Ending::Gone),
            Event::Client(Some(Ok(Message::Close(_)))) => Err(Ending::ClientClosed),
            Event::Client(Some(Ok(Message::Text(text)))) => {
                self.resubscribe(text.as_str(), outbox).await
            }
            Event::Client(Some(Ok(Message::Binary(_)))) => {
                let detail = "binary messages are not understood; send JSON text";
                outbox.text(error_message(detail)).await
            }
            // Pings are answered by the WebSocket layer; pongs need nothing.
            Event::Client(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => Ok(()),
            Event::State(state) => {
                let state = received(state, "state")?;
                let mut message = json!(period_fields(&state));
                message["type"] = json!("state");
                message["municipality"] = json!(self.municipality);
                outbox.text(message.to_string()).await
            }
            Event::Alert(alert) => {
                let alert = received(alert, "alert")?;
                outbox
                    .text(json!({"type": "alert", "alert": alert}).to_string())
                    .await
            }
            Event::Readings(readings) => {
                let readings = received(readings, "reading")?;
                if !self.subscription.wants_sensor(&readings.sensor) {
                    return Ok(());
                }
                for point in &readings.points {
                    let message = json!({
                        "type": "reading",
                        "sensor_id": &*readings.sensor,
                        "ts": point.timestamp,
                        "value": point.value,
                        "flags": point.flags.names(),
                    });
                    outbox.text(message.to_string()).await?;
                }
                Ok(())
            }
            Event::Ping => outbox.push(Message::Ping(Default::default())).await,
            Event::AccessCheck => still_allowed(
                self.state.accounts.as_ref(),
                &self.token,
                &self.municipality,
                self.opened_at,
            ),
            Event::ServerClosing => Err(Ending::Close {
                code: close_code::AWAY,
                reason: "server shutting down".into(),
            }),
        }
    }

    /// Applies a client's subscription request, or tells it what is wrong with it.
    async fn resubscribe(&mut self, text: &str, outbox: &Outbox) -> Result<(), Ending> {
        let subscription = match Subscription::from_message(text) {
            Ok(subscription) => subscription,
            Err(detail) => return outbox.text(error_message(&detail)).await,
        };
        let runtime = &self.state.runtime;
        if let Err(err) = self
            .feeds
            .follow(runtime, &self.municipality, &subscription)
        {
            return outbox.text(error_message(&err.to_string())).await;
        }
        self.subscription = subscription;
        Ok(())
    }
}

/// A broadcast message, or why the stream ends: missed messages make the client a slow
/// consumer; a closed broadcast means the twin is stopping.
fn received<T>(message: Result<T, RecvError>, what: &str) -> Result<T, Ending> {
    match message {
        Ok(message) => Ok(message),
        Err(RecvError::Lagged(missed)) => {
            Err(Ending::slow(format!("missed {missed} {what} messages")))
        }
        Err(RecvError::Closed) => Err(Ending::Close {
            code: close_code::AWAY,
            reason: "the twin is stopping".into(),
        }),
    }
}

/// Whether `token`, valid when its stream opened at `opened_at` (Unix seconds), still lets its
/// holder read `municipality`: the checks of a request (session, user, role, tenant) on the
/// accounts as they are now; why the stream ends otherwise.
fn still_allowed(
    accounts: &Accounts,
    token: &str,
    municipality: &str,
    opened_at: i64,
) -> Result<(), Ending> {
    let withdrawn = |cause: &str| Ending::Close {
        code: close_code::POLICY,
        reason: close_reason(&format!("access withdrawn: {cause}")),
    };
    match accounts.authenticate(token, opened_at) {
        Ok(principal) => Caller(principal)
            .allow(READERS, Some(municipality))
            .map_err(|refusal| withdrawn(&refusal.detail)),
        Err(AuthError::Store(err)) => {
            tracing::error!("a stream's access check failed: {err}");
            Err(Ending::Close {
                code: close_code::ERROR,
                reason: "internal error (logged)".into(),
            })
        }
        Err(AuthError::InvalidCredentials) => Err(withdrawn("the user is disabled or removed")),
        Err(refusal) => Err(withdrawn(&refusal.to_string())),
    }
}

/// `reason` cut to what a close frame carries, at a character boundary.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(CLOSE_REASON_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

fn error_message(detail: &str) -> String {
    json!({"type": "error", "detail": detail}).to_string()
}

/// Writes queued messages to the client until `last_words` arrive (sent then, within
/// [`CLOSE_GRACE`], ahead of whatever is still queued, and the connection closed) or are
/// dropped (the connection is gone).
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Queued>,
    mut last_words: oneshot::Receiver<Vec<Message>>,
) {
    let last = loop {
        let next = tokio::select! {
            biased;
            last = &mut last_words => break last.ok(),
            next = queue.recv() => next,
        };
        let Some(queued) = next else {
            break (&mut last_words).await.ok();
        };
        // A client that stopped reading blocks this send: the last words must still get
        // through (after what the socket already holds), so the send gives way to them.
        tokio::select! {
            biased;
            last = &mut last_words => break last.ok(),
            sent = sink.send(queued.message) => {
                if sent.is_err() {
                    return;
                }
            }
        }
    };
    let Some(last) = last else { return };
    let said = tokio::time::timeout(CLOSE_GRACE, async {
        for message in last {
            sink.send(message).await?;
        }
        sink.close().await
    })
    .await;
    if !matches!(said, Ok(Ok(()))) {
        tracing::debug!("a stream's last words did not get through");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensors(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn query_defaults_add_readings_only_with_sensors() {
        let plain = Subscription::from_query(None, None).unwrap();
        assert!(plain.state && plain.alerts && !plain.readings);
        let with_sensors = Subscription::from_query(None, Some("P-1, P-2")).unwrap();
        assert!(with_sensors.readings);
        assert_eq!(with_sensors.sensors, sensors(&["P-1", "P-2"]));
        assert!(with_sensors.wants_sensor("P-2") && !with_sensors.wants_sensor("P-3"));
        let only = Subscription::from_query(Some("readings"), None).unwrap();
        assert!(!only.state && !only.alerts && only.readings);
        assert!(only.wants_sensor("anything"), "no sensors: every sensor");
        let err = Subscription::from_query(Some("state,nope"), None).unwrap_err();
        assert!(err.starts_with("topics:") && err.contains("nope"), "{err}");
    }

    /// The close code and reason of a stream's ending (`None`: it goes on).
    fn verdict(ending: Result<(), Ending>) -> Option<(u16, String)> {
        match ending {
            Ok(()) => None,
            Err(Ending::Close { code, reason }) => Some((code, reason)),
            Err(other) => panic!("a check ends a stream with a close frame, not {other:?}"),
        }
    }

    #[test]
    fn access_is_withdrawn_when_the_session_ends_or_the_user_is_disabled_not_when_time_passes() {
        use aquatwin::auth::jwt::JwtKey;
        use aquatwin::auth::users::ACCESS_TTL_S;
        use aquatwin::auth::Role;
        use twin::store::MemoryStore;

        const PASSWORD: &str = "a long enough password";
        let accounts = Accounts::new(
            Arc::new(MemoryStore::new()),
            Some(JwtKey::new(vec![5u8; 32]).unwrap()),
        );
        accounts
            .create_user("ann", PASSWORD, Role::Viewer, Some("north"), 0)
            .unwrap();
        let issued = 1_000;
        let first = accounts.login("ann", PASSWORD, issued).unwrap();
        let second = accounts.login("ann", PASSWORD, issued).unwrap();
        let check = |token: &str, municipality: &str, opened_at: i64| {
            verdict(still_allowed(&accounts, token, municipality, opened_at))
        };
        let withdrawn = |token: &str, municipality: &str, opened_at: i64, cause: &str| {
            let (code, reason) = check(token, municipality, opened_at).expect("access withdrawn");
            assert_eq!(code, close_code::POLICY, "{reason}");
            assert!(reason.starts_with("access withdrawn: "), "{reason}");
            assert!(reason.contains(cause), "{reason} does not say {cause}");
        };

        assert_eq!(check(&first.access_token, "north", issued), None);
        // A stream opened in the token's last second keeps going; one cannot open later.
        let expiry = issued + ACCESS_TTL_S;
        assert_eq!(check(&first.access_token, "north", expiry - 1), None);
        withdrawn(&first.access_token, "north", expiry, "expired");
        withdrawn(
            &first.access_token,
            "south",
            issued,
            "no municipality south",
        );

        accounts.logout(&first.refresh_token).unwrap();
        withdrawn(&first.access_token, "north", issued, "session");
        assert_eq!(check(&second.access_token, "north", issued), None);

        accounts.set_active("ann", false).unwrap();
        withdrawn(&second.access_token, "north", issued, "disabled");
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= CLOSE_REASON_MAX && long.starts_with(&cut));
        assert_eq!(cut.len(), 122, "cut at the last whole character");
    }

    #[test]
    fn subscribe_messages_name_the_field_at_fault() {
        let asked = Subscription::from_message(
            r#"{"subscribe": {"topics": ["readings"], "sensors": ["S"]}}"#,
        )
        .unwrap();
        assert_eq!(
            asked,
            Subscription {
                state: false,
                alerts: false,
                readings: true,
                sensors: sensors(&["S"]),
            }
        );
        let cases = [
            ("not json", "not JSON"),
            (r#"{"topics": []}"#, "subscribe: missing"),
            (r#"{"subscribe": 3}"#, "subscribe: must be an object"),
            (
                r#"{"subscribe": {"topic": []}}"#,
                "subscribe.topic: unknown field",
            ),
            (
                r#"{"subscribe": {"topics": "state"}}"#,
                "subscribe.topics: must be an array",
            ),
            (
                r#"{"subscribe": {"sensors": ["a", 1]}}"#,
                "subscribe.sensors[1]: must be a string",
            ),
            (
                r#"{"subscribe": {"topics": ["weather"]}}"#,
                "subscribe.topics: unknown topic",
            ),
        ];
        for (text, expected) in cases {
            let err = Subscription::from_message(text).unwrap_err();
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }
}
