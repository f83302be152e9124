//! Small validated value types of the stack file.
//!
//! Each one parses from a TOML string and refuses bad input with a message
//! that says what a good value looks like; the loader adds file, line and field.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A semantic version as the stack pins it: `1.2.3`, `v1.2.3`, `v1.34.2+k3s1`, `1.0.0-rc.1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version(String);

impl Version {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Version {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let core = s.strip_prefix('v').unwrap_or(&s);
        let (core, _build) = core.split_once('+').unwrap_or((core, ""));
        let (core, pre) = match core.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, pre),
            Some(_) => ("", ""),
            None => (core, ""),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let ok = parts.len() == 3
            && parts.iter().all(numeric)
            && pre.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
        if ok {
            Ok(Version(s))
        } else {
            Err(format!(
                "invalid version {s:?}: expected MAJOR.MINOR.PATCH, optionally with a leading `v`, \
                 a `-pre` and a `+build` part (e.g. \"v1.34.2+k3s1\" or \"88.5.3\")"
            ))
        }
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Prometheus duration: `30s`, `5m`, `1h30m`, `15d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Duration {
    /// Milliseconds.
    ms: u64,
}

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration { ms: s * 1000 }
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration { ms }
    }
    pub fn as_secs(self) -> u64 {
        self.ms / 1000
    }
    pub fn as_millis(self) -> u64 {
        self.ms
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Duration::try_from(s.to_string())
    }
}

impl TryFrom<String> for Duration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).ok_or_else(|| {
            format!(
                "invalid duration {s:?}: expected a Prometheus duration such as \"30s\", \"5m\", \"1h30m\" or \"15d\""
            )
        })
    }
}

fn parse_duration(s: &str) -> Option<Duration> {
    const UNITS: [(&str, u64); 8] = [
        ("ms", 1),
        ("s", 1000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
        ("y", 31_536_000_000),
        ("", 0),
    ];
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // Longest unit first so "ms" is not read as "m".
        let (rank, (unit, factor)) = UNITS[..7]
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())?;
        // Units must go from largest to smallest, each at most once.
        let order = [6usize, 5, 4, 3, 2, 1, 0]; // y w d h m s ms, by index into UNITS
        let pos = order.iter().position(|&i| i == rank)?;
        if last_rank != usize::MAX && pos <= last_rank {
            return None;
        }
        last_rank = pos;
        total = total.checked_add(n.checked_mul(*factor)?)?;
        rest = &rest[unit.len()..];
    }
    Some(Duration { ms: total })
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> std::time::Duration {
        std::time::Duration::from_millis(d.ms)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 6] =
            [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1), ("", 0)];
        if self.ms == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.ms;
        for (unit, factor) in &UNITS[..5] {
            if rest >= *factor {
                write!(f, "{}{unit}", rest / factor)?;
                rest %= factor;
            }
        }
        Ok(())
    }
}

/// A Kubernetes memory quantity with a binary suffix: `64Mi`, `1Gi`, `512Ki`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Memory {
    bytes: u64,
}

impl Memory {
    pub fn bytes(self) -> u64 {
        self.bytes
    }
}

impl TryFrom<String> for Memory {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("invalid memory quantity {s:?}: expected a number with Ki, Mi or Gi, e.g. \"64Mi\"");
        let (num, factor) = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)]
            .iter()
            .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
            .ok_or_else(bad)?;
        let n: u64 = num.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(format!("memory quantity {s:?} must be greater than zero"));
        }
        Ok(Memory { bytes: n.checked_mul(factor).ok_or_else(bad)? })
    }
}

impl From<Memory> for String {
    fn from(m: Memory) -> String {
        m.to_string()
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (suffix, factor) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if self.bytes % factor == 0 {
                return write!(f, "{}{suffix}", self.bytes / factor);
            }
        }
        write!(f, "{}", self.bytes)
    }
}

/// A Kubernetes CPU quantity in millicores: `100m`, or whole cores `1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cpu {
    millis: u64,
}

impl Cpu {
    pub fn millis(self) -> u64 {
        self.millis
    }
    /// As a fraction of one core, for PromQL comparisons against `rate(cpu_seconds)`.
    pub fn cores(self) -> f64 {
        self.millis as f64 / 1000.0
    }
}

impl TryFrom<String> for Cpu {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad =
            || format!("invalid CPU quantity {s:?}: expected millicores such as \"100m\" or whole cores such as \"1\"");
        let millis = match s.strip_suffix('m') {
            Some(n) => n.parse::<u64>().map_err(|_| bad())?,
            None => s.parse::<u64>().map_err(|_| bad())?.checked_mul(1000).ok_or_else(bad)?,
        };
        if millis == 0 {
            return Err(format!("CPU quantity {s:?} must be greater than zero"));
        }
        Ok(Cpu { millis })
    }
}

