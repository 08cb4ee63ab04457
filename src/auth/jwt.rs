//! Access tokens: JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, `alg` `HS256` only).
//!
//! The header is fixed; a token whose header names any other algorithm (`none` included) is
//! refused before its signature is looked at. Signatures are compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Principal, Role};

/// Shortest secret accepted (bytes): HS256 keys should be at least as long as the hash.
pub const MIN_SECRET_LEN: usize = 32;
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON with our claims.
    #[error("malformed token")]
    Malformed,
    /// Another algorithm than HS256.
    #[error("unsupported token algorithm")]
    Algorithm,
    /// The signature does not match.
    #[error("bad token signature")]
    Signature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Signed by us, but without a token id: issued by a version before tokens had one.
    #[error("token from an older version (it has no token id): log in again")]
    Outdated,
    /// The signing secret is too short.
    #[error("the token secret must have at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// User name.
    pub sub: String,
    /// Role.
    pub role: Role,
    /// Municipality (absent for `super_admin`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mun: Option<String>,
    /// Session: the login this token descends from (its refresh-token family), the same for
    /// every token refreshed from it; ending the session (logout) ends its access tokens too.
    pub sid: String,
    /// Token id: random, so no two tokens are the same even when issued in the same second to
    /// the same user (rate limits are per token).
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

impl Claims {
    /// The caller these claims describe.
    pub fn principal(&self) -> Principal {
        Principal {
            subject: self.sub.clone(),
            role: self.role,
            municipality: self.mun.clone(),
        }
    }
}

/// The signing key of access tokens.
#[derive(Clone)]
pub struct JwtKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl JwtKey {
    /// A key from a secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        Ok(Self { secret })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// The signed token of `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of `token` if it is ours, intact and not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header_value: serde_json::Value =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        if header_value.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header.as_bytes());
        mac.update(b".");
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Signature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let payload: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if payload.get("jti").is_none() {
            return Err(TokenError::Outdated);
        }
        let claims: Claims = serde_json::from_value(payload).map_err(|_| TokenError::Malformed)?;
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "ann".into(),
            role: Role::Operator,
            mun: Some("north".into()),
            sid: "fam_1".into(),
            jti: "at_1".into(),
            iat: 1_000,
            exp: 1_900,
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let key = JwtKey::new(vec![7u8; 32]).unwrap();
        let token = key.issue(&claims());
        assert_eq!(key.verify(&token, 1_500).unwrap(), claims());
        assert_eq!(key.verify(&token, 1_900), Err(TokenError::Expired));
        let other = JwtKey::new(vec![8u8; 32]).unwrap();
        assert_eq!(other.verify(&token, 1_500), Err(TokenError::Signature));
        assert!(matches!(
            JwtKey::new(vec![1u8; 31]),
            Err(TokenError::WeakSecret)
        ));
    }

    #[test]
    fn tampered_and_unsigned_tokens_are_refused() {
        let key = JwtKey::new(vec![7u8; 32]).unwrap();
        let token = key.issue(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut elevated = claims();
        elevated.role = Role::SuperAdmin;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&elevated).unwrap());
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(key.verify(&forged, 1_500), Err(TokenError::Signature));
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(key.verify(&unsigned, 1_500), Err(TokenError::Algorithm));
        assert_eq!(key.verify("a.b", 1_500), Err(TokenError::Malformed));
        assert_eq!(key.verify("", 1_500), Err(TokenError::Malformed));
    }

    /// A token made by an independent implementation (Python's `hmac` and `base64` modules,
    /// with the secret `0123456789abcdef0123456789abcdef`) verifies, and ours is byte-equal.
    #[test]
    fn matches_a_token_signed_by_python() {
        let python = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                      eyJzdWIiOiJhbm4iLCJyb2xlIjoib3BlcmF0b3IiLCJtdW4iOiJub3J0aCIsInNpZCI6ImZhbV8x\
                      IiwianRpIjoiYXRfMSIsImlhdCI6MTAwMCwiZXhwIjoxOTAwfQ.\
                      Rt2VatrokW0Huv17a3V2jHROa0mEv5goedGVMUx5x7c";
        let key = JwtKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(key.verify(python, 1_500).unwrap(), claims());
        assert_eq!(key.issue(&claims()), python);
    }

    /// A token of the claims before token ids (signed by Python the same way): ours, intact,
    /// yet refused as outdated rather than malformed, so the caller is told to log in again.
    #[test]
    fn tokens_without_a_token_id_are_outdated() {
        let python = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                      eyJzdWIiOiJhbm4iLCJyb2xlIjoib3BlcmF0b3IiLCJtdW4iOiJub3J0aCIsImlhdCI6MTAwMCwiZXhwIjoxOTAwfQ.\
                      yir_R-LGuiJqkAxeLfp-JyRz-37oZzKorn4uIajNhNU";
        let key = JwtKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(key.verify(python, 1_500), Err(TokenError::Outdated));
        assert!(TokenError::Outdated.to_string().contains("log in again"));
    }
}
