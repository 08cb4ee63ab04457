//! Authorization of EVERY operation of the HTTP API, driven by the server's own OpenAPI
//! document (`GET /api/v1/openapi.json`).
//!
//! `aquatwin serve` runs with two municipalities (`north`, `south`, each with its own sensors
//! and devices) and users of every user role in each. For every operation of the document that
//! needs an access token (it names its roles in `x-roles`), with path parameters filled with
//! real ids of the target municipality, and each municipality in turn as the target:
//! - no token, a malformed token, a tampered one, an expired one, one of an older version
//!   (without a token id), one of a session that was logged out and a device's key (the
//!   `device` role: devices authenticate with keys, which open only the ingest routes) are 401;
//! - every user role NOT in `x-roles`, with a token of the target municipality, is 403;
//! - every role in `x-roles` of the target municipality gets neither 401 nor 403;
//! - every role in `x-roles` of the OTHER municipality is 404, with a body identical to the
//!   answer for a municipality that does not exist (so nothing of the target tenant: none of
//!   its sensor or device ids, none of its values).
//!
//! Bodies sent are `{}`: a role check must come before the body is looked at.
//!
//! The operations without `x-roles` must be exactly the public ones listed in [`PUBLIC`] and
//! the device-authenticated ingest ([`DEVICE_AUTHENTICATED`], checked with device
//! credentials). Because the router registers every route through `utoipa_axum::routes!`, the
//! router and the document cannot diverge: a new route appears here, and one added without a
//! role check fails this test (it is either not in `x-roles`-less lists, or answers 200
//! instead of 401/403/404).

mod serve_support;

use std::collections::BTreeSet;
use std::path::Path;

use aquatwin::auth::jwt::{Claims, JwtKey};
use aquatwin::auth::Role;
use serde_json::Value;
use serve_support::*;

/// Operations anyone may call, without a token.
const PUBLIC: &[&str] = &[
    "GET /health",
    "GET /ready",
    "GET /metrics",
    "GET /api/v1/openapi.json",
    "GET /api/v1/docs",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
];

/// Operations authenticated by device keys, not access tokens.
const DEVICE_AUTHENTICATED: &[&str] = &["POST /api/v1/ingest"];

/// The roles people can have (devices have keys, not user accounts).
const USER_ROLES: [Role; 4] = [
    Role::SuperAdmin,
    Role::MunicipalityAdmin,
    Role::Operator,
    Role::Viewer,
];

const PASSWORD: &str = "password-of-the-authz-tests";

/// A municipality of the test and what belongs to it.
struct Tenant {
    id: &'static str,
    /// Its sensors (the first is read and written by the test).
    sensors: &'static [&'static str],
    /// A device of its own and that device's key.
    device: (&'static str, &'static str),
    /// A value only this tenant has stored.
    value: f64,
}

const NORTH: Tenant = Tenant {
    id: MUNICIPALITY,
    sensors: &["P-123", "P-149", "L-T2", "F-101"],
    device: DEVICE_A,
    value: 51.234567,
};

const SOUTH: Tenant = Tenant {
    id: "south",
    sensors: &["SOUTH-P-15", "SOUTH-L-1"],
    device: ("dev-south", "key-of-the-south-device-0123456789"),
    value: 47.654321,
};

/// A municipality nobody has.
const NOWHERE: &str = "nowhere";

fn user_name(tenant: &str, role: Role) -> String {
    format!("{tenant}-{}", role.name().replace('_', "-"))
}

/// The test configuration plus `south`: its own sensors (on nodes 15 and tank 1 of Net3) and
/// device.
fn write_two_municipalities(dir: &Path) -> std::path::PathBuf {
    let config = write_config(dir, EMBEDDED_MQTT);
    std::fs::write(
        dir.join("south-sensors.toml"),
        format!(
            "[[sensor]]\nid = \"{}\"\nkind = \"pressure\"\nnode = \"15\"\nunit = \"psi\"\n\n\
             [[sensor]]\nid = \"{}\"\nkind = \"level\"\nnode = \"1\"\nunit = \"ft\"\n",
            SOUTH.sensors[0], SOUTH.sensors[1]
        ),
    )
    .unwrap();
    let south = format!(
        "\n[[municipality]]\nid = \"{id}\"\nnetwork = \"{ROOT}/hydraulics/networks/Net3.inp\"\n\
         sensors = \"south-sensors.toml\"\nperiod_seconds = 0.5\n\n\
         [[municipality.devices]]\nid = \"{device}\"\nsensors = [\"{s0}\", \"{s1}\"]\n\
         key_sha256 = \"{digest}\"\n",
        id = SOUTH.id,
        device = SOUTH.device.0,
        s0 = SOUTH.sensors[0],
        s1 = SOUTH.sensors[1],
        digest = sha256_hex(SOUTH.device.1),
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&south);
    std::fs::write(&config, text).unwrap();
    config
}

