//! `x0t bench crypto`: microseconds per post-quantum operation and per handshake, with an
//! X25519-only handshake measured in the same run as the anchor every ratio refers to.
//!
//! Each operation runs `warmup` untimed iterations, then `iterations` individually timed ones,
//! interleaved with the other operations over several rounds; we report the median (robust against a noisy neighbour on a 2-core machine), the mean and
//! the 99th percentile. Run it from a release build: debug numbers mean nothing.

use std::hint::black_box;
use std::time::Instant;

use rand_core::OsRng;
use serde::Serialize;
use x0t_crypto::hybrid::{self, Initiator, InitiatorHello, ResponderHello};
use x0t_crypto::kem::{KemAlgorithm, generate_kem_keypair};
use x0t_crypto::{SigAlgorithm, SignatureDomain, SigningKey};

use crate::NodeError;

/// How long to run each operation.
#[derive(Clone, Copy, Debug)]
pub struct BenchConfig {
    /// Timed iterations per operation.
    pub iterations: u32,
    /// Untimed iterations first (caches, lazy init in liboqs).
    pub warmup: u32,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            iterations: 1_000,
            warmup: 50,
        }
    }
}

/// Timing of one operation.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// What was measured.
    pub operation: String,
    /// Timed iterations.
    pub iterations: u32,
    /// Median microseconds per operation.
    pub median_us: f64,
    /// Mean microseconds per operation.
    pub mean_us: f64,
    /// 99th percentile microseconds per operation.
    pub p99_us: f64,
    /// Median divided by the anchor's median, for handshake rows.
    pub ratio_to_anchor: Option<f64>,
}

/// Name of the anchor row every handshake ratio refers to.
pub const ANCHOR: &str = "handshake X25519-only (anchor, both sides)";

/// One timed operation.
struct Case<'a> {
    operation: String,
    op: Box<dyn FnMut() -> Result<(), NodeError> + 'a>,
    samples: Vec<f64>,
}

impl<'a> Case<'a> {
    fn new(operation: impl Into<String>, op: impl FnMut() -> Result<(), NodeError> + 'a) -> Self {
        Self {
            operation: operation.into(),
            op: Box::new(op),
            samples: Vec::new(),
        }
    }

    fn summary(mut self) -> Measurement {
        self.samples.sort_by(f64::total_cmp);
        let samples = &self.samples;
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Measurement {
            operation: self.operation,
            iterations: samples.len() as u32,
            median_us: at(0.5),
            mean_us: samples.iter().sum::<f64>() / samples.len() as f64,
            p99_us: at(0.99),
            ratio_to_anchor: None,
        }
    }
}

/// Rounds the iterations are spread over: every operation runs a slice of its iterations in
/// each round, so CPU frequency drift or a noisy neighbour affects all rows (and the anchor)
/// alike instead of whichever row happened to run at that moment.
const ROUNDS: u32 = 10;

