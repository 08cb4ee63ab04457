//! `aquatwin user`: create, list, disable as an operator would, and the errors a user can make.

use std::path::PathBuf;
use std::process::{Command, Output};

fn aquatwin(data: &PathBuf, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aquatwin"));
    command.arg("user").arg("--data").arg(data).args(args);
    command.env_remove("AQUATWIN_PASSWORD");
    if let Some(password) = password {
        command.env("AQUATWIN_PASSWORD", password);
    }
    command.output().expect("run aquatwin")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn users_are_created_listed_and_disabled() {
    let data = std::env::temp_dir().join(format!("aquatwin-user-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let password = Some("twelve chars or more");

    let created = aquatwin(
        &data,
        &["create", "--name", "root", "--role", "super_admin"],
        password,
    );
    assert!(created.status.success(), "{}", text(&created));
    let operator = aquatwin(
        &data,
        &[
            "create",
            "--name",
            "ann",
            "--role",
            "operator",
            "--municipality",
            "north",
        ],
        password,
    );
    assert!(operator.status.success(), "{}", text(&operator));

    // Mistakes: exit 2 and a message that names the problem.
    for (args, expected) in [
        (
            vec![
                "create",
                "--name",
                "root",
                "--role",
                "viewer",
                "--municipality",
                "n",
            ],
            "already exists",
        ),
        (
            vec!["create", "--name", "x", "--role", "god"],
            "unknown role",
        ),
        (
            vec!["create", "--name", "x", "--role", "viewer"],
            "needs a municipality",
        ),
        (vec!["disable", "--name", "nobody"], "no user nobody"),
    ] {
        let output = aquatwin(&data, &args, password);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains(expected),
            "{args:?}: {}",
            text(&output)
        );
    }
    let short = aquatwin(
        &data,
        &["create", "--name", "y", "--role", "super_admin"],
        Some("short"),
    );
    assert_eq!(short.status.code(), Some(2), "{}", text(&short));
    assert!(text(&short).contains("at least 12"), "{}", text(&short));

    let disabled = aquatwin(&data, &["disable", "--name", "ann"], None);
    assert!(disabled.status.success(), "{}", text(&disabled));
    let listed = aquatwin(&data, &["list"], None);
    let listing = text(&listed);
    assert!(listed.status.success(), "{listing}");
    let row = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name} in {listing}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("root"), ["root", "super_admin", "-", "yes"]);
    assert_eq!(row("ann"), ["ann", "operator", "north", "no"]);
    assert!(!listing.contains("argon2"), "hashes must never be listed");
    let _ = std::fs::remove_dir_all(&data);
}
