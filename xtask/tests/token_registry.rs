//! The token-auth mock registry in tests/support/ behaves like Docker Hub, ghcr.io and quay.io as far as
//! oci-client can tell: it refuses anonymous requests, hands out scoped pull tokens, serves manifests
//! by tag and digest and blobs whole or by range, and can cut a download short.

#[path = "support/token_registry.rs"]
mod token_registry;

use std::future::Future;

use camino::Utf8PathBuf;
use futures_util::TryStreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use token_registry::{Request, TokenRegistry};
use xtask::fetch::ACCEPT;

const REPO: &str = "kubeprepare-fixtures/demo";
const TAG: &str = "v1";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

struct Blob {
    digest: String,
    bytes: Vec<u8>,
    media_type: &'static str,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob { digest: format!("sha256:{:x}", Sha256::digest(&bytes)), bytes, media_type }
    }

    fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }

    fn oci_descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.to_string(),
            digest: self.digest.clone(),
            size: self.bytes.len() as i64,
            ..Default::default()
        }
    }
}

/// A one-layer linux/amd64 image as an OCI layout: index.json -> image index -> manifest -> config + layer.
struct Image {
    _dir: tempfile::TempDir,
    layout: Utf8PathBuf,
    index: Blob,
    manifest: Blob,
    config: Blob,
    layer: Blob,
}

impl Image {
    fn build() -> Image {
        // 64 KiB of deterministic noise: big enough to cut in the middle.
        let mut noise = Vec::new();
        let mut block = Sha256::digest(b"layer").to_vec();
        while noise.len() < 64 * 1024 {
            block = Sha256::digest(&block).to_vec();
            noise.extend_from_slice(&block);
        }
        let layer = Blob::new(LAYER, noise);
        let config = Blob::new(
            CONFIG,
            serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
            }))
            .unwrap(),
        );
        let manifest = Blob::new(
            MANIFEST,
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": MANIFEST,
                "config": config.descriptor(), "layers": [layer.descriptor()],
            }))
            .unwrap(),
        );
        let mut platform = manifest.descriptor();
        platform["platform"] = serde_json::json!({ "architecture": "amd64", "os": "linux" });
        let index = Blob::new(
            INDEX,
            serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "mediaType": INDEX, "manifests": [platform] }))
                .unwrap(),
        );

        let dir = tempfile::tempdir().unwrap();
        let layout = Utf8PathBuf::try_from(dir.path().to_path_buf()).unwrap();
        let blobs = layout.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        for blob in [&index, &manifest, &config, &layer] {
            std::fs::write(blobs.join(blob.digest.trim_start_matches("sha256:")), &blob.bytes).unwrap();
        }
        std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let top = serde_json::json!({ "schemaVersion": 2, "manifests": [index.descriptor()] });
        std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
        Image { _dir: dir, layout, index, manifest, config, layer }
    }

    fn serve(&self) -> TokenRegistry {
        TokenRegistry::start(&[(REPO, TAG, self.layout.as_path())])
    }
}

fn client(registry: &TokenRegistry) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![registry.addr.clone()]),
        ..Default::default()
    })
}

fn reference(registry: &TokenRegistry, tag: &str) -> Reference {
    format!("{}/{REPO}:{tag}", registry.addr).parse().unwrap()
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// The log as `METHOD route status authorized`, one line per request.
fn summary(requests: &[Request]) -> Vec<String> {
    requests.iter().map(|r| format!("{} {} {} {}", r.method, r.route(), r.status, r.authorized)).collect()
}

fn registry_error(err: OciDistributionError) -> OciErrorCode {
    match err {
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.into_iter().next().expect("an error in the envelope").code
        }
        other => panic!("expected an OCI error envelope, got {other:?}"),
    }
}

#[test]
fn a_tag_resolves_to_the_index_after_the_token_dance() {
    let image = Image::build();
    let registry = image.serve();
    let client = client(&registry);

    let (bytes, digest) =
        block_on(client.pull_manifest_raw(&reference(&registry, TAG), &RegistryAuth::Anonymous, &ACCEPT)).unwrap();

    assert_eq!(bytes.as_ref(), image.index.bytes.as_slice());
    assert_eq!(digest, image.index.digest);
    let requests = registry.requests();
    assert_eq!(
        summary(&requests),
        [
            "GET /v2/ 401 false".to_string(),
            "GET /token 200 false".to_string(),
            format!("GET /v2/{REPO}/manifests/{TAG} 200 true"),
        ]
    );
    let token = &requests[1].path;
    assert!(token.contains("service=test-registry"), "{token}");
    assert!(token.contains("scope=repository%3Akubeprepare-fixtures%2Fdemo%3Apull"), "{token}");
}

