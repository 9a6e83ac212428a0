//! The health domain of the service layer.

use tonic::Code;
use x0t_types::api::ApproveNode;

use crate::testkit::{MESH, anchor, assert_error, registration};
use x0t_node::service::ErrorKind;

#[tokio::test]
async fn topology_and_slo_cover_the_approved_nodes_and_unknown_meshes_are_refused() {
    let a = anchor().await;
    let s = &a.service;
    let (key, body) = registration(MESH, None);
    s.register(MESH, body).await.unwrap();
    let (_, pending) = registration(MESH, None);
    s.register(MESH, pending).await.unwrap();
    let id = key.node_id().to_string();
    s.approve(&a.admin, MESH, &id, ApproveNode::default())
        .await
        .unwrap();
    // Only the approved node is on the map; no member reports links to this anchor yet.
    let topology = s.mesh_topology(MESH).unwrap();
    assert_eq!(topology.nodes.len(), 1);
    assert_eq!(topology.nodes[0].node_id, id);
    assert!(topology.links.is_empty());
    let slo = s.mesh_slo(MESH).unwrap();
    assert_eq!(slo.members_reporting, 0);

    for error in [
        s.mesh_topology("nowhere").map(drop).unwrap_err(),
        s.mesh_slo("nowhere").map(drop).unwrap_err(),
        s.follow_mesh_events("nowhere", 0).map(drop).unwrap_err(),
    ] {
        assert_error(
            &error,
            ErrorKind::NotFound,
            "no_such_mesh",
            404,
            Code::NotFound,
        );
    }
    assert!(s.follow_mesh_events(MESH, 0).is_ok());
    a.stop().await;
}
