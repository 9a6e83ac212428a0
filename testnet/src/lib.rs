//! Scenario harnesses shared by `x0t-testnet`'s benchmarks and the slow test suites:
//! network-namespace labs ([`netns`]).

pub mod netns;
