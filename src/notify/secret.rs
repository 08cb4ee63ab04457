//! Secrets referenced from configuration as `env:VAR` or `file:PATH`: the configuration (and
//! the store, which keeps subscriptions) never holds the secret itself.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Why a secret is not available.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The reference is neither `env:VAR` nor `file:PATH`.
    #[error("a secret is given as `env:VAR` or `file:PATH`, never written in the configuration")]
    Literal,
    /// The environment variable is unset or not Unicode.
    #[error("environment variable {0} is not set")]
    MissingVar(String),
    /// The file cannot be read.
    #[error("cannot read secret file {path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The secret is empty.
    #[error("the secret behind {0} is empty")]
    Empty(String),
}

/// A reference to a secret: `env:VAR` or `file:PATH` (surrounding whitespace of the value,
/// such as a file's final newline, is not part of the secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file.
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:VAR` or `file:PATH`; anything else is refused as a literal secret.
    pub fn parse(reference: &str) -> Result<Self, SecretError> {
        if let Some(var) = reference.strip_prefix("env:").filter(|var| !var.is_empty()) {
            Ok(SecretRef::Env(var.to_string()))
        } else if let Some(path) = reference.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok(SecretRef::File(PathBuf::from(path)))
        } else {
            Err(SecretError::Literal)
        }
    }

    /// The secret, read now (so a rotated secret is picked up without a restart).
    pub fn resolve(&self) -> Result<String, SecretError> {
        let value = match self {
            SecretRef::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::MissingVar(var.clone()))?
            }
            SecretRef::File(path) => {
                std::fs::read_to_string(path).map_err(|cause| SecretError::File {
                    path: path.clone(),
                    cause,
                })?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(value.to_string())
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(var) => write!(f, "env:{var}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// Only the reference is shown: it is what configuration holds.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({self})")
    }
}

impl TryFrom<String> for SecretRef {
    type Error = SecretError;

    fn try_from(reference: String) -> Result<Self, Self::Error> {
        SecretRef::parse(&reference)
    }
}

impl From<SecretRef> for String {
    fn from(reference: SecretRef) -> Self {
        reference.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_refused_and_references_round_trip() {
        assert!(matches!(
            SecretRef::parse("hunter2"),
            Err(SecretError::Literal)
        ));
        assert!(matches!(
            SecretRef::parse("env:"),
            Err(SecretError::Literal)
        ));
        for text in ["env:HOOK_SECRET", "file:/run/secrets/hook"] {
            let reference = SecretRef::parse(text).unwrap();
            assert_eq!(reference.to_string(), text);
            let json = serde_json::to_string(&reference).unwrap();
            assert_eq!(serde_json::from_str::<SecretRef>(&json).unwrap(), reference);
        }
        assert!(serde_json::from_str::<SecretRef>("\"plain\"").is_err());
    }

    #[test]
    fn file_secrets_are_trimmed_and_empty_ones_refused() {
        let dir = std::env::temp_dir().join(format!("notify-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let reference = SecretRef::File(path.clone());
        assert_eq!(reference.resolve().unwrap(), "s3cret");
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(reference.resolve(), Err(SecretError::Empty(_))));
        let missing = SecretRef::Env("AQUATWIN_NOTIFY_TEST_UNSET_VAR".into());
        assert!(matches!(missing.resolve(), Err(SecretError::MissingVar(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
