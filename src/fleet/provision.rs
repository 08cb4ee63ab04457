//! `aquatwin fleet --provision DIR`: the files that let `serve` and `fleet` talk to each other:
//! the sensors file, the serve configuration (device key digests, session keys in files) and the
//! fleet's own file (device keys: the fleet plays the devices, so it holds their secrets).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use twin::Sensor;

use crate::BadInput;

/// Name of the serve configuration in a provisioned directory.
pub const SERVE_CONFIG: &str = "aquatwin.toml";
/// Name of the fleet file in a provisioned directory.
pub const FLEET_FILE: &str = "fleet.toml";
/// Name of the sensors file in a provisioned directory.
pub const SENSORS_FILE: &str = "sensors.toml";
/// First LoRaWAN device address handed out (NetID 0x13 range, as test networks use).
const FIRST_DEV_ADDR: u32 = 0x2600_0000;

/// The fleet file: what the fleet needs to play the devices of a provisioned twin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// Municipality the devices report to.
    pub municipality: String,
    /// The network (relative to this file).
    pub network: String,
    /// The sensors file (relative to this file).
    pub sensors: String,
    /// Unix ms of simulation time 0 (the twin's clock origin).
    pub clock_origin_ms: i64,
    /// Where serve's embedded MQTT broker listens.
    pub mqtt: String,
    /// Where serve's HTTP server listens.
    pub http: String,
    /// Where serve's LoRaWAN UDP gateway listens.
    pub lorawan: String,
    /// The devices.
    pub device: Vec<FleetDevice>,
}

/// One device the fleet plays.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetDevice {
    /// Device id.
    pub id: String,
    /// Its key (secret).
    pub key: String,
    /// Its sensors.
    pub sensors: Vec<String>,
    /// LoRaWAN DevAddr (hex).
    pub dev_addr: String,
    /// LoRaWAN NwkSKey (hex, secret).
    pub nwk_s_key: String,
    /// LoRaWAN AppSKey (hex, secret).
    pub app_s_key: String,
}

/// Addresses serve listens on, as written in a provisioned configuration.
#[derive(Debug, Clone)]
pub struct Listen {
    /// HTTP.
    pub http: String,
    /// Embedded MQTT broker.
    pub mqtt: String,
    /// LoRaWAN UDP.
    pub lorawan: String,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            http: crate::serve::config::DEFAULT_HTTP_LISTEN.into(),
            mqtt: crate::serve::config::DEFAULT_MQTT_LISTEN.into(),
            lorawan: crate::serve::config::DEFAULT_LORAWAN_LISTEN.into(),
        }
    }
}

/// What to provision.
pub struct Provision<'a> {
    /// Directory to write into (created).
    pub dir: &'a Path,
    /// The network file to copy.
    pub network_text: &'a str,
    /// Municipality id.
    pub municipality: &'a str,
    /// The sensors.
    pub sensors: &'a [Sensor],
    /// Number of devices (sensors are dealt to them in turn).
    pub devices: usize,
    /// Unix ms of simulation time 0.
    pub clock_origin_ms: i64,
    /// The twin's hydraulic period, seconds.
    pub period_seconds: f64,
    /// Listen addresses.
    pub listen: Listen,
}

/// Writes the provisioned files; returns the fleet file.
pub fn write(provision: &Provision<'_>) -> anyhow::Result<FleetFile> {
    let dir = provision.dir;
    std::fs::create_dir_all(dir.join("lorawan"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let devices = provision.devices.clamp(1, provision.sensors.len().max(1));
    std::fs::write(dir.join("network.inp"), provision.network_text)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    std::fs::write(
        dir.join(SENSORS_FILE),
        twin::sensors_file::to_toml(provision.sensors),
    )?;
    let mut rng = rand::rng();
    let mut random_hex = |bytes: usize| {
        let mut buffer = vec![0u8; bytes];
        rng.fill_bytes(&mut buffer);
        hex::encode(buffer)
    };
    let fleet_devices: Vec<FleetDevice> = (0..devices)
        .map(|d| FleetDevice {
            id: format!("fleet-{d}"),
            key: random_hex(32),
            sensors: provision
                .sensors
                .iter()
                .skip(d)
                .step_by(devices)
                .map(|sensor| sensor.id.clone())
                .collect(),
            dev_addr: format!("{:08X}", FIRST_DEV_ADDR + d as u32),
            nwk_s_key: random_hex(16),
            app_s_key: random_hex(16),
        })
        .collect();
    let mut serve = format!(
        "# Written by `aquatwin fleet --provision`.\n\
         data_dir = \"data\"\n\n[http]\nlisten = \"{}\"\n\n[mqtt]\nlisten = \"{}\"\n\n\
         [lorawan]\nudp_listen = \"{}\"\n\n[[municipality]]\nid = \"{}\"\n\
         network = \"network.inp\"\nsensors = \"{SENSORS_FILE}\"\nperiod_seconds = {:?}\n\
         clock_origin = {}\n",
        provision.listen.http,
        provision.listen.mqtt,
        provision.listen.lorawan,
        provision.municipality,
        provision.period_seconds,
        provision.clock_origin_ms
    );
    for device in &fleet_devices {
        for (kind, key) in [("nwk", &device.nwk_s_key), ("app", &device.app_s_key)] {
            write_secret(&dir.join(format!("lorawan/{}.{kind}", device.id)), key)?;
        }
        let digest = hex::encode(actors::devices::key_digest(&device.key));
        serve.push_str(&format!(
            "\n[[municipality.devices]]\nid = \"{}\"\nsensors = {:?}\nkey_sha256 = \"{digest}\"\n\
             [municipality.devices.lorawan]\ndev_addr = \"{}\"\n\
             nwk_s_key = \"file:lorawan/{0}.nwk\"\napp_s_key = \"file:lorawan/{0}.app\"\n",
            device.id, device.sensors, device.dev_addr
        ));
    }
    std::fs::write(dir.join(SERVE_CONFIG), serve)?;
    let fleet = FleetFile {
        municipality: provision.municipality.to_string(),
        network: "network.inp".into(),
        sensors: SENSORS_FILE.into(),
        clock_origin_ms: provision.clock_origin_ms,
        mqtt: provision.listen.mqtt.clone(),
        http: provision.listen.http.clone(),
        lorawan: provision.listen.lorawan.clone(),
        device: fleet_devices,
    };
    let text = toml::to_string(&fleet).context("cannot encode the fleet file")?;
    write_secret(&dir.join(FLEET_FILE), &text)?;
    Ok(fleet)
}

/// Writes a file only its owner may read.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Reads a fleet file; returns it and its directory (the base of its paths).
pub fn read(path: &Path) -> anyhow::Result<(FleetFile, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| BadInput(format!("cannot read {}: {err}", path.display())))?;
    let file: FleetFile = toml::from_str(&text)
        .map_err(|err| BadInput(format!("{}: {}", path.display(), err.message())))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok((file, base))
}
