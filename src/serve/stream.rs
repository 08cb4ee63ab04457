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
//! The token a stream opened with is checked again every few seconds, as a request's would be
//! but for its age ([`access`]): an open stream outlives its short-lived access token, never
//! its session.
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

mod access;

use access::{StreamAccess, ACCESS_RECHECK};

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
        access: StreamAccess::new(token, unix_now()),
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
    /// What the stream opened with, checked again every [`ACCESS_RECHECK`].
    access: StreamAccess,
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
            Event::AccessCheck => self
                .access
                .still_allowed(self.state.accounts.as_ref(), &self.municipality),
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
