//! Shared by the `serve_*` and `fleet_*` tests: temporary directories, a configuration with
//! known devices on Net3, `aquatwin serve` as a process (killed on drop), and peers (`curl`,
//! Mosquitto and `mosquitto_pub`, the Python webhook receiver) driven as users drive them.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// The repository root.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The super_admin every test server gets (made with `aquatwin user create` before it starts).
pub const ADMIN: (&str, &str) = ("admin", "password-of-the-test-admin");
/// The secret the tests' servers sign access tokens with.
pub const JWT_SECRET: &str = "jwt-secret-of-the-tests-0123456789abcdef";
/// A viewer of the test municipality (name, password).
pub const NORTH_VIEWER: (&str, &str) = ("viewer-north", "password-of-north-viewer");
/// A viewer of another municipality, `south` (name, password).
pub const SOUTH_VIEWER: (&str, &str) = ("viewer-south", "password-of-south-viewer");
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
        // Owned by a `Serve` from here on, so that any failure below kills it (on drop).
        let unknown = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut serve = Serve {
            child,
            token: String::new(),
            http: unknown,
            mqtt: None,
            lorawan: unknown,
            stderr,
        };
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("aquatwin serve: listening"))
            .unwrap_or_else(|| panic!("serve did not start:\n{}", serve.log()));
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in `{line}`"))
                .to_string()
        };
        serve.http = field("http").parse().unwrap();
        serve.mqtt = field("mqtt").parse().ok();
        serve.lorawan = field("lorawan").parse().unwrap();
        serve.token = login(serve.http, ADMIN.0, ADMIN.1);
        serve
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

    /// Stops it with SIGTERM, which must end it cleanly within `limit`.
    pub fn stop(&mut self, limit: Duration) {
        let status = self
            .terminate(limit)
            .unwrap_or_else(|| panic!("serve did not stop on SIGTERM:\n{}", self.log()));
        assert!(status.success(), "{status:?}\n{}", self.log());
    }

    /// Stops it cleanly ([`Serve::stop`]) and starts `aquatwin serve --config CONFIG ARGS...`
    /// again: a restart on the same data.
    pub fn restart(mut self, config: &Path, args: &[&str]) -> Serve {
        self.stop(Duration::from_secs(30));
        drop(self);
        Serve::start(config, args)
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
        let (status, body) = self.get_text_as(token, path);
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// `GET` of a route as the admin; returns status and body text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        self.get_text_as(&self.token, path)
    }

    /// `GET` of a route with the access token `token`; returns status and body text.
    pub fn get_text_as(&self, token: &str, path: &str) -> (u16, String) {
        let auth = format!("Authorization: Bearer {token}");
        curl(&["-H", &auth, &self.url(path)])
    }

    /// `curl -X METHOD` of a route with `body` of `content_type`, with the access token
    /// `token` (`None`: without one); returns status and body text.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> (u16, String) {
        let mut headers = vec![format!("Content-Type: {content_type}")];
        headers.extend(token.map(|token| format!("Authorization: Bearer {token}")));
        curl_with_body(method, &self.url(path), &headers, body)
    }

    /// [`Serve::send`] of a JSON `body` with the access token `token`.
    pub fn send_json(&self, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
        self.send(method, path, Some(token), "application/json", body)
    }

    /// Stored readings of `sensor` (`[(ts, value)]`).
    pub fn readings(&self, sensor: &str) -> Vec<(i64, f64)> {
        let (status, body) = self.get(&format!(
            "/api/v1/municipalities/{MUNICIPALITY}/sensors/{sensor}/readings?from=0"
        ));
        assert_eq!(status, 200, "{body}");
        readings_of(&body)
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

/// Creates the viewer `user` (name, password) of `municipality` in `data`.
pub fn create_viewer(data: &Path, (name, password): (&str, &str), municipality: &str) {
    create_user(data, name, password, "viewer", Some(municipality));
}

/// `POST /api/v1/auth/login` of `name` and `password` (curl); status and answer.
pub fn try_login(http: SocketAddr, name: &str, password: &str) -> (u16, String) {
    let body = serde_json::json!({"username": name, "password": password}).to_string();
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &format!("http://{http}/api/v1/auth/login"),
    ])
}

