//! Following a running `aquatwin serve`: the network over the HTTP API, then states and alerts
//! over the WebSocket stream `/api/v1/stream` (its message contract is in ARCHITECTURE.md), with
//! the alerts raised before each connection listed over the HTTP API.
//!
//! The stream is read on its own thread with a blocking client, so the viewer needs no async
//! runtime; the thread hands finished frames to the render loop through a channel and
//! reconnects (with backoff) when the server goes away, logging in again first when the
//! viewer has an account and the server no longer takes its access token ([`access`]).

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use hydraulics::Network;
use serde::Deserialize;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::colour::Quantity;
use crate::frames::Frame;

mod access;

use access::{Access, Failure};
pub use access::{Credentials, PASSWORD_ENV};

/// Largest network document accepted from the server.
const NETWORK_LIMIT: u64 = 512 * 1024 * 1024;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the twin runs and who asks.
#[derive(Debug)]
pub struct LiveSource {
    /// `http://host:port` of `serve`.
    pub url: String,
    pub municipality: String,
    access: Access,
}

/// Why the live twin cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Refused in a way that asking again does not change (a token that is not taken and no
    /// account to log in as, a failed login, no access to the municipality).
    #[error("{url}: {detail}")]
    Refused { url: String, detail: String },
    /// Not reached, or it failed: asking again later may work.
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    #[error("the network served at {url} does not parse: {detail}")]
    Network { url: String, detail: String },
    #[error("`{0}` is not an http:// URL")]
    BadUrl(String),
}

impl LiveError {
    /// Whether asking again later may succeed.
    fn is_transient(&self) -> bool {
        matches!(self, LiveError::Http { .. })
    }
}

impl LiveSource {
    /// The twin of `municipality` served at `url` (`http://host:port`), asked as
    /// `credentials` say.
    pub fn new(url: String, municipality: String, credentials: Credentials) -> Self {
        Self {
            url,
            municipality,
            access: Access::new(credentials),
        }
    }

    fn base(&self) -> Result<String, LiveError> {
        let base = self.url.trim_end_matches('/');
        if base.starts_with("http://") {
            Ok(base.to_string())
        } else {
            Err(LiveError::BadUrl(self.url.clone()))
        }
    }

    fn get(&mut self, path: &str) -> Result<String, LiveError> {
        let base = self.base()?;
        let url = format!("{base}{path}");
        self.access
            .authorized(&base, |token| access::get(&url, token, NETWORK_LIMIT))
    }

    /// The municipality's network, as the server has it.
    pub fn fetch_network(&mut self) -> Result<Network, LiveError> {
        let path = format!(
            "/api/v1/municipalities/{}/network?format=inp",
            self.municipality
        );
        let text = self.get(&path)?;
        hydraulics::read_str(&text, &self.url).map_err(|error| LiveError::Network {
            url: format!("{}{path}", self.url),
            detail: error.to_string(),
        })
    }

    /// The municipality's alerts as the server keeps them (open and resolved): the stream
    /// only sends alerts raised or changed while connected.
    pub fn fetch_alerts(&mut self) -> Result<Vec<AlertUpdate>, LiveError> {
        let path = format!("/api/v1/municipalities/{}/alerts", self.municipality);
        let text = self.get(&path)?;
        let list: AlertList = serde_json::from_str(&text).map_err(|error| LiveError::Http {
            url: format!("{}{path}", self.url),
            detail: format!("not a list of alerts: {error}"),
        })?;
        Ok(list.alerts.into_iter().map(AlertUpdate::from).collect())
    }

    fn stream_url(&self) -> Result<String, LiveError> {
        let base = self.base()?;
        Ok(format!(
            "ws://{}/api/v1/stream?municipality={}&topics=state,alerts",
            &base["http://".len()..],
            self.municipality
        ))
    }

    /// The stream, subscribed.
    fn open_stream(&mut self) -> Result<WebSocket<MaybeTlsStream<TcpStream>>, LiveError> {
        let base = self.base()?;
        let url = self.stream_url()?;
        self.access.authorized(&base, |token| connect(&url, token))
    }
}

/// A new or changed alert, as the stream sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertUpdate {
    pub id: u64,
    pub title: String,
    pub place: AlertPlace,
    /// Unix seconds.
    pub raised: f64,
    pub open: bool,
}

/// Where an alert is.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertPlace {
    Node(String),
    Link(String),
    Elsewhere,
}

/// What the stream thread reports.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Connected (again); `warning`: why the alerts raised before could not be read.
    Connected {
        warning: Option<String>,
    },
    /// A period's estimated state (times in Unix seconds).
    State(Frame),
    Alert(AlertUpdate),
    /// The connection dropped; the thread retries.
    Disconnected(String),
    /// The server refused us; the thread stopped.
    Refused(String),
}

