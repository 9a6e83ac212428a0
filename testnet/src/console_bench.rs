//! `x0t-testnet bench console`: the browser console's weight and speed. The release bundle
//! as an anchor serves it (wasm + JS + page, gzipped), and, against an anchor holding
//! `nodes` registered nodes (three quarters approved, two members running their data plane),
//! the time from navigation to the first rendered node list and topology graph in headless
//! Chromium. Anchor measured in the same run and browser: the node list's API call alone
//! (what any client must wait for), so the ratio is what the console adds.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use x0t_node::api::ApproveNode;
use x0t_testnet::browser::Browser;
use x0t_testnet::console_lab::ConsoleLab;

use crate::onboarding::{register_all, registrations};

/// The files a first visit loads.
const BUNDLE: [&str; 5] = [
    "index.html",
    "boot.js",
    "style.css",
    "x0t_ui.js",
    "x0t_ui_bg.wasm",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn mark(browser: &Browser, name: &str) -> anyhow::Result<f64> {
    let script = "const m = performance.getEntriesByName(arguments[0]); return m.length ? m[0].startTime : null;";
    let value = browser.eval(script, vec![json!(name)]).await?;
    value.as_f64().with_context(|| format!("no {name} mark"))
}

/// Runs the benchmark.
pub(crate) async fn run(x0t: &Path, nodes: usize, runs: usize) -> anyhow::Result<()> {
    if !x0t.exists() {
        bail!(
            "{} not found: scripts/bench console builds it",
            x0t.display()
        );
    }
    let mut lab = ConsoleLab::start(x0t, 1).await?;
    let url = lab.anchors[0].clone();

    // 1. The bundle, as served.
    let http = reqwest::Client::new();
    let mut total = 0usize;
    println!("bundle (gzipped, as {url} serves it):");
    for file in BUNDLE {
        let path = if file == "index.html" {
            "/".to_owned()
        } else {
            format!("/ui/{file}")
        };
        let answer = http
            .get(format!("{url}{path}"))
            .header("accept-encoding", "gzip")
            .send()
            .await?;
        if !answer.status().is_success() {
            bail!(
                "{path}: {} (built without the console? scripts/build-ui)",
                answer.status()
            );
        }
        let bytes = answer.bytes().await?.len();
        total += bytes;
        println!("  {file:<16} {:>9} bytes", bytes);
    }
    println!(
        "  total            {total:>9} bytes = {:.0} KiB (goal < 1 MiB: {:.0} % of it)",
        total as f64 / 1024.0,
        total as f64 / (1024.0 * 1024.0) * 100.0
    );

    // 2. A mesh of `nodes` nodes: two running members, the rest registered by signature,
    // three quarters of them approved.
    eprintln!("registering {nodes} nodes …");
    lab.member("member-1").await?;
    lab.member("member-2").await?;
    let bodies = registrations(nodes.saturating_sub(2), "sensor")?;
    let (elapsed, errors) = register_all(std::slice::from_ref(&url), bodies).await;
    if errors > 0 {
        bail!("{errors} registrations failed");
    }
    let admin = lab.admin()?;
    let pending = admin
        .list_nodes("default", &[("state", "pending_approval".into())])
        .await?;
    for node in pending.iter().take(pending.len() * 3 / 4) {
        admin
            .approve("default", &node.node_id, &ApproveNode::default())
            .await?;
    }
    let listed = admin.list_nodes("default", &[]).await?.len();
    eprintln!("{listed} nodes in the ledger (registered in {elapsed:.1?})");

    // 3. Navigation → first rendered node list / topology, in a fresh page load each run.
    let browser = Browser::start(1280, 800).await?;
    let result = async {
        browser.goto(&format!("{url}/")).await?;
        browser
            .wait_for("#api-key", Duration::from_secs(30))
            .await?;
        browser.type_into("#api-key", &lab.key).await?;
        browser.click("#sign-in").await?;
        browser
            .wait_for("header.top", Duration::from_secs(30))
            .await?;
        let (mut list_ms, mut graph_ms, mut api_ms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            browser.goto("about:blank").await?;
            browser.goto(&format!("{url}/#/nodes")).await?;
            browser
                .wait_until("the node list", Duration::from_secs(30), || async {
                    Ok(browser.count("tr.node-row").await? >= listed)
                })
                .await?;
            list_ms.push(mark(&browser, "x0t-nodes-rendered").await?);
            // The anchor: the same list's API call from the same page.
            let api = fetch_time(&browser).await?;
            api_ms.push(api);
            browser.goto("about:blank").await?;
            browser.goto(&format!("{url}/#/topology")).await?;
            browser
                .wait_until("the topology", Duration::from_secs(30), || async {
                    Ok(browser.count("g.node").await? >= listed * 3 / 4)
                })
                .await?;
            graph_ms.push(mark(&browser, "x0t-topology-rendered").await?);
        }
        let (list, graph, api) = (median(list_ms), median(graph_ms), median(api_ms));
        println!("\nheadless Chromium, {listed} nodes, median of {runs} fresh page loads:");
        println!("  navigation → node list rendered   {list:>7.0} ms (goal < 1000 ms)");
        println!("  navigation → topology rendered    {graph:>7.0} ms");
        println!(
            "  anchor: the list's API call alone {api:>7.1} ms; node list / API call = {:.1}×",
            list / api
        );
        anyhow::Ok(())
    }
    .await;
    browser.close().await;
    result
}

/// The node list's API call timed in the page (WebDriver's async script).
async fn fetch_time(browser: &Browser) -> anyhow::Result<f64> {
    let value = browser
        .eval_async(
            "const done = arguments[arguments.length - 1];
             const key = sessionStorage.getItem('x0t.api_key'); const t = performance.now();
             fetch('/api/v1/meshes/default/nodes', {headers: {authorization: 'Bearer ' + key}})
               .then(r => r.json()).then(() => done(performance.now() - t), e => done(null));",
        )
        .await?;
    value.as_f64().context("the API call failed in the page")
}
