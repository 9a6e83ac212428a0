//! Every example in docs/policy.md is a test: `toml` blocks are accepted (their policy tests
//! pass), `toml-refused` blocks fail with exactly the error in the `text` block after them, and
//! `$ x0t acl explain` transcripts print exactly what the page shows, under the `toml` block
//! before them.

use x0t_policy::{Endpoint, Flow, Policy, Protocol, explain_text};

const PAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/policy.md"));

/// The page's fenced blocks: (info string, body, line of the opening fence).
fn blocks(page: &str) -> Vec<(String, String, usize)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for (n, line) in page.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new(), n + 1)),
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some((_, body, _)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "unclosed code block in docs/policy.md");
    blocks
}

/// Splits a command line on spaces, keeping double-quoted words together.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn explain(policy: &Policy, command: &str) -> String {
    let words = words(command);
    assert_eq!(&words[..3], ["$", "x0t", "acl"], "{command}");
    assert_eq!(words[3], "explain", "{command}");
    let protocol = match words.get(7).map(String::as_str) {
        Some("--proto") => words[8].parse::<Protocol>().expect("protocol"),
        _ => Protocol::Tcp,
    };
    let flow = Flow {
        src: words[4].parse::<Endpoint>().expect("src"),
        dst: words[5].parse::<Endpoint>().expect("dst"),
        protocol,
        port: words[6].parse().expect("port"),
    };
    explain_text(&policy.explain(&flow, 1))
}

#[test]
fn every_example_in_the_policy_guide_holds() {
    let blocks = blocks(PAGE);
    let mut last_policy: Option<Policy> = None;
    let mut refused: Option<(String, usize)> = None;
    let (mut accepted, mut refusals, mut transcripts) = (0, 0, 0);
    for (info, body, line) in blocks {
        match info.as_str() {
            "toml" => {
                let policy = Policy::parse(&body)
                    .unwrap_or_else(|e| panic!("docs/policy.md:{line}: example refused: {e}"));
                assert!(
                    !policy.document().tests.is_empty() || policy.document().rules.is_empty(),
                    "docs/policy.md:{line}: an example with rules should carry tests"
                );
                last_policy = Some(policy);
                accepted += 1;
            }
            "toml-refused" => refused = Some((body, line)),
            "text" if body.starts_with("error: ") => {
                let (document, at) = refused.take().unwrap_or_else(|| {
                    panic!("docs/policy.md:{line}: error without a refused example")
                });
                let error = Policy::parse(&document)
                    .err()
                    .unwrap_or_else(|| panic!("docs/policy.md:{at}: example was accepted"));
                assert_eq!(
                    format!("error: {error}\n"),
                    body,
                    "docs/policy.md:{line}: the error differs"
                );
                refusals += 1;
            }
            "text" if body.starts_with("$ x0t acl explain") => {
                let (command, shown) = body.split_once('\n').expect("a transcript");
                let policy = last_policy
                    .as_ref()
                    .expect("a policy before the transcript");
                let printed = explain(policy, command);
                assert_eq!(
                    printed, shown,
                    "docs/policy.md:{line}: `{command}` prints:\n{printed}"
                );
                transcripts += 1;
            }
            other => panic!("docs/policy.md:{line}: unexpected block kind {other:?}"),
        }
    }
    assert!(refused.is_none(), "a refused example has no error shown");
    assert!(
        accepted >= 3 && refusals >= 2 && transcripts >= 2,
        "{accepted} {refusals} {transcripts}"
    );
}

/// The example policy `scripts/run` installs is accepted, with its tests.
#[test]
fn the_example_policy_is_accepted() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policy.toml"
    ));
    let policy = Policy::parse(text).unwrap_or_else(|e| panic!("examples/policy.toml: {e}"));
    assert!(policy.document().tests.len() >= 4);
}