/// One request: method, path with query, extra headers, body; status and body text.
fn call(serve: &Serve, method: &str, path: &str, headers: &[String], body: &str) -> (u16, String) {
    let url = serve.url(path);
    let mut args = vec!["-X", method];
    for header in headers {
        args.extend(["-H", header.as_str()]);
    }
    if method != "GET" {
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    args.push(&url);
    curl(&args)
}

fn bearer(token: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {token}")]
}

fn ingest(serve: &Serve, device: (&str, &str), sensor: &str, value: f64) -> (u16, String) {
    let body = format!(
        r#"{{"sensor_id": "{sensor}", "ts": {}, "value": {value}}}"#,
        now_ms()
    );
    let headers = [
        format!("X-Device-Id: {}", device.0),
        format!("X-Device-Key: {}", device.1),
    ];
    call(serve, "POST", "/api/v1/ingest", &headers, &body)
}

/// An operation of the document.
struct Operation {
    method: String,
    path: String,
    roles: Option<Vec<Role>>,
    parameters: Vec<(String, String)>,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The request path for `municipality`, path and query parameters filled with its ids.
    fn url(&self, municipality: &str, sensor: &str) -> String {
        let value = |name: &str| match name {
            "municipality" => municipality.to_string(),
            "sensor" => sensor.to_string(),
            // Role checks come before the alert is looked up: any id shows them.
            "id" => "1".to_string(),
            "version" | "job" => "1".to_string(),
            "subscription" => "sub-0".to_string(),
            "device" => "no-such-device".to_string(),
            other => panic!("{}: no value for the parameter {other}", self.name()),
        };
        let mut path = self.path.clone();
        let mut query = Vec::new();
        for (name, place) in &self.parameters {
            match place.as_str() {
                "path" => path = path.replace(&format!("{{{name}}}"), &value(name)),
                "query" if name == "municipality" => query.push(format!("{name}={}", value(name))),
                _ => {}
            }
        }
        if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }

    /// Whether it names a municipality (in the path or the query).
    fn is_tenant_scoped(&self) -> bool {
        self.parameters
            .iter()
            .any(|(name, _)| name == "municipality")
    }
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let roles = operation.get("x-roles").map(|roles| {
                roles
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|role| role.as_str().unwrap().parse::<Role>().unwrap())
                    .collect()
            });
            let parameters = operation["parameters"]
                .as_array()
                .map(|parameters| {
                    parameters
                        .iter()
                        .map(|p| {
                            let text = |field: &str| p[field].as_str().unwrap().to_string();
                            (text("name"), text("in"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                roles,
                parameters,
            });
        }
    }
    operations
}

fn error_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[test]
fn every_operation_checks_token_role_and_tenant() {
    let dir = TempDir::new("serve-authz");
    let config = write_two_municipalities(dir.path());
    let data = dir.path().join("data");
    for tenant in [NORTH.id, SOUTH.id] {
        for role in &USER_ROLES[1..] {
            create_user(
                &data,
                &user_name(tenant, *role),
                PASSWORD,
                role.name(),
                Some(tenant),
            );
        }
    }
    let serve = Serve::start(&config, &[]);
    let token = |tenant: &Tenant, role: Role| match role {
        Role::SuperAdmin => serve.token.clone(),
        _ => login(serve.http, &user_name(tenant.id, role), PASSWORD),
    };
    let tokens: Vec<Vec<(Role, String)>> = [&NORTH, &SOUTH]
        .iter()
        .map(|tenant| USER_ROLES.iter().map(|&r| (r, token(tenant, r))).collect())
        .collect();
    for tenant in [&NORTH, &SOUTH] {
        let (status, body) = ingest(&serve, tenant.device, tenant.sensors[0], tenant.value);
        assert_eq!(status, 200, "{body}");
    }

    let (status, text) = call(&serve, "GET", "/api/v1/openapi.json", &[], "");
    assert_eq!(status, 200, "{text}");
    let document: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let operations = operations(&document);

    // The operations without roles are exactly the public and device ones, and few.
    let unscoped: BTreeSet<String> = operations
        .iter()
        .filter(|op| op.roles.is_none())
        .map(Operation::name)
        .collect();
    let expected: BTreeSet<String> = PUBLIC
        .iter()
        .chain(DEVICE_AUTHENTICATED)
        .map(|name| name.to_string())
        .collect();
    assert_eq!(unscoped, expected, "operations without x-roles");
    assert!(
        operations.len() >= 2 * unscoped.len(),
        "{}",
        operations.len()
    );

    // Public operations answer without a token; the docs page is HTML and names its document.
    for name in PUBLIC {
        let operation = operations.iter().find(|op| op.name() == *name).unwrap();
        let (status, body) = call(&serve, &operation.method, &operation.path, &[], "{}");
        let expected = if operation.method == "POST" { 422 } else { 200 };
        assert_eq!(status, expected, "{name}: {body}");
    }
    let (_, page) = call(&serve, "GET", "/api/v1/docs", &[], "");
    assert!(
        page.contains("<html") && page.contains("openapi.json"),
        "{page}"
    );

    // Ingest: device credentials, confined to the device's own sensors.
    let (status, _) = call(&serve, "POST", "/api/v1/ingest", &[], "{}");
    assert_eq!(status, 401);
    let (status, _) = ingest(
        &serve,
        (NORTH.device.0, SOUTH.device.1),
        NORTH.sensors[0],
        1.0,
    );
    assert_eq!(status, 401);
    let (status, body) = ingest(&serve, NORTH.device, SOUTH.sensors[0], 1.0);
    assert_eq!(status, 403, "{body}");

    let expired = JwtKey::new(JWT_SECRET).unwrap().issue(&Claims {
        sub: user_name(SOUTH.id, Role::Viewer),
        role: Role::Viewer,
        mun: Some(SOUTH.id.to_string()),
        sid: "fam_of_the_test".to_string(),
        jti: "at_of_the_test".to_string(),
        iat: now_ms() / 1000 - 7200,
        exp: now_ms() / 1000 - 3600,
    });
    let valid = &tokens[1][3].1;
    let last = if valid.ends_with('x') { "y" } else { "x" };
    let tampered = format!("{}{last}", &valid[..valid.len() - 1]);
    // The `device` role: a device's key (with its id, as devices send it) opens no route
    // meant for people.
    let mut device_key = bearer(NORTH.device.1);
    device_key.push(format!("X-Device-Id: {}", NORTH.device.0));
    let outdated = outdated_token(
        &user_name(SOUTH.id, Role::Viewer),
        Role::Viewer.name(),
        Some(SOUTH.id),
    );
    // A session of its own, logged out: its access token ends with it.
    let ended = login_session(serve.http, &user_name(SOUTH.id, Role::Viewer), PASSWORD);
    assert_eq!(logout(serve.http, &ended), 204);
    let bad_tokens: [(&str, Vec<String>); 7] = [
        ("no token", vec![]),
        ("malformed token", bearer("not-a-token")),
        ("tampered token", bearer(&tampered)),
        ("expired token", bearer(&expired)),
        ("token of an older version", bearer(&outdated)),
        ("token of an ended session", bearer(&ended.access)),
        ("device key", device_key),
    ];

    let mut checked = 0;
    for (target_index, target) in [&NORTH, &SOUTH].into_iter().enumerate() {
        let other_index = 1 - target_index;
        for operation in operations.iter().filter(|op| op.roles.is_some()) {
            let name = operation.name();
            let roles = operation.roles.as_deref().unwrap();
            assert!(!roles.is_empty(), "{name}: empty x-roles");
            assert_eq!(
                document["paths"][&operation.path][operation.method.to_lowercase()]["security"][0]
                    ["bearer"],
                serde_json::json!([]),
                "{name}: no bearer security"
            );
            let url = operation.url(target.id, target.sensors[0]);
            for (what, headers) in &bad_tokens {
                let (status, body) = call(&serve, &operation.method, &url, headers, "{}");
                assert_eq!(status, 401, "{name} with {what}: {body}");
                assert_eq!(
                    error_of(&body)["error"],
                    "unauthenticated",
                    "{name}: {body}"
                );
                checked += 1;
            }
            for (role, token) in &tokens[target_index] {
                let (status, body) = call(&serve, &operation.method, &url, &bearer(token), "{}");
                if roles.contains(role) {
                    assert!(
                        ![401, 403].contains(&status),
                        "{name} as {role} of {}: {status} {body}",
                        target.id
                    );
                } else {
                    assert_eq!(status, 403, "{name} as {role} of {}: {body}", target.id);
                    assert_eq!(error_of(&body)["error"], "forbidden", "{name}: {body}");
                }
                checked += 1;
            }
            if !operation.is_tenant_scoped() {
                continue;
            }
            let nowhere_url = operation.url(NOWHERE, target.sensors[0]);
            for (role, token) in &tokens[other_index] {
                if !roles.contains(role) || *role == Role::SuperAdmin {
                    continue;
                }
                let (status, body) = call(&serve, &operation.method, &url, &bearer(token), "{}");
                assert_eq!(status, 404, "{name} as {role} of the other tenant: {body}");
                let (nowhere_status, nowhere_body) = call(
                    &serve,
                    &operation.method,
                    &nowhere_url,
                    &bearer(token),
                    "{}",
                );
                assert_eq!(nowhere_status, 404, "{name}: {nowhere_body}");
                assert_eq!(
                    body.replace(target.id, NOWHERE),
                    nowhere_body,
                    "{name}: the other tenant's answer differs from a missing one's"
                );
                let leaked: Vec<&str> = target
                    .sensors
                    .iter()
                    .copied()
                    .chain([target.device.0])
                    .filter(|id| body.contains(id))
                    .collect();
                assert!(leaked.is_empty(), "{name} leaks {leaked:?}: {body}");
                assert!(!body.contains(&target.value.to_string()), "{name}: {body}");
                checked += 1;
            }
        }
    }
    // Every scoped operation got its token, role and tenant checks.
    assert!(checked > 100, "{checked} checks");
}
