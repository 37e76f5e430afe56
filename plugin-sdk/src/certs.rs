//! Development certificates for mTLS between the switch and its sidecars:
//! a CA, a server certificate for sidecars and a client certificate for
//! the switch, all signed by it (`sentiric certs init DIR`). Production
//! takes its own from the config.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

/// A certificate authority that signs sidecar and switch certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its own certificate, PEM: what each side trusts.
    pub cert: String,
    key: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// Who a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A sidecar: a TLS server, named `localhost`, `127.0.0.1` and `::1`
    /// plus the names given.
    Sidecar,
    /// The switch: a TLS client.
    Switch,
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sentiric development");
    dn.push(DnType::CommonName, common);
    dn
}

impl Ca {
    /// A new CA named `common_name`.
    pub fn new(common_name: &str) -> Result<Ca, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert,
            key: key_pem,
        })
    }

    /// A certificate for `role`, named `common_name` (and, for a
    /// sidecar, `names` besides the loopback ones). `expired`: valid only
    /// in 2000, for tests of refusal.
    pub fn issue(
        &self,
        role: Role,
        common_name: &str,
        names: &[&str],
        expired: bool,
    ) -> Result<Pem, rcgen::Error> {
        let mut sans: Vec<String> = Vec::new();
        if role == Role::Sidecar {
            sans.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
            sans.extend(names.iter().map(|n| n.to_string()));
        }
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match role {
            Role::Sidecar => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Switch => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?.pem();
        Ok(Pem {
            cert,
            key: key.serialize_pem(),
        })
    }
}

/// Writes a development CA and a sidecar and a switch certificate into
/// `dir`: `ca.pem`, `ca-key.pem`, `sidecar.pem`, `sidecar-key.pem`,
/// `switch.pem`, `switch-key.pem` (keys readable by the owner only).
/// Refuses to overwrite a CA already there.
pub fn init(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    if dir.join("ca.pem").exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{}: a CA is already there", dir.join("ca.pem").display()),
        ));
    }
    let e = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let ca = Ca::new("Sentiric development CA").map_err(e)?;
    let sidecar = ca
        .issue(Role::Sidecar, "sentiric-sidecar", &[], false)
        .map_err(e)?;
    let switch = ca
        .issue(Role::Switch, "sentiric-switch", &[], false)
        .map_err(e)?;
    let mut written = Vec::new();
    for (file, text, secret) in [
        ("ca.pem", &ca.cert, false),
        ("ca-key.pem", &ca.key, true),
        ("sidecar.pem", &sidecar.cert, false),
        ("sidecar-key.pem", &sidecar.key, true),
        ("switch.pem", &switch.cert, false),
        ("switch-key.pem", &switch.key, true),
    ] {
        let path = dir.join(file);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&path)?.write_all(text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
