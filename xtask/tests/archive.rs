//! Untrusted archives: a good chart is read whole; every attack in
//! fixtures/archives/ is refused with a message naming the archive and the entry.

use xtask::archive::{Limits, read_tgz};
use xtask::paths;

fn read(name: &str) -> anyhow::Result<Vec<(String, xtask::oci::layer::Entry)>> {
    let path = paths::fixtures_dir().join("archives").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    read_tgz(&bytes, name, Limits::CHART)
}

#[test]
fn a_good_chart_is_read() {
    let entries = read("good-chart.tgz").unwrap();
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["demo", "demo/Chart.yaml", "demo/templates/cm.yaml", "demo/link"]);
}

#[test]
fn attacks_are_refused_naming_archive_and_entry() {
    for (name, needle) in [
        ("dotdot.tgz", "demo/../../etc/cron.d/evil"),
        ("absolute.tgz", "/etc/passwd"),
        ("symlink-escape.tgz", "points outside"),
        ("symlink-absolute.tgz", "/etc/shadow"),
        ("size-bomb.tgz", "archive bomb"),
    ] {
        let err = format!("{:#}", read(name).expect_err(name));
        assert!(err.contains(name) && err.contains(needle), "{name}: {err}");
    }
}