/// Logs in over HTTP (curl) and returns the access token.
pub fn login(http: SocketAddr, name: &str, password: &str) -> String {
    login_session(http, name, password).access
}

/// The tokens of one login.
pub struct Session {
    pub access: String,
    pub refresh: String,
}

/// Logs in over HTTP (curl) and returns both tokens.
pub fn login_session(http: SocketAddr, name: &str, password: &str) -> Session {
    let (status, text) = try_login(http, name, password);
    assert_eq!(status, 200, "login of {name}: {text}");
    let tokens: serde_json::Value = serde_json::from_str(&text).unwrap();
    let token = |field: &str| tokens[field].as_str().unwrap().to_string();
    Session {
        access: token("access_token"),
        refresh: token("refresh_token"),
    }
}

/// `POST /api/v1/auth/logout` of `session` (curl); the status.
pub fn logout(http: SocketAddr, session: &Session) -> u16 {
    let body = serde_json::json!({"refresh_token": session.refresh}).to_string();
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        &format!("Authorization: Bearer {}", session.access),
        "-d",
        &body,
        &format!("http://{http}/api/v1/auth/logout"),
    ])
    .0
}

/// An access token as versions before token ids issued them (no `sid`, no `jti`), for
/// `subject`, valid for an hour and signed with [`JWT_SECRET`] (RFC 7519 HS256, made here
/// with the `hmac` crate, not the server's code).
pub fn outdated_token(subject: &str, role: &str, municipality: Option<&str>) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::Mac as _;
    let now = now_ms() / 1000;
    let claims = serde_json::json!({
        "sub": subject, "role": role, "mun": municipality, "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(JWT_SECRET.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
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

/// `curl -X METHOD URL` with `headers` and `body`; the body goes through a file, so bodies of
/// any size fit. Returns status and body text.
pub fn curl_with_body(method: &str, url: &str, headers: &[String], body: &str) -> (u16, String) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("body-{}-{number}", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let data = format!("@{}", file.display());
    let mut args = vec!["-X", method];
    for header in headers {
        args.extend(["-H", header.as_str()]);
    }
    args.extend(["--data-binary", &data, url]);
    let answer = curl(&args);
    let _ = std::fs::remove_file(&file);
    answer
}

/// The `(ts, value)` pairs of a readings answer (`{"readings": [{"ts", "value"}, ...]}`).
pub fn readings_of(body: &serde_json::Value) -> Vec<(i64, f64)> {
    body["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ts"].as_i64().unwrap(), r["value"].as_f64().unwrap()))
        .collect()
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

/// `curl` POST of the JSON batch `body` to `ingest_url` as `device` (id, key), any size. It
/// must be stored (200).
pub fn post_batch(ingest_url: &str, device: (&str, &str), body: &str) {
    let headers = [
        format!("X-Device-Id: {}", device.0),
        format!("Authorization: Bearer {}", device.1),
    ];
    let (status, answer) = curl_with_body("POST", ingest_url, &headers, body);
    assert_eq!(status, 200, "{answer}");
}

/// The topic of `sensor`'s messages of `kind` (`data`, `status`, `heartbeat`) in the test
/// municipality.
pub fn sensor_topic(sensor: &str, kind: &str) -> String {
    format!("aquatwin/{MUNICIPALITY}/sensors/{sensor}/{kind}")
}

/// `mosquitto_pub -q 1` of `message` on `topic` to the broker on 127.0.0.1:`port`, logged in as
/// `login` (user, password; `None`: anonymous) with the client id `pub-<user>`. It returns
/// after the PUBACK; `timeout 20` ends it if none comes, so a broker that never acknowledges
/// fails the test instead of hanging it.
pub fn mosquitto_pub(port: u16, login: Option<(&str, &str)>, topic: &str, message: &str) -> Output {
    let mut command = Command::new("timeout");
    command.args(["20", "mosquitto_pub", "-h", "127.0.0.1", "-q", "1"]);
    command.args(["-p", &port.to_string(), "-t", topic, "-m", message]);
    if let Some((user, password)) = login {
        command.args(["-u", user, "-P", password, "-i", &format!("pub-{user}")]);
    }
    command
        .output()
        .expect("mosquitto_pub is installed (apt install mosquitto-clients)")
}

/// A child process, killed (SIGKILL) and reaped on drop. A child started as the leader of a
/// process group of its own (`CommandExt::process_group(0)`: a wrapper such as `xvfb-run`)
/// takes its whole group with it.
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        // Only while it runs (not reaped) is its id still its own, and so the group's id if it
        // leads one; for a child that leads none, there is no such group and `kill` does nothing.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `mosquitto` broker on a free port, killed on drop.
pub struct Mosquitto {
    _child: KilledOnDrop,
    pub port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let port = free_port();
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
            _child: KilledOnDrop(child),
            port,
            _dir: dir,
        }
    }
}