#[test]
fn manifests_are_served_by_digest_and_head_but_blobs_are_not_manifests() {
    let image = Image::build();
    let registry = image.serve();
    let client = client(&registry);
    let by_digest = |blob: &Blob| reference(&registry, TAG).clone_with_digest(blob.digest.clone());

    block_on(async {
        let digest = client.fetch_manifest_digest(&reference(&registry, TAG), &RegistryAuth::Anonymous).await.unwrap();
        assert_eq!(digest, image.index.digest);

        let (bytes, digest) =
            client.pull_manifest_raw(&by_digest(&image.manifest), &RegistryAuth::Anonymous, &ACCEPT).await.unwrap();
        assert_eq!(
            (bytes.as_ref(), digest.as_str()),
            (image.manifest.bytes.as_slice(), image.manifest.digest.as_str())
        );

        let err = client.pull_manifest_raw(&by_digest(&image.config), &RegistryAuth::Anonymous, &ACCEPT).await;
        assert_eq!(registry_error(err.unwrap_err()), OciErrorCode::ManifestUnknown);
    });
    let head = registry.requests().into_iter().find(|r| r.method == "HEAD").expect("a HEAD request");
    assert_eq!((head.status, head.authorized), (200, true));
}

#[test]
fn unknown_manifests_and_blobs_are_oci_errors() {
    let image = Image::build();
    let registry = image.serve();
    let client = client(&registry);
    let missing = Blob::new(LAYER, b"not served".to_vec());

    block_on(async {
        let err = client.pull_manifest_raw(&reference(&registry, "nope"), &RegistryAuth::Anonymous, &ACCEPT).await;
        assert_eq!(registry_error(err.unwrap_err()), OciErrorCode::ManifestUnknown);
        let err = client.pull_blob_stream(&reference(&registry, TAG), &missing.oci_descriptor()).await;
        assert_eq!(registry_error(err.err().expect("a missing blob is an error")), OciErrorCode::BlobUnknown);
    });
}

#[test]
fn a_ranged_blob_pull_returns_the_requested_bytes() {
    let image = Image::build();
    let registry = image.serve();
    let client = client(&registry);
    let reference = reference(&registry, TAG);
    let layer = image.layer.oci_descriptor();

    let (tail, middle) = block_on(async {
        client.pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &ACCEPT).await.unwrap();
        let tail = client.pull_blob_stream_partial(&reference, &layer, 1000, None).await.unwrap();
        let middle = client.pull_blob_stream_partial(&reference, &layer, 10, Some(20)).await.unwrap();
        let (BlobResponse::Partial(tail), BlobResponse::Partial(middle)) = (tail, middle) else {
            panic!("a ranged pull must be answered with 206");
        };
        assert_eq!(tail.content_length, Some(image.layer.bytes.len() as u64 - 1000));
        (
            tail.stream.map_ok(|chunk| chunk.to_vec()).try_concat().await.unwrap(),
            middle.stream.map_ok(|chunk| chunk.to_vec()).try_concat().await.unwrap(),
        )
    });

    assert_eq!(tail, image.layer.bytes[1000..]);
    assert_eq!(middle, image.layer.bytes[10..30]);
    let ranged: Vec<_> = registry.requests().into_iter().filter(|r| r.range.is_some()).collect();
    assert_eq!(ranged.len(), 2, "{ranged:#?}");
    assert!(ranged.iter().all(|r| r.status == 206 && r.authorized), "{ranged:#?}");
    assert_eq!(ranged[0].range.as_deref(), Some("bytes=1000-"));
    assert_eq!(ranged[1].range.as_deref(), Some("bytes=10-29"));
}

