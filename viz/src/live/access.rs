//! Who the viewer is to the server, and the HTTP calls that say so.
//!
//! An access token lives 15 minutes. A stream opened with one outlives it, but a reconnection
//! (server restart, dropped network) needs a token the server still takes. With a token alone
//! the viewer is refused then; with an account it logs in again by itself: at start, and
//! whenever the server refuses the access token in use (on connecting the stream or on a REST
//! call).
//!
//! Why a password login rather than refresh tokens: a refresh token is used once and rotated,
//! and one presented twice ends its whole session. An answer lost to a dropped connection or a
//! server restart (the rotation stored, the new token never received), or a server restored
//! from a backup taken before the last rotation, would leave the viewer with a token that is
//! refused or ends its own session; and a refresh token itself expires after 30 days. A
//! password keeps a control-room screen on through all of these. The viewer's own login's
//! refresh token is never presented to `/auth/refresh`: it only ends that session (logout)
//! once a new login replaces it, so one viewer holds one session.

use std::fmt;

use serde::Deserialize;

use super::LiveError;

/// Largest answer read for a login, a logout or a refusal.
const SMALL_ANSWER_LIMIT: u64 = 64 * 1024;

/// Where the password of an account comes from when no file is named.
pub const PASSWORD_ENV: &str = "AQUATWIN_PASSWORD";

/// What the viewer proves who it is with.
#[derive(Clone)]
pub enum Credentials {
    /// An access token given by the user: taken for 15 minutes after it was issued.
    Token(String),
    /// An account to log in as, at start and again whenever its access token is refused.
    Account {
        /// The user name.
        user: String,
        /// Its password.
        password: String,
    },
}

/// Secrets stay out of debug output.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::Account { user, .. } => f
                .debug_struct("Account")
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// How one authenticated call failed.
pub(super) enum Failure {
    /// 401: the server does not take this access token (malformed, expired, signed with
    /// another key, its session ended).
    Unauthenticated { url: String, detail: String },
    /// Anything else, already worded.
    Other(LiveError),
}

/// The tokens of one login.
struct Login {
    access_token: String,
    /// Only to end this session once another login replaces it.
    refresh_token: String,
}

/// The credentials and the access token in use.
#[derive(Debug)]
pub(super) struct Access {
    credentials: Credentials,
    /// The account's current login (none before the first, and with a given token).
    login: Option<Login>,
}

/// Secrets stay out of debug output.
impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Login(..)")
    }
}

/// The answer of `POST /api/v1/auth/login`.
#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: String,
}

impl Access {
    pub(super) fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            login: None,
        }
    }

    /// Runs `call` with an access token of the server at `base`. With an account: logs in
    /// first when it has not yet, and once more when the server refuses the token in use.
    pub(super) fn authorized<T>(
        &mut self,
        base: &str,
        mut call: impl FnMut(&str) -> Result<T, Failure>,
    ) -> Result<T, LiveError> {
        let (user, password) = match &self.credentials {
            Credentials::Token(token) => {
                return call(token).map_err(|failure| match failure {
                    Failure::Unauthenticated { url, detail } => LiveError::Refused {
                        url,
                        detail: format!(
                            "{detail}; an access token is taken for 15 minutes after it was \
                             issued: give a new one, or let the viewer log in by itself with \
                             --user NAME and --password-file FILE (or ${PASSWORD_ENV})"
                        ),
                    },
                    Failure::Other(error) => error,
                })
            }
            Credentials::Account { user, password } => (user.clone(), password.clone()),
        };
        let (mut token, mut fresh) = match &self.login {
            Some(login) => (login.access_token.clone(), false),
            None => (self.log_in(base, &user, &password, None)?, true),
        };
        loop {
            match call(&token) {
                Ok(value) => return Ok(value),
                Err(Failure::Other(error)) => return Err(error),
                Err(Failure::Unauthenticated { url, detail }) if fresh => {
                    return Err(LiveError::Refused {
                        url,
                        detail: format!("{detail} (a token just issued to {user})"),
                    })
                }
                Err(Failure::Unauthenticated { detail, .. }) => {
                    token = self.log_in(base, &user, &password, Some(&detail))?;
                    fresh = true;
                }
            }
        }
    }

    /// Logs in as `user` (`refused`: why the last token was refused) and ends the session this
    /// login replaces; the new access token.
    fn log_in(
        &mut self,
        base: &str,
        user: &str,
        password: &str,
        refused: Option<&str>,
    ) -> Result<String, LiveError> {
        let url = format!("{base}/api/v1/auth/login");
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        let request = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .content_type("application/json");
        let text = match answer(&url, request.send(body), SMALL_ANSWER_LIMIT) {
            Ok(text) => text,
            Err(Failure::Unauthenticated { url, detail }) => {
                return Err(LiveError::Refused {
                    url,
                    detail: format!(
                        "login as {user} refused ({detail}): check the password and that the \
                         account exists and is enabled"
                    ),
                })
            }
            Err(Failure::Other(error)) => return Err(error),
        };
        let tokens: Tokens = serde_json::from_str(&text).map_err(|error| LiveError::Refused {
            url: url.clone(),
            detail: format!("not a login answer: {error}"),
        })?;
        let access_token = tokens.access_token.clone();
        let replaced = self.login.replace(Login {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
        });
        match refused {
            None => eprintln!("aquatwin-view: logged in as {user}"),
            Some(why) => eprintln!(
                "aquatwin-view: logged in again as {user}: the server refused the access token \
                 ({why})"
            ),
        }
        if let Some(old) = replaced {
            if let Err(error) = end_session(base, &access_token, &old.refresh_token) {
                eprintln!("aquatwin-view: the replaced session stays until it expires: {error}");
            }
        }
        Ok(access_token)
    }
}

