//! The browser console in a real headless Chromium against a real loopback testnet: an admin
//! signs in, approves a pending device and sees it approved and connected; a policy whose test
//! fails is shown with its line and not saved. Screenshots of every page go to
//! `target/screenshots/`, or to `docs/screenshots/` (linked from the README) when
//! `X0T_UPDATE_SCREENSHOTS=1` asks for it: a test run leaves the working tree as it was.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use x0t_node::api::{AclView, SetAcl};
use x0t_testnet::browser::Browser;
use x0t_testnet::console_lab::ConsoleLab;
use x0t_testnet::mesh_lab::{ALLOW_ALL, x0t_for_tests};

const WAIT: Duration = Duration::from_secs(30);

fn shots() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if std::env::var_os("X0T_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots")
    } else {
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("screenshots")
    }
}

/// Fails clearly when the binary was built without the console (scripts/build-ui first).
async fn console_is_embedded(url: &str) -> anyhow::Result<()> {
    let page = reqwest::get(format!("{url}/")).await?.text().await?;
    ensure!(
        page.contains("/ui/boot.js"),
        "x0t was built without the browser console: run scripts/build-ui, then rebuild (scripts/test does both)"
    );
    Ok(())
}

/// Gives the mesh a policy that lets every node reach every node.
async fn allow_all(lab: &ConsoleLab) -> anyhow::Result<AclView> {
    let document = SetAcl {
        document: ALLOW_ALL.into(),
        expected_version: None,
    };
    Ok(lab.admin()?.set_acl("default", &document).await?)
}

async fn sign_in(browser: &Browser, url: &str, key: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{url}/")).await?;
    browser.wait_for("#api-key", WAIT).await?;
    browser.type_into("#api-key", key).await?;
    browser.click("#sign-in").await?;
    browser.wait_for("header.top nav", WAIT).await
}

/// Whether `ip` is an overlay address (100.64.0.0/10).
fn in_overlay(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
}

