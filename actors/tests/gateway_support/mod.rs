//! Shared by the gateway tests: a fake twin that answers ingest requests, devices, free ports,
//! and guards that kill the peer processes a test starts.

#![allow(dead_code)] // Each test binary uses a different part.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actors::devices::{key_digest, Device, DeviceRegistry, LorawanSession};
use actors::ingest::{IngestError, IngestHandle, IngestRequest, RejectReason};
use actors::metrics::Metrics;
use tokio::sync::mpsc;
use twin::Reading;

/// How the fake twin answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// Stored, at once.
    Store,
    /// Stored, after a delay.
    StoreAfter(Duration),
    /// Refused as `unavailable`.
    Unavailable,
    /// Stored, at once, without keeping the readings (load tests count them in the metrics).
    Discard,
    /// Never answered (the request is kept, unanswered, until the twin is dropped).
    Hold,
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct Stored {
    pub device: String,
    pub readings: Vec<Reading>,
    /// When the answer was sent.
    pub answered: SystemTime,
}

/// An in-process receiver of ingest requests.
pub struct FakeTwin {
    pub ingest: IngestHandle,
    pub metrics: Arc<Metrics>,
    stored: Arc<Mutex<Vec<Stored>>>,
    answer: Arc<Mutex<Answer>>,
}

impl FakeTwin {
    /// A fake twin serving `devices`; must be created inside a tokio runtime.
    pub fn new(devices: Vec<Device>) -> Self {
        let registry = Arc::new(DeviceRegistry::new(devices).unwrap());
        let metrics = Arc::new(Metrics::default());
        let (requests, mut receiver) = mpsc::channel::<IngestRequest>(4096);
        let stored = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer::Store));
        let (stored_in, answer_in) = (stored.clone(), answer.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(request) = receiver.recv().await {
                let mode = *answer_in.lock().unwrap();
                let stored = stored_in.clone();
                match mode {
                    Answer::Hold => held.push(request),
                    Answer::Unavailable => {
                        let _ = request.ack.send(Err(IngestError::new(
                            RejectReason::Unavailable,
                            "fake store failure",
                        )));
                    }
                    Answer::Store => answer_stored(request, &stored),
                    Answer::Discard => {
                        let count = request.readings.len();
                        let _ = request.ack.send(Ok(count));
                    }
                    Answer::StoreAfter(delay) => {
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            answer_stored(request, &stored);
                        });
                    }
                }
            }
        });
        let ingest = IngestHandle::new(requests, registry, metrics.clone());
        Self {
            ingest,
            metrics,
            stored,
            answer,
        }
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Everything stored so far.
    pub fn stored(&self) -> Vec<Stored> {
        self.stored.lock().unwrap().clone()
    }

    /// Every stored reading, in arrival order.
    pub fn readings(&self) -> Vec<Reading> {
        self.stored()
            .into_iter()
            .flat_map(|stored| stored.readings)
            .collect()
    }

    /// Waits until at least `count` readings are stored (or panics after 10 s).
    pub async fn wait_readings(&self, count: usize) -> Vec<Reading> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let readings = self.readings();
            if readings.len() >= count {
                return readings;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} readings arrived",
                readings.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn answer_stored(request: IngestRequest, stored: &Mutex<Vec<Stored>>) {
    let count = request.readings.len();
    stored.lock().unwrap().push(Stored {
        device: request.device.id.clone(),
        readings: request.readings,
        answered: SystemTime::now(),
    });
    let _ = request.ack.send(Ok(count));
}

/// Waits until `condition` holds (or panics after 10 s).
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A device of `municipality` with key `<id>-key`.
pub fn device(id: &str, municipality: &str, sensors: &[&str]) -> Device {
    Device {
        id: id.to_string(),
        municipality: municipality.to_string(),
        sensors: sensors.iter().map(|s| s.to_string()).collect(),
        key_sha256: key_digest(&format!("{id}-key")),
        active: true,
        lorawan: None,
    }
}

/// A LoRaWAN device with the given session.
pub fn lorawan_device(id: &str, sensors: &[&str], session: LorawanSession) -> Device {
    Device {
        lorawan: Some(session),
        ..device(id, "town", sensors)
    }
}

/// A TCP port free right now on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port free right now on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Kills the process when dropped.
pub struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ChildGuard {
    /// Starts `command` with stdout and stderr captured.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        ChildGuard(Some(child))
    }

    /// Waits for the process to exit (on a blocking thread); kills it after `limit`.
    pub async fn finish(mut self, limit: Duration) -> Output {
        let child = self.0.take().unwrap();
        let pid = child.id();
        let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
        match tokio::time::timeout(limit, waiting).await {
            Ok(output) => output.unwrap().unwrap(),
            Err(_) => {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                panic!("process {pid} did not finish in {limit:?}");
            }
        }
    }
}

/// Runs a command to completion (killed after `limit`) without blocking the runtime.
pub async fn run(command: &mut Command, limit: Duration) -> Output {
    ChildGuard::spawn(command).finish(limit).await
}

/// A Python peer script of `tests/peers/`.
pub fn peer_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers")
        .join(name)
}
