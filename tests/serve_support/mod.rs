//! Shared by the `serve_*` and `fleet_*` tests: temporary directories, a configuration with
//! known devices on Net3, `aquatwin serve` as a process (killed on drop), and peers (`curl`,
//! Mosquitto) driven as users drive them.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The repository root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The super_admin every test server gets (made with `aquatwin user create` before it starts).
pub const ADMIN: (&str, &str) = ("admin", "password-of-the-test-admin");
/// The secret the tests' servers sign access tokens with.
pub const JWT_SECRET: &str = "jwt-secret-of-the-tests-0123456789abcdef";
/// DevEUI of device C (ChirpStack names devices by it).
pub const DEVICE_C_EUI: &str = "0004A30B001C0530";
/// The municipality of the test configuration.
pub const MUNICIPALITY: &str = "north";
/// Device A: reports the tank level and two pressures.
pub const DEVICE_A: (&str, &str) = ("dev-a", "key-of-device-a-0123456789abcdef");
/// Device B: reports a flow.
pub const DEVICE_B: (&str, &str) = ("dev-b", "key-of-device-b-0123456789abcdef");
/// LoRaWAN device C: address, NwkSKey, AppSKey (hex); its sensors are P-123 then L-T2.
pub const DEVICE_C: (&str, &str, &str, &str) = (
    "dev-c",
    "26011BDA",
    "2B7E151628AED2A6ABF7158809CF4F3C",
    "000102030405060708090A0B0C0D0E0F",
);

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{label}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a configuration for Net3 with devices A, B (keys) and C (LoRaWAN, keys in files) into
/// `dir`; ports 0; `extra` is appended to the top-level table (before the municipality).
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    std::fs::write(
        dir.join("sensors.toml"),
        r#"
[[sensor]]
id = "L-T2"
kind = "level"
node = "2"
unit = "ft"

[[sensor]]
id = "P-123"
kind = "pressure"
node = "123"
unit = "psi"

[[sensor]]
id = "P-149"
kind = "pressure"
node = "149"
unit = "psi"

[[sensor]]
id = "F-101"
kind = "flow"
link = "101"
unit = "gpm"
"#,
    )
    .unwrap();
    std::fs::write(dir.join("c.nwk"), DEVICE_C.2).unwrap();
    std::fs::write(dir.join("c.app"), DEVICE_C.3).unwrap();
    let config = format!(
        r#"
data_dir = "data"
{extra}

[http]
listen = "127.0.0.1:0"
body_limit_bytes = 4096

[lorawan]
udp_listen = "127.0.0.1:0"

[[municipality]]
id = "{MUNICIPALITY}"
network = "{root}/hydraulics/networks/Net3.inp"
sensors = "sensors.toml"
period_seconds = 0.5

[[municipality.devices]]
id = "{a}"
sensors = ["L-T2", "P-123", "P-149"]
key_sha256 = "{a_digest}"

[[municipality.devices]]
id = "{b}"
sensors = ["F-101"]
key_sha256 = "{b_digest}"

[[municipality.devices]]
id = "{c}"
sensors = ["P-123", "L-T2"]
key_sha256 = "{c_digest}"
[municipality.devices.lorawan]
dev_addr = "{c_addr}"
dev_eui = "{DEVICE_C_EUI}"
nwk_s_key = "file:c.nwk"
app_s_key = "file:c.app"
"#,
        root = ROOT,
        a = DEVICE_A.0,
        a_digest = sha256_hex(DEVICE_A.1),
        b = DEVICE_B.0,
        b_digest = sha256_hex(DEVICE_B.1),
        c = DEVICE_C.0,
        c_digest = sha256_hex("unused-key-of-device-c"),
        c_addr = DEVICE_C.1,
    );
    let path = dir.join("aquatwin.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The configuration's MQTT section for the embedded broker on a free port.
pub const EMBEDDED_MQTT: &str = "[mqtt]\nlisten = \"127.0.0.1:0\"";

/// `aquatwin serve` running; killed (SIGKILL) on drop unless stopped.
pub struct Serve {
    pub child: Child,
    /// An access token of [`ADMIN`].
    pub token: String,
    pub http: SocketAddr,
    pub mqtt: Option<SocketAddr>,
    pub lorawan: SocketAddr,
    pub stderr: PathBuf,
}

impl Serve {
    /// Starts `aquatwin serve --config CONFIG ARGS...` and waits for its listening line.
    pub fn start(config: &Path, args: &[&str]) -> Serve {
        let stderr = config.with_file_name(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let data = args
            .iter()
            .position(|a| *a == "--data")
            .map(|i| PathBuf::from(args[i + 1]))
            .unwrap_or_else(|| config.with_file_name("data"));
        create_user(&data, ADMIN.0, ADMIN.1, "super_admin", None);
        let mut child = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .env("AQUATWIN_JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("aquatwin serve: listening") => break line,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "serve did not start:\n{}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    );
                }
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in `{line}`"))
                .to_string()
        };
        let http: SocketAddr = field("http").parse().unwrap();
        let token = login(http, ADMIN.0, ADMIN.1);
        Serve {
            token,
            http,
            mqtt: field("mqtt").parse().ok(),
            lorawan: field("lorawan").parse().unwrap(),
            child,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Sends SIGTERM and waits for the exit status (at most `limit`).
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of the Prometheus sample `series` (exact series text with labels).
    pub fn metric(&self, series: &str) -> f64 {
        let (_, text) = curl(&[&self.url("/metrics")]);
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
            .trim()
            .parse()
            .unwrap()
    }

    /// `GET` of a route as the admin; returns status and parsed JSON.
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.get_as(&self.token, path)
    }

    /// `GET` of a route with the access token `token`; returns status and parsed JSON.
    pub fn get_as(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let auth = format!("Authorization: Bearer {token}");
        let (status, body) = curl(&["-H", &auth, &self.url(path)]);
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Stored readings of `sensor` (`[(ts, value)]`).
    pub fn readings(&self, sensor: &str) -> Vec<(i64, f64)> {
        let (status, body) = self.get(&format!(
            "/api/v1/municipalities/{MUNICIPALITY}/sensors/{sensor}/readings?from=0"
        ));
        assert_eq!(status, 200, "{body}");
        body["readings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["ts"].as_i64().unwrap(), r["value"].as_f64().unwrap()))
            .collect()
    }

    /// Waits until `condition` holds (checked every 50 ms, at most `limit`).
    pub fn wait_for(&self, limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// `aquatwin user create` in `data` (a user that exists already is fine: a restarted server).
pub fn create_user(
    data: &Path,
    name: &str,
    password: &str,
    role: &str,
    municipality: Option<&str>,
) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aquatwin"));
    command
        .args(["user", "--data"])
        .arg(data)
        .args(["create", "--name", name, "--role", role])
        .env("AQUATWIN_PASSWORD", password);
    if let Some(m) = municipality {
        command.args(["--municipality", m]);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || stderr.contains("already exists"),
        "user create: {stderr}"
    );
}

/// Logs in over HTTP (curl) and returns the access token.
pub fn login(http: SocketAddr, name: &str, password: &str) -> String {
    let body = serde_json::json!({"username": name, "password": password}).to_string();
    let (status, text) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &format!("http://{http}/api/v1/auth/login"),
    ]);
    assert_eq!(status, 200, "login of {name}: {text}");
    let tokens: serde_json::Value = serde_json::from_str(&text).unwrap();
    tokens["access_token"].as_str().unwrap().to_string()
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `curl -s` with `args` (plus `-w` for the status); returns status and body.
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Readings of `sensor` as an ingest batch (a JSON array of `{sensor_id, ts, value}`).
pub fn readings_batch(sensor: &str, readings: impl IntoIterator<Item = (i64, f64)>) -> String {
    let items: Vec<String> = readings
        .into_iter()
        .map(|(ts, value)| format!(r#"{{"sensor_id":"{sensor}","ts":{ts},"value":{value}}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// Readings of P-123 far out of any pressure sensor's range from `start_ms` on: flagged, and
/// enough of them to raise a sensor fault alert.
pub fn fault_batch(start_ms: i64) -> String {
    readings_batch("P-123", (0..15).map(|i| (start_ms + i * 1000, 1e6)))
}

/// `curl` POST of the JSON batch `body` to `ingest_url` as `device` (id, key); the body goes
/// through a file, so batches of any size fit. It must be stored (200).
pub fn post_batch(ingest_url: &str, device: (&str, &str), body: &str) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("batch-{}-{number}.json", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let (status, answer) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("X-Device-Id: {}", device.0),
        "-H",
        &format!("Authorization: Bearer {}", device.1),
        "--data-binary",
        &format!("@{}", file.display()),
        ingest_url,
    ]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(status, 200, "{answer}");
}

/// A `mosquitto` broker on a free port, killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = TempDir::new("mosquitto");
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
