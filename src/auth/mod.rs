//! Authentication and authorization of people and devices on the platform API.
//!
//! - [`password`]: argon2id password hashes (PHC strings).
//! - [`jwt`]: short-lived HS256 access tokens.
//! - [`http`]: the axum extractor of the caller, role/tenant checks, and the session routes.
//! - [`users`]: users, their roles and municipality, and rotating, revocable refresh tokens,
//!   kept in the store under the platform prefix `("aquatwin", "_platform", ...)`.
//!
//! Roles are ordered by what they may do inside their municipality; `super_admin` is the only
//! role not bound to one.

pub mod http;
pub mod jwt;
pub mod password;
pub mod users;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, every municipality.
    SuperAdmin,
    /// Manages users, devices, rules of one municipality.
    MunicipalityAdmin,
    /// Acknowledges and resolves alerts, runs scenarios.
    Operator,
    /// Reads.
    Viewer,
    /// A device: ingests readings only.
    Device,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::SuperAdmin,
        Role::MunicipalityAdmin,
        Role::Operator,
        Role::Viewer,
        Role::Device,
    ];

    /// The name used in tokens, the CLI and the API.
    pub fn name(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::MunicipalityAdmin => "municipality_admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Device => "device",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                format!("unknown role {s:?} (expected one of {})", names.join(", "))
            })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Principal {
    /// User name (or device id).
    pub subject: String,
    /// Role.
    pub role: Role,
    /// The municipality the caller belongs to; `None` only for `super_admin`.
    pub municipality: Option<String>,
}

impl Principal {
    /// Whether the caller may see `municipality` at all.
    pub fn can_access(&self, municipality: &str) -> bool {
        self.role == Role::SuperAdmin || self.municipality.as_deref() == Some(municipality)
    }

    /// Whether the caller has one of `roles`.
    pub fn has_role(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_scope() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().unwrap_err().contains("super_admin"));
        let operator = Principal {
            subject: "ann".into(),
            role: Role::Operator,
            municipality: Some("north".into()),
        };
        assert!(operator.can_access("north"));
        assert!(!operator.can_access("south"));
        let admin = Principal {
            subject: "root".into(),
            role: Role::SuperAdmin,
            municipality: None,
        };
        assert!(admin.can_access("south"));
    }
}