fn run_cases(cases: &mut [Case<'_>], config: BenchConfig) -> Result<(), NodeError> {
    for case in cases.iter_mut() {
        for _ in 0..config.warmup {
            (case.op)()?;
        }
        case.samples.reserve(config.iterations as usize);
    }
    for round in 0..ROUNDS {
        // Spread the remainder over the first rounds so exactly `iterations` run.
        let share = config.iterations / ROUNDS + u32::from(round < config.iterations % ROUNDS);
        for case in cases.iter_mut() {
            for _ in 0..share {
                let start = Instant::now();
                (case.op)()?;
                case.samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    Ok(())
}

/// The classical baseline: both sides' ephemeral X25519 keys, both DH computations and a
/// blake3 key derivation over the shares — what a non-PQ handshake minimally costs.
fn x25519_only_handshake() {
    use x25519_dalek::{EphemeralSecret, PublicKey};
    let a = EphemeralSecret::random_from_rng(OsRng);
    let b = EphemeralSecret::random_from_rng(OsRng);
    let (a_pub, b_pub) = (PublicKey::from(&a), PublicKey::from(&b));
    let derive = |shared: &[u8; 32]| {
        let mut hasher = blake3::Hasher::new_derive_key("x0t bench x25519-only handshake");
        hasher.update(a_pub.as_bytes());
        hasher.update(b_pub.as_bytes());
        hasher.update(shared);
        hasher.finalize()
    };
    let on_a = derive(a.diffie_hellman(&b_pub).as_bytes());
    let on_b = derive(b.diffie_hellman(&a_pub).as_bytes());
    black_box((on_a, on_b));
}

/// Both sides of the hybrid exchange, including encoding and decoding both messages.
fn hybrid_handshake(kem: KemAlgorithm) -> Result<[u8; 32], NodeError> {
    let prologue = b"x0t bench mesh|initiator|responder";
    let (initiator, hello) = Initiator::start(kem, prologue)?;
    let hello = InitiatorHello::decode(&hello.encode())?;
    let (reply, responder_keys) = hybrid::respond(kem, prologue, &hello)?;
    let reply = ResponderHello::decode(&reply.encode())?;
    let initiator_keys = initiator.finish(&reply)?;
    black_box((&initiator_keys, &responder_keys));
    Ok(initiator_keys.transcript_hash)
}

/// Runs every crypto benchmark and returns the rows, anchor first.
pub fn crypto(config: BenchConfig) -> Result<Vec<Measurement>, NodeError> {
    if config.iterations == 0 {
        return Err(NodeError::Bench("iterations must be at least 1".to_owned()));
    }
    let mut cases = vec![Case::new(ANCHOR, || {
        x25519_only_handshake();
        Ok(())
    })];

    let message = [0x42u8; 32]; // a transcript hash is what gets signed in practice
    for algorithm in [SigAlgorithm::MlDsa65, SigAlgorithm::MlDsa44] {
        let key = std::rc::Rc::new(SigningKey::generate(algorithm)?);
        let signature = key.sign(SignatureDomain::HandshakeTranscript, &message)?;
        cases.push(Case::new(format!("{algorithm} keygen"), move || {
            black_box(SigningKey::generate(algorithm)?);
            Ok(())
        }));
        let signer = key.clone();
        cases.push(Case::new(format!("{algorithm} sign"), move || {
            black_box(signer.sign(SignatureDomain::HandshakeTranscript, &message)?);
            Ok(())
        }));
        cases.push(Case::new(format!("{algorithm} verify"), move || {
            key.verifying_key().verify(
                SignatureDomain::HandshakeTranscript,
                &message,
                &signature,
            )?;
            Ok(())
        }));
    }

    for kem in [KemAlgorithm::MlKem768, KemAlgorithm::MlKem512] {
        let (public, secret) = generate_kem_keypair(kem)?;
        let (ciphertext, _) = public.encapsulate()?;
        cases.push(Case::new(format!("{kem} keygen"), move || {
            black_box(generate_kem_keypair(kem)?);
            Ok(())
        }));
        cases.push(Case::new(format!("{kem} encapsulate"), move || {
            black_box(public.encapsulate()?);
            Ok(())
        }));
        cases.push(Case::new(format!("{kem} decapsulate"), move || {
            black_box(secret.decapsulate(&ciphertext)?);
            Ok(())
        }));
    }

    let handshakes = [
        (KemAlgorithm::MlKem768, SigAlgorithm::MlDsa65),
        (KemAlgorithm::MlKem512, SigAlgorithm::MlDsa44),
    ];
    for (kem, sig) in handshakes {
        cases.push(Case::new(
            format!("handshake X25519+{kem} (both sides)"),
            move || {
                hybrid_handshake(kem)?;
                Ok(())
            },
        ));
        // What a data-plane session will cost: the exchange plus each side signing the
        // transcript with its identity and verifying the other's signature.
        let initiator_id = SigningKey::generate(sig)?;
        let responder_id = SigningKey::generate(sig)?;
        cases.push(Case::new(
            format!("handshake X25519+{kem} + {sig} transcript signatures (both sides)"),
            move || {
                let transcript = hybrid_handshake(kem)?;
                let domain = SignatureDomain::HandshakeTranscript;
                let by_initiator = initiator_id.sign(domain, &transcript)?;
                let by_responder = responder_id.sign(domain, &transcript)?;
                responder_id
                    .verifying_key()
                    .verify(domain, &transcript, &by_responder)?;
                initiator_id
                    .verifying_key()
                    .verify(domain, &transcript, &by_initiator)?;
                Ok(())
            },
        ));
    }

    run_cases(&mut cases, config)?;
    let mut rows: Vec<Measurement> = cases.into_iter().map(Case::summary).collect();
    let anchor = rows[0].median_us;
    for row in rows
        .iter_mut()
        .filter(|r| r.operation.starts_with("handshake"))
    {
        row.ratio_to_anchor = Some(row.median_us / anchor);
    }
    Ok(rows)
}

/// Formats rows as an aligned text table.
pub fn render_table(rows: &[Measurement]) -> String {
    let width = rows
        .iter()
        .map(|r| r.operation.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let mut out = format!(
        "{:<width$}  {:>10}  {:>10}  {:>10}  {:>9}\n",
        "operation", "median µs", "mean µs", "p99 µs", "× anchor"
    );
    for row in rows {
        let ratio = row
            .ratio_to_anchor
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "-".to_owned());
        out.push_str(&format!(
            "{:<width$}  {:>10.1}  {:>10.1}  {:>10.1}  {:>9}\n",
            row.operation, row.median_us, row.mean_us, row.p99_us, ratio
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produces_every_row_with_sane_numbers() {
        let rows = crypto(BenchConfig {
            iterations: 13,
            warmup: 1,
        })
        .unwrap();
        assert_eq!(rows[0].operation, ANCHOR);
        assert_eq!(rows[0].ratio_to_anchor, Some(1.0));
        assert_eq!(rows.len(), 1 + 6 + 6 + 4);
        for row in &rows {
            assert_eq!(row.iterations, 13, "exactly the requested count: {row:?}");
            assert!(
                row.median_us > 0.0 && row.median_us <= row.p99_us,
                "{row:?}"
            );
        }
        assert!(render_table(&rows).contains("ML-DSA-65 sign"));
        assert!(
            crypto(BenchConfig {
                iterations: 0,
                warmup: 0
            })
            .is_err()
        );
    }
}
