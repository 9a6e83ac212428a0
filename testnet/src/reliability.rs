//! The reliability run: a workload of concurrent clients over the control plane while a
//! fault injector works through [`Fault`]s one after another, then the checks: every key's
//! history linearizable, no write acknowledged by an anchor cut off in a minority, and the
//! time each fault took to heal. The slow test suite runs it small (`tests/chaos.rs`);
//! `x0t-testnet bench reliability` runs it longer and prints the figures.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::chaos::AnchorCluster;
use crate::history::{History, Record, Verdict, Workload, WorkloadConfig};
use crate::netns::Degraded;

/// One fault of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The leader alone on one side of a partition.
    LeaderMinority,
    /// A follower alone on one side; the leader keeps its majority.
    LeaderMajority,
    /// The leader and one follower cannot talk; the third anchor reaches both.
    Bridge,
    /// What the leader sends to one follower is dropped; the other way flows.
    OneWay,
    /// 25 % of packets between anchors lost at random.
    Loss,
    /// 150 ms of delay on the leader's link (tc netem; skipped where the kernel lacks it).
    Delay,
    /// kill -9 of the leader, restart from disk after the hold.
    KillLeader,
    /// SIGSTOP of the leader, SIGCONT after the hold.
    PauseLeader,
    /// kill -9 of every anchor at once, then all restart from disk.
    RestartAll,
    /// An anchor added under load, then a follower removed.
    Membership,
}

impl Fault {
    /// Every fault, in the order a full run injects them.
    pub const ALL: [Self; 10] = [
        Self::LeaderMinority,
        Self::LeaderMajority,
        Self::Bridge,
        Self::OneWay,
        Self::Loss,
        Self::Delay,
        Self::KillLeader,
        Self::PauseLeader,
        Self::RestartAll,
        Self::Membership,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::LeaderMinority => "partition, leader in minority",
            Self::LeaderMajority => "partition, leader in majority",
            Self::Bridge => "bridge",
            Self::OneWay => "one-way cut leader→follower",
            Self::Loss => "25 % loss between anchors",
            Self::Delay => "150 ms delay on the leader",
            Self::KillLeader => "kill -9 leader, restart",
            Self::PauseLeader => "SIGSTOP leader, SIGCONT",
            Self::RestartAll => "kill -9 all, restart from disk",
            Self::Membership => "add an anchor, remove a follower",
        }
    }

    /// Whether it is a network partition (its heal time is held to the 3 s goal).
    pub fn is_partition(self) -> bool {
        matches!(
            self,
            Self::LeaderMinority | Self::LeaderMajority | Self::Bridge | Self::OneWay
        )
    }
}

/// What one fault did.
#[derive(Clone, Debug)]
pub struct FaultReport {
    /// The fault.
    pub fault: Fault,
    /// Anchors cut off in a minority while it lasted (they must acknowledge no write).
    pub minority: Vec<usize>,
    /// When it began and ended.
    pub window: (Instant, Instant),
    /// From its end until every anchor served a write again (`None`: skipped).
    pub healed_after: Option<Duration>,
    /// Anything worth saying (e.g. why it was skipped).
    pub note: String,
}

/// Sizes of a run.
#[derive(Clone, Debug)]
pub struct ReliabilityConfig {
    /// Anchors (3 or 5).
    pub anchors: usize,
    /// Spare namespaces for anchors added by [`Fault::Membership`] (one per injection).
    pub spare: usize,
    /// How long each fault is held.
    pub hold: Duration,
    /// Steady load before each fault.
    pub settle: Duration,
    /// Faults, in order.
    pub faults: Vec<Fault>,
    /// The workload.
    pub workload: WorkloadConfig,
    /// Longest the checker may search one key's history.
    pub check_budget: Duration,
}

/// Everything a run found.
#[derive(Debug)]
pub struct ReliabilityReport {
    /// Per fault.
    pub faults: Vec<FaultReport>,
    /// The linearizability verdict.
    pub verdict: Verdict,
    /// Writes acknowledged by an anchor while it was cut off in a minority.
    pub minority_writes: Vec<String>,
    /// Operations recorded.
    pub operations: usize,
    /// Acknowledged writes.
    pub acknowledged_writes: usize,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// For each key that is not linearizable: the faults' windows and every operation on
    /// the key, with the anchor that served it, in ms since the run started (what the
    /// tester's account lacks for finding the cause). Empty when every key is.
    pub violation_timeline: String,
}

