//! `x0t-testnet`: scenario runs and benchmarks against local testnets.
//!
//! `x0t-testnet bench control-plane` starts three x0t anchors and a three-member etcd cluster
//! on loopback, drives both with the same load generator (same concurrency, value size and
//! operation count), prints writes/s and latency for each with the ratio ours/etcd, then
//! kill -9s each cluster's leader under a steady writer and prints how long writes were
//! unavailable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod console_bench;
mod control_plane_bench;

use control_plane_bench::{control_plane, load_only};
mod dataplane_bench;
mod failover_bench;
mod fuzz_seeds;
mod onboarding;
mod policy_bench;
mod wireguard;

/// Scenario runs and benchmarks of x0t on local testnets.
#[derive(Debug, Parser)]
#[command(name = "x0t-testnet")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Benchmarks (print figures; never assert).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Writes seed inputs for the fuzz targets (real encodings, some from a real anchor).
    FuzzSeeds {
        /// Where the corpora live.
        #[arg(long, default_value = "fuzz/corpus")]
        out: PathBuf,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// ACL decisions/s: the compiled policy engine vs a scan of every rule (10, 1,000 and
    /// 10,000 rules, one thread).
    Policy {
        /// Policy sizes (rules).
        #[arg(long, value_delimiter = ',', default_value = "10,1000,10000")]
        rules: Vec<usize>,
        /// Seconds each measurement runs (at least).
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
    /// 3 x0t anchors vs 3 etcd members: writes/s, latency, leader-kill unavailability.
    ControlPlane {
        /// Writes per run with 1 client.
        #[arg(long, default_value_t = 500)]
        ops_single: usize,
        /// Writes per run with 64 clients.
        #[arg(long, default_value_t = 5_000)]
        ops_concurrent: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 256)]
        value_bytes: usize,
        /// Upper bound on each load run.
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
        /// The etcd binary.
        #[arg(long, default_value = "/usr/bin/etcd")]
        etcd: PathBuf,
    },
    /// Onboarding latency (register → certificate in hand), registrations/s, and reads with
    /// many registered nodes, on 3 anchors.
    Onboarding {
        /// Sequential joins timed for the latency figures.
        #[arg(long, default_value_t = 100)]
        joins: usize,
        /// Registrations sent at once for the registrations/s figure.
        #[arg(long, default_value_t = 1_000)]
        concurrent: usize,
        /// Nodes in the ledger for the read figures.
        #[arg(long, default_value_t = 10_000)]
        registered: usize,
        /// Upper bound on each timed phase.
        #[arg(long, default_value_t = 120)]
        max_seconds: u64,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// Data plane on a veth pair in network namespaces (root): iperf3 raw vs through the
    /// tunnel (1 and 4 streams), ping RTT, handshake time, CPU per Gbit.
    Dataplane {
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// Self-healing: kill the relay in use (SIGKILL) under a 10 ms probe stream, `runs`
    /// times, in a diamond of namespaces (root); failover gap p50/p99/max beside the
    /// figures the mesh measured of itself.
    Failover {
        /// Relay kills.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// The browser console: bundle size (gzipped, as served) and, against an anchor with
    /// `nodes` nodes, navigation → first rendered node list and topology in headless
    /// Chromium, beside the node list's API call alone.
    Console {
        /// Nodes in the mesh.
        #[arg(long, default_value_t = 200)]
        nodes: usize,
        /// Fresh page loads measured.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// The control plane under faults (anchors in network namespaces; root): partitions,
    /// bridge, one-way cut, loss, kill -9, pauses, restart from disk, membership changes,
    /// while clients read/write/CAS mesh settings and register/approve nodes; checks every
    /// key's history for linearizability and prints how long each fault took to heal.
    Reliability {
        /// Anchors (3 or 5).
        #[arg(long, default_value_t = 3)]
        anchors: usize,
        /// Times the whole list of faults is injected.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds each fault is held.
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Read without the read barrier: the checker should then report violations
        /// (shows that it can).
        #[arg(long)]
        stale_reads: bool,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// Scale: `nodes` registered nodes and `agents` live light agents (in this process)
    /// against `anchors` anchors: registration rate, approval-to-connected time, anchor CPU
    /// and memory, memory per agent.
    Scale {
        /// Anchors.
        #[arg(long, default_value_t = 3)]
        anchors: usize,
        /// Registered nodes.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Live light agents (approved and connected; the first of the nodes).
        #[arg(long, default_value_t = 1_000)]
        agents: usize,
        /// Seconds of steady state measured once every agent is connected.
        #[arg(long, default_value_t = 30)]
        steady: u64,
        /// Seconds between a connected agent's link-state reports (members: 1).
        #[arg(long, default_value_t = 1.0)]
        report_every: f64,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// Soak: churn (light agents joining, leaving and coming back, revoked; one anchor
    /// killed and restarted every few minutes) against 3 anchors for `minutes`, sampling
    /// anchor memory and sled size each minute; prints growth per minute.
    Soak {
        /// Minutes to run.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Live agents kept (about).
        #[arg(long, default_value_t = 100)]
        agents: usize,
        /// Seconds between churn events.
        #[arg(long, default_value_t = 2.0)]
        churn_every: f64,
        /// Seconds between anchor restarts.
        #[arg(long, default_value_t = 300)]
        restart_every: u64,
        /// The x0t binary [default: next to this one].
        #[arg(long)]
        x0t: Option<PathBuf>,
    },
    /// Write load against a running x0t testnet only (for profiling; no comparison).
    Load {
        /// The testnet directory (`x0t testnet up --dir`).
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Writes in total.
        #[arg(long, default_value_t = 10_000)]
        ops: usize,
        /// Value size in bytes.
        #[arg(long, default_value_t = 256)]
        value_bytes: usize,
        /// Upper bound on the run.
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::FuzzSeeds { out, x0t } => {
            let x0t = x0t_binary(x0t)?;
            let written = fuzz_seeds::write(&out, &x0t).await?;
            println!("{written} seeds written under {}", out.display());
            Ok(())
        }
        Cmd::Bench {
            which:
                BenchCmd::ControlPlane {
                    ops_single,
                    ops_concurrent,
                    value_bytes,
                    max_seconds,
                    x0t,
                    etcd,
                },
        } => {
            let x0t = x0t_binary(x0t)?;
            control_plane(
                ops_single,
                ops_concurrent,
                value_bytes,
                Duration::from_secs(max_seconds),
                x0t,
                etcd,
            )
            .await
        }
        Cmd::Bench {
            which: BenchCmd::Policy { rules, seconds },
        } => policy_bench::run(&rules, seconds),
        Cmd::Bench {
            which: BenchCmd::Dataplane { seconds, x0t },
        } => {
            let x0t = x0t_binary(x0t)?;
            dataplane_bench::run(&x0t, seconds.max(1)).await
        }
        Cmd::Bench {
            which:
                BenchCmd::Reliability {
                    anchors,
                    rounds,
                    hold,
                    clients,
                    stale_reads,
                    x0t,
                },
        } => {
            let x0t = x0t_binary(x0t)?;
            reliability_bench(&x0t, anchors, rounds, hold, clients, stale_reads).await
        }
        Cmd::Bench {
            which:
                BenchCmd::Scale {
                    anchors,
                    nodes,
                    agents,
                    steady,
                    report_every,
                    x0t,
                },
        } => {
            let x0t = x0t_binary(x0t)?;
            scale_bench(&x0t, anchors, nodes, agents, steady, report_every).await
        }
        Cmd::Bench {
            which:
                BenchCmd::Soak {
                    minutes,
                    agents,
                    churn_every,
                    restart_every,
                    x0t,
                },
        } => {
            let x0t = x0t_binary(x0t)?;
            soak_bench(&x0t, minutes, agents, churn_every, restart_every).await
        }
        Cmd::Bench {
            which: BenchCmd::Console { nodes, runs, x0t },
        } => {
            let x0t = x0t_binary(x0t)?;
            console_bench::run(&x0t, nodes.max(3), runs.max(1)).await
        }
        Cmd::Bench {
            which: BenchCmd::Failover { runs, x0t },
        } => {
            let x0t = x0t_binary(x0t)?;
            failover_bench::run(&x0t, runs.max(1)).await
        }
        Cmd::Bench {
            which:
                BenchCmd::Onboarding {
                    joins,
                    concurrent,
                    registered,
                    max_seconds,
                    x0t,
                },
        } => {
            let x0t = x0t_binary(x0t)?;
            onboarding::onboarding(
                x0t,
                onboarding::Sizes {
                    joins,
                    concurrent,
                    registered,
                    max: Duration::from_secs(max_seconds),
                },
            )
            .await
        }
        Cmd::Bench {
            which:
                BenchCmd::Load {
                    dir,
                    clients,
                    ops,
                    value_bytes,
                    max_seconds,
                },
        } => {
            load_only(
                &dir,
                clients,
                ops,
                value_bytes,
                Duration::from_secs(max_seconds),
            )
            .await
        }
    }
}

/// `bench reliability`: the fault run, printed.
async fn reliability_bench(
    x0t: &std::path::Path,
    anchors: usize,
    rounds: usize,
    hold: u64,
    clients: usize,
    stale_reads: bool,
) -> anyhow::Result<()> {
    use x0t_testnet::history::WorkloadConfig;
    use x0t_testnet::reliability::{Fault, ReliabilityConfig, run};
    anyhow::ensure!(anchors == 3 || anchors == 5, "--anchors is 3 or 5");
    let rounds = rounds.max(1);
    let faults: Vec<Fault> = (0..rounds).flat_map(|_| Fault::ALL).collect();
    let config = ReliabilityConfig {
        anchors,
        spare: rounds.min(7 - anchors),
        hold: Duration::from_secs(hold.max(1)),
        settle: Duration::from_secs(1),
        faults,
        check_budget: Duration::from_secs(if stale_reads { 5 } else { 60 }),
        workload: WorkloadConfig {
            clients: clients.max(1),
            meshes: 16,
            nodes: 32,
            op_timeout: Duration::from_secs(2),
            think: Duration::from_millis(10),
            max_ops_per_client: 1_000_000,
            stale_reads,
        },
    };
    println!(
        "x0t reliability: {anchors} anchors in network namespaces, {} faults ({rounds} rounds), hold {hold} s, {clients} clients{}",
        config.faults.len(),
        if stale_reads { ", STALE READS" } else { "" }
    );
    let report = run(x0t, &config).await?;
    print!("{}", report.render());
    let heals: Vec<Duration> = report
        .faults
        .iter()
        .filter(|f| f.fault.is_partition())
        .filter_map(|f| f.healed_after)
        .collect();
    if let Some(worst) = heals.iter().max() {
        let mut sorted = heals.clone();
        sorted.sort();
        println!(
            "partition heal: median {:.0} ms, worst {:.0} ms over {} partitions (goal < 3000 ms: {:.2}x of it)",
            sorted[sorted.len() / 2].as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3,
            sorted.len(),
            worst.as_secs_f64() / 3.0
        );
    }
    println!("run took {:.0} s", report.elapsed.as_secs_f64());
    if stale_reads {
        println!(
            "stale reads: the checker refused {} keys (expected: some; not linearizable or undecided)",
            report.verdict.violations.len()
        );
        return Ok(());
    }
    anyhow::ensure!(
        report.verdict.violations.is_empty() && report.minority_writes.is_empty(),
        "safety violated: {:?} {:?}",
        report.verdict.violations,
        report.minority_writes
    );
    Ok(())
}

/// `bench scale`: the scale run, printed.
async fn scale_bench(
    x0t: &std::path::Path,
    anchors: usize,
    nodes: usize,
    agents: usize,
    steady: u64,
    report_every: f64,
) -> anyhow::Result<()> {
    use x0t_testnet::scale::{ScaleConfig, percentile, run};
    let config = ScaleConfig {
        anchors: anchors.clamp(1, 7),
        nodes: nodes.max(1),
        agents: agents.min(nodes),
        concurrency: 64,
        poll: Duration::from_millis(1_000),
        report_every: Duration::from_secs_f64(report_every.max(0.1)),
        steady: Duration::from_secs(steady.max(1)),
    };
    println!(
        "x0t scale: {} anchors, {} registered nodes, {} live light agents (status poll 1 s, link state every {:.1} s)",
        config.anchors,
        config.nodes,
        config.agents,
        config.report_every.as_secs_f64()
    );
    let mut report = run(x0t, &config).await?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "registration: {} nodes in {:.1} s = {:.0} registrations/s",
        config.nodes,
        report.registration.as_secs_f64(),
        report.registration_rate(config.nodes)
    );
    println!(
        "approval: {} agents approved in {:.1} s; approval → connected p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} of {} connected)",
        config.agents,
        report.approval.as_secs_f64(),
        percentile(&mut report.approval_to_connected, 50.0).as_secs_f64() * 1e3,
        percentile(&mut report.approval_to_connected, 99.0).as_secs_f64() * 1e3,
        percentile(&mut report.approval_to_connected, 100.0).as_secs_f64() * 1e3,
        report.connected,
        config.agents
    );
    for (i, ((rss, cpu), disk)) in report
        .anchor_rss
        .iter()
        .zip(&report.anchor_cpu)
        .zip(&report.anchor_disk)
        .enumerate()
    {
        println!(
            "anchor {}: RSS {:.0} MiB ({:.2}x of the 1 GiB goal), steady CPU {:.0} % of a core, sled {:.1} MiB",
            i + 1,
            mib(*rss),
            *rss as f64 / (1u64 << 30) as f64,
            cpu * 100.0,
            mib(*disk)
        );
    }
    println!(
        "light agent: {:.0} KiB each; steady state {} link-state reports taken, {} agent requests failed",
        report.per_agent_bytes as f64 / 1024.0,
        report.steady_reports,
        report.failures
    );
    Ok(())
}

/// `bench soak`: the churn run, printed.
async fn soak_bench(
    x0t: &std::path::Path,
    minutes: u64,
    agents: usize,
    churn_every: f64,
    restart_every: u64,
) -> anyhow::Result<()> {
    use x0t_testnet::soak::{SoakConfig, run};
    let minutes = minutes.max(1);
    let config = SoakConfig {
        duration: Duration::from_secs(minutes * 60),
        agents: agents.max(2),
        churn_every: Duration::from_secs_f64(churn_every.max(0.1)),
        restart_every: Duration::from_secs(restart_every.max(10)),
        // The first third (at most 5 minutes) is warm-up: caches fill, the first snapshot.
        warm_up: Duration::from_secs((minutes * 20).min(300)),
    };
    println!(
        "x0t soak: 3 anchors, {} minutes, about {} live agents, a churn event every {:.1} s, an anchor restart every {} s",
        minutes, config.agents, churn_every, restart_every
    );
    let report = run(x0t, &config).await?;
    let [joins, rejoins, leaves, revokes, restarts] = report.events;
    println!(
        "churn: {joins} joins, {rejoins} returns, {leaves} departures, {revokes} revocations, {restarts} anchor restarts; {} agent requests failed",
        report.failures
    );
    let mb = |b: u64| b as f64 / 1e6;
    if let (Some(first), Some(last)) = (report.samples.first(), report.samples.last()) {
        for a in 0..3 {
            println!(
                "anchor {}: RSS {:.1} → {:.1} MB ({:+.3} MB/min after warm-up), sled {:.1} → {:.1} MB ({:+.3} MB/min); goal < 1 MB/min: {:.2}x / {:.2}x",
                a + 1,
                mb(first.rss[a]),
                mb(last.rss[a]),
                report.rss_growth[a],
                mb(first.disk[a]),
                mb(last.disk[a]),
                report.disk_growth[a],
                report.rss_growth[a].max(0.0),
                report.disk_growth[a].max(0.0)
            );
        }
    }
    Ok(())
}

/// The x0t binary a benchmark runs: the one given, else the one next to this binary.
fn x0t_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path),
        None => Ok(std::env::current_exe()?.with_file_name("x0t")),
    }
}