/// The Python webhook receiver (`tests/peers/webhook_receiver.py`), killed on drop.
pub struct WebhookReceiver {
    _child: KilledOnDrop,
    pub port: u16,
}

impl WebhookReceiver {
    /// Starts the receiver on `port` (0: a free one), checking signatures with `secret`; it
    /// logs every request to `log` ([`webhook_requests`]).
    pub fn start(port: u16, secret: &str, log: &Path) -> WebhookReceiver {
        Self::spawn(port, secret, log, None)
    }

    /// [`WebhookReceiver::start`] on a free port, serving HTTPS with the server certificate
    /// of `ca`.
    pub fn start_tls(secret: &str, log: &Path, ca: &TestCa) -> WebhookReceiver {
        Self::spawn(0, secret, log, Some(ca))
    }

    fn spawn(port: u16, secret: &str, log: &Path, tls: Option<&TestCa>) -> WebhookReceiver {
        let mut command = Command::new("python3");
        command
            .arg(format!("{ROOT}/tests/peers/webhook_receiver.py"))
            .args(["--port", &port.to_string(), "--secret", secret, "--log"])
            .arg(log);
        if let Some(ca) = tls {
            command
                .arg("--tls-cert")
                .arg(&ca.cert)
                .arg("--tls-key")
                .arg(&ca.key);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the webhook receiver");
        let stdout = child.stdout.take().unwrap();
        let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
        let listening: u16 = line.strip_prefix("READY ").unwrap().trim().parse().unwrap();
        assert!(port == 0 || listening == port, "{line}");
        WebhookReceiver {
            _child: KilledOnDrop(child),
            port: listening,
        }
    }
}

/// A private certificate authority and a server certificate it signed for 127.0.0.1 and
/// localhost, made by `tests/peers/make_test_ca.sh` with the `openssl` command.
pub struct TestCa {
    /// The CA's certificate (PEM): what a client is told to trust.
    pub ca: PathBuf,
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server certificate's key (PEM).
    pub key: PathBuf,
}

impl TestCa {
    /// Makes a new CA and server certificate in `dir`.
    pub fn make(dir: &Path) -> TestCa {
        let output = Command::new("bash")
            .arg(format!("{ROOT}/tests/peers/make_test_ca.sh"))
            .arg(dir)
            .output()
            .expect("bash and the openssl command (apt-get install openssl)");
        assert!(
            output.status.success(),
            "make_test_ca.sh: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// The requests a [`WebhookReceiver`] logged to `log`, one JSON value each, oldest first.
pub fn webhook_requests(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A port free now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
