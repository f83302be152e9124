//! A minimal OCI distribution registry on 127.0.0.1 that insists on Bearer tokens, the way Docker Hub,
//! ghcr.io and quay.io do: every `/v2/` request without a token for its repository gets a 401 whose
//! `WWW-Authenticate` challenge points at `/token`, which hands out anonymous pull tokens.
//!
//! It serves OCI image layouts read-only (GET and HEAD), logs every request, and can cut blob downloads
//! short to simulate a dropped connection. Plain HTTP/1.1 over std sockets, one thread per connection,
//! one request per connection (`Connection: close`). Stopped when dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

/// The `service` the challenge names and `/token` insists on.
pub const SERVICE: &str = "test-registry";

/// A registry serving on `addr`; its listener closes when it is dropped.
pub struct TokenRegistry {
    /// `127.0.0.1:PORT`, for references (`{addr}/repo:tag`) and `ClientProtocol::HttpsExcept`.
    pub addr: String,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

/// One request as the registry saw it, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target as sent, query string included (`/token?scope=...`).
    pub path: String,
    /// Whether it carried `Authorization: Bearer <token>` with a token valid for what it asked.
    pub authorized: bool,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The status code of the answer.
    pub status: u16,
}

impl Request {
    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(route, _)| route)
    }
}

impl TokenRegistry {
    /// Serve the given OCI image layouts (directories with `index.json` and `blobs/sha256/<hex>`), each as
    /// repository `repo` with tag `tag`. The tag resolves to the single descriptor of the layout's
    /// `index.json` (typically an image index); every blob of the layout can be fetched by digest through
    /// `/v2/<repo>/blobs/<digest>`, and those that are manifests or indexes also through
    /// `/v2/<repo>/manifests/<digest>`. Several layouts may share a repository under different tags.
    ///
    /// Panics, naming the file, when a layout cannot be read: this is test support.
    pub fn start(images: &[(&str, &str, &Utf8Path)]) -> TokenRegistry {
        let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
        for &(repo, tag, layout) in images {
            let entry = repos.entry(repo.to_string()).or_default();
            let index_json = layout.join("index.json");
            let index: serde_json::Value =
                serde_json::from_slice(&read(&index_json)).unwrap_or_else(|e| panic!("{index_json} is not JSON: {e}"));
            let manifests = index["manifests"].as_array().map(Vec::as_slice).unwrap_or_default();
            let [top] = manifests else {
                panic!("{index_json} must list exactly one manifest to be served as {repo}:{tag}");
            };
            let digest = top["digest"].as_str().unwrap_or_else(|| panic!("{index_json}: descriptor without digest"));
            let media_type =
                top["mediaType"].as_str().unwrap_or_else(|| panic!("{index_json}: descriptor without mediaType"));
            entry.tags.insert(tag.to_string(), (digest.to_string(), media_type.to_string()));

            let dir = layout.join("blobs").join("sha256");
            let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir}: {e}"));
            for file in listing {
                let file = file.unwrap_or_else(|e| panic!("reading {dir}: {e}"));
                let path = Utf8PathBuf::try_from(file.path()).unwrap_or_else(|e| panic!("{dir}: {e}"));
                let hex = path.file_name().unwrap_or_default();
                entry.blobs.insert(format!("sha256:{hex}"), path);
            }
            assert!(entry.blobs.contains_key(digest), "{index_json} points at {digest}, which is not in {dir}");
        }

        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port for the token registry");
        let addr = listener.local_addr().expect("the token registry's own address").to_string();
        let state = Arc::new(State {
            addr: addr.clone(),
            repos,
            tokens: Mutex::default(),
            log: Mutex::default(),
            cuts: Mutex::default(),
            issued: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let accept = {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if state.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || state.serve(stream));
                }
            })
        };
        TokenRegistry { addr, state, accept: Some(accept) }
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// Make the next `times` GET responses for blob `digest` (in any repository, full or ranged) send only
    /// the first `bytes` bytes of their body and then close the connection, while `Content-Length` still
    /// announces the whole body: a dropped download.
    pub fn cut_blob(&self, digest: &str, bytes: usize, times: usize) {
        self.state.cuts.lock().unwrap().insert(digest.to_string(), Cut { bytes, times });
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag and drops the listener.
        let _ = TcpStream::connect(&self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

#[derive(Default)]
struct Repo {
    /// tag -> (digest, media type) of the layout's top-level descriptor.
    tags: BTreeMap<String, (String, String)>,
    /// digest -> file.
    blobs: BTreeMap<String, Utf8PathBuf>,
}

struct Cut {
    bytes: usize,
    times: usize,
}

struct State {
    addr: String,
    repos: BTreeMap<String, Repo>,
    /// token -> repositories it may pull.
    tokens: Mutex<BTreeMap<String, BTreeSet<String>>>,
    log: Mutex<Vec<Request>>,
    cuts: Mutex<BTreeMap<String, Cut>>,
    issued: AtomicU64,
    stopping: AtomicBool,
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An answer; `cut` sends only that many body bytes and then hangs up.
struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    send_body: bool,
    cut: Option<usize>,
}

impl Response {
    fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, headers: vec![("Content-Type", content_type.to_string())], body, send_body: true, cut: None }
    }

    fn json(status: u16, value: serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string().into_bytes())
    }

    fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, serde_json::json!({ "errors": [{ "code": code, "message": message }] }))
    }

    fn header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
}