/// `POST /api/v1/auth/logout` of the session of `refresh_token`, as the holder of
/// `access_token` (any valid one: the session's own may be refused already).
fn end_session(base: &str, access_token: &str, refresh_token: &str) -> Result<(), LiveError> {
    let url = format!("{base}/api/v1/auth/logout");
    let body = serde_json::json!({ "refresh_token": refresh_token }).to_string();
    let request = ureq::post(&url)
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", &format!("Bearer {access_token}"))
        .content_type("application/json");
    match answer(&url, request.send(body), SMALL_ANSWER_LIMIT) {
        Ok(_) => Ok(()),
        Err(Failure::Unauthenticated { url, detail }) => Err(LiveError::Refused { url, detail }),
        Err(Failure::Other(error)) => Err(error),
    }
}

/// `GET` of `url` with the access token `token`: the body (at most `limit` bytes), or why not.
pub(super) fn get(url: &str, token: &str, limit: u64) -> Result<String, Failure> {
    let request = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .header("Authorization", &format!("Bearer {token}"));
    answer(url, request.call(), limit)
}

/// The body of a successful answer to a request of `url`, or why there is none.
fn answer(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    limit: u64,
) -> Result<String, Failure> {
    let unreachable = |detail: String| {
        Failure::Other(LiveError::Http {
            url: url.to_string(),
            detail,
        })
    };
    let mut response = response.map_err(|error| unreachable(error.to_string()))?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(if status.is_success() {
            limit
        } else {
            SMALL_ANSWER_LIMIT
        })
        .read_to_string();
    match body {
        Ok(body) if status.is_success() => Ok(body),
        Ok(body) => Err(refusal(url, status.as_u16(), &body)),
        // A refusal says enough by its status.
        Err(_) if !status.is_success() => Err(refusal(url, status.as_u16(), "")),
        Err(error) => Err(unreachable(error.to_string())),
    }
}

/// A refusal of the server (`status` and its JSON error body) as a failure: 401 asks for
/// another token; 429 and server errors may pass; other refusals do not.
pub(super) fn refusal(url: &str, status: u16, body: &str) -> Failure {
    #[derive(Deserialize)]
    struct ErrorBody {
        detail: String,
    }
    let said = serde_json::from_str::<ErrorBody>(body)
        .map(|error| error.detail)
        .unwrap_or_else(|_| body.trim().chars().take(200).collect());
    let meaning = match status {
        401 => "not authenticated",
        403 => "this account may not read the twin",
        404 => "no such municipality for this account",
        429 => "too many requests",
        _ => "",
    };
    let detail = match (meaning.is_empty(), said.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (true, false) => format!("HTTP {status}: {said}"),
        (false, true) => format!("{status}: {meaning}"),
        (false, false) => format!("{status}: {meaning}: {said}"),
    };
    let url = url.to_string();
    match status {
        401 => Failure::Unauthenticated { url, detail },
        429 | 500.. => Failure::Other(LiveError::Http { url, detail }),
        _ => Failure::Other(LiveError::Refused { url, detail }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let account = Credentials::Account {
            user: "screen".into(),
            password: "hunter2-but-longer".into(),
        };
        let shown = format!("{:?}", Access::new(account));
        assert!(
            shown.contains("screen") && !shown.contains("hunter2"),
            "{shown}"
        );
        let shown = format!("{:?}", Credentials::Token("secret-token".into()));
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[test]
    fn refusals_say_whether_another_token_or_a_retry_helps() {
        let body = r#"{"error":"unauthenticated","detail":"the session has ended: log in again"}"#;
        match refusal("http://x/api", 401, body) {
            Failure::Unauthenticated { detail, .. } => {
                assert!(detail.starts_with("401: ") && detail.contains("log in again"));
            }
            Failure::Other(error) => panic!("401 asks for a token, not {error}"),
        }
        let final_one = refusal("http://x/api", 404, "");
        assert!(
            matches!(&final_one, Failure::Other(LiveError::Refused { detail, .. }) if detail == "404: no such municipality for this account")
        );
        assert!(matches!(
            refusal("http://x/api", 503, "busy"),
            Failure::Other(LiveError::Http { .. })
        ));
        assert!(matches!(
            refusal("http://x/api", 429, ""),
            Failure::Other(LiveError::Http { .. })
        ));
    }

    /// A token refused with no account to log in as is final, and the refusal says what to do.
    #[test]
    fn a_refused_token_names_the_way_out() {
        let mut access = Access::new(Credentials::Token("t".into()));
        let refused = access
            .authorized("http://x", |_| -> Result<(), Failure> {
                Err(Failure::Unauthenticated {
                    url: "http://x/api".into(),
                    detail: "401: expired".into(),
                })
            })
            .unwrap_err();
        let text = refused.to_string();
        assert!(matches!(refused, LiveError::Refused { .. }));
        assert!(
            text.contains("--user") && text.contains(PASSWORD_ENV),
            "{text}"
        );
    }
}
