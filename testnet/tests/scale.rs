//! Scale, bounded for the test suite: a few hundred registered nodes and a few dozen live
//! light agents against three anchors. Every agent must be approved and connected, and
//! every anchor must take their link-state reports. `x0t-testnet bench scale` runs 10,000
//! nodes and 1,000 agents and prints the figures (docs/reliability.md).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use x0t_testnet::scale::{ScaleConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_nodes_and_live_agents_at_small_scale() {
    let exe = x0t_testnet::mesh_lab::x0t_for_tests().unwrap();
    let config = ScaleConfig {
        anchors: 3,
        nodes: 300,
        agents: 30,
        concurrency: 16,
        poll: Duration::from_millis(500),
        report_every: Duration::from_secs(1),
        steady: Duration::from_secs(3),
    };
    let report = run(&exe, &config).await.unwrap();
    assert_eq!(report.connected, config.agents, "{report:?}");
    assert_eq!(report.approval_to_connected.len(), config.agents);
    // 30 agents × 3 anchors × ~3 reports; generous for a loaded machine.
    assert!(report.steady_reports >= 90, "{report:?}");
    // Bounds, not figures: the anchors hold 300 nodes in far less than the 1 GiB goal.
    for rss in &report.anchor_rss {
        assert!(*rss > 0 && *rss < 1 << 30, "{report:?}");
    }
}
