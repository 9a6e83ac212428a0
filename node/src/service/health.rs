//! A mesh's health as its members report it to this anchor: the topology (approved nodes and
//! the links their signed link states mention), the self-healing figures (SLO), and the live
//! stream of link events.

use x0t_ledger::MeshReject;
use x0t_ledger::{NodeRecord, Reject};
use x0t_types::{MeshId, NodeState};

use super::{Service, ServiceError, mesh_id};

impl Service {
    /// The mesh's topology as its members report it to this anchor: the approved nodes and
    /// every link their signed link states mention, with health.
    pub fn mesh_topology(&self, mesh: &str) -> Result<x0t_types::api::Topology, ServiceError> {
        let mesh = mesh_id(mesh)?;
        let nodes = self.approved_nodes(&mesh, |n| {
            (n.node_id, n.overlay_ip.map(|ip| ip.to_string()))
        })?;
        Ok(self.members.topology(&mesh, nodes))
    }

    /// `f` of each approved node of `mesh` (an unknown mesh is an error).
    fn approved_nodes<T>(
        &self,
        mesh: &MeshId,
        f: impl Fn(&NodeRecord) -> T,
    ) -> Result<Vec<T>, ServiceError> {
        Ok(self.control.read(|l| {
            l.mesh(mesh)
                .map(|_| {
                    l.nodes(mesh)
                        .filter(|n| n.state == NodeState::Approved)
                        .map(&f)
                        .collect::<Vec<_>>()
                })
                .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh: mesh.clone() }))
        })?)
    }

    /// The mesh's self-healing figures as this anchor's members report them.
    pub fn mesh_slo(&self, mesh: &str) -> Result<x0t_types::api::MeshSlo, ServiceError> {
        let mesh = mesh_id(mesh)?;
        // Approval is an approved node's last state change.
        let approved = self.approved_nodes(&mesh, |n| (n.node_id, n.updated_at.as_millis()))?;
        Ok(self.members.slo(&mesh, &approved))
    }

    /// The link events this anchor saw in `mesh` after event `after`, then each new one as
    /// it happens; the stream ends when the node shuts down. An unknown mesh is an error
    /// before the stream starts.
    pub fn follow_mesh_events(
        &self,
        mesh: &str,
        after: u64,
    ) -> Result<impl futures::Stream<Item = crate::events::MeshEvent> + use<>, ServiceError> {
        let mesh = mesh_id(mesh)?;
        self.control
            .read(|l| l.mesh(&mesh).map(|_| ()))
            .ok_or_else(|| Reject::Meshes(MeshReject::NoSuchMesh { mesh: mesh.clone() }))?;
        let members = self.members.clone();
        let (changed, shutdown) = (members.subscribe_events(), members.stopped());
        Ok(crate::events::follow_events(
            move |after| members.events_after(&mesh, after, 256),
            after,
            changed,
            shutdown,
        ))
    }
}