#[test]
fn a_cut_download_fails_and_resumes_where_it_stopped() {
    let image = Image::build();
    let registry = image.serve();
    let client = client(&registry);
    let reference = reference(&registry, TAG);
    let layer = image.layer.oci_descriptor();
    registry.cut_blob(&image.layer.digest, 1000, 1);

    let (received, rest, again) = block_on(async {
        client.pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &ACCEPT).await.unwrap();
        let mut cut = client.pull_blob_stream(&reference, &layer).await.unwrap();
        assert_eq!(cut.content_length, Some(image.layer.bytes.len() as u64), "the header announces the whole blob");
        let mut received = Vec::new();
        let err = loop {
            match cut.stream.try_next().await {
                Ok(Some(chunk)) => received.extend_from_slice(&chunk),
                Ok(None) => panic!("a cut download ended cleanly after {} bytes", received.len()),
                Err(err) => break err,
            }
        };
        eprintln!("cut download: {err}");
        let BlobResponse::Partial(rest) =
            client.pull_blob_stream_partial(&reference, &layer, received.len() as u64, None).await.unwrap()
        else {
            panic!("a resumed pull must be answered with 206");
        };
        let rest = rest.stream.map_ok(|chunk| chunk.to_vec()).try_concat().await.unwrap();
        // The cut was for one response only.
        let again = client
            .pull_blob_stream(&reference, &layer)
            .await
            .unwrap()
            .stream
            .map_ok(|chunk| chunk.to_vec())
            .try_concat()
            .await
            .unwrap();
        (received, rest, again)
    });

    assert_eq!(received.len(), 1000);
    assert_eq!([received, rest].concat(), image.layer.bytes);
    assert_eq!(again, image.layer.bytes);
}

/// oci-client only fetches a token for a registry it has auth for, and only manifest (and tag, push)
/// calls record that: a blob pull on a fresh client goes out anonymous and is refused, until
/// `store_auth_if_needed` is called. A downloader that skips the manifest pull (e.g. because the manifest
/// is cached) must call it first.
#[test]
fn a_blob_pull_needs_the_registry_auth_stored_first() {
    let image = Image::build();
    let registry = image.serve();
    let client = client(&registry);
    let reference = reference(&registry, TAG);
    let config = image.config.oci_descriptor();

    let pulled = block_on(async {
        let refused = client.pull_blob_stream(&reference, &config).await.err().expect("an anonymous blob pull");
        assert!(matches!(refused, OciDistributionError::UnauthorizedError { .. }), "{refused:?}");
        client.store_auth_if_needed(&registry.addr, &RegistryAuth::Anonymous).await;
        client
            .pull_blob_stream(&reference, &config)
            .await
            .unwrap()
            .stream
            .map_ok(|chunk| chunk.to_vec())
            .try_concat()
            .await
            .unwrap()
    });

    assert_eq!(pulled, image.config.bytes);
    let blob = format!("GET /v2/{REPO}/blobs/{}", image.config.digest);
    assert_eq!(
        summary(&registry.requests()),
        [
            format!("{blob} 401 false"),
            "GET /v2/ 401 false".to_string(),
            "GET /token 200 false".to_string(),
            format!("{blob} 200 true")
        ]
    );
}

#[test]
fn requests_without_a_token_for_their_repository_are_refused() {
    let image = Image::build();
    let other = Image::build();
    let registry = TokenRegistry::start(&[(REPO, TAG, &image.layout), ("other", TAG, &other.layout)]);
    let http = reqwest::Client::new();
    let base = format!("http://{}", registry.addr);
    let manifest = format!("{base}/v2/{REPO}/manifests/{TAG}");

    block_on(async {
        let get = |url: String, token: Option<String>| {
            let mut request = http.get(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.unwrap() }
        };
        let token_for = |query: &'static str| {
            let url = format!("{base}/token?{query}");
            let get = &get;
            async move {
                let response = get(url, None).await;
                assert_eq!(response.status(), 200);
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["token"], body["access_token"]);
                body["token"].as_str().unwrap().to_string()
            }
        };

        let anonymous = get(manifest.clone(), None).await;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            format!(
                "Bearer realm=\"http://{}/token\",service=\"test-registry\",scope=\"repository:{REPO}:pull\"",
                registry.addr
            )
            .as_str()
        );
        let base_challenge = get(format!("{base}/v2/"), None).await;
        assert_eq!(base_challenge.status(), 401);
        assert!(!base_challenge.headers()["www-authenticate"].to_str().unwrap().contains("scope="));

        assert_eq!(get(format!("{base}/token?scope=repository:other:pull"), None).await.status(), 400);
        assert_eq!(get(format!("{base}/token?service=elsewhere"), None).await.status(), 400);

        let wrong_repo = token_for("service=test-registry&scope=repository:other:pull").await;
        assert_eq!(get(manifest.clone(), Some(wrong_repo.clone())).await.status(), 401);
        assert_eq!(get(format!("{base}/v2/other/manifests/{TAG}"), Some(wrong_repo)).await.status(), 200);
        assert_eq!(get(manifest.clone(), Some("made-up".to_string())).await.status(), 401);

        let right = token_for("service=test-registry&scope=repository%3Akubeprepare-fixtures%2Fdemo%3Apull").await;
        let response = get(manifest.clone(), Some(right)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], INDEX);
        assert_eq!(response.headers()["docker-content-digest"], image.index.digest.as_str());
    });
}