impl From<Cpu> for String {
    fn from(c: Cpu) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.millis)
    }
}

/// A sha256 digest, `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
                Ok(Digest(s))
            }
            _ => Err(format!(
                "invalid digest {s:?}: expected \"sha256:\" and 64 lowercase hex digits (run `cargo xtask lock` to fill digests)"
            )),
        }
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

/// An image reference `registry/repository:tag`; the registry is always explicit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl TryFrom<String> for ImageRef {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hint = "expected registry/repository:tag with an explicit registry, e.g. \"quay.io/prometheus/prometheus:v3.14.0\"";
        if s.contains('@') {
            return Err(format!(
                "image {s:?} has a digest in its reference: write the tag in `ref` and the digest in `digest`"
            ));
        }
        let (name, tag) = s
            .rsplit_once(':')
            .filter(|(name, tag)| !tag.contains('/') && !name.is_empty())
            .ok_or_else(|| format!("image {s:?} has no tag: {hint}"))?;
        let (registry, repository) = name
            .split_once('/')
            .filter(|(reg, _)| reg.contains('.') || reg.contains(':') || *reg == "localhost")
            .ok_or_else(|| format!("image {s:?} has no explicit registry: {hint}"))?;
        let repo_ok = repository.split('/').all(|part| {
            !part.is_empty() && part.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        });
        if !repo_ok {
            return Err(format!(
                "image {s:?}: repository {repository:?} must be lowercase letters, digits, '.', '_', '-' separated by '/'"
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !tag_ok {
            return Err(format!("image {s:?}: tag {tag:?} is not a valid tag: {hint}"));
        }
        if tag == "latest" {
            return Err(format!("image {s:?} uses the tag `latest`, which is not a pin: name a version tag"));
        }
        Ok(ImageRef { registry: registry.to_string(), repository: repository.to_string(), tag: tag.to_string() })
    }
}

impl From<ImageRef> for String {
    fn from(r: ImageRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// A Kubernetes DNS-1123 label (namespaces, component names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Name(s))
        } else {
            Err(format!(
                "invalid name {s:?}: expected a DNS label (lowercase letters, digits and '-', at most 63, not starting or ending with '-')"
            ))
        }
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Url(String);

impl Url {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Url {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => Ok(Url(s)),
            _ => Err(format!("invalid URL {s:?}: expected an http:// or https:// URL with a host")),
        }
    }
}

impl From<Url> for String {
    fn from(u: Url) -> String {
        u.0
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: TryFrom<String, Error = String>>(input: &str) -> Result<T, String> {
        T::try_from(input.to_string())
    }

    #[test]
    fn versions() {
        for good in ["1.22.0", "v1.34.2+k3s1", "88.5.3", "v0.28.0", "1.0.0-rc.1"] {
            assert!(check::<Version>(good).is_ok(), "{good}");
        }
        for bad in ["", "1.22", "v1.x.0", "latest", "1.2.3.4", "1.2.3-"] {
            assert!(check::<Version>(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn durations_round_trip() {
        for (s, ms) in [("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("15d", 1_296_000_000), ("250ms", 250)]
        {
            let d = check::<Duration>(s).unwrap();
            assert_eq!(d.as_millis(), ms, "{s}");
        }
        assert_eq!(check::<Duration>("90m").unwrap().to_string(), "1h30m");
        for bad in ["", "5", "m5", "5x", "5m1h", "1s1s", "-1s"] {
            assert!(check::<Duration>(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(check::<Memory>("64Mi").unwrap().bytes(), 64 << 20);
        assert_eq!(check::<Memory>("64Mi").unwrap().to_string(), "64Mi");
        assert!(check::<Memory>("64M").is_err());
        assert!(check::<Memory>("0Mi").is_err());
        assert_eq!(check::<Cpu>("100m").unwrap().millis(), 100);
        assert_eq!(check::<Cpu>("2").unwrap().millis(), 2000);
        assert!(check::<Cpu>("0.1").is_err());
    }

    #[test]
    fn image_refs() {
        let r = check::<ImageRef>("quay.io/prometheus/prometheus:v3.14.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("quay.io", "prometheus/prometheus", "v3.14.0")
        );
        let r = check::<ImageRef>("127.0.0.1:5000/fixtures/prometheus:1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        for bad in [
            "prometheus:v1",
            "prom/prometheus:v1",
            "quay.io/prometheus/prometheus",
            "quay.io/prometheus/prometheus:latest",
            "quay.io/Prometheus/prometheus:v1",
            "quay.io/prometheus/prometheus@sha256:00",
        ] {
            assert!(check::<ImageRef>(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn digests_and_names() {
        assert!(check::<Digest>(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check::<Digest>("sha256:abc").is_err());
        assert!(check::<Digest>(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(check::<Name>("observability").is_ok());
        assert!(check::<Name>("Observability").is_err());
        assert!(check::<Name>("-x").is_err());
    }
}
