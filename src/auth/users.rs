//! Users of the platform and their sessions: login with a password gives a short-lived access
//! token (JWT) and a refresh token; a refresh token is used once and replaced (rotation); one
//! that is presented a second time revokes its whole family (it was stolen, or the client is
//! confused), as the OAuth 2.0 security best current practice recommends.
//!
//! A login opens a session: the family of its refresh tokens. Every access token names its
//! session (`sid`) and carries a random id of its own (`jti`), so two logins within the same
//! second get different tokens. Ending a session (logout, or a refresh token used twice) ends
//! its access tokens at once, not only its refresh token; other sessions of the user go on.
//!
//! Stored under the platform prefix, outside every tenant:
//! - `("aquatwin", "_platform", "users", name)` -> the user (JSON);
//! - `("aquatwin", "_platform", "refresh", sha256(token))` -> the refresh token's record;
//! - `("aquatwin", "_platform", "refresh_family", family)` -> present when the family is revoked.
//!
//! Refresh tokens are kept only as digests: random 256-bit values need no slow hash.

use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use twin::store::tuple::Element;
use twin::store::{Keyspace, Order, Store, StoreError};

use super::jwt::{Claims, JwtKey, TokenError};
use super::password::{hash_password, verify_password, PasswordError};
use super::{Principal, Role};

/// Lifetime of an access token (seconds) unless the configuration sets another
/// ([`Accounts::with_access_lifetime`]).
pub const ACCESS_TTL_S: i64 = 15 * 60;
/// Lifetime of a refresh token (seconds).
pub const REFRESH_TTL_S: i64 = 30 * 24 * 3600;

/// Why an authentication step failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password or disabled user: one answer for all, so that callers
    /// cannot probe which names exist.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that is unknown, expired, already used or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// An access token that is malformed, forged or expired.
    #[error("invalid access token: {0}")]
    InvalidAccessToken(#[from] TokenError),
    /// An access token of a session that was ended (logout, or its refresh token reused).
    #[error("the session of this access token has ended: log in again")]
    SessionEnded,
    /// The user name is taken.
    #[error("user {0} already exists")]
    Exists(String),
    /// No such user.
    #[error("no user {0}")]
    NoSuchUser(String),
    /// A field of a new user is not acceptable.
    #[error("{field}: {cause}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        cause: String,
    },
    /// The password is not acceptable.
    #[error("password: {0}")]
    Password(#[from] PasswordError),
    /// Tokens were asked of accounts opened without the signing key.
    #[error("no token signing key configured")]
    NoSigningKey,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique name (login).
    pub name: String,
    /// Role.
    pub role: Role,
    /// Municipality; `None` only for `super_admin`.
    pub municipality: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// A disabled user cannot log in or refresh, and its access tokens stop working.
    pub active: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a login or a refresh returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tokens {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// One-use token to get the next pair.
    pub refresh_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct RefreshRecord {
    user: String,
    family: String,
    expires_at: i64,
    used: bool,
}

/// Users and sessions on a store.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    key: Option<JwtKey>,
    space: Keyspace,
    /// Lifetime of the access tokens issued (seconds).
    access_ttl_s: i64,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn corrupt(key: &[u8], error: impl std::fmt::Display) -> AuthError {
    AuthError::Store(StoreError::Corrupt {
        key: key.to_vec(),
        reason: error.to_string(),
    })
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Names of users and municipalities: what fits in a URL and a log line without escaping.
fn check_name(field: &'static str, value: &str) -> Result<(), AuthError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            field,
            cause: "1 to 64 characters among letters, digits, - _ . @".to_string(),
        })
    }
}

impl Accounts {
    /// Accounts kept in `store`; access tokens signed with `key` (user management alone, as
    /// the `aquatwin user` command does, needs none).
    pub fn new(store: Arc<dyn Store>, key: Option<JwtKey>) -> Self {
        Self {
            store,
            key,
            space: Keyspace::default().subspace(&[Element::from("_platform")]),
            access_ttl_s: ACCESS_TTL_S,
        }
    }

    /// The same accounts issuing access tokens valid for `seconds` (a short lifetime bounds
    /// how long a leaked token works; a long one spares clients refreshes).
    pub fn with_access_lifetime(mut self, seconds: i64) -> Self {
        self.access_ttl_s = seconds;
        self
    }

