//! The operator's commands on a data directory: users, tokens, key rotation, and the clear
//! errors when the server holds the database or the key does not fit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mailroom-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mailroom(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    command
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("MAILROOM_SECRET_KEY");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("mailroom runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn users_and_tokens_are_managed_from_the_shell() {
    let data = data_dir("users");
    let id = stdout(&mailroom(
        &data,
        &[
            "user",
            "add",
            "--name",
            "Ann",
            "--email",
            "ann@crm.test",
            "--role",
            "admin",
            "--shared-inbox",
        ],
        &[],
    ));
    assert!(id.starts_with("usr_"), "{id}");
    let list = stdout(&mailroom(&data, &["user", "list"], &[]));
    assert!(
        list.contains(&id) && list.contains("ann@crm.test") && list.contains("shared_inbox"),
        "{list}"
    );

    let token = stdout(&mailroom(
        &data,
        &["token", "create", "--user", &id, "--name", "ops"],
        &[],
    ));
    assert!(token.starts_with("mr_"), "{token}");
    let service = stdout(&mailroom(
        &data,
        &["token", "create", "--service", "crm"],
        &[],
    ));
    assert!(service.starts_with("mr_") && service != token);

    // The command line checks a user as the API does.
    let bad = mailroom(
        &data,
        &[
            "user",
            "add",
            "--name",
            "Bo",
            "--email",
            "bo@crm.test",
            "--external-id",
            "a b",
        ],
        &[],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--external-id may hold only"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let refused = mailroom(&data, &["token", "create", "--user", "usr_nobody"], &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no user usr_nobody"));
    let missing = mailroom(&data, &["token", "revoke", "tok_nobody"], &[]);
    assert!(!missing.status.success());

    // A user's tokens are listed by id and name, never by secret, until revoked.
    let second = stdout(&mailroom(
        &data,
        &["token", "create", "--user", &id, "--name", "laptop"],
        &[],
    ));
    let listed = stdout(&mailroom(&data, &["token", "list", "--user", &id], &[]));
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split('\t').collect()).collect();
    let mut names: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    names.sort();
    assert_eq!(names, ["laptop", "ops"], "{listed}");
    assert!(
        rows.iter()
            .all(|r| r[0].starts_with("tok_") && r[3] == "never used")
    );
    assert!(!listed.contains(&token) && !listed.contains(&second) && !listed.contains("mr_"));
    let services = stdout(&mailroom(
        &data,
        &["token", "list", "--service", "crm"],
        &[],
    ));
    assert_eq!(services.lines().count(), 1, "{services}");
    let ops = rows.iter().find(|r| r[1] == "ops").unwrap()[0];
    mailroom(&data, &["token", "revoke", ops], &[]);
    let listed = stdout(&mailroom(&data, &["token", "list", "--user", &id], &[]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("laptop"), "{listed}");
    let neither = mailroom(&data, &["token", "list"], &[]);
    assert!(!neither.status.success());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_wrong_secret_key_is_refused_with_a_clear_error_and_rotation_keeps_secrets() {
    let data = data_dir("keys");
    let key_a = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let key_b = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";
    stdout(&mailroom(
        &data,
        &["user", "list"],
        &[("MAILROOM_SECRET_KEY", key_a)],
    ));

    let wrong = mailroom(&data, &["user", "list"], &[("MAILROOM_SECRET_KEY", key_b)]);
    assert!(!wrong.status.success());
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        message.contains("secret key does not fit this database"),
        "{message}"
    );

    // Rotation with the environment: the new key first, the old one after it.
    let both = format!("{key_b},{key_a}");
    let rotated = mailroom(
        &data,
        &["secrets", "rotate"],
        &[("MAILROOM_SECRET_KEY", &both)],
    );
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    stdout(&mailroom(
        &data,
        &["user", "list"],
        &[("MAILROOM_SECRET_KEY", key_b)],
    ));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_key_file_is_private_and_rotates_in_place() {
    let data = data_dir("keyfile");
    stdout(&mailroom(&data, &["user", "list"], &[]));
    let key_file = data.join("secret.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file)
            .expect("a key file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read_to_string(&key_file).expect("readable");
    let rotated = mailroom(&data, &["secrets", "rotate"], &[]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let after = std::fs::read_to_string(&key_file).expect("readable");
    assert_ne!(before, after);
    assert_eq!(after.lines().count(), 1);
    stdout(&mailroom(&data, &["user", "list"], &[]));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn connectors_are_added_listed_and_removed_in_a_data_directory() {
    let data = data_dir("connectors");
    let component = common::pop3_example();
    let component = component.to_str().expect("a UTF-8 path");
    let added = stdout(&mailroom(&data, &["connector", "add", component], &[]));
    assert!(
        added.starts_with("pop3\t1.0.0\tPOP3\tmailroom:connector@0.4.0\tuploaded\tsha256:"),
        "{added}"
    );
    let again = mailroom(&data, &["connector", "add", component], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("loaded already"));
    stdout(&mailroom(
        &data,
        &["connector", "add", component, "--replace"],
        &[],
    ));
    let list = stdout(&mailroom(&data, &["connector", "list"], &[]));
    assert!(
        list.contains("imap\t") && list.contains("built-in"),
        "{list}"
    );
    assert!(list.contains("pop3\t1.0.0"), "{list}");
    let builtin = mailroom(&data, &["connector", "remove", "imap"], &[]);
    assert!(!builtin.status.success());
    assert!(String::from_utf8_lossy(&builtin.stderr).contains("built-in"));
    assert_eq!(
        stdout(&mailroom(&data, &["connector", "remove", "pop3"], &[])),
        "removed pop3"
    );
    let list = stdout(&mailroom(&data, &["connector", "list"], &[]));
    assert!(!list.contains("pop3"), "{list}");
    let _ = std::fs::remove_dir_all(&data);
}
