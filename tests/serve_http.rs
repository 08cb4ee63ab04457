//! `aquatwin serve` as a process, driven over HTTP with `curl`: ingest (stored, then visible
//! through the read routes and in the twin's state), every refusal with its status and counted
//! in `/metrics`, people's authentication (login, access tokens) and their confinement to their
//! municipality on every read route, and a graceful stop on SIGTERM that keeps what was
//! acknowledged.

mod serve_support;

use std::time::Duration;

use serve_support::*;

fn post(serve: &Serve, headers: &[&str], body: &str) -> (u16, serde_json::Value) {
    let mut args = vec!["-X", "POST", "-H", "Content-Type: application/json"];
    for header in headers {
        args.push("-H");
        args.push(header);
    }
    args.extend(["--data-binary", body]);
    let url = serve.url("/api/v1/ingest");
    args.push(&url);
    let (status, text) = curl(&args);
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn device_headers(device: (&str, &str)) -> [String; 2] {
    [
        format!("X-Device-Id: {}", device.0),
        format!("Authorization: Bearer {}", device.1),
    ]
}

#[test]
fn http_ingest_stores_refuses_and_counts() {
    let dir = TempDir::new("serve-http");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let serve = Serve::start(&config, &[]);
    let [id, auth] = device_headers(DEVICE_A);
    let t = now_ms();

    // One reading, then a batch: 2xx only once stored, and then readable.
    let single = format!(r#"{{"sensor_id": "P-123", "ts": {t}, "value": 61.25}}"#);
    let (status, body) = post(&serve, &[&id, &auth], &single);
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    let batch = format!(
        r#"[{{"sensor_id": "P-149", "ts": {t}, "value": 55.5}},
            {{"sensor_id": "L-T2", "ts": {t}, "value": 20.75}},
            {{"sensor_id": "P-123", "ts": {}, "value": 61.5}}]"#,
        t + 1000
    );
    let (status, body) = post(
        &serve,
        &[&id, "X-Device-Key: key-of-device-a-0123456789abcdef"],
        &batch,
    );
    assert_eq!((status, body["stored"].as_u64()), (200, Some(3)), "{body}");
    assert_eq!(serve.readings("P-123"), vec![(t, 61.25), (t + 1000, 61.5)]);
    assert_eq!(serve.readings("L-T2"), vec![(t, 20.75)]);

    // The twin uses them: the next period's state has the measured pressure as a residual's
    // measured value (same unit as the network: psi).
    let state_path = format!("/api/v1/municipalities/{MUNICIPALITY}/state");
    let mut state = serde_json::Value::Null;
    assert!(
        serve.wait_for(Duration::from_secs(10), || {
            state = serve.get(&state_path).1;
            state["state"]["residuals"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["sensor_id"] == "P-149"))
        }),
        "no state with the reading: {state}"
    );
    let residual = state["state"]["residuals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sensor_id"] == "P-149")
        .unwrap();
    // In the network's units (psi here, through feet): equal up to rounding.
    let measured = residual["measured"].as_f64().unwrap();
    assert!((measured - 55.5).abs() < 1e-9, "{residual}");
    assert_eq!(state["state"]["converged"], true);
    let nodes = state["state"]["node_ids"].as_array().unwrap();
    assert_eq!(
        nodes.len(),
        state["state"]["pressure"].as_array().unwrap().len()
    );
    let (status, sensors) = serve.get(&format!("/api/v1/municipalities/{MUNICIPALITY}/sensors"));
    assert_eq!(status, 200);
    assert!(sensors["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["sensor_id"] == "P-123" && s["last_value"].as_f64() == Some(61.5)));

    // Refusals: status, the field named, counted by reason.
    let (status, body) = post(&serve, &[], &single);
    assert_eq!(status, 401, "{body}");
    let (status, _) = post(&serve, &[&id, "Authorization: Bearer wrong-key"], &single);
    assert_eq!(status, 401);
    let [b_id, b_auth] = device_headers(DEVICE_B);
    let (status, body) = post(&serve, &[&b_id, &b_auth], &single);
    assert_eq!(status, 403, "device B may not report for P-123: {body}");
    let oversized = format!("[{}]", vec![single.as_str(); 100].join(","));
    let (status, body) = post(&serve, &[&id, &auth], &oversized);
    assert_eq!(status, 413, "{body}");
    let (status, body) = post(&serve, &[&id, &auth], r#"{"sensor_id": "P-123", "ts": 5}"#);
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("value"), "{body}");
    let (status, body) = post(
        &serve,
        &[&id, &auth],
        r#"[{"sensor_id": "P-123", "ts": 5, "value": 1}, {"sensor_id": "P-123", "ts": "x", "value": 1}]"#,
    );
    assert_eq!(status, 422);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("ts") && detail.contains('1'), "{detail}");

    let series = |reason: &str| {
        format!("aquatwin_messages_rejected_total{{gateway=\"http\",reason=\"{reason}\"}}")
    };
    assert_eq!(serve.metric(&series("unauthenticated")), 2.0);
    assert_eq!(serve.metric(&series("forbidden")), 1.0);
    assert_eq!(serve.metric(&series("too_large")), 1.0);
    assert_eq!(serve.metric(&series("malformed")), 2.0);
    assert_eq!(
        serve.metric("aquatwin_readings_accepted_total{gateway=\"http\"}"),
        4.0
    );

    // Read routes: access token required, unknown municipality or sensor is 404.
    let readings_path = serve.url(&format!(
        "/api/v1/municipalities/{MUNICIPALITY}/sensors/P-123/readings"
    ));
    assert_eq!(curl(&[&readings_path]).0, 401);
    assert_eq!(
        curl(&["-H", "Authorization: Bearer nope", &readings_path]).0,
        401
    );
    assert_eq!(serve.get("/api/v1/municipalities/nowhere/state").0, 404);
    assert_eq!(
        serve
            .get(&format!(
                "/api/v1/municipalities/{MUNICIPALITY}/sensors/X-1/readings"
            ))
            .0,
        404
    );
    assert_eq!(curl(&[&serve.url("/health")]).0, 200);
}

