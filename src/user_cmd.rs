//! `aquatwin user create|list|enable|disable`: manage platform users in a data directory (the
//! first `super_admin` is made this way; later ones through the API). The store must not be
//! open by a running `serve` (the embedded store takes an exclusive lock).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use aquatwin::auth::users::{Accounts, AuthError};
use aquatwin::auth::Role;
use clap::{Args, Subcommand};
use twin::store::RedbStore;

use crate::BadInput;

/// The environment variable a new user's password may come from.
pub const PASSWORD_ENV: &str = "AQUATWIN_PASSWORD";

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The data directory of `serve`.
    #[arg(long, global = true, default_value = "data")]
    data: PathBuf,
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Create a user. The password comes from --password-file, else the AQUATWIN_PASSWORD
    /// environment variable, else the first line of standard input.
    Create {
        /// Login name.
        #[arg(long)]
        name: String,
        /// super_admin, municipality_admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// The user's municipality (every role but super_admin).
        #[arg(long)]
        municipality: Option<String>,
        /// A file whose first line is the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List users (never their password hashes).
    List,
    /// Allow a user to log in again.
    Enable {
        #[arg(long)]
        name: String,
    },
    /// Stop a user: no login, no refresh, and their access tokens stop working.
    Disable {
        #[arg(long)]
        name: String,
    },
}

fn read_password(file: Option<&Path>) -> anyhow::Result<String> {
    let line = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| BadInput(format!("{}: cannot read the password: {e}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => match std::env::var(PASSWORD_ENV) {
            Ok(password) => password,
            Err(_) => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        },
    };
    Ok(line)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A user mistake becomes exit status 2; a store failure stays an internal error.
fn classify(error: AuthError) -> anyhow::Error {
    match error {
        AuthError::Store(e) => anyhow::Error::new(e),
        other => BadInput(other.to_string()).into(),
    }
}

pub fn run(args: &UserArgs) -> anyhow::Result<()> {
    let store = RedbStore::open(&args.data)
        .with_context(|| format!("cannot open the store in {}", args.data.display()))?;
    let accounts = Accounts::new(Arc::new(store), None);
    match &args.action {
        UserAction::Create {
            name,
            role,
            municipality,
            password_file,
        } => {
            let role: Role = role.parse().map_err(BadInput)?;
            let password = read_password(password_file.as_deref())?;
            let user = accounts
                .create_user(name, &password, role, municipality.as_deref(), now())
                .map_err(classify)?;
            println!(
                "created user {} ({}{})",
                user.name,
                user.role,
                user.municipality
                    .map(|m| format!(" of {m}"))
                    .unwrap_or_default()
            );
        }
        UserAction::List => {
            println!(
                "{:<24} {:<20} {:<20} active",
                "name", "role", "municipality"
            );
            for user in accounts.users().map_err(classify)? {
                println!(
                    "{:<24} {:<20} {:<20} {}",
                    user.name,
                    user.role.name(),
                    user.municipality.as_deref().unwrap_or("-"),
                    if user.active { "yes" } else { "no" }
                );
            }
        }
        UserAction::Enable { name } | UserAction::Disable { name } => {
            let active = matches!(args.action, UserAction::Enable { .. });
            let user = accounts.set_active(name, active).map_err(classify)?;
            println!(
                "user {} is now {}",
                user.name,
                if user.active { "enabled" } else { "disabled" }
            );
        }
    }
    Ok(())
}