impl ReliabilityReport {
    /// A text report: one line per fault, then the checks.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for fault in &self.faults {
            let healed = match fault.healed_after {
                Some(after) => format!("healed in {:>6.0} ms", after.as_secs_f64() * 1e3),
                None => "skipped".to_owned(),
            };
            out.push_str(&format!(
                "{:<34} {healed}{}{}\n",
                fault.fault.name(),
                if fault.minority.is_empty() {
                    String::new()
                } else {
                    format!(", minority {:?}", fault.minority)
                },
                if fault.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fault.note)
                }
            ));
        }
        out.push_str(&format!(
            "{} operations ({} answered, {} unknown, {} never sent), {} acknowledged writes, {} keys\n",
            self.operations,
            self.verdict.ok,
            self.verdict.unknown,
            self.verdict.dropped,
            self.acknowledged_writes,
            self.verdict.keys
        ));
        out.push_str(&format!(
            "linearizable: {} (checked in {:.0} ms); writes acknowledged in a minority: {}\n",
            if self.verdict.violations.is_empty() {
                "every key".to_owned()
            } else {
                format!("NO, {} keys", self.verdict.violations.len())
            },
            self.verdict.checked_in.as_secs_f64() * 1e3,
            self.minority_writes.len()
        ));
        out.push_str(&self.violation_timeline);
        out
    }

    /// The longest heal after a partition ended.
    pub fn worst_partition_heal(&self) -> Option<Duration> {
        self.faults
            .iter()
            .filter(|f| f.fault.is_partition())
            .filter_map(|f| f.healed_after)
            .max()
    }
}

/// The mesh the heal probes write to (not part of the checked history).
const PROBE_MESH: &str = "heal-probe";

/// The faults' windows and every operation on each key that is not linearizable, in ms since
/// `origin`, with the anchor that served it.
fn timeline(
    history: &History,
    verdict: &Verdict,
    faults: &[FaultReport],
    origin: Instant,
) -> String {
    if verdict.violations.is_empty() {
        return String::new();
    }
    let ms = |at: Instant| at.saturating_duration_since(origin).as_millis();
    let mut out = String::from("faults (ms since the start):\n");
    for fault in faults {
        out.push_str(&format!(
            "  {:>7}..{:<7} {}\n",
            ms(fault.window.0),
            ms(fault.window.1),
            fault.fault.name()
        ));
    }
    for (key, _) in &verdict.violations {
        out.push_str(&format!(
            "operations on {key:?} (invoked..completed ms, anchor, thread):\n"
        ));
        let mut records: Vec<&Record> = history.records.iter().filter(|r| r.key == *key).collect();
        records.sort_by_key(|r| r.invoked);
        for r in records {
            out.push_str(&format!(
                "  {:>7}..{:<7} anchor {} thread {:>14} {:?} -> {:?}\n",
                ms(r.invoked),
                ms(r.completed),
                r.anchor,
                r.thread,
                r.op,
                r.outcome
            ));
        }
    }
    out
}

