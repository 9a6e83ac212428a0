//! The libp2p enrollment face of the service: a device that reaches an anchor only over
//! libp2p (`x0t join --anchor <multiaddr>`) registers, polls its status and reads the anchors
//! through the same operations as the public HTTP routes; failures travel as their HTTP
//! status and stable code.

use x0t_crypto::SignedRegistration;
use x0t_types::base32;

use crate::service::{ErrorKind, Service, ServiceError};

/// Answers the enrollment calls that reach this node over libp2p (`x0t join --anchor
/// <multiaddr>`) with the same operations as the public HTTP routes. The control plane
/// bounds how many are in flight.
pub fn serve(service: &Service) {
    let Some(mut calls) = service.take_enrollments() else {
        return;
    };
    let service = service.clone();
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            let service = service.clone();
            tokio::spawn(async move {
                let answer = enroll(&service, call.peer, call.request).await;
                let _ = call.reply.send(answer);
            });
        }
    });
}

async fn enroll(
    service: &Service,
    peer: libp2p::PeerId,
    request: crate::p2p::protocol::EnrollRequest,
) -> Result<crate::p2p::protocol::EnrollResponse, crate::p2p::protocol::EnrollError> {
    use crate::p2p::protocol::{EnrollRequest, EnrollResponse};
    let result = match request {
        EnrollRequest::Register { mesh, body } => {
            // Over libp2p the sender is authenticated: its registration must be its own.
            let named = base32::decode(body.registration.trim())
                .ok()
                .and_then(|bytes| SignedRegistration::decode(&bytes).ok())
                .map(|r| r.payload().peer_id.clone());
            if named
                .as_deref()
                .is_some_and(|named| named != peer.to_bytes())
            {
                Err(ServiceError::new(
                    ErrorKind::BadRequest,
                    "bad_registration",
                    "the registration names another peer than the one sending it",
                ))
            } else {
                service
                    .register(&mesh, body)
                    .await
                    .map(EnrollResponse::Status)
            }
        }
        EnrollRequest::Status { mesh, id } => service
            .node_status(&mesh, &id, false)
            .await
            .map(EnrollResponse::Status),
        EnrollRequest::Anchors => service.anchors(false).await.map(EnrollResponse::Anchors),
    };
    result.map_err(|e| crate::p2p::protocol::EnrollError {
        status: crate::api::status_of(e.kind).as_u16(),
        code: e.code.to_owned(),
        message: e.message,
    })
}
