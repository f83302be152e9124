//! What qemu-user holds of an emulated (arm64 on amd64) container's memory, and what the guest
//! program does: read from the processes' smaps, so the guest's figure can be set against its
//! budget apart from the emulator's.

use crate::e2e::tier::QemuSplit;

/// A process' resident memory under qemu-user, from `/proc/<pid>/smaps` (KiB lines), told apart:
/// qemu's own (its translation cache, the only anonymous mapping that is executable, since no
/// guest here makes one and Go does not JIT; its heap, `[heap]`, qemu emulating the guest's brk
/// with mappings of its own; its binary's pages), a lower bound of what qemu holds; and the
/// anonymous memory of every other mapping, an upper bound of the guest program's (what qemu
/// allocates with mmap is not told apart from the guest's). Anonymous, because that is what a
/// memory limit cannot reclaim: the guest binary's file pages can be dropped and read again.
/// `None` for a process that is not qemu.
pub fn qemu_resident(smaps: &str) -> Option<QemuSplit> {
    let mut qemu_seen = false;
    let mut counting = false;
    let (mut qemu, mut guest) = (0, 0);
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            // `start-end perms offset dev inode [path]`
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let binary = path.rsplit('/').next().is_some_and(|f| f.starts_with("qemu-") || f.contains("-binfmt-"));
            qemu_seen |= binary;
            counting = binary || path == "[heap]" || (path.is_empty() && perms.contains('x'));
        } else if first == "Rss:" && counting {
            qemu += fields.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        } else if first == "Anonymous:" && !counting {
            guest += fields.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    qemu_seen.then_some(QemuSplit { qemu_bytes: qemu * 1024, guest_bytes: guest * 1024 })
}

/// [`qemu_resident`] of every process in a container's memory cgroup (v1's memory controller or
/// v2's unified tree), found from its init process (a host pid); the init process alone when
/// neither can be read.
pub fn qemu_in_container(pid: u32) -> Option<QemuSplit> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let procs = cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            match controllers {
                "" => Some(format!("/sys/fs/cgroup{path}/cgroup.procs")),
                c if c.split(',').any(|c| c == "memory") => Some(format!("/sys/fs/cgroup/memory{path}/cgroup.procs")),
                _ => None,
            }
        })
        .find_map(|file| std::fs::read_to_string(file).ok())
        .unwrap_or_else(|| pid.to_string());
    let splits: Vec<QemuSplit> = procs
        .lines()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{}/smaps", p.trim())).ok())
        .filter_map(|smaps| qemu_resident(&smaps))
        .collect();
    (!splits.is_empty()).then(|| QemuSplit {
        qemu_bytes: splits.iter().map(|s| s.qemu_bytes).sum(),
        guest_bytes: splits.iter().map(|s| s.guest_bytes).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mappings as `/proc/<pid>/smaps` shows an arm64 node exporter under qemu-user (amd64 host).
    const QEMU_SMAPS: &str = "\
00010000-00664000 r--p 00000000 fe:00 9977897    /usr/bin/node_exporter
Rss:                5712 kB
Anonymous:             0 kB
5545162000-5547606000 rw-p 00000000 00:00 0
Rss:                1756 kB
Anonymous:          1756 kB
55558cc62000-55558d8a0000 rw-p 00000000 00:00 0    [heap]
Size:              12536 kB
Rss:               12460 kB
Anonymous:         12460 kB
7e555f400000-7e555fc00000 rw-p 00000000 00:00 0
Rss:                4572 kB
Anonymous:          4572 kB
7f70c4000000-7f70cbfff000 rwxp 00000000 00:00 0
Rss:               18432 kB
Anonymous:         18432 kB
7f70d2e28000-7f70d32a7000 r-xp 00228000 fe:00 10166292    /usr/bin/qemu-aarch64-static
Rss:                2528 kB
VmFlags: rd ex mr mw me
";

    #[test]
    fn qemu_share_is_its_translation_cache_heap_and_binary() {
        let qemu = (12460 + 18432 + 2528) * 1024;
        // The guest's anonymous memory: its binary's file pages are not counted.
        let guest = (1756 + 4572) * 1024;
        assert_eq!(qemu_resident(QEMU_SMAPS), Some(QemuSplit { qemu_bytes: qemu, guest_bytes: guest }));
        // A native process: nothing is qemu's, and no figure is made up.
        let native = QEMU_SMAPS.replace("/usr/bin/qemu-aarch64-static", "/usr/lib/libc.so.6");
        assert_eq!(qemu_resident(&native), None);
    }
}
