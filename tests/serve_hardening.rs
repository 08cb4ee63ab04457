//! The HTTP API's guards on `aquatwin serve` as a process, driven with `curl`: security headers
//! on every answer, rate limits per caller (`[limits]`) with `Retry-After` and a count in
//! `/metrics`, the request body limit, JSON answers for unknown routes and wrong methods, and
//! `[limits]` validation.

mod serve_support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serve_support::*;

/// `curl -i` of `args`: status, headers (names lowercased) and body.
fn curl_i(args: &[&str]) -> (u16, HashMap<String, String>, String) {
    let output = Command::new("curl")
        .args(["-s", "-i"])
        .args(args)
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|err| panic!("not JSON ({err}): {body:?}"))
}

fn assert_secured(path: &str, headers: &HashMap<String, String>) {
    let header = |name: &str| headers.get(name).map(String::as_str);
    assert_eq!(header("x-content-type-options"), Some("nosniff"), "{path}");
    assert_eq!(header("x-frame-options"), Some("DENY"), "{path}");
    assert_eq!(header("referrer-policy"), Some("no-referrer"), "{path}");
    assert!(!headers.contains_key("server"), "{path}: {headers:?}");
    let csp = header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{path}: {csp}"
    );
    assert_eq!(
        csp.contains("script-src"),
        path == "/api/v1/docs",
        "{path}: only the docs page may run a script: {csp}"
    );
    assert_eq!(
        header("cache-control") == Some("no-store"),
        path.starts_with("/api/v1/"),
        "{path}: {headers:?}"
    );
}

