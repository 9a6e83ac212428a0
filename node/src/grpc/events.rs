//! `x0t.v1.MeshEvents` on a node's API port: the link changes this node sees in its members'
//! link states, as `GET /api/v1/meshes/{mesh}/events` streams them.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use x0t_proto::pb;
use x0t_proto::pb::mesh_events_server::{MeshEvents, MeshEventsServer};

use super::{GrpcFace, status_of};

/// The service, ready to be routed.
pub(super) fn server(face: GrpcFace) -> MeshEventsServer<GrpcFace> {
    MeshEventsServer::new(face)
}

#[tonic::async_trait]
impl MeshEvents for GrpcFace {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::MeshEvent, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.viewer(&request)?;
        let body = request.into_inner();
        let events = self
            .service
            .follow_mesh_events(&body.mesh, body.after)
            .map_err(status_of)?;
        Ok(Response::new(Box::pin(
            events.map(|e| Ok(crate::events::event_message(e))),
        )))
    }
}
