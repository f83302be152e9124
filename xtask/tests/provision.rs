//! What `cargo xtask e2e` provisions, as data: the README promises that the main job, run as root on
//! a fresh Debian/Ubuntu machine, installs everything it needs. The plan for a bare machine is that
//! promise; these tests hold it.

use xtask::e2e::provision::{Machine, Need, Step, plan};
use xtask::stack::Arch;

/// A fresh Debian amd64 machine, as root: dpkg knows only its own arch, apt has no lists yet, no
/// Docker, no qemu, none of the fixture tools; Go is installed (our machines come with it).
fn bare() -> Machine {
    Machine {
        root: true,
        debian: true,
        host: Some(Arch::Amd64),
        dpkg_arches: [Arch::Amd64].into(),
        programs: ["go".to_string()].into(),
        ..Machine::default()
    }
}

/// A machine that has run the plan.
fn provisioned() -> Machine {
    Machine {
        docker_answers: true,
        programs: ["go", "dockerd", "qemu-aarch64-static", "update-binfmts", "skopeo", "docker-registry"]
            .map(String::from)
            .into(),
        dpkg_arches: Arch::ALL.into(),
        apt_lists: Arch::ALL.into(),
        binfmt_mounted: true,
        qemu_aarch64: true,
        ..bare()
    }
}

fn commands(machine: &Machine, need: &Need) -> Vec<String> {
    plan(machine, need).expect("a plan").iter().map(|s| s.to_string()).collect()
}

/// The first `cargo xtask e2e --arch amd64,arm64` on a bare machine with no fixtures yet.
#[test]
fn a_bare_machine_gets_everything_in_order() {
    let need = Need { arch: Arch::Arm64, fixtures_for: Arch::ALL.to_vec(), node_image: false };
    assert_eq!(
        commands(&bare(), &need),
        [
            "dpkg --add-architecture arm64",
            "apt-get update",
            "apt-get install -y --no-install-recommends qemu-user-static binfmt-support docker.io skopeo docker-registry",
            "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc",
            "update-binfmts --enable qemu-aarch64",
            "dockerd >target/dockerd.log 2>&1 &",
        ]
    );
    // The amd64 run of the same machine still needs arm64 packages: the fixtures are both arches.
    let need = Need { arch: Arch::Amd64, fixtures_for: Arch::ALL.to_vec(), node_image: false };
    let steps = plan(&bare(), &need).expect("a plan");
    assert_eq!(steps[..2], [Step::AddDpkgArch(Arch::Arm64), Step::AptUpdate]);
    assert!(!steps.contains(&Step::EnableQemuAarch64), "{steps:?}");
}

/// The kubernetes tier's node image needs mmdebstrap (and Go), nothing else beyond the compose tier.
#[test]
fn the_kubernetes_tier_adds_mmdebstrap() {
    let need = Need { arch: Arch::Amd64, fixtures_for: Vec::new(), node_image: true };
    assert_eq!(
        commands(&provisioned(), &need),
        ["apt-get update", "apt-get install -y --no-install-recommends mmdebstrap"]
    );
    let with = Machine {
        programs: provisioned().programs.into_iter().chain(["mmdebstrap".into()]).collect(),
        ..provisioned()
    };
    assert_eq!(commands(&with, &need), Vec::<String>::new());
    let no_go = Machine { programs: with.programs.iter().filter(|p| *p != "go").cloned().collect(), ..with };
    assert!(format!("{:#}", plan(&no_go, &need).unwrap_err()).contains("`go` is not on PATH"));
}

#[test]
fn a_provisioned_machine_needs_nothing() {
    for arch in Arch::ALL {
        let need = Need { arch, fixtures_for: Arch::ALL.to_vec(), node_image: false };
        assert_eq!(commands(&provisioned(), &need), Vec::<String>::new());
    }
}

