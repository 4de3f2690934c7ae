//! The binary as a new user meets it: a failure is reported once, with its context.

use std::process::Command;

#[test]
fn a_missing_config_file_is_reported_once_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_botfleet-bot"))
        .arg("--config")
        .arg(&path)
        .arg("chat")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run botfleet-bot");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, not a log line and a copy:\n{stderr}"
    );
    let line = lines[0];
    assert!(
        line.contains(&path.display().to_string()),
        "names the file: {line}"
    );
    assert_eq!(
        line.matches("os error 2").count(),
        1,
        "the OS error once: {line}"
    );
    assert!(line.starts_with("botfleet-bot: "), "{line}");
}
