//! Userspace mode (no root, no TUN): TCP streams forwarded through the mesh.
//!
//! `x0t expose 8080 --name web` offers a local port; `x0t connect <node>/web --listen
//! 127.0.0.1:9000` listens locally and carries each accepted connection to the exposing node
//! over its own TCP connection to that node's data port. Each stream runs the same signed
//! hybrid handshake as a session (certificates in band, both identities sign the
//! transcript), then carries sealed frames (`u32 length ‖ frame`), so the bytes are
//! post-quantum protected end to end. The policy is checked at both ends: the exposing node
//! decides `peer → self, tcp/<exposed port>`, the connecting node decides the same flow once
//! it learns the port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use x0t_crypto::frame::{Frame, FrameKind, MAX_FRAME_LEN};
use x0t_policy::{Endpoint, Protocol};

use super::session::{self, InitMessage, Session};
use super::{Member, read, write};
use crate::clock::now;

/// Largest handshake message on a stream.
const MAX_MESSAGE: usize = 32 * 1024;
/// Bytes carried per frame.
const CHUNK: usize = 16 * 1024;
/// How long a stream handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most services one node exposes.
const MAX_SERVICES: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
enum StreamMessage {
    Open {
        certificate: Vec<u8>,
        service: String,
        hello: Vec<u8>,
        signature: Vec<u8>,
    },
    Accept {
        certificate: Vec<u8>,
        port: u16,
        hello: Vec<u8>,
        signature: Vec<u8>,
    },
    Refused(String),
    Confirm {
        signature: Vec<u8>,
    },
}

async fn send(stream: &mut TcpStream, message: &StreamMessage) -> Result<(), String> {
    let bytes = bincode::serde::encode_to_vec(message, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&(bytes.len() as u32).to_be_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(&bytes).await.map_err(|e| e.to_string())
}

async fn receive(stream: &mut TcpStream) -> Result<StreamMessage, String> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(format!("stream message of {len} bytes"));
    }
    let mut bytes = vec![0u8; len];
    stream
        .read_exact(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    bincode::serde::decode_from_slice(
        &bytes,
        bincode::config::standard().with_limit::<MAX_MESSAGE>(),
    )
    .map(|(m, _)| m)
    .map_err(|e| format!("malformed stream message: {e}"))
}

/// Offers local TCP port `port` to the mesh as `name`.
pub fn expose(member: &Member, name: &str, port: u16) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!("service name {name:?}: 1-64 of [A-Za-z0-9_-]"));
    }
    if port == 0 {
        return Err("port 0 cannot be exposed".to_owned());
    }
    let mut services = write(&member.services);
    if services.len() >= MAX_SERVICES && !services.contains_key(name) {
        return Err(format!("at most {MAX_SERVICES} services"));
    }
    services.insert(name.to_owned(), port);
    tracing::info!(name, port, "service exposed to the mesh");
    Ok(())
}

fn decide_cert(
    member: &Member,
    cert: &x0t_crypto::NodeCertificate,
    outbound: bool,
    port: u16,
) -> bool {
    let (policy, _) = read(&member.trust).policy();
    let peer = policy.resolve(&Endpoint::node(
        cert.node_id,
        cert.device_class,
        cert.tags.iter().cloned(),
    ));
    let me = policy.resolve(&member.me);
    let verdict = if outbound {
        policy.decide_resolved(&me, &peer, Protocol::Tcp, port)
    } else {
        policy.decide_resolved(&peer, &me, Protocol::Tcp, port)
    };
    verdict.allowed()
}

/// Accepts streams on the data port until the listener fails.
pub(crate) async fn serve_streams(member: Arc<Member>, listener: TcpListener) {
    let permits = Arc::new(tokio::sync::Semaphore::new(1_024));
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            return;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // Too many streams: refuse by closing.
        };
        let member = member.clone();
        tokio::spawn(async move {
            if let Err(why) = accept_stream(&member, stream).await {
                tracing::info!(%from, %why, "stream refused");
            }
            drop(permit);
        });
    }
}

async fn accept_stream(member: &Arc<Member>, mut stream: TcpStream) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (session, port) = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let StreamMessage::Open {
            certificate,
            service,
            hello,
            signature,
        } = receive(&mut stream).await?
        else {
            return Err("expected an open".to_owned());
        };
        let refuse = |why: String| StreamMessage::Refused(why);
        let verified = read(&member.trust).verify_certificate(&certificate, None, now());
        let cert = match verified {
            Ok(cert) => cert,
            Err(why) => {
                let _ = send(&mut stream, &refuse(why.clone())).await;
                return Err(why);
            }
        };
        let port = read(&member.services).get(&service).copied();
        let Some(port) = port else {
            let why = format!("no service {service:?} here");
            let _ = send(&mut stream, &refuse(why.clone())).await;
            return Err(why);
        };
        if !decide_cert(member, &cert, false, port) {
            member
                .counters
                .packets_denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let why = format!(
                "the policy denies {} → this node tcp/{port}",
                cert.node_id.short()
            );
            let _ = send(&mut stream, &refuse(why.clone())).await;
            return Err(why);
        }
        let (responding, reply) = session::respond(
            member.parties(&cert),
            0,
            &InitMessage { hello, signature },
            0,
        )?;
        send(
            &mut stream,
            &StreamMessage::Accept {
                certificate: member.cert_bytes.clone(),
                port,
                hello: reply.hello,
                signature: reply.signature,
            },
        )
        .await?;
        let StreamMessage::Confirm { signature } = receive(&mut stream).await? else {
            return Err("expected a confirmation".to_owned());
        };
        Ok((
            session::confirm(member.parties(&cert), responding, &signature)?,
            port,
        ))
    })
    .await
    .map_err(|_| "stream handshake timed out".to_owned())??;
    let local = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("exposed port {port}: {e}"))?;
    pump(member.node_id, session, stream, local).await;
    Ok(())
}