/// Runs the workload and the faults against a fresh cluster of `config.anchors` anchors.
pub async fn run(
    exe: &std::path::Path,
    config: &ReliabilityConfig,
) -> anyhow::Result<ReliabilityReport> {
    let started = Instant::now();
    let mut cluster = AnchorCluster::start(exe, config.anchors, config.spare).await?;
    cluster.wait_leader(Duration::from_secs(30)).await?;
    let admin_url = cluster.url(1)?;
    let admin = x0t_client::ApiClient::new(&admin_url, Some(cluster.admin_key().to_owned()))?;
    admin
        .create_mesh(&x0t_node::api::CreateMesh {
            name: PROBE_MESH.to_owned(),
            description: String::new(),
            plan: None,
        })
        .await?;
    let workload = Arc::new(
        Workload::prepare(config.workload.clone(), &admin_url, cluster.admin_key()).await?,
    );
    let targets = Arc::new(RwLock::new(cluster.targets()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let clients = {
        let workload = workload.clone();
        let targets = targets.clone();
        tokio::spawn(async move { workload.run(targets, stopped).await })
    };

    let mut reports = Vec::new();
    let injected = inject_all(&mut cluster, config, &targets, &mut reports).await;
    let _ = stop.send(true);
    clients.await.context("the workload panicked")??;
    injected?;

    // After every fault has healed: one read of every key, so a lost write shows.
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    workload.final_reads(leader, &cluster.url(leader)?).await?;

    let history = workload.history.lock().unwrap_or_else(|p| p.into_inner());
    let verdict = history.check(config.check_budget);
    let mut minority_writes = Vec::new();
    for fault in &reports {
        for record in &history.records {
            if fault.minority.contains(&record.anchor)
                && record.acknowledged_write()
                && record.invoked >= fault.window.0
                && record.completed <= fault.window.1
            {
                minority_writes.push(format!(
                    "{}: anchor {} acknowledged {:?} on {:?}",
                    fault.fault.name(),
                    record.anchor,
                    record.op,
                    record.key
                ));
            }
        }
    }
    let violation_timeline = timeline(&history, &verdict, &reports, started);
    Ok(ReliabilityReport {
        violation_timeline,
        operations: history.records.len(),
        acknowledged_writes: history
            .records
            .iter()
            .filter(|r| r.acknowledged_write())
            .count(),
        faults: reports,
        verdict,
        minority_writes,
        elapsed: started.elapsed(),
    })
}

async fn inject_all(
    cluster: &mut AnchorCluster,
    config: &ReliabilityConfig,
    targets: &Arc<RwLock<Vec<(usize, String)>>>,
    reports: &mut Vec<FaultReport>,
) -> anyhow::Result<()> {
    for &fault in &config.faults {
        tokio::time::sleep(config.settle).await;
        let report = inject(cluster, fault, config.hold, targets)
            .await
            .with_context(|| format!("fault {:?}", fault.name()))?;
        eprintln!(
            "fault {:<34} healed after {:?} {}",
            fault.name(),
            report.healed_after,
            report.note
        );
        reports.push(report);
    }
    Ok(())
}

async fn inject(
    cluster: &mut AnchorCluster,
    fault: Fault,
    hold: Duration,
    targets: &Arc<RwLock<Vec<(usize, String)>>>,
) -> anyhow::Result<FaultReport> {
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    let followers = cluster.others(leader);
    let mut minority = Vec::new();
    let mut note = String::new();
    let mut skipped = false;
    match fault {
        Fault::LeaderMinority => {
            cluster.partition(&[&[leader], &followers])?;
            minority.push(leader);
        }
        Fault::LeaderMajority => {
            let lonely = followers[0];
            cluster.partition(&[&[lonely], &cluster.others(lonely)])?;
            minority.push(lonely);
        }
        Fault::Bridge => cluster.cut(leader, followers[0])?,
        Fault::OneWay => cluster.cut_one_way(leader, followers[0])?,
        Fault::Loss => cluster.lose_everywhere(25)?,
        Fault::Delay => {
            if cluster.degrade(leader, 150, 0)? == Degraded::LossOnly {
                note = "the kernel has no sch_netem: no delay possible here".to_owned();
                skipped = true;
            }
        }
        Fault::KillLeader => cluster.kill(leader).await?,
        Fault::PauseLeader => cluster.pause(leader, true)?,
        Fault::RestartAll => {}
        Fault::Membership if cluster.free_slot().is_none() => {
            note = "no spare namespace left for a new anchor".to_owned();
            skipped = true;
        }
        Fault::Membership => {}
    }
    // From here on the fault is in place: an anchor in the minority can acknowledge nothing
    // invoked after this instant.
    let begin = Instant::now();
    if !skipped {
        tokio::time::sleep(hold).await;
    }
    match fault {
        Fault::LeaderMinority
        | Fault::LeaderMajority
        | Fault::Bridge
        | Fault::OneWay
        | Fault::Loss => cluster.heal()?,
        Fault::Delay => cluster.undegrade(leader),
        Fault::KillLeader => cluster.restart(leader).await?,
        Fault::PauseLeader => cluster.pause(leader, false)?,
        Fault::RestartAll => cluster.restart_all().await?,
        Fault::Membership if skipped => {}
        Fault::Membership => {
            let spare = cluster.free_slot().context("no spare namespace")?;
            cluster.add_anchor(spare, leader).await?;
            *targets.write().unwrap_or_else(|p| p.into_inner()) = cluster.targets();
            let removed = followers[0];
            let remaining: Vec<(usize, String)> = cluster
                .targets()
                .into_iter()
                .filter(|(i, _)| *i != removed)
                .collect();
            *targets.write().unwrap_or_else(|p| p.into_inner()) = remaining;
            cluster.remove_anchor(removed, leader).await?;
            note = format!("anchor {spare} added, anchor {removed} removed");
        }
    }
    let end = Instant::now();
    let healed_after = if skipped {
        None
    } else {
        Some(
            cluster
                .wait_healed(PROBE_MESH, Duration::from_secs(60))
                .await?
                .after,
        )
    };
    Ok(FaultReport {
        fault,
        minority,
        window: (begin, end),
        healed_after,
        note,
    })
}
