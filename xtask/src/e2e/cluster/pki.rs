//! The cluster's secrets, made fresh for each run (rcgen, no openssl): one CA; the API server's
//! serving certificate and its client certificate towards kubelets; the service-account signing
//! key; the edge tunnel's serving certificate; and static bearer tokens for the admin, the
//! controller manager, the scheduler and each node (`system:node:<name>`, as the Node authorizer
//! and NodeRestriction expect).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// PEM text of a certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// Everything secret a cluster needs, as file contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    pub ca: Pair,
    /// The CA certificate in DER, as the harness' own client trusts it.
    pub ca_der: Vec<u8>,
    /// kube-apiserver's serving certificate (SANs: the service IP, the server's names and address).
    pub apiserver: Pair,
    /// kube-apiserver's client certificate towards kubelets (`system:masters`).
    pub apiserver_kubelet_client: Pair,
    /// The service-account token signing key (private, public).
    pub service_account: Pair,
    /// The edge tunnel's stream server (what cloudcore's 10003 serves on KubeEdge).
    pub tunnel: Pair,
    /// Bearer tokens by user: `admin`, `system:kube-controller-manager`, `system:kube-scheduler`,
    /// `system:kube-proxy`, `system:node:<name>` and the tunnel's own.
    pub tokens: BTreeMap<String, String>,
}

/// The user whose token the edges present to the tunnel server.
pub const TUNNEL_USER: &str = "edge-tunnel";
pub const ADMIN_USER: &str = "admin";
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
pub const KUBE_PROXY_USER: &str = "system:kube-proxy";
/// The cluster DNS (bound to its ClusterRole by the harness once the API answers).
pub const COREDNS_USER: &str = "kubeprepare:coredns";

pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

impl Secrets {
    /// Fresh secrets for a cluster whose API server answers at `server_names` (names and
    /// addresses) and whose nodes are `nodes`.
    pub fn generate(server_names: &[String], nodes: &[String]) -> Result<Secrets> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, "kubeprepare-e2e-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().context("generating the cluster CA's key")?;
        let ca_cert = ca_params.self_signed(&ca_key).context("signing the cluster CA")?;
        let ca = Pair { cert: ca_cert.pem(), key: ca_key.serialize_pem() };
        let ca_der = ca_cert.der().to_vec();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |cn: &str, org: Option<&str>, sans: &[String], usage: ExtendedKeyUsagePurpose| -> Result<Pair> {
            let mut p = CertificateParams::new(sans.to_vec()).with_context(|| format!("names of {cn}: {sans:?}"))?;
            p.distinguished_name.push(DnType::CommonName, cn);
            if let Some(o) = org {
                p.distinguished_name.push(DnType::OrganizationName, o);
            }
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().with_context(|| format!("generating the key of {cn}"))?;
            let cert = p.signed_by(&key, &issuer).with_context(|| format!("signing {cn}"))?;
            Ok(Pair { cert: cert.pem(), key: key.serialize_pem() })
        };
        let apiserver = leaf("kube-apiserver", None, server_names, ExtendedKeyUsagePurpose::ServerAuth)?;
        let apiserver_kubelet_client =
            leaf("kube-apiserver-kubelet-client", Some("system:masters"), &[], ExtendedKeyUsagePurpose::ClientAuth)?;
        let tunnel = leaf("edge-tunnel", None, server_names, ExtendedKeyUsagePurpose::ServerAuth)?;
        let sa = KeyPair::generate().context("generating the service-account key")?;
        let service_account = Pair { cert: sa.public_key_pem(), key: sa.serialize_pem() };
        let mut tokens = BTreeMap::new();
        let users = [ADMIN_USER, CONTROLLER_MANAGER_USER, SCHEDULER_USER, KUBE_PROXY_USER, TUNNEL_USER, COREDNS_USER]
            .map(String::from);
        for user in users.into_iter().chain(nodes.iter().map(|n| node_user(n))) {
            tokens.insert(user, token()?);
        }
        Ok(Secrets { ca, ca_der, apiserver, apiserver_kubelet_client, service_account, tunnel, tokens })
    }

    /// The bearer token of `user`.
    pub fn token(&self, user: &str) -> Result<&str> {
        self.tokens.get(user).map(String::as_str).with_context(|| format!("no token was made for {user}"))
    }

    /// kube-apiserver's `--token-auth-file`: `token,user,uid,"group1,group2"`.
    pub fn token_file(&self) -> String {
        let mut out = String::new();
        for (user, token) in &self.tokens {
            let groups = match user.as_str() {
                ADMIN_USER => "system:masters",
                u if u.starts_with("system:node:") => "system:nodes",
                _ => "",
            };
            out.push_str(&format!("{token},{user},{user},\"{groups}\"\n"));
        }
        out
    }
}

/// 32 random bytes, hex.
fn token() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?, &mut bytes)
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_gets_its_own_token_in_the_nodes_group() {
        let s = Secrets::generate(&["10.0.0.2".into(), "kubernetes".into()], &["edge-0".into()]).unwrap();
        let file = s.token_file();
        let node = file.lines().find(|l| l.contains(",system:node:edge-0,")).unwrap();
        assert!(node.ends_with(",\"system:nodes\""), "{node}");
        assert!(file.lines().any(|l| l.contains(",admin,admin,\"system:masters\"")), "{file}");
        assert_eq!(s.tokens.len(), 7, "six users and the node");
        assert!(s.ca.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(s.token("admin").unwrap(), s.token("system:node:edge-0").unwrap());
        let again = Secrets::generate(&["10.0.0.2".into()], &["edge-0".into()]).unwrap();
        assert_ne!(again.ca, s.ca, "secrets are made anew for each run");
    }
}
