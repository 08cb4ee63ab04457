//! The platform layer of aquatwin as a library, so that the binary and the tests share it:
//! [`auth`] (users, roles, passwords, access and refresh tokens) and [`notify`] (webhooks and
//! email about alerts).

pub mod auth;
pub mod notify;
