//! The audit log of `aquatwin serve`, driven with curl: a failed login, a login, an alert
//! acknowledged and commented, a logout. The log then lists them newest first with the right
//! user, role, municipality, route, status and client IP, and none of the passwords or tokens
//! sent or issued; ingest is not in it. A municipality's admin reads only their own
//! municipality's entries; pages follow each other; no route changes or deletes an entry; and
//! after a restart every entry is still there, unchanged. Two logins of one user in the same
//! second are two sessions: different tokens, told apart in the log, ended one at a time.

mod serve_support;

use std::time::Duration;

use serde_json::{json, Value};
use serve_support::*;

const OPERATOR: (&str, &str) = ("north-operator", "password-of-the-north-operator");
const NORTH_ADMIN: (&str, &str) = ("north-admin", "password-of-the-north-admin");
const SOUTH_ADMIN: (&str, &str) = ("south-admin", "password-of-the-south-admin");
const WRONG_PASSWORD: &str = "a-wrong-password-for-the-audit";

/// Logs in; returns the answer (access and refresh tokens).
fn login_tokens(serve: &Serve, (name, password): (&str, &str)) -> Value {
    let (status, text) = try_login(serve.http, name, password);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Every entry of an audit listing at `path`, page after page of `limit`.
fn all_pages(serve: &Serve, token: &str, path: &str, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let cursor = before.map(|c| format!("&before={c}")).unwrap_or_default();
        let (status, page) = serve.get_as(token, &format!("{path}?limit={limit}{cursor}"));
        assert_eq!(status, 200, "{page}");
        let listed = page["entries"].as_array().unwrap();
        assert!(listed.len() <= limit, "{page}");
        entries.extend(listed.iter().cloned());
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_string()),
            None => return entries,
        }
    }
}

/// The whole log, newest first, as the super admin reads it.
fn platform_log(serve: &Serve) -> Vec<Value> {
    let (status, page) = serve.get("/api/v1/audit?limit=1000");
    assert_eq!(status, 200, "{page}");
    assert!(page["next_before"].is_null(), "{page}");
    page["entries"].as_array().unwrap().clone()
}

/// `(who, role, municipality, method, route, path, status, alert id)` of an entry.
fn summary(entry: &Value) -> Value {
    json!([
        entry["who"],
        entry["role"],
        entry["municipality"],
        entry["method"],
        entry["route"],
        entry["path"],
        entry["status"],
        entry["alert_id"],
    ])
}

