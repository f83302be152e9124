//! Chart locking against a chart repository served on loopback: the index is
//! read, relative URLs resolve against the repo, the archive's sha256 is recorded,
//! and a missing version is an error naming the chart, version and index.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use xtask::lock;
use xtask::stack::{Chart, Name, Url, Version};

/// Serve `files` over HTTP/1.1 on 127.0.0.1 for up to `requests` requests; returns the base URL.
fn serve(files: BTreeMap<String, Vec<u8>>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let (status, body) = match files.get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

fn chart(base: &str, version: &str) -> Chart {
    Chart {
        repo: Url::try_from(format!("{base}/charts")).unwrap(),
        name: Name::try_from("demo".to_string()).unwrap(),
        version: Version::try_from(version.to_string()).unwrap(),
        digest: None,
        unused_images: Default::default(),
    }
}

#[test]
fn a_chart_resolves_to_the_sha256_of_its_archive() {
    let archive = b"not really a tarball, but bytes to hash".to_vec();
    let index = "apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: 1.2.3\n    urls: [demo-1.2.3.tgz]\n  - name: demo\n    version: 1.2.2\n    urls: [demo-1.2.2.tgz]\n";
    let files: BTreeMap<String, Vec<u8>> = [
        ("/charts/index.yaml".to_string(), index.as_bytes().to_vec()),
        ("/charts/demo-1.2.3.tgz".to_string(), archive.clone()),
    ]
    .into_iter()
    .collect();
    let base = serve(files, 8);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();

    let locked = rt.block_on(lock::resolve_chart(&http, &chart(&base, "1.2.3"))).unwrap();
    assert_eq!(locked.url, format!("{base}/charts/demo-1.2.3.tgz"));
    assert_eq!(locked.digest, xtask::oci::sha256(&archive));
    assert_eq!(locked.size, archive.len() as u64);

    let err = rt.block_on(lock::resolve_chart(&http, &chart(&base, "9.9.9"))).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("no demo version 9.9.9") && msg.contains("index.yaml"), "{msg}");
}

#[test]
fn a_fetched_chart_must_match_its_lock_and_be_a_safe_archive() {
    let dir = xtask::paths::fixtures_dir().join("archives");
    let good = std::fs::read(dir.join("good-chart.tgz")).unwrap();
    let evil = std::fs::read(dir.join("dotdot.tgz")).unwrap();
    let mut tampered = good.clone();
    let last = tampered.len() - 10;
    tampered[last] ^= 1;
    let files: BTreeMap<String, Vec<u8>> = [
        ("/good.tgz".to_string(), good.clone()),
        ("/tampered.tgz".to_string(), tampered),
        ("/evil.tgz".to_string(), evil.clone()),
    ]
    .into_iter()
    .collect();
    let base = serve(files, 16);
    let t = tempfile::tempdir().unwrap();
    let cache =
        xtask::cache::Cache::open(&camino::Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap()).unwrap();
    let client = oci_client::Client::new(Default::default());
    let mut fetcher = xtask::fetch::Fetcher::new(client, cache.clone());
    fetcher.retry = xtask::fetch::Retry { attempts: 1, first_wait: std::time::Duration::from_millis(1) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let good_digest = xtask::oci::sha256(&good);

    // A flipped byte: refused, naming the URL; nothing enters the cache.
    let url = format!("{base}/tampered.tgz");
    let msg = format!("{:#}", rt.block_on(fetcher.chart(&http, &url, &good_digest)).unwrap_err());
    assert!(msg.contains(&url) && msg.contains("not the locked"), "{msg}");
    assert!(!cache.contains(&good_digest));

    // Matching its lock is not enough: an archive escaping its root is refused too.
    let url = format!("{base}/evil.tgz");
    let msg = format!("{:#}", rt.block_on(fetcher.chart(&http, &url, &xtask::oci::sha256(&evil))).unwrap_err());
    assert!(msg.contains("evil.tgz") && msg.contains(".."), "{msg}");

    rt.block_on(fetcher.chart(&http, &format!("{base}/good.tgz"), &good_digest)).unwrap();
    assert_eq!(cache.read(&good_digest).unwrap(), good);
}