#[test]
fn sigterm_stops_cleanly_and_keeps_acknowledged_readings() {
    let dir = TempDir::new("serve-sigterm");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let mut serve = Serve::start(&config, &[]);
    let [id, auth] = device_headers(DEVICE_B);
    let t = now_ms();
    let batch: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"sensor_id": "F-101", "ts": {}, "value": {i}}}"#, t + i))
        .collect();
    let (status, _) = post(&serve, &[&id, &auth], &format!("[{}]", batch.join(",")));
    assert_eq!(status, 200);
    serve.stop(Duration::from_secs(10));
    let serve = Serve::start(&config, &[]);
    let stored = serve.readings("F-101");
    let expected: Vec<(i64, f64)> = (0..50).map(|i| (t + i, i as f64)).collect();
    assert_eq!(stored, expected);
}

#[test]
fn data_directory_and_jwt_secret_file_options() {
    let dir = TempDir::new("serve-options");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let data = dir.path().join("elsewhere");
    let secret_file = dir.path().join("jwt.secret");
    std::fs::write(&secret_file, "a-secret-from-a-file-of-32-bytes-or-more\n").unwrap();
    let args = [
        "--data",
        data.to_str().unwrap(),
        "--jwt-secret-file",
        secret_file.to_str().unwrap(),
    ];
    let mut serve = Serve::start(&config, &args);
    let [id, auth] = device_headers(DEVICE_B);
    let (status, _) = post(
        &serve,
        &[&id, &auth],
        r#"{"sensor_id": "F-101", "ts": 7, "value": 3}"#,
    );
    assert_eq!(status, 200);
    assert!(
        std::fs::read_dir(&data).unwrap().next().is_some(),
        "the store is in --data"
    );
    assert!(
        !dir.path().join("data").exists(),
        "not in the configuration's data_dir"
    );
    let route = format!("/api/v1/municipalities/{MUNICIPALITY}/sensors");
    let token = serve.token.clone();
    assert!(serve.terminate(Duration::from_secs(10)).is_some());

    // Signed with the file's secret: valid across a restart with the same file ...
    let mut serve = Serve::start(&config, &args);
    assert_eq!(serve.get_as(&token, &route).0, 200);
    assert!(serve.terminate(Duration::from_secs(10)).is_some());
    // ... and not when the server signs with the environment's secret instead.
    let serve = Serve::start(&config, &["--data", data.to_str().unwrap()]);
    assert_eq!(serve.get_as(&token, &route).0, 401);
    assert_eq!(serve.get(&route).0, 200);
}

/// Every read route: 401 without or with a bad token, 404 for a person of another municipality
/// (the same answer as for one that does not exist), 200 for the municipality's own viewer and
/// for a super_admin.
#[test]
fn people_see_only_their_own_municipality() {
    let dir = TempDir::new("serve-tenants");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let data = config.with_file_name("data");
    create_viewer(&data, NORTH_VIEWER, MUNICIPALITY);
    create_viewer(&data, SOUTH_VIEWER, "south");
    let serve = Serve::start(&config, &[]);
    let north = login(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    let south = login(serve.http, SOUTH_VIEWER.0, SOUTH_VIEWER.1);
    let routes = [
        format!("/api/v1/municipalities/{MUNICIPALITY}/sensors/P-123/readings"),
        format!("/api/v1/municipalities/{MUNICIPALITY}/state"),
        format!("/api/v1/municipalities/{MUNICIPALITY}/sensors"),
        format!("/api/v1/municipalities/{MUNICIPALITY}/alerts"),
    ];
    for route in &routes {
        assert_eq!(curl(&[&serve.url(route)]).0, 401, "{route}");
        assert_eq!(serve.get_as("not.a.token", route).0, 401, "{route}");
        let (status, body) = serve.get_as(&south, route);
        assert_eq!(status, 404, "{route}: {body}");
        assert!(!body.to_string().contains("P-123"), "{route} leaks: {body}");
        assert_eq!(serve.get_as(&north, route).0, 200, "{route}");
        assert_eq!(serve.get(route).0, 200, "{route} as super_admin");
    }
    let (status, me) = serve.get_as(&north, "/api/v1/auth/me");
    assert_eq!(status, 200);
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["municipality"], MUNICIPALITY);
}
