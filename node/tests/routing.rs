//! Link-state routing between agents in one process on loopback: every member learns every
//! member's signed link state, computes direct routes to all, and loses the route to a
//! member that goes away within a few seconds; the event log records the loop's steps.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::eventually;
use common::member::{MESH, agent};
use x0t_node::events::EventKind;
use x0t_node::mesh::local_api::TOKEN_HEADER;
use x0t_node::mesh::{LOCAL_API_TOKEN_FILE, MemberInfo};

/// Sends `request` and reads its JSON answer.
async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_learn_each_others_links_and_route_around_a_departure() {
    let root = tempfile::tempdir().unwrap();
    let (anchors, key, admin, anchor_url) = common::member::open_mesh(root.path()).await;
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
    // Sessions (and with them link probes) come up on their own; packets pass.
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
    // The mesh routes of A's local API: topology, SLO, events over SSE and gRPC.
    let info = MemberInfo::load(&members[0].dir).unwrap();
    let token = std::fs::read_to_string(members[0].dir.join(LOCAL_API_TOKEN_FILE)).unwrap();
    let token = token.trim().to_owned();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}/api/v1/meshes/{path}", info.api_url))
            .header(TOKEN_HEADER, &token)
    };
    let topology = json(get(&format!("{MESH}/topology"))).await;
    assert_eq!(topology["nodes"].as_array().unwrap().len(), 3, "{topology}");
    let links = topology["links"].as_array().unwrap();
    assert_eq!(links.len(), 3, "{topology}");
    assert!(links.iter().all(|l| l["health"] == "up"), "{topology}");
    assert_eq!(
        get("elsewhere/topology").send().await.unwrap().status(),
        404
    );
    let anonymous = http
        .get(format!("{}/api/v1/meshes/{MESH}/slo", info.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // SSE: what is kept, then live; opened before C leaves.
    let mut sse = get(&format!("{MESH}/events?after=0")).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    assert!(
        sse.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let first = String::from_utf8(sse.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(
        first.contains("event: peer_verified") && first.contains("id: 1"),
        "{first}"
    );
    // The client `x0t events --follow` uses reads the same stream.
    let mut followed = Vec::new();
    members[0]
        .client()
        .follow_events(0, |event| {
            followed.push(event);
            followed.len() < 2
        })
        .await
        .unwrap();
    assert_eq!(
        followed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(followed[0].kind, EventKind::PeerVerified);
    // gRPC: the same stream.
    let channel = tonic::transport::Channel::from_shared(info.api_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = x0t_proto::pb::mesh_events_client::MeshEventsClient::new(channel);
    let mut watch = tonic::Request::new(x0t_proto::pb::WatchEventsRequest {
        mesh: MESH.to_owned(),
        after: 0,
    });
    watch
        .metadata_mut()
        .insert(TOKEN_HEADER, token.parse().unwrap());
    let mut watched = grpc.watch(watch).await.unwrap().into_inner();
    let event = watched.message().await.unwrap().unwrap();
    assert_eq!((event.id, event.kind.as_str()), (1, "peer_verified"));
    let refused = grpc
        .watch(x0t_proto::pb::WatchEventsRequest {
            mesh: MESH.to_owned(),
            after: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // The anchor's API has the same topology (members send it their link states), and a
    // stream of the link changes it sees.
    let anchor_get = |path: &str| {
        http.get(format!("{anchor_url}/api/v1/meshes/{path}"))
            .bearer_auth(&key)
    };
    let seen = eventually(
        "the anchor's topology",
        Duration::from_secs(10),
        async || {
            let topology: serde_json::Value = anchor_get(&format!("{MESH}/topology"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let links = topology["links"].as_array()?;
            (links.len() == 3 && links.iter().all(|l| l["health"] == "up")).then_some(topology)
        },
    )
    .await;
    let nodes = seen["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{seen}");
    assert!(
        nodes
            .iter()
            .all(|n| n["neighbour"] == true && n["reachable"] == true),
        "{seen}"
    );
    assert_eq!(
        anchor_get("elsewhere/topology")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{anchor_url}/api/v1/meshes/{MESH}/topology"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // The anchor's SLO figures: every member reports, their links are up.
    let slo = json(anchor_get(&format!("{MESH}/slo"))).await;
    assert_eq!(slo["members_reporting"], 3, "{slo}");
    assert_eq!(slo["links_up"], 3, "{slo}");
    assert_eq!(slo["onboarding"]["count"], 3, "{slo}");

    // The browser console on a member: its page, and its API calls (without the agent's
    // token, with the admin's key) answered by an anchor through the member.
    let page = http.get(format!("{}/", info.api_url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    // A reload with the ETag costs a 304.
    let etag = page.headers()["etag"].clone();
    let again = http
        .get(format!("{}/", info.api_url))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let forwarded = |path: &str| {
        http.get(format!("{}{path}", info.api_url))
            .bearer_auth(&key)
    };
    let session = json(forwarded("/api/v1/session")).await;
    assert_eq!(session["role"], "admin", "{session}");
    let through = json(forwarded(&format!("/api/v1/meshes/{MESH}/slo"))).await;
    assert_eq!(
        through["members_reporting"], 3,
        "the anchor's figures: {through}"
    );
    let refused = http
        .get(format!("{}/api/v1/session", info.api_url))
        .bearer_auth("x0tadm_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the anchor decides");
    let forwarded_sse = forwarded(&format!("/api/v1/meshes/{MESH}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded_sse.status(), 200);
    assert!(
        forwarded_sse.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Left open: the member must still stop (the forwarded stream ends with it).

    let mut anchor_sse = anchor_get(&format!("{MESH}/events")).send().await.unwrap();
    assert_eq!(anchor_sse.status(), 200);
    // And over gRPC on the same port, with an API key.
    let channel = tonic::transport::Channel::from_shared(anchor_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anchor_grpc = x0t_proto::pb::mesh_events_client::MeshEventsClient::new(channel);
    let watch_request = || {
        tonic::Request::new(x0t_proto::pb::WatchEventsRequest {
            mesh: MESH.to_owned(),
            after: 0,
        })
    };
    let refused = anchor_grpc.watch(watch_request()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut request = watch_request();
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", key.trim()).parse().unwrap(),
    );
    let mut anchor_watched = anchor_grpc.watch(request).await.unwrap().into_inner();

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
    // The detection time is the silence before the link was declared dead (0.8 s).
    let detected = down.duration_ms.unwrap();
    assert!((700..5_000).contains(&detected), "{down:?}");
    // Both live streams carried the link_down as it happened.
    let mut seen = String::new();
    let until = Instant::now() + Duration::from_secs(10);
    while !seen.contains("event: link_down") && Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), sse.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    assert!(seen.contains("event: link_down"), "{seen}");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), watched.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if event.kind == "link_down" {
            assert_eq!(event.duration_ms, Some(detected));
            break;
        }
    }
    // The anchor saw A and B stop reporting their links to C.
    let mut seen = String::new();
    let until = Instant::now() + Duration::from_secs(10);
    while seen.matches("event: link_down").count() < 2 && Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), anchor_sse.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    assert!(seen.matches("event: link_down").count() >= 2, "{seen}");
    // Over gRPC: the members connecting to the anchor, then the link going down.
    let mut kinds = Vec::new();
    while kinds.last().map(String::as_str) != Some("link_down") {
        let event = tokio::time::timeout(Duration::from_secs(10), anchor_watched.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        kinds.push(event.kind);
    }
    assert!(
        kinds.iter().filter(|k| *k == "peer_verified").count() >= 3,
        "{kinds:?}"
    );
    assert!(seen.contains(&c_id[..16]) || seen.contains(&c_id), "{seen}");
    // The SLO figures come from those events.
    let slo = json(get(&format!("{MESH}/slo"))).await;
    assert!(slo["failures"].as_u64().unwrap() >= 1, "{slo}");
    assert_eq!(slo["detection"]["max_ms"].as_u64(), Some(detected), "{slo}");
    assert!(slo["unreachable"].as_u64().unwrap() >= 1, "{slo}");
    assert!(
        slo["approved_to_first_session_ms"].as_u64().is_some()
            && slo["started_to_first_session_ms"].as_u64().unwrap() < 20_000,
        "{slo}"
    );
    // A window that ends before the failure sees none of it; a bad one is a typed 400.
    let recent = json(get(&format!("{MESH}/slo?window_s=0"))).await;
    assert_eq!(recent["failures"], 0, "{recent}");
    assert_eq!(
        get(&format!("{MESH}/slo?window_s=soon"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    // Reading after an id gives only what came later; a bad query is a typed 400.
    let later = members[0].client().events(down.id).await.unwrap();
    assert!(later.iter().all(|e| e.id > down.id) && !later.is_empty());
    let response = http
        .get(format!("{}/v1/events?after=soon", info.api_url))
        .header(TOKEN_HEADER, &token)
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