#[test]
fn every_answer_is_secured_and_errors_are_json() {
    let dir = TempDir::new("serve-hardening-headers");
    let config = write_config(
        dir.path(),
        &format!("{EMBEDDED_MQTT}\n\n[limits]\nbody_limit_bytes = 2048\n"),
    );
    let serve = Serve::start(&config, &[]);
    let auth = format!("Authorization: Bearer {}", serve.token);
    let sensors = format!("/api/v1/municipalities/{MUNICIPALITY}/sensors");

    for (path, expected) in [
        ("/health", 200),
        ("/metrics", 200),
        (sensors.as_str(), 200),
        ("/api/v1/docs", 200),
        ("/api/v1/no-such-route", 404),
    ] {
        let (status, headers, body) = curl_i(&["-H", &auth, &serve.url(path)]);
        assert_eq!(status, expected, "{path}: {body}");
        assert_secured(path, &headers);
    }
    // Failures are secured too (401 from the route, 404 from the fallback).
    let (status, headers, _) = curl_i(&[&serve.url(&sensors)]);
    assert_eq!(status, 401);
    assert_secured(&sensors, &headers);

    // Unknown routes and wrong methods: JSON, not empty bodies.
    let (status, headers, body) = curl_i(&[&serve.url("/no/such/thing")]);
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["error"], "not_found");
    assert_secured("/no/such/thing", &headers);
    let (status, headers, body) = curl_i(&["-X", "DELETE", &serve.url("/health")]);
    assert_eq!(status, 405, "{body}");
    assert_eq!(json(&body)["error"], "method_not_allowed");
    assert_eq!(headers.get("allow").map(String::as_str), Some("GET,HEAD"));
    let (status, _, body) = curl_i(&["-X", "PUT", "-H", &auth, &serve.url(&sensors)]);
    assert_eq!(status, 405, "{body}");
    assert_eq!(json(&body)["error"], "method_not_allowed");

    // Bodies over `[limits] body_limit_bytes` on a JSON route: 413, declared or chunked.
    let login = serve.url("/api/v1/auth/login");
    let oversized = serde_json::json!({"username": "x".repeat(4096), "password": "p"}).to_string();
    for chunked in [false, true] {
        let mut args = vec!["-H", "Content-Type: application/json"];
        if chunked {
            args.extend(["-H", "Transfer-Encoding: chunked"]);
        }
        args.extend(["--data-binary", &oversized, &login]);
        let (status, headers, body) = curl_i(&args);
        assert_eq!(status, 413, "chunked: {chunked}: {body}");
        assert_eq!(json(&body)["error"], "too_large", "{body}");
        assert_secured("/api/v1/auth/login", &headers);
    }
    // Under the limit, the same route answers as usual (a wrong password is 401).
    let small = serde_json::json!({"username": ADMIN.0, "password": "wrong"}).to_string();
    let (status, _, body) = curl_i(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &small,
        &login,
    ]);
    assert_eq!(status, 401, "{body}");
    // Ingest keeps its own limit (`[http] body_limit_bytes = 4096` in the test configuration),
    // above the 2048 bytes of `[limits]`, and counts its refusals.
    let t = now_ms();
    let readings: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"sensor_id": "P-123", "ts": {}, "value": 61.25}}"#,
                t + i
            )
        })
        .collect();
    let batch = format!("[{}]", readings.join(","));
    assert!(batch.len() > 2048 && batch.len() < 4096, "{}", batch.len());
    let (status, _, body) = curl_i(&[
        "-H",
        &format!("X-Device-Id: {}", DEVICE_A.0),
        "-H",
        &format!("Authorization: Bearer {}", DEVICE_A.1),
        "--data-binary",
        &batch,
        &serve.url("/api/v1/ingest"),
    ]);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn callers_are_rate_limited_one_by_one() {
    let dir = TempDir::new("serve-hardening-rate");
    let config = write_config(
        dir.path(),
        &format!("{EMBEDDED_MQTT}\n\n[limits]\nrequests_per_second = 0.25\nburst = 5\n"),
    );
    create_viewer(&dir.path().join("data"), NORTH_VIEWER, MUNICIPALITY);
    let serve = Serve::start(&config, &[]);
    let viewer = login(serve.http, NORTH_VIEWER.0, NORTH_VIEWER.1);
    let sensors = serve.url(&format!("/api/v1/municipalities/{MUNICIPALITY}/sensors"));
    let as_admin = format!("Authorization: Bearer {}", serve.token);

    // The admin's token: its burst of 5, then 429 with Retry-After and the JSON error.
    let statuses: Vec<u16> = (0..6)
        .map(|_| curl_i(&["-H", &as_admin, &sensors]).0)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let (status, headers, body) = curl_i(&["-H", &as_admin, &sensors]);
    assert_eq!(status, 429);
    assert_eq!(json(&body)["error"], "rate_limited", "{body}");
    // One token every 4 s: the wait is what is left of those 4 s, in whole seconds.
    let retry_after: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=4).contains(&retry_after), "{retry_after}");
    assert_secured("/api/v1/municipalities/north/sensors", &headers);

    // Another caller (the viewer's token) still gets through, and so do probes and scrapers.
    assert_eq!(
        curl_i(&["-H", &format!("Authorization: Bearer {viewer}"), &sensors]).0,
        200
    );
    for _ in 0..10 {
        assert_eq!(curl(&[&serve.url("/health")]).0, 200);
    }
    assert_eq!(serve.metric("aquatwin_http_rate_limited_total"), 2.0);

    // After Retry-After, the admin gets one more request.
    std::thread::sleep(Duration::from_secs(retry_after));
    assert_eq!(curl_i(&["-H", &as_admin, &sensors]).0, 200);
}

#[test]
fn limits_are_validated_with_their_place() {
    for (setting, place) in [
        ("requests_per_second = 0", "limits.requests_per_second"),
        ("burst = 0", "limits.burst"),
        ("body_limit_bytes = 0", "limits.body_limit_bytes"),
        ("requests = 5", "unknown field `requests`"),
    ] {
        let dir = TempDir::new("serve-hardening-config");
        let config = write_config(
            dir.path(),
            &format!("{EMBEDDED_MQTT}\n\n[limits]\n{setting}\n"),
        );
        let output = Command::new(env!("CARGO_BIN_EXE_aquatwin"))
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{setting}: {stderr}");
        assert!(stderr.contains(place), "{setting}: {stderr}");
    }
}