enum Route<'a> {
    Base,
    Token(&'a str),
    Manifest { repo: &'a str, reference: &'a str },
    Blob { repo: &'a str, digest: &'a str },
    Unknown,
}

fn route<'a>(path: &'a str, query: &'a str) -> Route<'a> {
    if path == "/token" {
        return Route::Token(query);
    }
    if path == "/v2/" || path == "/v2" {
        return Route::Base;
    }
    let Some(rest) = path.strip_prefix("/v2/") else { return Route::Unknown };
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        return Route::Manifest { repo, reference };
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        return Route::Blob { repo, digest };
    }
    Route::Unknown
}

impl State {
    fn serve(&self, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(head) = read_head(&stream) else { return };
        let (authorized, mut response) = self.answer(&head);
        response.send_body = head.method != "HEAD";
        self.log.lock().unwrap().push(Request {
            method: head.method.clone(),
            path: head.target.clone(),
            authorized,
            range: head.header("Range").map(str::to_string),
            status: response.status,
        });
        let _ = write_response(&mut stream, &response);
        let _ = stream.shutdown(Shutdown::Write);
    }

    /// Whether the request was authorized, and the answer.
    fn answer(&self, head: &Head) -> (bool, Response) {
        if head.method != "GET" && head.method != "HEAD" {
            return (false, Response::error(405, "UNSUPPORTED", "this registry is read-only"));
        }
        let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
        let token = head.header("Authorization").and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let grants = token.and_then(|token| self.tokens.lock().unwrap().get(token).cloned());
        let realm = format!("Bearer realm=\"http://{}/token\",service=\"{SERVICE}\"", self.addr);
        let challenge = |scope: Option<&str>| {
            let value = match scope {
                Some(repo) => format!("{realm},scope=\"repository:{repo}:pull\""),
                None => realm.clone(),
            };
            Response::error(401, "UNAUTHORIZED", "authentication required").header("WWW-Authenticate", value)
        };
        let response = match route(path, query) {
            Route::Token(query) => return (false, self.issue(query)),
            Route::Unknown => return (false, Response::error(404, "NOT_FOUND", &format!("no route for {path}"))),
            Route::Base => match grants {
                Some(_) => return (true, Response::json(200, serde_json::json!({}))),
                None => return (false, challenge(None)),
            },
            Route::Manifest { repo, .. } | Route::Blob { repo, .. }
                if !grants.as_ref().is_some_and(|repos| repos.contains(repo)) =>
            {
                return (false, challenge(Some(repo)));
            }
            Route::Manifest { repo, reference } => self.manifest(repo, reference),
            Route::Blob { repo, digest } => self.blob(repo, digest, head),
        };
        (true, response)
    }