#[test]
fn changes_are_recorded_durably_and_shown_to_their_municipality_only() {
    let dir = TempDir::new("serve-audit");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    let data = config.with_file_name("data");
    for ((name, password), role, municipality) in [
        (OPERATOR, "operator", MUNICIPALITY),
        (NORTH_ADMIN, "municipality_admin", MUNICIPALITY),
        (SOUTH_ADMIN, "municipality_admin", "south"),
    ] {
        create_user(&data, name, password, role, Some(municipality));
    }
    let started_ms = now_ms();
    let serve = Serve::start(&config, &[]);

    let (status, text) = try_login(serve.http, OPERATOR.0, WRONG_PASSWORD);
    assert_eq!(status, 401, "{text}");
    let tokens = login_tokens(&serve, OPERATOR);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    post_batch(
        &serve.url("/api/v1/ingest"),
        DEVICE_A,
        &fault_batch(now_ms()),
    );
    let alerts_path = format!("/api/v1/municipalities/{MUNICIPALITY}/alerts");
    let mut alert_id = None;
    let raised = serve.wait_for(Duration::from_secs(15), || {
        let (_, alerts) = serve.get(&alerts_path);
        alert_id = alerts["alerts"][0]["id"].as_u64();
        alert_id.is_some()
    });
    assert!(raised, "no alert raised; serve log:\n{}", serve.log());
    let alert_id = alert_id.unwrap();
    let alert_path = format!("{alerts_path}/{alert_id}");
    let acknowledge = format!("{alert_path}/acknowledge");
    let (status, text) = serve.send_json("POST", &acknowledge, &access, "{}");
    assert_eq!(status, 200, "{text}");
    let comments = format!("{alert_path}/comments");
    let comment = json!({"text": "pressure sensor checked on site"}).to_string();
    let (status, text) = serve.send_json("POST", &comments, &access, &comment);
    assert_eq!(status, 200, "{text}");
    let logout = json!({"refresh_token": refresh}).to_string();
    let (status, text) = serve.send_json("POST", "/api/v1/auth/logout", &access, &logout);
    assert_eq!(status, 204, "{text}");

    // Recording happens after the answer: wait until the last change is on record.
    let recorded = serve.wait_for(Duration::from_secs(10), || {
        platform_log(&serve)
            .first()
            .is_some_and(|entry| entry["route"] == "/api/v1/auth/logout")
    });
    assert!(
        recorded,
        "the logout is not on record: {:?}",
        platform_log(&serve)
    );
    let log = platform_log(&serve);
    let ended_ms = now_ms();
    // Every change, oldest first, each a POST: (who, role, municipality), route, path, status,
    // alert id.
    let login_route = "/api/v1/auth/login";
    let logout_route = "/api/v1/auth/logout";
    let alert_route = "/api/v1/municipalities/{municipality}/alerts/{id}";
    let (acknowledge_route, comments_route) = (
        format!("{alert_route}/acknowledge"),
        format!("{alert_route}/comments"),
    );
    let operator = (OPERATOR.0, Some("operator"), Some(MUNICIPALITY));
    let changes = [
        (
            (ADMIN.0, Some("super_admin"), None),
            login_route,
            login_route,
            200,
            None,
        ),
        (
            (OPERATOR.0, None, None),
            login_route,
            login_route,
            401,
            None,
        ),
        (operator, login_route, login_route, 200, None),
        (
            operator,
            &acknowledge_route,
            &acknowledge,
            200,
            Some(alert_id),
        ),
        (operator, &comments_route, &comments, 200, Some(alert_id)),
        (operator, logout_route, logout_route, 204, None),
    ];
    let expected: Vec<Value> = changes
        .iter()
        .rev()
        .map(|((who, role, municipality), route, path, status, alert)| {
            json!([who, role, municipality, "POST", route, path, status, alert])
        })
        .collect();
    let summaries: Vec<Value> = log.iter().map(summary).collect();
    assert_eq!(summaries, expected, "{log:#?}");
    // Newest first: the operator's session names its logout, comment, acknowledgement and
    // login; the failed login has none; the admin's login is another session.
    let sessions: Vec<&Value> = log.iter().map(|entry| &entry["session"]).collect();
    assert!(sessions[0].is_string(), "{log:#?}");
    assert!(sessions[..4].iter().all(|s| s == &sessions[0]), "{log:#?}");
    assert!(sessions[4].is_null(), "{log:#?}");
    assert!(
        sessions[5].is_string() && sessions[5] != sessions[0],
        "{log:#?}"
    );
    let times: Vec<i64> = log.iter().map(|e| e["at_ms"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert!(times.iter().all(|t| (started_ms..=ended_ms).contains(t)));
    assert!(
        log.iter().all(|entry| entry["ip"] == "127.0.0.1"),
        "{log:#?}"
    );
    let text = serde_json::to_string(&log).unwrap();
    for secret in [
        OPERATOR.1,
        WRONG_PASSWORD,
        ADMIN.1,
        JWT_SECRET,
        DEVICE_A.1,
        &access,
        &refresh,
        &serve.token,
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret: {text}"
        );
    }
    assert!(
        !text.contains("/api/v1/ingest"),
        "ingest is telemetry: {text}"
    );

    // Pages of 2 are the whole log, in order.
    let paged = all_pages(&serve, &serve.token, "/api/v1/audit", 2);
    assert_eq!(paged, log);

    // A municipality's admin reads its entries (their own login comes last); others' are 404.
    let north_admin = login_tokens(&serve, NORTH_ADMIN)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let scoped_path = format!("/api/v1/municipalities/{MUNICIPALITY}/audit");
    let mut scoped = Vec::new();
    let listed = serve.wait_for(Duration::from_secs(10), || {
        scoped = all_pages(&serve, &north_admin, &scoped_path, 3);
        scoped.len() == 5
    });
    assert!(listed, "{scoped:#?}");
    assert_eq!(scoped[0]["who"], NORTH_ADMIN.0);
    let north_in_log: Vec<&Value> = log
        .iter()
        .filter(|entry| entry["municipality"] == MUNICIPALITY)
        .collect();
    assert_eq!(scoped[1..].iter().collect::<Vec<_>>(), north_in_log);
    let (status, filtered) = serve.get(&format!("/api/v1/audit?municipality={MUNICIPALITY}"));
    assert_eq!(status, 200, "{filtered}");
    assert_eq!(filtered["entries"].as_array().unwrap(), &scoped);
    let south_admin = login_tokens(&serve, SOUTH_ADMIN)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = serve.get_as(&south_admin, &scoped_path);
    assert_eq!(status, 404, "{body}");
    assert!(body["entries"].is_null(), "{body}");
    let (status, body) = serve.get_as(&south_admin, "/api/v1/audit");
    assert_eq!(status, 403, "{body}");

    // Time windows: `from` inclusive, `to` exclusive.
    let acknowledged_at = log[2]["at_ms"].as_i64().unwrap();
    let (status, window) = serve.get(&format!(
        "/api/v1/audit?from={acknowledged_at}&to={}",
        acknowledged_at + 1
    ));
    assert_eq!(status, 200, "{window}");
    let window = window["entries"].as_array().unwrap();
    assert!(window.contains(&log[2]), "{window:#?}");
    assert!(window.iter().all(|e| e["at_ms"] == acknowledged_at));

    // Nothing changes or deletes an entry.
    for method in ["PUT", "DELETE", "PATCH"] {
        for path in ["/api/v1/audit", scoped_path.as_str()] {
            let (status, body) = serve.send_json(method, path, &serve.token, "{}");
            assert_eq!(status, 405, "{method} {path}: {body}");
        }
    }
    assert_eq!(serve.metric("aquatwin_audit_dropped_total"), 0.0);

    // Durable: after a restart every entry is there, unchanged.
    let before_restart = platform_log(&serve);
    let serve = serve.restart(&config, &[]);
    // The new server's own admin login comes on top.
    let mut after_restart = Vec::new();
    let grown = serve.wait_for(Duration::from_secs(10), || {
        after_restart = platform_log(&serve);
        after_restart.len() > before_restart.len()
    });
    assert!(grown, "{after_restart:#?}");
    let older = &after_restart[after_restart.len() - before_restart.len()..];
    assert_eq!(older, before_restart.as_slice());
    assert!(
        after_restart[0]["at_ms"].as_i64() >= before_restart[0]["at_ms"].as_i64(),
        "{after_restart:#?}"
    );
}

/// Changes answered outside the routes are on record once each, without a route template: an
/// unknown route (404), a method the route does not take (405), a body over the guards' limit
/// (413). Rate-limited requests (429) are only counted.
#[test]
fn answers_of_the_guards_and_fallbacks_are_recorded_but_rate_limits() {
    let dir = TempDir::new("serve-audit-guards");
    let limits = "[limits]\nbody_limit_bytes = 2048\nrequests_per_second = 0.01\nburst = 8\n";
    let config = write_config(dir.path(), &format!("{EMBEDDED_MQTT}\n\n{limits}"));
    let serve = Serve::start(&config, &[]);
    // Another token of the admin reads the log: its own bucket, never rate limited here (every
    // token is unique, even one issued in the same second to the same user).
    let reader = login(serve.http, ADMIN.0, ADMIN.1);
    assert_ne!(reader, serve.token);
    let jobs = format!("/api/v1/municipalities/{MUNICIPALITY}/jobs");
    let oversized = json!({"kind": "risk", "assets": "x".repeat(4096)}).to_string();
    let mut answers = vec![
        (
            "DELETE",
            "/api/v1/audit",
            serve
                .send_json("DELETE", "/api/v1/audit", &serve.token, "")
                .0,
        ),
        (
            "POST",
            jobs.as_str(),
            serve.send_json("POST", &jobs, &serve.token, &oversized).0,
        ),
    ];
    for _ in 0..12 {
        let status = serve
            .send_json("POST", "/api/v1/no-such-route", &serve.token, "{}")
            .0;
        answers.push(("POST", "/api/v1/no-such-route", status));
    }
    assert_eq!(answers[0].2, 405, "{answers:?}");
    assert_eq!(answers[1].2, 413, "{answers:?}");
    let limited = answers
        .iter()
        .filter(|(_, _, status)| *status == 429)
        .count();
    // The burst of 8: the two above and six 404s, then 429s.
    assert_eq!(limited, 6, "{answers:?}");
    assert_eq!(serve.metric("aquatwin_http_rate_limited_total"), 6.0);

    let recorded: Vec<(String, String, u16)> = answers
        .iter()
        .filter(|(_, _, status)| *status != 429)
        .map(|(method, path, status)| (method.to_string(), path.to_string(), *status))
        .collect();
    let guarded = |entries: &[Value]| -> Vec<(String, String, u16)> {
        entries
            .iter()
            .rev()
            .filter(|e| e["path"] != "/api/v1/auth/login")
            .map(|e| {
                assert_eq!(e["who"], ADMIN.0, "{e}");
                assert_eq!(e["role"], "super_admin", "{e}");
                assert_eq!(e["ip"], "127.0.0.1", "{e}");
                let method = e["method"].as_str().unwrap().to_string();
                let path = e["path"].as_str().unwrap().to_string();
                (method, path, e["status"].as_u64().unwrap() as u16)
            })
            .collect()
    };
    // The reader's own bucket holds 8 requests and refills at 0.01 a second, and the log is
    // committed durably in batches (slower on a busy machine): poll a few times, far apart.
    let mut log = Vec::new();
    let mut complete = false;
    for _ in 0..6 {
        let (status, page) = serve.get_as(&reader, "/api/v1/audit?limit=1000");
        assert_eq!(status, 200, "{page}");
        log = page["entries"].as_array().unwrap().clone();
        complete = guarded(&log).len() >= recorded.len();
        if complete {
            break;
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(complete, "{log:#?}");
    assert_eq!(guarded(&log), recorded, "{log:#?}");
    let unknown = log
        .iter()
        .find(|e| e["path"] == "/api/v1/no-such-route")
        .unwrap();
    assert_eq!(unknown["route"], Value::Null, "{unknown}");
}

/// The claims of an access token, decoded here (base64url JSON between the dots).
fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// `POST /api/v1/auth/refresh` of `session`'s refresh token; status and answer.
fn refresh(serve: &Serve, session: &Session) -> (u16, String) {
    let body = json!({"refresh_token": session.refresh}).to_string();
    serve.send(
        "POST",
        "/api/v1/auth/refresh",
        None,
        "application/json",
        &body,
    )
}

/// Two logins of one user within the same second get different tokens, both work, and are two
/// sessions: the log tells them apart, and logging one out ends its access and refresh tokens
/// while the other goes on. A token of an older version (no token id) is a clear 401.
#[test]
fn two_logins_in_one_second_are_two_sessions() {
    let dir = TempDir::new("serve-audit-sessions");
    let config = write_config(dir.path(), EMBEDDED_MQTT);
    create_user(
        &config.with_file_name("data"),
        OPERATOR.0,
        OPERATOR.1,
        "operator",
        Some(MUNICIPALITY),
    );
    let serve = Serve::start(&config, &[]);
    // Two logins at once, until a pair is issued within the same second (password hashing
    // takes a while, so most first pairs are).
    let (first, second) = (0..10)
        .map(|_| {
            std::thread::scope(|scope| {
                let logins = [(); 2]
                    .map(|_| scope.spawn(|| login_session(serve.http, OPERATOR.0, OPERATOR.1)));
                logins.map(|login| login.join().unwrap())
            })
        })
        .find_map(|[first, second]| {
            (claims_of(&first.access)["iat"] == claims_of(&second.access)["iat"])
                .then_some((first, second))
        })
        .expect("no two logins within one second in 10 tries");
    assert_ne!(first.access, second.access);
    assert_ne!(
        claims_of(&first.access)["sid"],
        claims_of(&second.access)["sid"]
    );
    for session in [&first, &second] {
        let (status, me) = serve.get_as(&session.access, "/api/v1/auth/me");
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["subject"], OPERATOR.0);
    }

    assert_eq!(logout(serve.http, &first), 204);
    let (status, body) = serve.get_as(&first.access, "/api/v1/auth/me");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthenticated", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("session"),
        "{body}"
    );
    assert_eq!(refresh(&serve, &first).0, 401);
    let (status, me) = serve.get_as(&second.access, "/api/v1/auth/me");
    assert_eq!(status, 200, "{me}");
    let (status, text) = refresh(&serve, &second);
    assert_eq!(status, 200, "{text}");
    let next: Value = serde_json::from_str(&text).unwrap();
    let next_access = next["access_token"].as_str().unwrap();
    assert_eq!(
        claims_of(next_access)["sid"],
        claims_of(&second.access)["sid"]
    );
    assert_eq!(serve.get_as(next_access, "/api/v1/auth/me").0, 200);

    // Signed with the server's secret, but without a token id: refused, with the reason.
    let outdated = outdated_token(OPERATOR.0, "operator", Some(MUNICIPALITY));
    let (status, body) = serve.get_as(&outdated, "/api/v1/auth/me");
    assert_eq!(status, 401, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("older version") && detail.contains("log in again"),
        "{body}"
    );

    // The log names each login's session, and the logout's is the first one's.
    let sid = |session: &Session| claims_of(&session.access)["sid"].clone();
    let mut log = Vec::new();
    let recorded = serve.wait_for(Duration::from_secs(10), || {
        log = platform_log(&serve);
        log.iter()
            .any(|e| e["route"] == "/api/v1/auth/refresh" && e["status"] == 200)
    });
    assert!(recorded, "{log:#?}");
    let logins: Vec<&Value> = log
        .iter()
        .filter(|e| e["route"] == "/api/v1/auth/login" && e["who"] == OPERATOR.0)
        .map(|e| &e["session"])
        .collect();
    assert!(logins.contains(&&sid(&first)), "{log:#?}");
    assert!(logins.contains(&&sid(&second)), "{log:#?}");
    let logout_entry = log
        .iter()
        .find(|e| e["route"] == "/api/v1/auth/logout")
        .unwrap();
    assert_eq!(logout_entry["session"], sid(&first), "{logout_entry}");
    assert_eq!(logout_entry["who"], OPERATOR.0, "{logout_entry}");
}
