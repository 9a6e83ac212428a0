//! The policy's semantics and its error messages, case by case.

use x0t_policy::{Endpoint, Flow, Policy, PolicyError, Protocol, Verdict};
use x0t_types::{DeviceClass, NodeId, PqProfile};

fn policy(text: &str) -> Policy {
    Policy::parse(text).unwrap_or_else(|e| panic!("refused: {e}\n{text}"))
}

fn flow(src: &str, dst: &str, protocol: Protocol, port: u16) -> Flow {
    Flow {
        src: src.parse::<Endpoint>().expect("src"),
        dst: dst.parse::<Endpoint>().expect("dst"),
        protocol,
        port,
    }
}

fn decide(policy: &Policy, src: &str, dst: &str, port: u16) -> String {
    let verdict = policy.decide(&flow(src, dst, Protocol::Tcp, port));
    format!(
        "{} {}",
        if verdict.allowed() { "allow" } else { "deny" },
        policy.deciding_name(&verdict)
    )
}

const BASE: &str = r#"
version = 1

[groups]
fleet = ["tag:robot", "class:robot"]

[[rule]]
name = "fleet to api"
action = "allow"
src = "group:fleet"
dst = "tag:api"
ports = ["tcp/443", "8000-8010"]

[[rule]]
name = "no legacy"
action = "deny"
src = "*"
dst = "tag:legacy"

[[rule]]
name = "anything to api-or-legacy"
action = "allow"
src = "*"
dst = ["tag:api", "tag:legacy"]
ports = ["tcp/22"]
"#;

#[test]
fn default_deny_deny_beats_allow_and_direction() {
    let p = policy(BASE);
    let cases = [
        ("tag:robot", "tag:api", 443, "allow fleet to api"),
        ("class:robot", "tag:api", 8005, "allow fleet to api"),
        ("tag:robot", "tag:api", 444, "deny default-deny"),
        // Directional: the API may not open flows to robots.
        ("tag:api", "tag:robot", 443, "deny default-deny"),
        // Deny beats allow, even an allow listed first.
        ("tag:robot", "tag:api tag:legacy", 443, "deny no legacy"),
        ("tag:robot", "tag:legacy", 22, "deny no legacy"),
        ("tag:ops", "tag:api", 22, "allow anything to api-or-legacy"),
        ("tag:ops", "tag:nothing", 22, "deny default-deny"),
    ];
    for (src, dst, port, expected) in cases {
        assert_eq!(
            decide(&p, src, dst, port),
            expected,
            "{src} -> {dst}:{port}"
        );
    }
    // UDP matches bare ports, not tcp/ ones; ICMP matches only rules that say icmp or nothing.
    let udp = p.decide(&flow("tag:robot", "tag:api", Protocol::Udp, 8001));
    assert!(udp.allowed());
    assert!(
        !p.decide(&flow("tag:robot", "tag:api", Protocol::Udp, 443))
            .allowed()
    );
    assert!(
        !p.decide(&flow("tag:robot", "tag:api", Protocol::Icmp, 0))
            .allowed()
    );
}

#[test]
fn no_policy_denies_everything_and_keeps_default_pq_profiles() {
    let p = Policy::deny_all();
    assert_eq!(
        p.decide(&flow("tag:a", "tag:b", Protocol::Tcp, 1)),
        Verdict::NoRuleMatched
    );
    assert_eq!(p.pq_profile(DeviceClass::Sensor), PqProfile::Constrained);
    assert_eq!(p.pq_profile(DeviceClass::Robot), PqProfile::Standard);
}

#[test]
fn pq_profiles_per_device_class() {
    let p = policy("version = 1\n[pq]\nrobot = \"ml-kem-512+ml-dsa-44\"\nsensor = \"standard\"\n");
    assert_eq!(p.pq_profile(DeviceClass::Robot), PqProfile::Constrained);
    assert_eq!(p.pq_profile(DeviceClass::Sensor), PqProfile::Standard);
    assert_eq!(p.pq_profile(DeviceClass::Server), PqProfile::Standard);
}

#[test]
fn node_selectors_match_one_node() {
    let id = NodeId::from_bytes([7; 32]);
    let other = NodeId::from_bytes([8; 32]);
    let p = policy(&format!(
        "version = 1\n[[rule]]\naction = \"allow\"\nsrc = \"node:{id}\"\ndst = \"*\"\n"
    ));
    assert_eq!(
        decide(&p, &format!("node:{id}"), "tag:x", 1),
        "allow rule #1"
    );
    assert_eq!(
        decide(&p, &format!("node:{other}"), "tag:x", 1),
        "deny default-deny"
    );
}

