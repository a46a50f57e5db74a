//! The README tells the truth: its quick start prints what it says it prints, and every
//! `trd-sentinel` command it shows is one the binary has.

use std::path::Path;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// The fenced blocks of a Markdown text, each with its info string.
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut open: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(_), Some(block)) => out.push(block),
            (Some(info), None) => open = Some((info.trim().to_string(), Vec::new())),
            (None, Some((info, mut lines))) => {
                lines.push(line.to_string());
                open = Some((info, lines));
            }
            (None, None) => {}
        }
    }
    out
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run trd-sentinel")
}

#[test]
fn the_quick_start_prints_the_lines_it_shows() {
    let text = readme();
    let quick = text
        .split("## Quick start")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Quick start section");
    let found = blocks(quick);
    let [(_, command), (_, excerpt), ..] = found.as_slice() else {
        panic!("the quick start shows a command and what it prints");
    };
    let command = command.first().expect("a command");
    let args: Vec<&str> = command
        .split(" -- ")
        .nth(1)
        .expect("cargo run --release -- ARGS")
        .split_whitespace()
        .collect();
    let output = run(&args);
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let printed: Vec<&str> = printed.lines().map(str::trim_end).collect();
    let missing: Vec<&String> = excerpt
        .iter()
        .filter(|line| !printed.contains(&line.trim_end()))
        .collect();
    assert!(
        missing.is_empty(),
        "README lines `{command}` does not print:\n{}",
        missing
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_command_the_readme_shows_exists() {
    let text = readme();
    let mut subcommands: Vec<String> = Vec::new();
    for (info, lines) in blocks(&text) {
        if info != "sh" {
            continue;
        }
        for line in lines {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("trd-sentinel ")
                .or_else(|| line.split_once("cargo run --release -- ").map(|(_, r)| r));
            if let Some(word) = rest.and_then(|r| r.split_whitespace().next()) {
                if !word.starts_with('-') && !subcommands.iter().any(|s| s == word) {
                    subcommands.push(word.to_string());
                }
            }
        }
    }
    assert!(
        subcommands.iter().any(|s| s == "evaluate") && subcommands.iter().any(|s| s == "serve"),
        "found {subcommands:?}"
    );
    for subcommand in &subcommands {
        let output = run(&[subcommand, "--help"]);
        assert!(
            output.status.success(),
            "the README shows `trd-sentinel {subcommand}`, which the binary does not have: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
