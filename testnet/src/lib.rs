//! Scenario harnesses shared by `x0t-testnet`'s benchmarks and the slow test suites:
//! network-namespace labs ([`netns`]) and whole meshes in them ([`mesh_lab`]).

pub mod browser;
pub mod chaos;
pub mod console_lab;
pub mod history;
pub mod mesh_lab;
pub mod netns;
pub mod reliability;
pub mod scale;
pub mod soak;