/// The receiving end, polled by the render loop.
#[derive(bevy::prelude::Resource)]
pub struct LiveFeed {
    receiver: std::sync::Mutex<Receiver<LiveEvent>>,
}

impl LiveFeed {
    /// Every event that arrived since the last call.
    pub fn drain(&self) -> Vec<LiveEvent> {
        match self.receiver.lock() {
            Ok(receiver) => receiver.try_iter().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Starts following `source`'s stream on its own thread. `sensor_nodes`: the node each sensor
/// sits on (for residuals).
pub fn follow(
    source: LiveSource,
    network: &Network,
    sensor_nodes: HashMap<String, usize>,
) -> Result<LiveFeed, LiveError> {
    let url_of_source = source.url.clone();
    let (sender, receiver) = mpsc::channel();
    let decoder = Decoder {
        nodes: network
            .node_ids()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        links: network
            .link_ids()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        node_order: Vec::new(),
        link_order: Vec::new(),
        node_count: network.nodes.len(),
        link_count: network.links.len(),
        sensor_nodes,
    };
    std::thread::Builder::new()
        .name("aquatwin-view-live".into())
        .spawn(move || run_stream(source, decoder, &sender))
        .map_err(|error| LiveError::Http {
            url: url_of_source,
            detail: format!("cannot start the stream thread: {error}"),
        })?;
    Ok(LiveFeed {
        receiver: std::sync::Mutex::new(receiver),
    })
}

/// Follows the stream until the viewer closes or the server refuses it, reconnecting (and
/// logging in again, with an account) whenever it drops. Connection changes go to stderr too:
/// a control-room screen's log says when and why it went stale.
fn run_stream(mut source: LiveSource, mut decoder: Decoder, events: &Sender<LiveEvent>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match source.open_stream() {
            Ok(mut socket) => {
                backoff = Duration::from_millis(500);
                // Listed once subscribed, so that none raised in between is missed (one that
                // is listed and streamed too just replaces itself).
                let warning = match source.fetch_alerts() {
                    Ok(alerts) => {
                        for alert in alerts {
                            if events.send(LiveEvent::Alert(alert)).is_err() {
                                return;
                            }
                        }
                        None
                    }
                    Err(error) => Some(format!("earlier alerts unavailable: {error}")),
                };
                match &warning {
                    None => eprintln!("aquatwin-view: connected to {}", source.url),
                    Some(warning) => {
                        eprintln!("aquatwin-view: connected to {}; {warning}", source.url)
                    }
                }
                if events.send(LiveEvent::Connected { warning }).is_err() {
                    return;
                }
                let reason = read_messages(&mut socket, &mut decoder, events);
                eprintln!("aquatwin-view: disconnected ({reason}); reconnecting");
                if events.send(LiveEvent::Disconnected(reason)).is_err() {
                    return;
                }
            }
            Err(error) if error.is_transient() => {
                eprintln!("aquatwin-view: reconnecting: {error}");
                if events
                    .send(LiveEvent::Disconnected(error.to_string()))
                    .is_err()
                {
                    return;
                }
            }
            Err(error) => {
                eprintln!("aquatwin-view: refused: {error}; no longer following the twin");
                let _ = events.send(LiveEvent::Refused(error.to_string()));
                return;
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn connect(url: &str, token: &str) -> Result<WebSocket<MaybeTlsStream<TcpStream>>, Failure> {
    let refused = |detail: String| {
        Failure::Other(LiveError::Refused {
            url: url.to_string(),
            detail,
        })
    };
    let mut request = url
        .into_client_request()
        .map_err(|error| refused(error.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| refused("the token has characters a header cannot carry".into()))?;
    request.headers_mut().insert("authorization", bearer);
    match tungstenite::connect(request) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(access::refusal(url, response.status().as_u16(), &body))
        }
        Err(error) => Err(Failure::Other(LiveError::Http {
            url: url.to_string(),
            detail: error.to_string(),
        })),
    }
}

/// Reads until the connection ends; returns why it ended.
fn read_messages(
    socket: &mut WebSocket<MaybeTlsStream<TcpStream>>,
    decoder: &mut Decoder,
    events: &Sender<LiveEvent>,
) -> String {
    loop {
        let message = match socket.read() {
            Ok(message) => message,
            Err(error) => return format!("connection lost: {error}"),
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                return frame.map_or("closed by the server".into(), |f| {
                    format!("closed by the server: {}", f.reason)
                })
            }
            _ => continue,
        };
        match decoder.decode(text.as_str()) {
            Ok(Some(event)) => {
                if events.send(event).is_err() {
                    return "viewer closed".into();
                }
            }
            Ok(None) => {}
            Err(error) => {
                let _ = events.send(LiveEvent::Disconnected(format!(
                    "ignored a message the viewer does not understand: {error}"
                )));
            }
        }
    }
}

/// Turns stream messages into frames in the network's order.
struct Decoder {
    nodes: HashMap<String, usize>,
    links: HashMap<String, usize>,
    /// Network index of each position of the stream's arrays (from `hello`).
    node_order: Vec<Option<usize>>,
    link_order: Vec<Option<usize>>,
    node_count: usize,
    link_count: usize,
    sensor_nodes: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamMessage {
    Hello {
        node_ids: Vec<String>,
        link_ids: Vec<String>,
    },
    State {
        timestamp_ms: i64,
        #[serde(default)]
        head: Vec<Option<f64>>,
        #[serde(default)]
        pressure: Vec<Option<f64>>,
        #[serde(default)]
        demand: Vec<Option<f64>>,
        #[serde(default)]
        flow: Vec<Option<f64>>,
        #[serde(default)]
        velocity: Vec<Option<f64>>,
        #[serde(default)]
        headloss: Vec<Option<f64>>,
        #[serde(default)]
        status: Vec<u8>,
        #[serde(default)]
        residuals: Vec<Residual>,
    },
    Alert {
        alert: AlertBody,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct Residual {
    sensor_id: String,
    residual: Option<f64>,
}

/// The answer of `GET .../alerts`.
#[derive(Deserialize)]
struct AlertList {
    alerts: Vec<AlertBody>,
}

#[derive(Deserialize)]
struct AlertBody {
    id: u64,
    #[serde(default)]
    kind: serde_json::Value,
    #[serde(default)]
    severity: serde_json::Value,
    location: serde_json::Value,
    raised_ms: i64,
    open: bool,
    #[serde(default)]
    message: String,
}

impl Decoder {
    fn decode(&mut self, text: &str) -> Result<Option<LiveEvent>, serde_json::Error> {
        Ok(match serde_json::from_str::<StreamMessage>(text)? {
            StreamMessage::Hello { node_ids, link_ids } => {
                self.node_order = node_ids
                    .iter()
                    .map(|id| self.nodes.get(id).copied())
                    .collect();
                self.link_order = link_ids
                    .iter()
                    .map(|id| self.links.get(id).copied())
                    .collect();
                None
            }
            StreamMessage::State {
                timestamp_ms,
                head,
                pressure,
                demand,
                flow,
                velocity,
                headloss,
                status,
                residuals,
            } => {
                let nodes =
                    |values: Vec<Option<f64>>| spread(&values, &self.node_order, self.node_count);
                let links =
                    |values: Vec<Option<f64>>| spread(&values, &self.link_order, self.link_count);
                let mut node_values = vec![
                    (Quantity::Head, nodes(head)),
                    (Quantity::Pressure, nodes(pressure)),
                    (Quantity::Demand, nodes(demand)),
                ];
                if !residuals.is_empty() {
                    let mut at_nodes = vec![f32::NAN; self.node_count];
                    for residual in residuals {
                        if let (Some(&node), Some(value)) = (
                            self.sensor_nodes.get(&residual.sensor_id),
                            residual.residual,
                        ) {
                            at_nodes[node] = value as f32;
                        }
                    }
                    node_values.push((Quantity::Residual, at_nodes));
                }
                let mut link_status = vec![1u8; self.link_count];
                for (&value, index) in status.iter().zip(&self.link_order) {
                    if let Some(index) = index {
                        link_status[*index] = value;
                    }
                }
                Some(LiveEvent::State(Frame {
                    time: timestamp_ms as f64 / 1000.0,
                    nodes: node_values,
                    links: vec![
                        (Quantity::Flow, links(flow)),
                        (Quantity::Velocity, links(velocity)),
                        (Quantity::Headloss, links(headloss)),
                    ],
                    status: if status.is_empty() {
                        Vec::new()
                    } else {
                        link_status
                    },
                }))
            }
            StreamMessage::Alert { alert } => Some(LiveEvent::Alert(alert.into())),
            StreamMessage::Other => None,
        })
    }
}

impl From<AlertBody> for AlertUpdate {
    fn from(alert: AlertBody) -> Self {
        // The server writes a location as `{"node": id}`, `{"link": id}`, `{"device": id}` or
        // `"network"`.
        let place = match &alert.location {
            serde_json::Value::Object(map) => match (map.get("node"), map.get("link")) {
                (Some(serde_json::Value::String(id)), _) => AlertPlace::Node(id.clone()),
                (_, Some(serde_json::Value::String(id))) => AlertPlace::Link(id.clone()),
                _ => AlertPlace::Elsewhere,
            },
            _ => AlertPlace::Elsewhere,
        };
        let word = |value: &serde_json::Value| value.as_str().unwrap_or("").to_string();
        AlertUpdate {
            id: alert.id,
            title: format!(
                "#{} {} {}: {}",
                alert.id,
                word(&alert.severity),
                word(&alert.kind),
                alert.message
            ),
            place,
            raised: alert.raised_ms as f64 / 1000.0,
            open: alert.open,
        }
    }
}

/// Values in the stream's order put into network order (NaN where an id is unknown or the
/// value is `null`: the server writes NaN as `null`).
fn spread(values: &[Option<f64>], order: &[Option<usize>], count: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; count];
    for (value, index) in values.iter().zip(order) {
        if let (Some(value), Some(index)) = (value, index) {
            out[*index] = *value as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> Decoder {
        Decoder {
            nodes: [("A".to_string(), 0), ("B".to_string(), 1)].into(),
            links: [("P".to_string(), 0)].into(),
            node_order: Vec::new(),
            link_order: Vec::new(),
            node_count: 2,
            link_count: 1,
            sensor_nodes: [("S1".to_string(), 1)].into(),
        }
    }

    #[test]
    fn states_are_put_in_network_order_after_hello() {
        let mut decoder = decoder();
        let hello = r#"{"type":"hello","municipality":"m","node_ids":["B","A","X"],"link_ids":["P"],"units":{}}"#;
        assert!(decoder.decode(hello).unwrap().is_none());
        let state = r#"{"type":"state","municipality":"m","timestamp_ms":5000,"sim_seconds":0,
            "converged":true,"head":[20,10,99],"pressure":[null,1,9],"demand":[0,0,0],"flow":[-3],
            "velocity":[1],"headloss":[0.5],"status":[2],
            "residuals":[{"sensor_id":"S1","measured":1,"simulated":2,"residual":-1}]}"#;
        let Some(LiveEvent::State(frame)) = decoder.decode(state).unwrap() else {
            panic!("a state")
        };
        assert_eq!(frame.time, 5.0);
        let head = &frame
            .nodes
            .iter()
            .find(|(q, _)| *q == Quantity::Head)
            .unwrap()
            .1;
        assert_eq!(head, &vec![10.0, 20.0]);
        let pressure = &frame
            .nodes
            .iter()
            .find(|(q, _)| *q == Quantity::Pressure)
            .unwrap()
            .1;
        assert!(pressure[1].is_nan(), "null is no data");
        let residual = &frame
            .nodes
            .iter()
            .find(|(q, _)| *q == Quantity::Residual)
            .unwrap()
            .1;
        assert!(residual[0].is_nan());
        assert_eq!(residual[1], -1.0);
        assert_eq!(frame.status, vec![2]);
    }

    #[test]
    fn alerts_carry_their_place() {
        let mut decoder = decoder();
        let alert = r#"{"type":"alert","alert":{"id":7,"kind":"leak","severity":"major",
            "location":{"link":"P"},"raised_ms":1000,"last_seen_ms":1000,"occurrences":1,
            "message":"flow up","open":true}}"#;
        let Some(LiveEvent::Alert(update)) = decoder.decode(alert).unwrap() else {
            panic!("an alert")
        };
        assert_eq!(update.place, AlertPlace::Link("P".into()));
        assert_eq!(update.raised, 1.0);
        assert!(update.title.contains("leak"));
        let at_node = r#"{"type":"alert","alert":{"id":8,"kind":"sensor_fault","severity":"warning",
            "location":{"node":"A"},"raised_ms":2000,"open":false}}"#;
        let Some(LiveEvent::Alert(update)) = decoder.decode(at_node).unwrap() else {
            panic!("an alert")
        };
        assert_eq!(update.place, AlertPlace::Node("A".into()));
        assert!(!update.open);
        let whole =
            r#"{"type":"alert","alert":{"id":9,"location":"network","raised_ms":0,"open":true}}"#;
        let Some(LiveEvent::Alert(update)) = decoder.decode(whole).unwrap() else {
            panic!("an alert")
        };
        assert_eq!(update.place, AlertPlace::Elsewhere);
        assert!(decoder
            .decode(r#"{"type":"reading","sensor_id":"S1"}"#)
            .unwrap()
            .is_none());
        assert!(decoder.decode("not json").is_err());
    }

    #[test]
    fn only_http_urls_are_accepted() {
        let token = || Credentials::Token("t".into());
        let mut source = LiveSource::new("ftp://example".into(), "m".into(), token());
        assert!(matches!(source.fetch_network(), Err(LiveError::BadUrl(_))));
        let source = LiveSource::new("http://127.0.0.1:8080/".into(), "m".into(), token());
        assert_eq!(
            source.stream_url().unwrap(),
            "ws://127.0.0.1:8080/api/v1/stream?municipality=m&topics=state,alerts"
        );
    }
}