/// Each missing piece, alone, gives exactly its steps.
#[test]
fn each_missing_piece_gives_its_own_steps() {
    let fixtures = Need { arch: Arch::Amd64, fixtures_for: Arch::ALL.to_vec(), node_image: false };
    let check = |machine: Machine, need: &Need, expect: &[&str]| {
        assert_eq!(commands(&machine, need), expect, "{machine:?}");
    };
    check(Machine { apt_lists: [Arch::Amd64].into(), ..provisioned() }, &fixtures, &["apt-get update"]);
    check(
        Machine { dpkg_arches: [Arch::Amd64].into(), apt_lists: [Arch::Amd64].into(), ..provisioned() },
        &fixtures,
        &["dpkg --add-architecture arm64", "apt-get update"],
    );
    check(Machine { docker_answers: false, ..provisioned() }, &fixtures, &["dockerd >target/dockerd.log 2>&1 &"]);
    check(
        Machine { qemu_aarch64: false, binfmt_mounted: false, ..provisioned() },
        &Need { arch: Arch::Arm64, fixtures_for: Vec::new(), node_image: false },
        &["mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc", "update-binfmts --enable qemu-aarch64"],
    );
    // Fixtures already built: no dpkg arch, no skopeo, no registry.
    let bare_built = Need { arch: Arch::Amd64, fixtures_for: Vec::new(), node_image: false };
    check(
        bare(),
        &bare_built,
        &[
            "apt-get update",
            "apt-get install -y --no-install-recommends docker.io",
            "dockerd >target/dockerd.log 2>&1 &",
        ],
    );
}

/// Where we may not provision, the error names every command, in order.
#[test]
fn a_machine_we_may_not_provision_is_told_what_to_run() {
    let need = Need { arch: Arch::Arm64, fixtures_for: Arch::ALL.to_vec(), node_image: false };
    for machine in [Machine { root: false, ..bare() }, Machine { debian: false, ..bare() }] {
        let err = format!("{:#}", plan(&machine, &need).expect_err("not ours to provision"));
        assert!(
            err.contains(
                "as root on Debian/Ubuntu run: dpkg --add-architecture arm64 && apt-get update && apt-get install"
            ),
            "{err}"
        );
    }
    let err = plan(&Machine { docker_host_set: true, ..provisioned_without_docker() }, &need).expect_err("DOCKER_HOST");
    assert!(format!("{err:#}").contains("DOCKER_HOST"), "{err:#}");
    let err = plan(
        &Machine { host: Some(Arch::Arm64), ..provisioned() },
        &Need { arch: Arch::Amd64, fixtures_for: vec![], node_image: false },
    )
    .expect_err("no amd64 emulation");
    assert!(format!("{err:#}").contains("amd64 can only run on a amd64 host"), "{err:#}");
}

/// Go cannot come from apt (Debian's is too old): a machine without it is told where to get it, and
/// only when fixtures are to be built.
#[test]
fn a_machine_without_go_is_told_where_to_get_it() {
    let no_go = Machine { programs: Default::default(), ..provisioned() };
    let err = plan(&no_go, &Need { arch: Arch::Amd64, fixtures_for: vec![Arch::Amd64], node_image: false })
        .expect_err("no go");
    assert!(format!("{err:#}").contains("https://go.dev/dl"), "{err:#}");
    let with_docker =
        Machine { programs: provisioned().programs.into_iter().filter(|p| p != "go").collect(), ..provisioned() };
    assert_eq!(
        commands(&with_docker, &Need { arch: Arch::Amd64, fixtures_for: vec![], node_image: false }),
        Vec::<String>::new()
    );
}

fn provisioned_without_docker() -> Machine {
    Machine { docker_answers: false, ..provisioned() }
}

/// The probe reads this machine: its arch, dpkg's own arch, and the tools `.ci/run` installed.
#[test]
fn probing_this_machine_sees_what_ci_installed() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let machine = Machine::probe(&rt);
    let host = Arch::host().expect("amd64 or arm64");
    assert_eq!(machine.host, Some(host));
    assert!(machine.debian && machine.dpkg_arches.contains(&host), "{machine:?}");
    assert!(machine.docker_answers && machine.programs.contains("skopeo"), "{machine:?}");
    // `.ci/run` set this machine up the way the plan would: nothing left to do for either arch.
    for arch in Arch::ALL {
        let need = Need { arch, fixtures_for: Arch::ALL.to_vec(), node_image: true };
        assert_eq!(plan(&machine, &need).expect("a plan"), Vec::<Step>::new(), "{machine:?}");
    }
}