/// Listens on `listen` and carries each connection to `target` (`<node>/<service>`).
pub(crate) async fn connect(
    member: Arc<Member>,
    target: &str,
    listen: SocketAddr,
) -> Result<SocketAddr, String> {
    let (node, service) = target
        .split_once('/')
        .ok_or_else(|| format!("target {target:?}: expected <node>/<service>"))?;
    let peer = member.find_peer(node).ok_or_else(|| {
        format!("{node:?} is not a connected peer (node id, short id or overlay IP)")
    })?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let service = service.to_owned();
    tracing::info!(%bound, node = %peer.cert.node_id.short(), %service, "forwarding");
    tokio::spawn(async move {
        loop {
            let Ok((local, _)) = listener.accept().await else {
                return;
            };
            let member = member.clone();
            let peer = peer.clone();
            let service = service.clone();
            tokio::spawn(async move {
                if let Err(why) = open_stream(&member, &peer, &service, local).await {
                    tracing::warn!(node = %peer.cert.node_id.short(), %why, "stream failed");
                }
            });
        }
    });
    Ok(bound)
}

async fn open_stream(
    member: &Arc<Member>,
    peer: &super::Peer,
    service: &str,
    local: TcpStream,
) -> Result<(), String> {
    // Userspace streams are TCP connections of their own: they need a direct path.
    let data = peer.direct().ok_or_else(|| {
        format!(
            "{} is reachable only through relays; userspace streams need a direct path",
            peer.cert.node_id.short()
        )
    })?;
    let mut stream = TcpStream::connect(data)
        .await
        .map_err(|e| format!("data port {data}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let session = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let (initiating, init) = session::initiate(member.parties(&peer.cert), 0)?;
        send(
            &mut stream,
            &StreamMessage::Open {
                certificate: member.cert_bytes.clone(),
                service: service.to_owned(),
                hello: init.hello,
                signature: init.signature,
            },
        )
        .await?;
        let (certificate, port, reply) = match receive(&mut stream).await? {
            StreamMessage::Accept {
                certificate,
                port,
                hello,
                signature,
            } => (certificate, port, InitMessage { hello, signature }),
            StreamMessage::Refused(why) => return Err(format!("refused: {why}")),
            _ => return Err("unexpected answer".to_owned()),
        };
        let verified = read(&member.trust).verify_certificate(&certificate, None, now());
        let cert = verified?;
        if cert.node_id != peer.cert.node_id {
            return Err("another node answered".to_owned());
        }
        if !decide_cert(member, &cert, true, port) {
            member
                .counters
                .packets_denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(format!(
                "the policy denies this node → {} tcp/{port}",
                cert.node_id.short()
            ));
        }
        let (session, confirmation) =
            session::finish(member.parties(&cert), initiating, 0, &reply)?;
        send(
            &mut stream,
            &StreamMessage::Confirm {
                signature: confirmation,
            },
        )
        .await?;
        Ok(session)
    })
    .await
    .map_err(|_| "stream handshake timed out".to_owned())??;
    pump(member.node_id, session, stream, local).await;
    Ok(())
}

/// Carries bytes both ways until either side closes: local bytes are sealed into frames,
/// frames from the mesh are opened (any bad frame ends the stream).
async fn pump(me: x0t_types::NodeId, session: Session, mesh: TcpStream, local: TcpStream) {
    let session = Arc::new(session);
    let (mut mesh_read, mut mesh_write) = mesh.into_split();
    let (mut local_read, mut local_write) = local.into_split();
    let sealing = session.clone();
    let outbound = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match local_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Ok(frame) = sealing.seal(FrameKind::Data, me, &buf[..n]) else {
                break;
            };
            if mesh_write
                .write_all(&(frame.len() as u32).to_be_bytes())
                .await
                .is_err()
                || mesh_write.write_all(&frame).await.is_err()
            {
                break;
            }
        }
        let _ = mesh_write.shutdown().await;
    };
    let inbound = async move {
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        loop {
            let mut len = [0u8; 4];
            if mesh_read.read_exact(&mut len).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > MAX_FRAME_LEN || mesh_read.read_exact(&mut buf[..len]).await.is_err() {
                break;
            }
            let Ok(frame) = Frame::decode(&buf[..len]) else {
                break;
            };
            let Ok(plaintext) = session.open(&frame) else {
                break;
            };
            if local_write.write_all(&plaintext).await.is_err() {
                break;
            }
        }
        let _ = local_write.shutdown().await;
    };
    tokio::join!(outbound, inbound);
}
