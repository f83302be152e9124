//! The k3s tier: real k3s from `rancher/k3s`, real KubeEdge from its release images, the bundle
//! installed by its own rendered scripts. It runs where those images can be had (GitHub's
//! runners; see `e2e::tier_missing`). Everything it would start and run is [`plan`]ned as data
//! first and snapshot-tested here (`golden/e2e/k3s-plan-*.snap`).

pub mod plan;