#[test]
fn refusals_point_at_the_line_and_column() {
    let cases: &[(&str, &str)] = &[
        (
            "version = 2\n",
            "line 1, column 11: policy version 2 is not supported; this release reads version 1",
        ),
        (
            "version = 1\nbogus = 3\n",
            "line 2, column 1: unknown field `bogus`, expected one of `version`, `profiles`, `segments`, `groups`, `pq`, `rule`, `test`",
        ),
        (
            "version = 1\n[[rule]]\naction = \"allow\"\nsrc = \"*\"\ndst = \"group:nope\"\n",
            "line 5, column 7: unknown group \"nope\"; define it under [groups]",
        ),
        (
            "version = 1\n[groups]\na = [\"tag:x\"]\nb = [\"group:a\"]\n",
            "line 4, column 5: group \"b\" contains group:a; groups cannot contain groups",
        ),
        (
            "version = 1\n[[rule]]\naction = \"permit\"\nsrc = \"*\"\ndst = \"*\"\n",
            "line 3, column 10: action \"permit\"; expected \"allow\" or \"deny\"",
        ),
        (
            "version = 1\n[[rule]]\naction = \"allow\"\nsrc = \"*\"\ndst = \"*\"\nports = [\"tcp/0\"]\n",
            "line 6, column 9: \"0\" in \"tcp/0\" is not a port (1-65535)",
        ),
        (
            "version = 1\n[[rule]]\naction = \"allow\"\nsrc = \"*\"\ndst = \"*\"\nports = [\"sctp/9\"]\n",
            "line 6, column 9: unknown protocol \"sctp\" in \"sctp/9\"; expected tcp or udp (icmp has no ports)",
        ),
        (
            "version = 1\n[[rule]]\naction = \"allow\"\nsrc = []\ndst = \"*\"\n",
            "line 4, column 7: an empty selector list matches nothing; use \"*\" for every node",
        ),
        (
            "version = 1\n[[rule]]\nname = \"x\"\naction = \"allow\"\nsrc = \"*\"\ndst = \"*\"\n[[rule]]\nname = \"x\"\naction = \"deny\"\nsrc = \"*\"\ndst = \"*\"\n",
            "line 7, column 1: two rules are named \"x\"; rule names must be unique",
        ),
        (
            "version = 1\nprofiles = [\"allow-all\"]\n",
            "line 2, column 12: unknown profile \"allow-all\"; built-in profiles: robot-to-server, deny-east-west",
        ),
        (
            "version = 1\nsegments = [\"a\"]\n",
            "line 2, column 12: `segments` only applies with profiles = [\"deny-east-west\"]",
        ),
        (
            "version = 1\n[pq]\nrobot = \"rsa\"\n",
            "line 3, column 9: unknown PQ profile \"rsa\"; expected standard (ml-kem-768+ml-dsa-65) or constrained (ml-kem-512+ml-dsa-44)",
        ),
        (
            "version = 1\n[[test]]\nsrc = \"tag:a\"\ndst = \"tag:b\"\nexpect = \"deny\"\n",
            "line 2, column 1: a tcp or udp test needs a `port`",
        ),
        (
            "version = 1\n[[test]]\nsrc = \"tag:a\"\ndst = \"tag:b\"\nport = 1\nexpect = \"deny\"\nrule = \"ghost\"\n",
            "line 7, column 8: test names rule \"ghost\", which the document does not have",
        ),
        (
            "version = 1\n[[rule]\n",
            "line 2, column 8: unclosed array table, expected `]`",
        ),
    ];
    for (text, expected) in cases {
        let error = Policy::parse(text).expect_err(text);
        assert_eq!(&error.to_string(), expected, "{text}");
        assert!(error.position().is_some());
    }
}

#[test]
fn a_failing_test_is_named_and_counted() {
    let text = r#"
version = 1
[[rule]]
name = "web"
action = "allow"
src = "tag:a"
dst = "tag:b"
ports = ["tcp/80"]
[[test]]
name = "web works"
src = "tag:a"
dst = "tag:b"
port = 80
expect = "allow"
rule = "web"
[[test]]
name = "reverse too?"
src = "tag:b"
dst = "tag:a"
port = 80
expect = "allow"
[[test]]
name = "wrong rule"
src = "tag:a"
dst = "tag:b"
port = 80
expect = "allow"
rule = "default-deny"
"#;
    let error = Policy::parse(text).expect_err("tests fail");
    assert_eq!(
        error.to_string(),
        "policy test \"reverse too?\" (line 16) failed: expected allow, got deny by \"default-deny\" (1 more test(s) failed)"
    );
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let text = format!(
        "version = 1\n#{}\n",
        "x".repeat(x0t_policy::MAX_DOCUMENT_BYTES)
    );
    assert!(matches!(
        Policy::parse(&text),
        Err(PolicyError::TooLarge { .. })
    ));
}

#[test]
fn explain_lists_every_rule_and_names_the_decider() {
    let p = policy(BASE);
    let decision = p.explain(
        &flow("tag:robot", "tag:api tag:legacy", Protocol::Tcp, 443),
        4,
    );
    assert!(!decision.allowed);
    assert_eq!(
        decision.deciding_rule.as_ref().map(|r| r.name.as_str()),
        Some("no legacy")
    );
    assert_eq!(decision.considered.len(), 3);
    assert_eq!(decision.policy_version, 4);
    assert!(decision.considered[0].src_matched && decision.considered[0].port_matched);
    let json = serde_json::to_value(&decision).expect("json");
    assert_eq!(json["deciding_rule"]["line"], 14);
    let text = x0t_policy::explain_text(&decision);
    assert!(
        text.starts_with("DENY  tcp tag:robot -> tag:api tag:legacy port 443\n"),
        "{text}"
    );
    assert!(text.contains("→ #1"), "{text}");
}