    fn key(&self) -> Result<&JwtKey, AuthError> {
        self.key.as_ref().ok_or(AuthError::NoSigningKey)
    }

    fn user_key(&self, name: &str) -> Vec<u8> {
        self.space
            .pack(&[Element::from("users"), Element::from(name)])
    }

    fn refresh_key(&self, token: &str) -> Vec<u8> {
        let digest = Sha256::digest(token.as_bytes());
        self.space
            .pack(&[Element::from("refresh"), Element::Bytes(digest.to_vec())])
    }

    fn family_key(&self, family: &str) -> Vec<u8> {
        self.space
            .pack(&[Element::from("refresh_family"), Element::from(family)])
    }

    fn put_json(&self, key: &[u8], value: &impl Serialize) -> Result<(), AuthError> {
        let bytes = serde_json::to_vec(value).map_err(|e| corrupt(key, e))?;
        Ok(self.store.put(key, &bytes)?)
    }

    /// Creates a user. `super_admin` has no municipality; every other role has one; `device`
    /// is not a user role (devices have keys).
    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        role: Role,
        municipality: Option<&str>,
        now: i64,
    ) -> Result<User, AuthError> {
        check_name("name", name)?;
        match (role, municipality) {
            (Role::Device, _) => {
                return Err(AuthError::Invalid {
                    field: "role",
                    cause: "devices authenticate with device keys, not as users".to_string(),
                })
            }
            (Role::SuperAdmin, Some(_)) => {
                return Err(AuthError::Invalid {
                    field: "municipality",
                    cause: "a super_admin belongs to no municipality".to_string(),
                })
            }
            (Role::SuperAdmin, None) => {}
            (_, None) => {
                return Err(AuthError::Invalid {
                    field: "municipality",
                    cause: format!("a {role} needs a municipality"),
                })
            }
            (_, Some(m)) => check_name("municipality", m)?,
        }
        if self.user(name)?.is_some() {
            return Err(AuthError::Exists(name.to_string()));
        }
        let user = User {
            name: name.to_string(),
            role,
            municipality: municipality.map(str::to_string),
            password_hash: hash_password(password)?,
            active: true,
            created_at: now,
        };
        self.put_json(&self.user_key(name), &user)?;
        Ok(user)
    }

    /// The user `name`.
    pub fn user(&self, name: &str) -> Result<Option<User>, AuthError> {
        let key = self.user_key(name);
        match self.store.get(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(&key, e)),
            None => Ok(None),
        }
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<User>, AuthError> {
        let range = self.space.subspace(&[Element::from("users")]).range();
        self.store
            .scan(&range, Order::Forward, None)?
            .into_iter()
            .map(|(key, value)| serde_json::from_slice(&value).map_err(|e| corrupt(&key, e)))
            .collect()
    }

    /// Enables or disables `name`.
    pub fn set_active(&self, name: &str, active: bool) -> Result<User, AuthError> {
        let mut user = self
            .user(name)?
            .ok_or_else(|| AuthError::NoSuchUser(name.to_string()))?;
        user.active = active;
        self.put_json(&self.user_key(name), &user)?;
        Ok(user)
    }

    fn issue(&self, user: &User, family: &str, now: i64) -> Result<Tokens, AuthError> {
        let key = self.key()?;
        let claims = Claims {
            sub: user.name.clone(),
            role: user.role,
            mun: user.municipality.clone(),
            sid: family.to_string(),
            jti: random_token("at_"),
            iat: now,
            exp: now + self.access_ttl_s,
        };
        let refresh_token = random_token("rt_");
        let record = RefreshRecord {
            user: user.name.clone(),
            family: family.to_string(),
            expires_at: now + REFRESH_TTL_S,
            used: false,
        };
        self.put_json(&self.refresh_key(&refresh_token), &record)?;
        Ok(Tokens {
            access_token: key.issue(&claims),
            expires_in: self.access_ttl_s,
            refresh_token,
        })
    }

    /// Tokens for `name` if `password` is theirs and they are active.
    pub fn login(&self, name: &str, password: &str, now: i64) -> Result<Tokens, AuthError> {
        let user = match self.user(name)? {
            Some(user) if user.active && verify_password(password, &user.password_hash) => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        self.issue(&user, &random_token("fam_"), now)
    }

    /// The next pair of tokens for a refresh token, which is used up. A token presented a
    /// second time revokes every token of its family.
    pub fn refresh(&self, refresh_token: &str, now: i64) -> Result<Tokens, AuthError> {
        let key = self.refresh_key(refresh_token);
        let Some(bytes) = self.store.get(&key)? else {
            return Err(AuthError::InvalidRefreshToken);
        };
        let mut record: RefreshRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e))?;
        let family_key = self.family_key(&record.family);
        if record.used {
            self.store.put(&family_key, b"revoked")?;
            return Err(AuthError::InvalidRefreshToken);
        }
        if now >= record.expires_at || self.store.get(&family_key)?.is_some() {
            return Err(AuthError::InvalidRefreshToken);
        }
        let user = match self.user(&record.user)? {
            Some(user) if user.active => user,
            _ => return Err(AuthError::InvalidRefreshToken),
        };
        record.used = true;
        self.put_json(&key, &record)?;
        self.issue(&user, &record.family, now)
    }

    /// Revokes the family of `refresh_token` (logout). Unknown tokens are ignored.
    pub fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let key = self.refresh_key(refresh_token);
        if let Some(bytes) = self.store.get(&key)? {
            let record: RefreshRecord =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e))?;
            self.store
                .put(&self.family_key(&record.family), b"revoked")?;
        }
        Ok(())
    }

    /// The caller an access token stands for; the user must still exist and be active, and
    /// the token's session must not have ended.
    pub fn authenticate(&self, access_token: &str, now: i64) -> Result<Principal, AuthError> {
        let (principal, claims) = self.token_holder(access_token, now)?;
        if self.store.get(&self.family_key(&claims.sid))?.is_some() {
            return Err(AuthError::SessionEnded);
        }
        Ok(principal)
    }

    /// Who an access token was issued to (the user must still exist and be active) and its
    /// claims, whether or not its session has ended since: what an audit of a request needs,
    /// the request that ended the session included.
    pub fn token_holder(
        &self,
        access_token: &str,
        now: i64,
    ) -> Result<(Principal, Claims), AuthError> {
        let claims = self.key()?.verify(access_token, now)?;
        match self.user(&claims.sub)? {
            Some(user) if user.active => Ok((
                Principal {
                    subject: user.name,
                    role: user.role,
                    municipality: user.municipality,
                },
                claims,
            )),
            _ => Err(AuthError::InvalidCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin::store::MemoryStore;

    fn accounts() -> Accounts {
        Accounts::new(
            Arc::new(MemoryStore::new()),
            Some(JwtKey::new(vec![3u8; 32]).unwrap()),
        )
    }

    const PASSWORD: &str = "a long enough password";

    #[test]
    fn login_authenticate_and_disable() {
        let accounts = accounts();
        accounts
            .create_user("ann", PASSWORD, Role::Operator, Some("north"), 0)
            .unwrap();
        assert!(matches!(
            accounts.create_user("ann", PASSWORD, Role::Viewer, Some("north"), 0),
            Err(AuthError::Exists(_))
        ));
        let tokens = accounts.login("ann", PASSWORD, 100).unwrap();
        let principal = accounts.authenticate(&tokens.access_token, 200).unwrap();
        assert_eq!(principal.role, Role::Operator);
        assert_eq!(principal.municipality.as_deref(), Some("north"));
        assert!(matches!(
            accounts.login("ann", "wrong password here", 100),
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            accounts.login("bob", PASSWORD, 100),
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            accounts.authenticate(&tokens.access_token, 100 + ACCESS_TTL_S),
            Err(AuthError::InvalidAccessToken(TokenError::Expired))
        ));
        accounts.set_active("ann", false).unwrap();
        assert!(accounts.authenticate(&tokens.access_token, 200).is_err());
        assert!(accounts.login("ann", PASSWORD, 300).is_err());
        assert!(accounts.refresh(&tokens.refresh_token, 300).is_err());
    }

    #[test]
    fn refresh_rotates_and_reuse_revokes_the_family() {
        let accounts = accounts();
        accounts
            .create_user("root", PASSWORD, Role::SuperAdmin, None, 0)
            .unwrap();
        let first = accounts.login("root", PASSWORD, 0).unwrap();
        let second = accounts.refresh(&first.refresh_token, 10).unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        // The first token again: refused, and the family (second's token too) is revoked.
        assert!(accounts.refresh(&first.refresh_token, 20).is_err());
        assert!(accounts.refresh(&second.refresh_token, 30).is_err());
        // A fresh login is a new family.
        let third = accounts.login("root", PASSWORD, 40).unwrap();
        let fourth = accounts.refresh(&third.refresh_token, 50).unwrap();
        accounts.logout(&fourth.refresh_token).unwrap();
        assert!(accounts.refresh(&fourth.refresh_token, 60).is_err());
        let expired = accounts.login("root", PASSWORD, 0).unwrap();
        assert!(accounts
            .refresh(&expired.refresh_token, REFRESH_TTL_S)
            .is_err());
    }

    #[test]
    fn sessions_of_one_user_in_one_second_are_told_apart_and_end_alone() {
        let accounts = accounts();
        accounts
            .create_user("ann", PASSWORD, Role::Viewer, Some("north"), 0)
            .unwrap();
        let first = accounts.login("ann", PASSWORD, 100).unwrap();
        let second = accounts.login("ann", PASSWORD, 100).unwrap();
        assert_ne!(first.access_token, second.access_token);
        let (_, first_claims) = accounts.token_holder(&first.access_token, 100).unwrap();
        let (_, second_claims) = accounts.token_holder(&second.access_token, 100).unwrap();
        assert_ne!(first_claims.sid, second_claims.sid);
        assert_ne!(first_claims.jti, second_claims.jti);
        // A refresh stays in its session, with a token of its own.
        let refreshed = accounts.refresh(&first.refresh_token, 100).unwrap();
        let (_, refreshed_claims) = accounts.token_holder(&refreshed.access_token, 100).unwrap();
        assert_eq!(refreshed_claims.sid, first_claims.sid);
        assert_ne!(refreshed.access_token, first.access_token);

        accounts.logout(&refreshed.refresh_token).unwrap();
        for ended in [&first.access_token, &refreshed.access_token] {
            assert!(matches!(
                accounts.authenticate(ended, 110),
                Err(AuthError::SessionEnded)
            ));
            // Still attributable to its holder.
            assert_eq!(accounts.token_holder(ended, 110).unwrap().0.subject, "ann");
        }
        assert_eq!(
            accounts
                .authenticate(&second.access_token, 110)
                .unwrap()
                .subject,
            "ann"
        );
        assert!(accounts.refresh(&second.refresh_token, 110).is_ok());

        // A reused refresh token ends its session's access tokens too.
        let third = accounts.login("ann", PASSWORD, 200).unwrap();
        let next = accounts.refresh(&third.refresh_token, 200).unwrap();
        assert!(accounts.refresh(&third.refresh_token, 201).is_err());
        assert!(matches!(
            accounts.authenticate(&next.access_token, 202),
            Err(AuthError::SessionEnded)
        ));
    }

    #[test]
    fn new_users_are_validated() {
        let accounts = accounts();
        let invalid = |r: Result<User, AuthError>| match r {
            Err(AuthError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        assert_eq!(
            invalid(accounts.create_user("x", PASSWORD, Role::Viewer, None, 0)),
            "municipality"
        );
        assert_eq!(
            invalid(accounts.create_user("x", PASSWORD, Role::SuperAdmin, Some("n"), 0)),
            "municipality"
        );
        assert_eq!(
            invalid(accounts.create_user("x", PASSWORD, Role::Device, Some("n"), 0)),
            "role"
        );
        assert_eq!(
            invalid(accounts.create_user("a b", PASSWORD, Role::Viewer, Some("n"), 0)),
            "name"
        );
        assert!(matches!(
            accounts.create_user("x", "short", Role::Viewer, Some("n"), 0),
            Err(AuthError::Password(PasswordError::TooShort))
        ));
        assert!(accounts.users().unwrap().is_empty());
        let keyless = Accounts::new(Arc::new(MemoryStore::new()), None);
        keyless
            .create_user("x", PASSWORD, Role::Viewer, Some("n"), 0)
            .unwrap();
        assert!(matches!(
            keyless.login("x", PASSWORD, 0),
            Err(AuthError::NoSigningKey)
        ));
    }
}