/// How many elements match `css` right now, as a condition for `wait_until`.
async fn at_least(browser: &Browser, css: &str, n: usize) -> anyhow::Result<bool> {
    Ok(browser.count(css).await? >= n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_a_pending_node_and_sees_it_connected() -> anyhow::Result<()> {
    let x0t = x0t_for_tests()?;
    let mut lab = ConsoleLab::start(&x0t, 1).await?;
    console_is_embedded(&lab.anchors[0]).await?;
    allow_all(&lab).await?;
    lab.member("robot-a").await?;
    lab.pending("robot-b")?;
    let url = lab.anchors[0].clone();
    let mut browser = Browser::start(1280, 800).await?;
    let result = async {
        // Sign-in: a wrong key is refused with a message, the admin key gets in.
        browser.goto(&format!("{url}/")).await?;
        browser.wait_for("#api-key", WAIT).await?;
        browser.screenshot(&shots().join("signin.png")).await?;
        browser.type_into("#api-key", "x0tadm_not-a-key").await?;
        browser.click("#sign-in").await?;
        browser.wait_for("form .error", WAIT).await?;
        ensure!(browser.text("form .error").await?.contains("not accepted"));
        sign_in(&browser, &url, &lab.key).await?;

        // Overview: the leader, and robot-b among the pending once it has registered.
        browser
            .wait_until("robot-b registered", WAIT, || async {
                let pending = lab
                    .admin()?
                    .list_nodes("default", &[("state", "pending_approval".into())])
                    .await?;
                Ok(!pending.is_empty())
            })
            .await?;
        browser.goto(&format!("{url}/#/")).await?;
        browser.wait_for("#leader", WAIT).await?;
        browser
            .wait_until("one pending node counted", WAIT, || async {
                Ok(browser
                    .text(".count-pending_approval")
                    .await
                    .unwrap_or_default()
                    == "1")
            })
            .await?;
        ensure!(browser.text("#leader").await?.starts_with("anchor "));

        // Pending: Approve.
        browser.goto(&format!("{url}/#/pending")).await?;
        browser.wait_for(".pending-node .approve", WAIT).await?;
        ensure!(browser.text(".pending-node h2").await?.contains("robot-b"));
        browser.screenshot(&shots().join("pending.png")).await?;
        browser.click(".pending-node .approve").await?;
        browser.wait_for("#done", WAIT).await?;
        let done = browser.text("#done").await?;
        let done = done.trim().to_owned();
        let ip = done
            .strip_prefix("Approved robot-b (")
            .and_then(|rest| rest.strip_suffix(')'))
            .with_context(|| format!("unexpected confirmation {done:?}"))?;
        ensure!(in_overlay(ip), "{done}");
        browser.wait_for(".empty", WAIT).await?;

        // The device got its certificate; its agent starts.
        lab.wait_approved("robot-b", WAIT).await?;
        lab.run_agent("robot-b")?;
        let b = lab.node_id("robot-b")?;

        // Nodes: both approved, in one list with the filters.
        browser.goto(&format!("{url}/#/nodes")).await?;
        browser
            .wait_until("two approved rows", WAIT, || {
                at_least(&browser, "tr.node-row[data-state=approved]", 2)
            })
            .await?;
        ensure!(
            browser
                .count(&format!("tr.node-row[data-id='{b}'][data-state=approved]"))
                .await?
                == 1
        );
        browser.type_into("#search", "robot-b").await?;
        browser
            .wait_until("the search to leave one row", WAIT, || async {
                Ok(browser.count("tr.node-row").await? == 1)
            })
            .await?;
        browser.type_into("#search", "").await?;
        browser.screenshot(&shots().join("nodes.png")).await?;

        // Topology: robot-b connected, with a link up to robot-a.
        browser.goto(&format!("{url}/#/topology")).await?;
        browser
            .wait_until(
                "robot-b connected with a link up",
                Duration::from_secs(60),
                || async {
                    Ok(browser
                        .count(&format!("g.node.connected[data-id='{b}']"))
                        .await?
                        == 1
                        && browser.count("line.link.up").await? >= 1)
                },
            )
            .await?;
        browser.wait_for("#live.on", WAIT).await?;
        // The anchor's stream told of the members connecting.
        browser
            .wait_until("join events in the live list", WAIT, || async {
                Ok(browser.text("#events").await?.matches("joined").count() >= 2)
            })
            .await?;
        browser.screenshot(&shots().join("topology.png")).await?;

        // Overview again: both members report to the anchor; onboarding was measured.
        browser.goto(&format!("{url}/#/")).await?;
        browser
            .wait_until("two members reporting", WAIT, || async {
                let slo = browser.text("#slo").await.unwrap_or_default();
                Ok(slo.contains("Members reporting\n2") || slo.contains("Members reporting 2"))
            })
            .await?;
        let slo = browser.text("#slo").await?;
        ensure!(slo.contains("1 up"), "{slo}");
        ensure!(
            slo.contains("Onboarding\np50") || slo.contains("Onboarding p50"),
            "{slo}"
        );
        browser.screenshot(&shots().join("overview.png")).await?;

        // Node detail.
        browser.goto(&format!("{url}/#/nodes/{b}")).await?;
        browser.wait_for("#overlay-ip", WAIT).await?;
        ensure!(browser.text("#overlay-ip").await? == ip);
        ensure!(browser.text("#node-id").await? == b);
        browser.screenshot(&shots().join("node.png")).await?;

        // Audit: the approval is there and the chain verifies.
        browser.goto(&format!("{url}/#/audit")).await?;
        browser.wait_for(".audit-row", WAIT).await?;
        ensure!(browser.text("table.audit").await?.contains("node.approve"));
        browser.click("#audit-verify").await?;
        browser.wait_for("#audit-verdict", WAIT).await?;
        ensure!(
            browser
                .text("#audit-verdict")
                .await?
                .starts_with("Chain verified")
        );
        browser.screenshot(&shots().join("audit.png")).await?;

        // Any node serves the console: robot-a's agent, forwarding the calls to the anchor.
        let member = lab.member_url("robot-a", WAIT).await?;
        sign_in(&browser, &member, &lab.key).await?;
        browser.goto(&format!("{member}/#/nodes")).await?;
        browser
            .wait_until("the node list through robot-a", WAIT, || {
                at_least(&browser, "tr.node-row[data-state=approved]", 2)
            })
            .await?;

        // A phone-sized window: no sideways scrolling of the page itself.
        browser.resize(390, 844).await?;
        browser.goto(&format!("{url}/#/nodes")).await?;
        browser
            .wait_until("rows", WAIT, || at_least(&browser, "tr.node-row", 2))
            .await?;
        let overflow = browser
            .eval(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await?;
        ensure!(
            overflow.as_i64().unwrap_or(99) <= 1,
            "page wider than the window by {overflow} px"
        );
        browser.screenshot(&shots().join("nodes-390.png")).await?;
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    result.with_context(|| lab.logs())
}

/// A policy whose own test fails: refused on Save with the failing test's line marked.
const FAILING_POLICY: &str = r#"version = 1

[[rule]]
name = "robots reach servers"
action = "allow"
src = "class:robot"
dst = "class:server"
ports = ["tcp/443"]

[[test]]
name = "robots ssh into servers"
src = "class:robot"
dst = "class:server"
port = 22
expect = "allow"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_whose_test_fails_is_shown_at_its_line_and_not_saved() -> anyhow::Result<()> {
    let x0t = x0t_for_tests()?;
    let lab = ConsoleLab::start(&x0t, 1).await?;
    console_is_embedded(&lab.anchors[0]).await?;
    let admin = lab.admin()?;
    let before = allow_all(&lab).await?;
    let url = lab.anchors[0].clone();
    let browser = Browser::start(1280, 900).await?;
    let result = async {
        sign_in(&browser, &url, &lab.key).await?;
        browser.goto(&format!("{url}/#/acl")).await?;
        browser
            .wait_until("the policy in the editor", WAIT, || async {
                let text = browser
                    .eval(
                        "return document.querySelector('#acl-document')?.value ?? '';",
                        vec![],
                    )
                    .await?;
                Ok(text.as_str().unwrap_or_default().contains("everyone"))
            })
            .await?;

        // Explain under the saved policy.
        browser.type_into("#explain-src", "class:robot").await?;
        browser.type_into("#explain-dst", "class:server").await?;
        browser.click("form.explain button[type=submit]").await?;
        browser.wait_for("#explain-verdict", WAIT).await?;
        ensure!(browser.text("#explain-verdict").await?.starts_with("ALLOW"));

        // The failing policy: Save is refused, the test's line is marked, nothing changes.
        browser.type_into("#acl-document", FAILING_POLICY).await?;
        browser.click("#acl-save").await?;
        browser.wait_for("#acl-error", WAIT).await?;
        let error = browser.text("#acl-error").await?;
        ensure!(error.contains("robots ssh into servers"), "{error}");
        let test_line = FAILING_POLICY
            .lines()
            .position(|l| l == "[[test]]")
            .context("no test")?
            + 1;
        ensure!(error.starts_with(&format!("line {test_line}")), "{error}");
        ensure!(browser.text(".gutter span.bad").await? == test_line.to_string());
        browser.screenshot(&shots().join("acl.png")).await?;
        let now = admin.acl("default").await?;
        ensure!(
            now.version == before.version && now.digest == before.digest,
            "the policy changed"
        );
        ensure!(
            browser
                .text("#acl-version")
                .await?
                .starts_with(&format!("version {}", before.version))
        );

        // A syntax error is shown at its line too (Validate, which never saves).
        browser
            .type_into("#acl-document", "version = 1\n[[rule]\nname = 1\n")
            .await?;
        browser.click("#acl-validate").await?;
        browser.wait_for("#acl-error", WAIT).await?;
        ensure!(
            browser.text(".gutter span.bad").await? == "2",
            "{}",
            browser.text("#acl-error").await?
        );
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    result.with_context(|| lab.logs())
}
