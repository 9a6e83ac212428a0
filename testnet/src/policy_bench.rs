//! `x0t-testnet bench policy`: ACL decisions per second of the compiled engine against the
//! reference evaluator (a scan of every rule), on generated policies of 10, 1,000 and 10,000
//! rules, single-threaded, in one run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::bail;
use x0t_policy::{Endpoint, Flow, Policy, Protocol, reference};
use x0t_types::{DeviceClass, Tag};

/// A small deterministic generator (xorshift64*), so every run benchmarks the same policies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const PORTS: usize = 50;

fn port(rng: &mut Rng) -> u16 {
    1_000 + rng.below(PORTS) as u16
}

/// A policy document of `rules` rules over a pool of tags, as an admin might write it:
/// mostly tag-to-tag allows on one or two TCP ports, one rule in ten a deny between tags.
fn document(rules: usize, tags: usize, rng: &mut Rng) -> String {
    let mut text = String::from("version = 1\n");
    let selector = |rng: &mut Rng| match rng.below(100) {
        0..80 => format!("\"tag:t{}\"", rng.below(tags)),
        80..95 => format!("\"class:{}\"", DeviceClass::ALL[rng.below(4)]),
        _ => "\"*\"".to_owned(),
    };
    for i in 0..rules {
        let action = if rng.chance(10) { "deny" } else { "allow" };
        // Denies name tags (a quarantine, a legacy segment), not whole classes or everyone.
        let deny = action == "deny";
        let side = |rng: &mut Rng| {
            let n = 1 + rng.below(2);
            (0..n)
                .map(|_| {
                    if deny {
                        format!("\"tag:t{}\"", rng.below(tags))
                    } else {
                        selector(rng)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (src, dst) = (side(rng), side(rng));
        text.push_str(&format!(
            "\n[[rule]]\nname = \"r{i}\"\naction = \"{action}\"\nsrc = [{src}]\ndst = [{dst}]\n"
        ));
        if rng.chance(70) {
            let ports: Vec<String> = (0..1 + rng.below(2))
                .map(|_| format!("\"tcp/{}\"", port(rng)))
                .collect();
            text.push_str(&format!("ports = [{}]\n", ports.join(", ")));
        }
    }
    text
}

fn endpoint(tags: usize, rng: &mut Rng) -> Endpoint {
    Endpoint {
        node: None,
        class: Some(DeviceClass::ALL[rng.below(4)]),
        tags: (0..3)
            .filter_map(|_| Tag::new(format!("t{}", rng.below(tags))).ok())
            .collect(),
    }
}

/// Decisions per second of `decide` over `flows`, repeated for at least `min` (bounded).
fn rate(flows: usize, min: Duration, mut decide: impl FnMut(usize) -> bool) -> f64 {
    let started = Instant::now();
    let mut decisions = 0u64;
    let mut allowed = 0u64;
    while started.elapsed() < min {
        for i in 0..flows {
            allowed += u64::from(decide(i));
        }
        decisions += flows as u64;
    }
    black_box(allowed);
    decisions as f64 / started.elapsed().as_secs_f64()
}

/// Runs the benchmark for each size; prints one table.
pub(crate) fn run(sizes: &[usize], seconds: f64) -> anyhow::Result<()> {
    let min = Duration::from_secs_f64(seconds);
    println!(
        "{:>7} {:>9} {:>16} {:>18} {:>16} {:>9} {:>9}",
        "rules",
        "compile",
        "compiled (res.)",
        "compiled (+resolve)",
        "reference scan",
        "ratio",
        "allowed"
    );
    for &rules in sizes {
        let mut rng = Rng(0x5eed_0000 + rules as u64);
        let tags = (rules / 4).max(16);
        let text = document(rules, tags, &mut rng);
        let started = Instant::now();
        let policy = Policy::parse(&text)?;
        let compile = started.elapsed();
        let endpoints: Vec<Endpoint> = (0..256).map(|_| endpoint(tags, &mut rng)).collect();
        let flows: Vec<Flow> = (0..4_096)
            .map(|_| Flow {
                src: endpoints[rng.below(endpoints.len())].clone(),
                dst: endpoints[rng.below(endpoints.len())].clone(),
                protocol: if rng.chance(90) {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                },
                port: port(&mut rng),
            })
            .collect();
        // Both evaluators must agree before their speeds mean anything.
        let mut allowed = 0;
        for flow in &flows {
            let verdict = policy.decide(flow);
            if verdict != reference::decide(policy.document(), flow) {
                bail!("compiled and reference evaluators disagree on {flow:?}");
            }
            allowed += usize::from(verdict.allowed());
        }
        let resolved: Vec<_> = flows
            .iter()
            .map(|f| {
                (
                    policy.resolve(&f.src),
                    policy.resolve(&f.dst),
                    f.protocol,
                    f.port,
                )
            })
            .collect();
        let compiled = rate(flows.len(), min, |i| {
            let (src, dst, protocol, port) = &resolved[i];
            policy
                .decide_resolved(black_box(src), black_box(dst), *protocol, *port)
                .allowed()
        });
        let with_resolve = rate(flows.len(), min, |i| {
            policy.decide(black_box(&flows[i])).allowed()
        });
        let naive = rate(flows.len(), min, |i| {
            reference::decide(policy.document(), black_box(&flows[i])).allowed()
        });
        println!(
            "{:>7} {:>7.1}ms {:>14.2}M/s {:>16.2}M/s {:>14.3}M/s {:>8.0}x {:>8.1}%",
            rules,
            compile.as_secs_f64() * 1e3,
            compiled / 1e6,
            with_resolve / 1e6,
            naive / 1e6,
            compiled / naive,
            100.0 * allowed as f64 / flows.len() as f64,
        );
    }
    println!(
        "(one thread; 4,096 flows between 256 nodes with 3 tags each; \"res.\" = endpoints resolved once per peer, as the data plane does; ratio = compiled (res.) / reference scan)"
    );
    Ok(())
}