#[test]
fn dropping_the_registry_closes_its_port() {
    let image = Image::build();
    let registry = image.serve();
    let addr = registry.addr.clone();
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    drop(registry);
    assert!(std::net::TcpStream::connect(&addr).is_err(), "{addr} still accepts connections");
}

/// Our fetcher against a registry that requires Bearer tokens: with its manifests already
/// cached (so no manifest call stores the auth first), and with the layer download cut
/// once mid-way: it must still fetch every blob, resuming with a range request.
#[test]
fn the_bundle_fetcher_gets_tokens_and_resumes_a_cut_download() {
    let image = Image::build();
    let registry = image.serve();
    let t = tempfile::tempdir().unwrap();
    let cache = xtask::cache::Cache::open(&Utf8PathBuf::try_from(t.path().to_path_buf()).unwrap()).unwrap();
    for blob in [&image.index, &image.manifest] {
        cache.insert(&blob.digest, &blob.bytes, "test").unwrap();
    }
    registry.cut_blob(&image.layer.digest, 1000, 1);
    let mut fetcher = xtask::fetch::Fetcher::new(client(&registry), cache.clone());
    fetcher.retry = xtask::fetch::Retry { attempts: 3, first_wait: std::time::Duration::from_millis(10) };
    let got = block_on(fetcher.image(&reference(&registry, TAG), &image.index.digest, xtask::stack::Arch::Amd64))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(got.layers, vec![(image.layer.digest.clone(), image.layer.bytes.len() as u64)]);
    assert_eq!(cache.read(&image.layer.digest).unwrap(), image.layer.bytes);
    assert_eq!(cache.read(&image.config.digest).unwrap(), image.config.bytes);
    let requests = registry.requests();
    let blob_gets: Vec<&Request> = requests.iter().filter(|r| r.route().contains("/blobs/")).collect();
    assert!(blob_gets.iter().all(|r| r.authorized), "a blob request went out without a token: {blob_gets:?}");
    assert!(
        blob_gets.iter().any(|r| r.range.as_deref() == Some("bytes=1000-") && r.status == 206),
        "the cut download did not resume at byte 1000: {blob_gets:?}"
    );
}

/// A download that finished but was never moved into place (the run was killed in between)
/// is checked and committed without asking the registry for bytes past its end.
#[test]
fn a_complete_partial_download_is_committed_without_a_request() {
    let image = Image::build();
    let registry = image.serve();
    let t = tempfile::tempdir().unwrap();
    let cache = xtask::cache::Cache::open(&Utf8PathBuf::try_from(t.path().to_path_buf()).unwrap()).unwrap();
    std::fs::write(cache.partial_path(&image.layer.digest).unwrap(), &image.layer.bytes).unwrap();
    let fetcher = xtask::fetch::Fetcher::new(client(&registry), cache.clone());
    block_on(fetcher.image(&reference(&registry, TAG), &image.index.digest, xtask::stack::Arch::Amd64))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cache.read(&image.layer.digest).unwrap(), image.layer.bytes);
    let layer_gets = registry.requests().into_iter().filter(|r| r.route().ends_with(&image.layer.digest)).count();
    assert_eq!(layer_gets, 0, "the complete layer was requested again");
}
