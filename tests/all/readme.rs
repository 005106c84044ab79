//! The README's walkthrough is real: every `$ prereg ...` line in its `text`
//! blocks is run against the binary (with its `csv` block as `hosts.csv`), in order, in a fresh folder, and its
//! output and exit code must match what the README shows (instance ids, key
//! ids, hashes and times vary from run to run and are compared by shape).

use crate::common::prereg_command;

/// One command of the walkthrough and what the README says it prints.
struct Step {
    args: Vec<String>,
    expected: Vec<String>,
    exit: i32,
}

/// Splits a command line the way a shell would for the README's simple
/// commands: white space separates, single quotes group.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut started) = (false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            c => {
                current.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(current);
    }
    words
}

fn steps(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_text = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_text = line == "```text";
            continue;
        }
        if !in_text {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ prereg ") {
            steps.push(Step { args: words(command), expected: Vec::new(), exit: 0 });
        } else if let Some(step) = steps.last_mut() {
            match line.strip_prefix("[exit ").and_then(|s| s.strip_suffix(']')) {
                Some(code) => step.exit = code.parse().unwrap(),
                None => step.expected.push(line.to_owned()),
            }
        }
    }
    steps
}

/// Replaces what varies between runs by a placeholder of its kind.
fn normalize(text: &str) -> String {
    text.split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(|token| {
            let (word, rest) = token
                .split_at(token.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).len());
            let hex = !word.is_empty() && word.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
            let kind = match word.len() {
                64 if hex => "<sha256>",
                32 if hex => "<instance>",
                43 => "<kid>",
                10 if word.bytes().all(|b| b.is_ascii_digit()) => "<time>",
                // Key ids are cut to 12 characters in `audit list`.
                12 if token.ends_with(' ') && !word.contains('.') && word.chars().any(|c| c.is_ascii_uppercase()) => {
                    "<kid12>"
                }
                _ => word,
            };
            format!("{kind}{rest}")
        })
        .collect()
}

#[test]
fn the_readme_walkthrough_matches_the_binary() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let steps = steps(&readme);
    assert!(steps.len() >= 15, "the walkthrough has {} commands", steps.len());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw.txt"), "s3cret").unwrap();
    // The example file of the import section.
    let csv = readme.split("```csv\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    std::fs::write(dir.path().join("hosts.csv"), csv).unwrap();
    for step in steps {
        let out = prereg_command(dir.path()).args(&step.args).output().unwrap();
        let actual = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let command = step.args.join(" ");
        assert_eq!(out.status.code(), Some(step.exit), "prereg {command}\n{actual}");
        let expected = step.expected.join("\n");
        assert_eq!(normalize(actual.trim_end()), normalize(expected.trim_end()), "prereg {command}");
    }
}
