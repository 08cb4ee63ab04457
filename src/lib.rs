//! The platform layer of aquatwin as a library, so that the binary and the tests share it:
//! [`auth`] (users, roles, passwords, access and refresh tokens).

pub mod auth;