    /// `/token?service=...&scope=repository:<repo>:pull`: an anonymous pull token for the scoped repositories.
    fn issue(&self, query: &str) -> Response {
        let params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        if !params.iter().any(|(k, v)| k == "service" && v == SERVICE) {
            return Response::json(400, serde_json::json!({ "details": format!("service must be {SERVICE}") }));
        }
        let mut repos = BTreeSet::new();
        for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
            for scope in scope.split(' ') {
                // repository:<name>:<actions>; the name may contain '/' but not ':'.
                let Some((name, actions)) = scope.strip_prefix("repository:").and_then(|s| s.rsplit_once(':')) else {
                    return Response::json(400, serde_json::json!({ "details": format!("bad scope {scope}") }));
                };
                if actions.split(',').any(|a| a == "pull") {
                    repos.insert(name.to_string());
                }
            }
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let salt = Sha256::digest(format!("{}/{n}/{nanos}", self.addr));
        let token = format!("tok{n}-{:x}", salt);
        self.tokens.lock().unwrap().insert(token.clone(), repos);
        Response::json(200, serde_json::json!({ "token": token, "access_token": token }))
    }

    fn manifest(&self, repo: &str, reference: &str) -> Response {
        let unknown = || Response::error(404, "MANIFEST_UNKNOWN", &format!("{repo}: manifest {reference} unknown"));
        let Some(entry) = self.repos.get(repo) else { return unknown() };
        let (digest, media_type) = match entry.tags.get(reference) {
            Some((digest, media_type)) => (digest.clone(), Some(media_type.clone())),
            None => (reference.to_string(), None),
        };
        let Some(path) = entry.blobs.get(&digest) else { return unknown() };
        let body = read(path);
        let media_type = match media_type {
            Some(media_type) => media_type,
            None => {
                // Only manifests and indexes are manifests: a config or a layer by digest is not.
                let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else { return unknown() };
                if json.get("manifests").is_none() && json.get("layers").is_none() {
                    return unknown();
                }
                match json["mediaType"].as_str() {
                    Some(media_type) => media_type.to_string(),
                    None if json.get("manifests").is_some() => "application/vnd.oci.image.index.v1+json".to_string(),
                    None => "application/vnd.oci.image.manifest.v1+json".to_string(),
                }
            }
        };
        Response::new(200, &media_type, body).header("Docker-Content-Digest", digest)
    }

    fn blob(&self, repo: &str, digest: &str, head: &Head) -> Response {
        let Some(path) = self.repos.get(repo).and_then(|entry| entry.blobs.get(digest)) else {
            return Response::error(404, "BLOB_UNKNOWN", &format!("{repo}: blob {digest} unknown"));
        };
        let whole = read(path);
        let total = whole.len();
        let mut response = match head.header("Range") {
            None => Response::new(200, "application/octet-stream", whole),
            Some(range) => match parse_range(range, total) {
                Some((first, last)) => Response::new(206, "application/octet-stream", whole[first..=last].to_vec())
                    .header("Content-Range", format!("bytes {first}-{last}/{total}")),
                None => Response::error(416, "RANGE_INVALID", &format!("cannot serve {range} of {total} bytes"))
                    .header("Content-Range", format!("bytes */{total}")),
            },
        };
        response = response.header("Docker-Content-Digest", digest.to_string());
        if head.method == "GET" && response.status < 300 {
            let mut cuts = self.cuts.lock().unwrap();
            if let Some(cut) = cuts.get_mut(digest) {
                response.cut = Some(cut.bytes);
                cut.times -= 1;
                if cut.times == 0 {
                    cuts.remove(digest);
                }
            }
        }
        response
    }
}

/// `bytes=N-` or `bytes=N-M` over a body of `total` bytes, as an inclusive range; `None` when unsatisfiable.
fn parse_range(range: &str, total: usize) -> Option<(usize, usize)> {
    let (first, last) = range.trim().strip_prefix("bytes=")?.split_once('-')?;
    let first: usize = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => total.checked_sub(1)?,
        last => last.parse::<usize>().ok()?.min(total.checked_sub(1)?),
    };
    (first <= last).then_some((first, last))
}

/// Decodes a query component (`%XX` escapes, `+` for space).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request line and headers; `None` for a connection that sent nothing usable (e.g. the wake-up in `drop`).
fn read_head(stream: &TcpStream) -> Option<Head> {
    let mut reader = BufReader::new(stream.take(64 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Some(Head { method, target, headers })
}

fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len()));
    stream.write_all(head.as_bytes())?;
    if response.send_body {
        let sent = response.cut.unwrap_or(usize::MAX).min(response.body.len());
        stream.write_all(&response.body[..sent])?;
    }
    stream.flush()
}

fn read(path: &Utf8Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
