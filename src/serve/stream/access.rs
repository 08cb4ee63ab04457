//! The access of an open stream, checked again every [`ACCESS_RECHECK`]: the checks of a
//! request (session, user, role, tenant) on the accounts as they are now, but for the token's
//! age, which is judged when the stream opened. Once the token's session has ended (logout,
//! or its refresh token reused) or its user was disabled, removed or moved to another
//! municipality, the stream is closed (1008, `access withdrawn: ...` and why). An open stream
//! outlives its short-lived access token (a control room watches for hours), never its
//! session.

use std::time::Duration;

use aquatwin::auth::http::Caller;
use aquatwin::auth::users::{Accounts, AuthError};
use axum::extract::ws::close_code;

use super::super::http::READERS;
use super::Ending;

/// How often a stream checks that its token still gives access: the longest a stream outlives
/// its session, its token or its user's access. Each check reads two small records (the
/// user, the session) from the store, so the most streams open at once
/// ([`MAX_STREAMS`](super::MAX_STREAMS)) cost about a thousand small reads a second.
pub(super) const ACCESS_RECHECK: Duration = Duration::from_secs(2);

/// The longest reason a close frame carries (125 bytes of payload less the code's two).
const CLOSE_REASON_MAX: usize = 123;

/// What an open stream's access is judged by.
pub(super) struct StreamAccess {
    /// The access token the stream opened with.
    token: String,
    /// When the stream opened (Unix seconds): the token's age is judged at this time.
    opened_at: i64,
}

impl StreamAccess {
    /// The access of a stream opened at `opened_at` (Unix seconds) with `token`.
    pub(super) fn new(token: String, opened_at: i64) -> Self {
        Self { token, opened_at }
    }

    /// Whether the token still lets its holder read `municipality`; why the stream ends
    /// otherwise.
    pub(super) fn still_allowed(
        &self,
        accounts: &Accounts,
        municipality: &str,
    ) -> Result<(), Ending> {
        let withdrawn = |cause: &str| Ending::Close {
            code: close_code::POLICY,
            reason: close_reason(&format!("access withdrawn: {cause}")),
        };
        match accounts.authenticate(&self.token, self.opened_at) {
            Ok(principal) => Caller(principal)
                .allow(READERS, Some(municipality))
                .map_err(|refusal| withdrawn(&refusal.detail)),
            Err(AuthError::Store(err)) => {
                tracing::error!("a stream's access check failed: {err}");
                Err(Ending::Close {
                    code: close_code::ERROR,
                    reason: "internal error (logged)".into(),
                })
            }
            Err(AuthError::InvalidCredentials) => Err(withdrawn("the user is disabled or removed")),
            Err(refusal) => Err(withdrawn(&refusal.to_string())),
        }
    }
}

/// `reason` cut to what a close frame carries, at a character boundary.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(CLOSE_REASON_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The close code and reason of a stream's ending (`None`: it goes on).
    fn verdict(ending: Result<(), Ending>) -> Option<(u16, String)> {
        match ending {
            Ok(()) => None,
            Err(Ending::Close { code, reason }) => Some((code, reason)),
            Err(other) => panic!("a check ends a stream with a close frame, not {other:?}"),
        }
    }

    #[test]
    fn access_is_withdrawn_when_the_session_ends_or_the_user_is_disabled_not_when_time_passes() {
        use aquatwin::auth::jwt::JwtKey;
        use aquatwin::auth::users::ACCESS_TTL_S;
        use aquatwin::auth::Role;
        use twin::store::MemoryStore;

        const PASSWORD: &str = "a long enough password";
        let accounts = Accounts::new(
            Arc::new(MemoryStore::new()),
            Some(JwtKey::new(vec![5u8; 32]).unwrap()),
        );
        accounts
            .create_user("ann", PASSWORD, Role::Viewer, Some("north"), 0)
            .unwrap();
        let issued = 1_000;
        let first = accounts.login("ann", PASSWORD, issued).unwrap();
        let second = accounts.login("ann", PASSWORD, issued).unwrap();
        let check = |token: &str, municipality: &str, opened_at: i64| {
            let access = StreamAccess::new(token.to_string(), opened_at);
            verdict(access.still_allowed(&accounts, municipality))
        };
        let withdrawn = |token: &str, municipality: &str, opened_at: i64, cause: &str| {
            let (code, reason) = check(token, municipality, opened_at).expect("access withdrawn");
            assert_eq!(code, close_code::POLICY, "{reason}");
            assert!(reason.starts_with("access withdrawn: "), "{reason}");
            assert!(reason.contains(cause), "{reason} does not say {cause}");
        };

        assert_eq!(check(&first.access_token, "north", issued), None);
        // A stream opened in the token's last second keeps going; one cannot open later.
        let expiry = issued + ACCESS_TTL_S;
        assert_eq!(check(&first.access_token, "north", expiry - 1), None);
        withdrawn(&first.access_token, "north", expiry, "expired");
        withdrawn(
            &first.access_token,
            "south",
            issued,
            "no municipality south",
        );

        accounts.logout(&first.refresh_token).unwrap();
        withdrawn(&first.access_token, "north", issued, "session");
        assert_eq!(check(&second.access_token, "north", issued), None);

        accounts.set_active("ann", false).unwrap();
        withdrawn(&second.access_token, "north", issued, "disabled");
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= CLOSE_REASON_MAX && long.starts_with(&cut));
        assert_eq!(cut.len(), 122, "cut at the last whole character");
    }
}
