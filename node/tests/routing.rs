//! Link-state routing between agents in one process on loopback: every member learns every
//! member's signed link state, computes direct routes to all, and loses the route to a
//! member that goes away within a few seconds; the event log records the loop's steps.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::eventually;
use common::member::{ALLOW_ALL, MESH, agent};
use x0t_node::api::SetAcl;
use x0t_node::client::ApiClient;
use x0t_node::mesh::events::EventKind;
use x0t_node::mesh::local_api::TOKEN_HEADER;
use x0t_node::mesh::{LOCAL_API_TOKEN_FILE, MemberInfo};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_learn_each_others_links_and_route_around_a_departure() {
    let root = tempfile::tempdir().unwrap();
    let (anchors, key) = common::cluster(root.path(), 1).await;
    let anchor_url = anchors[0].info().api_url;
    let admin = ApiClient::new(&anchor_url, Some(key.clone())).unwrap();
    admin
        .set_acl(
            MESH,
            &SetAcl {
                document: ALLOW_ALL.to_owned(),
                expected_version: None,
            },
        )
        .await
        .unwrap();
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        members.push(agent(&admin, &anchor_url, root.path(), name, "server").await);
    }
    for member in &members {
        eventually("every peer verified", Duration::from_secs(20), async || {
            (member.status().await.peers.len() == 2).then_some(())
        })
        .await;
    }
    // Sessions (and with them link probes) come up with the first packet.
    for (from, to) in [(0, 1), (0, 2), (1, 2)] {
        let report = members[from]
            .client()
            .ping(&members[to].node_id[..16], 1)
            .await
            .unwrap();
        assert!(report.rtts_ms.iter().all(Option::is_some), "{report:?}");
    }
    // Each learns all three signed link states and routes directly to the other two.
    for member in &members {
        eventually(
            "direct routes to both others",
            Duration::from_secs(10),
            async || {
                let status = member.status().await;
                let direct = status
                    .routes
                    .iter()
                    .filter(|r| r.path.len() == 1 && r.next_hop == r.destination)
                    .count();
                (status.link_states == 3 && direct == 2).then_some(())
            },
        )
        .await;
    }
    // C leaves: A and B find their links to it dead and stop routing to it.
    let c = members.pop().unwrap();
    let c_id = c.node_id.clone();
    let stopping = Instant::now();
    c.stop().await;
    eprintln!("the member took {:?} to stop", stopping.elapsed());
    let left = Instant::now();
    for member in &members {
        eventually(
            "no route to the departed",
            Duration::from_secs(10),
            async || {
                let status = member.status().await;
                (!status.routes.iter().any(|r| r.destination == c_id)).then_some(())
            },
        )
        .await;
    }
    eprintln!(
        "routes to the departed member gone after {:?}",
        left.elapsed()
    );
    // The loop's own record, in order: A saw the link to C die (Analyze), then planned
    // around it (Plan: C unreachable).
    let events = members[0].client().events(0).await.unwrap();
    let down = events
        .iter()
        .find(|e| e.kind == EventKind::LinkDown && e.node.as_deref() == Some(c_id.as_str()))
        .unwrap_or_else(|| panic!("no link_down for the departed: {events:#?}"));
    let unreachable = events
        .iter()
        .find(|e| {
            e.kind == EventKind::RouteChanged
                && e.node.as_deref() == Some(c_id.as_str())
                && e.detail == "unreachable"
        })
        .unwrap_or_else(|| panic!("no route change for the departed: {events:#?}"));
    assert!(down.id < unreachable.id && down.uptime_us <= unreachable.uptime_us);
    assert!(events.iter().any(|e| e.kind == EventKind::PeerVerified));
    eprintln!(
        "link down → route withdrawn: {} ms",
        (unreachable.uptime_us - down.uptime_us) / 1_000
    );
    // Reading after an id gives only what came later; a bad query is a typed 400.
    let later = members[0].client().events(down.id).await.unwrap();
    assert!(later.iter().all(|e| e.id > down.id) && !later.is_empty());
    let info = MemberInfo::load(&members[0].dir).unwrap();
    let token = std::fs::read_to_string(members[0].dir.join(LOCAL_API_TOKEN_FILE)).unwrap();
    let response = reqwest::Client::new()
        .get(format!("{}/v1/events?after=soon", info.api_url))
        .header(TOKEN_HEADER, token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("after"));

    for member in &members {
        let status = member.status().await;
        assert_eq!(status.counters["link_states_refused"], 0, "{status:?}");
        assert!(status.routes.iter().any(|r| r.path.len() == 1));
    }
    for member in members {
        member.stop().await;
    }
    for anchor in anchors {
        anchor.stop().await;
    }
}
